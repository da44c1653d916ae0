//! An in-process stand-in for a raftmq cluster, to test the client without the real broker
//! and nameserver: a [`FakeNameServer`] serving routes (and `WatchRoutes` events the test
//! triggers) and [`FakeBroker`]s of broker groups whose replicas share one in-memory store,
//! each of which answers as leader or, with a hint, as follower. All on 127.0.0.1, port 0.
//!
//! The fakes implement the wire contract the client relies on (statuses in the body,
//! NOT_LEADER hints, queue_id -1, dense queue offsets, long polling, group membership),
//! nothing more.

#![allow(dead_code)]

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::Stream;
use proto::v1::route_event::Change;
use proto::v1::{
    self as pb, GroupMember, GroupRoute, LeaderHint, QueueData, ResponseCode, ResponseStatus,
    RouteEvent, RouteSnapshot, TopicConfig, TopicQueues,
};
use proto::{
    BrokerService, BrokerServiceServer, NameService, NameServiceServer, OffsetMsgId, ANY_QUEUE,
};
use tokio::net::TcpListener;
use tokio::sync::{broadcast, oneshot};
use tonic::{Request, Response, Status};

pub const CLUSTER: &str = "DefaultCluster";

/// Stops a fake server the way `kill -9` stops a process: the port is closed and every
/// open connection is shut down at once (peers see the connection end, not a slow drain).
pub struct Killer {
    listener: Option<oneshot::Sender<()>>,
    connections: Arc<Mutex<Vec<std::net::TcpStream>>>,
}

impl Killer {
    fn kill(&mut self) {
        if let Some(stop) = self.listener.take() {
            let _ = stop.send(());
        }
        for c in self.connections.lock().unwrap().drain(..) {
            let _ = c.shutdown(std::net::Shutdown::Both);
        }
    }
}

/// Binds 127.0.0.1:0 and serves `router` until killed.
async fn serve(router: tonic::transport::server::Router) -> (SocketAddr, Killer) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (kill, killed) = oneshot::channel::<()>();
    let connections: Arc<Mutex<Vec<std::net::TcpStream>>> = Arc::default();
    let registry = Arc::clone(&connections);
    let incoming =
        futures::stream::unfold(Some((listener, killed, registry)), |state| async move {
            let (listener, mut killed, registry) = state?;
            tokio::select! {
                // Ending the stream drops the listener: connects are refused from now on.
                _ = &mut killed => None,
                accepted = listener.accept() => {
                    let stream = accepted.and_then(|(s, _)| {
                        // Keep a second handle to shut the socket down on kill.
                        let std = s.into_std()?;
                        registry.lock().unwrap().push(std.try_clone()?);
                        tokio::net::TcpStream::from_std(std)
                    });
                    Some((stream, Some((listener, killed, registry))))
                }
            }
        });
    tokio::spawn(async move {
        let _ = router.serve_with_incoming(incoming).await;
    });
    (
        addr,
        Killer {
            listener: Some(kill),
            connections,
        },
    )
}

// ---------------------------------------------------------------- nameserver

struct NsTables {
    version: u64,
    groups: BTreeMap<String, GroupRoute>,
    topics: BTreeMap<String, TopicQueues>,
}

struct NsState {
    epoch: String,
    tables: Mutex<NsTables>,
    events: broadcast::Sender<RouteEvent>,
}

/// A nameserver whose routes the test sets.
pub struct FakeNameServer {
    pub addr: String,
    state: Arc<NsState>,
    killer: Killer,
}

impl FakeNameServer {
    pub async fn start() -> Self {
        let (events, _) = broadcast::channel(1024);
        let state = Arc::new(NsState {
            epoch: format!("epoch-{}", rand::random::<u32>()),
            tables: Mutex::new(NsTables {
                version: 1,
                groups: BTreeMap::new(),
                topics: BTreeMap::new(),
            }),
            events,
        });
        let service = NsService(Arc::clone(&state));
        let router =
            tonic::transport::Server::builder().add_service(NameServiceServer::new(service));
        let (addr, killer) = serve(router).await;
        Self {
            addr: addr.to_string(),
            state,
            killer,
        }
    }

    fn publish(&self, change: impl FnOnce(&mut NsTables) -> Change) {
        let mut t = self.state.tables.lock().unwrap();
        let change = change(&mut t);
        t.version += 1;
        let _ = self.state.events.send(RouteEvent {
            epoch: self.state.epoch.clone(),
            version: t.version,
            change: Some(change),
        });
    }

    /// Records a group (members and leader) and tells watchers.
    pub fn set_group(&self, group: GroupRoute) {
        self.publish(|t| {
            t.groups.insert(group.broker_name.clone(), group.clone());
            Change::GroupUpdated(group)
        });
    }

    /// Records a topic's queues and tells watchers.
    pub fn set_topic(&self, topic: &str, groups: &[(&str, u32)]) {
        let queues = TopicQueues {
            topic: topic.to_owned(),
            queue_datas: groups
                .iter()
                .map(|(g, n)| QueueData {
                    broker_name: (*g).to_owned(),
                    read_queue_nums: *n,
                    write_queue_nums: *n,
                    perm: 6,
                })
                .collect(),
        };
        self.publish(|t| {
            t.topics.insert(topic.to_owned(), queues.clone());
            Change::TopicUpdated(queues)
        });
    }

    /// Stops answering: the port is closed and watch streams break.
    pub fn kill(&mut self) {
        self.killer.kill();
    }
}

impl Drop for FakeNameServer {
    fn drop(&mut self) {
        self.kill();
    }
}

struct NsService(Arc<NsState>);

type EventStream = Pin<Box<dyn Stream<Item = Result<RouteEvent, Status>> + Send>>;

#[tonic::async_trait]
impl NameService for NsService {
    type WatchRoutesStream = EventStream;

    async fn register_broker(
        &self,
        _: Request<pb::RegisterBrokerRequest>,
    ) -> Result<Response<pb::RegisterBrokerResponse>, Status> {
        Err(Status::unimplemented("fake"))
    }

    async fn unregister_broker(
        &self,
        _: Request<pb::UnregisterBrokerRequest>,
    ) -> Result<Response<pb::UnregisterBrokerResponse>, Status> {
        Err(Status::unimplemented("fake"))
    }

    async fn query_route(
        &self,
        request: Request<pb::QueryRouteRequest>,
    ) -> Result<Response<pb::QueryRouteResponse>, Status> {
        let topic = request.into_inner().topic;
        let t = self.0.tables.lock().unwrap();
        let Some(queues) = t.topics.get(&topic) else {
            return Ok(Response::new(pb::QueryRouteResponse {
                status: Some(ResponseStatus::new(
                    ResponseCode::TopicNotExist,
                    format!("no route for {topic}"),
                )),
                ..Default::default()
            }));
        };
        let groups = queues
            .queue_datas
            .iter()
            .filter_map(|q| t.groups.get(&q.broker_name).cloned())
            .collect();
        Ok(Response::new(pb::QueryRouteResponse {
            status: Some(ResponseStatus::ok()),
            topic: Some(queues.clone()),
            groups,
        }))
    }

    async fn watch_routes(
        &self,
        _: Request<pb::WatchRoutesRequest>,
    ) -> Result<Response<EventStream>, Status> {
        let (snapshot, rx) = {
            let t = self.0.tables.lock().unwrap();
            let rx = self.0.events.subscribe();
            let snapshot = RouteEvent {
                epoch: self.0.epoch.clone(),
                version: t.version,
                change: Some(Change::Snapshot(RouteSnapshot {
                    groups: t.groups.values().cloned().collect(),
                    topics: t.topics.values().cloned().collect(),
                })),
            };
            (snapshot, rx)
        };
        let events = futures::stream::unfold(rx, |mut rx| async move {
            loop {
                match rx.recv().await {
                    Ok(event) => return Some((Ok(event), rx)),
                    Err(broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(broadcast::error::RecvError::Closed) => return None,
                }
            }
        });
        let stream =
            futures::StreamExt::chain(futures::stream::once(async { Ok(snapshot) }), events);
        Ok(Response::new(Box::pin(stream)))
    }

    async fn get_cluster_info(
        &self,
        _: Request<pb::GetClusterInfoRequest>,
    ) -> Result<Response<pb::GetClusterInfoResponse>, Status> {
        let t = self.0.tables.lock().unwrap();
        Ok(Response::new(pb::GetClusterInfoResponse {
            status: Some(ResponseStatus::ok()),
            clusters: vec![pb::ClusterInfo {
                cluster_name: CLUSTER.into(),
                groups: t.groups.values().cloned().collect(),
            }],
        }))
    }

    async fn list_topics(
        &self,
        _: Request<pb::ListTopicNamesRequest>,
    ) -> Result<Response<pb::ListTopicNamesResponse>, Status> {
        let t = self.0.tables.lock().unwrap();
        Ok(Response::new(pb::ListTopicNamesResponse {
            status: Some(ResponseStatus::ok()),
            topics: t.topics.keys().cloned().collect(),
        }))
    }
}

// ---------------------------------------------------------------- broker group

/// The state every replica of one group shares (what Raft would replicate).
pub struct GroupStore {
    pub broker_name: String,
    pub auto_create: bool,
    topics: Mutex<BTreeMap<String, TopicConfig>>,
    queues: Mutex<HashMap<(String, i32), Vec<pb::StoredMessage>>>,
    offsets: Mutex<HashMap<(String, String, i32), u64>>,
    members: Mutex<BTreeMap<String, BTreeMap<String, Instant>>>,
    position: AtomicU64,
    cursor: AtomicU64,
    /// SendMessage requests that stored something.
    pub stored_requests: AtomicU64,
    /// Sends still to be stored but answered FLUSH_SLAVE_TIMEOUT without results, as a leader
    /// whose quorum did not confirm in time answers.
    pub unconfirmed_answers: AtomicU64,
}

impl GroupStore {
    pub fn new(broker_name: &str) -> Arc<Self> {
        Self::with_auto_create(broker_name, true)
    }

    /// A store that creates unknown topics on send only when `auto_create`.
    pub fn with_auto_create(broker_name: &str, auto_create: bool) -> Arc<Self> {
        Arc::new(Self {
            broker_name: broker_name.to_owned(),
            auto_create,
            topics: Mutex::default(),
            queues: Mutex::default(),
            offsets: Mutex::default(),
            members: Mutex::default(),
            position: AtomicU64::new(0),
            cursor: AtomicU64::new(0),
            stored_requests: AtomicU64::new(0),
            unconfirmed_answers: AtomicU64::new(0),
        })
    }

    pub fn create_topic(&self, topic: &str, queues: u32) {
        self.topics.lock().unwrap().insert(
            topic.to_owned(),
            TopicConfig {
                topic_name: topic.to_owned(),
                read_queue_nums: queues,
                write_queue_nums: queues,
                perm: 6,
                order: false,
            },
        );
    }

    /// Messages stored in one queue.
    pub fn queue(&self, topic: &str, queue_id: i32) -> Vec<pb::StoredMessage> {
        self.queues
            .lock()
            .unwrap()
            .get(&(topic.to_owned(), queue_id))
            .cloned()
            .unwrap_or_default()
    }

    /// Total messages stored for a topic.
    pub fn count(&self, topic: &str) -> usize {
        self.queues
            .lock()
            .unwrap()
            .iter()
            .filter(|((t, _), _)| t == topic)
            .map(|(_, v)| v.len())
            .sum()
    }

    pub fn committed(&self, group: &str, topic: &str, queue_id: i32) -> Option<u64> {
        self.offsets
            .lock()
            .unwrap()
            .get(&(group.to_owned(), topic.to_owned(), queue_id))
            .copied()
    }
}

/// How a replica answers.
#[derive(Debug, Clone)]
pub enum Role {
    Leader,
    /// NOT_LEADER with this hint (an empty address: no leader known).
    Follower {
        leader_addr: String,
        term: u64,
    },
}

/// One replica of a group.
pub struct FakeBroker {
    pub addr: String,
    pub store: Arc<GroupStore>,
    role: Arc<Mutex<Role>>,
    /// SendMessage requests received.
    pub send_requests: Arc<AtomicU64>,
    killer: Killer,
}

impl FakeBroker {
    pub async fn start(store: Arc<GroupStore>, role: Role) -> Self {
        let role = Arc::new(Mutex::new(role));
        let send_requests = Arc::new(AtomicU64::new(0));
        let service = BrokerImpl {
            store: Arc::clone(&store),
            role: Arc::clone(&role),
            send_requests: Arc::clone(&send_requests),
            addr: Arc::new(tokio::sync::OnceCell::new()),
        };
        let addr_cell = Arc::clone(&service.addr);
        let router =
            tonic::transport::Server::builder().add_service(BrokerServiceServer::new(service));
        let (addr, killer) = serve(router).await;
        // Message ids carry the broker's address, known only once it is bound.
        addr_cell.set(addr).unwrap();
        Self {
            addr: addr.to_string(),
            store,
            role,
            send_requests,
            killer,
        }
    }

    pub fn set_role(&self, role: Role) {
        *self.role.lock().unwrap() = role;
    }

    /// Closes the port and every connection, like `kill -9`.
    pub fn kill(&mut self) {
        self.killer.kill();
    }

    pub fn member(&self, broker_id: u64) -> GroupMember {
        GroupMember {
            broker_id,
            node_id: broker_id,
            broker_addr: self.addr.clone(),
            raft_role: match *self.role.lock().unwrap() {
                Role::Leader => pb::RaftRole::Leader as i32,
                Role::Follower { .. } => pb::RaftRole::Follower as i32,
            },
            ..Default::default()
        }
    }
}

impl Drop for FakeBroker {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A group route with `leader` (index into `replicas`) as leader.
pub fn group_route(
    name: &str,
    replicas: &[&FakeBroker],
    leader: Option<usize>,
    term: u64,
) -> GroupRoute {
    GroupRoute {
        cluster_name: CLUSTER.into(),
        broker_name: name.into(),
        members: replicas
            .iter()
            .enumerate()
            .map(|(i, b)| b.member(i as u64))
            .collect(),
        leader_node_id: leader.map(|l| l as u64),
        leader_addr: leader.map(|l| replicas[l].addr.clone()).unwrap_or_default(),
        term,
        replicas: Vec::new(),
    }
}

#[derive(Clone)]
struct BrokerImpl {
    store: Arc<GroupStore>,
    role: Arc<Mutex<Role>>,
    send_requests: Arc<AtomicU64>,
    addr: Arc<tokio::sync::OnceCell<SocketAddr>>,
}

impl BrokerImpl {
    /// NOT_LEADER unless this replica leads.
    fn leader_check(&self) -> Result<(), ResponseStatus> {
        match &*self.role.lock().unwrap() {
            Role::Leader => Ok(()),
            Role::Follower { leader_addr, term } => Err(ResponseStatus::not_leader(
                LeaderHint {
                    broker_name: self.store.broker_name.clone(),
                    leader_node_id: (!leader_addr.is_empty()).then_some(0),
                    leader_addr: leader_addr.clone(),
                    term: *term,
                },
                "not the leader",
            )),
        }
    }

    fn topic(&self, topic: &str) -> Option<TopicConfig> {
        self.store.topics.lock().unwrap().get(topic).cloned()
    }
}

fn not_exist(topic: &str) -> ResponseStatus {
    ResponseStatus::new(
        ResponseCode::TopicNotExist,
        format!("topic {topic} does not exist"),
    )
}

#[tonic::async_trait]
impl BrokerService for BrokerImpl {
    type SendMessageStreamStream =
        Pin<Box<dyn Stream<Item = Result<pb::SendStreamResponse, Status>> + Send>>;

    /// Each request of the stream is answered as a unary send would be.
    async fn send_message_stream(
        &self,
        request: Request<tonic::Streaming<pb::SendStreamRequest>>,
    ) -> Result<Response<Self::SendMessageStreamStream>, Status> {
        let this = self.clone();
        let mut incoming = request.into_inner();
        let (tx, rx) = tokio::sync::mpsc::channel(1024);
        tokio::spawn(async move {
            while let Ok(Some(req)) = incoming.message().await {
                let (this, tx) = (this.clone(), tx.clone());
                tokio::spawn(async move {
                    let request = Request::new(req.request.unwrap_or_default());
                    let reply = this
                        .send_message(request)
                        .await
                        .map(|r| pb::SendStreamResponse {
                            id: req.id,
                            response: Some(r.into_inner()),
                        });
                    let _ = tx.send(reply).await;
                });
            }
        });
        Ok(Response::new(Box::pin(
            tokio_stream::wrappers::ReceiverStream::new(rx),
        )))
    }

    async fn send_message(
        &self,
        request: Request<pb::SendMessageRequest>,
    ) -> Result<Response<pb::SendMessageResponse>, Status> {
        self.send_requests.fetch_add(1, Ordering::Relaxed);
        let req = request.into_inner();
        let reply = |status: ResponseStatus| {
            Ok(Response::new(pb::SendMessageResponse {
                status: Some(status),
                broker_name: self.store.broker_name.clone(),
                ..Default::default()
            }))
        };
        if let Err(status) = self.leader_check() {
            return reply(status);
        }
        let Some(first) = req.messages.first() else {
            return reply(ResponseStatus::new(
                ResponseCode::MessageIllegal,
                "no message",
            ));
        };
        let topic = first.topic.clone();
        let config = match self.topic(&topic) {
            Some(c) => c,
            None if self.store.auto_create => {
                self.store.create_topic(&topic, 4);
                self.topic(&topic).unwrap()
            }
            None => return reply(not_exist(&topic)),
        };
        let queue_id = if first.queue_id == ANY_QUEUE {
            (self.store.cursor.fetch_add(1, Ordering::Relaxed) % u64::from(config.write_queue_nums))
                as i32
        } else {
            first.queue_id
        };
        let addr = *self.addr.get().unwrap();
        let mut queues = self.store.queues.lock().unwrap();
        let queue = queues.entry((topic.clone(), queue_id)).or_default();
        let mut results = Vec::new();
        for m in req.messages {
            // A retried copy (same UNIQ_KEY) is stored once: answer with the first copy.
            let uniq_key = m.properties.get("UNIQ_KEY");
            if let Some(first) = queue
                .iter()
                .find(|s| uniq_key.is_some() && s.properties.get("UNIQ_KEY") == uniq_key)
            {
                results.push(pb::SendResult {
                    msg_id: first.msg_id.clone(),
                    queue_offset: first.queue_offset,
                    commit_log_offset: first.commit_log_offset,
                    log_id: None,
                });
                continue;
            }
            let pos = self.store.position.fetch_add(100, Ordering::Relaxed);
            let msg_id = OffsetMsgId::new(addr, pos).to_string();
            results.push(pb::SendResult {
                msg_id: msg_id.clone(),
                queue_offset: queue.len() as u64,
                commit_log_offset: pos,
                log_id: None,
            });
            queue.push(pb::StoredMessage {
                topic: m.topic,
                queue_id,
                tags: m.tags,
                keys: m.keys,
                properties: m.properties,
                body: m.body,
                born_timestamp_ms: m.born_timestamp_ms,
                born_host: m.born_host,
                store_timestamp_ms: m.born_timestamp_ms,
                msg_id,
                queue_offset: queue.len() as u64,
                commit_log_offset: pos,
                broker_name: self.store.broker_name.clone(),
                store_size: 100,
                store_host: addr.to_string(),
            });
        }
        self.store.stored_requests.fetch_add(1, Ordering::Relaxed);
        let unconfirmed = self
            .store
            .unconfirmed_answers
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1))
            .is_ok();
        if unconfirmed {
            return reply(ResponseStatus::new(
                ResponseCode::FlushSlaveTimeout,
                "the quorum did not confirm in time",
            ));
        }
        Ok(Response::new(pb::SendMessageResponse {
            status: Some(ResponseStatus::ok()),
            results,
            broker_name: self.store.broker_name.clone(),
            queue_id,
        }))
    }

    async fn pull_message(
        &self,
        request: Request<pb::PullMessageRequest>,
    ) -> Result<Response<pb::PullMessageResponse>, Status> {
        let req = request.into_inner();
        if self.topic(&req.topic).is_none() {
            return Ok(Response::new(pb::PullMessageResponse {
                status: Some(not_exist(&req.topic)),
                ..Default::default()
            }));
        }
        let deadline = Instant::now() + Duration::from_millis(u64::from(req.max_wait_ms));
        loop {
            let queue = self.store.queue(&req.topic, req.queue_id);
            let max = queue.len() as u64;
            if req.queue_offset > max {
                return Ok(Response::new(pb::PullMessageResponse {
                    status: Some(ResponseStatus::offset_out_of_range(
                        pb::OffsetOutOfRange {
                            boundary: pb::OffsetBoundary::AboveMax as i32,
                            requested_offset: req.queue_offset,
                            min_offset: 0,
                            max_offset: max,
                        },
                        "above max",
                    )),
                    next_begin_offset: max,
                    max_offset: max,
                    ..Default::default()
                }));
            }
            if req.queue_offset < max {
                let n = if req.max_count == 0 {
                    32
                } else {
                    req.max_count
                } as usize;
                let messages: Vec<_> = queue
                    .into_iter()
                    .skip(req.queue_offset as usize)
                    .take(n)
                    .collect();
                let next = req.queue_offset + messages.len() as u64;
                return Ok(Response::new(pb::PullMessageResponse {
                    status: Some(ResponseStatus::ok()),
                    messages,
                    next_begin_offset: next,
                    min_offset: 0,
                    max_offset: max,
                }));
            }
            if Instant::now() >= deadline {
                return Ok(Response::new(pb::PullMessageResponse {
                    status: Some(ResponseStatus::new(
                        ResponseCode::NoNewMessage,
                        "nothing new",
                    )),
                    next_begin_offset: max,
                    max_offset: max,
                    ..Default::default()
                }));
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    async fn commit_consumer_offset(
        &self,
        request: Request<pb::CommitConsumerOffsetRequest>,
    ) -> Result<Response<pb::CommitConsumerOffsetResponse>, Status> {
        if let Err(status) = self.leader_check() {
            return Ok(Response::new(pb::CommitConsumerOffsetResponse {
                status: Some(status),
            }));
        }
        let r = request.into_inner();
        self.store
            .offsets
            .lock()
            .unwrap()
            .insert((r.consumer_group, r.topic, r.queue_id), r.offset);
        Ok(Response::new(pb::CommitConsumerOffsetResponse {
            status: Some(ResponseStatus::ok()),
        }))
    }

    async fn query_consumer_offset(
        &self,
        request: Request<pb::QueryConsumerOffsetRequest>,
    ) -> Result<Response<pb::QueryConsumerOffsetResponse>, Status> {
        let r = request.into_inner();
        let offset = self
            .store
            .committed(&r.consumer_group, &r.topic, r.queue_id);
        Ok(Response::new(match offset {
            Some(offset) => pb::QueryConsumerOffsetResponse {
                status: Some(ResponseStatus::ok()),
                offset,
            },
            None => pb::QueryConsumerOffsetResponse {
                status: Some(ResponseStatus::new(ResponseCode::NotFound, "no offset")),
                offset: 0,
            },
        }))
    }

    async fn get_queue_offsets(
        &self,
        request: Request<pb::GetQueueOffsetsRequest>,
    ) -> Result<Response<pb::GetQueueOffsetsResponse>, Status> {
        let r = request.into_inner();
        if self.topic(&r.topic).is_none() {
            return Ok(Response::new(pb::GetQueueOffsetsResponse {
                status: Some(not_exist(&r.topic)),
                ..Default::default()
            }));
        }
        Ok(Response::new(pb::GetQueueOffsetsResponse {
            status: Some(ResponseStatus::ok()),
            min_offset: 0,
            max_offset: self.store.queue(&r.topic, r.queue_id).len() as u64,
        }))
    }

    async fn get_consume_stats(
        &self,
        request: Request<pb::GetConsumeStatsRequest>,
    ) -> Result<Response<pb::GetConsumeStatsResponse>, Status> {
        let r = request.into_inner();
        let offsets = self.store.offsets.lock().unwrap().clone();
        let mut stats: Vec<pb::ConsumeStat> = offsets
            .into_iter()
            .filter(|((g, t, _), _)| {
                (r.consumer_group.is_empty() || *g == r.consumer_group)
                    && (r.topic.is_empty() || *t == r.topic)
            })
            .map(|((g, t, q), o)| pb::ConsumeStat {
                broker_offset: self.store.queue(&t, q).len() as u64,
                consumer_group: g,
                topic: t,
                queue_id: q,
                consumer_offset: o,
                last_commit_timestamp_ms: 0,
            })
            .collect();
        stats.sort_by(|a, b| {
            (&a.consumer_group, &a.topic, a.queue_id).cmp(&(
                &b.consumer_group,
                &b.topic,
                b.queue_id,
            ))
        });
        Ok(Response::new(pb::GetConsumeStatsResponse {
            status: Some(ResponseStatus::ok()),
            stats,
        }))
    }

    async fn query_message_by_id(
        &self,
        request: Request<pb::QueryMessageByIdRequest>,
    ) -> Result<Response<pb::QueryMessageByIdResponse>, Status> {
        let id = request.into_inner().msg_id;
        let found = self
            .store
            .queues
            .lock()
            .unwrap()
            .values()
            .flatten()
            .find(|m| m.msg_id == id)
            .cloned();
        Ok(Response::new(match found {
            Some(m) => pb::QueryMessageByIdResponse {
                status: Some(ResponseStatus::ok()),
                message: Some(m),
            },
            None => pb::QueryMessageByIdResponse {
                status: Some(ResponseStatus::new(
                    ResponseCode::NotFound,
                    format!("no message {id}"),
                )),
                message: None,
            },
        }))
    }

    async fn broker_status(
        &self,
        _: Request<pb::BrokerStatusRequest>,
    ) -> Result<Response<pb::BrokerStatusResponse>, Status> {
        Ok(Response::new(pb::BrokerStatusResponse {
            status: Some(ResponseStatus::ok()),
            cluster_name: CLUSTER.into(),
            broker_name: self.store.broker_name.clone(),
            broker_addr: self.addr.get().map(|a| a.to_string()).unwrap_or_default(),
            ..Default::default()
        }))
    }

    async fn create_or_update_topic(
        &self,
        request: Request<pb::CreateOrUpdateTopicRequest>,
    ) -> Result<Response<pb::CreateOrUpdateTopicResponse>, Status> {
        if let Err(status) = self.leader_check() {
            return Ok(Response::new(pb::CreateOrUpdateTopicResponse {
                status: Some(status),
            }));
        }
        let config = request.into_inner().topic.unwrap_or_default();
        self.store
            .topics
            .lock()
            .unwrap()
            .insert(config.topic_name.clone(), config);
        Ok(Response::new(pb::CreateOrUpdateTopicResponse {
            status: Some(ResponseStatus::ok()),
        }))
    }

    async fn delete_topic(
        &self,
        request: Request<pb::DeleteTopicRequest>,
    ) -> Result<Response<pb::DeleteTopicResponse>, Status> {
        if let Err(status) = self.leader_check() {
            return Ok(Response::new(pb::DeleteTopicResponse {
                status: Some(status),
            }));
        }
        let topic = request.into_inner().topic;
        let removed = self.store.topics.lock().unwrap().remove(&topic);
        Ok(Response::new(pb::DeleteTopicResponse {
            status: Some(if removed.is_some() {
                ResponseStatus::ok()
            } else {
                not_exist(&topic)
            }),
        }))
    }

    async fn list_topics(
        &self,
        _: Request<pb::ListTopicsRequest>,
    ) -> Result<Response<pb::ListTopicsResponse>, Status> {
        Ok(Response::new(pb::ListTopicsResponse {
            status: Some(ResponseStatus::ok()),
            topics: self
                .store
                .topics
                .lock()
                .unwrap()
                .values()
                .cloned()
                .collect(),
        }))
    }

    async fn heartbeat_consumer(
        &self,
        request: Request<pb::HeartbeatConsumerRequest>,
    ) -> Result<Response<pb::HeartbeatConsumerResponse>, Status> {
        if let Err(status) = self.leader_check() {
            return Ok(Response::new(pb::HeartbeatConsumerResponse {
                status: Some(status),
                expire_after_ms: 0,
            }));
        }
        let r = request.into_inner();
        self.store
            .members
            .lock()
            .unwrap()
            .entry(r.consumer_group)
            .or_default()
            .insert(r.client_id, Instant::now());
        Ok(Response::new(pb::HeartbeatConsumerResponse {
            status: Some(ResponseStatus::ok()),
            expire_after_ms: 10_000,
        }))
    }

    async fn unregister_consumer(
        &self,
        request: Request<pb::UnregisterConsumerRequest>,
    ) -> Result<Response<pb::UnregisterConsumerResponse>, Status> {
        let r = request.into_inner();
        let removed = self
            .store
            .members
            .lock()
            .unwrap()
            .get_mut(&r.consumer_group)
            .and_then(|m| m.remove(&r.client_id));
        Ok(Response::new(pb::UnregisterConsumerResponse {
            status: Some(if removed.is_some() {
                ResponseStatus::ok()
            } else {
                ResponseStatus::new(ResponseCode::NotFound, "not a member")
            }),
        }))
    }

    async fn list_consumer_group_members(
        &self,
        request: Request<pb::ListConsumerGroupMembersRequest>,
    ) -> Result<Response<pb::ListConsumerGroupMembersResponse>, Status> {
        if let Err(status) = self.leader_check() {
            return Ok(Response::new(pb::ListConsumerGroupMembersResponse {
                status: Some(status),
                members: vec![],
            }));
        }
        let group = request.into_inner().consumer_group;
        let members = self
            .store
            .members
            .lock()
            .unwrap()
            .get(&group)
            .map(|m| {
                m.keys()
                    .map(|id| pb::ConsumerMember {
                        client_id: id.clone(),
                        ..Default::default()
                    })
                    .collect()
            })
            .unwrap_or_default();
        Ok(Response::new(pb::ListConsumerGroupMembersResponse {
            status: Some(ResponseStatus::ok()),
            members,
        }))
    }
}

/// A nameserver and, per group, one leader replica sharing the group's store, with `topic`
/// routed over every group (`queues` queues each).
pub struct FakeCluster {
    pub namesrv: FakeNameServer,
    pub groups: Vec<(Arc<GroupStore>, Vec<FakeBroker>)>,
}

impl FakeCluster {
    pub async fn start(groups: &[&str], topic: Option<(&str, u32)>) -> Self {
        let namesrv = FakeNameServer::start().await;
        let mut out = Vec::new();
        for name in groups {
            let store = GroupStore::new(name);
            if let Some((t, n)) = topic {
                store.create_topic(t, n);
            }
            let leader = FakeBroker::start(Arc::clone(&store), Role::Leader).await;
            namesrv.set_group(group_route(name, &[&leader], Some(0), 1));
            out.push((store, vec![leader]));
        }
        if let Some((t, n)) = topic {
            let routed: Vec<(&str, u32)> = groups.iter().map(|g| (*g, n)).collect();
            namesrv.set_topic(t, &routed);
        }
        Self {
            namesrv,
            groups: out,
        }
    }

    pub fn store(&self, i: usize) -> &Arc<GroupStore> {
        &self.groups[i].0
    }

    pub fn leader(&self, i: usize) -> &FakeBroker {
        &self.groups[i].1[0]
    }
}

/// Polls `check` every 10 ms until it holds or `timeout` passes.
pub async fn wait_until(what: &str, timeout: Duration, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
