//! openraft's log storage on top of the [`LogStore`](crate::LogStore).
//!
//! - [`typ`]: the openraft type aliases and what a type config must provide ([`LogPayload`]);
//! - [`log_storage`]: [`RaftLogStore`], the `RaftLogStorage` / `RaftLogReader` implementation;
//! - `convert`: log ids, entries and errors between openraft and the store;
//! - `meta_codec`: the byte layout of the vote and committed log id metadata files;
//! - `committed`: the writer thread that persists the committed log id off the Raft core.

mod committed;
mod convert;
pub mod log_storage;
mod meta_codec;
pub mod typ;

pub use convert::{from_store_log_id, storage_error, to_store_log_id};
pub use log_storage::RaftLogStore;
pub use meta_codec::{COMMITTED_META, VOTE_META};
pub use typ::{AppendObserver, AppendedToken, LogPayload, LogTypeConfig, TruncateObserver};
