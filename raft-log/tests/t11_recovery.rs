//! Recovery: a torn tail at every byte offset of the last entries and at random offsets of
//! the last segment, a flipped byte in the tail vs in a sealed segment, and segment
//! boundaries.

mod common;

use std::fs::OpenOptions;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use common::{assert_holds, body_for, copy_store, fill, sync_config};
use proptest::prelude::*;
use raft_log::{Corruption, EntryKind, Error, LogStore, NewEntry};

const SEGMENT: u64 = 4096;

/// A closed store with `last` entries over several segments; returns the last segment's path
/// and base position, and the positions of every entry.
fn build(dir: &Path, last: u64) -> (PathBuf, u64, Vec<u64>) {
    let store = LogStore::open(sync_config(dir, SEGMENT)).unwrap();
    fill(&store, 1, last);
    let positions = (1..=last)
        .map(|i| store.read(i).unwrap().position)
        .collect();
    let seg = store.segments().last().cloned().unwrap();
    store.close().unwrap();
    (seg.path, seg.base_position, positions)
}

/// How many entries lie wholly before global position `cut`.
fn whole_before(positions: &[u64], cut: u64) -> u64 {
    positions
        .iter()
        .enumerate()
        .filter(|(i, &p)| p + entry_len(*i as u64 + 1) <= cut)
        .count() as u64
}

fn entry_len(index: u64) -> u64 {
    48 + body_for(index).len() as u64
}

enum Damage {
    /// The file ends at the cut (what a crash during an extending write leaves).
    Truncate,
    /// Zeros from the cut on (pages never written back).
    Zero,
}

fn damage(path: &Path, offset: u64, how: Damage) {
    let file = OpenOptions::new().write(true).open(path).unwrap();
    match how {
        Damage::Truncate => file.set_len(offset).unwrap(),
        Damage::Zero => {
            let len = file.metadata().unwrap().len();
            file.write_all_at(&vec![0u8; (len - offset) as usize], offset)
                .unwrap();
        }
    }
}

/// Cuts a copy of the store at global position `cut` and checks that reopening keeps exactly
/// the whole entries before it, and that the store then appends and recovers normally.
fn cut_and_check(
    src: &Path,
    seg_name: &std::ffi::OsStr,
    base: u64,
    positions: &[u64],
    cut: u64,
    how: Damage,
) {
    let dir = tempfile::tempdir().unwrap();
    copy_store(src, dir.path());
    damage(&dir.path().join(seg_name), cut - base, how);
    let expected = whole_before(positions, cut);
    let store = LogStore::open(sync_config(dir.path(), SEGMENT))
        .unwrap_or_else(|e| panic!("reopen after cut at {cut}: {e}"));
    assert_holds(&store, 1, expected);
    fill(&store, expected + 1, expected + 3);
    drop(store);
    let store = LogStore::open(sync_config(dir.path(), SEGMENT)).unwrap();
    assert_holds(&store, 1, expected + 3);
}

#[test]
fn torn_tail_at_every_byte_of_the_last_entries() {
    let src = tempfile::tempdir().unwrap();
    let last = 60;
    let (seg_path, base, positions) = build(src.path(), last);
    let seg_name = seg_path.file_name().unwrap().to_owned();
    let end = positions[last as usize - 1] + entry_len(last);
    // The last three entries, byte by byte (never before the segment's first entry).
    let from = positions[last as usize - 3].max(base + 64);
    for cut in from..=end {
        cut_and_check(
            src.path(),
            &seg_name,
            base,
            &positions,
            cut,
            Damage::Truncate,
        );
    }
    for cut in (from..=end).step_by(7) {
        cut_and_check(src.path(), &seg_name, base, &positions, cut, Damage::Zero);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn torn_tail_at_random_offsets_of_the_last_segment(frac in 0.0f64..1.0, zero in any::<bool>()) {
        let src = tempfile::tempdir().unwrap();
        let (seg_path, base, positions) = build(src.path(), 70);
        let seg_name = seg_path.file_name().unwrap().to_owned();
        let end = positions[69] + entry_len(70);
        let cut = base + 64 + ((end - base - 64) as f64 * frac) as u64;
        let how = if zero { Damage::Zero } else { Damage::Truncate };
        cut_and_check(src.path(), &seg_name, base, &positions, cut, how);
    }
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

#[test]
fn flipped_byte_in_the_tail_is_cut_off() {
    let dir = tempfile::tempdir().unwrap();
    let (seg_path, base, positions) = build(dir.path(), 40);
    // A byte in the body of the last entry.
    flip(&seg_path, positions[39] - base + 48 + 5);
    let store = LogStore::open(sync_config(dir.path(), SEGMENT)).unwrap();
    assert_holds(&store, 1, 39);
}

#[test]
fn flipped_byte_in_a_sealed_segment_is_an_error_naming_file_and_offset() {
    let dir = tempfile::tempdir().unwrap();
    let (_, _, positions) = build(dir.path(), 60);
    let store = LogStore::open(sync_config(dir.path(), SEGMENT)).unwrap();
    let first = store.segments()[0].clone();
    let last_in_first = first.first_index + first.entries - 1;
    drop(store);
    assert!(first.entries > 3);

    // In the middle of a sealed segment: opening succeeds (only tails are scanned), the read of
    // that entry fails, naming the file and the entry's offset; nothing is truncated.
    let victim = 2;
    let offset = positions[victim as usize - 1] - first.base_position;
    flip(&first.path, offset + 48 + 3);
    let store = LogStore::open(sync_config(dir.path(), SEGMENT)).unwrap();
    match store.read(victim) {
        Err(Error::Corrupt {
            path,
            offset: at,
            what,
        }) => {
            assert_eq!(path, first.path);
            assert_eq!(at, offset);
            assert_eq!(what, Corruption::BodyCrc);
        }
        other => panic!("expected a corruption error, got {other:?}"),
    }
    let message = store.read(victim).unwrap_err().to_string();
    assert!(
        message.contains(&first.path.display().to_string())
            && message.contains(&offset.to_string()),
        "{message}"
    );
    assert_eq!(
        store.last_log_id().map(|l| l.index),
        Some(60),
        "nothing was truncated"
    );
    assert_eq!(
        store.read(victim + 1).unwrap().body[..],
        body_for(victim + 1)[..]
    );
    drop(store);

    // In the last entry of a sealed segment: opening itself refuses, naming file and offset.
    let offset = positions[last_in_first as usize - 1] - first.base_position;
    flip(&first.path, offset + 10);
    let err = LogStore::open(sync_config(dir.path(), SEGMENT))
        .err()
        .expect("open must fail");
    match &err {
        Error::Corrupt {
            path, offset: at, ..
        } => {
            assert_eq!(path, &first.path);
            assert_eq!(*at, offset);
        }
        other => panic!("expected a corruption error, got {other:?}"),
    }
}

#[test]
fn an_entry_that_exactly_fills_a_segment() {
    let dir = tempfile::tempdir().unwrap();
    let store = LogStore::open(sync_config(dir.path(), SEGMENT)).unwrap();
    let full = vec![0xabu8; (SEGMENT - 64 - 48) as usize];
    let half = vec![0xcdu8; 1000];
    let rest = vec![0xefu8; (SEGMENT - 64 - 48 - 1000 - 48) as usize];
    let entries = [
        NewEntry {
            index: 1,
            term: 1,
            kind: EntryKind::Normal,
            body: &full,
        },
        NewEntry {
            index: 2,
            term: 1,
            kind: EntryKind::Normal,
            body: &half,
        },
        NewEntry {
            index: 3,
            term: 1,
            kind: EntryKind::Normal,
            body: &rest,
        },
        NewEntry {
            index: 4,
            term: 2,
            kind: EntryKind::Blank,
            body: b"",
        },
    ];
    store.append(&entries[..1]).unwrap();
    store.append(&entries[1..]).unwrap();
    let segs = store.segments();
    assert_eq!(segs.len(), 3);
    assert_eq!((segs[0].entries, segs[0].used_bytes), (1, SEGMENT));
    assert_eq!((segs[1].entries, segs[1].used_bytes), (2, SEGMENT));
    assert_eq!((segs[2].first_index, segs[2].entries), (4, 1));
    drop(store);
    let store = LogStore::open(sync_config(dir.path(), SEGMENT)).unwrap();
    assert_eq!(store.read(1).unwrap().body[..], full[..]);
    assert_eq!(store.read(3).unwrap().body[..], rest[..]);
    assert_eq!(store.read(4).unwrap().kind, EntryKind::Blank);
    assert_eq!(store.read(2).unwrap().position, SEGMENT + 64);
}

#[test]
fn an_entry_larger_than_the_space_left_rolls_and_one_larger_than_a_segment_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let store = LogStore::open(sync_config(dir.path(), SEGMENT)).unwrap();
    fill(&store, 1, 5);
    let used = store.segments()[0].used_bytes;
    let big = vec![1u8; (SEGMENT - used) as usize]; // header makes it 48 bytes too large
    store
        .append(&[NewEntry {
            index: 6,
            term: 1,
            kind: EntryKind::Normal,
            body: &big,
        }])
        .unwrap();
    let segs = store.segments();
    assert_eq!(segs.len(), 2);
    assert_eq!(
        segs[0].used_bytes, used,
        "the sealed segment keeps its entries only"
    );
    assert_eq!(segs[1].first_index, 6);

    let huge = vec![2u8; SEGMENT as usize];
    let err = store.append(&[NewEntry {
        index: 7,
        term: 1,
        kind: EntryKind::Normal,
        body: &huge,
    }]);
    assert!(matches!(err, Err(Error::EntryTooLarge { .. })), "{err:?}");
    // A refused entry is not a store failure.
    fill(&store, 7, 8);
    drop(store);
    let store = LogStore::open(sync_config(dir.path(), SEGMENT)).unwrap();
    assert_eq!(store.read(6).unwrap().body.len(), big.len());
    assert_eq!(store.last_log_id().map(|l| l.index), Some(8));
}

#[test]
fn a_lost_index_file_is_rebuilt_from_the_data() {
    let dir = tempfile::tempdir().unwrap();
    let (seg_path, _, _) = build(dir.path(), 50);
    let store = LogStore::open(sync_config(dir.path(), SEGMENT)).unwrap();
    let first = store.segments()[0].path.clone();
    drop(store);
    std::fs::remove_file(first.with_extension("idx")).unwrap();
    let idx = seg_path.with_extension("idx");
    let len = std::fs::metadata(&idx).unwrap().len();
    OpenOptions::new()
        .write(true)
        .open(&idx)
        .unwrap()
        .set_len(len - 30)
        .unwrap();
    let store = LogStore::open(sync_config(dir.path(), SEGMENT)).unwrap();
    assert_holds(&store, 1, 50);
}

#[test]
fn a_damaged_header_of_the_last_segment_is_an_error_not_a_deletion() {
    let dir = tempfile::tempdir().unwrap();
    let (seg_path, _, _) = build(dir.path(), 40);
    flip(&seg_path, 20);
    let err = LogStore::open(sync_config(dir.path(), SEGMENT))
        .err()
        .expect("open must refuse");
    assert!(
        matches!(&err, Error::Corrupt { path, offset: 0, .. } if path == &seg_path),
        "{err}"
    );
    assert!(seg_path.exists(), "the segment is still there");
}
