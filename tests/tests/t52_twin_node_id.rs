//! Two brokers started with one `dLegerSelfId`: the second is refused with one line naming
//! both, instead of taking turns with the first as that node in the nameserver's routes (and
//! in the group's votes).

mod common;

use std::process::Command;

use common::{bin, free_port, workspace_root, System};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_broker_with_the_same_node_id_is_refused_naming_both() {
    let system = System::start(1).await;
    let n0 = system.broker_addrs[0].clone();
    let dir = tempfile::tempdir().expect("temp dir");
    let (port, raft_port) = (free_port(), free_port());
    // Its own copy of n0's file, on other ports: what a copied property file does.
    let peers = format!("n0-127.0.0.1:{raft_port};n1-127.0.0.1:1;n2-127.0.0.1:2");
    let twin = format!("127.0.0.1:{port}");
    let out = Command::new(bin("mqbroker"))
        .arg("-c")
        .arg(workspace_root().join("conf/dledger/broker-n0.properties"))
        .args([
            "--set",
            &format!("storePathRootDir={}", dir.path().display()),
        ])
        .args(["--set", &format!("listenPort={port}")])
        .args(["--set", &format!("dLegerPeers={peers}")])
        .args(["--set", &format!("namesrvAddr={}", system.namesrv_list())])
        .output()
        .expect("run mqbroker");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let line = stderr
        .lines()
        .find(|l| l.starts_with("mqbroker:"))
        .unwrap_or_else(|| panic!("no error line: {stderr}"));
    assert!(!out.status.success(), "the twin started: {stderr}");
    assert!(
        line.contains(&n0) && line.contains(&twin) && line.contains("dLegerSelfId"),
        "{line}"
    );
    // The nameserver still names the first broker as node 0.
    let route = system.namesrvs[0].group_route().await.expect("route");
    let node0 = route
        .members
        .iter()
        .find(|m| m.node_id == 0)
        .expect("node 0");
    assert_eq!(node0.broker_addr, n0);
}
