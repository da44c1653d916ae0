//! Keeping the page cache to the log's tail.
//!
//! Every appended byte lands in a freshly allocated page-cache page, and the kernel keeps it
//! there until memory runs short. Under a steady write load that means new pages come from
//! memory the machine has not touched for a while, which costs more than reusing pages that
//! were freed a moment ago: on a virtual machine whose free memory is handed back to the host
//! (free page reporting), writing into never-touched pages ran at about 0.5 GB/s against
//! 2.3 GB/s when the writer dropped what lay a window behind it.
//!
//! With a window configured, the store asks this thread to write out and drop every byte that
//! falls more than the window behind the end of the log. Readers of older positions (a
//! lagging consumer, a follower catching up) fault the pages back in from the file, as they
//! would after any eviction. Dropping is never a durability point: the flusher's fsyncs are.
//! But writing a range out can be the first to meet a writeback error, which the kernel then
//! reports to nobody else, so such an error fails the store like a failed fsync.

use std::ops::Range;
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::Arc;
use std::thread::JoinHandle;

use tracing::{debug, warn};

use crate::flush::Flusher;
use crate::fs::{self, LogFile, Mmap};

/// How much is dropped per system call pair: small enough that a reader faulting a page of the
/// same segment never waits long behind it.
const CHUNK: u64 = 16 << 20;

/// Part of one segment to drop: file offsets, not log positions.
pub(crate) struct Release {
    pub data: Arc<dyn LogFile>,
    pub map: Arc<Mmap>,
    pub range: Range<u64>,
}

/// The thread that drops released ranges, off the append path.
pub(crate) struct CacheReleaser {
    tx: Option<Sender<Release>>,
    thread: Option<JoinHandle<()>>,
}

impl CacheReleaser {
    /// `flusher` is failed if writing a range out fails.
    pub fn start(flusher: Arc<Flusher>) -> Self {
        let (tx, rx) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("raft-log-cache".into())
            .spawn(move || run(rx, flusher))
            .map_err(|e| warn!(error = %e, "cannot start the page-cache releaser; the log keeps the kernel's default caching"))
            .ok();
        Self {
            tx: thread.as_ref().map(|_| tx),
            thread,
        }
    }

    pub fn release(&self, release: Release) {
        if let Some(tx) = &self.tx {
            // The thread only stops when this sender is dropped.
            let _ = tx.send(release);
        }
    }
}

impl Drop for CacheReleaser {
    fn drop(&mut self) {
        self.tx = None;
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn run(rx: Receiver<Release>, flusher: Arc<Flusher>) {
    let mut warned = false;
    while let Ok(Release { data, map, range }) = rx.recv() {
        let mut at = range.start;
        while at < range.end {
            let len = CHUNK.min(range.end - at);
            if let Err(e) = fs::unmap_pages(&map, at, len) {
                // Only memory use is at stake; say it once per store.
                if !warned {
                    warn!(error = %e, "cannot unmap written log data to drop it from the page cache");
                    warned = true;
                }
            }
            if let Err(e) = data.release_cache(at, len) {
                // Writeback failed, and the kernel has now reported that to this call instead
                // of to the flusher's next fsync: fail the store as that fsync would have.
                flusher.fail(format!("writing log data out failed: {e}"));
                return;
            }
            at += len;
        }
        debug!(
            from = range.start,
            to = range.end,
            "log data dropped from the page cache"
        );
    }
}
