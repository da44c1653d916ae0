//! A producer keeps sending through a `kill -9` of its group's leader: it resumes on the new
//! leader within the failover time, and the topic then holds every acknowledged message
//! exactly once, where its acknowledgement said, in send order per queue.

mod common;

use std::time::{Duration, Instant};

use client::bench::encode_body;
use client::{Admin, Message, Producer, ProducerConfig};
use common::acked::{check_exactly_once_in_order, read_topic, Acked};
use common::{create_topic, longest_gap, run_id, System};
use tokio::task::JoinSet;

const TOPIC: &str = "T10Failover";
const QUEUES: u32 = 4;
const MESSAGES: u64 = 3000;
const IN_FLIGHT: usize = 16;
/// Longer than any failover: a send that gives up is a failure of the test, not noise.
const SEND_TIMEOUT: Duration = Duration::from_secs(10);
/// A generous bound on the longest pause between two acknowledgements (the failover).
const MAX_GAP: Duration = Duration::from_secs(5);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acked_messages_survive_a_leader_kill_exactly_once() {
    let started = Instant::now();
    let mut system = System::start(1).await;
    let namesrv = system.namesrv_list();
    let admin = Admin::connect(&namesrv).await.expect("admin");
    create_topic(&admin, TOPIC, QUEUES).await;

    let producer = Producer::start(
        &namesrv,
        ProducerConfig {
            group: "t10_producer".into(),
            send_timeout: SEND_TIMEOUT,
            max_in_flight: IN_FLIGHT,
            ..ProducerConfig::default()
        },
    )
    .await
    .expect("producer");
    let run = run_id();
    let mut sends = JoinSet::new();
    let mut kill: Option<(Instant, String)> = None;
    for seq in 0..MESSAGES {
        if seq == MESSAGES / 2 {
            let leader = system.leader().await;
            system.kill_broker(leader);
            kill = Some((Instant::now(), system.broker_addrs[leader].clone()));
        }
        let message = Message::new(TOPIC, encode_body(run, seq, 64));
        let pending = producer.send_async(message).await.expect("send_async");
        let issued = Instant::now();
        sends.spawn(async move { (seq, issued, pending.await, Instant::now()) });
    }
    let mut acked = Vec::new();
    let mut failed = Vec::new();
    while let Some(joined) = sends.join_next().await {
        let (seq, issued, result, at) = joined.expect("send task");
        match result {
            Ok(result) => acked.push(Acked {
                seq,
                issued,
                acked: at,
                result,
            }),
            Err(e) => failed.push((seq, e.to_string())),
        }
    }
    let (killed_at, old_leader) = kill.expect("the leader was killed");

    let (gap, gap_start) = longest_gap(acked.iter().map(|a| a.acked).collect());
    let resumed = acked
        .iter()
        .filter(|a| a.acked > killed_at && a.result.broker_addr != old_leader)
        .map(|a| a.acked - killed_at)
        .min();
    let gap_from_kill = gap_start.map_or("-".to_owned(), |s| {
        if s >= killed_at {
            format!("{:+.0} ms", (s - killed_at).as_secs_f64() * 1e3)
        } else {
            format!("{:+.0} ms", -(killed_at - s).as_secs_f64() * 1e3)
        }
    });
    println!(
        "t10: {} acked, {} failed; longest gap between acks {gap:?} (starting {gap_from_kill} \
         from the kill); first ack from the new leader {resumed:?} after the kill",
        acked.len(),
        failed.len(),
    );
    assert!(
        failed.is_empty(),
        "{} sends failed, first: {:?}",
        failed.len(),
        failed.first()
    );
    let resumed = resumed.expect("no acknowledgement from a new leader");
    assert!(
        resumed < MAX_GAP,
        "the new leader's first ack came {resumed:?} after the kill"
    );
    assert!(gap < MAX_GAP, "the producer stalled for {gap:?}");

    let stored = read_topic(&namesrv, TOPIC, QUEUES).await;
    let stored_unacked = check_exactly_once_in_order("t10", run, MESSAGES, &acked, &stored);
    assert_eq!(stored_unacked, 0, "stored messages that were not acked");
    println!("t10: passed in {:?}", started.elapsed());
}
