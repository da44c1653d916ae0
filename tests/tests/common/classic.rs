//! Classic layouts as real processes: nameservers, and broker groups started from the
//! `conf/2m-*` property files (`brokerRole`, `brokerId`, no peer list) on free loopback ports
//! in a temporary directory. A group's members are its master (`brokerId` 0) and slaves; the
//! witness lives on the first nameserver.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use proto::v1 as pb;

use super::{bin, broker_status, free_port, tail, wait_for, workspace_root, NameServer, Process};

/// One broker process of a classic layout.
pub struct Node {
    /// Its file's name ("broker-a", "broker-a-s").
    pub name: String,
    /// `brokerName`.
    pub group: String,
    /// `brokerId`: its Raft node id.
    pub broker_id: u64,
    /// Client address ("127.0.0.1:PORT").
    pub addr: String,
    conf: PathBuf,
    ha_port: u16,
    /// `--set key=value` beyond the harness's own.
    extra: Vec<String>,
    pub process: Process,
}

/// Nameservers and the brokers of a classic layout, in one temporary directory.
pub struct Classic {
    dir: tempfile::TempDir,
    pub namesrvs: Vec<NameServer>,
    pub nodes: Vec<Node>,
}

/// Which brokers to start: `(file name under conf/LAYOUT, extra settings)`.
pub type Spec<'a> = (&'a str, &'a [&'a str]);

impl Classic {
    /// Starts `namesrv_count` nameservers, then the brokers of `conf/<layout>/<file>.properties`
    /// for each spec, in order, and waits until every group has a leader every nameserver
    /// records. Extra settings apply to every broker (`key=value`).
    pub async fn start(layout: &str, namesrv_count: usize, brokers: &[Spec<'_>]) -> Classic {
        let dir = tempfile::Builder::new()
            .prefix("raftmq-classic-")
            .tempdir()
            .expect("temp dir");
        let namesrvs: Vec<NameServer> = (0..namesrv_count)
            .map(|i| NameServer::start(free_port(), dir.path().join(format!("namesrv{i}.log"))))
            .collect();
        let mut classic = Classic {
            dir,
            namesrvs,
            nodes: Vec::new(),
        };
        for (file, extra) in brokers {
            let conf = workspace_root().join(format!("conf/{layout}/{file}.properties"));
            let text = std::fs::read_to_string(&conf)
                .unwrap_or_else(|e| panic!("read {}: {e}", conf.display()));
            let key = |k: &str| {
                extra
                    .iter()
                    .rev()
                    .find_map(|s| s.strip_prefix(&format!("{k}=")).map(str::to_owned))
                    .or_else(|| {
                        text.lines()
                            .find_map(|l| l.trim().strip_prefix(&format!("{k}=")))
                            .map(str::to_owned)
                    })
                    .unwrap_or_else(|| panic!("{file}: no {k}"))
            };
            let port = free_port();
            // A second node from the same file (another slave) is named file2, file3, ...
            let copies = classic.nodes.iter().filter(|n| n.conf == conf).count();
            let name = if copies == 0 {
                (*file).to_owned()
            } else {
                format!("{file}{}", copies + 1)
            };
            let node = Node {
                name,
                group: key("brokerName"),
                broker_id: key("brokerId").parse().expect("brokerId"),
                addr: format!("127.0.0.1:{port}"),
                conf,
                ha_port: free_port(),
                extra: extra.iter().map(|s| s.to_string()).collect(),
                process: Process::stopped(),
            };
            classic.nodes.push(node);
            let i = classic.nodes.len() - 1;
            classic.nodes[i].process = classic.spawn(i);
        }
        let groups: Vec<String> = classic.groups();
        for g in &groups {
            classic.leader_of(g).await;
        }
        classic
    }

    /// The groups' names, in order of first appearance.
    pub fn groups(&self) -> Vec<String> {
        let mut groups: Vec<String> = Vec::new();
        for n in &self.nodes {
            if !groups.contains(&n.group) {
                groups.push(n.group.clone());
            }
        }
        groups
    }

    /// The index of the node started from file `name`.
    pub fn index(&self, name: &str) -> usize {
        self.nodes
            .iter()
            .position(|n| n.name == name)
            .unwrap_or_else(|| panic!("no node {name}"))
    }

    fn spawn(&self, i: usize) -> Process {
        let node = &self.nodes[i];
        let mut cmd = Command::new(bin("mqbroker"));
        cmd.arg("-c").arg(&node.conf);
        let port = node.addr.rsplit(':').next().unwrap_or_default();
        let sets = [
            format!("storePathRootDir={}", self.store_root(i).display()),
            format!("listenPort={port}"),
            format!("haListenPort={}", node.ha_port),
            format!("namesrvAddr={}", self.namesrv_list()),
            "registerNameServerPeriod=200".to_owned(),
            "mappedFileSizeCommitLog=4194304".to_owned(),
        ];
        for set in sets.iter().chain(&node.extra) {
            cmd.arg("--set").arg(set);
        }
        let (process, _) = Process::spawn(
            &format!("mqbroker {}", node.name),
            cmd,
            self.dir.path().join(format!("{}.log", node.name)),
            "boot success",
        );
        process
    }

    /// `storePathRootDir` of node `i`.
    pub fn store_root(&self, i: usize) -> PathBuf {
        self.dir.path().join(&self.nodes[i].name)
    }

    /// The commitlog (Raft log) directory of node `i`.
    pub fn commitlog_dir(&self, i: usize) -> PathBuf {
        self.store_root(i).join("commitlog")
    }

    /// The nameserver list "a;b".
    pub fn namesrv_list(&self) -> String {
        self.namesrvs
            .iter()
            .map(|n| n.addr.as_str())
            .collect::<Vec<_>>()
            .join(";")
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// `kill -9` of node `i`.
    pub fn kill(&mut self, i: usize) {
        self.nodes[i].process.kill9();
    }

    /// Starts node `i` again on its store, ports and log (it must not be running).
    pub fn restart(&mut self, i: usize) {
        assert!(
            !self.nodes[i].process.is_running(),
            "{} still runs",
            self.nodes[i].name
        );
        self.nodes[i].process = self.spawn(i);
    }

    /// Deletes node `i`'s whole store (it must not be running): a wiped disk.
    pub fn wipe(&mut self, i: usize) {
        assert!(!self.nodes[i].process.is_running());
        let root = self.store_root(i);
        std::fs::remove_dir_all(&root).unwrap_or_else(|e| panic!("remove {}: {e}", root.display()));
    }

    /// The running nodes of `group`.
    pub fn live_members(&self, group: &str) -> Vec<usize> {
        (0..self.nodes.len())
            .filter(|&i| self.nodes[i].group == group && self.nodes[i].process.is_running())
            .collect()
    }

    /// Waits for a leader of `group` that every live member and every running nameserver
    /// agree on; returns its index.
    pub async fn leader_of(&self, group: &str) -> usize {
        self.leader_within(group, Duration::from_secs(30)).await
    }

    /// [`Classic::leader_of`] with a deadline.
    pub async fn leader_within(&self, group: &str, within: Duration) -> usize {
        let live = self.live_members(group);
        wait_for(
            &format!("a leader of {group} that its live members and the nameservers agree on"),
            within,
            || async {
                let mut seen: Option<String> = None;
                for &i in &live {
                    let status = broker_status(&self.nodes[i].addr).await?;
                    let leader = status.raft?.leader_addr;
                    if leader.is_empty() || seen.as_ref().is_some_and(|s| *s != leader) {
                        return None;
                    }
                    seen = Some(leader);
                }
                let leader = seen?;
                for ns in self.namesrvs.iter().filter(|n| n.is_running()) {
                    if ns.route_of(group).await?.leader_addr != leader {
                        return None;
                    }
                }
                live.iter().copied().find(|&i| self.nodes[i].addr == leader)
            },
        )
        .await
    }

    /// The leader's view of `group`'s replicas, from its `brokerStatus`, once every live slave
    /// is a voter in its in-sync set (and, with one slave, the witness votes too).
    pub async fn wait_in_sync(&self, group: &str) -> Vec<pb::ReplicaProgress> {
        wait_for(
            &format!("every live slave of {group} in sync"),
            Duration::from_secs(30),
            || async {
                let leader = self.current_leader(group).await?;
                let status = broker_status(&self.nodes[leader].addr).await?;
                let slaves: Vec<u64> = self
                    .live_members(group)
                    .into_iter()
                    .filter(|&i| i != leader)
                    .map(|i| self.nodes[i].broker_id)
                    .collect();
                let all_in = slaves.iter().all(|id| {
                    status
                        .replicas
                        .iter()
                        .any(|r| r.node_id == *id && r.voter && r.in_sync)
                });
                let data_voters = status
                    .replicas
                    .iter()
                    .filter(|r| r.voter && !r.witness)
                    .count()
                    + 1;
                let witness_ok =
                    data_voters % 2 == 1 || status.replicas.iter().any(|r| r.witness && r.voter);
                (all_in && witness_ok).then_some(status.replicas)
            },
        )
        .await
    }

    /// The member of `group` that says it leads, if one does now.
    pub async fn current_leader(&self, group: &str) -> Option<usize> {
        for i in self.live_members(group) {
            let Some(status) = broker_status(&self.nodes[i].addr).await else {
                continue;
            };
            if status.raft_role() == pb::RaftRole::Leader {
                return Some(i);
            }
        }
        None
    }
}

/// A producer on `namesrv` as the classic tests use it: producer group `group`, at most
/// `in_flight` sends at once, each retried for up to `send_timeout`.
pub async fn producer(
    namesrv: &str,
    group: &str,
    in_flight: usize,
    send_timeout: Duration,
) -> client::Producer {
    client::Producer::start(
        namesrv,
        client::ProducerConfig {
            group: group.into(),
            send_timeout,
            max_in_flight: in_flight,
            ..client::ProducerConfig::default()
        },
    )
    .await
    .expect("producer")
}

impl Drop for Classic {
    /// On a failing test: kill everything, show the end of every log, keep the directory.
    fn drop(&mut self) {
        if !std::thread::panicking() {
            return;
        }
        for n in &mut self.nodes {
            n.process.kill9();
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
            eprintln!("---- {} (last 40 lines) ----", log.display());
            eprintln!("{}", tail(log, 40));
        }
        if let Ok(spare) = tempfile::tempdir() {
            let kept = std::mem::replace(&mut self.dir, spare).keep();
            eprintln!("kept the layout's stores and logs in {}", kept.display());
        }
    }
}
