//! IO faults: a write or fsync that fails leaves a store that reopens to its last durable
//! state, and the store itself reports errors instead of panicking.

mod common;

use std::sync::Arc;

use common::{assert_holds, body_for, fill, sync_config};
use raft_log::fs::FaultyFs;
use raft_log::{EntryKind, Error, LogStore, NewEntry};

const SEGMENT: u64 = 8192;

fn append_one(store: &LogStore, index: u64) -> Result<(), Error> {
    let body = body_for(index);
    let a = store.append(&[NewEntry {
        index,
        term: 1,
        kind: EntryKind::Normal,
        body: &body,
    }])?;
    store.wait_flushed(a.seq)
}

/// After a failure at `fail_at`, the reopened store holds every acknowledged entry, and
/// possibly whole entries of the failed write, and nothing else.
fn reopen_and_check(dir: &std::path::Path, acked: u64, attempted: u64) {
    let store = LogStore::open(sync_config(dir, SEGMENT)).expect("reopen after fault");
    let last = store.last_log_id().map_or(0, |l| l.index);
    assert!(
        last >= acked && last <= attempted,
        "last {last}, acked {acked}, attempted {attempted}"
    );
    assert_holds(&store, 1, last);
    fill(&store, last + 1, last + 2);
}

#[test]
fn disk_full_at_every_byte_of_a_batch() {
    // Fill the disk at every byte offset across a batch that also crosses a segment roll.
    for budget in (0..2600).step_by(13) {
        let dir = tempfile::tempdir().unwrap();
        let fs = FaultyFs::new();
        let faults = fs.faults();
        let store = LogStore::open_with_fs(sync_config(dir.path(), SEGMENT), Arc::new(fs)).unwrap();
        fill(&store, 1, 60);
        faults.disk_full_after(budget);
        let bodies: Vec<Vec<u8>> = (61..=75).map(body_for).collect();
        let batch: Vec<NewEntry<'_>> = bodies
            .iter()
            .enumerate()
            .map(|(i, b)| NewEntry {
                index: 61 + i as u64,
                term: 1,
                kind: EntryKind::Normal,
                body: b,
            })
            .collect();
        let acked = match store.append(&batch) {
            Ok(a) => {
                store.wait_flushed(a.seq).unwrap();
                75
            }
            Err(e) => {
                assert!(matches!(e, Error::Io { .. }), "{e}");
                // The store refuses further writes until reopened.
                let again = append_one(&store, 61);
                assert!(matches!(again, Err(Error::Failed(_))), "{again:?}");
                60
            }
        };
        // Reads of what was there keep working.
        assert_eq!(store.read(60).unwrap().body[..], body_for(60)[..]);
        drop(store);
        reopen_and_check(dir.path(), acked, 75);
    }
}

#[test]
fn failed_fsync_is_reported_and_poisons_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let fs = FaultyFs::new();
    let faults = fs.faults();
    let store = LogStore::open_with_fs(sync_config(dir.path(), SEGMENT), Arc::new(fs)).unwrap();
    fill(&store, 1, 20);
    faults.fail_syncs(true);
    let err = append_one(&store, 21).unwrap_err();
    assert!(matches!(err, Error::Failed(_)), "{err}");
    faults.heal();
    // Even with the disk healthy again, a store whose fsync failed must not claim
    // durability (the kernel may have dropped the dirty pages): reopen is required.
    assert!(matches!(append_one(&store, 21), Err(Error::Failed(_))));
    drop(store);
    reopen_and_check(dir.path(), 20, 21);
}

#[test]
fn failed_segment_creation_on_roll() {
    let dir = tempfile::tempdir().unwrap();
    let fs = FaultyFs::new();
    let faults = fs.faults();
    let store = LogStore::open_with_fs(sync_config(dir.path(), SEGMENT), Arc::new(fs)).unwrap();
    fill(&store, 1, 1);
    let mut index = 2;
    // Append until the next entry needs a new segment, with creation failing.
    faults.fail_creates(true);
    let acked = loop {
        match append_one(&store, index) {
            Ok(()) => index += 1,
            Err(e) => {
                assert!(matches!(e, Error::Io { .. }), "{e}");
                break index - 1;
            }
        }
    };
    assert!(acked > 10);
    faults.heal();
    drop(store);
    reopen_and_check(dir.path(), acked, acked + 1);
}

#[test]
fn crash_during_roll_leaves_a_headless_segment_that_recovery_removes() {
    let dir = tempfile::tempdir().unwrap();
    let store = LogStore::open(sync_config(dir.path(), SEGMENT)).unwrap();
    fill(&store, 1, 30);
    let last = store.segments().last().cloned().unwrap();
    drop(store);
    // What a crash between creating the next segment file and writing its header leaves.
    let next = last.base_position + last.size;
    let path = dir.path().join(format!("{next:020}.log"));
    std::fs::write(&path, b"RMQLOG").unwrap();
    reopen_and_check(dir.path(), 30, 30);
    assert!(std::fs::metadata(&path)
        .map(|m| m.len() > 6)
        .unwrap_or(true));
}

#[test]
fn failed_metadata_write_keeps_the_old_value() {
    let dir = tempfile::tempdir().unwrap();
    let fs = FaultyFs::new();
    let faults = fs.faults();
    let store = LogStore::open_with_fs(sync_config(dir.path(), SEGMENT), Arc::new(fs)).unwrap();
    store.meta().store("vote", b"term-3").unwrap();
    faults.disk_full_after(5);
    assert!(store.meta().store("vote", b"term-4-vote").is_err());
    faults.heal();
    drop(store);
    let store = LogStore::open(sync_config(dir.path(), SEGMENT)).unwrap();
    assert_eq!(
        store.meta().load("vote").unwrap().as_deref(),
        Some(&b"term-3"[..])
    );
}
