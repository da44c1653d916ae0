//! Random but well-formed requests to every RPC of a live group: random sizes and lengths,
//! Unicode and control characters, huge maps, zero, negative and extreme numbers. Each must
//! get an answer (a status, never a hang or a dropped connection), and afterwards every
//! replica is alive, the replicas agree on their state digest, and a normal send and pull work.
//!
//! The replication port gets requests for other groups and nodes and malformed ones, not
//! well-addressed Raft traffic: a replica trusts its peers (a forged leader of a higher term is
//! obeyed, as in any Raft, DLedger or RocketMQ HA), so that port belongs on a network only the
//! group's replicas reach.

mod common;

use std::time::{Duration, Instant};

use common::{code, create_topic, pull_all, send, Client, Group};
use proto::v1::{self as pb, ResponseCode};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// How long requests are fired, unless `RAFTMQ_FUZZ_SECS` says otherwise (a long run:
/// `RAFTMQ_FUZZ_SECS=600 cargo test -p broker --test t17_fuzz_rpcs -- --nocapture`).
fn fuzz_for() -> Duration {
    let secs = std::env::var("RAFTMQ_FUZZ_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(12);
    Duration::from_secs(secs)
}
/// Concurrent request loops.
const LOOPS: usize = 6;
/// A request other than a long poll must be answered within this.
const ANSWER_WITHIN: Duration = Duration::from_secs(8);

/// Text from a random mix of alphabets: legal names, Unicode, control characters, separators.
fn text(rng: &mut StdRng, max_len: usize) -> String {
    let len = match rng.random_range(0..10) {
        0 => 0,
        1 => max_len,
        _ => rng.random_range(0..=max_len.min(64)),
    };
    let pick = rng.random_range(0..5);
    (0..len)
        .map(|_| match pick {
            0 => rng.random_range(b'a'..=b'z') as char,
            1 => ['T', 'o', 'p', '_', '-', '%', '|', '1'][rng.random_range(0..8)],
            2 => char::from_u32(rng.random_range(0x20..0x3000)).unwrap_or('x'),
            3 => char::from_u32(rng.random_range(0..0x20)).unwrap_or('\0'),
            _ => ['\u{1}', '\u{2}', ' ', '/', '√', '𝄞', '|', '\u{7f}'][rng.random_range(0..8)],
        })
        .collect()
}

/// A topic name: usually one of a few legal ones (so requests reach deep), sometimes junk.
fn topic(rng: &mut StdRng) -> String {
    if rng.random_bool(0.9) {
        ["Fz0", "Fz1", "Fz2", "FuzzTopic"][rng.random_range(0..4)].to_owned()
    } else {
        text(rng, 300)
    }
}

fn number_u64(rng: &mut StdRng) -> u64 {
    match rng.random_range(0..6) {
        0 => 0,
        1 => u64::MAX,
        2 => u64::from(u32::MAX),
        3 => rng.random_range(0..16),
        _ => rng.random(),
    }
}

fn number_i32(rng: &mut StdRng) -> i32 {
    match rng.random_range(0..6) {
        0 => -1,
        1 => i32::MIN,
        2 => i32::MAX,
        _ => rng.random_range(-1..8),
    }
}

fn message(rng: &mut StdRng, topic: &str, queue_id: i32) -> pb::Message {
    if rng.random_bool(0.5) {
        // A message the broker takes, so requests also reach the log and the state machine.
        let mut m = pb::Message {
            topic: topic.to_owned(),
            queue_id,
            tags: ["", "TagA", "标签"][rng.random_range(0..3)].to_owned(),
            body: vec![b'b'; rng.random_range(1..2000)].into(),
            ..Default::default()
        };
        if rng.random_bool(0.7) {
            // Few distinct keys, so retries (and keys repeated in a batch) are common.
            let key = format!("{:032X}", rng.random_range(0..500u32));
            m.properties.insert("UNIQ_KEY".into(), key);
        }
        return m;
    }
    let mut m = pb::Message {
        topic: topic.to_owned(),
        queue_id,
        tags: text(rng, 400),
        keys: (0..rng.random_range(0..4))
            .map(|_| text(rng, 300))
            .collect(),
        body: vec![b'b'; [0, 1, 100, 10_000, 1 << 20][rng.random_range(0..5)]].into(),
        born_timestamp_ms: rng.random(),
        born_host: text(rng, 400),
        ..Default::default()
    };
    let properties = [0, 1, 5, 300][rng.random_range(0..4)];
    for _ in 0..properties {
        m.properties.insert(text(rng, 100), text(rng, 2000));
    }
    if rng.random_bool(0.5) {
        let len = [8, 128, 200, 70_000][rng.random_range(0..4)];
        let key = text(rng, len);
        m.properties.insert("UNIQ_KEY".into(), key);
    }
    m
}

fn send_request(rng: &mut StdRng) -> pb::SendMessageRequest {
    let (t, q) = (topic(rng), number_i32(rng));
    let n = [0, 1, 3, 40][rng.random_range(0..4)];
    pb::SendMessageRequest {
        messages: (0..n)
            .map(|_| {
                // Mostly one topic and queue per batch, sometimes mixed.
                if rng.random_bool(0.9) {
                    message(rng, &t, q)
                } else {
                    let (other, queue) = (topic(rng), number_i32(rng));
                    message(rng, &other, queue)
                }
            })
            .collect(),
        producer_group: text(rng, 300),
    }
}

/// Fires one random request; `Err` says what went wrong with the answer.
async fn one_request(client: &mut Client, rng: &mut StdRng) -> Result<(), String> {
    let started = Instant::now();
    let which = rng.random_range(0..15);
    let mut long_poll = false;
    let call = async {
        let answered: Result<(), tonic::Status> = match which {
            0 => client.send_message(send_request(rng)).await.map(drop),
            1 => {
                let requests: Vec<pb::SendStreamRequest> = (0..rng.random_range(0..5))
                    .map(|_| pb::SendStreamRequest {
                        id: number_u64(rng),
                        request: rng.random_bool(0.9).then(|| send_request(rng)),
                    })
                    .collect();
                let n = requests.len();
                match client
                    .send_message_stream(futures::stream::iter(requests))
                    .await
                {
                    Ok(resp) => {
                        let mut replies = resp.into_inner();
                        let mut got = 0;
                        while let Some(r) = replies.message().await? {
                            let _ = r;
                            got += 1;
                        }
                        assert_eq!(got, n, "one reply per request on a send stream");
                        Ok(())
                    }
                    Err(e) => Err(e),
                }
            }
            2 => {
                let wait = [0, 0, 0, 500, u32::MAX][rng.random_range(0..5)];
                long_poll = wait > 0;
                client
                    .pull_message(pb::PullMessageRequest {
                        consumer_group: text(rng, 300),
                        topic: topic(rng),
                        queue_id: number_i32(rng),
                        queue_offset: number_u64(rng),
                        max_count: rng.random(),
                        max_wait_ms: wait,
                        tag_expression: text(rng, 500),
                    })
                    .await
                    .map(drop)
            }
            3 => client
                .commit_consumer_offset(pb::CommitConsumerOffsetRequest {
                    consumer_group: text(rng, 300),
                    topic: topic(rng),
                    queue_id: number_i32(rng),
                    offset: number_u64(rng),
                })
                .await
                .map(drop),
            4 => client
                .query_consumer_offset(pb::QueryConsumerOffsetRequest {
                    consumer_group: text(rng, 300),
                    topic: topic(rng),
                    queue_id: number_i32(rng),
                })
                .await
                .map(drop),
            5 => client
                .get_queue_offsets(pb::GetQueueOffsetsRequest {
                    topic: topic(rng),
                    queue_id: number_i32(rng),
                })
                .await
                .map(drop),
            6 => client
                .get_consume_stats(pb::GetConsumeStatsRequest {
                    consumer_group: text(rng, 300),
                    topic: if rng.random_bool(0.5) {
                        String::new()
                    } else {
                        topic(rng)
                    },
                })
                .await
                .map(drop),
            7 => {
                let id = if rng.random_bool(0.5) {
                    // A well-formed offset message id at a random position.
                    let addr = "127.0.0.1:10911".parse().expect("addr");
                    proto::msg_id::OffsetMsgId::new(addr, number_u64(rng)).to_string()
                } else {
                    text(rng, 100)
                };
                client
                    .query_message_by_id(pb::QueryMessageByIdRequest { msg_id: id })
                    .await
                    .map(drop)
            }
            8 => client
                .broker_status(pb::BrokerStatusRequest {})
                .await
                .map(drop),
            9 => client
                .create_or_update_topic(pb::CreateOrUpdateTopicRequest {
                    topic: rng.random_bool(0.95).then(|| pb::TopicConfig {
                        topic_name: topic(rng),
                        read_queue_nums: [0, 1, 4, 1024, 1025, u32::MAX][rng.random_range(0..6)],
                        write_queue_nums: [0, 1, 4, 1024, 1025, u32::MAX][rng.random_range(0..6)],
                        perm: [0, 2, 4, 6, 7, 8, u32::MAX][rng.random_range(0..7)],
                        order: rng.random(),
                    }),
                })
                .await
                .map(drop),
            10 => client
                .delete_topic(pb::DeleteTopicRequest { topic: topic(rng) })
                .await
                .map(drop),
            11 => client.list_topics(pb::ListTopicsRequest {}).await.map(drop),
            12 => client
                .heartbeat_consumer(pb::HeartbeatConsumerRequest {
                    consumer_group: text(rng, 300),
                    client_id: text(rng, 300),
                    subscriptions: (0..[0, 1, 300][rng.random_range(0..3)])
                        .map(|_| pb::Subscription {
                            topic: topic(rng),
                            tag_expression: text(rng, 500),
                        })
                        .collect(),
                    message_model: number_i32(rng),
                })
                .await
                .map(drop),
            13 => client
                .unregister_consumer(pb::UnregisterConsumerRequest {
                    consumer_group: text(rng, 300),
                    client_id: text(rng, 300),
                })
                .await
                .map(drop),
            _ => client
                .list_consumer_group_members(pb::ListConsumerGroupMembersRequest {
                    consumer_group: text(rng, 300),
                })
                .await
                .map(drop),
        };
        answered
    };
    match tokio::time::timeout(ANSWER_WITHIN, call).await {
        Ok(Ok(())) => Ok(()),
        // The request was refused by gRPC itself (too large): an answer too.
        Ok(Err(status)) if status.code() == tonic::Code::OutOfRange => Ok(()),
        Ok(Err(status)) => Err(format!("request {which}: transport status {status}")),
        Err(_) if long_poll => Ok(()),
        Err(_) => Err(format!(
            "request {which} unanswered after {:?}",
            started.elapsed()
        )),
    }
}

/// Requests for the replication port: other groups and nodes, and malformed ones.
async fn raft_request(addr: &str, rng: &mut StdRng) -> Result<(), String> {
    let channel = tonic::transport::Channel::from_shared(format!("http://{addr}"))
        .map_err(|e| e.to_string())?
        .connect_lazy();
    let mut raft = proto::RaftServiceClient::new(channel);
    let group = if rng.random_bool(0.5) {
        text(rng, 100)
    } else {
        "RaftNode00".into()
    };
    let target = if group == "RaftNode00" {
        7 + number_u64(rng) % 100
    } else {
        number_u64(rng) % 3
    };
    let call = async {
        match rng.random_range(0..4) {
            0 => raft
                .vote(pb::VoteRequest {
                    group: group.clone(),
                    target_node_id: target,
                    ..Default::default()
                })
                .await
                .map(drop),
            1 => raft
                .append_entries(pb::AppendEntriesRequest {
                    group: group.clone(),
                    target_node_id: target,
                    ..Default::default()
                })
                .await
                .map(drop),
            2 => raft
                .replica_state(pb::ReplicaStateRequest {
                    group: group.clone(),
                    target_node_id: target,
                    asker_node_id: number_u64(rng),
                })
                .await
                .map(drop),
            _ => raft
                .timeout_now(pb::TimeoutNowRequest {
                    group: group.clone(),
                    target_node_id: target,
                    ..Default::default()
                })
                .await
                .map(drop),
        }
    };
    match tokio::time::timeout(ANSWER_WITHIN, call).await {
        // NOT_FOUND for other groups and nodes: the expected refusal.
        Ok(Err(s))
            if s.code() == tonic::Code::NotFound || s.code() == tonic::Code::InvalidArgument =>
        {
            Ok(())
        }
        Ok(Ok(())) => Err(format!("a request for {group:?}/{target} was served")),
        Ok(Err(s)) => Err(format!("replication port: {s}")),
        Err(_) => Err("replication port: no answer".into()),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_requests_to_every_rpc_leave_the_group_alive_and_in_agreement() {
    let seed: u64 = std::env::var("RAFTMQ_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random);
    println!("t17: seed {seed}");
    let mut group = Group::start(&[]);
    let leader = group.leader().await;
    let mut client = group.client(leader).await;
    create_topic(&mut client, "FuzzTopic", 4).await;

    let deadline = Instant::now() + fuzz_for();
    let mut loops = Vec::new();
    for l in 0..LOOPS {
        // Half the loops talk to the leader, the others to each replica in turn.
        let clients: Vec<Client> = futures::future::join_all((0..3).map(|i| group.client(i))).await;
        let raft_addrs: Vec<String> = group
            .raft_ports
            .iter()
            .map(|p| format!("127.0.0.1:{p}"))
            .collect();
        loops.push(tokio::spawn(async move {
            let mut rng = StdRng::seed_from_u64(seed ^ (l as u64).wrapping_mul(0x9e37_79b9));
            let (mut requests, mut failures) = (0u64, Vec::new());
            while Instant::now() < deadline {
                let i = if l % 2 == 0 {
                    leader
                } else {
                    rng.random_range(0..3)
                };
                let outcome = if rng.random_range(0..10) == 0 {
                    raft_request(&raft_addrs[i], &mut rng).await
                } else {
                    one_request(&mut clients[i].clone(), &mut rng).await
                };
                if let Err(e) = outcome {
                    failures.push(e);
                }
                requests += 1;
            }
            (requests, failures)
        }));
    }
    let mut requests = 0;
    let mut failures = Vec::new();
    for l in loops {
        let (r, f) = l.await.expect("fuzz loop");
        requests += r;
        failures.extend(f);
    }
    println!(
        "t17: {requests} random requests, {} without a proper answer",
        failures.len()
    );
    assert!(failures.is_empty(), "first: {:?}", failures.first());

    // Every replica alive, in agreement, and serving.
    for (i, node) in group.nodes.iter_mut().enumerate() {
        let exited = node
            .child
            .as_mut()
            .and_then(|c| c.try_wait().ok().flatten());
        assert!(exited.is_none(), "replica {i} exited: {exited:?}");
    }
    let (applied, digest) = group.settled().await;
    println!("t17: every replica at entry {applied}, digest {digest}");
    let leader = group.leader().await;
    let mut client = group.client(leader).await;
    let sent = send(&mut client, "FuzzTopic", "after the fuzz")
        .await
        .expect("a normal send");
    let offset = sent.results[0].queue_offset;
    let pulled = pull_all(&mut client, "FuzzTopic", sent.queue_id, offset).await;
    assert_eq!(
        pulled.first().map(|m| &m.body[..]),
        Some(&b"after the fuzz"[..])
    );
    assert_eq!(code(&sent.status), ResponseCode::Ok);
}
