//! Witnesses: the third voter a nameserver hosts for each classic broker group of two data
//! replicas (DESIGN §4, "Witness").
//!
//! A witness is a Raft member of its group like any other, with three differences:
//! - it stores log ids and no message bodies: the leader sends it entries without payloads
//!   ([`Omitted`]), and its state machine keeps only what Raft needs (the applied log id and
//!   the membership);
//! - it never campaigns and never leads: openraft's elections are off (`enable_elect=false`)
//!   and nothing here ever calls `trigger().elect()`;
//! - its leader lease is short (`raftmq_raft::timing::WITNESS_LEASE_MS`), so a slave whose
//!   master died can win its vote soon after the master's last heartbeat.
//!
//! The leader sends it an entry only after every in-sync slave has it, so the witness is never
//! ahead of an in-sync slave: when the master dies, the slave holds every committed entry and
//! wins the witness's vote; an out-of-sync slave does not (its log is behind the witness's).
//!
//! Witnesses are created on first contact (the leader adding it as a learner sends it its
//! first append) for groups registered with this nameserver, and their stores live under
//! `witnessStorePath/<brokerName>/` (vote and log ids, fsynced); a nameserver restart opens
//! them again. A witness whose store is empty (new, or its disk was wiped) grants no vote until
//! it has caught up with a leader of the current term.

mod host;
mod state;
mod typ;

pub use host::{KnownGroup, WitnessHost};
pub use typ::{Omitted, WitnessConfig};
