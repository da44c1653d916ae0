//! `log_recovery`, bounded: valid stores (several segments, purged or not, empty) harmed by
//! deterministic damage and torn tails, and generated stores and harms.

mod common;

use common::{replay_saved, run_generated};
use fuzz_targets::log_recovery::{
    check_recovery, log_recovery, Damage, EntrySpec, FileKind, FileRef, Harm, RecoveryCase,
    StoreSpec, TailPiece,
};
use fuzz_targets::mutate::{mutate, Rng};
use proptest::prelude::*;

/// Valid stores the harms start from.
fn stores() -> Vec<StoreSpec> {
    let entries = |n: usize, len: usize| -> Vec<EntrySpec> {
        (0..n)
            .map(|i| EntrySpec {
                term: 1 + i as u64 / 7,
                kind: (i % 5 == 0) as u8 * 2 + (i % 5 != 0) as u8,
                body: vec![i as u8; (i * 37) % len],
            })
            .collect()
    };
    vec![
        // Several small segments.
        StoreSpec {
            segment_steps: 4,
            first_index: 1,
            entries: entries(30, 200),
            purge: None,
        },
        // Purged into the middle, then past the end.
        StoreSpec {
            segment_steps: 2,
            first_index: 100,
            entries: entries(20, 150),
            purge: Some(7),
        },
        StoreSpec {
            segment_steps: 0,
            first_index: 0,
            entries: entries(6, 100),
            purge: Some(40),
        },
        // One segment, and nothing at all.
        StoreSpec {
            segment_steps: 60,
            first_index: 1,
            entries: entries(12, 300),
            purge: None,
        },
        StoreSpec {
            segment_steps: 0,
            first_index: 1,
            entries: Vec::new(),
            purge: None,
        },
    ]
}

fn file_ref(rng: &mut Rng) -> FileRef {
    let kind = match rng.below(8) {
        0..=4 => FileKind::Segment,
        5 | 6 => FileKind::Index,
        _ => FileKind::Meta,
    };
    FileRef {
        kind,
        ordinal: rng.next_u64() as u8,
    }
}

fn damage(rng: &mut Rng) -> Damage {
    let file = file_ref(rng);
    let at = rng.next_u64() as u32;
    match rng.below(12) {
        0..=3 => Damage::Flip {
            file,
            at,
            mask: rng.next_u64() as u8,
        },
        4 | 5 => Damage::Truncate { file, at },
        6 | 7 => Damage::Zero {
            file,
            at,
            len: rng.below(300) as u16,
        },
        8 => Damage::Overwrite {
            file,
            at,
            bytes: (0..rng.below(64)).map(|_| rng.edgy() as u8).collect(),
        },
        9 | 10 => Damage::Copy {
            from: file_ref(rng),
            from_at: rng.next_u64() as u32,
            to: file,
            at,
            len: rng.below(600) as u16,
        },
        _ => Damage::Remove { file },
    }
}

/// A tail: a mutated run of entries that continue the log, or pieces of raw bytes and
/// entries that nearly continue it.
fn tail(rng: &mut Rng) -> Vec<TailPiece> {
    let entry = |rng: &mut Rng, near: bool| TailPiece::Entry {
        index_delta: if near { rng.below(5) as i8 - 2 } else { 0 },
        position_delta: if near && rng.one_in(2) {
            rng.below(5) as i8 - 2
        } else {
            0
        },
        term: rng.edgy(),
        kind: rng.below(4) as u8,
        body: vec![rng.next_u64() as u8; rng.below(200)],
    };
    (0..1 + rng.below(5))
        .map(|_| match rng.below(4) {
            0 => entry(rng, false),
            1 => entry(rng, true),
            _ => {
                let seed: Vec<u8> = (0..rng.below(120)).map(|_| rng.next_u64() as u8).collect();
                TailPiece::Raw(mutate(&seed, &[], &["RMQE"], rng))
            }
        })
        .collect()
}

#[test]
fn damaged_valid_stores() {
    let mut rng = Rng::new(0xda3a6e);
    for (i, store) in stores().into_iter().enumerate() {
        for round in 0..300 {
            let damages = (0..1 + rng.below(3)).map(|_| damage(&mut rng)).collect();
            let case = RecoveryCase {
                store: store.clone(),
                harm: Harm::Damage(damages),
            };
            checked(&case, &format!("store {i}, damage round {round}"));
        }
    }
}

#[test]
fn torn_tails_of_valid_stores() {
    let mut rng = Rng::new(0x7a11);
    for (i, store) in stores().into_iter().enumerate() {
        for round in 0..200 {
            let case = RecoveryCase {
                store: store.clone(),
                harm: Harm::Tail(tail(&mut rng)),
            };
            checked(&case, &format!("store {i}, tail round {round}"));
        }
    }
}

#[test]
fn generated_stores_and_harms() {
    run_generated(1500, case(), check_recovery);
}

#[test]
fn saved_inputs() {
    replay_saved("log_recovery", log_recovery);
}

fn checked(case: &RecoveryCase, name: &str) {
    let result = std::panic::catch_unwind(|| check_recovery(case));
    if result.is_err() {
        panic!("{name} fails (the panic is above): {case:?}");
    }
}

fn case() -> impl Strategy<Value = RecoveryCase> {
    let entry = (
        prop_oneof![Just(1u64), Just(0), Just(u64::MAX), any::<u64>()],
        0u8..4,
        prop::collection::vec(any::<u8>(), 0..400),
    )
        .prop_map(|(term, kind, body)| EntrySpec { term, kind, body });
    let store = (
        0u8..32,
        prop_oneof![4 => 0u64..1000, 1 => Just(u64::MAX - 3), 1 => any::<u64>()],
        prop::collection::vec(entry, 0..40),
        prop::option::weighted(0.3, any::<u8>()),
    )
        .prop_map(|(segment_steps, first_index, entries, purge)| StoreSpec {
            segment_steps,
            first_index,
            entries,
            purge,
        });
    let harm = prop_oneof![
        any::<u64>().prop_map(|seed| {
            let mut rng = Rng::new(seed);
            Harm::Tail(tail(&mut rng))
        }),
        any::<u64>().prop_map(|seed| {
            let mut rng = Rng::new(seed);
            Harm::Damage((0..1 + rng.below(3)).map(|_| damage(&mut rng)).collect())
        }),
    ];
    (store, harm).prop_map(|(store, harm)| RecoveryCase { store, harm })
}
