//! What `mqbench` writes and checks, kept in the library so tests can use it directly.
//!
//! **Message body** (every `mqbench producer` message):
//! ```text
//! bytes 0..8   sequence number, u64 big-endian (0, 1, 2, ... per producer run)
//! bytes 8..16  run id, u64 big-endian (random per producer run)
//! bytes 16..   filler (b'x') up to the message size (-s, at least 16)
//! ```
//! **Record file** (`mqbench producer --record FILE`), text, one line per acknowledged
//! message, in acknowledgement order:
//! ```text
//! # mqbench-record v1 run=<16 hex digits> topic=<topic>
//! <seq> <msg_id> <issued>   (issued: how many sequence numbers had been handed out
//! ...                        when the acknowledgement arrived; optional, default seq+1)
//! # sent <N>                (last line, written at the end: sequence numbers 0..N were issued)
//! ```
//! A file without the `# sent` line (producer killed) counts sequence numbers up to the
//! highest acknowledged one as issued.
//!
//! **Verification** (`mqbench verify`): every message of the topic whose body carries a
//! recorded run id is matched against that run's acknowledged sequence numbers:
//! - `lost`: acknowledged but not found;
//! - `duplicates`: extra copies of a sequence number;
//! - `out_of_order`: acknowledged messages stored in their queue after a message of the
//!   same run whose sequence number was issued only after their acknowledgement (`seq >=
//!   issued`): a queue that is not first-in first-out. Messages sent concurrently may be
//!   stored in either order and are not counted; with one request in flight (`-w 1`) this
//!   is exactly "sequence numbers going backwards in queue order";
//! - `unexpected`: sequence numbers at or beyond what the run issued.
//!
//! Messages of other runs (or not from mqbench) are counted apart (`foreign`).

use std::collections::HashMap;
use std::fmt;
use std::io::{BufRead, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};

use crate::error::ClientError;
use crate::message::MessageQueue;

/// Bytes of a benchmark body taken by the sequence number and the run id.
pub const BODY_HEADER_LEN: usize = 16;
/// First line's prefix of a record file.
const RECORD_MAGIC: &str = "# mqbench-record v1";
/// Prefix of a record file's closing line.
const SENT_PREFIX: &str = "# sent ";

/// The body of benchmark message `seq` of run `run`, `size` bytes long (at least 16).
pub fn encode_body(run: u64, seq: u64, size: usize) -> Bytes {
    let size = size.max(BODY_HEADER_LEN);
    let mut body = BytesMut::with_capacity(size);
    body.put_u64(seq);
    body.put_u64(run);
    body.resize(size, b'x');
    body.freeze()
}

/// The (run id, sequence number) of a benchmark body; `None` if it is too short to be one.
pub fn decode_body(body: &[u8]) -> Option<(u64, u64)> {
    let seq = u64::from_be_bytes(body.get(0..8)?.try_into().ok()?);
    let run = u64::from_be_bytes(body.get(8..16)?.try_into().ok()?);
    Some((run, seq))
}

/// Parses "30s", "500ms", "2m", "1h" or a bare number of seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let n: u64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a duration (like 30s, 500ms, 2m, 1h)"))?;
    match unit {
        "ms" => Ok(Duration::from_millis(n)),
        "" | "s" => Ok(Duration::from_secs(n)),
        "m" => Ok(Duration::from_secs(n * 60)),
        "h" => Ok(Duration::from_secs(n * 3600)),
        _ => Err(format!(
            "{text:?} has unknown unit {unit:?} (use ms, s, m or h)"
        )),
    }
}

/// Writes a record file as acknowledgements arrive.
pub struct RecordWriter {
    path: PathBuf,
    out: BufWriter<std::fs::File>,
}

impl RecordWriter {
    /// Creates (truncates) the file and writes its header.
    pub fn create(path: &Path, run: u64, topic: &str) -> Result<Self, ClientError> {
        let file = std::fs::File::create(path).map_err(|source| ClientError::Io {
            path: path.to_owned(),
            source,
        })?;
        let mut writer = Self {
            path: path.to_owned(),
            out: BufWriter::new(file),
        };
        writer.line(format_args!("{RECORD_MAGIC} run={run:016x} topic={topic}"))?;
        Ok(writer)
    }

    /// Records one acknowledged message; `issued` sequence numbers had been handed out
    /// when its acknowledgement arrived.
    pub fn record(&mut self, seq: u64, msg_id: &str, issued: u64) -> Result<(), ClientError> {
        self.line(format_args!("{seq} {msg_id} {issued}"))
    }

    /// Writes the closing line (`sent` sequence numbers were issued) and syncs the file.
    pub fn finish(mut self, sent: u64) -> Result<(), ClientError> {
        self.line(format_args!("{SENT_PREFIX}{sent}"))?;
        let path = self.path.clone();
        let io = |source| ClientError::Io {
            path: path.clone(),
            source,
        };
        let file = self.out.into_inner().map_err(|e| io(e.into_error()))?;
        file.sync_all().map_err(io)
    }

    fn line(&mut self, args: fmt::Arguments<'_>) -> Result<(), ClientError> {
        writeln!(self.out, "{args}").map_err(|source| ClientError::Io {
            path: self.path.clone(),
            source,
        })
    }
}

/// One acknowledged message of a record file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Acked {
    /// Its sequence number.
    pub seq: u64,
    /// Sequence numbers handed out when its acknowledgement arrived: every message with a
    /// sequence number at least this was sent after it was stored.
    pub issued: u64,
}

/// A record file, read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// The producer run's id.
    pub run: u64,
    /// The topic it sent to.
    pub topic: String,
    /// Acknowledged messages, in acknowledgement order.
    pub acked: Vec<Acked>,
    /// How many sequence numbers were issued, when the file was finished.
    pub sent: Option<u64>,
}

impl Record {
    /// Reads a record file.
    pub fn read(path: &Path) -> Result<Self, ClientError> {
        let io = |source| ClientError::Io {
            path: path.to_owned(),
            source,
        };
        let bad = |line: usize, reason: String| ClientError::BadFile {
            path: path.to_owned(),
            line,
            reason,
        };
        let file = std::fs::File::open(path).map_err(io)?;
        let mut lines = std::io::BufReader::new(file).lines();
        let header = lines.next().transpose().map_err(io)?.unwrap_or_default();
        let fields = header.strip_prefix(RECORD_MAGIC).ok_or_else(|| {
            bad(
                1,
                format!("not a record file (expected {RECORD_MAGIC:?} first)"),
            )
        })?;
        let mut run = None;
        let mut topic = String::new();
        for field in fields.split_whitespace() {
            if let Some(hex) = field.strip_prefix("run=") {
                run = u64::from_str_radix(hex, 16).ok();
            } else if let Some(t) = field.strip_prefix("topic=") {
                topic = t.to_owned();
            }
        }
        let run = run.ok_or_else(|| bad(1, "the header has no run=<hex> field".into()))?;
        let mut acked = Vec::new();
        let mut sent = None;
        for (i, line) in lines.enumerate() {
            let n = i + 2;
            let line = line.map_err(io)?;
            if let Some(count) = line.strip_prefix(SENT_PREFIX) {
                sent = Some(
                    count
                        .trim()
                        .parse()
                        .map_err(|_| bad(n, format!("bad sent count {count:?}")))?,
                );
                continue;
            }
            if line.trim().is_empty() || line.starts_with('#') {
                continue;
            }
            let mut fields = line.split_whitespace();
            let seq = fields
                .next()
                .and_then(|s| s.parse::<u64>().ok())
                .ok_or_else(|| {
                    bad(
                        n,
                        format!("expected \"<seq> <msg_id> <issued>\", got {line:?}"),
                    )
                })?;
            let issued = match fields.nth(1) {
                Some(text) => text
                    .parse::<u64>()
                    .ok()
                    .filter(|&i| i > seq)
                    .ok_or_else(|| bad(n, format!("bad issued count {text:?} for seq {seq}")))?,
                None => seq + 1,
            };
            acked.push(Acked { seq, issued });
        }
        Ok(Self {
            run,
            topic,
            acked,
            sent,
        })
    }

    /// Sequence numbers issued: the `sent` line, else one past the highest acknowledged.
    pub fn issued(&self) -> u64 {
        self.sent
            .unwrap_or_else(|| self.acked.iter().map(|a| a.seq + 1).max().unwrap_or(0))
    }
}

/// One run's expectations and what was found of it.
struct RunCheck {
    issued: u64,
    /// Per sequence number: 0 if not acknowledged, else the `issued` count at its
    /// acknowledgement (always above the sequence number).
    acked: Vec<u64>,
    /// Per sequence number: copies found (saturating).
    found: Vec<u16>,
}

/// Compares a topic's contents with record files. Feed every queue's messages in queue
/// order with [`Verifier::observe`], then read the [`VerifyReport`].
pub struct Verifier {
    runs: HashMap<u64, RunCheck>,
    /// Highest sequence number seen so far per (queue, run).
    last_in_queue: HashMap<(MessageQueue, u64), u64>,
    out_of_order: u64,
    unexpected: u64,
    foreign: u64,
}

/// The outcome of a verification.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct VerifyReport {
    /// Acknowledged messages in the record files.
    pub acked: u64,
    /// Acknowledged messages found at least once.
    pub found: u64,
    /// Acknowledged messages not found.
    pub lost: u64,
    /// Extra copies of sequence numbers (any found more than once).
    pub duplicates: u64,
    /// Acknowledged messages stored after a message sent only after their acknowledgement.
    pub out_of_order: u64,
    /// Messages of a recorded run whose sequence number that run never issued.
    pub unexpected: u64,
    /// Messages not of any recorded run (other runs, other producers).
    pub foreign: u64,
    /// Messages issued but not acknowledged that were stored anyway (sends whose answer
    /// was lost or timed out).
    pub unacked_found: u64,
}

impl Verifier {
    /// Expects what `records` say was acknowledged.
    pub fn new(records: &[Record]) -> Self {
        let mut runs: HashMap<u64, RunCheck> = HashMap::new();
        for r in records {
            let issued = r.issued();
            let check = runs.entry(r.run).or_insert_with(|| RunCheck {
                issued: 0,
                acked: Vec::new(),
                found: Vec::new(),
            });
            check.issued = check.issued.max(issued);
            let len = usize::try_from(check.issued).unwrap_or(usize::MAX);
            check.acked.resize(len, 0);
            check.found.resize(len, 0);
            for a in &r.acked {
                if let Some(slot) = usize::try_from(a.seq)
                    .ok()
                    .and_then(|i| check.acked.get_mut(i))
                {
                    *slot = a.issued;
                }
            }
        }
        Self {
            runs,
            last_in_queue: HashMap::new(),
            out_of_order: 0,
            unexpected: 0,
            foreign: 0,
        }
    }

    /// Accounts for one stored message of `queue`; call in queue-offset order per queue.
    pub fn observe(&mut self, queue: &MessageQueue, body: &[u8]) {
        self.observe_decoded(queue, decode_body(body));
    }

    /// Like [`Verifier::observe`] with the body already decoded by [`decode_body`] (lets
    /// a reader keep 16 bytes per message instead of the body).
    pub fn observe_decoded(&mut self, queue: &MessageQueue, decoded: Option<(u64, u64)>) {
        let Some((run, seq)) = decoded else {
            self.foreign += 1;
            return;
        };
        let Some(check) = self.runs.get_mut(&run) else {
            self.foreign += 1;
            return;
        };
        let Some(i) = usize::try_from(seq).ok().filter(|&i| i < check.found.len()) else {
            self.unexpected += 1;
            return;
        };
        check.found[i] = check.found[i].saturating_add(1);
        let highest = self
            .last_in_queue
            .entry((queue.clone(), run))
            .or_insert(seq);
        // Stored after a message that was sent only once this one was acknowledged.
        if check.acked[i] > 0 && *highest >= check.acked[i] {
            self.out_of_order += 1;
        }
        *highest = (*highest).max(seq);
    }

    /// The totals.
    pub fn report(&self) -> VerifyReport {
        let mut report = VerifyReport {
            out_of_order: self.out_of_order,
            unexpected: self.unexpected,
            foreign: self.foreign,
            ..VerifyReport::default()
        };
        for check in self.runs.values() {
            for (&bound, &found) in check.acked.iter().zip(&check.found) {
                let (acked, found) = (bound > 0, u64::from(found));
                report.duplicates += found.saturating_sub(1);
                match (acked, found > 0) {
                    (true, true) => {
                        report.acked += 1;
                        report.found += 1;
                    }
                    (true, false) => {
                        report.acked += 1;
                        report.lost += 1;
                    }
                    (false, true) => report.unacked_found += 1,
                    (false, false) => {}
                }
            }
        }
        report
    }
}

impl VerifyReport {
    /// Whether the topic holds every acknowledged message exactly once.
    pub fn passed(&self) -> bool {
        self.lost == 0 && self.duplicates == 0
    }
}

impl fmt::Display for VerifyReport {
    /// The `RESULT` line of `mqbench verify`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "RESULT acked={} found={} lost={} duplicates={} out_of_order={} unexpected={}",
            self.acked, self.found, self.lost, self.duplicates, self.out_of_order, self.unexpected
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_round_trips_and_pads() {
        let b = encode_body(0xAB, 42, 1024);
        assert_eq!(b.len(), 1024);
        assert_eq!(decode_body(&b), Some((0xAB, 42)));
        assert_eq!(encode_body(1, 2, 3).len(), BODY_HEADER_LEN);
        assert_eq!(decode_body(b"short"), None);
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_duration("7"), Ok(Duration::from_secs(7)));
        assert!(parse_duration("7d").unwrap_err().contains("unknown unit"));
        assert!(parse_duration("fast").is_err());
    }

    #[test]
    fn record_file_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("acked.txt");
        let mut w = RecordWriter::create(&path, 0xBEEF, "T").unwrap();
        w.record(1, "ID1", 2).unwrap();
        w.record(0, "ID0", 3).unwrap();
        w.finish(3).unwrap();
        let r = Record::read(&path).unwrap();
        assert_eq!(
            r,
            Record {
                run: 0xBEEF,
                topic: "T".into(),
                acked: vec![Acked { seq: 1, issued: 2 }, Acked { seq: 0, issued: 3 }],
                sent: Some(3)
            }
        );
        assert_eq!(r.issued(), 3);
        std::fs::write(&path, "hello\n").unwrap();
        assert!(Record::read(&path)
            .unwrap_err()
            .to_string()
            .contains(":1: not a record file"));
        std::fs::write(&path, format!("{RECORD_MAGIC} run=01 topic=T\n5 X\n")).unwrap();
        assert_eq!(
            Record::read(&path).unwrap().issued(),
            6,
            "unfinished: up to the last ack"
        );
    }

    #[test]
    fn concurrent_sends_may_be_stored_in_either_order() {
        // 0 and 1 were in flight together (both acked after 2 was issued): either order
        // is fine; 2 was sent after 0's ack, so 0 stored after 2 is out of order.
        let record = Record {
            run: 1,
            topic: "T".into(),
            acked: vec![
                Acked { seq: 1, issued: 2 },
                Acked { seq: 0, issued: 3 },
                Acked { seq: 2, issued: 3 },
            ],
            sent: Some(3),
        };
        let q = MessageQueue::new("T", "a", 0);
        let mut v = Verifier::new(std::slice::from_ref(&record));
        for seq in [1, 0, 2] {
            v.observe(&q, &encode_body(1, seq, 16));
        }
        assert_eq!(v.report().out_of_order, 0);
        let record = Record {
            acked: vec![Acked { seq: 0, issued: 1 }, Acked { seq: 1, issued: 2 }],
            ..record
        };
        let mut v = Verifier::new(&[record]);
        for seq in [1, 0] {
            v.observe(&q, &encode_body(1, seq, 16));
        }
        assert_eq!(v.report().out_of_order, 1);
    }

    #[test]
    fn verifier_counts_each_kind_of_discrepancy() {
        // One message in flight at a time: each ack came before the next send.
        let record = Record {
            run: 7,
            topic: "T".into(),
            acked: (0..4)
                .map(|seq| Acked {
                    seq,
                    issued: seq + 1,
                })
                .collect(),
            sent: Some(6),
        };
        let q0 = MessageQueue::new("T", "a", 0);
        let q1 = MessageQueue::new("T", "a", 1);
        let mut v = Verifier::new(&[record]);
        // q0: 0, 2, 1 (backwards), 2 again (duplicate); q1: 5 (unacked), 9 (never issued);
        // 3 is lost; a message of another run and a non-bench body are foreign.
        for seq in [0, 2, 1, 2] {
            v.observe(&q0, &encode_body(7, seq, 16));
        }
        v.observe(&q1, &encode_body(7, 5, 16));
        v.observe(&q1, &encode_body(7, 9, 16));
        v.observe(&q1, &encode_body(8, 0, 16));
        v.observe(&q1, b"hi");
        let r = v.report();
        assert_eq!(
            r,
            VerifyReport {
                acked: 4,
                found: 3,
                lost: 1,
                duplicates: 1,
                out_of_order: 1,
                unexpected: 1,
                foreign: 2,
                unacked_found: 1,
            }
        );
        assert!(!r.passed());
        assert_eq!(
            r.to_string(),
            "RESULT acked=4 found=3 lost=1 duplicates=1 out_of_order=1 unexpected=1"
        );
    }
}
