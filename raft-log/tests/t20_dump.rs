//! `raft-log-dump`, run as a process: a healthy store, a flipped byte in a sealed segment, a
//! torn tail, a missing directory; and the dump never changes the files it reads.

use std::collections::BTreeMap;
use std::fs::OpenOptions;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use raft_log::{EntryKind, FlushMode, LogConfig, LogStore, NewEntry, SegmentInfo};

const SEGMENT: u64 = 4096;
const ENTRIES: u64 = 100;

fn config(dir: &Path) -> LogConfig {
    LogConfig::new(dir)
        .segment_size(SEGMENT)
        .flush(FlushMode::Sync)
}

/// A closed store of `1..=ENTRIES` over several segments; returns its segments and every
/// entry's global position.
fn build(dir: &Path) -> (Vec<SegmentInfo>, Vec<u64>) {
    let store = LogStore::open(config(dir)).expect("open");
    let mut positions = Vec::new();
    for index in 1..=ENTRIES {
        let body = vec![index as u8; 90 + (index % 11) as usize];
        store
            .append(&[NewEntry {
                index,
                term: 1 + index / 40,
                kind: EntryKind::Normal,
                body: &body,
            }])
            .expect("append");
        positions.push(store.read(index).expect("read").position);
    }
    let segments = store.segments();
    store.close().expect("close");
    assert!(segments.len() >= 3, "{segments:?}");
    (segments, positions)
}

fn dump(args: &[&str], dir: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_raft-log-dump"))
        .args(args)
        .arg(dir)
        .output()
        .expect("run raft-log-dump")
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Every file's bytes, to show the dump changed nothing.
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    std::fs::read_dir(dir)
        .expect("read dir")
        .map(|e| {
            let path = e.expect("dir entry").path();
            let bytes = std::fs::read(&path).expect("read file");
            (path, bytes)
        })
        .collect()
}

fn write_at(path: &Path, offset: u64, bytes: &[u8]) {
    let file = OpenOptions::new().write(true).open(path).expect("open");
    file.write_all_at(bytes, offset).expect("write");
}

#[test]
fn healthy_store_verifies_and_dumps() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (segments, _) = build(dir.path());

    let out = dump(&["--verify"], dir.path());
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert!(stdout(&out).starts_with("ok: "), "{out:?}");
    assert_eq!(stdout(&out).lines().count(), 1, "{out:?}");

    let out = dump(&[], dir.path());
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let text = stdout(&out);
    assert!(text.contains("problems: none"), "{text}");
    assert!(text.contains("log: indexes 1..=100, 100 entries"), "{text}");
    assert!(text.contains("terms: term 1: 1..="), "{text}");
    for seg in &segments {
        let name = seg.path.file_name().and_then(|n| n.to_str()).expect("name");
        assert!(text.contains(name), "{name} missing from\n{text}");
    }

    let out = dump(&["--json"], dir.path());
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(json["entries"], 100);
    assert_eq!(json["problems"], serde_json::json!([]));
    assert_eq!(
        json["segments"].as_array().map(Vec::len),
        Some(segments.len())
    );
}

#[test]
fn flipped_byte_in_a_sealed_segment_is_named_by_file_and_offset() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (segments, positions) = build(dir.path());
    let sealed = &segments[1];
    let index = sealed.first_index + 2;
    let position = positions[index as usize - 1];
    let offset = position - sealed.base_position;
    // A byte in the middle of the entry's body.
    let mut byte = [0u8; 1];
    let file = OpenOptions::new()
        .read(true)
        .open(&sealed.path)
        .expect("open");
    file.read_exact_at(&mut byte, offset + 48 + 30)
        .expect("read");
    write_at(&sealed.path, offset + 48 + 30, &[byte[0] ^ 0x01]);
    let before = snapshot(dir.path());

    let out = dump(&["--verify"], dir.path());
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let line = stdout(&out);
    assert_eq!(line.lines().count(), 1, "{line}");
    let expected = format!("{}: byte {offset}: corruption: ", sealed.path.display());
    assert!(
        line.starts_with(&expected),
        "{line:?} should start with {expected:?}"
    );
    assert!(line.contains("body checksum mismatch"), "{line}");
    assert!(
        line.contains(&format!("reading index {index} fails")),
        "{line}"
    );

    let out = dump(&[], dir.path());
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(stdout(&out).contains(&expected), "{}", stdout(&out));
    assert_eq!(before, snapshot(dir.path()), "the dump changed a file");
}

#[test]
fn torn_tail_is_reported_as_such_and_left_alone() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (segments, positions) = build(dir.path());
    let last = segments.last().expect("a segment");
    let position = positions[ENTRIES as usize - 1];
    let offset = position - last.base_position;
    // The last entry's header landed, most of its body did not.
    write_at(&last.path, offset + 60, &[0u8; 100]);
    let before = snapshot(dir.path());

    let out = dump(&["--verify"], dir.path());
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let line = stdout(&out);
    let expected = format!("{}: byte {offset}: torn tail: ", last.path.display());
    assert!(
        line.starts_with(&expected),
        "{line:?} should start with {expected:?}"
    );
    assert!(line.contains("truncates the log here"), "{line}");
    assert_eq!(before, snapshot(dir.path()), "the dump repaired the tail");

    // The store agrees: opening drops exactly the torn entry.
    let store = LogStore::open(config(dir.path())).expect("reopen");
    assert_eq!(store.last_log_id().map(|l| l.index), Some(ENTRIES - 1));
    drop(store);
    let out = dump(&["--verify"], dir.path());
    assert_eq!(out.status.code(), Some(0), "{out:?}");
}

#[test]
fn missing_directory_is_a_usage_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let missing = dir.path().join("nope");
    let out = dump(&["--verify"], &missing);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("nope"), "{err}");
    assert!(!missing.exists(), "the dump created the directory");
}
