//! Which queue a producer writes the next message to: round-robin over every group's write
//! queues of the topic (RocketMQ's `selectOneMessageQueue`), skipping the group a retry
//! is fleeing and groups that just failed, until their leader changes or a pause passes
//! (a small form of RocketMQ's `sendLatencyFaultEnable`). Pure: time is passed in.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use crate::message::MessageQueue;

/// How long a group that failed a send is skipped when another group can take the message.
pub const ISOLATION: Duration = Duration::from_secs(1);

/// A group that failed, with the leader it failed on.
#[derive(Debug, Clone)]
struct Isolation {
    until: Instant,
    leader: Option<String>,
}

/// Round-robin cursor per topic, and the groups to avoid for now.
#[derive(Debug, Default)]
pub struct QueueSelector {
    next: HashMap<String, usize>,
    isolated: HashMap<String, Isolation>,
}

impl QueueSelector {
    /// A selector with fresh cursors.
    pub fn new() -> Self {
        Self::default()
    }

    /// Picks the next queue of `queues` (a topic's write queues in route order). Prefers,
    /// in turn: a queue outside `avoid` whose group is not isolated; one outside `avoid`;
    /// the next one. `leader_of` gives each group's current leader, so an isolation ends as
    /// soon as the group's leader changes.
    pub fn select(
        &mut self,
        queues: &[MessageQueue],
        avoid: Option<&str>,
        leader_of: impl Fn(&str) -> Option<String>,
        now: Instant,
    ) -> Option<MessageQueue> {
        let first = queues.first()?;
        let cursor = self.next.entry(first.topic.clone()).or_insert(0);
        let start = *cursor;
        *cursor = cursor.wrapping_add(1);
        let ring = (0..queues.len()).map(|i| &queues[(start + i) % queues.len()]);
        let isolated = |group: &str| match self.isolated.get(group) {
            Some(iso) => now < iso.until && leader_of(group) == iso.leader,
            None => false,
        };
        let outside = |q: &&MessageQueue| Some(q.broker_name.as_str()) != avoid;
        ring.clone()
            .find(|q| outside(q) && !isolated(&q.broker_name))
            .or_else(|| ring.clone().find(outside))
            .or_else(|| ring.clone().next())
            .cloned()
    }

    /// Skips `group` until `now + ISOLATION` or until its leader is no longer `leader`.
    pub fn isolate(&mut self, group: &str, leader: Option<String>, now: Instant) {
        self.isolated.insert(
            group.to_owned(),
            Isolation {
                until: now + ISOLATION,
                leader,
            },
        );
    }

    /// Forgets a group's isolation (it just stored a message).
    pub fn restore(&mut self, group: &str) {
        self.isolated.remove(group);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn queues() -> Vec<MessageQueue> {
        vec![
            MessageQueue::new("T", "a", 0),
            MessageQueue::new("T", "a", 1),
            MessageQueue::new("T", "b", 0),
        ]
    }

    fn leader(g: &str) -> Option<String> {
        Some(format!("{g}:1"))
    }

    #[test]
    fn round_robin_over_all_groups_queues() {
        let mut s = QueueSelector::new();
        let now = Instant::now();
        let picked: Vec<String> = (0..4)
            .map(|_| s.select(&queues(), None, leader, now).unwrap().to_string())
            .collect();
        assert_eq!(picked, ["T@a#0", "T@a#1", "T@b#0", "T@a#0"]);
        assert!(s.select(&[], None, leader, now).is_none());
    }

    #[test]
    fn a_retry_avoids_the_group_that_failed() {
        let mut s = QueueSelector::new();
        let now = Instant::now();
        let q = s.select(&queues(), Some("a"), leader, now).unwrap();
        assert_eq!(q.broker_name, "b");
        // With one group only, the avoided group is still used.
        let only_a = &queues()[..2];
        assert_eq!(
            s.select(only_a, Some("a"), leader, now)
                .unwrap()
                .broker_name,
            "a"
        );
    }

    #[test]
    fn isolation_ends_with_time_or_a_new_leader() {
        let mut s = QueueSelector::new();
        let now = Instant::now();
        s.isolate("a", leader("a"), now);
        for _ in 0..3 {
            assert_eq!(
                s.select(&queues(), None, leader, now).unwrap().broker_name,
                "b"
            );
        }
        let later = now + ISOLATION;
        assert_eq!(
            s.select(&queues(), None, leader, later)
                .unwrap()
                .broker_name,
            "a"
        );
        let moved = |g: &str| Some(format!("{g}:2"));
        assert_eq!(
            s.select(&queues(), None, moved, now).unwrap().broker_name,
            "a"
        );
        s.restore("a");
        assert!(s.isolated.is_empty());
    }
}
