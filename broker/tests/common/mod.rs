//! A 3-replica dledger group of real `mqbroker` processes on loopback, for integration tests.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use proto::v1::broker_service_client::BrokerServiceClient;
use proto::v1::{self as pb, ResponseCode};
use tonic::transport::Channel;

pub type Client = BrokerServiceClient<Channel>;

pub use raftmq_testkit::{free_port, wait_for, workspace_root as repo_root};

/// One `mqbroker` process; killed (SIGKILL) when dropped.
pub struct BrokerProcess {
    pub child: Option<Child>,
    pub client_addr: String,
}

impl BrokerProcess {
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// A replica that is not running (a placeholder for one taken out of its group).
    pub fn stopped() -> BrokerProcess {
        BrokerProcess {
            child: None,
            client_addr: String::new(),
        }
    }

    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// SIGSTOP: the process keeps its connections but answers nothing.
    pub fn pause(&self) {
        if let Some(pid) = self.pid() {
            unsafe_kill(pid as i32, libc::SIGSTOP);
        }
    }

    /// SIGCONT.
    pub fn resume(&self) {
        if let Some(pid) = self.pid() {
            unsafe_kill(pid as i32, libc::SIGCONT);
        }
    }

    /// SIGTERM and wait for the exit status.
    pub fn terminate(&mut self) -> Option<std::process::ExitStatus> {
        let mut child = self.child.take()?;
        let pid = child.id() as i32;
        unsafe_kill(pid, libc::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                return Some(status);
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                return child.wait().ok();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

#[allow(unsafe_code)]
fn unsafe_kill(pid: i32, sig: i32) {
    // SAFETY: sending a signal to a process we spawned and have not reaped.
    unsafe {
        libc::kill(pid, sig);
    }
}

impl Drop for BrokerProcess {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// Ports and directories of a 3-node group.
pub struct Group {
    pub dir: tempfile::TempDir,
    pub client_ports: Vec<u16>,
    pub raft_ports: Vec<u16>,
    pub nodes: Vec<BrokerProcess>,
    pub extra: Vec<String>,
}

impl Group {
    /// Starts three replicas and waits until they print their boot line.
    pub fn start(extra: &[&str]) -> Group {
        let dir = tempfile::tempdir().expect("temp dir");
        let client_ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
        let raft_ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
        let mut group = Group {
            dir,
            client_ports,
            raft_ports,
            nodes: Vec::new(),
            extra: extra.iter().map(|s| s.to_string()).collect(),
        };
        for i in 0..3 {
            let node = group.spawn(i);
            group.nodes.push(node);
        }
        group
    }

    pub fn store_dir(&self, i: usize) -> PathBuf {
        self.dir.path().join(format!("n{i}"))
    }

    /// Starts replica `i` (again).
    pub fn spawn(&self, i: usize) -> BrokerProcess {
        let peers = (0..3)
            .map(|j| format!("n{j}-127.0.0.1:{}", self.raft_ports[j]))
            .collect::<Vec<_>>()
            .join(";");
        let conf = repo_root().join(format!("conf/dledger/broker-n{i}.properties"));
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_mqbroker"));
        cmd.arg("-c")
            .arg(conf)
            .arg("--set")
            .arg(format!("storePathRootDir={}", self.store_dir(i).display()))
            .arg("--set")
            .arg(format!("listenPort={}", self.client_ports[i]))
            .arg("--set")
            .arg(format!("dLegerPeers={peers}"))
            .arg("--set")
            .arg("namesrvAddr=")
            .arg("--set")
            .arg("mappedFileSizeCommitLog=4194304");
        for e in &self.extra {
            cmd.arg("--set").arg(e);
        }
        cmd.stdout(Stdio::piped())
            .stderr(Stdio::from(log_file(&self.dir, i)));
        let mut child = cmd.spawn().expect("spawn mqbroker");
        let stdout = child.stdout.take().expect("stdout");
        let mut line = String::new();
        let n = BufReader::new(stdout).read_line(&mut line).unwrap_or(0);
        assert!(
            n > 0 && line.contains("boot success"),
            "mqbroker n{i} did not boot: {line:?} (see {})",
            self.dir.path().display()
        );
        BrokerProcess {
            child: Some(child),
            client_addr: format!("127.0.0.1:{}", self.client_ports[i]),
        }
    }

    pub fn restart(&mut self, i: usize) {
        let node = self.spawn(i);
        self.nodes[i] = node;
    }

    pub async fn client(&self, i: usize) -> Client {
        connect(&self.nodes[i].client_addr).await
    }

    /// Waits for a leader that every live replica agrees on; returns its index.
    pub async fn leader(&self) -> usize {
        let live: Vec<usize> = (0..3).filter(|&i| self.nodes[i].is_running()).collect();
        wait_for("a leader", Duration::from_secs(20), || async {
            let mut seen = None;
            for &i in &live {
                let mut c = self.client(i).await;
                let status = c
                    .broker_status(pb::BrokerStatusRequest {})
                    .await
                    .ok()?
                    .into_inner();
                let raft = status.raft?;
                let leader = raft.leader_node_id? as usize;
                if seen.is_some_and(|s| s != leader) || !live.contains(&leader) {
                    return None;
                }
                seen = Some(leader);
            }
            seen
        })
        .await
    }
}

impl Group {
    /// Waits until every running replica has applied the same entry and shows the same state
    /// digest there; returns that entry's index and the digest.
    pub async fn settled(&self) -> (u64, String) {
        let live: Vec<usize> = (0..3).filter(|&i| self.nodes[i].is_running()).collect();
        raftmq_testkit::wait_until_equal(
            "every live replica at the same applied index with the same digest",
            Duration::from_secs(30),
            &live,
            |i| async move {
                let status = self
                    .client(i)
                    .await
                    .broker_status(pb::BrokerStatusRequest {})
                    .await
                    .ok()?
                    .into_inner();
                let digest = status.state_digest?;
                Some((digest.applied?.index, digest.digest))
            },
        )
        .await
    }
}

fn log_file(dir: &tempfile::TempDir, i: usize) -> std::fs::File {
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.path().join(format!("n{i}.log")))
        .expect("log file")
}

pub async fn connect(addr: &str) -> Client {
    let channel = Channel::from_shared(format!("http://{addr}"))
        .expect("uri")
        .connect_lazy();
    BrokerServiceClient::new(channel)
}

pub fn message(topic: &str, queue_id: i32, body: impl Into<Vec<u8>>) -> pb::Message {
    pb::Message {
        topic: topic.into(),
        queue_id,
        body: body.into().into(),
        ..Default::default()
    }
}

/// Creates (or updates) `topic` with `queues` read and write queues on `client`'s replica,
/// which must lead.
pub async fn create_topic(client: &mut Client, topic: &str, queues: u32) {
    let resp = client
        .create_or_update_topic(pb::CreateOrUpdateTopicRequest {
            topic: Some(pb::TopicConfig {
                topic_name: topic.into(),
                read_queue_nums: queues,
                write_queue_nums: queues,
                perm: 6,
                order: false,
            }),
        })
        .await
        .expect("create topic")
        .into_inner();
    assert_eq!(code(&resp.status), ResponseCode::Ok, "{:?}", resp.status);
}

pub fn code(status: &Option<pb::ResponseStatus>) -> ResponseCode {
    status
        .as_ref()
        .map_or(ResponseCode::Unspecified, |s| s.code())
}

/// Sends one message to queue 0 of `topic`; the result or the failure code.
pub async fn send(
    client: &mut Client,
    topic: &str,
    body: &str,
) -> Result<pb::SendMessageResponse, ResponseCode> {
    let resp = client
        .send_message(pb::SendMessageRequest {
            messages: vec![message(topic, 0, body)],
            producer_group: "test".into(),
        })
        .await
        .map_err(|_| ResponseCode::ServiceNotAvailable)?
        .into_inner();
    match code(&resp.status) {
        ResponseCode::Ok => Ok(resp),
        other => Err(other),
    }
}

/// Reads queue `queue_id` of `topic` from `from` to its end. A replica that has not applied
/// the topic yet (one still catching up) has nothing to read: an empty result.
pub async fn pull_all(
    client: &mut Client,
    topic: &str,
    queue_id: i32,
    from: u64,
) -> Vec<pb::StoredMessage> {
    let mut out = Vec::new();
    let mut offset = from;
    loop {
        let resp = client
            .pull_message(pb::PullMessageRequest {
                consumer_group: "test".into(),
                topic: topic.into(),
                queue_id,
                queue_offset: offset,
                max_count: 256,
                max_wait_ms: 0,
                tag_expression: "*".into(),
            })
            .await
            .expect("pull")
            .into_inner();
        match code(&resp.status) {
            ResponseCode::Ok => {
                offset = resp.next_begin_offset;
                out.extend(resp.messages);
            }
            ResponseCode::NoNewMessage => return out,
            ResponseCode::TopicNotExist if out.is_empty() => return out,
            other => panic!("pull at {offset}: {other:?} {:?}", resp.status),
        }
    }
}

impl Drop for Group {
    /// On a failing test: kill the replicas, keep their stores and logs, and show the first
    /// panics and the end of every log.
    fn drop(&mut self) {
        if !std::thread::panicking() {
            return;
        }
        for node in &mut self.nodes {
            node.kill9();
        }
        let path = self.dir.path().to_path_buf();
        for i in 0..3 {
            let log = std::fs::read_to_string(path.join(format!("n{i}.log"))).unwrap_or_default();
            let lines: Vec<&str> = log.lines().collect();
            for line in lines.iter().filter(|l| l.contains("panicked at")).take(3) {
                eprintln!("n{i}: {line}");
            }
            eprintln!("---- n{i}.log (last 40 lines) ----");
            for line in &lines[lines.len().saturating_sub(40)..] {
                eprintln!("{line}");
            }
        }
        if let Ok(spare) = tempfile::tempdir() {
            let kept = std::mem::replace(&mut self.dir, spare).keep();
            eprintln!("kept the group's stores and logs in {}", kept.display());
        }
    }
}
