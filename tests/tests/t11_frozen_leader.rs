//! A producer with the default send timeout (3 s) keeps sending through a leader that freezes
//! (SIGSTOP) for 3 s and thaws: its connections stay open and nothing answers, so a send in
//! flight learns nothing but the passing time. Each such send gives its attempt up after a third
//! of the send timeout and retries, with the same `UNIQ_KEY`, on the leader the nameserver
//! announces; none fails, and the topic holds every acknowledged message exactly once.

mod common;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use client::message::UNIQ_KEY;
use client::{Admin, Message, Producer, ProducerConfig};
use common::acked::read_topic;
use common::{create_topic, System};
use tokio::task::JoinSet;

const TOPIC: &str = "T11Frozen";
const QUEUES: u32 = 4;
const IN_FLIGHT: usize = 16;
/// How long the leader stays frozen: as long as the whole send timeout.
const FROZEN: Duration = Duration::from_secs(3);
/// Sends issued before the freeze.
const BEFORE: usize = 300;
/// Sending time after the thaw.
const AFTER: Duration = Duration::from_secs(1);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sends_survive_a_frozen_leader_and_are_stored_once() {
    let system = System::start(1).await;
    let namesrv = system.namesrv_list();
    let admin = Admin::connect(&namesrv).await.expect("admin");
    create_topic(&admin, TOPIC, QUEUES).await;
    let producer = Producer::start(
        &namesrv,
        ProducerConfig {
            group: "t11_producer".into(),
            max_in_flight: IN_FLIGHT,
            ..ProducerConfig::default()
        },
    )
    .await
    .expect("producer");
    let send_timeout = ProducerConfig::default().send_timeout;

    let mut sends = JoinSet::new();
    let mut keys: HashMap<String, u64> = HashMap::new();
    let mut frozen: Option<(usize, Instant)> = None;
    let mut thawed_at: Option<Instant> = None;
    for seq in 0u64.. {
        if frozen.is_none() && keys.len() >= BEFORE {
            let leader = system.leader().await;
            system.brokers[leader].signal(libc::SIGSTOP);
            frozen = Some((leader, Instant::now()));
        }
        if let Some((leader, at)) = frozen.filter(|_| thawed_at.is_none()) {
            if at.elapsed() >= FROZEN {
                system.brokers[leader].signal(libc::SIGCONT);
                thawed_at = Some(Instant::now());
            }
        }
        if thawed_at.is_some_and(|t| t.elapsed() >= AFTER) {
            break;
        }
        let message = Message::new(TOPIC, format!("t11 message {seq}")).with_uniq_key();
        let key = message.properties[UNIQ_KEY].clone();
        keys.insert(key.clone(), seq);
        let pending = producer.send_async(message).await.expect("send_async");
        let issued = Instant::now();
        sends.spawn(async move {
            let result = pending.await;
            (key, issued.elapsed(), result)
        });
    }
    let (leader, _) = frozen.expect("the leader was frozen");

    let mut acked = Vec::new();
    let mut failed = Vec::new();
    let mut slowest = Duration::ZERO;
    while let Some(joined) = sends.join_next().await {
        let (key, took, result) = joined.expect("send task");
        slowest = slowest.max(took);
        match result {
            Ok(_) => acked.push(key),
            Err(e) => failed.push((key, e.to_string())),
        }
    }
    println!(
        "t11: {} sent, {} acked, {} failed, slowest send {slowest:?}; leader n{leader} frozen \
         for {FROZEN:?}",
        keys.len(),
        acked.len(),
        failed.len(),
    );
    assert!(
        failed.is_empty(),
        "{} sends failed, first: {:?}",
        failed.len(),
        failed.first()
    );
    assert!(
        slowest < send_timeout + Duration::from_millis(500),
        "a send took {slowest:?}, past its send timeout"
    );

    // Every acknowledged message exactly once; no message, acknowledged or not, twice.
    let stored = read_topic(&namesrv, TOPIC, QUEUES).await;
    let mut copies: HashMap<&str, usize> = HashMap::new();
    for message in stored.values().flatten() {
        let key = message
            .properties
            .get(UNIQ_KEY)
            .unwrap_or_else(|| panic!("a stored message without {UNIQ_KEY}: {message:?}"));
        assert!(
            keys.contains_key(key),
            "a message this run did not send: {key}"
        );
        *copies.entry(key.as_str()).or_default() += 1;
    }
    let twice: Vec<_> = copies.iter().filter(|(_, n)| **n > 1).collect();
    assert!(
        twice.is_empty(),
        "{} messages stored more than once, e.g. {:?}",
        twice.len(),
        twice.first()
    );
    let lost: Vec<&String> = acked
        .iter()
        .filter(|k| !copies.contains_key(k.as_str()))
        .collect();
    assert!(
        lost.is_empty(),
        "{} acknowledged messages are not stored, e.g. seq {}",
        lost.len(),
        keys[lost[0]]
    );
    assert_eq!(
        copies.len(),
        acked.len(),
        "stored messages nobody acknowledged"
    );
}
