//! The generated types survive a prost encode/decode, and the services exist with the
//! names and methods the broker, nameserver and clients are written against.

use std::collections::BTreeMap;

use prost::bytes::Bytes;
use prost::Message as _;
use proto::v1::{
    response_status, Message, OffsetBoundary, OffsetOutOfRange, ResponseCode, ResponseStatus,
    SendMessageRequest, StoredMessage,
};

fn properties() -> BTreeMap<String, String> {
    BTreeMap::from([
        ("ORDER_ID".to_owned(), "42".to_owned()),
        ("region".to_owned(), "eu".to_owned()),
    ])
}

#[test]
fn stored_message_round_trips() {
    let stored = StoredMessage {
        topic: "TopicTest".into(),
        queue_id: 3,
        tags: "TagA".into(),
        keys: vec!["k1".into(), "k2".into()],
        properties: properties(),
        body: Bytes::from_static(b"Hello raftmq"),
        born_timestamp_ms: 1_700_000_000_123,
        born_host: "127.0.0.1:50000".into(),
        store_timestamp_ms: 1_700_000_000_456,
        msg_id: "7F00000100002A9F0000000000001000".into(),
        queue_offset: 17,
        commit_log_offset: 4096,
        broker_name: "broker-a".into(),
        store_size: 230,
        store_host: "127.0.0.1:10911".into(),
    };

    let decoded = StoredMessage::decode(stored.encode_to_vec().as_slice()).unwrap();
    assert_eq!(decoded, stored);
}

#[test]
fn a_message_decodes_as_a_stored_message_without_store_fields() {
    let message = Message {
        topic: "TopicTest".into(),
        queue_id: proto::ANY_QUEUE,
        tags: "TagB".into(),
        keys: vec!["order-1".into()],
        properties: properties(),
        body: Bytes::from_static(b"payload"),
        born_timestamp_ms: 1_700_000_000_000,
        born_host: "10.0.0.1".into(),
    };

    let stored = StoredMessage::decode(message.encode_to_vec().as_slice()).unwrap();
    assert_eq!(
        (stored.topic.as_str(), stored.queue_id, stored.tags.as_str()),
        ("TopicTest", -1, "TagB")
    );
    assert_eq!(
        (stored.keys, stored.properties),
        (message.keys, message.properties)
    );
    assert_eq!(stored.body, message.body);
    assert_eq!(
        (stored.born_timestamp_ms, stored.born_host.as_str()),
        (1_700_000_000_000, "10.0.0.1")
    );
    assert_eq!((stored.msg_id.as_str(), stored.queue_offset), ("", 0));
}

#[test]
fn batch_send_request_round_trips_in_order() {
    let messages: Vec<Message> = (0..3)
        .map(|i| Message {
            topic: "BatchTopic".into(),
            queue_id: 1,
            tags: format!("Tag{i}"),
            keys: vec![format!("key-{i}")],
            properties: BTreeMap::from([("i".to_owned(), i.to_string())]),
            body: Bytes::from(vec![i as u8; 64 + i]),
            born_timestamp_ms: 1_700_000_000_000 + i as i64,
            born_host: "127.0.0.1:40000".into(),
        })
        .collect();
    let request = SendMessageRequest {
        messages,
        producer_group: "pg".into(),
    };

    let decoded = SendMessageRequest::decode(request.encode_to_vec().as_slice()).unwrap();
    assert_eq!(decoded, request);
    let tags: Vec<&str> = decoded.messages.iter().map(|m| m.tags.as_str()).collect();
    assert_eq!(tags, ["Tag0", "Tag1", "Tag2"]);
    assert_eq!(decoded.messages[2].body.len(), 66);
}

#[test]
fn status_detail_round_trips() {
    let status = ResponseStatus::offset_out_of_range(
        OffsetOutOfRange {
            boundary: OffsetBoundary::AboveMax as i32,
            requested_offset: 120,
            min_offset: 10,
            max_offset: 100,
        },
        "offset 120 is past the end (100)",
    );

    let decoded = ResponseStatus::decode(status.encode_to_vec().as_slice()).unwrap();
    assert_eq!(decoded.code(), ResponseCode::OffsetOutOfRange);
    match decoded.detail {
        Some(response_status::Detail::OffsetOutOfRange(range)) => {
            assert_eq!(range.boundary(), OffsetBoundary::AboveMax);
            assert_eq!((range.min_offset, range.max_offset), (10, 100));
        }
        other => panic!("expected an offset range detail, got {other:?}"),
    }
}
