//! The client-facing gRPC `BrokerService`: parse a request, check it, then act through Raft
//! (writes) or the state machine (reads). One file per concern: [`send`], [`pull`],
//! [`admin`] (topics, offsets, status), [`consumers`] (group membership for rebalancing).

pub mod admin;
pub mod consumers;
pub mod proposer;
pub mod pull;
pub mod send;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use openraft::error::ClientWriteError;
use openraft::ServerState;
use proto::v1::broker_service_server::BrokerService as BrokerServiceApi;
use proto::v1::{self as pb, LeaderHint, ResponseCode, ResponseStatus};
use raft_log::LogStore;
use tokio::sync::watch;
use tonic::{Request, Response, Status, Streaming};

use crate::command::{EncodeError, LogCommand};
use crate::config::BrokerConfig;
use crate::raft::typ::{Node, NodeId, Raft};
use crate::state::BrokerState;
use proposer::{AckOn, ProposeError, Proposed};

/// Everything a request handler may need; cheap to clone.
#[derive(Clone)]
pub struct BrokerContext {
    pub config: Arc<BrokerConfig>,
    /// This replica's Raft node id.
    pub node_id: NodeId,
    /// This replica's client address (`brokerIP1:listenPort`), as message ids carry it.
    pub client_addr: SocketAddr,
    /// This replica's replication address (its `dLegerPeers` entry).
    pub raft_addr: SocketAddr,
    pub raft: Raft,
    /// Where every write is proposed: sends coalesced into as few entries as the load allows.
    pub proposer: Arc<proposer::Proposer>,
    /// What a send waits for before it is answered (from `brokerRole`).
    pub ack_on: AckOn,
    /// Whether this replica may vote (`brokerStatus` shows a replica still catching up).
    pub gate: raftmq_raft::rejoin::VoteGate,
    /// A classic group's leader: which slaves are in sync (`SLAVE_NOT_AVAILABLE`, brokerStatus).
    pub in_sync: watch::Receiver<crate::raft::in_sync::InSyncState>,
    pub state: BrokerState,
    pub log: LogStore,
    pub consumers: Arc<consumers::ConsumerGroups>,
    pub queue_cursor: Arc<send::QueueCursor>,
    pub counters: Arc<Counters>,
    /// What Raft cut from this replica's log tail (a deposed leader's uncommitted entries).
    pub dropped: Arc<crate::raft::dropped::DroppedTail>,
    pub booted: Instant,
    pub boot_timestamp_ms: i64,
}

/// The leader's clock as the log records it (store and commit times): ms since the epoch.
pub(crate) fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Running totals for `brokerStatus`.
#[derive(Default)]
pub struct Counters {
    pub put: std::sync::atomic::AtomicU64,
    pub got: std::sync::atomic::AtomicU64,
}

/// Why a write through Raft did not produce a result.
pub(crate) enum WriteFailure {
    /// Not the leader (or leadership lost mid-way): the caller gets NOT_LEADER.
    NotLeader(LeaderHint),
    /// Raft is shutting down, or another failure: SERVICE_NOT_AVAILABLE.
    Unavailable(String),
    /// The proposer's queue is full: SERVICE_NOT_AVAILABLE, retry later.
    Busy,
    /// No answer within `syncFlushTimeout`; `proposed`: the command reached the leader's log
    /// and may still be committed.
    TimedOut { proposed: bool, after: Duration },
}

impl WriteFailure {
    /// The status of a failed write other than a send.
    pub(crate) fn status(self) -> ResponseStatus {
        match self {
            WriteFailure::NotLeader(hint) => ResponseStatus::not_leader(
                hint,
                "this replica is not the group's leader; retry on the leader",
            ),
            WriteFailure::Unavailable(why) => {
                ResponseStatus::new(ResponseCode::ServiceNotAvailable, why)
            }
            WriteFailure::Busy => ResponseStatus::new(
                ResponseCode::ServiceNotAvailable,
                format!(
                    "the broker is busy: {} MiB of writes already wait for the group's log; \
                     retry later",
                    proposer::MAX_QUEUED_BYTES >> 20
                ),
            ),
            WriteFailure::TimedOut { proposed, after } => ResponseStatus::new(
                ResponseCode::ServiceNotAvailable,
                timed_out_remark(proposed, after),
            ),
        }
    }

    /// The status of a failed send under `ack` (what the send waited for). A send whose entry
    /// reached the leader's log but was not confirmed in time is FLUSH_SLAVE_TIMEOUT (waiting
    /// for the quorum) or FLUSH_DISK_TIMEOUT (waiting for the leader's own fsync), without
    /// per-message results: its queue offsets are decided when it is applied, if it ever is.
    /// A producer retries it with the same `UNIQ_KEY`, which stores it once.
    pub(crate) fn send_status(self, ack: AckOn) -> ResponseStatus {
        match self {
            WriteFailure::TimedOut {
                proposed: true,
                after,
            } => {
                let code = match ack {
                    AckOn::Commit => ResponseCode::FlushSlaveTimeout,
                    AckOn::Append => ResponseCode::FlushDiskTimeout,
                };
                ResponseStatus::new(code, timed_out_remark(true, after))
            }
            other => other.status(),
        }
    }
}

fn timed_out_remark(proposed: bool, after: Duration) -> String {
    if proposed {
        format!(
            "the write is in the leader's log but was not confirmed within syncFlushTimeout \
             ({} ms): the group may have lost its quorum. It may still be stored; retry with \
             the same UNIQ_KEY, which stores a message once",
            after.as_millis()
        )
    } else {
        format!(
            "the write did not reach the group's log within syncFlushTimeout ({} ms): the \
             broker is overloaded or has lost its quorum; it was not stored, retry later",
            after.as_millis()
        )
    }
}

impl BrokerContext {
    /// Whether this replica currently leads its group.
    pub fn is_leader(&self) -> bool {
        let metrics = self.raft.metrics();
        let m = metrics.borrow();
        m.state == ServerState::Leader && m.current_leader == Some(self.node_id)
    }

    /// Where the leader is, as far as this replica knows.
    pub fn leader_hint(&self) -> LeaderHint {
        let metrics = self.raft.metrics();
        let (leader, term) = {
            let m = metrics.borrow();
            (m.current_leader, m.current_term)
        };
        LeaderHint {
            broker_name: self.config.broker_name.clone(),
            leader_node_id: leader,
            leader_addr: leader
                .and_then(|id| self.state.node_client_addr(id))
                .unwrap_or_default(),
            term,
        }
    }

    /// Proposes a command through the proposer (a send is coalesced with concurrent sends)
    /// and waits until it is acknowledged, or `syncFlushTimeout` has passed.
    pub(crate) async fn write(&self, cmd: LogCommand) -> Result<Proposed, WriteFailure> {
        let timeout = self.config.sync_flush_timeout;
        let deadline = tokio::time::Instant::now() + timeout;
        self.proposer
            .propose(cmd, deadline)
            .await
            .map_err(|e| match e {
                ProposeError::Write(e) => self.write_failure(e),
                ProposeError::Stopped(why) | ProposeError::Internal(why) => {
                    WriteFailure::Unavailable(why)
                }
                ProposeError::Busy => WriteFailure::Busy,
                ProposeError::TimedOut { proposed } => WriteFailure::TimedOut {
                    proposed,
                    after: timeout,
                },
            })
    }

    /// Encodes a command with [`write`](Self::write); an encoding failure (a field longer
    /// than the log can hold, which the checks at the edge should have refused) is
    /// ILLEGAL_ARGUMENT.
    pub(crate) async fn write_encoded(
        &self,
        cmd: Result<LogCommand, EncodeError>,
    ) -> Result<Proposed, ResponseStatus> {
        let cmd =
            cmd.map_err(|e| ResponseStatus::new(ResponseCode::IllegalArgument, e.to_string()))?;
        self.write(cmd).await.map_err(WriteFailure::status)
    }

    fn write_failure(&self, e: ClientWriteError<NodeId, Node>) -> WriteFailure {
        match e {
            ClientWriteError::ForwardToLeader(fwd) => {
                let mut hint = self.leader_hint();
                if fwd.leader_id.is_some() {
                    hint.leader_node_id = fwd.leader_id;
                    hint.leader_addr = fwd
                        .leader_id
                        .and_then(|id| self.state.node_client_addr(id))
                        .unwrap_or_default();
                }
                WriteFailure::NotLeader(hint)
            }
            ClientWriteError::ChangeMembershipError(e) => WriteFailure::Unavailable(e.to_string()),
        }
    }

    /// NOT_LEADER unless this replica leads, for requests only the leader may serve.
    pub(crate) fn require_leader(&self) -> Result<(), ResponseStatus> {
        if self.is_leader() {
            Ok(())
        } else {
            Err(WriteFailure::NotLeader(self.leader_hint()).status())
        }
    }
}

/// The tonic service: a thin shell that hands each request to its module.
#[derive(Clone)]
pub struct BrokerGrpc {
    ctx: BrokerContext,
    /// Turns true when the replica shuts down: ends send streams, which would otherwise hold
    /// a graceful server shutdown open.
    stopped: watch::Receiver<bool>,
}

impl BrokerGrpc {
    pub fn new(ctx: BrokerContext, stopped: watch::Receiver<bool>) -> Self {
        Self { ctx, stopped }
    }

    pub fn into_server(self) -> pb::broker_service_server::BrokerServiceServer<Self> {
        pb::broker_service_server::BrokerServiceServer::new(self)
            .max_decoding_message_size(64 << 20)
            .max_encoding_message_size(64 << 20)
    }
}

#[tonic::async_trait]
impl BrokerServiceApi for BrokerGrpc {
    async fn send_message(
        &self,
        request: Request<pb::SendMessageRequest>,
    ) -> Result<Response<pb::SendMessageResponse>, Status> {
        Ok(Response::new(
            send::handle(&self.ctx, request.into_inner()).await,
        ))
    }

    type SendMessageStreamStream = send::SendReplies;

    async fn send_message_stream(
        &self,
        request: Request<Streaming<pb::SendStreamRequest>>,
    ) -> Result<Response<send::SendReplies>, Status> {
        Ok(Response::new(send::stream(
            self.ctx.clone(),
            request.into_inner(),
            self.stopped.clone(),
        )))
    }

    async fn pull_message(
        &self,
        request: Request<pb::PullMessageRequest>,
    ) -> Result<Response<pb::PullMessageResponse>, Status> {
        Ok(Response::new(
            pull::handle(&self.ctx, request.into_inner()).await,
        ))
    }

    async fn commit_consumer_offset(
        &self,
        request: Request<pb::CommitConsumerOffsetRequest>,
    ) -> Result<Response<pb::CommitConsumerOffsetResponse>, Status> {
        Ok(Response::new(
            admin::commit_offset(&self.ctx, request.into_inner()).await,
        ))
    }

    async fn query_consumer_offset(
        &self,
        request: Request<pb::QueryConsumerOffsetRequest>,
    ) -> Result<Response<pb::QueryConsumerOffsetResponse>, Status> {
        Ok(Response::new(admin::query_offset(
            &self.ctx,
            request.into_inner(),
        )))
    }

    async fn get_queue_offsets(
        &self,
        request: Request<pb::GetQueueOffsetsRequest>,
    ) -> Result<Response<pb::GetQueueOffsetsResponse>, Status> {
        Ok(Response::new(admin::queue_offsets(
            &self.ctx,
            request.into_inner(),
        )))
    }

    async fn get_consume_stats(
        &self,
        request: Request<pb::GetConsumeStatsRequest>,
    ) -> Result<Response<pb::GetConsumeStatsResponse>, Status> {
        Ok(Response::new(admin::consume_stats(
            &self.ctx,
            request.into_inner(),
        )))
    }

    async fn query_message_by_id(
        &self,
        request: Request<pb::QueryMessageByIdRequest>,
    ) -> Result<Response<pb::QueryMessageByIdResponse>, Status> {
        Ok(Response::new(pull::by_id(&self.ctx, request.into_inner())))
    }

    async fn broker_status(
        &self,
        _request: Request<pb::BrokerStatusRequest>,
    ) -> Result<Response<pb::BrokerStatusResponse>, Status> {
        Ok(Response::new(admin::status(&self.ctx).await))
    }

    async fn create_or_update_topic(
        &self,
        request: Request<pb::CreateOrUpdateTopicRequest>,
    ) -> Result<Response<pb::CreateOrUpdateTopicResponse>, Status> {
        Ok(Response::new(
            admin::upsert_topic(&self.ctx, request.into_inner()).await,
        ))
    }

    async fn delete_topic(
        &self,
        request: Request<pb::DeleteTopicRequest>,
    ) -> Result<Response<pb::DeleteTopicResponse>, Status> {
        Ok(Response::new(
            admin::delete_topic(&self.ctx, request.into_inner()).await,
        ))
    }

    async fn list_topics(
        &self,
        _request: Request<pb::ListTopicsRequest>,
    ) -> Result<Response<pb::ListTopicsResponse>, Status> {
        Ok(Response::new(admin::list_topics(&self.ctx)))
    }

    async fn heartbeat_consumer(
        &self,
        request: Request<pb::HeartbeatConsumerRequest>,
    ) -> Result<Response<pb::HeartbeatConsumerResponse>, Status> {
        Ok(Response::new(
            self.ctx
                .consumers
                .heartbeat(request.into_inner(), Instant::now()),
        ))
    }

    async fn unregister_consumer(
        &self,
        request: Request<pb::UnregisterConsumerRequest>,
    ) -> Result<Response<pb::UnregisterConsumerResponse>, Status> {
        Ok(Response::new(
            self.ctx.consumers.unregister(request.into_inner()),
        ))
    }

    async fn list_consumer_group_members(
        &self,
        request: Request<pb::ListConsumerGroupMembersRequest>,
    ) -> Result<Response<pb::ListConsumerGroupMembersResponse>, Status> {
        Ok(Response::new(
            self.ctx
                .consumers
                .members(request.into_inner(), Instant::now()),
        ))
    }
}
