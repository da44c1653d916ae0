//! [`Cluster`]: one connection to a raftmq cluster (route cache + broker channels), shared
//! by producers, consumers and the admin client, and the one way requests reach a group's
//! leader: follow `NOT_LEADER` hints, wait for a new leader when the old one is gone.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use proto::v1::{self as pb, ResponseCode, ResponseStatus};
use proto::BrokerServiceClient;
use tokio::time::Instant;
use tonic::transport::Channel;

use crate::error::ClientError;
use crate::nameserver::{refused, status_code, NameServerClient};
use crate::namesrv_list::NameServerList;
use crate::routes::Routes;
use crate::send_stream::SendStreams;
use crate::transport::{self, BrokerPool, ClientOptions};

/// After a failed request, how long to wait for the group's leader to change before trying
/// the same address again.
const RETRY_PAUSE: Duration = Duration::from_millis(200);
/// `NOT_LEADER` hints followed by one request before it waits for the nameserver instead.
const MAX_REDIRECTS: u32 = 5;

/// A reply that carries a [`ResponseStatus`] (every broker response does).
pub trait Reply {
    /// The reply's status.
    fn status(&self) -> &Option<ResponseStatus>;
}

macro_rules! impl_reply {
    ($($t:ty),* $(,)?) => {
        $(impl Reply for $t {
            fn status(&self) -> &Option<ResponseStatus> {
                &self.status
            }
        })*
    };
}

impl_reply!(
    pb::SendMessageResponse,
    pb::PullMessageResponse,
    pb::CommitConsumerOffsetResponse,
    pb::QueryConsumerOffsetResponse,
    pb::GetQueueOffsetsResponse,
    pb::GetConsumeStatsResponse,
    pb::QueryMessageByIdResponse,
    pb::BrokerStatusResponse,
    pb::CreateOrUpdateTopicResponse,
    pb::DeleteTopicResponse,
    pb::ListTopicsResponse,
    pb::HeartbeatConsumerResponse,
    pb::UnregisterConsumerResponse,
    pb::ListConsumerGroupMembersResponse,
);

/// Where reads (pulls, offsets) go.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ReadFrom {
    /// The group's leader (freshest data).
    #[default]
    Leader,
    /// Any live replica, spreading the load; falls back to the leader on failure.
    AnyReplica,
}

/// A connection to one raftmq cluster through its nameservers. Cheap to clone.
#[derive(Clone)]
pub struct Cluster {
    routes: Routes,
    pool: BrokerPool,
    /// Producers' sends go over one `SendMessageStream` per broker.
    send_streams: Arc<SendStreams>,
    born_host: String,
}

impl Cluster {
    /// Connects to the nameservers of `namesrv` ("host:port;host:port") and starts the route
    /// cache (see [`Routes::start`]).
    pub async fn connect(namesrv: &str, options: ClientOptions) -> Result<Self, ClientError> {
        Self::connect_list(namesrv.parse()?, options).await
    }

    /// Like [`Cluster::connect`] with a parsed list.
    pub async fn connect_list(
        namesrv: NameServerList,
        options: ClientOptions,
    ) -> Result<Self, ClientError> {
        let nameservers = NameServerClient::new(namesrv, options.clone())?;
        let routes = Routes::start(nameservers).await?;
        Ok(Self {
            routes,
            pool: BrokerPool::new(options),
            send_streams: Arc::default(),
            born_host: local_host_name(),
        })
    }

    /// The route cache.
    pub fn routes(&self) -> &Routes {
        &self.routes
    }

    /// The nameserver client.
    pub fn namesrv(&self) -> &NameServerClient {
        self.routes.namesrv()
    }

    /// The broker channel pool.
    pub fn pool(&self) -> &BrokerPool {
        &self.pool
    }

    /// The options the cluster was opened with.
    pub fn options(&self) -> &ClientOptions {
        self.pool.options()
    }

    /// What producers put in `Message.born_host`.
    pub fn born_host(&self) -> &str {
        &self.born_host
    }

    /// A client for the broker at `addr`.
    pub fn broker(&self, addr: &str) -> Result<BrokerServiceClient<Channel>, ClientError> {
        self.pool.client(addr)
    }

    /// Sends one SendMessage request to the broker at `addr` over its send stream, waiting up
    /// to `timeout` (opening the stream included); no retry.
    pub async fn send(
        &self,
        addr: &str,
        request: pb::SendMessageRequest,
        timeout: Duration,
    ) -> Result<pb::SendMessageResponse, ClientError> {
        let started = Instant::now();
        let opened = tokio::time::timeout(
            timeout,
            self.send_streams.get(addr, || self.pool.client(addr)),
        )
        .await;
        let stream = match opened {
            Ok(stream) => stream?,
            Err(_) => {
                return Err(ClientError::Timeout {
                    what: format!("opening a send stream to {addr}"),
                    after: timeout,
                })
            }
        };
        stream
            .send(request, timeout.saturating_sub(started.elapsed()))
            .await
    }

    /// Runs one request against the broker at `addr` with the unary deadline (no retry).
    pub async fn call_addr<T, F, Fut>(&self, addr: &str, what: &str, f: F) -> Result<T, ClientError>
    where
        F: FnOnce(BrokerServiceClient<Channel>) -> Fut,
        Fut: Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    {
        let client = self.broker(addr)?;
        transport::call(addr, what, self.options().request_timeout, f(client)).await
    }

    /// Runs an idempotent request on group `broker_name`'s leader: follows `NOT_LEADER`
    /// hints, and after a transport error or `SERVICE_NOT_AVAILABLE` waits for a new leader
    /// (or a short pause) and tries again, for up to `timeout` in all. Returns the address
    /// that answered and its reply, whatever its status other than those two.
    pub async fn on_leader<T, F, Fut>(
        &self,
        broker_name: &str,
        what: &str,
        timeout: Duration,
        f: F,
    ) -> Result<(String, T), ClientError>
    where
        T: Reply,
        F: Fn(BrokerServiceClient<Channel>) -> Fut,
        Fut: Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    {
        let deadline = Instant::now() + timeout;
        let mut addr = self.leader_or_wait(broker_name, None, deadline).await?;
        let mut redirects = 0;
        loop {
            let remaining = deadline.saturating_duration_since(Instant::now());
            let result = transport::call(&addr, what, remaining, f(self.broker(&addr)?)).await;
            let failure = match result {
                Ok(reply) => match status_code(reply.status()) {
                    ResponseCode::NotLeader => {
                        let hint = reply.status().as_ref().and_then(|s| s.leader_hint());
                        if let Some(hint) = hint {
                            self.routes.note_leader(hint);
                            if !hint.leader_addr.is_empty()
                                && hint.leader_addr != addr
                                && redirects < MAX_REDIRECTS
                            {
                                redirects += 1;
                                addr = hint.leader_addr.clone();
                                continue;
                            }
                        }
                        refused(&addr, ResponseCode::NotLeader, reply.status())
                    }
                    ResponseCode::ServiceNotAvailable => {
                        refused(&addr, ResponseCode::ServiceNotAvailable, reply.status())
                    }
                    _ => return Ok((addr, reply)),
                },
                Err(e) => e,
            };
            if Instant::now() >= deadline {
                return Err(failure);
            }
            tracing::debug!(group = broker_name, %addr, error = %failure, "{what} failed; waiting for the leader");
            let pause = deadline.min(Instant::now() + RETRY_PAUSE);
            addr = match self
                .routes
                .wait_leader_change(broker_name, Some(&addr), pause)
                .await
            {
                Some(leader) => leader,
                None if Instant::now() < deadline => {
                    // Same leader after the pause: try it again (a transient failure), or
                    // the recorded leader if the hint chain led astray.
                    self.routes.leader_addr(broker_name).unwrap_or(addr)
                }
                None => return Err(failure),
            };
        }
    }

    /// Runs an idempotent read on group `broker_name`: on a replica chosen per `from`,
    /// falling back to the leader (see [`Cluster::on_leader`]) if that fails.
    pub async fn on_reader<T, F, Fut>(
        &self,
        broker_name: &str,
        from: ReadFrom,
        what: &str,
        timeout: Duration,
        f: F,
    ) -> Result<(String, T), ClientError>
    where
        T: Reply,
        F: Fn(BrokerServiceClient<Channel>) -> Fut,
        Fut: Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    {
        if from == ReadFrom::AnyReplica {
            let replicas = self.routes.read(|t| t.member_addrs(broker_name));
            if !replicas.is_empty() {
                let addr = &replicas[rand::random_range(0..replicas.len())];
                let client = self.broker(addr)?;
                match transport::call(addr, what, timeout, f(client)).await {
                    Ok(reply)
                        if !matches!(
                            status_code(reply.status()),
                            ResponseCode::NotLeader | ResponseCode::ServiceNotAvailable
                        ) =>
                    {
                        return Ok((addr.clone(), reply))
                    }
                    Ok(_) => {}
                    Err(e) => {
                        tracing::debug!(%addr, error = %e, "{what} on a replica failed; asking the leader")
                    }
                }
            }
        }
        self.on_leader(broker_name, what, timeout, f).await
    }

    /// The group's leader from the cache, or the first one to appear before `deadline`.
    async fn leader_or_wait(
        &self,
        broker_name: &str,
        old: Option<&str>,
        deadline: Instant,
    ) -> Result<String, ClientError> {
        if let Some(leader) = self.routes.leader_addr(broker_name) {
            return Ok(leader);
        }
        self.routes
            .wait_leader_change(broker_name, old, deadline)
            .await
            .ok_or_else(|| ClientError::NoLeader {
                broker_name: broker_name.to_owned(),
                detail: format!(
                    "none recorded by the nameservers ({}) within {:?}",
                    self.namesrv().list(),
                    self.options().request_timeout
                ),
            })
    }
}

/// Turns a reply's status into `Ok(reply)` when it is OK, else the refusal error.
pub(crate) fn expect_ok<T: Reply>(addr: &str, reply: T) -> Result<T, ClientError> {
    match status_code(reply.status()) {
        ResponseCode::Ok => Ok(reply),
        code => Err(refused(addr, code, reply.status())),
    }
}

/// This machine's name, for `born_host` and client ids.
pub(crate) fn local_host_name() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".to_owned())
}
