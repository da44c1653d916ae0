//! A classic replica whose disk was wiped rejoins as a learner and votes only once it has
//! caught up. Group broker-a of `2m-2s-sync` with two slaves (three data voters): entries are
//! committed by the master and slave 1 while slave 2 is frozen; then slave 1's disk is wiped
//! and the master dies. Slave 2 lacks those entries: were the wiped slave to vote for it, it
//! would lead and the acknowledged messages would be lost. Instead the group waits for its
//! master, which brings everything back.

mod common;

use std::time::{Duration, Instant};

use client::Admin;
use common::acked::{check_exactly_once_in_order, read_topic, Load};
use common::classic::{producer, Classic};
use common::{broker_status, create_topic_on, run_id, wait_for};
use libc::{SIGCONT, SIGSTOP};
use proto::v1::RaftRole;

const TOPIC: &str = "T62Wiped";
const QUEUES: u32 = 4;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wiped_slave_never_votes_a_stale_slave_into_leadership() {
    let mut c = Classic::start(
        "2m-2s-sync",
        1,
        &[
            ("broker-a", &[]),
            ("broker-a-s", &[]),
            ("broker-a-s", &["brokerId=2"]),
        ],
    )
    .await;
    c.wait_in_sync("broker-a").await;
    // Three data voters need no witness: one added while the second replica caught up is
    // removed once the third has.
    wait_for(
        "the witness gone from broker-a",
        Duration::from_secs(30),
        || async {
            let leader = c.current_leader("broker-a").await?;
            let status = broker_status(&c.nodes[leader].addr).await?;
            status.replicas.iter().all(|r| !r.witness).then_some(())
        },
    )
    .await;
    let namesrv = c.namesrv_list();
    let admin = Admin::connect(&namesrv).await.expect("admin");
    create_topic_on(&admin, TOPIC, QUEUES, 1).await;
    let (master, s1, s2) = (
        c.index("broker-a"),
        c.index("broker-a-s"),
        c.index("broker-a-s2"),
    );

    let producer = producer(&namesrv, "t62", 8, Duration::from_secs(5)).await;
    let run = run_id();
    let load = Load::start(producer, TOPIC, run, 8);
    load.wait_for_more(100, Duration::from_secs(30)).await;
    // Slave 2 freezes; the master and slave 1 commit on.
    c.nodes[s2].process.signal(SIGSTOP);
    load.wait_for_more(200, Duration::from_secs(30)).await;
    let sent = load.stop().await;
    assert!(sent.failed.is_empty(), "{:?}", sent.failed.first());

    // Slave 1 loses its disk, the master dies, slave 2 wakes up.
    c.kill(s1);
    c.wipe(s1);
    c.kill(master);
    c.nodes[s2].process.signal(SIGCONT);
    c.restart(s1);

    // Slave 2 campaigns, the wiped slave refuses: no leader.
    let watch_until = Instant::now() + Duration::from_secs(4);
    let mut catching_up_seen = false;
    while Instant::now() < watch_until {
        for i in [s1, s2] {
            if let Some(status) = broker_status(&c.nodes[i].addr).await {
                assert_ne!(
                    status.raft_role(),
                    RaftRole::Leader,
                    "{} leads without the master's entries",
                    c.nodes[i].name
                );
                catching_up_seen |= i == s1 && status.catching_up;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        catching_up_seen,
        "the wiped slave must say it is catching up"
    );

    // The master comes back: it has every committed entry and leads; the wiped slave catches
    // up from it.
    c.restart(master);
    assert_eq!(c.leader_of("broker-a").await, master);
    c.wait_in_sync("broker-a").await;
    let stored = read_topic(&namesrv, TOPIC, QUEUES).await;
    check_exactly_once_in_order("t62", run, sent.issued, &sent.acked, &stored);
}
