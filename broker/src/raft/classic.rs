//! Classic groups on Raft (DESIGN §4): a master and its slaves, from `brokerRole` files with no
//! peer list, formed through the nameserver.
//!
//! - **Founding.** A master (`brokerId` 0) whose store is empty asks the nameservers whether
//!   its group exists. If a nameserver answers and knows no other member, the group is new: the
//!   master forms it alone (`initialize({0})`), so `2m-noslave` needs nothing else. Otherwise
//!   (the master's disk was wiped) it rejoins like a slave. With no nameserver answering it
//!   waits: it never founds a second group beside one it cannot see.
//! - **Joining.** A slave (or a wiped master) finds the group's leader in the routes and asks it
//!   to join (`JoinGroup`); the leader adds it as a learner. A replica whose store was empty
//!   grants no vote until it has caught up with a leader of the current term.
//! - **Promotion.** The leader promotes a learner that has caught up to voter; a group of two
//!   data replicas gets a third voter, the witness its nameserver hosts
//!   ([`raftmq_raft::WITNESS_NODE_ID`]), added as a learner first.
//! - **In sync.** The leader tracks which slaves are in sync (`in_sync`) and holds the witness
//!   back to them.

use std::collections::BTreeSet;
use std::time::Duration;

use openraft::{BasicNode, ChangeMembers};
use proto::v1 as pb;
use proto::RaftServiceClient;
use raft_log::LogStore;
use raftmq_raft::network::peer_endpoint;
use raftmq_raft::rejoin::{catch_up, VoteGate};
use raftmq_raft::WITNESS_NODE_ID;
use tokio::sync::watch;
use tracing::{debug, info, warn};

use crate::config::HostPort;
use crate::layout::GroupLayout;
use crate::raft::in_sync::{InSyncSet, InSyncState, SlaveSample, Standing};
use crate::raft::progress::lag_bytes;
use crate::raft::typ::{NodeId, Raft, RaftMetrics};
use crate::Error;

/// Pause between two rounds of asking the nameservers or the leader.
const RETRY: Duration = Duration::from_millis(300);
/// Deadline of one call to a nameserver or the leader.
const CALL_TIMEOUT: Duration = Duration::from_secs(1);
/// How often the leader looks at its members' progress (in-sync set, promotions).
const WATCH_EVERY: Duration = Duration::from_millis(20);
/// A learner is caught up (ready for promotion) within this many entries of the leader.
const CAUGHT_UP_ENTRIES: u64 = 8;

/// What the nameservers know of a group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GroupNews {
    /// No nameserver answered.
    Unknown,
    /// A nameserver answered, and no other member of the group has taken part in it yet (none
    /// registered, or only replicas with empty stores, as at a layout's first start).
    New,
    /// Another member has a term, or a leader is recorded; the leader's node id and
    /// replication address, if one is recorded.
    Exists { leader: Option<(NodeId, String)> },
}

/// Asks the nameservers what they know of `group` (this replica is `self_id`).
pub async fn group_news(namesrv: &[HostPort], group: &str, self_id: NodeId) -> GroupNews {
    let mut answered = false;
    for addr in namesrv {
        let Some(info) = crate::namesrv::cluster_info(&addr.to_string(), CALL_TIMEOUT * 2).await
        else {
            continue;
        };
        answered = true;
        let route = info
            .clusters
            .iter()
            .flat_map(|c| &c.groups)
            .find(|g| g.broker_name == group);
        let Some(route) = route else { continue };
        let leader = route.leader_node_id.and_then(|id| {
            route
                .members
                .iter()
                .find(|m| m.node_id == id)
                .map(|m| (id, m.ha_addr.clone()))
        });
        let others_took_part = route
            .members
            .iter()
            .any(|m| m.node_id != self_id && m.term > 0);
        if leader.is_some() || others_took_part {
            return GroupNews::Exists { leader };
        }
    }
    if answered {
        GroupNews::New
    } else {
        GroupNews::Unknown
    }
}

/// What the group's witness remembers: `Some(term)` when its store holds the group (the group
/// has existed, whatever the routes say now), `Some(0)` when the nameserver hosts no witness
/// for it or an empty one, `None` when it does not answer.
async fn witness_term(witness_addr: &str, group: &str, self_id: NodeId) -> Option<u64> {
    let call = async {
        let channel = peer_endpoint(witness_addr).ok()?.connect().await.ok()?;
        let answer = RaftServiceClient::new(channel)
            .replica_state(pb::ReplicaStateRequest {
                group: group.to_owned(),
                target_node_id: WITNESS_NODE_ID,
                asker_node_id: self_id,
            })
            .await;
        match answer {
            Ok(r) => {
                let r = r.into_inner();
                Some(if r.initialized { r.term.max(1) } else { 0 })
            }
            Err(status) if status.code() == tonic::Code::NotFound => Some(0),
            Err(_) => None,
        }
    };
    tokio::time::timeout(CALL_TIMEOUT * 2, call)
        .await
        .ok()
        .flatten()
}

/// Whether `node` is in the membership `m` reports (voter or learner).
fn in_membership(m: &RaftMetrics, node: NodeId) -> bool {
    m.membership_config.membership().get_node(&node).is_some()
}

/// What a classic replica whose store was empty does before it takes part: found the group
/// (a master of a new group), or join it and catch up (see the module docs). Ends once the
/// replica is a member that may vote, or when `stopped` turns true.
pub async fn found_or_join(
    raft: Raft,
    layout: GroupLayout,
    gate: VoteGate,
    namesrv: Vec<HostPort>,
    client_addr: String,
    mut stopped: watch::Receiver<bool>,
) {
    let work = async {
        if layout.self_id == 0 && found(&raft, &layout, &gate, &namesrv).await {
            return;
        }
        join(&raft, &layout, &namesrv, &client_addr).await;
        if catch_up(&raft, &gate, layout.self_id).await {
            info!(group = %layout.group, "caught up with the group's leader: voting");
        }
    };
    tokio::select! {
        () = work => {}
        _ = stopped.wait_for(|s| *s) => {}
    }
}

/// A master with an empty store: forms its group alone if the nameservers say it is new and
/// the witness's nameserver remembers no such group. True when it did (the replica is a
/// member), false when the group exists (join it instead).
async fn found(raft: &Raft, layout: &GroupLayout, gate: &VoteGate, namesrv: &[HostPort]) -> bool {
    let witness_addr = match &layout.kind {
        crate::layout::LayoutKind::Classic { witness } => witness.clone(),
        crate::layout::LayoutKind::DLedger { .. } => None,
    };
    let mut waiting_said = false;
    loop {
        if raft.metrics().borrow().current_leader.is_some() {
            return false; // a leader reached this replica: the group exists
        }
        let news = match group_news(namesrv, &layout.group, layout.self_id).await {
            GroupNews::New => match &witness_addr {
                // The routes forget a group whose brokers are all down; its witness does not.
                Some(addr) => match witness_term(addr, &layout.group, layout.self_id).await {
                    Some(0) => GroupNews::New,
                    Some(term) => {
                        warn!(group = %layout.group, witness = %addr, term,
                            "the store is empty, but the group's witness remembers it: waiting to \
                             rejoin it as a learner (if its data is gone for good, remove the \
                             group's directory under witnessStorePath on that nameserver)");
                        return false;
                    }
                    None => GroupNews::Unknown,
                },
                None => GroupNews::New,
            },
            news => news,
        };
        match news {
            GroupNews::New => break,
            GroupNews::Exists { .. } => {
                info!(group = %layout.group, "the store is empty but the group exists: rejoining as a learner");
                return false;
            }
            GroupNews::Unknown if namesrv.is_empty() => {
                // No nameserver configured: nothing can say otherwise (a group of one).
                break;
            }
            GroupNews::Unknown => {
                if !waiting_said {
                    info!(group = %layout.group, "waiting for the nameservers (and the witness's) to say whether the group exists");
                    waiting_said = true;
                }
                tokio::time::sleep(RETRY).await;
            }
        }
    }
    let members = std::collections::BTreeMap::from([(
        layout.self_id,
        BasicNode {
            addr: layout.raft_addr.clone(),
        },
    )]);
    match raft.initialize(members).await {
        Ok(()) => info!(group = %layout.group, "formed a new group: this master alone"),
        Err(e) => info!(group = %layout.group, error = %e, "group already initialized"),
    }
    gate.set_member();
    true
}

/// Asks the group's leader, until it has, to add this replica as a learner.
async fn join(raft: &Raft, layout: &GroupLayout, namesrv: &[HostPort], client_addr: &str) {
    let mut metrics = raft.metrics();
    let mut said = false;
    loop {
        if in_membership(&metrics.borrow_and_update(), layout.self_id) {
            return;
        }
        let leader = match group_news(namesrv, &layout.group, layout.self_id).await {
            GroupNews::Exists {
                leader: Some(leader),
            } => Some(leader),
            _ => None,
        };
        match leader {
            Some((leader_id, ha_addr)) => {
                match ask_to_join(layout, leader_id, &ha_addr, client_addr).await {
                    Ok(()) => {
                        info!(group = %layout.group, leader = leader_id, "joined as a learner")
                    }
                    Err(why) if !said => {
                        info!(group = %layout.group, leader = leader_id, %why, "cannot join yet; retrying");
                        said = true;
                    }
                    Err(why) => debug!(group = %layout.group, %why, "cannot join yet"),
                }
            }
            None if !said => {
                info!(group = %layout.group, "waiting for the group's leader to appear in the routes");
                said = true;
            }
            None => {}
        }
        let _ = tokio::time::timeout(RETRY, metrics.changed()).await;
    }
}

async fn ask_to_join(
    layout: &GroupLayout,
    leader_id: NodeId,
    ha_addr: &str,
    client_addr: &str,
) -> crate::Result<()> {
    let call = async {
        let channel = peer_endpoint(ha_addr)
            .map_err(|error| Error::PeerAddress {
                node: leader_id,
                addr: ha_addr.to_owned(),
                error,
            })?
            .connect()
            .await
            .map_err(|error| Error::PeerUnreachable {
                node: leader_id,
                addr: ha_addr.to_owned(),
                error,
            })?;
        let resp = RaftServiceClient::new(channel)
            .join_group(pb::JoinGroupRequest {
                group: layout.group.clone(),
                node_id: layout.self_id,
                broker_id: layout.self_id,
                node: Some(pb::RaftNode {
                    address: layout.raft_addr.clone(),
                }),
                broker_addr: client_addr.to_owned(),
                target_node_id: leader_id,
            })
            .await
            .map_err(|s| Error::PeerFailed {
                node: leader_id,
                code: s.code(),
                message: s.message().to_owned(),
            })?
            .into_inner();
        match resp.status {
            Some(s) if s.code() == pb::ResponseCode::Ok => Ok(()),
            Some(s) => Err(Error::PeerDeclined {
                node: leader_id,
                code: s.code(),
                remark: s.remark,
            }),
            None => Err(Error::PeerNoStatus { node: leader_id }),
        }
    };
    tokio::time::timeout(CALL_TIMEOUT * 2, call)
        .await
        .map_err(|_| Error::PeerTimeout {
            node: leader_id,
            within: CALL_TIMEOUT * 2,
        })?
}

/// The leader's side of `JoinGroup`: adds the node as a learner, unless it is a member already
/// (at that address). A node id held at another address is refused naming both.
pub async fn admit(raft: &Raft, group: &str, req: &pb::JoinGroupRequest) -> pb::JoinGroupResponse {
    let refuse = |code, remark: String| pb::JoinGroupResponse {
        status: Some(pb::ResponseStatus::new(code, remark)),
        membership: None,
    };
    let addr = req
        .node
        .as_ref()
        .map(|n| n.address.clone())
        .unwrap_or_default();
    if req.node_id == WITNESS_NODE_ID || addr.is_empty() {
        return refuse(
            pb::ResponseCode::IllegalArgument,
            format!(
                "node {} at {addr:?} cannot join: bad id or no address",
                req.node_id
            ),
        );
    }
    let held = {
        let m = raft.metrics().borrow().clone();
        if m.current_leader != Some(m.id) {
            return refuse(
                pb::ResponseCode::NotLeader,
                format!("node {} does not lead group {group}", m.id),
            );
        }
        m.membership_config
            .membership()
            .get_node(&req.node_id)
            .map(|n| n.addr.clone())
    };
    match held {
        Some(existing) if existing == addr => {}
        Some(existing) => {
            return refuse(
                pb::ResponseCode::IllegalArgument,
                format!(
                    "node {} of group {group} is already the member at {existing}; the broker at \
                     {addr} ({}) has the same brokerId: give each its own",
                    req.node_id, req.broker_addr
                ),
            )
        }
        None => {
            if let Err(e) = raft
                .add_learner(req.node_id, BasicNode { addr: addr.clone() }, false)
                .await
            {
                return refuse(
                    pb::ResponseCode::ServiceNotAvailable,
                    format!("cannot add node {} as a learner: {e}", req.node_id),
                );
            }
            info!(%group, node = req.node_id, %addr, broker = %req.broker_addr, "added a learner");
        }
    }
    pb::JoinGroupResponse {
        status: Some(pb::ResponseStatus::ok()),
        membership: None,
    }
}

/// The leader's watch over a classic group while it leads ([`ClassicLeader::run`]): the
/// in-sync set and the witness cap it publishes, and promotions of caught-up learners to voters
/// (with the witness).
pub struct ClassicLeader {
    pub raft: Raft,
    pub log: LogStore,
    pub self_id: NodeId,
    pub group: String,
    /// The nameserver that hosts the group's witness.
    pub witness_addr: Option<String>,
    /// `haMaxGapNotInSync`.
    pub max_gap_bytes: u64,
    /// `slaveTimeout`.
    pub slave_timeout: Duration,
    /// Where the in-sync set is published (status, send answers).
    pub in_sync: watch::Sender<InSyncState>,
    /// Where the witness cap is published (the network's appends to the witness).
    pub witness_cap: watch::Sender<Option<u64>>,
}

impl ClassicLeader {
    /// Runs until `stopped` turns true or Raft stops; idle while this replica does not lead.
    pub async fn run(self, mut stopped: watch::Receiver<bool>) {
        let ClassicLeader {
            raft,
            log,
            self_id,
            group,
            witness_addr,
            max_gap_bytes,
            slave_timeout,
            in_sync,
            witness_cap,
        } = self;
        let mut set: Option<InSyncSet> = None;
        let mut promoting: Option<tokio::task::JoinHandle<()>> = None;
        let mut witness_warned = false;
        let mut ticks = tokio::time::interval(WATCH_EVERY);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = ticks.tick() => {}
                _ = stopped.wait_for(|s| *s) => return,
            }
            let m = raft.metrics().borrow().clone();
            if m.running_state.is_err() {
                return;
            }
            let Some(replication) = m
                .replication
                .as_ref()
                .filter(|_| m.current_leader == Some(self_id))
            else {
                set = None;
                in_sync.send_if_modified(|st| {
                    let changed = *st != InSyncState::default();
                    *st = InSyncState::default();
                    changed
                });
                witness_cap.send_if_modified(|cap| cap.take().is_some());
                continue;
            };
            let membership = m.membership_config.membership();
            let last_index = m.last_log_index;
            let slaves: Vec<SlaveSample> = membership
                .voter_ids()
                .filter(|id| *id != self_id && *id != WITNESS_NODE_ID)
                .map(|id| {
                    let matched = replication.get(&id).copied().flatten().map(|l| l.index);
                    SlaveSample {
                        node_id: id,
                        matched,
                        lag_bytes: lag_bytes(&log, matched),
                    }
                })
                .collect();
            let witness_matched = replication
                .get(&WITNESS_NODE_ID)
                .copied()
                .flatten()
                .map(|l| l.index);
            let state = set
                .get_or_insert_with(|| InSyncSet::new(max_gap_bytes, slave_timeout))
                .observe(
                    std::time::Instant::now(),
                    last_index,
                    witness_matched,
                    &slaves,
                );
            let before = in_sync.borrow().clone();
            for s in &state.slaves {
                let was = before
                    .slaves
                    .iter()
                    .find(|b| b.node_id == s.node_id)
                    .map(|b| b.standing);
                match (was, s.standing) {
                    (Some(w), now) if w == now => {}
                    (_, Standing::InSync) => info!(%group, slave = s.node_id, "slave in sync"),
                    (Some(Standing::InSync), _) => {
                        warn!(%group, slave = s.node_id, lag_entries = s.lag_entries, lag_bytes = s.lag_bytes,
                            "slave out of sync: sends are acknowledged with one data copy (SLAVE_NOT_AVAILABLE)")
                    }
                    _ => {}
                }
            }
            witness_cap.send_if_modified(|cap| {
                let changed = *cap != state.witness_cap;
                *cap = state.witness_cap;
                changed
            });
            in_sync.send_if_modified(|st| {
                let changed = *st != state;
                *st = state;
                changed
            });

            // Promotions, one change at a time.
            if promoting.as_ref().is_some_and(|p| !p.is_finished()) {
                continue;
            }
            let caught_up = |id: NodeId| {
                let matched = replication.get(&id).copied().flatten().map(|l| l.index);
                matched.unwrap_or(0) + CAUGHT_UP_ENTRIES >= last_index.unwrap_or(0)
            };
            // The voters the group should have: its data voters and caught-up learners, and
            // the witness when they are an even number (two data replicas cannot elect alone).
            let mut voters: BTreeSet<NodeId> = membership
                .voter_ids()
                .filter(|id| *id != WITNESS_NODE_ID)
                .collect();
            voters.extend(
                membership
                    .learner_ids()
                    .filter(|id| *id != WITNESS_NODE_ID && caught_up(*id)),
            );
            if voters.len().is_multiple_of(2) {
                let Some(addr) = witness_addr.clone() else {
                    if !witness_warned {
                        warn!(%group, "a slave caught up, but no nameserver is configured to host the group's witness: the group cannot elect a new master without its master");
                        witness_warned = true;
                    }
                    continue;
                };
                if membership.get_node(&WITNESS_NODE_ID).is_none() {
                    let raft = raft.clone();
                    let group = group.clone();
                    promoting = Some(tokio::spawn(async move {
                        match raft
                            .add_learner(WITNESS_NODE_ID, BasicNode { addr: addr.clone() }, false)
                            .await
                        {
                            Ok(_) => {
                                info!(%group, witness = %addr, "added the witness as a learner")
                            }
                            Err(e) => {
                                warn!(%group, witness = %addr, error = %e, "cannot add the witness")
                            }
                        }
                    }));
                    continue;
                }
                if !membership.voter_ids().any(|v| v == WITNESS_NODE_ID)
                    && !caught_up(WITNESS_NODE_ID)
                {
                    continue;
                }
                voters.insert(WITNESS_NODE_ID);
            }
            if voters == membership.voter_ids().collect::<BTreeSet<_>>() {
                // An odd number of data voters needs no witness: a witness left a learner
                // (added while a second replica caught up, before a third did) is removed.
                let witness_learner = !voters.contains(&WITNESS_NODE_ID)
                    && membership.learner_ids().any(|l| l == WITNESS_NODE_ID);
                if witness_learner {
                    let raft = raft.clone();
                    let group = group.clone();
                    promoting = Some(tokio::spawn(async move {
                        let remove = BTreeSet::from([WITNESS_NODE_ID]);
                        match raft
                            .change_membership(ChangeMembers::RemoveNodes(remove), false)
                            .await
                        {
                            Ok(_) => {
                                info!(%group, "removed the witness: the data voters are an odd number")
                            }
                            Err(e) => {
                                warn!(%group, error = %e, "cannot remove the witness; retrying")
                            }
                        }
                    }));
                }
                continue;
            }
            let raft = raft.clone();
            let group = group.clone();
            promoting = Some(tokio::spawn(async move {
                let target = voters.clone();
                match raft
                    .change_membership(ChangeMembers::ReplaceAllVoters(voters), false)
                    .await
                {
                    Ok(_) => info!(%group, voters = ?target, "changed the voters"),
                    Err(e) => warn!(%group, error = %e, "promotion failed; retrying"),
                }
            }));
        }
    }
}
