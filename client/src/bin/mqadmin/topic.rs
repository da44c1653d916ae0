//! `topicList`, `topicRoute`, `topicStatus`, `updateTopic`, `deleteTopic`.

use clap::Args;
use client::admin::{GroupChange, TopicTarget};
use client::Admin;
use proto::v1::TopicConfig;
use serde_json::{json, Value};

use crate::cluster::{is_leader, member_role};
use crate::table::Table;
use crate::Output;

/// A sub-command that names one topic.
#[derive(Args, Debug)]
pub struct TopicArg {
    /// Topic name
    #[arg(short = 't', long = "topic")]
    pub topic: String,
}

/// Arguments of `topicList`.
#[derive(Args, Debug)]
pub struct ListArgs {
    /// Only topics of this cluster
    #[arg(short = 'c', long = "clusterName")]
    pub cluster: Option<String>,
}

/// Arguments of `updateTopic` (RocketMQ's defaults: 8 read and 8 write queues, perm 6).
#[derive(Args, Debug)]
pub struct UpdateArgs {
    /// Topic name
    #[arg(short = 't', long = "topic")]
    pub topic: String,
    /// Read queue count
    #[arg(short = 'r', long = "readQueueNums", default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..=65535))]
    pub read_queue_nums: u32,
    /// Write queue count
    #[arg(short = 'w', long = "writeQueueNums", default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..=65535))]
    pub write_queue_nums: u32,
    /// Permission: 2 write, 4 read, 6 both
    #[arg(short = 'p', long = "perm", default_value_t = 6, value_parser = parse_perm)]
    pub perm: u32,
    /// Ordered topic (informational)
    #[arg(short = 'o', long = "order", default_value_t = false)]
    pub order: bool,
    /// Create on every group of this cluster [default: every group]
    #[arg(short = 'c', long = "clusterName", conflicts_with = "broker")]
    pub cluster: Option<String>,
    /// Create on the group of the broker at this address
    #[arg(short = 'b', long = "brokerAddr", value_name = "ADDR")]
    pub broker: Option<String>,
}

/// Arguments of `deleteTopic`.
#[derive(Args, Debug)]
pub struct DeleteArgs {
    /// Topic name
    #[arg(short = 't', long = "topic")]
    pub topic: String,
    /// Accepted for RocketMQ compatibility: the topic is deleted from every group hosting it
    #[arg(short = 'c', long = "clusterName")]
    pub cluster: Option<String>,
}

/// RocketMQ's permission values: 2 (write), 4 (read), 6 (both).
fn parse_perm(text: &str) -> Result<u32, String> {
    match text.parse::<u32>() {
        Ok(p @ (2 | 4 | 6)) => Ok(p),
        _ => Err(format!(
            "{text:?} is not a permission: use 2 (write), 4 (read) or 6 (both)"
        )),
    }
}

/// `topicList`: the names, one per line.
pub async fn topic_list(admin: &Admin, args: ListArgs) -> anyhow::Result<Output> {
    let topics = admin.topic_list(args.cluster.as_deref()).await?;
    Ok(Output::new(topics.join("\n"), json!(topics)))
}

/// `topicRoute`: the topic's queues per group, then the groups' members.
pub async fn topic_route(admin: &Admin, args: TopicArg) -> anyhow::Result<Output> {
    let route = admin.topic_route(&args.topic).await?;
    let mut queues = Table::new(&["broker_name", "read_queue_nums", "write_queue_nums", "perm"]);
    for q in route.topic.iter().flat_map(|t| &t.queue_datas) {
        queues.row(vec![
            json!(q.broker_name),
            json!(q.read_queue_nums),
            json!(q.write_queue_nums),
            json!(q.perm),
        ]);
    }
    let mut members = Table::new(&[
        "broker_name",
        "broker_id",
        "node_id",
        "addr",
        "role",
        "leader",
    ]);
    let mut groups_json = Vec::new();
    for g in &route.groups {
        for m in &g.members {
            members.row(vec![
                json!(g.broker_name),
                json!(m.broker_id),
                json!(m.node_id),
                json!(m.broker_addr),
                json!(member_role(m)),
                json!(is_leader(g, m)),
            ]);
        }
        groups_json.push(json!({
            "cluster": g.cluster_name,
            "broker_name": g.broker_name,
            "leader_node_id": g.leader_node_id,
            "leader_addr": g.leader_addr,
            "term": g.term,
            "members": g.members.iter().map(|m| json!({
                "broker_id": m.broker_id,
                "node_id": m.node_id,
                "addr": m.broker_addr,
                "role": member_role(m),
                "term": m.term,
            })).collect::<Vec<_>>(),
        }));
    }
    let text = format!("{}\n\n{}", queues.to_text(), members.to_text());
    let json = json!({
        "topic": args.topic,
        "queue_datas": queues.to_json(),
        "groups": groups_json,
    });
    Ok(Output::new(text, json))
}

/// `topicStatus`: min/max offset per queue; fails if no queue could be read.
pub async fn topic_status(admin: &Admin, args: TopicArg) -> anyhow::Result<Output> {
    let statuses = admin.topic_status(&args.topic).await?;
    let mut table = Table::new(&[
        "broker_name",
        "queue_id",
        "min_offset",
        "max_offset",
        "error",
    ]);
    let mut readable = 0;
    for s in &statuses {
        let (min, max, error) = match &s.range {
            Ok(r) => {
                readable += 1;
                (json!(r.min), json!(r.max), Value::Null)
            }
            Err(e) => (Value::Null, Value::Null, json!(e)),
        };
        table.row(vec![
            json!(s.queue.broker_name),
            json!(s.queue.queue_id),
            min,
            max,
            error,
        ]);
    }
    if readable == 0 {
        if let Some(Err(e)) = statuses.first().map(|s| &s.range) {
            anyhow::bail!("cannot read the offsets of topic {}: {e}", args.topic);
        }
    }
    Ok(Output::table(&table))
}

/// `updateTopic`: creates or updates the topic on the chosen groups.
pub async fn update_topic(admin: &Admin, args: UpdateArgs) -> anyhow::Result<Output> {
    let target = match (args.cluster, args.broker) {
        (Some(c), _) => TopicTarget::Cluster(c),
        (None, Some(b)) => TopicTarget::Broker(b),
        (None, None) => TopicTarget::AllGroups,
    };
    let config = TopicConfig {
        topic_name: args.topic.clone(),
        read_queue_nums: args.read_queue_nums,
        write_queue_nums: args.write_queue_nums,
        perm: args.perm,
        order: args.order,
    };
    let changed = admin.create_or_update_topic(config, &target).await?;
    Ok(changes("updated", &args.topic, &changed))
}

/// `deleteTopic`: deletes the topic from every group hosting it.
pub async fn delete_topic(admin: &Admin, args: DeleteArgs) -> anyhow::Result<Output> {
    let changed = admin.delete_topic(&args.topic).await?;
    Ok(changes("deleted", &args.topic, &changed))
}

fn changes(verb: &str, topic: &str, changed: &[GroupChange]) -> Output {
    let mut table = Table::new(&["topic", "broker_name", "leader_addr", "result"]);
    for c in changed {
        table.row(vec![
            json!(topic),
            json!(c.broker_name),
            json!(c.addr),
            json!(verb),
        ]);
    }
    Output::table(&table)
}
