//! Closed-loop load: a fixed number of sends in flight, each sender sending again as soon as
//! its previous send is acknowledged. One shape per scenario: `inflight64` (64 single-message
//! sends), `batch32x8` (8 batches of 32), `sync1` (one message at a time).
//!
//! Senders run through a warm-up and then a measured window; a send counts (throughput and
//! latency) when it started and was acknowledged inside the window. Latency is per request
//! (per message for single sends, per batch for batches), from the first attempt to the
//! acknowledgement, retries included.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Result;
use proto::v1::ResponseCode;

use crate::cpu::{CpuSnapshot, Tracked};
use crate::messages::MessageSource;
use crate::report::{spawn_progress, Counters, Latency};
use crate::route::LeaderRoute;

/// How long a sender keeps retrying one request before counting its messages as failed.
const SEND_GIVE_UP: Duration = Duration::from_secs(10);

/// What a load scenario keeps in flight.
#[derive(Clone, Copy, Debug)]
pub struct LoadShape {
    pub name: &'static str,
    /// Concurrent senders, each with one request outstanding.
    pub senders: usize,
    /// Messages per request.
    pub batch: usize,
    /// HTTP/2 connections to the leader, shared round-robin by the senders.
    pub connections: usize,
}

/// When and what to send.
#[derive(Clone, Debug)]
pub struct LoadOptions {
    pub warmup: Duration,
    pub measure: Duration,
    /// Queues of the topic; sender `n` writes to queue `n % queues`.
    pub queues: u32,
    /// Processes whose CPU use per message is reported for the window.
    pub tracked: Vec<Tracked>,
}

/// What a load scenario measured.
pub struct LoadReport {
    /// Messages acknowledged inside the window.
    pub messages: u64,
    /// Messages given up on (not acknowledged) inside the window.
    pub failed: u64,
    /// Of `messages`, those acknowledged with a degraded status (stored, but without the
    /// copies the mode waits for: `SLAVE_NOT_AVAILABLE`, `FLUSH_*_TIMEOUT`).
    pub degraded: u64,
    /// Length of the window.
    pub window: Duration,
    /// Latency per request.
    pub latency: Latency,
}

impl LoadReport {
    pub fn msgs_per_s(&self) -> f64 {
        self.messages as f64 / self.window.as_secs_f64()
    }
}

/// What one sender measured.
#[derive(Default)]
struct SenderTally {
    messages: u64,
    failed: u64,
    degraded: u64,
    latency: Latency,
}

/// Runs `shape` against the leader `route` follows, sending what `source` makes.
pub async fn run(
    route: Arc<LeaderRoute>,
    source: MessageSource,
    shape: LoadShape,
    opts: &LoadOptions,
) -> Result<LoadReport> {
    let counters = Arc::new(Counters::default());
    let measure_from = Instant::now() + opts.warmup;
    let measure_until = measure_from + opts.measure;
    let progress = spawn_progress(shape.name, counters.clone(), measure_from);
    let tracked = opts.tracked.clone();
    let cpu = tokio::spawn(async move {
        tokio::time::sleep_until(measure_from.into()).await;
        let first = CpuSnapshot::take(&tracked);
        tokio::time::sleep_until(measure_until.into()).await;
        (first, CpuSnapshot::take(&tracked))
    });

    let senders: Vec<_> = (0..shape.senders)
        .map(|n| {
            let route = route.clone();
            let source = source.clone();
            let counters = counters.clone();
            let queue = (n as u32 % opts.queues.max(1)) as i32;
            tokio::spawn(async move {
                let mut tally = SenderTally::default();
                // Sender n owns sequence numbers n, n + senders, ... in steps of `batch`.
                let mut seq = (n * shape.batch) as u64;
                let stride = (shape.senders * shape.batch) as u64;
                let batch = shape.batch as u64;
                loop {
                    let req = source.request(queue, seq, shape.batch);
                    seq += stride;
                    let started = Instant::now();
                    if started >= measure_until {
                        break;
                    }
                    let outcome = route.send(n, &req, started + SEND_GIVE_UP).await;
                    let done = Instant::now();
                    let counted = started >= measure_from && done <= measure_until;
                    match outcome {
                        Ok(acked) => {
                            counters.ack(batch);
                            if counted {
                                tally.messages += batch;
                                if acked.code != ResponseCode::Ok {
                                    tally.degraded += batch;
                                }
                                tally.latency.record(done - started);
                            }
                        }
                        Err(e) => {
                            tracing::warn!("{}: send failed: {e:#}", shape.name);
                            counters.fail(batch);
                            if counted {
                                tally.failed += batch;
                            }
                        }
                    }
                }
                tally
            })
        })
        .collect();

    let mut report = LoadReport {
        messages: 0,
        failed: 0,
        degraded: 0,
        window: opts.measure,
        latency: Latency::new(),
    };
    let mut first_error = None;
    for sender in senders {
        match sender.await {
            Ok(tally) => {
                report.messages += tally.messages;
                report.failed += tally.failed;
                report.degraded += tally.degraded;
                report.latency.merge(&tally.latency);
            }
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    progress.abort();
    if let Ok((first, last)) = cpu.await {
        eprintln!(
            "[{}] {}",
            shape.name,
            first.describe(&last, &opts.tracked, report.messages)
        );
    }
    if let Some(e) = first_error {
        return Err(anyhow::anyhow!("a sender of {} died: {e}", shape.name));
    }
    Ok(report)
}
