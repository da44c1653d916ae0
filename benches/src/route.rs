//! The producer's view of a group: connections to the replica that leads, and how to follow
//! the leader when it moves (the NOT_LEADER hint first, else asking every replica's
//! `BrokerStatus`), retrying a send until it is acknowledged or a deadline passes.

use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use client::send_stream::SendStreams;
use proto::v1::{self as pb, ResponseCode};
use proto::BrokerServiceClient;
use tonic::transport::{Channel, Endpoint};

/// A broker client on one HTTP/2 connection.
pub type Client = BrokerServiceClient<Channel>;

/// Deadline of one send attempt (a retry follows).
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(5);
/// Deadline of one `BrokerStatus` question while looking for the leader.
const ASK_TIMEOUT: Duration = Duration::from_millis(300);
/// Pause before retrying when nobody knows a new leader yet (an election is under way).
const RETRY_PAUSE: Duration = Duration::from_millis(5);

/// A client on a lazy connection to `addr` ("host:port"): dialled at the first call,
/// re-dialled after a failure.
pub fn connect(addr: &str) -> Result<Client> {
    let endpoint = Endpoint::from_shared(format!("http://{addr}"))
        .with_context(|| format!("bad broker address {addr:?}"))?
        .tcp_nodelay(true)
        .connect_timeout(Duration::from_millis(500));
    Ok(BrokerServiceClient::new(endpoint.connect_lazy())
        .max_decoding_message_size(64 << 20)
        .max_encoding_message_size(64 << 20))
}

/// How sends travel to the broker.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Transport {
    /// One `SendMessageStream` per connection, as the client library's producer sends.
    Stream,
    /// One unary `SendMessage` call per send.
    Unary,
}

/// One HTTP/2 connection to the leader and its send stream.
struct Lane {
    client: Client,
    streams: SendStreams,
}

/// Connections to the replica believed to lead.
pub struct LeaderLink {
    /// Its client address.
    pub addr: Arc<str>,
    /// Several HTTP/2 connections, so one connection is not the bottleneck; a sender uses
    /// lane `n % lanes.len()`.
    lanes: Vec<Lane>,
    transport: Transport,
}

impl LeaderLink {
    fn open(addr: &str, lanes: usize, transport: Transport) -> Result<LeaderLink> {
        Ok(LeaderLink {
            addr: addr.into(),
            lanes: (0..lanes.max(1))
                .map(|_| {
                    Ok(Lane {
                        client: connect(addr)?,
                        streams: SendStreams::default(),
                    })
                })
                .collect::<Result<_>>()?,
            transport,
        })
    }

    /// Sends one request on lane `n`, waiting up to `timeout`.
    async fn send(
        &self,
        n: usize,
        req: &pb::SendMessageRequest,
        timeout: Duration,
    ) -> Result<pb::SendMessageResponse, String> {
        let lane = &self.lanes[n % self.lanes.len()];
        let outcome = match self.transport {
            Transport::Unary => {
                let mut client = lane.client.clone();
                match tokio::time::timeout(timeout, client.send_message(req.clone())).await {
                    Ok(Ok(resp)) => Ok(resp.into_inner()),
                    Ok(Err(e)) => Err(e.message().to_string()),
                    Err(_) => Err(format!("no answer in {timeout:?}")),
                }
            }
            Transport::Stream => {
                let opened = tokio::time::timeout(
                    timeout,
                    lane.streams.get(&self.addr, || Ok(lane.client.clone())),
                )
                .await;
                match opened {
                    Ok(Ok(stream)) => stream
                        .send(req.clone(), timeout)
                        .await
                        .map_err(|e| e.to_string()),
                    Ok(Err(e)) => Err(e.to_string()),
                    Err(_) => Err(format!("no send stream in {timeout:?}")),
                }
            }
        };
        outcome.map_err(|e| format!("{}: {e}", self.addr))
    }
}

/// A send that was acknowledged: status OK, or a degraded status that says the messages are
/// stored (`SLAVE_NOT_AVAILABLE`, `FLUSH_*_TIMEOUT` with a result per message), as a RocketMQ
/// producer returns it to its caller.
pub struct Acked {
    pub response: pb::SendMessageResponse,
    /// `Ok`, or the degraded status.
    pub code: ResponseCode,
    /// The replica that acknowledged it.
    pub leader: Arc<str>,
    /// When the acknowledgement arrived.
    pub at: Instant,
}

/// Follows a group's leader for any number of concurrent senders.
pub struct LeaderRoute {
    /// One status connection per replica, to ask who leads.
    replicas: Vec<(String, Client)>,
    lanes: usize,
    transport: Transport,
    current: RwLock<Arc<LeaderLink>>,
}

impl LeaderRoute {
    /// Finds the leader of the group whose replicas listen on `replicas`, and opens `lanes`
    /// connections to it.
    pub async fn discover(
        replicas: &[String],
        lanes: usize,
        transport: Transport,
        timeout: Duration,
    ) -> Result<LeaderRoute> {
        let replicas = replicas
            .iter()
            .map(|a| Ok((a.clone(), connect(a)?)))
            .collect::<Result<Vec<_>>>()?;
        let deadline = Instant::now() + timeout;
        let leader = loop {
            if let Some(addr) = ask_replicas(&replicas).await {
                break addr;
            }
            if Instant::now() > deadline {
                bail!("no replica of {replicas:?} named a leader within {timeout:?}");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        Ok(LeaderRoute {
            current: RwLock::new(Arc::new(LeaderLink::open(&leader, lanes, transport)?)),
            replicas,
            lanes,
            transport,
        })
    }

    /// The connections to the current leader.
    pub fn link(&self) -> Arc<LeaderLink> {
        let guard = self.current.read().unwrap_or_else(|p| p.into_inner());
        guard.clone()
    }

    /// Moves every sender to `addr`, unless another sender already did.
    fn switch_to(&self, addr: &str) {
        let mut guard = self.current.write().unwrap_or_else(|p| p.into_inner());
        if &*guard.addr == addr {
            return;
        }
        match LeaderLink::open(addr, self.lanes, self.transport) {
            Ok(link) => {
                tracing::info!(from = %guard.addr, to = addr, "following the leader");
                *guard = Arc::new(link);
            }
            Err(e) => tracing::warn!("cannot follow the leader to {addr}: {e:#}"),
        }
    }

    /// After `failed` could not take a send: go where the hint or the replicas say, or pause
    /// when they still name `failed` (the election has not finished).
    async fn follow(&self, failed: &str, hint: Option<String>) {
        let next = match hint.filter(|h| !h.is_empty() && h != failed) {
            Some(h) => Some(h),
            None => ask_replicas(&self.replicas).await.filter(|a| a != failed),
        };
        match next {
            Some(addr) => self.switch_to(&addr),
            None => tokio::time::sleep(RETRY_PAUSE).await,
        }
    }

    /// Sends `req` on lane `lane` of the leader until it is acknowledged, following the leader
    /// as it moves, until `give_up`. Every retry carries the same messages (the same
    /// `UNIQ_KEY`s), so the broker stores a retried message once. A refusal that a retry
    /// cannot fix (an illegal message, a full disk) is returned at once.
    pub async fn send(
        &self,
        lane: usize,
        req: &pb::SendMessageRequest,
        give_up: Instant,
    ) -> Result<Acked> {
        loop {
            let link = self.link();
            let budget = give_up
                .saturating_duration_since(Instant::now())
                .min(ATTEMPT_TIMEOUT);
            let mut hint = None;
            let last_error = match link.send(lane, req, budget).await {
                Ok(resp) => {
                    let status = resp.status.clone().unwrap_or_default();
                    let stored = status.code().message_stored()
                        && (status.code() == ResponseCode::Ok
                            || resp.results.len() == req.messages.len());
                    match status.code() {
                        code if stored => {
                            return Ok(Acked {
                                response: resp,
                                code,
                                leader: link.addr.clone(),
                                at: Instant::now(),
                            })
                        }
                        // Without its results the send may or may not be stored: a retry
                        // with the same UNIQ_KEYs stores each message once.
                        code if code.message_stored() => {
                            format!("{code:?} without results from {}", link.addr)
                        }
                        ResponseCode::NotLeader => {
                            hint = status.leader_hint().map(|h| h.leader_addr.clone());
                            format!("NOT_LEADER from {}", link.addr)
                        }
                        ResponseCode::ServiceNotAvailable => {
                            format!("SERVICE_NOT_AVAILABLE: {}", status.remark)
                        }
                        other => {
                            return Err(anyhow!(
                                "{} refused the send: {other:?} {}",
                                link.addr,
                                status.remark
                            ))
                        }
                    }
                }
                Err(e) => e,
            };
            if Instant::now() >= give_up {
                bail!("not acknowledged before the deadline; last error: {last_error}");
            }
            tracing::debug!("send retry: {last_error}");
            self.follow(&link.addr, hint).await;
        }
    }

    /// Creates (or updates) a topic on the leader, following NOT_LEADER.
    pub async fn create_topic(&self, topic: pb::TopicConfig, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            let link = self.link();
            let mut client = link.lanes[0].client.clone();
            let req = pb::CreateOrUpdateTopicRequest {
                topic: Some(topic.clone()),
            };
            let mut hint = None;
            let last_error =
                match tokio::time::timeout(ATTEMPT_TIMEOUT, client.create_or_update_topic(req))
                    .await
                {
                    Ok(Ok(resp)) => {
                        let status = resp.into_inner().status.unwrap_or_default();
                        if status.is_ok() {
                            return Ok(());
                        }
                        hint = status.leader_hint().map(|h| h.leader_addr.clone());
                        format!("{:?} {}", status.code(), status.remark)
                    }
                    Ok(Err(e)) => e.message().to_string(),
                    Err(_) => "no answer".to_string(),
                };
            if Instant::now() > deadline {
                bail!(
                    "cannot create topic {} on {}: {last_error}",
                    topic.topic_name,
                    link.addr
                );
            }
            self.follow(&link.addr, hint).await;
        }
    }
}

/// Asks every replica who leads; the leader named by the replica with the highest term
/// (a replica that leads itself names itself).
async fn ask_replicas(replicas: &[(String, Client)]) -> Option<String> {
    let mut best: Option<(u64, String)> = None;
    for (_, client) in replicas {
        let mut client = client.clone();
        let Ok(Ok(resp)) = tokio::time::timeout(
            ASK_TIMEOUT,
            client.broker_status(pb::BrokerStatusRequest {}),
        )
        .await
        else {
            continue;
        };
        let Some(raft) = resp.into_inner().raft else {
            continue;
        };
        if raft.leader_addr.is_empty() {
            continue;
        }
        if best
            .as_ref()
            .is_none_or(|(term, _)| raft.current_term > *term)
        {
            best = Some((raft.current_term, raft.leader_addr));
        }
    }
    best.map(|(_, addr)| addr)
}
