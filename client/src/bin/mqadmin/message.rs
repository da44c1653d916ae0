//! `sendMessage`, `consumeMessage`, `queryMsgById`.

use std::time::Duration;

use clap::Args;
use client::{Admin, Message, MessageQueue, Producer, ProducerConfig, PullConsumer, PullStatus};
use proto::v1::StoredMessage;
use serde_json::{json, Value};

use crate::body::{self, BodyFormat};
use crate::table::{fmt_time_ms, key_values, Table};
use crate::Output;

/// Body characters shown in a table cell.
const BODY_PREVIEW: usize = 60;

/// Arguments of `sendMessage`.
#[derive(Args, Debug)]
pub struct SendArgs {
    /// Topic name (created by the broker if it does not exist and autoCreateTopicEnable)
    #[arg(short = 't', long = "topic")]
    pub topic: String,
    /// Message body (UTF-8 text)
    #[arg(short = 'p', long = "body")]
    pub body: String,
    /// Business keys, space-separated
    #[arg(short = 'k', long = "keys")]
    pub keys: Option<String>,
    /// Tag
    #[arg(short = 'c', long = "tags")]
    pub tags: Option<String>,
    /// Send to this broker group (brokerName) [default: any]
    #[arg(short = 'b', long = "broker")]
    pub broker: Option<String>,
    /// Send to this queue of the group given with -b
    #[arg(short = 'i', long = "qid", requires = "broker")]
    pub queue: Option<i32>,
}

/// Arguments of `consumeMessage`.
#[derive(Args, Debug)]
pub struct ConsumeArgs {
    /// Topic name
    #[arg(short = 't', long = "topic")]
    pub topic: String,
    /// Consumer group: start from its committed offsets [default: from the first message]
    #[arg(short = 'g', long = "consumerGroup")]
    pub group: Option<String>,
    /// Only this broker group (brokerName)
    #[arg(short = 'b', long = "brokerName")]
    pub broker: Option<String>,
    /// Only this queue id
    #[arg(short = 'q', long = "queueId")]
    pub queue: Option<i32>,
    /// Start at this offset in every queue read
    #[arg(short = 'o', long = "offset")]
    pub offset: Option<u64>,
    /// Most messages to print
    #[arg(short = 'c', long = "count", default_value_t = 128)]
    pub count: usize,
    /// How to show bodies
    #[arg(long = "body-format", value_enum, default_value_t = BodyFormat::Auto)]
    pub body_format: BodyFormat,
}

/// Arguments of `queryMsgById`.
#[derive(Args, Debug)]
pub struct QueryByIdArgs {
    /// Message id (as returned by a send)
    #[arg(short = 'i', long = "msgId")]
    pub id: String,
    /// How to show the body (`hex`: a complete hex dump after the fields)
    #[arg(long = "body-format", value_enum, default_value_t = BodyFormat::Auto)]
    pub body_format: BodyFormat,
}

/// `sendMessage`: sends one message and shows where it was stored.
pub async fn send_message(admin: &Admin, args: SendArgs) -> anyhow::Result<Output> {
    let mut message = Message::new(&args.topic, args.body.into_bytes());
    if let Some(tags) = args.tags {
        message = message.with_tags(tags);
    }
    for key in args.keys.iter().flat_map(|k| k.split_whitespace()) {
        message = message.with_key(key);
    }
    let producer = Producer::new(admin.cluster().clone(), ProducerConfig::default());
    let sent = match (args.broker, args.queue) {
        (Some(broker), queue) => {
            let queue = MessageQueue::new(&args.topic, broker, queue.unwrap_or(proto::ANY_QUEUE));
            let mut results = producer.send_to_queue(vec![message], &queue).await?;
            results
                .pop()
                .ok_or_else(|| anyhow::anyhow!("the broker returned no result"))?
        }
        (None, _) => producer.send(message).await?,
    };
    let mut table = Table::new(&[
        "broker_name",
        "queue_id",
        "queue_offset",
        "msg_id",
        "send_status",
    ]);
    table.row(vec![
        json!(sent.queue.broker_name),
        json!(sent.queue.queue_id),
        json!(sent.queue_offset),
        json!(sent.msg_id),
        json!(sent.status.as_str()),
    ]);
    Ok(Output::table(&table))
}

/// `consumeMessage`: reads up to `count` messages from the chosen queues, each from its
/// start offset to its end, without waiting for new ones and without committing.
///
/// An `-o` past the end of a queue read is an error (`OFFSET_OUT_OF_RANGE` with the queue's
/// valid range), not an empty table; `-o` at the end is not, there is just nothing yet.
pub async fn consume_message(admin: &Admin, args: ConsumeArgs) -> anyhow::Result<Output> {
    let group = args
        .group
        .clone()
        .unwrap_or_else(|| "TOOLS_CONSUMER".to_owned());
    let consumer = PullConsumer::new(admin.cluster().clone(), group);
    let queues: Vec<_> = consumer
        .queues(&args.topic)
        .await?
        .into_iter()
        .filter(|q| args.broker.as_ref().is_none_or(|b| *b == q.broker_name))
        .filter(|q| args.queue.is_none_or(|id| id == q.queue_id))
        .collect();
    if queues.is_empty() {
        anyhow::bail!(
            "topic {} has no readable queue matching{}{}",
            args.topic,
            args.broker
                .map(|b| format!(" broker {b}"))
                .unwrap_or_default(),
            args.queue
                .map(|q| format!(" queue {q}"))
                .unwrap_or_default()
        );
    }
    let mut messages: Vec<StoredMessage> = Vec::new();
    // Queues an explicit -o lies beyond the end of, with their valid range.
    let mut beyond_end: Vec<String> = Vec::new();
    'queues: for queue in &queues {
        let range = consumer.queue_offsets(queue).await?;
        let mut offset = match (args.offset, &args.group) {
            (Some(o), _) => o,
            (None, Some(_)) => consumer.query_offset(queue).await?.unwrap_or(range.min),
            (None, None) => range.min,
        };
        if args.offset.is_some() && offset > range.max {
            beyond_end.push(past_the_end(queue, offset, range.min, range.max));
            continue;
        }
        while offset < range.max && messages.len() < args.count {
            let want = u32::try_from(args.count - messages.len())
                .unwrap_or(u32::MAX)
                .min(32);
            let pulled = consumer.pull(queue, offset, want, Duration::ZERO).await?;
            match pulled.status {
                PullStatus::Found | PullStatus::NoMatchedMessage => {
                    messages.extend(pulled.messages);
                    if pulled.next_begin_offset <= offset {
                        break;
                    }
                    offset = pulled.next_begin_offset;
                }
                PullStatus::NoNewMessage => break,
                PullStatus::OffsetIllegal { below_min: true } => offset = pulled.min_offset,
                PullStatus::OffsetIllegal { below_min: false } => {
                    // The replica that answered holds less than the range said (a follower
                    // behind its leader): its end is the one that counts for this read.
                    if args.offset == Some(offset) {
                        beyond_end.push(past_the_end(
                            queue,
                            offset,
                            pulled.min_offset,
                            pulled.max_offset,
                        ));
                    }
                    break;
                }
            }
        }
        if messages.len() >= args.count {
            messages.truncate(args.count);
            break 'queues;
        }
    }
    if !beyond_end.is_empty() {
        anyhow::bail!("OFFSET_OUT_OF_RANGE: {}", beyond_end.join("; "));
    }
    let json = Value::Array(
        messages
            .iter()
            .map(|m| message_json(m, args.body_format))
            .collect(),
    );
    if messages.is_empty() {
        let at = args
            .offset
            .map(|o| format!(" at offset {o}"))
            .unwrap_or_default();
        let text = format!(
            "no new message in {} queue(s) of {}{at}",
            queues.len(),
            args.topic
        );
        return Ok(Output::new(text, json));
    }
    let mut table = Table::new(&[
        "broker_name",
        "queue_id",
        "queue_offset",
        "msg_id",
        "tags",
        "keys",
        "store_time",
        "body",
    ]);
    for m in &messages {
        let mut body = body::one_line(&m.body, args.body_format);
        if body.chars().count() > BODY_PREVIEW {
            body = body.chars().take(BODY_PREVIEW).collect::<String>() + "...";
        }
        table.row(vec![
            json!(m.broker_name),
            json!(m.queue_id),
            json!(m.queue_offset),
            json!(m.msg_id),
            json!(m.tags),
            json!(m.keys.join(" ")),
            json!(fmt_time_ms(m.store_timestamp_ms)),
            json!(body),
        ]);
    }
    Ok(Output::new(table.to_text(), json))
}

/// Why reading `queue` from `offset` is refused: the offset lies past its end.
fn past_the_end(queue: &MessageQueue, offset: u64, min: u64, max: u64) -> String {
    format!("offset {offset} is past the end of {queue}; valid range [{min}, {max}]")
}

/// `queryMsgById`: every field of one message.
pub async fn query_msg_by_id(admin: &Admin, args: QueryByIdArgs) -> anyhow::Result<Output> {
    let m = admin.query_msg_by_id(&args.id).await?;
    let shown_body = match args.body_format {
        BodyFormat::Auto => body::one_line(&m.body, BodyFormat::Auto),
        BodyFormat::Hex => format!("<{} bytes, in hex below>", m.body.len()),
    };
    let properties: Vec<String> = m
        .properties
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    let text = key_values(&[
        ("msg_id", json!(m.msg_id)),
        ("topic", json!(m.topic)),
        ("tags", json!(m.tags)),
        ("keys", json!(m.keys.join(" "))),
        ("broker_name", json!(m.broker_name)),
        ("queue_id", json!(m.queue_id)),
        ("queue_offset", json!(m.queue_offset)),
        ("commit_log_offset", json!(m.commit_log_offset)),
        ("store_size", json!(m.store_size)),
        ("born_host", json!(m.born_host)),
        ("born_time", json!(fmt_time_ms(m.born_timestamp_ms))),
        ("store_time", json!(fmt_time_ms(m.store_timestamp_ms))),
        ("properties", json!(properties.join(" "))),
        ("body", json!(shown_body)),
    ]);
    let text = match args.body_format {
        BodyFormat::Auto => text,
        BodyFormat::Hex => format!(
            "{text}
{}",
            body::hex_dump(&m.body)
        ),
    };
    Ok(Output::new(text, message_json(&m, args.body_format)))
}

/// A stored message as JSON, its body as [`body::json_fields`] has it.
fn message_json(m: &StoredMessage, format: BodyFormat) -> Value {
    let mut fields = json!({
        "msg_id": m.msg_id,
        "topic": m.topic,
        "broker_name": m.broker_name,
        "queue_id": m.queue_id,
        "queue_offset": m.queue_offset,
        "commit_log_offset": m.commit_log_offset,
        "tags": m.tags,
        "keys": m.keys,
        "properties": m.properties,
        "born_host": m.born_host,
        "born_timestamp_ms": m.born_timestamp_ms,
        "store_timestamp_ms": m.store_timestamp_ms,
        "store_size": m.store_size,
    });
    if let Value::Object(fields) = &mut fields {
        fields.extend(body::json_fields(&m.body, format));
    }
    fields
}
