//! `command_decode`, bounded: mutants of one well-formed command of each kind, and generated
//! commands laid out as the broker lays them out, with counts and lengths that sometimes lie,
//! checksums that sometimes fail, Unicode names, and numbers at the edges.

mod common;

use bytes::Bytes;
use common::{replay_saved, run_generated, run_mutants};
use fuzz_targets::command::{
    command_decode, seeds, CommandBytes, TAG_BATCH, TAG_DELETE_TOPIC, TAG_NODE, TAG_OFFSETS,
    TAG_SEND, TAG_TOPIC,
};
use proptest::prelude::*;
use prost::Message as _;
use proto::v1::{StoredMessage, TopicConfig};

#[test]
fn seeds_are_whole_commands() {
    // The seeds follow the layout drawn in broker::command; when it changes, they must too,
    // or every mutant stops at the first field that moved.
    for (i, seed) in seeds().iter().enumerate() {
        let cmd = broker::command::LogCommand(Bytes::copy_from_slice(seed));
        let decoded = cmd.decode();
        assert!(decoded.is_ok(), "seed {i} does not decode: {decoded:?}");
        if let Ok(broker::command::Command::Send {
            records,
            records_offset,
            count,
            ..
        }) = decoded
        {
            let refs = broker::command::records(&records, records_offset, count)
                .unwrap_or_else(|e| panic!("seed {i}: {e}"));
            for r in refs {
                let bytes = cmd.0.slice(r.offset..r.offset + r.size as usize);
                if let Err(e) = broker::command::decode_record(bytes) {
                    panic!("seed {i}: record at {}: {e}", r.offset);
                }
            }
        }
    }
}

#[test]
fn mutants_of_whole_commands() {
    run_mutants(command_decode, &seeds(), &[], 6000);
}

#[test]
fn generated_commands() {
    run_generated(4000, command(), |bytes| command_decode(bytes));
}

#[test]
fn saved_inputs() {
    replay_saved("command_decode", command_decode);
}

fn edgy_u32() -> impl Strategy<Value = u32> {
    prop_oneof![
        Just(0u32),
        Just(1),
        Just(u32::MAX),
        Just(i32::MAX as u32),
        any::<u32>()
    ]
}

fn edgy_u64() -> impl Strategy<Value = u64> {
    prop_oneof![
        Just(0u64),
        Just(u64::MAX),
        Just(i64::MAX as u64),
        any::<u64>()
    ]
}

fn edgy_i64() -> impl Strategy<Value = i64> {
    prop_oneof![
        Just(0i64),
        Just(-1),
        Just(i64::MIN),
        Just(i64::MAX),
        any::<i64>()
    ]
}

/// A name: usually short and ASCII, sometimes Unicode, empty, or past a `u16` length.
fn name() -> impl Strategy<Value = String> {
    prop_oneof![
        6 => "[A-Za-z0-9_%|-]{1,16}",
        2 => "\\PC{0,12}",
        1 => Just(String::new()),
        1 => (0usize..3).prop_map(|extra| "t".repeat(65535 + extra)),
    ]
}

fn message() -> impl Strategy<Value = StoredMessage> {
    (
        (
            name(),
            any::<i32>(),
            "\\PC{0,8}",
            prop::collection::vec(name(), 0..3),
        ),
        prop::collection::btree_map(name(), "\\PC{0,8}", 0..3),
        prop::collection::vec(any::<u8>(), 0..300),
        (edgy_i64(), edgy_i64(), edgy_u64(), edgy_u64()),
    )
        .prop_map(
            |(
                (topic, queue_id, tags, keys),
                properties,
                body,
                (born, stored, offset, position),
            )| {
                StoredMessage {
                    topic,
                    queue_id,
                    tags,
                    keys,
                    properties: properties.into_iter().collect(),
                    body: body.into(),
                    born_timestamp_ms: born,
                    store_timestamp_ms: stored,
                    queue_offset: offset,
                    commit_log_offset: position,
                    ..Default::default()
                }
            },
        )
}

/// Half the time the true value, else a lie at an edge.
fn count_or_lie(truth: usize, lie: u32, lies: bool) -> u32 {
    if lies {
        lie
    } else {
        truth as u32
    }
}

/// A SEND: keys and records for its messages; its count, a record length or CRC may lie.
fn send() -> impl Strategy<Value = Vec<u8>> {
    (
        (edgy_u32(), name(), prop::collection::vec(message(), 0..4)),
        (edgy_u32(), 0u8..8, any::<u64>(), any::<u16>()),
    )
        .prop_map(|((queue_id, topic, messages), (lie, how, hash, cut))| {
            let mut out = CommandBytes::tag(TAG_SEND)
                .u32(queue_id)
                .str16(topic.as_bytes())
                .u32(count_or_lie(messages.len(), lie, how == 0));
            for m in &messages {
                let key = m.properties.get("UNIQ_KEY").cloned().unwrap_or_default();
                out = out.str16(key.as_bytes());
            }
            for (i, m) in messages.iter().enumerate() {
                let crc_ok = !(how == 1 && i == 0);
                out = out.record(&m.encode_to_vec(), hash, crc_ok);
            }
            match how {
                // A record whose length field lies.
                2 if out.0.len() >= 20 => {
                    let at = out.0.len() - 20;
                    out.0[at..at + 4].copy_from_slice(&lie.to_le_bytes());
                }
                3 => out.0.truncate(usize::from(cut) % (out.0.len() + 1)),
                4 => out.0.extend_from_slice(&lie.to_le_bytes()),
                _ => {}
            }
            out.0
        })
}

fn other_command() -> impl Strategy<Value = Vec<u8>> {
    let topic = (name(), edgy_u32(), edgy_u32(), edgy_u32(), any::<bool>()).prop_map(
        |(topic_name, read_queue_nums, write_queue_nums, perm, order)| {
            let config = TopicConfig {
                topic_name,
                read_queue_nums,
                write_queue_nums,
                perm,
                order,
            };
            CommandBytes::tag(TAG_TOPIC)
                .bytes(&config.encode_to_vec())
                .0
        },
    );
    let delete = name().prop_map(|n| CommandBytes::tag(TAG_DELETE_TOPIC).str16(n.as_bytes()).0);
    let offsets = (
        name(),
        prop::collection::vec((name(), edgy_u32(), edgy_u64()), 0..4),
        edgy_u32(),
        any::<bool>(),
    )
        .prop_map(|(group, offsets, lie, lies)| {
            let mut out = CommandBytes::tag(TAG_OFFSETS)
                .str16(group.as_bytes())
                .u32(count_or_lie(offsets.len(), lie, lies));
            for (topic, queue_id, offset) in offsets {
                out = out.str16(topic.as_bytes()).u32(queue_id).u64(offset);
            }
            out.0
        });
    let node = (edgy_u64(), name())
        .prop_map(|(id, addr)| CommandBytes::tag(TAG_NODE).u64(id).str16(addr.as_bytes()).0);
    let unknown =
        (any::<u8>(), prop::collection::vec(any::<u8>(), 0..64)).prop_map(|(tag, rest)| {
            let mut out = vec![tag];
            out.extend(rest);
            out
        });
    prop_oneof![topic, delete, offsets, node, unknown]
}

/// A BATCH of parts (sends, mostly), whose count or a part's length may lie.
fn batch() -> impl Strategy<Value = Vec<u8>> {
    (
        prop::collection::vec(prop_oneof![4 => send(), 1 => other_command()], 0..4),
        edgy_u32(),
        0u8..6,
    )
        .prop_map(|(parts, lie, how)| {
            let mut out =
                CommandBytes::tag(TAG_BATCH).u32(count_or_lie(parts.len(), lie, how == 0));
            for (i, part) in parts.iter().enumerate() {
                out = if how == 1 && i == 0 {
                    out.u32(lie).bytes(part)
                } else {
                    out.part(part)
                };
            }
            if how == 2 {
                out.0.push(0);
            }
            out.0
        })
}

fn command() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![4 => send(), 2 => other_command(), 2 => batch()]
}
