//! `log_recovery`: a store built from the input, then harmed, then opened with
//! [`LogStore::open`] and read back entry by entry.
//!
//! Two harms, as the input chooses: bytes written after the last entry of the last segment
//! (a torn or garbage tail, with checksummed entries among them that continue the log or
//! nearly do), or damage to the closed store's files (flips, truncations, zeroed and
//! overwritten runs, runs copied from another file, removed files).
//!
//! Checks, beyond "no panic, no hang":
//! - every entry a read returns has a header and body whose CRCs hold over the bytes on disk
//!   (recomputed here), and is an entry that was written with that index;
//! - an entry that lies wholly before the first damaged byte is never lost: it reads back;
//! - the store opens when only its tail or its index files were harmed (the index is derived
//!   from the data), and then keeps every entry written before the harm;
//! - `raft_log::inspect`, the read-only model of opening, agrees with what opening does.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::OpenOptions;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use arbitrary::{Arbitrary, Unstructured};
use raft_log::format::{self, EntryKind, ENTRY_HEADER_LEN, SEGMENT_HEADER_LEN};
use raft_log::inspect::{self, Consequence};
use raft_log::{Entry, FlushMode, LogConfig, LogId, LogStore, NewEntry};

use crate::log_entry::{reseal_entry, BODY_CRC_AT, HEADER_CRC_AT};

/// The most entries a case builds, and the longest body: enough for several segments.
const MAX_ENTRIES: usize = 48;
const MAX_BODY: usize = 1024;

/// A store to build, and what happens to it before it is opened again.
#[derive(Debug, Clone, Arbitrary)]
pub struct RecoveryCase {
    pub store: StoreSpec,
    pub harm: Harm,
}

/// What is appended (with [`LogStore::append`], the real writer) before the harm.
#[derive(Debug, Clone, Arbitrary)]
pub struct StoreSpec {
    /// Segment size in 64-byte steps above 256 bytes, so that logs cross segments.
    pub segment_steps: u8,
    /// The first entry's index: an empty store takes any.
    pub first_index: u64,
    pub entries: Vec<EntrySpec>,
    /// Purge up to the entry this far into the log (past its end: a snapshot install).
    pub purge: Option<u8>,
}

#[derive(Debug, Clone, Arbitrary)]
pub struct EntrySpec {
    pub term: u64,
    pub kind: u8,
    pub body: Vec<u8>,
}

#[derive(Debug, Clone, Arbitrary)]
pub enum Harm {
    /// Written after the last entry of the last segment.
    Tail(Vec<TailPiece>),
    /// Applied in order to the closed store's files.
    Damage(Vec<Damage>),
}

#[derive(Debug, Clone, Arbitrary)]
pub enum TailPiece {
    Raw(Vec<u8>),
    /// An entry with good checksums whose index and position are off by the deltas from what
    /// recovery expects next (both 0: a whole entry that continues the log); a `kind` that
    /// names no kind is written as it is.
    Entry {
        index_delta: i8,
        position_delta: i8,
        term: u64,
        kind: u8,
        body: Vec<u8>,
    },
}

/// A file of the store: `ordinal` picks one of the files of that kind, in name order.
#[derive(Debug, Clone, Copy, Arbitrary)]
pub struct FileRef {
    pub kind: FileKind,
    pub ordinal: u8,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Arbitrary)]
pub enum FileKind {
    Segment,
    Index,
    Meta,
}

/// Offsets are taken modulo the file's length (a segment's: its used bytes plus a header).
#[derive(Debug, Clone, Arbitrary)]
pub enum Damage {
    Flip {
        file: FileRef,
        at: u32,
        mask: u8,
    },
    Truncate {
        file: FileRef,
        at: u32,
    },
    Zero {
        file: FileRef,
        at: u32,
        len: u16,
    },
    Overwrite {
        file: FileRef,
        at: u32,
        bytes: Vec<u8>,
    },
    /// `len` bytes from `from` at `from_at` written over `to` at `at`: whole, checksummed
    /// entries in the wrong place.
    Copy {
        from: FileRef,
        from_at: u32,
        to: FileRef,
        at: u32,
        len: u16,
    },
    Remove {
        file: FileRef,
    },
}

/// The body of the `log_recovery` target: the input read as a [`RecoveryCase`].
pub fn log_recovery(data: &[u8]) {
    if let Ok(case) = Unstructured::new(data).arbitrary::<RecoveryCase>() {
        check_recovery(&case);
    }
}

/// Where stores are built: memory when there is a tmpfs, since the cost of fsync is not what
/// is tested and every case opens a store twice.
fn scratch_dir() -> PathBuf {
    let shm = Path::new("/dev/shm");
    if shm.is_dir() {
        shm.to_path_buf()
    } else {
        std::env::temp_dir()
    }
}

fn config(dir: &Path, segment_size: u64) -> LogConfig {
    LogConfig::new(dir)
        .segment_size(segment_size)
        // Nothing is flushed in the background: closing the store flushes it.
        .flush(FlushMode::Async {
            interval: Duration::from_secs(3600),
        })
}

/// An entry as it was written: what a read of its index may return.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Written {
    term: u64,
    kind: u8,
    body: Vec<u8>,
    /// Global position of its header, and its whole size.
    position: u64,
    size: u64,
}

/// What the harness knows about the store it built and harmed.
#[derive(Default)]
struct Expected {
    /// Every entry written with each index (a forged tail entry may reuse an index).
    written: BTreeMap<u64, Vec<Written>>,
    /// Entries that must be readable after opening: appended, not purged, before any harm.
    kept: BTreeSet<u64>,
    /// Whether the store must open: only the last segment's entry area or index files were
    /// harmed.
    must_open: bool,
}

/// Builds, harms, inspects and reopens the store of `case`, checking what is read back.
pub fn check_recovery(case: &RecoveryCase) {
    let dir = tempfile::Builder::new()
        .prefix("raftmq-fuzz-log-")
        .tempdir_in(scratch_dir())
        .expect("a scratch directory for the store");
    let segment_size = 256 + 64 * u64::from(case.store.segment_steps);
    let mut expected = build(dir.path(), segment_size, &case.store);
    match &case.harm {
        Harm::Tail(pieces) => write_tail(dir.path(), pieces, &mut expected),
        Harm::Damage(damages) => {
            for damage in damages {
                apply(dir.path(), segment_size, damage, &mut expected);
            }
        }
    }

    let report = inspect::inspect(dir.path()).expect("inspecting a store directory");
    let refused = report
        .problems
        .iter()
        .find(|p| p.consequence == Consequence::OpenRefuses);
    let store = match LogStore::open(config(dir.path(), segment_size)) {
        Ok(store) => store,
        Err(e) => {
            assert!(!expected.must_open, "the store does not open: {e}");
            assert!(
                refused.is_some(),
                "opening fails ({e}) where inspect expects it to open: {report}"
            );
            return;
        }
    };
    assert!(
        refused.is_none(),
        "the store opens where inspect says it refuses: {report}"
    );
    let read_fails: BTreeSet<u64> = report
        .problems
        .iter()
        .filter_map(|p| match p.consequence {
            Consequence::ReadFails { index } => Some(index),
            _ => None,
        })
        .collect();

    let mut readable = BTreeSet::new();
    if let (Some(first), Some(last)) = (store.first_index(), store.last_log_id()) {
        for index in first..=last.index {
            match store.read(index) {
                Ok(entry) => {
                    check_entry(&store, index, &entry, &expected);
                    readable.insert(index);
                }
                Err(e) => assert!(
                    read_fails.contains(&index),
                    "reading {index} fails ({e}) where inspect expects it to succeed"
                ),
            }
        }
    }
    for index in &expected.kept {
        assert!(
            readable.contains(index),
            "entry {index}, written before any damage, is lost (the store holds {:?}..={:?})",
            store.first_index(),
            store.last_log_id()
        );
    }
}

/// Appends the entries of `spec` (purging as it says), closes the store, and returns what
/// it holds.
fn build(dir: &Path, segment_size: u64, spec: &StoreSpec) -> Expected {
    let mut expected = Expected {
        must_open: true,
        ..Expected::default()
    };
    let store = LogStore::open(config(dir, segment_size)).expect("opening an empty store");
    let max_body = (segment_size - SEGMENT_HEADER_LEN) as usize - ENTRY_HEADER_LEN;
    let entries: Vec<(u64, &EntrySpec, &[u8])> = spec
        .entries
        .iter()
        .take(MAX_ENTRIES)
        .enumerate()
        .map(|(i, e)| {
            (
                i as u64,
                e,
                &e.body[..e.body.len().min(MAX_BODY).min(max_body)],
            )
        })
        .collect();
    // Room for every index, a purge point up to two past the end, and the index after it: the
    // writer's callers never come near u64::MAX (a forged tail may).
    let first = spec.first_index.min(u64::MAX - entries.len() as u64 - 4);
    let new: Vec<NewEntry<'_>> = entries
        .iter()
        .map(|&(i, e, body)| NewEntry {
            index: first + i,
            term: e.term,
            kind: kind(e.kind),
            body,
        })
        .collect();
    if !new.is_empty() {
        store.append(&new).expect("appending to a fresh store");
    }
    for e in &new {
        let entry = store.read(e.index).expect("reading back an appended entry");
        expected.written.entry(e.index).or_default().push(Written {
            term: e.term,
            kind: e.kind as u8,
            body: e.body.to_vec(),
            position: entry.position,
            size: (ENTRY_HEADER_LEN + e.body.len()) as u64,
        });
        expected.kept.insert(e.index);
    }
    if let Some(step) = spec.purge {
        let index = first.saturating_add(u64::from(step) % (new.len() as u64 + 3));
        let term = store.term_of(index).unwrap_or(1);
        store
            .purge_up_to(LogId { term, index })
            .expect("purging a fresh store");
        expected.kept.retain(|&i| i > index);
    }
    store.close().expect("closing a fresh store");
    expected
}

fn kind(raw: u8) -> EntryKind {
    EntryKind::from_u8(raw % 3).unwrap_or(EntryKind::Normal)
}

/// The store's files of one kind, in name order (segments and indexes: position order).
fn files(dir: &Path, kind: FileKind) -> Vec<PathBuf> {
    let mut names: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("listing the store directory")
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| {
            let ext = path.extension().and_then(|e| e.to_str());
            match kind {
                FileKind::Segment => ext == Some("log"),
                FileKind::Index => ext == Some("idx"),
                FileKind::Meta => ext == Some("meta"),
            }
        })
        .collect();
    names.sort();
    names
}

fn pick(dir: &Path, file: FileRef) -> Option<PathBuf> {
    let all = files(dir, file.kind);
    (!all.is_empty()).then(|| all[usize::from(file.ordinal) % all.len()].clone())
}

fn base_of(path: &Path) -> Option<u64> {
    format::parse_segment_file_name(path.file_name()?.to_str()?)
}

/// Bytes of the segment at `base` in use: header and entries.
fn used_bytes(expected: &Expected, base: u64, segment_size: u64) -> u64 {
    expected
        .written
        .values()
        .flatten()
        .filter(|w| w.position >= base && w.position < base + segment_size)
        .map(|w| w.position + w.size - base)
        .max()
        .unwrap_or(SEGMENT_HEADER_LEN)
}

/// Writes the tail pieces after the last entry of the last segment.
fn write_tail(dir: &Path, pieces: &[TailPiece], expected: &mut Expected) {
    let Some(path) = files(dir, FileKind::Segment).pop() else {
        return; // nothing was written, so there is no segment to have a tail
    };
    let base = base_of(&path).expect("a segment file name");
    let last = expected
        .written
        .values()
        .flatten()
        .filter(|w| w.position >= base)
        .max_by_key(|w| w.position);
    let offset = last.map_or(SEGMENT_HEADER_LEN, |w| w.position + w.size - base);
    let mut next_index = match (last, expected.written.last_key_value()) {
        (Some(_), Some((&index, _))) => index.wrapping_add(1),
        // An empty last segment: the one a purge started, or one the log was cut back to.
        _ => segment_first_index(&path),
    };
    let mut tail = Vec::new();
    for piece in pieces.iter().take(64) {
        match piece {
            TailPiece::Raw(bytes) => tail.extend_from_slice(&bytes[..bytes.len().min(MAX_BODY)]),
            TailPiece::Entry {
                index_delta,
                position_delta,
                term,
                kind: raw_kind,
                body,
            } => {
                let body = &body[..body.len().min(MAX_BODY)];
                let at = base + offset + tail.len() as u64;
                let index = next_index.wrapping_add_signed(i64::from(*index_delta));
                let position = at.wrapping_add_signed(i64::from(*position_delta));
                let start = tail.len();
                format::encode_entry(&mut tail, index, *term, position, kind(*raw_kind), body);
                if *raw_kind > 2 {
                    tail[start + 32] = *raw_kind;
                    reseal_entry(&mut tail[start..]);
                }
                expected.written.entry(index).or_default().push(Written {
                    term: *term,
                    kind: tail[start + 32],
                    body: body.to_vec(),
                    position: at,
                    size: (tail.len() - start) as u64,
                });
                next_index = index.wrapping_add(1);
            }
        }
    }
    let file = OpenOptions::new()
        .write(true)
        .open(&path)
        .expect("opening the last segment");
    file.write_all_at(&tail, offset)
        .expect("writing the tail of the last segment");
}

fn segment_first_index(path: &Path) -> u64 {
    let mut head = [0u8; SEGMENT_HEADER_LEN as usize];
    std::fs::File::open(path)
        .and_then(|f| f.read_exact_at(&mut head, 0))
        .expect("reading a segment header");
    format::SegmentHeader::decode(&head).map_or(0, |h| h.first_index)
}

/// Applies one damage, and notes what it may cost.
fn apply(dir: &Path, segment_size: u64, damage: &Damage, expected: &mut Expected) {
    let target = match damage {
        Damage::Flip { file, .. }
        | Damage::Truncate { file, .. }
        | Damage::Zero { file, .. }
        | Damage::Overwrite { file, .. }
        | Damage::Remove { file } => *file,
        Damage::Copy { to, .. } => *to,
    };
    let Some(path) = pick(dir, target) else {
        return;
    };
    let len = std::fs::metadata(&path).map_or(0, |m| m.len());
    // Offsets land where the bytes are: a segment's entries, not the zeros after them.
    let span = match base_of(&path) {
        Some(base) if target.kind == FileKind::Segment => {
            used_bytes(expected, base, segment_size) + SEGMENT_HEADER_LEN
        }
        _ => len,
    };
    let at = |raw: u32| u64::from(raw) % (span + 1);
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(&path)
        .expect("opening a store file");
    let damaged_from = match damage {
        Damage::Flip { at: raw, mask, .. } => {
            let at = at(*raw).min(len.saturating_sub(1));
            let mut byte = [0u8];
            if file.read_exact_at(&mut byte, at).is_err() {
                return;
            }
            byte[0] ^= (*mask).max(1);
            file.write_all_at(&byte, at).expect("flipping a byte");
            at
        }
        Damage::Truncate { at: raw, .. } => {
            let at = at(*raw);
            file.set_len(at.min(len)).expect("truncating a file");
            at
        }
        Damage::Zero {
            at: raw, len: n, ..
        } => {
            let at = at(*raw);
            file.write_all_at(&vec![0u8; usize::from(*n)], at)
                .expect("zeroing a run");
            at
        }
        Damage::Overwrite { at: raw, bytes, .. } => {
            let at = at(*raw);
            file.write_all_at(&bytes[..bytes.len().min(MAX_BODY)], at)
                .expect("overwriting a run");
            at
        }
        Damage::Copy {
            from,
            from_at,
            at: raw,
            len: n,
            ..
        } => {
            let Some(source) = pick(dir, *from) else {
                return;
            };
            let bytes = std::fs::read(&source).expect("reading a store file");
            let start = (*from_at as usize) % (bytes.len() + 1);
            let end = (start + usize::from(*n)).min(bytes.len());
            let at = at(*raw);
            file.write_all_at(&bytes[start..end], at)
                .expect("copying a run");
            at
        }
        Damage::Remove { .. } => {
            drop(file);
            std::fs::remove_file(&path).expect("removing a file");
            0
        }
    };
    match (target.kind, base_of(&path)) {
        (FileKind::Segment, Some(base)) => {
            let position = base + damaged_from;
            expected.kept.retain(|index| {
                expected.written[index]
                    .iter()
                    .all(|w| w.position + w.size <= position)
            });
            let is_last = files(dir, FileKind::Segment)
                .last()
                .and_then(|p| base_of(p))
                .is_none_or(|last| last <= base);
            if !is_last
                || damaged_from < SEGMENT_HEADER_LEN
                || matches!(damage, Damage::Remove { .. })
            {
                expected.must_open = false;
            }
        }
        (FileKind::Index, _) => {}
        // A damaged purge point is refused (nothing else is read when opening).
        (FileKind::Meta, _) | (FileKind::Segment, None) => expected.must_open = false,
    }
}

/// Checks an entry a read returned against the bytes on disk and what was written.
fn check_entry(store: &LogStore, index: u64, entry: &Entry, expected: &Expected) {
    assert_eq!(entry.index, index);
    let header = store
        .read_at(entry.position, ENTRY_HEADER_LEN as u64)
        .expect("the header of an entry just read");
    let word = |at: usize| {
        u32::from_le_bytes([header[at], header[at + 1], header[at + 2], header[at + 3]])
    };
    assert_eq!(
        crc32fast::hash(&header[..HEADER_CRC_AT]),
        word(HEADER_CRC_AT),
        "entry {index} was read with a header whose checksum fails"
    );
    assert_eq!(
        crc32fast::hash(&entry.body),
        word(BODY_CRC_AT),
        "entry {index} was read with a body whose checksum fails"
    );
    assert_eq!(word(4) as usize, ENTRY_HEADER_LEN + entry.body.len());
    let found = expected.written.get(&index).is_some_and(|all| {
        all.iter()
            .any(|w| w.term == entry.term && w.kind == entry.kind as u8 && w.body == entry.body[..])
    });
    assert!(
        found,
        "entry {index} reads back as something never written with that index"
    );
}
