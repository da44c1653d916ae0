//! Topics, consumer offsets, queue offsets and broker status.

use std::sync::atomic::Ordering;

use proto::v1::{self as pb, ResponseCode, ResponseStatus};

use super::BrokerContext;
use crate::command::LogCommand;
use crate::config::FlushDiskType;
use crate::limits::{check_group_name, check_topic_name, QUEUE_NUMS_MAX};

fn checked_queue(ctx: &BrokerContext, topic: &str, queue_id: i32) -> Result<u32, ResponseStatus> {
    let Some(config) = ctx.state.topic(topic) else {
        return Err(ResponseStatus::new(
            ResponseCode::TopicNotExist,
            format!("topic {topic} does not exist"),
        ));
    };
    let queues = config.read_queue_nums.max(config.write_queue_nums);
    if queue_id < 0 || queue_id as u32 >= queues {
        return Err(ResponseStatus::new(
            ResponseCode::IllegalArgument,
            format!("queue {queue_id} does not exist: topic {topic} has {queues} queues"),
        ));
    }
    Ok(queue_id as u32)
}

pub async fn commit_offset(
    ctx: &BrokerContext,
    req: pb::CommitConsumerOffsetRequest,
) -> pb::CommitConsumerOffsetResponse {
    let status = async {
        if let Err(why) = check_group_name("consumer group", &req.consumer_group) {
            return ResponseStatus::new(ResponseCode::IllegalArgument, why.to_string());
        }
        let queue_id = match checked_queue(ctx, &req.topic, req.queue_id) {
            Ok(q) => q,
            Err(status) => return status,
        };
        if let Err(status) = ctx.require_leader() {
            return status;
        }
        let cmd = LogCommand::commit_offsets(
            &req.consumer_group,
            super::now_ms(),
            &[(req.topic.clone(), queue_id, req.offset)],
        );
        match ctx.write_encoded(cmd).await {
            Ok(_) => ResponseStatus::ok(),
            Err(status) => status,
        }
    }
    .await;
    pb::CommitConsumerOffsetResponse {
        status: Some(status),
    }
}

pub fn query_offset(
    ctx: &BrokerContext,
    req: pb::QueryConsumerOffsetRequest,
) -> pb::QueryConsumerOffsetResponse {
    let answer = |status, offset| pb::QueryConsumerOffsetResponse {
        status: Some(status),
        offset,
    };
    let queue_id = match checked_queue(ctx, &req.topic, req.queue_id) {
        Ok(q) => q,
        Err(status) => return answer(status, 0),
    };
    match ctx
        .state
        .consumer_offset(&req.consumer_group, &req.topic, queue_id)
    {
        Some(offset) => answer(ResponseStatus::ok(), offset),
        None => answer(
            ResponseStatus::new(
                ResponseCode::NotFound,
                format!(
                    "group {} has committed no offset on {}/{}",
                    req.consumer_group, req.topic, queue_id
                ),
            ),
            0,
        ),
    }
}

pub fn queue_offsets(
    ctx: &BrokerContext,
    req: pb::GetQueueOffsetsRequest,
) -> pb::GetQueueOffsetsResponse {
    match checked_queue(ctx, &req.topic, req.queue_id) {
        Ok(queue_id) => {
            let (min, max) = ctx
                .state
                .queue_offsets(&req.topic, queue_id)
                .unwrap_or((0, 0));
            pb::GetQueueOffsetsResponse {
                status: Some(ResponseStatus::ok()),
                min_offset: min,
                max_offset: max,
            }
        }
        Err(status) => pb::GetQueueOffsetsResponse {
            status: Some(status),
            ..Default::default()
        },
    }
}

pub fn consume_stats(
    ctx: &BrokerContext,
    req: pb::GetConsumeStatsRequest,
) -> pb::GetConsumeStatsResponse {
    let topics: Vec<pb::TopicConfig> = if req.topic.is_empty() {
        ctx.state.topics()
    } else {
        match ctx.state.topic(&req.topic) {
            Some(t) => vec![t],
            None => {
                return pb::GetConsumeStatsResponse {
                    status: Some(ResponseStatus::new(
                        ResponseCode::TopicNotExist,
                        format!("topic {} does not exist", req.topic),
                    )),
                    stats: Vec::new(),
                }
            }
        }
    };
    let mut stats = Vec::new();
    for t in topics {
        for queue_id in 0..t.read_queue_nums.max(t.write_queue_nums) {
            let committed = ctx
                .state
                .consumer_offset(&req.consumer_group, &t.topic_name, queue_id);
            if committed.is_none() && req.topic.is_empty() {
                continue; // only the topics the group consumes
            }
            let (_, max) = ctx
                .state
                .queue_offsets(&t.topic_name, queue_id)
                .unwrap_or((0, 0));
            stats.push(pb::ConsumeStat {
                consumer_group: req.consumer_group.clone(),
                topic: t.topic_name.clone(),
                queue_id: queue_id as i32,
                broker_offset: max,
                consumer_offset: committed.unwrap_or(0),
                last_commit_timestamp_ms: ctx
                    .state
                    .consumer_offset_committed_at(&req.consumer_group, &t.topic_name, queue_id)
                    .map_or(0, |ms| ms as i64),
            });
        }
    }
    pb::GetConsumeStatsResponse {
        status: Some(ResponseStatus::ok()),
        stats,
    }
}

pub async fn upsert_topic(
    ctx: &BrokerContext,
    req: pb::CreateOrUpdateTopicRequest,
) -> pb::CreateOrUpdateTopicResponse {
    let status = async {
        let Some(mut topic) = req.topic else {
            return ResponseStatus::new(
                ResponseCode::IllegalArgument,
                "the request carries no topic",
            );
        };
        if let Err(why) = check_topic_name(&topic.topic_name) {
            return ResponseStatus::new(ResponseCode::IllegalArgument, why.to_string());
        }
        if topic.read_queue_nums == 0 && topic.write_queue_nums == 0 {
            topic.read_queue_nums = ctx.config.default_topic_queue_nums;
            topic.write_queue_nums = ctx.config.default_topic_queue_nums;
        }
        if topic.read_queue_nums > QUEUE_NUMS_MAX || topic.write_queue_nums > QUEUE_NUMS_MAX {
            return ResponseStatus::new(
                ResponseCode::IllegalArgument,
                format!(
                    "{} read and {} write queues: at most {QUEUE_NUMS_MAX} per topic",
                    topic.read_queue_nums, topic.write_queue_nums
                ),
            );
        }
        if topic.perm == 0 {
            topic.perm = proto::PERM_READ | proto::PERM_WRITE;
        }
        if topic.perm > 7 {
            return ResponseStatus::new(
                ResponseCode::IllegalArgument,
                format!(
                    "perm {} is not RocketMQ permission bits (2 write, 4 read, 6 both, 1 inherit)",
                    topic.perm
                ),
            );
        }
        if let Err(status) = ctx.require_leader() {
            return status;
        }
        match ctx.write(LogCommand::upsert_topic(&topic)).await {
            Ok(_) => ResponseStatus::ok(),
            Err(failure) => failure.status(),
        }
    }
    .await;
    pb::CreateOrUpdateTopicResponse {
        status: Some(status),
    }
}

pub async fn delete_topic(
    ctx: &BrokerContext,
    req: pb::DeleteTopicRequest,
) -> pb::DeleteTopicResponse {
    let status = async {
        if ctx.state.topic(&req.topic).is_none() {
            return ResponseStatus::new(
                ResponseCode::TopicNotExist,
                format!("topic {} does not exist", req.topic),
            );
        }
        if let Err(status) = ctx.require_leader() {
            return status;
        }
        match ctx
            .write_encoded(LogCommand::delete_topic(&req.topic))
            .await
        {
            Ok(_) => ResponseStatus::ok(),
            Err(status) => status,
        }
    }
    .await;
    pb::DeleteTopicResponse {
        status: Some(status),
    }
}

pub fn list_topics(ctx: &BrokerContext) -> pb::ListTopicsResponse {
    pb::ListTopicsResponse {
        status: Some(ResponseStatus::ok()),
        topics: ctx.state.topics(),
    }
}

fn state_digest(applied: Option<openraft::LogId<u64>>, digest: u64) -> pb::StateDigest {
    pb::StateDigest {
        applied: log_id(applied),
        digest: format!("{digest:016x}"),
    }
}

fn log_id(id: Option<openraft::LogId<u64>>) -> Option<pb::LogId> {
    id.map(|l| pb::LogId {
        term: l.leader_id.term,
        node_id: 0,
        index: l.index,
    })
}

pub async fn status(ctx: &BrokerContext) -> pb::BrokerStatusResponse {
    // Raft's own committed log id (metrics do not carry it); `None` once Raft has stopped.
    let committed = ctx
        .raft
        .with_raft_state(|st| st.committed)
        .await
        .ok()
        .flatten();
    let metrics = ctx.raft.metrics().borrow().clone();
    let cfg = &ctx.config;
    let raft_role = raftmq_raft::convert::raft_role(metrics.state);
    let membership = metrics.membership_config.membership();
    let voters: Vec<u64> = membership.voter_ids().collect();
    let learners: Vec<u64> = membership.learner_ids().collect();
    let replicas =
        crate::raft::progress::replica_progress(&metrics, &ctx.log, &ctx.in_sync.borrow());
    let segments = ctx.log.segments();
    let topics = ctx
        .state
        .topics()
        .into_iter()
        .map(|t| pb::TopicStats {
            queues: (0..t.read_queue_nums.max(t.write_queue_nums))
                .map(|q| {
                    let (min, max) = ctx.state.queue_offsets(&t.topic_name, q).unwrap_or((0, 0));
                    pb::QueueOffsets {
                        queue_id: q as i32,
                        min_offset: min,
                        max_offset: max,
                    }
                })
                .collect(),
            topic: t.topic_name,
        })
        .collect();
    pb::BrokerStatusResponse {
        status: Some(ResponseStatus::ok()),
        cluster_name: cfg.broker_cluster_name.clone(),
        broker_name: cfg.broker_name.clone(),
        broker_id: crate::layout::wire_broker_id(
            ctx.config.dledger.is_none(),
            ctx.node_id,
            metrics.current_leader,
        ),
        node_id: ctx.node_id,
        broker_addr: ctx.client_addr.to_string(),
        ha_addr: ctx.raft_addr.to_string(),
        configured_role: cfg.broker_role.to_pb() as i32,
        raft_role: raft_role as i32,
        flush_disk_type: match cfg.flush_disk_type {
            FlushDiskType::AsyncFlush => pb::FlushDiskType::AsyncFlush,
            FlushDiskType::SyncFlush => pb::FlushDiskType::SyncFlush,
        } as i32,
        dledger: cfg.dledger.is_some(),
        raft: Some(pb::RaftProgress {
            current_term: metrics.current_term,
            leader_node_id: metrics.current_leader,
            leader_addr: metrics
                .current_leader
                .and_then(|id| ctx.state.node_client_addr(id))
                .unwrap_or_default(),
            last_log_id: ctx.log.last_log_id().map(|l| pb::LogId {
                term: l.term,
                node_id: 0,
                index: l.index,
            }),
            committed: log_id(committed),
            applied: log_id(metrics.last_applied),
            snapshot: log_id(metrics.snapshot),
            purged: log_id(metrics.purged),
            voter_ids: voters,
            learner_ids: learners,
        }),
        store: Some(pb::StoreStats {
            min_position: segments.first().map_or(0, |s| s.base_position),
            max_position: segments
                .last()
                .map_or(0, |s| s.base_position + s.used_bytes),
            segment_count: segments.len() as u64,
            disk_used_ratio: 0.0,
            disk_full: false,
        }),
        replicas,
        topics,
        messages_put_total: ctx.counters.put.load(Ordering::Relaxed),
        messages_got_total: ctx.counters.got.load(Ordering::Relaxed),
        boot_timestamp_ms: ctx.boot_timestamp_ms,
        version: env!("CARGO_PKG_VERSION").to_string(),
        state_digest: {
            let (applied, digest) = ctx.state.digest();
            Some(state_digest(applied, digest))
        },
        digest_checkpoints: ctx
            .state
            .digest_checkpoints()
            .into_iter()
            .map(|(applied, digest)| state_digest(Some(applied), digest))
            .collect(),
        prediction_mismatches: ctx.proposer.prediction_mismatches(),
        dropped_entries: ctx.dropped.entries(),
        dropped_messages: ctx.dropped.messages(),
        catching_up: !ctx.gate.may_vote(),
    }
}
