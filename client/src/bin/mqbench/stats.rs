//! Latency and throughput bookkeeping of a benchmark: a per-second window printed as one
//! line, and a whole-run histogram for the percentiles of the `RESULT` line.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

/// Largest latency the histogram tracks exactly, µs (one hour); larger ones are clamped.
const MAX_LATENCY_US: u64 = 3_600_000_000;

/// One second's worth of samples.
#[derive(Default, Clone, Copy)]
struct Window {
    messages: u64,
    requests: u64,
    latency_sum_us: u64,
    latency_max_us: u64,
    failed: u64,
}

struct Inner {
    window: Window,
    histogram: Histogram<u64>,
    messages: u64,
    failed: u64,
    first_ok: Option<Instant>,
    last_ok: Option<Instant>,
}

/// Shared by the workers of one run.
pub struct Stats {
    inner: Mutex<Inner>,
    started: Instant,
}

/// Totals of a finished run.
pub struct Summary {
    pub messages: u64,
    pub failed: u64,
    pub msgs_per_s: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
}

impl Stats {
    pub fn new() -> anyhow::Result<Self> {
        let histogram = Histogram::new_with_bounds(1, MAX_LATENCY_US, 3)
            .map_err(|e| anyhow::anyhow!("cannot create the latency histogram: {e}"))?;
        Ok(Self {
            inner: Mutex::new(Inner {
                window: Window::default(),
                histogram,
                messages: 0,
                failed: 0,
                first_ok: None,
                last_ok: None,
            }),
            started: Instant::now(),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A request that delivered `messages` messages after `latency`.
    pub fn ok(&self, messages: u64, latency: Duration) {
        let us = u64::try_from(latency.as_micros())
            .unwrap_or(u64::MAX)
            .clamp(1, MAX_LATENCY_US);
        let now = Instant::now();
        let mut s = self.lock();
        s.window.messages += messages;
        s.window.requests += 1;
        s.window.latency_sum_us += us;
        s.window.latency_max_us = s.window.latency_max_us.max(us);
        s.histogram.saturating_record(us);
        s.messages += messages;
        s.first_ok.get_or_insert(now);
        s.last_ok = Some(now);
    }

    /// `messages` messages that failed.
    pub fn failed(&self, messages: u64) {
        let mut s = self.lock();
        s.window.failed += messages;
        s.failed += messages;
    }

    /// Messages delivered so far.
    pub fn messages(&self) -> u64 {
        self.lock().messages
    }

    /// The per-second line for the window that just ended, and starts a new window.
    pub fn tick(&self, second: u64) -> String {
        let w = std::mem::take(&mut self.lock().window);
        let avg_ms = if w.requests == 0 {
            0.0
        } else {
            w.latency_sum_us as f64 / w.requests as f64 / 1000.0
        };
        format!(
            "[{second:>4}s] TPS: {} avg RT: {avg_ms:.3}ms max RT: {:.3}ms failed: {}",
            w.messages,
            w.latency_max_us as f64 / 1000.0,
            w.failed
        )
    }

    /// Totals. Throughput is over the span from the start (or, when `from_first` is set,
    /// from the first delivered message) to the last delivered message.
    pub fn summary(&self, from_first: bool) -> Summary {
        let s = self.lock();
        let start = if from_first {
            s.first_ok.unwrap_or(self.started)
        } else {
            self.started
        };
        let end = s.last_ok.unwrap_or_else(Instant::now);
        let secs = end.saturating_duration_since(start).as_secs_f64();
        let msgs_per_s = if secs > 0.0 {
            s.messages as f64 / secs
        } else {
            0.0
        };
        let pct = |q: f64| {
            if s.histogram.is_empty() {
                0.0
            } else {
                s.histogram.value_at_quantile(q) as f64 / 1000.0
            }
        };
        Summary {
            messages: s.messages,
            failed: s.failed,
            msgs_per_s,
            p50_ms: pct(0.50),
            p99_ms: pct(0.99),
            p999_ms: pct(0.999),
        }
    }
}

/// The latest error of a run, printed (and cleared) by the reporter each second.
pub type LastError = Arc<Mutex<Option<String>>>;

/// Prints the per-second line on stdout every second until aborted, and the latest error
/// of that second, if any, on stderr.
pub fn spawn_reporter(stats: Arc<Stats>, last_error: LastError) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut ticker = tokio::time::interval(Duration::from_secs(1));
        ticker.tick().await;
        for second in 1.. {
            ticker.tick().await;
            println!("{}", stats.tick(second));
            print_last_error(&last_error);
        }
    })
}

/// Prints and clears the latest error, if any.
pub fn print_last_error(last_error: &LastError) {
    if let Some(e) = last_error.lock().unwrap_or_else(|p| p.into_inner()).take() {
        eprintln!("mqbench: last error: {e}");
    }
}

impl Summary {
    /// The final line: `RESULT role=... msgs=N msgs_per_s=X p50_ms=A p99_ms=B p999_ms=C failed=F`.
    pub fn result_line(&self, role: &str) -> String {
        format!(
            "RESULT role={role} msgs={} msgs_per_s={:.1} p50_ms={:.3} p99_ms={:.3} p999_ms={:.3} failed={}",
            self.messages, self.msgs_per_s, self.p50_ms, self.p99_ms, self.p999_ms, self.failed
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_and_percentiles() {
        let stats = Stats::new().unwrap();
        for ms in 1..=100 {
            stats.ok(2, Duration::from_millis(ms));
        }
        stats.failed(3);
        let line = stats.tick(1);
        assert!(line.starts_with("[   1s] TPS: 200 avg RT: 50.5"), "{line}");
        assert!(line.ends_with("max RT: 100.000ms failed: 3"), "{line}");
        assert!(stats.tick(2).contains("TPS: 0 "));
        let s = stats.summary(false);
        assert_eq!((s.messages, s.failed), (200, 3));
        assert!((s.p50_ms - 50.0).abs() < 0.1, "{}", s.p50_ms);
        assert!((s.p99_ms - 99.0).abs() < 0.1, "{}", s.p99_ms);
        let line = s.result_line("producer");
        assert!(
            line.starts_with("RESULT role=producer msgs=200 msgs_per_s="),
            "{line}"
        );
        assert!(line.ends_with(" failed=3"), "{line}");
    }
}
