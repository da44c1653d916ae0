//! [`GroupConsumer`]: a member of a consumer group that owns a share of a topic's queues
//! (clustering) or all of them (broadcasting), pulls them with long polling and hands the
//! messages out through [`GroupConsumer::poll`].
//!
//! How it stays correct while members come and go:
//! - every member heartbeats to every group's leader and lists the group's members there;
//!   each computes the same allocation ([`allocate_averagely`]) from the same sorted
//!   inputs, every `rebalance_interval` and whenever the routes change;
//! - a batch returned by `poll` counts as consumed when `poll` is called again (or on
//!   `commit`/`shutdown`), so a crash redelivers at most the batch being processed;
//! - consumed offsets are committed every `commit_interval`, and at once when a queue is
//!   given up and on shutdown, so a new owner redelivers at most what was consumed since
//!   the last commit (the uncommitted offsets), never skips anything;
//! - each ownership of a queue has a generation number: batches pulled under an ownership
//!   that has ended are dropped, not delivered, so a given-up queue is not consumed twice
//!   at the same time by the old and the new owner.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::join_all;
use proto::v1::{self as pb, StoredMessage};
use tokio::sync::{mpsc, Notify};

use crate::allocate::allocate_averagely;
use crate::cluster::{expect_ok, Cluster, ReadFrom};
use crate::error::ClientError;
use crate::message::MessageQueue;
use crate::offset_store::{LocalOffsetFile, OffsetTable};
use crate::pull_consumer::{PullConsumer, PullStatus, ALL_TAGS};
use crate::route_table::RouteTable;
use crate::task::AbortOnDrop;

/// Pause after a failed pull or offset lookup before trying again.
const PULL_RETRY_PAUSE: Duration = Duration::from_millis(500);

/// How a group shares a topic (RocketMQ's MessageModel).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MessageModel {
    /// Each message goes to one member: the queues are divided among the members, and
    /// offsets are committed to the brokers.
    #[default]
    Clustering,
    /// Every member reads every message; offsets are kept locally by each member.
    Broadcasting,
}

/// Where a group starts on a queue it has no committed offset for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ConsumeFromWhere {
    /// At the end: only messages sent from now on (RocketMQ's default).
    #[default]
    LastOffset,
    /// At the first retained message.
    FirstOffset,
}

/// How a group consumer behaves.
#[derive(Debug, Clone)]
pub struct GroupConsumerConfig {
    /// Consumer group name.
    pub group: String,
    /// Topic to consume.
    pub topic: String,
    /// Tag expression ("*" or "TagA || TagB").
    pub tags: String,
    /// Clustering or broadcasting.
    pub model: MessageModel,
    /// Start of a queue the group has no offset for.
    pub consume_from: ConsumeFromWhere,
    /// This member's id; `None` = `host@pid#random` (unique per instance).
    pub client_id: Option<String>,
    /// Period of heartbeats and rebalancing (RocketMQ: 20 s; here 1 s).
    pub rebalance_interval: Duration,
    /// Period of offset commits (RocketMQ: 5 s; here 1 s).
    pub commit_interval: Duration,
    /// Messages asked for by one pull.
    pub pull_batch: u32,
    /// How long the broker may hold a pull that finds nothing.
    pub long_poll: Duration,
    /// Pulled batches buffered ahead of `poll`, over all queues.
    pub buffered_batches: usize,
    /// Broadcasting only: where offsets are kept; `None` = in memory (lost on exit).
    pub local_offsets: Option<PathBuf>,
    /// Where pulls go.
    pub read_from: ReadFrom,
}

impl GroupConsumerConfig {
    /// Defaults for `group` consuming every tag of `topic`.
    pub fn new(group: impl Into<String>, topic: impl Into<String>) -> Self {
        Self {
            group: group.into(),
            topic: topic.into(),
            tags: ALL_TAGS.to_owned(),
            model: MessageModel::Clustering,
            consume_from: ConsumeFromWhere::LastOffset,
            client_id: None,
            rebalance_interval: Duration::from_secs(1),
            commit_interval: Duration::from_secs(1),
            pull_batch: 32,
            long_poll: Duration::from_secs(5),
            buffered_batches: 64,
            local_offsets: None,
            read_from: ReadFrom::Leader,
        }
    }
}

/// One pulled batch on its way to `poll` (or an offset change with no message).
struct Delivery {
    queue: MessageQueue,
    /// Ownership the batch was pulled under.
    generation: u64,
    messages: Vec<StoredMessage>,
    /// Consumed offset once the batch is taken.
    next_offset: u64,
    /// The offset jumps (out of range), possibly backwards.
    reset: bool,
}

/// What `poll` must acknowledge next time: the consumed offsets of what it returned.
#[derive(Debug, Clone)]
struct Ack {
    queue: MessageQueue,
    generation: u64,
    next_offset: u64,
    reset: bool,
}

/// A queue this member owns.
struct Owned {
    generation: u64,
    /// The queue's pull loop.
    _puller: AbortOnDrop,
}

#[derive(Default)]
struct State {
    owned: BTreeMap<MessageQueue, Owned>,
    offsets: OffsetTable,
    next_generation: u64,
    /// Acks of the batches the last `poll` returned.
    unacked: Vec<Ack>,
}

struct Inner {
    consumer: PullConsumer,
    config: GroupConsumerConfig,
    client_id: String,
    state: Mutex<State>,
    deliveries: mpsc::Sender<Delivery>,
    rebalance_now: Notify,
    /// Broadcasting: the offsets file and what it held at start.
    local: Option<(LocalOffsetFile, BTreeMap<String, u64>)>,
    /// Set (under the state lock) when the consumer stops: no queue is taken after it,
    /// even by a rebalance that was already running.
    closed: std::sync::atomic::AtomicBool,
}

/// A member of a consumer group. Call [`GroupConsumer::shutdown`] to leave cleanly
/// (commit, unregister); dropping it just stops its tasks.
pub struct GroupConsumer {
    inner: Arc<Inner>,
    received: tokio::sync::Mutex<mpsc::Receiver<Delivery>>,
    /// Heartbeat/rebalance and commit loops.
    tasks: Vec<AbortOnDrop>,
}

impl GroupConsumer {
    /// Joins the group: heartbeats, takes its share of queues and starts pulling.
    pub async fn start(cluster: Cluster, config: GroupConsumerConfig) -> Result<Self, ClientError> {
        if config.group.is_empty() || config.topic.is_empty() {
            return Err(ClientError::InvalidArgument(
                "a group consumer needs a group and a topic".into(),
            ));
        }
        let local = match (&config.model, &config.local_offsets) {
            (MessageModel::Broadcasting, Some(path)) => {
                let file = LocalOffsetFile::new(path);
                let stored = file.load()?;
                Some((file, stored))
            }
            _ => None,
        };
        let client_id = config.client_id.clone().unwrap_or_else(|| {
            format!(
                "{}@{}#{:08x}",
                crate::cluster::local_host_name(),
                std::process::id(),
                rand::random::<u32>()
            )
        });
        let (tx, rx) = mpsc::channel(config.buffered_batches.max(1));
        let consumer =
            PullConsumer::new(cluster, config.group.clone()).with_read_from(config.read_from);
        let inner = Arc::new(Inner {
            consumer,
            config,
            client_id,
            state: Mutex::new(State::default()),
            deliveries: tx,
            rebalance_now: Notify::new(),
            local,
            closed: std::sync::atomic::AtomicBool::new(false),
        });
        // The first round runs before returning, so the caller starts as a member.
        inner.heartbeat().await;
        if let Err(e) = inner.rebalance().await {
            tracing::warn!(group = %inner.config.group, error = %e, "first rebalance failed; retrying in the background");
        }
        let tasks = vec![
            AbortOnDrop(tokio::spawn(rebalance_loop(Arc::clone(&inner)))),
            AbortOnDrop(tokio::spawn(commit_loop(Arc::clone(&inner)))),
        ];
        Ok(Self {
            inner,
            received: tokio::sync::Mutex::new(rx),
            tasks,
        })
    }

    /// This member's client id.
    pub fn client_id(&self) -> &str {
        &self.inner.client_id
    }

    /// The queues this member owns now, sorted.
    pub fn assignment(&self) -> Vec<MessageQueue> {
        self.inner.lock().owned.keys().cloned().collect()
    }

    /// Asks for a rebalance now instead of at the next tick.
    pub fn rebalance_now(&self) {
        self.inner.rebalance_now.notify_one();
    }

    /// Marks what the previous call returned as consumed, then waits up to `timeout` for
    /// messages and returns what arrived (possibly from several queues, each in queue
    /// order); empty on timeout.
    pub async fn poll(&self, timeout: Duration) -> Result<Vec<StoredMessage>, ClientError> {
        self.inner.ack_unacked();
        let mut rx = self.received.lock().await;
        let deadline = tokio::time::Instant::now() + timeout;
        let mut messages = Vec::new();
        loop {
            let delivery = if messages.is_empty() {
                match tokio::time::timeout_at(deadline, rx.recv()).await {
                    Ok(Some(d)) => d,
                    Ok(None) => return Err(ClientError::Shutdown),
                    Err(_) => return Ok(messages),
                }
            } else {
                // Something to return: take only what is already buffered.
                match rx.try_recv() {
                    Ok(d) => d,
                    Err(_) => return Ok(messages),
                }
            };
            let mut state = self.inner.lock();
            if state.owned.get(&delivery.queue).map(|o| o.generation) != Some(delivery.generation) {
                // Pulled under an ownership that ended: the new owner delivers it.
                continue;
            }
            state.unacked.push(Ack {
                queue: delivery.queue,
                generation: delivery.generation,
                next_offset: delivery.next_offset,
                reset: delivery.reset,
            });
            messages.extend(delivery.messages);
            if messages.len() >= self.inner.config.pull_batch as usize * 4 {
                return Ok(messages);
            }
        }
    }

    /// Marks everything returned by `poll` as consumed and commits it now.
    pub async fn commit(&self) -> Result<(), ClientError> {
        self.inner.ack_unacked();
        self.inner.commit_all().await
    }

    /// Leaves the group: stops pulling, commits what was consumed (everything `poll`
    /// returned counts as consumed), and unregisters from every group's leader so the
    /// other members rebalance at once.
    pub async fn shutdown(mut self) -> Result<(), ClientError> {
        self.tasks.clear();
        self.inner.ack_unacked();
        self.inner.close();
        let committed = self.inner.commit_all().await;
        self.inner.unregister().await;
        committed
    }
}

impl Drop for GroupConsumer {
    fn drop(&mut self) {
        self.tasks.clear();
        self.inner.close();
    }
}

impl Inner {
    /// Stops every pull loop and refuses new queues. Pull loops hold the shared state, so
    /// this also breaks the reference cycle that would keep it alive.
    fn close(&self) {
        let owned = {
            let mut state = self.lock();
            self.closed
                .store(true, std::sync::atomic::Ordering::Relaxed);
            std::mem::take(&mut state.owned)
        };
        drop(owned);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn cluster(&self) -> &Cluster {
        self.consumer.cluster()
    }

    /// Applies the acks of the last `poll` to the offsets of queues still owned.
    fn ack_unacked(&self) {
        let mut state = self.lock();
        let acks = std::mem::take(&mut state.unacked);
        for ack in acks {
            if state.owned.get(&ack.queue).map(|o| o.generation) != Some(ack.generation) {
                continue;
            }
            if ack.reset {
                state.offsets.reset(&ack.queue, ack.next_offset);
            } else {
                state.offsets.consumed(&ack.queue, ack.next_offset);
            }
        }
    }

    /// Every group's leader (brokerName, address), for heartbeats and membership.
    fn leaders(&self) -> Vec<(String, String)> {
        self.cluster().routes().read(RouteTable::leaders)
    }

    fn model(&self) -> pb::MessageModel {
        match self.config.model {
            MessageModel::Clustering => pb::MessageModel::Clustering,
            MessageModel::Broadcasting => pb::MessageModel::Broadcasting,
        }
    }

    /// Announces this member to every group's leader.
    async fn heartbeat(&self) {
        let request = pb::HeartbeatConsumerRequest {
            consumer_group: self.config.group.clone(),
            client_id: self.client_id.clone(),
            subscriptions: vec![pb::Subscription {
                topic: self.config.topic.clone(),
                tag_expression: self.config.tags.clone(),
            }],
            message_model: self.model() as i32,
        };
        // A dead leader must not hold up the rebalance that follows for long.
        let timeout = self
            .cluster()
            .options()
            .request_timeout
            .min(Duration::from_secs(1));
        let beats = self.leaders().into_iter().map(|(group, _)| {
            let request = request.clone();
            async move {
                let result = self
                    .cluster()
                    .on_leader(&group, "HeartbeatConsumer", timeout, |mut c| {
                        let request = request.clone();
                        async move { c.heartbeat_consumer(request).await }
                    })
                    .await
                    .and_then(|(addr, reply)| expect_ok(&addr, reply));
                if let Err(e) = result {
                    tracing::debug!(%group, error = %e, "consumer heartbeat failed");
                }
            }
        });
        join_all(beats).await;
    }

    /// The group's members, as the union of what the leaders of the topic's groups know;
    /// `None` when none answered (then the allocation is left as it is).
    async fn members(&self, groups: &BTreeSet<String>) -> Option<Vec<String>> {
        let request = pb::ListConsumerGroupMembersRequest {
            consumer_group: self.config.group.clone(),
        };
        let timeout = self.cluster().options().request_timeout;
        let lists = join_all(groups.iter().map(|group| {
            let request = request.clone();
            async move {
                self.cluster()
                    .on_leader(group, "ListConsumerGroupMembers", timeout, |mut c| {
                        let request = request.clone();
                        async move { c.list_consumer_group_members(request).await }
                    })
                    .await
                    .and_then(|(addr, reply)| expect_ok(&addr, reply))
            }
        }))
        .await;
        let mut answered = false;
        let mut members = BTreeSet::new();
        for list in lists {
            match list {
                Ok(reply) => {
                    answered = true;
                    members.extend(reply.members.into_iter().map(|m| m.client_id));
                }
                Err(e) => tracing::debug!(error = %e, "listing consumer group members failed"),
            }
        }
        answered.then(|| members.into_iter().collect())
    }

    /// Recomputes this member's queues and starts or stops pulling accordingly.
    async fn rebalance(self: &Arc<Self>) -> Result<(), ClientError> {
        let topic = &self.config.topic;
        let Some(route) = self.cluster().routes().topic_route(topic).await? else {
            // No route (yet, or the nameservers restarted): keep what we have.
            return Ok(());
        };
        let all = route.read_queues();
        let mine: BTreeSet<MessageQueue> = match self.config.model {
            MessageModel::Broadcasting => all.into_iter().collect(),
            MessageModel::Clustering => {
                let groups = route.groups.iter().map(|g| g.broker_name.clone()).collect();
                let Some(members) = self.members(&groups).await else {
                    return Ok(());
                };
                allocate_averagely(&all, &members, &self.client_id)
                    .into_iter()
                    .collect()
            }
        };
        let (released, added) = {
            let mut state = self.lock();
            let released: Vec<MessageQueue> = state
                .owned
                .keys()
                .filter(|q| !mine.contains(*q))
                .cloned()
                .collect();
            let mut gone = Vec::new();
            for queue in &released {
                // Dropping the ownership aborts its pull loop.
                state.owned.remove(queue);
                if let Some(progress) = state.offsets.release(queue) {
                    if progress.committed != Some(progress.consumed) {
                        gone.push((queue.clone(), progress.consumed));
                    }
                }
            }
            let added: Vec<MessageQueue> = mine
                .iter()
                .filter(|q| !state.owned.contains_key(*q))
                .cloned()
                .collect();
            (gone, added)
        };
        // Commit what we consumed of the queues we give up before anyone else starts them.
        for (queue, offset) in &released {
            if let Err(e) = self.store_offset(queue, *offset).await {
                tracing::warn!(%queue, offset, error = %e, "commit on release failed");
            }
        }
        if !released.is_empty() || !added.is_empty() {
            tracing::info!(group = %self.config.group, client = %self.client_id, released = released.len(), added = added.len(), "rebalanced");
        }
        let mut state = self.lock();
        if self.closed.load(std::sync::atomic::Ordering::Relaxed) {
            return Ok(());
        }
        for queue in added {
            state.next_generation += 1;
            let generation = state.next_generation;
            let puller = tokio::spawn(pull_loop(Arc::clone(self), queue.clone(), generation));
            state.owned.insert(
                queue,
                Owned {
                    generation,
                    _puller: AbortOnDrop(puller),
                },
            );
        }
        Ok(())
    }

    /// Where to start on `queue`: the committed offset (broker or local file), else per
    /// `consume_from`. The flag tells whether that offset is already stored.
    async fn start_offset(&self, queue: &MessageQueue) -> Result<(u64, bool), ClientError> {
        let stored = match &self.local {
            Some((_, stored)) => LocalOffsetFile::offset_of(stored, queue),
            None if self.config.model == MessageModel::Broadcasting => None,
            None => self.consumer.query_offset(queue).await?,
        };
        if let Some(offset) = stored {
            return Ok((offset, true));
        }
        let range = self.consumer.queue_offsets(queue).await?;
        Ok(match self.config.consume_from {
            ConsumeFromWhere::FirstOffset => (range.min, false),
            ConsumeFromWhere::LastOffset => (range.max, false),
        })
    }

    /// Stores one queue's consumed offset: on its group's leader (clustering) or in the
    /// local file (broadcasting).
    async fn store_offset(&self, queue: &MessageQueue, offset: u64) -> Result<(), ClientError> {
        match self.config.model {
            MessageModel::Clustering => self.consumer.commit_offset(queue, offset).await,
            MessageModel::Broadcasting => match &self.local {
                Some((file, _)) => file.save(&BTreeMap::from([(queue.clone(), offset)])),
                None => Ok(()),
            },
        }
    }

    /// Commits every queue whose consumed offset is not stored yet; a queue whose commit
    /// failed stays pending and is tried again next time.
    async fn commit_all(&self) -> Result<(), ClientError> {
        let pending = self.lock().offsets.to_commit();
        if pending.is_empty() {
            return Ok(());
        }
        let results: Vec<Result<(), ClientError>> = match (&self.config.model, &self.local) {
            (MessageModel::Broadcasting, Some((file, _))) => {
                let offsets: BTreeMap<MessageQueue, u64> = pending.iter().cloned().collect();
                match file.save(&offsets) {
                    Ok(()) => pending.iter().map(|_| Ok(())).collect(),
                    Err(e) => return Err(e),
                }
            }
            // In-memory broadcasting offsets: nothing to store them in.
            (MessageModel::Broadcasting, None) => pending.iter().map(|_| Ok(())).collect(),
            (MessageModel::Clustering, _) => {
                join_all(
                    pending
                        .iter()
                        .map(|(q, o)| self.consumer.commit_offset(q, *o)),
                )
                .await
            }
        };
        let mut first_error = None;
        let mut state = self.lock();
        for ((queue, offset), result) in pending.iter().zip(results) {
            match result {
                Ok(()) => state.offsets.committed(queue, *offset),
                Err(e) => {
                    tracing::debug!(%queue, offset, error = %e, "offset commit failed");
                    first_error.get_or_insert(e);
                }
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    /// Leaves the group on every group's leader.
    async fn unregister(&self) {
        let request = pb::UnregisterConsumerRequest {
            consumer_group: self.config.group.clone(),
            client_id: self.client_id.clone(),
        };
        let timeout = self.cluster().options().request_timeout;
        join_all(self.leaders().into_iter().map(|(group, _)| {
            let request = request.clone();
            async move {
                let result = self
                    .cluster()
                    .on_leader(&group, "UnregisterConsumer", timeout, |mut c| {
                        let request = request.clone();
                        async move { c.unregister_consumer(request).await }
                    })
                    .await;
                if let Err(e) = result {
                    tracing::debug!(%group, error = %e, "unregister failed");
                }
            }
        }))
        .await;
    }
}

/// Heartbeats and rebalances every `rebalance_interval`, on route changes, and on demand.
async fn rebalance_loop(inner: Arc<Inner>) {
    let mut route_changes = inner.cluster().routes().subscribe();
    loop {
        tokio::select! {
            _ = tokio::time::sleep(inner.config.rebalance_interval) => {}
            changed = route_changes.changed() => {
                if changed.is_err() {
                    return;
                }
            }
            _ = inner.rebalance_now.notified() => {}
        }
        inner.heartbeat().await;
        if let Err(e) = inner.rebalance().await {
            tracing::debug!(group = %inner.config.group, error = %e, "rebalance failed");
        }
    }
}

/// Commits consumed offsets every `commit_interval`.
async fn commit_loop(inner: Arc<Inner>) {
    loop {
        tokio::time::sleep(inner.config.commit_interval).await;
        if let Err(e) = inner.commit_all().await {
            tracing::debug!(group = %inner.config.group, error = %e, "periodic commit failed");
        }
    }
}

/// Pulls one owned queue until its ownership ends (the task is aborted then).
async fn pull_loop(inner: Arc<Inner>, queue: MessageQueue, generation: u64) {
    let (mut next, stored) = loop {
        match inner.start_offset(&queue).await {
            Ok(start) => break start,
            Err(e) => {
                tracing::debug!(%queue, error = %e, "cannot find where to start; retrying");
                tokio::time::sleep(PULL_RETRY_PAUSE).await;
            }
        }
    };
    {
        let mut state = inner.lock();
        if state.owned.get(&queue).map(|o| o.generation) != Some(generation) {
            return;
        }
        state.offsets.track(queue.clone(), next, stored);
    }
    let config = &inner.config;
    loop {
        let pulled = inner
            .consumer
            .pull_with_tags(
                &queue,
                &config.tags,
                next,
                config.pull_batch,
                config.long_poll,
            )
            .await;
        let result = match pulled {
            Ok(r) => r,
            Err(e) => {
                tracing::debug!(%queue, offset = next, error = %e, "pull failed; retrying");
                tokio::time::sleep(PULL_RETRY_PAUSE).await;
                continue;
            }
        };
        let delivery = match result.status {
            PullStatus::NoNewMessage => continue,
            PullStatus::Found | PullStatus::NoMatchedMessage => Delivery {
                queue: queue.clone(),
                generation,
                messages: result.messages,
                next_offset: result.next_begin_offset,
                reset: false,
            },
            PullStatus::OffsetIllegal { below_min } => {
                let to = if below_min {
                    result.min_offset
                } else {
                    result.max_offset
                };
                tracing::warn!(%queue, offset = next, to, "offset out of range; moving");
                Delivery {
                    queue: queue.clone(),
                    generation,
                    messages: Vec::new(),
                    next_offset: to,
                    reset: true,
                }
            }
        };
        next = delivery.next_offset;
        if inner.deliveries.send(delivery).await.is_err() {
            return;
        }
    }
}
