//! The page-cache window: data further than the window behind the end of the log leaves the
//! page cache (so new writes reuse freed pages), the tail stays, and everything still reads
//! back whole.

mod common;

use std::fs::File;
use std::path::Path;
use std::time::{Duration, Instant};

use common::async_config;
use raft_log::{EntryKind, LogStore, NewEntry};

const MIB: u64 = 1 << 20;
const SEGMENT: u64 = 24 * MIB;
const WINDOW: u64 = 8 * MIB;

/// One entry of a little under 1 MiB, so 25 of them span more than one segment.
fn body(index: u64) -> Vec<u8> {
    let mut body = vec![(index % 251) as u8; (MIB - 4096) as usize];
    body[..8].copy_from_slice(&index.to_le_bytes());
    body
}

/// Appends entry `index` with its [`body`].
fn append(store: &LogStore, index: u64) -> raft_log::Result<raft_log::Appended> {
    let b = body(index);
    store.append(&[NewEntry {
        index,
        term: 1,
        kind: EntryKind::Normal,
        body: &b,
    }])
}

/// Which 4 KiB pages of `path` are in the page cache, as seen by `mincore`.
#[allow(unsafe_code)]
fn resident_pages(path: &Path) -> Vec<bool> {
    let file = File::open(path).unwrap();
    let len = file.metadata().unwrap().len() as usize;
    // SAFETY: a read-only shared mapping of a file nobody truncates while the test runs; its
    // bytes are never read, only its residency is asked for.
    let map = unsafe { memmap2::Mmap::map(&file) }.unwrap();
    let page = 4096usize;
    let mut vec = vec![0u8; len.div_ceil(page)];
    // SAFETY: `vec` has one byte per page of the mapping, as mincore requires.
    let rc = unsafe { libc::mincore(map.as_ptr() as *mut libc::c_void, len, vec.as_mut_ptr()) };
    assert_eq!(rc, 0, "mincore: {}", std::io::Error::last_os_error());
    vec.iter().map(|b| b & 1 == 1).collect()
}

/// The store's segment files, oldest first.
fn segment_files(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "log"))
        .collect();
    files.sort();
    files
}

#[test]
fn data_behind_the_window_leaves_the_page_cache_and_still_reads_back() {
    let dir = tempfile::tempdir().unwrap();
    let store =
        LogStore::open(async_config(dir.path(), SEGMENT).cache_window(Some(WINDOW))).unwrap();
    // Ten entries, read back through the store's mapping before anything is released: pages
    // a process has mapped are exactly the ones a plain fadvise would leave behind.
    for index in 1..=10 {
        append(&store, index).unwrap();
    }
    for index in 1..=10 {
        assert_eq!(store.read(index).unwrap().body[..8], index.to_le_bytes());
    }
    let last = 140u64;
    for index in 11..=last {
        append(&store, index).unwrap();
    }
    let files = segment_files(dir.path());
    assert!(files.len() >= 6, "140 MiB in 24 MiB segments: {files:?}");

    // Released asynchronously, 32 MiB or more at a time, so at most window + 32 MiB of the
    // newest data may still be cached; every older segment must be gone entirely.
    let deadline = Instant::now() + Duration::from_secs(20);
    let older = &files[..files.len() - 3];
    loop {
        let cached: Vec<usize> = older
            .iter()
            .map(|f| resident_pages(f).iter().filter(|r| **r).count())
            .collect();
        if cached.iter().all(|&n| n == 0) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "pages still cached per old segment after 20 s: {cached:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }

    // The tail, inside the window, was not dropped: the newest segment's written part is
    // still cached (nothing else here competes for memory).
    let newest = resident_pages(files.last().unwrap());
    let tail_pages = newest.iter().filter(|r| **r).count();
    assert!(
        tail_pages > 0,
        "the newest segment should still be in the page cache"
    );

    // Everything reads back whole, old entries faulting in from the files.
    for index in 1..=last {
        let entry = store.read(index).unwrap();
        assert_eq!(entry.body[..], body(index)[..], "entry {index}");
    }
    drop(store);
    let store = LogStore::open(async_config(dir.path(), SEGMENT)).unwrap();
    assert_eq!(store.last_log_id().map(|l| l.index), Some(last));
    assert_eq!(store.read(1).unwrap().body[..], body(1)[..]);
}

#[test]
fn without_a_window_written_data_stays_cached() {
    // The control for the test above: the store alone does not evict anything.
    let dir = tempfile::tempdir().unwrap();
    let store = LogStore::open(async_config(dir.path(), SEGMENT)).unwrap();
    for index in 1..=60u64 {
        append(&store, index).unwrap();
    }
    store.flush().unwrap();
    let first = resident_pages(&segment_files(dir.path())[0]);
    let cached = first.iter().filter(|r| **r).count();
    assert!(
        cached * 2 > first.len(),
        "most of the first segment should still be cached: {cached} of {} pages",
        first.len()
    );
}

#[test]
fn a_failed_write_out_fails_the_store_like_a_failed_fsync() {
    // The flusher syncs only every hour here, so the cache releaser's write-out is the first
    // to meet the (injected) writeback error: the store must stop accepting writes, because
    // the kernel would not report that error to a later fsync of the same file.
    let dir = tempfile::tempdir().unwrap();
    let fs = raft_log::fs::FaultyFs::new();
    let faults = fs.faults();
    let config = raft_log::LogConfig::new(dir.path())
        .segment_size(SEGMENT)
        .flush(raft_log::FlushMode::Async {
            interval: Duration::from_secs(3600),
        })
        .cache_window(Some(WINDOW));
    let store = LogStore::open_with_fs(config, std::sync::Arc::new(fs)).unwrap();
    // Below window + one release step nothing is written out yet.
    for index in 1..=30 {
        append(&store, index).unwrap();
    }
    faults.fail_syncs(true);
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut index = 31;
    let refused = loop {
        match append(&store, index) {
            Ok(_) => index += 1,
            Err(e) => break e,
        }
        assert!(
            Instant::now() < deadline,
            "the store still accepts writes after {index} entries with write-out failing"
        );
        if index > 60 {
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    assert!(
        refused.to_string().contains("writing log data out failed"),
        "{refused}"
    );
    drop(store);
    faults.heal();
    let store = LogStore::open(async_config(dir.path(), SEGMENT)).unwrap();
    assert_eq!(store.read(30).unwrap().body[..], body(30)[..]);
}
