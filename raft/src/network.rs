//! The client side of Raft between the replicas of a group: openraft's `RaftNetwork` over gRPC
//! (`raftmq.v1.RaftService` on each peer's replication port).
//!
//! One lazily connected [`Channel`] per peer, shared by every client openraft creates for that
//! peer (openraft makes a new one per replication stream and per election), so a connection
//! outlives leadership changes and a restarted peer is reconnected on the next call.
//!
//! Errors, as openraft wants them:
//! - the peer cannot be reached, or answers UNAVAILABLE (its Raft stopped) or NOT_FOUND (it is
//!   not that node of that group): [`RPCError::Unreachable`], so openraft backs off for
//!   [`GrpcNetwork::backoff`] before retrying;
//! - no answer within the call's `hard_ttl`: [`RPCError::Timeout`];
//! - any other transport failure or a malformed reply: [`RPCError::Network`], retried at once;
//! - a Raft-level refusal (a snapshot chunk out of order): [`RPCError::RemoteError`].
//!
//! A peer that stops answering is logged once ("peer N unreachable: why") and once more when
//! it answers again, whichever client saw it: openraft retries a dead peer every
//! [`UNREACHABLE_BACKOFF`] and would otherwise log each failed retry itself (see
//! [`QUIET_OPENRAFT_REPLICATION`]).

use std::collections::HashMap;
use std::error::Error;
use std::marker::PhantomData;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use openraft::error::{
    InstallSnapshotError, NetworkError, PayloadTooLarge, RPCError, RaftError, RemoteError, Timeout,
    Unreachable,
};
use openraft::network::{Backoff, RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use openraft::{EntryPayload, RPCTypes};
use proto::v1 as pb;
use proto::RaftServiceClient;
use tonic::transport::{Channel, Endpoint};
use tonic::Code;
use tracing::{debug, info, warn};

use crate::convert;
use crate::typ::{GroupTypes, LogId, Node, NodeId, WirePayload, WITNESS_NODE_ID};

/// Largest Raft message either side encodes or decodes. One entry is never split, so this
/// must exceed the largest command (a batch of messages up to `maxMessageSize` each).
pub const MAX_RAFT_MESSAGE_BYTES: usize = 256 << 20;

/// An append whose payloads add up to more than this is split (openraft retries with fewer
/// entries): big batches would otherwise hold up heartbeats on the same connection and risk
/// the `hard_ttl` of one heartbeat interval.
const APPEND_SPLIT_BYTES: usize = 16 << 20;

/// HTTP/2 flow-control windows. The default 64 KiB stream window would make a 1 MiB append
/// wait for 16 window updates; a loopback or LAN peer can take far more in flight.
pub const STREAM_WINDOW_BYTES: u32 = 8 << 20;
/// See [`STREAM_WINDOW_BYTES`]; shared by every stream of a connection.
pub const CONNECTION_WINDOW_BYTES: u32 = 32 << 20;

/// How long a connection attempt may take; the call's own deadline usually cuts it shorter.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

/// Pause after an unreachable peer before openraft tries it again: short, so a restarted
/// replica rejoins within a fraction of a second; a refused connect on loopback costs
/// microseconds, so retrying this often is cheap.
const UNREACHABLE_BACKOFF: Duration = Duration::from_millis(150);

/// `RUST_LOG`-style directives for a process's default log filter that silence openraft's own
/// report of every failed replication RPC: with one peer of a group dead, the leader's
/// `openraft::replication` logged a WARN and an ERROR, and its replication handler two WARNs,
/// for each retry, about 33 lines a second. This module logs each peer's reachability once per
/// change instead. (openraft's storage errors on that target are also reported by its core,
/// which stops.) An explicit `RUST_LOG` replaces the whole default, these included.
pub const QUIET_OPENRAFT_REPLICATION: &str =
    "openraft::replication=off,openraft::engine::handler::replication_handler=error";

/// The gRPC endpoint of a peer's replication port (`host:port`), tuned for Raft traffic: no
/// Nagle delay, large flow-control windows. Connecting is up to the caller.
pub fn peer_endpoint(addr: &str) -> Result<Endpoint, tonic::transport::Error> {
    Ok(Endpoint::from_shared(format!("http://{addr}"))?
        .tcp_nodelay(true)
        .connect_timeout(CONNECT_TIMEOUT)
        .initial_stream_window_size(STREAM_WINDOW_BYTES)
        .initial_connection_window_size(CONNECTION_WINDOW_BYTES))
}

/// Told what the answers to this member's vote requests say about its peers (the broker's
/// failover campaign listens, to stop competing with a peer that can win where it cannot).
pub trait VoteObserver: Send + Sync + 'static {
    /// `peer` refused a vote request of `term` because its log is ahead of this member's.
    fn log_ahead(&self, peer: NodeId, term: u64);
    /// A peer whose log is not ahead refused because it stood as a candidate in the same term:
    /// a split vote.
    fn split_with_peer(&self);
}

/// Builds the clients openraft uses to reach the other members of one group.
///
/// Clones share the channel cache.
pub struct GrpcNetworkFactory<C> {
    /// brokerName: every request names it, so a peer serving another group refuses it.
    group: Arc<str>,
    /// This member's id, for logs and timeout errors.
    self_id: NodeId,
    /// One channel per peer, keyed by id and address: a peer whose address changed in a
    /// membership change gets a new channel.
    channels: Arc<Mutex<HashMap<(NodeId, String), Channel>>>,
    /// Told what vote replies say about peers' logs.
    observer: Option<Arc<dyn VoteObserver>>,
    /// Which peers answer, shared by every client so that a change is logged once.
    reachability: Arc<Mutex<Reachability>>,
    /// How far the witness may be sent (a classic group's leader; see [`WitnessCap`]).
    witness_cap: Option<WitnessCap>,
    _types: PhantomData<fn() -> C>,
}

/// The highest log index the witness ([`WITNESS_NODE_ID`]) may be sent right now; `None`: no
/// limit. A classic group's leader sends the witness an entry only once every in-sync slave has
/// it, so the witness is never ahead of an in-sync slave (see the broker's `in_sync` module).
pub type WitnessCap = tokio::sync::watch::Receiver<Option<u64>>;

impl<C> Clone for GrpcNetworkFactory<C> {
    fn clone(&self) -> Self {
        GrpcNetworkFactory {
            group: self.group.clone(),
            self_id: self.self_id,
            channels: self.channels.clone(),
            observer: self.observer.clone(),
            reachability: self.reachability.clone(),
            witness_cap: self.witness_cap.clone(),
            _types: PhantomData,
        }
    }
}

impl<C> GrpcNetworkFactory<C> {
    /// A factory for member `self_id` of group `group` (brokerName).
    pub fn new(group: impl Into<String>, self_id: NodeId) -> Self {
        GrpcNetworkFactory {
            group: Arc::from(group.into()),
            self_id,
            channels: Arc::default(),
            observer: None,
            reachability: Arc::default(),
            witness_cap: None,
            _types: PhantomData,
        }
    }

    /// Holds appends to the witness back to `cap`.
    pub fn with_witness_cap(mut self, cap: WitnessCap) -> Self {
        self.witness_cap = Some(cap);
        self
    }

    /// Tells `observer` what the answers to this member's vote requests say.
    pub fn with_vote_observer(mut self, observer: Arc<dyn VoteObserver>) -> Self {
        self.observer = Some(observer);
        self
    }

    /// The shared channel to `target` at `addr`, created (without connecting) on first use.
    fn channel(&self, target: NodeId, addr: &str) -> Result<Channel, String> {
        let mut channels = self
            .channels
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(channel) = channels.get(&(target, addr.to_owned())) {
            return Ok(channel.clone());
        }
        let endpoint = peer_endpoint(addr)
            .map_err(|e| format!("bad replication address {addr:?} of node {target}: {e}"))?;
        let channel = endpoint.connect_lazy();
        channels.retain(|(id, _), _| *id != target);
        channels.insert((target, addr.to_owned()), channel.clone());
        Ok(channel)
    }
}

impl<C: GroupTypes> RaftNetworkFactory<C> for GrpcNetworkFactory<C> {
    type Network = GrpcNetwork<C>;

    async fn new_client(&mut self, target: NodeId, node: &Node) -> GrpcNetwork<C> {
        let client = self.channel(target, &node.addr).map(|channel| {
            RaftServiceClient::new(channel)
                .max_decoding_message_size(MAX_RAFT_MESSAGE_BYTES)
                .max_encoding_message_size(MAX_RAFT_MESSAGE_BYTES)
        });
        let network = GrpcNetwork {
            group: self.group.clone(),
            self_id: self.self_id,
            target,
            node: node.clone(),
            client,
            appends: None,
            observer: self.observer.clone(),
            reachability: self.reachability.clone(),
            witness_cap: self
                .witness_cap
                .clone()
                .filter(|_| target == WITNESS_NODE_ID),
            _types: PhantomData,
        };
        if let Err(e) = &network.client {
            network.note_unreachable(e);
        }
        network
    }
}

/// Whether each peer answered its latest Raft call: the pure bookkeeping behind the "peer N
/// unreachable" and "peer N reachable again" lines.
#[derive(Debug, Default)]
struct Reachability {
    /// Peer id → it answered its latest call. A peer not called yet is absent.
    answered: HashMap<NodeId, bool>,
}

impl Reachability {
    /// Records the outcome of a call to `peer`; true when it changes what is known in a way
    /// worth a log line: a peer not heard of yet that fails, or a peer that flips. (A peer that
    /// answers its first call is the normal case, not news.)
    fn record(&mut self, peer: NodeId, answered: bool) -> bool {
        match self.answered.insert(peer, answered) {
            None => !answered,
            Some(before) => before != answered,
        }
    }
}

/// openraft's client for one peer.
pub struct GrpcNetwork<C> {
    group: Arc<str>,
    self_id: NodeId,
    target: NodeId,
    /// The peer as membership records it, for error reports.
    node: Node,
    /// The gRPC client, or why there is none (an address that is not a valid URI).
    client: Result<RaftServiceClient<Channel>, String>,
    /// The open `AppendEntriesStream`, if any. openraft calls `append_entries` of one client
    /// from one replication task, one call at a time, so requests and replies pair up in
    /// order. Any failure drops the stream; the next append opens a new one.
    appends: Option<AppendStream>,
    observer: Option<Arc<dyn VoteObserver>>,
    reachability: Arc<Mutex<Reachability>>,
    /// Set for the witness only: how far it may be sent.
    witness_cap: Option<WitnessCap>,
    _types: PhantomData<fn() -> C>,
}

/// Both ends of an open `AppendEntriesStream`.
struct AppendStream {
    requests: tokio::sync::mpsc::Sender<pb::AppendEntriesRequest>,
    replies: tonic::Streaming<pb::AppendEntriesResponse>,
}

/// Why a call to a peer failed, in a few words ("Unavailable: tcp connect error: Connection
/// refused (os error 111)", or an address that did not parse), for openraft's errors and the
/// reachability log line.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct PeerFailure(String);

impl PeerFailure {
    /// The status's code and message, and its innermost cause when that adds something.
    fn of(status: &tonic::Status) -> Self {
        let mut text = format!("{:?}: {}", status.code(), status.message());
        let deepest = std::iter::successors(status.source(), |&e| e.source()).last();
        if let Some(cause) = deepest.map(|e| e.to_string()) {
            if !text.contains(&cause) {
                text.push_str(": ");
                text.push_str(&cause);
            }
        }
        PeerFailure(text)
    }
}

impl<C> GrpcNetwork<C> {
    /// The peer answered a call (whatever it said).
    fn note_answered(&self) {
        if self.record(true) {
            info!(group = %self.group, addr = %self.node.addr, "peer {} reachable again", self.target);
        }
    }

    /// A call to the peer failed without an answer (`why`).
    fn note_unreachable(&self, why: &dyn std::fmt::Display) {
        if self.record(false) {
            warn!(group = %self.group, addr = %self.node.addr, "peer {} unreachable: {why}", self.target);
        }
    }

    fn record(&self, answered: bool) -> bool {
        self.reachability
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .record(self.target, answered)
    }

    /// Sends one request with the deadline openraft gave, and sorts failures into the
    /// [`RPCError`] kinds openraft acts on.
    async fn call<Req, Resp, E, F, Fut>(
        &self,
        action: RPCTypes,
        option: &RPCOption,
        request: Req,
        send: F,
    ) -> Result<Resp, RPCError<NodeId, Node, E>>
    where
        E: Error,
        F: FnOnce(RaftServiceClient<Channel>, tonic::Request<Req>) -> Fut,
        Fut: std::future::Future<Output = Result<tonic::Response<Resp>, tonic::Status>>,
    {
        let ttl = option.hard_ttl();
        let client = self.client.clone().map_err(|e| {
            self.note_unreachable(&e);
            RPCError::Unreachable(Unreachable::new(&PeerFailure(e)))
        })?;
        let mut request = tonic::Request::new(request);
        // The peer abandons the call at the same deadline.
        request.set_timeout(ttl);
        match tokio::time::timeout(ttl, send(client, request)).await {
            Ok(Ok(response)) => {
                self.note_answered();
                Ok(response.into_inner())
            }
            Ok(Err(status)) => Err(self.status_error(action, status)),
            Err(_elapsed) => Err(self.no_answer(action, ttl)),
        }
    }

    /// Sends one append over the `AppendEntriesStream`, opening it first if needed, and
    /// waits for its reply.
    async fn append_streamed(
        &mut self,
        request: pb::AppendEntriesRequest,
    ) -> Result<pb::AppendEntriesResponse, tonic::Status> {
        if self.appends.is_none() {
            let mut client = self
                .client
                .clone()
                .map_err(|e| tonic::Status::unavailable(e.to_string()))?;
            let (requests, rx) = tokio::sync::mpsc::channel(1);
            let replies = client
                .append_entries_stream(tokio_stream::wrappers::ReceiverStream::new(rx))
                .await?
                .into_inner();
            self.appends = Some(AppendStream { requests, replies });
        }
        let Some(stream) = self.appends.as_mut() else {
            return Err(tonic::Status::internal("no append stream"));
        };
        stream
            .requests
            .send(request)
            .await
            .map_err(|_| tonic::Status::unavailable("the append stream closed"))?;
        match stream.replies.message().await? {
            Some(reply) => Ok(reply),
            None => Err(tonic::Status::unavailable(
                "the peer ended the append stream",
            )),
        }
    }

    /// The call got no answer within `ttl`.
    fn no_answer<E: Error>(&self, action: RPCTypes, ttl: Duration) -> RPCError<NodeId, Node, E> {
        self.note_unreachable(&format_args!("no answer to {action} within {ttl:?}"));
        self.timeout(action, ttl)
    }

    fn timeout<E: Error>(&self, action: RPCTypes, ttl: Duration) -> RPCError<NodeId, Node, E> {
        RPCError::Timeout(Timeout {
            action,
            id: self.self_id,
            target: self.target,
            timeout: ttl,
        })
    }

    fn status_error<E: Error>(
        &self,
        action: RPCTypes,
        status: tonic::Status,
    ) -> RPCError<NodeId, Node, E> {
        debug!(group = %self.group, target = self.target, addr = %self.node.addr, %action,
            code = ?status.code(), message = status.message(), "Raft RPC failed");
        let failure = PeerFailure::of(&status);
        if status.code() == Code::InvalidArgument {
            // The peer is there: it answered that the request is malformed.
            self.note_answered();
            warn!(group = %self.group, target = self.target, %action, message = status.message(),
                "peer refused a Raft request as malformed");
            return RPCError::Network(NetworkError::new(&failure));
        }
        self.note_unreachable(&failure);
        match status.code() {
            // Connection refused or reset, peer's Raft stopped, or not the node we meant.
            Code::Unavailable | Code::NotFound => RPCError::Unreachable(Unreachable::new(&failure)),
            Code::DeadlineExceeded => self.timeout(action, Duration::ZERO),
            _ => RPCError::Network(NetworkError::new(&failure)),
        }
    }

    fn malformed_reply<E: Error>(&self, e: convert::WireError) -> RPCError<NodeId, Node, E> {
        warn!(group = %self.group, target = self.target, error = %e, "malformed Raft reply");
        RPCError::Network(NetworkError::new(&e))
    }
}

/// How many leading entries of `req` fit in [`APPEND_SPLIT_BYTES`] (at least one), or `None`
/// when all of them do.
fn entries_that_fit<C: GroupTypes>(req: &AppendEntriesRequest<C>) -> Option<u64> {
    let mut bytes = 0usize;
    for (i, entry) in req.entries.iter().enumerate() {
        bytes += match &entry.payload {
            EntryPayload::<C>::Normal(data) => data.to_wire().len(),
            _ => 64,
        };
        if bytes > APPEND_SPLIT_BYTES {
            return Some(i.max(1) as u64).filter(|_| req.entries.len() > 1);
        }
    }
    None
}

/// Cuts `req` down to the entries at or below `cap`. `Some(matching)` when entries were cut:
/// the log id a success then stands for (the last entry kept, or `prev_log_id`).
fn cap_entries<C: GroupTypes>(
    req: &mut AppendEntriesRequest<C>,
    cap: u64,
) -> Option<Option<LogId>> {
    let keep = req
        .entries
        .iter()
        .take_while(|e| e.log_id.index <= cap)
        .count();
    if keep == req.entries.len() {
        return None;
    }
    req.entries.truncate(keep);
    Some(req.entries.last().map(|e| e.log_id).or(req.prev_log_id))
}

impl<C: GroupTypes> GrpcNetwork<C> {
    /// Holds an append to the witness back to its cap. When not even the first entry may go,
    /// waits for the cap to move, up to half the call's deadline, so openraft's retries are
    /// paced, never spinning. `Some(matching)`: entries were left out (see [`cap_entries`]).
    async fn hold_back(
        &self,
        req: &mut AppendEntriesRequest<C>,
        ttl: Duration,
    ) -> Option<Option<LogId>> {
        let mut cap = self.witness_cap.clone()?;
        let deadline = tokio::time::Instant::now() + ttl / 2;
        loop {
            let limit = (*cap.borrow_and_update())?;
            let first_fits = req.entries.first().is_none_or(|e| e.log_id.index <= limit);
            if first_fits {
                return cap_entries(req, limit);
            }
            match tokio::time::timeout_at(deadline, cap.changed()).await {
                Ok(Ok(())) => continue,
                // Time is up (or the leader stopped tracking): send what may go, nothing.
                _ => return cap_entries(req, limit),
            }
        }
    }
}

impl<C: GroupTypes> RaftNetwork<C> for GrpcNetwork<C> {
    async fn append_entries(
        &mut self,
        mut req: AppendEntriesRequest<C>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<NodeId>, RPCError<NodeId, Node, RaftError<NodeId>>> {
        if let Some(fit) = entries_that_fit(&req) {
            return Err(RPCError::PayloadTooLarge(
                PayloadTooLarge::new_entries_hint(fit),
            ));
        }
        let ttl = option.hard_ttl();
        let held_back = self.hold_back(&mut req, ttl).await;
        let request = convert::append_request_to_pb(&self.group, self.target, &req);
        let resp = match tokio::time::timeout(ttl, self.append_streamed(request)).await {
            Ok(Ok(resp)) => {
                self.note_answered();
                resp
            }
            Ok(Err(status)) => {
                self.appends = None;
                return Err(self.status_error(RPCTypes::AppendEntries, status));
            }
            Err(_elapsed) => {
                self.appends = None;
                return Err(self.no_answer(RPCTypes::AppendEntries, ttl));
            }
        };
        let resp = convert::append_response_from_pb(&resp).map_err(|e| self.malformed_reply(e))?;
        Ok(match (resp, held_back) {
            // The witness took what it was sent; the rest waits for the in-sync slaves.
            (AppendEntriesResponse::Success, Some(matching)) => {
                AppendEntriesResponse::PartialSuccess(matching)
            }
            (resp, _) => resp,
        })
    }

    async fn vote(
        &mut self,
        req: VoteRequest<NodeId>,
        option: RPCOption,
    ) -> Result<VoteResponse<NodeId>, RPCError<NodeId, Node, RaftError<NodeId>>> {
        let pb = convert::vote_request_to_pb(&self.group, self.target, &req);
        let resp = self
            .call(RPCTypes::Vote, &option, pb, |mut c, r| async move {
                c.vote(r).await
            })
            .await?;
        let resp = convert::vote_response_from_pb(&resp).map_err(|e| self.malformed_reply(e))?;
        if let Some(observer) = &self.observer {
            if !resp.vote_granted && resp.last_log_id > req.last_log_id {
                observer.log_ahead(self.target, req.vote.leader_id.term);
            } else if !resp.vote_granted
                && resp.vote.leader_id.term == req.vote.leader_id.term
                && resp.vote.leader_id.voted_for == Some(self.target)
                && !resp.vote.committed
            {
                // A split: the peer stood in the same term, and its log is not ahead of ours.
                observer.split_with_peer();
            }
        }
        Ok(resp)
    }

    async fn install_snapshot(
        &mut self,
        req: InstallSnapshotRequest<C>,
        option: RPCOption,
    ) -> Result<
        InstallSnapshotResponse<NodeId>,
        RPCError<NodeId, Node, RaftError<NodeId, InstallSnapshotError>>,
    > {
        let pb = convert::snapshot_request_to_pb(&self.group, self.target, &req);
        let resp = self
            .call(
                RPCTypes::InstallSnapshot,
                &option,
                pb,
                |mut c, r| async move { c.install_snapshot(r).await },
            )
            .await?;
        match convert::snapshot_response_from_pb(&resp) {
            Ok(Ok(resp)) => Ok(resp),
            Ok(Err(refused)) => Err(RPCError::RemoteError(RemoteError::new_with_node(
                self.target,
                self.node.clone(),
                RaftError::APIError(refused),
            ))),
            Err(e) => Err(self.malformed_reply(e)),
        }
    }

    fn backoff(&self) -> Backoff {
        Backoff::new(std::iter::repeat(UNREACHABLE_BACKOFF))
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use openraft::{CommittedLeaderId, Vote};

    use super::*;
    use crate::testing::{Payload, TestConfig};
    use crate::typ::{Entry, LogId};

    fn append_of(sizes: &[usize]) -> AppendEntriesRequest<TestConfig> {
        AppendEntriesRequest {
            vote: Vote::new_committed(1, 0),
            prev_log_id: None,
            entries: sizes
                .iter()
                .enumerate()
                .map(|(i, n)| Entry {
                    log_id: LogId::new(CommittedLeaderId::new(1, 0), i as u64),
                    payload: EntryPayload::Normal(Payload(Bytes::from(vec![0u8; *n]))),
                })
                .collect(),
            leader_commit: None,
        }
    }

    #[test]
    fn big_appends_are_split_but_one_entry_always_goes() {
        let mb = 1 << 20;
        assert_eq!(entries_that_fit(&append_of(&[])), None);
        assert_eq!(entries_that_fit(&append_of(&[mb; 16])), None);
        assert_eq!(entries_that_fit(&append_of(&[mb; 40])), Some(16));
        assert_eq!(entries_that_fit(&append_of(&[40 * mb])), None);
        assert_eq!(entries_that_fit(&append_of(&[40 * mb, 1])), Some(1));
    }

    #[test]
    fn appends_to_the_witness_are_cut_at_the_cap() {
        let mut req = append_of(&[1, 1, 1, 1]);
        assert_eq!(cap_entries(&mut req, 9), None, "all fit");
        assert_eq!(req.entries.len(), 4);
        let matching = cap_entries(&mut req, 1).expect("cut");
        assert_eq!(req.entries.len(), 2);
        assert_eq!(matching.map(|l| l.index), Some(1));
        let mut req = append_of(&[1, 1]);
        req.prev_log_id = None;
        req.entries.remove(0);
        // Entry 1 only, cap 0: nothing goes, a success stands for prev_log_id (none).
        assert_eq!(cap_entries(&mut req, 0), Some(None));
        assert!(req.entries.is_empty());
    }

    #[test]
    fn reachability_changes_are_news_once_each() {
        let mut r = Reachability::default();
        assert!(!r.record(1, true), "a first answer is the normal case");
        assert!(r.record(1, false), "the peer went away");
        for _ in 0..100 {
            assert!(
                !r.record(1, false),
                "every retry of a dead peer is not news"
            );
        }
        assert!(r.record(1, true), "it came back");
        assert!(!r.record(1, true));
        assert!(r.record(2, false), "a peer that never answered");
        assert!(!r.record(1, true), "peers are tracked apart");
    }

    #[tokio::test]
    async fn unreachable_peer_is_reported_as_unreachable() {
        // Bound then released: nothing listens there.
        let addr = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("ephemeral port");
        let mut factory = GrpcNetworkFactory::<TestConfig>::new("g", 0);
        let mut net = factory
            .new_client(
                1,
                &Node {
                    addr: addr.to_string(),
                },
            )
            .await;
        let req = VoteRequest {
            vote: Vote::new(1, 0),
            last_log_id: None,
        };
        let err = net
            .vote(req, RPCOption::new(Duration::from_secs(2)))
            .await
            .expect_err("nobody listens");
        assert!(matches!(err, RPCError::Unreachable(_)), "{err:?}");

        let mut bad = factory
            .new_client(
                2,
                &Node {
                    addr: "not a host:port/\u{0}".into(),
                },
            )
            .await;
        let req = VoteRequest {
            vote: Vote::new(1, 0),
            last_log_id: None,
        };
        let err = bad
            .vote(req, RPCOption::new(Duration::from_secs(1)))
            .await
            .expect_err("bad address");
        assert!(matches!(err, RPCError::Unreachable(_)), "{err:?}");
    }
}
