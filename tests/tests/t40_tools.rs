//! `mqadmin` and `mqbench` as a user runs them, against a real nameserver and group: the
//! walk-through of the README (clusterList, updateTopic, topicStatus, sendMessage,
//! consumeMessage, queryMsgById, a recorded benchmark and its verification), and the
//! one-line errors of bad flags, unreachable nameservers and unknown topics.

mod common;

use std::time::{Duration, Instant};

use client::Admin;
use common::{free_port, run_tool, wait_for, System, CLUSTER, GROUP};
use serde_json::Value;

const TOPIC: &str = "T40Tools";
const BENCH_TOPIC: &str = "T40Bench";
const BENCH_COUNT: u64 = 2000;

/// `mqadmin -n NAMESRV ARGS...`.
async fn mqadmin(namesrv: &str, args: &[&str]) -> common::ToolRun {
    let mut all = vec!["-n", namesrv];
    all.extend_from_slice(args);
    run_tool("mqadmin", &all).await
}

/// `mqadmin updateTopic`, then waits until the nameserver routes the topic.
async fn update_topic(namesrv: &str, topic: &str, queues: &str) {
    let out = mqadmin(
        namesrv,
        &[
            "updateTopic",
            "-t",
            topic,
            "-r",
            queues,
            "-w",
            queues,
            "-c",
            CLUSTER,
        ],
    )
    .await;
    assert!(
        out.ok().contains(topic),
        "updateTopic printed {}",
        out.stdout
    );
    let admin = Admin::connect(namesrv).await.expect("admin");
    wait_for(
        &format!("the nameserver to route {topic}"),
        Duration::from_secs(20),
        || async { admin.topic_route(topic).await.ok() },
    )
    .await;
}

fn field<'a>(row: &'a Value, name: &str) -> &'a Value {
    row.get(name)
        .unwrap_or_else(|| panic!("no field {name} in {row}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tools_walk_through_a_running_cluster() {
    let started = Instant::now();
    let system = System::start(1).await;
    let ns = system.namesrv_list();
    let ns = ns.as_str();
    let leader = system.leader().await;

    // clusterList: the group's three members, exactly one of them the leader.
    let rows = mqadmin(ns, &["clusterList", "--json"]).await.json();
    let members: Vec<&Value> = rows
        .as_array()
        .expect("an array")
        .iter()
        .filter(|r| field(r, "broker_name") == GROUP)
        .collect();
    assert_eq!(members.len(), 3, "members: {rows}");
    let leaders: Vec<&Value> = members
        .iter()
        .copied()
        .filter(|r| field(r, "leader") == true)
        .collect();
    assert_eq!(leaders.len(), 1, "leaders: {rows}");
    assert_eq!(field(leaders[0], "addr"), &system.broker_addrs[leader]);
    assert_eq!(field(leaders[0], "cluster"), CLUSTER);
    let text = mqadmin(ns, &["clusterList"]).await;
    assert!(
        text.ok().contains(GROUP) && text.ok().contains(&system.broker_addrs[leader]),
        "clusterList printed {}",
        text.stdout
    );

    // updateTopic, topicStatus: four empty queues.
    update_topic(ns, TOPIC, "4").await;
    let status = mqadmin(ns, &["topicStatus", "-t", TOPIC, "--json"])
        .await
        .json();
    let queues = status.as_array().expect("an array");
    assert_eq!(queues.len(), 4, "topicStatus: {status}");
    for q in queues {
        assert_eq!(
            (field(q, "min_offset"), field(q, "max_offset")),
            (&0.into(), &0.into())
        );
    }

    // sendMessage, consumeMessage, queryMsgById: one message round-trips.
    let body = "hello from t40";
    let sent = mqadmin(
        ns,
        &[
            "sendMessage",
            "-t",
            TOPIC,
            "-p",
            body,
            "-k",
            "k1 k2",
            "-c",
            "TagA",
            "--json",
        ],
    )
    .await
    .json();
    let sent = &sent[0];
    assert_eq!(field(sent, "send_status"), "SEND_OK");
    assert_eq!(field(sent, "queue_offset"), 0);
    let msg_id = field(sent, "msg_id").as_str().expect("msg_id").to_owned();
    let queue_id = field(sent, "queue_id").clone();

    let consumed = mqadmin(ns, &["consumeMessage", "-t", TOPIC, "--json"])
        .await
        .json();
    let consumed = consumed.as_array().expect("an array");
    assert_eq!(consumed.len(), 1, "consumeMessage: {consumed:?}");
    let m = &consumed[0];
    assert_eq!(field(m, "body"), body);
    assert_eq!(field(m, "msg_id"), msg_id.as_str());
    assert_eq!(field(m, "tags"), "TagA");
    assert_eq!(field(m, "keys"), &serde_json::json!(["k1", "k2"]));
    assert_eq!(field(m, "queue_id"), &queue_id);

    let found = mqadmin(ns, &["queryMsgById", "-i", &msg_id, "--json"])
        .await
        .json();
    assert_eq!(field(&found, "body"), body);
    assert_eq!(field(&found, "topic"), TOPIC);
    assert_eq!(field(&found, "queue_id"), &queue_id);
    assert_eq!(field(&found, "queue_offset"), 0);

    let status = mqadmin(ns, &["topicStatus", "-t", TOPIC, "--json"])
        .await
        .json();
    let ends: u64 = status
        .as_array()
        .expect("an array")
        .iter()
        .map(|q| field(q, "max_offset").as_u64().expect("max_offset"))
        .sum();
    assert_eq!(ends, 1, "topicStatus after one send: {status}");

    // An offset past the end of the queue is an error with the valid range, not an empty table.
    let queue = queue_id.to_string();
    let past = mqadmin(
        ns,
        &["consumeMessage", "-t", TOPIC, "-q", &queue, "-o", "999999"],
    )
    .await;
    let line = past.one_line_error("mqadmin", 1);
    assert!(
        line.contains("OFFSET_OUT_OF_RANGE") && line.contains("valid range [0, 1]"),
        "{line}"
    );

    // mqbench producer --record, then mqbench verify against the record.
    update_topic(ns, BENCH_TOPIC, "4").await;
    let record = system.dir().join("t40-bench.record");
    let record = record.to_str().expect("utf-8 path");
    let count = BENCH_COUNT.to_string();
    let bench_began = Instant::now();
    let produced = run_tool(
        "mqbench",
        &[
            "producer",
            "-n",
            ns,
            "-t",
            BENCH_TOPIC,
            "--count",
            &count,
            "-s",
            "128",
            "-w",
            "32",
            "--record",
            record,
        ],
    )
    .await;
    let result = produced
        .ok()
        .lines()
        .last()
        .expect("a RESULT line")
        .to_owned();
    println!("t40: {result} ({:?})", bench_began.elapsed());
    assert!(
        result.starts_with(&format!("RESULT role=producer msgs={BENCH_COUNT} "))
            && result.ends_with(" failed=0"),
        "mqbench producer: {result}"
    );
    let verified = run_tool(
        "mqbench",
        &["verify", "-n", ns, "--acked", record, "-t", BENCH_TOPIC],
    )
    .await;
    let result = verified.ok().trim_end();
    println!("t40: {result}");
    assert_eq!(
        result,
        format!(
            "RESULT acked={BENCH_COUNT} found={BENCH_COUNT} lost=0 duplicates=0 \
             out_of_order=0 unexpected=0"
        )
    );

    // brokerStatus shows each replica's state digest: settled, all three agree.
    let (applied, digest) = system.settled().await;
    let statuses = mqadmin(ns, &["brokerStatus", "--json"]).await.json();
    let statuses = statuses.as_array().expect("an array");
    assert_eq!(statuses.len(), 3, "{statuses:?}");
    for s in statuses {
        assert_eq!(
            field(s, "state_digest"),
            &Value::from(format!("{digest}@{applied}")),
            "{s}"
        );
        assert_eq!(field(s, "catching_up"), false);
        assert_eq!(field(s, "prediction_mismatches"), 0);
        assert!(
            field(s, "committed").as_str().is_some_and(|c| c != "-"),
            "{s}"
        );
    }

    // Unknown topics: a non-zero exit and one line naming the topic.
    for args in [
        &["topicStatus", "-t", "T40NoSuchTopic"][..],
        &["consumeMessage", "-t", "T40NoSuchTopic"][..],
        &["topicRoute", "-t", "T40NoSuchTopic"][..],
    ] {
        let out = mqadmin(ns, args).await;
        let line = out.one_line_error("mqadmin", 1);
        assert!(line.contains("T40NoSuchTopic"), "{args:?}: {line}");
    }
    let empty = system.dir().join("t40-empty.record");
    client::bench::RecordWriter::create(&empty, 1, "T40NoSuchTopic")
        .and_then(|w| w.finish(0))
        .expect("an empty record file");
    let empty = empty.to_str().expect("utf-8 path");
    let out = run_tool(
        "mqbench",
        &["verify", "-n", ns, "--acked", empty, "-t", "T40NoSuchTopic"],
    )
    .await;
    let line = out.one_line_error("mqbench", 1);
    assert!(line.contains("T40NoSuchTopic"), "{line}");
    println!("t40: walk-through passed in {:?}", started.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tools_explain_bad_flags_and_unreachable_nameservers_in_one_line() {
    // Bad usage: exit 2, one line.
    for (tool, args) in [
        ("mqadmin", &["clusterList", "--bogus"][..]),
        ("mqadmin", &["-n", "no-port-here", "clusterList"][..]),
        ("mqadmin", &["noSuchCommand"][..]),
        ("mqbench", &["producer", "--bogus"][..]),
        ("mqbench", &["producer", "--count", "many"][..]),
    ] {
        let out = run_tool(tool, args).await;
        out.one_line_error(tool, 2);
    }

    // Nothing listens on this port: exit 1, one line naming the address.
    let dead = format!("127.0.0.1:{}", free_port());
    for (tool, args) in [
        ("mqadmin", &["-n", dead.as_str(), "clusterList"][..]),
        (
            "mqadmin",
            &["-n", dead.as_str(), "topicStatus", "-t", "T"][..],
        ),
        (
            "mqbench",
            &["producer", "-n", dead.as_str(), "-t", "T", "--count", "1"][..],
        ),
    ] {
        let began = Instant::now();
        let out = run_tool(tool, args).await;
        let line = out.one_line_error(tool, 1);
        assert!(line.contains(&dead), "{tool} {args:?}: {line}");
        assert!(
            began.elapsed() < Duration::from_secs(15),
            "{tool} took {:?} to give up",
            began.elapsed()
        );
    }
}
