//! What a restart starts from.
//!
//! - **No persisted snapshot**: an empty state. openraft re-applies the committed log from its
//!   start, which rebuilds every consume queue, topic, consumer offset and the retry memory
//!   exactly. (If the log is purged there is nothing to start from:
//!   [`StateError::PurgedWithoutSnapshot`].)
//! - **A persisted snapshot at index `s`, the whole log since index 0 still there**: the
//!   entries up to `s` are applied again here, exactly as openraft would apply them, and the
//!   result is checked against the snapshot's digest (a mismatch is logged: the replayed state
//!   is what applying the log gives, so it is the one kept). openraft then re-applies the
//!   entries after `s`.
//! - **A snapshot, and a log purged before it** (or one that ends before `s`): the snapshot's
//!   topics, consumer offsets, retry memory, membership and last applied id, with each
//!   consume queue ending at the snapshot's max offset. The snapshot holds no messages, so the
//!   units of the messages the log still holds at or before `s` are re-indexed by scanning
//!   those entries, and placed so that the last of them ends at the snapshot's max offset:
//!   - a send that precedes the first retained UpsertTopic/DeleteTopic of its topic is counted
//!     as accepted (the config it was checked against is gone; the leader checks topic and
//!     queue before it proposes a send, so only a send racing a purged topic change could
//!     have been refused). Every other send is decided exactly;
//!   - a log that ends before `s` (its tail was lost with the page cache) cannot say which
//!     offsets its messages had: nothing is re-indexed and those messages stay unreadable
//!     here (a warning says so).
//!
//! Loading the snapshot even when the whole log is still there is deliberate: openraft may
//! have built (and persisted) it from entries whose commit had not reached `committed.meta`
//! yet, and a state machine restarting below its current snapshot is what openraft never
//! expects.

use std::collections::{BTreeMap, HashMap, HashSet};

use proto::v1::TopicConfig;
use raft_log::{EntryKind, LogStore};
use tracing::{info, warn};

use super::applied::{prepare_command, AppliedState, LocatedRecord, Prepared};
use super::consume_queue::ConsumeQueue;
use super::recent_keys::RecentKeys;
use super::snapshot::{self, SnapshotImage};
use super::topics::send_refusal;
use super::StateError;
use crate::command::LogCommand;
use crate::raft::typ::{LogId, SnapshotMeta};

/// Entries read from the log per batch while re-indexing.
const SCAN_BATCH: u64 = 256;

/// The state a replica restarts from (see the module docs).
pub(crate) fn open_state(log: &LogStore) -> Result<AppliedState, StateError> {
    let Some((meta, data)) = snapshot::load(log)? else {
        if let Some(purged) = log.last_purged() {
            return Err(StateError::PurgedWithoutSnapshot {
                purged: purged.index,
                dir: log.config().dir.clone(),
            });
        }
        return Ok(AppliedState::default());
    };
    let image = SnapshotImage::decode(&data).map_err(|why| StateError::BadSnapshot {
        path: log
            .config()
            .dir
            .join(format!("{}.meta", snapshot::SNAPSHOT_META_NAME)),
        why,
    })?;
    let upto = meta.last_log_id.map(|l| l.index);
    if let Some(purged) = log.last_purged() {
        if upto.is_none_or(|s| purged.index > s) {
            return Err(StateError::PurgedPastSnapshot {
                purged: purged.index,
                snapshot: upto,
                dir: log.config().dir.clone(),
            });
        }
    }
    let whole_history = log.last_purged().is_none()
        && log.first_index() == Some(0)
        && upto.is_some_and(|s| log.last_log_id().is_some_and(|l| l.index >= s));
    let state = match upto {
        Some(upto) if whole_history => replay(log, &meta, &image, upto)?,
        _ => {
            let mut state = AppliedState::from_snapshot(&meta, image);
            if let Some(upto) = upto {
                reindex_retained(&mut state, log, upto)?;
            }
            state
        }
    };
    info!(
        last_applied = ?state.last_applied,
        topics = state.topics.len(),
        "state machine restarts from its snapshot"
    );
    Ok(state)
}

/// Applies the log's entries `0..=upto` to an empty state, as openraft applied them before
/// the restart, and checks the result against the snapshot taken at `upto`.
fn replay(
    log: &LogStore,
    meta: &SnapshotMeta,
    image: &SnapshotImage,
    upto: u64,
) -> Result<AppliedState, StateError> {
    let mut state = AppliedState::default();
    let mut start = 0;
    while start <= upto {
        let end = upto.saturating_add(1).min(start.saturating_add(SCAN_BATCH));
        for entry in log.read_range(start..end)? {
            let log_id = LogId::new(openraft::CommittedLeaderId::new(entry.term, 0), entry.index);
            let prepared = match entry.kind {
                EntryKind::Normal => {
                    let (position, size) = (entry.position, entry.body.len());
                    let cmd = LogCommand(entry.body);
                    let located =
                        || Ok((position, (raft_log::format::ENTRY_HEADER_LEN + size) as u32));
                    prepare_command(&cmd, located).map_err(|why| StateError::BadEntry {
                        index: entry.index,
                        why,
                    })?
                }
                // Membership comes from the snapshot's meta below; a blank changes nothing.
                _ => Prepared::Blank,
            };
            state.apply(log_id, prepared);
        }
        start = end;
    }
    state.last_applied = meta.last_log_id;
    state.membership = meta.last_membership.clone();
    let digest = state.digest();
    match image.digest {
        Some(expected) if expected != digest => warn!(
            upto,
            expected = format_args!("{expected:016x}"),
            replayed = format_args!("{digest:016x}"),
            "the log up to the snapshot replays to another state than the snapshot holds; \
             keeping the replayed state, which is what applying the log gives"
        ),
        Some(_) => {}
        None => info!(
            upto,
            "a version 1 snapshot (no retry memory): the state is rebuilt from the log"
        ),
    }
    Ok(state)
}

/// Re-indexes the messages of the retained entries up to `upto` into `state`'s queues, which
/// must be as a snapshot at `upto` left them (empty, ending at their max offsets).
fn reindex_retained(state: &mut AppliedState, log: &LogStore, upto: u64) -> Result<(), StateError> {
    let Some(first) = log.first_index().filter(|&f| f <= upto) else {
        return Ok(());
    };
    if log.last_log_id().is_none_or(|l| l.index < upto) {
        warn!(
            upto,
            last = ?log.last_log_id(),
            "the log ends before the snapshot: the messages it holds are not re-indexed and \
             cannot be read from this replica"
        );
        return Ok(());
    }
    let entries = prepare_retained(log, first, upto)?;

    // Topics whose config changes inside the scanned range: before their first change the
    // config is unknown, unless the log's whole history is here (then they did not exist).
    let changed: HashSet<&str> = entries
        .iter()
        .filter_map(|p| match p {
            Prepared::UpsertTopic(c) => Some(c.topic_name.as_str()),
            Prepared::DeleteTopic(name) => Some(name.as_str()),
            _ => None,
        })
        .collect();
    let mut known: HashMap<String, Option<TopicConfig>> = HashMap::new();
    if log.last_purged().is_none() {
        known.extend(changed.iter().map(|t| (t.to_string(), None)));
    }
    let mut accepted: BTreeMap<String, BTreeMap<u32, Vec<LocatedRecord>>> = BTreeMap::new();
    let mut recent = RecentKeys::new(state.recent.settings());
    for prepared in &entries {
        match prepared {
            Prepared::UpsertTopic(c) => {
                known.insert(c.topic_name.clone(), Some(c.clone()));
            }
            Prepared::DeleteTopic(name) => {
                accepted.remove(name);
                known.insert(name.clone(), None);
                recent.remove_topic(name);
            }
            Prepared::Send {
                topic,
                queue_id,
                store_time_ms,
                records,
                uniq_keys,
            } => {
                if let Some(t) = store_time_ms {
                    recent.advance(*t);
                }
                let refused = match known.get(topic) {
                    Some(config) => send_refusal(topic, config.as_ref(), *queue_id).is_some(),
                    None if changed.contains(topic.as_str()) => false,
                    None => send_refusal(topic, state.topics.get(topic), *queue_id).is_some(),
                };
                if !refused {
                    let queue = accepted
                        .entry(topic.clone())
                        .or_default()
                        .entry(*queue_id)
                        .or_default();
                    // As when applied: a producer's retried copy of a message was not stored
                    // again. (Keys of messages before the first retained entry are unknown
                    // here; a retry that far apart would have been dropped only if the
                    // original was among the last RECENT_KEYS messages.)
                    for (i, r) in records.iter().enumerate() {
                        let key = uniq_keys.get(i).map_or("", |k| k.as_str());
                        if !key.is_empty() {
                            if recent.get(topic, *queue_id, key).is_some() {
                                continue;
                            }
                            recent.insert(topic, *queue_id, key, 0, r.position);
                        }
                        queue.push(*r);
                    }
                }
            }
            _ => {}
        }
    }

    let mut units = 0usize;
    for (topic, queues) in accepted {
        for (queue_id, records) in queues {
            let Some(queue) = state
                .queues
                .get_mut(&topic)
                .and_then(|q| q.get_mut(&queue_id))
            else {
                warn!(
                    %topic,
                    queue_id,
                    "retained messages of a queue the snapshot does not have; not re-indexed"
                );
                continue;
            };
            let max = queue.max_offset();
            let skip = (records.len() as u64).saturating_sub(max) as usize;
            if skip > 0 {
                warn!(
                    %topic,
                    queue_id,
                    skip,
                    "more retained messages than the queue's max offset; re-indexing the newest"
                );
            }
            let kept = &records[skip..];
            let mut rebuilt = ConsumeQueue::starting_at(max - kept.len() as u64);
            for r in kept {
                rebuilt.push(r.position, r.size, r.tags_hash);
            }
            units += kept.len();
            *queue = rebuilt;
        }
    }
    info!(
        first,
        upto, units, "re-indexed the messages the log holds up to the snapshot"
    );
    Ok(())
}

/// Reads and prepares the entries `first..=upto` (topic changes and sends matter here).
fn prepare_retained(log: &LogStore, first: u64, upto: u64) -> Result<Vec<Prepared>, StateError> {
    let mut out = Vec::new();
    let mut start = first;
    while start <= upto {
        let end = upto.saturating_add(1).min(start.saturating_add(SCAN_BATCH));
        for entry in log.read_range(start..end)? {
            if entry.kind != EntryKind::Normal {
                continue;
            }
            let size = entry.body.len();
            let position = entry.position;
            let cmd = LogCommand(entry.body);
            let located = || Ok((position, (raft_log::format::ENTRY_HEADER_LEN + size) as u32));
            let prepared = prepare_command(&cmd, located).map_err(|why| StateError::BadEntry {
                index: entry.index,
                why,
            })?;
            let parts = match prepared {
                Prepared::Batch(parts) => parts,
                one => vec![one],
            };
            out.extend(parts.into_iter().filter(|p| {
                matches!(
                    p,
                    Prepared::Send { .. } | Prepared::UpsertTopic(_) | Prepared::DeleteTopic(_)
                )
            }));
        }
        start = end;
    }
    Ok(out)
}
