//! The broker's openraft type config: a group's shared choices (`raftmq_raft::typ`) with the
//! broker's commands as entry payloads and apply results as responses.

use std::io::Cursor;

use crate::command::LogCommand;

pub use raftmq_raft::typ::{
    LogId, Membership, Node, NodeId, RaftMetrics, RpcError, SnapshotMeta, StorageError,
    StoredMembership, Vote,
};

openraft::declare_raft_types!(
    /// The broker group's Raft: commands in, apply results out.
    pub TypeConfig:
        D = LogCommand,
        R = ApplyResult,
        NodeId = NodeId,
        Node = Node,
        Entry = openraft::Entry<TypeConfig>,
        SnapshotData = Cursor<Vec<u8>>,
        AsyncRuntime = openraft::TokioRuntime,
);

/// The group's Raft handle.
pub type Raft = openraft::Raft<TypeConfig>;
pub type Entry = openraft::Entry<TypeConfig>;
pub type EntryPayload = openraft::EntryPayload<TypeConfig>;
pub type Snapshot = openraft::Snapshot<TypeConfig>;

/// What applying one command produced, returned to the proposer by `client_write`.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub enum ApplyResult {
    /// Blank and membership entries, topic and offset commands.
    #[default]
    Done,
    /// A send: each message's queue offset and log position. A retried copy of a message
    /// stored earlier (same `UNIQ_KEY` on the same queue) gets the original's offset and
    /// position and is not stored again; `duplicates` counts those.
    Stored {
        queue_id: u32,
        offsets: Vec<u64>,
        positions: Vec<u64>,
        duplicates: u32,
    },
    /// The command was refused when applied (e.g. a send to a topic deleted meanwhile).
    Refused(String),
    /// A batch of coalesced sends: one result per part, in order.
    Batch(Vec<ApplyResult>),
}
