//! The leader's view of its other members, as `brokerStatus` shows it and registrations carry
//! it to the nameservers (`clusterList` prints it): who is a voter, the witness, how far each
//! has matched, how far behind it is, and who is in the in-sync set.

use proto::v1 as pb;
use raft_log::LogStore;
use raftmq_raft::WITNESS_NODE_ID;

use crate::raft::in_sync::InSyncState;
use crate::raft::typ::RaftMetrics;

/// One row per member but this replica; empty unless this replica leads.
pub fn replica_progress(
    metrics: &RaftMetrics,
    log: &LogStore,
    in_sync: &InSyncState,
) -> Vec<pb::ReplicaProgress> {
    let Some(replication) = metrics.replication.as_ref() else {
        return Vec::new();
    };
    let membership = metrics.membership_config.membership();
    let last_index = metrics.last_log_index;
    replication
        .iter()
        .filter(|(id, _)| **id != metrics.id)
        .map(|(id, matched)| {
            let witness = *id == WITNESS_NODE_ID;
            let matched_index = matched.map(|l| l.index);
            let lag_entries = match (last_index, matched_index) {
                (Some(last), Some(m)) => last.saturating_sub(m),
                (Some(last), None) => last + 1,
                (None, _) => 0,
            };
            let lag_bytes = if witness {
                0
            } else {
                lag_bytes(log, matched_index)
            };
            pb::ReplicaProgress {
                node_id: *id,
                address: membership
                    .get_node(id)
                    .map(|n| n.addr.clone())
                    .unwrap_or_default(),
                voter: membership.voter_ids().any(|v| v == *id),
                witness,
                matched: matched.map(|l| pb::LogId {
                    term: l.leader_id.term,
                    node_id: 0,
                    index: l.index,
                }),
                in_sync: in_sync
                    .slaves
                    .iter()
                    .any(|s| s.node_id == *id && s.in_sync()),
                lag_entries,
                lag_bytes,
            }
        })
        .collect()
}

/// Bytes of log after the entry at `matched` (all of it for `None`): what a member that has
/// matched it still lacks.
pub fn lag_bytes(log: &LogStore, matched: Option<u64>) -> u64 {
    let end = log
        .segments()
        .last()
        .map_or(0, |s| s.base_position + s.used_bytes);
    let matched_end = matched
        .and_then(|i| log.locate(i))
        .map_or(0, |(at, size)| at + u64::from(size));
    end.saturating_sub(matched_end)
}
