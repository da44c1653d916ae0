//! Measurements: a latency histogram (HdrHistogram, microseconds), running counters with a
//! progress line per second on stderr, and the numbers of the `RESULT` lines.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use tokio::task::JoinHandle;

/// Latencies from 1 µs to 60 s at 3 significant digits.
pub struct Latency(Histogram<u64>);

impl Latency {
    pub fn new() -> Latency {
        // Bounds are constants that HdrHistogram accepts (low >= 1, high >= 2 * low, sigfig <= 5).
        Latency(Histogram::new_with_bounds(1, 60_000_000, 3).expect("valid histogram bounds"))
    }

    pub fn record(&mut self, d: Duration) {
        let us = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        self.0.saturating_record(us.max(1));
    }

    pub fn merge(&mut self, other: &Latency) {
        // Same bounds on both sides: adding cannot fail.
        let _ = self.0.add(&other.0);
    }

    pub fn count(&self) -> u64 {
        self.0.len()
    }

    /// The latency at quantile `q` (0..=1), in milliseconds.
    pub fn ms(&self, q: f64) -> f64 {
        self.0.value_at_quantile(q) as f64 / 1000.0
    }
}

impl Default for Latency {
    fn default() -> Self {
        Latency::new()
    }
}

/// Counters shared by the senders of a scenario and read by its progress line.
#[derive(Default)]
pub struct Counters {
    /// Messages acknowledged.
    pub acked: AtomicU64,
    /// Messages given up on.
    pub failed: AtomicU64,
}

impl Counters {
    pub fn ack(&self, messages: u64) {
        self.acked.fetch_add(messages, Ordering::Relaxed);
    }

    pub fn fail(&self, messages: u64) {
        self.failed.fetch_add(messages, Ordering::Relaxed);
    }
}

/// Prints `[scenario] <t>s <phase> <rate> msgs/s acked <n> failed <n>` on stderr every second
/// until aborted. `measure_from` splits warm-up from measurement.
pub fn spawn_progress(
    scenario: &'static str,
    counters: Arc<Counters>,
    measure_from: Instant,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let started = Instant::now();
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.tick().await;
        let mut last = 0;
        loop {
            tick.tick().await;
            let acked = counters.acked.load(Ordering::Relaxed);
            let failed = counters.failed.load(Ordering::Relaxed);
            // The phase of the second that just ended.
            let phase = if Instant::now() < measure_from + Duration::from_millis(500) {
                "warm-up"
            } else {
                "measure"
            };
            eprintln!(
                "[{scenario}] {:>3}s {phase} {:>8} msgs/s  acked {acked}  failed {failed}",
                started.elapsed().as_secs(),
                acked - last
            );
            last = acked;
        }
    })
}

/// The median of `values` (the mean of the middle two for an even count); `None` when empty.
pub fn median(values: &[f64]) -> Option<f64> {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| !x.is_nan()).collect();
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let mid = v.len() / 2;
    Some(if v.len().is_multiple_of(2) {
        (v[mid - 1] + v[mid]) / 2.0
    } else {
        v[mid]
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_in_milliseconds() {
        let mut a = Latency::new();
        for us in 1..=1000u64 {
            a.record(Duration::from_micros(us * 10));
        }
        let mut b = Latency::new();
        b.record(Duration::from_secs(2));
        a.merge(&b);
        assert_eq!(a.count(), 1001);
        assert!((a.ms(0.5) - 5.0).abs() < 0.02, "{}", a.ms(0.5));
        assert!((a.ms(1.0) - 2000.0).abs() < 2.0, "{}", a.ms(1.0));
    }

    #[test]
    fn medians() {
        assert_eq!(median(&[]), None);
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), Some(2.5));
    }
}
