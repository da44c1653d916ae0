//! Fast failover: noticing a dead leader in milliseconds rather than after Raft's election
//! timeout, and the openraft [`Config`] that goes with it.
//!
//! **Detection.** Every voter keeps one `WatchLeader` stream open to the leader it follows
//! (server side in [`raftmq_raft::service`]); the leader pings it every 100 ms. When the
//! leader's process dies, the OS resets its connections and the stream breaks at once. The
//! follower then *probes*: it dials the leader afresh and asks again. A refused connection, an
//! UNAVAILABLE answer (Raft stopped) or silence means the leader is gone; an answer "I do not
//! lead" means leadership moved on and Raft will say where; a fresh stream means a hiccup.
//! A stream that stays silent for [`PING_SILENCE`] is probed the same way (a frozen host
//! resets nothing).
//!
//! **Election.** openraft 0.9 makes a follower refuse votes while its *leader lease* runs
//! (`election_timeout_max` since the leader last reached it, `Engine::handle_vote_req`), and
//! the lease only lapses for a follower whose vote is committed. So on a dead leader every
//! surviving voter calls `elect()` once at once: that drops its own lease (its vote becomes
//! its own, uncommitted). The first round splits, by design. Then voters campaign again at
//! different paces, by rank (voters other than the dead leader, `preferredLeaderId` first,
//! then by id): rank 0 every [`RETRY`], rank k every `RETRY + k * STAGGER`. The fastest
//! climbs terms fastest, so its next request carries a higher term than anyone else's vote and
//! wins: typically one `RETRY` after the leader died. Two signals cut the wait short: in a
//! 3-voter group the first rank elects again as soon as the other survivor's refusal shows the
//! split ([`VoteRefusals::split_with_peer`]), and a voter that refuses a candidate whose log is
//! behind its own elects again at once ([`VoteRefusals::refused_shorter_log`]); kill -9 to the
//! first ack then takes about 15 ms here. Two rules keep voters from undoing each
//! other: a voter that has just granted its vote to another candidate waits
//! ([`GRANT_GRACE`]) for that candidate's first append instead of campaigning over it; and a
//! voter that a peer refused because the peer's log is ahead stops campaigning, so the peer
//! (which is the one that can win) gets through. The campaign stops as soon as any leader
//! other than the dead one is known, or after [`GIVE_UP_AFTER`], leaving the rest to Raft's
//! own timers. Metrics trail Raft, so before each election the campaign asks Raft for its
//! vote: one committed to a new leader means that leader's first append is in, and an election
//! would only depose it.
//!
//! **Handback.** The same campaign hands leadership back to `preferredLeaderId`
//! ([`crate::raft::handback`]): the leader sends `TimeoutNow` to the voters, and each runs
//! [`Campaign::run`] with the (live) leader as the one to replace and the preferred node ranked
//! first, started from the TimeoutNow handler ([`spawn_handback_campaign`]) instead of the
//! detector. Its first election is meant to win, so it retries only once the answers to the
//! previous round are in ([`HANDBACK_PATIENCE`]).
//!
//! The detector must not run on a witness (a voter that never campaigns).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use openraft::ServerState;
use proto::v1 as pb;
use proto::v1::leader_watch_service_client::LeaderWatchServiceClient;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tonic::Code;
use tracing::{debug, info, warn};

use raftmq_raft::network::{peer_endpoint, VoteObserver};
use raftmq_raft::rejoin::VoteGate;
use raftmq_raft::WITNESS_NODE_ID;

use crate::raft::typ::{NodeId, Raft, RaftMetrics, Vote};

// ---- timing of detection and campaign ----

/// A watched stream that brings nothing for this long is probed.
pub const PING_SILENCE: Duration = Duration::from_millis(500);
/// Deadline of a probe: connect, ask, get the first ping.
pub const PROBE_TIMEOUT: Duration = Duration::from_millis(250);
/// How soon a follower asks again a leader that said it does not lead.
pub const NOT_LEADER_RETRY: Duration = Duration::from_millis(200);
/// Pace of the first-ranked voter's campaign; slower ranks add [`STAGGER`] per rank.
pub const RETRY: Duration = Duration::from_millis(25);
/// Extra pause per rank between campaign attempts.
pub const STAGGER: Duration = Duration::from_millis(50);
/// How long a voter that granted its vote to another candidate waits for that candidate to
/// win before campaigning again.
pub const GRANT_GRACE: Duration = Duration::from_millis(100);
/// Extra pause between the elections of a handback campaign, at every rank (so the ranks keep
/// their order): openraft's deadline for the answers to a vote request (`election_timeout_min`),
/// so a round is decided before the next starts.
pub const HANDBACK_PATIENCE: Duration = Duration::from_millis(raftmq_raft::timing::ELECTION_MIN_MS);
/// After this, the campaign stops and Raft's own election timers take over.
pub const GIVE_UP_AFTER: Duration = Duration::from_secs(2);

/// Pause between campaign attempts of a voter of rank `rank`.
pub fn retry_interval(rank: usize) -> Duration {
    RETRY + STAGGER * u32::try_from(rank).unwrap_or(u32::MAX / 1_000).min(1_000)
}

/// Whether a campaign retries at once after a split vote ([`VoteRefusals::split_with_peer`]).
/// After a split with the other survivor of a 3-voter group the term is lost for sure (the
/// third voter is the dead leader), so the first rank may try again at once; only the first,
/// or the two would split again. With more voters, or in a handback (the outgoing leader still
/// votes), the term may still be won, and retrying would throw it away.
pub fn retries_on_split(rank: usize, cause: CampaignCause, voters: usize) -> bool {
    rank == 0 && matches!(cause, CampaignCause::LeaderGone) && voters <= 3
}

/// Position of `self_id` among the voters that may succeed `outgoing`: `preferred` first (if it
/// is one of them), then by id. `None` when `self_id` is not among them.
pub fn election_rank(
    self_id: NodeId,
    outgoing: NodeId,
    voters: &[NodeId],
    preferred: Option<NodeId>,
) -> Option<usize> {
    let mut order: Vec<NodeId> = voters.iter().copied().filter(|v| *v != outgoing).collect();
    order.sort_unstable();
    order.dedup();
    order.sort_by_key(|v| Some(*v) != preferred);
    order.iter().position(|v| *v == self_id)
}

// ---- what vote replies said ----

/// Peers whose log is ahead of this replica's and that are active in a campaign, with the term
/// they were seen in: a voter that cannot win stops competing. The detector's copy is filled by
/// the network layer with peers that refused this replica's vote requests (it is the network's
/// [`VoteObserver`]);
/// the Raft service's copy with candidates this replica refused
/// ([`VoteRefusals::refused_longer_log`]), for the campaigns it starts on `TimeoutNow`.
#[derive(Clone, Debug, Default)]
pub struct VoteRefusals {
    by_peer: Arc<Mutex<BTreeMap<NodeId, u64>>>,
    /// Wakes a waiting campaign: this replica refused a candidate whose log is behind its own.
    behind_refused: Arc<tokio::sync::Notify>,
    /// Wakes a waiting first-ranked campaign: a peer whose log is not ahead stood in the same
    /// term (a split vote).
    split: Arc<tokio::sync::Notify>,
}

impl VoteRefusals {
    /// Records that `peer` refused a vote request of `term` because its log is ahead.
    pub fn log_ahead(&self, peer: NodeId, term: u64) {
        let mut by_peer = self.by_peer.lock().unwrap_or_else(|p| p.into_inner());
        let at = by_peer.entry(peer).or_default();
        *at = (*at).max(term);
    }

    /// Records that this replica refused the vote request of `candidate` in `term` (its lease or
    /// its own vote stood in the way) although the candidate's log is ahead: that candidate can
    /// win where this replica may not.
    pub fn refused_longer_log(&self, candidate: NodeId, term: u64) {
        self.log_ahead(candidate, term);
    }

    /// Records that this replica refused the vote request of a candidate whose log is behind
    /// its own. Such a candidate cannot win, but this replica can: a campaign waiting out its
    /// rank's pace tries again at once instead (after a leader died with followers at
    /// different log lengths, as under ASYNC_MASTER, the lower rank is often the one behind).
    /// Only a campaign waiting right now is woken; nothing is remembered for a later one.
    pub fn refused_shorter_log(&self) {
        self.behind_refused.notify_waiters();
    }

    /// Resolves at the next [`VoteRefusals::refused_shorter_log`].
    pub async fn shorter_log_refused(&self) {
        self.behind_refused.notified().await;
    }

    /// Records that a peer whose log is not ahead of this replica's refused its vote request
    /// because it stood as a candidate in the same term: the split every failover starts with,
    /// since each survivor elects once to drop its leader lease. The peer's lease is gone now,
    /// so the first-ranked voter's next election wins, and there is no reason to wait out its
    /// pace for it. Only a campaign waiting right now is woken.
    pub fn split_with_peer(&self) {
        self.split.notify_waiters();
    }

    /// Resolves at the next [`VoteRefusals::split_with_peer`].
    pub async fn split_vote(&self) {
        self.split.notified().await;
    }

    /// Forgets every record.
    pub fn clear(&self) {
        self.by_peer
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
    }

    /// Whether `peer` refused a vote request of a term after `term` because its log is ahead.
    pub fn refused_by(&self, peer: NodeId, term: u64) -> bool {
        self.by_peer
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&peer)
            .is_some_and(|t| *t > term)
    }

    /// Whether a peer with a longer log was seen in a term after `term`.
    pub fn outdone_after(&self, term: u64) -> bool {
        self.by_peer
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .any(|t| *t > term)
    }
}

/// What the network layer learns from the answers to this replica's vote requests.
impl VoteObserver for VoteRefusals {
    fn log_ahead(&self, peer: NodeId, term: u64) {
        VoteRefusals::log_ahead(self, peer, term);
    }

    fn split_with_peer(&self) {
        VoteRefusals::split_with_peer(self);
    }
}

// ---- the campaign's decisions (pure) ----

/// The leader a campaign replaces: one that died, or one handing leadership back to the
/// preferred leader. Its id and the term it led.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutgoingLeader {
    pub id: NodeId,
    pub term: u64,
}

/// What a voter knows when choosing its next move while replacing its leader.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CampaignView {
    /// The leader Raft knows of (from a committed vote).
    pub current_leader: Option<NodeId>,
    /// This replica's vote.
    pub vote: Vote,
    /// How long `vote` has been what it is.
    pub vote_age: Duration,
    /// A peer whose log is ahead refused one of this campaign's vote requests.
    pub outdone_by_log: bool,
}

/// The campaign's next move.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CampaignStep {
    /// A new leader is known: stop.
    Done(NodeId),
    /// Start (another) election.
    Elect,
    /// Let another candidate try first.
    Wait,
}

/// Decides the next move of voter `self_id` in its campaign to replace `outgoing`.
pub fn campaign_step(
    view: &CampaignView,
    self_id: NodeId,
    outgoing: OutgoingLeader,
) -> CampaignStep {
    if let Some(leader) = view.current_leader {
        if leader != outgoing.id || view.vote.leader_id.term > outgoing.term {
            return CampaignStep::Done(leader);
        }
    }
    if view.outdone_by_log {
        return CampaignStep::Wait;
    }
    let voted_for_other = !view.vote.committed
        && view.vote.leader_id.term > outgoing.term
        && view
            .vote
            .leader_id
            .voted_for
            .is_some_and(|v| v != self_id && v != outgoing.id);
    if voted_for_other && view.vote_age < GRANT_GRACE {
        return CampaignStep::Wait;
    }
    CampaignStep::Elect
}

/// Whether `vote` (this replica's, as Raft holds it) names an established leader that replaces
/// `outgoing`: campaigning would only depose it.
pub fn leader_established(vote: &Vote, outgoing: OutgoingLeader) -> bool {
    vote.committed
        && (vote.leader_id.term > outgoing.term || vote.leader_id.voted_for != Some(outgoing.id))
}

/// The leader a voter should watch: known, not itself, with an address. `None` for a
/// learner, a leader, or while no leader is known.
fn leader_to_watch(m: &RaftMetrics, self_id: NodeId) -> Option<(OutgoingLeader, String)> {
    let leader = m.current_leader?;
    let membership = m.membership_config.membership();
    if leader == self_id
        || m.state != ServerState::Follower
        || !membership.voter_ids().any(|v| v == self_id)
    {
        return None;
    }
    let addr = membership.get_node(&leader)?.addr.clone();
    Some((
        OutgoingLeader {
            id: leader,
            term: m.current_term,
        },
        addr,
    ))
}

// ---- the campaign ----

/// Why a campaign runs: it sets the pace between attempts and whether a split vote is retried
/// at once ([`retries_on_split`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CampaignCause {
    /// The detector found the leader gone.
    LeaderGone,
    /// The leader asked for it (`TimeoutNow`), to hand leadership to the preferred leader.
    Handback,
}

/// What one replica needs to campaign for its leader's place (see the module docs), shared by
/// the failover detector and the `TimeoutNow` handler.
#[derive(Clone)]
pub struct Campaign {
    raft: Raft,
    self_id: NodeId,
    group: Arc<str>,
    /// Ranked first among the successors (`preferredLeaderId`).
    preferred: Option<NodeId>,
    /// Tells this replica to stop competing with a peer that can win where it cannot.
    refusals: VoteRefusals,
    /// A replica that lost its store never campaigns before it has caught up.
    gate: VoteGate,
    /// `enableElectUncleanMaster`: when the witness refuses this slave because its log is
    /// ahead, ask it to forget the entries this slave lacks ([`Campaign::elect_unclean`]); the
    /// replica's log says what it has.
    unclean: Option<raft_log::LogStore>,
}

impl Campaign {
    /// The campaign of replica `self_id` of `group`, with `preferred` ranked first.
    pub fn new(
        raft: Raft,
        self_id: NodeId,
        group: impl Into<Arc<str>>,
        preferred: Option<NodeId>,
        refusals: VoteRefusals,
    ) -> Self {
        Campaign {
            raft,
            self_id,
            group: group.into(),
            preferred,
            refusals,
            gate: VoteGate::member(),
            unclean: None,
        }
    }

    /// Allows unclean elections (`enableElectUncleanMaster=true`, classic groups) for the
    /// replica whose log is `log`.
    pub fn electing_unclean(mut self, log: Option<raft_log::LogStore>) -> Self {
        self.unclean = log;
        self
    }

    /// After a failed campaign to replace `outgoing`: if unclean elections are allowed and the
    /// witness refused this replica for a longer log, asks the witness to forget what this
    /// replica lacks and campaigns again. True when a new leader is known after that.
    async fn elect_unclean(
        &self,
        outgoing: OutgoingLeader,
        metrics: &mut watch::Receiver<RaftMetrics>,
    ) -> bool {
        let Some(log) = &self.unclean else {
            return false;
        };
        if !self.gate.may_vote() || !self.refusals.refused_by(WITNESS_NODE_ID, outgoing.term) {
            return false;
        }
        let Some(witness_addr) = metrics
            .borrow()
            .membership_config
            .membership()
            .get_node(&WITNESS_NODE_ID)
            .map(|n| n.addr.clone())
        else {
            return false;
        };
        let keep = log.last_log_id();
        let request = pb::ForgetWitnessTailRequest {
            group: self.group.to_string(),
            asker_node_id: self.self_id,
            keep: keep.map(|l| pb::LogId {
                term: l.term,
                node_id: 0,
                index: l.index,
            }),
        };
        let call = async {
            let channel = peer_endpoint(&witness_addr)
                .map_err(|e| e.to_string())?
                .connect()
                .await
                .map_err(|e| e.to_string())?;
            proto::RaftServiceClient::new(channel)
                .forget_witness_tail(request)
                .await
                .map(tonic::Response::into_inner)
                .map_err(|s| s.message().to_owned())
        };
        match tokio::time::timeout(Duration::from_secs(5), call).await {
            Ok(Ok(answer)) => {
                warn!(group = %self.group, old_leader = outgoing.id, forgotten_entries = answer.forgotten_entries,
                    witness_last = ?answer.last_before.map(|l| l.index), keep = ?keep.map(|l| l.index),
                    "unclean election (enableElectUncleanMaster=true): electing this out-of-sync slave; \
                     the entries only the dead master had are given up");
                self.refusals.clear();
                self.run(outgoing, CampaignCause::LeaderGone, metrics).await
            }
            Ok(Err(why)) => {
                info!(group = %self.group, %why, "the witness refused an unclean election; waiting for the master");
                false
            }
            Err(_) => {
                info!(group = %self.group, witness = %witness_addr, "no answer from the witness for an unclean election");
                false
            }
        }
    }

    /// Campaigns only while `gate` lets this replica vote.
    pub fn with_vote_gate(mut self, gate: VoteGate) -> Self {
        self.gate = gate;
        self
    }

    /// Campaigns to replace `outgoing` until a new leader is known (true) or the campaign gives
    /// up or cannot run (false). The first move is an election (unless a leader is already
    /// known): that drops this voter's leader lease, so it can vote for whoever wins.
    pub async fn run(
        &self,
        outgoing: OutgoingLeader,
        cause: CampaignCause,
        metrics: &mut watch::Receiver<RaftMetrics>,
    ) -> bool {
        let started = Instant::now();
        let voters: Vec<NodeId> = metrics
            .borrow()
            .membership_config
            .membership()
            .voter_ids()
            .collect();
        let Some(rank) = election_rank(self.self_id, outgoing.id, &voters, self.preferred) else {
            return false;
        };
        // After a dead leader the first round splits by design, and the fastest retry wins the
        // next. A handback's election is meant to win at once (the leader's lease has lapsed, the
        // preferred node has its log); retrying before the answers are in would throw a won
        // term away, and on a loaded machine, where a vote round trip can exceed `RETRY`, keep
        // doing so round after round.
        let pace = match cause {
            CampaignCause::LeaderGone => retry_interval(rank),
            CampaignCause::Handback => retry_interval(rank) + HANDBACK_PATIENCE,
        };
        let retry_on_split = retries_on_split(rank, cause, voters.len());
        let mut last_vote: Option<(Vote, Instant)> = None;
        let mut attempts = 0u32;
        loop {
            let now = Instant::now();
            let step = {
                let m = metrics.borrow_and_update();
                if m.running_state.is_err() {
                    return false;
                }
                let since = match last_vote {
                    Some((vote, since)) if vote == m.vote => since,
                    _ => now,
                };
                last_vote = Some((m.vote, since));
                let view = CampaignView {
                    current_leader: m.current_leader,
                    vote: m.vote,
                    vote_age: now - since,
                    outdone_by_log: self.refusals.outdone_after(outgoing.term),
                };
                campaign_step(&view, self.self_id, outgoing)
            };
            match step {
                CampaignStep::Done(leader) => {
                    let after = match cause {
                        CampaignCause::LeaderGone => "failover",
                        CampaignCause::Handback => "handback",
                    };
                    info!(group = %self.group, old_leader = outgoing.id, new_leader = leader, rank, attempts,
                        elapsed_ms = started.elapsed().as_millis() as u64, "new leader after {after}");
                    return true;
                }
                CampaignStep::Elect => {
                    // Metrics trail Raft: a new leader's first append may already be in, and an
                    // election now would depose it. Raft's own state is current.
                    let live = self.raft.with_raft_state(|st| *st.vote_ref()).await;
                    let vote = match live {
                        Ok(vote) => vote,
                        Err(fatal) => {
                            debug!(group = %self.group, error = %fatal, "Raft stopped during the campaign");
                            return false;
                        }
                    };
                    if !self.gate.may_vote() {
                        // `trigger().elect()` ignores openraft's `enable_elect`: the gate is
                        // checked here, before every election this replica starts.
                        debug!(group = %self.group, "not electing: this replica has not caught up since it lost its store");
                        return false;
                    }
                    if leader_established(&vote, outgoing) {
                        debug!(group = %self.group, %vote, "a new leader is established; not electing");
                    } else {
                        attempts += 1;
                        debug!(group = %self.group, rank, attempts, ?cause, "starting an election");
                        if let Err(fatal) = self.raft.trigger().elect().await {
                            debug!(group = %self.group, error = %fatal, "Raft stopped during the campaign");
                            return false;
                        }
                    }
                }
                CampaignStep::Wait => {}
            }
            if started.elapsed() >= GIVE_UP_AFTER {
                // A handback is optional: the old leader was fine, so failing it is no warning.
                match cause {
                    CampaignCause::LeaderGone => {
                        warn!(group = %self.group, old_leader = outgoing.id, rank, attempts,
                        "no new leader after {GIVE_UP_AFTER:?}; leaving it to Raft's election timers")
                    }
                    CampaignCause::Handback => {
                        info!(group = %self.group, old_leader = outgoing.id, rank, attempts,
                        "handback campaign: no new leader after {GIVE_UP_AFTER:?}; leaving it to Raft's election timers")
                    }
                }
                return false;
            }
            // Until the next attempt, only a new leader interrupts.
            let next = Instant::now() + pace;
            loop {
                tokio::select! {
                    changed = metrics.changed() => {
                        if changed.is_err() {
                            return false;
                        }
                        if metrics.borrow().current_leader.is_some_and(|l| l != outgoing.id) {
                            break;
                        }
                    }
                    _ = tokio::time::sleep_until(next) => break,
                    () = self.refusals.shorter_log_refused() => {
                        debug!(group = %self.group, rank, "refused a candidate whose log is behind mine; electing now");
                        break;
                    }
                    // Only the first rank: two voters both retrying at once would split again.
                    () = self.refusals.split_vote(), if retry_on_split => {
                        debug!(group = %self.group, "split vote with a peer that is not ahead; electing now");
                        break;
                    }
                }
            }
        }
    }
}

/// Starts the campaign a `TimeoutNow` asks for: replace `outgoing`, which is alive and hands
/// leadership away, with `campaign`'s preferred node ranked first. Ends when a new leader is
/// known (true), when the campaign gives up (false) or when `shutdown` turns true (false).
pub fn spawn_handback_campaign(
    campaign: Campaign,
    outgoing: OutgoingLeader,
    shutdown: Option<watch::Receiver<bool>>,
) -> JoinHandle<bool> {
    tokio::spawn(async move {
        let mut metrics = campaign.raft.metrics();
        let stopping = async move {
            match shutdown {
                Some(mut rx) => {
                    let _ = rx.wait_for(|stop| *stop).await;
                }
                None => std::future::pending::<()>().await,
            }
        };
        tokio::select! {
            won = campaign.run(outgoing, CampaignCause::Handback, &mut metrics) => won,
            _ = stopping => false,
        }
    })
}

// ---- the detector ----

/// Starts watching the leader for the replica `campaign` describes (see the module docs);
/// runs until `shutdown` turns true (or its sender is dropped) or the Raft stops.
///
/// The campaign's refusals must be the [`VoteRefusals`] of the replica's
/// `GrpcNetworkFactory`; its preferred node is `preferredLeaderId`, which campaigns first.
pub fn spawn_failover_detector(
    campaign: Campaign,
    mut shutdown: watch::Receiver<bool>,
) -> JoinHandle<()> {
    let detector = Detector { campaign };
    tokio::spawn(async move {
        tokio::select! {
            _ = detector.run() => {}
            _ = shutdown.wait_for(|stop| *stop) => {}
        }
    })
}

/// Watches the leader and campaigns when it is gone; `campaign` also says who this replica is.
struct Detector {
    campaign: Campaign,
}

/// Why watching a leader ended.
enum WatchEnd {
    /// Raft now names another leader or term: watch that one.
    LeaderChanged,
    /// Our Raft stopped.
    RaftStopped,
    /// The target says it does not lead; Raft will learn who does.
    NotLeader,
    /// The target cannot take part in this (an older peer without the service): nothing to
    /// detect with.
    Unsupported,
    /// The leader is gone.
    Gone(String),
}

/// A live `WatchLeader` stream.
type PingStream = tonic::Streaming<pb::LeaderPing>;

impl Detector {
    async fn run(&self) {
        let me = &self.campaign;
        let mut metrics = me.raft.metrics();
        // The leader a campaign already failed to replace: not campaigned against twice.
        let mut given_up: Option<OutgoingLeader> = None;
        loop {
            let (target, addr) = loop {
                let found = {
                    let m = metrics.borrow_and_update();
                    if m.running_state.is_err() || m.state == ServerState::Shutdown {
                        return;
                    }
                    leader_to_watch(&m, me.self_id).filter(|(t, _)| Some(*t) != given_up)
                };
                if let Some(found) = found {
                    break found;
                }
                if metrics.changed().await.is_err() {
                    return;
                }
            };
            given_up = None;
            match self.watch(target, &addr, &mut metrics).await {
                WatchEnd::LeaderChanged => {}
                WatchEnd::RaftStopped => return,
                WatchEnd::NotLeader => {
                    // Raft will learn who leads. Ask again shortly all the same: this replica
                    // may have heard of the new leader before the leader's own metrics said so.
                    let _ = tokio::time::timeout(NOT_LEADER_RETRY, metrics.changed()).await;
                }
                WatchEnd::Unsupported => given_up = Some(target),
                WatchEnd::Gone(why) => {
                    info!(group = %me.group, leader = target.id, term = target.term, reason = %why,
                        "leader is gone; campaigning");
                    if !me
                        .run(target, CampaignCause::LeaderGone, &mut metrics)
                        .await
                        && !me.elect_unclean(target, &mut metrics).await
                    {
                        given_up = Some(target);
                    }
                }
            }
        }
    }

    /// Follows `target` until it changes or is found gone.
    async fn watch(
        &self,
        target: OutgoingLeader,
        addr: &str,
        metrics: &mut watch::Receiver<RaftMetrics>,
    ) -> WatchEnd {
        let me = &self.campaign;
        let mut stream = match self.open(target, addr).await {
            Ok(stream) => stream,
            Err(end) => return end,
        };
        debug!(group = %me.group, leader = target.id, term = target.term, "watching the leader");
        loop {
            let broken = tokio::select! {
                biased;
                changed = metrics.changed() => {
                    if changed.is_err() {
                        return WatchEnd::RaftStopped;
                    }
                    let m = metrics.borrow_and_update();
                    if m.running_state.is_err() {
                        return WatchEnd::RaftStopped;
                    }
                    if leader_to_watch(&m, me.self_id).map(|(t, _)| t) != Some(target) {
                        return WatchEnd::LeaderChanged;
                    }
                    continue;
                }
                next = tokio::time::timeout(PING_SILENCE, stream.message()) => match next {
                    Ok(Ok(Some(_ping))) => continue,
                    Ok(Ok(None)) => "the leader ended the stream".to_owned(),
                    Ok(Err(status)) if status.code() == Code::FailedPrecondition => return WatchEnd::NotLeader,
                    Ok(Err(status)) => format!("stream broke: {}: {}", status.code(), status.message()),
                    Err(_) => format!("no ping for {PING_SILENCE:?}"),
                },
            };
            debug!(group = %me.group, leader = target.id, reason = %broken, "probing the leader");
            stream = match self.open(target, addr).await {
                Ok(stream) => stream,
                Err(WatchEnd::Gone(why)) => return WatchEnd::Gone(format!("{broken}; then {why}")),
                Err(end) => return end,
            };
        }
    }

    /// Dials the leader afresh and waits for its first ping.
    async fn open(&self, target: OutgoingLeader, addr: &str) -> Result<PingStream, WatchEnd> {
        let request = pb::WatchLeaderRequest {
            group: self.campaign.group.to_string(),
            target_node_id: target.id,
            follower_node_id: self.campaign.self_id,
        };
        let attempt = async {
            let endpoint = peer_endpoint(addr)
                .map_err(|e| WatchEnd::Gone(format!("bad address {addr:?}: {e}")))?;
            let channel = endpoint
                .connect()
                .await
                .map_err(|e| WatchEnd::Gone(format!("cannot connect to {addr}: {e}")))?;
            let mut client = LeaderWatchServiceClient::new(channel);
            let mut stream = client
                .watch_leader(request)
                .await
                .map_err(end_of)?
                .into_inner();
            match stream.message().await {
                Ok(Some(_first_ping)) => Ok(stream),
                Ok(None) => Err(WatchEnd::Gone("the leader ended the stream".to_owned())),
                Err(status) => Err(end_of(status)),
            }
        };
        match tokio::time::timeout(PROBE_TIMEOUT, attempt).await {
            Ok(result) => result,
            Err(_) => Err(WatchEnd::Gone(format!(
                "no answer from {addr} within {PROBE_TIMEOUT:?}"
            ))),
        }
    }
}

/// What a failed WatchLeader call says about the target.
fn end_of(status: tonic::Status) -> WatchEnd {
    match status.code() {
        Code::FailedPrecondition => WatchEnd::NotLeader,
        Code::Unimplemented => WatchEnd::Unsupported,
        _ => WatchEnd::Gone(format!("{}: {}", status.code(), status.message())),
    }
}

#[cfg(test)]
mod tests {
    use openraft::LeaderId;

    use super::*;

    const DEAD: OutgoingLeader = OutgoingLeader { id: 0, term: 5 };

    fn view(current_leader: Option<NodeId>, vote: Vote, vote_age_ms: u64) -> CampaignView {
        CampaignView {
            current_leader,
            vote,
            vote_age: Duration::from_millis(vote_age_ms),
            outdone_by_log: false,
        }
    }

    #[test]
    fn ranks_put_the_preferred_leader_first_then_ids() {
        let voters = [0, 1, 2, 3, 4];
        assert_eq!(election_rank(1, 0, &voters, None), Some(0));
        assert_eq!(election_rank(4, 0, &voters, None), Some(3));
        assert_eq!(election_rank(3, 0, &voters, Some(3)), Some(0));
        assert_eq!(election_rank(1, 0, &voters, Some(3)), Some(1));
        // A preferred leader that is the dead one does not count.
        assert_eq!(election_rank(1, 0, &voters, Some(0)), Some(0));
        assert_eq!(election_rank(0, 0, &voters, None), None);
        assert_eq!(election_rank(9, 0, &voters, None), None);
        assert!(retry_interval(0) < retry_interval(1) && retry_interval(1) < retry_interval(2));
        assert_eq!(retry_interval(usize::MAX), retry_interval(1_000));
    }

    #[test]
    fn campaign_stops_once_another_leader_is_known() {
        assert_eq!(
            campaign_step(&view(Some(2), Vote::new_committed(6, 2), 0), 1, DEAD),
            CampaignStep::Done(2)
        );
        assert_eq!(
            campaign_step(&view(Some(1), Vote::new_committed(6, 1), 0), 1, DEAD),
            CampaignStep::Done(1)
        );
        // The old leader came back and won a later term: fine too.
        assert_eq!(
            campaign_step(&view(Some(0), Vote::new_committed(7, 0), 0), 1, DEAD),
            CampaignStep::Done(0)
        );
        // Still following the dead one: elect.
        assert_eq!(
            campaign_step(&view(Some(0), Vote::new_committed(5, 0), 0), 1, DEAD),
            CampaignStep::Elect
        );
    }

    #[test]
    fn an_established_new_leader_is_never_deposed() {
        assert!(leader_established(&Vote::new_committed(6, 2), DEAD));
        assert!(leader_established(&Vote::new_committed(6, 0), DEAD));
        assert!(!leader_established(&Vote::new_committed(5, 0), DEAD));
        assert!(!leader_established(&Vote::new(6, 2), DEAD));
    }

    #[test]
    fn campaign_keeps_electing_while_its_own_candidacy_fails() {
        assert_eq!(
            campaign_step(&view(None, Vote::new(8, 1), 500), 1, DEAD),
            CampaignStep::Elect
        );
        let no_node = Vote {
            leader_id: LeaderId {
                term: 8,
                voted_for: None,
            },
            committed: false,
        };
        assert_eq!(
            campaign_step(&view(None, no_node, 0), 1, DEAD),
            CampaignStep::Elect
        );
    }

    #[test]
    fn campaign_gives_a_candidate_it_voted_for_time_to_win() {
        assert_eq!(
            campaign_step(&view(None, Vote::new(8, 2), 10), 1, DEAD),
            CampaignStep::Wait
        );
        assert_eq!(
            campaign_step(&view(None, Vote::new(8, 2), 150), 1, DEAD),
            CampaignStep::Elect
        );
        // A vote for the dead leader or from its own term is no reason to wait.
        assert_eq!(
            campaign_step(&view(None, Vote::new(8, 0), 10), 1, DEAD),
            CampaignStep::Elect
        );
        assert_eq!(
            campaign_step(&view(None, Vote::new(5, 2), 10), 1, DEAD),
            CampaignStep::Elect
        );
    }

    #[test]
    fn campaign_yields_to_a_peer_with_a_longer_log() {
        let mut v = view(None, Vote::new(9, 1), 500);
        v.outdone_by_log = true;
        assert_eq!(campaign_step(&v, 1, DEAD), CampaignStep::Wait);

        let refusals = VoteRefusals::default();
        assert!(!refusals.outdone_after(5));
        refusals.log_ahead(2, 4);
        assert!(
            !refusals.outdone_after(5),
            "a refusal from an earlier campaign"
        );
        refusals.log_ahead(2, 7);
        refusals.log_ahead(2, 6);
        assert!(refusals.outdone_after(5) && !refusals.outdone_after(7));
        refusals.clear();
        assert!(!refusals.outdone_after(5));
        refusals.refused_longer_log(1, 6);
        assert!(refusals.outdone_after(5));
    }

    #[test]
    fn only_the_first_rank_of_a_three_voter_failover_retries_on_a_split() {
        assert!(retries_on_split(0, CampaignCause::LeaderGone, 3));
        assert!(!retries_on_split(1, CampaignCause::LeaderGone, 3));
        assert!(!retries_on_split(0, CampaignCause::Handback, 3));
        assert!(!retries_on_split(0, CampaignCause::LeaderGone, 5));
    }

    #[tokio::test]
    async fn a_split_vote_wakes_a_waiting_campaign_only() {
        assert_wakes_only_a_waiting_campaign(
            |r| r.split_with_peer(),
            |r| async move { r.split_vote().await },
        )
        .await;
    }

    #[tokio::test]
    async fn refusing_a_candidate_that_is_behind_wakes_a_waiting_campaign_only() {
        assert_wakes_only_a_waiting_campaign(
            |r| r.refused_shorter_log(),
            |r| async move { r.shorter_log_refused().await },
        )
        .await;
    }

    /// A `signal` given while nobody waits is not kept for a later `wait`; a `wait` in progress
    /// (on a clone, as the Raft service and the campaign each hold one) is woken by it.
    async fn assert_wakes_only_a_waiting_campaign<W, Fut>(signal: fn(&VoteRefusals), wait: W)
    where
        W: Fn(VoteRefusals) -> Fut,
        Fut: std::future::Future<Output = ()> + Send + 'static,
    {
        let refusals = VoteRefusals::default();
        signal(&refusals);
        let stale = tokio::time::timeout(Duration::from_millis(50), wait(refusals.clone()));
        assert!(
            stale.await.is_err(),
            "a signal before the wait must not wake it"
        );
        let waiting = tokio::spawn(wait(refusals.clone()));
        // Signal until the waiter ends: its wait may start after the first signal.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
        while !waiting.is_finished() && tokio::time::Instant::now() < deadline {
            signal(&refusals);
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert!(waiting.is_finished(), "the waiting campaign was not woken");
    }
}
