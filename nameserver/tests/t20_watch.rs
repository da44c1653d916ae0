//! WatchRoutes against a real `mqnamesrv`: snapshot first, then a leader change, a refused
//! stale leader, and a member expiring — each seen on the stream as it happens.

mod common;

use common::{
    eventually, member, next_matching, node_ids, register, wait_for_group, watch, Heartbeats,
    Namesrv, TOPIC,
};
use proto::v1 as pb;
use proto::v1::route_event::Change;

const GROUP: &str = "RaftNode00";

/// The group's new state, if `event` is an update of [`GROUP`].
fn group_update(event: &pb::RouteEvent) -> Option<&pb::GroupRoute> {
    match &event.change {
        Some(Change::GroupUpdated(group)) if group.broker_name == GROUP => Some(group),
        _ => None,
    }
}

#[tokio::test]
async fn t20_watch_sees_snapshot_leader_change_and_expiry() {
    let namesrv = Namesrv::start(&[
        "--set",
        "brokerExpiryMs=1000",
        "--set",
        "scanNotActiveBrokerInterval=50",
    ]);
    let mut client = namesrv.client();
    let heartbeats = Heartbeats::start(
        &namesrv.url(),
        vec![
            member(GROUP, 0, 1, true),
            member(GROUP, 1, 1, false),
            member(GROUP, 2, 1, false),
        ],
    );
    wait_for_group(&client, GROUP, "all three members registered", |g| {
        g.members.len() == 3
    })
    .await;

    // The first event is the whole table.
    let (mut stream, first) = watch(&mut client).await;
    assert!(!first.epoch.is_empty());
    let Some(Change::Snapshot(snapshot)) = &first.change else {
        panic!("first event is not a snapshot: {first:?}");
    };
    assert_eq!(snapshot.groups.len(), 1);
    assert_eq!(snapshot.groups[0].leader_node_id, Some(0));
    assert_eq!(snapshot.groups[0].term, 1);
    assert_eq!(node_ids(&snapshot.groups[0]), [0, 1, 2]);
    assert_eq!(snapshot.topics[0].topic, TOPIC);

    // n1 wins the election in term 2 and registers at once.
    let won = register(&mut client, member(GROUP, 1, 2, true)).await;
    assert!(won.leader_accepted);
    heartbeats.set(vec![
        member(GROUP, 0, 1, true), // the old master has not heard of term 2 yet
        member(GROUP, 1, 2, true),
        member(GROUP, 2, 2, false),
    ]);
    let change = next_matching(&mut stream, "the leader change to n1", |e| {
        group_update(e).is_some_and(|g| g.leader_node_id == Some(1))
    })
    .await;
    assert_eq!(change.epoch, first.epoch);
    assert!(change.version > first.version);
    let group = group_update(&change).unwrap();
    assert_eq!(group.term, 2);
    assert_eq!(group.leader_addr, "127.0.0.1:30911");

    // The old master still claims term 1: refused, and the answer says who leads.
    let stale = register(&mut client, member(GROUP, 0, 1, true)).await;
    assert!(!stale.leader_accepted);
    let recorded = stale.group.unwrap();
    assert_eq!((recorded.leader_node_id, recorded.term), (Some(1), 2));

    // n0 stops heartbeating: after the 1 s expiry it leaves the route, on the stream too.
    heartbeats.set(vec![member(GROUP, 1, 2, true), member(GROUP, 2, 2, false)]);
    let expired = next_matching(&mut stream, "n0 expiring", |e| {
        group_update(e).is_some_and(|g| g.members.iter().all(|m| m.node_id != 0))
    })
    .await;
    let group = group_update(&expired).unwrap();
    assert_eq!(node_ids(group), [1, 2]);
    assert_eq!(group.leader_node_id, Some(1), "the stale master never led");
    assert!(expired.version > change.version);
    // The operator is told too (the log line may trail the event a little).
    eventually("the expiry in the log", || async {
        namesrv
            .stderr_text()
            .contains("broker expired")
            .then_some(())
    })
    .await;
}

#[tokio::test]
async fn t21_last_member_expiring_removes_topic_then_group() {
    let namesrv = Namesrv::start(&[
        "--set",
        "brokerExpiryMs=300",
        "--set",
        "scanNotActiveBrokerInterval=20",
    ]);
    let mut client = namesrv.client();
    let (mut stream, first) = watch(&mut client).await;
    assert!(matches!(&first.change, Some(Change::Snapshot(s)) if s.groups.is_empty()));

    register(&mut client, member(GROUP, 0, 1, true)).await;
    // No heartbeat follows: the group appears, then its topic goes, then the group.
    let mut seen = Vec::new();
    let mut last = first.version;
    next_matching(&mut stream, "the group's removal", |e| {
        assert_eq!(e.version, last + 1, "versions are consecutive");
        last = e.version;
        seen.push(match &e.change {
            Some(Change::GroupUpdated(g)) => format!("group {}", g.broker_name),
            Some(Change::TopicUpdated(t)) => format!("topic {}", t.topic),
            Some(Change::TopicRemoved(t)) => format!("-topic {t}"),
            Some(Change::GroupRemoved(g)) => format!("-group {}", g.broker_name),
            other => format!("{other:?}"),
        });
        matches!(e.change, Some(Change::GroupRemoved(_)))
    })
    .await;
    assert_eq!(
        seen,
        [
            format!("group {GROUP}"),
            format!("topic {TOPIC}"),
            format!("-topic {TOPIC}"),
            format!("-group {GROUP}"),
        ]
    );
}
