//! `mqcluster status`: every node of the cluster file with its pid, whether it is alive,
//! its Raft role and term, each group's leader as the brokers and the nameservers see it,
//! and a classic group's slaves (in sync or not, lag) and witness as its leader reports them
//! to the nameserver; `--json` for scripts and tests.

use std::path::PathBuf;

use anyhow::{Context, Result};
use serde::Serialize;

use super::DataDirArg;
use crate::probe::{self, role_name, Channels, NamesrvRoute, Snapshot};
use crate::report;
use crate::state::{ClusterFile, NodeKind};

/// `mqcluster status`.
#[derive(Debug, clap::Args)]
pub struct StatusArgs {
    #[command(flatten)]
    pub data_dir: DataDirArg,
    /// Print JSON (one object: data_dir, layout, namesrv, nodes, groups)
    #[arg(long)]
    pub json: bool,
}

/// Runs `mqcluster status`.
pub async fn run(args: StatusArgs) -> Result<()> {
    let data = args.data_dir.open()?;
    let file = data.load_existing()?;
    let snap = probe::snapshot(&file, &mut Channels::default()).await;
    if args.json {
        let status = StatusJson::new(data.path().to_path_buf(), &file, &snap);
        println!(
            "{}",
            serde_json::to_string_pretty(&status).context("cannot encode the status")?
        );
    } else {
        println!("{}", report::namesrv_line(&file));
        println!();
        print!("{}", report::node_table(&file, &snap));
        println!();
        for line in report::group_lines(&file, &snap) {
            println!("{line}");
        }
    }
    Ok(())
}

/// The `--json` document.
#[derive(Debug, Serialize)]
struct StatusJson {
    /// The data dir (absolute).
    data_dir: PathBuf,
    /// Layout name.
    layout: String,
    /// Nameserver addresses.
    namesrv: Vec<String>,
    /// Every node, nameservers first.
    nodes: Vec<NodeJson>,
    /// Every broker group.
    groups: Vec<GroupJson>,
}

/// One node in `--json`.
#[derive(Debug, Serialize)]
struct NodeJson {
    name: String,
    group: Option<String>,
    kind: NodeKind,
    /// The pid of the last start (also when it is no longer alive).
    pid: Option<u32>,
    /// The process runs its recorded command.
    alive: bool,
    /// It answered its status RPC.
    answering: bool,
    /// Raft role (brokers that answered).
    role: Option<&'static str>,
    /// Raft term (brokers that answered).
    term: Option<u64>,
    /// Name of the leader this broker knows.
    leader: Option<String>,
    addr: String,
    raft_addr: Option<String>,
    log: PathBuf,
}

/// One group in `--json`.
#[derive(Debug, Serialize)]
struct GroupJson {
    name: String,
    /// The live member that says it leads (highest term); none during an election.
    leader: Option<String>,
    /// Its term.
    term: Option<u64>,
    /// What each nameserver routes to.
    namesrv_routes: Vec<RouteJson>,
    /// A classic group's other members as its leader last reported them to the nameserver
    /// (slaves' in-sync state and lag, the witness); empty for a dledger group, a group of
    /// one broker, or before the leader reports.
    replicas: Vec<ReplicaJson>,
}

/// One member of a classic group other than its leader in `--json`.
#[derive(Debug, Serialize)]
struct ReplicaJson {
    /// The node (`broker-a-s`), `witness`, or the replication address of an unknown member.
    name: String,
    /// Raft node id (`brokerId`; the witness's reserved id).
    node_id: u64,
    /// Replication address (the witness: its nameserver's).
    address: String,
    /// Votes in elections.
    voter: bool,
    /// The nameserver-hosted witness.
    witness: bool,
    /// In the in-sync set that SYNC_MASTER sends wait for (never the witness).
    in_sync: bool,
    /// Entries it lacks behind the leader.
    lag_entries: u64,
    /// Bytes of log it lacks (0 for the witness, which stores no bodies).
    lag_bytes: u64,
    /// Raft index of the last entry it is known to have.
    matched_index: Option<u64>,
}

/// One nameserver's route for a group in `--json`.
#[derive(Debug, Serialize)]
struct RouteJson {
    namesrv: String,
    /// `leader`, `no_leader`, `unknown_group` or `unreachable`.
    state: &'static str,
    /// The node it routes to (its client address if no node of the cluster has it).
    leader: Option<String>,
    term: Option<u64>,
}

impl StatusJson {
    fn new(data_dir: PathBuf, file: &ClusterFile, snap: &Snapshot) -> StatusJson {
        let name_at = |addr: &str| {
            file.nodes
                .iter()
                .find(|n| n.addr == addr)
                .map_or_else(|| addr.to_owned(), |n| n.name.clone())
        };
        let nodes = file
            .nodes
            .iter()
            .zip(&snap.nodes)
            .map(|(node, status)| NodeJson {
                name: node.name.clone(),
                group: node.group.clone(),
                kind: node.kind,
                pid: node.pid,
                alive: status.pid.is_some(),
                answering: status.answering(),
                role: status.broker.as_ref().map(|b| role_name(b.role)),
                term: status.broker.as_ref().map(|b| b.term),
                leader: status
                    .broker
                    .as_ref()
                    .and_then(|b| b.leader_addr.as_deref())
                    .map(name_at),
                addr: node.addr.clone(),
                raft_addr: node.raft_addr.clone(),
                log: node.log.clone(),
            })
            .collect();
        let groups = file
            .groups()
            .into_iter()
            .map(|group| {
                let leader = snap.claimed_leader(file, group);
                GroupJson {
                    name: group.to_owned(),
                    leader: leader.map(|l| file.nodes[l.node].name.clone()),
                    term: leader.map(|l| l.term),
                    namesrv_routes: Snapshot::namesrvs(file)
                        .map(|ns| {
                            route_json(
                                &file.nodes[ns].addr,
                                snap.namesrv_route(file, ns, group),
                                &name_at,
                            )
                        })
                        .collect(),
                    replicas: if file.is_classic() {
                        replicas_json(file, snap, group)
                    } else {
                        Vec::new()
                    },
                }
            })
            .collect();
        StatusJson {
            data_dir,
            layout: file.layout.clone(),
            namesrv: file.namesrv_addrs.clone(),
            nodes,
            groups,
        }
    }
}

fn replicas_json(file: &ClusterFile, snap: &Snapshot, group: &str) -> Vec<ReplicaJson> {
    let Some((_, mut replicas)) = snap.replicas(file, group) else {
        return Vec::new();
    };
    replicas.sort_by_key(|r| (r.progress.witness, r.progress.node_id));
    replicas
        .into_iter()
        .map(|r| ReplicaJson {
            name: r.name(file),
            node_id: r.progress.node_id,
            address: r.progress.address.clone(),
            voter: r.progress.voter,
            witness: r.progress.witness,
            in_sync: r.progress.in_sync,
            lag_entries: r.progress.lag_entries,
            lag_bytes: r.progress.lag_bytes,
            matched_index: r.progress.matched.as_ref().map(|m| m.index),
        })
        .collect()
}

fn route_json(namesrv: &str, route: NamesrvRoute, name_at: &dyn Fn(&str) -> String) -> RouteJson {
    let (state, leader, term) = match route {
        NamesrvRoute::Unreachable => ("unreachable", None, None),
        NamesrvRoute::UnknownGroup => ("unknown_group", None, None),
        NamesrvRoute::NoLeader => ("no_leader", None, None),
        NamesrvRoute::Leader { addr, term, .. } => ("leader", Some(name_at(&addr)), Some(term)),
    };
    RouteJson {
        namesrv: namesrv.to_owned(),
        state,
        leader,
        term,
    }
}

#[cfg(test)]
mod tests {
    use proto::v1::RaftRole;

    use super::*;
    use crate::probe::tests::{
        classic_file, classic_namesrv, dledger_file, in_sync_replicas, namesrv, view,
    };
    use crate::probe::NodeStatus;

    #[test]
    fn json_names_nodes_and_leaders() {
        let file = dledger_file();
        let snap = Snapshot {
            nodes: vec![
                namesrv(Some((21, 5))),
                NodeStatus::default(),
                view(RaftRole::Leader, 5, Some(21)),
                view(RaftRole::Follower, 5, Some(21)),
            ],
        };
        let json =
            serde_json::to_value(StatusJson::new(PathBuf::from("/d"), &file, &snap)).unwrap();
        assert_eq!(json["namesrv"][0], "127.0.0.1:1");
        assert_eq!(json["nodes"][0]["kind"], "namesrv");
        assert_eq!(json["nodes"][1]["alive"], false);
        assert_eq!(json["nodes"][1]["role"], serde_json::Value::Null);
        assert_eq!(json["nodes"][2]["role"], "LEADER");
        assert_eq!(json["nodes"][3]["leader"], "n1");
        assert_eq!(json["groups"][0]["leader"], "n1");
        assert_eq!(json["groups"][0]["term"], 5);
        assert_eq!(json["groups"][0]["namesrv_routes"][0]["state"], "leader");
        assert_eq!(json["groups"][0]["namesrv_routes"][0]["leader"], "n1");
        // dledger groups carry no replica list: in_sync means nothing there.
        assert_eq!(json["groups"][0]["replicas"], serde_json::json!([]));
    }

    #[test]
    fn json_shows_a_classic_groups_slaves_and_witness() {
        let file = classic_file();
        let snap = Snapshot {
            nodes: vec![
                classic_namesrv(in_sync_replicas()),
                view(RaftRole::Follower, 2, Some(21)),
                view(RaftRole::Leader, 2, Some(21)),
            ],
        };
        let json =
            serde_json::to_value(StatusJson::new(PathBuf::from("/d"), &file, &snap)).unwrap();
        let group = &json["groups"][0];
        assert_eq!(group["leader"], "broker-a");
        assert_eq!(
            group["replicas"],
            serde_json::json!([
                {
                    "name": "broker-a-s", "node_id": 1, "address": "127.0.0.1:12",
                    "voter": true, "witness": false, "in_sync": true,
                    "lag_entries": 0, "lag_bytes": 0, "matched_index": 20
                },
                {
                    "name": "witness", "node_id": 1_000_000, "address": "127.0.0.1:1",
                    "voter": true, "witness": true, "in_sync": false,
                    "lag_entries": 0, "lag_bytes": 0, "matched_index": 20
                }
            ])
        );
    }
}
