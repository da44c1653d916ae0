//! The broker library's one error type, [`Error`].
//!
//! Every variant displays as one line. A variant either says its cause in that line or keeps
//! it as its `source()` (start-up steps: "cannot open the commitlog", then the store's error),
//! never both; `mqbroker` prints an error with its sources, joined by `: `.
//!
//! The narrower types beside it stay separate because callers match on them, map them to
//! response codes, or hand them to openraft; each that a public function returns converts into
//! [`Error`] (`#[from]`): `ConfigError`, `command::DecodeError` and `EncodeError`,
//! `limits::Refusal`, `service::proposer::ProposeError`, `state::StateError` (whose
//! `MisplacedEntry` is only ever its cause), `state::SnapshotDecodeError` and
//! `raft::handback::MalformedTimeoutNow`.

use std::io;
use std::time::Duration;

use crate::command::{DecodeError, EncodeError};
use crate::config::ConfigError;
use crate::limits::Refusal;
use crate::raft::handback::MalformedTimeoutNow;
use crate::raft::typ::NodeId;
use crate::service::proposer::ProposeError;
use crate::state::snapshot::SnapshotDecodeError;
use crate::state::StateError;

/// `Result` with the broker's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Why the broker library could not do what it was asked.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The property file or an override cannot be used (`BrokerConfig::load`).
    #[error(transparent)]
    Config(#[from] ConfigError),

    /// A DLedger peer id (read from `key`) does not end in the number that is its node id.
    #[error("{key}: peer id {peer_id:?} does not end in a number (use n0, n1, n2, ...)")]
    PeerIdWithoutNumber { key: &'static str, peer_id: String },
    /// A DLedger peer id's number does not fit a node id.
    #[error("{key}: peer id {peer_id:?} is out of range")]
    PeerIdOutOfRange { key: &'static str, peer_id: String },
    /// Two `dLegerPeers` entries map to one node id (`n1` and `node1`).
    #[error("dLegerPeers: two peers map to node id {node_id}")]
    DuplicatePeer { node_id: NodeId },
    /// `dLegerSelfId` names none of the `dLegerPeers`.
    #[error("dLegerSelfId is not among dLegerPeers")]
    SelfNotAPeer,

    /// A port cannot be listened on; `what` names the setting it comes from.
    #[error("cannot listen on {addr} ({what})")]
    Bind {
        addr: String,
        what: &'static str,
        #[source]
        source: io::Error,
    },
    /// A bound listener cannot tell its own address.
    #[error(transparent)]
    ListenerAddress(io::Error),
    /// Another live broker registered this replica's node id of its group with a nameserver
    /// (two brokers started with one `dLegerSelfId` or `brokerId`); `holder` is that
    /// nameserver's record of it.
    #[error(
        "node {} of group {group} is already registered with nameserver {nameserver} by the \
         broker at {} (replication {}, last heartbeat {} ms ago); this broker at {client_addr} \
         has the same dLegerSelfId or brokerId: give each broker its own, or stop the other one",
        .holder.node_id,
        .holder.broker_addr,
        .holder.ha_addr,
        .holder.last_heartbeat_age_ms
    )]
    NodeIdTaken {
        group: String,
        nameserver: String,
        client_addr: String,
        holder: Box<proto::v1::GroupMember>,
    },
    /// A nameserver kept refusing the running replica (another broker has its node id), so it
    /// stopped; `remark` is the nameserver's reason.
    #[error("nameserver {nameserver} refused this broker: {remark}")]
    NodeIdRefused { nameserver: String, remark: String },
    /// The store failed at start-up or at shutdown; `step` says what was being done.
    #[error("{step}")]
    Store {
        step: &'static str,
        #[source]
        source: raft_log::Error,
    },
    /// The state machine cannot be rebuilt from the store (`StateMachine::open`; its own type:
    /// openraft's storage errors carry it).
    #[error("cannot open the state machine")]
    State(#[from] StateError),
    /// openraft refused to start.
    #[error("cannot start Raft")]
    StartRaft(#[source] Box<openraft::error::Fatal<NodeId>>),

    /// The commitlog cannot be read.
    #[error(transparent)]
    Log(#[from] raft_log::Error),
    /// A message record read back from the commitlog does not decode.
    #[error("{error} at log position {position}")]
    BadRecord { position: u64, error: DecodeError },

    /// A group member's replication address is not a usable endpoint.
    #[error("bad address {addr:?} of node {node}: {error}")]
    PeerAddress {
        node: NodeId,
        addr: String,
        error: tonic::transport::Error,
    },
    /// A group member cannot be connected to.
    #[error("cannot connect to node {node} at {addr}: {error}")]
    PeerUnreachable {
        node: NodeId,
        addr: String,
        error: tonic::transport::Error,
    },
    /// A group member answered a call with a gRPC error.
    #[error("node {node} answered {code:?}: {message}")]
    PeerFailed {
        node: NodeId,
        code: tonic::Code,
        message: String,
    },
    /// A group member did not answer a call in time.
    #[error("no answer from node {node} within {within:?}")]
    PeerTimeout { node: NodeId, within: Duration },
    /// A group member declined a call: the response status it gave.
    #[error("node {node} declined: {code:?}: {remark}")]
    PeerDeclined {
        node: NodeId,
        code: proto::v1::ResponseCode,
        remark: String,
    },
    /// A group member answered a call without a response status.
    #[error("node {node} answered without a status")]
    PeerNoStatus { node: NodeId },

    /// A request refused where it enters the broker (`limits`, the services' checks).
    #[error(transparent)]
    Refused(#[from] Refusal),
    /// A log command that does not decode (its own type: the state machine refuses such
    /// commands alike on every replica).
    #[error(transparent)]
    Decode(#[from] DecodeError),
    /// A command that cannot be encoded (its own type: a field too long for the log).
    #[error(transparent)]
    Encode(#[from] EncodeError),
    /// Snapshot bytes that cannot be read (its own type: a cause of `StateError` too).
    #[error(transparent)]
    Snapshot(#[from] SnapshotDecodeError),
    /// A write the proposer could not get through Raft (its own type: it maps to response
    /// codes).
    #[error(transparent)]
    Propose(#[from] ProposeError),
    /// A `TimeoutNow` request that cannot be read (its own type: it maps to a gRPC status).
    #[error(transparent)]
    TimeoutNow(#[from] MalformedTimeoutNow),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_taken_node_id_names_both_brokers_on_one_line() {
        let err = Error::NodeIdTaken {
            group: "broker-a".into(),
            nameserver: "127.0.0.1:9876".into(),
            client_addr: "127.0.0.1:10921".into(),
            holder: Box::new(proto::v1::GroupMember {
                node_id: 1,
                broker_addr: "127.0.0.1:10911".into(),
                ha_addr: "127.0.0.1:10912".into(),
                last_heartbeat_age_ms: 700,
                ..Default::default()
            }),
        };
        assert_eq!(
            err.to_string(),
            "node 1 of group broker-a is already registered with nameserver 127.0.0.1:9876 by \
             the broker at 127.0.0.1:10911 (replication 127.0.0.1:10912, last heartbeat 700 ms \
             ago); this broker at 127.0.0.1:10921 has the same dLegerSelfId or brokerId: give \
             each broker its own, or stop the other one"
        );
    }

    #[test]
    fn crosses_threads() {
        fn send_sync<T: Send + Sync + 'static>() {}
        send_sync::<Error>();
    }

    #[test]
    fn a_start_up_step_keeps_its_cause_as_the_source() {
        let err = Error::Bind {
            addr: "127.0.0.1:10911".into(),
            what: "listenPort",
            source: io::Error::from(io::ErrorKind::AddrInUse),
        };
        assert_eq!(
            err.to_string(),
            "cannot listen on 127.0.0.1:10911 (listenPort)"
        );
        let cause = std::error::Error::source(&err).map(ToString::to_string);
        assert_eq!(
            cause,
            Some(io::Error::from(io::ErrorKind::AddrInUse).to_string())
        );
    }
}
