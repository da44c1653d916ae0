//! A witness's state machine: the applied log id and the membership, nothing else. Entries
//! carry no payload, so there is nothing to apply but their ids.
//!
//! A snapshot of a witness is its metadata alone (openraft's `SnapshotMeta`), kept in the
//! witness log's `snapshot.meta` (atomic, checksummed): what a leader sends when the witness
//! is behind its purged log, and what a restart starts from once the log is purged.

use std::io::Cursor;

use openraft::storage::{RaftSnapshotBuilder, RaftStateMachine, Snapshot};
use openraft::{AnyError, OptionalSend, StorageIOError};
use raft_log::LogStore;
use raftmq_raft::typ::{Entry, LogId, SnapshotMeta, StorageError, StoredMembership};

use super::typ::WitnessConfig;

/// Name of the metadata file holding the witness's snapshot meta (`snapshot.meta`).
const SNAPSHOT_META: &str = "snapshot";

/// A witness's state machine.
pub struct WitnessStateMachine {
    log: LogStore,
    applied: Option<LogId>,
    membership: StoredMembership,
    /// The snapshot installed last, if any.
    snapshot: Option<SnapshotMeta>,
    /// Numbers snapshots built here (ids only tell transfers apart).
    built: u64,
}

fn io_error(e: impl std::error::Error + 'static) -> StorageError {
    StorageError::IO {
        source: StorageIOError::read_snapshot(None, AnyError::new(&e)),
    }
}

impl WitnessStateMachine {
    /// The state machine of the witness whose log is `log`: what its persisted snapshot says,
    /// or nothing (openraft re-applies the committed log after it).
    pub fn open(log: LogStore) -> Result<Self, raft_log::Error> {
        let snapshot = match log.meta().load(SNAPSHOT_META)? {
            Some(bytes) => serde_json::from_slice::<SnapshotMeta>(&bytes).ok(),
            None => None,
        };
        Ok(WitnessStateMachine {
            applied: snapshot.as_ref().and_then(|m| m.last_log_id),
            membership: snapshot
                .as_ref()
                .map(|m| m.last_membership.clone())
                .unwrap_or_default(),
            snapshot,
            log,
            built: 0,
        })
    }

    fn meta(&mut self) -> SnapshotMeta {
        self.built += 1;
        SnapshotMeta {
            last_log_id: self.applied,
            last_membership: self.membership.clone(),
            snapshot_id: format!(
                "witness-{}-{}",
                self.applied.map_or(0, |l| l.index),
                self.built
            ),
        }
    }
}

impl RaftSnapshotBuilder<WitnessConfig> for WitnessStateMachine {
    async fn build_snapshot(&mut self) -> Result<Snapshot<WitnessConfig>, StorageError> {
        Ok(Snapshot {
            meta: self.meta(),
            snapshot: Box::new(Cursor::new(Vec::new())),
        })
    }
}

impl RaftStateMachine<WitnessConfig> for WitnessStateMachine {
    type SnapshotBuilder = Self;

    async fn applied_state(&mut self) -> Result<(Option<LogId>, StoredMembership), StorageError> {
        Ok((self.applied, self.membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<()>, StorageError>
    where
        I: IntoIterator<Item = Entry<WitnessConfig>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut results = Vec::new();
        for entry in entries {
            self.applied = Some(entry.log_id);
            if let openraft::EntryPayload::Membership(m) = entry.payload {
                self.membership = StoredMembership::new(Some(entry.log_id), m);
            }
            results.push(());
        }
        Ok(results)
    }

    async fn get_snapshot_builder(&mut self) -> Self {
        WitnessStateMachine {
            log: self.log.clone(),
            applied: self.applied,
            membership: self.membership.clone(),
            snapshot: self.snapshot.clone(),
            built: self.built,
        }
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<Cursor<Vec<u8>>>, StorageError> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    /// Keeps the snapshot's meta (durably, before openraft purges the log up to it) and drops
    /// its data: a broker's topics and offsets are nothing to a witness.
    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta,
        _snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), StorageError> {
        let json = serde_json::to_vec(meta).map_err(io_error)?;
        let log = self.log.clone();
        tokio::task::spawn_blocking(move || log.meta().store(SNAPSHOT_META, &json))
            .await
            .map_err(io_error)?
            .map_err(io_error)?;
        self.applied = meta.last_log_id;
        self.membership = meta.last_membership.clone();
        self.snapshot = Some(meta.clone());
        Ok(())
    }

    async fn get_current_snapshot(
        &mut self,
    ) -> Result<Option<Snapshot<WitnessConfig>>, StorageError> {
        Ok(self.snapshot.clone().map(|meta| Snapshot {
            meta,
            snapshot: Box::new(Cursor::new(Vec::new())),
        }))
    }
}
