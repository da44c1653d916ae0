//! Unary calls to "any live nameserver" of a list: the last one that answered is asked
//! first, and on a transport error the next one is tried, so a nameserver kill costs a
//! client one failed call, not an outage.

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use proto::v1::{
    ClusterInfo, GetClusterInfoRequest, ListTopicNamesRequest, QueryRouteRequest,
    QueryRouteResponse, ResponseCode, ResponseStatus,
};
use proto::NameServiceClient;
use tonic::transport::Channel;

use crate::error::ClientError;
use crate::namesrv_list::NameServerList;
use crate::transport::{self, ClientOptions};

/// A client of the nameservers of one list.
#[derive(Clone)]
pub struct NameServerClient {
    inner: Arc<Inner>,
}

struct Inner {
    list: NameServerList,
    /// One lazily connected client per address, in list order.
    clients: Vec<NameServiceClient<Channel>>,
    /// Index of the nameserver that answered last: asked first next time.
    preferred: AtomicUsize,
    options: ClientOptions,
}

impl NameServerClient {
    /// A client for `list`; connects lazily, so this does no IO.
    pub fn new(list: NameServerList, options: ClientOptions) -> Result<Self, ClientError> {
        let clients = list
            .addrs()
            .iter()
            .map(|addr| {
                transport::channel(addr, &options).map(|c| {
                    NameServiceClient::new(c)
                        .max_decoding_message_size(transport::MAX_DECODING_MESSAGE_SIZE)
                })
            })
            .collect::<Result<_, _>>()?;
        Ok(Self {
            inner: Arc::new(Inner {
                list,
                clients,
                preferred: AtomicUsize::new(0),
                options,
            }),
        })
    }

    /// The list this client asks.
    pub fn list(&self) -> &NameServerList {
        &self.inner.list
    }

    /// The options channels were opened with.
    pub fn options(&self) -> &ClientOptions {
        &self.inner.options
    }

    /// The route of `topic`, or `None` when no live broker hosts it.
    pub async fn query_route(
        &self,
        topic: &str,
    ) -> Result<Option<QueryRouteResponse>, ClientError> {
        let (addr, response) = self
            .call("QueryRoute", |mut c| {
                let request = QueryRouteRequest {
                    topic: topic.to_owned(),
                };
                async move { c.query_route(request).await }
            })
            .await?;
        match status_code(&response.status) {
            ResponseCode::Ok => Ok(Some(response)),
            ResponseCode::TopicNotExist => Ok(None),
            code => Err(refused(&addr, code, &response.status)),
        }
    }

    /// Every cluster, group and member (`mqadmin clusterList`).
    pub async fn cluster_info(&self) -> Result<Vec<ClusterInfo>, ClientError> {
        let (addr, response) = self
            .call("GetClusterInfo", |mut c| async move {
                c.get_cluster_info(GetClusterInfoRequest {}).await
            })
            .await?;
        match status_code(&response.status) {
            ResponseCode::Ok => Ok(response.clusters),
            code => Err(refused(&addr, code, &response.status)),
        }
    }

    /// Names of every topic some live broker hosts, sorted (`mqadmin topicList`).
    pub async fn topic_names(&self, cluster: Option<&str>) -> Result<Vec<String>, ClientError> {
        let request = ListTopicNamesRequest {
            cluster_name: cluster.unwrap_or_default().to_owned(),
        };
        let (addr, response) = self
            .call("ListTopics", |mut c| {
                let request = request.clone();
                async move { c.list_topics(request).await }
            })
            .await?;
        match status_code(&response.status) {
            ResponseCode::Ok => Ok(response.topics),
            code => Err(refused(&addr, code, &response.status)),
        }
    }

    /// The nameserver to try on the `attempt`-th try (0 = the preferred one), with its
    /// address: the route watcher walks the list with it.
    pub(crate) fn nth(&self, attempt: usize) -> (&str, NameServiceClient<Channel>) {
        let n = self.inner.clients.len();
        let i = (self.inner.preferred.load(Ordering::Relaxed) + attempt) % n;
        (&self.inner.list.addrs()[i], self.inner.clients[i].clone())
    }

    /// Records that the nameserver at `attempt` (as passed to [`Self::nth`]) answered.
    pub(crate) fn prefer(&self, attempt: usize) {
        let n = self.inner.clients.len();
        let i = (self.inner.preferred.load(Ordering::Relaxed) + attempt) % n;
        self.inner.preferred.store(i, Ordering::Relaxed);
    }

    /// Runs `f` on the preferred nameserver, then on each other one until one answers.
    /// Returns the address that answered with its reply.
    async fn call<T, F, Fut>(&self, what: &str, f: F) -> Result<(String, T), ClientError>
    where
        F: Fn(NameServiceClient<Channel>) -> Fut,
        Fut: Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    {
        let mut last = None;
        for attempt in 0..self.inner.clients.len() {
            let (addr, client) = self.nth(attempt);
            let addr = addr.to_owned();
            match transport::call(&addr, what, self.inner.options.request_timeout, f(client)).await
            {
                Ok(reply) => {
                    self.prefer(attempt);
                    return Ok((addr, reply));
                }
                Err(e) => {
                    tracing::debug!(nameserver = %addr, error = %e, "{what} failed; trying the next nameserver");
                    last = Some(e);
                }
            }
        }
        Err(ClientError::NameServerUnreachable {
            addrs: self.inner.list.to_string(),
            reason: last.map_or_else(|| "no address".to_owned(), |e| e.to_string()),
        })
    }
}

/// The code of an optional status; a missing status reads as UNSPECIFIED (never OK).
pub(crate) fn status_code(status: &Option<ResponseStatus>) -> ResponseCode {
    status
        .as_ref()
        .map_or(ResponseCode::Unspecified, |s| s.code())
}

/// The error for a non-OK status from `addr`.
pub(crate) fn refused(
    addr: &str,
    code: ResponseCode,
    status: &Option<ResponseStatus>,
) -> ClientError {
    ClientError::Refused {
        addr: addr.to_owned(),
        code,
        remark: status
            .as_ref()
            .map(|s| s.remark.clone())
            .filter(|r| !r.is_empty())
            .unwrap_or_else(|| "no remark".to_owned()),
    }
}
