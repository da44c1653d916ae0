//! The campaign that replaces a leader (see the parent module's docs, "Election" and
//! "Handback"): its pace and ranks, the pure decision of each step, and the loop that elects.

use std::sync::Arc;
use std::time::Duration;

use proto::v1 as pb;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tracing::{debug, info, warn};

use raftmq_raft::network::peer_endpoint;
use raftmq_raft::rejoin::VoteGate;
use raftmq_raft::WITNESS_NODE_ID;

use super::votes::VoteRefusals;
use crate::raft::typ::{NodeId, Raft, RaftMetrics, Vote};

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
    pub(super) raft: Raft,
    pub(super) self_id: NodeId,
    pub(super) group: Arc<str>,
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
    pub(super) async fn elect_unclean(
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
}
