//! Flushing: group commit for `SYNC_FLUSH`, a timer for `ASYNC_FLUSH`.
//!
//! Every append bumps a write sequence number after its bytes are in the page cache. The
//! flusher thread takes the current sequence number, fsyncs the active segment once, and
//! completes every waiter at or below that number: however many appends arrived while the
//! previous fsync ran, one fsync completes them all. Sequence numbers (not byte positions)
//! are what waiters wait on because a truncation moves positions backwards.

use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::error::{Error, Result};
use crate::fs::LogFile;

/// When appends become durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlushMode {
    /// `flushDiskType=SYNC_FLUSH`: an append is reported flushed after an fsync covers it.
    Sync,
    /// `flushDiskType=ASYNC_FLUSH`: an append is reported flushed once written; data is
    /// fsynced every `interval` (`flushIntervalCommitLog`).
    Async { interval: Duration },
}

/// Called once an append is durable under the store's flush mode, or with the error that
/// prevented it.
pub type FlushCallback = Box<dyn FnOnce(Result<()>) + Send>;

/// The files an fsync must cover: the active segment's data and index.
#[derive(Clone)]
pub(crate) struct ActiveFiles {
    pub data: Arc<dyn LogFile>,
    pub idx: Arc<dyn LogFile>,
}

struct FlushState {
    /// Sequence number of the last append whose bytes are written.
    written: u64,
    /// Sequence number up to which an fsync completed.
    flushed: u64,
    active: Option<ActiveFiles>,
    waiters: Vec<(u64, FlushCallback)>,
    /// Highest sequence number a blocked thread (or a flush request) wants fsynced.
    wanted: u64,
    /// Set by the first failed fsync; from then on nothing is reported durable.
    failed: Option<String>,
    shutdown: bool,
}

pub(crate) struct Flusher {
    mode: FlushMode,
    state: Mutex<FlushState>,
    /// Wakes the flusher thread.
    work: Condvar,
    /// Wakes threads blocked in [`Flusher::wait`].
    done: Condvar,
}

impl Flusher {
    pub fn start(mode: FlushMode) -> (Arc<Flusher>, JoinHandle<()>) {
        let flusher = Arc::new(Flusher {
            mode,
            state: Mutex::new(FlushState {
                written: 0,
                flushed: 0,
                active: None,
                waiters: Vec::new(),
                wanted: 0,
                failed: None,
                shutdown: false,
            }),
            work: Condvar::new(),
            done: Condvar::new(),
        });
        let runner = flusher.clone();
        let handle = std::thread::Builder::new()
            .name("raft-log-flush".into())
            .spawn(move || runner.run())
            .unwrap_or_else(|e| panic!("cannot start the log flusher thread: {e}"));
        (flusher, handle)
    }

    fn lock(&self) -> MutexGuard<'_, FlushState> {
        // A panic while holding this lock can only come from a bug in this module; the state
        // itself stays consistent, so keep going rather than poisoning every later append.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Fails if an earlier fsync failed: the store must be reopened.
    pub fn check(&self) -> Result<()> {
        match &self.lock().failed {
            Some(why) => Err(Error::Failed(why.clone())),
            None => Ok(()),
        }
    }

    /// Marks the store failed (a write error left the files in an unknown state).
    pub fn fail(&self, why: String) {
        let waiters = {
            let mut st = self.lock();
            st.failed.get_or_insert(why.clone());
            std::mem::take(&mut st.waiters)
        };
        self.done.notify_all();
        for (_, cb) in waiters {
            cb(Err(Error::Failed(why.clone())));
        }
    }

    pub fn set_active(&self, files: ActiveFiles) {
        self.lock().active = Some(files);
    }

    /// Records that an append's bytes are written; returns its sequence number.
    pub fn written(&self) -> u64 {
        let mut st = self.lock();
        st.written += 1;
        st.written
    }

    /// Runs `cb` once append `seq` is durable under the flush mode.
    pub fn on_flushed(&self, seq: u64, cb: FlushCallback) {
        if let FlushMode::Async { .. } = self.mode {
            return cb(self.check());
        }
        let mut st = self.lock();
        if let Some(why) = &st.failed {
            let err = Error::Failed(why.clone());
            drop(st);
            return cb(Err(err));
        }
        if st.flushed >= seq {
            drop(st);
            return cb(Ok(()));
        }
        st.waiters.push((seq, cb));
        drop(st);
        self.work.notify_one();
    }

    /// Blocks until append `seq` is durable under the flush mode.
    pub fn wait(&self, seq: u64) -> Result<()> {
        if let FlushMode::Async { .. } = self.mode {
            return self.check();
        }
        self.wait_fsynced(seq)
    }

    /// Blocks until an fsync covers append `seq`, whatever the mode.
    pub fn wait_fsynced(&self, seq: u64) -> Result<()> {
        let mut st = self.lock();
        if st.wanted < seq {
            st.wanted = seq;
            self.work.notify_one();
        }
        loop {
            if let Some(why) = &st.failed {
                return Err(Error::Failed(why.clone()));
            }
            if st.flushed >= seq {
                return Ok(());
            }
            if st.shutdown {
                return Err(Error::Failed("the store was closed".into()));
            }
            st = self.done.wait(st).unwrap_or_else(|p| p.into_inner());
        }
    }

    /// Asks for an fsync of everything written so far without waiting for it: a segment about
    /// to be sealed gets most of its dirty pages written before the roll has to sync them
    /// under the store's lock.
    pub fn request_flush(&self) {
        let mut st = self.lock();
        if st.wanted < st.written {
            st.wanted = st.written;
            self.work.notify_one();
        }
    }

    /// The sequence number of the last written append.
    pub fn last_written(&self) -> u64 {
        self.lock().written
    }

    /// Declares every append up to the current sequence number durable: used after the
    /// store synced everything itself (a segment roll, a truncation).
    pub fn mark_synced(&self) {
        let waiters = {
            let mut st = self.lock();
            st.flushed = st.written;
            let flushed = st.flushed;
            take_due(&mut st.waiters, flushed)
        };
        self.done.notify_all();
        for (_, cb) in waiters {
            cb(Ok(()));
        }
    }

    pub fn shutdown(&self) {
        self.lock().shutdown = true;
        self.work.notify_all();
        self.done.notify_all();
    }

    fn run(&self) {
        loop {
            let (target, files) = {
                let mut st = self.lock();
                loop {
                    if st.shutdown {
                        if st.failed.is_some() || st.written == st.flushed {
                            return;
                        }
                        break; // one last flush of what was written
                    }
                    // In async mode, only explicit `flush` calls and flush requests wait.
                    if st.failed.is_none() && (!st.waiters.is_empty() || st.wanted > st.flushed) {
                        break;
                    }
                    match self.mode {
                        FlushMode::Sync => {
                            st = self.work.wait(st).unwrap_or_else(|p| p.into_inner());
                        }
                        FlushMode::Async { interval } => {
                            let (guard, timeout) = self
                                .work
                                .wait_timeout(st, interval)
                                .unwrap_or_else(|p| p.into_inner());
                            st = guard;
                            if timeout.timed_out() && st.written > st.flushed && st.failed.is_none()
                            {
                                break;
                            }
                        }
                    }
                }
                (st.written, st.active.clone())
            };
            let synced = match &files {
                // The index is derived from the data and rebuilt from it by recovery, so group
                // commit fsyncs only the data file; the timer (and a roll or close) syncs both.
                Some(f) => f.data.sync_data().and_then(|()| match self.mode {
                    FlushMode::Sync => Ok(()),
                    FlushMode::Async { .. } => f.idx.sync_data(),
                }),
                None => Ok(()),
            };
            match synced {
                Ok(()) => {
                    let waiters = {
                        let mut st = self.lock();
                        st.flushed = st.flushed.max(target);
                        take_due(&mut st.waiters, target)
                    };
                    self.done.notify_all();
                    for (_, cb) in waiters {
                        cb(Ok(()));
                    }
                }
                Err(e) => self.fail(format!("fsync of the active segment failed: {e}")),
            }
        }
    }
}

fn take_due(waiters: &mut Vec<(u64, FlushCallback)>, upto: u64) -> Vec<(u64, FlushCallback)> {
    let (due, pending): (Vec<_>, Vec<_>) = std::mem::take(waiters)
        .into_iter()
        .partition(|(seq, _)| *seq <= upto);
    *waiters = pending;
    due
}
