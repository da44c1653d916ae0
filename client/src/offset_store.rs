//! Consumer progress bookkeeping: which offset each owned queue has been consumed up to,
//! which of those have been committed, and (broadcasting mode) the local offsets file.
//!
//! The committed offset is what a new owner of a queue starts from, so everything between
//! it and the consumed offset is what a rebalance may deliver twice: committing often and
//! on every release bounds that redelivery.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::error::ClientError;
use crate::message::MessageQueue;

/// Progress of one queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueProgress {
    /// Next offset to consume: one past the last message the application has taken.
    pub consumed: u64,
    /// Last offset known to be stored (committed to the broker or the local file);
    /// `None` when nothing was committed by this client yet.
    pub committed: Option<u64>,
}

/// Progress of every queue a consumer owns. Pure bookkeeping; the caller does the IO.
#[derive(Debug, Clone, Default)]
pub struct OffsetTable {
    queues: BTreeMap<MessageQueue, QueueProgress>,
}

impl OffsetTable {
    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }

    /// Starts tracking `queue` from `offset`, which is known to be stored (it was read from
    /// the committed offsets) when `stored` is true.
    pub fn track(&mut self, queue: MessageQueue, offset: u64, stored: bool) {
        self.queues.insert(
            queue,
            QueueProgress {
                consumed: offset,
                committed: stored.then_some(offset),
            },
        );
    }

    /// Records that the application took the messages of `queue` before `next`; ignored for
    /// queues no longer tracked and for offsets that would move backwards.
    pub fn consumed(&mut self, queue: &MessageQueue, next: u64) -> bool {
        match self.queues.get_mut(queue) {
            Some(p) if next > p.consumed => {
                p.consumed = next;
                true
            }
            _ => false,
        }
    }

    /// Moves `queue`'s consumed offset to `offset`, backwards too: the broker said the old
    /// one is out of range (purged below, or past the end after a failover).
    pub fn reset(&mut self, queue: &MessageQueue, offset: u64) {
        if let Some(p) = self.queues.get_mut(queue) {
            p.consumed = offset;
        }
    }

    /// Queues whose consumed offset has not been stored yet, with that offset.
    pub fn to_commit(&self) -> Vec<(MessageQueue, u64)> {
        self.queues
            .iter()
            .filter(|(_, p)| p.committed != Some(p.consumed))
            .map(|(q, p)| (q.clone(), p.consumed))
            .collect()
    }

    /// Records that `offset` of `queue` is stored.
    pub fn committed(&mut self, queue: &MessageQueue, offset: u64) {
        if let Some(p) = self.queues.get_mut(queue) {
            p.committed = Some(offset);
        }
    }

    /// Stops tracking `queue`, returning its last progress.
    pub fn release(&mut self, queue: &MessageQueue) -> Option<QueueProgress> {
        self.queues.remove(queue)
    }

    /// The progress of `queue`.
    pub fn get(&self, queue: &MessageQueue) -> Option<QueueProgress> {
        self.queues.get(queue).copied()
    }

    /// Every tracked queue's consumed offset.
    pub fn snapshot(&self) -> BTreeMap<MessageQueue, u64> {
        self.queues
            .iter()
            .map(|(q, p)| (q.clone(), p.consumed))
            .collect()
    }
}

/// Broadcasting-mode offsets kept on the local disk (RocketMQ keeps them in
/// `~/.rocketmq_offsets`): a JSON object `{"topic@broker#queue": offset}`, replaced
/// atomically (temp file, fsync, rename) so a crash leaves the old or the new file.
#[derive(Debug, Clone)]
pub struct LocalOffsetFile {
    path: PathBuf,
}

impl LocalOffsetFile {
    /// The file at `path` (created on the first save).
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self { path: path.into() }
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The stored offsets; empty when the file does not exist yet.
    pub fn load(&self) -> Result<BTreeMap<String, u64>, ClientError> {
        let text = match std::fs::read_to_string(&self.path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(BTreeMap::new()),
            Err(source) => {
                return Err(ClientError::Io {
                    path: self.path.clone(),
                    source,
                })
            }
        };
        serde_json::from_str(&text).map_err(|e| ClientError::BadFile {
            path: self.path.clone(),
            line: e.line(),
            reason: format!("not an offsets file: {e}"),
        })
    }

    /// The stored offset of `queue`.
    pub fn offset_of(stored: &BTreeMap<String, u64>, queue: &MessageQueue) -> Option<u64> {
        stored.get(&queue.to_string()).copied()
    }

    /// Replaces the file with `offsets` merged over what it holds (queues this client
    /// does not own keep their stored offsets).
    pub fn save(&self, offsets: &BTreeMap<MessageQueue, u64>) -> Result<(), ClientError> {
        let mut all = self.load()?;
        all.extend(offsets.iter().map(|(q, o)| (q.to_string(), *o)));
        let io = |source| ClientError::Io {
            path: self.path.clone(),
            source,
        };
        if let Some(dir) = self.path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(io)?;
        }
        let text = serde_json::to_string_pretty(&all)
            .map_err(|e| ClientError::Internal(format!("cannot encode offsets: {e}")))?;
        let tmp = self.path.with_extension("tmp");
        {
            use std::io::Write;
            let mut f = std::fs::File::create(&tmp).map_err(io)?;
            f.write_all(text.as_bytes()).map_err(io)?;
            f.sync_all().map_err(io)?;
        }
        std::fs::rename(&tmp, &self.path).map_err(io)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(i: i32) -> MessageQueue {
        MessageQueue::new("T", "a", i)
    }

    #[test]
    fn only_unstored_progress_is_committed() {
        let mut t = OffsetTable::new();
        t.track(q(0), 10, true);
        t.track(q(1), 0, false);
        assert_eq!(t.to_commit(), [(q(1), 0)]);
        assert!(t.consumed(&q(0), 15));
        assert!(!t.consumed(&q(0), 12), "progress never moves back");
        assert!(!t.consumed(&q(9), 1), "untracked queues are ignored");
        t.committed(&q(1), 0);
        assert_eq!(t.to_commit(), [(q(0), 15)]);
        t.committed(&q(0), 15);
        assert!(t.to_commit().is_empty());
        assert_eq!(
            t.release(&q(0)),
            Some(QueueProgress {
                consumed: 15,
                committed: Some(15)
            })
        );
        assert_eq!(t.get(&q(0)), None);
    }

    #[test]
    fn local_file_round_trips_and_merges() {
        let dir = tempfile::tempdir().unwrap();
        let file = LocalOffsetFile::new(dir.path().join("g/offsets.json"));
        assert!(file.load().unwrap().is_empty());
        file.save(&BTreeMap::from([(q(0), 5), (q(1), 7)])).unwrap();
        file.save(&BTreeMap::from([(q(1), 9)])).unwrap();
        let stored = file.load().unwrap();
        assert_eq!(LocalOffsetFile::offset_of(&stored, &q(0)), Some(5));
        assert_eq!(LocalOffsetFile::offset_of(&stored, &q(1)), Some(9));
        std::fs::write(file.path(), "nope").unwrap();
        assert!(file
            .load()
            .unwrap_err()
            .to_string()
            .contains("not an offsets file"));
    }
}
