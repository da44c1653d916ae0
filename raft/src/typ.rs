//! The openraft type choices every raftmq group makes, in one place.
//!
//! A member is named by a [`NodeId`]: `dLegerSelfId`'s number in a dledger group, the
//! `brokerId` in a classic one, [`WITNESS_NODE_ID`] for a classic group's witness. A member's
//! [`Node`] is its replication address. A log id is (term, index): openraft runs with
//! `single-term-leader`, standard Raft's one leader per term.
//!
//! What differs between groups is the entry payload: a broker's commands, or nothing at all on
//! a witness (it keeps log ids, never message bodies). [`GroupTypes`] is any openraft type
//! config with the shared choices and a payload that crosses the wire ([`WirePayload`]).

use std::io::Cursor;

use bytes::Bytes;
use openraft::{RaftTypeConfig, TokioRuntime};

/// A member's id inside its group.
pub type NodeId = u64;
/// A member as membership records it: its replication address (`host:port`).
pub type Node = openraft::BasicNode;

/// The node id of a classic group's witness: the third voter a nameserver hosts for a group of
/// two data replicas. Never a `brokerId` (the broker's configuration refuses it).
pub const WITNESS_NODE_ID: NodeId = 1_000_000;

pub type LogId = openraft::LogId<NodeId>;
pub type Vote = openraft::Vote<NodeId>;
pub type Membership = openraft::Membership<NodeId, Node>;
pub type StoredMembership = openraft::StoredMembership<NodeId, Node>;
pub type SnapshotMeta = openraft::SnapshotMeta<NodeId, Node>;
pub type RaftMetrics = openraft::RaftMetrics<NodeId, Node>;
pub type StorageError = openraft::StorageError<NodeId>;
pub type RpcError<E = openraft::error::RaftError<NodeId>> =
    openraft::error::RPCError<NodeId, Node, E>;
pub type Entry<C> = openraft::Entry<C>;
pub type EntryPayload<C> = openraft::EntryPayload<C>;
pub type Raft<C> = openraft::Raft<C>;

/// A normal entry's payload as it travels between members.
pub trait WirePayload: Sized {
    /// The bytes the payload travels as.
    fn to_wire(&self) -> Bytes;

    /// The payload a member receives. `omitted`: the sender left the bytes out on purpose
    /// (entries sent to a witness); a data replica refuses that (`Err` says why).
    fn from_wire(bytes: Bytes, omitted: bool) -> Result<Self, crate::convert::WireError>;
}

/// An openraft type config with the choices every raftmq group shares: node ids and addresses,
/// plain entries, snapshots in memory, tokio, and a payload that crosses the wire.
pub trait GroupTypes:
    RaftTypeConfig<
    D: WirePayload,
    NodeId = NodeId,
    Node = Node,
    Entry = openraft::Entry<Self>,
    SnapshotData = Cursor<Vec<u8>>,
    AsyncRuntime = TokioRuntime,
>
{
}

impl<C> GroupTypes for C where
    C: RaftTypeConfig<
        D: WirePayload,
        NodeId = NodeId,
        Node = Node,
        Entry = openraft::Entry<C>,
        SnapshotData = Cursor<Vec<u8>>,
        AsyncRuntime = TokioRuntime,
    >
{
}
