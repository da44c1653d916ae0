//! What a producer's acknowledgements promise, checked against what the group stores: every
//! acknowledged message exactly once, where its acknowledgement said, in order per queue, and
//! nothing that was not sent. Shared by every test that produces through a fault.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use client::bench::{decode_body, encode_body};
use client::{ClientOptions, Cluster, Message, MessageQueue, PullConsumer, PullStatus, SendResult};
use proto::v1::StoredMessage;
use tokio::task::JoinSet;

/// One acknowledged send.
#[derive(Debug, Clone)]
pub struct Acked {
    pub seq: u64,
    /// When the send was handed to the producer (its request starts at or after this).
    pub issued: Instant,
    /// When its acknowledgement arrived.
    pub acked: Instant,
    pub result: SendResult,
}

/// What a [`Load`] produced.
#[derive(Debug, Default)]
pub struct Sent {
    pub acked: Vec<Acked>,
    /// Sends that failed, with why.
    pub failed: Vec<(u64, String)>,
    /// Sequence numbers handed to the producer (acked, failed or unanswered).
    pub issued: u64,
}

/// A producer sending `client::bench` bodies of one run to a topic, `in_flight` at a time,
/// until stopped; it records every acknowledgement.
pub struct Load {
    sent: Arc<Mutex<Sent>>,
    stop: Arc<std::sync::atomic::AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl Load {
    pub fn start(producer: client::Producer, topic: &str, run: u64, in_flight: usize) -> Load {
        let sent = Arc::new(Mutex::new(Sent::default()));
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let task = {
            let (sent, stop, topic) = (sent.clone(), stop.clone(), topic.to_owned());
            tokio::spawn(async move {
                let mut pending = JoinSet::new();
                let mut seq = 0u64;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    while pending.len() >= in_flight {
                        record(&sent, pending.join_next().await);
                    }
                    let message = Message::new(&topic, encode_body(run, seq, 64));
                    let issued = Instant::now();
                    match producer.send_async(message).await {
                        Ok(ack) => {
                            pending.spawn(async move { (seq, issued, ack.await, Instant::now()) });
                        }
                        Err(e) => lock(&sent).failed.push((seq, e.to_string())),
                    }
                    seq += 1;
                    lock(&sent).issued = seq;
                }
                while !pending.is_empty() {
                    record(&sent, pending.join_next().await);
                }
            })
        };
        Load { sent, stop, task }
    }

    /// Acknowledged sends so far.
    pub fn acked(&self) -> usize {
        lock(&self.sent).acked.len()
    }

    /// Waits until `n` more sends than now are acknowledged.
    pub async fn wait_for_more(&self, n: usize, within: Duration) {
        let target = self.acked() + n;
        raftmq_testkit::wait_for(&format!("{target} acknowledged sends"), within, || async {
            (self.acked() >= target).then_some(())
        })
        .await;
    }

    /// Stops sending, waits for every answer, and returns what was sent.
    pub async fn stop(self) -> Sent {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let _ = self.task.await;
        std::mem::take(&mut *lock(&self.sent))
    }
}

type Answer = (
    u64,
    Instant,
    Result<SendResult, client::ClientError>,
    Instant,
);

fn record(sent: &Mutex<Sent>, joined: Option<Result<Answer, tokio::task::JoinError>>) {
    let Some(Ok((seq, issued, result, at))) = joined else {
        return;
    };
    let mut sent = lock(sent);
    match result {
        Ok(result) => sent.acked.push(Acked {
            seq,
            issued,
            acked: at,
            result,
        }),
        Err(e) => sent.failed.push((seq, e.to_string())),
    }
}

fn lock(sent: &Mutex<Sent>) -> std::sync::MutexGuard<'_, Sent> {
    sent.lock().unwrap_or_else(|p| p.into_inner())
}

/// Every message of every queue of `topic` (which has `queues` queues), read from offset 0 to
/// the end.
pub async fn read_topic(
    namesrv: &str,
    topic: &str,
    queues: u32,
) -> BTreeMap<MessageQueue, Vec<StoredMessage>> {
    let cluster = Cluster::connect(namesrv, ClientOptions::default())
        .await
        .expect("reader");
    let consumer = PullConsumer::new(cluster, "test_reader");
    let routed = consumer.queues(topic).await.expect("queues");
    assert_eq!(routed.len(), queues as usize, "queues routed: {routed:?}");
    let mut stored = BTreeMap::new();
    for queue in routed {
        let end = consumer.queue_offsets(&queue).await.expect("offsets").max;
        let mut messages = Vec::new();
        let mut offset = 0;
        while offset < end {
            let pulled = consumer
                .pull(&queue, offset, 256, Duration::ZERO)
                .await
                .unwrap_or_else(|e| panic!("pull {queue} at {offset}: {e}"));
            match pulled.status {
                PullStatus::Found => {
                    assert!(pulled.next_begin_offset > offset, "pull did not advance");
                    offset = pulled.next_begin_offset;
                    messages.extend(pulled.messages);
                }
                other => panic!("pull {queue} at {offset} of {end}: {other:?}"),
            }
        }
        stored.insert(queue, messages);
    }
    stored
}

/// Every acknowledged message is stored exactly once, at the queue and offset its
/// acknowledgement named; nothing stored was not sent by run `run` (sequence numbers below
/// `issued`); and a message acknowledged before another was sent is stored before it in their
/// queue. Messages sent but not acknowledged may be stored or not (`stored_unacked` is how
/// many were). Prints a line prefixed with `test`.
pub fn check_exactly_once_in_order(
    test: &str,
    run: u64,
    issued: u64,
    acked: &[Acked],
    stored: &BTreeMap<MessageQueue, Vec<StoredMessage>>,
) -> usize {
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
                Some((r, seq)) if r == run && seq < issued => copies
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
    let mut lost = Vec::new();
    for a in acked {
        let at = (a.result.queue.clone(), a.result.queue_offset);
        match copies.get(&a.seq).map(Vec::as_slice) {
            Some([found]) => assert_eq!(*found, at, "message {} acked at {at:?}", a.seq),
            _ => lost.push((a.seq, at)),
        }
    }
    assert!(
        lost.is_empty(),
        "{} acknowledged messages are lost, first: {:?}",
        lost.len(),
        lost.first()
    );

    // Per queue, walking offsets from the end: a message stored after `b` must not have been
    // acknowledged before `b` was issued.
    let mut by_queue: BTreeMap<&MessageQueue, Vec<&Acked>> = BTreeMap::new();
    for a in acked {
        by_queue.entry(&a.result.queue).or_default().push(a);
    }
    for (queue, mut sends) in by_queue {
        sends.sort_by_key(|a| a.result.queue_offset);
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
    let stored_unacked = copies.len() - acked.len();
    println!(
        "{test}: {} acknowledged messages stored exactly once and in order ({stored_unacked} \
         more sent but unanswered are stored too)",
        acked.len()
    );
    stored_unacked
}
