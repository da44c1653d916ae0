//! A witness's openraft type config: entries whose payload was left out.

use std::io::Cursor;

use bytes::Bytes;
use raftmq_raft::typ::{Node, NodeId};

/// A normal entry's payload on a witness: left out by the leader, never stored. A witness
/// keeps the entry's log id and kind only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct Omitted;

impl raftmq_raft::WirePayload for Omitted {
    fn to_wire(&self) -> Bytes {
        Bytes::new()
    }

    /// Whatever arrives is dropped: a leader that sent a body by mistake still leaves none here.
    fn from_wire(_bytes: Bytes, _omitted: bool) -> Result<Self, raftmq_raft::convert::WireError> {
        Ok(Omitted)
    }
}

/// Stored as an empty body, read back as [`Omitted`] (never as an empty broker command).
impl raft_log::raft::LogPayload for Omitted {
    fn encode_into(&self, _buf: &mut Vec<u8>) {}

    fn decode(_body: Bytes) -> Result<Self, raft_log::raft::typ::DecodeError> {
        Ok(Omitted)
    }

    fn encoded(&self) -> Option<&[u8]> {
        Some(&[])
    }
}

openraft::declare_raft_types!(
    /// A witness's Raft: log ids in, nothing out.
    pub WitnessConfig:
        D = Omitted,
        R = (),
        NodeId = NodeId,
        Node = Node,
        Entry = openraft::Entry<WitnessConfig>,
        SnapshotData = Cursor<Vec<u8>>,
        AsyncRuntime = openraft::TokioRuntime,
);
