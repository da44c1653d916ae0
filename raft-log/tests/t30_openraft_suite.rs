//! openraft's own storage test suite against `RaftLogStore`, in both flush modes, plus a
//! reopen test: what openraft saved (entries, vote, committed, purge point) survives a restart.
//!
//! openraft 0.9's suite also exercises a state machine; `MemStateMachine` below is the smallest
//! one that passes it (the log store is what is under test).

use std::collections::BTreeMap;
use std::io::Cursor;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use openraft::storage::{
    RaftLogReader, RaftLogStorage, RaftLogStorageExt, RaftSnapshotBuilder, RaftStateMachine,
    Snapshot,
};
use openraft::testing::{StoreBuilder, Suite};
use openraft::CommittedLeaderId;
use raft_log::raft::typ::{
    LogId, Membership, Node, SnapshotMeta, StorageError, StorageIOError, StoredMembership, Vote,
};
use raft_log::raft::{storage_error, RaftLogStore};
use raft_log::{FlushMode, LogConfig};
use serde::{Deserialize, Serialize};
use tempfile::TempDir;

// `D = String`: raft_log implements `LogPayload` for it.
openraft::declare_raft_types!(
    /// The type config of these tests: openraft's defaults (u64 node ids, `BasicNode`, String data).
    pub TypeConfig: D = String, R = String
);

type Entry = raft_log::raft::typ::Entry<TypeConfig>;
type EntryPayload = raft_log::raft::typ::EntryPayload<TypeConfig>;
type Store = RaftLogStore<TypeConfig>;

/// Small segments, so the suite's longer logs span several of them.
const SEGMENT_SIZE: u64 = 4096;

fn config(dir: &Path, flush: FlushMode) -> LogConfig {
    LogConfig::new(dir).segment_size(SEGMENT_SIZE).flush(flush)
}

fn async_flush() -> FlushMode {
    FlushMode::Async {
        interval: Duration::from_millis(20),
    }
}

/// Builds a fresh store in its own temp dir (the guard removes it) and an empty state machine.
struct TempStoreBuilder {
    flush: FlushMode,
}

impl StoreBuilder<TypeConfig, Store, MemStateMachine, TempDir> for TempStoreBuilder {
    async fn build(&self) -> Result<(TempDir, Store, MemStateMachine), StorageError> {
        let dir = tempfile::tempdir().map_err(|e| storage_error(&e, StorageIOError::write))?;
        let store = Store::open(config(dir.path(), self.flush))
            .map_err(|e| storage_error(&e, StorageIOError::write))?;
        Ok((dir, store, MemStateMachine::default()))
    }
}

#[test]
fn suite_sync_flush() {
    Suite::test_all(TempStoreBuilder {
        flush: FlushMode::Sync,
    })
    .unwrap_or_else(|e| panic!("openraft storage suite, SYNC_FLUSH: {e}"));
}

#[test]
fn suite_async_flush() {
    Suite::test_all(TempStoreBuilder {
        flush: async_flush(),
    })
    .unwrap_or_else(|e| panic!("openraft storage suite, ASYNC_FLUSH: {e}"));
}

fn log_id(term: u64, leader: u64, index: u64) -> LogId {
    LogId::new(CommittedLeaderId::new(term, leader), index)
}

fn entry(log_id: LogId, payload: EntryPayload) -> Entry {
    Entry { log_id, payload }
}

fn reopen_keeps_what_openraft_saved(flush: FlushMode) {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let dir = tempfile::tempdir().expect("temp dir");
    let nodes = BTreeMap::from([
        (1, Node::new("127.0.0.1:40912")),
        (2, Node::new("127.0.0.1:40922")),
        (3, Node::new("127.0.0.1:40932")),
    ]);
    let voters = vec![[1, 2, 3].into_iter().collect()];
    let membership = Membership::new(voters, nodes);
    // Leaders 1 and 2 wrote these; a log id read back must equal the one written.
    let entries = [
        entry(log_id(1, 1, 1), EntryPayload::Blank),
        entry(
            log_id(1, 1, 2),
            EntryPayload::Membership(membership.clone()),
        ),
        entry(
            log_id(1, 1, 3),
            EntryPayload::Normal("first message".into()),
        ),
        entry(log_id(2, 2, 4), EntryPayload::Blank),
        entry(
            log_id(2, 2, 5),
            EntryPayload::Normal("ünïcödé, and longer".repeat(50)),
        ),
        entry(log_id(2, 2, 6), EntryPayload::Normal(String::new())),
    ];
    let vote = Vote::new_committed(2, 2);
    let committed = log_id(2, 2, 5);
    let purged = log_id(1, 1, 1);

    rt.block_on(async {
        let mut store = Store::open(config(dir.path(), flush)).expect("open");
        assert_eq!(store.read_vote().await.expect("read vote"), None);
        assert_eq!(store.read_committed().await.expect("read committed"), None);
        store
            .blocking_append(entries[..3].to_vec())
            .await
            .expect("append");
        store
            .blocking_append(entries[3..].to_vec())
            .await
            .expect("append");
        store.save_vote(&vote).await.expect("save vote");
        store
            .save_committed(Some(committed))
            .await
            .expect("save committed");
        store.purge(purged).await.expect("purge");
        // openraft keeps a reader clone; the store closes with the last clone.
        let reader = store.get_log_reader().await;
        drop(store);
        drop(reader);
    });

    rt.block_on(async {
        let mut store = Store::open(config(dir.path(), flush)).expect("reopen");
        let state = store.get_log_state().await.expect("log state");
        assert_eq!(state.last_purged_log_id, Some(purged));
        assert_eq!(state.last_log_id, Some(log_id(2, 2, 6)));
        // The vote comes back uncommitted: a restarted leader does not resume its term.
        assert_eq!(
            store.read_vote().await.expect("read vote"),
            Some(Vote::new(2, 2))
        );
        assert!(vote.committed);
        assert_eq!(
            store.read_committed().await.expect("read committed"),
            Some(committed)
        );
        let got = store.try_get_log_entries(0..).await.expect("read entries");
        assert_eq!(got, entries[1..]);
        // Log ids compare equal whichever leader wrote them (standard Raft: term and index).
        assert_eq!(got[3].log_id, log_id(2, 0, 5));
    });
}

#[test]
fn reopen_sync_flush() {
    reopen_keeps_what_openraft_saved(FlushMode::Sync);
}

#[test]
fn reopen_async_flush() {
    reopen_keeps_what_openraft_saved(async_flush());
}

#[test]
fn committed_past_the_end_of_the_log_is_capped() {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let dir = tempfile::tempdir().expect("temp dir");
    rt.block_on(async {
        let mut store = Store::open(config(dir.path(), FlushMode::Sync)).expect("open");
        let entries = (1..=3).map(|i| entry(log_id(1, 1, i), EntryPayload::Blank));
        store.blocking_append(entries).await.expect("append");
        // As if a power loss took entries 4..=9 that the saved committed log id covered.
        store
            .save_committed(Some(log_id(1, 1, 9)))
            .await
            .expect("save committed");
        store.sync().expect("sync");
        store.truncate(log_id(1, 1, 4)).await.expect("truncate");
        assert_eq!(
            store.read_committed().await.expect("read"),
            Some(log_id(1, 1, 3))
        );
    });
}

#[test]
fn truncating_at_index_zero_empties_the_log() {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let dir = tempfile::tempdir().expect("temp dir");
    rt.block_on(async {
        let mut store = Store::open(config(dir.path(), FlushMode::Sync)).expect("open");
        let entries = (0..=3).map(|i| entry(log_id(1, 1, i), EntryPayload::Blank));
        store.blocking_append(entries).await.expect("append");
        store.truncate(log_id(1, 1, 0)).await.expect("truncate");
        assert_eq!(
            store.get_log_state().await.expect("state").last_log_id,
            None
        );
        // A new leader's entries start again at index 0.
        let entries = (0..=1).map(|i| entry(log_id(2, 2, i), EntryPayload::Normal(format!("{i}"))));
        store
            .blocking_append(entries)
            .await
            .expect("append after truncate");
    });
    rt.block_on(async {
        let mut store = Store::open(config(dir.path(), FlushMode::Sync)).expect("reopen");
        let got = store.try_get_log_entries(..).await.expect("read");
        let ids: Vec<_> = got.iter().map(|e| e.log_id).collect();
        assert_eq!(ids, [log_id(2, 2, 0), log_id(2, 2, 1)]);
    });
}

#[test]
fn undecodable_payload_is_a_storage_error() {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let dir = tempfile::tempdir().expect("temp dir");
    let raw = raft_log::LogStore::open(config(dir.path(), FlushMode::Sync)).expect("open");
    raw.append(&[raft_log::NewEntry {
        index: 1,
        term: 1,
        kind: raft_log::EntryKind::Normal,
        body: &[0xff, 0xfe],
    }])
    .expect("append");
    let mut store = Store::new(raw).expect("adapter");
    let err = rt
        .block_on(store.try_get_log_entries(1..2))
        .expect_err("invalid UTF-8 must not decode into a String");
    assert!(err.to_string().contains("utf-8"), "{err}");
}

// ---- a minimal in-memory state machine ----

/// Applied state of [`MemStateMachine`]; a snapshot is this, serialized.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct MemState {
    last_applied: Option<LogId>,
    last_membership: StoredMembership,
    /// Every `Normal` payload applied, in order.
    applied: Vec<String>,
}

#[derive(Default)]
struct MemInner {
    state: MemState,
    snapshot: Option<(SnapshotMeta, Vec<u8>)>,
    snapshots_built: u64,
}

/// The state machine the suite needs besides the log store. Clones share state, so the
/// snapshot builder sees what was applied.
#[derive(Clone, Default)]
struct MemStateMachine {
    inner: Arc<Mutex<MemInner>>,
}

impl MemStateMachine {
    fn lock(&self) -> MutexGuard<'_, MemInner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

fn sm_error(e: &(dyn std::error::Error + 'static)) -> StorageError {
    storage_error(e, StorageIOError::write_state_machine)
}

impl RaftSnapshotBuilder<TypeConfig> for MemStateMachine {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, StorageError> {
        let mut inner = self.lock();
        let data = serde_json::to_vec(&inner.state).map_err(|e| sm_error(&e))?;
        inner.snapshots_built += 1;
        let meta = SnapshotMeta {
            last_log_id: inner.state.last_applied,
            last_membership: inner.state.last_membership.clone(),
            snapshot_id: format!("snapshot-{}", inner.snapshots_built),
        };
        inner.snapshot = Some((meta.clone(), data.clone()));
        Ok(Snapshot {
            meta,
            snapshot: Box::new(Cursor::new(data)),
        })
    }
}

impl RaftStateMachine<TypeConfig> for MemStateMachine {
    type SnapshotBuilder = Self;

    async fn applied_state(&mut self) -> Result<(Option<LogId>, StoredMembership), StorageError> {
        let inner = self.lock();
        Ok((
            inner.state.last_applied,
            inner.state.last_membership.clone(),
        ))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<String>, StorageError>
    where
        I: IntoIterator<Item = Entry> + Send,
        I::IntoIter: Send,
    {
        let mut inner = self.lock();
        let mut replies = Vec::new();
        for entry in entries {
            inner.state.last_applied = Some(entry.log_id);
            match entry.payload {
                EntryPayload::Blank => replies.push(String::new()),
                EntryPayload::Normal(data) => {
                    inner.state.applied.push(data.clone());
                    replies.push(data);
                }
                EntryPayload::Membership(m) => {
                    inner.state.last_membership = StoredMembership::new(Some(entry.log_id), m);
                    replies.push(String::new());
                }
            }
        }
        Ok(replies)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.clone()
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<Cursor<Vec<u8>>>, StorageError> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), StorageError> {
        let data = snapshot.into_inner();
        let state: MemState = serde_json::from_slice(&data).map_err(|e| sm_error(&e))?;
        let mut inner = self.lock();
        inner.state = state;
        inner.snapshot = Some((meta.clone(), data));
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot<TypeConfig>>, StorageError> {
        Ok(self.lock().snapshot.clone().map(|(meta, data)| Snapshot {
            meta,
            snapshot: Box::new(Cursor::new(data)),
        }))
    }
}
