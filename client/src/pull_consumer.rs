//! [`PullConsumer`]: reads a queue from an offset the caller chooses, and reads and writes a
//! consumer group's committed offsets. Everything else (which queues, when to commit) is
//! the caller's; [`crate::GroupConsumer`] builds that on top.

use std::time::Duration;

use proto::v1::{self as pb, OffsetBoundary, ResponseCode, StoredMessage};

use crate::cluster::{expect_ok, Cluster, ReadFrom};
use crate::error::ClientError;
use crate::message::MessageQueue;
use crate::nameserver::{refused, status_code};

/// Tag expression that matches every message.
pub const ALL_TAGS: &str = "*";

/// What a pull found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PullStatus {
    /// Messages were returned.
    Found,
    /// Nothing at the offset yet (the long poll expired): pull again from the same offset.
    NoNewMessage,
    /// Messages were scanned but none matched the tags: continue from `next_begin_offset`.
    NoMatchedMessage,
    /// The offset is outside `[min_offset, max_offset]`: below the minimum (purged) when
    /// `below_min`, else past the end.
    OffsetIllegal {
        /// The offset was below the first retained one.
        below_min: bool,
    },
}

/// The result of one pull.
#[derive(Debug, Clone)]
pub struct PullResult {
    /// What was found.
    pub status: PullStatus,
    /// Messages in queue-offset order (only those matching the tags).
    pub messages: Vec<StoredMessage>,
    /// Offset to pull from next.
    pub next_begin_offset: u64,
    /// First retained offset of the queue on the replica that answered.
    pub min_offset: u64,
    /// End of the queue (next offset to be written) on that replica.
    pub max_offset: u64,
}

/// The readable range of a queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueRange {
    /// First retained offset (inclusive).
    pub min: u64,
    /// Next offset to be written (exclusive).
    pub max: u64,
}

/// Pulls messages and manages offsets for one consumer group. Cheap to clone.
#[derive(Clone)]
pub struct PullConsumer {
    cluster: Cluster,
    group: String,
    read_from: ReadFrom,
}

impl PullConsumer {
    /// A consumer of `group` on an open cluster connection; reads go to leaders.
    pub fn new(cluster: Cluster, group: impl Into<String>) -> Self {
        Self {
            cluster,
            group: group.into(),
            read_from: ReadFrom::Leader,
        }
    }

    /// Sends reads (pulls, offset queries) per `from` instead of to leaders only.
    pub fn with_read_from(mut self, from: ReadFrom) -> Self {
        self.read_from = from;
        self
    }

    /// The consumer group.
    pub fn group(&self) -> &str {
        &self.group
    }

    /// The cluster connection.
    pub fn cluster(&self) -> &Cluster {
        &self.cluster
    }

    /// Every readable queue of `topic`, sorted by group and queue id.
    pub async fn queues(&self, topic: &str) -> Result<Vec<MessageQueue>, ClientError> {
        let route = self
            .cluster
            .routes()
            .topic_route(topic)
            .await?
            .ok_or_else(|| ClientError::TopicNotExist {
                topic: topic.to_owned(),
                remark: format!(
                    "no route on the nameservers ({})",
                    self.cluster.namesrv().list()
                ),
            })?;
        Ok(route.read_queues())
    }

    /// Pulls up to `max` messages (0 = the broker's default, 32) from `queue` starting at
    /// `offset`, letting the broker wait up to `max_wait` for the first one.
    pub async fn pull(
        &self,
        queue: &MessageQueue,
        offset: u64,
        max: u32,
        max_wait: Duration,
    ) -> Result<PullResult, ClientError> {
        self.pull_with_tags(queue, ALL_TAGS, offset, max, max_wait)
            .await
    }

    /// Like [`PullConsumer::pull`], returning only messages whose tag matches `tags`
    /// ("*" or "TagA || TagB").
    pub async fn pull_with_tags(
        &self,
        queue: &MessageQueue,
        tags: &str,
        offset: u64,
        max: u32,
        max_wait: Duration,
    ) -> Result<PullResult, ClientError> {
        let request = pb::PullMessageRequest {
            consumer_group: self.group.clone(),
            topic: queue.topic.clone(),
            queue_id: queue.queue_id,
            queue_offset: offset,
            max_count: max,
            max_wait_ms: u32::try_from(max_wait.as_millis()).unwrap_or(u32::MAX),
            tag_expression: tags.to_owned(),
        };
        // The broker may hold the request for max_wait: the deadline must outlast it.
        let timeout = max_wait + self.cluster.options().request_timeout;
        let (addr, reply) = self
            .cluster
            .on_reader(
                &queue.broker_name,
                self.read_from,
                "PullMessage",
                timeout,
                |mut c| {
                    let request = request.clone();
                    async move { c.pull_message(request).await }
                },
            )
            .await?;
        let status = match status_code(&reply.status) {
            ResponseCode::Ok => PullStatus::Found,
            ResponseCode::NoNewMessage => PullStatus::NoNewMessage,
            ResponseCode::NoMatchedMessage => PullStatus::NoMatchedMessage,
            ResponseCode::OffsetOutOfRange => {
                let below_min = reply
                    .status
                    .as_ref()
                    .and_then(|s| match &s.detail {
                        Some(pb::response_status::Detail::OffsetOutOfRange(r)) => {
                            Some(r.boundary() == OffsetBoundary::BelowMin)
                        }
                        _ => None,
                    })
                    .unwrap_or(offset < reply.min_offset);
                PullStatus::OffsetIllegal { below_min }
            }
            code => return Err(topic_error(queue, &addr, code, &reply.status)),
        };
        Ok(PullResult {
            status,
            messages: reply.messages,
            next_begin_offset: reply.next_begin_offset,
            min_offset: reply.min_offset,
            max_offset: reply.max_offset,
        })
    }

    /// Commits the group's progress on `queue`: `offset` is the next one to consume.
    pub async fn commit_offset(
        &self,
        queue: &MessageQueue,
        offset: u64,
    ) -> Result<(), ClientError> {
        let request = pb::CommitConsumerOffsetRequest {
            consumer_group: self.group.clone(),
            topic: queue.topic.clone(),
            queue_id: queue.queue_id,
            offset,
        };
        let timeout = self.cluster.options().request_timeout;
        let (addr, reply) = self
            .cluster
            .on_leader(
                &queue.broker_name,
                "CommitConsumerOffset",
                timeout,
                |mut c| {
                    let request = request.clone();
                    async move { c.commit_consumer_offset(request).await }
                },
            )
            .await?;
        expect_ok(&addr, reply).map(drop)
    }

    /// The group's committed offset on `queue`; `None` when it never committed there.
    pub async fn query_offset(&self, queue: &MessageQueue) -> Result<Option<u64>, ClientError> {
        let request = pb::QueryConsumerOffsetRequest {
            consumer_group: self.group.clone(),
            topic: queue.topic.clone(),
            queue_id: queue.queue_id,
        };
        let timeout = self.cluster.options().request_timeout;
        // Offsets are read from the leader whatever `read_from` says: a follower may not
        // have applied the latest commit yet, and a stale offset means redelivery.
        let (addr, reply) = self
            .cluster
            .on_leader(
                &queue.broker_name,
                "QueryConsumerOffset",
                timeout,
                |mut c| {
                    let request = request.clone();
                    async move { c.query_consumer_offset(request).await }
                },
            )
            .await?;
        match status_code(&reply.status) {
            ResponseCode::Ok => Ok(Some(reply.offset)),
            ResponseCode::NotFound => Ok(None),
            code => Err(topic_error(queue, &addr, code, &reply.status)),
        }
    }

    /// The readable range of `queue`.
    pub async fn queue_offsets(&self, queue: &MessageQueue) -> Result<QueueRange, ClientError> {
        let request = pb::GetQueueOffsetsRequest {
            topic: queue.topic.clone(),
            queue_id: queue.queue_id,
        };
        let timeout = self.cluster.options().request_timeout;
        let (addr, reply) = self
            .cluster
            .on_reader(
                &queue.broker_name,
                self.read_from,
                "GetQueueOffsets",
                timeout,
                |mut c| {
                    let request = request.clone();
                    async move { c.get_queue_offsets(request).await }
                },
            )
            .await?;
        match status_code(&reply.status) {
            ResponseCode::Ok => Ok(QueueRange {
                min: reply.min_offset,
                max: reply.max_offset,
            }),
            code => Err(topic_error(queue, &addr, code, &reply.status)),
        }
    }
}

/// A refusal about `queue`, with TOPIC_NOT_EXIST turned into its own error.
fn topic_error(
    queue: &MessageQueue,
    addr: &str,
    code: ResponseCode,
    status: &Option<pb::ResponseStatus>,
) -> ClientError {
    match code {
        ResponseCode::TopicNotExist => ClientError::TopicNotExist {
            topic: queue.topic.clone(),
            remark: format!("{addr} does not host it"),
        },
        _ => refused(addr, code, status),
    }
}
