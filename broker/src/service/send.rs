//! SendMessage: check the batch, pick the queue, create the topic if allowed, append through
//! Raft, answer with each message's id and queue offset.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use proto::msg_id::OffsetMsgId;
use proto::v1::{self as pb, ResponseCode, ResponseStatus, StoredMessage, TopicConfig};
use proto::{ANY_QUEUE, PERM_READ, PERM_WRITE};

use futures::stream::FuturesUnordered;
use futures::{Stream, StreamExt};
use std::pin::Pin;
use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Status, Streaming};

use super::BrokerContext;
use crate::command::LogCommand;
use crate::raft::typ::ApplyResult;

/// RocketMQ's longest topic name.
pub const TOPIC_MAX_LEN: usize = 127;

/// Checks a topic name against RocketMQ's rule: 1..=127 characters of `[A-Za-z0-9_%|-]`.
pub fn check_topic_name(topic: &str) -> Result<(), String> {
    if topic.is_empty() {
        return Err("the topic name is empty".into());
    }
    if topic.len() > TOPIC_MAX_LEN {
        return Err(format!(
            "topic name of {} characters is longer than {TOPIC_MAX_LEN}",
            topic.len()
        ));
    }
    if let Some(c) = topic
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || "_%|-".contains(*c)))
    {
        return Err(format!(
            "topic name {topic:?} contains {c:?}; allowed are A-Z a-z 0-9 _ % | -"
        ));
    }
    Ok(())
}

/// What a message costs against `maxMessageSize`: body plus properties, keys and tags, as
/// RocketMQ counts the variable part of a message.
fn message_size(m: &pb::Message) -> usize {
    m.body.len()
        + m.tags.len()
        + m.keys.iter().map(|k| k.len() + 1).sum::<usize>()
        + m.properties
            .iter()
            .map(|(k, v)| k.len() + v.len() + 2)
            .sum::<usize>()
}

/// Checks a batch: one topic and queue, legal name, non-empty bodies within the size limit.
pub fn check_batch(
    messages: &[pb::Message],
    max_message_size: usize,
) -> Result<(String, i32), String> {
    let Some(first) = messages.first() else {
        return Err("the request carries no message".into());
    };
    check_topic_name(&first.topic)?;
    for (i, m) in messages.iter().enumerate() {
        if m.topic != first.topic || m.queue_id != first.queue_id {
            return Err(format!(
                "message {i} is for {}/{} but the batch is for {}/{}: a batch goes to one queue",
                m.topic, m.queue_id, first.topic, first.queue_id
            ));
        }
        if m.body.is_empty() {
            return Err(format!("message {i} has an empty body"));
        }
        let size = message_size(m);
        if size > max_message_size {
            return Err(format!(
                "message {i} is {size} bytes, more than maxMessageSize {max_message_size}"
            ));
        }
    }
    if first.queue_id < ANY_QUEUE {
        return Err(format!("queue id {} is negative", first.queue_id));
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

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
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
        Err(why) => return reply(ctx, ResponseStatus::new(ResponseCode::MessageIllegal, why)),
    };
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

    let store_ts = now_ms();
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
            store_timestamp_ms: store_ts,
            store_host: ctx.client_addr.to_string(),
            ..Default::default()
        })
        .collect();
    let count = stored.len();
    let cmd = LogCommand::send(&topic, queue_id, &stored);
    match ctx.write_send(cmd).await {
        Ok(ApplyResult::Stored {
            offsets, positions, ..
        }) => {
            ctx.counters.put.fetch_add(count as u64, Ordering::Relaxed);
            let results = offsets
                .iter()
                .zip(&positions)
                .map(|(&queue_offset, &pos)| pb::SendResult {
                    msg_id: OffsetMsgId::new(ctx.client_addr, pos).to_string(),
                    queue_offset,
                    commit_log_offset: pos,
                    log_id: None,
                })
                .collect();
            pb::SendMessageResponse {
                status: Some(ResponseStatus::ok()),
                results,
                broker_name: ctx.config.broker_name.clone(),
                queue_id: queue_id as i32,
            }
        }
        Ok(ApplyResult::Refused(why)) => {
            reply(ctx, ResponseStatus::new(ResponseCode::MessageIllegal, why))
        }
        Ok(other) => reply(
            ctx,
            ResponseStatus::new(
                ResponseCode::Internal,
                format!("unexpected apply result {other:?}"),
            ),
        ),
        Err(failure) => reply(ctx, failure.status()),
    }
}

/// The reply stream of `SendMessageStream`.
pub type SendReplies = Pin<Box<dyn Stream<Item = Result<pb::SendStreamResponse, Status>> + Send>>;

/// Replies a send stream may hold while the producer is slow to read them.
const STREAM_REPLY_BUFFER: usize = 1024;

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
                next = incoming.message(), if open => match next {
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
    fn topic_names() {
        assert!(check_topic_name("TopicTest_1%a|b-c").is_ok());
        assert!(check_topic_name("").is_err());
        assert!(check_topic_name("bad topic").unwrap_err().contains("' '"));
        assert!(check_topic_name(&"x".repeat(128)).is_err());
        assert!(check_topic_name(&"x".repeat(127)).is_ok());
    }

    #[test]
    fn batches() {
        assert!(check_batch(&[], 10).is_err());
        assert_eq!(check_batch(&[msg("T", -1, b"a")], 10), Ok(("T".into(), -1)));
        assert!(check_batch(&[msg("T", 0, b"")], 10)
            .unwrap_err()
            .contains("empty body"));
        assert!(check_batch(&[msg("T", 0, &[0; 11])], 10)
            .unwrap_err()
            .contains("maxMessageSize"));
        assert!(check_batch(&[msg("T", 0, b"a"), msg("U", 0, b"a")], 10)
            .unwrap_err()
            .contains("one queue"));
        assert!(check_batch(&[msg("T", -2, b"a")], 10).is_err());
    }

    #[test]
    fn round_robin() {
        let c = QueueCursor::default();
        let picks: Vec<u32> = (0..6).map(|_| c.pick("T", 4)).collect();
        assert_eq!(picks, [0, 1, 2, 3, 0, 1]);
        assert_eq!(c.pick("U", 4), 0);
    }
}
