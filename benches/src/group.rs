//! A fresh 3-replica dledger group of real `mqbroker` processes: free loopback ports, a temp
//! directory for stores and logs, `kill -9` and restart of one replica, and waits on what the
//! replicas report (`BrokerStatus`) instead of sleeps.
//!
//! Every replica is this process's child and dies with it: SIGKILL when the group is dropped
//! (also while unwinding from a panic or when a scenario is cancelled), and the kernel's
//! parent-death signal if this process itself is killed.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use proto::v1::{self as pb, RaftRole};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use crate::cpu::Tracked;
use crate::route::{connect, Client};

/// Replicas in a group.
pub const REPLICAS: usize = 3;
/// How long a replica may take to print its boot line.
const BOOT_TIMEOUT: Duration = Duration::from_secs(30);
/// Deadline of one `BrokerStatus` call.
const STATUS_TIMEOUT: Duration = Duration::from_millis(500);
/// Pace of the polls in the waits below.
const POLL: Duration = Duration::from_millis(20);

/// `flushDiskType`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Flush {
    /// SYNC_FLUSH: fsync before an append counts.
    Sync,
    /// ASYNC_FLUSH: flushed on an interval.
    Async,
}

impl Flush {
    /// The property value.
    pub fn property(self) -> &'static str {
        match self {
            Flush::Sync => "SYNC_FLUSH",
            Flush::Async => "ASYNC_FLUSH",
        }
    }
}

/// `brokerRole` of every replica.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Role {
    /// SYNC_MASTER: ack after quorum commit.
    Sync,
    /// ASYNC_MASTER: ack after the leader's local append.
    Async,
}

impl Role {
    /// The property value.
    pub fn property(self) -> &'static str {
        match self {
            Role::Sync => "SYNC_MASTER",
            Role::Async => "ASYNC_MASTER",
        }
    }
}

/// How to start the replicas.
#[derive(Clone, Debug)]
pub struct GroupSettings {
    /// The `mqbroker` binary under test.
    pub mqbroker: PathBuf,
    /// Directory holding `broker-n0.properties` .. `broker-n2.properties`.
    pub conf_dir: PathBuf,
    pub flush: Flush,
    pub role: Role,
    /// More `KEY=VALUE` overrides for every replica, applied last.
    pub extra: Vec<String>,
    /// Leave the stores and logs on disk (their path is printed).
    pub keep_data: bool,
}

/// One running replica.
struct Replica {
    child: Child,
}

/// A running group. Dropping it kills every replica.
pub struct BrokerGroup {
    settings: GroupSettings,
    /// Stores (`n0/`, ...) and logs (`n0.log`, ...); removed on drop unless `keep_data`.
    dir: Option<tempfile::TempDir>,
    client_ports: Vec<u16>,
    raft_ports: Vec<u16>,
    /// `None` while a replica is killed.
    replicas: Vec<Option<Replica>>,
    /// One lazy connection per replica for status polls; it reconnects after a restart.
    status: Vec<Client>,
}

/// `count` distinct free ports on 127.0.0.1 (below the ephemeral range, see `raftmq_testkit`).
fn free_ports(count: usize) -> Result<Vec<u16>> {
    raftmq_testkit::free_ports(count).context("cannot pick free ports on 127.0.0.1")
}

/// Asks the kernel to SIGKILL the child when the thread that spawned it exits. The spawning
/// thread is the runtime's (main or worker) thread, which lives as long as this process's
/// runtime: so a replica cannot outlive a benchmark that was itself killed.
fn die_with_parent(cmd: &mut Command) {
    // SAFETY: the closure runs in the forked child before exec and only calls prctl, which is
    // async-signal-safe.
    unsafe {
        cmd.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) == -1 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

impl BrokerGroup {
    /// Starts three replicas and waits until each prints its boot line.
    pub async fn start(settings: GroupSettings) -> Result<BrokerGroup> {
        let dir = tempfile::Builder::new()
            .prefix("e2e-bench-")
            .tempdir()
            .context("cannot create a temp dir for the group")?;
        let ports = free_ports(2 * REPLICAS)?;
        let status = ports[..REPLICAS]
            .iter()
            .map(|p| connect(&format!("127.0.0.1:{p}")))
            .collect::<Result<Vec<_>>>()?;
        let mut group = BrokerGroup {
            settings,
            dir: Some(dir),
            client_ports: ports[..REPLICAS].to_vec(),
            raft_ports: ports[REPLICAS..].to_vec(),
            replicas: (0..REPLICAS).map(|_| None).collect(),
            status,
        };
        for i in 0..REPLICAS {
            group.replicas[i] = Some(group.spawn(i).await?);
        }
        Ok(group)
    }

    fn dir(&self) -> &Path {
        self.dir.as_ref().map_or(Path::new("."), |d| d.path())
    }

    fn log_path(&self, i: usize) -> PathBuf {
        self.dir().join(format!("n{i}.log"))
    }

    /// Client address ("127.0.0.1:port") of replica `i`.
    pub fn client_addr(&self, i: usize) -> String {
        format!("127.0.0.1:{}", self.client_ports[i])
    }

    /// Client addresses of every replica, by index (= Raft node id).
    pub fn client_addrs(&self) -> Vec<String> {
        (0..REPLICAS).map(|i| self.client_addr(i)).collect()
    }

    async fn spawn(&self, i: usize) -> Result<Replica> {
        let s = &self.settings;
        let peers = (0..REPLICAS)
            .map(|j| format!("n{j}-127.0.0.1:{}", self.raft_ports[j]))
            .collect::<Vec<_>>()
            .join(";");
        let mut overrides = vec![
            format!(
                "storePathRootDir={}",
                self.dir().join(format!("n{i}")).display()
            ),
            format!("listenPort={}", self.client_ports[i]),
            format!("dLegerPeers={peers}"),
            "namesrvAddr=".to_string(),
            format!("flushDiskType={}", s.flush.property()),
            format!("brokerRole={}", s.role.property()),
        ];
        overrides.extend(s.extra.iter().cloned());

        let log_path = self.log_path(i);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .with_context(|| format!("cannot open {}", log_path.display()))?;
        let conf = s.conf_dir.join(format!("broker-n{i}.properties"));
        let mut cmd = Command::new(&s.mqbroker);
        cmd.arg("-c").arg(&conf);
        for o in &overrides {
            cmd.arg("--set").arg(o);
        }
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log))
            .kill_on_drop(true);
        die_with_parent(&mut cmd);
        let mut child = cmd
            .spawn()
            .with_context(|| format!("cannot start {}", s.mqbroker.display()))?;
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| anyhow!("no stdout pipe to mqbroker n{i}"))?;
        let mut lines = BufReader::new(stdout).lines();
        let first = tokio::time::timeout(BOOT_TIMEOUT, lines.next_line()).await;
        match first {
            Ok(Ok(Some(line))) if line.contains("boot success") => {}
            other => {
                let _ = child.start_kill();
                let seen = match other {
                    Ok(Ok(Some(line))) => format!("printed {line:?}"),
                    Ok(Ok(None)) => "exited".to_string(),
                    Ok(Err(e)) => format!("stdout failed: {e}"),
                    Err(_) => format!("printed nothing in {BOOT_TIMEOUT:?}"),
                };
                bail!(
                    "mqbroker n{i} did not boot ({seen}); its log: {}",
                    log_path.display()
                );
            }
        }
        // Keep draining stdout so the broker never blocks on (or fails writing to) the pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Ok(Replica { child })
    }

    /// `kill -9` of replica `i`, by its PID; returns the instant just before the signal.
    /// Returns once the process is reaped.
    pub async fn kill9(&mut self, i: usize) -> Result<Instant> {
        let mut replica = self.replicas[i]
            .take()
            .ok_or_else(|| anyhow!("replica n{i} is not running"))?;
        let pid = replica
            .child
            .id()
            .ok_or_else(|| anyhow!("replica n{i} already exited"))?;
        let pid = libc::pid_t::try_from(pid).context("pid out of range")?;
        let at = Instant::now();
        // SAFETY: plain syscall; `pid` is our own child, not yet reaped, so it is not reused.
        if unsafe { libc::kill(pid, libc::SIGKILL) } == -1 {
            bail!("kill -9 {pid} (n{i}): {}", std::io::Error::last_os_error());
        }
        replica
            .child
            .wait()
            .await
            .with_context(|| format!("waiting for n{i} (pid {pid}) to die"))?;
        Ok(at)
    }

    /// Starts replica `i` again on its ports and store.
    pub async fn restart(&mut self, i: usize) -> Result<()> {
        if self.replicas[i].is_some() {
            bail!("replica n{i} is still running");
        }
        self.replicas[i] = Some(self.spawn(i).await?);
        Ok(())
    }

    /// The running replicas (labelled `n<i>`, `n<i>(leader)` for `leader`) and this process
    /// (`client`), for CPU accounting.
    pub fn tracked(&self, leader: usize) -> Vec<Tracked> {
        let mut tracked: Vec<Tracked> = (0..REPLICAS)
            .filter_map(|i| {
                let pid = self.replicas[i].as_ref()?.child.id()?;
                let role = if i == leader { "(leader)" } else { "" };
                Some(Tracked {
                    label: format!("n{i}{role}"),
                    pid,
                })
            })
            .collect();
        tracked.push(Tracked {
            label: "client".to_string(),
            pid: std::process::id(),
        });
        tracked
    }

    fn live(&self) -> Vec<usize> {
        (0..REPLICAS)
            .filter(|&i| self.replicas[i].is_some())
            .collect()
    }

    /// `BrokerStatus` of replica `i`.
    pub async fn status(&self, i: usize) -> Result<pb::BrokerStatusResponse> {
        let mut client = self.status[i].clone();
        let resp = tokio::time::timeout(
            STATUS_TIMEOUT,
            client.broker_status(pb::BrokerStatusRequest {}),
        )
        .await
        .map_err(|_| anyhow!("BrokerStatus of n{i}: no answer in {STATUS_TIMEOUT:?}"))?
        .map_err(|e| anyhow!("BrokerStatus of n{i}: {}", e.message()))?;
        Ok(resp.into_inner())
    }

    /// The leader every live replica agrees on, once it leads by its own account and has
    /// announced its client address (so NOT_LEADER hints point at it).
    pub async fn leader(&self, timeout: Duration) -> Result<usize> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(l) = self.agreed_leader().await {
                return Ok(l);
            }
            if Instant::now() > deadline {
                bail!(
                    "no leader agreed by the live replicas within {timeout:?}; logs in {}",
                    self.dir().display()
                );
            }
            tokio::time::sleep(POLL).await;
        }
    }

    async fn agreed_leader(&self) -> Option<usize> {
        let live = self.live();
        let mut agreed = None;
        for &i in &live {
            let raft = self.status(i).await.ok()?.raft?;
            let leader = usize::try_from(raft.leader_node_id?).ok()?;
            if agreed.is_some_and(|a| a != leader) || !live.contains(&leader) {
                return None;
            }
            agreed = Some(leader);
        }
        let leader = agreed?;
        let status = self.status(leader).await.ok()?;
        let announced = status
            .raft
            .as_ref()
            .is_some_and(|r| r.leader_addr == self.client_addr(leader));
        (status.raft_role() == RaftRole::Leader && announced).then_some(leader)
    }

    /// Waits until replica `i` follows `leader` and has applied everything the leader had
    /// applied when the wait began (a replica reports no commit index; the leader applies
    /// what it commits, so this is everything acknowledged before the wait).
    pub async fn wait_caught_up(&self, i: usize, leader: usize, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        let applied = |s: &pb::BrokerStatusResponse| {
            s.raft
                .as_ref()
                .and_then(|r| r.applied.as_ref())
                .map(|a| a.index)
        };
        let target = loop {
            match self.status(leader).await {
                Ok(s) => break applied(&s).unwrap_or(0),
                Err(e) if Instant::now() > deadline => return Err(e),
                Err(_) => tokio::time::sleep(POLL).await,
            }
        };
        loop {
            if let Ok(s) = self.status(i).await {
                let follows = s
                    .raft
                    .as_ref()
                    .is_some_and(|r| r.leader_node_id == Some(leader as u64));
                if follows && applied(&s).is_some_and(|a| a >= target) {
                    return Ok(());
                }
            }
            if Instant::now() > deadline {
                bail!("n{i} did not apply up to index {target} within {timeout:?}");
            }
            tokio::time::sleep(POLL).await;
        }
    }
}

impl Drop for BrokerGroup {
    fn drop(&mut self) {
        for replica in self.replicas.iter_mut().flatten() {
            // SIGKILL now; tokio reaps the process in the background.
            let _ = replica.child.start_kill();
        }
        if self.settings.keep_data {
            if let Some(dir) = self.dir.take() {
                eprintln!(
                    "kept the group's stores and logs in {}",
                    dir.keep().display()
                );
            }
        }
    }
}
