//! raftmq's own gRPC API, generated at build time from `proto/raftmq/v1/*.proto`.
//!
//! - [`BrokerService`]: producers, consumers and admin tools talk to a broker (client port).
//! - [`NameService`]: brokers register, clients look up routes and watch them change.
//! - [`RaftService`]: replication between the replicas of one broker group.
//!
//! Outcomes travel in the response body as a [`v1::ResponseStatus`] (code, remark and a typed
//! detail such as the leader hint of `NOT_LEADER`); gRPC status codes are left for transport
//! failures. Every `bytes` field is a [`prost::bytes::Bytes`] and every `map` a `BTreeMap`.
//!
//! This crate holds the wire contract only (plus the encoding of message ids and the brokerId
//! convention, which are part of it); conversions to openraft and broker types belong to their
//! users.

pub mod msg_id;
mod status;

/// Generated messages, enums, clients and servers of package `raftmq.v1`.
#[allow(clippy::all, clippy::pedantic, clippy::unwrap_used, missing_docs)]
pub mod v1 {
    tonic::include_proto!("raftmq.v1");
}

pub use v1::broker_service_client::BrokerServiceClient;
pub use v1::broker_service_server::{BrokerService, BrokerServiceServer};
pub use v1::name_service_client::NameServiceClient;
pub use v1::name_service_server::{NameService, NameServiceServer};
pub use v1::raft_service_client::RaftServiceClient;
pub use v1::raft_service_server::{RaftService, RaftServiceServer};

pub use msg_id::{MsgIdError, OffsetMsgId};

/// The brokerId a replica of a group goes by on the wire: 0 while it leads (RocketMQ's master
/// id), else its Raft node id plus one, so no two replicas of a group share an id. Brokers
/// report it; the nameserver uses it to show a refused leader claim as the follower it is.
pub fn broker_id(node_id: u64, leads: bool) -> u64 {
    if leads {
        0
    } else {
        node_id + 1
    }
}

/// Encoded `FileDescriptorSet` of every raftmq.v1 file, for a gRPC reflection service
/// (`tonic_reflection::server::Builder::configure().register_encoded_file_descriptor_set(..)`).
pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("raftmq_v1_descriptor");

/// `Message.queue_id` that lets the broker choose the queue.
pub const ANY_QUEUE: i32 = -1;

/// `TopicConfig.perm` bit: consumers may read (RocketMQ `PermName.PERM_READ`).
pub const PERM_READ: u32 = 4;
/// `TopicConfig.perm` bit: producers may write (RocketMQ `PermName.PERM_WRITE`).
pub const PERM_WRITE: u32 = 2;
/// `TopicConfig.perm` bit: inherited from a template topic (RocketMQ `PermName.PERM_INHERIT`).
pub const PERM_INHERIT: u32 = 1;

#[cfg(test)]
mod tests {
    use super::broker_id;

    #[test]
    fn only_the_leader_has_broker_id_zero_and_followers_never_collide() {
        assert_eq!(broker_id(0, true), 0);
        assert_eq!(broker_id(2, true), 0);
        let followers: Vec<u64> = (0..3).map(|n| broker_id(n, false)).collect();
        assert_eq!(followers, [1, 2, 3]);
    }
}
