//! A nameserver keeps nothing on disk: after kill -9 and a restart on the same port, the
//! brokers' heartbeats rebuild the same routes, under a new epoch.

mod common;

use common::{member, node_ids, wait_for_group, watch, Heartbeats, Namesrv};
use proto::v1 as pb;

const GROUP: &str = "RaftNode00";

/// The epoch a fresh watcher of `namesrv` is told.
async fn epoch(namesrv: &Namesrv) -> String {
    watch(&mut namesrv.client()).await.1.epoch
}

/// The group as `namesrv` routes it once it has three members led by n1 in term 2.
async fn rebuilt_group(namesrv: &Namesrv) -> pb::GroupRoute {
    wait_for_group(
        &namesrv.client(),
        GROUP,
        "three members led by n1 in term 2",
        |g| g.members.len() == 3 && g.leader_node_id == Some(1),
    )
    .await
}

#[tokio::test]
async fn t30_restart_on_same_port_is_rebuilt_from_heartbeats() {
    let first = Namesrv::start(&[]);
    let addr = first.addr;
    let _heartbeats = Heartbeats::start(
        &first.url(),
        vec![
            member(GROUP, 0, 2, false),
            member(GROUP, 1, 2, true),
            member(GROUP, 2, 2, false),
        ],
    );
    let before = rebuilt_group(&first).await;
    let first_epoch = epoch(&first).await;

    first.kill9();
    let port = addr.port().to_string();
    let second = Namesrv::start(&["--set", &format!("listenPort={port}")]);
    assert_eq!(second.addr, addr);

    let after = rebuilt_group(&second).await;
    assert_eq!(node_ids(&after), node_ids(&before));
    assert_eq!((after.leader_node_id, after.term), (Some(1), 2));
    assert_eq!(after.leader_addr, before.leader_addr);
    let second_epoch = epoch(&second).await;
    assert_ne!(
        second_epoch, first_epoch,
        "a restarted nameserver has a new epoch"
    );

    // The restarted nameserver refuses a stale master as the first one did.
    let mut client = second.client();
    let stale = common::register(&mut client, member(GROUP, 0, 1, true)).await;
    assert!(!stale.leader_accepted);
}
