//! Nameservers share nothing and can come and go: with two of them, restarting one (stop,
//! then start on the same port) and killing the other does not interrupt a producer's
//! sends, and the restarted one rebuilds its routes from the brokers' heartbeats.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use client::{Admin, Message, Producer, ProducerConfig};
use common::{create_topic, longest_gap, wait_for, System};

const TOPIC: &str = "T30Namesrv";
/// The longest pause between two acknowledgements the test accepts.
const MAX_GAP: Duration = Duration::from_secs(2);

/// Acknowledgement instants and failures of a producer sending one message at a time.
#[derive(Default)]
struct Progress {
    acks: Vec<Instant>,
    failures: Vec<String>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sends_go_on_through_a_nameserver_restart_and_a_nameserver_kill() {
    let started = Instant::now();
    let mut system = System::start(2).await;
    let namesrv = system.namesrv_list();
    let admin = Admin::connect(&namesrv).await.expect("admin");
    create_topic(&admin, TOPIC, 4).await;
    let producer = Producer::start(&namesrv, ProducerConfig::default())
        .await
        .expect("producer");

    let progress: Arc<Mutex<Progress>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let sender = tokio::spawn({
        let (producer, progress, stop) = (producer.clone(), progress.clone(), stop.clone());
        async move {
            let mut seq = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let result = producer
                    .send(Message::new(TOPIC, format!("message {seq}")))
                    .await;
                let mut p = progress.lock().unwrap();
                match result {
                    Ok(_) => p.acks.push(Instant::now()),
                    Err(e) => p.failures.push(format!("message {seq}: {e}")),
                }
                seq += 1;
            }
        }
    });
    let acked = || progress.lock().unwrap().acks.len();
    let acks_reach = |n: usize, what: &'static str| {
        wait_for(what, Duration::from_secs(20), move || async move {
            (acked() >= n).then_some(())
        })
    };
    acks_reach(50, "50 acknowledgements").await;

    let restart_began = Instant::now();
    let status = system.namesrvs[0].stop().expect("nameserver 0 was running");
    assert!(
        status.success(),
        "mqnamesrv exited with {status} on SIGTERM"
    );
    system.namesrvs[0].restart();
    let leader = system.leader().await;
    system.wait_registered(0, leader).await;
    println!(
        "t30: nameserver 0 stopped, restarted and refilled in {:?}",
        restart_began.elapsed()
    );
    // The restarted nameserver knows the topic again, from the brokers' heartbeats alone.
    let restarted = Admin::connect(&system.namesrvs[0].addr)
        .await
        .expect("admin on the restarted nameserver");
    wait_for(
        "the restarted nameserver to route the topic",
        Duration::from_secs(10),
        || async { restarted.topic_route(TOPIC).await.ok() },
    )
    .await;

    let n = acked();
    acks_reach(n + 50, "50 acknowledgements after the restart").await;
    let killed_at = Instant::now();
    system.namesrvs[1].kill9();
    let n = acked();
    acks_reach(n + 100, "100 acknowledgements after the kill").await;
    stop.store(true, Ordering::Relaxed);
    sender.await.expect("sender");

    let progress = std::mem::take(&mut *progress.lock().unwrap());
    let (gap, at) = longest_gap(progress.acks.clone());
    println!(
        "t30: {} acked, {} failed; longest gap between acks {gap:?} ({:?} after the restart \
         began, the kill was {:?} after it)",
        progress.acks.len(),
        progress.failures.len(),
        at.map(|a| a.saturating_duration_since(restart_began)),
        killed_at - restart_began,
    );
    assert!(
        progress.failures.is_empty(),
        "sends failed: {:?}",
        progress.failures
    );
    assert!(gap < MAX_GAP, "sends stalled for {gap:?}");

    // A client started now, with the dead nameserver first in its list, finds the live one.
    let list = format!("{};{}", system.namesrvs[1].addr, system.namesrvs[0].addr);
    let began = Instant::now();
    let late = Producer::start(&list, ProducerConfig::default())
        .await
        .expect("a producer with one live nameserver of two");
    late.send(Message::new(TOPIC, "late"))
        .await
        .expect("send of a producer started with one live nameserver of two");
    println!(
        "t30: a new producer with {list} started and sent in {:?}; passed in {:?}",
        began.elapsed(),
        started.elapsed()
    );
}
