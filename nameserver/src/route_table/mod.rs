//! The route table: which broker groups exist, who their live members and leader are, and
//! which topics they host (DESIGN §5). Pure: no sockets, no clock — every call that depends
//! on time takes `now`.
//!
//! # Rules
//!
//! - **Identity.** A group is its `brokerName` (RocketMQ's rule); its cluster is whatever its
//!   latest registration says. A member is its Raft node id within the group: a node that
//!   re-registers from another address or with another role replaces its own entry.
//! - **Leader.** A registration claiming leadership in term `t` is accepted when `t` is at
//!   least the group's recorded term, and then makes the node the leader in `t`. A lower `t`
//!   never replaces the recorded leader (no stale master); the claimant is still recorded
//!   as a live member, with the role and term it reported. The group's term never decreases
//!   while the group exists.
//! - **Superseded leader.** When a claim in a term higher than the recorded one is accepted,
//!   every other member whose latest registration claimed leadership in an older term is
//!   dropped: the old leader (killed, or cut off) has not registered since the new term began.
//!   One that is alive comes back with its next registration, as the follower it now is or as
//!   a refused stale claim. So a dead leader leaves the route with the election, not after
//!   its heartbeat timeout.
//! - **brokerIds.** A member shows the brokerId it reports (`proto::broker_id`: 0 while it
//!   leads, its node id plus one otherwise), except that only the recorded leader ever shows
//!   the master's 0: any other member claiming it (a refused or superseded claim) shows its
//!   node id plus one. So a group never lists two brokerId 0 rows, and each node keeps one id
//!   apart from the 0 of whoever leads.
//! - **Stepping down.** The recorded leader registering as a non-leader in its recorded term
//!   or later has lost leadership: the group has no leader until the next leader registers.
//!   Followers' terms do not touch the leader (a partitioned node may keep raising its term
//!   without ever winning an election).
//! - **Expiry.** A member whose last registration is older than its heartbeat timeout is
//!   dropped ([`RouteTable::expire`]); when it was the leader the group has no leader until
//!   the next leader registers. A group without live members is forgotten altogether, term
//!   included, exactly as after a nameserver restart — so a group re-created from scratch
//!   (new disks, term 1) can register against a long-running nameserver.
//! - **Topics.** A group hosts the union of the topics its live members report. When members
//!   disagree about a topic's queues, the leader's report wins, then the member with the
//!   lowest (brokerId, node id). A topic's route lists every group hosting it.
//! - **Versions.** Every change (one group or one topic) bumps the table's version by one and
//!   produces one [`RouteChange`] carrying the new version and the complete new state of
//!   what changed. A heartbeat that changes nothing produces nothing. Within one update,
//!   a group that appears is announced before its topics and a group that disappears after
//!   them, so a topic never names a group the watcher has not been told about.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use proto::v1::{BrokerRole, RaftRole};

/// The brokerId RocketMQ gives the master, and raftmq the group's leader.
const MASTER_BROKER_ID: u64 = 0;

/// Queue counts and permission of a topic within one group (RocketMQ `QueueData` without
/// the group name).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueConfig {
    /// readQueueNums.
    pub read_queue_nums: u32,
    /// writeQueueNums.
    pub write_queue_nums: u32,
    /// RocketMQ permission bits (`proto::PERM_READ | proto::PERM_WRITE` = 6).
    pub perm: u32,
}

/// What a broker reports when it registers; registering again is its heartbeat.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registration {
    /// brokerClusterName.
    pub cluster_name: String,
    /// brokerName: the group.
    pub broker_name: String,
    /// The member as it describes itself; its node id is its identity in the group.
    pub member: MemberInfo,
    /// The broker claims to lead its group in `member.term`.
    pub is_leader: bool,
    /// Every topic the broker holds (complete, not a delta).
    pub topics: BTreeMap<String, QueueConfig>,
    /// From a leader: the group's other members as it sees them (empty otherwise).
    pub replicas: Vec<ReplicaReport>,
}

/// A group member as its leader reports it: a slave with its in-sync state and lag, or the
/// witness. Shown in routes; informational (a change is not a route change).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplicaReport {
    /// Its Raft node id.
    pub node_id: u64,
    /// Its replication address.
    pub address: String,
    /// It votes.
    pub voter: bool,
    /// It is the group's witness (hosted by a nameserver, no message bodies).
    pub witness: bool,
    /// It is in the leader's in-sync set.
    pub in_sync: bool,
    /// Index of the last entry it has, if any.
    pub matched_index: Option<u64>,
    /// Entries it lacks.
    pub lag_entries: u64,
    /// Bytes of log it lacks.
    pub lag_bytes: u64,
}

/// What the recorded leader last reported of the group's members. Equal whatever it holds:
/// lag moves with every heartbeat, and watchers are told of route changes, not of progress.
#[derive(Debug, Clone, Default)]
pub struct Reported(pub Vec<ReplicaReport>);

impl PartialEq for Reported {
    fn eq(&self, _other: &Self) -> bool {
        true
    }
}

impl Eq for Reported {}

/// What the route says about one member: everything but its heartbeat time. Two
/// registrations with equal `MemberInfo` (and topics) are a heartbeat, not a change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberInfo {
    /// brokerId, as the route shows it (see the module documentation).
    pub broker_id: u64,
    /// Raft node id within the group.
    pub node_id: u64,
    /// Client address.
    pub broker_addr: String,
    /// Replication address.
    pub ha_addr: String,
    /// Configured brokerRole.
    pub configured_role: BrokerRole,
    /// Raft role at its last registration.
    pub raft_role: RaftRole,
    /// Raft term at its last registration.
    pub term: u64,
    /// Dropped when no registration arrives for this long (the broker's own timeout, or
    /// the nameserver's default: the caller decides).
    pub heartbeat_timeout: Duration,
}

/// A live member of a group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    /// What it last reported.
    pub info: MemberInfo,
    /// When its last registration arrived.
    pub last_heartbeat: Instant,
}

impl Member {
    /// Time since its last registration (zero if `now` is earlier).
    pub fn heartbeat_age(&self, now: Instant) -> Duration {
        now.saturating_duration_since(self.last_heartbeat)
    }

    /// Whether its registration has run out: strictly more than its timeout has passed.
    pub fn is_expired(&self, now: Instant) -> bool {
        self.heartbeat_age(now) > self.info.heartbeat_timeout
    }
}

/// A broker group as recorded: its live members, its leader and the leader's term.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Group {
    cluster_name: String,
    broker_name: String,
    /// Node id → member. Never empty while the group is in the table.
    members: BTreeMap<u64, Member>,
    /// Node id of the leader; always a key of `members` when set.
    leader: Option<u64>,
    /// Term in which the leader (current or last) was recorded; never decreases.
    term: u64,
    /// The other members as the recorded leader last reported them.
    replicas: Reported,
}

impl Group {
    fn new(cluster_name: &str, broker_name: &str) -> Self {
        Group {
            cluster_name: cluster_name.to_owned(),
            broker_name: broker_name.to_owned(),
            members: BTreeMap::new(),
            leader: None,
            term: 0,
            replicas: Reported::default(),
        }
    }

    /// The other members as the recorded leader last reported them (slaves, the witness).
    pub fn replicas(&self) -> &[ReplicaReport] {
        &self.replicas.0
    }

    /// brokerClusterName, as the latest registration said.
    pub fn cluster_name(&self) -> &str {
        &self.cluster_name
    }

    /// brokerName.
    pub fn broker_name(&self) -> &str {
        &self.broker_name
    }

    /// Live members, sorted by brokerId then node id.
    pub fn members(&self) -> Vec<&Member> {
        let mut members: Vec<&Member> = self.members.values().collect();
        members.sort_by_key(|m| (m.info.broker_id, m.info.node_id));
        members
    }

    /// The member with this node id.
    pub fn member(&self, node_id: u64) -> Option<&Member> {
        self.members.get(&node_id)
    }

    /// The recorded leader, if the group has a live one.
    pub fn leader(&self) -> Option<&Member> {
        self.leader.and_then(|id| self.members.get(&id))
    }

    /// Term in which the leader was recorded (the last leader's, when there is none now).
    pub fn term(&self) -> u64 {
        self.term
    }

    /// Records a member's claim (or not) to lead; returns whether it is the accepted
    /// leader. See the module documentation for the rules.
    fn record_role(&mut self, node_id: u64, is_leader: bool, term: u64) -> bool {
        let accepted = self.accept_role(node_id, is_leader, term);
        for member in self.members.values_mut() {
            let info = &mut member.info;
            if info.broker_id == MASTER_BROKER_ID && self.leader != Some(info.node_id) {
                info.broker_id = proto::broker_id(info.node_id, false);
            }
        }
        accepted
    }

    fn accept_role(&mut self, node_id: u64, is_leader: bool, term: u64) -> bool {
        if is_leader {
            if term < self.term {
                return false;
            }
            self.leader = Some(node_id);
            self.term = term;
            true
        } else {
            if self.leader == Some(node_id) && term >= self.term {
                self.leader = None;
            }
            false
        }
    }

    /// Node ids of the members other than the leader whose latest registration claimed
    /// leadership in a term below the recorded one.
    fn superseded_leaders(&self) -> Vec<u64> {
        self.members
            .values()
            .filter(|m| {
                Some(m.info.node_id) != self.leader
                    && m.info.raft_role == RaftRole::Leader
                    && m.info.term < self.term
            })
            .map(|m| m.info.node_id)
            .collect()
    }

    /// Removes a member; a removed leader leaves the group without one.
    fn remove_member(&mut self, node_id: u64) -> Option<Member> {
        if self.leader == Some(node_id) {
            self.leader = None;
        }
        self.members.remove(&node_id)
    }

    /// Equal as a route: heartbeat times alone do not make a change.
    fn same_route(&self, other: &Group) -> bool {
        self.cluster_name == other.cluster_name
            && self.broker_name == other.broker_name
            && self.leader == other.leader
            && self.term == other.term
            && self
                .members
                .values()
                .map(|m| &m.info)
                .eq(other.members.values().map(|m| &m.info))
    }
}

/// A topic's queues in every group that hosts it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicRoute {
    /// Topic name.
    pub topic: String,
    /// brokerName → its queues of the topic; never empty while the topic is in the table.
    pub queues: BTreeMap<String, QueueConfig>,
}

/// What one change did, with the complete new state of what changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// A group appeared, or its members, leader or term changed.
    GroupUpdated(Group),
    /// A group's last member expired or unregistered.
    GroupRemoved {
        /// brokerClusterName of the group.
        cluster_name: String,
        /// brokerName of the group.
        broker_name: String,
    },
    /// A topic appeared, or its queues in some group changed, or a group stopped hosting it
    /// while others still do.
    TopicUpdated(TopicRoute),
    /// No live group hosts the topic any more.
    TopicRemoved(String),
}

/// One change and the table version it produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteChange {
    /// The table's version after this change; consecutive changes have consecutive versions.
    pub version: u64,
    /// What changed.
    pub change: Change,
}

/// The result of [`RouteTable::register`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegisterOutcome {
    /// Whether the registration made (or kept) the broker the group's recorded leader.
    pub leader_accepted: bool,
    /// The group as recorded after the registration.
    pub group: Group,
    /// Former leaders the registration dropped: it was accepted in a higher term, and
    /// their latest registrations still claimed an older one.
    pub superseded: Vec<MemberInfo>,
    /// What the registration changed (empty for a plain heartbeat).
    pub changes: Vec<RouteChange>,
}

/// A registration refused because another live broker holds its node id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "node {node_id} of group {broker_name} is already registered by the broker at {held_by} \
     (replication {held_by_ha}, last heartbeat {} ms ago), not {claimed_by}: two brokers \
     have the same dLegerSelfId or brokerId; give each its own, or stop the other one",
    heartbeat_age.as_millis()
)]
pub struct NodeIdTaken {
    /// brokerName of the group.
    pub broker_name: String,
    /// The node id both brokers claim.
    pub node_id: u64,
    /// Client address of the broker that holds the id.
    pub held_by: String,
    /// Its replication address.
    pub held_by_ha: String,
    /// Client address of the refused registration.
    pub claimed_by: String,
    /// How long ago the holder last registered.
    pub heartbeat_age: Duration,
}

/// A member dropped by [`RouteTable::expire`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpiredMember {
    /// brokerName of its group.
    pub broker_name: String,
    /// What it last reported.
    pub info: MemberInfo,
    /// How long it had been silent.
    pub silent_for: Duration,
    /// It was the group's leader.
    pub was_leader: bool,
}

/// The result of [`RouteTable::expire`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Expiry {
    /// The members dropped.
    pub expired: Vec<ExpiredMember>,
    /// What dropping them changed.
    pub changes: Vec<RouteChange>,
}

/// Every group and topic at one version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteSnapshot {
    /// The table version this snapshot shows.
    pub version: u64,
    /// Every group, sorted by cluster then brokerName.
    pub groups: Vec<Group>,
    /// Every topic, sorted by name.
    pub topics: Vec<TopicRoute>,
}

/// A group and the topic reports of its members.
#[derive(Debug, Clone)]
struct GroupEntry {
    route: Group,
    /// Node id → the topics that member reported last (complete each time).
    reports: BTreeMap<u64, BTreeMap<String, QueueConfig>>,
}

impl GroupEntry {
    /// The topics the group hosts: the union of its members' reports, the leader's report
    /// winning, then the member with the lowest (brokerId, node id).
    fn hosted_topics(&self) -> BTreeMap<String, QueueConfig> {
        let mut hosted = BTreeMap::new();
        let leader = self.route.leader;
        // Later inserts win: followers from the highest (brokerId, node id) down, then the
        // leader.
        let followers = self
            .route
            .members()
            .into_iter()
            .rev()
            .map(|m| m.info.node_id)
            .filter(|&id| Some(id) != leader);
        for node_id in followers.chain(leader) {
            if let Some(report) = self.reports.get(&node_id) {
                hosted.extend(report.iter().map(|(t, q)| (t.clone(), *q)));
            }
        }
        hosted
    }
}

/// A group's route and hosted topics before an update, to diff against after it.
struct Before {
    group: Option<Group>,
    topics: BTreeMap<String, QueueConfig>,
}

/// The nameserver's route table. See the module documentation for the rules.
#[derive(Debug, Clone, Default)]
pub struct RouteTable {
    /// brokerName → group.
    groups: BTreeMap<String, GroupEntry>,
    /// Topic name → route; derived from `groups`, kept up to date by every update.
    topics: BTreeMap<String, TopicRoute>,
    /// Number of changes since the table was created.
    version: u64,
}

impl RouteTable {
    /// An empty table, at version 0.
    pub fn new() -> Self {
        Self::default()
    }

    /// The current version: the number of changes so far.
    pub fn version(&self) -> u64 {
        self.version
    }

    /// Records a registration (or heartbeat) that arrived at `now`.
    ///
    /// A registration naming a node id that another live broker holds (another address) is
    /// refused ([`NodeIdTaken`]): two brokers configured with one `dLegerSelfId` or `brokerId`
    /// would otherwise take turns as that node. Once the first one's registration expires
    /// (it stopped, or moved), the id is free again.
    pub fn register(
        &mut self,
        registration: Registration,
        now: Instant,
    ) -> Result<RegisterOutcome, NodeIdTaken> {
        if let Some(held) = self
            .groups
            .get(&registration.broker_name)
            .and_then(|g| g.route.members.get(&registration.member.node_id))
            .filter(|m| !m.is_expired(now))
            .filter(|m| m.info.broker_addr != registration.member.broker_addr)
        {
            return Err(NodeIdTaken {
                broker_name: registration.broker_name.clone(),
                node_id: registration.member.node_id,
                held_by: held.info.broker_addr.clone(),
                held_by_ha: held.info.ha_addr.clone(),
                claimed_by: registration.member.broker_addr.clone(),
                heartbeat_age: held.heartbeat_age(now),
            });
        }
        let Registration {
            cluster_name,
            broker_name,
            member,
            is_leader,
            topics,
            replicas,
        } = registration;
        let (node_id, term) = (member.node_id, member.term);
        let before = self.before(&broker_name);
        let entry = self
            .groups
            .entry(broker_name.clone())
            .or_insert_with(|| GroupEntry {
                route: Group::new(&cluster_name, &broker_name),
                reports: BTreeMap::new(),
            });
        entry.route.cluster_name = cluster_name;
        entry.route.members.insert(
            node_id,
            Member {
                info: member,
                last_heartbeat: now,
            },
        );
        entry.reports.insert(node_id, topics);
        let term_before = entry.route.term;
        let leader_accepted = entry.route.record_role(node_id, is_leader, term);
        if leader_accepted {
            entry.route.replicas = Reported(replicas);
        } else if entry.route.leader.is_none() {
            entry.route.replicas = Reported::default();
        }
        let mut superseded = Vec::new();
        if leader_accepted && term > term_before {
            for old in entry.route.superseded_leaders() {
                entry.reports.remove(&old);
                superseded.extend(entry.route.remove_member(old).map(|m| m.info));
            }
        }
        let group = entry.route.clone();
        let changes = self.commit(&broker_name, before);
        Ok(RegisterOutcome {
            leader_accepted,
            group,
            superseded,
            changes,
        })
    }

    /// Removes the member `node_id` of group `broker_name` at once (a clean shutdown).
    /// When `broker_addr` is not empty it must be the member's registered address, so that
    /// a late unregister from an old process cannot remove its successor. `None` when no
    /// such member is registered.
    pub fn unregister(
        &mut self,
        broker_name: &str,
        node_id: u64,
        broker_addr: &str,
    ) -> Option<Vec<RouteChange>> {
        let member = self.groups.get(broker_name)?.route.members.get(&node_id)?;
        if !broker_addr.is_empty() && member.info.broker_addr != broker_addr {
            return None;
        }
        let before = self.before(broker_name);
        let entry = self.groups.get_mut(broker_name)?;
        entry.route.remove_member(node_id);
        entry.reports.remove(&node_id);
        Some(self.commit(broker_name, before))
    }

    /// Drops every member whose heartbeat timeout has run out at `now`.
    pub fn expire(&mut self, now: Instant) -> Expiry {
        let stale: Vec<String> = self
            .groups
            .iter()
            .filter(|(_, e)| e.route.members.values().any(|m| m.is_expired(now)))
            .map(|(name, _)| name.clone())
            .collect();
        let mut expiry = Expiry::default();
        for broker_name in stale {
            let before = self.before(&broker_name);
            let Some(entry) = self.groups.get_mut(&broker_name) else {
                continue;
            };
            let expired_ids: Vec<u64> = entry
                .route
                .members
                .values()
                .filter(|m| m.is_expired(now))
                .map(|m| m.info.node_id)
                .collect();
            for node_id in expired_ids {
                let was_leader = entry.route.leader == Some(node_id);
                entry.reports.remove(&node_id);
                if let Some(member) = entry.route.remove_member(node_id) {
                    expiry.expired.push(ExpiredMember {
                        broker_name: broker_name.clone(),
                        silent_for: member.heartbeat_age(now),
                        info: member.info,
                        was_leader,
                    });
                }
            }
            expiry.changes.extend(self.commit(&broker_name, before));
        }
        expiry
    }

    /// The group named `broker_name`.
    pub fn group(&self, broker_name: &str) -> Option<&Group> {
        self.groups.get(broker_name).map(|e| &e.route)
    }

    /// Every group, sorted by cluster then brokerName.
    pub fn groups(&self) -> Vec<&Group> {
        let mut groups: Vec<&Group> = self.groups.values().map(|e| &e.route).collect();
        groups.sort_by(|a, b| {
            (a.cluster_name.as_str(), a.broker_name.as_str())
                .cmp(&(b.cluster_name.as_str(), b.broker_name.as_str()))
        });
        groups
    }

    /// The route of `topic` and the groups hosting it (sorted by brokerName), if any live
    /// group hosts it.
    pub fn topic_route(&self, topic: &str) -> Option<(&TopicRoute, Vec<&Group>)> {
        let route = self.topics.get(topic)?;
        let groups = route
            .queues
            .keys()
            .filter_map(|name| self.group(name))
            .collect();
        Some((route, groups))
    }

    /// Every topic, sorted by name.
    pub fn topics(&self) -> impl Iterator<Item = &TopicRoute> {
        self.topics.values()
    }

    /// Names of the topics hosted by some group of `cluster` (every cluster when `None`),
    /// sorted.
    pub fn topic_names(&self, cluster: Option<&str>) -> Vec<String> {
        self.topics
            .values()
            .filter(|route| {
                cluster.is_none_or(|cluster| {
                    route
                        .queues
                        .keys()
                        .filter_map(|name| self.group(name))
                        .any(|g| g.cluster_name == cluster)
                })
            })
            .map(|route| route.topic.clone())
            .collect()
    }

    /// The whole table as it is now.
    pub fn snapshot(&self) -> RouteSnapshot {
        RouteSnapshot {
            version: self.version,
            groups: self.groups().into_iter().cloned().collect(),
            topics: self.topics.values().cloned().collect(),
        }
    }

    fn before(&self, broker_name: &str) -> Before {
        match self.groups.get(broker_name) {
            Some(entry) => Before {
                group: Some(entry.route.clone()),
                topics: entry.hosted_topics(),
            },
            None => Before {
                group: None,
                topics: BTreeMap::new(),
            },
        }
    }

    /// After an update of group `broker_name`: forgets it if it has no members left,
    /// re-derives the topics it hosts, and numbers the changes.
    fn commit(&mut self, broker_name: &str, before: Before) -> Vec<RouteChange> {
        if self
            .groups
            .get(broker_name)
            .is_some_and(|e| e.route.members.is_empty())
        {
            self.groups.remove(broker_name);
        }
        let after = self.groups.get(broker_name);
        let after_topics = after.map(GroupEntry::hosted_topics).unwrap_or_default();
        let group_change = match (before.group, after) {
            (None, None) => None,
            (Some(old), Some(new)) if old.same_route(&new.route) => None,
            (_, Some(new)) => Some(Change::GroupUpdated(new.route.clone())),
            (Some(old), None) => Some(Change::GroupRemoved {
                cluster_name: old.cluster_name,
                broker_name: old.broker_name,
            }),
        };
        let topic_changes = self.reindex_topics(broker_name, &before.topics, &after_topics);

        let mut changes = Vec::with_capacity(topic_changes.len() + 1);
        match group_change {
            Some(removed @ Change::GroupRemoved { .. }) => {
                changes.extend(topic_changes);
                changes.push(removed);
            }
            group_change => {
                changes.extend(group_change);
                changes.extend(topic_changes);
            }
        }
        changes
            .into_iter()
            .map(|change| {
                self.version += 1;
                RouteChange {
                    version: self.version,
                    change,
                }
            })
            .collect()
    }

    /// Brings the topic index in line with what group `broker_name` hosts now.
    fn reindex_topics(
        &mut self,
        broker_name: &str,
        old: &BTreeMap<String, QueueConfig>,
        new: &BTreeMap<String, QueueConfig>,
    ) -> Vec<Change> {
        let names: BTreeSet<&String> = old.keys().chain(new.keys()).collect();
        let mut changes = Vec::new();
        for name in names {
            let queues = new.get(name);
            if old.get(name) == queues {
                continue;
            }
            let route = self
                .topics
                .entry(name.clone())
                .or_insert_with(|| TopicRoute {
                    topic: name.clone(),
                    queues: BTreeMap::new(),
                });
            match queues {
                Some(&queues) => {
                    route.queues.insert(broker_name.to_owned(), queues);
                }
                None => {
                    route.queues.remove(broker_name);
                }
            }
            if route.queues.is_empty() {
                self.topics.remove(name);
                changes.push(Change::TopicRemoved(name.clone()));
            } else {
                changes.push(Change::TopicUpdated(route.clone()));
            }
        }
        changes
    }
}

#[cfg(test)]
mod tests;
