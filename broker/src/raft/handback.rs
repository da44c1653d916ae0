//! Handing leadership back to `preferredLeaderId` once it has caught up (DESIGN §4).
//!
//! openraft 0.9 has no leadership transfer, and a leader cannot simply step aside: the
//! followers' *leader lease* ([`crate::raft::failover`]) makes them refuse any candidate while
//! the leader's appends keep arriving. So a handback is the failover campaign, started on
//! purpose, in an order that lets only the preferred node `P` win:
//!
//! 1. **Leader `L`, deciding** ([`HandbackGate`]): `L` has led its term for longer than its
//!    own lease ([`LEADING_FOR`]: before that `L` itself would refuse `P`'s vote request), `P`
//!    is a voter whose replication `matched` index has been close to `L`'s last log index in every
//!    sample for [`CAUGHT_UP_FOR`] (a flapping follower is not chosen), and the last attempt is
//!    [`ATTEMPT_INTERVAL`] ago. Under a steady stream of writes `P` is always a few entries
//!    behind, and handing over while entries are in flight would often let a third voter win
//!    (step 4) and cost an election or two instead of one: so `P` only needs to stay within
//!    [`CLOSE_ENTRIES`], and `L` then makes a lull itself: it holds new writes back
//!    ([`WriteHold`], the proposer waits) until `P` has `L`'s last entry, at most
//!    [`HOLD_AT_MOST`]. Writes held meanwhile are proposed after the handback, to a leader
//!    that no longer leads, and their senders retry on `P` (`NOT_LEADER`).
//! 2. `L` turns off its own election timer (`ElectionPause`), so once deposed it does not
//!    campaign back, and sends `TimeoutNow` to `P` alone.
//! 3. **`P`** (the Raft service's `TimeoutNow` handler, [`check_handback`]) checks that it
//!    still follows `L` in that term and has `L`'s last index, and starts the failover
//!    campaign ([`Campaign::run`]) with `L` as the leader to replace and itself ranked first:
//!    it elects at once, with term + 1. `L`'s lease has lapsed (step 1) and `P`'s log is as
//!    long, so `L` grants the vote and steps down; `P` has a quorum (itself and `L`) and leads.
//!    Only if new entries reached `L` meanwhile does `L` refuse; it then steps down all the
//!    same, at its next append to `P`, whose answer carries `P`'s higher vote. Either way `L`
//!    has voted for `P` in term + 1.
//! 4. **`L`, after stepping down**: if its log has grown since it decided, it may have refused
//!    `P`, which then needs a third voter `T`. Unless `P` turns out to lead soon anyway
//!    ([`LEADER_NEWS_WAIT`]), `L` sends `TimeoutNow` to the other voters. Each elects once,
//!    which drops its lease, then keeps campaigning, ranked after `P`. Their first request
//!    (term + 1) cannot win: `L` and `P` have voted for `P` in that term. `P`'s next request
//!    (a handback campaign retries only once a round's answers are in,
//!    [`HANDBACK_PATIENCE`]) is granted by a voter that dropped its lease.
//!    Were `P` behind a third voter `T` (entries that reached `T` but not `P` while `L`
//!    stepped down), `T` refuses `P`; once `T` campaigns, `P`'s service records that `T`'s log
//!    is ahead ([`VoteRefusals::refused_longer_log`]), so `P` stops competing and `T` wins
//!    (and later hands back in its turn).
//!    Asking the others only now is what keeps them from winning: asked together with `P`, a
//!    third voter's term + 1 request could reach `L` before `P`'s and win.
//! 5. `L` waits for a new leader (at most [`GIVE_UP_AFTER`]), turns its election timer back on
//!    and logs the outcome at info. A handback that does not happen is not retried before
//!    [`ATTEMPT_INTERVAL`]; Raft's own timers cover a group left without a leader.
//!
//! [`Campaign::run`]: crate::raft::failover::Campaign::run
//! [`HANDBACK_PATIENCE`]: crate::raft::failover::HANDBACK_PATIENCE
//! [`VoteRefusals::refused_longer_log`]: crate::raft::failover::VoteRefusals::refused_longer_log

use std::sync::Arc;
use std::time::Duration;

use openraft::ServerState;
use proto::v1 as pb;
use proto::RaftServiceClient;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tracing::{debug, info};

use raftmq_raft::convert;
use raftmq_raft::network::peer_endpoint;
use raftmq_raft::timing::ELECTION_MAX_MS;

use crate::raft::failover::{OutgoingLeader, GIVE_UP_AFTER};
use crate::raft::typ::{LogId, NodeId, Raft, RaftMetrics, Vote};
use crate::Error;

/// How long `P` must have been close behind, in every sample, before a handback.
pub const CAUGHT_UP_FOR: Duration = Duration::from_millis(500);
/// How far behind `L`'s last entry `P` may be in those samples: twice the entries the
/// proposer keeps in flight (`service::proposer::MAX_IN_FLIGHT`, 8).
pub const CLOSE_ENTRIES: u64 = 16;
/// How long `L` holds new writes back for `P` to get its last entry before giving up the
/// attempt.
pub const HOLD_AT_MOST: Duration = Duration::from_millis(500);
/// How long the leader must have led its term: its own lease (`election_timeout_max`, counted
/// from its election) must have lapsed, or it refuses `P`'s vote request.
pub const LEADING_FOR: Duration = Duration::from_millis(ELECTION_MAX_MS + 100);
/// At most one handback attempt per this interval.
pub const ATTEMPT_INTERVAL: Duration = Duration::from_secs(5);
/// How often the leader re-checks without a metrics change (the caught-up clock runs on).
const CHECK_EVERY: Duration = Duration::from_millis(100);
/// Deadline of one `TimeoutNow` call, connection included.
const RPC_TIMEOUT: Duration = Duration::from_millis(500);
/// How long the leader waits to be deposed after `P` accepted; `P`'s first vote request
/// normally arrives within a millisecond on a LAN.
const STEP_DOWN_WAIT: Duration = Duration::from_millis(500);
/// How long a deposed leader waits to hear from `P` as the new leader before asking the other
/// voters to help (module docs, step 4): `P`'s first append follows its win at once.
pub const LEADER_NEWS_WAIT: Duration = Duration::from_millis(100);

// ---- the leader's decision (pure) ----

/// What one metrics sample of a (possible) leader says, for [`HandbackGate`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeaderSample {
    /// The term this node leads, or `None` when it does not lead.
    pub leading_term: Option<u64>,
    /// The preferred node is a voter whose `matched` index is within [`CLOSE_ENTRIES`] of the
    /// leader's last log index.
    pub preferred_caught_up: bool,
}

impl LeaderSample {
    /// Reads `m` of node `self_id` with `preferred` as the preferred leader.
    pub fn of(m: &RaftMetrics, self_id: NodeId, preferred: NodeId) -> LeaderSample {
        let leading = m.running_state.is_ok()
            && m.state == ServerState::Leader
            && m.current_leader == Some(self_id);
        LeaderSample {
            leading_term: leading.then_some(m.current_term),
            preferred_caught_up: leading && preferred_close(m, preferred),
        }
    }
}

/// `preferred`'s matched log id when it is a voter that has the leader's last entry.
fn preferred_matched(m: &RaftMetrics, preferred: NodeId) -> Option<Option<LogId>> {
    let is_voter = m
        .membership_config
        .membership()
        .voter_ids()
        .any(|v| v == preferred);
    let matched = *m.replication.as_ref()?.get(&preferred)?;
    // A matched id at the leader's last index is the leader's last log id.
    (is_voter && matched.map(|l| l.index) == m.last_log_index).then_some(matched)
}

/// Whether `preferred` is a voter within [`CLOSE_ENTRIES`] of the leader's last entry.
fn preferred_close(m: &RaftMetrics, preferred: NodeId) -> bool {
    let is_voter = m
        .membership_config
        .membership()
        .voter_ids()
        .any(|v| v == preferred);
    let matched = m
        .replication
        .as_ref()
        .and_then(|r| r.get(&preferred).copied().flatten());
    match (matched, m.last_log_index) {
        (Some(matched), Some(last)) => is_voter && matched.index + CLOSE_ENTRIES >= last,
        _ => false,
    }
}

/// Lets a leader about to hand back hold new writes back for a moment (the proposer waits
/// while a hold is taken), so the preferred node can get its last entry under a steady stream
/// of writes. Cheap to clone.
#[derive(Clone, Debug)]
pub struct WriteHold(Arc<watch::Sender<u32>>);

impl Default for WriteHold {
    fn default() -> Self {
        WriteHold(Arc::new(watch::channel(0).0))
    }
}

impl WriteHold {
    /// What the proposer watches: the number of holds taken.
    pub fn watch(&self) -> watch::Receiver<u32> {
        self.0.subscribe()
    }

    /// Holds writes back until the guard drops.
    pub fn take(&self) -> WriteHoldGuard {
        self.0.send_modify(|n| *n += 1);
        WriteHoldGuard(self.0.clone())
    }
}

/// Releases its [`WriteHold`] when dropped.
#[derive(Debug)]
pub struct WriteHoldGuard(Arc<watch::Sender<u32>>);

impl Drop for WriteHoldGuard {
    fn drop(&mut self) {
        self.0.send_modify(|n| *n = n.saturating_sub(1));
    }
}

/// Decides when a leader hands leadership back (see the module docs, step 1). Fed one
/// [`LeaderSample`] at a time with the time it was taken.
#[derive(Debug, Default)]
pub struct HandbackGate {
    /// The term this node leads and when it was first seen leading it.
    leading: Option<(u64, Instant)>,
    /// Since when every sample found the preferred node caught up.
    caught_up_since: Option<Instant>,
    /// When the last handback was attempted.
    last_attempt: Option<Instant>,
}

impl HandbackGate {
    /// Takes in a sample; true when a handback should start now (the caller then calls
    /// [`HandbackGate::attempted`]).
    pub fn observe(&mut self, sample: LeaderSample, now: Instant) -> bool {
        let Some(term) = sample.leading_term else {
            self.leading = None;
            self.caught_up_since = None;
            return false;
        };
        let since = match self.leading {
            Some((t, since)) if t == term => since,
            _ => {
                self.caught_up_since = None;
                now
            }
        };
        self.leading = Some((term, since));
        if !sample.preferred_caught_up {
            self.caught_up_since = None;
            return false;
        }
        let caught_up_since = *self.caught_up_since.get_or_insert(now);
        now - since >= LEADING_FOR
            && now - caught_up_since >= CAUGHT_UP_FOR
            && self
                .last_attempt
                .is_none_or(|at| now - at >= ATTEMPT_INTERVAL)
    }

    /// Records an attempt at `now`: the next is [`ATTEMPT_INTERVAL`] away.
    pub fn attempted(&mut self, now: Instant) {
        self.last_attempt = Some(now);
        self.caught_up_since = None;
    }
}

// ---- TimeoutNow on the wire ----

/// A `TimeoutNow` request that cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed TimeoutNow request: {0}")]
pub struct MalformedTimeoutNow(String);

impl From<MalformedTimeoutNow> for tonic::Status {
    fn from(e: MalformedTimeoutNow) -> Self {
        tonic::Status::invalid_argument(e.to_string())
    }
}

/// A handback as a `TimeoutNow` request states it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Handback {
    /// The leader handing leadership away, and its term.
    pub leader: OutgoingLeader,
    /// The node that should end up leading.
    pub preferred: NodeId,
    /// The leader's last log id when it decided (`P`'s matched id).
    pub last_log_id: Option<LogId>,
}

impl Handback {
    /// The request that asks `target` of `group` to take part.
    pub fn to_pb(&self, group: &str, target: NodeId) -> pb::TimeoutNowRequest {
        pb::TimeoutNowRequest {
            group: group.to_owned(),
            target_node_id: target,
            vote: Some(convert::vote_to_pb(&Vote::new_committed(
                self.leader.term,
                self.leader.id,
            ))),
            leader_node_id: self.leader.id,
            preferred_node_id: self.preferred,
            last_log_id: self.last_log_id.as_ref().map(convert::log_id_to_pb),
        }
    }

    /// Reads a request: the vote must be the committed vote of the named leader, and the
    /// preferred node another node.
    pub fn from_pb(req: &pb::TimeoutNowRequest) -> Result<Handback, MalformedTimeoutNow> {
        let vote = req
            .vote
            .as_ref()
            .ok_or_else(|| MalformedTimeoutNow("vote is missing".into()))?;
        let vote = convert::vote_from_pb(vote).map_err(|e| MalformedTimeoutNow(e.to_string()))?;
        if !vote.committed || vote.leader_id.voted_for != Some(req.leader_node_id) {
            return Err(MalformedTimeoutNow(format!(
                "vote {vote} is not the committed vote of leader {}",
                req.leader_node_id
            )));
        }
        if req.preferred_node_id == req.leader_node_id {
            return Err(MalformedTimeoutNow(format!(
                "leader {} hands leadership to itself",
                req.leader_node_id
            )));
        }
        Ok(Handback {
            leader: OutgoingLeader {
                id: req.leader_node_id,
                term: vote.leader_id.term,
            },
            preferred: req.preferred_node_id,
            last_log_id: req.last_log_id.as_ref().map(convert::log_id_from_pb),
        })
    }
}

/// Why replica `self_id` (metrics `m`) must not campaign for `handback`; `None` when it may:
/// both it and the preferred node are voters, it still follows the handing leader in that
/// leader's term (not, say, a leader elected meanwhile), and, if it is the preferred node, it
/// has the leader's last index.
pub fn check_handback(m: &RaftMetrics, self_id: NodeId, handback: &Handback) -> Option<String> {
    let membership = m.membership_config.membership();
    if !membership.voter_ids().any(|v| v == self_id) {
        return Some(format!("node {self_id} is not a voter"));
    }
    if !membership.voter_ids().any(|v| v == handback.preferred) {
        return Some(format!(
            "preferred node {} is not a voter",
            handback.preferred
        ));
    }
    let leader = handback.leader;
    if m.current_leader != Some(leader.id) || m.current_term != leader.term {
        return Some(format!(
            "node {self_id} follows leader {:?} in term {}, not node {} in term {}",
            m.current_leader, m.current_term, leader.id, leader.term
        ));
    }
    let wanted = handback.last_log_id.map(|l| l.index);
    if self_id == handback.preferred && m.last_log_index < wanted {
        return Some(format!(
            "node {self_id} has not caught up: last log index {:?}, the leader's {wanted:?}",
            m.last_log_index
        ));
    }
    None
}

// ---- the leader's task ----

/// Who leads after a handback, as far as this (former) leader knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Successor {
    /// The leader of a later term.
    Known(NodeId),
    /// No leader of a later term is known yet.
    NotYet,
    /// This node's Raft stopped.
    RaftStopped,
}

/// Waits up to `wait` for a leader of a term after `term`.
async fn successor_within(
    metrics: &mut watch::Receiver<RaftMetrics>,
    term: u64,
    wait: Duration,
) -> Successor {
    let new_leader = |m: &RaftMetrics| m.current_leader.filter(|_| m.current_term > term);
    let found = metrics.wait_for(|m| m.running_state.is_err() || new_leader(m).is_some());
    match tokio::time::timeout(wait, found).await {
        Ok(Ok(m)) => new_leader(&m).map_or(Successor::RaftStopped, Successor::Known),
        Ok(Err(_sender_gone)) => Successor::RaftStopped,
        Err(_elapsed) => Successor::NotYet,
    }
}

/// Turns off a replica's own election timer while it exists (see the module docs, step 2).
/// Elections the failover detector starts are not affected.
struct ElectionPause<'a>(&'a Raft);

impl<'a> ElectionPause<'a> {
    fn new(raft: &'a Raft) -> Self {
        raft.runtime_config().elect(false);
        ElectionPause(raft)
    }
}

impl Drop for ElectionPause<'_> {
    fn drop(&mut self) {
        self.0.runtime_config().elect(true);
    }
}

/// Starts handing leadership of `group` back to `preferred` whenever replica `self_id` leads
/// and `preferred` has caught up (see the module docs). Runs until `shutdown` turns true (or its
/// sender is dropped) or the Raft stops; ends at once without a preferred leader or when this
/// replica is the preferred one.
pub fn spawn_leadership_handback(
    raft: Raft,
    self_id: NodeId,
    group: String,
    preferred: Option<NodeId>,
    writes: WriteHold,
    mut shutdown: watch::Receiver<bool>,
) -> JoinHandle<()> {
    let Some(preferred) = preferred.filter(|p| *p != self_id) else {
        return tokio::spawn(async {});
    };
    let leader = HandingLeader {
        raft,
        self_id,
        group: Arc::from(group),
        preferred,
        writes,
    };
    tokio::spawn(async move {
        tokio::select! {
            _ = leader.run() => {}
            _ = shutdown.wait_for(|stop| *stop) => {}
        }
    })
}

/// A replica that hands leadership to `preferred` when it leads.
struct HandingLeader {
    raft: Raft,
    self_id: NodeId,
    group: Arc<str>,
    preferred: NodeId,
    writes: WriteHold,
}

/// How one handback attempt ended.
#[derive(Debug)]
enum Outcome {
    /// `leader` leads now (the preferred node, or another voter that could win where it could
    /// not).
    NewLeader(NodeId),
    /// The attempt did not depose this leader, or no leader emerged in time.
    NotDone(String),
}

impl HandingLeader {
    async fn run(&self) {
        let mut metrics = self.raft.metrics();
        let mut gate = HandbackGate::default();
        let mut ticks = tokio::time::interval(CHECK_EVERY);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                changed = metrics.changed() => if changed.is_err() { return },
                _ = ticks.tick() => {}
            }
            let now = Instant::now();
            {
                let m = metrics.borrow_and_update();
                if m.running_state.is_err() {
                    return;
                }
                if !gate.observe(LeaderSample::of(&m, self.self_id, self.preferred), now) {
                    continue;
                }
            }
            // A lull of our own making: no new entry until `P` has the last one.
            let hold = self.writes.take();
            let preferred = self.preferred;
            let self_id = self.self_id;
            let caught_up = tokio::time::timeout(HOLD_AT_MOST, async {
                let m = metrics
                    .wait_for(|m| {
                        m.running_state.is_err() || preferred_matched(m, preferred).is_some()
                    })
                    .await?;
                let leads = m.state == ServerState::Leader && m.current_leader == Some(self_id);
                Ok::<_, watch::error::RecvError>(
                    preferred_matched(&m, preferred)
                        .filter(|_| leads && m.running_state.is_ok())
                        .map(|last_log_id| (m.current_term, last_log_id)),
                )
            })
            .await;
            let handback = match caught_up {
                Ok(Ok(Some((term, last_log_id)))) => Handback {
                    leader: OutgoingLeader { id: self_id, term },
                    preferred,
                    last_log_id,
                },
                Ok(Ok(None)) => {
                    gate.attempted(now);
                    continue;
                }
                Ok(Err(_)) => return,
                Err(_) => {
                    drop(hold);
                    gate.attempted(now);
                    info!(group = %self.group, preferred,
                        "the preferred leader did not get the last entry within {HOLD_AT_MOST:?} of holding writes; trying again in {ATTEMPT_INTERVAL:?} at the earliest");
                    continue;
                }
            };
            gate.attempted(now);
            info!(group = %self.group, preferred = self.preferred, term = handback.leader.term,
                last_log_index = ?handback.last_log_id.map(|l| l.index),
                "the preferred leader has caught up; handing leadership back");
            let outcome = self.hand_back(&handback, &mut metrics).await;
            drop(hold);
            let elapsed_ms = now.elapsed().as_millis() as u64;
            match outcome {
                Outcome::NewLeader(leader) if leader == self.preferred => {
                    info!(group = %self.group, new_leader = leader, elapsed_ms, "handed leadership back");
                }
                Outcome::NewLeader(leader) => {
                    info!(group = %self.group, new_leader = leader, preferred = self.preferred, elapsed_ms,
                        "handback ended with another leader");
                }
                Outcome::NotDone(why) => {
                    info!(group = %self.group, preferred = self.preferred, elapsed_ms, reason = %why,
                        "handback did not happen; trying again in {ATTEMPT_INTERVAL:?} at the earliest");
                }
            }
        }
    }

    /// One attempt: steps 2 to 5 of the module docs.
    async fn hand_back(
        &self,
        handback: &Handback,
        metrics: &mut watch::Receiver<RaftMetrics>,
    ) -> Outcome {
        let _pause = ElectionPause::new(&self.raft);
        let (preferred_addr, others) = {
            let m = metrics.borrow();
            let membership = m.membership_config.membership();
            let addr_of = |id: NodeId| membership.get_node(&id).map(|n| n.addr.clone());
            let others: Vec<(NodeId, String)> = membership
                .voter_ids()
                // The witness keeps its short lease and takes no TimeoutNow.
                .filter(|v| {
                    *v != self.self_id && *v != self.preferred && *v != raftmq_raft::WITNESS_NODE_ID
                })
                .filter_map(|v| Some((v, addr_of(v)?)))
                .collect();
            (addr_of(self.preferred), others)
        };
        let Some(preferred_addr) = preferred_addr else {
            return Outcome::NotDone(format!("node {} has no address", self.preferred));
        };
        if let Err(why) = self
            .timeout_now(handback, self.preferred, &preferred_addr)
            .await
        {
            return Outcome::NotDone(why.to_string());
        }

        let term = handback.leader.term;
        let deposed = tokio::time::timeout(
            STEP_DOWN_WAIT,
            metrics.wait_for(|m| m.running_state.is_err() || m.vote.leader_id.term > term),
        )
        .await;
        let (voted_for, last_index) =
            match deposed.map(|r| r.map(|m| (m.running_state.is_ok(), m.vote, m.last_log_index))) {
                Ok(Ok((true, vote, last_index))) => (vote.leader_id.voted_for, last_index),
                Ok(_) => return Outcome::NotDone("Raft stopped".into()),
                Err(_) => {
                    return Outcome::NotDone(format!(
                        "still leading {STEP_DOWN_WAIT:?} after node {} accepted",
                        self.preferred
                    ))
                }
            };
        // Entries appended since the decision may have made this node refuse `P` (a longer
        // log); without any, it granted `P`'s vote, and `P` has its quorum.
        let refused = last_index > handback.last_log_id.map(|l| l.index);
        let mut successor = Successor::NotYet;
        if refused && voted_for == Some(self.preferred) {
            // `P` may have had those entries too and won all the same: its first append would
            // say so, and spare the others an election.
            successor = successor_within(metrics, term, LEADER_NEWS_WAIT).await;
            if successor == Successor::NotYet {
                // The others drop their lease, so that `P` (or whichever of them has the
                // longest log) can win.
                let asks = others.iter().map(|(id, addr)| async move {
                    (*id, self.timeout_now(handback, *id, addr).await)
                });
                for (id, answer) in futures::future::join_all(asks).await {
                    if let Err(why) = answer {
                        debug!(group = %self.group, node = id, reason = %why,
                            "a voter declined to help the handback");
                    }
                }
            }
        }
        if successor == Successor::NotYet {
            successor = successor_within(metrics, term, GIVE_UP_AFTER).await;
        }
        match successor {
            Successor::Known(leader) => Outcome::NewLeader(leader),
            Successor::RaftStopped => Outcome::NotDone("Raft stopped".into()),
            Successor::NotYet => Outcome::NotDone(format!(
                "no new leader {GIVE_UP_AFTER:?} after stepping down; leaving it to Raft's timers"
            )),
        }
    }

    /// Sends `TimeoutNow` for `handback` to `target` at `addr`; `Err` says why it was not
    /// accepted.
    async fn timeout_now(
        &self,
        handback: &Handback,
        target: NodeId,
        addr: &str,
    ) -> crate::Result<()> {
        let request = handback.to_pb(&self.group, target);
        let call = async {
            let channel = peer_endpoint(addr)
                .map_err(|error| Error::PeerAddress {
                    node: target,
                    addr: addr.to_owned(),
                    error,
                })?
                .connect()
                .await
                .map_err(|error| Error::PeerUnreachable {
                    node: target,
                    addr: addr.to_owned(),
                    error,
                })?;
            RaftServiceClient::new(channel)
                .timeout_now(request)
                .await
                .map(|r| r.into_inner())
                .map_err(|s| Error::PeerFailed {
                    node: target,
                    code: s.code(),
                    message: s.message().to_owned(),
                })
        };
        let answer = tokio::time::timeout(RPC_TIMEOUT, call)
            .await
            .map_err(|_| Error::PeerTimeout {
                node: target,
                within: RPC_TIMEOUT,
            })??;
        match answer.status {
            Some(status) if status.is_ok() => Ok(()),
            Some(status) => Err(Error::PeerDeclined {
                node: target,
                code: status.code(),
                remark: status.remark,
            }),
            None => Err(Error::PeerNoStatus { node: target }),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};

    use openraft::{CommittedLeaderId, Membership, StoredMembership};

    use super::*;
    use crate::raft::typ::Node;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    const LEADING: LeaderSample = LeaderSample {
        leading_term: Some(3),
        preferred_caught_up: true,
    };
    const BEHIND: LeaderSample = LeaderSample {
        leading_term: Some(3),
        preferred_caught_up: false,
    };

    #[test]
    fn hands_back_once_the_lease_lapsed_and_the_preferred_node_stayed_caught_up() {
        let t0 = Instant::now();
        let mut gate = HandbackGate::default();
        assert!(!gate.observe(LEADING, t0));
        // Caught up long enough, but the leader's own lease still runs.
        assert!(!gate.observe(LEADING, t0 + CAUGHT_UP_FOR));
        assert!(gate.observe(LEADING, t0 + LEADING_FOR));
        gate.attempted(t0 + LEADING_FOR);
        // Rate-limited, even though nothing else stands in the way.
        assert!(!gate.observe(LEADING, t0 + LEADING_FOR + ms(100)));
        assert!(!gate.observe(LEADING, t0 + LEADING_FOR + ATTEMPT_INTERVAL - ms(1)));
        assert!(gate.observe(LEADING, t0 + LEADING_FOR + ATTEMPT_INTERVAL));
    }

    #[test]
    fn a_flapping_follower_restarts_the_caught_up_clock() {
        let t0 = Instant::now();
        let mut gate = HandbackGate::default();
        assert!(!gate.observe(LEADING, t0));
        assert!(!gate.observe(BEHIND, t0 + ms(1_000)));
        assert!(!gate.observe(LEADING, t0 + ms(1_100)));
        assert!(!gate.observe(LEADING, t0 + ms(1_100) + CAUGHT_UP_FOR - ms(1)));
        assert!(gate.observe(LEADING, t0 + ms(1_100) + CAUGHT_UP_FOR));
    }

    #[test]
    fn a_new_term_or_lost_leadership_starts_over() {
        let t0 = Instant::now();
        let mut gate = HandbackGate::default();
        assert!(!gate.observe(LEADING, t0));
        let next_term = LeaderSample {
            leading_term: Some(4),
            ..LEADING
        };
        assert!(!gate.observe(next_term, t0 + ms(2_000)));
        assert!(!gate.observe(next_term, t0 + ms(2_000) + LEADING_FOR - ms(1)));
        assert!(gate.observe(next_term, t0 + ms(2_000) + LEADING_FOR));

        let mut gate = HandbackGate::default();
        assert!(!gate.observe(LEADING, t0));
        let follower = LeaderSample {
            leading_term: None,
            preferred_caught_up: false,
        };
        assert!(!gate.observe(follower, t0 + ms(1_000)));
        assert!(!gate.observe(LEADING, t0 + ms(2_000)));
        assert!(gate.observe(LEADING, t0 + ms(2_000) + LEADING_FOR));
    }

    fn log_id(term: u64, index: u64) -> LogId {
        LogId::new(CommittedLeaderId::new(term, 0), index)
    }

    /// Metrics of node `id` in a group of voters 0, 1, 2.
    fn metrics(id: NodeId, leader: NodeId, term: u64, last_index: u64) -> RaftMetrics {
        let nodes: BTreeMap<NodeId, Node> = (0..3)
            .map(|i| {
                (
                    i,
                    Node {
                        addr: format!("127.0.0.1:{}", 4000 + i),
                    },
                )
            })
            .collect();
        let voters: BTreeSet<NodeId> = nodes.keys().copied().collect();
        let mut m = RaftMetrics::new_initial(id);
        m.current_term = term;
        m.vote = Vote::new_committed(term, leader);
        m.current_leader = Some(leader);
        m.state = if id == leader {
            ServerState::Leader
        } else {
            ServerState::Follower
        };
        m.last_log_index = Some(last_index);
        m.membership_config = Arc::new(StoredMembership::new(
            Some(log_id(1, 0)),
            Membership::new(vec![voters], nodes),
        ));
        m
    }

    #[test]
    fn close_means_twice_the_proposers_window() {
        assert_eq!(
            CLOSE_ENTRIES,
            2 * crate::service::proposer::MAX_IN_FLIGHT as u64
        );
    }

    #[test]
    fn the_leader_samples_its_replication_progress() {
        let last = 10 + CLOSE_ENTRIES;
        let mut m = metrics(0, 0, 3, last);
        m.replication = Some(BTreeMap::from([
            (0, Some(log_id(3, last))),
            (1, Some(log_id(3, 9))),
            (2, Some(log_id(3, 10))),
        ]));
        // Within CLOSE_ENTRIES: close enough to start (the leader then holds writes until it
        // has the last entry); one more behind is not.
        assert_eq!(LeaderSample::of(&m, 0, 2), LEADING);
        assert_eq!(LeaderSample::of(&m, 0, 1), BEHIND);
        assert_eq!(preferred_matched(&m, 2), None, "not at the last entry yet");
        m.replication = Some(BTreeMap::from([(2, Some(log_id(3, last)))]));
        assert_eq!(preferred_matched(&m, 2), Some(Some(log_id(3, last))));
        // Unknown to replication: not caught up.
        assert!(!LeaderSample::of(&m, 0, 7).preferred_caught_up);
        // A follower never hands back.
        let f = metrics(1, 0, 3, 10);
        assert_eq!(LeaderSample::of(&f, 1, 2).leading_term, None);
    }

    fn handback() -> Handback {
        Handback {
            leader: OutgoingLeader { id: 0, term: 3 },
            preferred: 2,
            last_log_id: Some(log_id(3, 10)),
        }
    }

    #[test]
    fn requests_round_trip_and_malformed_ones_are_refused() {
        let req = handback().to_pb("g", 2);
        assert_eq!((req.group.as_str(), req.target_node_id), ("g", 2));
        assert_eq!(Handback::from_pb(&req), Ok(handback()));

        let mut no_vote = req.clone();
        no_vote.vote = None;
        assert!(Handback::from_pb(&no_vote).is_err());
        let mut not_committed = req.clone();
        not_committed.vote = Some(convert::vote_to_pb(&Vote::new(3, 0)));
        assert!(Handback::from_pb(&not_committed).is_err());
        let mut other_leader = req.clone();
        other_leader.leader_node_id = 1;
        assert!(Handback::from_pb(&other_leader).is_err());
        let mut to_itself = req;
        to_itself.preferred_node_id = 0;
        assert!(Handback::from_pb(&to_itself).is_err());
    }

    #[test]
    fn only_followers_of_that_leader_and_term_take_part() {
        let h = handback();
        assert_eq!(check_handback(&metrics(2, 0, 3, 10), 2, &h), None);
        // The third voter need not have caught up: it only drops its lease.
        assert_eq!(check_handback(&metrics(1, 0, 3, 8), 1, &h), None);
        // The preferred node must have.
        assert!(check_handback(&metrics(2, 0, 3, 9), 2, &h).is_some());
        // A newer term or another leader: the request is stale.
        assert!(check_handback(&metrics(2, 0, 4, 10), 2, &h).is_some());
        assert!(check_handback(&metrics(2, 1, 3, 10), 2, &h).is_some());
        // Non-voters.
        assert!(check_handback(&metrics(5, 0, 3, 10), 5, &h).is_some());
        let to_stranger = Handback {
            preferred: 7,
            ..handback()
        };
        assert!(check_handback(&metrics(1, 0, 3, 10), 1, &to_stranger).is_some());
    }
}
