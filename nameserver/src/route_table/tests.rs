use super::*;

/// Registrations in these tests never reuse a node id from another address: their outcome.
trait Accept {
    fn accept(&mut self, registration: Registration, now: Instant) -> RegisterOutcome;
}

impl Accept for RouteTable {
    fn accept(&mut self, registration: Registration, now: Instant) -> RegisterOutcome {
        self.register(registration, now)
            .expect("no other broker holds the node id")
    }
}

const TIMEOUT: Duration = Duration::from_secs(5);
const QUEUES: QueueConfig = QueueConfig {
    read_queue_nums: 4,
    write_queue_nums: 4,
    perm: 6,
};

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// A registration of node `node` of `group` (cluster "c") at 127.0.0.1:1091<node>, hosting
/// topic "T" with [`QUEUES`], with the brokerId a broker reports.
fn reg(group: &str, node: u64, term: u64, is_leader: bool) -> Registration {
    Registration {
        cluster_name: "c".to_owned(),
        broker_name: group.to_owned(),
        member: MemberInfo {
            broker_id: proto::broker_id(node, is_leader),
            node_id: node,
            broker_addr: format!("127.0.0.1:1091{node}"),
            ha_addr: format!("127.0.0.1:4091{node}"),
            configured_role: BrokerRole::SyncMaster,
            raft_role: if is_leader {
                RaftRole::Leader
            } else {
                RaftRole::Follower
            },
            term,
            heartbeat_timeout: TIMEOUT,
        },
        is_leader,
        topics: topics(&[("T", QUEUES)]),
        replicas: Vec::new(),
    }
}

fn topics(list: &[(&str, QueueConfig)]) -> BTreeMap<String, QueueConfig> {
    list.iter().map(|&(t, q)| (t.to_owned(), q)).collect()
}

fn queues(n: u32) -> QueueConfig {
    QueueConfig {
        read_queue_nums: n,
        write_queue_nums: n,
        perm: 6,
    }
}

fn leader_of(table: &RouteTable, group: &str) -> Option<(u64, u64)> {
    let g = table.group(group)?;
    g.leader().map(|m| (m.info.node_id, g.term()))
}

fn node_ids(group: &Group) -> Vec<u64> {
    group.members().iter().map(|m| m.info.node_id).collect()
}

/// (node id, brokerId) of every member, in route order.
fn broker_ids(table: &RouteTable, group: &str) -> Vec<(u64, u64)> {
    table.group(group).map_or_else(Vec::new, |g| {
        g.members()
            .iter()
            .map(|m| (m.info.node_id, m.info.broker_id))
            .collect()
    })
}

/// A short name for each change, to compare sequences of changes.
fn kinds(changes: &[RouteChange]) -> Vec<String> {
    changes
        .iter()
        .map(|c| match &c.change {
            Change::GroupUpdated(g) => format!("group {}", g.broker_name()),
            Change::GroupRemoved { broker_name, .. } => format!("-group {broker_name}"),
            Change::TopicUpdated(t) => format!("topic {}", t.topic),
            Change::TopicRemoved(t) => format!("-topic {t}"),
        })
        .collect()
}

/// Three members of "g", n0 leading in term 1, registered at `t0`.
fn three_members(t0: Instant) -> RouteTable {
    let mut table = RouteTable::new();
    table.accept(reg("g", 0, 1, true), t0);
    table.accept(reg("g", 1, 1, false), t0);
    table.accept(reg("g", 2, 1, false), t0);
    table
}

#[test]
fn first_registration_creates_group_then_topic() {
    let mut table = RouteTable::new();
    let now = Instant::now();
    let out = table.accept(reg("g", 0, 1, true), now);
    assert!(out.leader_accepted);
    assert_eq!(kinds(&out.changes), ["group g", "topic T"]);
    assert_eq!(
        out.changes.iter().map(|c| c.version).collect::<Vec<_>>(),
        [1, 2]
    );
    assert_eq!(table.version(), 2);
    assert_eq!(out.group.cluster_name(), "c");
    assert_eq!(out.group.leader().map(|m| m.info.node_id), Some(0));
    assert_eq!(out.group.term(), 1);
    let (route, groups) = table.topic_route("T").unwrap();
    assert_eq!(route.queues, BTreeMap::from([("g".to_owned(), QUEUES)]));
    assert_eq!(groups.len(), 1);
    assert!(table.topic_route("nope").is_none());
}

#[test]
fn heartbeat_without_change_changes_nothing_but_the_heartbeat() {
    let t0 = Instant::now();
    let mut table = three_members(t0);
    let version = table.version();
    let out = table.accept(reg("g", 1, 1, false), t0 + ms(100));
    assert!(out.changes.is_empty());
    assert!(!out.leader_accepted);
    assert_eq!(table.version(), version);
    let member = table.group("g").unwrap().member(1).unwrap();
    assert_eq!(member.last_heartbeat, t0 + ms(100));
    assert_eq!(member.heartbeat_age(t0 + ms(300)), ms(200));
    // The leader's heartbeat keeps it leader.
    let out = table.accept(reg("g", 0, 1, true), t0 + ms(100));
    assert!(out.leader_accepted && out.changes.is_empty());
}

#[test]
fn three_member_group_lists_members_sorted_with_leader() {
    let t0 = Instant::now();
    let mut table = RouteTable::new();
    table.accept(reg("g", 2, 1, false), t0);
    table.accept(reg("g", 0, 1, true), t0);
    let out = table.accept(reg("g", 1, 1, false), t0);
    assert_eq!(node_ids(&out.group), [0, 1, 2]);
    assert_eq!(leader_of(&table, "g"), Some((0, 1)));
    assert_eq!(
        out.group.leader().unwrap().info.broker_addr,
        "127.0.0.1:10910"
    );
    // Sorted by brokerId first: a node with a lower brokerId comes first.
    let mut odd = reg("g", 3, 1, false);
    odd.member.broker_id = 1;
    let out = table.accept(odd, t0);
    assert_eq!(node_ids(&out.group), [0, 3, 1, 2]);
}

#[test]
fn higher_term_leader_replaces_and_stale_term_never_does() {
    let t0 = Instant::now();
    let mut table = three_members(t0);
    let out = table.accept(reg("g", 1, 2, true), t0);
    assert!(out.leader_accepted);
    assert_eq!(kinds(&out.changes), ["group g"]);
    assert_eq!(leader_of(&table, "g"), Some((1, 2)));

    // The old master, not yet aware of the new term, still claims leadership in term 1.
    let out = table.accept(reg("g", 0, 1, true), t0 + ms(10));
    assert!(!out.leader_accepted);
    assert_eq!(out.group.leader().map(|m| m.info.node_id), Some(1));
    assert_eq!(out.group.term(), 2);
    assert_eq!(leader_of(&table, "g"), Some((1, 2)));
    // It is a live member, showing what it reported but the master's brokerId.
    let n0 = &out.group.member(0).unwrap().info;
    assert_eq!(
        (n0.raft_role, n0.term, n0.broker_id),
        (RaftRole::Leader, 1, 1)
    );
    // The same claim again is a heartbeat: the route does not change.
    let version = table.version();
    let out = table.accept(reg("g", 0, 1, true), t0 + ms(20));
    assert!(!out.leader_accepted && out.changes.is_empty());
    assert_eq!(table.version(), version);
}

#[test]
fn a_leader_of_a_higher_term_drops_the_superseded_one_at_once() {
    let t0 = Instant::now();
    let mut table = three_members(t0);
    assert_eq!(broker_ids(&table, "g"), [(0, 0), (1, 2), (2, 3)]);
    // n0 was killed; n1 wins the election long before n0's heartbeat timeout.
    let out = table.accept(reg("g", 1, 2, true), t0 + ms(300));
    assert!(out.leader_accepted);
    let superseded: Vec<(u64, u64)> = out.superseded.iter().map(|m| (m.node_id, m.term)).collect();
    assert_eq!(superseded, [(0, 1)]);
    assert_eq!(broker_ids(&table, "g"), [(1, 0), (2, 3)]);
    // One change of the group; n1 and n2 still host the topic.
    assert_eq!(kinds(&out.changes), ["group g"]);
    assert!(table.topic_route("T").is_some());
    // Its heartbeats would have run out later: nothing left to expire then.
    table.accept(reg("g", 2, 2, false), t0 + TIMEOUT);
    assert!(table.expire(t0 + TIMEOUT + ms(1)).expired.is_empty());
}

#[test]
fn only_leadership_claims_in_older_terms_are_superseded() {
    let t0 = Instant::now();
    let mut table = three_members(t0);
    // n0 stepped down and said so in the new term before n1's claim arrived: it stays.
    table.accept(reg("g", 0, 2, false), t0);
    let out = table.accept(reg("g", 1, 2, true), t0);
    assert!(out.superseded.is_empty());
    assert_eq!(node_ids(&out.group), [1, 0, 2]);
    // A leader re-elected in a later term supersedes nobody, itself least of all.
    let out = table.accept(reg("g", 1, 3, true), t0);
    assert!(out.superseded.is_empty() && out.leader_accepted);
    assert_eq!(node_ids(&out.group), [1, 0, 2]);
    // A follower's higher term supersedes nobody either (see the next test).
    let out = table.accept(reg("g", 2, 9, false), t0);
    assert!(out.superseded.is_empty());
    assert_eq!(leader_of(&table, "g"), Some((1, 3)));
}

#[test]
fn broker_ids_stay_put_through_failovers_and_one_row_has_zero() {
    let t0 = Instant::now();
    let mut table = three_members(t0);
    // Each failover: the leader dies, a survivor wins, the dead node comes back as a follower.
    for (term, (dead, winner)) in [(0, 1), (1, 2), (2, 0)].into_iter().enumerate() {
        let term = term as u64 + 2;
        table.accept(reg("g", winner, term, true), t0);
        let ids = broker_ids(&table, "g");
        assert_eq!(ids.iter().filter(|(_, id)| *id == 0).count(), 1, "{ids:?}");
        assert!(!ids.iter().any(|(node, _)| *node == dead), "{ids:?}");
        table.accept(reg("g", dead, term, false), t0);
        let mut ids = broker_ids(&table, "g");
        ids.sort_unstable();
        let want: Vec<(u64, u64)> = (0..3)
            .map(|n| (n, if n == winner { 0 } else { n + 1 }))
            .collect();
        assert_eq!(ids, want, "after term {term}");
    }
}

#[test]
fn equal_term_claim_from_another_node_replaces_the_leader() {
    let t0 = Instant::now();
    let mut table = three_members(t0);
    let out = table.accept(reg("g", 2, 1, true), t0);
    assert!(out.leader_accepted);
    assert_eq!(leader_of(&table, "g"), Some((2, 1)));
    // The term did not rise, so n0's claim is not superseded, but only n2 shows brokerId 0.
    assert!(out.superseded.is_empty());
    assert_eq!(broker_ids(&table, "g"), [(2, 0), (0, 1), (1, 2)]);
}

#[test]
fn follower_registration_never_changes_the_leader() {
    let t0 = Instant::now();
    let mut table = three_members(t0);
    // A follower that has seen a higher term (a partitioned node campaigning) does not
    // unseat the leader.
    let out = table.accept(reg("g", 2, 9, false), t0);
    assert!(!out.leader_accepted);
    assert_eq!(leader_of(&table, "g"), Some((0, 1)));
    assert_eq!(kinds(&out.changes), ["group g"]); // its term changed
}

#[test]
fn leader_stepping_down_leaves_the_group_leaderless() {
    let t0 = Instant::now();
    let mut table = three_members(t0);
    // A stale follower report from the leader (term lower than recorded) is ignored.
    table.accept(reg("g", 0, 3, true), t0);
    table.accept(reg("g", 0, 2, false), t0);
    assert_eq!(leader_of(&table, "g"), Some((0, 3)));
    // A follower report in its own term (or later) means it lost leadership.
    let out = table.accept(reg("g", 0, 3, false), t0);
    assert!(out.group.leader().is_none());
    assert_eq!(out.group.term(), 3);
    assert_eq!(kinds(&out.changes), ["group g"]);
}

#[test]
fn members_expire_strictly_after_their_timeout_and_heartbeats_keep_them() {
    let t0 = Instant::now();
    let mut table = three_members(t0);
    table.accept(reg("g", 1, 1, false), t0 + ms(3000));
    assert!(table.expire(t0 + TIMEOUT).expired.is_empty());
    let expiry = table.expire(t0 + TIMEOUT + ms(1));
    let mut gone: Vec<u64> = expiry.expired.iter().map(|e| e.info.node_id).collect();
    gone.sort_unstable();
    assert_eq!(gone, [0, 2]);
    let leader = expiry.expired.iter().find(|e| e.info.node_id == 0).unwrap();
    assert!(leader.was_leader);
    assert_eq!(leader.silent_for, TIMEOUT + ms(1));
    // One update of one group: one group change, the topic is still hosted by n1.
    assert_eq!(kinds(&expiry.changes), ["group g"]);
    let g = table.group("g").unwrap();
    assert_eq!(node_ids(g), [1]);
    assert!(g.leader().is_none(), "an expired leader leaves the route");
    assert_eq!(g.term(), 1, "the term is kept");
    assert!(table.topic_route("T").is_some());
    // Nothing more to expire.
    assert_eq!(table.expire(t0 + TIMEOUT + ms(2)), Expiry::default());
}

#[test]
fn term_is_kept_after_leader_expiry_so_a_stale_claim_still_fails() {
    let t0 = Instant::now();
    let mut table = three_members(t0);
    table.accept(reg("g", 1, 2, true), t0);
    table.accept(reg("g", 0, 1, false), t0 + ms(4000));
    table.accept(reg("g", 2, 2, false), t0 + ms(4000));
    table.expire(t0 + ms(5001)); // n1, the leader in term 2, expires
    assert_eq!(table.group("g").unwrap().term(), 2);
    let out = table.accept(reg("g", 0, 1, true), t0 + ms(5002));
    assert!(!out.leader_accepted);
    assert!(out.group.leader().is_none());
    // The next election's winner is accepted.
    let out = table.accept(reg("g", 2, 3, true), t0 + ms(5003));
    assert!(out.leader_accepted);
    assert_eq!(leader_of(&table, "g"), Some((2, 3)));
}

#[test]
fn each_member_expires_after_its_own_timeout() {
    let t0 = Instant::now();
    let mut table = RouteTable::new();
    let mut short = reg("g", 0, 1, true);
    short.member.heartbeat_timeout = ms(500);
    table.accept(short, t0);
    table.accept(reg("g", 1, 1, false), t0);
    let expiry = table.expire(t0 + ms(501));
    assert_eq!(expiry.expired.len(), 1);
    assert_eq!(expiry.expired[0].info.node_id, 0);
    assert!(table.group("g").unwrap().member(1).is_some());
}

#[test]
fn last_member_gone_removes_topics_then_group() {
    let t0 = Instant::now();
    let mut table = three_members(t0);
    let expiry = table.expire(t0 + TIMEOUT + ms(1));
    assert_eq!(expiry.expired.len(), 3);
    assert_eq!(kinds(&expiry.changes), ["-topic T", "-group g"]);
    assert_eq!(
        expiry.changes[1].change,
        Change::GroupRemoved {
            cluster_name: "c".to_owned(),
            broker_name: "g".to_owned()
        }
    );
    assert!(table.group("g").is_none());
    assert!(table.topic_route("T").is_none());
    assert!(table.groups().is_empty());
    // A forgotten group starts over: a re-created group in term 1 is accepted again.
    let out = table.accept(reg("g", 0, 1, true), t0 + ms(6000));
    assert!(out.leader_accepted);
}

#[test]
fn topics_are_the_union_of_live_members_reports_leader_first() {
    let t0 = Instant::now();
    let mut table = RouteTable::new();
    let mut n0 = reg("g", 0, 1, true);
    n0.topics = topics(&[("A", queues(8))]);
    table.accept(n0.clone(), t0);
    // A follower that still has an older config of A, and a topic B the leader lacks (it
    // was created, the leader's report has not caught up, or the leader deleted it and the
    // follower has not applied that yet).
    let mut n1 = reg("g", 1, 1, false);
    n1.topics = topics(&[("A", queues(4)), ("B", queues(2))]);
    let out = table.accept(n1.clone(), t0);
    assert_eq!(kinds(&out.changes), ["group g", "topic B"]);
    assert_eq!(table.topic_route("A").unwrap().0.queues["g"], queues(8));
    assert_eq!(table.topic_route("B").unwrap().0.queues["g"], queues(2));

    // Without a leader the lowest (brokerId, node id) wins: n0, which still reports 8.
    n0.is_leader = false;
    n0.member.raft_role = RaftRole::Follower;
    let out = table.accept(n0.clone(), t0);
    assert_eq!(kinds(&out.changes), ["group g"]);
    assert_eq!(table.topic_route("A").unwrap().0.queues["g"], queues(8));

    // n1 becomes leader: its config of A wins now.
    n1.is_leader = true;
    n1.member.term = 2;
    n1.member.raft_role = RaftRole::Leader;
    let out = table.accept(n1, t0);
    assert_eq!(kinds(&out.changes), ["group g", "topic A"]);
    assert_eq!(table.topic_route("A").unwrap().0.queues["g"], queues(4));

    // When the only member reporting B expires, B is gone.
    table.accept(n0, t0 + ms(3000));
    let expiry = table.expire(t0 + TIMEOUT + ms(1));
    assert_eq!(kinds(&expiry.changes), ["group g", "topic A", "-topic B"]);
    assert_eq!(table.topic_route("A").unwrap().0.queues["g"], queues(8));
    assert!(table.topic_route("B").is_none());
}

#[test]
fn changed_topic_config_is_a_topic_change_only() {
    let t0 = Instant::now();
    let mut table = three_members(t0);
    let mut n0 = reg("g", 0, 1, true);
    n0.topics = topics(&[("T", queues(16)), ("U", queues(1))]);
    let out = table.accept(n0.clone(), t0);
    assert_eq!(kinds(&out.changes), ["topic T", "topic U"]);
    // Only the leader reported U (the followers report T alone), so when it deletes U no
    // live member hosts it any more.
    n0.topics = topics(&[("T", queues(16))]);
    let out = table.accept(n0, t0);
    assert_eq!(kinds(&out.changes), ["-topic U"]);
}

#[test]
fn a_topic_lists_every_group_hosting_it() {
    let t0 = Instant::now();
    let mut table = RouteTable::new();
    table.accept(reg("b", 0, 1, true), t0);
    let out = table.accept(reg("a", 0, 1, true), t0 + ms(4000));
    // The second group adds itself to T: a topic change.
    assert_eq!(kinds(&out.changes), ["group a", "topic T"]);
    let (route, groups) = table.topic_route("T").unwrap();
    assert_eq!(route.queues.keys().collect::<Vec<_>>(), ["a", "b"]);
    assert_eq!(
        groups.iter().map(|g| g.broker_name()).collect::<Vec<_>>(),
        ["a", "b"]
    );
    // Group b expires: T is still hosted by a.
    let expiry = table.expire(t0 + TIMEOUT + ms(1));
    assert_eq!(kinds(&expiry.changes), ["topic T", "-group b"]);
    match &expiry.changes[0].change {
        Change::TopicUpdated(t) => assert_eq!(t.queues.keys().collect::<Vec<_>>(), ["a"]),
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn re_registration_with_new_address_or_cluster_is_a_group_change() {
    let t0 = Instant::now();
    let mut table = three_members(t0);
    // A broker that moved to another address, once its old registration has expired (until
    // then another broker holds the id: see the next test).
    let mut moved = reg("g", 1, 1, false);
    moved.member.broker_addr = "127.0.0.1:20000".to_owned();
    let out = table.accept(moved, t0 + TIMEOUT + ms(1));
    assert_eq!(kinds(&out.changes), ["group g"]);
    assert_eq!(
        out.group.member(1).unwrap().info.broker_addr,
        "127.0.0.1:20000"
    );
    assert_eq!(node_ids(&out.group), [0, 1, 2], "replaced, not added");

    let mut recluster = reg("g", 0, 1, true);
    recluster.cluster_name = "other".to_owned();
    let out = table.accept(recluster, t0);
    assert_eq!(kinds(&out.changes), ["group g"]);
    assert_eq!(out.group.cluster_name(), "other");
}

#[test]
fn unregister_removes_at_once_and_checks_the_address() {
    let t0 = Instant::now();
    let mut table = three_members(t0);
    assert_eq!(table.unregister("nope", 0, ""), None);
    assert_eq!(table.unregister("g", 7, ""), None);
    // An old process's unregister cannot remove a member now registered elsewhere.
    assert_eq!(table.unregister("g", 0, "127.0.0.1:1"), None);
    assert_eq!(leader_of(&table, "g"), Some((0, 1)));

    let changes = table.unregister("g", 0, "127.0.0.1:10910").unwrap();
    assert_eq!(kinds(&changes), ["group g"]);
    let g = table.group("g").unwrap();
    assert_eq!(node_ids(g), [1, 2]);
    assert!(g.leader().is_none());

    table.unregister("g", 1, "").unwrap();
    let changes = table.unregister("g", 2, "").unwrap();
    assert_eq!(kinds(&changes), ["-topic T", "-group g"]);
}

#[test]
fn versions_are_consecutive_and_the_snapshot_shows_the_last() {
    let t0 = Instant::now();
    let mut table = RouteTable::new();
    let mut versions = Vec::new();
    let mut n0 = reg("g", 0, 1, true);
    versions.extend(table.accept(n0.clone(), t0).changes);
    versions.extend(table.accept(reg("h", 0, 1, true), t0).changes);
    n0.topics = topics(&[("X", QUEUES), ("Y", QUEUES)]);
    versions.extend(table.accept(n0, t0).changes);
    versions.extend(table.expire(t0 + TIMEOUT * 2).changes);
    let numbers: Vec<u64> = versions.iter().map(|c| c.version).collect();
    let expected: Vec<u64> = (1..=numbers.len() as u64).collect();
    assert_eq!(numbers, expected);
    assert_eq!(table.snapshot().version, table.version());
    assert_eq!(table.version(), numbers.len() as u64);
}

#[test]
fn snapshot_and_queries_are_sorted() {
    let t0 = Instant::now();
    let mut table = RouteTable::new();
    let mut z = reg("a", 0, 1, true);
    z.cluster_name = "z".to_owned();
    z.topics = topics(&[("Z1", QUEUES)]);
    table.accept(z, t0);
    let mut b = reg("b", 0, 1, true);
    b.topics = topics(&[("B1", QUEUES), ("A1", QUEUES)]);
    table.accept(b, t0);
    table.accept(reg("c", 0, 1, true), t0);

    let snapshot = table.snapshot();
    let names: Vec<(&str, &str)> = snapshot
        .groups
        .iter()
        .map(|g| (g.cluster_name(), g.broker_name()))
        .collect();
    assert_eq!(names, [("c", "b"), ("c", "c"), ("z", "a")]);
    let topics: Vec<&str> = snapshot.topics.iter().map(|t| t.topic.as_str()).collect();
    assert_eq!(topics, ["A1", "B1", "T", "Z1"]);
    assert_eq!(table.topic_names(None), ["A1", "B1", "T", "Z1"]);
    assert_eq!(table.topic_names(Some("c")), ["A1", "B1", "T"]);
    assert_eq!(table.topic_names(Some("z")), ["Z1"]);
    assert!(table.topic_names(Some("none")).is_empty());
    assert_eq!(table.topics().count(), 4);
}

/// What a restarted nameserver learns from heartbeats is the route the old one had.
#[test]
fn restarted_table_is_rebuilt_from_re_registrations() {
    let t0 = Instant::now();
    let mut old = three_members(t0);
    old.accept(reg("g", 1, 2, true), t0);
    old.accept(reg("g", 0, 2, false), t0);
    old.accept(reg("g", 2, 2, false), t0);

    // The new table hears the heartbeats in another order: followers before the leader.
    let t1 = t0 + ms(100);
    let mut new = RouteTable::new();
    assert!(!new.accept(reg("g", 2, 2, false), t1).leader_accepted);
    assert!(!new.accept(reg("g", 0, 2, false), t1).leader_accepted);
    assert!(new.group("g").unwrap().leader().is_none());
    assert!(new.accept(reg("g", 1, 2, true), t1).leader_accepted);

    let strip = |s: RouteSnapshot| {
        let groups: Vec<_> = s
            .groups
            .iter()
            .map(|g| {
                let infos: Vec<MemberInfo> = g.members().iter().map(|m| m.info.clone()).collect();
                (
                    g.cluster_name().to_owned(),
                    g.leader().map(|m| m.info.node_id),
                    g.term(),
                    infos,
                )
            })
            .collect();
        (groups, s.topics)
    };
    assert_eq!(strip(new.snapshot()), strip(old.snapshot()));
    // A stale master's first heartbeat to the new nameserver cannot take over either.
    assert!(!new.accept(reg("g", 0, 1, true), t1).leader_accepted);
    assert_eq!(leader_of(&new, "g"), Some((1, 2)));
}

#[test]
fn a_node_id_held_by_a_live_broker_is_refused_to_another_address() {
    let mut table = RouteTable::new();
    let t0 = Instant::now();
    table.accept(reg("g", 0, 1, true), t0);
    let mut twin = reg("g", 0, 1, false);
    twin.member.broker_addr = "10.9.9.9:30911".into();
    let taken = table.register(twin.clone(), t0 + ms(100)).unwrap_err();
    assert_eq!(
        (taken.node_id, taken.claimed_by.as_str()),
        (0, "10.9.9.9:30911")
    );
    let text = taken.to_string();
    assert!(
        text.contains(&reg("g", 0, 1, true).member.broker_addr) && text.contains("10.9.9.9:30911"),
        "names both: {text}"
    );
    // The holder is unchanged; its own heartbeats go on.
    assert_eq!(
        table
            .group("g")
            .unwrap()
            .member(0)
            .unwrap()
            .info
            .broker_addr,
        reg("g", 0, 1, true).member.broker_addr
    );
    table.accept(reg("g", 0, 1, true), t0 + ms(200));
    // Once the holder's registration expires (it stopped or moved), the id is free.
    let later = t0 + ms(200) + TIMEOUT + ms(1);
    assert!(table.register(twin, later).is_ok());
}
