//! What a request may carry: every field that can reach the Raft log (or the broker's memory)
//! is checked here, where it enters the broker, against a documented limit. A request over a
//! limit is refused with `MESSAGE_ILLEGAL` (messages) or `ILLEGAL_ARGUMENT` (anything else),
//! and the reason names the field and the limit.
//!
//! RocketMQ's limits where it has them:
//! - topic: 1..=[`TOPIC_MAX_LEN`] characters of `[A-Za-z0-9_%|-]` (`Byte.MAX_VALUE`);
//! - consumer and producer group: the topic's characters, up to [`GROUP_MAX_LEN`] (the Java
//!   client's `Validators.CHARACTER_MAX_LENGTH`);
//! - a message's properties, serialized RocketMQ's way (`name\u0001value\u0002` for every user
//!   property, `TAGS`, `KEYS` and `UNIQ_KEY`): at most [`PROPERTIES_MAX_BYTES`]
//!   (`Short.MAX_VALUE`, the broker's `PROPERTIES_SIZE_EXCEEDED`);
//! - at most [`PROPERTIES_MAX_COUNT`] user properties (RocketMQ 5's `userPropertyMaxNum`);
//!   no control characters in property names or values, tags or keys, and no `|` in a tag
//!   (RocketMQ 5's proxy rules: `||` separates tags in a subscription);
//! - body plus properties at most `maxMessageSize`, and a whole batch too.
//!
//! raftmq's own, where RocketMQ has none:
//! - `UNIQ_KEY` at most [`UNIQ_KEY_MAX_LEN`] bytes (RocketMQ's ids are 32 or 34 characters);
//!   it is kept in the log next to each record and in the retry memory;
//! - `born_host` at most [`HOST_MAX_LEN`] bytes, a consumer's client id at most
//!   [`CLIENT_ID_MAX_LEN`], at most [`SUBSCRIPTIONS_MAX`] subscriptions per heartbeat;
//! - at most [`QUEUE_NUMS_MAX`] read or write queues per topic.

use proto::v1 as pb;

use crate::command::UNIQ_KEY;

/// RocketMQ's longest topic name.
pub const TOPIC_MAX_LEN: usize = 127;
/// Longest consumer or producer group name.
pub const GROUP_MAX_LEN: usize = 255;
/// Longest serialized properties of one message (`Short.MAX_VALUE`).
pub const PROPERTIES_MAX_BYTES: usize = 32_767;
/// Most user properties on one message.
pub const PROPERTIES_MAX_COUNT: usize = 128;
/// Longest `UNIQ_KEY`.
pub const UNIQ_KEY_MAX_LEN: usize = 128;
/// Longest `born_host`.
pub const HOST_MAX_LEN: usize = 255;
/// Longest client id of a consumer group member.
pub const CLIENT_ID_MAX_LEN: usize = 255;
/// Most subscriptions in one consumer heartbeat.
pub const SUBSCRIPTIONS_MAX: usize = 256;
/// Most read or write queues of one topic.
pub const QUEUE_NUMS_MAX: u32 = 1024;

/// Why a request is refused where it enters the broker: one sentence naming the field and the
/// limit, which the client gets as the status remark (the caller picks the response code).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Refusal(String);

impl Refusal {
    pub(crate) fn new(why: impl Into<String>) -> Self {
        Refusal(why.into())
    }
}

/// Checks a topic name: 1..=127 characters of `[A-Za-z0-9_%|-]`.
pub fn check_topic_name(topic: &str) -> Result<(), Refusal> {
    check_name("topic name", topic, TOPIC_MAX_LEN)
}

/// Checks a consumer or producer group name (`what` says which): 1..=255 characters of
/// `[A-Za-z0-9_%|-]`.
pub fn check_group_name(what: &str, group: &str) -> Result<(), Refusal> {
    check_name(what, group, GROUP_MAX_LEN)
}

fn check_name(what: &str, name: &str, max: usize) -> Result<(), Refusal> {
    if name.is_empty() {
        return Err(Refusal::new(format!("the {what} is empty")));
    }
    if name.len() > max {
        return Err(Refusal::new(format!(
            "{what} of {} characters is longer than {max}",
            name.len()
        )));
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || "_%|-".contains(*c)))
    {
        let shown: String = name.chars().take(40).collect();
        return Err(Refusal::new(format!(
            "{what} {shown:?} contains {c:?}; allowed are A-Z a-z 0-9 _ % | -"
        )));
    }
    Ok(())
}

/// Checks a consumer's client id: 1..=255 bytes without control characters.
pub fn check_client_id(id: &str) -> Result<(), Refusal> {
    if id.is_empty() {
        return Err(Refusal::new("the client id is empty"));
    }
    if id.len() > CLIENT_ID_MAX_LEN {
        return Err(Refusal::new(format!(
            "client id of {} bytes is longer than {CLIENT_ID_MAX_LEN}",
            id.len()
        )));
    }
    no_control("the client id", id)
}

fn no_control(what: &str, s: &str) -> Result<(), Refusal> {
    match s.chars().find(|c| c.is_control()) {
        Some(c) => Err(Refusal::new(format!(
            "{what} contains the control character {c:?}"
        ))),
        None => Ok(()),
    }
}

/// What a message costs against `maxMessageSize`: body plus properties, keys and tags, as
/// RocketMQ counts the variable part of a message.
pub fn message_size(m: &pb::Message) -> usize {
    m.body.len() + properties_size(m)
}

/// The message's properties serialized RocketMQ's way: `name\u0001value\u0002` for each user
/// property, and for `TAGS` and `KEYS` (space-joined) when set.
pub fn properties_size(m: &pb::Message) -> usize {
    let user: usize = m
        .properties
        .iter()
        .map(|(k, v)| k.len() + v.len() + 2)
        .sum();
    let tags = if m.tags.is_empty() {
        0
    } else {
        "TAGS".len() + m.tags.len() + 2
    };
    let keys = if m.keys.is_empty() {
        0
    } else {
        "KEYS".len() + m.keys.iter().map(|k| k.len() + 1).sum::<usize>() + 1
    };
    user + tags + keys
}

/// Checks one message of a send (everything but its topic and queue, which the batch shares):
/// a body, its tag, keys and properties within their limits, and the whole within
/// `max_message_size`. The error names the field and the limit.
pub fn check_message(m: &pb::Message, max_message_size: usize) -> Result<(), Refusal> {
    if m.body.is_empty() {
        return Err(Refusal::new("the body is empty"));
    }
    if m.tags.contains('|') {
        return Err(Refusal::new(format!(
            "tag {:?} contains '|', which separates tags in a subscription",
            truncated(&m.tags)
        )));
    }
    no_control("the tag", &m.tags)?;
    for key in &m.keys {
        if key.trim().is_empty() {
            return Err(Refusal::new("a key is empty or blank"));
        }
        no_control("a key", key)?;
    }
    if m.properties.len() > PROPERTIES_MAX_COUNT {
        return Err(Refusal::new(format!(
            "{} user properties, more than {PROPERTIES_MAX_COUNT}",
            m.properties.len()
        )));
    }
    for (name, value) in &m.properties {
        if name.is_empty() {
            return Err(Refusal::new("a property name is empty"));
        }
        no_control("a property name", name)?;
        no_control(
            &format!("the value of property {:?}", truncated(name)),
            value,
        )?;
    }
    if let Some(key) = m.properties.get(UNIQ_KEY) {
        if key.len() > UNIQ_KEY_MAX_LEN {
            return Err(Refusal::new(format!(
                "{UNIQ_KEY} of {} bytes is longer than {UNIQ_KEY_MAX_LEN}",
                key.len()
            )));
        }
    }
    let properties = properties_size(m);
    if properties > PROPERTIES_MAX_BYTES {
        return Err(Refusal::new(format!(
            "properties (with tag and keys) take {properties} bytes, more than \
             {PROPERTIES_MAX_BYTES}"
        )));
    }
    if m.born_host.len() > HOST_MAX_LEN {
        return Err(Refusal::new(format!(
            "born_host of {} bytes is longer than {HOST_MAX_LEN}",
            m.born_host.len()
        )));
    }
    let size = message_size(m);
    if size > max_message_size {
        return Err(Refusal::new(format!(
            "{size} bytes (body and properties), more than maxMessageSize {max_message_size}"
        )));
    }
    Ok(())
}

/// The first 40 characters of `s`, for error messages about long input.
fn truncated(s: &str) -> String {
    s.chars().take(40).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(body: &[u8]) -> pb::Message {
        pb::Message {
            topic: "T".into(),
            body: bytes::Bytes::copy_from_slice(body),
            ..Default::default()
        }
    }

    #[test]
    fn names() {
        assert!(check_topic_name("TopicTest_1%a|b-c").is_ok());
        assert!(check_topic_name("").is_err());
        assert!(check_topic_name("bad topic")
            .unwrap_err()
            .to_string()
            .contains("' '"));
        assert!(check_topic_name(&"x".repeat(128)).is_err());
        assert!(check_topic_name(&"x".repeat(127)).is_ok());
        assert!(check_group_name("consumer group", &"g".repeat(255)).is_ok());
        let err = check_group_name("consumer group", &"g".repeat(256))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("consumer group") && err.contains("255"),
            "{err}"
        );
        assert!(check_group_name("producer group", "ünï").is_err());
        assert!(check_client_id("10.0.0.1@42").is_ok());
        assert!(check_client_id("a\u{0}b").is_err());
        assert!(check_client_id(&"c".repeat(256)).is_err());
    }

    #[test]
    fn messages() {
        assert!(check_message(&msg(b"x"), 10).is_ok());
        assert!(check_message(&msg(b""), 10)
            .unwrap_err()
            .to_string()
            .contains("empty"));
        assert!(check_message(&msg(&[0; 11]), 10)
            .unwrap_err()
            .to_string()
            .contains("maxMessageSize 10"));

        let mut m = msg(b"x");
        m.properties.insert(UNIQ_KEY.into(), "k".repeat(70_000));
        let err = check_message(&m, 1 << 22).unwrap_err().to_string();
        assert!(err.contains("UNIQ_KEY of 70000 bytes"), "{err}");

        let mut m = msg(b"x");
        m.properties
            .insert("big".into(), "v".repeat(PROPERTIES_MAX_BYTES));
        assert!(check_message(&m, 1 << 22)
            .unwrap_err()
            .to_string()
            .contains("32767"));

        let mut m = msg(b"x");
        for i in 0..=PROPERTIES_MAX_COUNT {
            m.properties.insert(format!("p{i}"), "v".into());
        }
        assert!(check_message(&m, 1 << 22)
            .unwrap_err()
            .to_string()
            .contains("128"));

        let mut m = msg(b"x");
        m.tags = "a||b".into();
        assert!(check_message(&m, 100)
            .unwrap_err()
            .to_string()
            .contains("'|'"));
        m.tags = "a\nb".into();
        assert!(check_message(&m, 100)
            .unwrap_err()
            .to_string()
            .contains("control"));
        let mut m = msg(b"x");
        m.keys = vec!["ok".into(), " ".into()];
        assert!(check_message(&m, 100)
            .unwrap_err()
            .to_string()
            .contains("blank"));
        let mut m = msg(b"x");
        m.properties.insert(String::new(), "v".into());
        assert!(check_message(&m, 100).is_err());
        let mut m = msg(b"x");
        m.properties.insert("k".into(), "\u{7}".into());
        assert!(check_message(&m, 100)
            .unwrap_err()
            .to_string()
            .contains("control"));
        let mut m = msg(b"x");
        m.born_host = "h".repeat(256);
        assert!(check_message(&m, 1000)
            .unwrap_err()
            .to_string()
            .contains("born_host"));
        // Unicode is fine where it is not a control character.
        let mut m = msg("ünïcödé ✓".as_bytes());
        m.tags = "标签".into();
        m.keys = vec!["ключ".into()];
        m.properties.insert("名前".into(), "値 ✓".into());
        assert!(check_message(&m, 1000).is_ok());
    }

    #[test]
    fn properties_are_sized_as_rocketmq_serializes_them() {
        let mut m = msg(b"body");
        m.tags = "TagA".into();
        m.keys = vec!["k1".into(), "k22".into()];
        m.properties.insert("a".into(), "bb".into());
        // a\u1bb\u2 = 5, TAGS\u1TagA\u2 = 10, KEYS\u1k1 k22\u2 = 12
        assert_eq!(properties_size(&m), 5 + 10 + 12);
        assert_eq!(message_size(&m), 4 + 27);
    }
}
