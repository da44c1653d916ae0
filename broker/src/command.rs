//! What the broker writes into its Raft log: commands, encoded once by the leader and applied
//! by every replica's state machine.
//!
//! Every command body starts with a tag byte. Messages are stored so a consumer can read one
//! message by its log position alone:
//! ```text
//! SEND     tag=1 u8 | queue_id u32 | topic_len u16 | topic | count u32
//!          | (key_len u16 | key) * count | record * count
//!          key: the message's `UNIQ_KEY` property (empty when absent), what the state
//!          machine de-duplicates a producer's retries by
//! record   len u32 (bytes after this field) | crc u32 (of the message bytes) | tags_hash u64
//!          | message: a protobuf `StoredMessage` with the producer's fields and store time
//! TOPIC    tag=2 u8 | protobuf `TopicConfig`
//! DELTOPIC tag=3 u8 | name_len u16 | name
//! OFFSETS  tag=4 u8 | group_len u16 | group | count u32 | (topic_len u16 | topic | queue_id u32
//!          | offset u64) * count
//! NODE     tag=5 u8 | node_id u64 | addr_len u16 | client address
//! BATCH    tag=6 u8 | count u32 | (len u32 | SEND command) * count
//! ```
//! BATCH is how the leader coalesces sends that arrive together (to any queues) into one log
//! entry: one append, one replication round and one apply for all of them. Its parts are
//! applied in order, exactly as if each were an entry of its own.
//! NODE is what a new leader writes first: its client address, so every replica can point a
//! producer that reached it at the leader (`NOT_LEADER` with the leader's address).
//! The consume queue stores each record's position (of its `len` field), size and tag hash:
//! RocketMQ's 20-byte unit. Positions are the same on every replica as long as their segment
//! layouts agree (same segment size; no snapshot install since), which is what a message id
//! relies on.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use prost::Message as _;
use proto::v1::{StoredMessage, TopicConfig};

/// A command as Raft carries it: the encoded bytes, so the leader encodes once and every
/// replica stores the same bytes (and the same positions).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LogCommand(pub Bytes);

/// RocketMQ's client-side unique message id property: a producer sets it once per message and
/// keeps it across retries, so the broker can drop a retried copy of a stored message.
pub const UNIQ_KEY: &str = "UNIQ_KEY";

/// Bytes in a message record before the protobuf message.
pub const RECORD_HEADER_LEN: usize = 16;

const TAG_SEND: u8 = 1;
const TAG_TOPIC: u8 = 2;
const TAG_DELETE_TOPIC: u8 = 3;
const TAG_OFFSETS: u8 = 4;
const TAG_NODE: u8 = 5;
const TAG_BATCH: u8 = 6;

/// A decoded command.
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    /// Messages to one queue; `records` is the raw record area (see the module docs).
    Send {
        topic: String,
        queue_id: u32,
        count: u32,
        /// Each message's `UNIQ_KEY` ("" when it has none), in record order.
        uniq_keys: Vec<String>,
        records: Bytes,
        records_offset: usize,
    },
    UpsertTopic(TopicConfig),
    DeleteTopic(String),
    CommitOffsets {
        group: String,
        offsets: Vec<(String, u32, u64)>,
    },
    /// A replica's client address (`host:port` of its listenPort).
    NodeInfo {
        node_id: u64,
        client_addr: String,
    },
    /// Sends coalesced into one entry: each part's offset in the command body, and the part.
    Batch(Vec<(usize, LogCommand)>),
}

/// Why a command body could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("undecodable log command: {0}")]
pub struct DecodeError(pub &'static str);

/// RocketMQ's tag hash: the consume queue keeps it so tag filtering needs no log read.
pub fn tags_hash(tags: &str) -> u64 {
    // FNV-1a: stable across versions and platforms (std's hasher is not).
    let mut h: u64 = 0xcbf29ce484222325;
    for b in tags.as_bytes() {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x100000001b3);
    }
    h
}

fn put_str16(out: &mut BytesMut, s: &str) {
    out.put_u16_le(s.len() as u16);
    out.put_slice(s.as_bytes());
}

fn get_str16(buf: &mut Bytes) -> Result<String, DecodeError> {
    if buf.remaining() < 2 {
        return Err(DecodeError("truncated string length"));
    }
    let n = buf.get_u16_le() as usize;
    if buf.remaining() < n {
        return Err(DecodeError("truncated string"));
    }
    String::from_utf8(buf.split_to(n).to_vec()).map_err(|_| DecodeError("string is not UTF-8"))
}

impl LogCommand {
    /// Encodes messages for one queue. `messages` carry the producer's fields and the store
    /// time; topic names must be at most 65535 bytes (the broker validates far shorter).
    pub fn send(topic: &str, queue_id: u32, messages: &[StoredMessage]) -> LogCommand {
        let size: usize = messages
            .iter()
            .map(|m| m.encoded_len() + RECORD_HEADER_LEN)
            .sum::<usize>();
        let mut out = BytesMut::with_capacity(11 + topic.len() + size);
        out.put_u8(TAG_SEND);
        out.put_u32_le(queue_id);
        put_str16(&mut out, topic);
        out.put_u32_le(messages.len() as u32);
        for m in messages {
            put_str16(
                &mut out,
                m.properties.get(UNIQ_KEY).map_or("", |k| k.as_str()),
            );
        }
        for m in messages {
            let len = m.encoded_len();
            out.put_u32_le((len + RECORD_HEADER_LEN - 4) as u32);
            let crc_at = out.len();
            out.put_u32_le(0);
            out.put_u64_le(tags_hash(&m.tags));
            let msg_at = out.len();
            // Encoding into a BytesMut with enough room cannot fail.
            let _ = m.encode(&mut out);
            let crc = crc32fast::hash(&out[msg_at..]);
            out[crc_at..crc_at + 4].copy_from_slice(&crc.to_le_bytes());
        }
        LogCommand(out.freeze())
    }

    pub fn upsert_topic(config: &TopicConfig) -> LogCommand {
        let mut out = BytesMut::with_capacity(1 + config.encoded_len());
        out.put_u8(TAG_TOPIC);
        let _ = config.encode(&mut out);
        LogCommand(out.freeze())
    }

    pub fn delete_topic(name: &str) -> LogCommand {
        let mut out = BytesMut::with_capacity(3 + name.len());
        out.put_u8(TAG_DELETE_TOPIC);
        put_str16(&mut out, name);
        LogCommand(out.freeze())
    }

    pub fn commit_offsets(group: &str, offsets: &[(String, u32, u64)]) -> LogCommand {
        let mut out = BytesMut::new();
        out.put_u8(TAG_OFFSETS);
        put_str16(&mut out, group);
        out.put_u32_le(offsets.len() as u32);
        for (topic, queue_id, offset) in offsets {
            put_str16(&mut out, topic);
            out.put_u32_le(*queue_id);
            out.put_u64_le(*offset);
        }
        LogCommand(out.freeze())
    }

    pub fn node_info(node_id: u64, client_addr: &str) -> LogCommand {
        let mut out = BytesMut::with_capacity(11 + client_addr.len());
        out.put_u8(TAG_NODE);
        out.put_u64_le(node_id);
        put_str16(&mut out, client_addr);
        LogCommand(out.freeze())
    }

    /// Coalesces send commands into one BATCH command; their order is kept.
    pub fn batch<'a>(parts: impl ExactSizeIterator<Item = &'a LogCommand>) -> LogCommand {
        let mut out = BytesMut::new();
        out.put_u8(TAG_BATCH);
        out.put_u32_le(parts.len() as u32);
        for part in parts {
            out.put_u32_le(part.0.len() as u32);
            out.put_slice(&part.0);
        }
        LogCommand(out.freeze())
    }

    /// Whether this is a SEND (the only command a BATCH may hold).
    pub fn is_send(&self) -> bool {
        self.0.first() == Some(&TAG_SEND)
    }

    /// Decodes the command. Message records are not decoded here: see [`records`].
    pub fn decode(&self) -> Result<Command, DecodeError> {
        let mut buf = self.0.clone();
        if !buf.has_remaining() {
            return Err(DecodeError("empty command"));
        }
        match buf.get_u8() {
            TAG_SEND => {
                if buf.remaining() < 4 {
                    return Err(DecodeError("truncated send header"));
                }
                let queue_id = buf.get_u32_le();
                let topic = get_str16(&mut buf)?;
                if buf.remaining() < 4 {
                    return Err(DecodeError("truncated send header"));
                }
                let count = buf.get_u32_le();
                let mut uniq_keys = Vec::with_capacity((count as usize).min(4096));
                for _ in 0..count {
                    uniq_keys.push(get_str16(&mut buf)?);
                }
                let records_offset = self.0.len() - buf.remaining();
                Ok(Command::Send {
                    topic,
                    queue_id,
                    count,
                    uniq_keys,
                    records: buf,
                    records_offset,
                })
            }
            TAG_TOPIC => TopicConfig::decode(buf)
                .map(Command::UpsertTopic)
                .map_err(|_| DecodeError("bad topic config")),
            TAG_DELETE_TOPIC => Ok(Command::DeleteTopic(get_str16(&mut buf)?)),
            TAG_OFFSETS => {
                let group = get_str16(&mut buf)?;
                if buf.remaining() < 4 {
                    return Err(DecodeError("truncated offsets"));
                }
                let count = buf.get_u32_le() as usize;
                let mut offsets = Vec::with_capacity(count.min(4096));
                for _ in 0..count {
                    let topic = get_str16(&mut buf)?;
                    if buf.remaining() < 12 {
                        return Err(DecodeError("truncated offset"));
                    }
                    offsets.push((topic, buf.get_u32_le(), buf.get_u64_le()));
                }
                Ok(Command::CommitOffsets { group, offsets })
            }
            TAG_NODE => {
                if buf.remaining() < 8 {
                    return Err(DecodeError("truncated node info"));
                }
                let node_id = buf.get_u64_le();
                Ok(Command::NodeInfo {
                    node_id,
                    client_addr: get_str16(&mut buf)?,
                })
            }
            TAG_BATCH => {
                if buf.remaining() < 4 {
                    return Err(DecodeError("truncated batch header"));
                }
                let count = buf.get_u32_le() as usize;
                let mut parts = Vec::with_capacity(count.min(4096));
                for _ in 0..count {
                    if buf.remaining() < 4 {
                        return Err(DecodeError("truncated batch part length"));
                    }
                    let len = buf.get_u32_le() as usize;
                    if buf.remaining() < len {
                        return Err(DecodeError("batch part overruns the command"));
                    }
                    let at = self.0.len() - buf.remaining();
                    let part = LogCommand(buf.split_to(len));
                    if !part.is_send() {
                        return Err(DecodeError("a batch part is not a send"));
                    }
                    parts.push((at, part));
                }
                if buf.has_remaining() {
                    return Err(DecodeError("bytes after the last batch part"));
                }
                Ok(Command::Batch(parts))
            }
            _ => Err(DecodeError("unknown command tag")),
        }
    }
}

/// Entry bodies hold the command bytes as they are: the leader's encoding is what every replica
/// stores, and decoding keeps pointing into the segment's page cache.
impl raft_log::raft::LogPayload for LogCommand {
    fn encode_into(&self, buf: &mut Vec<u8>) {
        buf.extend_from_slice(&self.0);
    }

    fn decode(body: Bytes) -> Result<Self, raft_log::raft::typ::DecodeError> {
        Ok(LogCommand(body))
    }

    /// The command is its own encoding: appended from its buffer without a copy.
    fn encoded(&self) -> Option<&[u8]> {
        Some(&self.0)
    }

    /// The buffer's address: the proposer keeps the buffer alive while it waits, so the
    /// address names this command alone (see `service::proposer`).
    fn append_token(&self) -> Option<usize> {
        (!self.0.is_empty()).then(|| self.0.as_ptr() as usize)
    }
}

/// One message record inside a send command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordRef {
    /// Offset of the record (its `len` field) from the start of the command body.
    pub offset: usize,
    /// Whole record size, header included.
    pub size: u32,
    pub tags_hash: u64,
}

/// Walks the records of a send command: `records` and `records_offset` as decoded.
pub fn records(
    records: &Bytes,
    records_offset: usize,
    count: u32,
) -> Result<Vec<RecordRef>, DecodeError> {
    let mut out = Vec::with_capacity(count as usize);
    let mut at = 0usize;
    for _ in 0..count {
        let rest = records.get(at..).unwrap_or(&[]);
        if rest.len() < RECORD_HEADER_LEN {
            return Err(DecodeError("truncated message record"));
        }
        let len = u32::from_le_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
        let size = len + 4;
        if size < RECORD_HEADER_LEN || rest.len() < size {
            return Err(DecodeError("message record overruns the command"));
        }
        let mut hash = [0u8; 8];
        hash.copy_from_slice(&rest[8..16]);
        out.push(RecordRef {
            offset: records_offset + at,
            size: size as u32,
            tags_hash: u64::from_le_bytes(hash),
        });
        at += size;
    }
    Ok(out)
}

/// Decodes one record's bytes (as read back by position), checking its CRC.
pub fn decode_record(record: Bytes) -> Result<StoredMessage, DecodeError> {
    if record.len() < RECORD_HEADER_LEN {
        return Err(DecodeError("truncated message record"));
    }
    let crc = u32::from_le_bytes([record[4], record[5], record[6], record[7]]);
    let msg = record.slice(RECORD_HEADER_LEN..);
    if crc32fast::hash(&msg) != crc {
        return Err(DecodeError("message record checksum mismatch"));
    }
    StoredMessage::decode(msg).map_err(|_| DecodeError("bad message record"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(tags: &str, body: &[u8]) -> StoredMessage {
        StoredMessage {
            topic: "T".into(),
            tags: tags.into(),
            body: Bytes::copy_from_slice(body),
            store_timestamp_ms: 42,
            ..Default::default()
        }
    }

    #[test]
    fn send_round_trip_and_records_by_offset() {
        let mut msgs = [msg("a", b"one"), msg("", b"two-two"), msg("b", &[7u8; 300])];
        msgs[0].properties.insert(UNIQ_KEY.into(), "k-a".into());
        msgs[2].properties.insert(UNIQ_KEY.into(), "k-b".into());
        let cmd = LogCommand::send("T", 3, &msgs);
        let Command::Send {
            topic,
            queue_id,
            count,
            records: area,
            records_offset,
            uniq_keys,
        } = cmd.decode().unwrap()
        else {
            panic!("not a send")
        };
        assert_eq!((topic.as_str(), queue_id, count), ("T", 3, 3));
        assert_eq!(uniq_keys, ["k-a", "", "k-b"]);
        let refs = records(&area, records_offset, count).unwrap();
        for (r, m) in refs.iter().zip(&msgs) {
            assert_eq!(r.tags_hash, tags_hash(&m.tags));
            let bytes = cmd.0.slice(r.offset..r.offset + r.size as usize);
            assert_eq!(&decode_record(bytes).unwrap(), m);
        }
        let last = refs[2];
        assert_eq!(last.offset + last.size as usize, cmd.0.len());

        let mut bad = cmd.0.to_vec();
        bad[refs[1].offset + RECORD_HEADER_LEN + 2] ^= 1;
        let bad = Bytes::from(bad);
        let r = refs[1];
        assert!(decode_record(bad.slice(r.offset..r.offset + r.size as usize)).is_err());
    }

    #[test]
    fn batch_parts_keep_their_order_and_offsets() {
        let a = LogCommand::send("T", 0, &[msg("a", b"one")]);
        let b = LogCommand::send("U", 2, &[msg("b", b"two"), msg("c", b"three")]);
        let cmd = LogCommand::batch([&a, &b].into_iter());
        let Command::Batch(parts) = cmd.decode().unwrap() else {
            panic!("not a batch")
        };
        assert_eq!(parts.len(), 2);
        assert_eq!((&parts[0].1, &parts[1].1), (&a, &b));
        for (at, part) in &parts {
            assert_eq!(&cmd.0[*at..*at + part.0.len()], &part.0[..]);
        }
        // Only sends may be batched, and the parts must fill the command exactly.
        let topic = LogCommand::delete_topic("x");
        assert!(LogCommand::batch([&a, &topic].into_iter())
            .decode()
            .is_err());
        let mut long = cmd.0.to_vec();
        long.push(0);
        assert!(LogCommand(Bytes::from(long)).decode().is_err());
        let short = cmd.0.slice(..cmd.0.len() - 1);
        assert!(LogCommand(short).decode().is_err());
    }

    #[test]
    fn other_commands_round_trip() {
        let t = TopicConfig {
            topic_name: "T".into(),
            read_queue_nums: 4,
            write_queue_nums: 4,
            perm: 6,
            ..Default::default()
        };
        assert_eq!(
            LogCommand::upsert_topic(&t).decode(),
            Ok(Command::UpsertTopic(t))
        );
        assert_eq!(
            LogCommand::delete_topic("x").decode(),
            Ok(Command::DeleteTopic("x".into()))
        );
        assert_eq!(
            LogCommand::node_info(2, "127.0.0.1:30931").decode(),
            Ok(Command::NodeInfo {
                node_id: 2,
                client_addr: "127.0.0.1:30931".into()
            })
        );
        let offs = vec![("T".to_string(), 1, 99), ("U".to_string(), 0, 5)];
        assert_eq!(
            LogCommand::commit_offsets("g", &offs).decode(),
            Ok(Command::CommitOffsets {
                group: "g".into(),
                offsets: offs
            })
        );
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        for len in 0..40 {
            let junk: Vec<u8> = (0..len).map(|i| (i * 37 + 1) as u8).collect();
            for tag in 1..=7u8 {
                let mut b = vec![tag];
                b.extend_from_slice(&junk);
                let cmd = LogCommand(Bytes::from(b));
                if let Ok(Command::Send {
                    records: area,
                    records_offset,
                    count,
                    ..
                }) = cmd.decode()
                {
                    let _ = records(&area, records_offset, count);
                }
            }
        }
    }
}
