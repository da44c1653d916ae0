//! `mqcluster` end to end, with real `mqnamesrv` and `mqbroker` processes: `up` brings the
//! dledger layout up and returns, `status --json` sees it, `kill --leader` is followed by a
//! new leader in a higher term, `restart` brings the killed node back, `down` stops
//! everything.

mod common;

use common::{group, live_and_leaders, recorded, runs, text, Cluster};

#[test]
fn t10_up_kill_leader_restart_down() {
    let (cluster, out) = Cluster::up(&[]);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "up failed: {}", text(&out.stderr));

    // The nameserver address comes first; then the table and the next steps.
    let first = stdout.lines().next().unwrap_or_default();
    assert!(first.starts_with("namesrv 127.0.0.1:"), "{stdout}");
    assert!(stdout.contains("kill --leader RaftNode00"), "{stdout}");
    assert!(stdout.contains("export NAMESRV_ADDR="), "{stdout}");

    // up returned only once a leader was registered at the nameserver.
    let status = cluster.status();
    assert_eq!(
        status["namesrv"][0].as_str(),
        first.strip_prefix("namesrv ")
    );
    let (live, leaders) = live_and_leaders(&status);
    assert_eq!(live, 4, "{status:#}");
    assert_eq!(leaders.len(), 1, "{status:#}");
    assert_eq!(group(&status)["name"], "RaftNode00");
    assert_eq!(group(&status)["leader"].as_str(), Some(leaders[0].as_str()));
    assert_eq!(group(&status)["namesrv_routes"][0]["state"], "leader");
    assert_eq!(
        group(&status)["namesrv_routes"][0]["leader"].as_str(),
        Some(leaders[0].as_str())
    );
    let old_term = group(&status)["term"].as_u64().expect("term");

    // kill --leader: the old leader is gone, another takes over in a higher term.
    let out = cluster.run(&["kill", "--leader", "RaftNode00"]);
    assert!(out.status.success(), "kill: {}", text(&out.stderr));
    let old_leader = leaders[0].clone();
    assert!(
        text(&out.stdout).starts_with(&format!("killed RaftNode00/{old_leader} (pid ")),
        "{}",
        text(&out.stdout)
    );
    let status = cluster.wait_for("a new leader in a higher term", |s| {
        let leader = group(s)["leader"].as_str();
        leader.is_some_and(|l| l != old_leader)
            && group(s)["term"].as_u64().is_some_and(|t| t > old_term)
    });
    let (live, _) = live_and_leaders(&status);
    assert_eq!(live, 3, "{status:#}");
    let killed = status["nodes"]
        .as_array()
        .expect("nodes")
        .iter()
        .find(|n| n["name"] == old_leader.as_str())
        .expect("the killed node is still listed");
    assert_eq!(killed["alive"], false);
    let new_term = group(&status)["term"].as_u64().expect("term");

    // Killing a dead node is an error, one line.
    let out = cluster.run(&["kill", &old_leader]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("is not running"),
        "{}",
        text(&out.stderr)
    );

    // restart brings it back with the same command line; it rejoins the group.
    let out = cluster.run(&["restart", &old_leader]);
    assert!(out.status.success(), "restart: {}", text(&out.stderr));
    assert!(
        text(&out.stdout).starts_with(&format!("restarted RaftNode00/{old_leader} (pid ")),
        "{}",
        text(&out.stdout)
    );
    let status = cluster.wait_for("4 live nodes, one leader", |s| {
        let (live, leaders) = live_and_leaders(s);
        live == 4 && leaders.len() == 1
    });
    assert!(group(&status)["term"]
        .as_u64()
        .is_some_and(|t| t >= new_term));

    // down stops everything: no recorded pid runs its command any more.
    let before = recorded(&cluster.dir);
    assert_eq!(before.len(), 4);
    let out = cluster.run(&["down"]);
    assert!(out.status.success(), "down: {}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout).lines().count(),
        4,
        "{}",
        text(&out.stdout)
    );
    for (pid, command) in &before {
        assert!(!runs(*pid, command), "pid {pid} survived down");
    }
    let (live, _) = live_and_leaders(&cluster.status());
    assert_eq!(live, 0);
    assert!(recorded(&cluster.dir).is_empty(), "down forgets the pids");
    // The stores and logs stay.
    assert!(cluster.dir.join("n0").is_dir());
    assert!(cluster.dir.join("logs/n0.log").is_file());
}
