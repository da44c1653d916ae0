//! `log_entry_decode`: any bytes as an entry (header and body), a segment header, an index
//! file header and index records.
//!
//! libFuzzer cannot forge a CRC32, so each input is also decoded with its entry checksums
//! made right ([`reseal_entry`]); that takes it past the checksums to the size and kind checks.
//! Checks, beyond "no panic": a decoded header's checksum holds over the bytes it came from,
//! and whatever decodes encodes back to what decodes the same.

use raft_log::format::{
    self, EntryKind, IndexRecord, SegmentHeader, ENTRY_HEADER_LEN, INDEX_RECORD_LEN,
};

/// Byte offsets inside an entry header (see `raft_log::format`).
pub(crate) const BODY_CRC_AT: usize = 36;
pub(crate) const HEADER_CRC_AT: usize = 44;

fn u32_at(b: &[u8], at: usize) -> u32 {
    let mut word = [0u8; 4];
    word.copy_from_slice(&b[at..at + 4]);
    u32::from_le_bytes(word)
}

/// Rewrites the body CRC (over the body its `total_size` claims, cut at the end of `entry`)
/// and then the header CRC of the entry at the start of `entry`, whatever else it holds.
pub fn reseal_entry(entry: &mut [u8]) {
    if entry.len() < ENTRY_HEADER_LEN {
        return;
    }
    let total = (u32_at(entry, 4) as usize).clamp(ENTRY_HEADER_LEN, entry.len());
    let body_crc = crc32fast::hash(&entry[ENTRY_HEADER_LEN..total]);
    entry[BODY_CRC_AT..BODY_CRC_AT + 4].copy_from_slice(&body_crc.to_le_bytes());
    let header_crc = crc32fast::hash(&entry[..HEADER_CRC_AT]);
    entry[HEADER_CRC_AT..HEADER_CRC_AT + 4].copy_from_slice(&header_crc.to_le_bytes());
}

/// The body of the `log_entry_decode` target.
pub fn log_entry_decode(data: &[u8]) {
    check_entry(data);
    let mut resealed = data.to_vec();
    reseal_entry(&mut resealed);
    check_entry(&resealed);

    if let Ok(header) = SegmentHeader::decode(data) {
        let again = SegmentHeader::decode(&header.encode());
        assert_eq!(
            again,
            Ok(header),
            "a segment header does not survive encoding"
        );
    }
    if let Ok((base, first_index)) = format::decode_index_header(data) {
        let encoded = format::encode_index_header(base, first_index);
        assert_eq!(
            format::decode_index_header(&encoded),
            Ok((base, first_index))
        );
    }
    for chunk in data.chunks(INDEX_RECORD_LEN) {
        if let Some(record) = IndexRecord::decode(chunk) {
            let mut encoded = Vec::new();
            record.encode_into(&mut encoded);
            assert_eq!(
                encoded, chunk,
                "an index record does not encode to its bytes"
            );
        }
    }
    if let Ok(name) = std::str::from_utf8(data) {
        if let Some(base) = format::parse_segment_file_name(name) {
            assert_eq!(format::segment_file_name(base), name);
        }
    }
}

/// Decodes `data` as an entry with room for exactly `data`, and with unlimited room.
fn check_entry(data: &[u8]) {
    for room in [data.len() as u64, u64::MAX] {
        let header = match format::decode_entry_header(data, room) {
            Ok(Some(header)) => header,
            Ok(None) => {
                assert!(data[..ENTRY_HEADER_LEN].iter().all(|&b| b == 0));
                continue;
            }
            Err(_) => continue,
        };
        assert_eq!(
            crc32fast::hash(&data[..HEADER_CRC_AT]),
            u32_at(data, HEADER_CRC_AT),
            "a header whose checksum fails was accepted"
        );
        assert!(
            header.total_size as usize >= ENTRY_HEADER_LEN && u64::from(header.total_size) <= room
        );
        let end = (header.total_size as usize).min(data.len());
        let body = &data[ENTRY_HEADER_LEN..end];
        if format::check_body(&header, body).is_err() {
            continue;
        }
        assert_eq!(crc32fast::hash(body), header.body_crc);
        assert!(EntryKind::from_u8(header.kind as u8) == Some(header.kind));
        let mut encoded = Vec::new();
        format::encode_entry(
            &mut encoded,
            header.index,
            header.term,
            header.position,
            header.kind,
            body,
        );
        assert_eq!(
            format::decode_entry_header(&encoded, room),
            Ok(Some(header)),
            "an entry does not survive encoding"
        );
    }
}

/// Valid records of each kind the target decodes: the seeds the mutants start from.
pub fn seeds() -> Vec<Vec<u8>> {
    let mut entries = Vec::new();
    for (index, term, kind, body) in [
        (1, 1, EntryKind::Blank, &b""[..]),
        (7, 3, EntryKind::Normal, &b"hello raftmq"[..]),
        (u64::MAX, u64::MAX, EntryKind::Membership, &[0xa5; 200][..]),
    ] {
        let mut entry = Vec::new();
        format::encode_entry(&mut entry, index, term, 4096, kind, body);
        entries.push(entry);
    }
    let segment = SegmentHeader {
        base_position: 1 << 30,
        first_index: 12,
        prev_term: Some(4),
    };
    let mut index = format::encode_index_header(1 << 30, 12).to_vec();
    for (position, size) in [(64, 48), (112, 300)] {
        IndexRecord {
            position,
            term: 4,
            size,
        }
        .encode_into(&mut index);
    }
    entries.push(segment.encode().to_vec());
    entries.push(index);
    entries.push(format::segment_file_name(1024).into_bytes());
    entries
}
