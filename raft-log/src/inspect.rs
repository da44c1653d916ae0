//! Read-only inspection of a store directory: what `raft-log-dump` prints and checks. Unlike
//! opening a store, nothing here repairs anything.
//!
//! Every file is read through [`ReadOnlyFs`], whose writes, truncations, renames and removals
//! all fail, so an inspection cannot change a byte even by mistake. Segments are read with
//! `pread` in bounded windows (never mapped: a store being opened at the same time shrinks and
//! re-extends its last segment, which would turn a mapping's pages into `SIGBUS`).
//!
//! Each segment is looked at twice:
//! - a **full scan** from the end of the segment header with [`segment::scan`], the same
//!   decoder recovery uses, that skips over damage to the next whole entry, so it finds every
//!   damaged entry and every whole one;
//! - a **model of `LogStore::open`**: the index file as the store reads it
//!   ([`segment::read_index`]), the check of its last record, the scan of what follows it.
//!   This says what opening would do with each damage: refuse (a sealed segment), truncate
//!   (the last segment), or not notice it at all because the index covers it (then reading
//!   that entry fails).
//!
//! A problem is a **torn tail** when it is in the last segment and opening the store truncates
//! the log there (what a crash leaves), and **corruption** otherwise: opening refuses it,
//! reads of an entry fail, or whole entries would be lost.

use std::fmt;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Serialize, Serializer};
use tracing::debug;

use crate::error::{Corruption, Error, Result};
use crate::format::{
    self, IndexRecord, SegmentHeader, ENTRY_HEADER_LEN, ENTRY_MAGIC, INDEX_HEADER_LEN,
    INDEX_RECORD_LEN, SEGMENT_HEADER_LEN,
};
use crate::fs::{FileSystem, LogFile, Mmap, StdFs};
use crate::meta::MetaFiles;
use crate::segment;

/// Bytes read per `pread` while scanning; an entry larger than this is read whole.
const DEFAULT_WINDOW: usize = 8 << 20;

/// The metadata files a store keeps beside its segments.
const META_NAMES: [&str; 3] = ["vote", "committed", "purged"];

/// Everything an inspection found in one store directory.
#[derive(Debug, Clone, Serialize)]
pub struct StoreReport {
    pub dir: PathBuf,
    /// `Some(true)` when a process holds the directory's `LOCK` (the store is open, so its
    /// tail may change while it is read); `None` when there is no `LOCK` file.
    pub in_use: Option<bool>,
    /// Segments in position order.
    pub segments: Vec<SegmentReport>,
    /// `vote`, `committed` and `purged` metadata files.
    pub meta: Vec<MetaReport>,
    /// The purge point recorded in `purged.meta`.
    pub purged: Option<PurgePoint>,
    /// The first readable index: the first entry on disk, or the one after the purge point.
    pub first_index: Option<u64>,
    /// The last whole entry's index.
    pub last_index: Option<u64>,
    /// Whole entries found in all segments.
    pub entries: u64,
    /// Sum of the segments' used bytes.
    pub used_bytes: u64,
    /// Every problem found, in file order; the first is what `--verify` reports.
    pub problems: Vec<Problem>,
    /// Things opening the store repairs silently and that lose nothing (a stale index, an
    /// orphan index file, ...), or that look odd without being damage.
    pub notes: Vec<String>,
}

/// One segment file.
#[derive(Debug, Clone, Serialize)]
pub struct SegmentReport {
    pub path: PathBuf,
    pub file_len: u64,
    /// From the file name (the header's copy is checked against it).
    pub base_position: u64,
    /// The index the segment's first entry carries, from the header; `None` when the header
    /// is unreadable.
    pub header_first_index: Option<u64>,
    /// The term of the entry before this segment, from the header (`None` when the log
    /// begins in this segment or the header is unreadable).
    pub prev_term: Option<u64>,
    /// Whole entries found (entries after damage included).
    pub entries: u64,
    pub first_index: Option<u64>,
    pub last_index: Option<u64>,
    /// File offset just past the last whole entry.
    pub used_bytes: u64,
    /// Runs of consecutive entries with the same term.
    pub terms: Vec<TermRun>,
    pub kinds: KindCounts,
    pub index: IndexReport,
}

/// Consecutive entries `first..=last` written in one term.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct TermRun {
    pub term: u64,
    pub first: u64,
    pub last: u64,
}

/// Entries per [`crate::EntryKind`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct KindCounts {
    pub blank: u64,
    pub normal: u64,
    pub membership: u64,
}

/// A segment's index file, compared with the data.
#[derive(Debug, Clone, Serialize)]
pub struct IndexReport {
    pub path: PathBuf,
    pub present: bool,
    /// Records the store would take from the file (it stops at the first one that fails its
    /// checksum or does not follow its predecessor).
    pub records: u64,
    /// Every record agrees with a whole entry and every whole entry has a record.
    pub matches_data: bool,
}

/// One metadata file.
#[derive(Debug, Clone, Serialize)]
pub struct MetaReport {
    pub name: String,
    pub path: PathBuf,
    pub present: bool,
    pub file_len: Option<u64>,
    /// The payload, hex-encoded, when the file's checksum holds.
    pub payload_hex: Option<String>,
}

/// The last purged log id (`purged.meta`: term u64 LE, index u64 LE).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct PurgePoint {
    pub term: u64,
    pub index: u64,
}

/// Damage: where, what, and what opening the store does about it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    pub path: PathBuf,
    /// Byte offset in `path`: an entry's or a header's first byte.
    pub offset: u64,
    /// The Raft index of the entry at `offset` (the one expected there), when known.
    pub index: Option<u64>,
    #[serde(serialize_with = "display_string")]
    pub what: Corruption,
    pub class: ProblemClass,
    pub consequence: Consequence,
}

/// The two kinds of problem a store can have.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ProblemClass {
    /// The end of the last segment is incomplete, as a crash leaves it: opening the store
    /// truncates the log there.
    TornTail,
    /// Damage before the tail: opening refuses the store, or a read fails, or whole entries
    /// would be lost.
    Corrupt,
}

/// What `LogStore::open` (and later reads) do about a problem.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "action")]
pub enum Consequence {
    /// Opening truncates the log here; `dropped_entries` whole entries found after the
    /// damage go with it (data written after the last fsync may legitimately be such).
    Truncates { dropped_entries: u64 },
    /// Opening fails with a corruption error naming this file and offset.
    OpenRefuses,
    /// Opening succeeds (the index covers the damage and only its last record is checked),
    /// but reading this index fails.
    ReadFails { index: u64 },
    /// The header is unreadable, so opening deletes the whole segment as the leftover of an
    /// interrupted roll, with the whole entries it still holds.
    DeletesSegment { entries: u64 },
    /// Loading this metadata file fails.
    LoadFails,
}

fn display_string<T: fmt::Display, S: Serializer>(
    v: &T,
    s: S,
) -> std::result::Result<S::Ok, S::Error> {
    s.collect_str(v)
}

impl StoreReport {
    /// The problem `--verify` reports.
    pub fn first_problem(&self) -> Option<&Problem> {
        self.problems.first()
    }

    pub fn is_healthy(&self) -> bool {
        self.problems.is_empty()
    }
}

impl Problem {
    pub fn is_torn_tail(&self) -> bool {
        self.class == ProblemClass::TornTail
    }
}

impl fmt::Display for ProblemClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::TornTail => "torn tail",
            Self::Corrupt => "corruption",
        })
    }
}

impl fmt::Display for Consequence {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::Truncates { dropped_entries: 0 } => {
                write!(f, "opening the store truncates the log here")
            }
            Self::Truncates { dropped_entries } => write!(
                f,
                "opening the store truncates the log here, dropping {dropped_entries} whole \
                 entries found after it"
            ),
            Self::OpenRefuses => write!(f, "opening the store fails here"),
            Self::ReadFails { index } => {
                write!(f, "the store opens, but reading index {index} fails")
            }
            Self::DeletesSegment { entries: 0 } => write!(
                f,
                "opening the store deletes this segment (the leftover of an interrupted roll)"
            ),
            Self::DeletesSegment { entries } => write!(
                f,
                "opening the store deletes this segment and the {entries} whole entries in it"
            ),
            Self::LoadFails => write!(f, "loading this file fails"),
        }
    }
}

/// `FILE: byte OFFSET: CLASS: [entry INDEX: ]WHAT; CONSEQUENCE`, one line.
impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: byte {}: {}: ",
            self.path.display(),
            self.offset,
            self.class
        )?;
        if let Some(index) = self.index {
            write!(f, "entry {index}: ")?;
        }
        write!(f, "{}; {}", self.what, self.consequence)
    }
}

impl fmt::Display for TermRun {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "term {}: {}..={}", self.term, self.first, self.last)
    }
}

impl fmt::Display for KindCounts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "normal {}, blank {}, membership {}",
            self.normal, self.blank, self.membership
        )
    }
}

fn file_name(path: &Path) -> String {
    path.file_name().map_or_else(
        || path.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    )
}

fn index_range(first: Option<u64>, last: Option<u64>) -> String {
    match (first, last) {
        (Some(f), Some(l)) => format!("{f}..={l}"),
        _ => "none".to_string(),
    }
}

/// The readable report `raft-log-dump` prints.
impl fmt::Display for StoreReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "store {}", self.dir.display())?;
        match self.in_use {
            Some(true) => writeln!(
                f,
                "  in use: yes (a process holds LOCK; the tail may change while it is read)"
            )?,
            Some(false) => writeln!(f, "  in use: no")?,
            None => writeln!(f, "  in use: no (no LOCK file)")?,
        }
        for s in &self.segments {
            writeln!(
                f,
                "segment {}: base {}, file {} bytes, used {} bytes",
                file_name(&s.path),
                s.base_position,
                s.file_len,
                s.used_bytes
            )?;
            match (s.header_first_index, s.prev_term) {
                (Some(first), Some(prev)) => {
                    writeln!(f, "  header: first index {first}, prev term {prev}")?
                }
                (Some(first), None) => {
                    writeln!(f, "  header: first index {first}, the log begins here")?
                }
                (None, _) => writeln!(f, "  header: unreadable")?,
            }
            writeln!(
                f,
                "  entries: {} ({}): {}",
                index_range(s.first_index, s.last_index),
                s.entries,
                s.kinds
            )?;
            if !s.terms.is_empty() {
                let runs: Vec<String> = s.terms.iter().map(ToString::to_string).collect();
                writeln!(f, "  terms: {}", runs.join(", "))?;
            }
            let idx = &s.index;
            if idx.present {
                writeln!(
                    f,
                    "  index {}: {} records, {}",
                    file_name(&idx.path),
                    idx.records,
                    if idx.matches_data {
                        "matches the data"
                    } else {
                        "differs from the data (see notes and problems)"
                    }
                )?;
            } else {
                writeln!(f, "  index {}: missing", file_name(&idx.path))?;
            }
        }
        writeln!(f, "meta:")?;
        for m in &self.meta {
            match (&m.file_len, &m.payload_hex) {
                (None, _) => writeln!(f, "  {}.meta: absent", m.name)?,
                (Some(len), Some(hex)) => {
                    write!(f, "  {}.meta: {len} bytes, payload {hex}", m.name)?;
                    match (m.name.as_str(), self.purged) {
                        ("purged", Some(p)) => {
                            writeln!(f, " (term {}, index {})", p.term, p.index)?
                        }
                        _ => writeln!(f)?,
                    }
                }
                (Some(len), None) => writeln!(f, "  {}.meta: {len} bytes, unreadable", m.name)?,
            }
        }
        writeln!(
            f,
            "log: indexes {}, {} entries in {} segments, {} bytes used",
            index_range(self.first_index, self.last_index),
            self.entries,
            self.segments.len(),
            self.used_bytes
        )?;
        if !self.notes.is_empty() {
            writeln!(f, "notes:")?;
            for n in &self.notes {
                writeln!(f, "  - {n}")?;
            }
        }
        if self.problems.is_empty() {
            writeln!(f, "problems: none")
        } else {
            writeln!(f, "problems ({}):", self.problems.len())?;
            for p in &self.problems {
                writeln!(f, "  {p}")?;
            }
            Ok(())
        }
    }
}

/// Inspects the store in `dir` without changing it.
pub fn inspect(dir: &Path) -> Result<StoreReport> {
    inspect_with(dir, DEFAULT_WINDOW)
}

/// [`inspect`] with a chosen read window (tests use tiny ones to cross window edges).
fn inspect_with(dir: &Path, window: usize) -> Result<StoreReport> {
    let window = window.max(2 * ENTRY_HEADER_LEN);
    let fs = ReadOnlyFs;
    let mut names = fs.list(dir).map_err(|e| Error::io("list", dir, e))?;
    names.sort();
    let mut bases: Vec<u64> = names
        .iter()
        .filter_map(|n| format::parse_segment_file_name(n))
        .collect();
    bases.sort_unstable();

    let mut report = StoreReport {
        dir: dir.to_path_buf(),
        in_use: lock_held(dir),
        segments: Vec::new(),
        meta: Vec::new(),
        purged: None,
        first_index: None,
        last_index: None,
        entries: 0,
        used_bytes: 0,
        problems: Vec::new(),
        notes: Vec::new(),
    };
    for name in &names {
        if let Some(stem) = name.strip_suffix(".idx") {
            let orphan = format::parse_segment_file_name(&format!("{stem}.log"))
                .is_none_or(|b| !bases.contains(&b));
            if orphan {
                report.notes.push(format!(
                    "{name} has no segment; opening the store deletes it"
                ));
            }
        }
    }

    // The purge point decides whether a gap between segments is an interrupted purge, so it
    // is read first; its problems are reported after the segments', in file order.
    read_meta(dir, &mut report)?;
    let meta_problems = std::mem::take(&mut report.problems);
    let purged = report.purged;

    let mut prev: Option<Opened> = None;
    for (i, &base) in bases.iter().enumerate() {
        let is_last = i + 1 == bases.len();
        let seg = inspect_segment(dir, base, is_last, window)?;
        debug!(
            path = %seg.report.path.display(),
            entries = seg.report.entries,
            problems = seg.problems.len(),
            "segment scanned"
        );
        // In the store's order: a segment's own checks, then how it follows the previous one.
        report.problems.extend(seg.problems);
        if let (Some(p), Some(this)) = (&prev, &seg.opened) {
            check_continuity(p, this, &seg.report.path, purged, &mut report);
        }
        prev = seg.opened;
        report.notes.extend(seg.notes);
        report.segments.push(seg.report);
    }
    if bases.is_empty() {
        report
            .notes
            .push("no segment files: an empty store (or not a store directory)".into());
    }

    report.problems.extend(meta_problems);
    summarize(&mut report);
    Ok(report)
}

/// What opening the store would make of a segment, for the checks between segments.
struct Opened {
    base: u64,
    file_len: u64,
    first_index: u64,
    prev_term: Option<u64>,
    /// `None` when opening stops in this segment (its count of entries is then moot).
    next_index: Option<u64>,
    last_term: Option<u64>,
}

/// The store's checks between neighbouring segments, plus the Raft invariants it leaves to
/// Raft (the header's `prev_term`, terms never going down).
fn check_continuity(
    prev: &Opened,
    this: &Opened,
    path: &Path,
    purged: Option<PurgePoint>,
    report: &mut StoreReport,
) {
    if this.base < prev.base + prev.file_len {
        report.problems.push(Problem {
            path: path.to_path_buf(),
            offset: 0,
            index: None,
            what: Corruption::WrongPosition {
                expected: prev.base + prev.file_len,
                found: this.base,
            },
            class: ProblemClass::Corrupt,
            consequence: Consequence::OpenRefuses,
        });
        return;
    }
    let Some(expected) = prev.next_index else {
        return;
    };
    // Only a purge past the end of the log leaves a gap, and its purge point covers it.
    if this.first_index > expected && purged.is_some_and(|p| p.index >= this.first_index - 1) {
        report.notes.push(format!(
            "{} starts at index {} but the segments before it end at {}: a purge past the end \
             of the log was interrupted; opening the store deletes every older segment",
            file_name(path),
            this.first_index,
            expected.saturating_sub(1)
        ));
    } else if this.first_index != expected {
        // Before: segments overlap. After, with no purge point to explain it: a segment is
        // lost or a sealed one was cut short.
        report.problems.push(Problem {
            path: path.to_path_buf(),
            offset: 0,
            index: None,
            what: Corruption::WrongIndex {
                expected,
                found: this.first_index,
            },
            class: ProblemClass::Corrupt,
            consequence: Consequence::OpenRefuses,
        });
    } else if let Some(last_term) = prev.last_term {
        if this.prev_term != Some(last_term) {
            report.notes.push(format!(
                "{}: header says the previous entry has term {:?}, the previous segment ends \
                 with term {last_term}",
                file_name(path),
                this.prev_term
            ));
        }
    }
}

/// Overall first/last index and totals, and notes on terms that go down.
fn summarize(report: &mut StoreReport) {
    let mut previous: Option<(u64, u64)> = None; // (index, term) of the last entry seen
    let mut term_notes = Vec::new();
    for s in &report.segments {
        report.entries += s.entries;
        report.used_bytes += s.used_bytes;
        for run in &s.terms {
            if let Some((index, term)) = previous {
                if run.term < term {
                    term_notes.push(format!(
                        "{}: term goes down from {term} (index {index}) to {} (index {})",
                        file_name(&s.path),
                        run.term,
                        run.first
                    ));
                }
            }
            previous = Some((run.last, run.term));
        }
    }
    report.notes.extend(term_notes);
    let physical_first = report.segments.iter().find_map(|s| s.first_index);
    report.last_index = report
        .segments
        .iter()
        .rev()
        .find_map(|s| s.last_index)
        .or(report.purged.map(|p| p.index));
    report.first_index = match (physical_first, report.purged) {
        (Some(f), Some(p)) => Some(f.max(p.index + 1)),
        (f, _) => f,
    }
    .filter(|&f| report.last_index.is_some_and(|l| f <= l));
}

/// Reads the metadata files (through the store's own decoder, on a read-only file system).
fn read_meta(dir: &Path, report: &mut StoreReport) -> Result<()> {
    let meta = MetaFiles::new(Arc::new(ReadOnlyFs), dir);
    for name in META_NAMES {
        let path = dir.join(format!("{name}.meta"));
        let file_len = match std::fs::metadata(&path) {
            Ok(m) => Some(m.len()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(e) => return Err(Error::io("stat", &path, e)),
        };
        let mut payload_hex = None;
        if file_len.is_some() {
            match meta.load(name) {
                Ok(Some(payload)) => {
                    if name == "purged" {
                        report.purged = decode_purge_point(&payload);
                        if report.purged.is_none() {
                            report.problems.push(Problem {
                                path: path.clone(),
                                offset: 0,
                                index: None,
                                what: Corruption::Torn,
                                class: ProblemClass::Corrupt,
                                consequence: Consequence::OpenRefuses,
                            });
                        }
                    }
                    payload_hex = Some(hex(&payload));
                }
                Ok(None) => {}
                Err(Error::Corrupt { offset, what, .. }) => report.problems.push(Problem {
                    path: path.clone(),
                    offset,
                    index: None,
                    what,
                    class: ProblemClass::Corrupt,
                    // The store reads the purge point when it opens; vote and committed are
                    // read by the Raft layer, which then fails.
                    consequence: if name == "purged" {
                        Consequence::OpenRefuses
                    } else {
                        Consequence::LoadFails
                    },
                }),
                Err(e) => return Err(e),
            }
        }
        report.meta.push(MetaReport {
            name: name.to_string(),
            path,
            present: file_len.is_some(),
            file_len,
            payload_hex,
        });
    }
    Ok(())
}

fn decode_purge_point(b: &[u8]) -> Option<PurgePoint> {
    if b.len() != 16 {
        return None;
    }
    let term = u64::from_le_bytes(b.get(..8)?.try_into().ok()?);
    let index = u64::from_le_bytes(b.get(8..16)?.try_into().ok()?);
    // As the store reads it: the log continues after a purge point.
    (index < u64::MAX).then_some(PurgePoint { term, index })
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Whether a process holds a lock on the store's `LOCK` file (an open store does), read from
/// `/proc/locks` so that the inspector takes no lock itself: a store opening meanwhile must
/// not be told its directory is in use. `None` when there is no `LOCK` or no `/proc/locks`.
fn lock_held(dir: &Path) -> Option<bool> {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(dir.join("LOCK")).ok()?;
    let locks = std::fs::read_to_string("/proc/locks").ok()?;
    let file = (
        u64::from(libc::major(meta.dev())),
        u64::from(libc::minor(meta.dev())),
        meta.ino(),
    );
    Some(locks.lines().any(|line| {
        // `1: FLOCK  ADVISORY  WRITE 1234 fd:01:5678 0 EOF`: device in hex, then the inode.
        line.split_whitespace().any(|field| {
            let mut parts = field.split(':');
            let (Some(major), Some(minor), Some(ino), None) =
                (parts.next(), parts.next(), parts.next(), parts.next())
            else {
                return false;
            };
            let parsed = (
                u64::from_str_radix(major, 16),
                u64::from_str_radix(minor, 16),
                ino.parse::<u64>(),
            );
            matches!(parsed, (Ok(a), Ok(b), Ok(c)) if (a, b, c) == file)
        })
    }))
}

/// What inspecting one segment produced.
struct SegmentInspection {
    report: SegmentReport,
    problems: Vec<Problem>,
    notes: Vec<String>,
    /// `None` when the header is unreadable.
    opened: Option<Opened>,
}

fn inspect_segment(
    dir: &Path,
    base: u64,
    is_last: bool,
    window: usize,
) -> Result<SegmentInspection> {
    let data_path = dir.join(format::segment_file_name(base));
    let idx_path = dir.join(format::index_file_name(base));
    let data = SegmentFile::open(&data_path).map_err(|e| Error::io("open", &data_path, e))?;
    let io_err = |e| Error::io("read", &data_path, e);
    let mut problems = Vec::new();
    let mut notes = Vec::new();

    let header = if data.len >= SEGMENT_HEADER_LEN {
        let mut head = Vec::new();
        data.read_into(&mut head, 0, SEGMENT_HEADER_LEN)
            .map_err(io_err)?;
        SegmentHeader::decode(&head)
    } else {
        Err(Corruption::Torn)
    };
    let header = match header {
        Ok(h) => h,
        Err(what) => {
            // Whatever whole entries follow the header are lost with the segment.
            let scan = match find_next_entry(&data, base, SEGMENT_HEADER_LEN, 0, window)
                .map_err(io_err)?
            {
                Some((offset, index)) => {
                    full_scan(&data, base, offset, index, window).map_err(io_err)?
                }
                None => FullScan::empty(),
            };
            let entries = scan.entries();
            // As opening decides: a last segment is deleted only when nothing lies where its
            // first entry header would be (the leftover of an interrupted roll).
            let first_entry_written = {
                let end = (SEGMENT_HEADER_LEN + ENTRY_HEADER_LEN as u64).min(data.len);
                let mut buf = Vec::new();
                end > SEGMENT_HEADER_LEN
                    && data
                        .read_into(&mut buf, SEGMENT_HEADER_LEN, end - SEGMENT_HEADER_LEN)
                        .map_or(true, |()| buf.iter().any(|&b| b != 0))
            };
            let deleted = is_last && !first_entry_written;
            problems.push(Problem {
                path: data_path.clone(),
                offset: 0,
                index: None,
                what,
                class: if deleted {
                    ProblemClass::TornTail
                } else {
                    ProblemClass::Corrupt
                },
                consequence: if deleted {
                    Consequence::DeletesSegment { entries }
                } else {
                    Consequence::OpenRefuses
                },
            });
            let index = IndexReport {
                present: idx_path.exists(),
                path: idx_path,
                records: 0,
                matches_data: false,
            };
            return Ok(SegmentInspection {
                report: scan.report(data_path, data.len, base, None, index),
                problems,
                notes,
                opened: None,
            });
        }
    };
    if header.base_position != base {
        problems.push(Problem {
            path: data_path.clone(),
            offset: 16,
            index: None,
            what: Corruption::WrongPosition {
                expected: base,
                found: header.base_position,
            },
            class: ProblemClass::Corrupt,
            consequence: Consequence::OpenRefuses,
        });
    }

    let scan =
        full_scan(&data, base, SEGMENT_HEADER_LEN, header.first_index, window).map_err(io_err)?;

    // The index file as the store reads it.
    let (idx_present, on_disk, raw_records) = match ReadOnlyFile::open(&idx_path) {
        Ok(idx) => {
            let len = idx.len().map_err(|e| Error::io("stat", &idx_path, e))?;
            let records = segment::read_index(&idx, base, header.first_index)
                .map_err(|e| Error::io("read", &idx_path, e))?;
            let raw = len.saturating_sub(INDEX_HEADER_LEN) / INDEX_RECORD_LEN as u64;
            (true, records, raw)
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => (false, None, 0),
        Err(e) => return Err(Error::io("open", &idx_path, e)),
    };
    let idx_name = file_name(&idx_path);
    match &on_disk {
        _ if !idx_present => notes.push(format!(
            "{idx_name} is missing; opening the store rebuilds it from the data"
        )),
        None => notes.push(format!(
            "{idx_name}: header is damaged or names another segment; opening the store \
             rebuilds the index from the data"
        )),
        Some(records) if (records.len() as u64) < raw_records => notes.push(format!(
            "{idx_name}: record at byte {} fails its checksum or does not follow its \
             predecessor; the store ignores it and every record after it ({} in all)",
            INDEX_HEADER_LEN + (records.len() * INDEX_RECORD_LEN) as u64,
            raw_records - records.len() as u64
        )),
        Some(_) => {}
    }
    let on_disk_count = on_disk.as_ref().map_or(0, Vec::len) as u64;

    let model = model_open(
        &data,
        base,
        &header,
        is_last,
        on_disk.unwrap_or_default(),
        window,
    )
    .map_err(io_err)?;
    classify(
        &data_path,
        base,
        is_last,
        &scan,
        &model,
        &mut problems,
        &mut notes,
    );

    let matches_data = idx_present
        && on_disk_count == scan.entries()
        && scan.damages.is_empty()
        && model.dropped.is_empty()
        && model.kept.len() as u64 == on_disk_count
        && model
            .kept
            .iter()
            .enumerate()
            .all(|(i, r)| scan.record(header.first_index + i as u64) == Some(r));
    let index = IndexReport {
        path: idx_path,
        present: idx_present,
        records: on_disk_count,
        matches_data,
    };
    let opened = Opened {
        base,
        file_len: data.len,
        first_index: header.first_index,
        prev_term: header.prev_term,
        next_index: model.stop.is_none().then_some(model.next_index),
        last_term: model.last_term,
    };
    Ok(SegmentInspection {
        report: scan.report(data_path, data.len, base, Some(&header), index),
        problems,
        notes,
        opened: Some(opened),
    })
}

/// Turns one segment's damage, and what opening would do, into problems and notes.
fn classify(
    path: &Path,
    base: u64,
    is_last: bool,
    scan: &FullScan,
    model: &OpenModel,
    problems: &mut Vec<Problem>,
    notes: &mut Vec<String>,
) {
    let name = file_name(path);
    let covered_end = model
        .kept
        .last()
        .map_or(SEGMENT_HEADER_LEN, |r| r.end() - base);
    let stop_consequence = |offset: u64| {
        if is_last {
            Consequence::Truncates {
                dropped_entries: scan.entries_after(base + offset),
            }
        } else {
            Consequence::OpenRefuses
        }
    };
    let stop_class = |c: Consequence| match c {
        Consequence::Truncates { dropped_entries: 0 } => ProblemClass::TornTail,
        _ => ProblemClass::Corrupt,
    };
    // Damage the data scan found.
    for d in &scan.damages {
        let consequence = match model.stop {
            Some(stop) if stop.offset == d.offset => stop_consequence(stop.offset),
            // Opening stopped earlier: in the last segment this damage is cut off with the
            // rest (and counted there); in a sealed one opening fails anyway.
            Some(stop) if stop.offset < d.offset => {
                if is_last {
                    continue;
                }
                Consequence::OpenRefuses
            }
            _ if d.offset < covered_end => Consequence::ReadFails { index: d.index },
            _ => stop_consequence(d.offset),
        };
        problems.push(Problem {
            path: path.to_path_buf(),
            offset: d.offset,
            index: Some(d.index),
            what: d.what,
            class: stop_class(consequence),
            consequence,
        });
    }
    // Where opening stops although the data is whole: the index disagrees with an entry.
    if let Some(stop) = model.stop {
        if !scan.damages.iter().any(|d| d.offset == stop.offset) {
            let consequence = stop_consequence(stop.offset);
            problems.push(Problem {
                path: path.to_path_buf(),
                offset: stop.offset,
                index: Some(stop.index),
                what: stop.what,
                class: stop_class(consequence),
                consequence,
            });
        }
    }
    // Index records the store trusts without checking: each must match a whole entry, or
    // reading that index fails.
    for (i, rec) in model.kept.iter().enumerate() {
        let index = model.first_index + i as u64;
        let offset = rec.position - base;
        match scan.record(index) {
            Some(found) if found == rec => {}
            // Damage at that spot, or opening's own stop there, is reported above.
            _ if scan
                .damages
                .iter()
                .any(|d| d.index == index || d.offset == offset)
                || model.stop.is_some_and(|stop| stop.offset == offset) => {}
            _ => problems.push(Problem {
                path: path.to_path_buf(),
                offset,
                index: Some(index),
                what: Corruption::IndexMismatch,
                class: ProblemClass::Corrupt,
                consequence: Consequence::ReadFails { index },
            }),
        }
    }
    // The last segment's index records that opening drops.
    let past_end: Vec<u64> = model
        .dropped
        .iter()
        .filter(|d| d.record.position >= base + scan.end)
        .map(|d| d.index)
        .collect();
    if let (Some(&first), Some(&last)) = (past_end.iter().min(), past_end.iter().max()) {
        if is_last && scan.damages.is_empty() && model.stop.is_none() {
            // The data ends cleanly, yet the index had recorded more: entries were lost.
            problems.push(Problem {
                path: path.to_path_buf(),
                offset: scan.end,
                index: Some(model.next_index),
                what: Corruption::Torn,
                class: ProblemClass::TornTail,
                consequence: Consequence::Truncates { dropped_entries: 0 },
            });
        }
        notes.push(format!(
            "{name}: the index holds records for indexes {first}..={last} past the last whole \
             entry; opening the store drops them"
        ));
    }
    // File order, which is the order opening meets them in.
    problems.sort_by_key(|p| p.offset);
    let mismatched = model.dropped.len() - past_end.len();
    if mismatched > 0 {
        notes.push(format!(
            "{name}: {mismatched} index records at the end disagree with the data; opening the \
             store drops and rebuilds them"
        ));
    }
    // Entries before any stop that the index lacks: normal after a crash (the index is
    // written after the data and fsynced less often); opening adds them from the data.
    let indexed_to = model.first_index + model.kept.len() as u64;
    let data_to = model.next_index;
    if data_to > indexed_to {
        notes.push(format!(
            "{name}: the index lacks records for indexes {indexed_to}..={}; opening the store \
             adds them from the data",
            data_to - 1
        ));
    }
}

/// A whole entry's record as a scan found it.
struct EntryRun {
    first_index: u64,
    records: Vec<IndexRecord>,
}

/// An entry that failed its checks.
struct Damage {
    offset: u64,
    what: Corruption,
    /// The index the scan expected there.
    index: u64,
}

/// Whole entries found by a scan that skips over damage, and each damage.
struct FullScan {
    runs: Vec<EntryRun>,
    damages: Vec<Damage>,
    kinds: KindCounts,
    /// File offset just past the last whole entry.
    end: u64,
}

impl FullScan {
    fn empty() -> Self {
        Self {
            runs: Vec::new(),
            damages: Vec::new(),
            kinds: KindCounts::default(),
            end: SEGMENT_HEADER_LEN,
        }
    }

    fn entries(&self) -> u64 {
        self.runs.iter().map(|r| r.records.len() as u64).sum()
    }

    fn entries_after(&self, position: u64) -> u64 {
        self.runs
            .iter()
            .flat_map(|r| r.records.iter())
            .filter(|r| r.position > position)
            .count() as u64
    }

    fn record(&self, index: u64) -> Option<&IndexRecord> {
        self.runs.iter().find_map(|run| {
            let i = index.checked_sub(run.first_index)?;
            run.records.get(i as usize)
        })
    }

    fn report(
        &self,
        path: PathBuf,
        file_len: u64,
        base: u64,
        header: Option<&SegmentHeader>,
        index: IndexReport,
    ) -> SegmentReport {
        let mut terms: Vec<TermRun> = Vec::new();
        for run in &self.runs {
            for (i, r) in run.records.iter().enumerate() {
                let index = run.first_index + i as u64;
                match terms.last_mut() {
                    Some(t) if t.term == r.term && t.last + 1 == index => t.last = index,
                    _ => terms.push(TermRun {
                        term: r.term,
                        first: index,
                        last: index,
                    }),
                }
            }
        }
        SegmentReport {
            path,
            file_len,
            base_position: base,
            header_first_index: header.map(|h| h.first_index),
            prev_term: header.and_then(|h| h.prev_term),
            entries: self.entries(),
            first_index: terms.first().map(|t| t.first),
            last_index: terms.last().map(|t| t.last),
            used_bytes: self.end,
            terms,
            kinds: self.kinds,
            index,
        }
    }
}

/// Scans every entry from `offset` (expected to hold `first_index`), skipping each damage to
/// the next whole entry.
fn full_scan(
    data: &SegmentFile,
    base: u64,
    mut offset: u64,
    mut next_index: u64,
    window: usize,
) -> io::Result<FullScan> {
    let mut out = FullScan::empty();
    loop {
        let run = scan_run(data, base, offset, next_index, window, &mut out.kinds)?;
        if !run.records.is_empty() {
            out.end = run.end;
            next_index += run.records.len() as u64;
            out.runs.push(EntryRun {
                first_index: next_index - run.records.len() as u64,
                records: run.records,
            });
        }
        let Some((at, what)) = run.stopped else {
            return Ok(out);
        };
        out.damages.push(Damage {
            offset: at,
            what,
            index: next_index,
        });
        match find_next_entry(data, base, at + 1, next_index, window)? {
            Some((o, index)) => {
                offset = o;
                next_index = index;
            }
            None => return Ok(out),
        }
    }
}

/// What [`scan_run`] found: as [`segment::Scan`], over the whole file.
struct Run {
    records: Vec<IndexRecord>,
    end: u64,
    stopped: Option<(u64, Corruption)>,
}

/// [`segment::scan`] over a file read in windows: the same answer as one scan over the whole
/// file. A stop that depends only on where the window ends (an entry or header cut by it) is
/// retried with the window starting at that entry, grown until the entry fits.
fn scan_run(
    data: &SegmentFile,
    base: u64,
    mut offset: u64,
    mut next_index: u64,
    window: usize,
    kinds: &mut KindCounts,
) -> io::Result<Run> {
    let mut records = Vec::new();
    let mut buf = Vec::new();
    let mut len = window as u64;
    loop {
        let avail = data.len.saturating_sub(offset);
        let want = len.min(avail);
        data.read_into(&mut buf, offset, want)?;
        let s = segment::scan(&buf, base + offset, 0, next_index);
        for r in &s.records {
            let at = (r.position - base - offset) as usize;
            match buf.get(at + 32) {
                Some(0) => kinds.blank += 1,
                Some(2) => kinds.membership += 1,
                _ => kinds.normal += 1,
            }
        }
        let found = s.records.len();
        records.extend_from_slice(&s.records);
        next_index += found as u64;
        let window_start = offset;
        offset += s.end;
        let at_file_end = want == avail;
        let genuine = at_file_end
            || match s.stopped {
                // Zeros where a header belongs: the end of written data.
                None => s.end + ENTRY_HEADER_LEN as u64 <= want,
                Some((_, Corruption::Torn | Corruption::BadSize(_))) => false,
                Some(_) => true,
            };
        if genuine {
            return Ok(Run {
                records,
                end: offset,
                stopped: s.stopped.map(|(at, what)| (window_start + at, what)),
            });
        }
        len = if found > 0 {
            window as u64
        } else {
            // The entry at `offset` does not fit: read at least as much as it claims.
            let claimed = buf
                .get(4..8)
                .and_then(|b| b.try_into().ok())
                .map_or(0, |b| u64::from(u32::from_le_bytes(b)));
            (len * 2).max(claimed)
        };
    }
}

/// The first whole entry at or after file offset `from` whose index is at least `min_index`:
/// a header with the entry magic, a good checksum and its own position, and a good body.
fn find_next_entry(
    data: &SegmentFile,
    base: u64,
    from: u64,
    min_index: u64,
    window: usize,
) -> io::Result<Option<(u64, u64)>> {
    let magic = ENTRY_MAGIC.to_le_bytes();
    let mut buf = Vec::new();
    let mut entry = Vec::new();
    let mut at = from;
    while at < data.len {
        let want = (window as u64).min(data.len - at);
        data.read_into(&mut buf, at, want)?;
        let at_file_end = at + want == data.len;
        // Candidates whose header lies wholly in this window; the next window starts at the
        // first one that does not.
        let limit = buf.len().saturating_sub(ENTRY_HEADER_LEN - 1);
        let mut i = 0;
        while i < limit {
            let Some(p) = buf[i..limit].iter().position(|&b| b == magic[0]) else {
                break;
            };
            i += p;
            if buf[i..i + 4] == magic {
                let offset = at + i as u64;
                let room = data.len - offset;
                if let Ok(Some(h)) = format::decode_entry_header(&buf[i..], room) {
                    if h.position == base + offset && h.index >= min_index {
                        data.read_into(&mut entry, offset, u64::from(h.total_size))?;
                        if segment::check_entry(&entry, 0, base + offset, h.index, None).is_ok() {
                            return Ok(Some((offset, h.index)));
                        }
                    }
                }
            }
            i += 1;
        }
        if at_file_end {
            break;
        }
        at += limit as u64;
    }
    Ok(None)
}

/// A record the store drops from the end of the last segment's index.
struct Dropped {
    index: u64,
    record: IndexRecord,
}

/// Where and why opening stops reading a segment.
#[derive(Clone, Copy)]
struct Stop {
    offset: u64,
    what: Corruption,
    /// The index of the entry there.
    index: u64,
}

/// What `LogStore::open` does with one segment (see `store::open_segment`).
struct OpenModel {
    first_index: u64,
    /// Index records the store keeps from the file, trusting all but the last unchecked.
    kept: Vec<IndexRecord>,
    /// Records dropped from the end of the last segment's index (past the file end, or
    /// pointing at an entry that fails its checks).
    dropped: Vec<Dropped>,
    /// Where opening stops: refuses (sealed segment) or truncates (last segment).
    stop: Option<Stop>,
    /// The index opening would give the next entry after this segment's.
    next_index: u64,
    last_term: Option<u64>,
}

fn model_open(
    data: &SegmentFile,
    base: u64,
    header: &SegmentHeader,
    is_last: bool,
    mut kept: Vec<IndexRecord>,
    window: usize,
) -> io::Result<OpenModel> {
    let first_index = header.first_index;
    let mut dropped = Vec::new();
    let mut pop = |kept: &mut Vec<IndexRecord>| {
        if let Some(record) = kept.pop() {
            dropped.push(Dropped {
                index: first_index + kept.len() as u64,
                record,
            });
        }
    };
    while kept.last().is_some_and(|r| r.end() > base + data.len) {
        pop(&mut kept);
    }
    let mut stop = None;
    while let Some(&rec) = kept.last() {
        let index = first_index + kept.len() as u64 - 1;
        match check_entry_at(data, base, rec.position - base, index, &rec)? {
            Ok(()) => break,
            Err(_) if is_last => pop(&mut kept),
            Err(what) => {
                stop = Some(Stop {
                    offset: rec.position - base,
                    what,
                    index,
                });
                break;
            }
        }
    }
    let mut next_index = first_index + kept.len() as u64;
    let mut last_term = kept.last().map(|r| r.term);
    if stop.is_none() {
        let from = kept.last().map_or(SEGMENT_HEADER_LEN, |r| r.end() - base);
        let mut kinds = KindCounts::default();
        let run = scan_run(data, base, from, next_index, window, &mut kinds)?;
        next_index += run.records.len() as u64;
        last_term = run.records.last().map(|r| r.term).or(last_term);
        stop = run.stopped.map(|(offset, what)| Stop {
            offset,
            what,
            index: next_index,
        });
    }
    Ok(OpenModel {
        first_index,
        kept,
        dropped,
        stop,
        next_index,
        last_term: last_term.or(header.prev_term),
    })
}

/// The store's check of an index record against its entry.
fn check_entry_at(
    data: &SegmentFile,
    base: u64,
    offset: u64,
    index: u64,
    rec: &IndexRecord,
) -> io::Result<std::result::Result<(), Corruption>> {
    // Read as much as either the record or the entry's header claims, so a size
    // disagreement is reported as the store reports it.
    let avail = data.len.saturating_sub(offset);
    let mut head = Vec::new();
    data.read_into(&mut head, offset, (ENTRY_HEADER_LEN as u64).min(avail))?;
    let claimed = head
        .get(4..8)
        .and_then(|b| b.try_into().ok())
        .map_or(0, |b| u64::from(u32::from_le_bytes(b)));
    let want = claimed.max(u64::from(rec.size)).min(avail);
    let mut bytes = Vec::new();
    data.read_into(&mut bytes, offset, want)?;
    Ok(segment::check_entry(&bytes, 0, base + offset, index, Some(rec)).map(|_| ()))
}

/// A segment file opened for reading, with its length at open.
struct SegmentFile {
    file: File,
    len: u64,
}

impl SegmentFile {
    fn open(path: &Path) -> io::Result<Self> {
        let file = File::open(path)?;
        let len = file.metadata()?.len();
        Ok(Self { file, len })
    }

    /// Fills `buf` with the `len` bytes at `offset` (fewer at the end of the file).
    fn read_into(&self, buf: &mut Vec<u8>, offset: u64, len: u64) -> io::Result<()> {
        let len = len.min(self.len.saturating_sub(offset)) as usize;
        buf.resize(len, 0);
        self.file.read_exact_at(buf, offset)
    }
}

fn read_only() -> io::Error {
    io::Error::new(
        io::ErrorKind::PermissionDenied,
        "the inspector opens the store read-only",
    )
}

/// A [`FileSystem`] that can only read: the store's own readers (metadata, index) run on it
/// without any chance of repairing what they find.
#[derive(Debug, Default, Clone, Copy)]
pub struct ReadOnlyFs;

/// A file opened read-only.
struct ReadOnlyFile(File);

impl ReadOnlyFile {
    fn open(path: &Path) -> io::Result<Self> {
        OpenOptions::new().read(true).open(path).map(Self)
    }
}

impl LogFile for ReadOnlyFile {
    fn write_all_at(&self, _buf: &[u8], _offset: u64) -> io::Result<()> {
        Err(read_only())
    }

    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        self.0.read_exact_at(buf, offset)
    }

    fn sync_data(&self) -> io::Result<()> {
        Err(read_only())
    }

    fn set_len(&self, _len: u64) -> io::Result<()> {
        Err(read_only())
    }

    fn len(&self) -> io::Result<u64> {
        Ok(self.0.metadata()?.len())
    }

    fn map(&self, _len: u64) -> io::Result<Mmap> {
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "the inspector reads with pread, not mappings",
        ))
    }
}

impl FileSystem for ReadOnlyFs {
    fn open(&self, path: &Path, create: bool) -> io::Result<Arc<dyn LogFile>> {
        if create && !path.exists() {
            return Err(read_only());
        }
        Ok(Arc::new(ReadOnlyFile::open(path)?))
    }

    fn remove(&self, _path: &Path) -> io::Result<()> {
        Err(read_only())
    }

    fn rename(&self, _from: &Path, _to: &Path) -> io::Result<()> {
        Err(read_only())
    }

    fn sync_dir(&self, _dir: &Path) -> io::Result<()> {
        Err(read_only())
    }

    fn create_dir_all(&self, _dir: &Path) -> io::Result<()> {
        Err(read_only())
    }

    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        StdFs.list(dir)
    }

    fn exists(&self, path: &Path) -> bool {
        StdFs.exists(path)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::os::unix::fs::FileExt;

    use super::*;
    use crate::{EntryKind, FlushMode, LogConfig, LogId, LogStore, NewEntry};

    const SEGMENT: u64 = 4096;

    fn config(dir: &Path) -> LogConfig {
        LogConfig::new(dir)
            .segment_size(SEGMENT)
            .flush(FlushMode::Sync)
    }

    /// A closed store holding `1..=last`, term `1 + index / 25`, a blank entry at each term
    /// start; returns every entry's global position.
    fn build(dir: &Path, last: u64) -> Vec<u64> {
        let store = LogStore::open(config(dir)).unwrap();
        let mut positions = Vec::new();
        for index in 1..=last {
            let body = vec![index as u8; 100 + (index % 7) as usize];
            let kind = if index % 25 == 0 {
                EntryKind::Blank
            } else {
                EntryKind::Normal
            };
            store
                .append(&[NewEntry {
                    index,
                    term: 1 + index / 25,
                    kind,
                    body: &body,
                }])
                .unwrap();
            positions.push(store.read(index).unwrap().position);
        }
        store.close().unwrap();
        positions
    }

    fn segment_of(dir: &Path, position: u64) -> (PathBuf, u64) {
        let report = inspect(dir).unwrap();
        let seg = report
            .segments
            .iter()
            .rev()
            .find(|s| s.base_position <= position)
            .unwrap();
        (seg.path.clone(), seg.base_position)
    }

    fn flip(path: &Path, offset: u64) {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .unwrap();
        let mut b = [0u8; 1];
        file.read_exact_at(&mut b, offset).unwrap();
        b[0] ^= 0x20;
        file.write_all_at(&b, offset).unwrap();
    }

    fn snapshot(dir: &Path) -> BTreeMap<String, Vec<u8>> {
        std::fs::read_dir(dir)
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                (
                    e.file_name().into_string().unwrap(),
                    std::fs::read(e.path()).unwrap(),
                )
            })
            .collect()
    }

    fn entry_len(index: u64) -> u64 {
        48 + 100 + index % 7
    }

    #[test]
    fn healthy_store_is_described_the_same_through_any_window() {
        let dir = tempfile::tempdir().unwrap();
        build(dir.path(), 100);
        let report = inspect(dir.path()).unwrap();
        assert!(report.is_healthy(), "{report}");
        assert_eq!(
            (report.first_index, report.last_index, report.entries),
            (Some(1), Some(100), 100)
        );
        assert!(report.segments.len() >= 3, "{report}");
        assert!(report
            .segments
            .iter()
            .all(|s| s.index.present && s.index.matches_data));
        let kinds = report
            .segments
            .iter()
            .fold(KindCounts::default(), |a, s| KindCounts {
                blank: a.blank + s.kinds.blank,
                normal: a.normal + s.kinds.normal,
                membership: a.membership + s.kinds.membership,
            });
        assert_eq!((kinds.blank, kinds.normal, kinds.membership), (4, 96, 0));
        let runs: Vec<TermRun> = report
            .segments
            .iter()
            .flat_map(|s| s.terms.clone())
            .collect();
        assert_eq!(runs.first().map(|r| (r.term, r.first)), Some((1, 1)));
        assert!(runs.iter().any(|r| r.term == 2 && r.first == 25));
        for window in [96, 97, 200, 1000, 5000] {
            let small = inspect_with(dir.path(), window).unwrap();
            assert!(small.is_healthy(), "window {window}: {small}");
            let a: Vec<_> = small
                .segments
                .iter()
                .map(|s| (s.entries, s.used_bytes, s.terms.clone(), s.kinds))
                .collect();
            let b: Vec<_> = report
                .segments
                .iter()
                .map(|s| (s.entries, s.used_bytes, s.terms.clone(), s.kinds))
                .collect();
            assert_eq!(a, b, "window {window}");
        }
        assert_eq!(report.in_use, Some(false));
        let store = LogStore::open(config(dir.path())).unwrap();
        assert_eq!(inspect(dir.path()).unwrap().in_use, Some(true));
        drop(store);
        let text = report.to_string();
        assert!(text.contains("problems: none"), "{text}");
        assert!(text.contains("term 1: 1..=24"), "{text}");
    }

    #[test]
    fn flipped_byte_in_a_sealed_segment_is_corruption_that_reads_report() {
        let dir = tempfile::tempdir().unwrap();
        let positions = build(dir.path(), 100);
        let position = positions[4]; // index 5, in the first (sealed) segment
        let (path, base) = segment_of(dir.path(), position);
        flip(&path, position - base + 48 + 10);
        let before = snapshot(dir.path());
        let report = inspect_with(dir.path(), 300).unwrap();
        assert_eq!(before, snapshot(dir.path()), "inspection changed a file");
        let p = report.first_problem().unwrap();
        assert_eq!((&p.path, p.offset), (&path, position - base), "{report}");
        assert_eq!(p.what, Corruption::BodyCrc);
        assert_eq!(p.class, ProblemClass::Corrupt);
        assert_eq!(p.consequence, Consequence::ReadFails { index: 5 });
        assert_eq!(report.problems.len(), 1, "{report}");
        // Entries after the damage are still found.
        assert_eq!(report.entries, 99);
        // The store agrees: it opens, and reading index 5 fails at that place.
        let store = LogStore::open(config(dir.path())).unwrap();
        match store.read(5) {
            Err(Error::Corrupt {
                path: p,
                offset,
                what,
            }) => {
                assert_eq!(
                    (p, offset, what),
                    (path, position - base, Corruption::BodyCrc)
                )
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn damaged_last_entry_of_a_sealed_segment_makes_opening_fail() {
        let dir = tempfile::tempdir().unwrap();
        build(dir.path(), 100);
        let report = inspect(dir.path()).unwrap();
        let first = &report.segments[0];
        let last_index = first.last_index.unwrap();
        let store = LogStore::open(config(dir.path())).unwrap();
        let position = store.read(last_index).unwrap().position;
        store.close().unwrap();
        flip(&first.path, position + 60);
        let report = inspect(dir.path()).unwrap();
        let p = report.first_problem().unwrap();
        assert_eq!(
            (p.offset, p.consequence),
            (position, Consequence::OpenRefuses),
            "{report}"
        );
        match LogStore::open(config(dir.path())) {
            Err(Error::Corrupt { path, offset, .. }) => {
                assert_eq!((path, offset), (first.path.clone(), position))
            }
            other => panic!("{:?}", other.map(|_| ())),
        }
    }

    #[test]
    fn torn_tail_is_what_opening_truncates() {
        let dir = tempfile::tempdir().unwrap();
        let positions = build(dir.path(), 100);
        let position = positions[99];
        let (path, base) = segment_of(dir.path(), position);
        // The second half of the last entry never reached the disk.
        let file = OpenOptions::new().write(true).open(&path).unwrap();
        let half = position - base + entry_len(100) / 2;
        file.write_all_at(&vec![0u8; (entry_len(100) / 2) as usize + 1], half)
            .unwrap();
        let report = inspect(dir.path()).unwrap();
        let p = report.first_problem().unwrap();
        assert_eq!((&p.path, p.offset), (&path, position - base), "{report}");
        assert!(p.is_torn_tail());
        assert_eq!(p.consequence, Consequence::Truncates { dropped_entries: 0 });
        assert!(p.to_string().contains("torn tail"), "{p}");
        assert_eq!(report.last_index, Some(99));
        let store = LogStore::open(config(dir.path())).unwrap();
        assert_eq!(store.last_log_id().map(|l| l.index), Some(99));
    }

    #[test]
    fn damage_in_the_last_segment_past_its_index_drops_whole_entries() {
        let dir = tempfile::tempdir().unwrap();
        let positions = build(dir.path(), 100);
        let (path, base) = segment_of(dir.path(), positions[99]);
        let first_in_last = (1..=100u64)
            .find(|&i| positions[i as usize - 1] >= base)
            .unwrap();
        // Damage the last segment's first entry and lose its index (as after a power cut).
        flip(&path, positions[first_in_last as usize - 1] - base + 50);
        std::fs::remove_file(path.with_extension("idx")).unwrap();
        let report = inspect(dir.path()).unwrap();
        let p = report.first_problem().unwrap();
        let dropped = 100 - first_in_last;
        assert_eq!(
            (p.class, p.consequence),
            (
                ProblemClass::Corrupt,
                Consequence::Truncates {
                    dropped_entries: dropped
                }
            ),
            "{report}"
        );
        assert!(
            report.notes.iter().any(|n| n.contains("missing")),
            "{report}"
        );
        // What the store does: it keeps only what precedes the damage.
        let store = LogStore::open(config(dir.path())).unwrap();
        assert_eq!(
            store.last_log_id().map(|l| l.index),
            Some(first_in_last - 1)
        );
    }

    #[test]
    fn last_segment_with_a_damaged_header_in_front_of_entries_refuses_to_open() {
        let dir = tempfile::tempdir().unwrap();
        let positions = build(dir.path(), 100);
        let (path, base) = segment_of(dir.path(), positions[99]);
        flip(&path, 30);
        let report = inspect(dir.path()).unwrap();
        let p = report.first_problem().unwrap();
        let in_last = positions.iter().filter(|&&p| p >= base).count() as u64;
        assert_eq!(
            (&p.path, p.offset, p.what),
            (&path, 0, Corruption::HeaderCrc)
        );
        assert_eq!(
            (p.class, p.consequence),
            (ProblemClass::Corrupt, Consequence::OpenRefuses),
            "{report}"
        );
        assert!(in_last > 0);
        assert!(LogStore::open(config(dir.path())).is_err());
    }

    #[test]
    fn stale_index_is_a_note_and_index_records_past_the_data_a_torn_tail() {
        let dir = tempfile::tempdir().unwrap();
        let positions = build(dir.path(), 100);
        let (path, base) = segment_of(dir.path(), positions[99]);
        let idx = path.with_extension("idx");
        let len = std::fs::metadata(&idx).unwrap().len();
        let file = OpenOptions::new().write(true).open(&idx).unwrap();
        file.set_len(len - 2 * INDEX_RECORD_LEN as u64).unwrap();
        let report = inspect(dir.path()).unwrap();
        assert!(report.is_healthy(), "{report}");
        assert!(
            report
                .notes
                .iter()
                .any(|n| n.contains("lacks records for indexes 99..=100")),
            "{report}"
        );

        // The index is whole but the data lost its last entry: the data ends cleanly at zeros.
        let dir = tempfile::tempdir().unwrap();
        let positions = build(dir.path(), 100);
        let file = OpenOptions::new()
            .write(true)
            .open(path_in(dir.path(), &path))
            .unwrap();
        file.write_all_at(&vec![0u8; entry_len(100) as usize], positions[99] - base)
            .unwrap();
        let report = inspect(dir.path()).unwrap();
        let p = report.first_problem().unwrap();
        assert!(p.is_torn_tail(), "{report}");
        assert_eq!(p.offset, positions[99] - base);
        assert!(
            report.notes.iter().any(|n| n.contains("100..=100")),
            "{report}"
        );
    }

    fn path_in(dir: &Path, like: &Path) -> PathBuf {
        dir.join(like.file_name().unwrap())
    }

    #[test]
    fn a_gap_between_segments_is_a_purge_only_when_the_purge_point_covers_it() {
        let dir = tempfile::tempdir().unwrap();
        build(dir.path(), 100);
        let report = inspect(dir.path()).unwrap();
        assert!(report.segments.len() >= 3, "{report}");
        let lost = report.segments[1].path.clone();
        std::fs::remove_file(&lost).unwrap();
        let report = inspect(dir.path()).unwrap();
        let problem = report.first_problem().expect("a lost segment is a problem");
        assert!(
            matches!(problem.what, Corruption::WrongIndex { .. })
                && problem.consequence == Consequence::OpenRefuses,
            "{report}"
        );
        assert!(LogStore::open(config(dir.path())).is_err());

        // A purge point at or past the gap: the purge that left it was interrupted.
        let third_first = report.segments[1].header_first_index.unwrap();
        MetaFiles::new(Arc::new(StdFs), dir.path())
            .store(
                "purged",
                &[2u64.to_le_bytes(), (third_first - 1).to_le_bytes()].concat(),
            )
            .unwrap();
        let report = inspect(dir.path()).unwrap();
        assert!(report.is_healthy(), "{report}");
        assert!(
            report.notes.iter().any(|n| n.contains("interrupted")),
            "{report}"
        );
        let store = LogStore::open(config(dir.path())).unwrap();
        assert_eq!(store.first_index(), Some(third_first));
    }

    #[test]
    fn metadata_is_reported_and_purge_point_decoded() {
        let dir = tempfile::tempdir().unwrap();
        build(dir.path(), 100);
        let store = LogStore::open(config(dir.path())).unwrap();
        store.purge_up_to(LogId { term: 2, index: 40 }).unwrap();
        store.meta().store("vote", b"\x01\x02").unwrap();
        store.close().unwrap();
        let report = inspect(dir.path()).unwrap();
        assert!(report.is_healthy(), "{report}");
        assert_eq!(report.purged, Some(PurgePoint { term: 2, index: 40 }));
        assert_eq!(report.first_index, Some(41));
        let vote = report.meta.iter().find(|m| m.name == "vote").unwrap();
        assert_eq!(vote.payload_hex.as_deref(), Some("0102"));
        assert!(
            !report
                .meta
                .iter()
                .find(|m| m.name == "committed")
                .unwrap()
                .present
        );

        let purged = dir.path().join("purged.meta");
        flip(&purged, 20);
        let report = inspect(dir.path()).unwrap();
        let p = report.first_problem().unwrap();
        assert_eq!(
            (&p.path, p.consequence),
            (&purged, Consequence::OpenRefuses)
        );
    }

    /// Damage applied to a copy of a healthy store; offsets are reduced modulo what fits.
    #[derive(Debug, Clone)]
    enum Harm {
        /// Flip a byte of a segment, anywhere up to just past its used bytes.
        FlipData { segment: usize, at: u64 },
        /// Zeros from a point of the last segment's used bytes on (pages never written).
        ZeroTail { at: u64 },
        /// The last segment's file ends early (a crash during an extending write).
        CutTail { at: u64 },
        /// Flip a byte of an index file.
        FlipIndex { segment: usize, at: u64 },
        /// An index file is gone.
        RemoveIndex { segment: usize },
    }

    fn harm_strategy() -> impl proptest::strategy::Strategy<Value = Vec<Harm>> {
        use proptest::prelude::*;
        let one = prop_oneof![
            (0..8usize, any::<u64>()).prop_map(|(segment, at)| Harm::FlipData { segment, at }),
            any::<u64>().prop_map(|at| Harm::ZeroTail { at }),
            any::<u64>().prop_map(|at| Harm::CutTail { at }),
            (0..8usize, any::<u64>()).prop_map(|(segment, at)| Harm::FlipIndex { segment, at }),
            (0..8usize).prop_map(|segment| Harm::RemoveIndex { segment }),
        ];
        proptest::collection::vec(one, 1..3)
    }

    fn apply(segments: &[SegmentReport], harm: &Harm) {
        let pick = |i: usize| &segments[i % segments.len()];
        let last = &segments[segments.len() - 1];
        match *harm {
            Harm::FlipData { segment, at } => {
                let s = pick(segment);
                let len = std::fs::metadata(&s.path).unwrap().len();
                flip(
                    &s.path,
                    at % (s.used_bytes + ENTRY_HEADER_LEN as u64).min(len),
                );
            }
            Harm::ZeroTail { at } => {
                let end = last
                    .used_bytes
                    .min(std::fs::metadata(&last.path).unwrap().len());
                let from = SEGMENT_HEADER_LEN + at % (end - SEGMENT_HEADER_LEN).max(1);
                let file = OpenOptions::new().write(true).open(&last.path).unwrap();
                let zeros = vec![0u8; end.saturating_sub(from) as usize];
                file.write_all_at(&zeros, from).unwrap();
            }
            Harm::CutTail { at } => {
                let to = SEGMENT_HEADER_LEN + at % (last.used_bytes - SEGMENT_HEADER_LEN);
                let file = OpenOptions::new().write(true).open(&last.path).unwrap();
                file.set_len(to).unwrap();
            }
            Harm::FlipIndex { segment, at } => {
                let idx = &pick(segment).index.path;
                if let Ok(meta) = std::fs::metadata(idx) {
                    flip(idx, at % meta.len());
                }
            }
            Harm::RemoveIndex { segment } => {
                let _ = std::fs::remove_file(&pick(segment).index.path);
            }
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]

        /// Whatever the damage, what the inspector says opening does is what opening does:
        /// it refuses at the first problem said to make it refuse (same file and offset), or
        /// it keeps exactly the entries predicted, and exactly the predicted reads fail.
        #[test]
        fn inspector_predicts_what_opening_does(harms in harm_strategy()) {
            let dir = tempfile::tempdir().unwrap();
            build(dir.path(), 100);
            let healthy = inspect(dir.path()).unwrap();
            for harm in &harms {
                apply(&healthy.segments, harm);
            }
            let before = snapshot(dir.path());
            let report = inspect_with(dir.path(), 200).unwrap();
            assert_eq!(before, snapshot(dir.path()), "inspection changed a file");
            let refusal = report
                .problems
                .iter()
                .find(|p| p.consequence == Consequence::OpenRefuses);
            match (refusal, LogStore::open(config(dir.path()))) {
                (Some(p), Err(Error::Corrupt { path, offset, what })) => {
                    assert_eq!((&path, offset, what), (&p.path, p.offset, p.what), "{report}");
                }
                (Some(p), other) => {
                    panic!("predicted a refusal ({p}), got {:?}\n{report}", other.map(|_| ()))
                }
                (None, Err(e)) => panic!("store refused: {e}\n{report}"),
                (None, Ok(store)) => {
                    let mut expected_last = report.last_index;
                    for p in &report.problems {
                        match p.consequence {
                            Consequence::Truncates { .. } => {
                                expected_last = p.index.map(|i| i - 1);
                            }
                            Consequence::DeletesSegment { .. } => {
                                let n = report.segments.len();
                                expected_last = report.segments[..n - 1]
                                    .iter()
                                    .rev()
                                    .find_map(|s| s.last_index);
                            }
                            _ => {}
                        }
                    }
                    let last = store.last_log_id().map(|l| l.index);
                    assert_eq!(last, expected_last, "{report}");
                    let fails: Vec<u64> = report
                        .problems
                        .iter()
                        .filter_map(|p| match p.consequence {
                            Consequence::ReadFails { index } => Some(index),
                            _ => None,
                        })
                        .collect();
                    for index in 1..=last.unwrap_or(0) {
                        assert_eq!(
                            store.read(index).is_err(),
                            fails.contains(&index),
                            "read {index}\n{report}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn read_only_fs_refuses_every_change() {
        let dir = tempfile::tempdir().unwrap();
        build(dir.path(), 10);
        let fs = ReadOnlyFs;
        let name = format::segment_file_name(0);
        let path = dir.path().join(&name);
        let file = fs.open(&path, true).unwrap();
        assert!(file.write_all_at(b"x", 0).is_err());
        assert!(file.set_len(0).is_err());
        assert!(file.sync_data().is_err());
        assert!(fs.open(&dir.path().join("new"), true).is_err());
        assert!(fs.remove(&path).is_err());
        assert!(fs.rename(&path, &dir.path().join("x")).is_err());
        assert!(fs.list(dir.path()).unwrap().contains(&name));
    }
}
