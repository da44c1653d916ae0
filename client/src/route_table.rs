//! The client's copy of the nameserver's route table, fed by `WatchRoutes` events, unary
//! `QueryRoute` answers and the leader hints of `NOT_LEADER` replies. Pure: no IO, no clock.
//!
//! Invariants:
//! - Events of one nameserver epoch apply in strictly increasing version order; an older or
//!   repeated version is ignored; a non-snapshot event of another epoch means the stream
//!   is not what we think, so the watcher must start over (it gets a snapshot first).
//! - A group's leader never goes back to a lower term: neither a late `QueryRoute` answer
//!   nor a stale hint replaces a leader recorded with a higher term.
//! - A snapshot from another nameserver process (a new epoch: a restarted nameserver, or
//!   another one of the list) replaces the table, except that groups and topics it lacks
//!   are carried over for [`CARRY_OVER`]: a restarted nameserver knows nothing until the
//!   brokers' next heartbeats, and sends must not stop meanwhile. The new nameserver's
//!   own events replace carried entries; [`RouteTable::expire`] drops the rest.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use proto::v1::route_event::Change;
use proto::v1::{GroupRoute, LeaderHint, QueryRouteResponse, RouteEvent, TopicQueues};
use proto::{PERM_READ, PERM_WRITE};

use crate::message::MessageQueue;

/// How long groups and topics missing from a new nameserver's snapshot are kept: twice
/// the brokers' default registration expiry (5 s), time enough for them to re-register.
pub const CARRY_OVER: Duration = Duration::from_secs(10);

/// What applying one route event did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Applied {
    /// The table changed (or was replaced).
    Changed,
    /// Older than, or the same as, what the table already holds: ignored.
    Stale,
    /// The event cannot be applied to this table (another epoch without a snapshot): the
    /// watcher must reconnect and start from a snapshot.
    NeedsResync(String),
}

/// A leader learned from a `NOT_LEADER` hint, newer than the nameserver's record.
#[derive(Debug, Clone, PartialEq, Eq)]
struct HintedLeader {
    addr: String,
    term: u64,
}

/// Every group and topic the client knows of.
#[derive(Debug, Clone, Default)]
pub struct RouteTable {
    /// Nameserver process whose stream fed the table; `None` until a snapshot arrived.
    epoch: Option<String>,
    /// Version of the last event applied within `epoch`.
    version: u64,
    /// Groups by brokerName.
    groups: BTreeMap<String, GroupRoute>,
    /// Topics by name.
    topics: BTreeMap<String, TopicQueues>,
    /// Leaders learned from brokers ahead of the nameserver, by brokerName; dropped as soon
    /// as the nameserver records a term at least as high.
    hints: BTreeMap<String, HintedLeader>,
    /// Groups kept from before a new epoch's snapshot, with when they expire.
    carried_groups: BTreeMap<String, Instant>,
    /// Topics kept from before a new epoch's snapshot, with when they expire.
    carried_topics: BTreeMap<String, Instant>,
}

/// One group's share of a topic, with where to reach the group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupQueues {
    /// brokerName.
    pub broker_name: String,
    /// Client address of the group's leader; `None` while it has none.
    pub leader_addr: Option<String>,
    /// Client addresses of every live member (the leader included), by brokerId.
    pub replica_addrs: Vec<String>,
    /// readQueueNums.
    pub read_queue_nums: u32,
    /// writeQueueNums.
    pub write_queue_nums: u32,
    /// Permission bits (`proto::PERM_*`).
    pub perm: u32,
}

/// Where a topic's queues are, across groups (RocketMQ's TopicRouteData).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicRoute {
    /// Topic name.
    pub topic: String,
    /// One entry per group hosting the topic, sorted by brokerName.
    pub groups: Vec<GroupQueues>,
}

impl TopicRoute {
    /// Every queue producers may write to, sorted by group then queue id.
    pub fn write_queues(&self) -> Vec<MessageQueue> {
        self.queues(PERM_WRITE, |g| g.write_queue_nums)
    }

    /// Every queue consumers may read from, sorted by group then queue id.
    pub fn read_queues(&self) -> Vec<MessageQueue> {
        self.queues(PERM_READ, |g| g.read_queue_nums)
    }

    /// The group named `broker_name`, if it hosts the topic.
    pub fn group(&self, broker_name: &str) -> Option<&GroupQueues> {
        self.groups.iter().find(|g| g.broker_name == broker_name)
    }

    fn queues(&self, perm: u32, count: impl Fn(&GroupQueues) -> u32) -> Vec<MessageQueue> {
        self.groups
            .iter()
            .filter(|g| g.perm & perm != 0)
            .flat_map(|g| {
                (0..count(g)).map(|q| MessageQueue::new(&self.topic, &g.broker_name, q as i32))
            })
            .collect()
    }
}

impl RouteTable {
    /// An empty table that has seen no snapshot.
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether a `WatchRoutes` snapshot has been applied (the table is complete).
    pub fn has_snapshot(&self) -> bool {
        self.epoch.is_some()
    }

    /// Epoch and version of the last event applied.
    pub fn position(&self) -> Option<(&str, u64)> {
        self.epoch.as_deref().map(|e| (e, self.version))
    }

    /// Applies one `WatchRoutes` event received at `now`.
    pub fn apply(&mut self, event: &RouteEvent, now: Instant) -> Applied {
        let Some(change) = &event.change else {
            return Applied::Stale;
        };
        if let Change::Snapshot(snapshot) = change {
            let new_epoch = self.epoch.as_deref() != Some(event.epoch.as_str());
            let mut groups: BTreeMap<String, GroupRoute> = snapshot
                .groups
                .iter()
                .map(|g| (g.broker_name.clone(), g.clone()))
                .collect();
            let mut topics: BTreeMap<String, TopicQueues> = snapshot
                .topics
                .iter()
                .map(|t| (t.topic.clone(), t.clone()))
                .collect();
            if new_epoch && self.epoch.is_some() {
                carry_over(&mut self.groups, &mut groups, &mut self.carried_groups, now);
                carry_over(&mut self.topics, &mut topics, &mut self.carried_topics, now);
            } else {
                self.carried_groups.clear();
                self.carried_topics.clear();
            }
            self.epoch = Some(event.epoch.clone());
            self.version = event.version;
            self.groups = groups;
            self.topics = topics;
            self.prune_hints();
            return Applied::Changed;
        }
        match self.epoch.as_deref() {
            Some(epoch) if epoch == event.epoch => {}
            Some(epoch) => {
                return Applied::NeedsResync(format!(
                    "event of epoch {} while the table follows epoch {epoch}",
                    event.epoch
                ))
            }
            None => return Applied::NeedsResync("an event arrived before the snapshot".into()),
        }
        if event.version <= self.version {
            return Applied::Stale;
        }
        self.version = event.version;
        match change {
            Change::Snapshot(_) => unreachable!("handled above"),
            Change::GroupUpdated(group) => {
                self.carried_groups.remove(&group.broker_name);
                self.groups.insert(group.broker_name.clone(), group.clone());
                self.prune_hints();
            }
            Change::GroupRemoved(removed) => {
                self.carried_groups.remove(&removed.broker_name);
                self.groups.remove(&removed.broker_name);
                self.hints.remove(&removed.broker_name);
            }
            Change::TopicUpdated(topic) => {
                self.carried_topics.remove(&topic.topic);
                self.topics.insert(topic.topic.clone(), topic.clone());
            }
            Change::TopicRemoved(name) => {
                self.carried_topics.remove(name);
                self.topics.remove(name);
            }
        }
        Applied::Changed
    }

    /// Drops carried-over groups and topics whose time is up. Returns whether any was.
    pub fn expire(&mut self, now: Instant) -> bool {
        let before = self.groups.len() + self.topics.len();
        expire_carried(&mut self.groups, &mut self.carried_groups, now);
        expire_carried(&mut self.topics, &mut self.carried_topics, now);
        before != self.groups.len() + self.topics.len()
    }

    /// Merges the answer of a unary `QueryRoute`: the topic's queues, and its groups unless
    /// the table already records them with a higher term. Used before a snapshot arrived and
    /// for topics the watch has not told about yet. Returns whether anything changed.
    pub fn merge_query(&mut self, response: &QueryRouteResponse) -> bool {
        let mut changed = self.merge_groups(response.groups.iter().cloned());
        if let Some(topic) = &response.topic {
            if self.topics.get(&topic.topic) != Some(topic) {
                self.topics.insert(topic.topic.clone(), topic.clone());
                changed = true;
            }
        }
        changed
    }

    /// Merges groups learned outside the watch stream (`QueryRoute`, `GetClusterInfo`):
    /// a group is taken when unknown or recorded with a lower term. Returns whether
    /// anything changed.
    pub fn merge_groups(&mut self, groups: impl IntoIterator<Item = GroupRoute>) -> bool {
        let mut changed = false;
        for group in groups {
            let newer = match self.groups.get(&group.broker_name) {
                None => true,
                Some(known) => group.term > known.term,
            };
            if newer {
                self.groups.insert(group.broker_name.clone(), group);
                changed = true;
            }
        }
        if changed {
            self.prune_hints();
        }
        changed
    }

    /// Records the leader a broker pointed at in a `NOT_LEADER` reply, when it is newer than
    /// what the nameserver told. Returns whether the group's leader address changed.
    pub fn note_leader(&mut self, hint: &LeaderHint) -> bool {
        if hint.leader_addr.is_empty() || hint.broker_name.is_empty() {
            return false;
        }
        let before = self.leader_addr(&hint.broker_name).map(str::to_owned);
        let (recorded_term, recorded_leader) = match self.groups.get(&hint.broker_name) {
            Some(g) => (g.term, !g.leader_addr.is_empty()),
            None => (0, false),
        };
        let hinted_term = self.hints.get(&hint.broker_name).map_or(0, |h| h.term);
        let newer_than_record = hint.term > recorded_term || !recorded_leader;
        if newer_than_record && hint.term >= hinted_term {
            self.hints.insert(
                hint.broker_name.clone(),
                HintedLeader {
                    addr: hint.leader_addr.clone(),
                    term: hint.term,
                },
            );
        }
        before.as_deref() != self.leader_addr(&hint.broker_name)
    }

    /// Client address of a group's leader, as far as the table knows.
    pub fn leader_addr(&self, broker_name: &str) -> Option<&str> {
        if let Some(hint) = self.hints.get(broker_name) {
            return Some(&hint.addr);
        }
        self.groups
            .get(broker_name)
            .map(|g| g.leader_addr.as_str())
            .filter(|a| !a.is_empty())
    }

    /// The recorded group, as the nameserver sent it.
    pub fn group(&self, broker_name: &str) -> Option<&GroupRoute> {
        self.groups.get(broker_name)
    }

    /// Every known group, sorted by brokerName.
    pub fn groups(&self) -> impl Iterator<Item = &GroupRoute> {
        self.groups.values()
    }

    /// (brokerName, leader address) of every group that has a leader, sorted by name.
    pub fn leaders(&self) -> Vec<(String, String)> {
        self.groups
            .keys()
            .filter_map(|name| self.leader_addr(name).map(|a| (name.clone(), a.to_owned())))
            .collect()
    }

    /// Names of every known topic, sorted.
    pub fn topic_names(&self) -> impl Iterator<Item = &str> {
        self.topics.keys().map(String::as_str)
    }

    /// Whether the table has queue data for `topic`.
    pub fn knows_topic(&self, topic: &str) -> bool {
        self.topics.contains_key(topic)
    }

    /// Client addresses of a group's live members, by brokerId (the leader included).
    pub fn member_addrs(&self, broker_name: &str) -> Vec<String> {
        self.groups.get(broker_name).map_or_else(Vec::new, |g| {
            g.members
                .iter()
                .filter(|m| !m.witness && !m.broker_addr.is_empty())
                .map(|m| m.broker_addr.clone())
                .collect()
        })
    }

    /// The group one of whose members has client address `addr`.
    pub fn group_of_member(&self, addr: &str) -> Option<&str> {
        self.groups
            .values()
            .find(|g| g.leader_addr == addr || g.members.iter().any(|m| m.broker_addr == addr))
            .map(|g| g.broker_name.as_str())
    }

    /// The topic's route: its queues per group and where each group's leader is.
    pub fn topic_route(&self, topic: &str) -> Option<TopicRoute> {
        let queues = self.topics.get(topic)?;
        let mut groups: Vec<GroupQueues> = queues
            .queue_datas
            .iter()
            .map(|q| GroupQueues {
                broker_name: q.broker_name.clone(),
                leader_addr: self.leader_addr(&q.broker_name).map(str::to_owned),
                replica_addrs: self.member_addrs(&q.broker_name),
                read_queue_nums: q.read_queue_nums,
                write_queue_nums: q.write_queue_nums,
                perm: q.perm,
            })
            .collect();
        groups.sort_by(|a, b| a.broker_name.cmp(&b.broker_name));
        Some(TopicRoute {
            topic: topic.to_owned(),
            groups,
        })
    }

    /// Drops hints the nameserver has caught up with.
    fn prune_hints(&mut self) {
        let groups = &self.groups;
        self.hints.retain(|name, hint| match groups.get(name) {
            Some(g) => hint.term > g.term || (g.leader_addr.is_empty() && hint.term >= g.term),
            None => true,
        });
    }
}

/// Moves into `new` every entry of `old` it lacks, marking it carried until `now +
/// CARRY_OVER` (entries already carried keep their first deadline).
fn carry_over<T>(
    old: &mut BTreeMap<String, T>,
    new: &mut BTreeMap<String, T>,
    carried: &mut BTreeMap<String, Instant>,
    now: Instant,
) {
    carried.retain(|name, _| !new.contains_key(name));
    for (name, value) in std::mem::take(old) {
        if let std::collections::btree_map::Entry::Vacant(slot) = new.entry(name) {
            carried
                .entry(slot.key().clone())
                .or_insert(now + CARRY_OVER);
            slot.insert(value);
        }
    }
}

/// Removes the carried entries of `table` whose deadline has passed.
fn expire_carried<T>(
    table: &mut BTreeMap<String, T>,
    carried: &mut BTreeMap<String, Instant>,
    now: Instant,
) {
    carried.retain(|name, until| {
        let keep = *until > now;
        if !keep {
            table.remove(name);
        }
        keep
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use proto::v1::{GroupMember, GroupRemoved, QueueData, RouteSnapshot};

    pub(crate) fn group(name: &str, leader: &str, term: u64) -> GroupRoute {
        GroupRoute {
            cluster_name: "DefaultCluster".into(),
            broker_name: name.into(),
            members: vec![GroupMember {
                broker_addr: leader.into(),
                ..Default::default()
            }],
            leader_node_id: (!leader.is_empty()).then_some(0),
            leader_addr: leader.into(),
            term,
            replicas: Vec::new(),
        }
    }

    fn topic(name: &str, groups: &[(&str, u32)]) -> TopicQueues {
        TopicQueues {
            topic: name.into(),
            queue_datas: groups
                .iter()
                .map(|(g, n)| QueueData {
                    broker_name: (*g).into(),
                    read_queue_nums: *n,
                    write_queue_nums: *n,
                    perm: 6,
                })
                .collect(),
        }
    }

    impl RouteTable {
        fn apply_now(&mut self, event: &RouteEvent) -> Applied {
            self.apply(event, Instant::now())
        }
    }

    fn event(epoch: &str, version: u64, change: Change) -> RouteEvent {
        RouteEvent {
            epoch: epoch.into(),
            version,
            change: Some(change),
        }
    }

    fn snapshot(epoch: &str, version: u64) -> RouteEvent {
        event(
            epoch,
            version,
            Change::Snapshot(RouteSnapshot {
                groups: vec![group("broker-a", "a:1", 1), group("broker-b", "b:1", 1)],
                topics: vec![topic("T", &[("broker-a", 2), ("broker-b", 1)])],
            }),
        )
    }

    #[test]
    fn snapshot_then_updates_in_version_order() {
        let mut t = RouteTable::new();
        assert!(!t.has_snapshot());
        assert_eq!(t.apply_now(&snapshot("e1", 5)), Applied::Changed);
        assert_eq!(t.leader_addr("broker-a"), Some("a:1"));
        let route = t.topic_route("T").unwrap();
        assert_eq!(route.write_queues().len(), 3);
        assert_eq!(
            route.write_queues()[2],
            MessageQueue::new("T", "broker-b", 0)
        );

        let moved = event("e1", 6, Change::GroupUpdated(group("broker-a", "a:2", 2)));
        assert_eq!(t.apply_now(&moved), Applied::Changed);
        assert_eq!(t.leader_addr("broker-a"), Some("a:2"));

        // A replayed (older) event must not move the leader back.
        let old = event("e1", 6, Change::GroupUpdated(group("broker-a", "a:1", 1)));
        assert_eq!(t.apply_now(&old), Applied::Stale);
        assert_eq!(t.leader_addr("broker-a"), Some("a:2"));

        let gone = event(
            "e1",
            7,
            Change::GroupRemoved(GroupRemoved {
                cluster_name: "DefaultCluster".into(),
                broker_name: "broker-b".into(),
            }),
        );
        assert_eq!(t.apply_now(&gone), Applied::Changed);
        assert_eq!(t.leader_addr("broker-b"), None);
        assert_eq!(
            t.apply_now(&event("e1", 8, Change::TopicRemoved("T".into()))),
            Applied::Changed
        );
        assert!(t.topic_route("T").is_none());
    }

    #[test]
    fn other_epoch_needs_a_snapshot() {
        let mut t = RouteTable::new();
        let early = event("e1", 1, Change::TopicRemoved("T".into()));
        assert!(matches!(t.apply_now(&early), Applied::NeedsResync(_)));
        t.apply_now(&snapshot("e1", 5));
        let foreign = event("e2", 1, Change::TopicRemoved("T".into()));
        assert!(matches!(t.apply_now(&foreign), Applied::NeedsResync(_)));
        // A new nameserver's snapshot is taken whatever its version.
        let mut s = snapshot("e2", 1);
        if let Some(Change::Snapshot(snap)) = &mut s.change {
            snap.topics.clear();
        }
        assert_eq!(t.apply_now(&s), Applied::Changed);
        assert_eq!(t.position(), Some(("e2", 1)));
        assert!(t.knows_topic("T"), "carried over for a while");
        t.expire(Instant::now() + CARRY_OVER);
        assert!(!t.knows_topic("T"));
    }

    #[test]
    fn a_restarted_nameserver_does_not_empty_the_table_at_once() {
        let mut t = RouteTable::new();
        let now = Instant::now();
        t.apply(&snapshot("e1", 5), now);
        let mut empty = snapshot("e2", 1);
        if let Some(Change::Snapshot(snap)) = &mut empty.change {
            snap.groups.retain(|g| g.broker_name == "broker-b");
            snap.topics.clear();
        }
        assert_eq!(t.apply(&empty, now), Applied::Changed);
        // Carried over: still routable.
        assert_eq!(t.leader_addr("broker-a"), Some("a:1"));
        assert!(t.topic_route("T").is_some());
        // The new nameserver learns broker-a again: that entry is its own from now on.
        t.apply(
            &event("e2", 2, Change::GroupUpdated(group("broker-a", "a:1", 1))),
            now,
        );
        // ... but topic T never came back: it goes when its time is up.
        assert!(!t.expire(now + CARRY_OVER - Duration::from_millis(1)));
        assert!(t.expire(now + CARRY_OVER));
        assert!(t.topic_route("T").is_none());
        assert_eq!(t.leader_addr("broker-a"), Some("a:1"));
        // A resync with the same nameserver replaces everything at once.
        t.apply(&snapshot("e2", 9), now);
        let mut gone = snapshot("e2", 10);
        if let Some(Change::Snapshot(snap)) = &mut gone.change {
            snap.topics.clear();
        }
        t.apply(&gone, now);
        assert!(t.topic_route("T").is_none());
    }

    #[test]
    fn hints_win_until_the_nameserver_catches_up() {
        let mut t = RouteTable::new();
        t.apply_now(&snapshot("e1", 1));
        let hint = LeaderHint {
            broker_name: "broker-a".into(),
            leader_node_id: Some(2),
            leader_addr: "a:2".into(),
            term: 2,
        };
        assert!(t.note_leader(&hint));
        assert_eq!(t.leader_addr("broker-a"), Some("a:2"));
        assert_eq!(
            t.topic_route("T").unwrap().groups[0].leader_addr.as_deref(),
            Some("a:2")
        );

        // An older hint does not replace it.
        let stale = LeaderHint {
            leader_addr: "a:1".into(),
            term: 1,
            ..hint.clone()
        };
        assert!(!t.note_leader(&stale));
        assert_eq!(t.leader_addr("broker-a"), Some("a:2"));

        // The nameserver records term 3: the hint is dropped for the record.
        t.apply_now(&event(
            "e1",
            2,
            Change::GroupUpdated(group("broker-a", "a:3", 3)),
        ));
        assert_eq!(t.leader_addr("broker-a"), Some("a:3"));
        // A hint without address says nothing.
        assert!(!t.note_leader(&LeaderHint {
            leader_addr: String::new(),
            term: 9,
            ..hint
        }));
    }

    #[test]
    fn query_answers_never_lower_a_term() {
        let mut t = RouteTable::new();
        t.apply_now(&snapshot("e1", 1));
        t.apply_now(&event(
            "e1",
            2,
            Change::GroupUpdated(group("broker-a", "a:2", 4)),
        ));
        let late = QueryRouteResponse {
            status: None,
            topic: Some(topic("U", &[("broker-a", 4)])),
            groups: vec![group("broker-a", "a:1", 3)],
        };
        assert!(t.merge_query(&late));
        assert_eq!(t.leader_addr("broker-a"), Some("a:2"));
        assert_eq!(t.topic_route("U").unwrap().read_queues().len(), 4);
        assert!(!t.merge_query(&late));
    }

    #[test]
    fn permissions_filter_queues() {
        let mut t = RouteTable::new();
        t.apply_now(&snapshot("e1", 1));
        let mut ro = topic("R", &[("broker-a", 2)]);
        ro.queue_datas[0].perm = PERM_READ;
        t.apply_now(&event("e1", 2, Change::TopicUpdated(ro)));
        let route = t.topic_route("R").unwrap();
        assert!(route.write_queues().is_empty());
        assert_eq!(route.read_queues().len(), 2);
        assert_eq!(t.group_of_member("b:1"), Some("broker-b"));
    }
}
