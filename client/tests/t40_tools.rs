//! mqadmin and mqbench as processes against the in-process fake cluster.

mod common;

use std::process::Output;

use client::bench::encode_body;
use client::{Message, Producer, ProducerConfig};
use common::FakeCluster;
use serde_json::Value;

const MQADMIN: &str = env!("CARGO_BIN_EXE_mqadmin");
const MQBENCH: &str = env!("CARGO_BIN_EXE_mqbench");

async fn run(bin: &str, namesrv: &str, args: &[&str]) -> Output {
    tokio::process::Command::new(bin)
        .args(args)
        .env("NAMESRV_ADDR", namesrv)
        .env_remove("RUST_LOG")
        .output()
        .await
        .unwrap()
}

fn stdout(out: &Output) -> String {
    assert!(
        out.status.success(),
        "exit {:?}: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn json(out: &Output) -> Value {
    serde_json::from_str(&stdout(out)).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t41_mqadmin_walk_through() {
    let cluster = FakeCluster::start(&["broker-a", "broker-b"], Some(("T", 2))).await;
    let ns = cluster.namesrv.addr.as_str();

    let members = json(&run(MQADMIN, ns, &["clusterList", "--json"]).await);
    assert_eq!(members.as_array().unwrap().len(), 2);
    assert_eq!(members[0]["leader"], Value::Bool(true));

    let sent = json(
        &run(
            MQADMIN,
            ns,
            &[
                "sendMessage",
                "-t",
                "T",
                "-p",
                "hello",
                "-k",
                "k1 k2",
                "-c",
                "TagA",
                "--json",
            ],
        )
        .await,
    );
    let id = sent[0]["msg_id"].as_str().unwrap().to_owned();
    assert_eq!(sent[0]["send_status"], "SEND_OK");

    let found = json(&run(MQADMIN, ns, &["queryMsgById", "-i", &id, "--json"]).await);
    assert_eq!(found["body"], "hello");
    assert_eq!(found["tags"], "TagA");
    assert_eq!(found["keys"], serde_json::json!(["k1", "k2"]));

    let consumed = json(&run(MQADMIN, ns, &["consumeMessage", "-t", "T", "--json"]).await);
    assert_eq!(consumed.as_array().unwrap().len(), 1);
    let text = stdout(&run(MQADMIN, ns, &["consumeMessage", "-t", "T"]).await);
    assert!(text.starts_with("BROKER NAME"), "{text}");
    assert!(text.contains("hello"), "{text}");

    let status = json(&run(MQADMIN, ns, &["topicStatus", "-t", "T", "--json"]).await);
    let total: u64 = status
        .as_array()
        .unwrap()
        .iter()
        .map(|q| q["max_offset"].as_u64().unwrap())
        .sum();
    assert_eq!(total, 1);

    let route = stdout(&run(MQADMIN, ns, &["topicRoute", "-t", "T"]).await);
    assert!(
        route.contains("broker-a") && route.contains("broker-b"),
        "{route}"
    );

    let updated = json(
        &run(
            MQADMIN,
            ns,
            &[
                "updateTopic",
                "-t",
                "New",
                "-c",
                "DefaultCluster",
                "-r",
                "3",
                "-w",
                "3",
                "--json",
            ],
        )
        .await,
    );
    assert_eq!(updated.as_array().unwrap().len(), 2);

    // Unknown topic: one line, exit 1.
    let out = run(MQADMIN, ns, &["topicRoute", "-t", "Unknown"]).await;
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("topic Unknown does not exist"), "{err}");

    // No progress for a group that never committed: one line, exit 1.
    let out = run(MQADMIN, ns, &["consumerProgress", "-g", "Nobody"]).await;
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("Nobody"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t42_mqbench_records_and_verify_finds_everything_then_a_duplicate() {
    let cluster = FakeCluster::start(&["broker-a", "broker-b"], Some(("Bench", 2))).await;
    let ns = cluster.namesrv.addr.clone();
    let dir = tempfile::tempdir().unwrap();
    let record = dir.path().join("acked.txt");
    let record_arg = record.to_str().unwrap();
    let batched = dir.path().join("batched.txt");
    let batched_arg = batched.to_str().unwrap();

    // 8 requests in flight: stored order within a queue is not send order.
    let out = stdout(
        &run(
            MQBENCH,
            &ns,
            &[
                "producer", "-t", "Bench", "--count", "300", "-w", "8", "-s", "64", "--record",
                record_arg,
            ],
        )
        .await,
    );
    let result = out.lines().last().unwrap();
    assert!(
        result.starts_with("RESULT role=producer msgs=300 msgs_per_s="),
        "{out}"
    );
    assert!(result.ends_with(" failed=0"), "{result}");
    // One request in flight, batches of 4: order within each queue is send order.
    let out = stdout(
        &run(
            MQBENCH,
            &ns,
            &[
                "producer",
                "-t",
                "Bench",
                "--count",
                "102",
                "-w",
                "1",
                "-b",
                "4",
                "--record",
                batched_arg,
            ],
        )
        .await,
    );
    assert!(out.lines().last().unwrap().contains(" msgs=102 "), "{out}");

    let out = stdout(
        &run(
            MQBENCH,
            &ns,
            &["verify", "--acked", batched_arg, "-t", "Bench"],
        )
        .await,
    );
    assert_eq!(
        out.lines().last().unwrap(),
        "RESULT acked=102 found=102 lost=0 duplicates=0 out_of_order=0 unexpected=0",
        "{out}"
    );
    let out = stdout(
        &run(
            MQBENCH,
            &ns,
            &[
                "verify",
                "--acked",
                record_arg,
                "--acked",
                batched_arg,
                "-t",
                "Bench",
            ],
        )
        .await,
    );
    let result = out.lines().last().unwrap();
    assert!(
        result.starts_with("RESULT acked=402 found=402 lost=0 duplicates=0 out_of_order="),
        "{result}"
    );
    assert!(result.ends_with(" unexpected=0"), "{result}");

    // Store message 7 of that run a second time: verify must fail.
    let header = std::fs::read_to_string(&record).unwrap();
    let run_hex = header
        .lines()
        .next()
        .unwrap()
        .split("run=")
        .nth(1)
        .unwrap()
        .split(' ')
        .next()
        .unwrap();
    let run_id = u64::from_str_radix(run_hex, 16).unwrap();
    let producer = Producer::start(&ns, ProducerConfig::default())
        .await
        .unwrap();
    producer
        .send(Message::new("Bench", encode_body(run_id, 7, 64)))
        .await
        .unwrap();
    let out = run(
        MQBENCH,
        &ns,
        &["verify", "--acked", record_arg, "-t", "Bench"],
    )
    .await;
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("lost=0 duplicates=1"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t43_mqbench_consumer_counts_what_it_consumes() {
    let cluster = FakeCluster::start(&["broker-a"], Some(("Bench", 2))).await;
    let ns = cluster.namesrv.addr.clone();
    let producer = Producer::start(&ns, ProducerConfig::default())
        .await
        .unwrap();
    for i in 0..50u64 {
        producer
            .send(Message::new("Bench", encode_body(1, i, 32)))
            .await
            .unwrap();
    }
    let out = stdout(
        &run(
            MQBENCH,
            &ns,
            &[
                "consumer", "-t", "Bench", "--from", "first", "--count", "50",
            ],
        )
        .await,
    );
    let result = out.lines().last().unwrap();
    assert!(
        result.starts_with("RESULT role=consumer msgs=50 msgs_per_s="),
        "{out}"
    );
}

/// A failed run's one-line error, after checking it exited 1 with nothing on stdout.
fn one_line_error(out: &Output) -> String {
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(out.stdout.is_empty(), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr).trim_end().to_owned();
    assert_eq!(err.lines().count(), 1, "{err}");
    err
}

/// The value of `key` in mqadmin's `key : value` text.
fn field_of(text: &str, key: &str) -> String {
    text.lines()
        .find_map(|l| {
            let (k, v) = l.split_once(" : ")?;
            (k.trim() == key).then(|| v.to_owned())
        })
        .unwrap_or_else(|| panic!("no {key} in {text}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t44_mqadmin_offsets_past_the_end_progress_times_and_binary_bodies() {
    let cluster = FakeCluster::start(&["broker-a"], Some(("T", 1))).await;
    let ns = cluster.namesrv.addr.as_str();
    let producer = Producer::start(ns, ProducerConfig::default())
        .await
        .unwrap();
    let queue = client::MessageQueue::new("T", "broker-a", 0);
    let mut ids = Vec::new();
    for i in 0..10 {
        let sent = producer
            .send_to_queue(vec![Message::new("T", format!("m{i}"))], &queue)
            .await
            .unwrap();
        ids.push(sent[0].msg_id.clone());
    }
    let consume = |offset: &'static str| {
        let args = ["consumeMessage", "-t", "T", "-b", "broker-a", "-q", "0"];
        let mut args = args.to_vec();
        args.extend(["-o", offset]);
        args
    };

    // Past the end: an error naming the queue and its valid range, not an empty table.
    let err = one_line_error(&run(MQADMIN, ns, &consume("999999")).await);
    assert!(err.contains("OFFSET_OUT_OF_RANGE"), "{err}");
    assert!(err.contains("offset 999999"), "{err}");
    assert!(err.contains("T@broker-a#0; valid range [0, 10]"), "{err}");
    // At the end: nothing there yet, which is no error.
    let text = stdout(&run(MQADMIN, ns, &consume("10")).await);
    assert!(text.starts_with("no new message"), "{text}");
    let mut last_two = consume("8");
    last_two.push("--json");
    let found = json(&run(MQADMIN, ns, &last_two).await);
    assert_eq!(found.as_array().map(Vec::len), Some(2), "{found}");
    assert_eq!(found[1]["body"], "m9");

    // consumerProgress shows when the last consumed message (offset 4) was stored.
    let reader = client::PullConsumer::new(producer.cluster().clone(), "G");
    reader.commit_offset(&queue, 5).await.unwrap();
    let progress = json(&run(MQADMIN, ns, &["consumerProgress", "-g", "G", "--json"]).await);
    let row = &progress["queues"][0];
    assert_eq!(row["consumer_offset"], 5, "{progress}");
    let fifth = stdout(&run(MQADMIN, ns, &["queryMsgById", "-i", &ids[4]]).await);
    let stored = field_of(&fifth, "store_time");
    assert_ne!(stored, "-");
    assert_eq!(row["last_time"], stored.as_str(), "{progress}");

    // A binary body never reaches the terminal raw.
    let binary = b"\x1b]0;owned\x07\x1b[2J\xff\x00tail".to_vec();
    let sent = producer
        .send_to_queue(vec![Message::new("T", binary.clone())], &queue)
        .await
        .unwrap();
    let id = sent[0].msg_id.as_str();
    let text = stdout(&run(MQADMIN, ns, &["queryMsgById", "-i", id]).await);
    assert!(!text.contains('\x1b') && !text.contains('\x07'), "{text:?}");
    let body = field_of(&text, "body");
    assert!(
        body.starts_with(&format!("<{} bytes, binary> 1b 5d 30 3b", binary.len())),
        "{body}"
    );
    let hex = stdout(
        &run(
            MQADMIN,
            ns,
            &["queryMsgById", "-i", id, "--body-format", "hex"],
        )
        .await,
    );
    assert!(
        hex.contains(
            "00000000  1b 5d 30 3b 6f 77 6e 65 64 07 1b 5b 32 4a ff 00  |.]0;owned..[2J..|"
        ),
        "{hex}"
    );
    assert!(!hex.contains('\x1b'), "{hex:?}");
    let found = json(&run(MQADMIN, ns, &["queryMsgById", "-i", id, "--json"]).await);
    assert_eq!(found["body_encoding"], "hex");
    assert_eq!(found["body"], "1b5d303b6f776e6564071b5b324aff007461696c");
    let table = stdout(&run(MQADMIN, ns, &consume("10")).await);
    assert!(
        table.contains("<20 bytes, binary>") && !table.contains('\x1b'),
        "{table:?}"
    );
}
