//! One segment: a data file of fixed size holding consecutive entries, and its index file.
//!
//! Data is written with `pwrite` and read through a read-only shared mapping of the whole
//! file, so reads by position hand out the page cache's bytes without copying. Writing with
//! `pwrite` rather than through the mapping keeps IO errors (a full disk) as error codes
//! instead of `SIGBUS`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::error::{Corruption, Error, Result};
use crate::format::{
    self, EntryHeader, IndexRecord, SegmentHeader, ENTRY_HEADER_LEN, INDEX_HEADER_LEN,
    INDEX_RECORD_LEN, SEGMENT_HEADER_LEN,
};
use crate::fs::{FileSystem, LogFile, Mmap};

/// An open segment and the in-memory copy of its index.
pub(crate) struct Segment {
    pub header: SegmentHeader,
    /// Length of the data file; entries never cross it.
    pub size: u64,
    pub data_path: PathBuf,
    pub idx_path: PathBuf,
    pub data: Arc<dyn LogFile>,
    pub idx: Arc<dyn LogFile>,
    pub map: Arc<Mmap>,
    /// `records[i]` locates Raft index `header.first_index + i`.
    pub records: Vec<IndexRecord>,
    /// File offset where the next entry goes.
    pub write_offset: u64,
}

impl Segment {
    pub fn base(&self) -> u64 {
        self.header.base_position
    }

    pub fn first_index(&self) -> u64 {
        self.header.first_index
    }

    /// The index the next entry appended here would carry.
    pub fn next_index(&self) -> u64 {
        self.header.first_index + self.records.len() as u64
    }

    pub fn last_index(&self) -> Option<u64> {
        (!self.records.is_empty()).then(|| self.next_index() - 1)
    }

    /// Global position just past the last entry.
    pub fn end_position(&self) -> u64 {
        self.base() + self.write_offset
    }

    pub fn record(&self, index: u64) -> Option<&IndexRecord> {
        let i = index.checked_sub(self.header.first_index)?;
        self.records.get(i as usize)
    }

    /// Term of the entry at `index`, or of the entry before the segment for `first - 1`.
    pub fn term_of(&self, index: u64) -> Option<u64> {
        if index.checked_add(1) == Some(self.header.first_index) {
            return self.header.prev_term;
        }
        self.record(index).map(|r| r.term)
    }

    /// Creates an empty segment and makes its header durable before any entry can land in it,
    /// so that a segment with entries always has a readable header.
    pub fn create(
        fs: &dyn FileSystem,
        dir: &Path,
        header: SegmentHeader,
        size: u64,
    ) -> Result<Segment> {
        let data_path = dir.join(format::segment_file_name(header.base_position));
        let idx_path = dir.join(format::index_file_name(header.base_position));
        let data = fs
            .open(&data_path, true)
            .map_err(|e| Error::io("create", &data_path, e))?;
        let created = (|| {
            data.set_len(0)?;
            data.write_all_at(&header.encode(), 0)?;
            data.set_len(size)?;
            data.sync_data()
        })();
        if let Err(e) = created {
            // Leave no half-made segment behind: recovery would only have to delete it.
            let _ = fs.remove(&data_path);
            return Err(Error::io("create", &data_path, e));
        }
        let idx = fs
            .open(&idx_path, true)
            .map_err(|e| Error::io("create", &idx_path, e))?;
        idx.set_len(0)
            .and_then(|()| {
                idx.write_all_at(
                    &format::encode_index_header(header.base_position, header.first_index),
                    0,
                )
            })
            .map_err(|e| Error::io("write", &idx_path, e))?;
        fs.sync_dir(dir)
            .map_err(|e| Error::io("fsync dir", dir, e))?;
        let map = data
            .map(size)
            .map_err(|e| Error::io("mmap", &data_path, e))?;
        Ok(Segment {
            header,
            size,
            data_path,
            idx_path,
            data,
            idx,
            map: Arc::new(map),
            records: Vec::new(),
            write_offset: SEGMENT_HEADER_LEN,
        })
    }

    /// Appends encoded entries (`buf`, starting at `write_offset`) and their index records.
    pub fn append(&mut self, buf: &[u8], records: &[IndexRecord], idx_buf: &[u8]) -> Result<()> {
        self.data
            .write_all_at(buf, self.write_offset)
            .map_err(|e| Error::io("write", &self.data_path, e))?;
        let idx_at = INDEX_HEADER_LEN + (self.records.len() * INDEX_RECORD_LEN) as u64;
        self.idx
            .write_all_at(idx_buf, idx_at)
            .map_err(|e| Error::io("write", &self.idx_path, e))?;
        self.write_offset += buf.len() as u64;
        self.records.extend_from_slice(records);
        Ok(())
    }

    /// Keeps the first `keep` entries and zero-fills what followed them, so no stale entry
    /// can ever be mistaken for a new one by a later recovery.
    pub fn truncate_to(&mut self, keep: usize) -> Result<()> {
        if keep >= self.records.len() {
            return Ok(());
        }
        let new_end = self.records[keep].position - self.base();
        let zeros = vec![0u8; 64 * 1024];
        let mut at = new_end;
        while at < self.write_offset {
            let n = (self.write_offset - at).min(zeros.len() as u64) as usize;
            self.data
                .write_all_at(&zeros[..n], at)
                .map_err(|e| Error::io("write", &self.data_path, e))?;
            at += n as u64;
        }
        self.idx
            .set_len(INDEX_HEADER_LEN + (keep * INDEX_RECORD_LEN) as u64)
            .map_err(|e| Error::io("truncate", &self.idx_path, e))?;
        self.records.truncate(keep);
        self.write_offset = new_end;
        Ok(())
    }

    /// Makes data and index durable.
    pub fn sync(&self) -> Result<()> {
        self.data
            .sync_data()
            .map_err(|e| Error::io("fsync", &self.data_path, e))?;
        self.idx
            .sync_data()
            .map_err(|e| Error::io("fsync", &self.idx_path, e))
    }
}

/// Checks the entry at file offset `offset` of a segment's bytes; returns its header and the
/// offset of its body.
pub(crate) fn check_entry(
    bytes: &[u8],
    offset: u64,
    base: u64,
    expected_index: u64,
    rec: Option<&IndexRecord>,
) -> std::result::Result<(EntryHeader, usize), Corruption> {
    let start = offset as usize;
    let room = (bytes.len() as u64).saturating_sub(offset);
    let header = format::decode_entry_header(bytes.get(start..).unwrap_or(&[]), room)?
        .ok_or(Corruption::Torn)?;
    if header.index != expected_index {
        return Err(Corruption::WrongIndex {
            expected: expected_index,
            found: header.index,
        });
    }
    if header.index == u64::MAX {
        return Err(Corruption::IndexOverflow(header.index));
    }
    if header.position != base + offset {
        return Err(Corruption::WrongPosition {
            expected: base + offset,
            found: header.position,
        });
    }
    if let Some(rec) = rec {
        if rec.term != header.term || rec.size != header.total_size {
            return Err(Corruption::IndexMismatch);
        }
    }
    let body_at = start + ENTRY_HEADER_LEN;
    format::check_body(&header, &bytes[body_at..start + header.total_size as usize])?;
    Ok((header, body_at))
}

/// What a forward scan of a segment's entries found.
#[derive(Debug)]
pub(crate) struct Scan {
    /// Records of the whole entries found, in order.
    pub records: Vec<IndexRecord>,
    /// File offset just past the last whole entry.
    pub end: u64,
    /// Why the scan stopped early, and where; `None` when it reached zeros or the file end.
    pub stopped: Option<(u64, Corruption)>,
}

/// Scans entries from file offset `offset`, expecting Raft index `next_index` first.
pub(crate) fn scan(bytes: &[u8], base: u64, mut offset: u64, mut next_index: u64) -> Scan {
    let mut records = Vec::new();
    loop {
        let room = (bytes.len() as u64).saturating_sub(offset);
        if room < ENTRY_HEADER_LEN as u64 {
            // Too little room for a header: only zeros may follow.
            let tail = &bytes[offset as usize..];
            let stopped = (!tail.iter().all(|&b| b == 0)).then_some((offset, Corruption::Torn));
            return Scan {
                records,
                end: offset,
                stopped,
            };
        }
        match format::decode_entry_header(&bytes[offset as usize..], room) {
            Ok(None) => {
                return Scan {
                    records,
                    end: offset,
                    stopped: None,
                }
            }
            Err(what) => {
                return Scan {
                    records,
                    end: offset,
                    stopped: Some((offset, what)),
                }
            }
            Ok(Some(_)) => {}
        }
        match check_entry(bytes, offset, base, next_index, None) {
            Ok((h, _)) => {
                records.push(IndexRecord {
                    position: base + offset,
                    term: h.term,
                    size: h.total_size,
                });
                offset += u64::from(h.total_size);
                next_index += 1;
            }
            Err(what) => {
                return Scan {
                    records,
                    end: offset,
                    stopped: Some((offset, what)),
                }
            }
        }
    }
}

/// Reads an index file's records: stops at the first record that is torn, fails its
/// checksum, does not follow its predecessor in the data file, or would stand for index
/// `u64::MAX` (which no entry has).
pub(crate) fn read_index(
    idx: &dyn LogFile,
    base: u64,
    first_index: u64,
) -> std::io::Result<Option<Vec<IndexRecord>>> {
    let len = idx.len()?;
    if len < INDEX_HEADER_LEN {
        return Ok(None);
    }
    let mut buf = vec![0u8; len as usize];
    idx.read_exact_at(&mut buf, 0)?;
    match format::decode_index_header(&buf) {
        Ok((b, f)) if b == base && f == first_index => {}
        _ => return Ok(None),
    }
    let mut records =
        Vec::with_capacity((buf.len() - INDEX_HEADER_LEN as usize) / INDEX_RECORD_LEN);
    let mut expected_position = base + SEGMENT_HEADER_LEN;
    let room = u64::MAX - first_index;
    for chunk in buf[INDEX_HEADER_LEN as usize..].chunks_exact(INDEX_RECORD_LEN) {
        if records.len() as u64 >= room {
            break;
        }
        match IndexRecord::decode(chunk) {
            Some(r) if r.position == expected_position && r.size as usize >= ENTRY_HEADER_LEN => {
                expected_position = r.end();
                records.push(r);
            }
            _ => break,
        }
    }
    Ok(Some(records))
}
