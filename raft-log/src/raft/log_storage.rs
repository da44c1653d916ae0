//! [`RaftLogStore`]: openraft's log storage (`RaftLogStorage` + `RaftLogReader`, openraft 0.9
//! `storage-v2`) on top of [`LogStore`].
//!
//! openraft calls these methods from async tasks, and they call the store directly: the store's
//! reads and appends only touch the page cache (pwrite, mmap reads) and return in microseconds,
//! which is cheaper than handing them to a blocking pool. Durability of appends is reported
//! through [`LogStore::on_flushed`], from the flusher thread, so `append` never waits for an
//! fsync and one fsync completes every append that arrived while the previous one ran
//! (`SYNC_FLUSH` group commit). What does block on disk:
//! - `save_vote`, which openraft requires to be durable before it returns (votes are rare);
//! - `truncate` and `purge`, which the store makes durable itself; they happen on log conflicts
//!   and after snapshots, not per write.
//!
//! The committed log id goes to a writer thread (`CommittedCheckpoint`) because openraft
//! saves it on every commit.

use std::fmt::Debug;
use std::io;
use std::marker::PhantomData;
use std::ops::{Bound, Range, RangeBounds};
use std::sync::{Arc, OnceLock};

use openraft::storage::{RaftLogReader, RaftLogStorage};
use openraft::OptionalSend;

use super::committed::CommittedCheckpoint;
use super::convert::{
    decode_entry, encode_bodies, from_store_log_id, new_entries, storage_error, to_store_log_id,
};
use super::meta_codec::{decode_committed, decode_vote, encode_vote, COMMITTED_META, VOTE_META};
use super::typ::{
    AppendObserver, AppendedToken, Entry, LogFlushed, LogId, LogPayload, LogState, LogTypeConfig,
    StorageError, StorageIOError, TruncateObserver, Vote,
};
use crate::error::Result;
use crate::format::ENTRY_HEADER_LEN;
use crate::store::{LogConfig, LogStore};

/// openraft's view of a [`LogStore`]. Cheap to clone: clones share the store, and openraft's
/// log reader is one of them.
///
/// Dropping the last clone writes the last committed log id and closes the store.
pub struct RaftLogStore<C> {
    shared: Arc<Shared>,
    _types: PhantomData<fn() -> C>,
}

struct Shared {
    /// Declared first: dropped (committed log id written) while the store is still open.
    committed: CommittedCheckpoint,
    store: LogStore,
    observer: OnceLock<AppendObserver>,
    truncate_observer: OnceLock<TruncateObserver>,
}

impl<C> Clone for RaftLogStore<C> {
    fn clone(&self) -> Self {
        Self {
            shared: self.shared.clone(),
            _types: PhantomData,
        }
    }
}

impl<C: LogTypeConfig> RaftLogStore<C> {
    /// Opens (and recovers) the store described by `config`.
    pub fn open(config: LogConfig) -> Result<Self> {
        Self::new(LogStore::open(config)?)
    }

    /// Serves openraft from an open store.
    pub fn new(store: LogStore) -> Result<Self> {
        Ok(Self {
            shared: Arc::new(Shared {
                committed: CommittedCheckpoint::start(store.clone())?,
                store,
                observer: OnceLock::new(),
                truncate_observer: OnceLock::new(),
            }),
            _types: PhantomData,
        })
    }

    /// The store underneath, for what openraft does not do (reads by position, inspection).
    pub fn log_store(&self) -> &LogStore {
        &self.shared.store
    }

    /// Installs the [`AppendObserver`] (once; a second one is refused and returned).
    pub fn set_append_observer(&self, observer: AppendObserver) -> Result<(), AppendObserver> {
        self.shared.observer.set(observer)
    }

    /// Installs the [`TruncateObserver`] (once; a second one is refused and returned).
    pub fn set_truncate_observer(
        &self,
        observer: TruncateObserver,
    ) -> Result<(), TruncateObserver> {
        self.shared.truncate_observer.set(observer)
    }

    /// Makes everything durable: every appended entry and the last saved committed log id.
    /// Blocks; for shutdown paths and tests, not for async tasks.
    pub fn sync(&self) -> Result<()> {
        self.shared.committed.sync()?;
        self.shared.store.flush()
    }
}

/// `[start, end)` of a range of indexes; an unbounded end is the end of the log.
fn index_range(range: &impl RangeBounds<u64>) -> Range<u64> {
    let start = match range.start_bound() {
        Bound::Included(&i) => i,
        Bound::Excluded(&i) => i.saturating_add(1),
        Bound::Unbounded => 0,
    };
    let end = match range.end_bound() {
        Bound::Included(&i) => i.saturating_add(1),
        Bound::Excluded(&i) => i,
        Bound::Unbounded => u64::MAX,
    };
    start..end
}

impl<C: LogTypeConfig> RaftLogReader<C> for RaftLogStore<C> {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry<C>>, StorageError> {
        self.shared
            .store
            .read_range(index_range(&range))
            .map_err(|e| storage_error(&e, StorageIOError::read_logs))?
            .into_iter()
            .map(decode_entry::<C>)
            .collect()
    }
}

impl<C: LogTypeConfig> RaftLogStorage<C> for RaftLogStore<C> {
    type LogReader = Self;

    async fn get_log_state(&mut self) -> Result<LogState<C>, StorageError> {
        let store = &self.shared.store;
        Ok(LogState {
            last_purged_log_id: store.last_purged().map(from_store_log_id),
            last_log_id: store.last_log_id().map(from_store_log_id),
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote) -> Result<(), StorageError> {
        self.shared
            .store
            .meta()
            .store(VOTE_META, &encode_vote(vote))
            .map_err(|e| storage_error(&e, StorageIOError::write_vote))
    }

    /// The saved vote, always read back **uncommitted**: a restarted node never resumes a
    /// leadership it held before.
    ///
    /// openraft 0.9 restores a node whose saved vote is committed and names itself as the
    /// leader of that term at once, without an election. But the log may have lost its tail
    /// since (a torn write cut at recovery, `ASYNC_FLUSH` data lost with the page cache, or a
    /// leader whose own fsync had not covered entries two followers committed under
    /// `SYNC_FLUSH`), and a leader of term T that appends at an index the group already
    /// committed in term T writes a second entry under the same log id: Raft's log matching no
    /// longer holds and the replicas diverge for good. Read back uncommitted, the vote still
    /// keeps this node from voting twice in term T (standard Raft persists only the term and
    /// whom it voted for), the node starts as a follower, and a leader is elected in a new term
    /// (the old leader's own committed vote compares greater, so a follower accepts its appends
    /// as before).
    async fn read_vote(&mut self) -> Result<Option<Vote>, StorageError> {
        let meta = self.shared.store.meta();
        let Some(bytes) = meta
            .load(VOTE_META)
            .map_err(|e| storage_error(&e, StorageIOError::read_vote))?
        else {
            return Ok(None);
        };
        let vote = decode_vote(&bytes).map_err(|why| {
            let err = self.bad_meta(VOTE_META, why);
            storage_error(&err, StorageIOError::read_vote)
        })?;
        Ok(Some(Vote {
            committed: false,
            ..vote
        }))
    }

    async fn save_committed(&mut self, committed: Option<LogId>) -> Result<(), StorageError> {
        self.shared
            .committed
            .save(committed.as_ref().map(to_store_log_id))
            .map_err(|e| storage_error(&e, StorageIOError::write_logs))
    }

    /// The committed log id saved last, capped at the last log id: with `ASYNC_FLUSH` (or a
    /// follower's not yet flushed entries) a power loss can take log entries the saved value
    /// covers, and entries the log no longer has cannot be re-applied. What remains is a prefix
    /// of what was committed, so the cap is committed too.
    async fn read_committed(&mut self) -> Result<Option<LogId>, StorageError> {
        let committed = match self.shared.committed.latest() {
            Some(value) => value,
            None => {
                let loaded = self
                    .shared
                    .store
                    .meta()
                    .load(COMMITTED_META)
                    .map_err(|e| storage_error(&e, StorageIOError::read_logs))?;
                match loaded {
                    None => None,
                    Some(bytes) => decode_committed(&bytes).map_err(|why| {
                        let err = self.bad_meta(COMMITTED_META, why);
                        storage_error(&err, StorageIOError::read_logs)
                    })?,
                }
            }
        };
        let last = self.shared.store.last_log_id();
        let capped = match (committed, last) {
            (Some(c), Some(l)) if c.index > l.index => Some(l),
            (Some(_), None) => None,
            (c, _) => c,
        };
        Ok(capped.map(from_store_log_id))
    }

    async fn append<I>(&mut self, entries: I, callback: LogFlushed<C>) -> Result<(), StorageError>
    where
        I: IntoIterator<Item = Entry<C>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let store = &self.shared.store;
        // Entries at or below the purge point are committed, hence already applied or in a
        // snapshot, and the log continues after that point: there is no place for them.
        // openraft's engine counts committed entries as present and never re-appends them; its
        // storage suite does (after a purge past the end of the log).
        let purged = store.last_purged().map(|p| p.index);
        let entries: Vec<Entry<C>> = entries
            .into_iter()
            .skip_while(|e| purged.is_some_and(|p| e.log_id.index <= p))
            .collect();
        let mut buf = Vec::new();
        let layout = encode_bodies(&entries, &mut buf)?;
        let new = new_entries(&entries, &layout, &buf);
        let appended = store
            .append(&new)
            .map_err(|e| storage_error(&e, StorageIOError::write_logs))?;
        let observed = self
            .shared
            .observer
            .get()
            .map(|observer| {
                (
                    observer.clone(),
                    tokens(&entries, &new, appended.end_position),
                )
            })
            .filter(|(_, tokens)| !tokens.is_empty());
        store.on_flushed(
            appended.seq,
            Box::new(move |flushed| {
                if let (Ok(()), Some((observer, tokens))) = (&flushed, observed) {
                    observer(&tokens);
                }
                callback.log_io_completed(flushed.map_err(io::Error::other))
            }),
        );
        Ok(())
    }

    /// Deletes `log_id.index` and everything after it.
    async fn truncate(&mut self, log_id: LogId) -> Result<(), StorageError> {
        let store = &self.shared.store;
        if let Some(observer) = self.shared.truncate_observer.get() {
            if store.last_log_id().is_some_and(|l| l.index >= log_id.index) {
                observer(log_id.index);
            }
        }
        self.shared
            .store
            .truncate_from(log_id.index)
            .map_err(|e| storage_error(&e, StorageIOError::write_logs))
    }

    /// Deletes everything up to and including `log_id`; it may lie past the end of the log
    /// (after a snapshot install), which then continues after it.
    async fn purge(&mut self, log_id: LogId) -> Result<(), StorageError> {
        self.shared
            .store
            .purge_up_to(to_store_log_id(&log_id))
            .map_err(|e| storage_error(&e, StorageIOError::write_logs))
    }
}

/// The append tokens of `entries`, with each entry's index and position: the entries lie
/// back to back and end at `end_position`.
fn tokens<C: LogTypeConfig>(
    entries: &[Entry<C>],
    appended: &[crate::store::NewEntry<'_>],
    end_position: u64,
) -> Vec<AppendedToken> {
    let total: u64 = appended
        .iter()
        .map(|e| (ENTRY_HEADER_LEN + e.body.len()) as u64)
        .sum();
    let mut position = end_position - total;
    let mut out = Vec::new();
    for (entry, new) in entries.iter().zip(appended) {
        if let openraft::EntryPayload::Normal(data) = &entry.payload {
            if let Some(token) = data.append_token() {
                out.push(AppendedToken {
                    token,
                    index: entry.log_id.index,
                    position,
                });
            }
        }
        position += (ENTRY_HEADER_LEN + new.body.len()) as u64;
    }
    out
}

impl<C> RaftLogStore<C> {
    /// The error for a metadata file whose payload does not decode.
    fn bad_meta(&self, name: &str, why: String) -> io::Error {
        let dir = &self.shared.store.config().dir;
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{}: {why}", dir.join(format!("{name}.meta")).display()),
        )
    }
}
