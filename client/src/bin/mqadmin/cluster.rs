//! `clusterList` and `brokerStatus`.

use clap::Args;
use client::Admin;
use proto::v1::{self as pb, BrokerRole, FlushDiskType, LogId, RaftRole};
use serde_json::{json, Value};

use crate::table::{fmt_time_ms, key_values, Table};
use crate::Output;

/// `clusterList`: one row per member of every group.
pub async fn cluster_list(admin: &Admin) -> anyhow::Result<Output> {
    let clusters = admin.cluster_info().await?;
    let mut table = Table::new(&[
        "cluster",
        "broker_name",
        "broker_id",
        "node_id",
        "addr",
        "role",
        "leader",
        "term",
        "in_sync",
        "heartbeat_age_ms",
    ]);
    for c in &clusters {
        for g in &c.groups {
            if g.members.is_empty() {
                table.row(vec![
                    json!(c.cluster_name),
                    json!(g.broker_name),
                    Value::Null,
                    Value::Null,
                    Value::Null,
                    Value::Null,
                    json!(false),
                    json!(g.term),
                    Value::Null,
                    Value::Null,
                ]);
            }
            for m in &g.members {
                table.row(vec![
                    json!(c.cluster_name),
                    json!(g.broker_name),
                    json!(m.broker_id),
                    json!(m.node_id),
                    json!(m.broker_addr),
                    json!(member_role(m)),
                    json!(is_leader(g, m)),
                    json!(m.term),
                    in_sync(g, m.node_id),
                    json!(m.last_heartbeat_age_ms),
                ]);
            }
            // The witness a nameserver hosts for a classic group, as its leader reports it.
            for w in g.replicas.iter().filter(|r| r.witness) {
                table.row(vec![
                    json!(c.cluster_name),
                    json!(g.broker_name),
                    Value::Null,
                    json!(w.node_id),
                    json!(w.address),
                    json!(if w.voter {
                        "WITNESS"
                    } else {
                        "WITNESS(LEARNER)"
                    }),
                    json!(false),
                    Value::Null,
                    Value::Null,
                    Value::Null,
                ]);
            }
        }
    }
    Ok(Output::table(&table))
}

/// Whether member `node_id` of classic group `g` is in its leader's in-sync set, as the leader
/// last reported; null for the leader itself, dledger groups and members it did not report.
fn in_sync(g: &pb::GroupRoute, node_id: u64) -> Value {
    let classic = g.replicas.iter().any(|r| r.witness);
    match g.replicas.iter().find(|r| r.node_id == node_id) {
        Some(r) if classic && !r.witness => json!(r.in_sync),
        _ => Value::Null,
    }
}

/// Arguments of `brokerStatus`.
#[derive(Args, Debug)]
pub struct BrokerStatusArgs {
    /// Broker address "host:port" [default: every member of every group]
    #[arg(short = 'b', long = "brokerAddr", value_name = "ADDR")]
    pub broker: Option<String>,
}

/// `brokerStatus`: a block of key/value lines per broker.
pub async fn broker_status(admin: &Admin, args: BrokerStatusArgs) -> anyhow::Result<Output> {
    let statuses = admin.broker_status(args.broker.as_deref()).await?;
    let mut blocks = Vec::new();
    let mut json = Vec::new();
    for (addr, status) in statuses {
        match status {
            Ok(s) => {
                let pairs = status_pairs(&s);
                blocks.push(format!("== {addr} ==\n{}", key_values(&pairs)));
                let mut object: serde_json::Map<String, Value> =
                    pairs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
                object.insert("replicas".into(), replicas_json(&s.replicas));
                object.insert("topics".into(), topics_json(&s.topics));
                json.push(Value::Object(object));
            }
            Err(e) => {
                blocks.push(format!("== {addr} ==\nerror : {e}"));
                json.push(json!({ "addr": addr, "error": e }));
            }
        }
    }
    Ok(Output::new(blocks.join("\n\n"), Value::Array(json)))
}

fn status_pairs(s: &pb::BrokerStatusResponse) -> Vec<(&'static str, Value)> {
    let raft = s.raft.clone().unwrap_or_default();
    let store = s.store.unwrap_or_default();
    let replicas: Vec<String> = s
        .replicas
        .iter()
        .map(|r| {
            format!(
                "{}@{} {} matched={} lag={} entries/{} bytes",
                r.node_id,
                r.address,
                replica_state(s.dledger, r),
                log_id(&r.matched),
                r.lag_entries,
                r.lag_bytes,
            )
        })
        .collect();
    vec![
        ("cluster", json!(s.cluster_name)),
        ("broker_name", json!(s.broker_name)),
        ("broker_id", json!(s.broker_id)),
        ("node_id", json!(s.node_id)),
        ("addr", json!(s.broker_addr)),
        ("ha_addr", json!(s.ha_addr)),
        ("configured_role", json!(broker_role(s.configured_role()))),
        ("raft_role", json!(raft_role(s.raft_role()))),
        ("dledger", json!(s.dledger)),
        ("flush_disk_type", json!(flush_type(s.flush_disk_type()))),
        ("term", json!(raft.current_term)),
        ("leader_node_id", json!(raft.leader_node_id)),
        ("leader_addr", json!(raft.leader_addr)),
        ("last_log_id", json!(log_id(&raft.last_log_id))),
        ("committed", json!(log_id(&raft.committed))),
        ("applied", json!(log_id(&raft.applied))),
        ("snapshot", json!(log_id(&raft.snapshot))),
        ("purged", json!(log_id(&raft.purged))),
        ("voters", json!(raft.voter_ids)),
        ("learners", json!(raft.learner_ids)),
        ("catching_up", json!(s.catching_up)),
        ("state_digest", json!(digest(&s.state_digest))),
        (
            "digest_checkpoints",
            json!(s
                .digest_checkpoints
                .iter()
                .map(|d| digest(&Some(d.clone())))
                .collect::<Vec<_>>()
                .join(", ")),
        ),
        ("prediction_mismatches", json!(s.prediction_mismatches)),
        ("dropped_entries", json!(s.dropped_entries)),
        ("dropped_messages", json!(s.dropped_messages)),
        ("replicas", json!(replicas.join(", "))),
        ("store_min_position", json!(store.min_position)),
        ("store_max_position", json!(store.max_position)),
        ("segments", json!(store.segment_count)),
        ("disk_used_ratio", json!(store.disk_used_ratio)),
        ("disk_full", json!(store.disk_full)),
        ("topics", json!(s.topics.len())),
        ("messages_put_total", json!(s.messages_put_total)),
        ("messages_got_total", json!(s.messages_got_total)),
        ("boot_time", json!(fmt_time_ms(s.boot_timestamp_ms))),
        ("version", json!(s.version)),
    ]
}

/// A state digest as `digest@index` ("-" when the replica gave none).
fn digest(d: &Option<pb::StateDigest>) -> String {
    match d {
        Some(d) => format!("{}@{}", d.digest, d.applied.map_or(0, |a| a.index)),
        None => "-".into(),
    }
}

/// How the leader counts a member: `witness`, `learner`, a dledger `voter`, or a classic
/// slave `in-sync` / `out-of-sync`.
fn replica_state(dledger: bool, r: &pb::ReplicaProgress) -> &'static str {
    match (r.witness, r.voter, dledger, r.in_sync) {
        (true, _, _, _) => "witness",
        (false, false, _, _) => "learner",
        (false, true, true, _) => "voter",
        (false, true, false, true) => "in-sync",
        (false, true, false, false) => "out-of-sync",
    }
}

fn replicas_json(replicas: &[pb::ReplicaProgress]) -> Value {
    Value::Array(
        replicas
            .iter()
            .map(|r| {
                json!({
                    "node_id": r.node_id,
                    "address": r.address,
                    "voter": r.voter,
                    "witness": r.witness,
                    "matched": log_id(&r.matched),
                    "in_sync": r.in_sync,
                    "lag_entries": r.lag_entries,
                    "lag_bytes": r.lag_bytes,
                })
            })
            .collect(),
    )
}

fn topics_json(topics: &[pb::TopicStats]) -> Value {
    Value::Array(
        topics
            .iter()
            .map(|t| {
                json!({
                    "topic": t.topic,
                    "queues": t.queues.iter().map(|q| json!({
                        "queue_id": q.queue_id,
                        "min_offset": q.min_offset,
                        "max_offset": q.max_offset,
                    })).collect::<Vec<_>>(),
                })
            })
            .collect(),
    )
}

/// "term-node-index", or "-" when absent.
fn log_id(id: &Option<LogId>) -> String {
    id.as_ref().map_or_else(
        || "-".to_owned(),
        |l| format!("{}-{}-{}", l.term, l.node_id, l.index),
    )
}

/// A group member's role as shown: its Raft role, or WITNESS.
pub fn member_role(m: &pb::GroupMember) -> &'static str {
    if m.witness {
        "WITNESS"
    } else {
        raft_role(m.raft_role())
    }
}

/// Whether `m` is the recorded leader of `g`.
pub fn is_leader(g: &pb::GroupRoute, m: &pb::GroupMember) -> bool {
    g.leader_node_id == Some(m.node_id) && !m.witness
}

fn raft_role(role: RaftRole) -> &'static str {
    match role {
        RaftRole::Unspecified => "UNKNOWN",
        RaftRole::Leader => "LEADER",
        RaftRole::Follower => "FOLLOWER",
        RaftRole::Candidate => "CANDIDATE",
        RaftRole::Learner => "LEARNER",
        RaftRole::Shutdown => "SHUTDOWN",
    }
}

fn broker_role(role: BrokerRole) -> &'static str {
    match role {
        BrokerRole::Unspecified => "-",
        BrokerRole::AsyncMaster => "ASYNC_MASTER",
        BrokerRole::SyncMaster => "SYNC_MASTER",
        BrokerRole::Slave => "SLAVE",
    }
}

fn flush_type(t: FlushDiskType) -> &'static str {
    match t {
        FlushDiskType::Unspecified => "-",
        FlushDiskType::AsyncFlush => "ASYNC_FLUSH",
        FlushDiskType::SyncFlush => "SYNC_FLUSH",
    }
}
