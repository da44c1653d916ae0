//! What a replica gives up when Raft cuts its log tail: the entries a new leader does not have.
//! Only a deposed leader's uncommitted entries can be cut. Under `SYNC_MASTER` (and in dledger
//! groups) none of their sends was acknowledged; under `ASYNC_MASTER` some may have been, and
//! they are lost: the count is the failover's loss, reported in the log and in `brokerStatus`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use raft_log::{EntryKind, LogStore};
use tracing::warn;

use crate::command::{Command, LogCommand};

/// Running totals of what was cut, since this process started.
#[derive(Debug, Default)]
pub struct DroppedTail {
    entries: AtomicU64,
    messages: AtomicU64,
}

impl DroppedTail {
    pub fn entries(&self) -> u64 {
        self.entries.load(Ordering::Relaxed)
    }

    pub fn messages(&self) -> u64 {
        self.messages.load(Ordering::Relaxed)
    }

    /// The observer the Raft log calls before it removes the entries from `from` on.
    pub fn observer(self: &Arc<Self>, log: LogStore) -> raft_log::raft::TruncateObserver {
        let totals = Arc::clone(self);
        Arc::new(move |from| totals.count(&log, from))
    }

    fn count(&self, log: &LogStore, from: u64) {
        let Some(last) = log.last_log_id().map(|l| l.index) else {
            return;
        };
        let (mut entries, mut messages, mut unreadable) = (0u64, 0u64, 0u64);
        for index in from..=last {
            entries += 1;
            match log.read(index) {
                Ok(e) if e.kind == EntryKind::Normal => {
                    messages += messages_in(&LogCommand(e.body)).unwrap_or_else(|| {
                        unreadable += 1;
                        0
                    });
                }
                Ok(_) => {}
                Err(_) => unreadable += 1,
            }
        }
        self.entries.fetch_add(entries, Ordering::Relaxed);
        self.messages.fetch_add(messages, Ordering::Relaxed);
        warn!(
            from,
            last,
            entries,
            messages,
            unreadable,
            "dropping log entries the group's leader does not have (never committed; sends \
             answered on this replica's own append, ASYNC_MASTER, are lost with them)"
        );
    }
}

/// Messages a command holds; `None` when it does not decode.
fn messages_in(command: &LogCommand) -> Option<u64> {
    match command.decode().ok()? {
        Command::Send { count, .. } => Some(u64::from(count)),
        Command::Batch(parts) => parts
            .iter()
            .map(|(_, part)| messages_in(part))
            .sum::<Option<u64>>(),
        _ => Some(0),
    }
}
