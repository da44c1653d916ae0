//! Bounded under lost quorum: with both followers stopped (SIGSTOP) under a producer keeping
//! 64 sends in flight, every send is answered within `syncFlushTimeout` (FLUSH_SLAVE_TIMEOUT or
//! SERVICE_NOT_AVAILABLE), never left waiting, and the leader's memory stays flat. Once the
//! followers resume, sends succeed again.

mod common;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{code, create_topic, message, Group};
use proto::v1::{self as pb, ResponseCode};

const TOPIC: &str = "Overload";
const IN_FLIGHT: usize = 64;
const PAUSE: Duration = Duration::from_secs(30);
const SYNC_FLUSH_TIMEOUT_MS: u64 = 2_000;

/// Resident memory of process `pid` in KiB (VmRSS).
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS")
}

#[derive(Default)]
struct Tally {
    ok: AtomicU64,
    timed_out_in_log: AtomicU64,
    unavailable: AtomicU64,
    not_leader: AtomicU64,
    other: AtomicU64,
    /// Sends with no answer within syncFlushTimeout plus slack.
    unanswered: AtomicU64,
    /// The slowest answer, in ms.
    slowest_ms: AtomicU64,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_without_quorum_answers_every_send_in_time_and_stays_flat() {
    let group = Group::start(&[&format!("syncFlushTimeout={SYNC_FLUSH_TIMEOUT_MS}")]);
    let leader = group.leader().await;
    let mut client = group.client(leader).await;
    create_topic(&mut client, TOPIC, 4).await;
    let pid = group.nodes[leader].pid().expect("leader pid");

    let tally = Arc::new(Tally::default());
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for t in 0..IN_FLIGHT {
        let (mut c, tally, stop) = (client.clone(), tally.clone(), stop.clone());
        tasks.push(tokio::spawn(async move {
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let mut m = message(TOPIC, -1, vec![b'x'; 16 << 10]);
                m.properties.insert("UNIQ_KEY".into(), format!("t{t}-{i}"));
                let started = Instant::now();
                let call = c.send_message(pb::SendMessageRequest {
                    messages: vec![m],
                    producer_group: "overload".into(),
                });
                let limit = Duration::from_millis(SYNC_FLUSH_TIMEOUT_MS) + Duration::from_secs(3);
                match tokio::time::timeout(limit, call).await {
                    Ok(Ok(resp)) => {
                        let counter = match code(&resp.into_inner().status) {
                            ResponseCode::Ok => &tally.ok,
                            ResponseCode::FlushSlaveTimeout => &tally.timed_out_in_log,
                            ResponseCode::ServiceNotAvailable => &tally.unavailable,
                            // After the resume the followers, silent for 30 s, may elect
                            // one of them: this client stays on the old leader.
                            ResponseCode::NotLeader => &tally.not_leader,
                            _ => &tally.other,
                        };
                        counter.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(Err(_)) => {
                        tally.other.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(_) => {
                        tally.unanswered.fetch_add(1, Ordering::Relaxed);
                    }
                }
                let ms = started.elapsed().as_millis() as u64;
                tally.slowest_ms.fetch_max(ms, Ordering::Relaxed);
                i += 1;
            }
        }));
    }
    // Sends flow; then both followers stop answering.
    common::wait_for("sends acknowledged", Duration::from_secs(30), || async {
        (tally.ok.load(Ordering::Relaxed) > 200).then_some(())
    })
    .await;
    let followers: Vec<usize> = (0..3).filter(|&i| i != leader).collect();
    for &f in &followers {
        group.nodes[f].pause();
    }
    let paused_at = Instant::now();
    let ok_at_pause = tally.ok.load(Ordering::Relaxed);
    let mut rss = Vec::new();
    while paused_at.elapsed() < PAUSE {
        tokio::time::sleep(Duration::from_secs(5)).await;
        rss.push(rss_kib(pid) / 1024);
    }
    let ok_while_paused = tally.ok.load(Ordering::Relaxed) - ok_at_pause;
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        t.await.expect("sender");
    }
    let unavailable_while_paused = tally.unavailable.load(Ordering::Relaxed);
    for &f in &followers {
        group.nodes[f].resume();
    }
    // The group takes sends again, under whichever leader it has now.
    let leader = group.leader().await;
    let client = group.client(leader).await;
    common::wait_for(
        "a send acknowledged after the resume",
        Duration::from_secs(30),
        || async { common::send(&mut client.clone(), TOPIC, "after").await.ok() },
    )
    .await;
    let t = |c: &AtomicU64| c.load(Ordering::Relaxed);
    println!(
        "t18: {} ok ({ok_while_paused} of them while paused: entries committed just before the \
         pause), {} FLUSH_SLAVE_TIMEOUT, {unavailable_while_paused} SERVICE_NOT_AVAILABLE, {} \
         NOT_LEADER, {} other, {} unanswered; slowest answer {} ms; leader RSS every 5 s of the \
         pause {rss:?} MiB",
        t(&tally.ok),
        t(&tally.timed_out_in_log),
        t(&tally.not_leader),
        t(&tally.other),
        t(&tally.unanswered),
        t(&tally.slowest_ms),
    );
    assert_eq!(t(&tally.unanswered), 0, "sends left without an answer");
    assert_eq!(
        t(&tally.other),
        0,
        "sends answered with something unexpected"
    );
    assert!(t(&tally.timed_out_in_log) + unavailable_while_paused > 0);
    // Flat: what the second half of the pause adds is noise, not a queue growing without end.
    let (mid, last) = (rss[rss.len() / 2], rss[rss.len() - 1]);
    assert!(
        last <= mid + 16,
        "the leader kept growing without a quorum: {rss:?} MiB"
    );
}
