//! CPU accounting over a measured window, from `/proc`: the CPU time each process of interest
//! used (so a scenario can say how many CPU microseconds the leader, each follower and the
//! client spend per message) and how busy the whole machine was (other work on a shared
//! machine shows up as "others").

use std::time::Duration;

/// A process to account for.
#[derive(Clone, Debug)]
pub struct Tracked {
    pub label: String,
    pub pid: u32,
}

/// CPU counters at one instant.
pub struct CpuSnapshot {
    /// Per tracked process: user + system time so far (`None` if unreadable).
    processes: Vec<Option<Duration>>,
    /// Machine-wide (busy, total) clock ticks since boot, all CPUs.
    machine: Option<(u64, u64)>,
}

fn clock_ticks_per_second() -> u64 {
    // SAFETY: sysconf has no preconditions.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    u64::try_from(t).ok().filter(|&t| t > 0).unwrap_or(100)
}

/// User + system CPU time of process `pid` (all its threads), from `/proc/<pid>/stat`.
fn process_cpu(pid: u32) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces; fields after its ')' are plain numbers.
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    let ticks = clock_ticks_per_second();
    Some(Duration::from_micros((utime + stime) * 1_000_000 / ticks))
}

/// (busy, total) ticks of all CPUs, from the `cpu` line of `/proc/stat`.
fn machine_ticks() -> Option<(u64, u64)> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let line = stat.lines().next()?.strip_prefix("cpu ")?;
    let v: Vec<u64> = line
        .split_whitespace()
        .map(|f| f.parse().unwrap_or(0))
        .collect();
    let total: u64 = v.iter().take(8).sum();
    // idle + iowait
    let idle = v.get(3).copied().unwrap_or(0) + v.get(4).copied().unwrap_or(0);
    Some((total.saturating_sub(idle), total))
}

impl CpuSnapshot {
    pub fn take(tracked: &[Tracked]) -> CpuSnapshot {
        CpuSnapshot {
            processes: tracked.iter().map(|t| process_cpu(t.pid)).collect(),
            machine: machine_ticks(),
        }
    }

    /// One line: CPU µs per message of each tracked process between `self` and `later`, and
    /// how busy the machine was (all CPUs, %), with the part none of them used.
    pub fn describe(&self, later: &CpuSnapshot, tracked: &[Tracked], messages: u64) -> String {
        let mut parts = Vec::new();
        let mut ours = Duration::ZERO;
        for (i, t) in tracked.iter().enumerate() {
            match (
                self.processes.get(i).copied().flatten(),
                later.processes.get(i).copied().flatten(),
            ) {
                (Some(a), Some(b)) => {
                    let used = b.saturating_sub(a);
                    ours += used;
                    let per_msg = used.as_secs_f64() * 1e6 / messages.max(1) as f64;
                    parts.push(format!("{} {per_msg:.1}", t.label));
                }
                _ => parts.push(format!("{} ?", t.label)),
            }
        }
        let machine = match (self.machine, later.machine) {
            (Some((b0, t0)), Some((b1, t1))) if t1 > t0 => {
                let ticks = clock_ticks_per_second() as f64;
                let total = (t1 - t0) as f64;
                let busy = (b1 - b0) as f64;
                let ours_ticks = ours.as_secs_f64() * ticks;
                format!(
                    "; machine busy {:.0}% (others {:.0}%)",
                    100.0 * busy / total,
                    (100.0 * (busy - ours_ticks) / total).max(0.0)
                )
            }
            _ => String::new(),
        };
        format!("cpu us/msg: {}{machine}", parts.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_this_process_and_the_machine() {
        let me = std::process::id();
        let tracked = [Tracked {
            label: "self".into(),
            pid: me,
        }];
        let a = CpuSnapshot::take(&tracked);
        assert!(a.processes[0].is_some() && a.machine.is_some());
        // Burn CPU until both counters have ticked (10 ms each): a fixed amount of work can
        // take less than a tick in a release build.
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        let mut x = 0u64;
        let b = loop {
            for i in 0..1_000_000u64 {
                x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(i));
            }
            let b = CpuSnapshot::take(&tracked);
            let ticked =
                b.processes[0] > a.processes[0] && b.machine.map(|m| m.1) > a.machine.map(|m| m.1);
            if ticked || std::time::Instant::now() > deadline {
                break b;
            }
        };
        let line = a.describe(&b, &tracked, 1);
        assert!(line.starts_with("cpu us/msg: self "), "{line}");
        assert!(line.contains("machine busy"), "{line}");
    }
}
