//! `command_decode`: any bytes as a broker log command, decoded as the state machine does:
//! [`LogCommand::decode`], then for a send [`records`] and [`decode_record`] on each record,
//! and for a batch the same for each of its parts.
//!
//! Only those three public calls are used, so the target follows the command layout as it
//! changes. Each record is also decoded with its checksum made right, which takes libFuzzer
//! past the CRC32 it cannot forge into the protobuf decoder. Checks, beyond "no panic": the
//! decoded counts, offsets and sizes stay inside the command and agree with each other.

use broker::command::{decode_record, records, Command, LogCommand};
use bytes::{BufMut, Bytes};
use prost::Message as _;
use proto::v1::{StoredMessage, TopicConfig};

/// Where a record's CRC and message start (the record layout in `broker::command`).
const RECORD_CRC_AT: usize = 4;
const RECORD_MESSAGE_AT: usize = 16;

/// The body of the `command_decode` target.
pub fn command_decode(data: &[u8]) {
    check_command(&LogCommand(Bytes::copy_from_slice(data)));
}

fn check_command(cmd: &LogCommand) {
    let decoded = match cmd.decode() {
        Ok(decoded) => decoded,
        Err(e) => return crate::shown(e),
    };
    match decoded {
        Command::Send {
            count,
            uniq_keys,
            records: area,
            records_offset,
            ..
        } => {
            assert_eq!(uniq_keys.len(), count as usize, "one UNIQ_KEY per message");
            assert_eq!(
                cmd.0.get(records_offset..),
                Some(&area[..]),
                "the record area is not the command's tail"
            );
            let refs = match records(&area, records_offset, count) {
                Ok(refs) => refs,
                Err(e) => return crate::shown(e),
            };
            assert_eq!(refs.len(), count as usize);
            let mut next = records_offset;
            for r in refs {
                let end = r.offset + r.size as usize;
                assert_eq!(r.offset, next, "records are not back to back");
                assert!(
                    end <= cmd.0.len() && r.size as usize >= RECORD_MESSAGE_AT,
                    "record {r:?} lies outside the {}-byte command",
                    cmd.0.len()
                );
                check_record(cmd.0.slice(r.offset..end));
                next = end;
            }
        }
        Command::Batch(parts) => {
            for (at, part) in parts {
                assert_eq!(
                    cmd.0.get(at..at + part.0.len()),
                    Some(&part.0[..]),
                    "a batch part is not where its offset says"
                );
                assert!(part.is_send(), "a batch holds a part that is not a send");
                check_command(&part);
            }
        }
        Command::UpsertTopic(_)
        | Command::DeleteTopic(_)
        | Command::CommitOffsets { .. }
        | Command::NodeInfo { .. }
        | Command::Dedup(_) => {}
    }
}

/// Decodes a record as read back by position, then again with its checksum made right.
fn check_record(record: Bytes) {
    if let Err(e) = decode_record(record.clone()) {
        crate::shown(e);
    }
    let mut fixed = record.to_vec();
    let crc = crc32fast::hash(&fixed[RECORD_MESSAGE_AT..]);
    fixed[RECORD_CRC_AT..RECORD_CRC_AT + 4].copy_from_slice(&crc.to_le_bytes());
    if let Err(e) = decode_record(Bytes::from(fixed)) {
        crate::shown(e);
    }
}

/// Writes command bytes field by field, lengths and counts included, so that tests can make
/// the layout the broker writes (see the drawing in `broker::command`) and every way of
/// getting it wrong: a count or a length that lies, a bad checksum, bytes left over.
#[derive(Debug, Clone, Default)]
pub struct CommandBytes(pub Vec<u8>);

/// Command tags.
pub const TAG_SEND: u8 = 1;
pub const TAG_TOPIC: u8 = 2;
pub const TAG_DELETE_TOPIC: u8 = 3;
pub const TAG_OFFSETS: u8 = 4;
pub const TAG_NODE: u8 = 5;
pub const TAG_BATCH: u8 = 6;

impl CommandBytes {
    pub fn tag(tag: u8) -> Self {
        Self(vec![tag])
    }

    pub fn u16(mut self, v: u16) -> Self {
        self.0.put_u16_le(v);
        self
    }

    pub fn u32(mut self, v: u32) -> Self {
        self.0.put_u32_le(v);
        self
    }

    pub fn u64(mut self, v: u64) -> Self {
        self.0.put_u64_le(v);
        self
    }

    pub fn bytes(mut self, b: &[u8]) -> Self {
        self.0.extend_from_slice(b);
        self
    }

    /// A `u16` length and the bytes (the length is cut to 16 bits, as a lying encoder would).
    pub fn str16(self, s: &[u8]) -> Self {
        self.u16(s.len() as u16).bytes(s)
    }

    /// A message record: `len | crc | tags_hash | message`; `crc_ok` false stores a wrong CRC.
    pub fn record(self, message: &[u8], tags_hash: u64, crc_ok: bool) -> Self {
        let crc = crc32fast::hash(message) ^ u32::from(!crc_ok);
        self.u32((message.len() + RECORD_MESSAGE_AT - 4) as u32)
            .u32(crc)
            .u64(tags_hash)
            .bytes(message)
    }

    /// A `u32` length and a whole command, as a batch holds its parts.
    pub fn part(self, command: &[u8]) -> Self {
        self.u32(command.len() as u32).bytes(command)
    }
}

/// A SEND of `messages` to one queue, laid out as the broker writes it.
pub fn send(topic: &str, queue_id: u32, messages: &[StoredMessage]) -> Vec<u8> {
    let mut out = CommandBytes::tag(TAG_SEND)
        .u32(queue_id)
        .str16(topic.as_bytes())
        .u32(messages.len() as u32);
    for m in messages {
        let key = m.properties.get("UNIQ_KEY").map_or("", String::as_str);
        out = out.str16(key.as_bytes());
    }
    for m in messages {
        out = out.record(&m.encode_to_vec(), 0, true);
    }
    out.0
}

/// One well-formed command of each kind: the seeds the mutants start from.
pub fn seeds() -> Vec<Vec<u8>> {
    let message = |tags: &str, body: &[u8], uniq: Option<&str>| StoredMessage {
        topic: "TopicTest".into(),
        tags: tags.into(),
        keys: vec!["order-1".into()],
        body: Bytes::copy_from_slice(body),
        born_timestamp_ms: 1_700_000_000_000,
        store_timestamp_ms: 1_700_000_000_042,
        born_host: "127.0.0.1:50000".into(),
        properties: uniq
            .map(|k| [("UNIQ_KEY".to_owned(), k.to_owned())].into())
            .unwrap_or_default(),
        ..Default::default()
    };
    let one = send("TopicTest", 3, &[message("a", b"hello", Some("k-1"))]);
    let three = send(
        "TopicTest",
        0,
        &[
            message("a", b"one", Some("k-a")),
            message("", b"two-two", None),
            message("b", &[7u8; 300], Some("k-b")),
        ],
    );
    let topic = TopicConfig {
        topic_name: "TopicTest".into(),
        read_queue_nums: 8,
        write_queue_nums: 8,
        perm: 6,
        order: false,
    };
    // The layouts the broker writes today, from its own encoders (the hand-laid ones below are
    // the legacy SEND and OFFSETS, which it still reads).
    let encoded: Vec<LogCommand> = [
        LogCommand::send(
            "TopicTest",
            1,
            1_700_000_000_042,
            &[message("a", b"hi", Some("k-9"))],
        ),
        LogCommand::commit_offsets("group-1", 1_700_000_000_050, &[("TopicTest".into(), 1, 7)]),
        Ok(LogCommand::dedup(broker::command::DedupSettings {
            window_ms: 120_000,
            max_keys: 2_000_000,
        })),
    ]
    .into_iter()
    .flatten()
    .collect();
    let batch_at = encoded
        .first()
        .and_then(|send| LogCommand::batch([send, send].into_iter()).ok());
    let mut seeds: Vec<Vec<u8>> = encoded.iter().map(|c| c.0.to_vec()).collect();
    seeds.extend(batch_at.map(|c| c.0.to_vec()));
    seeds.extend([
        one.clone(),
        three.clone(),
        send("T", 7, &[]),
        CommandBytes::tag(TAG_TOPIC).bytes(&topic.encode_to_vec()).0,
        CommandBytes::tag(TAG_DELETE_TOPIC).str16(b"TopicTest").0,
        CommandBytes::tag(TAG_OFFSETS)
            .str16(b"group-1")
            .u32(2)
            .str16(b"TopicTest")
            .u32(1)
            .u64(99)
            .str16(b"U")
            .u32(0)
            .u64(5)
            .0,
        CommandBytes::tag(TAG_NODE)
            .u64(2)
            .str16(b"127.0.0.1:30931")
            .0,
        CommandBytes::tag(TAG_BATCH)
            .u32(2)
            .part(&one)
            .part(&three)
            .0,
    ]);
    seeds
}
