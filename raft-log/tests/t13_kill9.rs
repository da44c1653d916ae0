//! kill -9 of a real process that appends with SYNC_FLUSH: after reopening, every entry the
//! writer saw flushed is there, and the log is a whole prefix of what it wrote.
//!
//! The writer is this test binary itself, re-run with `RAFT_LOG_KILL9_DIR` set: the
//! `writer_child` test then appends until killed and prints each flushed index.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{body_for, sync_config};
use raft_log::{EntryKind, LogStore, NewEntry};

const SEGMENT: u64 = 64 * 1024;
const CHILD_ENV: &str = "RAFT_LOG_KILL9_DIR";

#[test]
fn writer_child() {
    let Ok(dir) = std::env::var(CHILD_ENV) else {
        return; // only meaningful as the child of `kill9_loses_no_flushed_entry`
    };
    let store = LogStore::open(sync_config(dir.as_ref(), SEGMENT)).unwrap();
    let mut index = store.last_log_id().map_or(1, |l| l.index + 1);
    loop {
        // Batches of 1..=8 entries, so kills land inside multi-entry writes too.
        let n = 1 + index % 8;
        let bodies: Vec<Vec<u8>> = (index..index + n).map(body_for).collect();
        let batch: Vec<NewEntry<'_>> = bodies
            .iter()
            .enumerate()
            .map(|(i, b)| NewEntry {
                index: index + i as u64,
                term: 1,
                kind: EntryKind::Normal,
                body: b,
            })
            .collect();
        let a = store.append(&batch).unwrap();
        store.wait_flushed(a.seq).unwrap();
        index += n;
        println!("flushed {}", index - 1);
    }
}

#[test]
fn kill9_loses_no_flushed_entry() {
    if std::env::var(CHILD_ENV).is_ok() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let exe = std::env::current_exe().unwrap();
    let mut acked = 0u64;
    for round in 0..6u64 {
        let mut child = Command::new(&exe)
            .args(["--exact", "writer_child", "--nocapture", "--test-threads=1"])
            .env(CHILD_ENV, dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let mut lines = BufReader::new(stdout).lines();
        // Let it run for a while (a count of acks, not a sleep), then kill -9.
        let want = 40 + round * 37;
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut seen = 0;
        while seen < want && Instant::now() < deadline {
            match lines.next() {
                Some(Ok(line)) => {
                    if let Some(n) = line.strip_prefix("flushed ") {
                        acked = acked.max(n.trim().parse().unwrap());
                        seen += 1;
                    }
                }
                _ => break,
            }
        }
        assert!(
            seen >= want,
            "writer made too little progress ({seen} acks)"
        );
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        // Acks the child printed before it died also count.
        for line in lines.map_while(Result::ok) {
            if let Some(n) = line.strip_prefix("flushed ") {
                acked = acked.max(n.trim().parse().unwrap());
            }
        }

        let store = LogStore::open(sync_config(dir.path(), SEGMENT)).unwrap();
        let last = store.last_log_id().map_or(0, |l| l.index);
        assert!(
            last >= acked,
            "round {round}: acked {acked} but the log ends at {last}"
        );
        for index in 1..=last {
            let e = store
                .read(index)
                .unwrap_or_else(|e| panic!("read {index}: {e}"));
            assert_eq!(e.body[..], body_for(index)[..]);
        }
    }
}
