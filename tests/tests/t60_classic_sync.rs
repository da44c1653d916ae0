//! `2m-2s-sync` from its property files, as real processes: two groups of a `SYNC_MASTER`
//! and a `SLAVE`, with the witness on the nameserver. A producer keeps sending over both
//! groups' queues through each fault; afterwards every acknowledged message is stored exactly
//! once, where its acknowledgement said, in order, and the group's replicas hold identical logs.

mod common;

use std::time::{Duration, Instant};

use client::{Admin, SendStatus};
use common::acked::{check_exactly_once_in_order, read_topic, Load, Sent};
use common::classic::{producer, Classic};
use common::{assert_logs_identical, broker_status, create_topic_on, run_id, wait_for};

const QUEUES: u32 = 4;
/// Longer than any failover: a send that gives up is a failure of the test.
const SEND_TIMEOUT: Duration = Duration::from_secs(10);
const LAYOUT: &str = "2m-2s-sync";
const BOTH_GROUPS: [(&str, &[&str]); 4] = [
    ("broker-a", &[]),
    ("broker-a-s", &[]),
    ("broker-b", &[]),
    ("broker-b-s", &[]),
];

fn assert_no_failures(test: &str, sent: &Sent) {
    assert!(
        sent.failed.is_empty(),
        "{test}: {} sends failed, first: {:?}",
        sent.failed.len(),
        sent.failed.first()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_master_fails_over_to_its_slave_losing_nothing_and_takes_leadership_back() {
    const TOPIC: &str = "T60Failover";
    let started = Instant::now();
    let mut c = Classic::start(LAYOUT, 1, &BOTH_GROUPS).await;
    for g in c.groups() {
        c.wait_in_sync(&g).await;
    }
    let namesrv = c.namesrv_list();
    let admin = Admin::connect(&namesrv).await.expect("admin");
    create_topic_on(&admin, TOPIC, QUEUES, 2).await;
    let (master, slave) = (c.index("broker-a"), c.index("broker-a-s"));
    assert_eq!(c.leader_of("broker-a").await, master);

    let run = run_id();
    let load = Load::start(
        producer(&namesrv, "t60_failover", 16, SEND_TIMEOUT).await,
        TOPIC,
        run,
        16,
    );
    load.wait_for_more(500, Duration::from_secs(30)).await;

    // kill -9 the master: the slave takes over by itself.
    c.kill(master);
    let killed = Instant::now();
    let new_leader = c.leader_within("broker-a", Duration::from_secs(10)).await;
    let took_over = killed.elapsed();
    assert_eq!(new_leader, slave, "the slave must take over");
    load.wait_for_more(500, Duration::from_secs(30)).await;

    // The old master comes back: it rejoins, catches up and takes leadership back.
    c.restart(master);
    wait_for(
        "broker-a to lead its group again",
        Duration::from_secs(30),
        || async { (c.current_leader("broker-a").await == Some(master)).then_some(()) },
    )
    .await;
    c.wait_in_sync("broker-a").await;
    load.wait_for_more(500, Duration::from_secs(30)).await;
    let sent = load.stop().await;
    assert_no_failures("t60", &sent);
    let after_kill = sent
        .acked
        .iter()
        .filter(|a| a.acked > killed && a.result.broker_addr == c.nodes[slave].addr)
        .map(|a| a.acked - killed)
        .min()
        .expect("acknowledgements from the new master");
    println!(
        "t60: the slave led {took_over:?} after the kill; its first ack came {after_kill:?} \
         after it; {} acked",
        sent.acked.len()
    );
    let ok = sent
        .acked
        .iter()
        .filter(|a| a.result.status == SendStatus::Ok)
        .count();
    println!("t60: {ok} of them SEND_OK");

    let stored = read_topic(&namesrv, TOPIC, QUEUES * 2).await;
    check_exactly_once_in_order("t60", run, sent.issued, &sent.acked, &stored);
    // Both replicas of broker-a end with the same log, entry for entry.
    c.leader_of("broker-a").await;
    wait_for(
        "broker-a's replicas at one index",
        Duration::from_secs(30),
        || async {
            let a = broker_status(&c.nodes[master].addr)
                .await?
                .raft?
                .last_log_id?;
            let b = broker_status(&c.nodes[slave].addr)
                .await?
                .raft?
                .last_log_id?;
            (a == b).then_some(())
        },
    )
    .await;
    for i in [master, slave] {
        c.kill(i);
    }
    assert_logs_identical(&[c.commitlog_dir(master), c.commitlog_dir(slave)]);
    println!("t60: passed in {:?}", started.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_slave_leaves_the_in_sync_set_and_comes_back_after_its_restart() {
    const TOPIC: &str = "T60DeadSlave";
    let mut c = Classic::start(LAYOUT, 1, &BOTH_GROUPS[..2]).await;
    c.wait_in_sync("broker-a").await;
    let namesrv = c.namesrv_list();
    let admin = Admin::connect(&namesrv).await.expect("admin");
    create_topic_on(&admin, TOPIC, QUEUES, 1).await;
    let slave = c.index("broker-a-s");
    let master = c.index("broker-a");

    let run = run_id();
    let load = Load::start(
        producer(&namesrv, "t60_dead_slave", 16, SEND_TIMEOUT).await,
        TOPIC,
        run,
        16,
    );
    load.wait_for_more(200, Duration::from_secs(30)).await;
    c.kill(slave);
    let killed = Instant::now();
    // The master keeps taking sends; once the slave has been silent for slaveTimeout it leaves
    // the in-sync set and sends say SLAVE_NOT_AVAILABLE (stored on the master only).
    let out_of_sync = wait_for(
        "the dead slave out of the in-sync set",
        Duration::from_secs(30),
        || async {
            let status = broker_status(&c.nodes[master].addr).await?;
            let r = status.replicas.iter().find(|r| r.node_id == 1)?;
            (!r.in_sync).then_some(killed.elapsed())
        },
    )
    .await;
    load.wait_for_more(200, Duration::from_secs(30)).await;
    let mark = load.acked();
    load.wait_for_more(200, Duration::from_secs(30)).await;

    c.restart(slave);
    c.wait_in_sync("broker-a").await;
    let back = load.acked();
    load.wait_for_more(300, Duration::from_secs(30)).await;
    let sent = load.stop().await;
    assert_no_failures("t60 dead slave", &sent);
    let mut by_time = sent.acked.clone();
    by_time.sort_by_key(|a| a.acked);
    let alone = &by_time[mark..mark + 200];
    assert!(
        alone
            .iter()
            .all(|a| a.result.status == SendStatus::SlaveNotAvailable),
        "sends with the slave out of the set must say SLAVE_NOT_AVAILABLE: {:?}",
        alone.iter().map(|a| a.result.status).collect::<Vec<_>>()
    );
    let ok_again = by_time[back + 100..]
        .iter()
        .filter(|a| a.result.status == SendStatus::Ok)
        .count();
    assert_eq!(
        ok_again,
        by_time.len() - back - 100,
        "sends after the slave is back in sync must say SEND_OK"
    );
    println!("t60 dead slave: out of sync {out_of_sync:?} after the kill; back in sync");
    let stored = read_topic(&namesrv, TOPIC, QUEUES).await;
    check_exactly_once_in_order("t60 dead slave", run, sent.issued, &sent.acked, &stored);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_witness_and_the_master_no_slave_leads_and_either_brings_the_group_back() {
    const TOPIC: &str = "T60Witness";
    const AFTER: &str = "T60WitnessAfter";
    // Two nameservers: the witness lives on the first; the second keeps routing.
    let mut c = Classic::start(LAYOUT, 2, &BOTH_GROUPS[..2]).await;
    c.wait_in_sync("broker-a").await;
    let namesrv = c.namesrv_list();
    let admin = Admin::connect(&namesrv).await.expect("admin");
    create_topic_on(&admin, TOPIC, QUEUES, 1).await;
    create_topic_on(&admin, AFTER, QUEUES, 1).await;
    let (master, slave) = (c.index("broker-a"), c.index("broker-a-s"));

    let run = run_id();
    let load = Load::start(
        producer(&namesrv, "t60_witness", 16, SEND_TIMEOUT).await,
        TOPIC,
        run,
        16,
    );
    load.wait_for_more(200, Duration::from_secs(30)).await;
    // The witness's nameserver dies: master and slave still commit together.
    c.namesrvs[0].kill9();
    load.wait_for_more(300, Duration::from_secs(30)).await;
    let sent_before = load.stop().await;
    assert_no_failures("t60 witness", &sent_before);

    // The master dies too: the slave alone is no majority, so no second master appears.
    c.kill(master);
    let deadline = Instant::now() + Duration::from_secs(3);
    while Instant::now() < deadline {
        if let Some(status) = broker_status(&c.nodes[slave].addr).await {
            assert_ne!(
                status.raft_role(),
                proto::v1::RaftRole::Leader,
                "the slave led without a majority"
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // The witness's nameserver comes back (with its store): slave + witness elect the slave.
    c.namesrvs[0].restart();
    let leader = c.leader_within("broker-a", Duration::from_secs(20)).await;
    assert_eq!(leader, slave);
    let load = Load::start(
        producer(&namesrv, "t60_witness2", 16, SEND_TIMEOUT).await,
        AFTER,
        run,
        16,
    );
    load.wait_for_more(200, Duration::from_secs(30)).await;
    let sent_after = load.stop().await;
    assert_no_failures("t60 witness, after", &sent_after);

    // And the master rejoins.
    c.restart(master);
    c.wait_in_sync("broker-a").await;
    let stored = read_topic(&namesrv, TOPIC, QUEUES).await;
    check_exactly_once_in_order(
        "t60 witness",
        run,
        sent_before.issued,
        &sent_before.acked,
        &stored,
    );
    let stored = read_topic(&namesrv, AFTER, QUEUES).await;
    check_exactly_once_in_order(
        "t60 witness, after",
        run,
        sent_after.issued,
        &sent_after.acked,
        &stored,
    );
}
