//! Byte layouts of everything the store writes. All integers are little-endian.
//!
//! Segment file `{base_position:020}.log`:
//! ```text
//! +--------------------------- segment header, 64 bytes ----------------------------+
//! | magic "RMQLOG\0\1" 8 | version u32 | header_len u32 | base_position u64          |
//! | first_index u64 | prev_term u64 | flags u32 (bit 0: has_prev) | reserved 16 | crc u32 |
//! +----------------------------------------------------------------------------------+
//! | entry | entry | ... | zeros up to the segment size                              |
//! ```
//! `first_index` is the Raft index the segment's first entry will carry and `prev_term` the
//! term of the entry just before it (when `has_prev`: the log did not begin here), so the log
//! id of the last purged entry survives the deletion of older segments.
//!
//! Entry, a 48-byte header followed by the body:
//! ```text
//!  0 magic u32 "RMQE" | 4 total_size u32 (header + body) | 8 index u64 | 16 term u64
//! 24 position u64 (global byte position of this header) | 32 kind u8 | 33 reserved 3
//! 36 body_crc u32 (CRC32 of the body) | 40 reserved u32 | 44 header_crc u32 (of bytes 0..44)
//! ```
//! A zero magic marks the end of written data: segments are sparse files of their full size
//! and truncation zero-fills, so stale bytes never follow the last entry.
//!
//! Index file `{base_position:020}.idx`, derived from the segment and rebuilt from it when
//! damaged:
//! ```text
//! magic "RMQIDX\0\1" 8 | version u32 | reserved u32 | base_position u64 | first_index u64
//! then one 24-byte record per entry, in index order:
//!   position u64 | term u64 | size u32 | record_crc u32 (of the 20 bytes before it)
//! ```

use crate::error::Corruption;

/// Format version written in every file header.
pub const FORMAT_VERSION: u32 = 1;

pub const SEGMENT_MAGIC: [u8; 8] = *b"RMQLOG\0\x01";
pub const SEGMENT_HEADER_LEN: u64 = 64;

pub const ENTRY_MAGIC: u32 = u32::from_le_bytes(*b"RMQE");
pub const ENTRY_HEADER_LEN: usize = 48;

pub const INDEX_MAGIC: [u8; 8] = *b"RMQIDX\0\x01";
pub const INDEX_HEADER_LEN: u64 = 32;
pub const INDEX_RECORD_LEN: usize = 24;

/// What a Raft entry carries. The store keeps the kind so that an inspector (and a future
/// witness, which stores no bodies) can tell entries apart without decoding bodies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum EntryKind {
    /// A leader's no-op entry at the start of its term.
    Blank = 0,
    /// Application data (for the broker: messages, topic configs, consumer offsets).
    Normal = 1,
    /// A Raft membership change.
    Membership = 2,
}

impl EntryKind {
    pub fn from_u8(v: u8) -> Option<Self> {
        match v {
            0 => Some(Self::Blank),
            1 => Some(Self::Normal),
            2 => Some(Self::Membership),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Blank => "blank",
            Self::Normal => "normal",
            Self::Membership => "membership",
        }
    }
}

/// The decoded fixed header of an entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EntryHeader {
    pub total_size: u32,
    pub index: u64,
    pub term: u64,
    pub position: u64,
    pub kind: EntryKind,
    pub body_crc: u32,
}

impl EntryHeader {
    pub fn body_len(&self) -> usize {
        self.total_size as usize - ENTRY_HEADER_LEN
    }
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[at..at + 4]);
    u32::from_le_bytes(a)
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(a)
}

/// Appends one whole entry (header + body) to `out`.
pub fn encode_entry(
    out: &mut Vec<u8>,
    index: u64,
    term: u64,
    position: u64,
    kind: EntryKind,
    body: &[u8],
) {
    let total = (ENTRY_HEADER_LEN + body.len()) as u32;
    let start = out.len();
    out.extend_from_slice(&ENTRY_MAGIC.to_le_bytes());
    out.extend_from_slice(&total.to_le_bytes());
    out.extend_from_slice(&index.to_le_bytes());
    out.extend_from_slice(&term.to_le_bytes());
    out.extend_from_slice(&position.to_le_bytes());
    out.extend_from_slice(&[kind as u8, 0, 0, 0]);
    out.extend_from_slice(&crc32fast::hash(body).to_le_bytes());
    out.extend_from_slice(&0u32.to_le_bytes());
    let header_crc = crc32fast::hash(&out[start..start + 44]);
    out.extend_from_slice(&header_crc.to_le_bytes());
    out.extend_from_slice(body);
}

/// Decodes and checks an entry header. `Ok(None)` means the bytes are all zero: the end of
/// written data. `max_total` bounds `total_size` (the room left in the segment).
pub fn decode_entry_header(b: &[u8], max_total: u64) -> Result<Option<EntryHeader>, Corruption> {
    if b.len() < ENTRY_HEADER_LEN {
        return Err(Corruption::Torn);
    }
    let b = &b[..ENTRY_HEADER_LEN];
    let magic = u32_at(b, 0);
    if magic == 0 && b.iter().all(|&x| x == 0) {
        return Ok(None);
    }
    if magic != ENTRY_MAGIC {
        return Err(Corruption::BadMagic);
    }
    if crc32fast::hash(&b[..44]) != u32_at(b, 44) {
        return Err(Corruption::HeaderCrc);
    }
    let total_size = u32_at(b, 4);
    if (total_size as usize) < ENTRY_HEADER_LEN || u64::from(total_size) > max_total {
        return Err(Corruption::BadSize(total_size));
    }
    let kind = EntryKind::from_u8(b[32]).ok_or(Corruption::BadKind(b[32]))?;
    Ok(Some(EntryHeader {
        total_size,
        index: u64_at(b, 8),
        term: u64_at(b, 16),
        position: u64_at(b, 24),
        kind,
        body_crc: u32_at(b, 36),
    }))
}

/// Checks the body CRC of an entry whose header was decoded.
pub fn check_body(header: &EntryHeader, body: &[u8]) -> Result<(), Corruption> {
    if body.len() != header.body_len() {
        return Err(Corruption::Torn);
    }
    if crc32fast::hash(body) != header.body_crc {
        return Err(Corruption::BodyCrc);
    }
    Ok(())
}

/// The header at the start of every segment file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SegmentHeader {
    pub base_position: u64,
    pub first_index: u64,
    /// Term of the entry at `first_index - 1`; `None` when the log begins in this segment.
    pub prev_term: Option<u64>,
}

impl SegmentHeader {
    pub fn encode(&self) -> [u8; SEGMENT_HEADER_LEN as usize] {
        let mut b = [0u8; SEGMENT_HEADER_LEN as usize];
        b[0..8].copy_from_slice(&SEGMENT_MAGIC);
        b[8..12].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
        b[12..16].copy_from_slice(&(SEGMENT_HEADER_LEN as u32).to_le_bytes());
        b[16..24].copy_from_slice(&self.base_position.to_le_bytes());
        b[24..32].copy_from_slice(&self.first_index.to_le_bytes());
        b[32..40].copy_from_slice(&self.prev_term.unwrap_or(0).to_le_bytes());
        b[40..44].copy_from_slice(&u32::from(self.prev_term.is_some()).to_le_bytes());
        let crc = crc32fast::hash(&b[..60]);
        b[60..64].copy_from_slice(&crc.to_le_bytes());
        b
    }

    pub fn decode(b: &[u8]) -> Result<Self, Corruption> {
        if b.len() < SEGMENT_HEADER_LEN as usize {
            return Err(Corruption::Torn);
        }
        if b[0..8] != SEGMENT_MAGIC {
            return Err(Corruption::BadMagic);
        }
        let version = u32_at(b, 8);
        if version != FORMAT_VERSION {
            return Err(Corruption::Version(version));
        }
        if crc32fast::hash(&b[..60]) != u32_at(b, 60) {
            return Err(Corruption::HeaderCrc);
        }
        Ok(Self {
            base_position: u64_at(b, 16),
            first_index: u64_at(b, 24),
            prev_term: (u32_at(b, 40) & 1 == 1).then(|| u64_at(b, 32)),
        })
    }
}

/// The header of an index file.
pub fn encode_index_header(
    base_position: u64,
    first_index: u64,
) -> [u8; INDEX_HEADER_LEN as usize] {
    let mut b = [0u8; INDEX_HEADER_LEN as usize];
    b[0..8].copy_from_slice(&INDEX_MAGIC);
    b[8..12].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
    b[16..24].copy_from_slice(&base_position.to_le_bytes());
    b[24..32].copy_from_slice(&first_index.to_le_bytes());
    b
}

/// Returns `(base_position, first_index)` of an index file header.
pub fn decode_index_header(b: &[u8]) -> Result<(u64, u64), Corruption> {
    if b.len() < INDEX_HEADER_LEN as usize {
        return Err(Corruption::Torn);
    }
    if b[0..8] != INDEX_MAGIC {
        return Err(Corruption::BadMagic);
    }
    let version = u32_at(b, 8);
    if version != FORMAT_VERSION {
        return Err(Corruption::Version(version));
    }
    Ok((u64_at(b, 16), u64_at(b, 24)))
}

/// Where an entry lives: one fixed-width record per Raft index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IndexRecord {
    pub position: u64,
    pub term: u64,
    pub size: u32,
}

impl IndexRecord {
    pub fn end(&self) -> u64 {
        self.position + u64::from(self.size)
    }

    pub fn encode_into(&self, out: &mut Vec<u8>) {
        let start = out.len();
        out.extend_from_slice(&self.position.to_le_bytes());
        out.extend_from_slice(&self.term.to_le_bytes());
        out.extend_from_slice(&self.size.to_le_bytes());
        let crc = crc32fast::hash(&out[start..start + 20]);
        out.extend_from_slice(&crc.to_le_bytes());
    }

    /// `None` when the record's checksum does not match (a torn or damaged index tail).
    pub fn decode(b: &[u8]) -> Option<Self> {
        if b.len() < INDEX_RECORD_LEN || crc32fast::hash(&b[..20]) != u32_at(b, 20) {
            return None;
        }
        Some(Self {
            position: u64_at(b, 0),
            term: u64_at(b, 8),
            size: u32_at(b, 16),
        })
    }
}

/// File name of the segment starting at `base_position`.
pub fn segment_file_name(base_position: u64) -> String {
    format!("{base_position:020}.log")
}

/// File name of the index of the segment starting at `base_position`.
pub fn index_file_name(base_position: u64) -> String {
    format!("{base_position:020}.idx")
}

/// Parses `{20 digits}.log`, returning the base position.
pub fn parse_segment_file_name(name: &str) -> Option<u64> {
    let digits = name.strip_suffix(".log")?;
    if digits.len() != 20 || !digits.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entry_round_trip_and_checks() {
        let mut buf = Vec::new();
        encode_entry(&mut buf, 7, 3, 4096, EntryKind::Normal, b"hello");
        assert_eq!(buf.len(), ENTRY_HEADER_LEN + 5);
        let h = decode_entry_header(&buf, 1 << 20).unwrap().unwrap();
        assert_eq!(
            (h.index, h.term, h.position, h.kind),
            (7, 3, 4096, EntryKind::Normal)
        );
        assert_eq!(h.total_size as usize, buf.len());
        check_body(&h, &buf[ENTRY_HEADER_LEN..]).unwrap();

        let mut flipped = buf.clone();
        flipped[ENTRY_HEADER_LEN + 1] ^= 0x40;
        assert_eq!(
            check_body(&h, &flipped[ENTRY_HEADER_LEN..]),
            Err(Corruption::BodyCrc)
        );

        for at in 0..44 {
            let mut bad = buf.clone();
            bad[at] ^= 0x01;
            assert!(decode_entry_header(&bad, 1 << 20).is_err(), "flip at {at}");
        }
        assert_eq!(decode_entry_header(&[0u8; 48], 100), Ok(None));
        assert_eq!(decode_entry_header(&buf[..20], 100), Err(Corruption::Torn));
        assert_eq!(decode_entry_header(&buf, 50), Err(Corruption::BadSize(53)));
    }

    #[test]
    fn segment_header_round_trip() {
        let h = SegmentHeader {
            base_position: 1 << 30,
            first_index: 12,
            prev_term: Some(4),
        };
        let b = h.encode();
        assert_eq!(SegmentHeader::decode(&b), Ok(h));
        let mut bad = b;
        bad[30] ^= 1;
        assert_eq!(SegmentHeader::decode(&bad), Err(Corruption::HeaderCrc));
    }

    #[test]
    fn index_record_round_trip() {
        let r = IndexRecord {
            position: 99,
            term: 2,
            size: 60,
        };
        let mut b = Vec::new();
        r.encode_into(&mut b);
        assert_eq!(b.len(), INDEX_RECORD_LEN);
        assert_eq!(IndexRecord::decode(&b), Some(r));
        b[3] ^= 1;
        assert_eq!(IndexRecord::decode(&b), None);
    }

    #[test]
    fn file_names() {
        assert_eq!(segment_file_name(1024), "00000000000000001024.log");
        assert_eq!(
            parse_segment_file_name("00000000000000001024.log"),
            Some(1024)
        );
        assert_eq!(parse_segment_file_name("1024.log"), None);
        assert_eq!(parse_segment_file_name("00000000000000001024.idx"), None);
    }
}
