//! Fast failover: noticing a dead leader in milliseconds rather than after Raft's election
//! timeout, and electing its successor (the openraft `Config` with the timeouts this relies
//! on is `raftmq_raft::timing`).
//!
//! **Detection.** Every voter keeps one `WatchLeader` stream open to the leader it follows
//! (server side in [`raftmq_raft::service`]); the leader pings it every 100 ms. When the
//! leader's process dies, the OS resets its connections and the stream breaks at once. The
//! follower then *probes*: it dials the leader afresh and asks again. A refused connection, an
//! UNAVAILABLE answer (Raft stopped) or silence means the leader is gone; an answer "I do not
//! lead" means leadership moved on and Raft will say where; a fresh stream means a hiccup.
//! A stream that stays silent for [`PING_SILENCE`](detector::PING_SILENCE) is probed the same way (a frozen host
//! resets nothing).
//!
//! **Election.** openraft 0.9 makes a follower refuse votes while its *leader lease* runs
//! (`election_timeout_max` since the leader last reached it, `Engine::handle_vote_req`), and
//! the lease only lapses for a follower whose vote is committed. So on a dead leader every
//! surviving voter calls `elect()` once at once: that drops its own lease (its vote becomes
//! its own, uncommitted). The first round splits, by design. Then voters campaign again at
//! different paces, by rank (voters other than the dead leader, `preferredLeaderId` first,
//! then by id): rank 0 every [`RETRY`](campaign::RETRY), rank k every `RETRY + k * STAGGER`. The fastest
//! climbs terms fastest, so its next request carries a higher term than anyone else's vote and
//! wins: typically one `RETRY` after the leader died. Two signals cut the wait short: in a
//! 3-voter group the first rank elects again as soon as the other survivor's refusal shows the
//! split ([`VoteRefusals::split_with_peer`]), and a voter that refuses a candidate whose log is
//! behind its own elects again at once ([`VoteRefusals::refused_shorter_log`]); kill -9 to the
//! first ack then takes about 15 ms here. Two rules keep voters from undoing each
//! other: a voter that has just granted its vote to another candidate waits
//! ([`GRANT_GRACE`](campaign::GRANT_GRACE)) for that candidate's first append instead of campaigning over it; and a
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
//!
//! One module per part: [`detector`] (watching the leader), [`campaign`] (the elections that
//! replace it, and the decisions behind them), [`votes`] (what the answers to vote requests
//! said).

pub mod campaign;
pub mod detector;
pub mod votes;

pub use campaign::{
    spawn_handback_campaign, Campaign, CampaignCause, OutgoingLeader, GIVE_UP_AFTER,
    HANDBACK_PATIENCE,
};
pub use detector::spawn_failover_detector;
pub use votes::VoteRefusals;
