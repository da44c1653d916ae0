//! SendMessage: check the batch, pick the queue, create the topic if allowed, append through
//! Raft, answer with each message's id and queue offset.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Mutex;

use proto::msg_id::OffsetMsgId;
use proto::v1::{self as pb, ResponseCode, ResponseStatus, StoredMessage, TopicConfig};
use proto::{ANY_QUEUE, PERM_READ, PERM_WRITE};

use futures::stream::FuturesUnordered;
use futures::{Stream, StreamExt};
use std::pin::Pin;
use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Status, Streaming};

use super::proposer::{AckOn, Proposed};
use super::BrokerContext;
use crate::command::{self, LogCommand};
use crate::limits::{check_group_name, check_message, check_topic_name, message_size, Refusal};
use crate::raft::typ::ApplyResult;

/// Checks a batch: one topic and queue, a legal topic name, messages within their limits
/// (`crate::limits`), and the whole batch within `maxMessageSize` (RocketMQ caps a batch
/// there too). The error names the message, the field and the limit.
pub fn check_batch(
    messages: &[pb::Message],
    max_message_size: usize,
) -> Result<(String, i32), Refusal> {
    let Some(first) = messages.first() else {
        return Err(Refusal::new("the request carries no message"));
    };
    check_topic_name(&first.topic)?;
    let mut total = 0usize;
    for (i, m) in messages.iter().enumerate() {
        if m.topic != first.topic || m.queue_id != first.queue_id {
            return Err(Refusal::new(format!(
                "message {i} is for {}/{} but the batch is for {}/{}: a batch goes to one queue",
                m.topic, m.queue_id, first.topic, first.queue_id
            )));
        }
        check_message(m, max_message_size)
            .map_err(|why| Refusal::new(format!("message {i}: {why}")))?;
        total += message_size(m);
    }
    if total > max_message_size {
        return Err(Refusal::new(format!(
            "the batch of {} messages is {total} bytes, more than maxMessageSize \
             {max_message_size}",
            messages.len()
        )));
    }
    if first.queue_id < ANY_QUEUE {
        return Err(Refusal::new(format!(
            "queue id {} is negative",
            first.queue_id
        )));
    }
    Ok((first.topic.clone(), first.queue_id))
}

/// Round-robin queue choice for sends that leave the queue to the broker.
#[derive(Default)]
pub struct QueueCursor {
    next: Mutex<HashMap<String, u32>>,
}

impl QueueCursor {
    pub fn pick(&self, topic: &str, write_queues: u32) -> u32 {
        let mut map = self.next.lock().unwrap_or_else(|p| p.into_inner());
        let next = map.entry(topic.to_string()).or_default();
        let n = *next;
        *next = next.wrapping_add(1);
        n % write_queues.max(1)
    }
}

fn reply(ctx: &BrokerContext, status: ResponseStatus) -> pb::SendMessageResponse {
    pb::SendMessageResponse {
        status: Some(status),
        broker_name: ctx.config.broker_name.clone(),
        ..Default::default()
    }
}

/// Finds the topic, creating it (through Raft) when `autoCreateTopicEnable` allows.
async fn ensure_topic(ctx: &BrokerContext, topic: &str) -> Result<TopicConfig, ResponseStatus> {
    if let Some(t) = ctx.state.topic(topic) {
        return Ok(t);
    }
    if !ctx.config.auto_create_topic_enable {
        return Err(ResponseStatus::new(
            ResponseCode::TopicNotExist,
            format!("topic {topic} does not exist and autoCreateTopicEnable=false; create it with mqadmin updateTopic"),
        ));
    }
    let queues = ctx.config.default_topic_queue_nums;
    let config = TopicConfig {
        topic_name: topic.to_string(),
        read_queue_nums: queues,
        write_queue_nums: queues,
        perm: PERM_READ | PERM_WRITE,
        order: false,
    };
    ctx.write(LogCommand::upsert_topic(&config))
        .await
        .map_err(|e| e.status())?;
    ctx.state.topic(topic).ok_or_else(|| {
        ResponseStatus::new(
            ResponseCode::Internal,
            format!("topic {topic} was created but is not visible"),
        )
    })
}

pub async fn handle(ctx: &BrokerContext, req: pb::SendMessageRequest) -> pb::SendMessageResponse {
    let (topic, queue_id) = match check_batch(&req.messages, ctx.config.max_message_size as usize) {
        Ok(v) => v,
        Err(why) => {
            return reply(
                ctx,
                ResponseStatus::new(ResponseCode::MessageIllegal, why.to_string()),
            )
        }
    };
    if !req.producer_group.is_empty() {
        if let Err(why) = check_group_name("producer group", &req.producer_group) {
            return reply(
                ctx,
                ResponseStatus::new(ResponseCode::IllegalArgument, why.to_string()),
            );
        }
    }
    if let Err(status) = ctx.require_leader() {
        return reply(ctx, status);
    }
    let config = match ensure_topic(ctx, &topic).await {
        Ok(c) => c,
        Err(status) => return reply(ctx, status),
    };
    if config.perm & PERM_WRITE == 0 {
        return reply(
            ctx,
            ResponseStatus::new(
                ResponseCode::NoPermission,
                format!("topic {topic} is not writable (perm {})", config.perm),
            ),
        );
    }
    let queue_id = if queue_id == ANY_QUEUE {
        ctx.queue_cursor.pick(&topic, config.write_queue_nums)
    } else if (queue_id as u32) < config.write_queue_nums {
        queue_id as u32
    } else {
        return reply(
            ctx,
            ResponseStatus::new(
                ResponseCode::IllegalArgument,
                format!(
                    "queue {queue_id} does not exist: topic {topic} has {} write queues",
                    config.write_queue_nums
                ),
            ),
        );
    };

    let store_ts = super::now_ms();
    let stored: Vec<StoredMessage> = req
        .messages
        .into_iter()
        .map(|m| StoredMessage {
            topic: m.topic,
            queue_id: queue_id as i32,
            tags: m.tags,
            keys: m.keys,
            properties: m.properties,
            body: m.body,
            born_timestamp_ms: m.born_timestamp_ms,
            born_host: m.born_host,
            store_timestamp_ms: i64::try_from(store_ts).unwrap_or(i64::MAX),
            store_host: ctx.client_addr.to_string(),
            ..Default::default()
        })
        .collect();
    let count = stored.len();
    let cmd = match LogCommand::send(&topic, queue_id, store_ts, &stored) {
        Ok(cmd) => cmd,
        Err(e) => {
            return reply(
                ctx,
                ResponseStatus::new(ResponseCode::MessageIllegal, e.to_string()),
            )
        }
    };
    match ctx.write(cmd).await {
        Ok(Proposed {
            result:
                ApplyResult::Stored {
                    offsets,
                    positions,
                    duplicates,
                    ..
                },
            log_id,
        }) => {
            ctx.counters.put.fetch_add(count as u64, Ordering::Relaxed);
            let entry = ctx.log.locate(log_id.index);
            let results = offsets
                .iter()
                .zip(&positions)
                .map(|(&queue_offset, &pos)| {
                    let stored_here = duplicates == 0
                        || entry
                            .is_some_and(|(at, size)| (at..at + u64::from(size)).contains(&pos));
                    let (host, entry_id) = if stored_here {
                        (ctx.client_addr, Some(log_id))
                    } else {
                        original(ctx, pos)
                    };
                    pb::SendResult {
                        msg_id: OffsetMsgId::new(host, pos).to_string(),
                        queue_offset,
                        commit_log_offset: pos,
                        log_id: entry_id.map(|l| pb::LogId {
                            term: l.leader_id.term,
                            node_id: 0,
                            index: l.index,
                        }),
                    }
                })
                .collect();
            // A SYNC_MASTER of a classic group with no slave in sync holds the only copy
            // (RocketMQ's SendStatus SLAVE_NOT_AVAILABLE): stored, less durable than promised.
            let status = if ctx.ack_on == AckOn::Commit && ctx.in_sync.borrow().alone() {
                ResponseStatus::new(
                    ResponseCode::SlaveNotAvailable,
                    "stored on the master only: no slave is in sync",
                )
            } else {
                ResponseStatus::ok()
            };
            pb::SendMessageResponse {
                status: Some(status),
                results,
                broker_name: ctx.config.broker_name.clone(),
                queue_id: queue_id as i32,
            }
        }
        Ok(Proposed {
            result: ApplyResult::Refused(why),
            ..
        }) => reply(ctx, ResponseStatus::new(ResponseCode::MessageIllegal, why)),
        Ok(Proposed { result: other, .. }) => reply(
            ctx,
            ResponseStatus::new(
                ResponseCode::Internal,
                format!("unexpected apply result {other:?}"),
            ),
        ),
        Err(failure) => reply(ctx, failure.send_status(ctx.ack_on)),
    }
}

/// Where a message stored by an earlier send (the original of a retried copy) was stored:
/// the leader address its record names, which is what its message id carries (consumers see
/// the same id), and the log id of the entry holding it. The record is committed, so it is in
/// this replica's log unless this replica installed a snapshot since.
fn original(
    ctx: &BrokerContext,
    position: u64,
) -> (std::net::SocketAddr, Option<crate::raft::typ::LogId>) {
    let host = ctx
        .log
        .read_at(position, 4)
        .ok()
        .map(|b| u64::from(u32::from_le_bytes([b[0], b[1], b[2], b[3]])) + 4)
        .and_then(|size| ctx.log.read_at(position, size).ok())
        .and_then(|record| command::decode_record(record).ok())
        .and_then(|m| m.store_host.parse().ok())
        .unwrap_or(ctx.client_addr);
    let entry = ctx.log.entry_holding(position).map(|l| {
        crate::raft::typ::LogId::new(openraft::CommittedLeaderId::new(l.term, 0), l.index)
    });
    (host, entry)
}

/// The reply stream of `SendMessageStream`.
pub type SendReplies = Pin<Box<dyn Stream<Item = Result<pb::SendStreamResponse, Status>> + Send>>;

/// Replies a send stream may hold while the producer is slow to read them.
const STREAM_REPLY_BUFFER: usize = 1024;
/// Sends of one stream handled at once; past this the stream reads no further request until
/// one is answered, so a producer that sends faster than the group commits is held back by
/// HTTP/2 flow control instead of growing the broker's memory.
pub const STREAM_MAX_IN_FLIGHT: usize = 1024;

/// Serves one `SendMessageStream`: every request is handled as [`handle`] handles a unary
/// send, concurrently with the others of the stream, and answered when it completes. When the
/// replica shuts down the stream takes no more requests, answers the ones in flight and ends.
pub fn stream(
    ctx: BrokerContext,
    mut incoming: Streaming<pb::SendStreamRequest>,
    mut stopped: watch::Receiver<bool>,
) -> SendReplies {
    let (replies, rx) = mpsc::channel(STREAM_REPLY_BUFFER);
    tokio::spawn(async move {
        let mut in_flight = FuturesUnordered::new();
        let mut open = true;
        while open || !in_flight.is_empty() {
            tokio::select! {
                next = incoming.message(), if open && in_flight.len() < STREAM_MAX_IN_FLIGHT => match next {
                    Ok(Some(req)) => {
                        let ctx = &ctx;
                        in_flight.push(async move {
                            let id = req.id;
                            let response = handle(ctx, req.request.unwrap_or_default()).await;
                            pb::SendStreamResponse { id, response: Some(response) }
                        });
                    }
                    // The producer closed its side, or the connection broke.
                    Ok(None) | Err(_) => open = false,
                },
                Some(reply) = in_flight.next(), if !in_flight.is_empty() => {
                    if replies.send(Ok(reply)).await.is_err() {
                        return;
                    }
                }
                () = async { let _ = stopped.wait_for(|&s| s).await; }, if open => open = false,
            }
        }
    });
    Box::pin(ReceiverStream::new(rx))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(topic: &str, queue_id: i32, body: &[u8]) -> pb::Message {
        pb::Message {
            topic: topic.into(),
            queue_id,
            body: bytes::Bytes::copy_from_slice(body),
            ..Default::default()
        }
    }

    #[test]
    fn batches() {
        assert!(check_batch(&[], 10).is_err());
        assert_eq!(check_batch(&[msg("T", -1, b"a")], 10), Ok(("T".into(), -1)));
        assert!(check_batch(&[msg("T", 0, b"")], 10)
            .unwrap_err()
            .to_string()
            .contains("body is empty"));
        assert!(check_batch(&[msg("T", 0, &[0; 11])], 10)
            .unwrap_err()
            .to_string()
            .contains("maxMessageSize"));
        assert!(check_batch(&[msg("T", 0, b"a"), msg("U", 0, b"a")], 10)
            .unwrap_err()
            .to_string()
            .contains("one queue"));
        assert!(check_batch(&[msg("T", -2, b"a")], 10).is_err());
        // Each message fits, the batch does not: RocketMQ caps a batch at maxMessageSize too.
        let big = [msg("T", 0, &[1; 6]), msg("T", 0, &[2; 6])];
        assert!(check_batch(&big, 10)
            .unwrap_err()
            .to_string()
            .contains("batch of 2"));
        let mut keyed = msg("T", 0, b"a");
        keyed
            .properties
            .insert(crate::command::UNIQ_KEY.into(), "k".repeat(70_000));
        assert!(check_batch(&[keyed], 1 << 22)
            .unwrap_err()
            .to_string()
            .contains("message 0: UNIQ_KEY"));
    }

    #[test]
    fn round_robin() {
        let c = QueueCursor::default();
        let picks: Vec<u32> = (0..6).map(|_| c.pick("T", 4)).collect();
        assert_eq!(picks, [0, 1, 2, 3, 0, 1]);
        assert_eq!(c.pick("U", 4), 0);
    }
}
