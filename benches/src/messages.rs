//! The messages the benchmark sends: a fixed-size body and a `UNIQ_KEY` per message, as a
//! RocketMQ producer sets one (32 hex digits), from which the read-back recovers the sequence.

use std::collections::BTreeMap;
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use proto::v1 as pb;

/// The property a RocketMQ producer sets on every message; the broker stores a retried
/// message (same key, same queue) once.
pub const UNIQ_KEY: &str = "UNIQ_KEY";

/// Builds the messages of one scenario.
#[derive(Clone)]
pub struct MessageSource {
    topic: String,
    /// Shared by every message (a `Bytes` clone is a reference count).
    body: Bytes,
    /// Tells this run's keys from any other's.
    run: u64,
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

impl MessageSource {
    pub fn new(topic: &str, body_size: usize) -> MessageSource {
        // Printable and not all alike, like a typical payload.
        let body: Vec<u8> = (0..body_size.max(1))
            .map(|i| b'a' + (i * 7 % 26) as u8)
            .collect();
        let run = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        MessageSource {
            topic: topic.to_string(),
            body: body.into(),
            run,
        }
    }

    /// The key of message number `seq`.
    pub fn uniq_key(&self, seq: u64) -> String {
        format!("{:016X}{seq:016X}", self.run)
    }

    /// The sequence number in `key`, if this source made it.
    pub fn seq_of(&self, key: &str) -> Option<u64> {
        let (run, seq) = key.split_at_checked(16)?;
        if u64::from_str_radix(run, 16).ok()? != self.run {
            return None;
        }
        u64::from_str_radix(seq, 16).ok()
    }

    /// Message number `seq`, for queue `queue_id`.
    pub fn message(&self, queue_id: i32, seq: u64) -> pb::Message {
        pb::Message {
            topic: self.topic.clone(),
            queue_id,
            properties: BTreeMap::from([(UNIQ_KEY.to_string(), self.uniq_key(seq))]),
            body: self.body.clone(),
            born_timestamp_ms: now_ms(),
            ..Default::default()
        }
    }

    /// One request with messages `first .. first + count`, all for `queue_id`.
    pub fn request(&self, queue_id: i32, first: u64, count: usize) -> pb::SendMessageRequest {
        pb::SendMessageRequest {
            messages: (first..first + count as u64)
                .map(|seq| self.message(queue_id, seq))
                .collect(),
            producer_group: "e2e-bench".to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip_and_belong_to_their_run() {
        let a = MessageSource::new("T", 1024);
        let key = a.uniq_key(12345);
        assert_eq!(key.len(), 32);
        assert_eq!(a.seq_of(&key), Some(12345));
        let mut b = a.clone();
        b.run ^= 1;
        assert_eq!(b.seq_of(&key), None);
        assert_eq!(a.seq_of("short"), None);
        assert_eq!(a.seq_of(&format!("{:016X}zz", a.run)), None);
    }

    #[test]
    fn requests_carry_the_body_and_consecutive_keys() {
        let s = MessageSource::new("T", 1024);
        let req = s.request(3, 10, 4);
        assert_eq!(req.messages.len(), 4);
        for (i, m) in req.messages.iter().enumerate() {
            assert_eq!((m.topic.as_str(), m.queue_id, m.body.len()), ("T", 3, 1024));
            assert_eq!(s.seq_of(&m.properties[UNIQ_KEY]), Some(10 + i as u64));
        }
    }
}
