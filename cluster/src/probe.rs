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
