//! Producer behaviour against the in-process fake cluster: queue choice, NOT_LEADER
//! redirects, failover through WatchRoutes, unrouted topics, batches, the in-flight window.

mod common;

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use client::{ClientError, ClientOptions, Cluster, Message, Producer, ProducerConfig, SendStatus};
use common::{group_route, FakeBroker, FakeCluster, FakeNameServer, GroupStore, Role};
use proto::v1::ResponseCode;

async fn producer(namesrv: &str) -> Producer {
    Producer::start(namesrv, ProducerConfig::default())
        .await
        .unwrap()
}

#[tokio::test]
async fn t21_round_robin_over_every_groups_queues() {
    let cluster = FakeCluster::start(&["broker-a", "broker-b"], Some(("T", 2))).await;
    let p = producer(&cluster.namesrv.addr).await;
    for i in 0..8 {
        let r = p.send(Message::new("T", format!("m{i}"))).await.unwrap();
        assert_eq!(r.status, SendStatus::Ok);
    }
    for g in 0..2 {
        for q in 0..2 {
            assert_eq!(
                cluster.store(g).queue("T", q).len(),
                2,
                "group {g} queue {q}"
            );
        }
    }
}

#[tokio::test]
async fn t22_not_leader_is_followed_at_once_and_remembered() {
    let ns = FakeNameServer::start().await;
    let store = GroupStore::new("broker-a");
    store.create_topic("T", 1);
    let leader = FakeBroker::start(Arc::clone(&store), Role::Leader).await;
    let follower = FakeBroker::start(
        Arc::clone(&store),
        Role::Follower {
            leader_addr: leader.addr.clone(),
            term: 2,
        },
    )
    .await;
    // The nameserver still names the old leader (term 1).
    ns.set_group(group_route("broker-a", &[&follower, &leader], Some(0), 1));
    ns.set_topic("T", &[("broker-a", 1)]);

    let p = producer(&ns.addr).await;
    let r = p.send(Message::new("T", "x")).await.unwrap();
    assert_eq!(r.broker_addr, leader.addr);
    assert_eq!(follower.send_requests.load(Ordering::Relaxed), 1);
    // The hint (term 2) beats the nameserver's term 1 record: no second detour.
    p.send(Message::new("T", "y")).await.unwrap();
    assert_eq!(follower.send_requests.load(Ordering::Relaxed), 1);
    assert_eq!(store.count("T"), 2);
}

#[tokio::test]
async fn t23_failover_waits_for_the_new_leader_from_watch_routes() {
    let ns = FakeNameServer::start().await;
    let store = GroupStore::new("broker-a");
    store.create_topic("T", 2);
    let mut old = FakeBroker::start(Arc::clone(&store), Role::Leader).await;
    let new = FakeBroker::start(
        Arc::clone(&store),
        Role::Follower {
            leader_addr: String::new(),
            term: 1,
        },
    )
    .await;
    ns.set_group(group_route("broker-a", &[&old, &new], Some(0), 1));
    ns.set_topic("T", &[("broker-a", 2)]);
    let p = producer(&ns.addr).await;
    p.send(Message::new("T", "before")).await.unwrap();

    old.kill();
    // Let the client see its connection end (as it would after a kill -9) before sending.
    tokio::time::sleep(Duration::from_millis(50)).await;
    let elected_after = Duration::from_millis(400);
    let route = group_route("broker-a", &[&old, &new], Some(1), 2);
    let started = Instant::now();
    let election = async {
        tokio::time::sleep(elected_after).await;
        new.set_role(Role::Leader);
        ns.set_group(route);
    };
    let (sent, ()) = tokio::join!(p.send(Message::new("T", "after")), election);
    let sent = sent.unwrap();
    let took = started.elapsed();
    assert_eq!(sent.broker_addr, new.addr);
    assert!(took >= elected_after, "sent before the election: {took:?}");
    assert!(
        took < elected_after + Duration::from_millis(500),
        "noticed late: {took:?}"
    );
    assert_eq!(store.count("T"), 2);
}

#[tokio::test]
async fn t24_unrouted_topic_goes_to_a_leader_with_any_queue() {
    let cluster = FakeCluster::start(&["broker-a"], None).await;
    let p = producer(&cluster.namesrv.addr).await;
    let r = p.send(Message::new("Fresh", "x")).await.unwrap();
    assert_eq!(r.queue.broker_name, "broker-a");
    assert!(r.queue.queue_id >= 0, "the broker picked the queue");
    assert_eq!(cluster.store(0).count("Fresh"), 1);
}

#[tokio::test]
async fn t25_unknown_topic_without_auto_create_is_reported() {
    let ns = FakeNameServer::start().await;
    let store = GroupStore::with_auto_create("broker-a", false);
    let leader = FakeBroker::start(store, Role::Leader).await;
    ns.set_group(group_route("broker-a", &[&leader], Some(0), 1));
    let p = producer(&ns.addr).await;
    let e = p.send(Message::new("Nope", "x")).await.unwrap_err();
    assert!(matches!(e, ClientError::TopicNotExist { .. }), "{e}");
    assert!(e.to_string().contains("topic Nope does not exist"), "{e}");
}

#[tokio::test]
async fn t26_batch_is_one_queue_with_consecutive_offsets() {
    let cluster = FakeCluster::start(&["broker-a"], Some(("T", 4))).await;
    let p = producer(&cluster.namesrv.addr).await;
    let batch: Vec<Message> = (0..5).map(|i| Message::new("T", format!("b{i}"))).collect();
    let results = p.send_batch(batch).await.unwrap();
    assert_eq!(results.len(), 5);
    let q = results[0].queue.clone();
    for (i, r) in results.iter().enumerate() {
        assert_eq!(r.queue, q);
        assert_eq!(r.queue_offset, results[0].queue_offset + i as u64);
    }
    let mixed = vec![Message::new("T", "a"), Message::new("U", "b")];
    assert!(matches!(
        p.send_batch(mixed).await,
        Err(ClientError::InvalidArgument(_))
    ));
}

#[tokio::test]
async fn t27_send_async_bounds_the_window() {
    let cluster = FakeCluster::start(&["broker-a", "broker-b"], Some(("T", 2))).await;
    let config = ProducerConfig {
        max_in_flight: 4,
        ..ProducerConfig::default()
    };
    let p = Producer::start(&cluster.namesrv.addr, config)
        .await
        .unwrap();
    let mut pending = Vec::new();
    for i in 0..50 {
        pending.push(
            p.send_async(Message::new("T", format!("m{i}")))
                .await
                .unwrap(),
        );
    }
    for s in pending {
        s.await.unwrap();
    }
    assert_eq!(
        cluster.store(0).count("T") + cluster.store(1).count("T"),
        50
    );
}

#[tokio::test]
async fn t28_a_dead_group_is_avoided_when_another_can_take_the_message() {
    let mut cluster = FakeCluster::start(&["broker-a", "broker-b"], Some(("T", 2))).await;
    let p = producer(&cluster.namesrv.addr).await;
    cluster.groups[0].1[0].kill();
    for i in 0..10 {
        let r = p.send(Message::new("T", format!("m{i}"))).await.unwrap();
        assert_eq!(r.queue.broker_name, "broker-b");
    }
    assert_eq!(cluster.store(1).count("T"), 10);
}

#[tokio::test]
async fn t29_any_live_nameserver_will_do() {
    let cluster = FakeCluster::start(&["broker-a"], Some(("T", 1))).await;
    let list = format!("127.0.0.1:1;{}", cluster.namesrv.addr);
    let c = Cluster::connect(&list, ClientOptions::default())
        .await
        .unwrap();
    let p = Producer::new(c, ProducerConfig::default());
    p.send(Message::new("T", "x")).await.unwrap();

    let e = Producer::start("127.0.0.1:1", ProducerConfig::default())
        .await
        .err()
        .unwrap();
    assert!(
        matches!(e, ClientError::NameServerUnreachable { .. }),
        "{e}"
    );
    assert!(e.to_string().contains("127.0.0.1:1"), "{e}");
}

#[tokio::test]
async fn t2a_killing_the_watched_nameserver_does_not_interrupt_sends() {
    let mut cluster = FakeCluster::start(&["broker-a"], Some(("T", 2))).await;
    let standby = FakeNameServer::start().await;
    let store = Arc::clone(cluster.store(0));
    let follower = FakeBroker::start(
        Arc::clone(&store),
        Role::Follower {
            leader_addr: String::new(),
            term: 1,
        },
    )
    .await;
    let route = group_route("broker-a", &[cluster.leader(0), &follower], Some(0), 1);
    cluster.namesrv.set_group(route.clone());
    standby.set_group(route);
    standby.set_topic("T", &[("broker-a", 2)]);

    let list = format!("{};{}", cluster.namesrv.addr, standby.addr);
    let p = Producer::start(&list, ProducerConfig::default())
        .await
        .unwrap();
    p.send(Message::new("T", "0")).await.unwrap();
    cluster.namesrv.kill();
    for i in 1..20 {
        p.send(Message::new("T", format!("{i}"))).await.unwrap();
    }
    // The watch moved to the standby: a leader change it announces is followed.
    cluster.groups[0].1[0].kill();
    follower.set_role(Role::Leader);
    standby.set_group(group_route(
        "broker-a",
        &[cluster.leader(0), &follower],
        Some(1),
        2,
    ));
    tokio::time::sleep(Duration::from_millis(50)).await;
    let started = Instant::now();
    let r = p.send(Message::new("T", "after")).await.unwrap();
    assert_eq!(r.broker_addr, follower.addr);
    assert!(
        started.elapsed() < Duration::from_millis(500),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(store.count("T"), 21);
}

#[tokio::test]
async fn t2b_without_news_from_the_nameserver_other_replicas_point_at_the_leader() {
    let ns = FakeNameServer::start().await;
    let store = GroupStore::new("broker-a");
    store.create_topic("T", 1);
    let mut old = FakeBroker::start(Arc::clone(&store), Role::Leader).await;
    let electing = Role::Follower {
        leader_addr: String::new(),
        term: 1,
    };
    let b = FakeBroker::start(Arc::clone(&store), electing.clone()).await;
    let c = FakeBroker::start(Arc::clone(&store), electing).await;
    ns.set_group(group_route("broker-a", &[&old, &b, &c], Some(0), 1));
    ns.set_topic("T", &[("broker-a", 1)]);
    let p = producer(&ns.addr).await;
    p.send(Message::new("T", "before")).await.unwrap();

    // c wins; b knows it; the nameserver never hears of it.
    old.kill();
    c.set_role(Role::Leader);
    b.set_role(Role::Follower {
        leader_addr: c.addr.clone(),
        term: 2,
    });
    tokio::time::sleep(Duration::from_millis(50)).await;
    let started = Instant::now();
    let r = p.send(Message::new("T", "after")).await.unwrap();
    assert_eq!(r.broker_addr, c.addr);
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    // The next send goes straight to the new leader.
    let before = b.send_requests.load(Ordering::Relaxed);
    p.send(Message::new("T", "next")).await.unwrap();
    assert_eq!(b.send_requests.load(Ordering::Relaxed), before);
}

#[tokio::test]
async fn t2c_a_send_answered_without_results_is_retried_and_stored_once() {
    let cluster = FakeCluster::start(&["broker-a"], Some(("T", 1))).await;
    let store = cluster.store(0);
    let p = producer(&cluster.namesrv.addr).await;
    // The leader stores the message but its quorum does not confirm in time: the answer is
    // FLUSH_SLAVE_TIMEOUT without results, so the send cannot tell where (or whether) it was
    // stored. The retry carries the same UNIQ_KEY; the broker answers with the first copy.
    store.unconfirmed_answers.store(1, Ordering::Relaxed);
    let sent = p.send(Message::new("T", "once")).await.unwrap();
    assert_eq!(sent.status, SendStatus::Ok);
    assert_eq!(sent.queue_offset, 0);
    assert_eq!(store.unconfirmed_answers.load(Ordering::Relaxed), 0);
    let stored = store.queue("T", 0);
    assert_eq!(stored.len(), 1, "stored once: {stored:?}");
    assert_eq!(stored[0].msg_id, sent.msg_id);
    assert_eq!(
        store.stored_requests.load(Ordering::Relaxed),
        2,
        "one retry"
    );

    // Unconfirmed past the send timeout: a failure that says the message may be stored.
    store.unconfirmed_answers.store(u64::MAX, Ordering::Relaxed);
    let p = Producer::start(
        &cluster.namesrv.addr,
        ProducerConfig {
            send_timeout: Duration::from_millis(1500),
            ..ProducerConfig::default()
        },
    )
    .await
    .unwrap();
    let err = p.send(Message::new("T", "unsure")).await.unwrap_err();
    assert_eq!(err.code(), Some(ResponseCode::FlushSlaveTimeout), "{err}");
    assert_eq!(store.queue("T", 0).len(), 2);
}
