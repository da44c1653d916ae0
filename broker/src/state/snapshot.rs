//! Metadata snapshots (DESIGN §3): what a follower behind the purged part of the log gets
//! instead of the entries, and what a restart starts from.
//!
//! A snapshot holds metadata only, never message bodies: openraft's [`SnapshotMeta`] (the last
//! applied log id and the membership) plus a [`SnapshotImage`] (topics, per-queue offset
//! ranges, consumer offsets, replicas' client addresses, the retry memory). A replica that
//! installs one gets empty consume queues that start at the snapshot's max offsets: the
//! messages before them stay on the replicas that have them.
//!
//! Snapshot data, as openraft streams it to a follower, image version 2 ([`IMAGE_VERSION`]):
//! ```text
//! magic "RMQIMG02" | json_len u32 | JSON of the image without its retry-memory keys
//!   | key_count u64 | key * key_count | crc32 u32 (of every byte before it)
//! key      fingerprint 2 x u64 | topic_hash u64 | stored_at_ms u64 | offset u64 | position u64
//! ```
//! (little-endian; keys oldest first). Version 1 was the JSON alone, without the retry memory;
//! it still loads, with an empty memory.
//!
//! The current snapshot is kept in the log's metadata file `snapshot.meta` (written atomically
//! with a magic, a version and a CRC by `raft_log::meta`), whose payload is:
//! ```text
//! meta_len u32 LE | JSON of openraft's SnapshotMeta (meta_len bytes) | snapshot data
//! ```

use std::path::PathBuf;

use proto::v1::TopicConfig;
use raft_log::LogStore;
use serde::{Deserialize, Serialize};

use super::recent_keys::Remembered;
use super::StateError;
use crate::command::DedupSettings;
use crate::raft::typ::{NodeId, SnapshotMeta};

/// Name of the metadata file that holds the current snapshot (`snapshot.meta`).
pub const SNAPSHOT_META_NAME: &str = "snapshot";

/// Version of the [`SnapshotImage`] layout written; version 1 is still read.
pub const IMAGE_VERSION: u32 = 2;

/// The first bytes of a version 2 image (a version 1 image is JSON, starting with `{`).
const IMAGE_MAGIC: &[u8; 8] = b"RMQIMG02";
/// Bytes of one retry-memory key in a version 2 image.
const KEY_LEN: usize = 48;

/// Why snapshot bytes cannot be read: image data (as openraft streams it), or the payload of
/// `snapshot.meta`.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotDecodeError {
    /// Data that starts like a version 1 image (JSON) but does not parse.
    #[error("snapshot data is not an image: {0}")]
    NotAnImage(serde_json::Error),
    #[error("a JSON snapshot image says version {0}, but only version 1 was JSON")]
    JsonVersion(u32),
    #[error("snapshot data starts with neither an image magic nor JSON")]
    NoMagic,
    /// An image that ends before the part named.
    #[error("snapshot image is shorter than its {0}")]
    ImageShort(&'static str),
    #[error("snapshot image checksum mismatch")]
    Checksum,
    #[error("snapshot image JSON does not parse: {0}")]
    ImageJson(serde_json::Error),
    #[error("snapshot image version {0} is not the supported version {IMAGE_VERSION}")]
    Version(u32),
    #[error("snapshot image says {count} retry keys but holds {bytes} bytes of them")]
    KeyBytes { count: u64, bytes: usize },
    /// A `snapshot.meta` payload that ends before the part named.
    #[error("shorter than its {0}")]
    PayloadShort(&'static str),
    #[error("bad snapshot meta: {0}")]
    Meta(serde_json::Error),
}

/// The state a snapshot carries besides openraft's metadata.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotImage {
    /// [`IMAGE_VERSION`] when written.
    pub version: u32,
    /// Every topic, ordered by name.
    pub topics: Vec<TopicRecord>,
    /// Every consume queue's offset range, ordered by (topic, queue id).
    pub queues: Vec<QueueRange>,
    /// Every committed consumer offset, ordered by (group, topic, queue id).
    pub offsets: Vec<OffsetRecord>,
    /// Every replica's announced client address, ordered by node id.
    #[serde(default)]
    pub client_addrs: Vec<NodeRecord>,
    /// The retry memory (version 2; empty, with default settings, in a version 1 image).
    #[serde(default)]
    pub dedup: DedupImage,
    /// The state digest at the snapshot's index (version 2), checked when a restart rebuilds
    /// the same state from the log.
    #[serde(default)]
    pub digest: Option<u64>,
}

/// The retry memory as a snapshot keeps it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DedupImage {
    pub settings: DedupSettings,
    pub clock_ms: u64,
    /// Oldest first. Kept out of the JSON: written as fixed-size binary records after it.
    #[serde(skip)]
    pub keys: Vec<Remembered>,
}

/// A topic config as a snapshot stores it (the fields of the protobuf `TopicConfig`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicRecord {
    pub name: String,
    pub read_queue_nums: u32,
    pub write_queue_nums: u32,
    pub perm: u32,
    pub order: bool,
}

/// The offset range of one consume queue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueRange {
    pub topic: String,
    pub queue_id: u32,
    /// Smallest readable offset (on the replica that built the snapshot).
    pub min_offset: u64,
    /// The offset the next message gets.
    pub max_offset: u64,
}

/// One committed consumer offset.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OffsetRecord {
    pub group: String,
    pub topic: String,
    pub queue_id: u32,
    /// The next offset the group consumes.
    pub offset: u64,
    /// When it was committed (ms since the epoch; 0 when not recorded).
    #[serde(default)]
    pub committed_at_ms: u64,
}

/// A replica's client address, as its NodeInfo command announced it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeRecord {
    pub node_id: NodeId,
    pub client_addr: String,
}

impl From<&TopicConfig> for TopicRecord {
    fn from(c: &TopicConfig) -> Self {
        Self {
            name: c.topic_name.clone(),
            read_queue_nums: c.read_queue_nums,
            write_queue_nums: c.write_queue_nums,
            perm: c.perm,
            order: c.order,
        }
    }
}

impl From<TopicRecord> for TopicConfig {
    fn from(r: TopicRecord) -> Self {
        Self {
            topic_name: r.name,
            read_queue_nums: r.read_queue_nums,
            write_queue_nums: r.write_queue_nums,
            perm: r.perm,
            order: r.order,
        }
    }
}

impl SnapshotImage {
    /// The snapshot data openraft streams (the version 2 layout).
    pub fn encode(&self) -> Vec<u8> {
        // Plain structs of strings and integers: serializing them cannot fail.
        let json = serde_json::to_vec(self).unwrap_or_default();
        let keys = &self.dedup.keys;
        let mut out = Vec::with_capacity(8 + 4 + json.len() + 8 + keys.len() * KEY_LEN + 4);
        out.extend_from_slice(IMAGE_MAGIC);
        // An image's JSON is topics and offsets: far below 4 GiB.
        out.extend_from_slice(&u32::try_from(json.len()).unwrap_or(u32::MAX).to_le_bytes());
        out.extend_from_slice(&json);
        out.extend_from_slice(&(keys.len() as u64).to_le_bytes());
        for k in keys {
            for word in [
                k.fingerprint[0],
                k.fingerprint[1],
                k.topic_hash,
                k.stored_at_ms,
                k.offset,
                k.position,
            ] {
                out.extend_from_slice(&word.to_le_bytes());
            }
        }
        let crc = crc32fast::hash(&out);
        out.extend_from_slice(&crc.to_le_bytes());
        out
    }

    /// Reads snapshot data back: a version 2 image, or a version 1 image (JSON alone).
    pub fn decode(data: &[u8]) -> Result<Self, SnapshotDecodeError> {
        if data.first() == Some(&b'{') {
            let image: Self =
                serde_json::from_slice(data).map_err(SnapshotDecodeError::NotAnImage)?;
            if image.version != 1 {
                return Err(SnapshotDecodeError::JsonVersion(image.version));
            }
            return Ok(image);
        }
        let body = data
            .strip_prefix(IMAGE_MAGIC.as_slice())
            .ok_or(SnapshotDecodeError::NoMagic)?;
        let (body, crc) = body
            .split_last_chunk::<4>()
            .ok_or(SnapshotDecodeError::ImageShort("checksum"))?;
        if crc32fast::hash(&data[..data.len() - 4]) != u32::from_le_bytes(*crc) {
            return Err(SnapshotDecodeError::Checksum);
        }
        let (len, body) = body
            .split_first_chunk::<4>()
            .ok_or(SnapshotDecodeError::ImageShort("JSON length"))?;
        let json_len = u32::from_le_bytes(*len) as usize;
        if body.len() < json_len {
            return Err(SnapshotDecodeError::ImageShort("JSON"));
        }
        let (json, keys) = body.split_at(json_len);
        let mut image: Self =
            serde_json::from_slice(json).map_err(SnapshotDecodeError::ImageJson)?;
        if image.version != IMAGE_VERSION {
            return Err(SnapshotDecodeError::Version(image.version));
        }
        let (count, keys) = keys
            .split_first_chunk::<8>()
            .ok_or(SnapshotDecodeError::ImageShort("key count"))?;
        let count = u64::from_le_bytes(*count);
        if count.checked_mul(KEY_LEN as u64) != Some(keys.len() as u64) {
            return Err(SnapshotDecodeError::KeyBytes {
                count,
                bytes: keys.len(),
            });
        }
        image.dedup.keys = keys
            .chunks_exact(KEY_LEN)
            .map(|k| {
                let word = |i: usize| {
                    let mut b = [0u8; 8];
                    b.copy_from_slice(&k[i * 8..i * 8 + 8]);
                    u64::from_le_bytes(b)
                };
                Remembered {
                    fingerprint: [word(0), word(1)],
                    topic_hash: word(2),
                    stored_at_ms: word(3),
                    offset: word(4),
                    position: word(5),
                }
            })
            .collect();
        Ok(image)
    }
}

fn encode_persisted(meta: &SnapshotMeta, data: &[u8]) -> Vec<u8> {
    // openraft's SnapshotMeta is ids, addresses and a string: serializing cannot fail.
    let meta_json = serde_json::to_vec(meta).unwrap_or_default();
    let mut out = Vec::with_capacity(4 + meta_json.len() + data.len());
    out.extend_from_slice(&(meta_json.len() as u32).to_le_bytes());
    out.extend_from_slice(&meta_json);
    out.extend_from_slice(data);
    out
}

fn decode_persisted(payload: &[u8]) -> Result<(SnapshotMeta, Vec<u8>), SnapshotDecodeError> {
    let len_bytes: [u8; 4] = payload
        .get(..4)
        .and_then(|b| b.try_into().ok())
        .ok_or(SnapshotDecodeError::PayloadShort("length field"))?;
    let meta_len = u32::from_le_bytes(len_bytes) as usize;
    let meta_json = payload
        .get(4..4 + meta_len)
        .ok_or(SnapshotDecodeError::PayloadShort("snapshot meta"))?;
    let meta = serde_json::from_slice(meta_json).map_err(SnapshotDecodeError::Meta)?;
    Ok((meta, payload[4 + meta_len..].to_vec()))
}

fn file_path(log: &LogStore) -> PathBuf {
    log.config().dir.join(format!("{SNAPSHOT_META_NAME}.meta"))
}

/// The persisted snapshot (its meta and data), if one was ever stored.
pub fn load(log: &LogStore) -> Result<Option<(SnapshotMeta, Vec<u8>)>, StateError> {
    let Some(payload) = log.meta().load(SNAPSHOT_META_NAME)? else {
        return Ok(None);
    };
    decode_persisted(&payload)
        .map(Some)
        .map_err(|why| StateError::BadSnapshot {
            path: file_path(log),
            why,
        })
}

/// Makes `meta` and `data` the persisted snapshot, unless the one stored already covers more
/// of the log (a snapshot built before an install finished after it, say). Blocking IO: the
/// caller serializes calls, so the check and the replacement are not interleaved.
pub fn store_if_newer(
    log: &LogStore,
    meta: &SnapshotMeta,
    data: &[u8],
) -> Result<bool, StateError> {
    if let Some((current, _)) = load(log)? {
        if current.last_log_id > meta.last_log_id {
            return Ok(false);
        }
    }
    log.meta()
        .store(SNAPSHOT_META_NAME, &encode_persisted(meta, data))?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::raft::typ::{LogId, Membership, StoredMembership};
    use openraft::{BasicNode, CommittedLeaderId};
    use std::collections::{BTreeMap, BTreeSet};

    fn meta(index: u64) -> SnapshotMeta {
        let nodes = BTreeMap::from([(1, BasicNode::new("127.0.0.1:10912"))]);
        let membership = Membership::new(vec![BTreeSet::from([1])], nodes);
        SnapshotMeta {
            last_log_id: Some(LogId::new(CommittedLeaderId::new(2, 1), index)),
            last_membership: StoredMembership::new(
                Some(LogId::new(CommittedLeaderId::new(1, 1), 0)),
                membership,
            ),
            snapshot_id: format!("2-{index}-1"),
        }
    }

    fn image() -> SnapshotImage {
        SnapshotImage {
            version: IMAGE_VERSION,
            topics: vec![TopicRecord {
                name: "T".into(),
                read_queue_nums: 4,
                write_queue_nums: 4,
                perm: 6,
                order: true,
            }],
            queues: vec![QueueRange {
                topic: "T".into(),
                queue_id: 1,
                min_offset: 3,
                max_offset: 9,
            }],
            offsets: vec![OffsetRecord {
                group: "g".into(),
                topic: "T".into(),
                queue_id: 1,
                offset: 7,
                committed_at_ms: 1_700_000_000_123,
            }],
            client_addrs: vec![NodeRecord {
                node_id: 1,
                client_addr: "127.0.0.1:10911".into(),
            }],
            dedup: DedupImage {
                settings: DedupSettings {
                    window_ms: 9_000,
                    max_keys: 10,
                },
                clock_ms: 1_700_000_000_000,
                keys: vec![Remembered {
                    fingerprint: [1, 2],
                    topic_hash: 3,
                    stored_at_ms: 1_699_999_999_000,
                    offset: 4,
                    position: 5,
                }],
            },
            digest: Some(42),
        }
    }

    #[test]
    fn image_round_trip_and_version_check() {
        let img = image();
        assert_eq!(SnapshotImage::decode(&img.encode()).unwrap(), img);
        let topic: TopicConfig = img.topics[0].clone().into();
        assert_eq!(TopicRecord::from(&topic), img.topics[0]);
        let newer = SnapshotImage {
            version: 3,
            ..img.clone()
        };
        assert!(SnapshotImage::decode(&newer.encode())
            .unwrap_err()
            .to_string()
            .contains("version 3"));
        assert!(SnapshotImage::decode(b"junk").is_err());
        // Every flipped byte and every cut is an error, never a panic or another image.
        let bytes = img.encode();
        for i in 0..bytes.len() {
            let mut bad = bytes.clone();
            bad[i] ^= 0x41;
            assert!(SnapshotImage::decode(&bad).is_err(), "flipped byte {i}");
            assert!(SnapshotImage::decode(&bytes[..i]).is_err(), "cut at {i}");
        }
    }

    #[test]
    fn a_version_1_image_still_loads_with_an_empty_retry_memory() {
        let v1 = br#"{"version":1,"topics":[{"name":"T","read_queue_nums":4,"write_queue_nums":4,"perm":6,"order":false}],"queues":[{"topic":"T","queue_id":1,"min_offset":3,"max_offset":9}],"offsets":[],"client_addrs":[]}"#;
        let img = SnapshotImage::decode(v1).unwrap();
        assert_eq!(
            (img.version, img.topics.len(), img.queues[0].max_offset),
            (1, 1, 9)
        );
        assert_eq!(img.dedup, DedupImage::default());
        assert_eq!(img.digest, None);
    }

    #[test]
    fn persisted_snapshot_round_trip() {
        let data = image().encode();
        let payload = encode_persisted(&meta(10), &data);
        assert_eq!(decode_persisted(&payload).unwrap(), (meta(10), data));
        assert!(decode_persisted(&payload[..2]).is_err());
        assert!(decode_persisted(&payload[..10]).is_err());
    }

    #[test]
    fn an_older_snapshot_never_replaces_a_newer_one() {
        let dir = tempfile::tempdir().unwrap();
        let log =
            LogStore::open(raft_log::LogConfig::new(dir.path()).segment_size(1 << 16)).unwrap();
        assert!(load(&log).unwrap().is_none());
        assert!(store_if_newer(&log, &meta(10), b"ten").unwrap());
        assert!(!store_if_newer(&log, &meta(5), b"five").unwrap());
        assert!(store_if_newer(&log, &meta(12), b"twelve").unwrap());
        assert_eq!(load(&log).unwrap(), Some((meta(12), b"twelve".to_vec())));

        std::fs::write(dir.path().join("snapshot.meta"), b"garbage").unwrap();
        let err = load(&log).unwrap_err().to_string();
        assert!(err.contains("snapshot.meta"), "{err}");
    }
}
