//! The broker's openraft type config: the one place openraft's generic types are fixed.

use std::io::Cursor;

use crate::command::LogCommand;

/// A replica id inside its group (`dLegerSelfId` n0 → 0, or a classic group's brokerId).
pub type NodeId = u64;
/// A replica as membership records it: its replication address (`host:port`).
pub type Node = openraft::BasicNode;

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
pub type LogId = openraft::LogId<NodeId>;
pub type Vote = openraft::Vote<NodeId>;
pub type Entry = openraft::Entry<TypeConfig>;
pub type EntryPayload = openraft::EntryPayload<TypeConfig>;
pub type Membership = openraft::Membership<NodeId, Node>;
pub type StoredMembership = openraft::StoredMembership<NodeId, Node>;
pub type Snapshot = openraft::Snapshot<TypeConfig>;
pub type SnapshotMeta = openraft::SnapshotMeta<NodeId, Node>;
pub type StorageError = openraft::StorageError<NodeId>;
pub type RaftMetrics = openraft::RaftMetrics<NodeId, Node>;
pub type RpcError<E = openraft::error::RaftError<NodeId>> =
    openraft::error::RPCError<NodeId, Node, E>;

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
