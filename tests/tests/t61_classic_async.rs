//! `2m-2s-async` and `2m-noslave` from their property files, as real processes.
//!
//! - `2m-2s-async`: `mqbench producer --record` sends through a `kill -9` of the master; the
//!   slave takes over; the old master comes back, drops the entries the new master never had
//!   and takes leadership back. `mqbench verify` then counts what was lost: acknowledged on
//!   the master's own append and gone with it. The loss is at most what the old master
//!   reports it dropped (what its slave had not received), and nothing is duplicated or out of
//!   order.
//! - `2m-noslave`: two groups; one dies, sends go on to the other; after its restart, every
//!   message it acknowledged is there.

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use libc::{SIGCONT, SIGSTOP};

use client::Admin;
use common::acked::{check_exactly_once_in_order, read_topic, Load};
use common::classic::{producer, Classic};
use common::{bin, broker_status, create_topic_on, run_id, wait_for};

const QUEUES: u32 = 4;

/// `key=value` from a `RESULT ...` line of mqbench.
fn result_value(output: &str, key: &str) -> u64 {
    let line = output
        .lines()
        .find(|l| l.starts_with("RESULT "))
        .unwrap_or_else(|| panic!("no RESULT line in:\n{output}"));
    line.split_whitespace()
        .find_map(|kv| kv.strip_prefix(&format!("{key}=")))
        .and_then(|v| v.parse::<f64>().ok())
        .unwrap_or_else(|| panic!("no {key} in {line}")) as u64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_async_master_kill_loses_at_most_what_its_slave_lacked_and_reports_it() {
    const TOPIC: &str = "T61Async";
    // A long slaveTimeout keeps the stalled slave below in the in-sync set: it then holds the
    // witness back, so it can still win the election when the master dies.
    const SLAVE_TIMEOUT: &[&str] = &["slaveTimeout=20000"];
    let mut c = Classic::start(
        "2m-2s-async",
        1,
        &[("broker-a", SLAVE_TIMEOUT), ("broker-a-s", SLAVE_TIMEOUT)],
    )
    .await;
    c.wait_in_sync("broker-a").await;
    let namesrv = c.namesrv_list();
    let admin = Admin::connect(&namesrv).await.expect("admin");
    create_topic_on(&admin, TOPIC, QUEUES, 1).await;
    let (master, slave) = (c.index("broker-a"), c.index("broker-a-s"));

    let record = c.dir().join("acked.txt");
    let bench_log = c.dir().join("mqbench.log");
    let mut producer = Command::new(bin("mqbench"))
        .args([
            "producer", "-n", &namesrv, "-t", TOPIC, "-s", "256", "-w", "32",
        ])
        .args(["--duration", "8s", "--send-timeout", "10s", "--record"])
        .arg(&record)
        .stdout(Stdio::from(
            std::fs::File::create(&bench_log).expect("bench log"),
        ))
        .stderr(Stdio::null())
        .spawn()
        .expect("start mqbench producer");
    let acked_lines = || {
        std::fs::read_to_string(&record)
            .map(|t| t.lines().count())
            .unwrap_or(0)
    };
    wait_for(
        "1000 acknowledged sends",
        Duration::from_secs(30),
        || async { (acked_lines() >= 1000).then_some(()) },
    )
    .await;

    // The slave stalls for a moment (a GC pause, a slow disk): the master goes on answering
    // sends on its own append (up to the proposer's window of uncommitted entries). Then it
    // dies, and the slave takes over without those.
    c.nodes[slave].process.signal(SIGSTOP);
    let put = || async {
        broker_status(&c.nodes[master].addr)
            .await
            .map(|s| s.messages_put_total)
    };
    let before = wait_for("the master's status", Duration::from_secs(10), put).await;
    wait_for(
        "sends acknowledged by the master alone",
        Duration::from_secs(10),
        || async { put().await.filter(|n| *n >= before + 20) },
    )
    .await;
    c.kill(master);
    c.nodes[slave].process.signal(SIGCONT);
    let killed = Instant::now();
    assert_eq!(
        c.leader_within("broker-a", Duration::from_secs(10)).await,
        slave
    );
    let took_over = killed.elapsed();
    c.restart(master);
    wait_for(
        "broker-a to lead its group again",
        Duration::from_secs(30),
        || async { (c.current_leader("broker-a").await == Some(master)).then_some(()) },
    )
    .await;
    let status = producer.wait().expect("mqbench producer");
    assert!(status.success(), "mqbench producer: {status}");
    c.wait_in_sync("broker-a").await;
    let dropped = broker_status(&c.nodes[master].addr)
        .await
        .expect("the old master's status");

    let verify = Command::new(bin("mqbench"))
        .args(["verify", "-n", &namesrv, "-t", TOPIC, "--acked"])
        .arg(&record)
        .output()
        .expect("mqbench verify");
    let out = String::from_utf8_lossy(&verify.stdout).into_owned();
    let acked = result_value(&out, "acked");
    let lost = result_value(&out, "lost");
    println!(
        "t61: the slave led {took_over:?} after the kill; {acked} acked, {lost} lost; the old \
         master dropped {} entries holding {} messages",
        dropped.dropped_entries, dropped.dropped_messages
    );
    assert_eq!(result_value(&out, "duplicates"), 0, "{out}");
    assert_eq!(result_value(&out, "out_of_order"), 0, "{out}");
    assert_eq!(result_value(&out, "unexpected"), 0, "{out}");
    assert!(
        lost > 0,
        "the slave was stopped while the master acknowledged: some must be lost"
    );
    assert!(
        lost <= dropped.dropped_messages,
        "{lost} acknowledged messages lost, but the old master reports dropping only {} \
         messages",
        dropped.dropped_messages
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_one_of_two_masters_dead_sends_go_to_the_other_and_nothing_it_took_is_lost() {
    const TOPIC: &str = "T61NoSlave";
    let mut c = Classic::start("2m-noslave", 1, &[("broker-a", &[]), ("broker-b", &[])]).await;
    let namesrv = c.namesrv_list();
    let admin = Admin::connect(&namesrv).await.expect("admin");
    create_topic_on(&admin, TOPIC, QUEUES, 2).await;
    let (a, b) = (c.index("broker-a"), c.index("broker-b"));

    let producer = producer(&namesrv, "t61_noslave", 8, Duration::from_secs(3)).await;
    let run = run_id();
    let load = Load::start(producer, TOPIC, run, 8);
    load.wait_for_more(300, Duration::from_secs(30)).await;
    c.kill(a);
    load.wait_for_more(300, Duration::from_secs(30)).await;
    let mark = load.acked();
    load.wait_for_more(300, Duration::from_secs(30)).await;
    let sent = load.stop().await;
    // Sends in flight to broker-a when it died may fail (their retries go to the same queue,
    // as a send that may have been stored must); none after them.
    assert!(
        sent.failed.len() <= 8 * 4,
        "{} sends failed, first: {:?}",
        sent.failed.len(),
        sent.failed.first()
    );
    let mut by_time: Vec<_> = sent.acked.iter().collect();
    by_time.sort_by_key(|x| x.acked);
    assert!(
        by_time[mark..]
            .iter()
            .all(|x| x.result.broker_addr == c.nodes[b].addr),
        "sends after the kill must go to broker-b"
    );

    c.restart(a);
    c.leader_of("broker-a").await;
    let stored = read_topic(&namesrv, TOPIC, QUEUES * 2).await;
    let acked_by_a = sent
        .acked
        .iter()
        .filter(|x| x.result.broker_addr == c.nodes[a].addr)
        .count();
    println!(
        "t61 noslave: {} acked ({acked_by_a} by broker-a before it died), {} failed",
        sent.acked.len(),
        sent.failed.len()
    );
    check_exactly_once_in_order("t61 noslave", run, sent.issued, &sent.acked, &stored);
}
