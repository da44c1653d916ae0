//! `brokerRole=ASYNC_MASTER` in a dledger group: a send is answered once the leader's own log
//! has it, with the queue offsets and positions it will have once applied, while
//! `SYNC_MASTER` waits for a majority.

mod common;

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use common::{code, create_topic, message, pull_all, wait_for, Client, Group};
use proto::v1::{self as pb, ResponseCode};

const TOPIC: &str = "AsyncTopic";
const QUEUES: i32 = 4;

fn keyed(queue_id: i32, body: &str, key: &str) -> pb::Message {
    let mut m = message(TOPIC, queue_id, body);
    m.properties.insert("UNIQ_KEY".into(), key.into());
    m
}

async fn send_batch(
    client: &mut Client,
    messages: Vec<pb::Message>,
    timeout: Duration,
) -> Result<pb::SendMessageResponse, String> {
    let request = pb::SendMessageRequest {
        messages,
        producer_group: "t".into(),
    };
    match tokio::time::timeout(timeout, client.send_message(request)).await {
        Ok(Ok(resp)) => {
            let resp = resp.into_inner();
            match code(&resp.status) {
                ResponseCode::Ok => Ok(resp),
                other => Err(format!("{other:?} {:?}", resp.status)),
            }
        }
        Ok(Err(status)) => Err(status.to_string()),
        Err(_) => Err(format!("no answer within {timeout:?}")),
    }
}

/// What an acknowledgement said about one message.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Ack {
    queue_id: i32,
    offset: u64,
    position: u64,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acks_on_the_leaders_append_carry_the_offsets_the_messages_get() {
    let group = Group::start(&["brokerRole=ASYNC_MASTER"]);
    let leader = group.leader().await;
    let mut client = group.client(leader).await;
    create_topic(&mut client, TOPIC, QUEUES as u32).await;

    // 8 concurrent producers, single messages and batches of 3 over 4 queues, so sends are
    // coalesced into shared entries and several are in flight per queue.
    let mut tasks = Vec::new();
    for p in 0..8 {
        let mut c = client.clone();
        tasks.push(tokio::spawn(async move {
            let mut acks = Vec::new();
            for i in 0..40 {
                let queue_id = (p + i) % QUEUES;
                let n = if i % 4 == 0 { 3 } else { 1 };
                let bodies: Vec<String> = (0..n).map(|j| format!("p{p}-{i}-{j}")).collect();
                let msgs = bodies
                    .iter()
                    .map(|b| keyed(queue_id, b, &format!("key-{b}")))
                    .collect();
                let resp = send_batch(&mut c, msgs, Duration::from_secs(10))
                    .await
                    .expect("send");
                assert_eq!(resp.queue_id, queue_id);
                for (b, r) in bodies.into_iter().zip(resp.results) {
                    let ack = Ack {
                        queue_id,
                        offset: r.queue_offset,
                        position: r.commit_log_offset,
                    };
                    acks.push((b, ack));
                }
            }
            acks
        }));
    }
    let mut acked: BTreeMap<String, Ack> = BTreeMap::new();
    for t in tasks {
        acked.extend(t.await.expect("producer"));
    }

    // A retry of a stored message (same UNIQ_KEY), sent right after the first copy was
    // answered and again later, is answered with the original's place and stored once.
    let first = send_batch(
        &mut client,
        vec![keyed(1, "retried", "key-retried")],
        Duration::from_secs(10),
    )
    .await
    .expect("send");
    for _ in 0..2 {
        let again = send_batch(
            &mut client,
            vec![keyed(1, "retried", "key-retried")],
            Duration::from_secs(10),
        )
        .await
        .expect("retry");
        assert_eq!(
            (
                again.results[0].queue_offset,
                again.results[0].commit_log_offset
            ),
            (
                first.results[0].queue_offset,
                first.results[0].commit_log_offset
            ),
        );
    }
    acked.insert(
        "retried".into(),
        Ack {
            queue_id: 1,
            offset: first.results[0].queue_offset,
            position: first.results[0].commit_log_offset,
        },
    );
    // A batch whose messages share a key: the second is a retry of the first, so the send is
    // not predicted (it waits for its commit) and both get the first's offset.
    let twice = send_batch(
        &mut client,
        vec![
            keyed(2, "twice", "key-twice"),
            keyed(2, "twice", "key-twice"),
        ],
        Duration::from_secs(10),
    )
    .await
    .expect("send");
    assert_eq!(twice.results[0].queue_offset, twice.results[1].queue_offset);
    acked.insert(
        "twice".into(),
        Ack {
            queue_id: 2,
            offset: twice.results[0].queue_offset,
            position: twice.results[0].commit_log_offset,
        },
    );
    assert_eq!(acked.len(), 8 * 40 + 8 * 10 * 2 + 2);
    // Every acknowledgement names the entry that holds its message.
    assert!(first.results[0].log_id.is_some() && twice.results[1].log_id.is_some());

    // Every replica stores each message once, at the offset and position its ack named.
    for i in 0..3 {
        let mut c = group.client(i).await;
        let mut seen = HashSet::new();
        for queue_id in 0..QUEUES {
            let expected = acked.values().filter(|a| a.queue_id == queue_id).count();
            let stored = wait_for("replica caught up", Duration::from_secs(20), || {
                let mut c = c.clone();
                async move {
                    let got = pull_all(&mut c, TOPIC, queue_id, 0).await;
                    (got.len() >= expected).then_some(got)
                }
            })
            .await;
            assert_eq!(stored.len(), expected, "replica {i} queue {queue_id}");
            for (offset, m) in stored.iter().enumerate() {
                let body = String::from_utf8_lossy(&m.body).to_string();
                let ack = acked
                    .get(&body)
                    .unwrap_or_else(|| panic!("unexpected {body}"));
                assert_eq!(
                    ack,
                    &Ack {
                        queue_id,
                        offset: offset as u64,
                        position: m.commit_log_offset,
                    },
                    "replica {i}: {body}"
                );
                assert!(seen.insert(body));
            }
        }
        let _ = &mut c;
        assert_eq!(seen.len(), acked.len());
    }
    assert_eq!(prediction_mismatches(&group, leader).await, 0);
}

/// What the replica's `BrokerStatus` counts as sends whose predicted offsets apply denied.
async fn prediction_mismatches(group: &Group, i: usize) -> u64 {
    group
        .client(i)
        .await
        .broker_status(pb::BrokerStatusRequest {})
        .await
        .expect("status")
        .into_inner()
        .prediction_mismatches
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_topic_deleted_while_sends_are_in_flight_never_makes_an_ack_lie() {
    let group = Group::start(&["brokerRole=ASYNC_MASTER"]);
    let leader = group.leader().await;
    let mut client = group.client(leader).await;
    create_topic(&mut client, TOPIC, QUEUES as u32).await;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut tasks = Vec::new();
    for p in 0..6 {
        let mut c = client.clone();
        let stop = stop.clone();
        tasks.push(tokio::spawn(async move {
            let (mut ok, mut refused) = (0, 0);
            let mut i = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let msg = keyed(p % QUEUES, &format!("p{p}-{i}"), &format!("k{p}-{i}"));
                match send_batch(&mut c, vec![msg], Duration::from_secs(10)).await {
                    Ok(_) => ok += 1,
                    Err(_) => refused += 1,
                }
                i += 1;
            }
            (ok, refused)
        }));
    }
    // Delete the topic and create it again, a few times, while the sends go on.
    for _ in 0..5 {
        tokio::time::sleep(Duration::from_millis(150)).await;
        let deleted = client
            .delete_topic(pb::DeleteTopicRequest {
                topic: TOPIC.into(),
            })
            .await
            .expect("delete")
            .into_inner();
        assert_eq!(code(&deleted.status), ResponseCode::Ok, "{deleted:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
        create_topic(&mut client, TOPIC, QUEUES as u32).await;
    }
    tokio::time::sleep(Duration::from_millis(150)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (mut ok, mut refused) = (0, 0);
    for t in tasks {
        let (o, r) = t.await.expect("producer");
        ok += o;
        refused += r;
    }
    println!("t14: {ok} sends acknowledged, {refused} refused around 5 deletions");
    assert!(ok > 0);
    // No acknowledgement named an offset that applying did not give (a send acknowledged on
    // the append and then refused because its topic was gone would count here).
    assert_eq!(prediction_mismatches(&group, leader).await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn async_master_answers_without_followers_and_sync_master_does_not() {
    for (role, answers) in [("ASYNC_MASTER", true), ("SYNC_MASTER", false)] {
        let mut group = Group::start(&[&format!("brokerRole={role}")]);
        let leader = group.leader().await;
        let mut client = group.client(leader).await;
        create_topic(&mut client, TOPIC, QUEUES as u32).await;
        let before = send_batch(
            &mut client,
            vec![message(TOPIC, 0, "before")],
            Duration::from_secs(10),
        )
        .await
        .expect("send with every replica up");
        assert_eq!(before.results[0].queue_offset, 0);

        let followers: Vec<usize> = (0..3).filter(|&i| i != leader).collect();
        for &f in &followers {
            group.nodes[f].kill9();
        }
        let alone = send_batch(
            &mut client,
            vec![message(TOPIC, 0, "alone")],
            Duration::from_secs(2),
        )
        .await;
        if !answers {
            assert!(
                alone.is_err(),
                "{role} answered without a majority: {alone:?}"
            );
            continue;
        }
        let alone = alone.unwrap_or_else(|e| panic!("{role} with no follower: {e}"));
        assert_eq!(alone.results[0].queue_offset, 1);
        // Acknowledged, not committed: no reader sees it, not even by its id.
        let by_id = |id: String| {
            let mut client = client.clone();
            async move {
                let resp = client
                    .query_message_by_id(pb::QueryMessageByIdRequest { msg_id: id })
                    .await
                    .expect("query")
                    .into_inner();
                (code(&resp.status), resp.message)
            }
        };
        let (found, _) = by_id(alone.results[0].msg_id.clone()).await;
        assert_eq!(
            found,
            ResponseCode::NotFound,
            "an uncommitted message by id"
        );

        // Once a follower is back the entry commits, at the offset the ack named.
        group.restart(followers[0]);
        let mut f = group.client(followers[0]).await;
        let stored = wait_for("the follower caught up", Duration::from_secs(20), || {
            let mut f = f.clone();
            async move {
                let got = pull_all(&mut f, TOPIC, 0, 0).await;
                (got.len() >= 2).then_some(got)
            }
        })
        .await;
        let _ = &mut f;
        assert_eq!(stored.len(), 2);
        assert_eq!(&stored[1].body[..], b"alone");
        assert_eq!(
            stored[1].commit_log_offset,
            alone.results[0].commit_log_offset
        );
        let (found, message) = wait_for("the leader applied it", Duration::from_secs(20), || {
            let by_id = &by_id;
            let id = alone.results[0].msg_id.clone();
            async move {
                let (code, message) = by_id(id).await;
                (code == ResponseCode::Ok).then_some((code, message))
            }
        })
        .await;
        assert_eq!(found, ResponseCode::Ok);
        assert_eq!(message.map(|m| m.queue_offset), Some(1));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sync_send_without_a_quorum_answers_within_sync_flush_timeout() {
    let mut group = Group::start(&["syncFlushTimeout=1000"]);
    let leader = group.leader().await;
    let mut client = group.client(leader).await;
    create_topic(&mut client, TOPIC, 1).await;
    for f in (0..3).filter(|&i| i != leader) {
        group.nodes[f].kill9();
    }
    let started = std::time::Instant::now();
    let resp = client
        .send_message(pb::SendMessageRequest {
            messages: vec![keyed(0, "no quorum", "key-no-quorum")],
            producer_group: "t".into(),
        })
        .await
        .expect("an answer, not a transport error")
        .into_inner();
    let took = started.elapsed();
    assert_eq!(
        code(&resp.status),
        ResponseCode::FlushSlaveTimeout,
        "{:?}",
        resp.status
    );
    assert!(resp.results.is_empty(), "its offsets are not known yet");
    assert!(
        took < Duration::from_secs(4),
        "answered after {took:?}, syncFlushTimeout is 1 s"
    );
}
