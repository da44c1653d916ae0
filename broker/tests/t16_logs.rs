//! What the replicas write to their log files (stderr sent to a file, as `mqcluster` and these
//! tests do): plain text, without terminal colour codes, and a dead peer reported once per
//! change instead of once per retried RPC.

mod common;

use std::time::Duration;

use common::{wait_for, Group};

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

/// How many lines the survivors may add in [`WINDOW`] once a dead peer has been reported:
/// a handful (an election's lines, a registration), not openraft's ~30 a second.
const HANDFUL: usize = 5;
/// How long the survivors' logs are watched for repeats about the dead peer.
const WINDOW: Duration = Duration::from_secs(3);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_peer_is_logged_once_when_it_goes_and_once_when_it_returns() {
    let mut group = Group::start(&[]);
    let leader = group.leader().await;
    let dead = (leader + 1) % 3;
    let survivors: Vec<usize> = (0..3).filter(|&i| i != dead).collect();
    let gone = format!("peer {dead} unreachable");
    let back = format!("peer {dead} reachable again");

    group.nodes[dead].kill9();
    wait_for(
        "the leader to report the dead peer",
        Duration::from_secs(10),
        || async { log_of(&group, leader).contains(&gone).then_some(()) },
    )
    .await;
    // Past the first moments (in-flight calls failing one by one), then a quiet window.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before: Vec<usize> = survivors
        .iter()
        .map(|&i| lines(&log_of(&group, i)))
        .collect();
    tokio::time::sleep(WINDOW).await;
    for (&i, before) in survivors.iter().zip(before) {
        let log = log_of(&group, i);
        let added = lines(&log) - before;
        assert!(
            added <= HANDFUL,
            "n{i} logged {added} lines in {WINDOW:?} with n{dead} dead; the last ones:\n{}",
            tail(&log, added.min(10))
        );
    }
    assert_eq!(log_of(&group, leader).matches(&gone).count(), 1);

    group.restart(dead);
    wait_for(
        "the leader to report the peer back",
        Duration::from_secs(20),
        || async { log_of(&group, leader).contains(&back).then_some(()) },
    )
    .await;
    let log = log_of(&group, leader);
    assert_eq!(log.matches(&gone).count(), 1, "{log}");
    assert_eq!(log.matches(&back).count(), 1, "{log}");
}

fn lines(text: &str) -> usize {
    text.lines().count()
}

/// The last `n` lines of `text`.
fn tail(text: &str, n: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(n)..].join("\n")
}
