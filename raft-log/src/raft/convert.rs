//! The one place where openraft values and the store's values are turned into each other: log
//! ids, entries and errors.
//!
//! An openraft entry becomes one store entry of the same index and term:
//!
//! ```text
//! openraft payload     EntryKind     body
//! Blank                Blank         empty
//! Normal(d)            Normal        d.encode_into(..)            (LogPayload of the type config)
//! Membership(m)        Membership    serde_json of Membership     (rare: config changes only)
//! ```

use std::error::Error as StdError;
use std::ops::Range;

use openraft::{AnyError, CommittedLeaderId};

use super::typ::{
    Entry, EntryPayload, LogId, LogPayload, LogTypeConfig, NodeId, StorageError, StorageIOError,
};
use crate::format::EntryKind;
use crate::store::{self, NewEntry};

/// The store's form of an openraft log id. Lossless under `single-term-leader` (see `typ`).
pub fn to_store_log_id(id: &LogId) -> store::LogId {
    store::LogId {
        term: id.leader_id.term,
        index: id.index,
    }
}

/// The openraft form of a store log id.
pub fn from_store_log_id(id: store::LogId) -> LogId {
    LogId::new(CommittedLeaderId::new(id.term, NodeId::default()), id.index)
}

/// Turns any error of the store (or of decoding what it holds) into the error openraft expects,
/// keeping its message and sources. `subject` says what failed, e.g. `StorageIOError::write_logs`
/// or `|e| StorageIOError::read_log_at_index(index, e)`.
pub fn storage_error(
    err: &(dyn StdError + 'static),
    subject: impl FnOnce(AnyError) -> StorageIOError,
) -> StorageError {
    StorageError::IO {
        source: subject(AnyError::from_dyn(err, None)),
    }
}

/// Encodes the payloads of `entries` back to back into `buf` and returns, per entry, its kind
/// and the range of `buf` that is its body.
#[allow(
    clippy::result_large_err,
    reason = "openraft's error, returned as it is"
)]
pub fn encode_bodies<C: LogTypeConfig>(
    entries: &[Entry<C>],
    buf: &mut Vec<u8>,
) -> Result<Vec<(EntryKind, Range<usize>)>, StorageError> {
    let mut layout = Vec::with_capacity(entries.len());
    for entry in entries {
        let start = buf.len();
        let kind = match &entry.payload {
            EntryPayload::<C>::Blank => EntryKind::Blank,
            EntryPayload::<C>::Normal(data) => {
                // Payloads that hold their encoding are appended from it (see `new_entries`).
                if data.encoded().is_none() {
                    data.encode_into(buf);
                }
                EntryKind::Normal
            }
            EntryPayload::<C>::Membership(membership) => {
                serde_json::to_writer(&mut *buf, membership).map_err(|e| {
                    storage_error(&e, |e| StorageIOError::write_log_entry(entry.log_id, e))
                })?;
                EntryKind::Membership
            }
        };
        layout.push((kind, start..buf.len()));
    }
    Ok(layout)
}

/// The store entries that [`encode_bodies`] laid out in `buf`.
pub fn new_entries<'a, C: LogTypeConfig>(
    entries: &'a [Entry<C>],
    layout: &[(EntryKind, Range<usize>)],
    buf: &'a [u8],
) -> Vec<NewEntry<'a>> {
    entries
        .iter()
        .zip(layout)
        .map(|(entry, (kind, body))| NewEntry {
            index: entry.log_id.index,
            term: entry.log_id.leader_id.term,
            kind: *kind,
            body: match &entry.payload {
                EntryPayload::<C>::Normal(data) => data.encoded(),
                _ => None,
            }
            .unwrap_or(&buf[body.clone()]),
        })
        .collect()
}

/// Rebuilds the openraft entry that a store entry holds.
#[allow(
    clippy::result_large_err,
    reason = "openraft's error, returned as it is"
)]
pub fn decode_entry<C: LogTypeConfig>(entry: store::Entry) -> Result<Entry<C>, StorageError> {
    let index = entry.index;
    let log_id = from_store_log_id(store::LogId {
        term: entry.term,
        index,
    });
    let payload = match entry.kind {
        EntryKind::Blank => EntryPayload::<C>::Blank,
        EntryKind::Normal => EntryPayload::<C>::Normal(
            C::D::decode(entry.body)
                .map_err(|e| storage_error(&*e, |e| StorageIOError::read_log_at_index(index, e)))?,
        ),
        EntryKind::Membership => EntryPayload::<C>::Membership(
            serde_json::from_slice(&entry.body)
                .map_err(|e| storage_error(&e, |e| StorageIOError::read_log_at_index(index, e)))?,
        ),
    };
    Ok(Entry::<C> { log_id, payload })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_ids_survive_the_round_trip_whatever_the_leader() {
        // Under `single-term-leader` the leader's node id is not part of a committed log id, so
        // nothing is lost by storing (term, index) only.
        let id = LogId::new(CommittedLeaderId::new(7, 3), 42);
        let stored = to_store_log_id(&id);
        assert_eq!(stored, store::LogId { term: 7, index: 42 });
        assert_eq!(from_store_log_id(stored), id);
    }

    #[test]
    fn store_errors_keep_their_message() {
        let err = crate::Error::NotContiguous { last: 4, got: 9 };
        let converted = storage_error(&err, StorageIOError::write_logs).to_string();
        assert!(converted.contains("append of index 9 does not follow the last index 4"));
    }
}
