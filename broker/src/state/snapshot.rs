//! Metadata snapshots (DESIGN §3): what a follower behind the purged part of the log gets
//! instead of the entries, and what a restart starts from.
//!
//! A snapshot holds metadata only, never message bodies: openraft's [`SnapshotMeta`] (the last
//! applied log id and the membership) plus a [`SnapshotImage`] (topics, per-queue offset
//! ranges, consumer offsets, replicas' client addresses). A replica that installs one gets
//! empty consume queues that start at the snapshot's max offsets: the messages before them
//! stay on the replicas that have them.
//!
//! Snapshot data, as openraft streams it to a follower: the JSON of a [`SnapshotImage`], whose
//! `version` field is [`IMAGE_VERSION`].
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

use super::StateError;
use crate::raft::typ::{NodeId, SnapshotMeta};

/// Name of the metadata file that holds the current snapshot (`snapshot.meta`).
pub const SNAPSHOT_META_NAME: &str = "snapshot";

/// Version of the [`SnapshotImage`] layout; an image of another version is refused.
pub const IMAGE_VERSION: u32 = 1;

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
    /// The snapshot data openraft streams.
    pub fn encode(&self) -> Vec<u8> {
        // Plain structs of strings and integers: serializing them cannot fail.
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// Reads snapshot data back, refusing another layout version.
    pub fn decode(data: &[u8]) -> Result<Self, String> {
        let image: Self = serde_json::from_slice(data)
            .map_err(|e| format!("snapshot data is not an image: {e}"))?;
        if image.version != IMAGE_VERSION {
            return Err(format!(
                "snapshot image version {} is not the supported version {IMAGE_VERSION}",
                image.version
            ));
        }
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

fn decode_persisted(payload: &[u8]) -> Result<(SnapshotMeta, Vec<u8>), String> {
    let len_bytes: [u8; 4] = payload
        .get(..4)
        .and_then(|b| b.try_into().ok())
        .ok_or("shorter than its length field")?;
    let meta_len = u32::from_le_bytes(len_bytes) as usize;
    let meta_json = payload
        .get(4..4 + meta_len)
        .ok_or("shorter than its snapshot meta")?;
    let meta = serde_json::from_slice(meta_json).map_err(|e| format!("bad snapshot meta: {e}"))?;
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
            }],
            client_addrs: vec![NodeRecord {
                node_id: 1,
                client_addr: "127.0.0.1:10911".into(),
            }],
        }
    }

    #[test]
    fn image_round_trip_and_version_check() {
        let img = image();
        assert_eq!(SnapshotImage::decode(&img.encode()), Ok(img.clone()));
        let topic: TopicConfig = img.topics[0].clone().into();
        assert_eq!(TopicRecord::from(&topic), img.topics[0]);
        let newer = SnapshotImage { version: 2, ..img };
        assert!(SnapshotImage::decode(&newer.encode())
            .unwrap_err()
            .contains("version 2"));
        assert!(SnapshotImage::decode(b"junk").is_err());
    }

    #[test]
    fn persisted_snapshot_round_trip() {
        let data = image().encode();
        let payload = encode_persisted(&meta(10), &data);
        assert_eq!(decode_persisted(&payload), Ok((meta(10), data)));
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
