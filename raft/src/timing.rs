//! openraft's [`Config`] for the members of a raftmq group, and the timers the failover code
//! paces itself by.
//!
//! A data replica ([`replica_config`]) keeps Raft's own election timers as a fallback: a dead
//! leader is noticed within milliseconds by the broker's failover detector, so these only
//! matter for failures nothing reports. A witness ([`witness_config`]) never campaigns; its
//! only timer that matters is the *leader lease*, the time after the leader's last append
//! during which it refuses votes (openraft 0.9 uses `election_timeout_max`): it bounds how soon
//! a slave can win the witness's vote after its master died.

use openraft::{Config, ConfigError, SnapshotPolicy};

/// Recommended heartbeat interval (ms). openraft also uses it as the deadline of every
/// append, so it must cover a follower's append (and its fsync under `SYNC_FLUSH`) on a loaded
/// machine. Failure detection does not depend on it: the `WatchLeader` stream does that.
pub const HEARTBEAT_MS: u64 = 100;
/// Recommended lower bound of the election timeout (ms); also the deadline of a vote request.
pub const ELECTION_MIN_MS: u64 = 300;
/// Recommended upper bound of the election timeout (ms), which is also the leader lease. Raft's
/// own timers start an election only after lease + timeout = 900..1200 ms without any append
/// from the leader: a 2-core machine under load can stall a few hundred ms without a spurious
/// election. A crashed leader is noticed by the detector instead, in milliseconds; these
/// timers are the fallback for failures nothing reports (a frozen or cut-off host).
pub const ELECTION_MAX_MS: u64 = 600;

/// openraft's [`Config`] for a data replica of a broker group, with the given timers (ms).
///
/// The log is the commitlog: retention is the broker's job, so openraft never purges on its
/// own (`max_in_snapshot_log_to_keep = u64::MAX`) and builds a (metadata-only) snapshot only
/// every 100 000 entries, so a follower that falls behind the purged range can catch up.
// openraft's own error type, returned once at start-up: its size does not matter.
#[allow(clippy::result_large_err)]
pub fn raft_config(
    heartbeat_ms: u64,
    election_min_ms: u64,
    election_max_ms: u64,
) -> Result<Config, ConfigError> {
    config_with(heartbeat_ms, election_min_ms, election_max_ms).validate()
}

/// [`raft_config`] with [`HEARTBEAT_MS`], [`ELECTION_MIN_MS`], [`ELECTION_MAX_MS`]: what a
/// data replica runs with.
pub fn replica_config() -> Config {
    config_with(HEARTBEAT_MS, ELECTION_MIN_MS, ELECTION_MAX_MS)
}

fn config_with(heartbeat_ms: u64, election_min_ms: u64, election_max_ms: u64) -> Config {
    Config {
        cluster_name: "raftmq".into(),
        heartbeat_interval: heartbeat_ms,
        election_timeout_min: election_min_ms,
        election_timeout_max: election_max_ms,
        // Per-chunk deadline of a snapshot transfer; snapshots hold metadata (topics, offsets)
        // that can run to megabytes.
        install_snapshot_timeout: 3_000,
        // Entries per append; big ones are split by size in the network layer.
        max_payload_entries: 1_024,
        snapshot_policy: SnapshotPolicy::LogsSinceLast(100_000),
        max_in_snapshot_log_to_keep: u64::MAX,
        // Only applies to openraft's automatic purge, which the setting above disables; must
        // stay >= 1 (openraft computes `purge_end - 1` otherwise).
        purge_batch_size: 1,
        ..Config::default()
    }
}

/// The witness's leader lease (ms): how long after the leader's last append it refuses votes.
/// The leader heartbeats every [`HEARTBEAT_MS`], so a live leader keeps renewing it; a dead
/// one's lapses this long after its last heartbeat.
pub const WITNESS_LEASE_MS: u64 = 120;

/// openraft's [`Config`] for a witness: elections off (it never campaigns or leads; nothing
/// may make it), and a short lease (see [`WITNESS_LEASE_MS`]).
pub fn witness_config() -> Config {
    Config {
        cluster_name: "raftmq".into(),
        // Never used to send anything (a witness never leads); it only has to stay below the
        // election timeout for the config to be valid.
        heartbeat_interval: 40,
        election_timeout_min: WITNESS_LEASE_MS * 2 / 3,
        election_timeout_max: WITNESS_LEASE_MS,
        enable_elect: false,
        max_in_snapshot_log_to_keep: u64::MAX,
        purge_batch_size: 1,
        snapshot_policy: SnapshotPolicy::Never,
        ..Config::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recommended_config_is_valid_and_keeps_the_whole_log() {
        let c = replica_config();
        assert!(c.clone().validate().is_ok());
        assert_eq!(c.max_in_snapshot_log_to_keep, u64::MAX);
        assert!(c.purge_batch_size >= 1);
        assert!(matches!(c.snapshot_policy, SnapshotPolicy::LogsSinceLast(n) if n >= 100_000));
        assert!(raft_config(50, 150, 300).is_ok());
        assert!(raft_config(50, 300, 300).is_err());
        assert!(raft_config(300, 300, 600).is_err());
    }

    #[test]
    fn a_witness_never_elects_and_its_lease_is_short() {
        let c = witness_config().validate().expect("a valid config");
        assert!(!c.enable_elect);
        assert_eq!(c.election_timeout_max, WITNESS_LEASE_MS);
        const { assert!(WITNESS_LEASE_MS < ELECTION_MAX_MS) };
    }
}
