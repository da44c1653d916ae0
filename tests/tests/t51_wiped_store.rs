//! A replica whose store was wiped never votes before it has caught up.
//!
//! The sequence that lost every acknowledged message before: with C paused, 5,000 sends are
//! acknowledged by A and B; A is paused; B is killed, its store deleted, and restarted; C is
//! resumed. B, remembering nothing, voted C (which has none of the 5,000) leader of a new
//! term, and once A resumed the topic and all 5,000 messages were gone. Now B grants no vote
//! until it has caught up, so C cannot win; the group waits for A, elects it, and B catches up.

mod common;

use std::time::{Duration, Instant};

use client::{Admin, Producer, ProducerConfig};
use common::acked::{check_exactly_once_in_order, read_topic, Load};
use common::{broker_status, create_topic, run_id, System};

const TOPIC: &str = "T51Wiped";
const QUEUES: u32 = 4;
const MESSAGES: usize = 5_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wiped_replica_never_votes_a_stale_one_into_leadership() {
    let mut system = System::start(1).await;
    let namesrv = system.namesrv_list();
    let admin = Admin::connect(&namesrv).await.expect("admin");
    create_topic(&admin, TOPIC, QUEUES).await;
    let a = system.leader().await;
    let (b, c) = match a {
        0 => (1, 2),
        1 => (0, 2),
        _ => (0, 1),
    };
    system.pause_broker(c);

    let producer = Producer::start(
        &namesrv,
        ProducerConfig {
            group: "t51_producer".into(),
            send_timeout: Duration::from_secs(10),
            max_in_flight: 64,
            ..ProducerConfig::default()
        },
    )
    .await
    .expect("producer");
    let run = run_id();
    let load = Load::start(producer, TOPIC, run, 64);
    load.wait_for_more(MESSAGES, Duration::from_secs(120)).await;
    let sent = load.stop().await;
    assert!(sent.failed.is_empty(), "failed: {:?}", sent.failed.first());
    println!(
        "t51: {} sends acknowledged by n{a} and n{b} while n{c} was paused",
        sent.acked.len()
    );

    system.pause_broker(a);
    system.kill_broker(b);
    std::fs::remove_dir_all(system.store_root(b)).expect("wipe b's store");
    system.restart_broker(b);
    system.resume_broker(c);

    // For 3 s C campaigns (its leader is silent) and B has nothing: neither may lead.
    let watch_until = Instant::now() + Duration::from_secs(3);
    let mut b_catching_up = false;
    while Instant::now() < watch_until {
        for (i, name) in [(b, "b"), (c, "c")] {
            if let Some(status) = broker_status(&system.broker_addrs[i]).await {
                let leads = status
                    .raft
                    .as_ref()
                    .and_then(|r| r.leader_node_id)
                    .is_some_and(|l| l as usize == i && status.broker_id == 0);
                assert!(!leads, "{name} (n{i}) leads without A's data: {status:?}");
                if i == b {
                    b_catching_up |= status.catching_up;
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        b_catching_up,
        "the wiped replica never said it was catching up"
    );

    system.resume_broker(a);
    let leader = system.leader().await;
    println!("t51: after A resumed, n{leader} leads");
    let (applied, digest) = system.settled().await;
    println!("t51: every replica at entry {applied}, digest {digest}");
    let stored = read_topic(&namesrv, TOPIC, QUEUES).await;
    check_exactly_once_in_order("t51", run, sent.issued, &sent.acked, &stored);
    let status = broker_status(&system.broker_addrs[b])
        .await
        .expect("b answers");
    assert!(!status.catching_up, "b caught up and votes again");
}
