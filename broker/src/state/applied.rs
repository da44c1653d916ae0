//! What the applied log has built, and how one committed command changes it.
//!
//! Applying is split in two, "prepare, then apply": [`prepare_command`] decodes a command and,
//! for a send, finds its message records in the log (it reads the log's index and may fail);
//! [`AppliedState::apply`] then changes memory only and cannot fail, so a whole batch is
//! applied under one short write lock. Everything `apply` decides depends on the applied state
//! and the command alone, so queue offsets and refusals come out the same on every replica.
//!
//! Applying is total: a committed command whose bytes do not decode (or whose records do not
//! fit) is prepared as [`Prepared::Refused`] and applied as a refusal, the same on every
//! replica, and its sends are answered with the reason. Only a local failure (the entry is not
//! where this replica's own log says) stops the state machine.

use std::collections::BTreeMap;

use proto::v1::TopicConfig;
use raft_log::format::ENTRY_HEADER_LEN;
use xxhash_rust::xxh3::Xxh3;

use super::consume_queue::ConsumeQueue;
use super::consumer_offsets::ConsumerOffsets;
use super::recent_keys::RecentKeys;
use super::snapshot::{
    DedupImage, NodeRecord, OffsetRecord, QueueRange, SnapshotImage, TopicRecord, IMAGE_VERSION,
};
use super::topics::{send_refusal, TopicTable};
use super::MisplacedEntry;
use crate::command::{self, Command, DedupSettings, LogCommand};
use crate::raft::typ::{ApplyResult, LogId, Membership, NodeId, SnapshotMeta, StoredMembership};

/// A message record found in the log: what its consume-queue unit holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct LocatedRecord {
    pub position: u64,
    pub size: u32,
    pub tags_hash: u64,
}

/// A committed entry made ready to apply.
#[derive(Debug, Clone)]
pub(crate) enum Prepared {
    /// A leader's no-op: only advances the applied log id.
    Blank,
    Membership(Membership),
    Send {
        topic: String,
        queue_id: u32,
        /// The leader's store time (`None` in the legacy SEND layout).
        store_time_ms: Option<u64>,
        records: Vec<LocatedRecord>,
        /// Each record's `UNIQ_KEY` ("" when none).
        uniq_keys: Vec<String>,
    },
    UpsertTopic(TopicConfig),
    DeleteTopic(String),
    CommitOffsets {
        group: String,
        /// When the leader took the commit (0: not recorded).
        at_ms: u64,
        offsets: Vec<(String, u32, u64)>,
    },
    NodeInfo {
        node_id: NodeId,
        client_addr: String,
    },
    /// Sends coalesced into one entry, applied in order.
    Batch(Vec<Prepared>),
    /// The retry memory's settings.
    Dedup(DedupSettings),
    /// A command that cannot be applied as it is (its bytes do not decode): applied as a
    /// refusal, which says why.
    Refused(String),
}

/// Decodes a committed command. For a send, `locate` gives the position and whole size of the
/// log entry whose body is `cmd` (only sends need it), and each record's position is computed
/// from it.
///
/// A command whose content is bad gives `Ok(Prepared::Refused)`: every replica reads the same
/// bytes and refuses them alike. `Err` is kept for what is wrong with this replica's own log
/// (the entry is not where the log says, or not the size it should be).
pub(crate) fn prepare_command(
    cmd: &LogCommand,
    locate: impl FnOnce() -> Result<(u64, u32), MisplacedEntry>,
) -> Result<Prepared, MisplacedEntry> {
    let decoded = match cmd.decode() {
        Ok(decoded) => decoded,
        Err(e) => return Ok(Prepared::Refused(e.to_string())),
    };
    if !matches!(decoded, Command::Send { .. } | Command::Batch(_)) {
        return Ok(prepare_one(decoded, 0));
    }
    let (entry_position, entry_size) = locate()?;
    // The positions below assume the entry body is exactly the command bytes; a log
    // payload codec that framed them differently would make every position wrong.
    let expected = ENTRY_HEADER_LEN + cmd.0.len();
    if entry_size as usize != expected {
        return Err(MisplacedEntry::WrongSize {
            position: entry_position,
            size: entry_size,
            command_len: cmd.0.len(),
            expected,
        });
    }
    let body_position = entry_position + ENTRY_HEADER_LEN as u64;
    Ok(match decoded {
        Command::Batch(parts) => Prepared::Batch(
            parts
                .into_iter()
                .map(|(at, part)| match part.decode() {
                    Ok(decoded) => prepare_one(decoded, body_position + at as u64),
                    Err(e) => Prepared::Refused(e.to_string()),
                })
                .collect(),
        ),
        send => prepare_one(send, body_position),
    })
}

/// Prepares a decoded command that is not a batch; a send's record positions are
/// `body_position` (where its bytes sit in the log) plus their offsets.
fn prepare_one(decoded: Command, body_position: u64) -> Prepared {
    match decoded {
        Command::Send {
            topic,
            queue_id,
            store_time_ms,
            count,
            records,
            records_offset,
            uniq_keys,
        } => match command::records(&records, records_offset, count) {
            Ok(refs) => Prepared::Send {
                topic,
                queue_id,
                store_time_ms,
                records: refs
                    .into_iter()
                    .map(|r| LocatedRecord {
                        position: body_position + r.offset as u64,
                        size: r.size,
                        tags_hash: r.tags_hash,
                    })
                    .collect(),
                uniq_keys,
            },
            Err(e) => Prepared::Refused(e.to_string()),
        },
        Command::UpsertTopic(config) => Prepared::UpsertTopic(config),
        Command::DeleteTopic(name) => Prepared::DeleteTopic(name),
        Command::CommitOffsets {
            group,
            commit_time_ms,
            offsets,
        } => Prepared::CommitOffsets {
            group,
            at_ms: commit_time_ms.unwrap_or(0),
            offsets,
        },
        Command::NodeInfo {
            node_id,
            client_addr,
        } => Prepared::NodeInfo {
            node_id,
            client_addr,
        },
        Command::Dedup(settings) => Prepared::Dedup(settings),
        // `decode` never yields a batch inside a batch (its parts must be sends).
        Command::Batch(_) => Prepared::Refused("a batch inside a batch".into()),
    }
}

/// Everything the applied log has built: the state machine's state.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AppliedState {
    /// The last entry applied (or the snapshot's, after an install or a restart from one).
    pub(crate) last_applied: Option<LogId>,
    /// The membership of the last membership entry applied.
    pub(crate) membership: StoredMembership,
    pub(crate) topics: TopicTable,
    /// topic → queue id → consume queue. A queue appears with the first send accepted to it.
    pub(crate) queues: BTreeMap<String, BTreeMap<u32, ConsumeQueue>>,
    pub(crate) offsets: ConsumerOffsets,
    /// Replica id → client address (`host:port` of its listenPort), as each replica announced
    /// it: what a NOT_LEADER reply points clients at.
    pub(crate) client_addrs: BTreeMap<NodeId, String>,
    /// The most recent messages' unique keys, to drop a producer's retried copies.
    pub(crate) recent: RecentKeys,
}

impl AppliedState {
    /// Applies one prepared entry.
    pub(crate) fn apply(&mut self, log_id: LogId, prepared: Prepared) -> ApplyResult {
        self.last_applied = Some(log_id);
        match prepared {
            Prepared::Blank => ApplyResult::Done,
            Prepared::Membership(m) => {
                self.membership = StoredMembership::new(Some(log_id), m);
                ApplyResult::Done
            }
            Prepared::Send {
                topic,
                queue_id,
                store_time_ms,
                records,
                uniq_keys,
            } => {
                if let Some(t) = store_time_ms {
                    self.recent.advance(t);
                }
                if let Some(why) = send_refusal(&topic, self.topics.get(&topic), queue_id) {
                    tracing::debug!(index = log_id.index, %why, "send refused when applied");
                    return ApplyResult::Refused(why);
                }
                let queue = self
                    .queues
                    .entry(topic.clone())
                    .or_default()
                    .entry(queue_id)
                    .or_default();
                let mut offsets = Vec::with_capacity(records.len());
                let mut positions = Vec::with_capacity(records.len());
                let mut duplicates = 0;
                for (i, r) in records.iter().enumerate() {
                    let key = uniq_keys.get(i).map_or("", |k| k.as_str());
                    if let Some((offset, position)) = (!key.is_empty())
                        .then(|| self.recent.get(&topic, queue_id, key))
                        .flatten()
                    {
                        offsets.push(offset);
                        positions.push(position);
                        duplicates += 1;
                        continue;
                    }
                    let offset = queue.max_offset();
                    queue.push(r.position, r.size, r.tags_hash);
                    if !key.is_empty() {
                        self.recent
                            .insert(&topic, queue_id, key, offset, r.position);
                    }
                    offsets.push(offset);
                    positions.push(r.position);
                }
                ApplyResult::Stored {
                    queue_id,
                    offsets,
                    positions,
                    duplicates,
                }
            }
            Prepared::UpsertTopic(config) => {
                self.topics.upsert(config);
                ApplyResult::Done
            }
            Prepared::DeleteTopic(name) => {
                // As RocketMQ's deleteTopic: the config, the consume queues and the consumer
                // offsets go; a topic created again under the name starts its queues at 0.
                self.topics.delete(&name);
                self.queues.remove(&name);
                self.offsets.remove_topic(&name);
                self.recent.remove_topic(&name);
                ApplyResult::Done
            }
            Prepared::CommitOffsets {
                group,
                at_ms,
                offsets,
            } => {
                for (topic, queue_id, offset) in offsets {
                    self.offsets.commit(&group, &topic, queue_id, offset, at_ms);
                }
                ApplyResult::Done
            }
            Prepared::NodeInfo {
                node_id,
                client_addr,
            } => {
                self.client_addrs.insert(node_id, client_addr);
                ApplyResult::Done
            }
            Prepared::Batch(parts) => ApplyResult::Batch(
                parts
                    .into_iter()
                    .map(|part| self.apply(log_id, part))
                    .collect(),
            ),
            Prepared::Dedup(settings) => {
                self.recent.set_settings(settings);
                ApplyResult::Done
            }
            Prepared::Refused(why) => {
                tracing::warn!(index = log_id.index, %why, "a committed entry is applied as a refusal");
                ApplyResult::Refused(format!(
                    "log entry {} cannot be applied: {why}",
                    log_id.index
                ))
            }
        }
    }

    pub(crate) fn queue(&self, topic: &str, queue_id: u32) -> Option<&ConsumeQueue> {
        self.queues.get(topic)?.get(&queue_id)
    }

    /// Every consume queue's offset range, ordered by (topic, queue id).
    pub(crate) fn queue_ranges(&self) -> Vec<QueueRange> {
        self.queues
            .iter()
            .flat_map(|(topic, queues)| {
                queues.iter().map(move |(queue_id, q)| QueueRange {
                    topic: topic.clone(),
                    queue_id: *queue_id,
                    min_offset: q.min_offset(),
                    max_offset: q.max_offset(),
                })
            })
            .collect()
    }

    /// A digest of everything applying decides: topics, each queue's next offset, consumer
    /// offsets, replicas' client addresses and the retry memory. Two replicas at the same
    /// applied index must have the same digest; if they do not, their states diverged.
    ///
    /// A queue's min offset is left out: it says what this replica can still read (a replica
    /// that installed a snapshot has fewer messages), not what was applied.
    pub fn digest(&self) -> u64 {
        let mut h = Xxh3::new();
        let mut field = |bytes: &[u8]| {
            h.update(&(bytes.len() as u64).to_le_bytes());
            h.update(bytes);
        };
        for t in self.topics.iter() {
            field(t.topic_name.as_bytes());
            field(&t.read_queue_nums.to_le_bytes());
            field(&t.write_queue_nums.to_le_bytes());
            field(&t.perm.to_le_bytes());
            field(&[u8::from(t.order)]);
        }
        field(b"queues");
        for (topic, queues) in &self.queues {
            for (queue_id, q) in queues {
                field(topic.as_bytes());
                field(&queue_id.to_le_bytes());
                field(&q.max_offset().to_le_bytes());
            }
        }
        field(b"offsets");
        for (group, topic, queue_id, offset, at_ms) in self.offsets.iter() {
            field(group.as_bytes());
            field(topic.as_bytes());
            field(&queue_id.to_le_bytes());
            field(&offset.to_le_bytes());
            field(&at_ms.to_le_bytes());
        }
        field(b"nodes");
        for (node_id, addr) in &self.client_addrs {
            field(&node_id.to_le_bytes());
            field(addr.as_bytes());
        }
        field(b"recent");
        field(&self.recent.digest().to_le_bytes());
        h.digest()
    }

    /// The snapshot image of this state (topics, queue ranges, consumer offsets, client
    /// addresses, retry memory, digest).
    pub(crate) fn image(&self) -> SnapshotImage {
        SnapshotImage {
            version: IMAGE_VERSION,
            topics: self.topics.iter().map(TopicRecord::from).collect(),
            queues: self.queue_ranges(),
            offsets: self
                .offsets
                .iter()
                .map(|(group, topic, queue_id, offset, at_ms)| OffsetRecord {
                    group: group.to_owned(),
                    topic: topic.to_owned(),
                    queue_id,
                    offset,
                    committed_at_ms: at_ms,
                })
                .collect(),
            client_addrs: self
                .client_addrs
                .iter()
                .map(|(node_id, client_addr)| NodeRecord {
                    node_id: *node_id,
                    client_addr: client_addr.clone(),
                })
                .collect(),
            dedup: DedupImage {
                settings: self.recent.settings(),
                clock_ms: self.recent.clock_ms(),
                keys: self.recent.iter().copied().collect(),
            },
            digest: Some(self.digest()),
        }
    }

    /// The state a snapshot describes. Its consume queues are empty and start at the
    /// snapshot's max offsets: a snapshot holds no messages, so the ones before are not
    /// readable here (see `rebuild` for what a restart re-indexes from the log).
    pub(crate) fn from_snapshot(meta: &SnapshotMeta, image: SnapshotImage) -> Self {
        let mut state = AppliedState {
            last_applied: meta.last_log_id,
            membership: meta.last_membership.clone(),
            ..Default::default()
        };
        for topic in image.topics {
            state.topics.upsert(topic.into());
        }
        for q in image.queues {
            state
                .queues
                .entry(q.topic)
                .or_default()
                .insert(q.queue_id, ConsumeQueue::starting_at(q.max_offset));
        }
        for o in image.offsets {
            state
                .offsets
                .commit(&o.group, &o.topic, o.queue_id, o.offset, o.committed_at_ms);
        }
        state.client_addrs = image
            .client_addrs
            .into_iter()
            .map(|n| (n.node_id, n.client_addr))
            .collect();
        state.recent =
            RecentKeys::restore(image.dedup.settings, image.dedup.clock_ms, image.dedup.keys);
        state
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::topics::default_topic_config as topic;
    use openraft::CommittedLeaderId;
    use proto::v1::StoredMessage;

    fn log_id(index: u64) -> LogId {
        LogId::new(CommittedLeaderId::new(1, 0), index)
    }

    fn send(topic: &str, queue_id: u32, n: u64, at: u64) -> Prepared {
        Prepared::Send {
            topic: topic.into(),
            queue_id,
            store_time_ms: None,
            records: (0..n)
                .map(|i| LocatedRecord {
                    position: at + i * 100,
                    size: 100,
                    tags_hash: i,
                })
                .collect(),
            uniq_keys: Vec::new(),
        }
    }

    fn keyed(mut p: Prepared, keys: &[&str]) -> Prepared {
        if let Prepared::Send { uniq_keys, .. } = &mut p {
            *uniq_keys = keys.iter().map(|k| k.to_string()).collect();
        }
        p
    }

    #[test]
    fn a_retried_message_is_stored_once_and_answered_with_the_original() {
        let mut s = AppliedState::default();
        s.apply(log_id(1), Prepared::UpsertTopic(topic("T", 2)));
        let first = s.apply(log_id(2), keyed(send("T", 0, 2, 100), &["a", "b"]));
        assert_eq!(
            first,
            ApplyResult::Stored {
                queue_id: 0,
                offsets: vec![0, 1],
                positions: vec![100, 200],
                duplicates: 0
            }
        );
        // The retry of "b" (its ack was lost) plus a new "c".
        let retry = s.apply(log_id(3), keyed(send("T", 0, 2, 900), &["b", "c"]));
        assert_eq!(
            retry,
            ApplyResult::Stored {
                queue_id: 0,
                offsets: vec![1, 2],
                positions: vec![200, 1000],
                duplicates: 1
            }
        );
        assert_eq!(s.queue("T", 0).map(|q| q.max_offset()), Some(3));
        // Same key on another queue is another message.
        let other = s.apply(log_id(4), keyed(send("T", 1, 1, 2000), &["a"]));
        assert!(matches!(other, ApplyResult::Stored { duplicates: 0, .. }));
    }

    #[test]
    fn prepare_locates_records_after_the_entry_header() {
        let msgs = [
            StoredMessage {
                tags: "a".into(),
                body: b"x".to_vec().into(),
                ..Default::default()
            },
            StoredMessage {
                tags: "b".into(),
                body: b"yy".to_vec().into(),
                ..Default::default()
            },
        ];
        let cmd = LogCommand::send("T", 2, 7, &msgs).unwrap();
        let size = (ENTRY_HEADER_LEN + cmd.0.len()) as u32;
        let Prepared::Send {
            topic,
            queue_id,
            records,
            ..
        } = prepare_command(&cmd, || Ok((1000, size))).unwrap()
        else {
            panic!("not a send")
        };
        assert_eq!((topic.as_str(), queue_id, records.len()), ("T", 2, 2));
        for (r, m) in records.iter().zip(&msgs) {
            let at = (r.position - 1000) as usize - ENTRY_HEADER_LEN;
            let bytes = cmd.0.slice(at..at + r.size as usize);
            assert_eq!(&command::decode_record(bytes).unwrap(), m);
            assert_eq!(r.tags_hash, command::tags_hash(&m.tags));
        }

        let err = prepare_command(&cmd, || Ok((1000, size + 4))).unwrap_err();
        assert!(
            err.to_string().contains("must be the command bytes"),
            "{err}"
        );
        let missing = MisplacedEntry::NotInLog { index: 7 };
        let err = prepare_command(&cmd, || Err(missing.clone())).unwrap_err();
        assert_eq!(err, missing);
        // Commands other than sends never ask where they are.
        let cmd = LogCommand::delete_topic("T").unwrap();
        assert!(matches!(
            prepare_command(&cmd, || unreachable!()),
            Ok(Prepared::DeleteTopic(t)) if t == "T"
        ));
        // Bytes that do not decode are a refusal, not an error: every replica refuses them.
        assert!(matches!(
            prepare_command(&LogCommand(vec![99u8].into()), || unreachable!()),
            Ok(Prepared::Refused(why)) if why.contains("unknown command tag")
        ));
    }

    #[test]
    fn sends_topics_offsets() {
        let mut s = AppliedState::default();
        let refused = s.apply(log_id(1), send("T", 0, 1, 0));
        assert!(matches!(refused, ApplyResult::Refused(ref why) if why.contains("does not exist")));
        assert_eq!(
            s.apply(log_id(2), Prepared::UpsertTopic(topic("T", 2))),
            ApplyResult::Done
        );
        assert_eq!(
            s.apply(log_id(3), send("T", 1, 2, 500)),
            ApplyResult::Stored {
                queue_id: 1,
                offsets: vec![0, 1],
                positions: vec![500, 600],
                duplicates: 0,
            }
        );
        assert_eq!(
            s.apply(log_id(4), send("T", 1, 1, 900)),
            ApplyResult::Stored {
                queue_id: 1,
                offsets: vec![2],
                positions: vec![900],
                duplicates: 0,
            }
        );
        assert!(matches!(
            s.apply(log_id(5), send("T", 2, 1, 0)),
            ApplyResult::Refused(_)
        ));
        assert_eq!(s.queue("T", 1).map(|q| q.max_offset()), Some(3));
        assert_eq!(s.queue("T", 0), None);
        s.apply(
            log_id(6),
            Prepared::CommitOffsets {
                group: "g".into(),
                at_ms: 5,
                offsets: vec![("T".into(), 1, 2)],
            },
        );
        assert_eq!(s.offsets.get("g", "T", 1), Some(2));
        assert_eq!(s.last_applied, Some(log_id(6)));

        s.apply(log_id(7), Prepared::DeleteTopic("T".into()));
        assert!(s.topics.is_empty() && s.queues.is_empty());
        assert_eq!(s.offsets.get("g", "T", 1), None);
        s.apply(log_id(8), Prepared::UpsertTopic(topic("T", 2)));
        assert!(matches!(
            s.apply(log_id(9), send("T", 1, 1, 2000)),
            ApplyResult::Stored { ref offsets, .. } if offsets == &[0]
        ));
        assert_eq!(s.apply(log_id(10), Prepared::Blank), ApplyResult::Done);
        let node = Prepared::NodeInfo {
            node_id: 2,
            client_addr: "127.0.0.1:30911".into(),
        };
        assert_eq!(s.apply(log_id(11), node), ApplyResult::Done);
        assert_eq!(
            s.client_addrs.get(&2).map(String::as_str),
            Some("127.0.0.1:30911")
        );
        assert_eq!(s.last_applied, Some(log_id(11)));
    }

    #[test]
    fn image_and_back() {
        let mut s = AppliedState::default();
        s.client_addrs.insert(1, "10.0.0.1:10911".into());
        s.apply(log_id(1), Prepared::UpsertTopic(topic("T", 2)));
        s.apply(log_id(2), send("T", 0, 3, 0));
        s.apply(
            log_id(3),
            Prepared::CommitOffsets {
                group: "g".into(),
                at_ms: 5,
                offsets: vec![("T".into(), 0, 1)],
            },
        );
        let meta = SnapshotMeta {
            last_log_id: s.last_applied,
            last_membership: s.membership.clone(),
            snapshot_id: "x".into(),
        };
        let image = s.image();
        assert_eq!(image.queues[0].max_offset, 3);
        let restored = AppliedState::from_snapshot(&meta, image.clone());
        let again = restored.image();
        assert_eq!(
            (&again.topics, &again.offsets),
            (&image.topics, &image.offsets)
        );
        assert_eq!(again.client_addrs, image.client_addrs);
        assert_eq!(image.client_addrs.len(), 1);
        // The queue keeps its end; its messages stay behind on the snapshot's builder.
        assert_eq!(again.queues[0].max_offset, 3);
        assert_eq!(again.queues[0].min_offset, 3);
        let q = restored.queue("T", 0).unwrap();
        assert_eq!((q.min_offset(), q.max_offset(), q.len()), (3, 3, 0));
        assert_eq!(restored.last_applied, Some(log_id(3)));
    }
}
