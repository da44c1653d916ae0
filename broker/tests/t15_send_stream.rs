//! `SendMessageStream`: many sends in flight on one stream, each answered under its id; a
//! leader stopped with SIGTERM answers what it took, ends the stream and exits, and every send
//! it acknowledged is on the replicas that carry on.

mod common;

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use common::{code, create_topic, message, pull_all, wait_for, Group};
use proto::v1::{self as pb, ResponseCode};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

const TOPIC: &str = "StreamTopic";
const QUEUES: i32 = 4;

fn request(id: u64) -> pb::SendStreamRequest {
    let queue_id = (id % QUEUES as u64) as i32;
    let mut m = message(TOPIC, queue_id, format!("m{id}"));
    m.properties.insert("UNIQ_KEY".into(), format!("key-{id}"));
    pb::SendStreamRequest {
        id,
        request: Some(pb::SendMessageRequest {
            messages: vec![m],
            producer_group: "t".into(),
        }),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopping_leader_answers_its_stream_then_exits_and_keeps_what_it_acked() {
    let mut group = Group::start(&[]);
    let leader = group.leader().await;
    let mut client = group.client(leader).await;
    create_topic(&mut client, TOPIC, QUEUES as u32).await;

    let (requests, rx) = mpsc::channel(64);
    let mut replies = client
        .send_message_stream(ReceiverStream::new(rx))
        .await
        .expect("open the send stream")
        .into_inner();

    // 300 sends go out without waiting for replies; the leader is stopped after the first
    // 100 replies, while sends are still arriving.
    let sender = tokio::spawn(async move {
        for id in 0..300u64 {
            if requests.send(request(id)).await.is_err() {
                break;
            }
            if id % 50 == 49 {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        requests
    });
    let mut answered: BTreeMap<u64, pb::SendMessageResponse> = BTreeMap::new();
    while answered.len() < 100 {
        let reply = tokio::time::timeout(Duration::from_secs(10), replies.message())
            .await
            .expect("a reply within 10 s")
            .expect("stream intact")
            .expect("stream open");
        assert!(answered
            .insert(reply.id, reply.response.unwrap_or_default())
            .is_none());
    }
    let stopping = std::thread::spawn({
        let mut node =
            std::mem::replace(&mut group.nodes[leader], common::BrokerProcess::stopped());
        move || {
            let started = std::time::Instant::now();
            node.terminate().map(|status| (status, started.elapsed()))
        }
    });
    // The stream ends (it does not hang the shutdown), after the replies to what it took.
    let ended = tokio::time::timeout(Duration::from_secs(15), async {
        loop {
            match replies.message().await {
                Ok(Some(reply)) => {
                    let id = reply.id;
                    let fresh = answered
                        .insert(id, reply.response.unwrap_or_default())
                        .is_none();
                    assert!(fresh, "reply {id} came twice");
                }
                Ok(None) | Err(_) => return,
            }
        }
    })
    .await;
    assert!(
        ended.is_ok(),
        "the send stream outlived the SIGTERM by 15 s"
    );
    let (status, took) = stopping.join().expect("terminate").expect("exit status");
    assert!(
        status.success(),
        "mqbroker exited with {status:?} on SIGTERM"
    );
    // An open stream must not hold the shutdown up (the node gives up on a server task that
    // has not finished after 5 s).
    assert!(took < Duration::from_secs(4), "SIGTERM took {took:?}");
    drop(sender.await);

    // Every send answered OK is on the replicas that carry on, once, at its offset.
    let acked: BTreeMap<String, (i32, u64)> = answered
        .iter()
        .filter(|(_, r)| code(&r.status) == ResponseCode::Ok)
        .map(|(id, r)| (format!("m{id}"), (r.queue_id, r.results[0].queue_offset)))
        .collect();
    assert!(
        acked.len() >= 100,
        "only {} sends acknowledged",
        acked.len()
    );
    let survivor = (leader + 1) % 3;
    let mut c = group.client(survivor).await;
    let mut seen = HashSet::new();
    for queue_id in 0..QUEUES {
        let max = acked
            .values()
            .filter(|(q, _)| *q == queue_id)
            .map(|(_, o)| *o)
            .max();
        let Some(max) = max else { continue };
        let stored = wait_for("acked sends on a survivor", Duration::from_secs(20), || {
            let mut c = c.clone();
            async move {
                let got = pull_all(&mut c, TOPIC, queue_id, 0).await;
                (got.len() as u64 > max).then_some(got)
            }
        })
        .await;
        for (offset, m) in stored.iter().enumerate() {
            let body = String::from_utf8_lossy(&m.body).to_string();
            assert!(seen.insert(body.clone()), "{body} stored twice");
            if let Some(&(q, o)) = acked.get(&body) {
                assert_eq!((q, o), (queue_id, offset as u64), "{body}");
            }
        }
    }
    let _ = &mut c;
    for body in acked.keys() {
        assert!(seen.contains(body), "acknowledged {body} is missing");
    }
}
