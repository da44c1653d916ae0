//! Consumer offsets: for each consumer group, the next queue offset it will consume, per
//! (topic, queueId). Committed through the log, so a new master knows them when elected.

use std::collections::BTreeMap;

/// group → topic → queue id → next offset to consume, and when it was committed. Ordered so
/// listings and snapshots come out the same on every replica.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConsumerOffsets {
    groups: BTreeMap<String, BTreeMap<String, BTreeMap<u32, Committed>>>,
}

/// One committed offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Committed {
    offset: u64,
    /// The leader's clock when the commit was taken (ms since the epoch; 0: not recorded, the
    /// legacy OFFSETS layout).
    at_ms: u64,
}

impl ConsumerOffsets {
    pub fn new() -> Self {
        Self::default()
    }

    /// Records `offset` as the next one `group` consumes from the queue, committed at `at_ms`
    /// (0: unknown). Offsets may move backwards: a consumer that resets its offset (RocketMQ
    /// `resetOffsetByTime`) commits a smaller one.
    pub fn commit(&mut self, group: &str, topic: &str, queue_id: u32, offset: u64, at_ms: u64) {
        self.groups
            .entry(group.to_owned())
            .or_default()
            .entry(topic.to_owned())
            .or_default()
            .insert(queue_id, Committed { offset, at_ms });
    }

    /// The next offset `group` consumes from the queue, if it ever committed one.
    pub fn get(&self, group: &str, topic: &str, queue_id: u32) -> Option<u64> {
        self.committed(group, topic, queue_id).map(|c| c.offset)
    }

    /// When `group` last committed an offset of the queue (ms since the epoch), if known.
    pub fn committed_at(&self, group: &str, topic: &str, queue_id: u32) -> Option<u64> {
        self.committed(group, topic, queue_id)
            .map(|c| c.at_ms)
            .filter(|&at| at > 0)
    }

    fn committed(&self, group: &str, topic: &str, queue_id: u32) -> Option<Committed> {
        self.groups.get(group)?.get(topic)?.get(&queue_id).copied()
    }

    /// Every offset `group` committed, as (topic, queue id, offset), ordered.
    pub fn group(&self, group: &str) -> Vec<(String, u32, u64)> {
        let Some(topics) = self.groups.get(group) else {
            return Vec::new();
        };
        topics
            .iter()
            .flat_map(|(topic, queues)| {
                queues
                    .iter()
                    .map(move |(q, c)| (topic.clone(), *q, c.offset))
            })
            .collect()
    }

    /// The groups that committed at least one offset, ordered.
    pub fn groups(&self) -> Vec<String> {
        self.groups.keys().cloned().collect()
    }

    /// Every offset, as (group, topic, queue id, offset, committed at), ordered.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str, u32, u64, u64)> {
        self.groups.iter().flat_map(|(group, topics)| {
            topics.iter().flat_map(move |(topic, queues)| {
                queues
                    .iter()
                    .map(move |(q, c)| (group.as_str(), topic.as_str(), *q, c.offset, c.at_ms))
            })
        })
    }

    /// Forgets every group's offsets of `topic` (the topic was deleted: a topic created later
    /// under the same name starts its queues at 0 again). Groups left with nothing go too.
    pub fn remove_topic(&mut self, topic: &str) {
        self.groups.retain(|_, topics| {
            topics.remove(topic);
            !topics.is_empty()
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commit_get_list_remove() {
        let mut o = ConsumerOffsets::new();
        assert_eq!(o.get("g", "T", 0), None);
        o.commit("g", "T", 1, 10, 100);
        o.commit("g", "T", 0, 5, 0);
        o.commit("g", "U", 0, 7, 300);
        o.commit("h", "T", 0, 1, 400);
        o.commit("g", "T", 1, 3, 500); // moves back: a reset
        assert_eq!(o.get("g", "T", 1), Some(3));
        assert_eq!(o.committed_at("g", "T", 1), Some(500));
        assert_eq!(o.committed_at("g", "T", 0), None, "not recorded");
        assert_eq!(o.get("g", "T", 2), None);
        assert_eq!(
            o.group("g"),
            [
                ("T".to_string(), 0, 5),
                ("T".to_string(), 1, 3),
                ("U".to_string(), 0, 7)
            ]
        );
        assert!(o.group("nobody").is_empty());
        assert_eq!(o.groups(), ["g", "h"]);
        assert_eq!(o.iter().count(), 4);
        o.remove_topic("T");
        assert_eq!(o.groups(), ["g"]);
        assert_eq!(o.group("g"), [("U".to_string(), 0, 7)]);
        assert_eq!(o.iter().collect::<Vec<_>>(), [("g", "U", 0, 7, 300)]);
    }
}
