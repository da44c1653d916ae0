#![warn(clippy::unwrap_used)]
#![warn(missing_docs)]
//! Java `.properties` files as RocketMQ reads them, and typed keys on top.
//!
//! Two layers, each usable alone:
//!
//! 1. **Text** ([`parse_str`], [`parse_bytes`], [`read_file`], [`parse_override`]): the
//!    format of `java.util.Properties#load`, turned into [`Property`] pairs that each remember
//!    where they came from (file and 1-based line, or `--set` on the command line), so every
//!    later complaint can point at the line to fix.
//! 2. **Keys** ([`Key`], [`Schema`], [`Settings`]): a table of known keys with their
//!    aliases, defaults and parsers. [`Schema::resolve`] applies it to the pairs of one file
//!    plus command-line overrides: bad values are errors ([`Error::InvalidValue`]), unknown,
//!    ignored and repeated keys are [`Warning`]s handed back to the caller.
//!
//! [`value`] holds the small parsers that key tables are built from; [`process`] the
//! command-line flags and logging set-up the raftmq processes share.

mod error;
pub mod process;
mod schema;
mod source;
mod suggest;
mod text;
pub mod value;
mod warning;

pub use error::Error;
pub use schema::{
    IgnoredKeys, Key, KeySpec, Schema, Settings, NETTY_SERVER_KEYS, NETTY_WORKER_THREADS,
};
pub use source::{Property, Source};
pub use text::{escape_key, escape_value, parse_bytes, parse_override, parse_str, read_file};
pub use warning::Warning;
