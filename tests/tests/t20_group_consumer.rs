//! Clustering consumer groups against a real group: members share a topic's queues
//! (disjoint, complete), a member that leaves (cleanly, or by crashing) hands its queues to
//! the one that stays, no message is skipped, and what is delivered twice after the
//! rebalance lies within what the leaving member had consumed but not committed.

mod common;

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use client::bench::{decode_body, encode_body};
use client::{
    Admin, ClientOptions, Cluster, ConsumeFromWhere, GroupConsumer, GroupConsumerConfig, Message,
    MessageQueue, Producer, ProducerConfig, PullConsumer,
};
use common::{create_topic, run_id, wait_for, System};
use tokio::sync::watch;
use tokio::task::JoinHandle;

const TOPIC: &str = "T20Group";
const QUEUES: u32 = 8;
const CONSUMER_GROUP: &str = "t20_group";
/// Messages per phase.
const BATCH: u64 = 300;
/// Longer than the broker's consumer expiry (10 s) plus a rebalance.
const TAKEOVER_TIMEOUT: Duration = Duration::from_secs(30);

/// One message as a member's `poll` returned it.
#[derive(Debug, Clone, Copy)]
struct Delivery {
    member: &'static str,
    queue_id: i32,
    offset: u64,
    seq: u64,
}

type Log = Arc<Mutex<Vec<Delivery>>>;

/// A group member whose messages a background task polls into the shared log.
struct Member {
    name: &'static str,
    consumer: Arc<GroupConsumer>,
    stop: watch::Sender<bool>,
    poller: JoinHandle<()>,
}

impl Member {
    async fn join(namesrv: &str, name: &'static str, run: u64, log: &Log) -> Member {
        let cluster = Cluster::connect(namesrv, ClientOptions::default())
            .await
            .expect("cluster");
        let config = GroupConsumerConfig {
            consume_from: ConsumeFromWhere::FirstOffset,
            client_id: Some(format!("t20-{name}")),
            ..GroupConsumerConfig::new(CONSUMER_GROUP, TOPIC)
        };
        let consumer = Arc::new(GroupConsumer::start(cluster, config).await.expect("join"));
        let (stop, mut stopped) = watch::channel(false);
        let poller = tokio::spawn({
            let consumer = Arc::clone(&consumer);
            let log = Arc::clone(log);
            async move {
                while !*stopped.borrow_and_update() {
                    let batch = consumer
                        .poll(Duration::from_millis(100))
                        .await
                        .expect("poll");
                    let mut log = log.lock().unwrap();
                    for m in batch {
                        let (r, seq) = decode_body(&m.body).expect("a body of this test");
                        assert_eq!(r, run, "a message of another run");
                        log.push(Delivery {
                            member: name,
                            queue_id: m.queue_id,
                            offset: m.queue_offset,
                            seq,
                        });
                    }
                }
            }
        });
        Member {
            name,
            consumer,
            stop,
            poller,
        }
    }

    fn queue_ids(&self) -> BTreeSet<i32> {
        self.consumer
            .assignment()
            .iter()
            .map(|q| q.queue_id)
            .collect()
    }

    /// Stops polling; everything its last `poll` returned is in the log when this returns.
    async fn stop_polling(self) -> (&'static str, GroupConsumer) {
        self.stop.send_replace(true);
        self.poller.await.expect("poller");
        let consumer = Arc::into_inner(self.consumer).expect("the only owner");
        (self.name, consumer)
    }
}

/// Acknowledged sends: (queue id, queue offset) -> sequence number.
type Sent = Arc<Mutex<BTreeMap<(i32, u64), u64>>>;

/// Sends `seqs` at a steady pace (about 400 a second, 16 in flight) in the background.
fn send_paced(producer: &Producer, run: u64, seqs: std::ops::Range<u64>, sent: &Sent) -> Sender {
    let acked = Arc::new(AtomicU64::new(0));
    let task = tokio::spawn({
        let producer = producer.clone();
        let sent = Arc::clone(sent);
        let acked = Arc::clone(&acked);
        async move {
            let mut pace = tokio::time::interval(Duration::from_micros(2500));
            let mut pending = Vec::new();
            for seq in seqs {
                pace.tick().await;
                let message = Message::new(TOPIC, encode_body(run, seq, 32));
                let send = producer.send_async(message).await.expect("send_async");
                let (sent, acked) = (Arc::clone(&sent), Arc::clone(&acked));
                pending.push(tokio::spawn(async move {
                    let r = send.await.unwrap_or_else(|e| panic!("send {seq}: {e}"));
                    sent.lock()
                        .unwrap()
                        .insert((r.queue.queue_id, r.queue_offset), seq);
                    acked.fetch_add(1, Ordering::Relaxed);
                }));
            }
            for p in pending {
                p.await.expect("send task");
            }
        }
    });
    Sender { acked, task }
}

struct Sender {
    acked: Arc<AtomicU64>,
    task: JoinHandle<()>,
}

/// Waits until every acknowledged message has been delivered at least once, each with the
/// body that was sent to its offset.
async fn wait_all_delivered(sent: &Sent, log: &Log) {
    wait_for(
        "every acknowledged message to be delivered",
        Duration::from_secs(30),
        || async {
            let sent = sent.lock().unwrap();
            let log = log.lock().unwrap();
            let mut delivered = HashMap::new();
            for d in log.iter() {
                delivered.insert((d.queue_id, d.offset), d.seq);
            }
            for (at, seq) in sent.iter() {
                assert!(
                    delivered.get(at).is_none_or(|s| s == seq),
                    "{at:?} delivered another body than the one acked there"
                );
            }
            assert!(
                delivered.keys().all(|k| sent.contains_key(k)),
                "a delivered message was never acknowledged"
            );
            sent.keys().all(|k| delivered.contains_key(k)).then_some(())
        },
    )
    .await;
}

/// Waits until the members' assignments are disjoint, cover every queue, and are even
/// (what every member computes once all see the same membership).
async fn wait_shared(members: &[&Member]) {
    let what = format!(
        "{:?} to share the {QUEUES} queues",
        members.iter().map(|m| m.name).collect::<Vec<_>>()
    );
    let share = QUEUES as usize / members.len();
    wait_for(&what, TAKEOVER_TIMEOUT, || async {
        let mut all = BTreeSet::new();
        for m in members {
            let ids = m.queue_ids();
            if ids.len() != share {
                return None;
            }
            all.extend(ids);
        }
        (all.len() == QUEUES as usize).then_some(())
    })
    .await;
}

/// The group's committed offset (next to consume) on each queue; 0 where none.
async fn committed(reader: &PullConsumer) -> BTreeMap<i32, u64> {
    let mut offsets = BTreeMap::new();
    for id in 0..QUEUES as i32 {
        let queue = MessageQueue::new(TOPIC, common::GROUP, id);
        let offset = reader.query_offset(&queue).await.expect("query offset");
        offsets.insert(id, offset.unwrap_or(0));
    }
    offsets
}

/// Per queue of `member`: (committed offset, end of what it was delivered) — the range a
/// new owner may deliver again.
fn uncommitted(
    log: &[Delivery],
    member: &str,
    queues: &BTreeSet<i32>,
    committed: &BTreeMap<i32, u64>,
) -> BTreeMap<i32, (u64, u64)> {
    queues
        .iter()
        .map(|&q| {
            let end = log
                .iter()
                .filter(|d| d.member == member && d.queue_id == q)
                .map(|d| d.offset + 1)
                .max()
                .unwrap_or(0);
            let from = committed[&q];
            (q, (from, end.max(from)))
        })
        .collect()
}

/// Deliveries at log index `from..` of a message delivered before (in the log).
fn duplicates_since(log: &[Delivery], from: usize) -> Vec<Delivery> {
    let mut seen = HashSet::new();
    let mut dups = Vec::new();
    for (i, d) in log.iter().enumerate() {
        if !seen.insert((d.queue_id, d.offset)) && i >= from {
            dups.push(*d);
        }
    }
    dups
}

/// The redelivery after `leaver` left: only within its uncommitted ranges, at most their size.
fn check_redelivery(
    leaver: &str,
    log: &[Delivery],
    from: usize,
    ranges: &BTreeMap<i32, (u64, u64)>,
) -> usize {
    let bound: u64 = ranges.values().map(|(c, e)| e - c).sum();
    let dups = duplicates_since(log, from);
    for d in &dups {
        let within = ranges
            .get(&d.queue_id)
            .is_some_and(|(c, e)| (*c..*e).contains(&d.offset));
        assert!(
            within,
            "{d:?} delivered again after {leaver} left, outside its uncommitted ranges {ranges:?}"
        );
    }
    println!(
        "t20: after {leaver} left: {} redelivered, bound {bound} (uncommitted ranges {ranges:?})",
        dups.len()
    );
    assert!(dups.len() as u64 <= bound);
    dups.len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_share_queues_and_hand_them_over_without_skipping() {
    let started = Instant::now();
    let system = System::start(1).await;
    let namesrv = system.namesrv_list();
    let admin = Admin::connect(&namesrv).await.expect("admin");
    create_topic(&admin, TOPIC, QUEUES).await;
    let producer = Producer::start(&namesrv, ProducerConfig::default())
        .await
        .expect("producer");
    let reader = PullConsumer::new(
        Cluster::connect(&namesrv, ClientOptions::default())
            .await
            .expect("cluster"),
        CONSUMER_GROUP,
    );
    let run = run_id();
    let log: Log = Arc::default();
    let sent: Sent = Arc::default();

    // Two members share the queues; nothing is sent until they do, so the start-up
    // overlap (the first member owning everything) cannot deliver anything twice.
    let a = Member::join(&namesrv, "a", run, &log).await;
    let b = Member::join(&namesrv, "b", run, &log).await;
    wait_shared(&[&a, &b]).await;
    let sender = send_paced(&producer, run, 0..BATCH, &sent);
    sender.task.await.expect("sender");
    wait_all_delivered(&sent, &log).await;
    {
        let log = log.lock().unwrap();
        assert!(duplicates_since(&log, 0).is_empty(), "delivered twice");
        let (qa, qb) = (a.queue_ids(), b.queue_ids());
        for d in log.iter() {
            let owner = if d.member == "a" { &qa } else { &qb };
            assert!(
                owner.contains(&d.queue_id),
                "{d:?} from a queue it does not own"
            );
        }
    }

    // A leaves cleanly while messages flow: B takes every queue.
    let sender = send_paced(&producer, run, BATCH..2 * BATCH, &sent);
    wait_for("half the batch acked", Duration::from_secs(20), || async {
        (sender.acked.load(Ordering::Relaxed) >= BATCH / 2).then_some(())
    })
    .await;
    let a_queues = a.queue_ids();
    let (a_name, a_consumer) = a.stop_polling().await;
    let committed_at_leave = committed(&reader).await;
    let (from, ranges) = {
        let log = log.lock().unwrap();
        let ranges = uncommitted(&log, a_name, &a_queues, &committed_at_leave);
        (log.len(), ranges)
    };
    a_consumer.shutdown().await.expect("clean leave");
    wait_shared(&[&b]).await;
    sender.task.await.expect("sender");
    wait_all_delivered(&sent, &log).await;
    let redelivered = check_redelivery(a_name, &log.lock().unwrap(), from, &ranges);
    // A clean leave commits everything `poll` returned before B may take the queues.
    assert_eq!(redelivered, 0, "redelivered after a clean leave");

    // C joins once B has committed everything (so C starts where B is), then crashes
    // while messages flow: after the broker expires it, B takes every queue again.
    wait_for(
        "B to commit everything",
        Duration::from_secs(20),
        || async {
            let ends: BTreeMap<i32, u64> = {
                let sent = sent.lock().unwrap();
                (0..QUEUES as i32)
                    .map(|q| (q, sent.keys().filter(|(id, _)| *id == q).count() as u64))
                    .collect()
            };
            (committed(&reader).await == ends).then_some(())
        },
    )
    .await;
    let c = Member::join(&namesrv, "c", run, &log).await;
    wait_shared(&[&b, &c]).await;
    let sender = send_paced(&producer, run, 2 * BATCH..3 * BATCH, &sent);
    wait_for("half the batch acked", Duration::from_secs(20), || async {
        (sender.acked.load(Ordering::Relaxed) >= BATCH / 2).then_some(())
    })
    .await;
    let c_queues = c.queue_ids();
    let (c_name, c_consumer) = c.stop_polling().await;
    drop(c_consumer);
    // Read after the crash: a commit C had in flight has landed by now or never will (and
    // one landing later only shrinks what B delivers again).
    let committed_at_crash = committed(&reader).await;
    let (from, ranges) = {
        let log = log.lock().unwrap();
        let ranges = uncommitted(&log, c_name, &c_queues, &committed_at_crash);
        (log.len(), ranges)
    };
    let crashed_at = Instant::now();
    wait_shared(&[&b]).await;
    println!(
        "t20: b took c's queues {:?} after c crashed",
        crashed_at.elapsed()
    );
    sender.task.await.expect("sender");
    wait_all_delivered(&sent, &log).await;
    check_redelivery(c_name, &log.lock().unwrap(), from, &ranges);

    let (_, b_consumer) = b.stop_polling().await;
    b_consumer.shutdown().await.expect("clean leave");
    println!(
        "t20: {} messages, {} deliveries, passed in {:?}",
        sent.lock().unwrap().len(),
        log.lock().unwrap().len(),
        started.elapsed()
    );
}
