//! The nameserver tracks the group's leader: after kill -9 of the leader, the route names the
//! new leader with a higher term and no longer lists the dead one (long before its heartbeat
//! timeout), each survivor keeps its brokerId but the new leader's 0, and a stale registration
//! from the old leader (lower term) does not replace the new one.

mod common;

use std::time::Duration;

use common::{wait_for, Group};
use proto::v1::name_service_client::NameServiceClient;
use proto::v1::{self as pb};
use tonic::transport::Channel;

/// An in-process nameserver on an ephemeral port; stops when the returned sender drops.
async fn start_nameserver() -> (String, tokio::sync::oneshot::Sender<()>) {
    let witness_dir = tempfile::tempdir().expect("temp dir").keep();
    let config = nameserver::NamesrvConfig {
        listen_port: 0,
        witness_store_path: witness_dir,
        ..Default::default()
    };
    let listener = nameserver::bind(&config).await.expect("bind nameserver");
    let addr = listener.local_addr().expect("addr").to_string();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(nameserver::serve(listener, config, async move {
        let _ = rx.await;
    }));
    (addr, tx)
}

/// A client of the nameserver at `addr`, connecting on first use.
fn name_service(addr: &str) -> NameServiceClient<Channel> {
    NameServiceClient::new(
        Channel::from_shared(format!("http://{addr}"))
            .expect("a valid nameserver URI")
            .connect_lazy(),
    )
}

async fn group_route(client: &mut NameServiceClient<Channel>) -> Option<pb::GroupRoute> {
    let info = client
        .get_cluster_info(pb::GetClusterInfoRequest::default())
        .await
        .ok()?
        .into_inner();
    info.clusters
        .into_iter()
        .flat_map(|c| c.groups)
        .find(|g| g.broker_name == "RaftNode00")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_route_follows_the_leader_and_ignores_a_stale_one() {
    let (ns_addr, _stop) = start_nameserver().await;
    // Heartbeats 1 s apart, so a dead member expires only after 5 s.
    let mut group = Group::start(&[
        &format!("namesrvAddr={ns_addr}"),
        "registerNameServerPeriod=1000",
    ]);
    let mut ns = name_service(&ns_addr);

    let leader = group.leader().await;
    let first = wait_for(
        "the nameserver to know the leader and all members",
        Duration::from_secs(20),
        || {
            let mut ns = ns.clone();
            async move {
                let g = group_route(&mut ns).await?;
                (g.leader_node_id == Some(leader as u64) && g.members.len() == 3).then_some(g)
            }
        },
    )
    .await;
    assert_eq!(first.leader_addr, group.nodes[leader].client_addr);
    let ids = |g: &pb::GroupRoute| -> Vec<(u64, u64)> {
        let mut ids: Vec<(u64, u64)> = g.members.iter().map(|m| (m.node_id, m.broker_id)).collect();
        ids.sort_unstable();
        ids
    };
    let want: Vec<(u64, u64)> = (0..3)
        .map(|n| (n, if n == leader as u64 { 0 } else { n + 1 }))
        .collect();
    assert_eq!(ids(&first), want);

    group.nodes[leader].kill9();
    let killed = std::time::Instant::now();
    let new_leader = group.leader().await;
    let second = wait_for(
        "the route to name the new leader",
        Duration::from_secs(20),
        || {
            let mut ns = ns.clone();
            async move {
                let g = group_route(&mut ns).await?;
                (g.leader_node_id == Some(new_leader as u64)).then_some(g)
            }
        },
    )
    .await;
    assert!(
        second.term > first.term,
        "term {} after {}",
        second.term,
        first.term
    );
    assert_eq!(second.leader_addr, group.nodes[new_leader].client_addr);
    // The dead leader left with the election, not with its heartbeat timeout.
    let survivors: Vec<(u64, u64)> = (0..3u64)
        .filter(|&n| n != leader as u64)
        .map(|n| (n, if n == new_leader as u64 { 0 } else { n + 1 }))
        .collect();
    assert_eq!(
        ids(&second),
        survivors,
        "{:?} after the kill",
        killed.elapsed()
    );

    // The old leader, back from the dead with its old term, claims leadership: refused.
    let stale = pb::RegisterBrokerRequest {
        cluster_name: first.cluster_name.clone(),
        broker_name: "RaftNode00".into(),
        broker_id: 0,
        node_id: leader as u64,
        broker_addr: group.nodes[leader].client_addr.clone(),
        ha_addr: String::new(),
        configured_role: pb::BrokerRole::SyncMaster as i32,
        raft_role: pb::RaftRole::Leader as i32,
        term: first.term,
        is_leader: true,
        topics: Vec::new(),
        replicas: Vec::new(),
        heartbeat_timeout_ms: 0,
    };
    let resp = ns.register_broker(stale).await.unwrap().into_inner();
    assert!(!resp.leader_accepted);
    let after = group_route(&mut ns).await.unwrap();
    assert_eq!(after.leader_node_id, Some(new_leader as u64));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_auto_created_topic_is_routed_at_once_not_at_the_next_heartbeat() {
    let (ns_addr, _stop) = start_nameserver().await;
    // Heartbeats 30 s apart: only the registration a topic change triggers can route the
    // topic within the wait below.
    let group = Group::start(&[
        &format!("namesrvAddr={ns_addr}"),
        "registerNameServerPeriod=30000",
    ]);
    let mut ns = name_service(&ns_addr);
    let leader = group.leader().await;
    wait_for(
        "the nameserver to know the leader",
        Duration::from_secs(20),
        || {
            let mut ns = ns.clone();
            async move {
                group_route(&mut ns)
                    .await
                    .filter(|g| g.leader_node_id == Some(leader as u64))
            }
        },
    )
    .await;

    let mut client = group.client(leader).await;
    common::send(&mut client, "AutoRouted", "creates the topic")
        .await
        .expect("send");
    let route = wait_for("the new topic's route", Duration::from_secs(3), || {
        let mut ns = ns.clone();
        async move {
            let resp = ns
                .query_route(pb::QueryRouteRequest {
                    topic: "AutoRouted".into(),
                })
                .await
                .ok()?
                .into_inner();
            resp.topic.filter(|t| !t.queue_datas.is_empty())
        }
    })
    .await;
    let _ = &mut ns;
    assert_eq!(route.queue_datas[0].broker_name, "RaftNode00");
}
