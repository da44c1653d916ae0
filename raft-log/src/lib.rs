//! raft-log: the segmented, checksummed log store that is both raftmq's Raft log and its
//! commitlog. Messages are written once, inside Raft entries, and consumers read their bytes
//! back from these files by position.
//!
//! - [`format`]: the byte layouts of segments, entries, index files;
//! - [`segment`]: one segment file and its index;
//! - [`store`]: the store (append, read, truncate, purge, recovery);
//! - [`flush`]: group commit (`SYNC_FLUSH`) and timed flush (`ASYNC_FLUSH`);
//! - [`meta`]: atomically replaced metadata files (vote, committed, purge point);
//! - `cache`: dropping data behind a window from the page cache;
//! - [`fs`]: the file-system seam, with a fault-injecting implementation for tests;
//! - [`inspect`]: a read-only scan of a store directory (`raft-log-dump`).

#![warn(clippy::unwrap_used)]
#![deny(unsafe_code)]

mod cache;
pub mod error;
pub mod flush;
pub mod format;
pub mod fs;
pub mod inspect;
pub mod meta;
pub mod raft;
mod segment;
pub mod store;

pub use error::{Corruption, Error, Result};
pub use flush::{FlushCallback, FlushMode};
pub use format::EntryKind;
pub use store::{Appended, Entry, LogConfig, LogId, LogStore, NewEntry, SegmentInfo};
