//! The log store: a directory of segments, their indexes and the metadata files.
//!
//! ```text
//! DIR/
//!   LOCK                            held (flock) while a store is open
//!   00000000000000000000.log/.idx   segment at position 0
//!   00000000001073741824.log/.idx   next segment: base = previous base + its size
//!   vote.meta committed.meta purged.meta
//! ```
//! Positions are global byte positions: a segment's file offset plus its base. Raft indexes
//! are consecutive across segments; only a purge past the end of the log (a follower that
//! installed a snapshot) starts a segment at a later index, and then every older segment is
//! deleted.

use std::fs::File;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::thread::JoinHandle;
use std::time::Duration;

use bytes::Bytes;
use tracing::{info, warn};

use crate::cache::{CacheReleaser, Release};
use crate::error::{Error, Result};
use crate::flush::{ActiveFiles, FlushCallback, FlushMode, Flusher};
use crate::format::{
    self, EntryKind, IndexRecord, SegmentHeader, ENTRY_HEADER_LEN, INDEX_HEADER_LEN,
    INDEX_RECORD_LEN, SEGMENT_HEADER_LEN,
};
use crate::fs::{FileSystem, Mmap, StdFs};
use crate::meta::MetaFiles;
use crate::segment::{self, Segment};

/// How a store is opened.
#[derive(Debug, Clone)]
pub struct LogConfig {
    /// The store directory (`storePathCommitLog`).
    pub dir: PathBuf,
    /// Size of new segment files (`mappedFileSizeCommitLog`).
    pub segment_size: u64,
    /// `flushDiskType` and `flushIntervalCommitLog`.
    pub flush: FlushMode,
    /// Bytes at the end of the log kept in the page cache; older data is written out and
    /// dropped from it (see [`crate::cache`]). `None` leaves caching to the kernel.
    pub cache_window: Option<u64>,
}

impl LogConfig {
    /// RocketMQ's defaults: 1 GiB segments, asynchronous flush every 500 ms.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self {
            dir: dir.into(),
            segment_size: 1 << 30,
            flush: FlushMode::Async {
                interval: Duration::from_millis(500),
            },
            cache_window: None,
        }
    }

    pub fn segment_size(mut self, bytes: u64) -> Self {
        self.segment_size = bytes;
        self
    }

    pub fn flush(mut self, mode: FlushMode) -> Self {
        self.flush = mode;
        self
    }

    pub fn cache_window(mut self, bytes: Option<u64>) -> Self {
        self.cache_window = bytes;
        self
    }
}

/// A Raft log id: the index and the term of the leader that wrote it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct LogId {
    pub term: u64,
    pub index: u64,
}

/// An entry to append.
#[derive(Debug, Clone, Copy)]
pub struct NewEntry<'a> {
    pub index: u64,
    pub term: u64,
    pub kind: EntryKind,
    pub body: &'a [u8],
}

/// An entry read back; its body points into the page cache (no copy).
#[derive(Debug, Clone)]
pub struct Entry {
    pub index: u64,
    pub term: u64,
    pub kind: EntryKind,
    /// Global position of the entry's header; its body starts `ENTRY_HEADER_LEN` later.
    pub position: u64,
    pub body: Bytes,
}

/// What an append did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Appended {
    /// Pass to [`LogStore::wait_flushed`] / [`LogStore::on_flushed`].
    pub seq: u64,
    /// Global position just past the last appended entry.
    pub end_position: u64,
}

/// A summary of one segment, for inspection.
#[derive(Debug, Clone)]
pub struct SegmentInfo {
    pub path: PathBuf,
    pub base_position: u64,
    pub size: u64,
    pub first_index: u64,
    pub entries: u64,
    pub used_bytes: u64,
    pub first_term: Option<u64>,
    pub last_term: Option<u64>,
}

/// The segmented, checksummed Raft log. Cheap to clone; all clones share one store.
#[derive(Clone)]
pub struct LogStore {
    shared: Arc<Shared>,
}

struct Shared {
    config: LogConfig,
    fs: Arc<dyn FileSystem>,
    state: RwLock<State>,
    flusher: Arc<Flusher>,
    flush_thread: Mutex<Option<JoinHandle<()>>>,
    meta: MetaFiles,
    /// Drops data behind `config.cache_window` from the page cache.
    cache: Option<CacheReleaser>,
    /// Held for the store's lifetime so a second process cannot open the same directory.
    _lock: File,
}

struct State {
    segments: Vec<Segment>,
    /// Log id of the last purged entry: entries up to it are gone (or going).
    purged: Option<LogId>,
    /// Reused encode buffers.
    buf: Vec<u8>,
    idx_buf: Vec<u8>,
    recs: Vec<IndexRecord>,
    /// Log position below which data has been handed to the cache releaser.
    cache_released: u64,
}

/// A read-only window into a segment's mapping, owned by a `Bytes`.
struct MappedSlice {
    map: Arc<Mmap>,
    range: Range<usize>,
}

impl AsRef<[u8]> for MappedSlice {
    fn as_ref(&self) -> &[u8] {
        &self.map[self.range.clone()]
    }
}

const PURGED_META: &str = "purged";

/// The cache releaser is handed at least this much at a time.
const RELEASE_STEP: u64 = 32 << 20;

fn encode_log_id(id: &LogId) -> [u8; 16] {
    let mut b = [0u8; 16];
    b[..8].copy_from_slice(&id.term.to_le_bytes());
    b[8..].copy_from_slice(&id.index.to_le_bytes());
    b
}

/// A purge point; `None` when the bytes are not one (exactly as [`encode_log_id`] writes
/// them). The log continues after it, so it is never at `u64::MAX`.
fn decode_log_id(b: &[u8]) -> Option<LogId> {
    if b.len() != 16 {
        return None;
    }
    let term = u64::from_le_bytes(b.get(..8)?.try_into().ok()?);
    let index = u64::from_le_bytes(b.get(8..16)?.try_into().ok()?);
    (index < u64::MAX).then_some(LogId { term, index })
}

impl State {
    fn last_log_id(&self) -> Option<LogId> {
        for seg in self.segments.iter().rev() {
            if let (Some(index), Some(rec)) = (seg.last_index(), seg.records.last()) {
                return Some(LogId {
                    index,
                    term: rec.term,
                });
            }
        }
        self.purged
    }

    /// The first index that can be read.
    fn first_index(&self) -> Option<u64> {
        let physical = self
            .segments
            .iter()
            .find(|s| !s.records.is_empty())?
            .first_index();
        let last = self.last_log_id()?.index;
        let first = match self.purged {
            Some(p) => physical.max(p.index + 1),
            None => physical,
        };
        (first <= last).then_some(first)
    }

    fn segment_for_index(&self, index: u64) -> Option<&Segment> {
        let i = self.segments.partition_point(|s| s.first_index() <= index);
        self.segments.get(i.checked_sub(1)?)
    }

    fn segment_for_position(&self, position: u64) -> Option<&Segment> {
        let i = self.segments.partition_point(|s| s.base() <= position);
        self.segments.get(i.checked_sub(1)?)
    }

    fn term_of(&self, index: u64) -> Option<u64> {
        if let Some(p) = self.purged {
            if p.index == index {
                return Some(p.term);
            }
            if index < p.index {
                return None;
            }
        }
        index
            .checked_add(1)
            .and_then(|next| self.segment_for_index(next))
            .and_then(|s| s.term_of(index))
            .or_else(|| self.segment_for_index(index).and_then(|s| s.term_of(index)))
    }

    fn range_error(&self, index: u64) -> Error {
        Error::IndexOutOfRange {
            index,
            first: self.first_index().unwrap_or(0),
            last: self.last_log_id().map_or(0, |l| l.index),
        }
    }
}

impl LogStore {
    /// Opens (creating if needed) and recovers the store in `config.dir`.
    pub fn open(config: LogConfig) -> Result<Self> {
        Self::open_with_fs(config, Arc::new(StdFs))
    }

    /// Opens the store through `fs` (tests inject IO faults here).
    pub fn open_with_fs(config: LogConfig, fs: Arc<dyn FileSystem>) -> Result<Self> {
        if config.segment_size < SEGMENT_HEADER_LEN + ENTRY_HEADER_LEN as u64 * 2
            || config.segment_size > u32::MAX as u64 * 4
        {
            return Err(Error::Config(format!(
                "segment size {} is out of range (at least {} bytes, at most 16 GiB)",
                config.segment_size,
                SEGMENT_HEADER_LEN + ENTRY_HEADER_LEN as u64 * 2
            )));
        }
        let dir = config.dir.clone();
        fs.create_dir_all(&dir)
            .map_err(|e| Error::io("create dir", &dir, e))?;
        let lock = lock_dir(&dir)?;
        let meta = MetaFiles::new(fs.clone(), &dir);
        let mut purged = match meta.load(PURGED_META)? {
            Some(bytes) => Some(decode_log_id(&bytes).ok_or_else(|| {
                Error::corrupt(dir.join("purged.meta"), 0, crate::error::Corruption::Torn)
            })?),
            None => None,
        };
        let recovered = recover(fs.as_ref(), &config, purged)?;
        if let Some(first) = recovered.first() {
            if let (Some(term), Some(index)) =
                (first.header.prev_term, first.first_index().checked_sub(1))
            {
                let physical = LogId { index, term };
                if purged.is_none_or(|p| p.index < physical.index) {
                    purged = Some(physical);
                }
            }
        }
        let (flusher, handle) = Flusher::start(config.flush);
        if let Some(last) = recovered.last() {
            flusher.set_active(ActiveFiles {
                data: last.data.clone(),
                idx: last.idx.clone(),
            });
        }
        let state = State {
            cache_released: recovered.first().map_or(0, |s| s.base()),
            segments: recovered,
            purged,
            buf: Vec::new(),
            idx_buf: Vec::new(),
            recs: Vec::new(),
        };
        let cache = config
            .cache_window
            .map(|_| CacheReleaser::start(flusher.clone()));
        info!(
            dir = %dir.display(),
            segments = state.segments.len(),
            first = ?state.first_index(),
            last = ?state.last_log_id(),
            "raft log opened"
        );
        Ok(LogStore {
            shared: Arc::new(Shared {
                config,
                fs,
                state: RwLock::new(state),
                flusher,
                flush_thread: Mutex::new(Some(handle)),
                meta,
                cache,
                _lock: lock,
            }),
        })
    }

    fn read_state(&self) -> RwLockReadGuard<'_, State> {
        self.shared.state.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write_state(&self) -> RwLockWriteGuard<'_, State> {
        self.shared.state.write().unwrap_or_else(|p| p.into_inner())
    }

    pub fn config(&self) -> &LogConfig {
        &self.shared.config
    }

    /// The metadata files (vote, committed) of this store.
    pub fn meta(&self) -> &MetaFiles {
        &self.shared.meta
    }

    /// The last entry's log id, or the last purged one when the log is empty.
    pub fn last_log_id(&self) -> Option<LogId> {
        self.read_state().last_log_id()
    }

    /// The first readable index, if any entry is readable.
    pub fn first_index(&self) -> Option<u64> {
        self.read_state().first_index()
    }

    pub fn last_purged(&self) -> Option<LogId> {
        self.read_state().purged
    }

    /// Term of the entry at `index`, including the last purged one.
    pub fn term_of(&self, index: u64) -> Option<u64> {
        self.read_state().term_of(index)
    }

    /// Appends entries (their bytes reach the page cache before this returns). Indexes must
    /// continue the log; the very first entry of an empty store may start anywhere.
    ///
    /// A write error marks the store failed: every later write fails until it is reopened,
    /// and recovery then keeps exactly the entries that were written whole.
    pub fn append(&self, entries: &[NewEntry<'_>]) -> Result<Appended> {
        self.shared.flusher.check()?;
        let mut st = self.write_state();
        let result = self.append_locked(&mut st, entries);
        self.finish_write(&mut st, result)
    }

    /// Hands everything more than the cache window behind the end of the log to the cache
    /// releaser, a few MiB at a time.
    fn release_behind(&self, st: &mut State) {
        let (Some(window), Some(cache)) = (self.shared.config.cache_window, &self.shared.cache)
        else {
            return;
        };
        let Some(end) = st.segments.last().map(|s| s.end_position()) else {
            return;
        };
        let target = end.saturating_sub(window);
        if target < st.cache_released.saturating_add(RELEASE_STEP) {
            return;
        }
        let first = st
            .segments
            .partition_point(|s| s.end_position() <= st.cache_released);
        for seg in &st.segments[first..] {
            let from = st.cache_released.max(seg.base());
            let to = target.min(seg.end_position());
            if from >= to {
                break;
            }
            cache.release(Release {
                data: seg.data.clone(),
                map: seg.map.clone(),
                range: from - seg.base()..to - seg.base(),
            });
        }
        st.cache_released = target;
    }

    /// Appends one entry at the next index (for callers that do not track indexes, such as
    /// benchmarks with many concurrent appenders). Returns the index it got.
    pub fn append_next(&self, term: u64, kind: EntryKind, body: &[u8]) -> Result<(u64, Appended)> {
        self.shared.flusher.check()?;
        let mut st = self.write_state();
        let index = st.last_log_id().map_or(1, |l| l.index + 1);
        let result = self.append_locked(
            &mut st,
            &[NewEntry {
                index,
                term,
                kind,
                body,
            }],
        );
        self.finish_write(&mut st, result).map(|a| (index, a))
    }

    /// Turns the outcome of a write into the caller's result: success takes a sequence number
    /// while the state lock is still held (`locked` proves it), so sequence order is write
    /// order; failure marks the store failed.
    fn finish_write(&self, locked: &mut State, result: Result<u64>) -> Result<Appended> {
        match result {
            Ok(end_position) => {
                self.release_behind(locked);
                Ok(Appended {
                    seq: self.shared.flusher.written(),
                    end_position,
                })
            }
            Err(e) => {
                if !matches!(e, Error::NotContiguous { .. } | Error::EntryTooLarge { .. }) {
                    warn!(error = %e, "raft log write failed; the store accepts no more writes until reopened");
                    self.shared.flusher.fail(e.to_string());
                }
                Err(e)
            }
        }
    }

    fn append_locked(&self, st: &mut State, entries: &[NewEntry<'_>]) -> Result<u64> {
        let Some(first) = entries.first() else {
            return Ok(st.segments.last().map_or(0, |s| s.end_position()));
        };
        // The next index is fixed by the last entry, the purge point, or (a log truncated to
        // nothing) the segment it was truncated in; only a brand-new store starts anywhere.
        let expected = match st.last_log_id() {
            Some(last) => Some(last.index + 1),
            None => st.segments.last().map(|s| s.next_index()),
        };
        if let Some(expected) = expected {
            if first.index != expected {
                return Err(Error::NotContiguous {
                    last: expected.wrapping_sub(1),
                    got: first.index,
                });
            }
        }
        let seg_size = self.shared.config.segment_size;
        let max_entry = seg_size - SEGMENT_HEADER_LEN;
        for (i, e) in entries.iter().enumerate() {
            let total = (ENTRY_HEADER_LEN + e.body.len()) as u64;
            if total > max_entry || total > u32::MAX as u64 {
                return Err(Error::EntryTooLarge {
                    size: total,
                    segment_size: seg_size,
                });
            }
            if e.index != first.index + i as u64 {
                return Err(Error::NotContiguous {
                    last: first.index + i as u64 - 1,
                    got: e.index,
                });
            }
        }
        if st.segments.is_empty() {
            let prev_term = st
                .purged
                .filter(|p| p.index + 1 == first.index)
                .map(|p| p.term);
            let header = SegmentHeader {
                base_position: 0,
                first_index: first.index,
                prev_term,
            };
            self.push_segment(st, header, seg_size)?;
        }

        let mut buf = std::mem::take(&mut st.buf);
        let mut idx_buf = std::mem::take(&mut st.idx_buf);
        let mut recs = std::mem::take(&mut st.recs);
        let result = (|| {
            let mut rest = entries;
            while !rest.is_empty() {
                buf.clear();
                idx_buf.clear();
                recs.clear();
                let seg = st
                    .segments
                    .last()
                    .ok_or_else(|| Error::Failed("no segment".into()))?;
                let mut at = seg.end_position();
                let limit = seg.base() + seg.size;
                let mut n = 0;
                for e in rest {
                    let total = (ENTRY_HEADER_LEN + e.body.len()) as u64;
                    if at + total > limit {
                        break;
                    }
                    format::encode_entry(&mut buf, e.index, e.term, at, e.kind, e.body);
                    let rec = IndexRecord {
                        position: at,
                        term: e.term,
                        size: total as u32,
                    };
                    rec.encode_into(&mut idx_buf);
                    recs.push(rec);
                    at += total;
                    n += 1;
                }
                if n > 0 {
                    let seg = st
                        .segments
                        .last_mut()
                        .ok_or_else(|| Error::Failed("no segment".into()))?;
                    let before = seg.write_offset;
                    seg.append(&buf, &recs, &idx_buf)?;
                    // Crossing 7/8 of the segment: start flushing it now, so the fsync a roll
                    // does under the lock finds little left to write.
                    let mark = seg.size / 8 * 7;
                    if before < mark && seg.write_offset >= mark {
                        self.shared.flusher.request_flush();
                    }
                }
                rest = &rest[n..];
                if !rest.is_empty() {
                    self.roll(st)?;
                }
            }
            Ok(st.segments.last().map_or(0, |s| s.end_position()))
        })();
        st.buf = buf;
        st.idx_buf = idx_buf;
        st.recs = recs;
        result
    }

    /// Seals the active segment (durably) and starts the next one.
    fn roll(&self, st: &mut State) -> Result<()> {
        let seg = st
            .segments
            .last()
            .ok_or_else(|| Error::Failed("no segment".into()))?;
        seg.sync()?;
        self.shared.flusher.mark_synced();
        let header = SegmentHeader {
            base_position: seg.base() + seg.size,
            first_index: seg.next_index(),
            prev_term: seg.records.last().map(|r| r.term).or(seg.header.prev_term),
        };
        self.push_segment(st, header, self.shared.config.segment_size)
    }

    fn push_segment(&self, st: &mut State, header: SegmentHeader, size: u64) -> Result<()> {
        let seg = Segment::create(
            self.shared.fs.as_ref(),
            &self.shared.config.dir,
            header,
            size,
        )?;
        self.shared.flusher.set_active(ActiveFiles {
            data: seg.data.clone(),
            idx: seg.idx.clone(),
        });
        st.segments.push(seg);
        Ok(())
    }

    /// Blocks until append `seq` is durable under the flush mode (`SYNC_FLUSH`: fsynced;
    /// `ASYNC_FLUSH`: written).
    pub fn wait_flushed(&self, seq: u64) -> Result<()> {
        self.shared.flusher.wait(seq)
    }

    /// Calls `cb` once append `seq` is durable under the flush mode. The callback runs on the
    /// flusher thread (or the caller's, if already durable): keep it short.
    pub fn on_flushed(&self, seq: u64, cb: FlushCallback) {
        self.shared.flusher.on_flushed(seq, cb)
    }

    /// Fsyncs everything written so far, whatever the flush mode.
    pub fn flush(&self) -> Result<()> {
        let seq = self.shared.flusher.last_written();
        self.shared.flusher.wait_fsynced(seq)
    }

    /// Reads the entry at `index`, checking both checksums.
    pub fn read(&self, index: u64) -> Result<Entry> {
        let (rec, map, base, path) = {
            let st = self.read_state();
            if st.first_index().is_none_or(|f| index < f) {
                return Err(st.range_error(index));
            }
            let seg = st
                .segment_for_index(index)
                .ok_or_else(|| st.range_error(index))?;
            let rec = *seg.record(index).ok_or_else(|| st.range_error(index))?;
            (rec, seg.map.clone(), seg.base(), seg.data_path.clone())
        };
        // Checksums are computed outside the lock so readers never hold up appends.
        let offset = rec.position - base;
        let (header, body_at) = segment::check_entry(&map, offset, base, index, Some(&rec))
            .map_err(|what| Error::corrupt(path, offset, what))?;
        let body_end = body_at + header.body_len();
        Ok(Entry {
            index,
            term: header.term,
            kind: header.kind,
            position: rec.position,
            body: Bytes::from_owner(MappedSlice {
                map,
                range: body_at..body_end,
            }),
        })
    }

    /// Where the entry at `index` lives: its header's global position and whole size. The
    /// state machine uses it to point consume queues at message records inside entries.
    pub fn locate(&self, index: u64) -> Option<(u64, u32)> {
        let st = self.read_state();
        let rec = st.segment_for_index(index)?.record(index)?;
        Some((rec.position, rec.size))
    }

    /// The index and term of the entry whose bytes hold `position` (a message record inside
    /// it, say), if the log holds that position.
    pub fn entry_holding(&self, position: u64) -> Option<LogId> {
        let st = self.read_state();
        let seg = st.segment_for_position(position)?;
        let i = seg
            .records
            .partition_point(|r| r.position <= position)
            .checked_sub(1)?;
        let rec = seg.records.get(i)?;
        (position < rec.end()).then(|| LogId {
            term: rec.term,
            index: seg.first_index() + i as u64,
        })
    }

    /// Reads the entries of `range` that the log holds (indexes outside it are skipped).
    pub fn read_range(&self, range: Range<u64>) -> Result<Vec<Entry>> {
        let (first, last) = {
            let st = self.read_state();
            match (st.first_index(), st.last_log_id()) {
                (Some(f), Some(l)) => (f, l.index),
                _ => return Ok(Vec::new()),
            }
        };
        let start = range.start.max(first);
        let end = range.end.min(last + 1);
        (start..end).map(|i| self.read(i)).collect()
    }

    /// The bytes at `position..position + len`, without copying and without checks: for
    /// callers that locate data inside entries they already know (the broker's message codec
    /// carries its own per-message checksum). The range must lie inside written data.
    pub fn read_at(&self, position: u64, len: u64) -> Result<Bytes> {
        let st = self.read_state();
        let seg = st
            .segment_for_position(position)
            .ok_or(Error::BadPosition {
                position,
                len,
                why: "before the first segment",
            })?;
        let inside = position >= seg.base() + SEGMENT_HEADER_LEN
            && position
                .checked_add(len)
                .is_some_and(|end| end <= seg.end_position());
        if !inside {
            return Err(Error::BadPosition {
                position,
                len,
                why: "outside the written data",
            });
        }
        let start = (position - seg.base()) as usize;
        Ok(Bytes::from_owner(MappedSlice {
            map: seg.map.clone(),
            range: start..start + len as usize,
        }))
    }

    /// Reads and checks the entry whose header is at `position`.
    pub fn read_entry_at(&self, position: u64) -> Result<Entry> {
        let index = {
            let st = self.read_state();
            let seg = st
                .segment_for_position(position)
                .ok_or(Error::BadPosition {
                    position,
                    len: 0,
                    why: "before the first segment",
                })?;
            let i = seg.records.partition_point(|r| r.position < position);
            match seg.records.get(i) {
                Some(r) if r.position == position => seg.first_index() + i as u64,
                _ => {
                    return Err(Error::BadPosition {
                        position,
                        len: 0,
                        why: "no entry starts there",
                    })
                }
            }
        };
        self.read(index)
    }

    /// Removes every entry after `index` (a Raft conflict). Durable when it returns.
    pub fn truncate_after(&self, index: u64) -> Result<()> {
        match index.checked_add(1) {
            Some(from) => self.truncate_from(from),
            None => Ok(()),
        }
    }

    /// Removes the entry at `from` and every entry after it: `truncate_from(0)` empties a log
    /// that starts at index 0, which `truncate_after` cannot express. Durable when it returns.
    pub fn truncate_from(&self, from: u64) -> Result<()> {
        self.shared.flusher.check()?;
        let mut st = self.write_state();
        let result = self.truncate_locked(&mut st, from);
        if let Err(e) = &result {
            self.shared.flusher.fail(e.to_string());
        }
        result
    }

    fn truncate_locked(&self, st: &mut State, from: u64) -> Result<()> {
        if st.last_log_id().is_none_or(|l| l.index < from) {
            return Ok(());
        }
        let dir = &self.shared.config.dir;
        // Newest first, so a crash part-way leaves a shorter but whole log.
        while st.segments.len() > 1 && st.segments.last().is_some_and(|s| s.first_index() >= from) {
            if let Some(seg) = st.segments.pop() {
                remove_segment_files(self.shared.fs.as_ref(), &seg)?;
            }
        }
        if let Some(seg) = st.segments.last_mut() {
            let keep = from.saturating_sub(seg.first_index()) as usize;
            seg.truncate_to(keep)?;
            seg.sync()?;
            st.cache_released = st.cache_released.min(seg.end_position());
            self.shared.flusher.set_active(ActiveFiles {
                data: seg.data.clone(),
                idx: seg.idx.clone(),
            });
        }
        self.shared
            .fs
            .sync_dir(dir)
            .map_err(|e| Error::io("fsync dir", dir, e))?;
        if st.purged.is_some_and(|p| p.index >= from) {
            // Only reachable by truncating into purged entries, which Raft never does; keep the
            // purge point consistent with what is left anyway.
            st.purged = None;
        }
        self.shared.flusher.mark_synced();
        Ok(())
    }

    /// Declares every entry up to `upto` purged and deletes the segments that hold nothing
    /// else. `upto` may lie past the end of the log (after a snapshot install): the log then
    /// continues at `upto.index + 1`.
    pub fn purge_up_to(&self, upto: LogId) -> Result<()> {
        self.shared.flusher.check()?;
        let mut st = self.write_state();
        if st.purged.is_some_and(|p| p.index >= upto.index) {
            return Ok(());
        }
        self.shared.meta.store(PURGED_META, &encode_log_id(&upto))?;
        let past_end = st.last_log_id().is_none_or(|l| l.index <= upto.index);
        let result = (|| -> Result<()> {
            if past_end && !st.segments.is_empty() {
                // Start the log afresh after `upto`; the older segments go below.
                let last = st
                    .segments
                    .last()
                    .ok_or_else(|| Error::Failed("no segment".into()))?;
                last.sync()?;
                let header = SegmentHeader {
                    base_position: last.base() + last.size,
                    first_index: upto.index + 1,
                    prev_term: Some(upto.term),
                };
                self.push_segment(&mut st, header, self.shared.config.segment_size)?;
                self.shared.flusher.mark_synced();
            }
            // Oldest first: a crash part-way leaves a log that still starts at a segment.
            while st.segments.len() > 1
                && st.segments[0].last_index().is_none_or(|l| l <= upto.index)
            {
                let seg = st.segments.remove(0);
                remove_segment_files(self.shared.fs.as_ref(), &seg)?;
            }
            Ok(())
        })();
        st.purged = Some(upto);
        if let Err(e) = &result {
            self.shared.flusher.fail(e.to_string());
        }
        result
    }

    /// One line per segment, oldest first.
    pub fn segments(&self) -> Vec<SegmentInfo> {
        self.read_state()
            .segments
            .iter()
            .map(|s| SegmentInfo {
                path: s.data_path.clone(),
                base_position: s.base(),
                size: s.size,
                first_index: s.first_index(),
                entries: s.records.len() as u64,
                used_bytes: s.write_offset,
                first_term: s.records.first().map(|r| r.term),
                last_term: s.records.last().map(|r| r.term),
            })
            .collect()
    }

    /// Flushes, stops the flusher thread and releases the directory. Dropping the last clone
    /// does the same; `close` reports the flush error, if any.
    pub fn close(self) -> Result<()> {
        let result = self.flush();
        drop(self);
        result
    }
}

impl Drop for Shared {
    fn drop(&mut self) {
        self.flusher.shutdown();
        if let Some(handle) = self
            .flush_thread
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
        {
            let _ = handle.join();
        }
        if let Ok(st) = self.state.get_mut() {
            if let Some(seg) = st.segments.last() {
                if self.flusher.check().is_ok() {
                    let _ = seg.sync();
                }
            }
        }
    }
}

fn lock_dir(dir: &Path) -> Result<File> {
    let path = dir.join("LOCK");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| Error::io("open", &path, e))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(Error::Config(format!(
            "{} is in use by another process (it holds {})",
            dir.display(),
            path.display()
        ))),
        Err(std::fs::TryLockError::Error(e)) => Err(Error::io("lock", &path, e)),
    }
}

fn remove_segment_files(fs: &dyn FileSystem, seg: &Segment) -> Result<()> {
    fs.remove(&seg.data_path)
        .map_err(|e| Error::io("remove", &seg.data_path, e))?;
    match fs.remove(&seg.idx_path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(Error::io("remove", &seg.idx_path, e))
        }
        _ => Ok(()),
    }
}

/// Opens every segment in the directory: sealed segments are checked cheaply (their index
/// against their last entry), the last one is recovered (torn tail cut off). `purged` is the
/// recorded purge point, which alone explains a gap in indexes between two segments.
fn recover(fs: &dyn FileSystem, config: &LogConfig, purged: Option<LogId>) -> Result<Vec<Segment>> {
    let dir = &config.dir;
    let names = fs.list(dir).map_err(|e| Error::io("list", dir, e))?;
    let mut bases: Vec<u64> = names
        .iter()
        .filter_map(|n| format::parse_segment_file_name(n))
        .collect();
    bases.sort_unstable();
    for name in &names {
        if let Some(stem) = name.strip_suffix(".idx") {
            if format::parse_segment_file_name(&format!("{stem}.log"))
                .is_none_or(|b| !bases.contains(&b))
            {
                let path = dir.join(name);
                warn!(path = %path.display(), "removing an index file whose segment is gone");
                fs.remove(&path)
                    .map_err(|e| Error::io("remove", &path, e))?;
            }
        }
    }
    let mut segments: Vec<Segment> = Vec::with_capacity(bases.len());
    let count = bases.len();
    for (i, base) in bases.into_iter().enumerate() {
        let is_last = i + 1 == count;
        let Some(seg) = open_segment(fs, config, base, is_last)? else {
            continue;
        };
        if let Some(prev) = segments.last() {
            if seg.base() < prev.base() + prev.size {
                return Err(Error::corrupt(
                    &seg.data_path,
                    0,
                    crate::error::Corruption::WrongPosition {
                        expected: prev.base() + prev.size,
                        found: seg.base(),
                    },
                ));
            }
            if seg.first_index() > prev.next_index() {
                // Only a purge past the end of the log starts a segment after a gap, and it
                // records its purge point first. Without that record the gap is a lost
                // segment or a sealed one cut short: deleting what precedes it would lose
                // whole entries without a word.
                if purged.is_none_or(|p| p.index < seg.first_index() - 1) {
                    return Err(Error::corrupt(
                        &seg.data_path,
                        0,
                        crate::error::Corruption::WrongIndex {
                            expected: prev.next_index(),
                            found: seg.first_index(),
                        },
                    ));
                }
                // The purge started this segment; the crash came before the older segments
                // were deleted. They are purged: finish the job.
                warn!(path = %seg.data_path.display(), "deleting segments left behind by an interrupted purge");
                for old in segments.drain(..) {
                    remove_segment_files(fs, &old)?;
                }
            } else if seg.first_index() < prev.next_index() {
                return Err(Error::corrupt(
                    &seg.data_path,
                    0,
                    crate::error::Corruption::WrongIndex {
                        expected: prev.next_index(),
                        found: seg.first_index(),
                    },
                ));
            }
        }
        segments.push(seg);
    }
    Ok(segments)
}

fn open_segment(
    fs: &dyn FileSystem,
    config: &LogConfig,
    base: u64,
    is_last: bool,
) -> Result<Option<Segment>> {
    let dir = &config.dir;
    let data_path = dir.join(format::segment_file_name(base));
    let idx_path = dir.join(format::index_file_name(base));
    let data = fs
        .open(&data_path, false)
        .map_err(|e| Error::io("open", &data_path, e))?;
    let len = data.len().map_err(|e| Error::io("stat", &data_path, e))?;
    let mut head = [0u8; SEGMENT_HEADER_LEN as usize];
    let header = if len >= SEGMENT_HEADER_LEN {
        data.read_exact_at(&mut head, 0)
            .map_err(|e| Error::io("read", &data_path, e))?;
        SegmentHeader::decode(&head)
    } else {
        Err(crate::error::Corruption::Torn)
    };
    let header = match header {
        Ok(h) if h.base_position == base => h,
        Ok(h) => {
            return Err(Error::corrupt(
                &data_path,
                16,
                crate::error::Corruption::WrongPosition {
                    expected: base,
                    found: h.base_position,
                },
            ))
        }
        // The header is made durable before any entry is written, so a last segment without a
        // whole header and with nothing where its first entry would be is what a crash during a
        // roll leaves. A damaged header in front of entries is corruption, never deleted.
        Err(_) if is_last && !first_entry_written(data.as_ref(), len) => {
            warn!(path = %data_path.display(), "removing a segment whose creation was interrupted");
            fs.remove(&data_path)
                .map_err(|e| Error::io("remove", &data_path, e))?;
            let _ = fs.remove(&idx_path);
            return Ok(None);
        }
        Err(what) => return Err(Error::corrupt(&data_path, 0, what)),
    };
    let size = if is_last {
        len.max(config.segment_size)
    } else {
        len
    };
    if len < size {
        data.set_len(size)
            .map_err(|e| Error::io("extend", &data_path, e))?;
    }
    let map = data
        .map(size)
        .map_err(|e| Error::io("mmap", &data_path, e))?;
    let idx = fs
        .open(&idx_path, true)
        .map_err(|e| Error::io("open", &idx_path, e))?;
    let on_disk = segment::read_index(idx.as_ref(), base, header.first_index)
        .map_err(|e| Error::io("read", &idx_path, e))?;
    let idx_valid = on_disk.is_some();
    let mut records = on_disk.unwrap_or_default();
    let on_disk_count = records.len();
    // Index records never point past the data file (a torn segment keeps a longer index).
    let data_end = base + len;
    while records.last().is_some_and(|r| r.end() > data_end) {
        records.pop();
    }
    let check_last = |records: &[IndexRecord]| match records.last() {
        None => Ok(()),
        Some(r) => segment::check_entry(
            &map,
            r.position - base,
            base,
            header.first_index + records.len() as u64 - 1,
            Some(r),
        )
        .map(|_| ()),
    };
    if is_last {
        // Walk back to the last record whose entry is whole.
        while let Err(what) = check_last(&records) {
            let r = records.last().copied();
            warn!(path = %data_path.display(), position = ?r.map(|r| r.position), %what, "index record points at a damaged entry; dropping it");
            records.pop();
        }
    } else if let Err(what) = check_last(&records) {
        let offset = records.last().map_or(0, |r| r.position - base);
        return Err(Error::corrupt(&data_path, offset, what));
    }
    let kept_on_disk = records.len();
    let from = records
        .last()
        .map_or(SEGMENT_HEADER_LEN, |r| r.end() - base);
    let scan = segment::scan(&map, base, from, header.first_index + records.len() as u64);
    if let Some((offset, what)) = scan.stopped {
        if !is_last {
            return Err(Error::corrupt(&data_path, offset, what));
        }
        warn!(path = %data_path.display(), offset, %what, "truncating the torn tail of the log");
    }
    records.extend_from_slice(&scan.records);
    let write_offset = scan.end;
    if is_last {
        // Zero everything after the last whole entry, whatever it holds: stale or torn bytes
        // must never be read as entries once new ones are written around them.
        data.set_len(write_offset)
            .and_then(|()| data.set_len(size))
            .map_err(|e| Error::io("truncate", &data_path, e))?;
    }
    if !idx_valid || kept_on_disk != on_disk_count || kept_on_disk != records.len() {
        rewrite_index(
            idx.as_ref(),
            &idx_path,
            &header,
            &records,
            if idx_valid { kept_on_disk } else { 0 },
            idx_valid,
        )?;
    }
    if is_last {
        data.sync_data()
            .map_err(|e| Error::io("fsync", &data_path, e))?;
        idx.sync_data()
            .map_err(|e| Error::io("fsync", &idx_path, e))?;
    }
    Ok(Some(Segment {
        header,
        size,
        data_path,
        idx_path,
        data,
        idx,
        map: Arc::new(map),
        records,
        write_offset,
    }))
}

/// Whether anything non-zero lies where a segment's first entry header would be.
fn first_entry_written(data: &dyn crate::fs::LogFile, len: u64) -> bool {
    let end = (SEGMENT_HEADER_LEN + ENTRY_HEADER_LEN as u64).min(len);
    if end <= SEGMENT_HEADER_LEN {
        return false;
    }
    let mut buf = vec![0u8; (end - SEGMENT_HEADER_LEN) as usize];
    // Unreadable counts as written: the caller then reports corruption instead of deleting.
    data.read_exact_at(&mut buf, SEGMENT_HEADER_LEN)
        .map_or(true, |()| buf.iter().any(|&b| b != 0))
}

/// Brings an index file in line with `records`: keeps the first `keep` records on disk (they
/// are known good) and rewrites the rest.
fn rewrite_index(
    idx: &dyn crate::fs::LogFile,
    path: &Path,
    header: &SegmentHeader,
    records: &[IndexRecord],
    keep: usize,
    header_valid: bool,
) -> Result<()> {
    let keep = keep.min(records.len());
    let mut buf =
        Vec::with_capacity((records.len() - keep) * INDEX_RECORD_LEN + INDEX_HEADER_LEN as usize);
    let start = if header_valid {
        INDEX_HEADER_LEN + (keep * INDEX_RECORD_LEN) as u64
    } else {
        buf.extend_from_slice(&format::encode_index_header(
            header.base_position,
            header.first_index,
        ));
        0
    };
    let from = if header_valid { keep } else { 0 };
    for r in &records[from..] {
        r.encode_into(&mut buf);
    }
    idx.set_len(start)
        .map_err(|e| Error::io("truncate", path, e))?;
    idx.write_all_at(&buf, start)
        .map_err(|e| Error::io("write", path, e))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store(dir: &Path, seg: u64) -> LogStore {
        LogStore::open(LogConfig::new(dir).segment_size(seg).flush(FlushMode::Sync)).unwrap()
    }

    fn entry(index: u64, body: &[u8]) -> NewEntry<'_> {
        NewEntry {
            index,
            term: 1 + index / 10,
            kind: EntryKind::Normal,
            body,
        }
    }

    #[test]
    fn append_read_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let s = store(dir.path(), 4096);
        let bodies: Vec<Vec<u8>> = (0..100u64)
            .map(|i| vec![i as u8; (i % 300) as usize])
            .collect();
        for (i, b) in bodies.iter().enumerate() {
            let a = s.append(&[entry(i as u64 + 1, b)]).unwrap();
            s.wait_flushed(a.seq).unwrap();
        }
        assert!(s.segments().len() >= 3);
        assert_eq!(
            s.last_log_id(),
            Some(LogId {
                index: 100,
                term: 11
            })
        );
        drop(s);
        let s = store(dir.path(), 4096);
        for (i, b) in bodies.iter().enumerate() {
            let e = s.read(i as u64 + 1).unwrap();
            assert_eq!(&e.body[..], &b[..]);
            assert_eq!(s.read_entry_at(e.position).unwrap().index, e.index);
        }
        assert!(matches!(s.read(101), Err(Error::IndexOutOfRange { .. })));
    }

    #[test]
    fn reads_by_position_refuse_what_lies_outside_and_find_their_entry() {
        let dir = tempfile::tempdir().unwrap();
        let s = store(dir.path(), 4096);
        for i in 1..=30u64 {
            let a = s.append(&[entry(i, &[i as u8; 200])]).unwrap();
            s.wait_flushed(a.seq).unwrap();
        }
        let e = s.read(17).unwrap();
        assert_eq!(
            &s.read_at(e.position, 8).unwrap()[..],
            &s.read_at(e.position, 8).unwrap()[..]
        );
        // Positions and lengths from the network: past the end, overflowing, before the
        // first segment's data. Errors, never a panic.
        for (position, len) in [
            (u64::MAX, 4),
            (u64::MAX - 2, 4),
            (e.position, u64::MAX),
            (e.position, u64::MAX - e.position + 1),
            (0, 4),
            (1 << 40, 1),
        ] {
            assert!(s.read_at(position, len).is_err(), "{position} + {len}");
        }
        // The entry holding a position inside its bytes, and none past the written data.
        let body_byte = e.position + 60;
        assert_eq!(
            s.entry_holding(body_byte),
            Some(LogId {
                index: 17,
                term: e.term
            })
        );
        assert_eq!(s.entry_holding(e.position).map(|l| l.index), Some(17));
        assert_eq!(s.entry_holding(u64::MAX), None);
    }

    #[test]
    fn truncate_and_purge() {
        let dir = tempfile::tempdir().unwrap();
        let s = store(dir.path(), 1024);
        let body = [7u8; 100];
        let entries: Vec<_> = (1..=50).map(|i| entry(i, &body)).collect();
        s.append(&entries).unwrap();
        s.truncate_after(30).unwrap();
        assert_eq!(s.last_log_id().map(|l| l.index), Some(30));
        s.append(&[entry(31, b"new")]).unwrap();
        assert_eq!(&s.read(31).unwrap().body[..], b"new");
        s.purge_up_to(LogId { index: 20, term: 3 }).unwrap();
        assert_eq!(s.first_index(), Some(21));
        assert!(s.read(20).is_err());
        drop(s);
        let s = store(dir.path(), 1024);
        assert_eq!(s.first_index(), Some(21));
        assert_eq!(s.last_purged(), Some(LogId { index: 20, term: 3 }));
        assert_eq!(&s.read(31).unwrap().body[..], b"new");
        // Purge past the end: the log continues after the purge point.
        s.purge_up_to(LogId {
            index: 100,
            term: 9,
        })
        .unwrap();
        assert_eq!(s.first_index(), None);
        assert_eq!(
            s.last_log_id(),
            Some(LogId {
                index: 100,
                term: 9
            })
        );
        s.append(&[NewEntry {
            index: 101,
            term: 9,
            kind: EntryKind::Blank,
            body: b"",
        }])
        .unwrap();
        drop(s);
        let s = store(dir.path(), 1024);
        assert_eq!(s.first_index(), Some(101));
        assert_eq!(s.term_of(100), Some(9));
        assert_eq!(s.segments().len(), 1);
    }

    #[test]
    fn a_log_truncated_to_nothing_continues_where_it_was_cut() {
        let dir = tempfile::tempdir().unwrap();
        let s = store(dir.path(), 4096);
        s.append(&[entry(1, b"a"), entry(2, b"b"), entry(3, b"c")])
            .unwrap();
        s.truncate_after(0).unwrap();
        assert_eq!(s.last_log_id(), None);
        assert!(matches!(
            s.append(&[entry(5, b"x")]),
            Err(Error::NotContiguous { .. })
        ));
        s.append(&[entry(1, b"again")]).unwrap();
        drop(s);
        let s = store(dir.path(), 4096);
        assert_eq!(&s.read(1).unwrap().body[..], b"again");
    }

    #[test]
    fn second_open_of_same_dir_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let _s = store(dir.path(), 4096);
        let err = LogStore::open(LogConfig::new(dir.path()).segment_size(4096))
            .err()
            .unwrap();
        assert!(err.to_string().contains("in use"), "{err}");
    }

    #[test]
    fn an_entry_at_index_u64_max_is_cut_off_not_wrapped() {
        // Found by the log_recovery fuzz target: a checksummed entry at index u64::MAX after
        // the last one (with or without its index record) overflowed the index that recovery
        // expects next.
        use std::os::unix::fs::FileExt;
        for with_index_record in [false, true] {
            let dir = tempfile::tempdir().unwrap();
            let s = store(dir.path(), 4096);
            let last = LogId {
                index: u64::MAX - 1,
                term: 3,
            };
            s.append(&[NewEntry {
                index: last.index,
                term: last.term,
                kind: EntryKind::Normal,
                body: b"last",
            }])
            .unwrap();
            let end = s.segments()[0].used_bytes;
            drop(s);
            let mut forged = Vec::new();
            format::encode_entry(&mut forged, u64::MAX, 3, end, EntryKind::Normal, b"x");
            let data = std::fs::OpenOptions::new()
                .write(true)
                .open(dir.path().join(format::segment_file_name(0)))
                .unwrap();
            data.write_all_at(&forged, end).unwrap();
            if with_index_record {
                let mut record = Vec::new();
                IndexRecord {
                    position: end,
                    term: 3,
                    size: forged.len() as u32,
                }
                .encode_into(&mut record);
                let idx = std::fs::OpenOptions::new()
                    .write(true)
                    .open(dir.path().join(format::index_file_name(0)))
                    .unwrap();
                idx.write_all_at(&record, INDEX_HEADER_LEN + INDEX_RECORD_LEN as u64)
                    .unwrap();
            }
            let s = store(dir.path(), 4096);
            assert_eq!(s.last_log_id(), Some(last));
            assert_eq!(&s.read(last.index).unwrap().body[..], b"last");
            assert_eq!(s.term_of(u64::MAX), None);
        }
    }

    /// The segment files of a store directory, by name.
    fn segment_files(dir: &Path) -> Vec<PathBuf> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "log"))
            .collect();
        files.sort();
        files
    }

    #[test]
    fn an_interrupted_purge_past_the_end_is_finished_on_open() {
        let dir = tempfile::tempdir().unwrap();
        let s = store(dir.path(), 1024);
        let body = [7u8; 100];
        let entries: Vec<_> = (1..=30).map(|i| entry(i, &body)).collect();
        s.append(&entries).unwrap();
        s.flush().unwrap();
        let saved = tempfile::tempdir().unwrap();
        let old = segment_files(dir.path());
        for path in &old {
            for file in [path.clone(), path.with_extension("idx")] {
                std::fs::copy(&file, saved.path().join(file.file_name().unwrap())).unwrap();
            }
        }
        s.purge_up_to(LogId {
            index: 100,
            term: 9,
        })
        .unwrap();
        drop(s);
        // The crash came after the new segment was made and before the old ones were gone.
        for file in std::fs::read_dir(saved.path()).unwrap() {
            let file = file.unwrap().path();
            std::fs::copy(&file, dir.path().join(file.file_name().unwrap())).unwrap();
        }
        assert_eq!(segment_files(dir.path()).len(), old.len() + 1);
        let s = store(dir.path(), 1024);
        assert_eq!(s.segments().len(), 1);
        assert_eq!(s.first_index(), None);
        assert_eq!(
            s.last_log_id(),
            Some(LogId {
                index: 100,
                term: 9
            })
        );
        s.append(&[entry(101, b"after")]).unwrap();
        assert_eq!(&s.read(101).unwrap().body[..], b"after");
    }

    #[test]
    fn a_gap_between_segments_that_no_purge_explains_is_corruption() {
        // Found by the log_recovery fuzz target: a lost middle segment, or a sealed segment cut
        // right after one of its entries, was taken for an interrupted purge, and opening
        // deleted every older segment.
        let dir = tempfile::tempdir().unwrap();
        let s = store(dir.path(), 1024);
        let body = [7u8; 100];
        let entries: Vec<_> = (1..=40).map(|i| entry(i, &body)).collect();
        s.append(&entries).unwrap();
        let sealed = s.segments()[1].clone();
        drop(s);
        let files = segment_files(dir.path());
        assert!(files.len() >= 4);

        let cut = tempfile::tempdir().unwrap();
        for file in std::fs::read_dir(dir.path()).unwrap() {
            let file = file.unwrap().path();
            std::fs::copy(&file, cut.path().join(file.file_name().unwrap())).unwrap();
        }
        std::fs::remove_file(&files[2]).unwrap();
        let err = LogStore::open(LogConfig::new(dir.path()).segment_size(1024))
            .err()
            .unwrap();
        assert!(
            matches!(
                err,
                Error::Corrupt {
                    what: crate::error::Corruption::WrongIndex { .. },
                    ..
                }
            ),
            "{err}"
        );
        assert_eq!(
            segment_files(dir.path()),
            [&files[..2], &files[3..]].concat()
        );

        // The second segment cut right after its first entry: 148 bytes per entry.
        let second = cut.path().join(sealed.path.file_name().unwrap());
        let file = std::fs::OpenOptions::new()
            .write(true)
            .open(second)
            .unwrap();
        file.set_len(SEGMENT_HEADER_LEN + 148).unwrap();
        let err = LogStore::open(LogConfig::new(cut.path()).segment_size(1024))
            .err()
            .unwrap();
        assert!(err.to_string().contains("expected"), "{err}");
        assert_eq!(segment_files(cut.path()).len(), files.len());
    }
}
