//! What `up` and `status` print: the nameserver line, the node table and one line per
//! group about its leader. Plain functions from a cluster file and a snapshot to text.

use std::fmt::Write;

use crate::probe::{role_name, NamesrvRoute, Snapshot};
use crate::state::ClusterFile;

/// `namesrv ADDR;ADDR`: the first line of `up` and `status`, ready for `-n`.
pub fn namesrv_line(file: &ClusterFile) -> String {
    format!("namesrv {}", file.namesrv_list())
}

/// One row per node: group, node, role, term, pid, alive, client and Raft address.
pub fn node_table(file: &ClusterFile, snap: &Snapshot) -> String {
    let mut rows = vec![[
        "GROUP", "NODE", "ROLE", "TERM", "PID", "ALIVE", "CLIENT", "RAFT",
    ]
    .map(str::to_owned)];
    for (node, status) in file.nodes.iter().zip(&snap.nodes) {
        let (role, term) = match (&status.broker, status.pid) {
            (Some(view), _) => (role_name(view.role).to_owned(), view.term.to_string()),
            (None, Some(_)) if status.routes.is_none() => ("?".to_owned(), "-".to_owned()),
            _ => ("-".to_owned(), "-".to_owned()),
        };
        rows.push([
            node.group.clone().unwrap_or_else(|| "-".to_owned()),
            node.name.clone(),
            role,
            term,
            node.pid.map_or_else(|| "-".to_owned(), |p| p.to_string()),
            if status.pid.is_some() { "yes" } else { "no" }.to_owned(),
            node.addr.clone(),
            node.raft_addr.clone().unwrap_or_else(|| "-".to_owned()),
        ]);
    }
    let mut widths = [0usize; 8];
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.len());
        }
    }
    let mut out = String::new();
    for row in &rows {
        let mut line = String::new();
        for (cell, w) in row.iter().zip(widths) {
            let _ = write!(line, "{cell:<w$}  ");
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// One line per group: its leader as the brokers report it and as each nameserver
/// routes to it.
pub fn group_lines(file: &ClusterFile, snap: &Snapshot) -> Vec<String> {
    file.groups()
        .into_iter()
        .map(|group| {
            let brokers = match snap.claimed_leader(file, group) {
                Some(l) => format!("leader {} in term {}", file.nodes[l.node].name, l.term),
                None => "no leader".to_owned(),
            };
            let routes: Vec<String> = Snapshot::namesrvs(file)
                .map(|ns| {
                    let at = &file.nodes[ns].addr;
                    match snap.namesrv_route(file, ns, group) {
                        NamesrvRoute::Unreachable => format!("nameserver {at} unreachable"),
                        NamesrvRoute::UnknownGroup => format!("not registered at {at}"),
                        NamesrvRoute::NoLeader => format!("{at} records no leader"),
                        NamesrvRoute::Leader { node, addr, term } => format!(
                            "{at} routes to {} (term {term}{})",
                            node.map_or(addr, |i| file.nodes[i].name.clone()),
                            // Until the dead leader's registration expires.
                            if node.is_some_and(|i| snap.nodes[i].pid.is_none()) {
                                ", which is down"
                            } else {
                                ""
                            }
                        ),
                    }
                })
                .collect();
            let mut lines = vec![format!("{group}: {brokers}; {}", routes.join("; "))];
            if file.is_classic() {
                lines.extend(replica_lines(file, snap, group));
            }
            lines
        })
        .collect::<Vec<_>>()
        .concat()
}

/// A classic group's members other than its leader, as the leader last reported them to the
/// nameserver (`GroupRoute.replicas`): one indented line each, the witness last. Nothing for
/// a group of one broker.
pub fn replica_lines(file: &ClusterFile, snap: &Snapshot, group: &str) -> Vec<String> {
    let members = file
        .nodes
        .iter()
        .filter(|n| n.group.as_deref() == Some(group))
        .count();
    if members < 2 {
        return Vec::new();
    }
    let Some((ns, mut replicas)) = snap.replicas(file, group) else {
        return vec!["  replicas: unknown (no nameserver routes to a leader)".to_owned()];
    };
    if replicas.is_empty() {
        return vec!["  replicas: not reported by the leader yet".to_owned()];
    }
    replicas.sort_by_key(|r| (r.progress.witness, r.progress.node_id));
    let names: Vec<String> = replicas.iter().map(|r| r.name(file)).collect();
    let width = names.iter().map(String::len).max().unwrap_or(0);
    let mut lines: Vec<String> = replicas
        .iter()
        .zip(&names)
        .map(|(r, name)| {
            let down = r.node.is_some_and(|i| snap.nodes[i].pid.is_none());
            format!(
                "  {name:<width$}  {}{}",
                r.describe(),
                if down { " (down)" } else { "" }
            )
        })
        .collect();
    // A dead leader's report stays in the routes until its registration expires.
    if let NamesrvRoute::Leader {
        node: Some(leader), ..
    } = snap.namesrv_route(file, ns, group)
    {
        if snap.nodes[leader].pid.is_none() {
            lines.push(format!(
                "  (as {} reported it before it went down)",
                file.nodes[leader].name
            ));
        }
    }
    lines
}

#[cfg(test)]
mod tests {
    use proto::v1::RaftRole;

    use super::*;
    use crate::probe::tests::{
        classic_file, classic_namesrv, dledger_file, in_sync_replicas, namesrv, progress, view,
    };
    use crate::probe::NodeStatus;

    #[test]
    fn a_classic_group_shows_its_slaves_and_witness() {
        let file = classic_file();
        let mut snap = Snapshot {
            nodes: vec![
                classic_namesrv(in_sync_replicas()),
                view(RaftRole::Follower, 2, Some(21)),
                view(RaftRole::Leader, 2, Some(21)),
            ],
        };
        assert_eq!(
            group_lines(&file, &snap),
            [
                "broker-a: leader broker-a in term 2; 127.0.0.1:1 routes to broker-a (term 2)",
                "  broker-a-s  voter, in sync, 0 entries (0 B) behind",
                "  witness     voter (witness on 127.0.0.1:1), 0 entries behind",
            ]
        );
        // The slave is gone, the leader has not noticed yet.
        snap.nodes[1] = NodeStatus::default();
        snap.nodes[0] = classic_namesrv(vec![progress(1, "127.0.0.1:12", true, false, false, 5)]);
        assert_eq!(
            replica_lines(&file, &snap, "broker-a"),
            ["  broker-a-s  voter, not in sync, 5 entries (500 B) behind (down)"]
        );
        // The leader is gone: its last report, said to be one.
        snap.nodes[2] = NodeStatus::default();
        assert_eq!(
            replica_lines(&file, &snap, "broker-a")
                .last()
                .map(String::as_str),
            Some("  (as broker-a reported it before it went down)")
        );
        snap.nodes[0] = classic_namesrv(Vec::new());
        assert_eq!(
            replica_lines(&file, &snap, "broker-a"),
            ["  replicas: not reported by the leader yet"]
        );
        snap.nodes[0] = NodeStatus::default();
        assert_eq!(
            replica_lines(&file, &snap, "broker-a"),
            ["  replicas: unknown (no nameserver routes to a leader)"]
        );
    }

    #[test]
    fn the_table_and_group_lines_read_well() {
        let file = dledger_file();
        let snap = Snapshot {
            nodes: vec![
                namesrv(Some((11, 2))),
                view(RaftRole::Leader, 2, Some(11)),
                view(RaftRole::Follower, 2, Some(11)),
                NodeStatus::default(),
            ],
        };
        assert_eq!(namesrv_line(&file), "namesrv 127.0.0.1:1");
        assert_eq!(
            node_table(&file, &snap),
            "\
GROUP       NODE     ROLE      TERM  PID  ALIVE  CLIENT        RAFT
-           namesrv  -         -     101  yes    127.0.0.1:1   -
RaftNode00  n0       LEADER    2     111  yes    127.0.0.1:11  -
RaftNode00  n1       FOLLOWER  2     121  yes    127.0.0.1:21  -
RaftNode00  n2       -         -     131  no     127.0.0.1:31  -
"
        );
        assert_eq!(
            group_lines(&file, &snap),
            ["RaftNode00: leader n0 in term 2; 127.0.0.1:1 routes to n0 (term 2)"]
        );
        let mut stale = snap.clone();
        stale.nodes[0] = namesrv(Some((31, 1)));
        assert_eq!(
            group_lines(&file, &stale),
            ["RaftNode00: leader n0 in term 2; 127.0.0.1:1 routes to n2 (term 1, which is down)"]
        );
    }
}
