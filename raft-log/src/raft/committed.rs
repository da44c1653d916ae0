//! Persisting the committed log id without stalling Raft.
//!
//! openraft calls `save_committed` on every commit, inline in its core task, and a durable
//! metadata write costs two fsyncs (the file, then the directory). So saves are coalesced: a
//! save records the newest value and wakes a writer thread, which writes whatever is newest when
//! it gets to it. Nothing about Raft safety depends on this file: after a restart openraft
//! re-applies entries up to the committed log id it reads back, and an older value only means
//! fewer entries re-applied before the leader's next commit message. The writer also pauses
//! [`PACE`] between writes (unless someone waits in [`CommittedCheckpoint::sync`]): under load
//! back-to-back rewrites cost every replica two fsyncs and several wake-ups per commit.

use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;

use tracing::warn;

use super::meta_codec::{encode_committed, COMMITTED_META};
use crate::error::{Error, Result};
use crate::store::{LogId, LogStore};

/// Shortest time between two writes of `committed.meta` while commits keep coming.
pub const PACE: std::time::Duration = std::time::Duration::from_millis(100);

/// The committed log id, as saved in memory and as written to `committed.meta`.
pub struct CommittedCheckpoint {
    shared: Arc<Shared>,
    writer: Option<JoinHandle<()>>,
}

struct Shared {
    state: Mutex<State>,
    /// Wakes the writer thread.
    work: Condvar,
    /// Wakes callers of [`CommittedCheckpoint::sync`].
    written: Condvar,
}

struct State {
    /// The newest value saved since the store was opened (`None` until the first save).
    latest: Option<Option<LogId>>,
    /// Bumped by every save.
    saved: u64,
    /// The save count the file reflects.
    persisted: u64,
    /// Set by the first failed write; later saves report it.
    failed: Option<String>,
    closing: bool,
    /// Someone waits in `sync`: skip the pause between writes.
    hurry: bool,
    /// The writer waits for a save (rather than pausing after a write): only then does a
    /// save wake it. Waking it during its pause would cost a thread switch per commit for
    /// nothing.
    idle: bool,
}

impl CommittedCheckpoint {
    /// Starts the writer thread for `store`.
    pub fn start(store: LogStore) -> Result<Self> {
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                latest: None,
                saved: 0,
                persisted: 0,
                failed: None,
                idle: false,
                closing: false,
                hurry: false,
            }),
            work: Condvar::new(),
            written: Condvar::new(),
        });
        let dir = store.config().dir.clone();
        let runner = shared.clone();
        let writer = std::thread::Builder::new()
            .name("raft-log-committed".into())
            .spawn(move || runner.run(&store))
            .map_err(|e| Error::io("start the committed-log-id writer thread for", dir, e))?;
        Ok(Self {
            shared,
            writer: Some(writer),
        })
    }

    /// Records `committed` as the newest value; it reaches the file soon after. Fails if an
    /// earlier write failed.
    pub fn save(&self, committed: Option<LogId>) -> Result<()> {
        let mut st = self.shared.lock();
        if let Some(why) = &st.failed {
            return Err(Error::Failed(why.clone()));
        }
        st.latest = Some(committed);
        st.saved += 1;
        let wake = st.idle;
        drop(st);
        if wake {
            self.shared.work.notify_one();
        }
        Ok(())
    }

    /// The newest value saved since the store was opened, if any was.
    pub fn latest(&self) -> Option<Option<LogId>> {
        self.shared.lock().latest
    }

    /// Blocks until every save so far is in the file.
    pub fn sync(&self) -> Result<()> {
        let mut st = self.shared.lock();
        let target = st.saved;
        st.hurry = true;
        self.shared.work.notify_all();
        loop {
            if let Some(why) = &st.failed {
                return Err(Error::Failed(why.clone()));
            }
            if st.persisted >= target {
                return Ok(());
            }
            st = self
                .shared
                .written
                .wait(st)
                .unwrap_or_else(|p| p.into_inner());
        }
    }
}

impl Drop for CommittedCheckpoint {
    /// Writes the last saved value, then stops the writer.
    fn drop(&mut self) {
        self.shared.lock().closing = true;
        self.shared.work.notify_one();
        if let Some(writer) = self.writer.take() {
            let _ = writer.join();
        }
    }
}

impl Shared {
    /// Waits out [`PACE`] after a write, cut short by closing or a `sync` caller.
    fn pause(&self) {
        let deadline = std::time::Instant::now() + PACE;
        let mut st = self.lock();
        while !st.closing && !st.hurry {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() {
                return;
            }
            st = self
                .work
                .wait_timeout(st, left)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // The state stays consistent whatever panicked while holding the lock.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn run(&self, store: &LogStore) {
        loop {
            let (value, count) = {
                let mut st = self.lock();
                while st.persisted == st.saved && !st.closing {
                    st.idle = true;
                    st = self.work.wait(st).unwrap_or_else(|p| p.into_inner());
                }
                st.idle = false;
                match st.latest {
                    Some(value) if st.persisted < st.saved => (value, st.saved),
                    _ => return, // closing with nothing left to write
                }
            };
            let result = store.meta().store(COMMITTED_META, &encode_committed(value));
            let mut st = self.lock();
            match result {
                Ok(()) => st.persisted = count,
                Err(e) => {
                    warn!(error = %e, "cannot persist the committed log id");
                    st.failed = Some(format!("persisting the committed log id failed: {e}"));
                }
            }
            let stop = st.failed.is_some();
            st.hurry = false;
            drop(st);
            self.written.notify_all();
            if stop {
                return;
            }
            self.pause();
        }
    }
}
