//! Helpers for tests that run the real `mqnamesrv` process: start it on an ephemeral port,
//! read the address it prints, talk gRPC to it, kill it when the test ends (pass or fail).

#![allow(dead_code)] // each test file uses its own part of this module

use std::future::Future;
use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use proto::v1 as pb;
use proto::NameServiceClient;
use tonic::transport::{Channel, Endpoint};

/// How long any awaited condition may take before the test fails.
pub const DEADLINE: Duration = Duration::from_secs(20);

/// The line mqnamesrv prints once it listens.
const BOOT: &str = nameserver::BOOT_SUCCESS;

/// A running `mqnamesrv`; killed (SIGKILL, by its PID) when dropped.
pub struct Namesrv {
    child: Child,
    /// The address it printed in its boot line.
    pub addr: SocketAddr,
    /// Its stderr so far, printed if the test fails.
    stderr: Arc<Mutex<Vec<String>>>,
}

impl Namesrv {
    /// Starts `mqnamesrv --set listenPort=0 ARGS...` (a later `--set listenPort` wins) and
    /// waits for its boot line.
    pub fn start(args: &[&str]) -> Namesrv {
        let mut child = spawn(&[&["--set", "listenPort=0"], args].concat());
        let stderr = collect_lines(child.stderr.take().expect("stderr piped"));
        let stdout = child.stdout.take().expect("stdout piped");
        let (boot_tx, boot_rx) = mpsc::channel();
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(addr) = line.strip_prefix(BOOT) {
                    let _ = boot_tx.send(addr.trim().to_owned());
                }
            }
        });
        let mut namesrv = Namesrv {
            child,
            addr: SocketAddr::from(([0, 0, 0, 0], 0)),
            stderr,
        };
        match boot_rx.recv_timeout(DEADLINE) {
            Ok(addr) => namesrv.addr = addr.parse().expect("boot line address"),
            Err(_) => panic!(
                "mqnamesrv printed no boot line within {DEADLINE:?}; stderr:\n{}",
                namesrv.stderr_text()
            ),
        }
        namesrv
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// `http://ADDR`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// A client of it.
    pub fn client(&self) -> NameServiceClient<Channel> {
        client(&self.url())
    }

    /// What it wrote to stderr so far.
    pub fn stderr_text(&self) -> String {
        self.stderr.lock().map(|l| l.join("\n")).unwrap_or_default()
    }

    /// Sends `signal` to it.
    pub fn signal(&self, signal: libc::c_int) {
        let pid = libc::pid_t::try_from(self.pid()).expect("pid fits pid_t");
        // SAFETY: kill(2) on our own child's pid; no memory is involved.
        let rc = unsafe { libc::kill(pid, signal) };
        assert_eq!(rc, 0, "kill({pid}, {signal})");
    }

    /// Kills it with SIGKILL and reaps it.
    pub fn kill9(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Waits for it to exit by itself.
    pub fn wait_exit(&mut self) -> ExitStatus {
        wait_exit(&mut self.child)
    }
}

impl Drop for Namesrv {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if thread::panicking() {
            eprintln!("--- mqnamesrv stderr ---\n{}", self.stderr_text());
        }
    }
}

/// Output of a run of mqnamesrv expected to exit by itself.
pub struct Exited {
    /// Its exit status.
    pub status: ExitStatus,
    /// Its stdout.
    pub stdout: String,
    /// Its stderr.
    pub stderr: String,
}

/// Runs `mqnamesrv ARGS...` to its exit (killing it after [`DEADLINE`]).
pub fn run_to_exit(args: &[&str]) -> Exited {
    let mut child = spawn(args);
    let stdout = read_to_end(child.stdout.take().expect("stdout piped"));
    let stderr = read_to_end(child.stderr.take().expect("stderr piped"));
    let status = wait_exit(&mut child);
    // The pipes reach EOF when the process exits, so these joins return promptly.
    Exited {
        status,
        stdout: stdout.join().unwrap_or_default(),
        stderr: stderr.join().unwrap_or_default(),
    }
}

/// Numbers the witness directories of the nameservers a test process starts.
static WITNESS_DIRS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Starts `mqnamesrv ARGS...` with its output piped.
fn spawn(args: &[&str]) -> Child {
    // Hosted witnesses keep their stores in a directory of this process's own, never in `~`.
    let witness_dir = std::env::temp_dir().join(format!(
        "raftmq-ns-witness-{}-{}",
        std::process::id(),
        WITNESS_DIRS.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    ));
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_mqnamesrv"));
    cmd.args(args);
    if !args.iter().any(|a| a.contains("witnessStorePath")) {
        cmd.arg("--set")
            .arg(format!("witnessStorePath={}", witness_dir.display()));
    }
    cmd.env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn mqnamesrv")
}

fn read_to_end(mut stream: impl Read + Send + 'static) -> thread::JoinHandle<String> {
    thread::spawn(move || {
        let mut text = String::new();
        let _ = stream.read_to_string(&mut text);
        text
    })
}

fn collect_lines(stream: impl Read + Send + 'static) -> Arc<Mutex<Vec<String>>> {
    let lines = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&lines);
    thread::spawn(move || {
        for line in BufReader::new(stream).lines().map_while(Result::ok) {
            if let Ok(mut sink) = sink.lock() {
                sink.push(line);
            }
        }
    });
    lines
}

fn wait_exit(child: &mut Child) -> ExitStatus {
    let deadline = Instant::now() + DEADLINE;
    loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            return status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("mqnamesrv did not exit within {DEADLINE:?}");
        }
        thread::sleep(Duration::from_millis(10));
    }
}

/// A client that connects on first use and reconnects after failures (so it survives a
/// nameserver restart on the same address).
pub fn client(url: &str) -> NameServiceClient<Channel> {
    let endpoint = Endpoint::from_shared(url.to_owned())
        .expect("valid url")
        .connect_timeout(Duration::from_secs(2))
        .timeout(Duration::from_secs(5));
    NameServiceClient::new(endpoint.connect_lazy())
}

/// Calls `probe` until it returns `Some`, failing the test after [`DEADLINE`].
pub async fn eventually<T, F, Fut>(what: &str, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        if let Some(value) = probe().await {
            return value;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out after {DEADLINE:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Reads the watch stream until an event satisfies `want`, failing after [`DEADLINE`].
pub async fn next_matching(
    stream: &mut tonic::Streaming<pb::RouteEvent>,
    what: &str,
    mut want: impl FnMut(&pb::RouteEvent) -> bool,
) -> pb::RouteEvent {
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        let event = tokio::time::timeout_at(deadline, stream.message())
            .await
            .unwrap_or_else(|_| panic!("timed out after {DEADLINE:?} waiting for {what}"))
            .expect("watch stream error")
            .expect("watch stream ended");
        if want(&event) {
            return event;
        }
    }
}

/// Topic every test member hosts.
pub const TOPIC: &str = "TopicTest";

/// A registration of node `node` (brokerId = node id) of group `group` in cluster
/// "RaftCluster", at 127.0.0.1:3091<node>, hosting [`TOPIC`] with 4 queues.
pub fn member(group: &str, node: u64, term: u64, is_leader: bool) -> pb::RegisterBrokerRequest {
    pb::RegisterBrokerRequest {
        cluster_name: "RaftCluster".to_owned(),
        broker_name: group.to_owned(),
        broker_id: node,
        node_id: node,
        broker_addr: format!("127.0.0.1:3091{node}"),
        ha_addr: format!("127.0.0.1:4091{node}"),
        configured_role: pb::BrokerRole::SyncMaster.into(),
        raft_role: if is_leader {
            pb::RaftRole::Leader
        } else {
            pb::RaftRole::Follower
        }
        .into(),
        term,
        is_leader,
        replicas: Vec::new(),
        topics: vec![pb::TopicConfig {
            topic_name: TOPIC.to_owned(),
            read_queue_nums: 4,
            write_queue_nums: 4,
            perm: proto::PERM_READ | proto::PERM_WRITE,
            order: false,
        }],
        heartbeat_timeout_ms: 0,
    }
}

/// Registers `request`; panics on transport errors or a non-OK status.
pub async fn register(
    client: &mut NameServiceClient<Channel>,
    request: pb::RegisterBrokerRequest,
) -> pb::RegisterBrokerResponse {
    let response = client
        .register_broker(request)
        .await
        .expect("RegisterBroker")
        .into_inner();
    let status = response.status.clone().unwrap_or_default();
    assert!(status.is_ok(), "RegisterBroker status {status:?}");
    response
}

/// Simulated brokers: registers each of a changeable set of requests every 200 ms (the
/// brokers' heartbeat), ignoring failures (the nameserver may be down or restarting).
/// Stops when dropped.
pub struct Heartbeats {
    members: Arc<Mutex<Vec<pb::RegisterBrokerRequest>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Heartbeats {
    /// Starts heartbeating `members` to the nameserver at `url`.
    pub fn start(url: &str, members: Vec<pb::RegisterBrokerRequest>) -> Heartbeats {
        let members = Arc::new(Mutex::new(members));
        let shared = Arc::clone(&members);
        let mut client = client(url);
        let task = tokio::spawn(async move {
            loop {
                let batch = shared.lock().map(|m| m.clone()).unwrap_or_default();
                for request in batch {
                    let _ = client.register_broker(request).await;
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        });
        Heartbeats { members, task }
    }

    /// Replaces what is heartbeated from now on.
    pub fn set(&self, members: Vec<pb::RegisterBrokerRequest>) {
        if let Ok(mut m) = self.members.lock() {
            *m = members;
        }
    }
}

impl Drop for Heartbeats {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// QueryRoute for `topic`; `None` when the call fails (nameserver down or restarting).
pub async fn query_route(
    client: &mut NameServiceClient<Channel>,
    topic: &str,
) -> Option<pb::QueryRouteResponse> {
    let request = pb::QueryRouteRequest {
        topic: topic.to_owned(),
    };
    Some(client.query_route(request).await.ok()?.into_inner())
}

/// Waits until the route of [`TOPIC`] shows group `name` in a state `want` accepts, and
/// returns that state.
pub async fn wait_for_group(
    client: &NameServiceClient<Channel>,
    name: &str,
    what: &str,
    want: impl Fn(&pb::GroupRoute) -> bool,
) -> pb::GroupRoute {
    eventually(what, || {
        let mut client = client.clone();
        let want = &want;
        async move {
            let route = query_route(&mut client, TOPIC).await?;
            group_in(&route, name).filter(|g| want(g)).cloned()
        }
    })
    .await
}

/// Opens WatchRoutes and returns the stream with its first event, which must be a
/// snapshot.
pub async fn watch(
    client: &mut NameServiceClient<Channel>,
) -> (tonic::Streaming<pb::RouteEvent>, pb::RouteEvent) {
    let mut stream = client
        .watch_routes(pb::WatchRoutesRequest {})
        .await
        .expect("WatchRoutes")
        .into_inner();
    let first = tokio::time::timeout(DEADLINE, stream.message())
        .await
        .expect("a first event in time")
        .expect("watch stream error")
        .expect("a first event");
    assert!(
        matches!(first.change, Some(pb::route_event::Change::Snapshot(_))),
        "the first event is a snapshot: {first:?}"
    );
    (stream, first)
}

/// The group named `name` in a QueryRoute answer.
pub fn group_in<'a>(
    response: &'a pb::QueryRouteResponse,
    name: &str,
) -> Option<&'a pb::GroupRoute> {
    response.groups.iter().find(|g| g.broker_name == name)
}

/// Node ids of a group's members, in the order sent.
pub fn node_ids(group: &pb::GroupRoute) -> Vec<u64> {
    group.members.iter().map(|m| m.node_id).collect()
}
