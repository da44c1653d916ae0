//! `log_entry_decode`, bounded: mutants of whole entries, segment and index headers and index
//! records, and generated entries whose fields sit at the edges, then cut or flipped.

mod common;

use common::{replay_saved, run_generated, run_mutants};
use fuzz_targets::log_entry::{log_entry_decode, reseal_entry, seeds};
use proptest::prelude::*;
use raft_log::format::{encode_entry, EntryKind};

#[test]
fn mutants_of_valid_records() {
    run_mutants(log_entry_decode, &seeds(), &[], 6000);
}

#[test]
fn generated_entries() {
    run_generated(5000, entry(), |bytes| log_entry_decode(bytes));
}

#[test]
fn saved_inputs() {
    replay_saved("log_entry_decode", log_entry_decode);
}

fn edgy_u64() -> impl Strategy<Value = u64> {
    prop_oneof![
        Just(0u64),
        Just(1),
        Just(u64::from(u32::MAX)),
        Just(i64::MAX as u64),
        Just(u64::MAX),
        any::<u64>(),
    ]
}

/// A whole entry, then maybe cut short, given a wrong total size or kind (with its
/// checksums made right again, or not), or followed by more bytes.
fn entry() -> impl Strategy<Value = Vec<u8>> {
    (
        (edgy_u64(), edgy_u64(), edgy_u64(), 0u8..3),
        prop::collection::vec(any::<u8>(), 0..600),
        (any::<u8>(), any::<u32>(), any::<u16>(), any::<bool>()),
    )
        .prop_map(
            |((index, term, position, kind), body, (how, value, cut, reseal))| {
                let kind = EntryKind::from_u8(kind).unwrap_or(EntryKind::Normal);
                let mut bytes = Vec::new();
                encode_entry(&mut bytes, index, term, position, kind, &body);
                match how % 6 {
                    0 => bytes.truncate(usize::from(cut) % (bytes.len() + 1)),
                    1 => bytes[4..8].copy_from_slice(&value.to_le_bytes()),
                    2 => bytes[32] = value as u8,
                    3 => bytes.extend_from_slice(&value.to_le_bytes()),
                    4 => bytes[33 + usize::from(cut) % 11] ^= 1 + value as u8 % 255,
                    _ => {}
                }
                if reseal {
                    reseal_entry(&mut bytes);
                }
                bytes
            },
        )
}
