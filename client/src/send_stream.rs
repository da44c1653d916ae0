//! Sends over `SendMessageStream`: one long-lived stream per broker, shared by every send to
//! it. A unary SendMessage pays for HTTP/2 headers, trailers and a new stream on both ends;
//! on the stream a send is one message each way, which is most of what a producer with many
//! sends in flight spends its CPU on.
//!
//! Each request carries an id; a reader task hands each reply to the send waiting for that
//! id. When the stream ends or breaks, every send still waiting fails with a transport error
//! that says it may have been delivered (the producer retries it with the same `UNIQ_KEY`),
//! and the next send opens a new stream.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use proto::v1 as pb;
use proto::BrokerServiceClient;
use tokio::sync::{mpsc, oneshot};
use tokio_stream::wrappers::UnboundedReceiverStream;
use tonic::transport::Channel;

use crate::error::ClientError;

type Reply = Result<pb::SendMessageResponse, tonic::Status>;

/// Sends waiting for their reply, by id; `None` once the stream is broken.
type Waiting = Mutex<Option<HashMap<u64, oneshot::Sender<Reply>>>>;

/// One open `SendMessageStream`.
pub struct SendStream {
    addr: String,
    requests: mpsc::UnboundedSender<pb::SendStreamRequest>,
    waiting: Arc<Waiting>,
    next_id: AtomicU64,
}

impl SendStream {
    /// Opens a stream to the broker at `addr` over `client`'s channel.
    pub async fn open(
        addr: &str,
        mut client: BrokerServiceClient<Channel>,
    ) -> Result<SendStream, ClientError> {
        let (requests, rx) = mpsc::unbounded_channel();
        let mut replies = client
            .send_message_stream(UnboundedReceiverStream::new(rx))
            .await
            .map_err(|status| ClientError::from_status(addr, &status))?
            .into_inner();
        let waiting: Arc<Waiting> = Arc::new(Mutex::new(Some(HashMap::new())));
        let reader_waiting = waiting.clone();
        let reader_addr = addr.to_owned();
        tokio::spawn(async move {
            let end = loop {
                match replies.message().await {
                    Ok(Some(reply)) => {
                        let waiter = lock(&reader_waiting)
                            .as_mut()
                            .and_then(|w| w.remove(&reply.id));
                        if let Some(waiter) = waiter {
                            let _ = waiter.send(Ok(reply.response.unwrap_or_default()));
                        }
                    }
                    Ok(None) => {
                        break tonic::Status::unavailable("the broker ended the send stream")
                    }
                    Err(status) => break status,
                }
            };
            tracing::debug!(addr = %reader_addr, status = %end, "send stream closed");
            let stranded = lock(&reader_waiting).take().unwrap_or_default();
            for (_, waiter) in stranded {
                let _ = waiter.send(Err(end.clone()));
            }
        });
        Ok(SendStream {
            addr: addr.to_owned(),
            requests,
            waiting,
            next_id: AtomicU64::new(0),
        })
    }

    /// Whether the stream has ended (a new one must be opened).
    pub fn is_broken(&self) -> bool {
        lock(&self.waiting).is_none()
    }

    /// Sends one request and waits up to `timeout` for its reply.
    pub async fn send(
        &self,
        request: pb::SendMessageRequest,
        timeout: Duration,
    ) -> Result<pb::SendMessageResponse, ClientError> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        {
            let mut waiting = lock(&self.waiting);
            let Some(waiting) = waiting.as_mut() else {
                return Err(self.broken(false));
            };
            waiting.insert(id, tx);
        }
        let forget = Forget {
            waiting: &self.waiting,
            id,
        };
        let message = pb::SendStreamRequest {
            id,
            request: Some(request),
        };
        if self.requests.send(message).is_err() {
            return Err(self.broken(false));
        }
        let outcome = match tokio::time::timeout(timeout, rx).await {
            Ok(Ok(Ok(reply))) => Ok(reply),
            Ok(Ok(Err(status))) => Err(ClientError::from_status(&self.addr, &status)),
            Ok(Err(_)) => Err(self.broken(true)),
            Err(_) => Err(ClientError::Timeout {
                what: format!("SendMessage on {}", self.addr),
                after: timeout,
            }),
        };
        drop(forget);
        outcome
    }

    fn broken(&self, maybe_delivered: bool) -> ClientError {
        ClientError::Transport {
            addr: self.addr.clone(),
            reason: "the send stream is closed".into(),
            maybe_delivered,
        }
    }
}

/// Removes a send from the waiting map however its wait ends (reply, timeout, cancel).
struct Forget<'a> {
    waiting: &'a Waiting,
    id: u64,
}

impl Drop for Forget<'_> {
    fn drop(&mut self) {
        if let Some(w) = lock(self.waiting).as_mut() {
            w.remove(&self.id);
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The stream to one address, if open; the async lock makes concurrent first sends wait for
/// one opening instead of opening several streams.
type Slot = Arc<tokio::sync::Mutex<Option<Arc<SendStream>>>>;

/// One [`SendStream`] per broker address, opened on first use and again after it breaks.
#[derive(Default)]
pub struct SendStreams {
    streams: Mutex<HashMap<String, Slot>>,
}

impl SendStreams {
    /// The open stream to `addr`, opening one over `client` if there is none (or it broke).
    pub async fn get(
        &self,
        addr: &str,
        client: impl FnOnce() -> Result<BrokerServiceClient<Channel>, ClientError>,
    ) -> Result<Arc<SendStream>, ClientError> {
        let slot = lock(&self.streams)
            .entry(addr.to_owned())
            .or_default()
            .clone();
        let mut slot = slot.lock().await;
        if let Some(stream) = slot.as_ref().filter(|s| !s.is_broken()) {
            return Ok(stream.clone());
        }
        let stream = Arc::new(SendStream::open(addr, client()?).await?);
        *slot = Some(stream.clone());
        Ok(stream)
    }
}
