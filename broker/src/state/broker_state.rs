//! [`BrokerState`]: the read side of the state machine, shared with the gRPC services.
//!
//! The state machine applies a batch of entries under one short write lock (all log reads
//! happen before it is taken); readers take the read lock just long enough to copy out what
//! they asked for, so neither side waits on the other for long. After each batch the last
//! applied index is published on a watch channel, which is how a pull at the end of a queue
//! long-polls without spinning.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, RwLock, RwLockReadGuard, RwLockWriteGuard};

use proto::v1::TopicConfig;
use tokio::sync::watch;

use super::applied::AppliedState;
use super::consume_queue::CqUnit;
use super::snapshot::{QueueRange, SnapshotImage};
use crate::raft::typ::{LogId, NodeId, StoredMembership};

/// A state digest is recorded at every applied index that is a multiple of this, so replicas
/// that are not at the same index right now can still be compared at one.
pub const DIGEST_EVERY: u64 = 1024;
/// How many of those recorded digests are kept.
const DIGEST_CHECKPOINTS: usize = 16;

/// A cloneable read handle on the applied state: topics, consume queues, consumer offsets.
/// Everything it returns is committed (consumers never see an entry a failover could undo).
#[derive(Clone)]
pub struct BrokerState {
    shared: Arc<Shared>,
}

struct Shared {
    applied: RwLock<AppliedState>,
    /// The last applied index (0 before anything is applied): a pull at the end of a queue
    /// waits on it for new messages.
    applied_index: watch::Sender<u64>,
    /// Bumped when an applied entry created, changed or deleted a topic: the nameserver
    /// registration sends the new topic set at once instead of with the next heartbeat.
    topic_changes: watch::Sender<u64>,
    /// The state digest at the last [`DIGEST_CHECKPOINTS`] applied indexes that are multiples
    /// of [`DIGEST_EVERY`], newest last.
    checkpoints: Mutex<VecDeque<(LogId, u64)>>,
}

impl BrokerState {
    pub(crate) fn new(state: AppliedState) -> Self {
        let index = state.last_applied.map_or(0, |l| l.index);
        Self {
            shared: Arc::new(Shared {
                applied: RwLock::new(state),
                applied_index: watch::Sender::new(index),
                topic_changes: watch::Sender::new(0),
                checkpoints: Mutex::default(),
            }),
        }
    }

    pub(crate) fn read(&self) -> RwLockReadGuard<'_, AppliedState> {
        // A panic while holding the lock cannot leave the state half-applied (applying
        // never fails part-way), so a poisoned lock is still good to use.
        self.shared
            .applied
            .read()
            .unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn write(&self) -> RwLockWriteGuard<'_, AppliedState> {
        self.shared
            .applied
            .write()
            .unwrap_or_else(|p| p.into_inner())
    }

    /// Wakes every subscriber: the state has moved on to `last_applied`.
    pub(crate) fn publish_applied(&self, last_applied: Option<LogId>) {
        // `send_replace` notifies even when the value is unchanged and works with no
        // receiver at all.
        self.shared
            .applied_index
            .send_replace(last_applied.map_or(0, |l| l.index));
    }

    /// Records the digest the state had right after applying `log_id`.
    pub(crate) fn record_checkpoint(&self, log_id: LogId, digest: u64) {
        let mut cps = self
            .shared
            .checkpoints
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        // After a snapshot install or a truncation the log can go back: keep the newest
        // digest for an index only.
        cps.retain(|(l, _)| l.index < log_id.index);
        cps.push_back((log_id, digest));
        while cps.len() > DIGEST_CHECKPOINTS {
            cps.pop_front();
        }
    }

    /// The state digest now, with the last applied log id it holds for (see
    /// [`AppliedState::digest`]).
    pub fn digest(&self) -> (Option<LogId>, u64) {
        let st = self.read();
        (st.last_applied, st.digest())
    }

    /// The digests recorded at multiples of `DIGEST_EVERY`, newest first.
    pub fn digest_checkpoints(&self) -> Vec<(LogId, u64)> {
        let cps = self
            .shared
            .checkpoints
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        cps.iter().rev().copied().collect()
    }

    /// Records that applied entries changed the topic set (see [`BrokerState::topic_changes`]).
    pub(crate) fn note_topics_changed(&self) {
        self.shared.topic_changes.send_modify(|n| *n += 1);
    }

    /// A receiver that changes whenever applied entries change the topic set.
    pub fn topic_changes(&self) -> watch::Receiver<u64> {
        self.shared.topic_changes.subscribe()
    }

    /// The topic's config, if the topic exists.
    pub fn topic(&self, name: &str) -> Option<TopicConfig> {
        self.read().topics.get(name).cloned()
    }

    /// Every topic, ordered by name.
    pub fn topics(&self) -> Vec<TopicConfig> {
        self.read().topics.list()
    }

    /// The readable range of a queue: (min offset, max offset), max being the offset the
    /// next message gets. A queue of an existing topic that has no message yet is `(0, 0)`;
    /// `None` for an unknown topic or a queue id beyond its queue counts.
    pub fn queue_offsets(&self, topic: &str, queue_id: u32) -> Option<(u64, u64)> {
        let st = self.read();
        if let Some(q) = st.queue(topic, queue_id) {
            return Some((q.min_offset(), q.max_offset()));
        }
        let config = st.topics.get(topic)?;
        (queue_id < config.read_queue_nums.max(config.write_queue_nums)).then_some((0, 0))
    }

    /// Every consume queue that holds (or held) a message, with its range.
    pub fn queues(&self) -> Vec<QueueRange> {
        self.read().queue_ranges()
    }

    /// Up to `max_count` units of a queue from `from_offset` on (starting at the min offset
    /// if `from_offset` is below it); empty for an unknown queue or at the end.
    pub fn units(
        &self,
        topic: &str,
        queue_id: u32,
        from_offset: u64,
        max_count: u32,
    ) -> Vec<CqUnit> {
        self.read()
            .queue(topic, queue_id)
            .map(|q| q.units(from_offset, max_count as usize))
            .unwrap_or_default()
    }

    /// The queue offset of the message whose record is at log `position` (message id lookups).
    pub fn queue_offset_of(&self, topic: &str, queue_id: u32, position: u64) -> Option<u64> {
        self.read()
            .queue(topic, queue_id)?
            .offset_of_position(position)
    }

    /// The next offset `group` consumes from the queue, if it committed one.
    pub fn consumer_offset(&self, group: &str, topic: &str, queue_id: u32) -> Option<u64> {
        self.read().offsets.get(group, topic, queue_id)
    }

    /// When `group` last committed an offset of the queue (ms since the epoch), if known.
    pub fn consumer_offset_committed_at(
        &self,
        group: &str,
        topic: &str,
        queue_id: u32,
    ) -> Option<u64> {
        self.read().offsets.committed_at(group, topic, queue_id)
    }

    /// Every offset `group` committed, as (topic, queue id, next offset), ordered.
    pub fn group_offsets(&self, group: &str) -> Vec<(String, u32, u64)> {
        self.read().offsets.group(group)
    }

    /// The consumer groups that committed at least one offset, ordered.
    pub fn consumer_groups(&self) -> Vec<String> {
        self.read().offsets.groups()
    }

    /// The retry memory's settings as applied (the last DEDUP entry's, or the defaults).
    pub fn duplicate_memory(&self) -> crate::command::DedupSettings {
        self.read().recent.settings()
    }

    /// The last applied log id.
    pub fn last_applied(&self) -> Option<LogId> {
        self.read().last_applied
    }

    /// The group's membership as of the last applied membership entry.
    pub fn membership(&self) -> StoredMembership {
        self.read().membership.clone()
    }

    /// The address a member registered in the membership (its replication address).
    pub fn node_addr(&self, node_id: NodeId) -> Option<String> {
        let st = self.read();
        st.membership
            .membership()
            .get_node(&node_id)
            .map(|n| n.addr.clone())
    }

    /// The client address (`host:port` of its listenPort) replica `node_id` announced through
    /// the log, if it did: where NOT_LEADER replies send clients.
    pub fn node_client_addr(&self, node_id: NodeId) -> Option<String> {
        self.read().client_addrs.get(&node_id).cloned()
    }

    /// A receiver of the last applied index (0 before anything is applied). Its `changed()`
    /// resolves after every applied batch or installed snapshot: a pull at `max_offset`
    /// subscribes, checks the queue, and waits on it.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.shared.applied_index.subscribe()
    }

    /// The applied state in snapshot form (topics, queue ranges, consumer offsets).
    pub fn image(&self) -> SnapshotImage {
        self.read().image()
    }
}

impl std::fmt::Debug for BrokerState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let st = self.read();
        f.debug_struct("BrokerState")
            .field("last_applied", &st.last_applied)
            .field("topics", &st.topics.len())
            .field(
                "queues",
                &st.queues.values().map(|q| q.len()).sum::<usize>(),
            )
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::applied::{LocatedRecord, Prepared};
    use openraft::CommittedLeaderId;
    use std::time::Duration;

    fn log_id(index: u64) -> LogId {
        LogId::new(CommittedLeaderId::new(1, 0), index)
    }

    #[tokio::test]
    async fn reads_and_wakeups() {
        let state = BrokerState::new(AppliedState::default());
        let mut rx = state.subscribe();
        assert_eq!(*rx.borrow(), 0);
        {
            let mut st = state.write();
            st.apply(
                log_id(1),
                Prepared::UpsertTopic(TopicConfig {
                    topic_name: "T".into(),
                    read_queue_nums: 4,
                    write_queue_nums: 2,
                    perm: 6,
                    order: false,
                }),
            );
            st.apply(
                log_id(2),
                Prepared::Send {
                    topic: "T".into(),
                    queue_id: 1,
                    store_time_ms: Some(1),
                    records: (0..5)
                        .map(|i| LocatedRecord {
                            position: 100 * (i + 1),
                            size: 60,
                            tags_hash: i,
                        })
                        .collect(),
                    uniq_keys: Vec::new(),
                },
            );
        }
        // A waiter parked before the batch is published wakes up after it.
        let waiter = tokio::spawn(async move { rx.changed().await.map(|()| *rx.borrow()) });
        tokio::task::yield_now().await;
        state.publish_applied(state.last_applied());
        let woke = tokio::time::timeout(Duration::from_secs(5), waiter)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(woke.unwrap(), 2);

        assert_eq!(state.topic("T").map(|t| t.read_queue_nums), Some(4));
        assert_eq!(state.topics().len(), 1);
        assert_eq!(state.queue_offsets("T", 1), Some((0, 5)));
        assert_eq!(state.queue_offsets("T", 3), Some((0, 0)));
        assert_eq!(state.queue_offsets("T", 4), None);
        assert_eq!(state.queue_offsets("U", 0), None);
        let units = state.units("T", 1, 3, 10);
        assert_eq!(
            units
                .iter()
                .map(|u| (u.queue_offset, u.position))
                .collect::<Vec<_>>(),
            [(3, 400), (4, 500)]
        );
        assert!(state.units("T", 0, 0, 10).is_empty());
        assert_eq!(state.queue_offset_of("T", 1, 300), Some(2));
        assert_eq!(state.queue_offset_of("T", 1, 301), None);
        assert_eq!(state.queues().len(), 1);
        assert_eq!(state.consumer_offset("g", "T", 1), None);
        assert!(state.group_offsets("g").is_empty() && state.consumer_groups().is_empty());
        assert_eq!(state.node_addr(1), None);
        assert_eq!(state.node_client_addr(1), None);
        assert!(format!("{state:?}").contains("topics: 1"));
    }
}
