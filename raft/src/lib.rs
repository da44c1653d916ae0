//! The Raft glue every member of a raftmq group shares, whatever process hosts it: a broker
//! replica (`mqbroker`) or a witness (`mqnamesrv`).
//!
//! - [`typ`]: openraft's type choices every group makes (node ids, node addresses, log ids)
//!   and what a group's own type config adds ([`GroupTypes`], [`WirePayload`]);
//! - [`timing`]: openraft's `Config` for a data replica and for a witness, and the timers the
//!   failover code paces itself by;
//! - [`convert`]: the Raft wire format (`raftmq.v1` `raft.proto`) to openraft's types and back;
//! - [`network`]: openraft's `RaftNetwork` over gRPC, to the members' replication ports;
//! - [`service`]: the replication port's gRPC server, for one member or many (a nameserver
//!   hosts a witness per group);
//! - [`rejoin`]: the vote gate of a member whose store is empty.
//!
//! Nothing here knows what a group stores: a broker's commands are opaque payloads.

#![warn(clippy::unwrap_used)]

pub mod convert;
pub mod network;
pub mod rejoin;
pub mod service;
pub mod timing;
pub mod typ;

pub use typ::{GroupTypes, NodeId, WirePayload, WITNESS_NODE_ID};

/// A group type config for this crate's tests: opaque byte payloads that refuse to travel
/// without their bytes, as a data replica's do.
#[cfg(test)]
pub(crate) mod testing {
    use std::io::Cursor;

    use bytes::Bytes;

    use crate::typ::WirePayload;

    #[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
    pub struct Payload(pub Bytes);

    impl WirePayload for Payload {
        fn to_wire(&self) -> Bytes {
            self.0.clone()
        }

        fn from_wire(bytes: Bytes, omitted: bool) -> Result<Self, crate::convert::WireError> {
            if omitted {
                return Err(crate::convert::WireError::new(
                    "comes without its payload; only a witness takes such entries",
                ));
            }
            Ok(Payload(bytes))
        }
    }

    openraft::declare_raft_types!(
        pub TestConfig:
            D = Payload,
            R = (),
            NodeId = u64,
            Node = openraft::BasicNode,
            Entry = openraft::Entry<TestConfig>,
            SnapshotData = Cursor<Vec<u8>>,
            AsyncRuntime = openraft::TokioRuntime,
    );
}
