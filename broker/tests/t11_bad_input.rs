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
