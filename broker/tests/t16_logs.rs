//! What the replicas write to their log files (stderr sent to a file, as `mqcluster` and these
//! tests do): plain text, without terminal colour codes.

mod common;

use common::Group;

/// The replica's log so far.
fn log_of(group: &Group, i: usize) -> String {
    let path = group.dir.path().join(format!("n{i}.log"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The first line of `text` holding an ANSI escape sequence (ESC '['), if any.
fn first_escape(text: &str) -> Option<&str> {
    text.lines().find(|l| l.contains("\x1b["))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn log_files_carry_no_colour_codes() {
    let group = Group::start(&[]);
    group.leader().await;
    for i in 0..3 {
        let log = log_of(&group, i);
        assert!(
            log.contains(" INFO "),
            "n{i} logged no INFO line (nothing to check): {log:?}"
        );
        if let Some(line) = first_escape(&log) {
            panic!("n{i}.log holds colour codes: {line:?}");
        }
    }
}
