//! [`StateMachine`]: openraft's `RaftStateMachine` for a broker group, and its snapshot builder.

use std::io::Cursor;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use openraft::storage::{RaftSnapshotBuilder, RaftStateMachine};
use openraft::{AnyError, OptionalSend, StorageIOError};
use raft_log::LogStore;

use super::applied::{prepare_command, AppliedState, Prepared};
use super::broker_state::{BrokerState, DIGEST_EVERY};
use super::rebuild::open_state;
use super::snapshot::{self, SnapshotImage};
use super::{MisplacedEntry, StateError};
use crate::raft::typ::{
    ApplyResult, Entry, EntryPayload, LogId, NodeId, Snapshot, SnapshotMeta, StorageError,
    StoredMembership, TypeConfig,
};

/// The state machine every replica of a broker group applies committed entries to: it builds
/// the consume queues, topic configs and consumer offsets that [`BrokerState`] serves.
///
/// Message bytes are never copied: a consume-queue unit points at the record inside the log
/// entry that carried it, so the machine needs the [`LogStore`] the entries were appended to.
pub struct StateMachine {
    log: LogStore,
    state: BrokerState,
    snapshots: SnapshotStore,
}

/// What building, installing and reading snapshots share.
#[derive(Clone)]
struct SnapshotStore {
    log: LogStore,
    /// Serializes "is the persisted snapshot older? then replace it" between a build and an
    /// install that finish at the same time.
    persist: Arc<Mutex<()>>,
    /// Makes snapshot ids unique within the process (ids only tell transfers apart).
    built: Arc<AtomicU64>,
}

/// Builds snapshots of the applied state ([`RaftSnapshotBuilder`]).
pub struct StateSnapshotBuilder {
    state: BrokerState,
    snapshots: SnapshotStore,
}

fn sm_error(
    err: &StateError,
    subject: impl FnOnce(AnyError) -> StorageIOError<NodeId>,
) -> StorageError {
    StorageError::IO {
        source: subject(AnyError::new(err)),
    }
}

impl StateMachine {
    /// Opens the state machine of the group whose log is `log`. Reads the log: on a large log,
    /// call it off the async runtime (`spawn_blocking`) or before starting it.
    ///
    /// What a restart rebuilds (details in `state/rebuild.rs`):
    /// - no persisted snapshot: an empty state; openraft re-applies the committed log from
    ///   its start, rebuilding queues, topics and offsets exactly. A purged log without a
    ///   snapshot is an error ([`StateError::PurgedWithoutSnapshot`]);
    /// - a persisted snapshot at index `s`: its metadata, plus the consume-queue units of the
    ///   messages the log still holds up to `s` (exact when the log was never purged; after a
    ///   purge, a send older than the first retained config change of its topic is taken as
    ///   accepted); openraft re-applies the entries after `s`. Messages in purged entries are
    ///   not readable here: each queue's min offset says where reading starts.
    pub fn open(log: LogStore) -> Result<Self, StateError> {
        let state = BrokerState::new(open_state(&log)?);
        Ok(Self {
            snapshots: SnapshotStore {
                log: log.clone(),
                persist: Arc::new(Mutex::new(())),
                built: Arc::new(AtomicU64::new(0)),
            },
            log,
            state,
        })
    }

    /// The read handle the services use.
    pub fn state(&self) -> BrokerState {
        self.state.clone()
    }

    /// Decodes a normal entry and finds its records in the log.
    fn prepare(&self, index: u64, payload: EntryPayload) -> Result<Prepared, StateError> {
        match payload {
            EntryPayload::Blank => Ok(Prepared::Blank),
            EntryPayload::Membership(m) => Ok(Prepared::Membership(m)),
            EntryPayload::Normal(cmd) => {
                let locate = || {
                    self.log
                        .locate(index)
                        .ok_or(MisplacedEntry::NotInLog { index })
                };
                prepare_command(&cmd, locate).map_err(|why| StateError::BadEntry { index, why })
            }
        }
    }
}

impl SnapshotStore {
    /// Persists a snapshot unless a newer one is already there (blocking IO, off the runtime).
    async fn persist(&self, meta: &SnapshotMeta, data: Vec<u8>) -> Result<(), StorageError> {
        let store = self.clone();
        let meta_owned = meta.clone();
        let outcome = tokio::task::spawn_blocking(move || {
            let _serial = store.persist.lock().unwrap_or_else(|p| p.into_inner());
            snapshot::store_if_newer(&store.log, &meta_owned, &data)
        })
        .await
        .map_err(|e| StateError::Blocking(e.to_string()))
        .and_then(|r| r);
        outcome.map(|_| ()).map_err(|e| {
            sm_error(&e, |e| {
                StorageIOError::write_snapshot(Some(meta.signature()), e)
            })
        })
    }

    async fn load(&self) -> Result<Option<Snapshot>, StorageError> {
        let log = self.log.clone();
        let loaded = tokio::task::spawn_blocking(move || snapshot::load(&log))
            .await
            .map_err(|e| StateError::Blocking(e.to_string()))
            .and_then(|r| r)
            .map_err(|e| sm_error(&e, |e| StorageIOError::read_snapshot(None, e)))?;
        Ok(loaded.map(|(meta, data)| Snapshot {
            meta,
            snapshot: Box::new(Cursor::new(data)),
        }))
    }
}

impl RaftSnapshotBuilder<TypeConfig> for StateSnapshotBuilder {
    async fn build_snapshot(&mut self) -> Result<Snapshot, StorageError> {
        let (meta, image) = {
            let st = self.state.read();
            let n = self.snapshots.built.fetch_add(1, Ordering::Relaxed) + 1;
            let snapshot_id = match st.last_applied {
                Some(l) => format!("{}-{}-{n}", l.leader_id.term, l.index),
                None => format!("none-{n}"),
            };
            let meta = SnapshotMeta {
                last_log_id: st.last_applied,
                last_membership: st.membership.clone(),
                snapshot_id,
            };
            (meta, st.image())
        };
        let data = image.encode();
        self.snapshots.persist(&meta, data.clone()).await?;
        tracing::info!(
            snapshot = %meta.snapshot_id,
            bytes = data.len(),
            "built a metadata snapshot"
        );
        Ok(Snapshot {
            meta,
            snapshot: Box::new(Cursor::new(data)),
        })
    }
}

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotBuilder = StateSnapshotBuilder;

    async fn applied_state(&mut self) -> Result<(Option<LogId>, StoredMembership), StorageError> {
        let st = self.state.read();
        Ok((st.last_applied, st.membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<ApplyResult>, StorageError>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        // Everything that reads the log or can fail happens before the write lock is taken.
        let mut prepared = Vec::new();
        for entry in entries {
            let log_id = entry.log_id;
            let p = self
                .prepare(log_id.index, entry.payload)
                .map_err(|e| sm_error(&e, |e| StorageIOError::apply(log_id, e)))?;
            prepared.push((log_id, p));
        }
        let topics_changed = prepared
            .iter()
            .any(|(_, p)| matches!(p, Prepared::UpsertTopic(_) | Prepared::DeleteTopic(_)));
        let (results, last_applied) = {
            let mut st = self.state.write();
            let mut results = Vec::with_capacity(prepared.len());
            for (log_id, p) in prepared {
                results.push(st.apply(log_id, p));
                if log_id.index % DIGEST_EVERY == 0 {
                    self.state.record_checkpoint(log_id, st.digest());
                }
            }
            (results, st.last_applied)
        };
        self.state.publish_applied(last_applied);
        if topics_changed {
            self.state.note_topics_changed();
        }
        Ok(results)
    }

    async fn get_snapshot_builder(&mut self) -> StateSnapshotBuilder {
        StateSnapshotBuilder {
            state: self.state.clone(),
            snapshots: self.snapshots.clone(),
        }
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<Cursor<Vec<u8>>>, StorageError> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    /// Replaces the whole state with the snapshot's. The consume queues come back empty,
    /// starting at the snapshot's max offsets: messages stored before the snapshot are not
    /// readable on this replica (openraft purges the log up to the snapshot next), and the
    /// positions of later messages differ from the leader's, as their log starts afresh.
    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), StorageError> {
        let data = snapshot.into_inner();
        let image = SnapshotImage::decode(&data).map_err(|why| StorageError::IO {
            source: StorageIOError::read_snapshot(Some(meta.signature()), AnyError::error(why)),
        })?;
        let expected = image.digest;
        let fresh = AppliedState::from_snapshot(meta, image);
        if let Some(expected) = expected.filter(|&d| d != fresh.digest()) {
            tracing::warn!(
                snapshot = %meta.snapshot_id,
                expected = format_args!("{expected:016x}"),
                restored = format_args!("{:016x}", fresh.digest()),
                "an installed snapshot restores to another digest than its builder's"
            );
        }
        // Durable first: a crash right after openraft purges the log must find the snapshot.
        self.snapshots.persist(meta, data).await?;
        let last_applied = {
            let mut st = self.state.write();
            *st = fresh;
            st.last_applied
        };
        self.state.publish_applied(last_applied);
        tracing::info!(
            snapshot = %meta.snapshot_id,
            last = ?meta.last_log_id,
            "installed a metadata snapshot"
        );
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot>, StorageError> {
        self.snapshots.load().await
    }
}
