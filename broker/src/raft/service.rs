//! The server side of Raft between the replicas of a group, mounted on the replication port:
//! `raftmq.v1.RaftService` (openraft's RPCs, and `TimeoutNow`, which starts a handback campaign,
//! see [`crate::raft::handback`]) and `raftmq.v1.LeaderWatchService` (the stream followers watch
//! to notice a dead leader at once, see [`crate::raft::failover`]).
//!
//! Every request names its group and target node; a replica that is not that node of that
//! group answers NOT_FOUND (a restarted process may have taken over a stale address). A
//! replica whose Raft has stopped answers UNAVAILABLE. Both reach openraft as "unreachable".
//! Malformed requests answer INVALID_ARGUMENT. Raft-level refusals travel in the reply.

use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures::Stream;
use openraft::error::{Fatal, RaftError};
use openraft::ServerState;
use proto::v1 as pb;
use proto::v1::leader_watch_service_server::{LeaderWatchService, LeaderWatchServiceServer};
use proto::{RaftService, RaftServiceServer};
use tokio::sync::watch;
use tonic::{Request, Response, Status, Streaming};
use tracing::{debug, info};

use crate::raft::convert;
use crate::raft::failover::{spawn_handback_campaign, Campaign, VoteRefusals};
use crate::raft::handback::{check_handback, Handback};
use crate::raft::network::{CONNECTION_WINDOW_BYTES, MAX_RAFT_MESSAGE_BYTES, STREAM_WINDOW_BYTES};
use crate::raft::rejoin::VoteGate;
use crate::raft::typ::{LogId, NodeId, Raft, RaftMetrics};

/// The reply stream of `AppendEntriesStream`.
pub type AppendReplies =
    Pin<Box<dyn Stream<Item = Result<pb::AppendEntriesResponse, Status>> + Send + 'static>>;

/// How often a leader pings each follower watching it. A follower that misses several pings
/// probes the leader; a dead leader is normally noticed much sooner, by the broken stream.
pub const LEADER_PING_INTERVAL: Duration = Duration::from_millis(100);

/// A `tonic` server builder tuned for the replication port: no Nagle delay and HTTP/2 windows
/// large enough for big appends (see [`STREAM_WINDOW_BYTES`]).
pub fn replication_server_builder() -> tonic::transport::Server {
    tonic::transport::Server::builder()
        .tcp_nodelay(true)
        .initial_stream_window_size(STREAM_WINDOW_BYTES)
        .initial_connection_window_size(CONNECTION_WINDOW_BYTES)
}

/// One replica's Raft RPC endpoint: hands requests addressed to it to its [`Raft`].
#[derive(Clone)]
pub struct RaftGrpcService {
    raft: Raft,
    /// brokerName this replica belongs to.
    group: Arc<str>,
    /// This replica's Raft node id.
    self_id: NodeId,
    /// Turns true when the node shuts down: ends WatchLeader streams, which would otherwise
    /// hold a graceful server shutdown open for as long as this node leads, and handback
    /// campaigns.
    shutdown: Option<watch::Receiver<bool>>,
    /// Candidates this replica refused although their log is ahead of its own: a handback
    /// campaign yields to them (the detector's copy, fed by outgoing vote requests, lives in the
    /// network layer, out of reach here).
    longer_logs: VoteRefusals,
    /// The failover detector's refusals, told when this replica refuses a candidate whose log
    /// is behind its own (see [`VoteRefusals::refused_shorter_log`]).
    detector: Option<VoteRefusals>,
    /// A handback campaign runs: a second `TimeoutNow` must not start another.
    handback_running: Arc<AtomicBool>,
    /// Whether this replica may vote (one that lost its store may not until it caught up).
    gate: VoteGate,
    /// The replica's log, for the last log id that answers about its store carry.
    log: Option<raft_log::LogStore>,
}

/// Clears [`RaftGrpcService::handback_running`] when a handback campaign ends, however it ends.
struct HandbackRunning(Arc<AtomicBool>);

impl Drop for HandbackRunning {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}

impl RaftGrpcService {
    /// The endpoint of replica `self_id` of `group` (brokerName).
    pub fn new(raft: Raft, group: impl Into<String>, self_id: NodeId) -> Self {
        RaftGrpcService {
            raft,
            group: Arc::from(group.into()),
            self_id,
            shutdown: None,
            longer_logs: VoteRefusals::default(),
            detector: None,
            handback_running: Arc::default(),
            gate: VoteGate::member(),
            log: None,
        }
    }

    /// Answers `ReplicaState` and refused votes with `log`'s last log id.
    pub fn with_log(mut self, log: raft_log::LogStore) -> Self {
        self.log = Some(log);
        self
    }

    /// This replica's vote and last log id, as Raft holds them.
    async fn vote_and_last_log(&self) -> Result<(openraft::Vote<NodeId>, Option<LogId>), Status> {
        let vote = self
            .raft
            .with_raft_state(|st| *st.vote_ref())
            .await
            .map_err(|fatal| self.stopped(&fatal))?;
        let last = self
            .log
            .as_ref()
            .and_then(|l| l.last_log_id())
            .map(|l| LogId::new(openraft::CommittedLeaderId::new(l.term, 0), l.index));
        Ok((vote, last))
    }

    /// Grants votes only as `gate` allows (see [`crate::raft::rejoin`]).
    pub fn with_vote_gate(mut self, gate: VoteGate) -> Self {
        self.gate = gate;
        self
    }

    /// Lets the failover detector's campaign (holding `refusals`) try again at once when this
    /// replica refuses a candidate whose log is behind its own.
    pub fn with_detector_refusals(mut self, refusals: VoteRefusals) -> Self {
        self.detector = Some(refusals);
        self
    }

    /// Ends every WatchLeader stream (UNAVAILABLE) once `shutdown` turns true (or its sender
    /// is dropped), so a graceful server shutdown does not wait for them; the followers then
    /// start their election at once.
    pub fn with_shutdown(mut self, shutdown: watch::Receiver<bool>) -> Self {
        self.shutdown = Some(shutdown);
        self
    }

    /// The `RaftService` server, with message limits that fit the largest append.
    pub fn into_server(self) -> RaftServiceServer<RaftGrpcService> {
        RaftServiceServer::new(self)
            .max_decoding_message_size(MAX_RAFT_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_RAFT_MESSAGE_BYTES)
    }

    /// The `LeaderWatchService` server; mount it next to [`RaftGrpcService::into_server`].
    pub fn leader_watch_server(&self) -> LeaderWatchServiceServer<RaftGrpcService> {
        LeaderWatchServiceServer::new(self.clone())
    }

    /// Refuses a request meant for another node or another group.
    fn check_target(&self, group: &str, target: NodeId) -> Result<(), Status> {
        if group == &*self.group && target == self.self_id {
            return Ok(());
        }
        Err(Status::not_found(format!(
            "this is Raft node {} of group {:?}, not node {target} of group {group:?}",
            self.self_id, self.group
        )))
    }

    fn stopped(&self, fatal: &Fatal<NodeId>) -> Status {
        Status::unavailable(format!(
            "Raft of node {} in group {:?} is not running: {fatal}",
            self.self_id, self.group
        ))
    }

    /// Hands one append (or heartbeat) to Raft: the unary and the streaming RPC share it.
    async fn append_one(
        &self,
        req: pb::AppendEntriesRequest,
    ) -> Result<pb::AppendEntriesResponse, Status> {
        self.check_target(&req.group, req.target_node_id)?;
        let req = convert::append_request_from_pb(&req)?;
        let resp = self
            .raft
            .append_entries(req)
            .await
            .map_err(|e| self.raft_error(e, |never| match never {}))?;
        Ok(convert::append_response_to_pb(&resp))
    }

    /// Maps openraft's error for an RPC: a Raft-level refusal goes to `api`, a stopped Raft
    /// is UNAVAILABLE.
    fn raft_error<E>(&self, e: RaftError<NodeId, E>, api: impl FnOnce(E) -> Status) -> Status {
        match e {
            RaftError::APIError(e) => api(e),
            RaftError::Fatal(fatal) => self.stopped(&fatal),
        }
    }
}

#[tonic::async_trait]
impl RaftService for RaftGrpcService {
    async fn append_entries(
        &self,
        request: Request<pb::AppendEntriesRequest>,
    ) -> Result<Response<pb::AppendEntriesResponse>, Status> {
        self.append_one(request.into_inner())
            .await
            .map(Response::new)
    }

    type AppendEntriesStreamStream = AppendReplies;

    async fn append_entries_stream(
        &self,
        request: Request<Streaming<pb::AppendEntriesRequest>>,
    ) -> Result<Response<AppendReplies>, Status> {
        let incoming = request.into_inner();
        let shutdown = self.shutdown.clone();
        // Requests are handled one at a time inside the reply stream: no task, no channel.
        let replies = futures::stream::unfold(
            Some((self.clone(), incoming, shutdown)),
            |state| async move {
                let (this, mut incoming, mut shutdown) = state?;
                let next = match shutdown.as_mut() {
                    Some(stop) => tokio::select! {
                        next = incoming.message() => next,
                        _ = stop.wait_for(|&stopped| stopped) => {
                            let status = Status::unavailable("replica shutting down");
                            return Some((Err(status), None));
                        }
                    },
                    None => incoming.message().await,
                };
                match next {
                    Ok(Some(req)) => match this.append_one(req).await {
                        Ok(reply) => Some((Ok(reply), Some((this, incoming, shutdown)))),
                        Err(status) => Some((Err(status), None)),
                    },
                    // The sender closed the stream or its connection broke.
                    Ok(None) | Err(_) => None,
                }
            },
        );
        Ok(Response::new(Box::pin(replies)))
    }

    async fn vote(
        &self,
        request: Request<pb::VoteRequest>,
    ) -> Result<Response<pb::VoteResponse>, Status> {
        let req = request.into_inner();
        self.check_target(&req.group, req.target_node_id)?;
        let req = convert::vote_request_from_pb(&req)?;
        let (candidate, term, candidate_log) = (
            req.vote.leader_id.voted_for,
            req.vote.leader_id.term,
            req.last_log_id,
        );
        if !self.gate.may_grant(candidate_log.as_ref()) {
            // A replica that lost its store: refused without consulting Raft, so neither its
            // vote nor its term moves.
            let (vote, last_log_id) = self.vote_and_last_log().await?;
            debug!(group = %self.group, ?candidate, term, standing = ?self.gate.standing(),
                "refused a vote: this replica has not caught up since it lost its store");
            let resp = openraft::raft::VoteResponse {
                vote,
                vote_granted: false,
                last_log_id,
            };
            return Ok(Response::new(convert::vote_response_to_pb(&resp)));
        }
        let resp = self
            .raft
            .vote(req)
            .await
            .map_err(|e| self.raft_error(e, |never| match never {}))?;
        // `resp.last_log_id` is this replica's own last log id.
        if let Some(candidate) = candidate.filter(|_| !resp.vote_granted) {
            if candidate_log > resp.last_log_id {
                self.longer_logs.refused_longer_log(candidate, term);
            } else if candidate_log < resp.last_log_id {
                if let Some(detector) = &self.detector {
                    detector.refused_shorter_log();
                }
            }
        }
        Ok(Response::new(convert::vote_response_to_pb(&resp)))
    }

    async fn install_snapshot(
        &self,
        request: Request<pb::InstallSnapshotRequest>,
    ) -> Result<Response<pb::InstallSnapshotResponse>, Status> {
        let req = request.into_inner();
        self.check_target(&req.group, req.target_node_id)?;
        let req = convert::snapshot_request_from_pb(&req)?;
        let outcome = match self.raft.install_snapshot(req).await {
            Ok(resp) => Ok(resp),
            Err(RaftError::APIError(openraft::error::InstallSnapshotError::SnapshotMismatch(
                m,
            ))) => Err(m),
            Err(RaftError::Fatal(fatal)) => return Err(self.stopped(&fatal)),
        };
        Ok(Response::new(convert::snapshot_response_to_pb(&outcome)))
    }

    async fn join_group(
        &self,
        _request: Request<pb::JoinGroupRequest>,
    ) -> Result<Response<pb::JoinGroupResponse>, Status> {
        Err(Status::unimplemented(
            "JoinGroup: classic layouts (brokerRole without dLegerPeers) are not supported yet",
        ))
    }

    async fn replica_state(
        &self,
        request: Request<pb::ReplicaStateRequest>,
    ) -> Result<Response<pb::ReplicaStateResponse>, Status> {
        let req = request.into_inner();
        self.check_target(&req.group, req.target_node_id)?;
        let (vote, last_log_id) = self.vote_and_last_log().await?;
        debug!(group = %self.group, asker = req.asker_node_id, "asked what this store holds");
        Ok(Response::new(pb::ReplicaStateResponse {
            initialized: vote.leader_id.term > 0 || last_log_id.is_some(),
            term: vote.leader_id.term,
            last_log_id: last_log_id.map(|l| pb::LogId {
                term: l.leader_id.term,
                node_id: 0,
                index: l.index,
            }),
            catching_up: !self.gate.may_vote(),
        }))
    }

    async fn timeout_now(
        &self,
        request: Request<pb::TimeoutNowRequest>,
    ) -> Result<Response<pb::TimeoutNowResponse>, Status> {
        let req = request.into_inner();
        self.check_target(&req.group, req.target_node_id)?;
        let handback = Handback::from_pb(&req)?;
        let declined = |remark: String| {
            debug!(group = %self.group, leader = handback.leader.id, %remark, "declined a handback");
            Ok(Response::new(pb::TimeoutNowResponse {
                status: Some(pb::ResponseStatus::new(
                    pb::ResponseCode::IllegalArgument,
                    remark,
                )),
            }))
        };
        if !self.gate.may_vote() {
            return declined(format!(
                "node {} has not caught up since it lost its store",
                self.self_id
            ));
        }
        {
            let metrics = self.raft.metrics();
            let m = metrics.borrow();
            if let Err(fatal) = &m.running_state {
                return Err(self.stopped(fatal));
            }
            if let Some(why) = check_handback(&m, self.self_id, &handback) {
                return declined(why);
            }
        }
        if self
            .handback_running
            .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
            .is_err()
        {
            return declined(format!(
                "node {} is already campaigning for a handback",
                self.self_id
            ));
        }
        let running = HandbackRunning(self.handback_running.clone());
        // Only candidates of this campaign count: one seen ahead in an earlier term must not
        // keep this replica from standing now.
        self.longer_logs.clear();
        info!(group = %self.group, leader = handback.leader.id, term = handback.leader.term,
            preferred = handback.preferred, "the leader hands leadership back; campaigning");
        let campaign = Campaign::new(
            self.raft.clone(),
            self.self_id,
            self.group.clone(),
            Some(handback.preferred),
            self.longer_logs.clone(),
        )
        .with_vote_gate(self.gate.clone());
        let task = spawn_handback_campaign(campaign, handback.leader, self.shutdown.clone());
        tokio::spawn(async move {
            let _ = task.await;
            drop(running);
        });
        Ok(Response::new(pb::TimeoutNowResponse {
            status: Some(pb::ResponseStatus::ok()),
        }))
    }
}

/// Why this node cannot (or can no longer) answer a WatchLeader stream; `None` while it leads
/// in `term` (or in any term, when `term` is `None`).
fn not_leading(metrics: &RaftMetrics, self_id: NodeId, term: Option<u64>) -> Option<Status> {
    if let Err(fatal) = &metrics.running_state {
        return Some(Status::unavailable(format!("Raft is not running: {fatal}")));
    }
    if metrics.state == ServerState::Shutdown {
        return Some(Status::unavailable("Raft is shutting down"));
    }
    let leading = metrics.state == ServerState::Leader && metrics.current_leader == Some(self_id);
    if !leading || term.is_some_and(|t| t != metrics.current_term) {
        return Some(Status::failed_precondition(format!(
            "node {self_id} does not lead (term {}, leader {:?})",
            metrics.current_term, metrics.current_leader
        )));
    }
    None
}

/// Where a WatchLeader stream is.
struct PingState {
    metrics: watch::Receiver<RaftMetrics>,
    ticks: tokio::time::Interval,
    self_id: NodeId,
    term: u64,
    /// See [`RaftGrpcService::with_shutdown`].
    shutdown: Option<watch::Receiver<bool>>,
    /// The stream has sent its last item.
    finished: bool,
}

/// Resolves once the node shuts down; never without a shutdown signal.
async fn shutting_down(shutdown: &mut Option<watch::Receiver<bool>>) {
    match shutdown {
        Some(rx) => {
            let _ = rx.wait_for(|stop| *stop).await;
        }
        None => std::future::pending().await,
    }
}

/// Pings while this node leads in `term`; ends with the status that says why it stopped.
fn leader_pings(
    metrics: watch::Receiver<RaftMetrics>,
    self_id: NodeId,
    term: u64,
    shutdown: Option<watch::Receiver<bool>>,
) -> impl Stream<Item = Result<pb::LeaderPing, Status>> + Send + 'static {
    let mut ticks = tokio::time::interval(LEADER_PING_INTERVAL);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let state = PingState {
        metrics,
        ticks,
        self_id,
        term,
        shutdown,
        finished: false,
    };
    futures::stream::unfold(state, |mut st| async move {
        if st.finished {
            return None;
        }
        loop {
            tokio::select! {
                // Shutting down or a change of leadership wins over a due ping.
                biased;
                _ = shutting_down(&mut st.shutdown) => {
                    st.finished = true;
                    return Some((Err(Status::unavailable("the node is shutting down")), st));
                }
                changed = st.metrics.changed() => {
                    let status = match changed {
                        Err(_) => Some(Status::unavailable("Raft has stopped")),
                        Ok(()) => not_leading(&st.metrics.borrow_and_update(), st.self_id, Some(st.term)),
                    };
                    if let Some(status) = status {
                        st.finished = true;
                        return Some((Err(status), st));
                    }
                }
                _ = st.ticks.tick() => {
                    let ping = pb::LeaderPing {
                        term: st.term,
                        leader_node_id: st.self_id,
                        interval_ms: LEADER_PING_INTERVAL.as_millis() as u32,
                    };
                    return Some((Ok(ping), st));
                }
            }
        }
    })
}

#[tonic::async_trait]
impl LeaderWatchService for RaftGrpcService {
    type WatchLeaderStream =
        Pin<Box<dyn Stream<Item = Result<pb::LeaderPing, Status>> + Send + 'static>>;

    async fn watch_leader(
        &self,
        request: Request<pb::WatchLeaderRequest>,
    ) -> Result<Response<Self::WatchLeaderStream>, Status> {
        let req = request.into_inner();
        self.check_target(&req.group, req.target_node_id)?;
        if self.shutdown.as_ref().is_some_and(|rx| *rx.borrow()) {
            return Err(Status::unavailable("the node is shutting down"));
        }
        let mut metrics = self.raft.metrics();
        let term = {
            let m = metrics.borrow_and_update();
            if let Some(status) = not_leading(&m, self.self_id, None) {
                debug!(group = %self.group, follower = req.follower_node_id, %status, "refused a leader watch");
                return Err(status);
            }
            m.current_term
        };
        info!(group = %self.group, follower = req.follower_node_id, term, "follower watches this leader");
        let pings = leader_pings(metrics, self.self_id, term, self.shutdown.clone());
        Ok(Response::new(Box::pin(pings)))
    }
}
