//! The store's one error type.

use std::io;
use std::path::PathBuf;

/// What is wrong with a record whose bytes fail a check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Corruption {
    #[error("record ends before its declared size (torn write)")]
    Torn,
    #[error("bad magic number")]
    BadMagic,
    #[error("unsupported format version {0}")]
    Version(u32),
    #[error("header checksum mismatch")]
    HeaderCrc,
    #[error("body checksum mismatch")]
    BodyCrc,
    #[error("impossible entry size {0}")]
    BadSize(u32),
    #[error("unknown entry kind {0}")]
    BadKind(u8),
    #[error("entry says index {found}, expected {expected}")]
    WrongIndex { expected: u64, found: u64 },
    /// No index follows `u64::MAX`, so a log never holds it; only forged bytes do.
    #[error("entry index {0} leaves no index for the entry after it")]
    IndexOverflow(u64),
    #[error("entry says position {found}, expected {expected}")]
    WrongPosition { expected: u64, found: u64 },
    #[error("entry disagrees with its index record (term or size)")]
    IndexMismatch,
}

/// Errors of the log store.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("corrupt log: {path} at byte {offset}: {what}; the store refuses to guess, inspect it with `raft-log-dump --verify`")]
    Corrupt {
        path: PathBuf,
        offset: u64,
        what: Corruption,
    },
    #[error("index {index} is not in the log (it holds {first}..={last})")]
    IndexOutOfRange { index: u64, first: u64, last: u64 },
    #[error("append of index {got} does not follow the last index {last}")]
    NotContiguous { last: u64, got: u64 },
    #[error("entry of {size} bytes does not fit in a segment of {segment_size} bytes")]
    EntryTooLarge { size: u64, segment_size: u64 },
    #[error("position {position} (+{len} bytes) is not readable: {why}")]
    BadPosition {
        position: u64,
        len: u64,
        why: &'static str,
    },
    #[error("the store failed earlier ({0}) and accepts no more writes; reopen it to recover")]
    Failed(String),
    #[error("bad configuration: {0}")]
    Config(String),
}

impl Error {
    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        Error::Io {
            op,
            path: path.into(),
            source,
        }
    }

    pub(crate) fn corrupt(path: impl Into<PathBuf>, offset: u64, what: Corruption) -> Self {
        Error::Corrupt {
            path: path.into(),
            offset,
            what,
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
