//! The group's topic configs, as UpsertTopic / DeleteTopic commands left them.

use std::collections::BTreeMap;

use proto::v1::TopicConfig;

/// Topic name → config. Ordered so listings and snapshots come out the same on every replica.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TopicTable {
    topics: BTreeMap<String, TopicConfig>,
}

impl TopicTable {
    pub fn new() -> Self {
        Self::default()
    }

    /// Creates the topic or replaces its config.
    pub fn upsert(&mut self, config: TopicConfig) {
        self.topics.insert(config.topic_name.clone(), config);
    }

    /// Removes the topic; returns its config if it existed.
    pub fn delete(&mut self, name: &str) -> Option<TopicConfig> {
        self.topics.remove(name)
    }

    pub fn get(&self, name: &str) -> Option<&TopicConfig> {
        self.topics.get(name)
    }

    /// Every topic, by name.
    pub fn list(&self) -> Vec<TopicConfig> {
        self.topics.values().cloned().collect()
    }

    pub fn iter(&self) -> impl Iterator<Item = &TopicConfig> {
        self.topics.values()
    }

    pub fn len(&self) -> usize {
        self.topics.len()
    }

    pub fn is_empty(&self) -> bool {
        self.topics.is_empty()
    }
}

/// A new topic as RocketMQ creates one by default (auto-creation, `updateTopic` without
/// options): `queue_nums` read and write queues, readable and writable, not ordered.
pub fn default_topic_config(name: &str, queue_nums: u32) -> TopicConfig {
    TopicConfig {
        topic_name: name.to_owned(),
        read_queue_nums: queue_nums,
        write_queue_nums: queue_nums,
        perm: proto::PERM_READ | proto::PERM_WRITE,
        order: false,
    }
}

/// Why a send to `queue_id` of a topic whose config is `config` (`None`: unknown topic) is
/// refused when applied, if it is. A pure function of the applied state, so every replica
/// decides alike.
pub fn send_refusal(topic: &str, config: Option<&TopicConfig>, queue_id: u32) -> Option<String> {
    match config {
        None => Some(format!("topic {topic} does not exist")),
        Some(c) if queue_id >= c.write_queue_nums => Some(format!(
            "queue {queue_id} does not exist: topic {topic} has {} write queues",
            c.write_queue_nums
        )),
        Some(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::default_topic_config as topic;
    use super::*;

    #[test]
    fn upsert_delete_list() {
        let mut t = TopicTable::new();
        assert!(t.is_empty());
        t.upsert(topic("b", 4));
        t.upsert(topic("a", 2));
        t.upsert(topic("b", 8));
        assert_eq!(t.len(), 2);
        assert_eq!(t.get("b").map(|c| c.write_queue_nums), Some(8));
        let names: Vec<_> = t.list().into_iter().map(|c| c.topic_name).collect();
        assert_eq!(names, ["a", "b"]);
        assert_eq!(t.delete("a").map(|c| c.read_queue_nums), Some(2));
        assert_eq!(t.delete("a"), None);
        assert_eq!(t.iter().count(), 1);
    }

    #[test]
    fn refusals() {
        let c = topic("T", 4);
        assert_eq!(
            (c.read_queue_nums, c.write_queue_nums, c.perm, c.order),
            (4, 4, 6, false)
        );
        assert_eq!(send_refusal("T", Some(&c), 3), None);
        let why = send_refusal("T", Some(&c), 4).unwrap();
        assert!(
            why.contains("queue 4") && why.contains("4 write queues"),
            "{why}"
        );
        let why = send_refusal("U", None, 0).unwrap();
        assert!(why.contains("topic U does not exist"), "{why}");
    }
}
