//! `mqcluster` on the classic layouts, with real `mqnamesrv` and `mqbroker` processes.
//!
//! `2m-2s-sync`: `up` returns only once each group's slave and the nameserver's witness vote
//! and the slave is in sync; the witness store lives in the cluster's data dir and survives a
//! nameserver restart (a failover after it still gets the witness's vote); `kill --leader`
//! makes the slave take over in a higher term, and a restarted master takes leadership back;
//! after a failover `kill --leader` kills the slave, which leads then. `2m-noslave`: `up` with
//! a master per group and nothing to wait for.

mod common;

use common::{recorded, runs, text, Cluster};
use serde_json::Value;

/// Group `name` of a `status --json`.
fn group<'a>(status: &'a Value, name: &str) -> &'a Value {
    status["groups"]
        .as_array()
        .and_then(|groups| groups.iter().find(|g| g["name"] == name))
        .unwrap_or_else(|| panic!("no group {name} in {status:#}"))
}

fn leader(status: &Value, name: &str) -> Option<String> {
    group(status, name)["leader"].as_str().map(str::to_owned)
}

fn term(status: &Value, name: &str) -> u64 {
    group(status, name)["term"].as_u64().unwrap_or(0)
}

/// Whether group `name` is replicated as 2m-2s means: `slave` voting and in sync, the
/// witness voting, as the leader reports it to the nameserver.
fn in_sync(status: &Value, name: &str, slave: &str) -> bool {
    let replicas = group(status, name)["replicas"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let slave_ok = replicas
        .iter()
        .any(|r| r["name"] == slave && r["voter"] == true && r["in_sync"] == true);
    let witness_ok = replicas
        .iter()
        .any(|r| r["name"] == "witness" && r["witness"] == true && r["voter"] == true);
    slave_ok && witness_ok
}

/// The node `name` of a `status --json`.
fn node<'a>(status: &'a Value, name: &str) -> &'a Value {
    status["nodes"]
        .as_array()
        .and_then(|nodes| nodes.iter().find(|n| n["name"] == name))
        .unwrap_or_else(|| panic!("no node {name} in {status:#}"))
}

fn succeeded(cluster: &Cluster, args: &[&str]) -> String {
    let out = cluster.run(args);
    assert!(
        out.status.success(),
        "{args:?}: {}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    text(&out.stdout)
}

#[test]
fn t30_2m_2s_sync_up_failover_and_handback() {
    let (cluster, out) = Cluster::up(&["--layout", "2m-2s-sync"]);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "up failed: {}", text(&out.stderr));

    // up returned with both groups led by their masters, slaves and witnesses voting in sync,
    // and said so.
    for line in [
        "broker-a: leader broker-a in term",
        "  broker-a-s  voter, in sync, ",
        "  broker-b-s  voter, in sync, ",
        "  witness     voter (witness on 127.0.0.1:",
        "kill --leader broker-a",
    ] {
        assert!(stdout.contains(line), "{line:?} missing from:\n{stdout}");
    }
    let status = cluster.status();
    for (g, slave) in [("broker-a", "broker-a-s"), ("broker-b", "broker-b-s")] {
        assert_eq!(leader(&status, g).as_deref(), Some(g), "{status:#}");
        assert!(in_sync(&status, g, slave), "{g} not in sync: {status:#}");
    }

    // The witnesses live in the cluster's data dir, named on the nameserver's command line.
    let namesrv_dir = cluster
        .dir
        .canonicalize()
        .expect("data dir")
        .join("namesrv");
    let witness_dir = namesrv_dir.join("witness");
    for g in ["broker-a", "broker-b"] {
        assert!(witness_dir.join(g).is_dir(), "no witness store for {g}");
    }
    let json: Value = serde_json::from_slice(
        &std::fs::read(cluster.dir.join("cluster.json")).expect("cluster.json"),
    )
    .expect("cluster.json is JSON");
    let namesrv_command: Vec<&str> = json["nodes"][0]["command"]
        .as_array()
        .expect("command")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    let witness_arg = format!("witnessStorePath={}", witness_dir.display());
    assert!(
        namesrv_command.contains(&witness_arg.as_str()),
        "{namesrv_command:?}"
    );

    // A nameserver restart reopens the same witness stores: the groups get back to in sync
    // with a voting witness, and the failover below needs that witness's vote.
    let restarted = succeeded(&cluster, &["restart", "namesrv"]);
    // It was running: stopped first, then started with the same command line.
    assert!(
        restarted.starts_with("stopped namesrv (pid "),
        "{restarted}"
    );
    assert!(
        restarted.contains("\nrestarted namesrv (pid "),
        "{restarted}"
    );
    cluster.wait_for("in sync again after the nameserver restart", |s| {
        in_sync(s, "broker-a", "broker-a-s") && in_sync(s, "broker-b", "broker-b-s")
    });

    // kill --leader broker-a: the slave takes over in a higher term.
    let old_term = term(&cluster.status(), "broker-a");
    let killed = succeeded(&cluster, &["kill", "--leader", "broker-a"]);
    assert!(
        killed.starts_with("killed broker-a/broker-a (pid "),
        "{killed}"
    );
    let status = cluster.wait_for("broker-a-s leading in a higher term", |s| {
        leader(s, "broker-a").as_deref() == Some("broker-a-s") && term(s, "broker-a") > old_term
    });
    assert_eq!(node(&status, "broker-a")["alive"], false);
    let failover_term = term(&status, "broker-a");
    // The other group did not notice.
    assert_eq!(leader(&status, "broker-b").as_deref(), Some("broker-b"));

    // restart broker-a: it catches up and takes leadership back.
    let restarted = succeeded(&cluster, &["restart", "broker-a"]);
    assert!(
        restarted.starts_with("restarted broker-a/broker-a (pid "),
        "{restarted}"
    );
    cluster.wait_for("broker-a leading again, broker-a-s in sync", |s| {
        leader(s, "broker-a").as_deref() == Some("broker-a")
            && term(s, "broker-a") > failover_term
            && in_sync(s, "broker-a", "broker-a-s")
    });

    // After a failover the group's leader is the slave, and kill --leader kills that.
    succeeded(&cluster, &["kill", "--leader", "broker-b"]);
    cluster.wait_for("broker-b-s leading", |s| {
        leader(s, "broker-b").as_deref() == Some("broker-b-s")
    });
    let killed = succeeded(&cluster, &["kill", "--leader", "broker-b"]);
    assert!(
        killed.starts_with("killed broker-b/broker-b-s (pid "),
        "{killed}"
    );
    let text_status = succeeded(&cluster, &["status"]);
    assert!(
        text_status.contains("broker-b: no leader;"),
        "{text_status}"
    );

    // down stops every process; the witness stores stay with the data.
    let before = recorded(&cluster.dir);
    assert_eq!(before.len(), 5);
    let stopped = succeeded(&cluster, &["down"]);
    assert_eq!(stopped.lines().count(), 3, "{stopped}");
    for (pid, command) in &before {
        assert!(!runs(*pid, command), "pid {pid} survived down");
    }
    assert!(recorded(&cluster.dir).is_empty(), "down forgets the pids");
    assert!(witness_dir.join("broker-a").is_dir());
}

#[test]
fn t31_2m_noslave_up_and_down() {
    let (cluster, out) = Cluster::up(&["--layout", "2m-noslave"]);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "up failed: {}", text(&out.stderr));
    assert!(stdout.contains("no slave: broker-a is down"), "{stdout}");

    let status = cluster.status();
    assert_eq!(status["layout"], "2m-noslave");
    for g in ["broker-a", "broker-b"] {
        assert_eq!(leader(&status, g).as_deref(), Some(g), "{status:#}");
        assert_eq!(group(&status, g)["namesrv_routes"][0]["state"], "leader");
        // No slave, no witness.
        assert_eq!(group(&status, g)["replicas"], serde_json::json!([]));
    }

    let stopped = succeeded(&cluster, &["down"]);
    assert_eq!(stopped.lines().count(), 3, "{stopped}");
    assert!(recorded(&cluster.dir).is_empty());
}
