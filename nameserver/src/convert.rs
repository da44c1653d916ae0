//! Conversions between the wire types of `raftmq.v1` and the route table's types.
//!
//! Requests are parsed here (with the checks a route needs: names and addresses are not
//! empty); responses and route events are built here from table values and the time of
//! sending, which gives heartbeat ages.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use proto::v1 as pb;
use proto::v1::route_event::Change as PbChange;

use crate::route_table::{
    Change, Group, MemberInfo, QueueConfig, Registration, ReplicaReport, RouteChange,
    RouteSnapshot, TopicRoute,
};

/// A registration from its request, or which field is unusable (for an ILLEGAL_ARGUMENT
/// remark). A request without its own heartbeat timeout gets `default_timeout`.
pub(crate) fn registration(
    request: pb::RegisterBrokerRequest,
    default_timeout: Duration,
) -> Result<Registration, String> {
    for (field, value) in [
        ("cluster_name", &request.cluster_name),
        ("broker_name", &request.broker_name),
        ("broker_addr", &request.broker_addr),
    ] {
        if value.is_empty() {
            return Err(format!("{field} is empty"));
        }
    }
    let mut topics = BTreeMap::new();
    for topic in &request.topics {
        if topic.topic_name.is_empty() {
            return Err(format!(
                "a topic of {} node {} has an empty topic_name",
                request.broker_name, request.node_id
            ));
        }
        topics.insert(
            topic.topic_name.clone(),
            QueueConfig {
                read_queue_nums: topic.read_queue_nums,
                write_queue_nums: topic.write_queue_nums,
                perm: topic.perm,
            },
        );
    }
    let member = MemberInfo {
        broker_id: request.broker_id,
        node_id: request.node_id,
        // Unknown enum values (from a newer broker) read as UNSPECIFIED, not as an error.
        configured_role: request.configured_role(),
        raft_role: request.raft_role(),
        term: request.term,
        heartbeat_timeout: match request.heartbeat_timeout_ms {
            0 => default_timeout,
            ms => Duration::from_millis(ms),
        },
        broker_addr: request.broker_addr,
        ha_addr: request.ha_addr,
    };
    let replicas = request
        .replicas
        .iter()
        .map(|r| ReplicaReport {
            node_id: r.node_id,
            address: r.address.clone(),
            voter: r.voter,
            witness: r.witness,
            in_sync: r.in_sync,
            matched_index: r.matched.as_ref().map(|m| m.index),
            lag_entries: r.lag_entries,
            lag_bytes: r.lag_bytes,
        })
        .collect();
    Ok(Registration {
        cluster_name: request.cluster_name,
        broker_name: request.broker_name,
        member,
        is_leader: request.is_leader,
        topics,
        replicas,
    })
}

/// A group as the wire shows it, heartbeat ages measured at `now`.
pub(crate) fn group_route(group: &Group, now: Instant) -> pb::GroupRoute {
    let leader = group.leader();
    pb::GroupRoute {
        cluster_name: group.cluster_name().to_owned(),
        broker_name: group.broker_name().to_owned(),
        members: group
            .members()
            .into_iter()
            .map(|member| {
                let info = &member.info;
                pb::GroupMember {
                    // Only the recorded leader shows 0 (the table's rule).
                    broker_id: info.broker_id,
                    node_id: info.node_id,
                    broker_addr: info.broker_addr.clone(),
                    ha_addr: info.ha_addr.clone(),
                    configured_role: info.configured_role.into(),
                    raft_role: info.raft_role.into(),
                    term: info.term,
                    // Brokers only; the witness is among `replicas`, as the leader reports it.
                    witness: false,
                    last_heartbeat_age_ms: millis(member.heartbeat_age(now)),
                    heartbeat_timeout_ms: millis(info.heartbeat_timeout),
                }
            })
            .collect(),
        leader_node_id: leader.map(|m| m.info.node_id),
        leader_addr: leader
            .map(|m| m.info.broker_addr.clone())
            .unwrap_or_default(),
        term: group.term(),
        replicas: group
            .replicas()
            .iter()
            .map(|r| pb::ReplicaProgress {
                node_id: r.node_id,
                address: r.address.clone(),
                voter: r.voter,
                witness: r.witness,
                matched: r.matched_index.map(|index| pb::LogId {
                    term: 0,
                    node_id: 0,
                    index,
                }),
                in_sync: r.in_sync,
                lag_entries: r.lag_entries,
                lag_bytes: r.lag_bytes,
            })
            .collect(),
    }
}

/// A topic's queues per group, sorted by brokerName.
pub(crate) fn topic_queues(route: &TopicRoute) -> pb::TopicQueues {
    pb::TopicQueues {
        topic: route.topic.clone(),
        queue_datas: route
            .queues
            .iter()
            .map(|(broker_name, queues)| pb::QueueData {
                broker_name: broker_name.clone(),
                read_queue_nums: queues.read_queue_nums,
                write_queue_nums: queues.write_queue_nums,
                perm: queues.perm,
            })
            .collect(),
    }
}

/// The event announcing one change.
pub(crate) fn change_event(change: &RouteChange, epoch: &str, now: Instant) -> pb::RouteEvent {
    let body = match &change.change {
        Change::GroupUpdated(group) => PbChange::GroupUpdated(group_route(group, now)),
        Change::GroupRemoved {
            cluster_name,
            broker_name,
        } => PbChange::GroupRemoved(pb::GroupRemoved {
            cluster_name: cluster_name.clone(),
            broker_name: broker_name.clone(),
        }),
        Change::TopicUpdated(route) => PbChange::TopicUpdated(topic_queues(route)),
        Change::TopicRemoved(topic) => PbChange::TopicRemoved(topic.clone()),
    };
    pb::RouteEvent {
        epoch: epoch.to_owned(),
        version: change.version,
        change: Some(body),
    }
}

/// The event carrying the whole table.
pub(crate) fn snapshot_event(
    snapshot: &RouteSnapshot,
    epoch: &str,
    now: Instant,
) -> pb::RouteEvent {
    pb::RouteEvent {
        epoch: epoch.to_owned(),
        version: snapshot.version,
        change: Some(PbChange::Snapshot(pb::RouteSnapshot {
            groups: snapshot
                .groups
                .iter()
                .map(|g| group_route(g, now))
                .collect(),
            topics: snapshot.topics.iter().map(topic_queues).collect(),
        })),
    }
}

/// Milliseconds of `duration`, saturating.
fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proto::v1::{BrokerRole, RaftRole};

    fn request() -> pb::RegisterBrokerRequest {
        pb::RegisterBrokerRequest {
            cluster_name: "c".into(),
            broker_name: "g".into(),
            broker_id: 0,
            node_id: 1,
            broker_addr: "127.0.0.1:10911".into(),
            ha_addr: "127.0.0.1:40911".into(),
            configured_role: BrokerRole::SyncMaster.into(),
            raft_role: RaftRole::Leader.into(),
            term: 3,
            is_leader: true,
            topics: vec![pb::TopicConfig {
                topic_name: "T".into(),
                read_queue_nums: 4,
                write_queue_nums: 8,
                perm: 6,
                order: false,
            }],
            heartbeat_timeout_ms: 0,
            replicas: Vec::new(),
        }
    }

    const DEFAULT: Duration = Duration::from_secs(5);

    fn parse(request: pb::RegisterBrokerRequest) -> Result<Registration, String> {
        registration(request, DEFAULT)
    }

    #[test]
    fn registration_keeps_every_field_and_defaults_the_timeout() {
        let reg = parse(request()).unwrap();
        assert_eq!(
            (reg.cluster_name.as_str(), reg.broker_name.as_str()),
            ("c", "g")
        );
        assert!(reg.is_leader);
        let member = &reg.member;
        assert_eq!((member.broker_id, member.node_id, member.term), (0, 1, 3));
        assert_eq!(member.broker_addr, "127.0.0.1:10911");
        assert_eq!(member.ha_addr, "127.0.0.1:40911");
        assert_eq!(member.raft_role, RaftRole::Leader);
        assert_eq!(member.configured_role, BrokerRole::SyncMaster);
        assert_eq!(member.heartbeat_timeout, DEFAULT);
        assert_eq!(reg.topics["T"].write_queue_nums, 8);
        let reg = parse(pb::RegisterBrokerRequest {
            heartbeat_timeout_ms: 750,
            raft_role: 99, // from a newer broker: read as unspecified, not refused
            ..request()
        })
        .unwrap();
        assert_eq!(reg.member.heartbeat_timeout, Duration::from_millis(750));
        assert_eq!(reg.member.raft_role, RaftRole::Unspecified);
    }

    #[test]
    fn registration_refuses_empty_names_naming_the_field() {
        let err = parse(pb::RegisterBrokerRequest {
            broker_name: String::new(),
            ..request()
        })
        .unwrap_err();
        assert_eq!(err, "broker_name is empty");
        let err = parse(pb::RegisterBrokerRequest {
            broker_addr: String::new(),
            ..request()
        })
        .unwrap_err();
        assert_eq!(err, "broker_addr is empty");
        let mut bad_topic = request();
        bad_topic.topics[0].topic_name.clear();
        assert!(parse(bad_topic).unwrap_err().contains("empty topic_name"));
    }

    #[test]
    fn group_route_shows_leader_address_and_ages() {
        let mut table = crate::route_table::RouteTable::new();
        let t0 = Instant::now();
        let out = table.register(parse(request()).unwrap(), t0).unwrap();
        let route = group_route(&out.group, t0 + Duration::from_millis(1500));
        assert_eq!(route.leader_node_id, Some(1));
        assert_eq!(route.leader_addr, "127.0.0.1:10911");
        assert_eq!(route.term, 3);
        assert_eq!(route.members[0].last_heartbeat_age_ms, 1500);
        assert_eq!(route.members[0].heartbeat_timeout_ms, 5000);
        assert_eq!(route.members[0].raft_role(), RaftRole::Leader);

        let events: Vec<pb::RouteEvent> = out
            .changes
            .iter()
            .map(|c| change_event(c, "e", t0))
            .collect();
        assert!(matches!(events[0].change, Some(PbChange::GroupUpdated(_))));
        match &events[1].change {
            Some(PbChange::TopicUpdated(t)) => {
                assert_eq!(t.queue_datas[0].broker_name, "g");
                assert_eq!(t.queue_datas[0].read_queue_nums, 4);
            }
            other => panic!("unexpected {other:?}"),
        }
        let snapshot = snapshot_event(&table.snapshot(), "e", t0);
        assert_eq!(snapshot.version, 2);
        assert_eq!(snapshot.epoch, "e");
    }

    #[test]
    fn a_refused_leader_claim_does_not_show_the_masters_broker_id() {
        let mut table = crate::route_table::RouteTable::new();
        let t0 = Instant::now();
        // Node 2 leads in term 4; node 1, cut off, still claims term 3 with brokerId 0.
        let leader = pb::RegisterBrokerRequest {
            node_id: 2,
            broker_addr: "127.0.0.1:10912".into(),
            term: 4,
            ..request()
        };
        table.register(parse(leader).unwrap(), t0).unwrap();
        let out = table.register(parse(request()).unwrap(), t0).unwrap();
        assert!(!out.leader_accepted);
        let route = group_route(&out.group, t0);
        assert_eq!(route.leader_node_id, Some(2));
        let ids: Vec<(u64, u64)> = route
            .members
            .iter()
            .map(|m| (m.node_id, m.broker_id))
            .collect();
        assert_eq!(ids, [(2, 0), (1, 2)]);
    }
}
