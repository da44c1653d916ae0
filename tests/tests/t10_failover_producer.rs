//! A producer keeps sending through a `kill -9` of its group's leader: it resumes on the new
//! leader within the failover time, and the topic then holds every acknowledged message
//! exactly once, where its acknowledgement said, in send order per queue.

mod common;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::{Duration, Instant};

use client::bench::{decode_body, encode_body};
use client::{Admin, Message, MessageQueue, Producer, ProducerConfig, SendResult};
use common::{create_topic, longest_gap, read_topic, run_id, System};
use proto::v1::StoredMessage;
use tokio::task::JoinSet;

const TOPIC: &str = "T10Failover";
const QUEUES: u32 = 4;
const MESSAGES: u64 = 3000;
const IN_FLIGHT: usize = 16;
/// Longer than any failover: a send that gives up is a failure of the test, not noise.
const SEND_TIMEOUT: Duration = Duration::from_secs(10);
/// A generous bound on the longest pause between two acknowledgements (the failover).
const MAX_GAP: Duration = Duration::from_secs(5);

/// One acknowledged send.
struct Acked {
    seq: u64,
    /// When the send was handed to the producer (its request starts at or after this).
    issued: Instant,
    /// When its acknowledgement arrived.
    acked: Instant,
    result: SendResult,
}

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
    check_exactly_once_in_order(run, &acked, &stored);
    println!("t10: passed in {:?}", started.elapsed());
}

/// Every acknowledged message is stored exactly once, at the queue and offset its
/// acknowledgement named; nothing else is stored; and a message acknowledged before
/// another was sent is stored before it in their queue.
fn check_exactly_once_in_order(
    run: u64,
    acked: &[Acked],
    stored: &BTreeMap<MessageQueue, Vec<StoredMessage>>,
) {
    let mut copies: HashMap<u64, Vec<(MessageQueue, u64)>> = HashMap::new();
    let mut unexpected = Vec::new();
    let mut uniq_keys = HashSet::new();
    for (queue, messages) in stored {
        for (i, m) in messages.iter().enumerate() {
            assert_eq!(m.queue_offset, i as u64, "offsets of {queue} are not dense");
            // The key a retried copy is recognised by travels with the message.
            let key = m.properties.get(client::message::UNIQ_KEY);
            assert!(
                key.is_some_and(|k| uniq_keys.insert(k.clone())),
                "{queue}@{i}: UNIQ_KEY missing or repeated: {key:?}"
            );
            match decode_body(&m.body) {
                Some((r, seq)) if r == run && seq < MESSAGES => copies
                    .entry(seq)
                    .or_default()
                    .push((queue.clone(), m.queue_offset)),
                other => unexpected.push((queue.clone(), m.queue_offset, other)),
            }
        }
    }
    assert!(
        unexpected.is_empty(),
        "{} messages not sent by this run, first: {:?}",
        unexpected.len(),
        unexpected.first()
    );
    let duplicates: Vec<_> = copies.iter().filter(|(_, c)| c.len() > 1).collect();
    assert!(
        duplicates.is_empty(),
        "{} messages stored more than once, e.g. {:?}",
        duplicates.len(),
        duplicates.first()
    );
    for a in acked {
        let at = (a.result.queue.clone(), a.result.queue_offset);
        match copies.get(&a.seq).map(Vec::as_slice) {
            Some([found]) => assert_eq!(*found, at, "message {} acked at {at:?}", a.seq),
            _ => panic!("acked message {} ({at:?}) is lost", a.seq),
        }
    }
    assert_eq!(
        copies.len(),
        acked.len(),
        "stored messages that were not acked"
    );

    // Per queue, walking offsets from the end: a message stored after `b` must not have been
    // acknowledged before `b` was issued.
    let mut by_queue: BTreeMap<&MessageQueue, Vec<&Acked>> = BTreeMap::new();
    for a in acked {
        by_queue.entry(&a.result.queue).or_default().push(a);
    }
    let mut reordered_seqs = 0;
    for (queue, mut sends) in by_queue {
        sends.sort_by_key(|a| a.result.queue_offset);
        reordered_seqs += sends.windows(2).filter(|w| w[0].seq > w[1].seq).count();
        let mut earliest_ack_after: Option<&Acked> = None;
        for b in sends.iter().rev() {
            if let Some(a) = earliest_ack_after {
                assert!(
                    a.acked >= b.issued,
                    "{queue}: message {} (offset {}) was acknowledged before message {} \
                     (offset {}) was sent, yet is stored after it",
                    a.seq,
                    a.result.queue_offset,
                    b.seq,
                    b.result.queue_offset
                );
            }
            if earliest_ack_after.is_none_or(|a| b.acked < a.acked) {
                earliest_ack_after = Some(b);
            }
        }
    }
    println!(
        "t10: {} messages stored exactly once; {reordered_seqs} neighbours in a queue were \
         sent concurrently and stored in the other order",
        acked.len()
    );
}
