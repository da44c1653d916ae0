//! What the running cluster says about itself, gathered into one [`Snapshot`]: which
//! recorded processes are alive, each broker's `BrokerStatus` (Raft role, term, the leader
//! it knows) and each nameserver's `GetClusterInfo` (the leader it routes to); and the
//! leader decisions made from a snapshot, which are plain functions.

use std::collections::HashMap;
use std::time::Duration;

use proto::v1::{self as pb, RaftRole};
use proto::{BrokerServiceClient, NameServiceClient};
use tokio::task::JoinSet;
use tonic::transport::{Channel, Endpoint};

use crate::process;
use crate::state::{ClusterFile, NodeKind};

/// How long one status RPC may take: the nodes are on loopback, so a slow answer means a
/// stopped or overloaded process, which the caller should not wait on.
const RPC_TIMEOUT: Duration = Duration::from_secs(1);
/// How long connecting to a node may take.
const CONNECT_TIMEOUT: Duration = Duration::from_millis(500);

/// A broker's own account of its Raft state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerView {
    /// Its Raft role.
    pub role: RaftRole,
    /// Its current term.
    pub term: u64,
    /// Client address of the leader it knows; none when it knows none.
    pub leader_addr: Option<String>,
}

/// One node of the cluster file, as found now.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NodeStatus {
    /// The recorded pid, if it still runs the recorded command.
    pub pid: Option<u32>,
    /// A broker's answer to `BrokerStatus`; none for a nameserver or a broker that did
    /// not answer.
    pub broker: Option<BrokerView>,
    /// A nameserver's answer to `GetClusterInfo`: every group it knows; none for a broker
    /// or a nameserver that did not answer.
    pub routes: Option<Vec<pb::GroupRoute>>,
}

impl NodeStatus {
    /// Whether the process runs and answered its status RPC.
    pub fn answering(&self) -> bool {
        self.broker.is_some() || self.routes.is_some()
    }
}

/// The whole cluster at one moment: one [`NodeStatus`] per node of the cluster file, in
/// the same order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Snapshot {
    /// Parallel to `ClusterFile::nodes`.
    pub nodes: Vec<NodeStatus>,
}

/// gRPC channels to the nodes, made once per address and reused across snapshots.
#[derive(Debug, Default)]
pub struct Channels {
    by_addr: HashMap<String, Channel>,
}

impl Channels {
    fn get(&mut self, addr: &str) -> Option<Channel> {
        if let Some(channel) = self.by_addr.get(addr) {
            return Some(channel.clone());
        }
        let channel = Endpoint::from_shared(format!("http://{addr}"))
            .ok()?
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(RPC_TIMEOUT)
            .connect_lazy();
        self.by_addr.insert(addr.to_owned(), channel.clone());
        Some(channel)
    }
}

/// Looks at every node of `file` at once.
pub async fn snapshot(file: &ClusterFile, channels: &mut Channels) -> Snapshot {
    let mut nodes = vec![NodeStatus::default(); file.nodes.len()];
    let mut asks = JoinSet::new();
    for (i, node) in file.nodes.iter().enumerate() {
        nodes[i].pid = process::live_pid(node);
        if nodes[i].pid.is_none() {
            continue;
        }
        let Some(channel) = channels.get(&node.addr) else {
            continue;
        };
        let kind = node.kind;
        asks.spawn(async move {
            let mut status = NodeStatus::default();
            match kind {
                NodeKind::Broker => status.broker = broker_status(channel).await,
                NodeKind::Namesrv => status.routes = cluster_routes(channel).await,
            }
            (i, status)
        });
    }
    while let Some(joined) = asks.join_next().await {
        if let Ok((i, answer)) = joined {
            nodes[i].broker = answer.broker;
            nodes[i].routes = answer.routes;
        }
    }
    Snapshot { nodes }
}

async fn broker_status(channel: Channel) -> Option<BrokerView> {
    let status = BrokerServiceClient::new(channel)
        .broker_status(pb::BrokerStatusRequest {})
        .await
        .ok()?
        .into_inner();
    let raft = status.raft.clone().unwrap_or_default();
    Some(BrokerView {
        role: status.raft_role(),
        term: raft.current_term,
        leader_addr: Some(raft.leader_addr).filter(|a| !a.is_empty()),
    })
}

async fn cluster_routes(channel: Channel) -> Option<Vec<pb::GroupRoute>> {
    let info = NameServiceClient::new(channel)
        .get_cluster_info(pb::GetClusterInfoRequest {})
        .await
        .ok()?
        .into_inner();
    Some(info.clusters.into_iter().flat_map(|c| c.groups).collect())
}

/// A Raft role as `status` prints it.
pub fn role_name(role: RaftRole) -> &'static str {
    match role {
        RaftRole::Leader => "LEADER",
        RaftRole::Follower => "FOLLOWER",
        RaftRole::Candidate => "CANDIDATE",
        RaftRole::Learner => "LEARNER",
        RaftRole::Shutdown => "SHUTDOWN",
        RaftRole::Unspecified => "UNKNOWN",
    }
}

/// A group's leader: a node of the cluster file and its term.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Leader {
    /// Index into `ClusterFile::nodes`.
    pub node: usize,
    /// The term it leads in.
    pub term: u64,
}

/// What one nameserver routes to for one group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NamesrvRoute {
    /// The nameserver is down or did not answer.
    Unreachable,
    /// It has no registration from any member of the group.
    UnknownGroup,
    /// It knows the group but records no live leader.
    NoLeader,
    /// It routes to this address in this term; `node` is the cluster-file node listening
    /// there, when there is one.
    Leader {
        /// Index into `ClusterFile::nodes`, when a node has that address.
        node: Option<usize>,
        /// The leader's client address.
        addr: String,
        /// The term it was recorded in.
        term: u64,
    },
}

impl Snapshot {
    /// Indices of the nodes of `group`.
    fn members<'a>(file: &'a ClusterFile, group: &'a str) -> impl Iterator<Item = usize> + 'a {
        (0..file.nodes.len()).filter(move |&i| file.nodes[i].group.as_deref() == Some(group))
    }

    /// The live member of `group` that says it leads, in the highest term (a deposed
    /// leader that has not noticed yet has a lower one).
    pub fn claimed_leader(&self, file: &ClusterFile, group: &str) -> Option<Leader> {
        Self::members(file, group)
            .filter_map(|i| {
                let view = self.nodes[i].broker.as_ref()?;
                (view.role == RaftRole::Leader).then_some(Leader {
                    node: i,
                    term: view.term,
                })
            })
            .max_by_key(|l| l.term)
    }

    /// The claimed leader, if every answering member of the group names it too.
    pub fn agreed_leader(&self, file: &ClusterFile, group: &str) -> Option<Leader> {
        let leader = self.claimed_leader(file, group)?;
        let addr = &file.nodes[leader.node].addr;
        Self::members(file, group)
            .filter_map(|i| self.nodes[i].broker.as_ref())
            .all(|view| view.leader_addr.as_ref() == Some(addr))
            .then_some(leader)
    }

    /// How many members of `group` there are, and how many answer.
    pub fn answering(&self, file: &ClusterFile, group: &str) -> (usize, usize) {
        let members: Vec<usize> = Self::members(file, group).collect();
        let answering = members
            .iter()
            .filter(|&&i| self.nodes[i].answering())
            .count();
        (members.len(), answering)
    }

    /// What nameserver `ns` (an index into `ClusterFile::nodes`) routes to for `group`.
    pub fn namesrv_route(&self, file: &ClusterFile, ns: usize, group: &str) -> NamesrvRoute {
        let Some(routes) = &self.nodes[ns].routes else {
            return NamesrvRoute::Unreachable;
        };
        let Some(route) = routes.iter().find(|r| r.broker_name == group) else {
            return NamesrvRoute::UnknownGroup;
        };
        if route.leader_node_id.is_none() || route.leader_addr.is_empty() {
            return NamesrvRoute::NoLeader;
        }
        NamesrvRoute::Leader {
            node: Self::members(file, group).find(|&i| file.nodes[i].addr == route.leader_addr),
            addr: route.leader_addr.clone(),
            term: route.term,
        }
    }

    /// The nameservers' indices into `ClusterFile::nodes`.
    pub fn namesrvs(file: &ClusterFile) -> impl Iterator<Item = usize> + '_ {
        (0..file.nodes.len()).filter(|&i| file.nodes[i].kind == NodeKind::Namesrv)
    }

    /// The group's other members as its leader last reported them to nameserver `ns`
    /// (`GroupRoute.replicas`: slaves with their in-sync state and lag, the witness); none
    /// when that nameserver has no leader for the group. Empty until the leader reports.
    pub fn namesrv_replicas(
        &self,
        file: &ClusterFile,
        ns: usize,
        group: &str,
    ) -> Option<Vec<Replica>> {
        let route = self.nodes[ns]
            .routes
            .as_ref()?
            .iter()
            .find(|r| r.broker_name == group && r.leader_node_id.is_some())?;
        Some(
            route
                .replicas
                .iter()
                .map(|progress| Replica {
                    node: (!progress.witness)
                        .then(|| {
                            Self::members(file, group).find(|&i| {
                                file.nodes[i].raft_addr.as_deref() == Some(&progress.address)
                            })
                        })
                        .flatten(),
                    progress: progress.clone(),
                })
                .collect(),
        )
    }

    /// [`Snapshot::namesrv_replicas`] of the answering nameserver that routes to the group's
    /// leader in the highest term, with that nameserver's index.
    pub fn replicas(&self, file: &ClusterFile, group: &str) -> Option<(usize, Vec<Replica>)> {
        Self::namesrvs(file)
            .filter_map(|ns| match self.namesrv_route(file, ns, group) {
                NamesrvRoute::Leader { term, .. } => Some((ns, term)),
                _ => None,
            })
            .max_by_key(|&(ns, term)| (term, std::cmp::Reverse(ns)))
            .and_then(|(ns, _)| Some((ns, self.namesrv_replicas(file, ns, group)?)))
    }
}

/// One member of a group other than its leader, as the leader reported it to a nameserver.
#[derive(Debug, Clone, PartialEq)]
pub struct Replica {
    /// The broker of the cluster file at that replication address; none for the witness (or
    /// a member no node of the file listens for).
    pub node: Option<usize>,
    /// What the leader reported.
    pub progress: pb::ReplicaProgress,
}

impl Replica {
    /// `broker-a-s`, `witness`, or the replication address of a member the file does not
    /// know.
    pub fn name(&self, file: &ClusterFile) -> String {
        match (self.node, self.progress.witness) {
            (_, true) => "witness".to_owned(),
            (Some(i), false) => file.nodes[i].name.clone(),
            (None, false) => self.progress.address.clone(),
        }
    }

    /// `voter, in sync, 0 entries (0 B) behind` / `learner, not in sync, 12 entries
    /// (3.1 KiB) behind` / `voter (witness on 127.0.0.1:9876), 0 entries behind`.
    pub fn describe(&self) -> String {
        let p = &self.progress;
        let mut text = if p.voter { "voter" } else { "learner" }.to_owned();
        if p.witness {
            text.push_str(&format!(" (witness on {})", p.address));
        } else if p.in_sync {
            text.push_str(", in sync");
        } else {
            text.push_str(", not in sync");
        }
        let entries = if p.lag_entries == 1 {
            "entry"
        } else {
            "entries"
        };
        text.push_str(&format!(", {} {entries}", p.lag_entries));
        if !p.witness {
            text.push_str(&format!(" ({})", bytes(p.lag_bytes)));
        }
        text.push_str(" behind");
        text
    }
}

/// `512 B`, `3.1 KiB`, `12.0 MiB`.
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut value = n as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

/// What keeps a classic group from being replicated as its layout means it to be: every
/// member but the leader a voter and in sync, and the witness a voter; none once it is.
/// `leader` is the group's leader (index into `ClusterFile::nodes`), `replicas` what it
/// reported. A group of one broker (`2m-noslave`) has nothing to wait for.
pub fn replication_gap(
    file: &ClusterFile,
    group: &str,
    leader: usize,
    replicas: &[Replica],
) -> Option<String> {
    let slaves: Vec<usize> = Snapshot::members(file, group)
        .filter(|&i| i != leader)
        .collect();
    if slaves.is_empty() {
        return None;
    }
    if replicas.is_empty() {
        return Some(format!(
            "{} has not reported its replicas to the nameserver yet",
            file.nodes[leader].name
        ));
    }
    let mut missing = Vec::new();
    for slave in slaves {
        let name = &file.nodes[slave].name;
        match replicas.iter().find(|r| r.node == Some(slave)) {
            None => missing.push(format!("{name} has not joined")),
            Some(r) if !(r.progress.voter && r.progress.in_sync) => {
                missing.push(format!("{name} is a {}", r.describe()));
            }
            Some(_) => {}
        }
    }
    match replicas.iter().find(|r| r.progress.witness) {
        None => missing.push("no witness yet".to_owned()),
        Some(w) if !w.progress.voter => missing.push("the witness is not a voter yet".to_owned()),
        Some(_) => {}
    }
    (!missing.is_empty()).then(|| missing.join(", "))
}

#[cfg(test)]
pub(crate) mod tests {
    use std::path::PathBuf;

    use super::*;
    use crate::state::{NodeRecord, FORMAT_VERSION};

    /// A dledger cluster file: namesrv, then n0..n2 of RaftNode00 on ports 1, 11, 21, 31.
    pub(crate) fn dledger_file() -> ClusterFile {
        let node = |name: &str, port: u16, kind| NodeRecord {
            name: name.into(),
            kind,
            group: (kind == NodeKind::Broker).then(|| "RaftNode00".to_owned()),
            addr: format!("127.0.0.1:{port}"),
            raft_addr: None,
            command: vec!["x".into()],
            log: PathBuf::new(),
            store: None,
            pid: Some(100 + u32::from(port)),
        };
        ClusterFile {
            format: FORMAT_VERSION,
            layout: "dledger".into(),
            base_port: Some(1),
            conf_dir: PathBuf::new(),
            namesrv_addrs: vec!["127.0.0.1:1".into()],
            nodes: vec![
                node("namesrv", 1, NodeKind::Namesrv),
                node("n0", 11, NodeKind::Broker),
                node("n1", 21, NodeKind::Broker),
                node("n2", 31, NodeKind::Broker),
            ],
        }
    }

    pub(crate) fn view(role: RaftRole, term: u64, leader_port: Option<u16>) -> NodeStatus {
        NodeStatus {
            pid: Some(1),
            broker: Some(BrokerView {
                role,
                term,
                leader_addr: leader_port.map(|p| format!("127.0.0.1:{p}")),
            }),
            routes: None,
        }
    }

    pub(crate) fn namesrv(leader: Option<(u16, u64)>) -> NodeStatus {
        NodeStatus {
            pid: Some(1),
            broker: None,
            routes: Some(vec![pb::GroupRoute {
                broker_name: "RaftNode00".into(),
                leader_node_id: leader.map(|_| 0),
                leader_addr: leader.map_or(String::new(), |(p, _)| format!("127.0.0.1:{p}")),
                term: leader.map_or(0, |(_, t)| t),
                ..Default::default()
            }]),
        }
    }

    /// A 2m-2s cluster file: namesrv (port 1), then broker-a-s (client 11, replication 12)
    /// and broker-a (client 21, replication 22) of group broker-a.
    pub(crate) fn classic_file() -> ClusterFile {
        let mut file = dledger_file();
        file.layout = "2m-2s-sync".into();
        file.nodes.truncate(3);
        for (node, name) in file.nodes[1..].iter_mut().zip(["broker-a-s", "broker-a"]) {
            node.name = name.into();
            node.group = Some("broker-a".into());
            let port: u16 = node.addr.rsplit(':').next().unwrap().parse().unwrap();
            node.raft_addr = Some(format!("127.0.0.1:{}", port + 1));
        }
        file
    }

    /// What the leader reports of one member: (node id, replication address, voter,
    /// witness, in sync, lag entries).
    pub(crate) fn progress(
        node_id: u64,
        address: &str,
        voter: bool,
        witness: bool,
        in_sync: bool,
        lag_entries: u64,
    ) -> pb::ReplicaProgress {
        pb::ReplicaProgress {
            node_id,
            address: address.into(),
            voter,
            witness,
            matched: Some(pb::LogId {
                term: 1,
                node_id: 0,
                index: 20 - lag_entries,
            }),
            in_sync,
            lag_entries,
            lag_bytes: if witness { 0 } else { lag_entries * 100 },
        }
    }

    /// A nameserver routing broker-a to broker-a (port 21) in term 2, with these replicas.
    pub(crate) fn classic_namesrv(replicas: Vec<pb::ReplicaProgress>) -> NodeStatus {
        NodeStatus {
            pid: Some(1),
            broker: None,
            routes: Some(vec![pb::GroupRoute {
                broker_name: "broker-a".into(),
                leader_node_id: Some(0),
                leader_addr: "127.0.0.1:21".into(),
                term: 2,
                replicas,
                ..Default::default()
            }]),
        }
    }

    /// The slave voting and in sync, the witness voting.
    pub(crate) fn in_sync_replicas() -> Vec<pb::ReplicaProgress> {
        vec![
            progress(1_000_000, "127.0.0.1:1", true, true, false, 0),
            progress(1, "127.0.0.1:12", true, false, true, 0),
        ]
    }

    #[test]
    fn replicas_come_from_the_route_and_map_to_nodes() {
        let file = classic_file();
        let snap = Snapshot {
            nodes: vec![
                classic_namesrv(in_sync_replicas()),
                view(RaftRole::Follower, 2, Some(21)),
                view(RaftRole::Leader, 2, Some(21)),
            ],
        };
        let (ns, replicas) = snap.replicas(&file, "broker-a").unwrap();
        assert_eq!(ns, 0);
        let names: Vec<String> = replicas.iter().map(|r| r.name(&file)).collect();
        assert_eq!(names, ["witness", "broker-a-s"]);
        assert_eq!(replicas[1].node, Some(1));
        assert_eq!(
            replicas[1].describe(),
            "voter, in sync, 0 entries (0 B) behind"
        );
        assert_eq!(
            replicas[0].describe(),
            "voter (witness on 127.0.0.1:1), 0 entries behind"
        );
        let one = Replica {
            node: None,
            progress: progress(1, "127.0.0.1:12", true, false, true, 1),
        };
        assert_eq!(one.describe(), "voter, in sync, 1 entry (100 B) behind");
        assert_eq!(replication_gap(&file, "broker-a", 2, &replicas), None);
        assert_eq!(snap.replicas(&file, "broker-b"), None);

        // A nameserver without a leader for the group has no replicas to show.
        let mut no_leader = snap.clone();
        no_leader.nodes[0] = namesrv(None);
        assert_eq!(no_leader.replicas(&file, "broker-a"), None);
    }

    #[test]
    fn the_gap_names_what_a_classic_group_still_lacks() {
        let file = classic_file();
        let gap = |replicas: Vec<pb::ReplicaProgress>| {
            let replicas: Vec<Replica> = Snapshot {
                nodes: vec![classic_namesrv(replicas)],
            }
            .namesrv_replicas(&file, 0, "broker-a")
            .unwrap();
            replication_gap(&file, "broker-a", 2, &replicas)
        };
        assert_eq!(
            gap(Vec::new()).as_deref(),
            Some("broker-a has not reported its replicas to the nameserver yet")
        );
        assert_eq!(
            gap(vec![progress(
                1_000_000,
                "127.0.0.1:1",
                true,
                true,
                false,
                0
            )])
            .as_deref(),
            Some("broker-a-s has not joined")
        );
        assert_eq!(
            gap(vec![progress(1, "127.0.0.1:12", false, false, false, 12)]).as_deref(),
            Some(
                "broker-a-s is a learner, not in sync, 12 entries (1.2 KiB) behind, no witness yet"
            )
        );
        assert_eq!(
            gap(vec![
                progress(1, "127.0.0.1:12", true, false, false, 3),
                progress(1_000_000, "127.0.0.1:1", false, true, false, 0),
            ])
            .as_deref(),
            Some(
                "broker-a-s is a voter, not in sync, 3 entries (300 B) behind, the witness is \
                 not a voter yet"
            )
        );
        assert_eq!(gap(in_sync_replicas()), None);
        // After a failover the old master is the member to wait for.
        let after = vec![
            progress(0, "127.0.0.1:22", true, false, true, 0),
            progress(1_000_000, "127.0.0.1:1", true, true, false, 0),
        ];
        let replicas = Snapshot {
            nodes: vec![classic_namesrv(after)],
        }
        .namesrv_replicas(&file, 0, "broker-a")
        .unwrap();
        assert_eq!(replication_gap(&file, "broker-a", 1, &replicas), None);
        assert!(replication_gap(&file, "broker-a", 2, &replicas).is_some());

        // A group of one broker waits for nothing.
        let mut alone = file.clone();
        alone.nodes.truncate(2);
        assert_eq!(replication_gap(&alone, "broker-a", 1, &[]), None);
    }

    #[test]
    fn byte_counts_read_well() {
        assert_eq!(bytes(0), "0 B");
        assert_eq!(bytes(1023), "1023 B");
        assert_eq!(bytes(3174), "3.1 KiB");
        assert_eq!(bytes(12 << 20), "12.0 MiB");
        assert_eq!(bytes(u64::MAX), "16777216.0 TiB");
    }

    #[test]
    fn the_highest_term_leader_wins_and_agreement_needs_every_member() {
        let file = dledger_file();
        let snap = Snapshot {
            nodes: vec![
                namesrv(None),
                view(RaftRole::Leader, 2, Some(11)),
                view(RaftRole::Leader, 3, Some(21)),
                view(RaftRole::Follower, 3, Some(21)),
            ],
        };
        assert_eq!(
            snap.claimed_leader(&file, "RaftNode00"),
            Some(Leader { node: 2, term: 3 })
        );
        // n0 still believes in itself.
        assert_eq!(snap.agreed_leader(&file, "RaftNode00"), None);

        let mut settled = snap.clone();
        settled.nodes[1] = NodeStatus::default();
        assert_eq!(
            settled.agreed_leader(&file, "RaftNode00"),
            Some(Leader { node: 2, term: 3 })
        );
        assert_eq!(settled.answering(&file, "RaftNode00"), (3, 2));
        assert_eq!(snap.claimed_leader(&file, "Other"), None);
    }

    #[test]
    fn nameserver_routes_map_to_nodes() {
        let file = dledger_file();
        let mut snap = Snapshot {
            nodes: vec![
                namesrv(Some((31, 4))),
                NodeStatus::default(),
                NodeStatus::default(),
                NodeStatus::default(),
            ],
        };
        assert_eq!(
            snap.namesrv_route(&file, 0, "RaftNode00"),
            NamesrvRoute::Leader {
                node: Some(3),
                addr: "127.0.0.1:31".into(),
                term: 4
            }
        );
        assert_eq!(
            snap.namesrv_route(&file, 0, "Other"),
            NamesrvRoute::UnknownGroup
        );
        snap.nodes[0] = namesrv(None);
        assert_eq!(
            snap.namesrv_route(&file, 0, "RaftNode00"),
            NamesrvRoute::NoLeader
        );
        snap.nodes[0] = NodeStatus::default();
        assert_eq!(
            snap.namesrv_route(&file, 0, "RaftNode00"),
            NamesrvRoute::Unreachable
        );
        assert_eq!(Snapshot::namesrvs(&file).collect::<Vec<_>>(), [0]);
    }
}
