//! What applications send and receive: [`Message`], [`MessageQueue`], [`SendResult`].

use std::collections::BTreeMap;
use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use proto::v1::{self as pb, ResponseCode};

/// The property carrying a message's unique client-side id (RocketMQ's `UNIQ_KEY`).
pub const UNIQ_KEY: &str = "UNIQ_KEY";

/// A new unique message key: this process's prefix (pid, start time, a random number) and a
/// counter, as 32 upper-case hex digits like RocketMQ's client message ids.
pub fn new_uniq_key() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::OnceLock;
    static PREFIX: OnceLock<u64> = OnceLock::new();
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let prefix = *PREFIX.get_or_init(|| {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        (u64::from(std::process::id()) << 40) ^ nanos ^ rand::random::<u64>()
    });
    format!(
        "{prefix:016X}{:016X}",
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// A message to send. The queue is chosen by the producer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// Topic name: 1..127 characters of `[A-Za-z0-9_%|-]`.
    pub topic: String,
    /// Tag matched by consumers' tag expressions; empty = none.
    pub tags: String,
    /// Business keys (RocketMQ's KEYS).
    pub keys: Vec<String>,
    /// User properties.
    pub properties: BTreeMap<String, String>,
    /// Payload; must not be empty.
    pub body: Bytes,
}

impl Message {
    /// A message with a body and nothing else.
    pub fn new(topic: impl Into<String>, body: impl Into<Bytes>) -> Self {
        Self {
            topic: topic.into(),
            tags: String::new(),
            keys: Vec::new(),
            properties: BTreeMap::new(),
            body: body.into(),
        }
    }

    /// Sets the tag.
    pub fn with_tags(mut self, tags: impl Into<String>) -> Self {
        self.tags = tags.into();
        self
    }

    /// Adds a business key.
    pub fn with_key(mut self, key: impl Into<String>) -> Self {
        self.keys.push(key.into());
        self
    }

    /// Sets a user property.
    pub fn with_property(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.properties.insert(name.into(), value.into());
        self
    }

    /// This message with a fresh `UNIQ_KEY` unless it has one.
    pub fn with_uniq_key(mut self) -> Self {
        self.properties
            .entry(UNIQ_KEY.to_string())
            .or_insert_with(new_uniq_key);
        self
    }

    /// The wire form for `queue_id` (`proto::ANY_QUEUE` lets the broker choose).
    pub(crate) fn to_wire(&self, queue_id: i32, born_host: &str) -> pb::Message {
        pb::Message {
            topic: self.topic.clone(),
            queue_id,
            tags: self.tags.clone(),
            keys: self.keys.clone(),
            properties: self.properties.clone(),
            body: self.body.clone(),
            born_timestamp_ms: now_ms(),
            born_host: born_host.to_owned(),
        }
    }
}

/// One queue of a topic in one broker group (RocketMQ's MessageQueue). Orders by topic,
/// group, queue id: the order every group member sorts queues in before allocating them.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct MessageQueue {
    /// Topic.
    pub topic: String,
    /// brokerName of the group holding the queue.
    pub broker_name: String,
    /// Queue id within the group, 0-based.
    pub queue_id: i32,
}

impl MessageQueue {
    /// The queue `queue_id` of `topic` in group `broker_name`.
    pub fn new(topic: impl Into<String>, broker_name: impl Into<String>, queue_id: i32) -> Self {
        Self {
            topic: topic.into(),
            broker_name: broker_name.into(),
            queue_id,
        }
    }
}

impl fmt::Display for MessageQueue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}#{}", self.topic, self.broker_name, self.queue_id)
    }
}

/// How durable a stored message is (RocketMQ's SendStatus). Every value means "stored in the
/// leader's log"; all but `Ok` mean less durable than the group's mode promises.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendStatus {
    /// Stored and acknowledged as the mode requires.
    Ok,
    /// SYNC_FLUSH did not fsync within the flush timeout.
    FlushDiskTimeout,
    /// The replicas the mode waits for did not confirm in time.
    FlushSlaveTimeout,
    /// A SYNC_MASTER had no in-sync slave: the leader holds the only copy.
    SlaveNotAvailable,
}

impl SendStatus {
    /// The status for a code that means "stored", else `None`.
    pub fn from_code(code: ResponseCode) -> Option<Self> {
        match code {
            ResponseCode::Ok => Some(Self::Ok),
            ResponseCode::FlushDiskTimeout => Some(Self::FlushDiskTimeout),
            ResponseCode::FlushSlaveTimeout => Some(Self::FlushSlaveTimeout),
            ResponseCode::SlaveNotAvailable => Some(Self::SlaveNotAvailable),
            _ => None,
        }
    }

    /// RocketMQ's name for the status (`SEND_OK`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ok => "SEND_OK",
            Self::FlushDiskTimeout => "FLUSH_DISK_TIMEOUT",
            Self::FlushSlaveTimeout => "FLUSH_SLAVE_TIMEOUT",
            Self::SlaveNotAvailable => "SLAVE_NOT_AVAILABLE",
        }
    }
}

/// Where one sent message was stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendResult {
    /// Durability of the message.
    pub status: SendStatus,
    /// Broker-assigned id (RocketMQ's offset msg id; see `proto::OffsetMsgId`).
    pub msg_id: String,
    /// The queue it was stored in.
    pub queue: MessageQueue,
    /// Its offset in that queue.
    pub queue_offset: u64,
    /// Byte position of its entry in the group's commitlog.
    pub commit_log_offset: u64,
    /// Client address of the broker that stored it.
    pub broker_addr: String,
}

/// Milliseconds since the Unix epoch, 0 if the clock is before it.
pub(crate) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queues_sort_by_topic_group_queue() {
        let mut qs = [
            MessageQueue::new("T", "broker-b", 0),
            MessageQueue::new("T", "broker-a", 1),
            MessageQueue::new("T", "broker-a", 0),
        ];
        qs.sort();
        assert_eq!(qs[0], MessageQueue::new("T", "broker-a", 0));
        assert_eq!(qs[2].to_string(), "T@broker-b#0");
    }

    #[test]
    fn builder_fills_the_wire_message() {
        let m = Message::new("T", "hi")
            .with_tags("A")
            .with_key("k")
            .with_property("p", "v");
        let w = m.to_wire(-1, "host");
        assert_eq!(
            (w.topic.as_str(), w.queue_id, w.tags.as_str()),
            ("T", -1, "A")
        );
        assert_eq!(w.keys, ["k"]);
        assert_eq!(w.properties.get("p").map(String::as_str), Some("v"));
        assert!(w.born_timestamp_ms > 0);
    }
}
