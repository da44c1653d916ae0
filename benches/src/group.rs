//! A fresh broker group of real `mqbroker` processes: free loopback ports, a temp directory
//! for stores and logs, `kill -9` and restart of one member, and waits on what the members
//! report (`BrokerStatus`) instead of sleeps.
//!
//! The group is one of [`Layout`]: the dledger layout's three Raft replicas (no nameserver),
//! or a classic layout's `broker-a` master and slave with a nameserver of their own, which
//! hosts the group's witness voter (its store in the temp directory too). Members are indexed
//! in [`Layout::member_files`] order.
//!
//! Every process is this process's child and dies with it: SIGKILL when the group is dropped
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
use crate::layout::{Layout, MemberConf};
use crate::route::{connect, Client};

/// How long a process may take to print its boot line.
const BOOT_TIMEOUT: Duration = Duration::from_secs(30);
/// Deadline of one `BrokerStatus` call.
const STATUS_TIMEOUT: Duration = Duration::from_millis(500);
/// Pace of the polls in the waits below.
const POLL: Duration = Duration::from_millis(20);
/// Both `mqbroker` and `mqnamesrv` print a line with this once they listen.
const BOOT_SUCCESS: &str = "boot success";

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

/// `brokerRole` of every dledger replica.
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

/// How to start the group.
#[derive(Clone, Debug)]
pub struct GroupSettings {
    pub layout: Layout,
    /// The `mqbroker` binary under test.
    pub mqbroker: PathBuf,
    /// The `mqnamesrv` binary; classic layouts only.
    pub mqnamesrv: Option<PathBuf>,
    /// The members, from the layout's property files.
    pub members: Vec<MemberConf>,
    pub flush: Flush,
    /// `brokerRole` of every dledger replica; `None` for a classic layout, whose files say.
    pub role: Option<Role>,
    /// More `KEY=VALUE` overrides for every broker, applied last.
    pub extra: Vec<String>,
    /// Leave the stores and logs on disk (their path is printed).
    pub keep_data: bool,
}

impl GroupSettings {
    /// The settings as `key=value` words for a RESULT line: `flush=.. role=.. layout=..`
    /// (a classic group's role is its master's).
    pub fn describe(&self) -> String {
        let role = match self.role {
            Some(r) => r.property().to_string(),
            None => self
                .members
                .first()
                .and_then(|m| m.role.clone())
                .unwrap_or_else(|| "?".to_string()),
        };
        format!(
            "flush={} role={role} layout={}",
            self.flush.property(),
            self.layout.name()
        )
    }
}

/// One broker of the group.
struct Member {
    conf: MemberConf,
    client_port: u16,
    /// The Raft port: its `dLegerPeers` entry (dledger), `haListenPort` (classic).
    raft_port: u16,
    /// `None` while it is killed.
    process: Option<Child>,
    /// A lazy connection for status polls; it reconnects after a restart.
    status: Client,
}

/// The nameserver of a classic group; it runs as long as the group.
struct NameServer {
    port: u16,
    process: Child,
}

/// A running group. Dropping it kills every process.
pub struct BrokerGroup {
    settings: GroupSettings,
    /// Stores (one directory per member), logs (`<member>.log`, `namesrv.log`) and the
    /// witness store (`witness/`); removed on drop unless `keep_data`.
    dir: Option<tempfile::TempDir>,
    members: Vec<Member>,
    namesrv: Option<NameServer>,
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

/// Starts `program` with `args`, its stderr appended to `log`, and waits until it prints its
/// boot line; `what` names it in errors. Its stdout keeps being drained.
async fn spawn_process(program: &Path, args: &[String], log: &Path, what: &str) -> Result<Child> {
    let log_file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .with_context(|| format!("cannot open {}", log.display()))?;
    let mut cmd = Command::new(program);
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::from(log_file))
        .kill_on_drop(true);
    die_with_parent(&mut cmd);
    let mut child = cmd
        .spawn()
        .with_context(|| format!("cannot start {}", program.display()))?;
    let stdout = child
        .stdout
        .take()
        .ok_or_else(|| anyhow!("no stdout pipe to {what}"))?;
    let mut lines = BufReader::new(stdout).lines();
    let first = tokio::time::timeout(BOOT_TIMEOUT, lines.next_line()).await;
    match first {
        Ok(Ok(Some(line))) if line.contains(BOOT_SUCCESS) => {}
        other => {
            let _ = child.start_kill();
            let seen = match other {
                Ok(Ok(Some(line))) => format!("printed {line:?}"),
                Ok(Ok(None)) => "exited".to_string(),
                Ok(Err(e)) => format!("stdout failed: {e}"),
                Err(_) => format!("printed nothing in {BOOT_TIMEOUT:?}"),
            };
            bail!("{what} did not boot ({seen}); its log: {}", log.display());
        }
    }
    // Keep draining stdout so the process never blocks on (or fails writing to) the pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    Ok(child)
}

/// What the group looked like once a restarted member was back.
pub struct Settled {
    /// The member that leads now.
    pub leader: usize,
    /// When the restarted member is the preferred one (a classic master): from its restart
    /// until it led again, if it did.
    pub preferred_back_after: Option<Duration>,
    /// Messages the restarted member removed from its log because the leader lacked them
    /// (its uncommitted tail as a deposed leader: acked sends that ASYNC_MASTER lost).
    pub dropped_messages: u64,
}

impl BrokerGroup {
    /// Starts the group (a classic layout's nameserver first) and waits until each process
    /// prints its boot line.
    pub async fn start(settings: GroupSettings) -> Result<BrokerGroup> {
        let dir = tempfile::Builder::new()
            .prefix("e2e-bench-")
            .tempdir()
            .context("cannot create a temp dir for the group")?;
        let n = settings.members.len();
        let classic = settings.layout.is_classic();
        let ports = free_ports(2 * n + usize::from(classic))?;
        let members = settings
            .members
            .iter()
            .enumerate()
            .map(|(i, conf)| {
                Ok(Member {
                    conf: conf.clone(),
                    client_port: ports[i],
                    raft_port: ports[n + i],
                    process: None,
                    status: connect(&format!("127.0.0.1:{}", ports[i]))?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let mut group = BrokerGroup {
            settings,
            dir: Some(dir),
            members,
            namesrv: None,
        };
        if classic {
            group.namesrv = Some(group.spawn_namesrv(ports[2 * n]).await?);
        }
        for i in 0..n {
            let child = group.spawn(i).await?;
            group.members[i].process = Some(child);
        }
        Ok(group)
    }

    fn dir(&self) -> &Path {
        self.dir.as_ref().map_or(Path::new("."), |d| d.path())
    }

    /// Member `i`'s name as progress lines, logs and stores show it: its file's name
    /// ("broker-a-s"), shortened to "n0" .. "n2" for the dledger replicas, as always.
    pub fn name(&self, i: usize) -> String {
        let name = &self.members[i].conf.name;
        // The dledger replicas have always been n0..n2 in these lines.
        name.strip_prefix("broker-")
            .filter(|_| !self.settings.layout.is_classic())
            .unwrap_or(name)
            .to_string()
    }

    /// Client address ("127.0.0.1:port") of member `i`.
    pub fn client_addr(&self, i: usize) -> String {
        format!("127.0.0.1:{}", self.members[i].client_port)
    }

    /// Client addresses of every member, by index.
    pub fn client_addrs(&self) -> Vec<String> {
        (0..self.members.len())
            .map(|i| self.client_addr(i))
            .collect()
    }

    /// The member that takes leadership back after a restart: a classic group's master.
    pub fn preferred(&self) -> Option<usize> {
        if !self.settings.layout.is_classic() {
            return None;
        }
        self.members.iter().position(|m| m.conf.node_id == 0)
    }

    fn index_of_node(&self, node_id: u64) -> Option<usize> {
        self.members.iter().position(|m| m.conf.node_id == node_id)
    }

    async fn spawn_namesrv(&self, port: u16) -> Result<NameServer> {
        let program = self
            .settings
            .mqnamesrv
            .as_ref()
            .ok_or_else(|| anyhow!("a classic layout needs mqnamesrv"))?;
        let args = [
            "--set".to_string(),
            format!("listenPort={port}"),
            "--set".to_string(),
            // Never the default under the home directory: the witness's votes and log ids
            // belong to this group only.
            format!("witnessStorePath={}", self.dir().join("witness").display()),
        ];
        let log = self.dir().join("namesrv.log");
        let process = spawn_process(program, &args, &log, "mqnamesrv").await?;
        Ok(NameServer { port, process })
    }

    async fn spawn(&self, i: usize) -> Result<Child> {
        let s = &self.settings;
        let m = &self.members[i];
        let mut overrides = vec![
            format!(
                "storePathRootDir={}",
                self.dir().join(self.name(i)).display()
            ),
            format!("listenPort={}", m.client_port),
        ];
        match &self.namesrv {
            None => {
                let peers = self
                    .members
                    .iter()
                    .enumerate()
                    .map(|(j, p)| format!("n{j}-127.0.0.1:{}", p.raft_port))
                    .collect::<Vec<_>>()
                    .join(";");
                overrides.push(format!("dLegerPeers={peers}"));
                overrides.push("namesrvAddr=".to_string());
            }
            Some(ns) => {
                overrides.push(format!("haListenPort={}", m.raft_port));
                overrides.push(format!("namesrvAddr=127.0.0.1:{}", ns.port));
                // Routes (and so the slave's view of its master) follow within 200 ms.
                overrides.push("registerNameServerPeriod=200".to_string());
            }
        }
        overrides.push(format!("flushDiskType={}", s.flush.property()));
        if let Some(role) = s.role {
            overrides.push(format!("brokerRole={}", role.property()));
        }
        overrides.extend(s.extra.iter().cloned());

        let mut args = vec!["-c".to_string(), m.conf.file.display().to_string()];
        for o in overrides {
            args.push("--set".to_string());
            args.push(o);
        }
        let log = self.dir().join(format!("{}.log", self.name(i)));
        spawn_process(
            &s.mqbroker,
            &args,
            &log,
            &format!("mqbroker {}", self.name(i)),
        )
        .await
    }

    /// `kill -9` of member `i`, by its PID; returns the instant just before the signal.
    /// Returns once the process is reaped.
    pub async fn kill9(&mut self, i: usize) -> Result<Instant> {
        let name = self.name(i);
        let mut child = self.members[i]
            .process
            .take()
            .ok_or_else(|| anyhow!("{name} is not running"))?;
        let pid = child.id().ok_or_else(|| anyhow!("{name} already exited"))?;
        let pid = libc::pid_t::try_from(pid).context("pid out of range")?;
        let at = Instant::now();
        // SAFETY: plain syscall; `pid` is our own child, not yet reaped, so it is not reused.
        if unsafe { libc::kill(pid, libc::SIGKILL) } == -1 {
            bail!(
                "kill -9 {pid} ({name}): {}",
                std::io::Error::last_os_error()
            );
        }
        child
            .wait()
            .await
            .with_context(|| format!("waiting for {name} (pid {pid}) to die"))?;
        Ok(at)
    }

    /// Starts member `i` again on its ports and store.
    pub async fn restart(&mut self, i: usize) -> Result<()> {
        if self.members[i].process.is_some() {
            bail!("{} is still running", self.name(i));
        }
        let child = self.spawn(i).await?;
        self.members[i].process = Some(child);
        Ok(())
    }

    /// The running members (labelled by name, `(leader)` for `leader`), the nameserver that
    /// hosts a classic group's witness, and this process (`client`), for CPU accounting.
    pub fn tracked(&self, leader: usize) -> Vec<Tracked> {
        let mut tracked: Vec<Tracked> = self
            .members
            .iter()
            .enumerate()
            .filter_map(|(i, m)| {
                let pid = m.process.as_ref()?.id()?;
                let role = if i == leader { "(leader)" } else { "" };
                Some(Tracked {
                    label: format!("{}{role}", self.name(i)),
                    pid,
                })
            })
            .collect();
        if let Some(pid) = self.namesrv.as_ref().and_then(|ns| ns.process.id()) {
            tracked.push(Tracked {
                label: "namesrv(witness)".to_string(),
                pid,
            });
        }
        tracked.push(Tracked {
            label: "client".to_string(),
            pid: std::process::id(),
        });
        tracked
    }

    fn live(&self) -> Vec<usize> {
        (0..self.members.len())
            .filter(|&i| self.members[i].process.is_some())
            .collect()
    }

    /// `BrokerStatus` of member `i`.
    pub async fn status(&self, i: usize) -> Result<pb::BrokerStatusResponse> {
        let mut client = self.members[i].status.clone();
        let name = self.name(i);
        let resp = tokio::time::timeout(
            STATUS_TIMEOUT,
            client.broker_status(pb::BrokerStatusRequest {}),
        )
        .await
        .map_err(|_| anyhow!("BrokerStatus of {name}: no answer in {STATUS_TIMEOUT:?}"))?
        .map_err(|e| anyhow!("BrokerStatus of {name}: {}", e.message()))?;
        Ok(resp.into_inner())
    }

    /// The leader every live member agrees on, once it leads by its own account and has
    /// announced its client address (so NOT_LEADER hints point at it).
    pub async fn leader(&self, timeout: Duration) -> Result<usize> {
        self.wait_until("a leader agreed by the live members", timeout, || {
            self.agreed_leader()
        })
        .await
    }

    /// [`BrokerGroup::leader`], and in a classic group also every live slave an in-sync voter
    /// in the leader's view, and the witness a voter: the group a benchmark should measure.
    pub async fn ready(&self, timeout: Duration) -> Result<usize> {
        self.wait_until(
            "a leader with every live member in sync",
            timeout,
            || async {
                let (leader, status) = self.agreed_leader_status().await?;
                self.in_sync(leader, &status).then_some(leader)
            },
        )
        .await
    }

    /// Polls `check` until it gives `Some`; after `timeout` an error naming `what`.
    async fn wait_until<T, F, Fut>(&self, what: &str, timeout: Duration, mut check: F) -> Result<T>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Option<T>>,
    {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(v) = check().await {
                return Ok(v);
            }
            if Instant::now() > deadline {
                bail!(
                    "no {what} within {timeout:?}; logs in {}",
                    self.dir().display()
                );
            }
            tokio::time::sleep(POLL).await;
        }
    }

    async fn agreed_leader(&self) -> Option<usize> {
        self.agreed_leader_status().await.map(|(l, _)| l)
    }

    /// The agreed leader and its status.
    async fn agreed_leader_status(&self) -> Option<(usize, pb::BrokerStatusResponse)> {
        let live = self.live();
        let mut agreed = None;
        for &i in &live {
            let raft = self.status(i).await.ok()?.raft?;
            let leader = self.index_of_node(raft.leader_node_id?)?;
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
        (status.raft_role() == RaftRole::Leader && announced).then_some((leader, status))
    }

    /// Whether `leader`'s `status` shows every other live member as an in-sync voter and the
    /// witness as a voter (classic); always true for a dledger group, where a quorum decides.
    fn in_sync(&self, leader: usize, status: &pb::BrokerStatusResponse) -> bool {
        if !self.settings.layout.is_classic() {
            return true;
        }
        let slaves_in = self.live().into_iter().filter(|&i| i != leader).all(|i| {
            let id = self.members[i].conf.node_id;
            status
                .replicas
                .iter()
                .any(|r| r.node_id == id && r.voter && r.in_sync)
        });
        let witness_votes = status.replicas.iter().any(|r| r.witness && r.voter);
        slaves_in && witness_votes
    }

    /// After member `restarted` was started again: waits until a leader is agreed, the
    /// group is in sync ([`BrokerGroup::ready`]), `restarted` leads or has applied
    /// everything the leader had applied when the wait began (a member reports no commit
    /// index; the leader applies what it commits, so this is everything acknowledged before
    /// the wait), and the preferred member leads, unless it has not within `handback` of
    /// the restart (then whichever leads will do).
    pub async fn settle_after_restart(
        &self,
        restarted: usize,
        restarted_at: Instant,
        handback: Duration,
        timeout: Duration,
    ) -> Result<Settled> {
        let applied = |s: &pb::BrokerStatusResponse| {
            s.raft
                .as_ref()
                .and_then(|r| r.applied.as_ref())
                .map(|a| a.index)
        };
        let preferred = self.preferred();
        let deadline = Instant::now() + timeout;
        let mut target = None;
        let mut preferred_back_after = None;
        let leader = loop {
            if let Some((leader, status)) = self.agreed_leader_status().await {
                let target = *target.get_or_insert(applied(&status).unwrap_or(0));
                if leader == restarted
                    && Some(leader) == preferred
                    && preferred_back_after.is_none()
                {
                    preferred_back_after = Some(restarted_at.elapsed());
                }
                let caught_up = leader == restarted
                    || self.status(restarted).await.is_ok_and(|s| {
                        let id = self.members[leader].conf.node_id;
                        let follows = s
                            .raft
                            .as_ref()
                            .is_some_and(|r| r.leader_node_id == Some(id));
                        follows && applied(&s).is_some_and(|a| a >= target)
                    });
                let handed_back =
                    preferred.is_none_or(|p| p == leader) || restarted_at.elapsed() > handback;
                if caught_up && handed_back && self.in_sync(leader, &status) {
                    break leader;
                }
            }
            if Instant::now() > deadline {
                bail!(
                    "{} not back in the group within {timeout:?} (target applied index \
                     {target:?}); logs in {}",
                    self.name(restarted),
                    self.dir().display()
                );
            }
            tokio::time::sleep(POLL).await;
        };
        let dropped_messages = self
            .status(restarted)
            .await
            .map_or(0, |s| s.dropped_messages);
        Ok(Settled {
            leader,
            preferred_back_after,
            dropped_messages,
        })
    }
}

impl Drop for BrokerGroup {
    fn drop(&mut self) {
        // SIGKILL now; tokio reaps the processes in the background.
        for m in &mut self.members {
            if let Some(child) = m.process.as_mut() {
                let _ = child.start_kill();
            }
        }
        if let Some(ns) = self.namesrv.as_mut() {
            let _ = ns.process.start_kill();
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
