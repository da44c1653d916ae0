//! [`Producer`]: sends messages to a topic's queues across broker groups, follows leaders
//! through `NOT_LEADER` hints and route changes, and retries per [`RetryPolicy`].

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use proto::v1::{self as pb, ResponseCode};
use proto::ANY_QUEUE;
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::cluster::Cluster;
use crate::error::ClientError;
use crate::message::{Message, MessageQueue, SendResult, SendStatus};
use crate::nameserver::{refused, status_code};
use crate::queue_selector::QueueSelector;
use crate::retry::{self, AttemptOutcome, NextStep, RetryPolicy, RetryState};
use crate::route_table::RouteTable;
use crate::transport::ClientOptions;

/// Pause before retrying a group that answered `SERVICE_NOT_AVAILABLE`, per failure so far.
const UNAVAILABLE_BACKOFF: Duration = Duration::from_millis(200);
/// How long a send waits for the route to announce a group's new leader before it asks
/// the group's other replicas itself (they answer NOT_LEADER with the leader's address).
const PROBE_AFTER: Duration = Duration::from_millis(500);

/// How a producer behaves.
#[derive(Debug, Clone)]
pub struct ProducerConfig {
    /// Producer group, informational (RocketMQ `producerGroup`).
    pub group: String,
    /// Time one send may take, retries included (RocketMQ `sendMsgTimeout`, 3 s). Each attempt
    /// gets a share of it ([`retry::attempt_timeout`]), so an unanswered one leaves time to
    /// retry on a new leader.
    pub send_timeout: Duration,
    /// Retry rules (RocketMQ `retryTimesWhenSendFailed` = 2).
    pub retry: RetryPolicy,
    /// Sends of [`Producer::send_async`] in flight at once; further calls wait for a slot.
    pub max_in_flight: usize,
}

impl Default for ProducerConfig {
    fn default() -> Self {
        Self {
            group: "DEFAULT_PRODUCER".to_owned(),
            send_timeout: Duration::from_secs(3),
            retry: RetryPolicy::default(),
            max_in_flight: 64,
        }
    }
}

/// Sends messages. Cheap to clone; clones share routes, channels and the in-flight limit.
#[derive(Clone)]
pub struct Producer {
    inner: Arc<Inner>,
}

struct Inner {
    cluster: Cluster,
    config: ProducerConfig,
    selector: Mutex<QueueSelector>,
    /// Slots of `send_async`; a slot is held until its send finishes.
    in_flight: Arc<Semaphore>,
}

/// Where the next attempt goes.
#[derive(Debug, Clone)]
struct Target {
    /// The group (for a topic without route: the group picked to create it).
    broker_name: String,
    /// Queue id within the group; `ANY_QUEUE` lets the broker choose.
    queue_id: i32,
    /// Address of the group's leader to send to.
    addr: String,
}

impl Producer {
    /// A producer on an open cluster connection.
    pub fn new(cluster: Cluster, config: ProducerConfig) -> Self {
        let slots = config.max_in_flight.max(1);
        Self {
            inner: Arc::new(Inner {
                cluster,
                config,
                selector: Mutex::new(QueueSelector::new()),
                in_flight: Arc::new(Semaphore::new(slots)),
            }),
        }
    }

    /// Connects to the nameservers of `namesrv` ("host:port;host:port") and returns a
    /// producer with `config`.
    pub async fn start(namesrv: &str, config: ProducerConfig) -> Result<Self, ClientError> {
        let cluster = Cluster::connect(namesrv, ClientOptions::default()).await?;
        Ok(Self::new(cluster, config))
    }

    /// The cluster connection this producer uses.
    pub fn cluster(&self) -> &Cluster {
        &self.inner.cluster
    }

    /// Sends one message and waits until it is stored (or the send gave up).
    pub async fn send(&self, message: Message) -> Result<SendResult, ClientError> {
        let mut results = self
            .send_messages(std::slice::from_ref(&message), None)
            .await?;
        results
            .pop()
            .ok_or_else(|| ClientError::Internal("the broker returned no send result".into()))
    }

    /// Sends messages of one topic as one batch to one queue: stored atomically, in order,
    /// with consecutive queue offsets. One result per message, in order.
    pub async fn send_batch(&self, messages: Vec<Message>) -> Result<Vec<SendResult>, ClientError> {
        self.send_messages(&messages, None).await
    }

    /// Sends messages to one given queue; only `NOT_LEADER` redirects and leader changes of
    /// that queue's group are followed.
    pub async fn send_to_queue(
        &self,
        messages: Vec<Message>,
        queue: &MessageQueue,
    ) -> Result<Vec<SendResult>, ClientError> {
        self.send_messages(&messages, Some(queue)).await
    }

    /// Starts sending one message in the background, once fewer than
    /// `config.max_in_flight` sends are in flight (it waits for a slot otherwise). The
    /// returned future resolves to the send's result.
    pub async fn send_async(&self, message: Message) -> Result<PendingSend, ClientError> {
        let permit = Arc::clone(&self.inner.in_flight)
            .acquire_owned()
            .await
            .map_err(|_| ClientError::Shutdown)?;
        let producer = self.clone();
        Ok(PendingSend(tokio::spawn(async move {
            let _slot = permit;
            producer.send(message).await
        })))
    }

    /// The send loop shared by every kind of send.
    async fn send_messages(
        &self,
        messages: &[Message],
        fixed: Option<&MessageQueue>,
    ) -> Result<Vec<SendResult>, ClientError> {
        // One unique key per message, kept across every retry: the broker stores a retried
        // copy of a message it already has only once (RocketMQ's UNIQ_KEY).
        let stamped: Vec<Message>;
        let messages = if messages
            .iter()
            .all(|m| m.properties.contains_key(crate::message::UNIQ_KEY))
        {
            messages
        } else {
            stamped = messages
                .iter()
                .cloned()
                .map(Message::with_uniq_key)
                .collect();
            &stamped[..]
        };
        let topic = check_batch(messages)?;
        let config = &self.inner.config;
        let cluster = &self.inner.cluster;
        let deadline = Instant::now() + config.send_timeout;
        let mut state = RetryState::default();
        let mut attempts = 0u32;
        let mut avoid: Option<String> = None;
        let mut target: Option<Target> = None;
        // The topic had no route: the broker picks the queue, and routes are refreshed after.
        let mut routeless = false;

        loop {
            let current = match target.take() {
                Some(t) => t,
                None => match self.choose(topic, fixed, avoid.as_deref(), deadline).await {
                    Ok((t, no_route)) => {
                        routeless = no_route;
                        t
                    }
                    Err(e) if attempts == 0 => return Err(e),
                    Err(e) => {
                        return Err(ClientError::SendFailed {
                            topic: topic.to_owned(),
                            attempts,
                            last: Box::new(e),
                        })
                    }
                },
            };
            attempts += 1;
            let request = pb::SendMessageRequest {
                messages: messages
                    .iter()
                    .map(|m| m.to_wire(current.queue_id, cluster.born_host()))
                    .collect(),
                producer_group: config.group.clone(),
            };
            let remaining = deadline.saturating_duration_since(Instant::now());
            let timeout = retry::attempt_timeout(config.send_timeout, remaining);
            let reply = cluster.send(&current.addr, request, timeout).await;

            let (outcome, error) = match reply {
                Ok(reply) => {
                    let code = status_code(&reply.status);
                    // A stored status comes with a result per message; without them the
                    // broker stopped waiting for its entry (see `retry::unconfirmed`).
                    let stored = SendStatus::from_code(code)
                        .filter(|_| code == ResponseCode::Ok || !reply.results.is_empty());
                    if let Some(status) = stored {
                        self.lock_selector().restore(&current.broker_name);
                        if routeless {
                            self.refresh_route_later(topic);
                        }
                        return results(topic, &current, status, reply, messages.len());
                    }
                    let error = refused(&current.addr, code, &reply.status);
                    let outcome = match code {
                        ResponseCode::NotLeader => {
                            let hint = reply.status.as_ref().and_then(|s| s.leader_hint());
                            if let Some(hint) = hint {
                                cluster.routes().note_leader(hint);
                            }
                            AttemptOutcome::NotLeader {
                                leader_addr: hint
                                    .map(|h| h.leader_addr.clone())
                                    .filter(|a| !a.is_empty() && *a != current.addr),
                            }
                        }
                        code if retry::unconfirmed(code) => {
                            AttemptOutcome::Unavailable { maybe_stored: true }
                        }
                        ResponseCode::TopicNotExist => {
                            let remark = match &error {
                                ClientError::Refused { remark, .. } => remark.clone(),
                                other => other.to_string(),
                            };
                            return Err(ClientError::TopicNotExist {
                                topic: topic.to_owned(),
                                remark: format!("{} answered: {remark}", current.addr),
                            });
                        }
                        _ => AttemptOutcome::Final,
                    };
                    (outcome, error)
                }
                Err(e) => (
                    AttemptOutcome::Unavailable {
                        maybe_stored: e.maybe_delivered(),
                    },
                    e,
                ),
            };

            let other_groups = fixed.is_none() && self.has_other_group(topic, &current.broker_name);
            let mut step = config.retry.decide(&mut state, &outcome, other_groups);
            if Instant::now() >= deadline && step != NextStep::Done {
                step = NextStep::GiveUp;
            }
            tracing::debug!(%topic, addr = %current.addr, error = %error, ?step, "send attempt failed");
            // No answer at all: a broken connection, or an attempt that ran out of time (a
            // frozen leader keeps its connections open and answers nothing).
            let unanswered = matches!(
                error,
                ClientError::Transport { .. } | ClientError::Timeout { .. }
            );
            match step {
                NextStep::Done => unreachable!("a stored reply returned above"),
                NextStep::GiveUp => {
                    return Err(ClientError::SendFailed {
                        topic: topic.to_owned(),
                        attempts,
                        last: Box::new(error),
                    })
                }
                NextStep::FollowLeader(addr) => target = Some(Target { addr, ..current }),
                NextStep::AwaitLeader => {
                    // An election is under way: the nameserver announces the winner, and
                    // the replica that answered learns it too, so ask it again soon.
                    let until = deadline.min(Instant::now() + PROBE_AFTER);
                    let addr = cluster
                        .routes()
                        .wait_leader_change(&current.broker_name, Some(&current.addr), until)
                        .await
                        .unwrap_or_else(|| current.addr.clone());
                    target = Some(Target { addr, ..current });
                }
                NextStep::OtherGroup => {
                    if matches!(outcome, AttemptOutcome::Unavailable { .. }) {
                        let leader = cluster.routes().leader_addr(&current.broker_name);
                        self.lock_selector().isolate(
                            &current.broker_name,
                            leader,
                            std::time::Instant::now(),
                        );
                    }
                    avoid = Some(current.broker_name);
                }
                NextStep::WaitThenRetry => {
                    // A leader that cannot be reached or does not answer is gone until a new
                    // one is elected: the route announces it, and meanwhile the group's other
                    // replicas can tell (they serve the send if they lead, or point at who
                    // does). One that answered "unavailable" may recover in place.
                    let routes = cluster.routes();
                    let members = routes.read(|t| t.member_addrs(&current.broker_name));
                    let probe = next_replica(&members, &current.addr);
                    let pause = match (unanswered, probe != current.addr) {
                        (true, true) => PROBE_AFTER,
                        (true, false) => config.send_timeout,
                        (false, _) => UNAVAILABLE_BACKOFF * state.failures,
                    };
                    let until = deadline.min(Instant::now() + pause);
                    let addr = match routes
                        .wait_leader_change(&current.broker_name, Some(&current.addr), until)
                        .await
                    {
                        Some(leader) => leader,
                        None if unanswered => probe,
                        None => current.addr.clone(),
                    };
                    target = Some(Target { addr, ..current });
                }
            }
        }
    }

    /// Picks the queue and leader of the next attempt. The second value is true when the
    /// topic has no route yet and the broker was left to pick the queue.
    async fn choose(
        &self,
        topic: &str,
        fixed: Option<&MessageQueue>,
        avoid: Option<&str>,
        deadline: Instant,
    ) -> Result<(Target, bool), ClientError> {
        let routes = self.inner.cluster.routes();
        if let Some(queue) = fixed {
            let addr = self.leader_before(&queue.broker_name, deadline).await?;
            return Ok((
                Target {
                    broker_name: queue.broker_name.clone(),
                    queue_id: queue.queue_id,
                    addr,
                },
                false,
            ));
        }
        let route = match routes.cached_topic_route(topic) {
            Some(route) => Some(route),
            None => match routes.refresh_topic(topic).await {
                Ok(route) => route,
                Err(e) => {
                    // Nameservers down: still try a known leader, the broker may create it.
                    tracing::debug!(%topic, error = %e, "route query failed");
                    None
                }
            },
        };
        let queues = route.as_ref().map(|r| r.write_queues()).unwrap_or_default();
        if queues.is_empty() {
            let (broker_name, addr) = self.any_leader(avoid).await?;
            let target = Target {
                broker_name,
                queue_id: ANY_QUEUE,
                addr,
            };
            return Ok((target, true));
        }
        // Groups without a leader (electing) are used only if no group has one.
        let led: Vec<MessageQueue> = queues
            .iter()
            .filter(|q| routes.leader_addr(&q.broker_name).is_some())
            .cloned()
            .collect();
        let candidates = if led.is_empty() { queues } else { led };
        let queue = self
            .select(&candidates, avoid)
            .ok_or_else(|| ClientError::Internal("no queue to select".into()))?;
        let addr = self.leader_before(&queue.broker_name, deadline).await?;
        Ok((
            Target {
                broker_name: queue.broker_name,
                queue_id: queue.queue_id,
                addr,
            },
            false,
        ))
    }

    /// The group's leader, waiting for one until `deadline`.
    async fn leader_before(
        &self,
        broker_name: &str,
        deadline: Instant,
    ) -> Result<String, ClientError> {
        let routes = self.inner.cluster.routes();
        if let Some(addr) = routes.leader_addr(broker_name) {
            return Ok(addr);
        }
        routes
            .wait_leader_change(broker_name, None, deadline)
            .await
            .ok_or_else(|| ClientError::NoLeader {
                broker_name: broker_name.to_owned(),
                detail: "no leader appeared before the send timeout".into(),
            })
    }

    /// Some group's leader (round-robin, outside `avoid` when possible), for a topic with no
    /// route yet.
    async fn any_leader(&self, avoid: Option<&str>) -> Result<(String, String), ClientError> {
        let routes = self.inner.cluster.routes();
        let mut led = self.led_groups();
        if led.is_empty() {
            routes.refresh_groups().await?;
            led = self.led_groups();
        }
        if led.is_empty() {
            return Err(ClientError::NoBrokers);
        }
        // The selector's round-robin serves groups as well: one pseudo-queue per group.
        let pseudo: Vec<MessageQueue> = led
            .iter()
            .map(|(g, _)| MessageQueue::new("", g, ANY_QUEUE))
            .collect();
        let pick = self
            .select(&pseudo, avoid)
            .map(|q| q.broker_name)
            .ok_or(ClientError::NoBrokers)?;
        led.into_iter()
            .find(|(g, _)| *g == pick)
            .ok_or(ClientError::NoBrokers)
    }

    /// (brokerName, leader address) of every group that has a leader.
    fn led_groups(&self) -> Vec<(String, String)> {
        self.inner.cluster.routes().read(RouteTable::leaders)
    }

    /// The selector's next queue among `candidates`, outside `avoid` when possible.
    fn select(&self, candidates: &[MessageQueue], avoid: Option<&str>) -> Option<MessageQueue> {
        let routes = self.inner.cluster.routes();
        self.lock_selector().select(
            candidates,
            avoid,
            |g| routes.leader_addr(g),
            std::time::Instant::now(),
        )
    }

    /// Whether `topic` has a writable group other than `broker_name` with a leader.
    fn has_other_group(&self, topic: &str, broker_name: &str) -> bool {
        let routes = self.inner.cluster.routes();
        match routes.cached_topic_route(topic) {
            Some(route) => route.groups.iter().any(|g| {
                g.broker_name != broker_name
                    && g.perm & proto::PERM_WRITE != 0
                    && g.write_queue_nums > 0
                    && g.leader_addr.is_some()
            }),
            None => self.led_groups().iter().any(|(g, _)| g != broker_name),
        }
    }

    /// Asks the nameserver for the route of a topic the broker just created, without
    /// holding up the send.
    fn refresh_route_later(&self, topic: &str) {
        let routes = self.inner.cluster.routes().clone();
        let topic = topic.to_owned();
        tokio::spawn(async move {
            if let Err(e) = routes.refresh_topic(&topic).await {
                tracing::debug!(%topic, error = %e, "route refresh after auto-create failed");
            }
        });
    }

    fn lock_selector(&self) -> std::sync::MutexGuard<'_, QueueSelector> {
        self.inner
            .selector
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }
}

/// A send started by [`Producer::send_async`]; resolves to its result.
pub struct PendingSend(JoinHandle<Result<SendResult, ClientError>>);

impl Future for PendingSend {
    type Output = Result<SendResult, ClientError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.0).poll(cx).map(|joined| match joined {
            Ok(result) => result,
            Err(e) if e.is_cancelled() => Err(ClientError::Shutdown),
            Err(e) => Err(ClientError::Internal(format!("send task failed: {e}"))),
        })
    }
}

/// The replica after `failed` in `members` (wrapping), or `failed` if it is the only one.
fn next_replica(members: &[String], failed: &str) -> String {
    let at = members.iter().position(|m| m == failed);
    let next = match at {
        Some(i) => members
            .iter()
            .cycle()
            .skip(i + 1)
            .take(members.len() - 1)
            .next(),
        None => members.first(),
    };
    next.cloned().unwrap_or_else(|| failed.to_owned())
}

/// Checks a batch before it goes anywhere; returns its topic.
fn check_batch(messages: &[Message]) -> Result<&str, ClientError> {
    let first = messages
        .first()
        .ok_or_else(|| ClientError::InvalidArgument("no message to send".into()))?;
    if first.topic.is_empty() {
        return Err(ClientError::InvalidArgument("the topic is empty".into()));
    }
    if let Some((i, m)) = messages
        .iter()
        .enumerate()
        .find(|(_, m)| m.topic != first.topic)
    {
        return Err(ClientError::InvalidArgument(format!(
            "message {i} is for topic {} but the batch is for {}: a batch goes to one topic",
            m.topic, first.topic
        )));
    }
    Ok(&first.topic)
}

/// The per-message results of a stored send.
fn results(
    topic: &str,
    target: &Target,
    status: SendStatus,
    reply: pb::SendMessageResponse,
    sent: usize,
) -> Result<Vec<SendResult>, ClientError> {
    if reply.results.len() != sent {
        return Err(ClientError::Internal(format!(
            "{} stored {sent} message(s) but returned {} result(s)",
            target.addr,
            reply.results.len()
        )));
    }
    let broker_name = if reply.broker_name.is_empty() {
        target.broker_name.clone()
    } else {
        reply.broker_name
    };
    let queue = MessageQueue::new(topic, broker_name, reply.queue_id);
    Ok(reply
        .results
        .into_iter()
        .map(|r| SendResult {
            status,
            msg_id: r.msg_id,
            queue: queue.clone(),
            queue_offset: r.queue_offset,
            commit_log_offset: r.commit_log_offset,
            broker_addr: target.addr.clone(),
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probes_the_next_replica() {
        let members = ["a".to_string(), "b".to_string(), "c".to_string()];
        assert_eq!(next_replica(&members, "b"), "c");
        assert_eq!(next_replica(&members, "c"), "a");
        assert_eq!(next_replica(&members, "x"), "a");
        assert_eq!(next_replica(&members[..1], "a"), "a");
        assert_eq!(next_replica(&[], "a"), "a");
    }

    #[test]
    fn batches_must_share_one_topic() {
        assert!(check_batch(&[]).is_err());
        assert!(check_batch(&[Message::new("", "x")]).is_err());
        let mixed = [Message::new("A", "x"), Message::new("B", "x")];
        assert!(check_batch(&mixed)
            .unwrap_err()
            .to_string()
            .contains("message 1"));
        assert_eq!(check_batch(&[Message::new("A", "x")]).unwrap(), "A");
    }
}
