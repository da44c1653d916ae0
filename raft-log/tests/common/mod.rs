//! Helpers shared by the raft-log integration tests.
#![allow(dead_code)]

use std::path::Path;
use std::time::Duration;

use raft_log::{EntryKind, FlushMode, LogConfig, LogStore, NewEntry};

pub fn sync_config(dir: &Path, segment_size: u64) -> LogConfig {
    LogConfig::new(dir)
        .segment_size(segment_size)
        .flush(FlushMode::Sync)
}

pub fn async_config(dir: &Path, segment_size: u64) -> LogConfig {
    LogConfig::new(dir)
        .segment_size(segment_size)
        .flush(FlushMode::Async {
            interval: Duration::from_millis(20),
        })
}

/// A body that tells which index it belongs to and varies in length.
pub fn body_for(index: u64) -> Vec<u8> {
    let len = 20 + (index * 37 % 180) as usize;
    let mut body = format!("entry-{index}-").into_bytes();
    body.resize(len, (index % 251) as u8);
    body
}

/// Appends entries `from..=to` (term 1) one call per entry and waits for each to be flushed.
pub fn fill(store: &LogStore, from: u64, to: u64) {
    for index in from..=to {
        let body = body_for(index);
        let appended = store
            .append(&[NewEntry {
                index,
                term: 1,
                kind: EntryKind::Normal,
                body: &body,
            }])
            .expect("append");
        store.wait_flushed(appended.seq).expect("flush");
    }
}

/// Asserts the store holds exactly `first..=last`, with the bodies `body_for` made.
pub fn assert_holds(store: &LogStore, first: u64, last: u64) {
    assert_eq!(
        store.last_log_id().map(|l| l.index),
        Some(last),
        "last index"
    );
    assert_eq!(store.first_index(), Some(first), "first index");
    for index in first..=last {
        let entry = store
            .read(index)
            .unwrap_or_else(|e| panic!("read {index}: {e}"));
        assert_eq!(entry.body[..], body_for(index)[..], "body of {index}");
    }
    assert!(store.read(last + 1).is_err());
}

/// Copies the files of a store directory (not the lock) into `to`.
pub fn copy_store(from: &Path, to: &Path) {
    for entry in std::fs::read_dir(from).expect("read dir") {
        let entry = entry.expect("dir entry");
        let name = entry.file_name();
        if name != "LOCK" {
            std::fs::copy(entry.path(), to.join(name)).expect("copy");
        }
    }
}
