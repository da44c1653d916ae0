//! The harness of the system tests: the workspace's binaries, `mqnamesrv` and `mqbroker`
//! processes on free loopback ports in a temporary directory, a [`System`] of nameservers
//! and one 3-replica dledger group registered with them, and waits on observable state.
//!
//! Every process is started with its stderr (and any stdout after its boot line) in a log
//! file under the system's directory, and is killed by PID (SIGKILL) when its guard drops.
//! When a test fails, [`System`]'s drop shows the end of every log and keeps the directory.

#![allow(dead_code)]

pub mod acked;
pub mod classic;

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::{mpsc, OnceLock};
use std::time::{Duration, Instant};

use proto::v1::{self as pb};
use proto::{BrokerServiceClient, NameServiceClient};
use tonic::transport::Channel;

/// brokerName of the group every test runs (conf/dledger).
pub const GROUP: &str = "RaftNode00";
/// brokerClusterName of that group.
pub const CLUSTER: &str = "RaftCluster";
/// How long a process may take to print its boot line (a cold debug binary on a busy
/// machine takes a few seconds).
const BOOT_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a tool run may take before the test gives up on it.
const TOOL_TIMEOUT: Duration = Duration::from_secs(60);

/// Path of one of the workspace's binaries (`mqbroker`, `mqnamesrv`, `mqadmin`, `mqbench`).
///
/// Cargo builds a package's tests without the binaries of other packages, so they are
/// looked up beside this test's executable (`target/debug/deps/t.. -> target/debug/NAME`);
/// if any is missing, all four are built once with the `cargo` that runs the tests.
pub fn bin(name: &str) -> PathBuf {
    static BUILT: OnceLock<()> = OnceLock::new();
    let path = target_dir().join(name);
    if !path.exists() {
        BUILT.get_or_init(build_binaries);
    }
    assert!(
        path.exists(),
        "{} is missing after `cargo build`",
        path.display()
    );
    path
}

/// `target/<profile>`: the parent of the `deps` directory holding this test executable.
fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("path of the test executable");
    let dir = exe.parent().expect("directory of the test executable");
    if dir.file_name().is_some_and(|n| n == "deps") {
        dir.parent().expect("target directory").to_path_buf()
    } else {
        dir.to_path_buf()
    }
}

fn build_binaries() {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let status = Command::new(cargo)
        .current_dir(workspace_root())
        .args(["build", "-p", "broker", "--bin", "mqbroker"])
        .args(["-p", "nameserver", "--bin", "mqnamesrv"])
        .args(["-p", "client", "--bin", "mqadmin", "--bin", "mqbench"])
        .status()
        .expect("run cargo build");
    assert!(status.success(), "cargo build of the binaries failed");
}

pub use raftmq_testkit::{free_port, wait_for, workspace_root};

/// The longest interval between consecutive instants (sorted here), and where it started.
pub fn longest_gap(mut instants: Vec<Instant>) -> (Duration, Option<Instant>) {
    instants.sort();
    instants
        .windows(2)
        .map(|w| (w[1] - w[0], Some(w[0])))
        .max_by_key(|(gap, _)| *gap)
        .unwrap_or((Duration::ZERO, None))
}

/// A run id for `client::bench` message bodies, telling this run's messages from any other.
pub fn run_id() -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    nanos ^ (u64::from(std::process::id()) << 32)
}

/// One child process, killed (SIGKILL, by PID) when dropped.
pub struct Process {
    /// What it is, for messages ("mqbroker n1").
    name: String,
    child: Option<Child>,
    /// Where its stderr (and stdout after the boot line) goes.
    pub log: PathBuf,
}

impl Process {
    /// Starts `cmd` with its output in `log` and waits for a stdout line containing
    /// `boot_marker`; returns the process and that line.
    pub fn spawn(name: &str, mut cmd: Command, log: PathBuf, boot_marker: &str) -> (Self, String) {
        let stderr = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .expect("open log file");
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(stderr));
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
        let stdout = child.stdout.take().expect("stdout pipe");
        let mut process = Process {
            name: name.to_owned(),
            child: Some(child),
            log,
        };
        // The pipe is drained for the process's whole life (into the log), so a process
        // that prints more never blocks on a full pipe or dies of a closed one.
        let (boot_tx, boot_rx) = mpsc::channel();
        let marker = boot_marker.to_owned();
        let log_path = process.log.clone();
        std::thread::spawn(move || {
            let mut log = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(log_path)
                .ok();
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if line.contains(&marker) {
                    let _ = boot_tx.send(line.clone());
                }
                if let Some(log) = log.as_mut() {
                    let _ = writeln!(log, "[stdout] {line}");
                }
            }
        });
        match boot_rx.recv_timeout(BOOT_TIMEOUT) {
            Ok(line) => (process, line),
            Err(_) => {
                process.kill9();
                panic!(
                    "{name} did not print {boot_marker:?} within {BOOT_TIMEOUT:?}; its log:\n{}",
                    tail(&process.log, 30)
                );
            }
        }
    }

    /// A process that does not run (a placeholder until one is spawned).
    pub fn stopped() -> Self {
        Process {
            name: String::new(),
            child: None,
            log: PathBuf::new(),
        }
    }

    /// Its PID while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Whether it was started and not killed or stopped since.
    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// Sends `signal` to it while it runs (SIGSTOP and SIGCONT freeze and thaw it: its
    /// sockets stay open, nothing answers).
    pub fn signal(&self, signal: libc::c_int) {
        if let Some(pid) = self.pid() {
            send_signal(libc::pid_t::try_from(pid).expect("pid fits pid_t"), signal);
        }
    }

    /// `kill -9` and reap.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM, then waits up to 20 s for the exit (SIGKILL after that).
    pub fn terminate(&mut self) -> Option<ExitStatus> {
        let mut child = self.child.take()?;
        let pid = libc::pid_t::try_from(child.id()).expect("pid fits pid_t");
        send_signal(pid, libc::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                return Some(status);
            }
            if Instant::now() > deadline {
                eprintln!("{} ignored SIGTERM for 20 s; killing it", self.name);
                let _ = child.kill();
                return child.wait().ok();
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

fn send_signal(pid: libc::pid_t, signal: libc::c_int) {
    // SAFETY: kill(2) has no memory effects; `pid` is a child we spawned and have not
    // reaped yet, so it cannot name another process.
    unsafe {
        libc::kill(pid, signal);
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// The last `n` lines of a log file.
pub fn tail(path: &Path, n: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// One `mqnamesrv` process.
pub struct NameServer {
    /// "127.0.0.1:PORT".
    pub addr: String,
    port: u16,
    log: PathBuf,
    process: Process,
}

impl NameServer {
    /// Starts a nameserver listening on `port` with its log at `log`.
    pub fn start(port: u16, log: PathBuf) -> Self {
        let process = Self::spawn(port, &log);
        NameServer {
            addr: format!("127.0.0.1:{port}"),
            port,
            log,
            process,
        }
    }

    fn spawn(port: u16, log: &Path) -> Process {
        let mut cmd = Command::new(bin("mqnamesrv"));
        cmd.arg("--set").arg(format!("listenPort={port}"));
        // The witnesses it hosts keep their stores beside its log, across restarts.
        let witness_dir = log.with_extension("witness");
        cmd.arg("--set")
            .arg(format!("witnessStorePath={}", witness_dir.display()));
        let (process, line) = Process::spawn(
            &format!("mqnamesrv :{port}"),
            cmd,
            log.to_path_buf(),
            nameserver::BOOT_SUCCESS,
        );
        assert!(
            line.ends_with(&format!(":{port}")),
            "mqnamesrv booted on another port: {line}"
        );
        process
    }

    /// Graceful stop (SIGTERM); returns the exit status.
    pub fn stop(&mut self) -> Option<ExitStatus> {
        self.process.terminate()
    }

    /// `kill -9`.
    pub fn kill9(&mut self) {
        self.process.kill9();
    }

    /// Starts it again on the same port (empty tables: brokers' heartbeats refill them).
    pub fn restart(&mut self) {
        assert!(
            !self.process.is_running(),
            "restart of a running nameserver"
        );
        self.process = Self::spawn(self.port, &self.log);
    }

    /// The group as this nameserver records it, if it knows it.
    pub async fn group_route(&self) -> Option<pb::GroupRoute> {
        self.route_of(GROUP).await
    }

    /// Group `name` as this nameserver records it, if it knows it.
    pub async fn route_of(&self, name: &str) -> Option<pb::GroupRoute> {
        let channel = Channel::from_shared(format!("http://{}", self.addr))
            .ok()?
            .connect_timeout(Duration::from_secs(1))
            .connect_lazy();
        let info = NameServiceClient::new(channel)
            .get_cluster_info(pb::GetClusterInfoRequest::default())
            .await
            .ok()?
            .into_inner();
        info.clusters
            .into_iter()
            .flat_map(|c| c.groups)
            .find(|g| g.broker_name == name)
    }

    /// SIGSTOP / SIGCONT.
    pub fn signal(&self, signal: libc::c_int) {
        self.process.signal(signal);
    }

    /// Whether it runs.
    pub fn is_running(&self) -> bool {
        self.process.is_running()
    }
}

/// Nameservers and one dledger group of three `mqbroker` processes registered with all of
/// them, in one temporary directory.
pub struct System {
    dir: tempfile::TempDir,
    pub namesrvs: Vec<NameServer>,
    pub brokers: Vec<Process>,
    /// Client address of each replica ("127.0.0.1:PORT").
    pub broker_addrs: Vec<String>,
    /// `dLegerPeers` of the group.
    peers: String,
    /// `--set key=value` every replica gets beyond the harness's own.
    extra: Vec<String>,
}

impl System {
    /// Starts `namesrv_count` nameservers and the group (registering every 200 ms), and
    /// waits until every nameserver records the group's three members and its leader.
    pub async fn start(namesrv_count: usize) -> System {
        Self::start_with(namesrv_count, &[]).await
    }

    /// [`System::start`] with `extra` settings (`key=value`) for every replica.
    pub async fn start_with(namesrv_count: usize, extra: &[&str]) -> System {
        let dir = tempfile::Builder::new()
            .prefix("raftmq-system-")
            .tempdir()
            .expect("temp dir");
        let namesrvs: Vec<NameServer> = (0..namesrv_count)
            .map(|i| NameServer::start(free_port(), dir.path().join(format!("namesrv{i}.log"))))
            .collect();
        let client_ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
        let raft_ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
        let peers = (0..3)
            .map(|j| format!("n{j}-127.0.0.1:{}", raft_ports[j]))
            .collect::<Vec<_>>()
            .join(";");
        let mut system = System {
            broker_addrs: client_ports
                .iter()
                .map(|p| format!("127.0.0.1:{p}"))
                .collect(),
            dir,
            namesrvs,
            brokers: Vec::new(),
            peers,
            extra: extra.iter().map(|s| s.to_string()).collect(),
        };
        for i in 0..3 {
            let process = system.spawn_broker(i);
            system.brokers.push(process);
        }
        let leader = system.leader().await;
        for ns in 0..system.namesrvs.len() {
            system.wait_registered(ns, leader).await;
        }
        system
    }

    /// Starts replica `i` (on its store, ports and log) and waits for its boot line.
    fn spawn_broker(&self, i: usize) -> Process {
        let conf = workspace_root().join(format!("conf/dledger/broker-n{i}.properties"));
        let mut cmd = Command::new(bin("mqbroker"));
        cmd.arg("-c").arg(conf);
        let port = self.broker_addrs[i].rsplit(':').next().unwrap_or_default();
        let sets = [
            format!("storePathRootDir={}", self.store_root(i).display()),
            format!("listenPort={port}"),
            format!("dLegerPeers={}", self.peers),
            format!("namesrvAddr={}", self.namesrv_list()),
            "registerNameServerPeriod=200".to_owned(),
            "mappedFileSizeCommitLog=4194304".to_owned(),
        ];
        for set in sets.iter().chain(&self.extra) {
            cmd.arg("--set").arg(set);
        }
        let (process, _) = Process::spawn(
            &format!("mqbroker n{i}"),
            cmd,
            self.dir.path().join(format!("n{i}.log")),
            "boot success",
        );
        process
    }

    /// `storePathRootDir` of replica `i`.
    pub fn store_root(&self, i: usize) -> PathBuf {
        self.dir.path().join(format!("n{i}"))
    }

    /// The commitlog (Raft log) directory of replica `i`.
    pub fn commitlog_dir(&self, i: usize) -> PathBuf {
        self.store_root(i).join("commitlog")
    }

    /// Starts replica `i` again (it must not be running).
    pub fn restart_broker(&mut self, i: usize) {
        assert!(!self.brokers[i].is_running(), "replica {i} still runs");
        self.brokers[i] = self.spawn_broker(i);
    }

    /// The nameserver list "a;b" clients are given.
    pub fn namesrv_list(&self) -> String {
        self.namesrvs
            .iter()
            .map(|n| n.addr.as_str())
            .collect::<Vec<_>>()
            .join(";")
    }

    /// The system's temporary directory.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Waits for a leader every live replica agrees on; returns its index.
    pub async fn leader(&self) -> usize {
        let live: Vec<usize> = (0..3).filter(|&i| self.brokers[i].is_running()).collect();
        wait_for(
            "a leader all live replicas agree on",
            Duration::from_secs(30),
            || async {
                let mut seen: Option<String> = None;
                for &i in &live {
                    let status = broker_status(&self.broker_addrs[i]).await?;
                    let leader = status.raft?.leader_addr;
                    if leader.is_empty() || seen.as_ref().is_some_and(|s| *s != leader) {
                        return None;
                    }
                    seen = Some(leader);
                }
                let leader = seen?;
                live.iter()
                    .copied()
                    .find(|&i| self.broker_addrs[i] == leader)
            },
        )
        .await
    }

    /// Waits until nameserver `ns` records replica `leader` as the group's leader and every
    /// live replica as a member; returns the route.
    pub async fn wait_registered(&self, ns: usize, leader: usize) -> pb::GroupRoute {
        let live = self.brokers.iter().filter(|b| b.is_running()).count();
        let namesrv = &self.namesrvs[ns];
        let want = &self.broker_addrs[leader];
        wait_for(
            &format!("nameserver {} to record leader {want}", namesrv.addr),
            Duration::from_secs(30),
            || async {
                let g = namesrv.group_route().await?;
                (g.leader_addr == *want && g.members.len() == live).then_some(g)
            },
        )
        .await
    }

    /// `kill -9` of replica `i`.
    pub fn kill_broker(&mut self, i: usize) {
        self.brokers[i].kill9();
    }

    /// SIGTERM to every replica, the leader last: stopping the leader first would have the
    /// others elect a new one, whose first entries only some of them would get.
    pub async fn terminate_all(&mut self) {
        let leader = self.leader().await;
        for i in (0..3).filter(|&i| i != leader).chain([leader]) {
            self.brokers[i].terminate();
        }
    }

    /// SIGSTOP of replica `i`: it stays connected but answers nothing.
    pub fn pause_broker(&self, i: usize) {
        self.brokers[i].signal(libc::SIGSTOP);
    }

    /// SIGCONT of replica `i`.
    pub fn resume_broker(&self, i: usize) {
        self.brokers[i].signal(libc::SIGCONT);
    }

    /// Waits until every running replica has applied the same entry and shows the same state
    /// digest there; returns that entry's index and the digest.
    pub async fn settled(&self) -> (u64, String) {
        let live: Vec<usize> = (0..3).filter(|&i| self.brokers[i].is_running()).collect();
        raftmq_testkit::wait_until_equal(
            "every live replica at the same applied index with the same digest",
            Duration::from_secs(30),
            &live,
            |i| async move {
                let digest = broker_status(&self.broker_addrs[i]).await?.state_digest?;
                Some((digest.applied?.index, digest.digest))
            },
        )
        .await
    }
}

impl Drop for System {
    /// On a failing test: kill everything, show the end of every log, keep the directory.
    fn drop(&mut self) {
        if !std::thread::panicking() {
            return;
        }
        for b in &mut self.brokers {
            b.kill9();
        }
        for n in &mut self.namesrvs {
            n.kill9();
        }
        let mut logs: Vec<PathBuf> = std::fs::read_dir(self.dir.path())
            .map(|d| d.flatten().map(|e| e.path()).collect())
            .unwrap_or_default();
        logs.retain(|p| p.extension().is_some_and(|e| e == "log"));
        logs.sort();
        for log in &logs {
            let text = std::fs::read_to_string(log).unwrap_or_default();
            for line in text.lines().filter(|l| l.contains("panicked at")).take(3) {
                eprintln!("{}: {line}", log.display());
            }
            eprintln!("---- {} (last 30 lines) ----", log.display());
            eprintln!("{}", tail(log, 30));
        }
        if let Ok(spare) = tempfile::tempdir() {
            let kept = std::mem::replace(&mut self.dir, spare).keep();
            eprintln!("kept the system's stores and logs in {}", kept.display());
        }
    }
}

/// `BrokerStatus` of the broker at `addr`, if it answers within a second.
pub async fn broker_status(addr: &str) -> Option<pb::BrokerStatusResponse> {
    let channel = Channel::from_shared(format!("http://{addr}"))
        .ok()?
        .connect_timeout(Duration::from_secs(1))
        .connect_lazy();
    let mut client = BrokerServiceClient::new(channel);
    let call = client.broker_status(pb::BrokerStatusRequest {});
    let reply = tokio::time::timeout(Duration::from_secs(1), call)
        .await
        .ok()?
        .ok()?;
    Some(reply.into_inner())
}

/// Creates `topic` with `queues` read and write queues on the group, through its leader,
/// and waits until the client's nameservers route it.
pub async fn create_topic(admin: &client::Admin, topic: &str, queues: u32) {
    create_topic_on(admin, topic, queues, 1).await;
}

/// Creates `topic` with `queues` read and write queues on each of the `groups` broker groups,
/// and waits until the client's nameservers route all of them.
pub async fn create_topic_on(admin: &client::Admin, topic: &str, queues: u32, groups: u32) {
    let config = pb::TopicConfig {
        topic_name: topic.to_owned(),
        read_queue_nums: queues,
        write_queue_nums: queues,
        perm: proto::PERM_READ | proto::PERM_WRITE,
        order: false,
    };
    admin
        .create_or_update_topic(config, &client::admin::TopicTarget::AllGroups)
        .await
        .unwrap_or_else(|e| panic!("creating topic {topic}: {e}"));
    wait_for(
        &format!("the nameservers to route topic {topic}"),
        Duration::from_secs(20),
        || async {
            let route = admin.topic_route(topic).await.ok()?;
            let queues_routed: u32 = route
                .topic?
                .queue_datas
                .iter()
                .map(|q| q.write_queue_nums)
                .sum();
            (queues_routed == queues * groups).then_some(())
        },
    )
    .await;
}

/// What a tool run printed and how it exited.
pub struct ToolRun {
    /// Exit code (`None`: killed by a signal).
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl ToolRun {
    /// Stdout, after checking the run succeeded.
    pub fn ok(&self) -> &str {
        assert_eq!(
            self.code,
            Some(0),
            "exit {:?}; stderr: {}; stdout: {}",
            self.code,
            self.stderr,
            self.stdout
        );
        &self.stdout
    }

    /// Stdout parsed as JSON, after checking the run succeeded.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(self.ok())
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {}", self.stdout))
    }

    /// The one-line error of a failed run, after checking the exit code and that stderr
    /// is exactly one line starting with `TOOL: `.
    pub fn one_line_error(&self, tool: &str, code: i32) -> &str {
        assert_eq!(
            self.code,
            Some(code),
            "expected exit {code}; stderr: {}; stdout: {}",
            self.stderr,
            self.stdout
        );
        let stderr = self.stderr.trim_end();
        assert_eq!(
            stderr.lines().count(),
            1,
            "the error is not one line: {stderr:?}"
        );
        assert!(
            stderr.starts_with(&format!("{tool}: ")),
            "the error does not start with {tool}: {stderr:?}"
        );
        stderr
    }
}

/// Runs tool `name` (`mqadmin`, `mqbench`) with `args`, without `NAMESRV_ADDR` or
/// `RUST_LOG` from the environment; killed by PID if it outlives [`TOOL_TIMEOUT`].
pub async fn run_tool(name: &str, args: &[&str]) -> ToolRun {
    let child = tokio::process::Command::new(bin(name))
        .args(args)
        .env_remove("NAMESRV_ADDR")
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
    let output: Output = tokio::time::timeout(TOOL_TIMEOUT, child.wait_with_output())
        .await
        .unwrap_or_else(|_| panic!("{name} {args:?} ran longer than {TOOL_TIMEOUT:?}"))
        .expect("wait for the tool");
    ToolRun {
        code: output.status.code(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// Opens the stopped replicas' commitlogs (`dirs`) and checks they hold the same entries,
/// index by index (term, kind and body), up to the end of the longest: every replica has
/// caught up, so none may be shorter, and no two may differ anywhere. Returns the last index.
pub fn assert_logs_identical(dirs: &[PathBuf]) -> u64 {
    let stores: Vec<raft_log::LogStore> = dirs
        .iter()
        .map(|d| {
            raft_log::LogStore::open(raft_log::LogConfig::new(d).segment_size(4 << 20))
                .unwrap_or_else(|e| panic!("open {}: {e}", d.display()))
        })
        .collect();
    let lasts: Vec<Option<u64>> = stores
        .iter()
        .map(|s| s.last_log_id().map(|l| l.index))
        .collect();
    let last = lasts.iter().flatten().max().copied().unwrap_or(0);
    assert!(
        lasts.iter().all(|l| *l == Some(last)),
        "the replicas' logs end at different indexes: {lasts:?}"
    );
    let first = stores
        .iter()
        .filter_map(|s| s.first_index())
        .max()
        .unwrap_or(0);
    for index in first..=last {
        let entries: Vec<raft_log::Entry> = stores
            .iter()
            .map(|s| {
                s.read(index)
                    .unwrap_or_else(|e| panic!("read {index}: {e}"))
            })
            .collect();
        for (i, e) in entries.iter().enumerate().skip(1) {
            assert!(
                e.term == entries[0].term && e.kind == entries[0].kind && e.body == entries[0].body,
                "entry {index} differs between replica 0 (term {}, {} bytes) and replica {i} \
                 (term {}, {} bytes)",
                entries[0].term,
                entries[0].body.len(),
                e.term,
                e.body.len()
            );
        }
    }
    last
}
