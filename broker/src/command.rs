//! What the broker writes into its Raft log: commands, encoded once by the leader and applied
//! by every replica's state machine.
//!
//! Every command body starts with a tag byte. Messages are stored so a consumer can read one
//! message by its log position alone:
//! ```text
//! SEND_AT  tag=7 u8 | queue_id u32 | store_time_ms u64 | topic_len u16 | topic | count u32
//!          | (key_len u16 | key) * count | record * count
//!          store_time_ms: when the leader took the send (the clock of the retry memory, which
//!          forgets keys older than its window: every replica reads the time from the log)
//!          key: the message's `UNIQ_KEY` property (empty when absent), what the state
//!          machine de-duplicates a producer's retries by
//! SEND     tag=1 u8 | queue_id u32 | topic_len u16 | topic | count u32
//!          | (key_len u16 | key) * count | record * count
//!          the layout before SEND_AT, still read (its sends do not move the retry clock)
//! record   len u32 (bytes after this field) | crc u32 (of the message bytes) | tags_hash u64
//!          | message: a protobuf `StoredMessage` with the producer's fields and store time
//! TOPIC    tag=2 u8 | protobuf `TopicConfig`
//! DELTOPIC tag=3 u8 | name_len u16 | name
//! OFFSETS_AT tag=9 u8 | group_len u16 | group | commit_time_ms u64 | count u32
//!          | (topic_len u16 | topic | queue_id u32 | offset u64) * count
//!          commit_time_ms: when the leader took the commit (consumerProgress's LAST COMMIT)
//! OFFSETS  tag=4 u8: OFFSETS_AT without commit_time_ms, the layout before it, still read
//! NODE     tag=5 u8 | node_id u64 | addr_len u16 | client address
//! BATCH    tag=6 u8 | count u32 | (len u32 | SEND or SEND_AT command) * count
//! DEDUP    tag=8 u8 | window_ms u64 | max_keys u64
//! ```
//! BATCH is how the leader coalesces sends that arrive together (to any queues) into one log
//! entry: one append, one replication round and one apply for all of them. Its parts are
//! applied in order, exactly as if each were an entry of its own.
//! NODE is what a new leader writes first: its client address, so every replica can point a
//! producer that reached it at the leader (`NOT_LEADER` with the leader's address).
//! DEDUP carries the leader's retry-memory settings (`duplicateWindowMs`,
//! `duplicateMaxKeys`): they decide which retries are dropped, so every replica must apply
//! the same ones, and they travel through the log instead of each replica's own file.
//! The consume queue stores each record's position (of its `len` field), size and tag hash:
//! RocketMQ's 20-byte unit. Positions are the same on every replica as long as their segment
//! layouts agree (same segment size; no snapshot install since), which is what a message id
//! relies on.
//!
//! Encoders never truncate: every length goes through `try_from` and fails with an
//! [`EncodeError`] naming the field. The limits a request is held to are far lower and are
//! checked where it enters the broker (`crate::limits`); an encoder error is the last line.
//! Decoders take any bytes: a committed entry that does not decode is applied as a refusal
//! on every replica alike, never as a fatal error.

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
const TAG_SEND_AT: u8 = 7;
const TAG_DEDUP: u8 = 8;
const TAG_OFFSETS_AT: u8 = 9;

/// A decoded command.
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    /// Messages to one queue; `records` is the raw record area (see the module docs).
    Send {
        topic: String,
        queue_id: u32,
        /// When the leader took the send (ms since the epoch); `None` in the legacy layout.
        store_time_ms: Option<u64>,
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
        /// When the leader took the commit (ms since the epoch); `None` in the legacy layout.
        commit_time_ms: Option<u64>,
        offsets: Vec<(String, u32, u64)>,
    },
    /// A replica's client address (`host:port` of its listenPort).
    NodeInfo {
        node_id: u64,
        client_addr: String,
    },
    /// Sends coalesced into one entry: each part's offset in the command body, and the part.
    Batch(Vec<(usize, LogCommand)>),
    /// The retry memory's settings, as the leader that wrote it was configured.
    Dedup(DedupSettings),
}

/// How long and how much the state machine remembers of stored messages' `UNIQ_KEY`s (see
/// `state::recent_keys`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct DedupSettings {
    /// Keys older than this (by the log's store times) are forgotten.
    pub window_ms: u64,
    /// At most this many keys are remembered; the oldest go first.
    pub max_keys: u64,
}

impl Default for DedupSettings {
    /// `duplicateWindowMs` and `duplicateMaxKeys`'s defaults: what a group applies until a
    /// leader writes its own.
    fn default() -> Self {
        DedupSettings {
            window_ms: 120_000,
            max_keys: 2_000_000,
        }
    }
}

/// Why a command body could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("undecodable log command: {0}")]
pub struct DecodeError(pub &'static str);

/// Why a command could not be encoded: a field longer than its length field can say.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot encode {field} of {len} bytes into a log command (at most {max})")]
pub struct EncodeError {
    pub field: &'static str,
    pub len: usize,
    pub max: u64,
}

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

fn put_str16(out: &mut BytesMut, field: &'static str, s: &str) -> Result<(), EncodeError> {
    let len = u16::try_from(s.len()).map_err(|_| EncodeError {
        field,
        len: s.len(),
        max: u64::from(u16::MAX),
    })?;
    out.put_u16_le(len);
    out.put_slice(s.as_bytes());
    Ok(())
}

fn len32(field: &'static str, len: usize) -> Result<u32, EncodeError> {
    u32::try_from(len).map_err(|_| EncodeError {
        field,
        len,
        max: u64::from(u32::MAX),
    })
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
    /// Encodes messages for one queue, taken by the leader at `store_time_ms`. `messages`
    /// carry the producer's fields and the store time.
    pub fn send(
        topic: &str,
        queue_id: u32,
        store_time_ms: u64,
        messages: &[StoredMessage],
    ) -> Result<LogCommand, EncodeError> {
        let size: usize = messages
            .iter()
            .map(|m| m.encoded_len() + RECORD_HEADER_LEN + 2 + uniq_key(m).len())
            .sum::<usize>();
        let mut out = BytesMut::with_capacity(19 + topic.len() + size);
        out.put_u8(TAG_SEND_AT);
        out.put_u32_le(queue_id);
        out.put_u64_le(store_time_ms);
        put_str16(&mut out, "the topic name", topic)?;
        out.put_u32_le(len32("the message count", messages.len())?);
        for m in messages {
            put_str16(&mut out, "a UNIQ_KEY property", uniq_key(m))?;
        }
        for m in messages {
            let len = m.encoded_len();
            out.put_u32_le(len32("a message record", len + RECORD_HEADER_LEN - 4)?);
            let crc_at = out.len();
            out.put_u32_le(0);
            out.put_u64_le(tags_hash(&m.tags));
            let msg_at = out.len();
            // Encoding into a BytesMut, which grows as needed, cannot fail.
            let _ = m.encode(&mut out);
            let crc = crc32fast::hash(&out[msg_at..]);
            out[crc_at..crc_at + 4].copy_from_slice(&crc.to_le_bytes());
        }
        Ok(LogCommand(out.freeze()))
    }

    pub fn upsert_topic(config: &TopicConfig) -> LogCommand {
        let mut out = BytesMut::with_capacity(1 + config.encoded_len());
        out.put_u8(TAG_TOPIC);
        let _ = config.encode(&mut out);
        LogCommand(out.freeze())
    }

    pub fn delete_topic(name: &str) -> Result<LogCommand, EncodeError> {
        let mut out = BytesMut::with_capacity(3 + name.len());
        out.put_u8(TAG_DELETE_TOPIC);
        put_str16(&mut out, "the topic name", name)?;
        Ok(LogCommand(out.freeze()))
    }

    /// Commits consumer offsets of `group`, taken by the leader at `commit_time_ms`.
    pub fn commit_offsets(
        group: &str,
        commit_time_ms: u64,
        offsets: &[(String, u32, u64)],
    ) -> Result<LogCommand, EncodeError> {
        let mut out = BytesMut::new();
        out.put_u8(TAG_OFFSETS_AT);
        put_str16(&mut out, "the consumer group name", group)?;
        out.put_u64_le(commit_time_ms);
        out.put_u32_le(len32("the offset count", offsets.len())?);
        for (topic, queue_id, offset) in offsets {
            put_str16(&mut out, "the topic name", topic)?;
            out.put_u32_le(*queue_id);
            out.put_u64_le(*offset);
        }
        Ok(LogCommand(out.freeze()))
    }

    pub fn node_info(node_id: u64, client_addr: &str) -> Result<LogCommand, EncodeError> {
        let mut out = BytesMut::with_capacity(11 + client_addr.len());
        out.put_u8(TAG_NODE);
        out.put_u64_le(node_id);
        put_str16(&mut out, "the client address", client_addr)?;
        Ok(LogCommand(out.freeze()))
    }

    pub fn dedup(settings: DedupSettings) -> LogCommand {
        let mut out = BytesMut::with_capacity(17);
        out.put_u8(TAG_DEDUP);
        out.put_u64_le(settings.window_ms);
        out.put_u64_le(settings.max_keys);
        LogCommand(out.freeze())
    }

    /// Coalesces send commands into one BATCH command; their order is kept.
    pub fn batch<'a>(
        parts: impl ExactSizeIterator<Item = &'a LogCommand>,
    ) -> Result<LogCommand, EncodeError> {
        let mut out = BytesMut::new();
        out.put_u8(TAG_BATCH);
        out.put_u32_le(len32("the batch's part count", parts.len())?);
        for part in parts {
            out.put_u32_le(len32("a batch part", part.0.len())?);
            out.put_slice(&part.0);
        }
        Ok(LogCommand(out.freeze()))
    }

    /// Whether this is a send (the only command a BATCH may hold).
    pub fn is_send(&self) -> bool {
        matches!(self.0.first(), Some(&TAG_SEND) | Some(&TAG_SEND_AT))
    }

    /// Whether this command creates, changes or deletes a topic.
    pub fn is_topic_change(&self) -> bool {
        matches!(self.0.first(), Some(&TAG_TOPIC) | Some(&TAG_DELETE_TOPIC))
    }

    /// Decodes the command. Message records are not decoded here: see [`records`].
    pub fn decode(&self) -> Result<Command, DecodeError> {
        let mut buf = self.0.clone();
        if !buf.has_remaining() {
            return Err(DecodeError("empty command"));
        }
        match buf.get_u8() {
            tag @ (TAG_SEND | TAG_SEND_AT) => {
                if buf.remaining() < 4 {
                    return Err(DecodeError("truncated send header"));
                }
                let queue_id = buf.get_u32_le();
                let store_time_ms = if tag == TAG_SEND_AT {
                    if buf.remaining() < 8 {
                        return Err(DecodeError("truncated send header"));
                    }
                    Some(buf.get_u64_le())
                } else {
                    None
                };
                let topic = get_str16(&mut buf)?;
                if buf.remaining() < 4 {
                    return Err(DecodeError("truncated send header"));
                }
                let count = buf.get_u32_le();
                // Every key takes at least its 2-byte length: a count the bytes cannot hold
                // is refused before anything is allocated for it.
                if count as usize > buf.remaining() / 2 {
                    return Err(DecodeError("more messages than the send can hold"));
                }
                let mut uniq_keys = Vec::with_capacity(count as usize);
                for _ in 0..count {
                    uniq_keys.push(get_str16(&mut buf)?);
                }
                let records_offset = self.0.len() - buf.remaining();
                Ok(Command::Send {
                    topic,
                    queue_id,
                    store_time_ms,
                    count,
                    uniq_keys,
                    records: buf,
                    records_offset,
                })
            }
            TAG_TOPIC => TopicConfig::decode(buf)
                .map(Command::UpsertTopic)
                .map_err(|_| DecodeError("bad topic config")),
            TAG_DELETE_TOPIC => {
                let name = get_str16(&mut buf)?;
                if buf.has_remaining() {
                    return Err(DecodeError("bytes after the topic name"));
                }
                Ok(Command::DeleteTopic(name))
            }
            tag @ (TAG_OFFSETS | TAG_OFFSETS_AT) => {
                let group = get_str16(&mut buf)?;
                let commit_time_ms = if tag == TAG_OFFSETS_AT {
                    if buf.remaining() < 8 {
                        return Err(DecodeError("truncated offsets"));
                    }
                    Some(buf.get_u64_le())
                } else {
                    None
                };
                if buf.remaining() < 4 {
                    return Err(DecodeError("truncated offsets"));
                }
                let count = buf.get_u32_le() as usize;
                // 14 bytes at least per offset.
                if count > buf.remaining() / 14 {
                    return Err(DecodeError("more offsets than the command can hold"));
                }
                let mut offsets = Vec::with_capacity(count);
                for _ in 0..count {
                    let topic = get_str16(&mut buf)?;
                    if buf.remaining() < 12 {
                        return Err(DecodeError("truncated offset"));
                    }
                    offsets.push((topic, buf.get_u32_le(), buf.get_u64_le()));
                }
                Ok(Command::CommitOffsets {
                    group,
                    commit_time_ms,
                    offsets,
                })
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
                if count > buf.remaining() / 4 {
                    return Err(DecodeError("more batch parts than the command can hold"));
                }
                let mut parts = Vec::with_capacity(count);
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
            TAG_DEDUP => {
                if buf.remaining() != 16 {
                    return Err(DecodeError("retry-memory settings are not 16 bytes"));
                }
                Ok(Command::Dedup(DedupSettings {
                    window_ms: buf.get_u64_le(),
                    max_keys: buf.get_u64_le(),
                }))
            }
            _ => Err(DecodeError("unknown command tag")),
        }
    }
}

/// A message's `UNIQ_KEY` property, "" when it has none.
pub fn uniq_key(m: &StoredMessage) -> &str {
    m.properties.get(UNIQ_KEY).map_or("", |k| k.as_str())
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

/// A command crosses the wire as its bytes. A data replica refuses an entry sent without them
/// (one meant for a witness): it must never store a message-less copy of a message.
impl raftmq_raft::WirePayload for LogCommand {
    fn to_wire(&self) -> Bytes {
        self.0.clone()
    }

    fn from_wire(bytes: Bytes, omitted: bool) -> Result<Self, raftmq_raft::convert::WireError> {
        if omitted {
            return Err(raftmq_raft::convert::WireError::new(
                "comes without its payload (payload_omitted); only a witness takes such entries",
            ));
        }
        Ok(LogCommand(bytes))
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
    // Every record takes at least its header: a count the bytes cannot hold allocates nothing.
    let mut out = Vec::with_capacity((count as usize).min(records.len() / RECORD_HEADER_LEN));
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
        let cmd = LogCommand::send("T", 3, 42, &msgs).unwrap();
        let Command::Send {
            topic,
            queue_id,
            store_time_ms,
            count,
            records: area,
            records_offset,
            uniq_keys,
        } = cmd.decode().unwrap()
        else {
            panic!("not a send")
        };
        assert_eq!((topic.as_str(), queue_id, count), ("T", 3, 3));
        assert_eq!(store_time_ms, Some(42));
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
        let a = LogCommand::send("T", 0, 1, &[msg("a", b"one")]).unwrap();
        let b = LogCommand::send("U", 2, 1, &[msg("b", b"two"), msg("c", b"three")]).unwrap();
        let cmd = LogCommand::batch([&a, &b].into_iter()).unwrap();
        let Command::Batch(parts) = cmd.decode().unwrap() else {
            panic!("not a batch")
        };
        assert_eq!(parts.len(), 2);
        assert_eq!((&parts[0].1, &parts[1].1), (&a, &b));
        for (at, part) in &parts {
            assert_eq!(&cmd.0[*at..*at + part.0.len()], &part.0[..]);
        }
        // Only sends may be batched, and the parts must fill the command exactly.
        let topic = LogCommand::delete_topic("x").unwrap();
        assert!(LogCommand::batch([&a, &topic].into_iter())
            .unwrap()
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
            LogCommand::delete_topic("x").unwrap().decode(),
            Ok(Command::DeleteTopic("x".into()))
        );
        assert_eq!(
            LogCommand::node_info(2, "127.0.0.1:30931")
                .unwrap()
                .decode(),
            Ok(Command::NodeInfo {
                node_id: 2,
                client_addr: "127.0.0.1:30931".into()
            })
        );
        let offs = vec![("T".to_string(), 1, 99), ("U".to_string(), 0, 5)];
        assert_eq!(
            LogCommand::commit_offsets("g", 77, &offs).unwrap().decode(),
            Ok(Command::CommitOffsets {
                group: "g".into(),
                commit_time_ms: Some(77),
                offsets: offs.clone()
            })
        );
        // The layout before OFFSETS_AT, without the time.
        let modern = LogCommand::commit_offsets("g", 77, &offs).unwrap().0;
        let mut legacy = vec![TAG_OFFSETS];
        legacy.extend_from_slice(&modern[1..4]); // group
        legacy.extend_from_slice(&modern[12..]); // count and offsets
        assert_eq!(
            LogCommand(Bytes::from(legacy)).decode(),
            Ok(Command::CommitOffsets {
                group: "g".into(),
                commit_time_ms: None,
                offsets: offs
            })
        );
    }

    #[test]
    fn dedup_settings_round_trip() {
        let s = DedupSettings {
            window_ms: 5_000,
            max_keys: 77,
        };
        assert_eq!(LogCommand::dedup(s).decode(), Ok(Command::Dedup(s)));
        let mut long = LogCommand::dedup(s).0.to_vec();
        long.push(1);
        assert!(LogCommand(Bytes::from(long)).decode().is_err());
    }

    #[test]
    fn the_legacy_send_layout_still_decodes() {
        // SEND (tag 1) as written before SEND_AT: no store time.
        let modern = LogCommand::send("T", 5, 99, &[msg("a", b"x")]).unwrap();
        let mut legacy = vec![TAG_SEND];
        legacy.extend_from_slice(&modern.0[1..5]); // queue id
        legacy.extend_from_slice(&modern.0[13..]); // topic, count, keys, records
        let legacy = LogCommand(Bytes::from(legacy));
        assert!(legacy.is_send());
        let Ok(Command::Send {
            topic,
            queue_id,
            store_time_ms,
            count,
            records: area,
            records_offset,
            ..
        }) = legacy.decode()
        else {
            panic!("not a send")
        };
        assert_eq!((topic.as_str(), queue_id, store_time_ms), ("T", 5, None));
        let refs = records(&area, records_offset, count).unwrap();
        let r = refs[0];
        let bytes = legacy.0.slice(r.offset..r.offset + r.size as usize);
        assert_eq!(decode_record(bytes).unwrap().body.as_ref(), b"x");
    }

    #[test]
    fn encoders_refuse_what_a_length_field_cannot_hold() {
        let mut m = msg("a", b"x");
        m.properties.insert(UNIQ_KEY.into(), "k".repeat(70_000));
        let err = LogCommand::send("T", 0, 1, &[m]).unwrap_err();
        assert_eq!(err.field, "a UNIQ_KEY property");
        assert!(err.to_string().contains("70000"), "{err}");
        assert!(LogCommand::send(&"t".repeat(65_536), 0, 1, &[msg("a", b"x")]).is_err());
        assert!(LogCommand::delete_topic(&"t".repeat(65_536)).is_err());
        assert!(LogCommand::commit_offsets(&"g".repeat(65_536), 0, &[]).is_err());
        assert!(LogCommand::node_info(1, &"h".repeat(65_536)).is_err());
        // The longest a u16 can say still encodes.
        let mut m = msg("a", b"x");
        m.properties.insert(UNIQ_KEY.into(), "k".repeat(65_535));
        assert!(LogCommand::send("T", 0, 1, &[m]).unwrap().decode().is_ok());
    }

    #[test]
    fn counts_the_bytes_cannot_hold_allocate_nothing() {
        // A send claiming 4 billion messages, an offsets command claiming 4 billion offsets,
        // a batch claiming 4 billion parts: errors, at once.
        let mut send = vec![TAG_SEND_AT];
        send.extend_from_slice(&0u32.to_le_bytes());
        send.extend_from_slice(&0u64.to_le_bytes());
        send.extend_from_slice(&1u16.to_le_bytes());
        send.push(b'T');
        send.extend_from_slice(&u32::MAX.to_le_bytes());
        assert!(LogCommand(Bytes::from(send)).decode().is_err());
        let mut offs = vec![TAG_OFFSETS, 1, 0, b'g'];
        offs.extend_from_slice(&u32::MAX.to_le_bytes());
        assert!(LogCommand(Bytes::from(offs)).decode().is_err());
        let mut batch = vec![TAG_BATCH];
        batch.extend_from_slice(&u32::MAX.to_le_bytes());
        assert!(LogCommand(Bytes::from(batch)).decode().is_err());
        assert!(records(&Bytes::new(), 0, u32::MAX).is_err());
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        for len in 0..40 {
            let junk: Vec<u8> = (0..len).map(|i| (i * 37 + 1) as u8).collect();
            for tag in 1..=10u8 {
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
