//! A replica whose store is empty must not vote until it knows it may.
//!
//! Raft's safety rests on every voter remembering what it acknowledged. A replica whose disk
//! was wiped remembers nothing: were it to vote at once, a stale peer could win its vote and,
//! with it, a majority that lacks entries the group committed. (Reproduced before this
//! module: with C paused, 5,000 sends acknowledged on A and B; A paused; B wiped and
//! restarted; C resumed: B voted C leader, and every one of those messages was gone.)
//!
//! So a replica that starts with an empty store (no vote, no log, no snapshot) starts
//! **undecided**: it grants no vote and does not campaign, and asks its peers what their stores
//! hold (`ReplicaState`):
//! - a peer that has taken part in the group (a vote or entries) means the group exists: the
//!   replica is **rejoining**, and stays unable to vote until it has caught up with a leader
//!   (it has applied an entry of the current leader's term, so it holds everything the group
//!   committed before that term);
//! - every peer answering with an empty store means the group is new: the replica is a
//!   **member** at once, and the founder (the lowest id) may form the group;
//! - a peer that does not answer leaves the question open: the replica waits (it never founds
//!   a second group beside one it cannot see).
//!
//! One vote is always allowed: for a candidate whose log ends at index 0, the initial
//! membership that only the founder writes. Such a candidate is the founder's first campaign,
//! which proves no leader was ever elected (a first leader's log holds its blank entry), so
//! nothing committed can be lost by electing it; without this, replicas that polled just after
//! the founder initialized would keep a new group from ever electing a leader.
//!
//! A replica restarted with its store (even one cut short by a torn tail) is a member from the
//! start: what it lost was never acknowledged under `SYNC_FLUSH`, and a restarted leader never
//! resumes its old term (see `raft_log::raft::RaftLogStore::read_vote`).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use openraft::ServerState;
use proto::v1 as pb;
use proto::RaftServiceClient;
use tokio::sync::watch;
use tracing::{debug, info};

use crate::network::peer_endpoint;
use crate::typ::{GroupTypes, LogId, NodeId, Raft, RaftMetrics};

/// Pause between two rounds of asking the peers.
const ASK_EVERY: Duration = Duration::from_millis(200);
/// Deadline of one `ReplicaState` call.
const ASK_TIMEOUT: Duration = Duration::from_millis(500);

/// Where a replica stands in its group, as far as voting goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Standing {
    /// A member: votes and campaigns as Raft says.
    Member,
    /// Empty store, and it is not known yet whether the group exists.
    Undecided,
    /// Empty store in a group that exists: catching up, no vote yet.
    Rejoining,
}

/// Whether this replica may vote and campaign; shared by the Raft service (votes), the
/// failover detector and handback campaigns (elections) and `ReplicaState` answers.
#[derive(Debug, Clone)]
pub struct VoteGate {
    standing: Arc<watch::Sender<Standing>>,
}

impl VoteGate {
    /// A gate for a replica that starts in `standing`.
    pub fn new(standing: Standing) -> Self {
        VoteGate {
            standing: Arc::new(watch::Sender::new(standing)),
        }
    }

    /// An open gate (a replica that kept its store).
    pub fn member() -> Self {
        Self::new(Standing::Member)
    }

    pub fn standing(&self) -> Standing {
        *self.standing.borrow()
    }

    /// Whether this replica may vote and campaign.
    pub fn may_vote(&self) -> bool {
        self.standing() == Standing::Member
    }

    /// Whether this replica may grant a vote to a candidate whose log ends at
    /// `candidate_last_log`: always as a member; otherwise only to the founder's first campaign
    /// (see the module docs).
    pub fn may_grant(&self, candidate_last_log: Option<&LogId>) -> bool {
        self.may_vote() || candidate_last_log.is_some_and(|l| l.index == 0)
    }

    /// The member formed its group (the founder of a new group): it may vote.
    pub fn set_member(&self) {
        self.set(Standing::Member);
    }

    fn set(&self, standing: Standing) {
        self.standing.send_if_modified(|s| {
            let changed = *s != standing;
            *s = standing;
            changed
        });
    }

    /// Resolves once the standing is decided (no longer [`Standing::Undecided`]); returns it.
    pub async fn decided(&self) -> Standing {
        let mut rx = self.standing.subscribe();
        let decided = rx.wait_for(|s| *s != Standing::Undecided).await;
        decided.map(|s| *s).unwrap_or(Standing::Undecided)
    }
}

/// What a peer's `ReplicaState` said.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeerStore {
    /// The peer has a vote or entries.
    Initialized,
    /// The peer's store is empty too.
    Empty,
    /// No answer.
    Unknown,
}

/// Decides an undecided replica's standing from its peers' answers (pure; see the module
/// docs): `None` while it must keep asking.
pub fn decide(answers: &[PeerStore]) -> Option<Standing> {
    if answers.contains(&PeerStore::Initialized) {
        Some(Standing::Rejoining)
    } else if answers.iter().all(|a| *a == PeerStore::Empty) {
        Some(Standing::Member)
    } else {
        None
    }
}

/// Whether a rejoining replica has caught up: it follows a known leader whose term it has
/// applied an entry of, so it holds every entry committed before that term.
pub fn caught_up(m: &RaftMetrics, self_id: NodeId) -> bool {
    m.current_leader.is_some_and(|l| l != self_id)
        && m.vote.committed
        && m.last_applied
            .is_some_and(|l| l.leader_id.term == m.vote.leader_id.term)
        && matches!(m.state, ServerState::Follower | ServerState::Learner)
}

/// Runs the standing of a replica that started with an empty store: asks `peers` until it
/// is decided, then (rejoining) waits until the replica has caught up. Keeps openraft's own
/// election timer off until the replica is a member.
pub async fn settle<C: GroupTypes>(
    raft: Raft<C>,
    gate: VoteGate,
    group: String,
    self_id: NodeId,
    peers: BTreeMap<NodeId, String>,
) {
    if gate.may_vote() {
        return;
    }
    raft.runtime_config().elect(false);
    let mut metrics = raft.metrics();
    while gate.standing() == Standing::Undecided {
        // A leader reaching this replica proves the group exists.
        if metrics.borrow().current_leader.is_some() {
            gate.set(Standing::Rejoining);
            break;
        }
        let answers = ask_peers(&group, self_id, &peers).await;
        debug!(%group, ?answers, "asked the peers whether the group exists");
        if let Some(standing) = decide(&answers) {
            gate.set(standing);
            break;
        }
        let _ = tokio::time::timeout(ASK_EVERY, metrics.changed()).await;
    }
    if gate.standing() == Standing::Rejoining {
        info!(%group, "the store is empty but the group exists: rejoining, no vote until caught up");
        if !catch_up(&raft, &gate, self_id).await {
            return;
        }
        info!(%group, "caught up with the group's leader: voting again");
    } else {
        info!(%group, "every peer's store is empty: a new group");
        gate.set(Standing::Member);
    }
    raft.runtime_config().elect(true);
}

/// Waits until a member that is [`Standing::Rejoining`] has caught up with a leader of the
/// current term ([`caught_up`]), then makes it a member (it may vote). False if its Raft
/// stopped first. A member whose host knows its group exists (a classic replica or a witness
/// with an empty store) starts here directly.
pub async fn catch_up<C: GroupTypes>(raft: &Raft<C>, gate: &VoteGate, self_id: NodeId) -> bool {
    let mut metrics = raft.metrics();
    loop {
        if caught_up(&metrics.borrow_and_update(), self_id) {
            break;
        }
        if metrics.changed().await.is_err() {
            return false;
        }
    }
    gate.set(Standing::Member);
    true
}

/// Asks every peer what its store holds.
async fn ask_peers(
    group: &str,
    self_id: NodeId,
    peers: &BTreeMap<NodeId, String>,
) -> Vec<PeerStore> {
    let asks = peers
        .iter()
        .filter(|(id, _)| **id != self_id)
        .map(|(id, addr)| ask(group, self_id, *id, addr));
    futures::future::join_all(asks).await
}

async fn ask(group: &str, self_id: NodeId, target: NodeId, addr: &str) -> PeerStore {
    let call = async {
        let channel = peer_endpoint(addr).ok()?.connect().await.ok()?;
        let reply = RaftServiceClient::new(channel)
            .replica_state(pb::ReplicaStateRequest {
                group: group.to_owned(),
                target_node_id: target,
                asker_node_id: self_id,
            })
            .await
            .ok()?
            .into_inner();
        Some(if reply.initialized {
            PeerStore::Initialized
        } else {
            PeerStore::Empty
        })
    };
    tokio::time::timeout(ASK_TIMEOUT, call)
        .await
        .ok()
        .flatten()
        .unwrap_or(PeerStore::Unknown)
}

#[cfg(test)]
mod tests {
    use super::*;
    use openraft::{CommittedLeaderId, Vote};

    #[test]
    fn one_initialized_peer_means_rejoining_all_empty_means_new() {
        use PeerStore::*;
        assert_eq!(decide(&[Empty, Initialized]), Some(Standing::Rejoining));
        assert_eq!(decide(&[Unknown, Initialized]), Some(Standing::Rejoining));
        assert_eq!(decide(&[Empty, Empty]), Some(Standing::Member));
        assert_eq!(decide(&[]), Some(Standing::Member), "a group of one");
        assert_eq!(
            decide(&[Empty, Unknown]),
            None,
            "a silent peer may hold the data"
        );
        assert_eq!(decide(&[Unknown, Unknown]), None);
    }

    #[test]
    fn a_closed_gate_grants_only_the_founders_first_campaign() {
        let founding = LogId::new(CommittedLeaderId::new(0, 0), 0);
        let later = LogId::new(CommittedLeaderId::new(1, 0), 1);
        for standing in [Standing::Undecided, Standing::Rejoining] {
            let gate = VoteGate::new(standing);
            assert!(!gate.may_vote());
            assert!(gate.may_grant(Some(&founding)));
            assert!(!gate.may_grant(Some(&later)));
            assert!(!gate.may_grant(None), "an empty candidate");
        }
        let gate = VoteGate::member();
        assert!(gate.may_vote() && gate.may_grant(None) && gate.may_grant(Some(&later)));
    }

    #[test]
    fn caught_up_needs_an_applied_entry_of_the_leaders_term() {
        let mut m = RaftMetrics::new_initial(2);
        m.state = ServerState::Follower;
        m.current_leader = Some(0);
        m.vote = Vote::new_committed(5, 0);
        m.last_applied = Some(LogId::new(CommittedLeaderId::new(4, 0), 90));
        assert!(!caught_up(&m, 2), "behind: still applying the old term");
        m.last_applied = Some(LogId::new(CommittedLeaderId::new(5, 0), 91));
        assert!(caught_up(&m, 2));
        m.vote = Vote::new(5, 0);
        assert!(!caught_up(&m, 2), "the leader is not established");
        m.vote = Vote::new_committed(5, 0);
        m.current_leader = None;
        assert!(!caught_up(&m, 2));
    }

    #[tokio::test]
    async fn decided_resolves_once_the_standing_is_known() {
        let gate = VoteGate::new(Standing::Undecided);
        let waiter = tokio::spawn({
            let gate = gate.clone();
            async move { gate.decided().await }
        });
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished());
        gate.set(Standing::Member);
        let decided = tokio::time::timeout(Duration::from_secs(5), waiter)
            .await
            .expect("woken")
            .expect("task");
        assert_eq!(decided, Standing::Member);
    }
}
