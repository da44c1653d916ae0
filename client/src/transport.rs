//! gRPC plumbing shared by every client: how a channel is opened, the pool of broker
//! channels, and one way to run a call with a deadline.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use proto::BrokerServiceClient;
use tonic::transport::{Channel, Endpoint};

use crate::error::ClientError;

/// Timeouts and switches shared by the producer, the consumers and the admin client.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// How long opening a TCP connection may take before the address counts as down.
    pub connect_timeout: Duration,
    /// Deadline of one unary call (nameserver queries, offsets, admin).
    pub request_timeout: Duration,
    /// Keep the route cache current with `WatchRoutes` (producers and consumers); one-shot
    /// tools may turn it off and use `QueryRoute` alone.
    pub watch_routes: bool,
    /// How long starting a client waits for the first route snapshot before it falls back to
    /// unary queries.
    pub route_ready_timeout: Duration,
}

impl Default for ClientOptions {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(1),
            request_timeout: Duration::from_secs(3),
            watch_routes: true,
            route_ready_timeout: Duration::from_secs(2),
        }
    }
}

/// Largest reply a client accepts: a pull of 32 messages of RocketMQ's 4 MiB maximum size
/// must fit (tonic's default limit is 4 MiB for the whole reply).
pub(crate) const MAX_DECODING_MESSAGE_SIZE: usize = 256 << 20;

/// A lazily connected channel to `addr` ("host:port"); nothing is dialled until first use,
/// and the channel reconnects by itself after the peer comes back.
pub(crate) fn channel(addr: &str, options: &ClientOptions) -> Result<Channel, ClientError> {
    let endpoint = Endpoint::from_shared(format!("http://{addr}"))
        .map_err(|e| ClientError::InvalidArgument(format!("bad address {addr:?}: {e}")))?;
    Ok(endpoint
        .connect_timeout(options.connect_timeout)
        .tcp_nodelay(true)
        // Finds a dead peer on an idle connection (a killed leader whose socket stays open).
        .http2_keep_alive_interval(Duration::from_secs(5))
        .keep_alive_timeout(Duration::from_secs(5))
        .keep_alive_while_idle(true)
        .connect_lazy())
}

/// Runs one gRPC call against `addr`, failing with [`ClientError::Timeout`] after `timeout`
/// and with [`ClientError::Transport`] on a transport error.
pub(crate) async fn call<T, Fut>(
    addr: &str,
    what: &str,
    timeout: Duration,
    fut: Fut,
) -> Result<T, ClientError>
where
    Fut: Future<Output = Result<tonic::Response<T>, tonic::Status>>,
{
    match tokio::time::timeout(timeout, fut).await {
        Ok(Ok(response)) => Ok(response.into_inner()),
        Ok(Err(status)) => Err(ClientError::from_status(addr, &status)),
        Err(_) => Err(ClientError::Timeout {
            what: format!("{what} on {addr}"),
            after: timeout,
        }),
    }
}

/// One channel per broker address, opened on first use and shared by every request to
/// that broker (HTTP/2 multiplexes them).
#[derive(Clone)]
pub struct BrokerPool {
    options: ClientOptions,
    channels: Arc<Mutex<HashMap<String, Channel>>>,
}

impl BrokerPool {
    /// An empty pool.
    pub fn new(options: ClientOptions) -> Self {
        Self {
            options,
            channels: Arc::default(),
        }
    }

    /// The options channels are opened with.
    pub fn options(&self) -> &ClientOptions {
        &self.options
    }

    /// A client for the broker at `addr`, reusing its channel.
    pub fn client(&self, addr: &str) -> Result<BrokerServiceClient<Channel>, ClientError> {
        let mut channels = self.channels.lock().unwrap_or_else(|p| p.into_inner());
        let channel = match channels.get(addr) {
            Some(c) => c.clone(),
            None => {
                let c = channel(addr, &self.options)?;
                channels.insert(addr.to_owned(), c.clone());
                c
            }
        };
        Ok(BrokerServiceClient::new(channel).max_decoding_message_size(MAX_DECODING_MESSAGE_SIZE))
    }
}
