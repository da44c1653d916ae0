//! A 3-replica dledger group of real processes: election, sends, identical reads everywhere,
//! a killed leader replaced with no acknowledged message lost, restarts and a wiped replica.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::{code, pull_all, send, wait_for, Group};
use proto::v1::{self as pb, ResponseCode};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_elects_accepts_sends_and_serves_identical_reads() {
    let group = Group::start(&[]);
    let leader = group.leader().await;
    let mut client = group.client(leader).await;
    for i in 0..50 {
        let resp = send(&mut client, "GroupTopic", &format!("m{i}"))
            .await
            .expect("send");
        assert_eq!(resp.results.len(), 1);
        assert_eq!(resp.results[0].queue_offset, i as u64);
    }
    // Followers are told where the leader is.
    let follower = (leader + 1) % 3;
    let mut f = group.client(follower).await;
    match send(&mut f, "GroupTopic", "x").await {
        Err(ResponseCode::NotLeader) => {}
        other => panic!("a follower took a write: {other:?}"),
    }
    let resp = f
        .send_message(pb::SendMessageRequest {
            messages: vec![common::message("GroupTopic", 0, "x")],
            producer_group: "t".into(),
        })
        .await
        .unwrap()
        .into_inner();
    let hint = resp
        .status
        .and_then(|s| s.leader_hint().cloned())
        .expect("leader hint");
    assert_eq!(hint.leader_node_id, Some(leader as u64));
    assert_eq!(hint.leader_addr, group.nodes[leader].client_addr);

    let reference = pull_all(&mut client, "GroupTopic", 0, 0).await;
    assert_eq!(reference.len(), 50);
    for i in 0..3 {
        let mut c = group.client(i).await;
        let got = wait_for("replica caught up", Duration::from_secs(10), || {
            let mut c = c.clone();
            async move {
                let got = pull_all(&mut c, "GroupTopic", 0, 0).await;
                (got.len() == 50).then_some(got)
            }
        })
        .await;
        for (a, b) in got.iter().zip(&reference) {
            assert_eq!(
                (a.queue_offset, &a.body, a.commit_log_offset),
                (b.queue_offset, &b.body, b.commit_log_offset)
            );
        }
        let _ = &mut c;
    }
}

/// Asks the replicas at `addrs` who leads; the leader's client address.
async fn find_leader(addrs: &[String]) -> Option<String> {
    for addr in addrs {
        let mut c = common::connect(addr).await;
        let status = tokio::time::timeout(
            Duration::from_millis(500),
            c.broker_status(pb::BrokerStatusRequest {}),
        )
        .await;
        if let Ok(Ok(s)) = status {
            if let Some(raft) = s.into_inner().raft {
                if !raft.leader_addr.is_empty() {
                    return Some(raft.leader_addr);
                }
            }
        }
    }
    None
}

/// A producer that follows NOT_LEADER hints and sends `seq-N` bodies for `from..from+count`.
/// Returns every acknowledged sequence number with its queue offset, and the longest time it
/// went without an ack (the failover as a client sees it).
async fn produce(
    addrs: Vec<String>,
    topic: &str,
    from: u64,
    count: u64,
) -> (BTreeMap<u64, u64>, Duration) {
    let mut acked = BTreeMap::new();
    let mut addr = addrs[0].clone();
    let mut seq = from;
    let mut last_ack = Instant::now();
    let mut longest = Duration::ZERO;
    let deadline = Instant::now() + Duration::from_secs(60);
    while seq < from + count {
        assert!(Instant::now() < deadline, "producer stuck at seq {seq}");
        let mut client = common::connect(&addr).await;
        // The same UNIQ_KEY on every retry: the broker stores a retried message once.
        let mut message = common::message(topic, 0, format!("seq-{seq}"));
        message
            .properties
            .insert("UNIQ_KEY".into(), format!("{topic}-{seq}"));
        let req = pb::SendMessageRequest {
            messages: vec![message],
            producer_group: "p".into(),
        };
        let mut hinted = None;
        if let Ok(Ok(resp)) =
            tokio::time::timeout(Duration::from_secs(2), client.send_message(req)).await
        {
            let resp = resp.into_inner();
            match code(&resp.status) {
                ResponseCode::Ok => {
                    acked.insert(seq, resp.results[0].queue_offset);
                    longest = longest.max(last_ack.elapsed());
                    last_ack = Instant::now();
                    seq += 1;
                    continue;
                }
                ResponseCode::NotLeader => {
                    hinted = resp
                        .status
                        .and_then(|s| s.leader_hint().map(|h| h.leader_addr.clone()))
                        .filter(|a| !a.is_empty() && *a != addr);
                }
                _ => {}
            }
        }
        // Where the leader went: the hint, else ask the replicas; pace the retries a little.
        match hinted {
            Some(a) => addr = a,
            None => {
                if let Some(a) = find_leader(&addrs).await {
                    addr = a;
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
    }
    (acked, longest)
}

/// Every acknowledged message is present exactly once, in order; nothing unexpected.
async fn verify(group: &Group, node: usize, topic: &str, acked: &BTreeMap<u64, u64>) {
    let mut client = group.client(node).await;
    let max_acked_offset = acked.values().max().copied().unwrap_or(0);
    let messages = wait_for("acked messages visible", Duration::from_secs(20), || {
        let mut c = client.clone();
        async move {
            let got = pull_all(&mut c, topic, 0, 0).await;
            (got.len() as u64 > max_acked_offset).then_some(got)
        }
    })
    .await;
    let _ = &mut client;
    let seqs: Vec<u64> = messages
        .iter()
        .map(|m| {
            std::str::from_utf8(&m.body)
                .unwrap()
                .strip_prefix("seq-")
                .unwrap()
                .parse()
                .unwrap()
        })
        .collect();
    for (i, m) in messages.iter().enumerate() {
        assert_eq!(m.queue_offset, i as u64, "offsets are dense");
    }
    let mut seen = std::collections::HashSet::new();
    for s in &seqs {
        assert!(seen.insert(*s), "seq {s} appears twice on n{node}");
    }
    for (seq, offset) in acked {
        assert_eq!(
            seqs.get(*offset as usize),
            Some(seq),
            "acked seq {seq} is not at its offset {offset} on n{node}"
        );
    }
    let mut last = None;
    for s in &seqs {
        if acked.contains_key(s) {
            assert!(
                last.is_none_or(|l| l < *s),
                "acked messages out of order on n{node}"
            );
            last = Some(*s);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leader_kill_loses_no_acked_message_and_the_killed_node_catches_up() {
    let mut group = Group::start(&["brokerRole=SYNC_MASTER"]);
    let addrs: Vec<String> = group.nodes.iter().map(|n| n.client_addr.clone()).collect();
    let (mut acked, _) = produce(addrs.clone(), "KillTopic", 0, 100).await;

    // kill -9 the leader while a producer is sending.
    let old = group.leader().await;
    let producer = tokio::spawn(produce(addrs.clone(), "KillTopic", 100, 400));
    common::wait_for("sends in flight", Duration::from_secs(10), || async {
        let mut c = group.client(old).await;
        let (_, max) = c
            .get_queue_offsets(pb::GetQueueOffsetsRequest {
                topic: "KillTopic".into(),
                queue_id: 0,
            })
            .await
            .ok()
            .map(|r| r.into_inner())
            .map(|r| (r.min_offset, r.max_offset))?;
        (max >= 150).then_some(())
    })
    .await;
    group.nodes[old].kill9();
    let (during, outage) = producer.await.unwrap();
    acked.extend(during);
    let new = group.leader().await;
    assert_ne!(new, old);
    eprintln!("failover: longest gap between acks seen by the producer {outage:?}");
    for i in (0..3).filter(|&i| i != old) {
        verify(&group, i, "KillTopic", &acked).await;
    }

    // The killed node comes back, catches up and serves the same data.
    group.restart(old);
    verify(&group, old, "KillTopic", &acked).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wiped_follower_rejoins_and_catches_up() {
    let mut group = Group::start(&[]);
    let addrs: Vec<String> = group.nodes.iter().map(|n| n.client_addr.clone()).collect();
    let (mut acked, _) = produce(addrs.clone(), "WipeTopic", 0, 60).await;
    let leader = group.leader().await;
    let victim = (leader + 1) % 3;
    group.nodes[victim].kill9();
    std::fs::remove_dir_all(group.store_dir(victim)).unwrap();
    group.restart(victim);
    acked.extend(produce(addrs.clone(), "WipeTopic", 60, 40).await.0);
    verify(&group, victim, "WipeTopic", &acked).await;
    // And the group keeps working with the rejoined replica.
    acked.extend(produce(addrs.clone(), "WipeTopic", 100, 10).await.0);
    verify(&group, leader, "WipeTopic", &acked).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_stops_cleanly_and_keeps_every_acked_message() {
    let mut group = Group::start(&["flushDiskType=SYNC_FLUSH"]);
    let addrs: Vec<String> = group.nodes.iter().map(|n| n.client_addr.clone()).collect();
    let (mut acked, _) = produce(addrs.clone(), "TermTopic", 0, 50).await;
    let leader = group.leader().await;
    let status = group.nodes[leader].terminate().expect("exit status");
    assert!(
        status.success(),
        "mqbroker exited with {status:?} on SIGTERM"
    );
    // The others carry on; the stopped node restarts with everything it had.
    acked.extend(produce(addrs.clone(), "TermTopic", 50, 20).await.0);
    group.restart(leader);
    verify(&group, leader, "TermTopic", &acked).await;
}
