//! Bad input gets its status and the broker keeps serving; a bad config value fails start-up
//! with one line naming file, line and key.

mod common;

use std::process::Command;

use common::{code, message, pull_all, send, Group};
use proto::v1::{self as pb, OffsetBoundary, ResponseCode};

async fn send_raw(
    client: &mut common::Client,
    messages: Vec<pb::Message>,
) -> pb::SendMessageResponse {
    client
        .send_message(pb::SendMessageRequest {
            messages,
            producer_group: "bad".into(),
        })
        .await
        .expect("transport")
        .into_inner()
}

async fn pull_at(client: &mut common::Client, topic: &str, offset: u64) -> pb::PullMessageResponse {
    client
        .pull_message(pb::PullMessageRequest {
            consumer_group: "bad".into(),
            topic: topic.into(),
            queue_id: 0,
            queue_offset: offset,
            max_count: 10,
            max_wait_ms: 0,
            tag_expression: "*".into(),
        })
        .await
        .expect("transport")
        .into_inner()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_their_status_and_the_broker_keeps_serving() {
    let group = Group::start(&["maxMessageSize=1024"]);
    let leader = group.leader().await;
    let mut client = group.client(leader).await;
    for i in 0..3 {
        send(&mut client, "BadInput", &format!("ok-{i}"))
            .await
            .expect("good send");
    }

    let oversized = send_raw(&mut client, vec![message("BadInput", 0, vec![b'x'; 1025])]).await;
    assert_eq!(code(&oversized.status), ResponseCode::MessageIllegal);
    assert!(oversized.status.unwrap().remark.contains("maxMessageSize"));

    let empty = send_raw(&mut client, vec![message("BadInput", 0, Vec::new())]).await;
    assert_eq!(code(&empty.status), ResponseCode::MessageIllegal);

    for name in ["bad topic", "", "x/y", &"t".repeat(128)] {
        let resp = send_raw(&mut client, vec![message(name, 0, "body")]).await;
        assert_eq!(
            code(&resp.status),
            ResponseCode::MessageIllegal,
            "topic {name:?}"
        );
    }

    let mixed = send_raw(
        &mut client,
        vec![message("BadInput", 0, "a"), message("Other", 0, "b")],
    )
    .await;
    assert_eq!(code(&mixed.status), ResponseCode::MessageIllegal);

    let past_end = pull_at(&mut client, "BadInput", 10).await;
    assert_eq!(code(&past_end.status), ResponseCode::OffsetOutOfRange);
    let range = match past_end.status.and_then(|s| s.detail) {
        Some(pb::response_status::Detail::OffsetOutOfRange(r)) => r,
        other => panic!("no range detail: {other:?}"),
    };
    assert_eq!(range.boundary(), OffsetBoundary::AboveMax);
    assert_eq!((range.min_offset, range.max_offset), (0, 3));

    let at_end = pull_at(&mut client, "BadInput", 3).await;
    assert_eq!(code(&at_end.status), ResponseCode::NoNewMessage);

    let unknown = pull_at(&mut client, "NoSuchTopic", 0).await;
    assert_eq!(code(&unknown.status), ResponseCode::TopicNotExist);

    // Still serving, nothing lost or added by the refused requests.
    send(&mut client, "BadInput", "ok-3")
        .await
        .expect("send after bad input");
    let all = pull_all(&mut client, "BadInput", 0, 0).await;
    let bodies: Vec<&[u8]> = all.iter().map(|m| &m.body[..]).collect();
    assert_eq!(bodies, [&b"ok-0"[..], b"ok-1", b"ok-2", b"ok-3"]);
}

/// A send of one message to queue 0 of `topic` after `edit` changed it.
fn edited(topic: &str, edit: impl FnOnce(&mut pb::Message)) -> Vec<pb::Message> {
    let mut m = message(topic, 0, "body");
    edit(&mut m);
    vec![m]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_field_that_reaches_the_log_is_held_to_its_limit_and_the_group_lives_on() {
    let mut group = Group::start(&[]);
    let leader = group.leader().await;
    let mut client = group.client(leader).await;
    send(&mut client, "Limits", "first")
        .await
        .expect("good send");

    // Each of these once reached the log unchecked; a 70,000-byte UNIQ_KEY stopped all three
    // replicas for good (its 16-bit length was written with `as u16`).
    let refused: Vec<(&str, Vec<pb::Message>)> = vec![
        (
            "UNIQ_KEY",
            edited("Limits", |m| {
                m.properties.insert("UNIQ_KEY".into(), "k".repeat(70_000));
            }),
        ),
        (
            "32767",
            edited("Limits", |m| {
                m.properties.insert("big".into(), "v".repeat(40_000));
            }),
        ),
        (
            "128",
            edited("Limits", |m| {
                for i in 0..200 {
                    m.properties.insert(format!("p{i}"), "v".into());
                }
            }),
        ),
        ("'|'", edited("Limits", |m| m.tags = "a||b".into())),
        ("control", edited("Limits", |m| m.tags = "a\u{0}b".into())),
        (
            "property name",
            edited("Limits", |m| {
                m.properties.insert(String::new(), "v".into());
            }),
        ),
        ("blank", edited("Limits", |m| m.keys = vec![" ".into()])),
        (
            "born_host",
            edited("Limits", |m| m.born_host = "h".repeat(300)),
        ),
        (
            "batch of 2",
            vec![
                message("Limits", 0, vec![b'x'; 3 << 20]),
                message("Limits", 0, vec![b'y'; 3 << 20]),
            ],
        ),
    ];
    for (says, messages) in refused {
        let resp = send_raw(&mut client, messages).await;
        let status = resp.status.expect("status");
        assert_eq!(
            status.code(),
            ResponseCode::MessageIllegal,
            "{says}: {status:?}"
        );
        assert!(status.remark.contains(says), "{says}: {}", status.remark);
    }
    let long_group = "g".repeat(300);
    let commit = client
        .commit_consumer_offset(pb::CommitConsumerOffsetRequest {
            consumer_group: long_group.clone(),
            topic: "Limits".into(),
            queue_id: 0,
            offset: 1,
        })
        .await
        .expect("transport")
        .into_inner();
    assert_eq!(code(&commit.status), ResponseCode::IllegalArgument);
    assert!(commit.status.unwrap().remark.contains("255"));
    let heartbeat = client
        .heartbeat_consumer(pb::HeartbeatConsumerRequest {
            consumer_group: long_group,
            client_id: "c".into(),
            ..Default::default()
        })
        .await
        .expect("transport")
        .into_inner();
    assert_eq!(code(&heartbeat.status), ResponseCode::IllegalArgument);
    for (queues, perm) in [(5_000, 6), (4, 99)] {
        let resp = client
            .create_or_update_topic(pb::CreateOrUpdateTopicRequest {
                topic: Some(pb::TopicConfig {
                    topic_name: "Limits2".into(),
                    read_queue_nums: queues,
                    write_queue_nums: queues,
                    perm,
                    order: false,
                }),
            })
            .await
            .expect("transport")
            .into_inner();
        assert_eq!(
            code(&resp.status),
            ResponseCode::IllegalArgument,
            "{resp:?}"
        );
    }

    // A UNIQ_KEY at the limit is fine, and the group serves on, on every replica.
    let at_limit = send_raw(
        &mut client,
        edited("Limits", |m| {
            m.properties.insert("UNIQ_KEY".into(), "k".repeat(128));
        }),
    )
    .await;
    assert_eq!(code(&at_limit.status), ResponseCode::Ok);
    // A commit carries the leader's time: every replica shows the same LAST COMMIT.
    let before = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let commit = client
        .commit_consumer_offset(pb::CommitConsumerOffsetRequest {
            consumer_group: "LimitsGroup".into(),
            topic: "Limits".into(),
            queue_id: 0,
            offset: 1,
        })
        .await
        .expect("transport")
        .into_inner();
    assert_eq!(code(&commit.status), ResponseCode::Ok);
    let settled = group.settled().await;
    let mut commit_times = Vec::new();
    for i in 0..3 {
        let stats = group
            .client(i)
            .await
            .get_consume_stats(pb::GetConsumeStatsRequest {
                consumer_group: "LimitsGroup".into(),
                topic: "Limits".into(),
            })
            .await
            .expect("stats")
            .into_inner();
        let q0 = stats
            .stats
            .iter()
            .find(|s| s.queue_id == 0)
            .expect("queue 0");
        commit_times.push(q0.last_commit_timestamp_ms);
    }
    assert!(commit_times[0] >= before, "{commit_times:?} vs {before}");
    assert!(
        commit_times.iter().all(|t| *t == commit_times[0]),
        "{commit_times:?}"
    );
    for i in 0..3 {
        let mut c = group.client(i).await;
        assert_eq!(
            pull_all(&mut c, "Limits", 0, 0).await.len(),
            2,
            "replica {i}"
        );
    }

    // And a restart of the whole group on its data is no crash loop.
    for node in &mut group.nodes {
        node.kill9();
    }
    for i in 0..3 {
        group.restart(i);
    }
    let leader = group.leader().await;
    let mut client = group.client(leader).await;
    send(&mut client, "Limits", "after the restart")
        .await
        .expect("send after the restart");
    let after = group.settled().await;
    assert!(after.0 > settled.0);
}

#[test]
fn a_bad_config_value_fails_startup_with_file_line_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("broker-bad.properties");
    std::fs::write(
        &conf,
        "brokerClusterName=C\nbrokerName=b\n\nflushDiskType=SOMETIMES\n",
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_mqbroker"))
        .arg("-c")
        .arg(&conf)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("mqbroker:"))
        .collect();
    assert_eq!(lines.len(), 1, "{stderr}");
    let line = lines[0];
    assert!(
        line.contains("broker-bad.properties:4")
            && line.contains("flushDiskType")
            && line.contains("SOMETIMES"),
        "{line}"
    );
    assert!(line.contains("SYNC_FLUSH"), "says what is allowed: {line}");
}

#[test]
fn a_port_in_use_is_a_one_line_error() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_mqbroker"))
        .arg("-c")
        .arg(common::repo_root().join("conf/dledger/broker-n0.properties"))
        .args(["--set", &format!("listenPort={port}")])
        .args([
            "--set",
            &format!("storePathRootDir={}", dir.path().display()),
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("127.0.0.1:{port}")) && stderr.contains("listenPort"),
        "{stderr}"
    );
}
