//! The state machine's memory of recently stored messages' unique keys, which is how a
//! producer's retried copy of a stored message is dropped instead of stored twice.

use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasherDefault, Hasher};

use xxhash_rust::xxh3::Xxh3;

/// How many recent `UNIQ_KEY`s the state machine remembers. A producer retries within its
/// send timeout (seconds), far fewer messages than this at any realistic rate.
pub const RECENT_KEYS: usize = 200_000;

/// A bounded, deterministic memory of stored messages' unique keys: (topic, queue, key) →
/// (queue offset, position). Eviction is first-in first-out in apply order, so every replica
/// forgets the same keys. It is not part of snapshots: a replica that installed one forgets
/// the keys before it (a retry that reaches it right then may be stored twice).
///
/// Keys are remembered by a 128-bit XXH3 fingerprint of (topic, queue, key), so remembering
/// and looking up allocate nothing; two different keys of one queue would have to collide
/// in 128 bits for a message to be taken for another's retry.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RecentKeys {
    map: HashMap<u128, (u64, u64), BuildHasherDefault<FingerprintHasher>>,
    /// Fingerprints in insertion order, each with its topic's hash (for `remove_topic`).
    order: VecDeque<(u128, u64)>,
}

/// The identity a key is remembered by.
pub fn fingerprint(topic: &str, queue_id: u32, key: &str) -> u128 {
    let mut h = Xxh3::new();
    h.update(&(topic.len() as u32).to_le_bytes());
    h.update(topic.as_bytes());
    h.update(&queue_id.to_le_bytes());
    h.update(key.as_bytes());
    h.digest128()
}

fn topic_hash(topic: &str) -> u64 {
    xxhash_rust::xxh3::xxh3_64(topic.as_bytes())
}

impl RecentKeys {
    pub fn get(&self, topic: &str, queue_id: u32, key: &str) -> Option<(u64, u64)> {
        self.map.get(&fingerprint(topic, queue_id, key)).copied()
    }

    pub fn insert(&mut self, topic: &str, queue_id: u32, key: &str, offset: u64, position: u64) {
        let fp = fingerprint(topic, queue_id, key);
        if self.map.insert(fp, (offset, position)).is_none() {
            self.order.push_back((fp, topic_hash(topic)));
        }
        while self.order.len() > RECENT_KEYS {
            if let Some((old, _)) = self.order.pop_front() {
                self.map.remove(&old);
            }
        }
    }

    /// Forgets the keys of a deleted topic (and, should two topic names share a 64-bit hash,
    /// the other topic's too: that only shortens its retry memory).
    pub fn remove_topic(&mut self, topic: &str) {
        let t = topic_hash(topic);
        let map = &mut self.map;
        self.order.retain(|(fp, th)| {
            let keep = *th != t;
            if !keep {
                map.remove(fp);
            }
            keep
        });
    }

    pub fn len(&self) -> usize {
        self.order.len()
    }

    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }
}

/// The map's hasher: fingerprints are uniformly distributed already, so their low 64 bits
/// are the hash.
#[derive(Default)]
pub struct FingerprintHasher(u64);

impl Hasher for FingerprintHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // Only u128 fingerprints are hashed; this is a fallback that still mixes every byte.
        for b in bytes {
            self.0 = (self.0 ^ u64::from(*b)).wrapping_mul(0x100000001b3);
        }
    }

    fn write_u128(&mut self, v: u128) {
        self.0 = v as u64;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remembers_per_queue_and_forgets_oldest_first() {
        let mut r = RecentKeys::default();
        r.insert("T", 0, "k1", 0, 100);
        r.insert("T", 1, "k1", 0, 200);
        assert_eq!(r.get("T", 0, "k1"), Some((0, 100)));
        assert_eq!(r.get("T", 1, "k1"), Some((0, 200)));
        assert_eq!(r.get("U", 0, "k1"), None);
        // Topic and key boundaries are part of the fingerprint.
        r.insert("ab", 0, "c", 1, 1);
        assert_eq!(r.get("a", 0, "bc"), None);

        r.remove_topic("T");
        assert_eq!((r.get("T", 0, "k1"), r.len()), (None, 1));

        let mut r = RecentKeys::default();
        for i in 0..RECENT_KEYS as u64 + 5 {
            r.insert("T", 0, &i.to_string(), i, i);
        }
        assert_eq!(r.len(), RECENT_KEYS);
        assert_eq!(r.get("T", 0, "4"), None);
        assert_eq!(r.get("T", 0, "5"), Some((5, 5)));
    }
}
