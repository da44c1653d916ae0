//! `mqcluster kill NODE` and `mqcluster kill --leader GROUP`: SIGKILL one node, as a crash
//! would, and wait until it is gone. The recorded pid stays in cluster.json, so
//! `restart` can bring the node back with the same command line.

use std::time::Duration;

use anyhow::{bail, Result};
use tokio::time::Instant;

use super::{parse_duration, DataDirArg};
use crate::probe::{self, role_name, Channels, Leader, NamesrvRoute, Snapshot};
use crate::process;
use crate::state::ClusterFile;

/// How often `kill --leader` looks again while a group is electing.
const POLL: Duration = Duration::from_millis(100);

/// `mqcluster kill`.
#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("target").required(true).args(["node", "leader"])))]
pub struct KillArgs {
    /// The node to kill: n1, RaftNode00/n1, namesrv (as `status` names them)
    pub node: Option<String>,
    /// Kill whichever node leads this group (brokerName) right now
    #[arg(long, value_name = "GROUP")]
    pub leader: Option<String>,
    #[command(flatten)]
    pub data_dir: DataDirArg,
    /// With --leader: how long to wait for the group to have a leader (during an election)
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = parse_duration)]
    pub timeout: Duration,
}

/// Runs `mqcluster kill`.
pub async fn run(args: KillArgs) -> Result<()> {
    let data = args.data_dir.open()?;
    let _lock = data.lock()?;
    let file = data.load_existing()?;
    let (index, leader_of) = match (&args.node, &args.leader) {
        (Some(node), _) => (file.find(node)?, None),
        (None, Some(group)) => {
            let leader = wait_for_leader(&file, group, args.timeout).await?;
            (leader.node, Some((group, leader.term)))
        }
        (None, None) => bail!("say which node to kill, or --leader GROUP"),
    };
    let node = &file.nodes[index];
    let Some(pid) = process::kill(node).await? else {
        bail!(
            "{} is not running (pid {} is gone); `mqcluster restart {}` starts it again",
            node.full_name(),
            node.pid.map_or_else(|| "-".to_owned(), |p| p.to_string()),
            node.full_name()
        );
    };
    match leader_of {
        Some((group, term)) => println!(
            "killed {} (pid {pid}), the leader of {group} in term {term}",
            node.full_name()
        ),
        None => println!("killed {} (pid {pid})", node.full_name()),
    }
    Ok(())
}

/// The node that leads `group` now, waiting up to `timeout` while it elects one.
async fn wait_for_leader(file: &ClusterFile, group: &str, timeout: Duration) -> Result<Leader> {
    let groups = file.groups();
    if !groups.contains(&group) {
        bail!(
            "no group {group:?} in this cluster (groups: {})",
            groups.join(", ")
        );
    }
    let deadline = Instant::now() + timeout;
    let mut channels = Channels::default();
    loop {
        let snap = probe::snapshot(file, &mut channels).await;
        if let Some(leader) = current_leader(file, &snap, group) {
            return Ok(leader);
        }
        if Instant::now() >= deadline {
            bail!(
                "{group} has no leader after {timeout:?} ({}); `mqcluster status` shows the nodes",
                describe_members(file, &snap, group)
            );
        }
        tokio::time::sleep(POLL).await;
    }
}

/// The member that says it leads; else the live node a nameserver routes to.
fn current_leader(file: &ClusterFile, snap: &Snapshot, group: &str) -> Option<Leader> {
    snap.claimed_leader(file, group).or_else(|| {
        Snapshot::namesrvs(file)
            .filter_map(|ns| match snap.namesrv_route(file, ns, group) {
                NamesrvRoute::Leader {
                    node: Some(node),
                    term,
                    ..
                } if snap.nodes[node].pid.is_some() => Some(Leader { node, term }),
                _ => None,
            })
            .max_by_key(|l| l.term)
    })
}

/// `n0 down, n1 FOLLOWER term 3, n2 CANDIDATE term 4`.
fn describe_members(file: &ClusterFile, snap: &Snapshot, group: &str) -> String {
    file.nodes
        .iter()
        .zip(&snap.nodes)
        .filter(|(node, _)| node.group.as_deref() == Some(group))
        .map(|(node, status)| match (&status.broker, status.pid) {
            (Some(view), _) => format!("{} {} term {}", node.name, role_name(view.role), view.term),
            (None, Some(_)) => format!("{} not answering", node.name),
            (None, None) => format!("{} down", node.name),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use proto::v1::RaftRole;

    use super::*;
    use crate::probe::tests::{dledger_file, namesrv, view};
    use crate::probe::NodeStatus;

    #[test]
    fn the_leader_comes_from_the_brokers_else_the_nameserver() {
        let file = dledger_file();
        let mut snap = Snapshot {
            nodes: vec![
                namesrv(Some((31, 7))),
                NodeStatus::default(),
                view(RaftRole::Candidate, 8, None),
                view(RaftRole::Follower, 7, None),
            ],
        };
        // Nobody claims to lead: the nameserver's (live) leader.
        assert_eq!(
            current_leader(&file, &snap, "RaftNode00"),
            Some(Leader { node: 3, term: 7 })
        );
        assert_eq!(
            describe_members(&file, &snap, "RaftNode00"),
            "n0 down, n1 CANDIDATE term 8, n2 FOLLOWER term 7"
        );
        snap.nodes[2] = view(RaftRole::Leader, 8, Some(21));
        assert_eq!(
            current_leader(&file, &snap, "RaftNode00"),
            Some(Leader { node: 2, term: 8 })
        );
        snap.nodes[2] = NodeStatus::default();
        snap.nodes[3] = NodeStatus::default();
        assert_eq!(current_leader(&file, &snap, "RaftNode00"), None);
    }
}
