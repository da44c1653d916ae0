//! The state machine: what every replica builds from the committed log (DESIGN §3, §4).
//!
//! - [`consume_queue`]: per (topic, queueId), dense queue offsets → 20-byte units pointing at
//!   message records in the log;
//! - [`topics`]: topic configs, and which sends they refuse;
//! - [`consumer_offsets`]: per consumer group, the next offset to consume from each queue;
//! - `applied`: the three together (plus the replicas' client addresses) and how one committed
//!   command changes them;
//! - [`snapshot`]: metadata snapshots (no message bodies) and where the current one is kept;
//! - `rebuild`: what a restart starts from;
//! - `machine`: [`StateMachine`], openraft's `RaftStateMachine`;
//! - `broker_state`: [`BrokerState`], the read handle the services use.
//!
//! Queue offsets are decided by the log alone (the order of committed sends), so they are the
//! same on every replica. Positions are the same too, except on a replica that installed a
//! snapshot: its log starts afresh from there.

#![cfg_attr(not(test), warn(clippy::unwrap_used))]

pub(crate) mod applied;
mod broker_state;
pub mod consume_queue;
pub mod consumer_offsets;
mod machine;
mod rebuild;
pub mod recent_keys;
pub mod snapshot;
pub mod topics;

use std::path::PathBuf;

pub use applied::AppliedState;
pub use broker_state::BrokerState;
pub use consume_queue::{ConsumeQueue, CqUnit, CQ_UNIT_LEN};
pub use machine::{StateMachine, StateSnapshotBuilder};
pub use snapshot::{NodeRecord, QueueRange, SnapshotDecodeError, SnapshotImage};

/// Why the state machine could not open, apply or snapshot.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error(transparent)]
    Log(#[from] raft_log::Error),
    #[error("log entry {index} cannot be applied: {why}")]
    BadEntry { index: u64, why: MisplacedEntry },
    #[error(
        "snapshot file {path} is unusable: {why}; remove the store directory to resync this \
         replica from its group"
    )]
    BadSnapshot {
        path: PathBuf,
        why: SnapshotDecodeError,
    },
    #[error(
        "the log in {dir} is purged up to index {purged} but holds no snapshot: this replica \
         cannot rebuild its state; remove the store directory to resync it from its group"
    )]
    PurgedWithoutSnapshot { purged: u64, dir: PathBuf },
    #[error(
        "the log in {dir} is purged up to index {purged}, past its snapshot ({snapshot:?}): the \
         entries between are gone; remove the store directory to resync this replica from its group"
    )]
    PurgedPastSnapshot {
        purged: u64,
        snapshot: Option<u64>,
        dir: PathBuf,
    },
    #[error("snapshot IO task failed: {0}")]
    Blocking(String),
}

/// Why a committed entry is not where this replica's own log says it is: a local failure, not
/// something wrong with the entry (see `applied::prepare_command`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MisplacedEntry {
    #[error("entry {index} is applied but not in the log it was appended to")]
    NotInLog { index: u64 },
    #[error(
        "the log entry at position {position} is {size} bytes, but a {command_len}-byte command \
         makes a {expected}-byte entry: bodies must be the command bytes as they are"
    )]
    WrongSize {
        position: u64,
        size: u32,
        command_len: usize,
        expected: usize,
    },
}
