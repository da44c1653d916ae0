//! A leader that loses the end of its log never leads its old term again.
//!
//! Kill -9 the leader under load, then cut its last segment in the middle of an entry a few
//! entries before its end (what a power loss does to data the disk never got: recovery cuts the
//! torn tail at the last whole entry), and restart it. openraft 0.9 restores a committed vote
//! that names the node itself as leader, so it used to come back as leader of its old term and
//! append at an index the group had already committed in that term: two different entries
//! under one log id, replicas whose logs differ for good, and acknowledged messages lost once
//! it led. Repeated at random cut points, with every acknowledged message checked and the
//! replicas' logs compared entry by entry at the end.

mod common;

use std::time::Duration;

use client::{Admin, Producer, ProducerConfig};
use common::acked::{check_exactly_once_in_order, read_topic, Load};
use common::{assert_logs_identical, create_topic, run_id, System};
use rand::{Rng, SeedableRng};

const TOPIC: &str = "T50TornTail";
const QUEUES: u32 = 4;
const ROUNDS: usize = 3;

/// Cuts the log in `dir` (its process is dead) inside one of its last few entries: the bytes
/// from a random point of that entry to the end of the written data become zeros, and later
/// segments go. Returns the index of the entry cut and how many entries follow it.
fn cut_tail(dir: &std::path::Path, rng: &mut impl Rng) -> (u64, u64) {
    let store = raft_log::LogStore::open(raft_log::LogConfig::new(dir).segment_size(4 << 20))
        .expect("open the killed leader's log");
    let last = store.last_log_id().expect("a log with entries").index;
    let back = rng.random_range(1..=6).min(last);
    let index = last - back;
    let (position, size) = store.locate(index).expect("the entry to cut");
    let segments = store.segments();
    let segment = segments
        .iter()
        .find(|s| s.base_position <= position && position < s.base_position + s.size)
        .expect("the entry's segment")
        .clone();
    let cut = position + rng.random_range(1..u64::from(size));
    let written_end = segment.base_position + segment.used_bytes;
    drop(store);
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(&segment.path)
        .expect("open the segment");
    let zeros = vec![0u8; (written_end - cut) as usize];
    std::os::unix::fs::FileExt::write_all_at(&file, &zeros, cut - segment.base_position)
        .expect("zero the tail");
    file.sync_all().expect("sync the segment");
    for later in segments
        .iter()
        .filter(|s| s.base_position > segment.base_position)
    {
        std::fs::remove_file(&later.path).expect("remove a later segment");
        let _ = std::fs::remove_file(later.path.with_extension("idx"));
    }
    (index, back)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_that_lost_its_log_tail_never_leads_its_old_term_again() {
    let seed = run_id();
    println!("t50: seed {seed}");
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut system = System::start(1).await;
    let namesrv = system.namesrv_list();
    let admin = Admin::connect(&namesrv).await.expect("admin");
    create_topic(&admin, TOPIC, QUEUES).await;
    let producer = Producer::start(
        &namesrv,
        ProducerConfig {
            group: "t50_producer".into(),
            send_timeout: Duration::from_secs(10),
            max_in_flight: 16,
            ..ProducerConfig::default()
        },
    )
    .await
    .expect("producer");
    let run = run_id();
    let load = Load::start(producer, TOPIC, run, 16);

    for round in 0..ROUNDS {
        load.wait_for_more(300, Duration::from_secs(60)).await;
        let leader = system.leader().await;
        system.kill_broker(leader);
        // The survivors elect a leader first, as they would while the dead one reboots; then
        // its log loses its tail and it comes back.
        let successor = system.leader().await;
        let (index, back) = cut_tail(&system.commitlog_dir(leader), &mut rng);
        println!(
            "t50: round {round}: killed leader n{leader} (n{successor} took over), cut inside \
             entry {index} ({back} entries before its end)"
        );
        system.restart_broker(leader);
        // The group goes on under a leader all three agree on.
        system.leader().await;
    }
    load.wait_for_more(300, Duration::from_secs(60)).await;
    let sent = load.stop().await;
    assert!(
        sent.failed.is_empty(),
        "{} sends failed, first: {:?}",
        sent.failed.len(),
        sent.failed.first()
    );

    let (applied, digest) = system.settled().await;
    println!("t50: every replica at entry {applied}, digest {digest}");
    let stored = read_topic(&namesrv, TOPIC, QUEUES).await;
    check_exactly_once_in_order("t50", run, sent.issued, &sent.acked, &stored);

    system.terminate_all().await;
    let dirs: Vec<_> = (0..3).map(|i| system.commitlog_dir(i)).collect();
    let last = assert_logs_identical(&dirs);
    println!("t50: the three logs are identical through entry {last}");
}
