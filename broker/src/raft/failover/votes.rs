//! What the answers to vote requests said, as a campaign needs it: peers whose log is ahead
//! (a voter that cannot win stops competing), and the signals that cut a campaign's wait short.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use raftmq_raft::network::VoteObserver;

use crate::raft::typ::NodeId;

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

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

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
