//! Starting nodes as detached OS processes, and signalling them without ever hitting a
//! process that is not theirs.
//!
//! A node runs in its own session (`setsid`), with stdin from `/dev/null` and stdout and
//! stderr appended to its log file, so it outlives the `mqcluster` that started it and a
//! Ctrl-C in that terminal does not reach it.
//!
//! Pids outlive their processes: once a node is gone the kernel may give its pid to any
//! other program. So a pid is "ours" only while `/proc/PID/cmdline` reads exactly the
//! command line recorded for the node; a zombie (empty cmdline) counts as gone.

use std::fs::{self, File};
use std::io::Write;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use tokio::time::Instant;

use crate::state::NodeRecord;

/// How often a wait for a process to go away looks again.
const POLL: Duration = Duration::from_millis(20);
/// How long a SIGKILLed process may take to disappear before it is reported as stuck.
const KILL_WAIT: Duration = Duration::from_secs(5);

/// Starts `node`'s command in a new session, logging to `node.log`, in `cwd`.
pub fn start(node: &NodeRecord, cwd: &Path) -> Result<Child> {
    let Some((program, args)) = node.command.split_first() else {
        bail!("{} has an empty command in cluster.json", node.full_name());
    };
    let mut log = File::options()
        .create(true)
        .append(true)
        .open(&node.log)
        .with_context(|| format!("cannot open the log file {}", node.log.display()))?;
    // Several starts share one log (restarts append): mark where each begins.
    writeln!(
        log,
        "==== mqcluster: starting {}: {}",
        node.full_name(),
        node.command.join(" ")
    )
    .with_context(|| format!("cannot write {}", node.log.display()))?;
    let stderr = log
        .try_clone()
        .with_context(|| format!("cannot reopen {}", node.log.display()))?;

    let mut command = Command::new(program);
    command
        .args(args)
        .current_dir(cwd)
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(stderr);
    // SAFETY: the closure runs in the forked child before exec and only calls setsid(2),
    // which is async-signal-safe and touches no memory of the parent.
    #[allow(unsafe_code)]
    unsafe {
        command.pre_exec(|| {
            if libc::setsid() == -1 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    command
        .spawn()
        .with_context(|| format!("cannot start {program} for {}", node.full_name()))
}

/// The pid of `node` if that process is still running its recorded command line.
pub fn live_pid(node: &NodeRecord) -> Option<u32> {
    node.pid.filter(|&pid| is_running(pid, &node.command))
}

/// Whether process `pid` runs exactly `command` (not a recycled pid, not a zombie).
pub fn is_running(pid: u32, command: &[String]) -> bool {
    fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|raw| cmdline_matches(&raw, command))
}

/// Compares a raw `/proc/PID/cmdline` (NUL-terminated arguments) with a command line.
fn cmdline_matches(raw: &[u8], command: &[String]) -> bool {
    let raw = raw.strip_suffix(&[0]).unwrap_or(raw);
    if raw.is_empty() {
        return false;
    }
    let args: Vec<&[u8]> = raw.split(|&b| b == 0).collect();
    args.len() == command.len() && args.iter().zip(command).all(|(a, c)| *a == c.as_bytes())
}

/// The signals mqcluster sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// SIGTERM: stop gracefully.
    Term,
    /// SIGKILL: die now, as in a crash.
    Kill,
}

impl Signal {
    fn number(self) -> libc::c_int {
        match self {
            Signal::Term => libc::SIGTERM,
            Signal::Kill => libc::SIGKILL,
        }
    }
}

/// Sends `signal` to `node` if its recorded pid still runs its command; returns the pid
/// signalled, or none when the node was not running.
pub fn signal(node: &NodeRecord, signal: Signal) -> Result<Option<u32>> {
    let Some(pid) = live_pid(node) else {
        return Ok(None);
    };
    // Never 0 or negative: kill(2) would then signal whole process groups.
    let target = libc::pid_t::try_from(pid)
        .ok()
        .filter(|&p| p > 1)
        .with_context(|| format!("{} has an impossible pid {pid}", node.full_name()))?;
    // SAFETY: kill(2) takes plain integers; the pid was checked above to be the node's.
    #[allow(unsafe_code)]
    let rc = unsafe { libc::kill(target, signal.number()) };
    if rc == -1 {
        let err = std::io::Error::last_os_error();
        // It may have exited between the check and the signal.
        if err.raw_os_error() == Some(libc::ESRCH) {
            return Ok(None);
        }
        return Err(err).with_context(|| format!("cannot signal {} (pid {pid})", node.full_name()));
    }
    Ok(Some(pid))
}

/// Waits until `node`'s process is gone; false if it still runs at `deadline`.
pub async fn wait_gone(node: &NodeRecord, deadline: Instant) -> bool {
    loop {
        if live_pid(node).is_none() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(POLL).await;
    }
}

/// How a node stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stopped {
    /// It was not running.
    NotRunning,
    /// It exited after SIGTERM.
    Terminated(u32),
    /// It ignored SIGTERM for the whole grace period and was SIGKILLed.
    Killed(u32),
}

/// SIGTERMs the nodes, waits up to `grace` for them, SIGKILLs the stragglers.
pub async fn stop_all(nodes: &[&NodeRecord], grace: Duration) -> Result<Vec<Stopped>> {
    let mut outcome = Vec::with_capacity(nodes.len());
    for node in nodes {
        outcome.push(match signal(node, Signal::Term)? {
            Some(pid) => Stopped::Terminated(pid),
            None => Stopped::NotRunning,
        });
    }
    let deadline = Instant::now() + grace;
    for (node, stopped) in nodes.iter().zip(outcome.iter_mut()) {
        if let Stopped::Terminated(pid) = *stopped {
            if !wait_gone(node, deadline).await {
                if signal(node, Signal::Kill)?.is_some() {
                    *stopped = Stopped::Killed(pid);
                }
                kill_wait(node).await?;
            }
        }
    }
    Ok(outcome)
}

/// SIGKILLs `node` and waits until it is gone; the pid killed, none if it was not running.
pub async fn kill(node: &NodeRecord) -> Result<Option<u32>> {
    let pid = signal(node, Signal::Kill)?;
    if pid.is_some() {
        kill_wait(node).await?;
    }
    Ok(pid)
}

async fn kill_wait(node: &NodeRecord) -> Result<()> {
    if wait_gone(node, Instant::now() + KILL_WAIT).await {
        Ok(())
    } else {
        bail!(
            "{} (pid {}) is still running {KILL_WAIT:?} after SIGKILL",
            node.full_name(),
            node.pid.unwrap_or_default()
        )
    }
}

/// The last non-empty line of a log file, to say why a process stopped.
pub fn last_log_line(log: &Path) -> Option<String> {
    let text = fs::read(log).ok()?;
    let text = String::from_utf8_lossy(&text);
    text.lines()
        .rev()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::NodeKind;

    fn command(args: &[&str]) -> Vec<String> {
        args.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn cmdline_must_match_every_argument() {
        let cmd = command(&["/bin/mqbroker", "-c", "a b.properties"]);
        assert!(cmdline_matches(
            b"/bin/mqbroker\0-c\0a b.properties\0",
            &cmd
        ));
        assert!(!cmdline_matches(b"/bin/mqbroker\0-c\0other\0", &cmd));
        assert!(!cmdline_matches(b"/bin/mqbroker\0-c\0", &cmd));
        assert!(!cmdline_matches(b"/bin/sleep\0-c\0a b.properties\0", &cmd));
        // A zombie's cmdline is empty.
        assert!(!cmdline_matches(b"", &cmd));
    }

    fn sleeper(dir: &Path) -> NodeRecord {
        NodeRecord {
            name: "sleeper".into(),
            kind: NodeKind::Namesrv,
            group: None,
            addr: String::new(),
            raft_addr: None,
            command: command(&["/bin/sleep", "30"]),
            log: dir.join("sleeper.log"),
            store: None,
            pid: None,
        }
    }

    #[tokio::test]
    async fn started_processes_are_detached_signalled_and_reaped() {
        let tmp = tempfile::tempdir().unwrap();
        let mut node = sleeper(tmp.path());
        assert_eq!(signal(&node, Signal::Kill).unwrap(), None);

        let mut child = start(&node, tmp.path()).unwrap();
        node.pid = Some(child.id());
        assert_eq!(live_pid(&node), Some(child.id()));
        // Its own session: it leads it, so its session id is its pid.
        let stat = fs::read_to_string(format!("/proc/{}/stat", child.id())).unwrap();
        let after_name = &stat[stat.rfind(')').unwrap() + 2..];
        let session: u32 = after_name.split(' ').nth(3).unwrap().parse().unwrap();
        assert_eq!(session, child.id());

        // A different recorded command line protects the process.
        let mut other = node.clone();
        other.command = command(&["/bin/sleep", "31"]);
        assert_eq!(signal(&other, Signal::Kill).unwrap(), None);

        let stopped = stop_all(&[&node], Duration::from_secs(5)).await.unwrap();
        assert_eq!(stopped, vec![Stopped::Terminated(child.id())]);
        assert!(child.wait().is_ok());
        assert_eq!(live_pid(&node), None);
        let log = last_log_line(&node.log).unwrap();
        assert!(log.starts_with("==== mqcluster: starting sleeper"), "{log}");
    }
}
