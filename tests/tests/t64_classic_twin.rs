//! Two classic brokers with one `brokerId` in a group (a copied `broker-a-s.properties`): the
//! second is refused at start with one line naming both brokers, and the group keeps the first.

mod common;

use std::process::Command;

use common::classic::Classic;
use common::{bin, broker_status, free_port, workspace_root};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_slave_with_the_same_broker_id_is_refused_naming_both() {
    let c = Classic::start("2m-2s-sync", 1, &[("broker-a", &[]), ("broker-a-s", &[])]).await;
    c.wait_in_sync("broker-a").await;
    let slave = &c.nodes[c.index("broker-a-s")].addr;
    let dir = tempfile::tempdir().expect("temp dir");
    let port = free_port();
    let twin = format!("127.0.0.1:{port}");
    let out = Command::new(bin("mqbroker"))
        .arg("-c")
        .arg(workspace_root().join("conf/2m-2s-sync/broker-a-s.properties"))
        .args([
            "--set",
            &format!("storePathRootDir={}", dir.path().display()),
        ])
        .args(["--set", &format!("listenPort={port}")])
        .args(["--set", &format!("haListenPort={}", free_port())])
        .args(["--set", &format!("namesrvAddr={}", c.namesrv_list())])
        .output()
        .expect("run mqbroker");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "the twin started: {stderr}");
    let line = stderr
        .lines()
        .find(|l| l.starts_with("mqbroker:"))
        .unwrap_or_else(|| panic!("no error line: {stderr}"));
    assert!(
        line.contains(slave.as_str()) && line.contains(&twin) && line.contains("brokerId"),
        "{line}"
    );
    // The group still has the first slave in sync.
    let leader = c.leader_of("broker-a").await;
    let status = broker_status(&c.nodes[leader].addr).await.expect("status");
    assert!(
        status.replicas.iter().any(|r| r.node_id == 1 && r.in_sync),
        "{:?}",
        status.replicas
    );
}
