//! The bodies of raftmq's fuzz targets. Each takes any input and checks that it gives an
//! error, never a panic, a hang or a wrong answer:
//!
//! - [`properties::properties_parse`]: bytes as a broker property file, through the broker's
//!   configuration schema;
//! - [`log_entry::log_entry_decode`]: bytes as a raft-log entry, segment header, index header
//!   and index records;
//! - [`log_recovery::log_recovery`]: a store built from the input, its tail or files harmed,
//!   then opened and read back;
//! - [`command::command_decode`]: bytes as a broker log command, decoded as the state
//!   machine decodes it.
//!
//! They run twice over: as `cargo fuzz` targets (`fuzz/`, open-ended, coverage-guided), and
//! bounded in `cargo test` (`tests/`), which feeds each one mutants of valid seeds
//! ([`mutate`]) and proptest-generated, mostly well-formed inputs. A failed check panics, which
//! is what both runners report.

#![warn(clippy::unwrap_used)]

use std::fmt::Display;

pub mod command;
pub mod log_entry;
pub mod log_recovery;
pub mod mutate;
pub mod properties;

/// Renders an error the way a caller would show it: its `Display` must not panic either.
fn shown(error: impl Display) {
    let _ = error.to_string();
}
