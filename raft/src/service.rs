//! The server side of Raft between the members of a group, mounted on a replication port:
//! `raftmq.v1.RaftService` (openraft's RPCs, the broker's `TimeoutNow`, `JoinGroup` and
//! `ReplicaState`) and `raftmq.v1.LeaderWatchService` (the stream followers watch to notice a
//! dead leader at once).
//!
//! One service serves every member its process hosts: a broker has one (its replica), a
//! nameserver one per group it hosts a witness for. A [`MemberDirectory`] finds the member a
//! request names (group and target node); a request for anyone else answers NOT_FOUND (a
//! restarted process may have taken over a stale address). A member whose Raft has stopped
//! answers UNAVAILABLE. Both reach openraft as "unreachable". Malformed requests answer
//! INVALID_ARGUMENT. Raft-level refusals travel in the reply. What only a broker does
//! (handback campaigns, watching what its votes say) comes in through [`MemberHooks`].

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures::Stream;
use openraft::error::{Fatal, RaftError};
use openraft::raft::VoteResponse;
use openraft::ServerState;
use proto::v1 as pb;
use proto::v1::leader_watch_service_server::{LeaderWatchService, LeaderWatchServiceServer};
use proto::{RaftService, RaftServiceServer};
use tokio::sync::watch;
use tonic::{Request, Response, Status, Streaming};
use tracing::{debug, info};

use crate::convert;
use crate::network::{CONNECTION_WINDOW_BYTES, MAX_RAFT_MESSAGE_BYTES, STREAM_WINDOW_BYTES};
use crate::rejoin::VoteGate;
use crate::typ::{GroupTypes, LogId, NodeId, Raft, RaftMetrics};

/// The reply stream of `AppendEntriesStream`.
pub type AppendReplies =
    Pin<Box<dyn Stream<Item = Result<pb::AppendEntriesResponse, Status>> + Send + 'static>>;

/// How often a leader pings each follower watching it. A follower that misses several pings
/// probes the leader; a dead leader is normally noticed much sooner, by the broken stream.
pub const LEADER_PING_INTERVAL: Duration = Duration::from_millis(100);

/// A `tonic` server builder tuned for a replication port: no Nagle delay and HTTP/2 windows
/// large enough for big appends (see [`STREAM_WINDOW_BYTES`]).
pub fn replication_server_builder() -> tonic::transport::Server {
    tonic::transport::Server::builder()
        .tcp_nodelay(true)
        .initial_stream_window_size(STREAM_WINDOW_BYTES)
        .initial_connection_window_size(CONNECTION_WINDOW_BYTES)
}

/// One group member a replication port serves.
pub struct Member<C: GroupTypes> {
    /// Its brokerName.
    pub group: String,
    pub node_id: NodeId,
    pub raft: Raft<C>,
    /// Whether it may vote (one that lost its store may not until it caught up).
    pub gate: VoteGate,
    /// Its log, for the last log id that refused votes and `ReplicaState` answers carry.
    pub log: raft_log::LogStore,
    /// What its host adds to the plain Raft RPCs.
    pub hooks: Arc<dyn MemberHooks>,
}

/// What a member's host adds to the plain Raft RPCs. The defaults: nothing, and
/// UNIMPLEMENTED for `TimeoutNow` and `JoinGroup`.
#[tonic::async_trait]
pub trait MemberHooks: Send + Sync + 'static {
    /// The member answered the vote request of `candidate` in `term`, whose log ends at
    /// `candidate_log`, with `resp` (its own last log id inside).
    fn voted(
        &self,
        _candidate: NodeId,
        _term: u64,
        _candidate_log: Option<LogId>,
        _resp: &VoteResponse<NodeId>,
    ) {
    }

    /// The leader asks this member to campaign (a handback to the preferred leader).
    async fn timeout_now(
        &self,
        _req: pb::TimeoutNowRequest,
    ) -> Result<pb::TimeoutNowResponse, Status> {
        Err(Status::unimplemented("this member takes no TimeoutNow"))
    }

    /// A new member asks to join the group (classic layouts).
    async fn join_group(
        &self,
        _req: pb::JoinGroupRequest,
    ) -> Result<pb::JoinGroupResponse, Status> {
        Err(Status::unimplemented("this member takes no JoinGroup"))
    }
}

/// Hooks that add nothing.
pub struct NoHooks;

impl MemberHooks for NoHooks {}

/// Finds the member a request names.
#[tonic::async_trait]
pub trait MemberDirectory<C: GroupTypes>: Send + Sync + 'static {
    /// The member `target` of `group`. `appending`: the request replicates entries to it, which
    /// a host that creates members on first contact (a nameserver's witnesses) may take as
    /// the cue to create it. NOT_FOUND when there is no such member here.
    async fn member(
        &self,
        group: &str,
        target: NodeId,
        appending: bool,
    ) -> Result<Arc<Member<C>>, Status>;

    /// `ForgetWitnessTail` (see the proto): only a host of witnesses does it.
    async fn forget_witness_tail(
        &self,
        _req: pb::ForgetWitnessTailRequest,
    ) -> Result<pb::ForgetWitnessTailResponse, Status> {
        Err(Status::unimplemented(
            "only a nameserver hosting the group's witness forgets its tail",
        ))
    }
}

/// A directory of one member: a broker's replica.
#[tonic::async_trait]
impl<C: GroupTypes> MemberDirectory<C> for Arc<Member<C>> {
    async fn member(
        &self,
        group: &str,
        target: NodeId,
        _appending: bool,
    ) -> Result<Arc<Member<C>>, Status> {
        if group == self.group && target == self.node_id {
            return Ok(self.clone());
        }
        Err(not_found(
            group,
            target,
            &format!("node {} of group {:?}", self.node_id, self.group),
        ))
    }
}

/// The NOT_FOUND answer for a request meant for another member than `here` serves.
pub fn not_found(group: &str, target: NodeId, here: &str) -> Status {
    Status::not_found(format!(
        "this is {here}, not node {target} of group {group:?}"
    ))
}

impl<C: GroupTypes> Member<C> {
    fn stopped(&self, fatal: &Fatal<NodeId>) -> Status {
        Status::unavailable(format!(
            "Raft of node {} in group {:?} is not running: {fatal}",
            self.node_id, self.group
        ))
    }

    /// Maps openraft's error for an RPC: a Raft-level refusal goes to `api`, a stopped Raft
    /// is UNAVAILABLE.
    fn raft_error<E>(&self, e: RaftError<NodeId, E>, api: impl FnOnce(E) -> Status) -> Status {
        match e {
            RaftError::APIError(e) => api(e),
            RaftError::Fatal(fatal) => self.stopped(&fatal),
        }
    }

    /// This member's vote and last log id.
    async fn vote_and_last_log(&self) -> Result<(openraft::Vote<NodeId>, Option<LogId>), Status> {
        let vote = self
            .raft
            .with_raft_state(|st| *st.vote_ref())
            .await
            .map_err(|fatal| self.stopped(&fatal))?;
        let last = self
            .log
            .last_log_id()
            .map(|l| LogId::new(openraft::CommittedLeaderId::new(l.term, 0), l.index));
        Ok((vote, last))
    }
}

/// A replication port's Raft RPC endpoint: hands each request to the member it names.
pub struct RaftGrpcService<C: GroupTypes, D> {
    directory: Arc<D>,
    /// Turns true when the process shuts down: ends WatchLeader and append streams, which
    /// would otherwise hold a graceful server shutdown open.
    shutdown: Option<watch::Receiver<bool>>,
    _types: std::marker::PhantomData<fn() -> C>,
}

impl<C: GroupTypes, D> Clone for RaftGrpcService<C, D> {
    fn clone(&self) -> Self {
        RaftGrpcService {
            directory: self.directory.clone(),
            shutdown: self.shutdown.clone(),
            _types: std::marker::PhantomData,
        }
    }
}

impl<C: GroupTypes, D: MemberDirectory<C>> RaftGrpcService<C, D> {
    /// The endpoint of the members `directory` finds.
    pub fn new(directory: D) -> Self {
        RaftGrpcService {
            directory: Arc::new(directory),
            shutdown: None,
            _types: std::marker::PhantomData,
        }
    }

    /// Ends every WatchLeader and append stream (UNAVAILABLE) once `shutdown` turns true (or
    /// its sender is dropped), so a graceful server shutdown does not wait for them; followers
    /// then start their election at once.
    pub fn with_shutdown(mut self, shutdown: watch::Receiver<bool>) -> Self {
        self.shutdown = Some(shutdown);
        self
    }

    /// The `RaftService` server, with message limits that fit the largest append.
    pub fn into_server(self) -> RaftServiceServer<Self> {
        RaftServiceServer::new(self)
            .max_decoding_message_size(MAX_RAFT_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_RAFT_MESSAGE_BYTES)
    }

    /// The `LeaderWatchService` server; mount it next to [`RaftGrpcService::into_server`].
    pub fn leader_watch_server(&self) -> LeaderWatchServiceServer<Self> {
        LeaderWatchServiceServer::new(self.clone())
    }

    /// Hands one append (or heartbeat) to the member it names: the unary and the streaming
    /// RPC share it.
    async fn append_one(
        &self,
        req: pb::AppendEntriesRequest,
    ) -> Result<pb::AppendEntriesResponse, Status> {
        let member = self
            .directory
            .member(&req.group, req.target_node_id, true)
            .await?;
        let req = convert::append_request_from_pb::<C>(&req)?;
        let resp = member
            .raft
            .append_entries(req)
            .await
            .map_err(|e| member.raft_error(e, |never| match never {}))?;
        Ok(convert::append_response_to_pb(&resp))
    }
}

#[tonic::async_trait]
impl<C: GroupTypes, D: MemberDirectory<C>> RaftService for RaftGrpcService<C, D> {
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
        let member = self
            .directory
            .member(&req.group, req.target_node_id, false)
            .await?;
        let req = convert::vote_request_from_pb(&req)?;
        let (candidate, term, candidate_log) = (
            req.vote.leader_id.voted_for,
            req.vote.leader_id.term,
            req.last_log_id,
        );
        if !member.gate.may_grant(candidate_log.as_ref()) {
            // A member that lost its store: refused without consulting Raft, so neither its
            // vote nor its term moves.
            let (vote, last_log_id) = member.vote_and_last_log().await?;
            debug!(group = %member.group, ?candidate, term, standing = ?member.gate.standing(),
                "refused a vote: this member has not caught up since it lost its store");
            let resp = VoteResponse {
                vote,
                vote_granted: false,
                last_log_id,
            };
            return Ok(Response::new(convert::vote_response_to_pb(&resp)));
        }
        let resp = member
            .raft
            .vote(req)
            .await
            .map_err(|e| member.raft_error(e, |never| match never {}))?;
        if let Some(candidate) = candidate {
            member.hooks.voted(candidate, term, candidate_log, &resp);
        }
        Ok(Response::new(convert::vote_response_to_pb(&resp)))
    }

    async fn install_snapshot(
        &self,
        request: Request<pb::InstallSnapshotRequest>,
    ) -> Result<Response<pb::InstallSnapshotResponse>, Status> {
        let req = request.into_inner();
        let member = self
            .directory
            .member(&req.group, req.target_node_id, true)
            .await?;
        let req = convert::snapshot_request_from_pb::<C>(&req)?;
        let outcome = match member.raft.install_snapshot(req).await {
            Ok(resp) => Ok(resp),
            Err(RaftError::APIError(openraft::error::InstallSnapshotError::SnapshotMismatch(
                m,
            ))) => Err(m),
            Err(RaftError::Fatal(fatal)) => return Err(member.stopped(&fatal)),
        };
        Ok(Response::new(convert::snapshot_response_to_pb(&outcome)))
    }

    async fn join_group(
        &self,
        request: Request<pb::JoinGroupRequest>,
    ) -> Result<Response<pb::JoinGroupResponse>, Status> {
        let req = request.into_inner();
        let member = self
            .directory
            .member(&req.group, req.target_node_id, false)
            .await?;
        member.hooks.join_group(req).await.map(Response::new)
    }

    async fn replica_state(
        &self,
        request: Request<pb::ReplicaStateRequest>,
    ) -> Result<Response<pb::ReplicaStateResponse>, Status> {
        let req = request.into_inner();
        let member = self
            .directory
            .member(&req.group, req.target_node_id, false)
            .await?;
        let (vote, last_log_id) = member.vote_and_last_log().await?;
        debug!(group = %member.group, asker = req.asker_node_id, "asked what this store holds");
        Ok(Response::new(pb::ReplicaStateResponse {
            initialized: vote.leader_id.term > 0 || last_log_id.is_some(),
            term: vote.leader_id.term,
            last_log_id: last_log_id.as_ref().map(convert::log_id_to_pb),
            catching_up: !member.gate.may_vote(),
        }))
    }

    async fn forget_witness_tail(
        &self,
        request: Request<pb::ForgetWitnessTailRequest>,
    ) -> Result<Response<pb::ForgetWitnessTailResponse>, Status> {
        self.directory
            .forget_witness_tail(request.into_inner())
            .await
            .map(Response::new)
    }

    async fn timeout_now(
        &self,
        request: Request<pb::TimeoutNowRequest>,
    ) -> Result<Response<pb::TimeoutNowResponse>, Status> {
        let req = request.into_inner();
        let member = self
            .directory
            .member(&req.group, req.target_node_id, false)
            .await?;
        if let Err(fatal) = &member.raft.metrics().borrow().running_state {
            return Err(member.stopped(fatal));
        }
        if !member.gate.may_vote() {
            return Ok(Response::new(pb::TimeoutNowResponse {
                status: Some(pb::ResponseStatus::new(
                    pb::ResponseCode::IllegalArgument,
                    format!(
                        "node {} has not caught up since it lost its store",
                        member.node_id
                    ),
                )),
            }));
        }
        member.hooks.timeout_now(req).await.map(Response::new)
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
impl<C: GroupTypes, D: MemberDirectory<C>> LeaderWatchService for RaftGrpcService<C, D> {
    type WatchLeaderStream =
        Pin<Box<dyn Stream<Item = Result<pb::LeaderPing, Status>> + Send + 'static>>;

    async fn watch_leader(
        &self,
        request: Request<pb::WatchLeaderRequest>,
    ) -> Result<Response<Self::WatchLeaderStream>, Status> {
        let req = request.into_inner();
        let member = self
            .directory
            .member(&req.group, req.target_node_id, false)
            .await?;
        if self.shutdown.as_ref().is_some_and(|rx| *rx.borrow()) {
            return Err(Status::unavailable("the node is shutting down"));
        }
        let mut metrics = member.raft.metrics();
        let term = {
            let m = metrics.borrow_and_update();
            if let Some(status) = not_leading(&m, member.node_id, None) {
                debug!(group = %member.group, follower = req.follower_node_id, %status, "refused a leader watch");
                return Err(status);
            }
            m.current_term
        };
        info!(group = %member.group, follower = req.follower_node_id, term, "follower watches this leader");
        let pings = leader_pings(metrics, member.node_id, term, self.shutdown.clone());
        Ok(Response::new(Box::pin(pings)))
    }
}
