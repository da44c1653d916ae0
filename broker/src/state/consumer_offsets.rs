//! Consumer offsets: for each consumer group, the next queue offset it will consume, per
//! (topic, queueId). Committed through the log, so a new master knows them when elected.

use std::collections::BTreeMap;

/// group → topic → queue id → next offset to consume. Ordered so listings and snapshots come
/// out the same on every replica.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConsumerOffsets {
    groups: BTreeMap<String, BTreeMap<String, BTreeMap<u32, u64>>>,
}

impl ConsumerOffsets {
    pub fn new() -> Self {
        Self::default()
    }

    /// Records `offset` as the next one `group` consumes from the queue. Offsets may move
    /// backwards: a consumer that resets its offset (RocketMQ `resetOffsetByTime`) commits a
    /// smaller one.
    pub fn commit(&mut self, group: &str, topic: &str, queue_id: u32, offset: u64) {
        self.groups
            .entry(group.to_owned())
            .or_default()
            .entry(topic.to_owned())
            .or_default()
            .insert(queue_id, offset);
    }

    /// The next offset `group` consumes from the queue, if it ever committed one.
    pub fn get(&self, group: &str, topic: &str, queue_id: u32) -> Option<u64> {
        self.groups.get(group)?.get(topic)?.get(&queue_id).copied()
    }

    /// Every offset `group` committed, as (topic, queue id, offset), ordered.
    pub fn group(&self, group: &str) -> Vec<(String, u32, u64)> {
        let Some(topics) = self.groups.get(group) else {
            return Vec::new();
        };
        topics
            .iter()
            .flat_map(|(topic, queues)| queues.iter().map(move |(q, o)| (topic.clone(), *q, *o)))
            .collect()
    }

    /// The groups that committed at least one offset, ordered.
    pub fn groups(&self) -> Vec<String> {
        self.groups.keys().cloned().collect()
    }

    /// Every offset, as (group, topic, queue id, offset), ordered.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str, u32, u64)> {
        self.groups.iter().flat_map(|(group, topics)| {
            topics.iter().flat_map(move |(topic, queues)| {
                queues
                    .iter()
                    .map(move |(q, o)| (group.as_str(), topic.as_str(), *q, *o))
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
        o.commit("g", "T", 1, 10);
        o.commit("g", "T", 0, 5);
        o.commit("g", "U", 0, 7);
        o.commit("h", "T", 0, 1);
        o.commit("g", "T", 1, 3); // moves back: a reset
        assert_eq!(o.get("g", "T", 1), Some(3));
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
        assert_eq!(o.iter().collect::<Vec<_>>(), [("g", "U", 0, 7)]);
    }
}
