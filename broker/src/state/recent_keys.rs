//! The state machine's memory of recently stored messages' unique keys, which is how a
//! producer's retried copy of a stored message is dropped instead of stored twice.
//!
//! The memory covers a time window (`duplicateWindowMs`, 2 minutes by default, like NATS
//! JetStream's duplicate window) rather than a count: a retry comes within one send timeout
//! plus a failover, whatever the message rate. Time is the log's: every send carries the
//! leader's store time, and the memory's clock is the newest store time applied, so every
//! replica forgets the same keys at the same entry. Memory is bounded too
//! (`duplicateMaxKeys`, 2 million keys, about 130 MB): past it the oldest keys go first,
//! which at very high rates shortens the window (`RecentKeys::evicted_early` counts them).
//! Both settings reach the state machine through the log (`DEDUP`), never from a replica's
//! own file: replicas that remembered differently would store a retry differently.
//!
//! The memory is part of snapshots (image version 2), so a replica restarted from a snapshot
//! or given one drops exactly the retries its peers drop.

use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasherDefault, Hasher};

use serde::{Deserialize, Serialize};
use xxhash_rust::xxh3::{xxh3_64, Xxh3};

use crate::command::DedupSettings;

/// A key's identity in the map: the 128-bit XXH3 of (topic, queue, key) as two words (8-byte
/// aligned, so a map slot is 32 bytes), hashed by its first word.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Fingerprint([u64; 2]);

impl std::hash::Hash for Fingerprint {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_u64(self.0[0]);
    }
}

/// What is remembered of one stored message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Remembered {
    /// The fingerprint of (topic, queue id, `UNIQ_KEY`).
    pub fingerprint: [u64; 2],
    /// The topic's hash, so a deleted topic's keys can be forgotten.
    pub topic_hash: u64,
    /// The log's clock when the message was stored (ms since the epoch).
    pub stored_at_ms: u64,
    /// The message's queue offset.
    pub offset: u64,
    /// The message record's position in the log.
    pub position: u64,
}

/// A bounded, deterministic memory of stored messages' unique keys: (topic, queue, key) →
/// (queue offset, position). See the module docs.
///
/// Keys are remembered by a 128-bit fingerprint, so remembering and looking up allocate
/// nothing; two different keys of one queue would have to collide in 128 bits for a message
/// to be taken for another's retry.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RecentKeys {
    settings: DedupSettings,
    /// The newest store time applied: keys older than `window_ms` before it are forgotten.
    clock_ms: u64,
    map: HashMap<Fingerprint, (u64, u64), BuildHasherDefault<FingerprintHasher>>,
    /// Remembered keys in the order they were stored; `stored_at_ms` never decreases along it.
    order: VecDeque<Remembered>,
    /// XOR of a hash of every remembered key: the memory's part of the state digest, kept up
    /// to date as keys come and go so computing a digest costs nothing per key.
    xor: u64,
    /// Keys forgotten before their window ended because `max_keys` was reached.
    evicted_early: u64,
}

/// The identity a key is remembered by.
pub fn fingerprint(topic: &str, queue_id: u32, key: &str) -> u128 {
    let mut h = Xxh3::new();
    h.update(&(topic.len() as u64).to_le_bytes());
    h.update(topic.as_bytes());
    h.update(&queue_id.to_le_bytes());
    h.update(key.as_bytes());
    h.digest128()
}

fn split(fp: u128) -> [u64; 2] {
    [fp as u64, (fp >> 64) as u64]
}

fn topic_hash(topic: &str) -> u64 {
    xxh3_64(topic.as_bytes())
}

impl Remembered {
    /// This key's share of the digest. The position is left out: it is where this replica's
    /// log holds the message, which differs on a replica that installed a snapshot.
    fn hash(&self) -> u64 {
        let mut b = [0u8; 40];
        b[..8].copy_from_slice(&self.fingerprint[0].to_le_bytes());
        b[8..16].copy_from_slice(&self.fingerprint[1].to_le_bytes());
        b[16..24].copy_from_slice(&self.topic_hash.to_le_bytes());
        b[24..32].copy_from_slice(&self.stored_at_ms.to_le_bytes());
        b[32..40].copy_from_slice(&self.offset.to_le_bytes());
        xxh3_64(&b)
    }
}

impl RecentKeys {
    /// An empty memory with `settings`.
    pub fn new(settings: DedupSettings) -> Self {
        RecentKeys {
            settings,
            ..Default::default()
        }
    }

    /// The memory as a snapshot left it: `keys` in the order they were stored.
    pub fn restore(settings: DedupSettings, clock_ms: u64, keys: Vec<Remembered>) -> Self {
        let mut recent = RecentKeys::new(settings);
        recent.clock_ms = clock_ms;
        for k in keys {
            recent.remember(k);
        }
        recent.forget_expired();
        recent
    }

    pub fn settings(&self) -> DedupSettings {
        self.settings
    }

    /// The newest store time applied.
    pub fn clock_ms(&self) -> u64 {
        self.clock_ms
    }

    /// Every remembered key, oldest first (for snapshots).
    pub fn iter(&self) -> impl Iterator<Item = &Remembered> {
        self.order.iter()
    }

    /// Takes new settings (a `DEDUP` entry) and forgets what they no longer cover.
    pub fn set_settings(&mut self, settings: DedupSettings) {
        self.settings = settings;
        self.forget_expired();
    }

    /// Moves the clock to `store_time_ms` (never back) and forgets keys past the window.
    pub fn advance(&mut self, store_time_ms: u64) {
        if store_time_ms > self.clock_ms {
            self.clock_ms = store_time_ms;
            self.forget_expired();
        }
    }

    /// The offset and position of the message stored under this key, if it is remembered.
    pub fn get(&self, topic: &str, queue_id: u32, key: &str) -> Option<(u64, u64)> {
        self.map
            .get(&Fingerprint(split(fingerprint(topic, queue_id, key))))
            .copied()
    }

    /// Remembers that the message with this key was stored at `offset`, `position`, now.
    pub fn insert(&mut self, topic: &str, queue_id: u32, key: &str, offset: u64, position: u64) {
        let remembered = Remembered {
            fingerprint: split(fingerprint(topic, queue_id, key)),
            topic_hash: topic_hash(topic),
            stored_at_ms: self.clock_ms,
            offset,
            position,
        };
        self.remember(remembered);
        while self.order.len() as u64 > self.settings.max_keys {
            self.forget_oldest();
            self.evicted_early += 1;
        }
    }

    fn remember(&mut self, k: Remembered) {
        let fp = Fingerprint(k.fingerprint);
        if self.map.contains_key(&fp) {
            return; // a duplicate is answered from the original and never inserted
        }
        self.map.insert(fp, (k.offset, k.position));
        self.xor ^= k.hash();
        self.order.push_back(k);
    }

    fn forget_oldest(&mut self) {
        if let Some(old) = self.order.pop_front() {
            self.map.remove(&Fingerprint(old.fingerprint));
            self.xor ^= old.hash();
        }
    }

    fn forget_expired(&mut self) {
        let horizon = self.clock_ms.saturating_sub(self.settings.window_ms);
        while self.order.front().is_some_and(|k| k.stored_at_ms < horizon) {
            self.forget_oldest();
        }
        while self.order.len() as u64 > self.settings.max_keys {
            self.forget_oldest();
        }
    }

    /// Forgets the keys of a deleted topic (and, should two topic names share a 64-bit hash,
    /// the other topic's too: that only shortens its retry memory).
    pub fn remove_topic(&mut self, topic: &str) {
        let t = topic_hash(topic);
        let (map, xor) = (&mut self.map, &mut self.xor);
        self.order.retain(|k| {
            let keep = k.topic_hash != t;
            if !keep {
                map.remove(&Fingerprint(k.fingerprint));
                *xor ^= k.hash();
            }
            keep
        });
    }

    /// The memory's part of the state digest: its settings, clock and keys.
    pub fn digest(&self) -> u64 {
        let mut b = [0u8; 40];
        b[..8].copy_from_slice(&self.settings.window_ms.to_le_bytes());
        b[8..16].copy_from_slice(&self.settings.max_keys.to_le_bytes());
        b[16..24].copy_from_slice(&self.clock_ms.to_le_bytes());
        b[24..32].copy_from_slice(&(self.order.len() as u64).to_le_bytes());
        b[32..40].copy_from_slice(&self.xor.to_le_bytes());
        xxh3_64(&b)
    }

    /// Keys forgotten before their window ended, since this memory was built.
    pub fn evicted_early(&self) -> u64 {
        self.evicted_early
    }

    pub fn len(&self) -> usize {
        self.order.len()
    }

    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }
}

/// The map's hasher: fingerprints are uniformly distributed already, so their first word is
/// the hash.
#[derive(Default)]
pub struct FingerprintHasher(u64);

impl Hasher for FingerprintHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // Only fingerprints are hashed (through `write_u64`); this is a fallback that still
        // mixes every byte.
        for b in bytes {
            self.0 = (self.0 ^ u64::from(*b)).wrapping_mul(0x100000001b3);
        }
    }

    fn write_u64(&mut self, v: u64) {
        self.0 = v;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(window_ms: u64, max_keys: u64) -> DedupSettings {
        DedupSettings {
            window_ms,
            max_keys,
        }
    }

    #[test]
    fn remembers_per_queue() {
        let mut r = RecentKeys::new(DedupSettings::default());
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
    }

    #[test]
    fn forgets_by_the_log_clock_not_by_count() {
        let mut r = RecentKeys::new(settings(1_000, 1_000_000));
        r.advance(10_000);
        r.insert("T", 0, "old", 0, 0);
        r.advance(10_600);
        r.insert("T", 0, "newer", 1, 1);
        for i in 0..10_000u64 {
            r.insert("T", 1, &i.to_string(), i, i);
        }
        assert!(r.get("T", 0, "old").is_some(), "many keys, little time");
        r.advance(11_000);
        assert!(r.get("T", 0, "old").is_some(), "exactly the window");
        r.advance(11_001);
        assert_eq!(r.get("T", 0, "old"), None);
        assert!(r.get("T", 0, "newer").is_some());
        // The clock never goes back.
        r.advance(5);
        assert_eq!(r.clock_ms(), 11_001);
        r.advance(20_000);
        assert!(r.is_empty());
        assert_eq!(r.evicted_early(), 0);
    }

    #[test]
    fn the_key_bound_forgets_the_oldest_first() {
        let mut r = RecentKeys::new(settings(u64::MAX, 3));
        for i in 0..5u64 {
            r.insert("T", 0, &i.to_string(), i, i);
        }
        assert_eq!(r.len(), 3);
        assert_eq!(r.get("T", 0, "1"), None);
        assert_eq!(r.get("T", 0, "2"), Some((2, 2)));
        assert_eq!(r.evicted_early(), 2);
        r.set_settings(settings(u64::MAX, 1));
        assert_eq!((r.len(), r.get("T", 0, "4")), (1, Some((4, 4))));
    }

    #[test]
    fn digest_follows_content_and_survives_a_restore() {
        let mut a = RecentKeys::new(settings(1_000, 100));
        let mut b = RecentKeys::new(settings(1_000, 100));
        assert_eq!(a.digest(), b.digest());
        a.advance(50);
        a.insert("T", 0, "x", 3, 300);
        assert_ne!(a.digest(), b.digest());
        b.advance(50);
        b.insert("T", 0, "x", 4, 300);
        assert_ne!(a.digest(), b.digest(), "another offset");
        let restored = RecentKeys::restore(a.settings(), a.clock_ms(), a.iter().copied().collect());
        assert_eq!(restored.digest(), a.digest());
        assert_eq!(restored.get("T", 0, "x"), Some((3, 300)));
        // Removing a key brings the digest back.
        let empty = RecentKeys::restore(a.settings(), a.clock_ms(), Vec::new());
        a.remove_topic("T");
        assert_eq!(a.digest(), empty.digest());
        // Restoring applies the window: keys a snapshot kept past it are dropped.
        let mut old = RecentKeys::new(settings(10, 100));
        old.insert("T", 0, "y", 0, 0);
        let keys: Vec<Remembered> = old.iter().copied().collect();
        assert!(RecentKeys::restore(old.settings(), 1_000, keys).is_empty());
    }
}
