//! PullMessage (with long polling and tag filtering) and QueryMessageById. Any replica
//! serves reads, from applied (committed) entries only: a message acked in ASYNC mode but lost
//! in a failover is never seen by a consumer.

use std::collections::HashSet;
use std::sync::atomic::Ordering;
use std::time::Duration;

use proto::msg_id::OffsetMsgId;
use proto::v1::{
    self as pb, OffsetBoundary, OffsetOutOfRange, ResponseCode, ResponseStatus, StoredMessage,
};
use proto::PERM_READ;

use super::BrokerContext;
use crate::command::{self, tags_hash};
use crate::limits::Refusal;
use crate::Error;

/// Default and largest number of messages per pull.
const DEFAULT_BATCH: u32 = 32;
const MAX_BATCH: u32 = 1024;
/// A pull answer stops growing past this many body bytes.
const MAX_RESPONSE_BYTES: usize = 8 << 20;
/// Longest long-poll wait a client may ask for.
const MAX_WAIT: Duration = Duration::from_secs(30);

/// A subscription's tag expression: `*` (or empty) for every message, or `TagA || TagB`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TagFilter {
    All,
    Tags {
        names: HashSet<String>,
        hashes: HashSet<u64>,
    },
}

impl TagFilter {
    pub fn parse(expr: &str) -> Result<TagFilter, Refusal> {
        let expr = expr.trim();
        if expr.is_empty() || expr == "*" {
            return Ok(TagFilter::All);
        }
        let mut names = HashSet::new();
        for part in expr.split("||") {
            let tag = part.trim();
            if tag.is_empty() {
                return Err(Refusal::new(format!(
                    "tag expression {expr:?} has an empty tag; write e.g. `TagA || TagB` or `*`"
                )));
            }
            names.insert(tag.to_string());
        }
        let hashes = names.iter().map(|t| tags_hash(t)).collect();
        Ok(TagFilter::Tags { names, hashes })
    }

    /// Cheap pre-check from the consume queue's tag hash (collisions pass).
    pub fn may_match(&self, hash: u64) -> bool {
        match self {
            TagFilter::All => true,
            TagFilter::Tags { hashes, .. } => hashes.contains(&hash),
        }
    }

    pub fn matches(&self, tags: &str) -> bool {
        match self {
            TagFilter::All => true,
            TagFilter::Tags { names, .. } => names.contains(tags),
        }
    }
}

fn reply(status: ResponseStatus, min: u64, max: u64, next: u64) -> pb::PullMessageResponse {
    pb::PullMessageResponse {
        status: Some(status),
        messages: Vec::new(),
        next_begin_offset: next,
        min_offset: min,
        max_offset: max,
    }
}

/// Reads one message record at `position` and fills in the fields only the broker knows.
fn load(
    ctx: &BrokerContext,
    position: u64,
    size: u32,
    queue_offset: u64,
) -> crate::Result<StoredMessage> {
    let bytes = ctx.log.read_at(position, u64::from(size))?;
    let mut m =
        command::decode_record(bytes).map_err(|error| Error::BadRecord { position, error })?;
    // The id names the leader that stored the message, as the send's answer did.
    let store_host = m.store_host.parse().unwrap_or(ctx.client_addr);
    m.msg_id = OffsetMsgId::new(store_host, position).to_string();
    m.queue_offset = queue_offset;
    m.commit_log_offset = position;
    m.broker_name = ctx.config.broker_name.clone();
    m.store_size = size;
    Ok(m)
}

pub async fn handle(ctx: &BrokerContext, req: pb::PullMessageRequest) -> pb::PullMessageResponse {
    let filter = match TagFilter::parse(&req.tag_expression) {
        Ok(f) => f,
        Err(why) => {
            return reply(
                ResponseStatus::new(ResponseCode::SubscriptionIllegal, why.to_string()),
                0,
                0,
                req.queue_offset,
            )
        }
    };
    let Some(topic) = ctx.state.topic(&req.topic) else {
        return reply(
            ResponseStatus::new(
                ResponseCode::TopicNotExist,
                format!("topic {} does not exist", req.topic),
            ),
            0,
            0,
            req.queue_offset,
        );
    };
    if topic.perm & PERM_READ == 0 {
        return reply(
            ResponseStatus::new(
                ResponseCode::NoPermission,
                format!("topic {} is not readable", req.topic),
            ),
            0,
            0,
            req.queue_offset,
        );
    }
    if req.queue_id < 0 || req.queue_id as u32 >= topic.read_queue_nums {
        return reply(
            ResponseStatus::new(
                ResponseCode::IllegalArgument,
                format!(
                    "queue {} does not exist: topic {} has {} read queues",
                    req.queue_id, req.topic, topic.read_queue_nums
                ),
            ),
            0,
            0,
            req.queue_offset,
        );
    }
    let queue_id = req.queue_id as u32;
    let offset = req.queue_offset;
    let mut applied = ctx.state.subscribe();
    let wait = Duration::from_millis(u64::from(req.max_wait_ms)).min(MAX_WAIT);
    let deadline = tokio::time::Instant::now() + wait;
    let (min, max) = loop {
        let (min, max) = ctx
            .state
            .queue_offsets(&req.topic, queue_id)
            .unwrap_or((0, 0));
        if offset < min || offset > max {
            let (boundary, side) = if offset < min {
                (
                    OffsetBoundary::BelowMin,
                    "before the oldest retained message",
                )
            } else {
                (OffsetBoundary::AboveMax, "past the end of the queue")
            };
            let range = OffsetOutOfRange {
                boundary: boundary as i32,
                requested_offset: offset,
                min_offset: min,
                max_offset: max,
            };
            let remark = format!("offset {offset} is {side}; readable offsets are {min}..{max}");
            return reply(
                ResponseStatus::offset_out_of_range(range, remark),
                min,
                max,
                offset.clamp(min, max),
            );
        }
        if offset < max {
            break (min, max);
        }
        // Long poll: wait for the next applied entry (or the deadline), then look again.
        match tokio::time::timeout_at(deadline, applied.changed()).await {
            Ok(Ok(())) => continue,
            _ => {
                return reply(
                    ResponseStatus::new(ResponseCode::NoNewMessage, "no new message"),
                    min,
                    max,
                    offset,
                )
            }
        }
    };

    let batch = match req.max_count {
        0 => DEFAULT_BATCH,
        n => n.min(MAX_BATCH),
    };
    let mut messages = Vec::new();
    let mut next = offset;
    let mut bytes = 0usize;
    // Scan up to a bounded number of units so a filter that matches little still returns.
    let units = ctx.state.units(
        &req.topic,
        queue_id,
        offset,
        batch.saturating_mul(4).min(MAX_BATCH * 4),
    );
    for unit in units {
        if messages.len() as u32 >= batch || bytes >= MAX_RESPONSE_BYTES {
            break;
        }
        next = unit.queue_offset + 1;
        if !filter.may_match(unit.tags_hash) {
            continue;
        }
        match load(ctx, unit.position, unit.size, unit.queue_offset) {
            Ok(m) if filter.matches(&m.tags) => {
                bytes += m.body.len();
                messages.push(m);
            }
            Ok(_) => {}
            Err(why) => {
                return reply(
                    ResponseStatus::new(
                        ResponseCode::Internal,
                        format!("cannot read queue offset {}: {why}", unit.queue_offset),
                    ),
                    min,
                    max,
                    unit.queue_offset,
                )
            }
        }
    }
    ctx.counters
        .got
        .fetch_add(messages.len() as u64, Ordering::Relaxed);
    let status = if messages.is_empty() {
        ResponseStatus::new(
            ResponseCode::NoMatchedMessage,
            "no message matched the tag expression",
        )
    } else {
        ResponseStatus::ok()
    };
    pb::PullMessageResponse {
        status: Some(status),
        messages,
        next_begin_offset: next,
        min_offset: min,
        max_offset: max,
    }
}

/// QueryMessageById: the id carries the log position of the record.
pub fn by_id(
    ctx: &BrokerContext,
    req: pb::QueryMessageByIdRequest,
) -> pb::QueryMessageByIdResponse {
    let answer = |status, message| pb::QueryMessageByIdResponse {
        status: Some(status),
        message,
    };
    let id: OffsetMsgId = match req.msg_id.parse() {
        Ok(id) => id,
        Err(e) => {
            return answer(
                ResponseStatus::new(
                    ResponseCode::IllegalArgument,
                    format!("bad message id {:?}: {e}", req.msg_id),
                ),
                None,
            )
        }
    };
    let position = id.commit_log_offset;
    let size = match ctx.log.read_at(position, 4) {
        Ok(b) => u32::from_le_bytes([b[0], b[1], b[2], b[3]]).saturating_add(4),
        Err(e) => {
            return answer(
                ResponseStatus::new(
                    ResponseCode::NotFound,
                    format!("message {}: {e}", req.msg_id),
                ),
                None,
            )
        }
    };
    match load(ctx, position, size, 0) {
        Ok(mut m) => {
            // Only a message its queue holds is answered: applied (committed), and still
            // there. A record in the log that no queue points at (an ASYNC_MASTER send lost
            // before a follower had it, a refused send, bytes that merely look like a record)
            // is not a message.
            let Some(queue_offset) =
                ctx.state
                    .queue_offset_of(&m.topic, m.queue_id.max(0) as u32, position)
            else {
                return answer(
                    ResponseStatus::new(
                        ResponseCode::NotFound,
                        format!(
                            "message {}: no committed message of {}/{} is stored at log \
                             position {position}",
                            req.msg_id, m.topic, m.queue_id
                        ),
                    ),
                    None,
                );
            };
            m.queue_offset = queue_offset;
            answer(ResponseStatus::ok(), Some(m))
        }
        Err(why) => answer(
            ResponseStatus::new(
                ResponseCode::NotFound,
                format!("no message starts at log position {position}: {why}"),
            ),
            None,
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tag_filters() {
        assert_eq!(TagFilter::parse("*"), Ok(TagFilter::All));
        assert_eq!(TagFilter::parse(""), Ok(TagFilter::All));
        let f = TagFilter::parse("TagA || TagB").unwrap();
        assert!(f.matches("TagA") && f.matches("TagB") && !f.matches("TagC") && !f.matches(""));
        assert!(f.may_match(tags_hash("TagB")) && !f.may_match(tags_hash("TagC")));
        assert!(TagFilter::parse("A ||").is_err());
    }
}
