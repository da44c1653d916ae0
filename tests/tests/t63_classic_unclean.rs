//! A classic master dies while its slave is out of the in-sync set (the slave was frozen for
//! longer than `slaveTimeout`; the master went on alone, answering `SLAVE_NOT_AVAILABLE`).
//!
//! - By default the group waits for its master: the witness has log ids the slave lacks and
//!   refuses it, so no stale slave leads; the master comes back with everything.
//! - With `enableElectUncleanMaster=true` the slave asks the witness to forget those entries
//!   and leads; the messages only the dead master had (all acknowledged as
//!   `SLAVE_NOT_AVAILABLE`) are given up, and nothing acknowledged as `SEND_OK` is lost.

mod common;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use client::bench::decode_body;
use client::{Admin, SendStatus};
use common::acked::{check_exactly_once_in_order, read_topic, Load, Sent};
use common::classic::{producer, Classic};
use common::{broker_status, create_topic_on, run_id, wait_for};
use libc::{SIGCONT, SIGSTOP};
use proto::v1::RaftRole;

const QUEUES: u32 = 4;

/// Starts broker-a of `2m-2s-sync` (with `extra` settings on the slave), sends, freezes the
/// slave until it leaves the in-sync set, sends alone, then kills the master and thaws the
/// slave. Returns the layout, the master's and slave's indexes, and what was sent.
async fn out_of_sync_master_dies(
    topic: &str,
    slave_extra: &'static [&'static str],
) -> (Classic, usize, usize, u64, Sent) {
    let mut c = Classic::start(
        "2m-2s-sync",
        1,
        &[("broker-a", &[]), ("broker-a-s", slave_extra)],
    )
    .await;
    c.wait_in_sync("broker-a").await;
    let namesrv = c.namesrv_list();
    let admin = Admin::connect(&namesrv).await.expect("admin");
    create_topic_on(&admin, topic, QUEUES, 1).await;
    let (master, slave) = (c.index("broker-a"), c.index("broker-a-s"));
    let producer = producer(&namesrv, "t63", 8, Duration::from_secs(10)).await;
    let run = run_id();
    let load = Load::start(producer, topic, run, 8);
    load.wait_for_more(100, Duration::from_secs(30)).await;
    c.nodes[slave].process.signal(SIGSTOP);
    wait_for(
        "the frozen slave out of the in-sync set",
        Duration::from_secs(30),
        || async {
            let status = broker_status(&c.nodes[master].addr).await?;
            let r = status.replicas.iter().find(|r| r.node_id == 1)?;
            (!r.in_sync).then_some(())
        },
    )
    .await;
    load.wait_for_more(100, Duration::from_secs(30)).await;
    let sent = load.stop().await;
    assert!(sent.failed.is_empty(), "{:?}", sent.failed.first());
    assert!(
        sent.acked
            .iter()
            .any(|a| a.result.status == SendStatus::SlaveNotAvailable),
        "sends with the slave out of sync must say SLAVE_NOT_AVAILABLE"
    );
    c.kill(master);
    c.nodes[slave].process.signal(SIGCONT);
    (c, master, slave, run, sent)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn by_default_the_group_waits_for_its_master() {
    const TOPIC: &str = "T63Waits";
    let (mut c, master, slave, run, sent) = out_of_sync_master_dies(TOPIC, &[]).await;
    let until = Instant::now() + Duration::from_secs(5);
    while Instant::now() < until {
        if let Some(status) = broker_status(&c.nodes[slave].addr).await {
            assert_ne!(
                status.raft_role(),
                RaftRole::Leader,
                "an out-of-sync slave led"
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    c.restart(master);
    assert_eq!(c.leader_of("broker-a").await, master);
    c.wait_in_sync("broker-a").await;
    let stored = read_topic(&c.namesrv_list(), TOPIC, QUEUES).await;
    check_exactly_once_in_order("t63 waits", run, sent.issued, &sent.acked, &stored);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unclean_election_gives_up_only_what_the_master_held_alone() {
    const TOPIC: &str = "T63Unclean";
    let (c, _master, slave, run, sent) =
        out_of_sync_master_dies(TOPIC, &["enableElectUncleanMaster=true"]).await;
    let leader = c.leader_within("broker-a", Duration::from_secs(20)).await;
    assert_eq!(leader, slave, "the slave must be elected uncleanly");

    let stored = read_topic(&c.namesrv_list(), TOPIC, QUEUES).await;
    let mut copies: HashMap<u64, usize> = HashMap::new();
    for messages in stored.values() {
        for (i, m) in messages.iter().enumerate() {
            assert_eq!(m.queue_offset, i as u64, "offsets are not dense");
            if let Some((r, seq)) = decode_body(&m.body) {
                assert_eq!(r, run, "a message of another run");
                *copies.entry(seq).or_default() += 1;
            }
        }
    }
    assert!(copies.values().all(|n| *n == 1), "a message stored twice");
    let mut lost_ok = 0;
    let mut lost_alone = 0;
    for a in &sent.acked {
        if !copies.contains_key(&a.seq) {
            match a.result.status {
                SendStatus::SlaveNotAvailable => lost_alone += 1,
                _ => lost_ok += 1,
            }
        }
    }
    println!(
        "t63 unclean: {} acked; lost {lost_alone} acknowledged as SLAVE_NOT_AVAILABLE, \
         {lost_ok} as SEND_OK",
        sent.acked.len()
    );
    assert_eq!(
        lost_ok, 0,
        "messages acknowledged with the slave in sync were lost"
    );
    assert!(lost_alone > 0, "the master's lone entries must be given up");
    let log = std::fs::read_to_string(&c.nodes[slave].process.log).unwrap_or_default();
    assert!(
        log.contains("unclean election"),
        "the slave logs the unclean election"
    );
}
