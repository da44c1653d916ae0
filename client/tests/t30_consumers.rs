//! Pull consumer and group consumer against the in-process fake cluster.

mod common;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use client::{
    ClientError, ClientOptions, Cluster, ConsumeFromWhere, GroupConsumer, GroupConsumerConfig,
    Message, MessageModel, MessageQueue, Producer, ProducerConfig, PullConsumer, PullStatus,
};
use common::{wait_until, FakeCluster};

async fn cluster_client(addr: &str) -> Cluster {
    Cluster::connect(addr, ClientOptions::default())
        .await
        .unwrap()
}

async fn send_n(producer: &Producer, topic: &str, from: usize, n: usize) {
    for i in from..from + n {
        producer
            .send(Message::new(topic, format!("m{i}")))
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn t31_pull_consumer_reads_commits_and_reports_ranges() {
    let cluster = FakeCluster::start(&["broker-a"], Some(("T", 1))).await;
    let c = cluster_client(&cluster.namesrv.addr).await;
    let producer = Producer::new(c.clone(), ProducerConfig::default());
    send_n(&producer, "T", 0, 10).await;

    let consumer = PullConsumer::new(c, "G");
    let queues = consumer.queues("T").await.unwrap();
    assert_eq!(queues, [MessageQueue::new("T", "broker-a", 0)]);
    let q = &queues[0];
    let r = consumer.pull(q, 0, 4, Duration::ZERO).await.unwrap();
    assert_eq!(r.status, PullStatus::Found);
    assert_eq!(r.messages.len(), 4);
    assert_eq!(r.next_begin_offset, 4);
    assert_eq!(&r.messages[0].body[..], b"m0");

    assert_eq!(consumer.query_offset(q).await.unwrap(), None);
    consumer.commit_offset(q, 4).await.unwrap();
    assert_eq!(consumer.query_offset(q).await.unwrap(), Some(4));
    let range = consumer.queue_offsets(q).await.unwrap();
    assert_eq!((range.min, range.max), (0, 10));

    let started = Instant::now();
    let r = consumer
        .pull(q, 10, 4, Duration::from_millis(200))
        .await
        .unwrap();
    assert_eq!(r.status, PullStatus::NoNewMessage);
    assert!(
        started.elapsed() >= Duration::from_millis(200),
        "no long poll"
    );
    let r = consumer.pull(q, 11, 4, Duration::ZERO).await.unwrap();
    assert_eq!(r.status, PullStatus::OffsetIllegal { below_min: false });

    let e = consumer.queues("Missing").await.unwrap_err();
    assert!(matches!(e, ClientError::TopicNotExist { .. }), "{e}");
}

fn fast_config(group: &str, topic: &str) -> GroupConsumerConfig {
    let mut config = GroupConsumerConfig::new(group, topic);
    config.consume_from = ConsumeFromWhere::FirstOffset;
    config.rebalance_interval = Duration::from_millis(200);
    config.commit_interval = Duration::from_millis(200);
    config.long_poll = Duration::from_millis(200);
    config
}

/// Polls a consumer in the background, collecting message bodies, until stopped.
struct Poller {
    consumer: Arc<GroupConsumer>,
    seen: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl Poller {
    fn start(consumer: GroupConsumer) -> Self {
        let consumer = Arc::new(consumer);
        let seen = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let task = tokio::spawn({
            let (consumer, seen, stop) =
                (Arc::clone(&consumer), Arc::clone(&seen), Arc::clone(&stop));
            async move {
                while !stop.load(Ordering::Relaxed) {
                    let batch = consumer.poll(Duration::from_millis(50)).await.unwrap();
                    let mut seen = seen.lock().unwrap();
                    seen.extend(
                        batch
                            .iter()
                            .map(|m| String::from_utf8_lossy(&m.body).into_owned()),
                    );
                }
            }
        });
        Self {
            consumer,
            seen,
            stop,
            task,
        }
    }

    fn seen(&self) -> Vec<String> {
        self.seen.lock().unwrap().clone()
    }

    /// Stops polling and leaves the group cleanly.
    async fn leave(self) -> Vec<String> {
        self.stop.store(true, Ordering::Relaxed);
        self.task.await.unwrap();
        let consumer = Arc::try_unwrap(self.consumer).ok().unwrap();
        consumer.shutdown().await.unwrap();
        Arc::try_unwrap(self.seen).unwrap().into_inner().unwrap()
    }
}

#[tokio::test]
async fn t32_members_share_queues_and_the_survivor_takes_all() {
    let cluster = FakeCluster::start(&["broker-a", "broker-b"], Some(("T", 4))).await;
    let c = cluster_client(&cluster.namesrv.addr).await;
    let producer = Producer::new(c.clone(), ProducerConfig::default());
    send_n(&producer, "T", 0, 80).await;

    let a = Poller::start(
        GroupConsumer::start(c.clone(), fast_config("G", "T"))
            .await
            .unwrap(),
    );
    let b = Poller::start(
        GroupConsumer::start(c.clone(), fast_config("G", "T"))
            .await
            .unwrap(),
    );
    let both = |p: &Poller, q: &Poller| {
        let (x, y) = (p.consumer.assignment(), q.consumer.assignment());
        x.len() == 4 && y.len() == 4 && x.iter().all(|m| !y.contains(m))
    };
    wait_until("an even split", Duration::from_secs(5), || both(&a, &b)).await;

    let b_seen = b.leave().await;
    wait_until(
        "the survivor owns every queue",
        Duration::from_secs(5),
        || a.consumer.assignment().len() == 8,
    )
    .await;
    send_n(&producer, "T", 80, 80).await;
    wait_until("every message consumed", Duration::from_secs(10), || {
        let mut all = a.seen();
        all.extend(b_seen.iter().cloned());
        (0..160).all(|i| all.contains(&format!("m{i}")))
    })
    .await;

    let a_seen = a.leave().await;
    let mut copies: BTreeMap<String, usize> = BTreeMap::new();
    for body in a_seen.iter().chain(&b_seen) {
        *copies.entry(body.clone()).or_default() += 1;
    }
    assert_eq!(copies.len(), 160, "nothing skipped, nothing foreign");
    let redelivered: usize = copies.values().map(|n| n - 1).sum();
    // At most what was polled but not yet committed when the queues moved: one poll's
    // batch per queue that changed hands (4 queues at the join, none at the clean leave).
    assert!(redelivered <= 4 * 32, "{redelivered} redeliveries");
    // Everything consumed was committed on the way out.
    for (i, store) in [cluster.store(0), cluster.store(1)].iter().enumerate() {
        for q in 0..4 {
            assert_eq!(
                store.committed("G", "T", q),
                Some(store.queue("T", q).len() as u64),
                "group {i} queue {q}"
            );
        }
    }
}

#[tokio::test]
async fn t33_broadcasting_members_each_read_everything_and_keep_offsets_locally() {
    let cluster = FakeCluster::start(&["broker-a"], Some(("T", 2))).await;
    let c = cluster_client(&cluster.namesrv.addr).await;
    let producer = Producer::new(c.clone(), ProducerConfig::default());
    send_n(&producer, "T", 0, 20).await;
    let dir = tempfile::tempdir().unwrap();
    let member = |i: usize| {
        let mut config = fast_config("B", "T");
        config.model = MessageModel::Broadcasting;
        config.local_offsets = Some(dir.path().join(format!("member{i}.json")));
        config
    };
    let x = Poller::start(GroupConsumer::start(c.clone(), member(0)).await.unwrap());
    let y = Poller::start(GroupConsumer::start(c.clone(), member(1)).await.unwrap());
    wait_until("both read all", Duration::from_secs(5), || {
        x.seen().len() >= 20 && y.seen().len() >= 20
    })
    .await;
    assert_eq!(x.consumer.assignment().len(), 2);
    x.leave().await;
    y.leave().await;
    let stored = std::fs::read_to_string(dir.path().join("member0.json")).unwrap();
    let offsets: BTreeMap<String, u64> = serde_json::from_str(&stored).unwrap();
    assert_eq!(offsets.values().sum::<u64>(), 20, "{stored}");
    assert!(
        cluster.store(0).committed("B", "T", 0).is_none(),
        "nothing committed to the broker"
    );
}
