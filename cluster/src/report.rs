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
            format!("{group}: {brokers}; {}", routes.join("; "))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use proto::v1::RaftRole;

    use super::*;
    use crate::probe::tests::{dledger_file, namesrv, view};
    use crate::probe::NodeStatus;

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
