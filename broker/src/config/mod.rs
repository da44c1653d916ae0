//! The broker's configuration (DESIGN §7): a RocketMQ broker properties file, with
//! RocketMQ's key names and defaults, plus `--set key=value` overrides.
//!
//! Loading is "parse, then check, then assemble":
//! [`raftmq_properties`] reads the file and checks each value against the key table in
//! `keys.rs` (bad value → error naming file, line, key and what is allowed; unknown or
//! JVM-only key → warning); `assemble.rs` then fills in derived defaults and applies the
//! rules that involve several keys. Warnings are returned, never printed, so the binary
//! chooses how to show them.
//!
//! Where raftmq's defaults differ from RocketMQ's, the key's doc comment in `keys.rs` says
//! why: `brokerIP1` (127.0.0.1), `registerNameServerPeriod` (1 s), `brokerRole` in DLedger
//! mode (SYNC_MASTER), `diskMaxUsedSpaceRatio` (refused, not clamped, outside 10..=95).

mod assemble;
mod keys;
mod values;

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use raftmq_properties::{escape_key, escape_value, parse_override, read_file, Property, Source};

pub use raftmq_properties::Warning;
pub use values::{BrokerRole, DLedgerPeer, FlushDiskType, HostPort};

use keys::*;

/// Why the broker's configuration cannot be used. Displays as one line that starts with
/// where to look (`path:line`, `--set`, or the file when it cannot be read).
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file cannot be read or parsed, or a value is not allowed for its key.
    #[error(transparent)]
    Properties(#[from] raftmq_properties::Error),
    /// Values that are fine alone but not together (e.g. `brokerRole=SLAVE` with
    /// `brokerId=0`).
    #[error("{at}: {message}")]
    Conflict {
        /// Where the key that has to change was set.
        at: Source,
        /// That key's canonical name.
        key: &'static str,
        /// What is wrong and how to fix it, without the location.
        message: String,
    },
}

/// What the configuration takes from the host rather than from the file. Passed in so that
/// loading is a pure function of its inputs in tests.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Environment {
    /// The host name, the default `brokerName` (as in RocketMQ).
    pub hostname: Option<String>,
    /// The home directory, for `~` in store paths and the default `storePathRootDir`.
    pub home: Option<PathBuf>,
}

impl Environment {
    /// The running process's host name (from the kernel) and `$HOME`.
    pub fn from_process() -> Self {
        let hostname = ["/proc/sys/kernel/hostname", "/etc/hostname"]
            .iter()
            .filter_map(|file| fs::read_to_string(file).ok())
            .map(|name| name.trim().to_owned())
            .find(|name| !name.is_empty());
        Environment {
            hostname,
            home: std::env::var_os("HOME").map(PathBuf::from),
        }
    }
}

/// The settings of a DLedger-mode broker group (`enableDLegerCommitLog=true`): a fixed
/// peer list instead of master/slave roles.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DLedgerConfig {
    /// `dLegerGroup`.
    pub group: String,
    /// `dLegerPeers`: every member with its replication address.
    pub peers: Vec<DLedgerPeer>,
    /// `dLegerSelfId`: this broker's id; always one of `peers`.
    pub self_id: String,
    /// `preferredLeaderId`: the peer that leadership is handed back to once it has caught
    /// up; when set, always one of `peers`.
    pub preferred_leader_id: Option<String>,
}

impl DLedgerConfig {
    /// This broker's own entry in the peer list.
    pub fn self_peer(&self) -> Option<&DLedgerPeer> {
        self.peers.iter().find(|peer| peer.id == self.self_id)
    }
}

/// The effective configuration of one broker, after defaults, derivations and checks.
///
/// Field names follow the RocketMQ keys; durations are typed where RocketMQ uses
/// milliseconds or hours.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerConfig {
    /// `brokerClusterName` (default `DefaultCluster`).
    pub broker_cluster_name: String,
    /// `brokerName`: the broker group, i.e. the Raft group. Default: the host name, as in
    /// RocketMQ (`DEFAULT_BROKER` when there is none), so that unconfigured brokers on
    /// different hosts never join one group by accident.
    pub broker_name: String,
    /// `brokerId` (default 0): 0 is the master (and preferred leader) of a classic group.
    pub broker_id: u64,
    /// `brokerRole`: default ASYNC_MASTER, or SYNC_MASTER in DLedger mode.
    pub broker_role: BrokerRole,
    /// `flushDiskType` (default ASYNC_FLUSH).
    pub flush_disk_type: FlushDiskType,
    /// `namesrvAddr`, `;`-separated (default: none; the binary adds `-n`).
    pub namesrv_addr: Vec<HostPort>,
    /// `listenPort`: the client port (default 10911; 0 picks an ephemeral port).
    pub listen_port: u16,
    /// `haListenPort`: the replication port of classic groups (default `listenPort + 1`).
    pub ha_listen_port: u16,
    /// `brokerIP1`: the address registered for clients (default 127.0.0.1, see `keys.rs`).
    pub broker_ip1: String,
    /// `brokerIP2`: the address registered for replication (default `brokerIP1`).
    pub broker_ip2: String,
    /// `storePathRootDir` with `~` expanded (default `~/store`).
    pub store_path_root_dir: PathBuf,
    /// `storePathCommitLog`, where the Raft log lives (default `<root>/commitlog`).
    pub store_path_commit_log: PathBuf,
    /// `mappedFileSizeCommitLog` (alias `mapedFileSizeCommitLog`): segment size, 1 GiB.
    pub mapped_file_size_commit_log: u64,
    /// `mappedFileSizeConsumeQueue` (alias `mapedFileSizeConsumeQueue`): 300 000 units of
    /// 20 bytes; rounded up to whole units.
    pub mapped_file_size_consume_queue: u64,
    /// `maxMessageSize` in bytes (default 4 MiB).
    pub max_message_size: u32,
    /// `flushIntervalCommitLog` (default 500 ms), for ASYNC_FLUSH.
    pub flush_interval_commit_log: Duration,
    /// `pageCacheWindowCommitLog` (default 1 GiB): bytes at the log's end kept in the page
    /// cache; 0 leaves caching to the kernel.
    pub page_cache_window_commit_log: u64,
    /// `syncFlushTimeout` (default 5 s): SYNC_FLUSH sends fail with FLUSH_DISK_TIMEOUT after.
    pub sync_flush_timeout: Duration,
    /// `slaveTimeout` (default 3 s): SYNC_MASTER sends report FLUSH_SLAVE_TIMEOUT after.
    pub slave_timeout: Duration,
    /// `duplicateWindowMs` and `duplicateMaxKeys` (2 min, 2 million keys): how long and how
    /// much of stored messages' `UNIQ_KEY`s the group remembers, written into the log by the
    /// leader.
    pub duplicate_memory: crate::command::DedupSettings,
    /// `channelExpiredTimeout` (default 10 s): a consumer group member silent for longer
    /// leaves its group.
    pub channel_expired_timeout: Duration,
    /// `haMaxGapNotInSync` (default 256 MiB): how far behind a slave stays in the in-sync set.
    pub ha_max_gap_not_in_sync: u64,
    /// `enableElectUncleanMaster` (default false): elect an out-of-sync slave when the master
    /// dies, instead of waiting for the master.
    pub enable_elect_unclean_master: bool,
    /// `witnessAddr`: the nameserver hosting this classic group's witness (default: the first
    /// `namesrvAddr` entry).
    pub witness_addr: Option<HostPort>,
    /// `deleteWhen`: hours of the day when expired segments are deleted (default `04`).
    pub delete_when: Vec<u8>,
    /// `fileReservedTime` (default 72 hours), whole hours.
    pub file_reserved_time: Duration,
    /// `diskMaxUsedSpaceRatio`: percent of the disk above which writes are refused (75).
    pub disk_max_used_space_ratio: u8,
    /// `autoCreateTopicEnable` (default true).
    pub auto_create_topic_enable: bool,
    /// `defaultTopicQueueNums` (default 8): queues of an auto-created topic.
    pub default_topic_queue_nums: u32,
    /// `serverWorkerThreads`: async runtime workers; 0 = one per CPU.
    pub server_worker_threads: u32,
    /// `registerNameServerPeriod` (alias `brokerHeartbeatInterval`): how often the broker
    /// registers with every nameserver. 1 s here, 30 s in RocketMQ (DESIGN §5).
    pub register_name_server_period: Duration,
    /// `aclEnable`: always false for now; `true` is refused until ACLs are enforced.
    pub acl_enable: bool,
    /// `enableDLegerCommitLog` and the `dLeger*` keys: `Some` in DLedger mode.
    pub dledger: Option<DLedgerConfig>,
}

impl BrokerConfig {
    /// Loads the broker configuration from a properties file (none: all defaults) with
    /// `--set key=value` overrides applied on top, using the process's host name and home.
    ///
    /// Returns the warnings (unknown, ignored and repeated keys, settings without effect)
    /// for the caller to show.
    pub fn load(
        path: Option<&Path>,
        overrides: &[String],
    ) -> Result<(BrokerConfig, Vec<Warning>), ConfigError> {
        let file = path.map(read_file).transpose()?.unwrap_or_default();
        Self::from_properties(&file, overrides, &Environment::from_process())
    }

    /// [`BrokerConfig::load`] from already parsed pairs and an explicit environment: the
    /// pure core, for tests and tools that build configurations (such as `mqcluster`).
    pub fn from_properties(
        file: &[Property],
        overrides: &[String],
        env: &Environment,
    ) -> Result<(BrokerConfig, Vec<Warning>), ConfigError> {
        let overrides = overrides
            .iter()
            .map(|arg| parse_override(arg))
            .collect::<Result<Vec<_>, _>>()?;
        let (settings, mut warnings) = SCHEMA.resolve(file, &overrides)?;
        let config = assemble::assemble(&settings, env, &mut warnings)?;
        Ok((config, warnings))
    }

    /// The effective value of every key, in the key table's order, as text a properties
    /// file would hold. Keys without a value (DLedger keys of a classic broker) are empty.
    pub fn effective_properties(&self) -> Vec<(&'static str, String)> {
        let millis = |d: Duration| d.as_millis().to_string();
        let dledger = self.dledger.as_ref();
        vec![
            (BROKER_CLUSTER_NAME.name, self.broker_cluster_name.clone()),
            (BROKER_NAME.name, self.broker_name.clone()),
            (BROKER_ID.name, self.broker_id.to_string()),
            (BROKER_ROLE.name, self.broker_role.to_string()),
            (FLUSH_DISK_TYPE.name, self.flush_disk_type.to_string()),
            (NAMESRV_ADDR.name, joined(&self.namesrv_addr)),
            (LISTEN_PORT.name, self.listen_port.to_string()),
            (HA_LISTEN_PORT.name, self.ha_listen_port.to_string()),
            (BROKER_IP1.name, self.broker_ip1.clone()),
            (BROKER_IP2.name, self.broker_ip2.clone()),
            (
                STORE_PATH_ROOT_DIR.name,
                self.store_path_root_dir.display().to_string(),
            ),
            (
                STORE_PATH_COMMIT_LOG.name,
                self.store_path_commit_log.display().to_string(),
            ),
            (
                MAPPED_FILE_SIZE_COMMIT_LOG.name,
                self.mapped_file_size_commit_log.to_string(),
            ),
            (
                MAPPED_FILE_SIZE_CONSUME_QUEUE.name,
                self.mapped_file_size_consume_queue.to_string(),
            ),
            (MAX_MESSAGE_SIZE.name, self.max_message_size.to_string()),
            (
                FLUSH_INTERVAL_COMMIT_LOG.name,
                millis(self.flush_interval_commit_log),
            ),
            (
                PAGE_CACHE_WINDOW_COMMIT_LOG.name,
                self.page_cache_window_commit_log.to_string(),
            ),
            (SYNC_FLUSH_TIMEOUT.name, millis(self.sync_flush_timeout)),
            (SLAVE_TIMEOUT.name, millis(self.slave_timeout)),
            (
                DUPLICATE_WINDOW_MS.name,
                self.duplicate_memory.window_ms.to_string(),
            ),
            (
                DUPLICATE_MAX_KEYS.name,
                self.duplicate_memory.max_keys.to_string(),
            ),
            (
                CHANNEL_EXPIRED_TIMEOUT.name,
                millis(self.channel_expired_timeout),
            ),
            (
                HA_MAX_GAP_NOT_IN_SYNC.name,
                self.ha_max_gap_not_in_sync.to_string(),
            ),
            (
                ENABLE_ELECT_UNCLEAN_MASTER.name,
                self.enable_elect_unclean_master.to_string(),
            ),
            (
                WITNESS_ADDR.name,
                self.witness_addr
                    .as_ref()
                    .map(ToString::to_string)
                    .unwrap_or_default(),
            ),
            (DELETE_WHEN.name, values::render_hours(&self.delete_when)),
            (
                FILE_RESERVED_TIME.name,
                (self.file_reserved_time.as_secs() / 3600).to_string(),
            ),
            (
                DISK_MAX_USED_SPACE_RATIO.name,
                self.disk_max_used_space_ratio.to_string(),
            ),
            (
                AUTO_CREATE_TOPIC_ENABLE.name,
                self.auto_create_topic_enable.to_string(),
            ),
            (
                DEFAULT_TOPIC_QUEUE_NUMS.name,
                self.default_topic_queue_nums.to_string(),
            ),
            (
                SERVER_WORKER_THREADS.name,
                self.server_worker_threads.to_string(),
            ),
            (
                REGISTER_NAME_SERVER_PERIOD.name,
                millis(self.register_name_server_period),
            ),
            (ACL_ENABLE.name, self.acl_enable.to_string()),
            (ENABLE_DLEGER_COMMIT_LOG.name, dledger.is_some().to_string()),
            (
                DLEGER_GROUP.name,
                dledger.map(|d| d.group.clone()).unwrap_or_default(),
            ),
            (
                DLEGER_PEERS.name,
                dledger.map(|d| joined(&d.peers)).unwrap_or_default(),
            ),
            (
                DLEGER_SELF_ID.name,
                dledger.map(|d| d.self_id.clone()).unwrap_or_default(),
            ),
            (
                PREFERRED_LEADER_ID.name,
                dledger
                    .and_then(|d| d.preferred_leader_id.clone())
                    .unwrap_or_default(),
            ),
        ]
    }

    /// The effective configuration as `key=value` lines (escaped, one per key), like
    /// RocketMQ's `mqbroker -p`. Loading this text gives back the same configuration.
    pub fn to_properties_text(&self) -> String {
        self.effective_properties()
            .into_iter()
            .map(|(key, value)| format!("{}={}\n", escape_key(key), escape_value(&value)))
            .collect()
    }
}

/// The warnings of a load as the lines to log: every ignored key together in one line
/// (grouped by why it is ignored, in the order they were met), placed where the first of them
/// was, and each other warning on its own line. A RocketMQ tutorial file carries a dozen keys
/// that mean nothing here; one line says so without burying the warnings that matter.
pub fn warning_lines(warnings: &[Warning]) -> Vec<String> {
    let mut lines = Vec::new();
    let mut ignored_at = None;
    // (why, [(key, where)]) in order of first appearance.
    let mut ignored: Vec<(&str, Vec<(&str, &Source)>)> = Vec::new();
    for warning in warnings {
        let Warning::Ignored { at, key, why } = warning else {
            lines.push(warning.to_string());
            continue;
        };
        ignored_at.get_or_insert(lines.len());
        match ignored.iter_mut().find(|(w, _)| w == why) {
            Some((_, keys)) => keys.push((key, at)),
            None => ignored.push((why, vec![(key.as_str(), at)])),
        }
    }
    if let Some(index) = ignored_at {
        let count: usize = ignored.iter().map(|(_, keys)| keys.len()).sum();
        let mut places: Vec<String> = Vec::new();
        for (_, keys) in &ignored {
            for (_, at) in keys {
                let place = match at {
                    Source::File { path, .. } => path.display().to_string(),
                    other => other.to_string(),
                };
                if !places.contains(&place) {
                    places.push(place);
                }
            }
        }
        let groups: Vec<String> = ignored
            .iter()
            .map(|(why, keys)| {
                let keys: Vec<String> = keys
                    .iter()
                    .map(|(key, at)| match at {
                        Source::File { line, .. } => format!("{key} (line {line})"),
                        _ => (*key).to_owned(),
                    })
                    .collect();
                format!("{} [{why}]", keys.join(", "))
            })
            .collect();
        let line = format!(
            "{}: {count} RocketMQ key{} ignored: {}",
            places.join(", "),
            if count == 1 { "" } else { "s" },
            groups.join("; ")
        );
        lines.insert(index, line);
    }
    lines
}

fn joined<T: ToString>(items: &[T]) -> String {
    items
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(";")
}

#[cfg(test)]
mod tests;
