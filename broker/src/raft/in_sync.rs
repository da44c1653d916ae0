//! The in-sync set of a classic group's leader (RocketMQ 5's `SyncStateSet`): which slaves are
//! close enough behind it to count, and how far the witness may be sent.
//!
//! A slave is **in sync** while it lags the leader by at most `haMaxGapNotInSync` bytes and
//! keeps making progress: a slave behind the leader whose matched entry has not moved for
//! `slaveTimeout` has stopped answering, and leaves the set. A slave out of the set **joins**
//! once the leader has seen it make progress (a matched entry that moved: a slave that died
//! with the old leader never does) within the gap; while joining it holds the witness where
//! the witness is, and it enters the set once it has everything the witness has. So an
//! in-sync slave is never behind the witness: when the master dies it holds every committed
//! entry and wins the witness's vote. A new leader starts with an empty set; live slaves join
//! and enter it within their first replication rounds.
//!
//! The **witness cap** follows from it: the leader sends the witness an entry only after every
//! in-sync or joining slave has it (the lowest index they matched). Then a commit ({leader,
//! slave} or {leader, witness}) implies every in-sync slave has the entry, which is what
//! `SYNC_MASTER` promises. With no slave in sync or joining the cap is lifted: leader and
//! witness commit alone, with one data copy, and sends say `SLAVE_NOT_AVAILABLE`; an
//! out-of-sync slave then cannot win an election (its log is behind the witness's), so the
//! group waits for its master.
//!
//! This is the pure core: time and progress are passed in.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use crate::raft::typ::NodeId;

/// One slave's progress, as the leader sees it now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SlaveSample {
    pub node_id: NodeId,
    /// The last log index it has (`None`: nothing yet).
    pub matched: Option<u64>,
    /// Bytes of log between its matched entry's end and the leader's end.
    pub lag_bytes: u64,
}

/// Where a slave stands with the set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Standing {
    /// Too far behind, silent, or not seen to make progress yet.
    Out,
    /// Close and progressing, but behind the witness: the witness waits for it.
    Joining,
    /// In the set: it has every committed entry.
    InSync,
}

/// One slave as the set judges it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SlaveState {
    pub node_id: NodeId,
    pub matched: Option<u64>,
    /// Entries it lacks.
    pub lag_entries: u64,
    pub lag_bytes: u64,
    pub standing: Standing,
}

impl SlaveState {
    pub fn in_sync(&self) -> bool {
        self.standing == Standing::InSync
    }
}

/// What the in-sync set says right now.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InSyncState {
    /// Every data voter but the leader, ordered by node id.
    pub slaves: Vec<SlaveState>,
    /// The highest index the witness may be sent; `None`: no limit (no slave in sync).
    pub witness_cap: Option<u64>,
    /// This replica leads a classic group: the set means something.
    pub leading: bool,
}

impl InSyncState {
    /// Whether a `SYNC_MASTER` leader holds the only data copy of what it commits now (no
    /// slave in the set or joining it).
    pub fn alone(&self) -> bool {
        self.leading && self.slaves.iter().all(|s| s.standing == Standing::Out)
    }
}

/// The leader's bookkeeping behind [`InSyncState`].
#[derive(Debug)]
pub struct InSyncSet {
    max_gap_bytes: u64,
    slave_timeout: Duration,
    tracked: BTreeMap<NodeId, Tracked>,
}

#[derive(Debug, Clone, Copy)]
struct Tracked {
    matched: Option<u64>,
    /// When `matched` was last seen to move; `None` until it has.
    progressed_at: Option<Instant>,
    standing: Standing,
}

impl InSyncSet {
    /// An empty set (a new leader's): `haMaxGapNotInSync` and `slaveTimeout`.
    pub fn new(max_gap_bytes: u64, slave_timeout: Duration) -> Self {
        InSyncSet {
            max_gap_bytes,
            slave_timeout,
            tracked: BTreeMap::new(),
        }
    }

    /// Takes the slaves' progress at `now` (the leader's log ends at `last_index`; the witness
    /// has `witness_matched`) and says who is in sync and how far the witness may go.
    pub fn observe(
        &mut self,
        now: Instant,
        last_index: Option<u64>,
        witness_matched: Option<u64>,
        slaves: &[SlaveSample],
    ) -> InSyncState {
        self.tracked
            .retain(|id, _| slaves.iter().any(|s| s.node_id == *id));
        let mut states = Vec::with_capacity(slaves.len());
        for s in slaves {
            let t = self.tracked.entry(s.node_id).or_insert(Tracked {
                matched: s.matched,
                progressed_at: None,
                standing: Standing::Out,
            });
            if s.matched > t.matched {
                t.matched = s.matched;
                t.progressed_at = Some(now);
            } else if s.matched < t.matched {
                // Its log was cut back (a conflict): take what it has now.
                t.matched = s.matched;
            }
            let caught_up = s.matched.is_some() && s.matched >= last_index;
            let recently = t
                .progressed_at
                .is_some_and(|at| now.duration_since(at) < self.slave_timeout);
            let close = s.lag_bytes <= self.max_gap_bytes;
            let has_witness_entries = s.matched >= witness_matched;
            t.standing = match t.standing {
                Standing::InSync if close && (caught_up || recently) => Standing::InSync,
                // Entering takes progress seen or every entry matched (an idle group): a
                // known matched entry alone is no sign of life. (A new leader's first entry
                // is its own blank one, which a slave that died with the old leader lacks.)
                Standing::Joining | Standing::Out
                    if close && s.matched.is_some() && (recently || caught_up) =>
                {
                    if has_witness_entries {
                        Standing::InSync
                    } else {
                        Standing::Joining
                    }
                }
                _ => Standing::Out,
            };
            states.push(SlaveState {
                node_id: s.node_id,
                matched: s.matched,
                lag_entries: last_index
                    .unwrap_or(0)
                    .saturating_sub(s.matched.unwrap_or(0))
                    + u64::from(s.matched.is_none() && last_index.is_some()),
                lag_bytes: s.lag_bytes,
                standing: t.standing,
            });
        }
        // The lowest index every in-sync or joining slave has.
        let witness_cap = states
            .iter()
            .filter(|s| s.standing != Standing::Out)
            .filter_map(|s| s.matched)
            .min();
        InSyncState {
            slaves: states,
            witness_cap,
            leading: true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GAP: u64 = 1000;
    const TIMEOUT: Duration = Duration::from_secs(3);

    fn sample(node_id: NodeId, matched: Option<u64>, lag_bytes: u64) -> SlaveSample {
        SlaveSample {
            node_id,
            matched,
            lag_bytes,
        }
    }

    fn secs(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    #[test]
    fn a_slave_joins_once_seen_progressing_and_enters_once_it_has_the_witness_entries() {
        let t0 = Instant::now();
        let mut set = InSyncSet::new(GAP, TIMEOUT);
        // Far behind: out, and the witness may go anywhere.
        let st = set.observe(t0, Some(100), Some(100), &[sample(1, Some(10), 5000)]);
        assert_eq!(st.slaves[0].standing, Standing::Out);
        assert!(st.alone());
        assert_eq!(st.witness_cap, None);
        assert_eq!(st.slaves[0].lag_entries, 90);
        // Close and progressing, but behind the witness (which got everything while the set
        // was empty): joining, and the witness waits where it is.
        let st = set.observe(t0, Some(100), Some(100), &[sample(1, Some(95), 500)]);
        assert_eq!(st.slaves[0].standing, Standing::Joining);
        assert!(!st.alone(), "what commits now has two copies");
        assert_eq!(st.witness_cap, Some(95));
        // Caught up with the witness: in, and the witness is capped at what it has.
        let st = set.observe(t0, Some(100), Some(100), &[sample(1, Some(100), 0)]);
        assert!(st.slaves[0].in_sync());
        assert_eq!(st.witness_cap, Some(100));
        // In the set, it may lag within the gap while it progresses.
        let st = set.observe(t0, Some(120), Some(100), &[sample(1, Some(110), 800)]);
        assert!(st.slaves[0].in_sync());
        assert_eq!(st.witness_cap, Some(110));
    }

    #[test]
    fn a_slave_never_seen_progressing_stays_out_and_holds_nothing_back() {
        // A new leader whose slave died with the old one: its last matched entry is known (it
        // lacks the new leader's blank entry), but it never moves. It must not hold the witness
        // back (the group would stall for slaveTimeout), whatever it had.
        let t0 = Instant::now();
        let mut set = InSyncSet::new(GAP, TIMEOUT);
        for ms in [0, 20, 40, 2000] {
            let st = set.observe(
                t0 + Duration::from_millis(ms),
                Some(50),
                Some(40),
                &[sample(0, Some(49), 0), sample(2, None, 4000)],
            );
            assert!(st.slaves.iter().all(|s| s.standing == Standing::Out));
            assert_eq!(st.witness_cap, None);
            assert!(st.alone());
        }
    }

    #[test]
    fn a_caught_up_slave_of_an_idle_group_is_in_sync_at_once() {
        let t0 = Instant::now();
        let mut set = InSyncSet::new(GAP, TIMEOUT);
        let st = set.observe(t0, Some(7), Some(7), &[sample(1, Some(7), 0)]);
        assert!(st.slaves[0].in_sync());
        assert_eq!(st.witness_cap, Some(7));
    }

    #[test]
    fn a_slave_that_stops_answering_leaves_after_slave_timeout() {
        let t0 = Instant::now();
        let mut set = InSyncSet::new(GAP, TIMEOUT);
        set.observe(t0, Some(50), Some(50), &[sample(1, Some(49), 10)]);
        let st = set.observe(t0, Some(50), Some(50), &[sample(1, Some(50), 0)]);
        assert!(st.slaves[0].in_sync());
        // No progress while the leader moves on: still in until slaveTimeout has passed.
        let st = set.observe(
            t0 + secs(2),
            Some(60),
            Some(50),
            &[sample(1, Some(50), 300)],
        );
        assert!(st.slaves[0].in_sync());
        assert_eq!(st.witness_cap, Some(50));
        let st = set.observe(
            t0 + secs(3),
            Some(60),
            Some(50),
            &[sample(1, Some(50), 300)],
        );
        assert_eq!(st.slaves[0].standing, Standing::Out);
        assert!(st.alone());
        assert_eq!(st.witness_cap, None, "the witness is no longer held back");
        // Back and progressing: it joins, then enters once it has what the witness got.
        let st = set.observe(
            t0 + secs(4),
            Some(70),
            Some(70),
            &[sample(1, Some(65), 100)],
        );
        assert_eq!(st.slaves[0].standing, Standing::Joining);
        let st = set.observe(t0 + secs(4), Some(70), Some(70), &[sample(1, Some(70), 0)]);
        assert!(st.slaves[0].in_sync());
        // A caught-up slave that hears nothing new stays in (nothing to make progress on).
        let st = set.observe(t0 + secs(60), Some(70), Some(70), &[sample(1, Some(70), 0)]);
        assert!(st.slaves[0].in_sync());
    }

    #[test]
    fn a_slave_too_far_behind_leaves_at_once_and_the_cap_is_the_lowest_in_sync() {
        let t0 = Instant::now();
        let mut set = InSyncSet::new(GAP, TIMEOUT);
        let both = |a: Option<u64>, b: Option<u64>| [sample(1, a, 0), sample(2, b, 0)];
        set.observe(t0, Some(10), Some(10), &both(Some(9), Some(9)));
        let st = set.observe(t0, Some(10), Some(10), &both(Some(10), Some(10)));
        assert!(st.slaves.iter().all(SlaveState::in_sync));
        let st = set.observe(
            t0,
            Some(40),
            Some(10),
            &[sample(1, Some(30), 200), sample(2, Some(12), 1500)],
        );
        assert!(st.slaves[0].in_sync());
        assert_eq!(st.slaves[1].standing, Standing::Out);
        assert_eq!(st.witness_cap, Some(30));
        // A slave that is no longer a voter is forgotten.
        let st = set.observe(t0, Some(40), Some(10), &[sample(2, Some(40), 0)]);
        assert_eq!(st.slaves.len(), 1);
    }
}
