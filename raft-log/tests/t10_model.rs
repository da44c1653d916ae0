//! Random sequences of append / truncate / purge / reopen against a simple in-memory model:
//! the store always reads back exactly what the model holds.

mod common;

use std::collections::BTreeMap;

use proptest::prelude::*;
use raft_log::{EntryKind, LogId, LogStore, NewEntry};

#[derive(Debug, Clone)]
enum Op {
    /// Append this many entries with these body lengths; bump the term first if set.
    Append {
        lens: Vec<usize>,
        new_term: bool,
    },
    /// Keep entries up to `last - back`.
    Truncate {
        back: u64,
    },
    /// Purge up to `first - 1 + ahead` (may go past the end).
    Purge {
        ahead: u64,
    },
    Reopen,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (prop::collection::vec(0usize..400, 1..12), any::<bool>())
            .prop_map(|(lens, new_term)| Op::Append { lens, new_term }),
        2 => (0u64..8).prop_map(|back| Op::Truncate { back }),
        1 => (0u64..12).prop_map(|ahead| Op::Purge { ahead }),
        2 => Just(Op::Reopen),
    ]
}

#[derive(Default)]
struct Model {
    entries: BTreeMap<u64, (u64, Vec<u8>)>,
    purged: Option<LogId>,
    term: u64,
}

impl Model {
    fn last(&self) -> Option<LogId> {
        match self.entries.last_key_value() {
            Some((&index, &(term, _))) => Some(LogId { index, term }),
            None => self.purged,
        }
    }

    fn next_index(&self) -> u64 {
        self.last().map_or(1, |l| l.index + 1)
    }

    fn term_of(&self, index: u64) -> Option<u64> {
        match self.entries.get(&index) {
            Some((t, _)) => Some(*t),
            None => self.purged.filter(|p| p.index == index).map(|p| p.term),
        }
    }
}

fn check(store: &LogStore, model: &Model) -> Result<(), TestCaseError> {
    prop_assert_eq!(store.last_log_id(), model.last());
    prop_assert_eq!(store.first_index(), model.entries.keys().next().copied());
    if let Some(p) = model.purged {
        prop_assert_eq!(store.last_purged().map(|l| l.index), Some(p.index));
        prop_assert_eq!(store.term_of(p.index), Some(p.term));
    }
    for (&index, (term, body)) in &model.entries {
        let e = store
            .read(index)
            .map_err(|e| TestCaseError::fail(format!("read {index}: {e}")))?;
        prop_assert_eq!(e.term, *term);
        prop_assert_eq!(&e.body[..], &body[..]);
        prop_assert_eq!(e.kind, EntryKind::Normal);
    }
    let next = model.next_index();
    prop_assert!(store.read(next).is_err());
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn store_matches_model(seg_size in 600u64..3000, ops in prop::collection::vec(op(), 1..40)) {
        let dir = tempfile::tempdir().unwrap();
        let config = common::sync_config(dir.path(), seg_size);
        let mut store = LogStore::open(config.clone()).unwrap();
        let mut model = Model { term: 1, ..Model::default() };
        let mut counter = 0u64;
        for op in ops {
            match op {
                Op::Append { lens, new_term } => {
                    if new_term {
                        model.term += 1;
                    }
                    let start = model.next_index();
                    let bodies: Vec<Vec<u8>> = lens
                        .iter()
                        .map(|&n| {
                            counter += 1;
                            (0..n).map(|i| (counter as usize * 31 + i) as u8).collect()
                        })
                        .collect();
                    let entries: Vec<NewEntry<'_>> = bodies
                        .iter()
                        .enumerate()
                        .map(|(i, b)| NewEntry {
                            index: start + i as u64,
                            term: model.term,
                            kind: EntryKind::Normal,
                            body: b,
                        })
                        .collect();
                    let appended = store.append(&entries).unwrap();
                    store.wait_flushed(appended.seq).unwrap();
                    for (i, b) in bodies.into_iter().enumerate() {
                        model.entries.insert(start + i as u64, (model.term, b));
                    }
                }
                Op::Truncate { back } => {
                    let Some(last) = model.entries.keys().next_back().copied() else { continue };
                    let floor = model.entries.keys().next().copied().unwrap_or(1) - 1;
                    let keep = last.saturating_sub(back).max(floor);
                    store.truncate_after(keep).unwrap();
                    model.entries.retain(|&i, _| i <= keep);
                }
                Op::Purge { ahead } => {
                    let first = model.entries.keys().next().copied().unwrap_or(model.next_index());
                    let upto = first - 1 + ahead;
                    if upto == 0 || model.purged.is_some_and(|p| p.index >= upto) {
                        continue;
                    }
                    let term = model.term_of(upto).unwrap_or(model.term);
                    store.purge_up_to(LogId { index: upto, term }).unwrap();
                    model.entries.retain(|&i, _| i > upto);
                    model.purged = Some(LogId { index: upto, term });
                }
                Op::Reopen => {
                    drop(store);
                    store = LogStore::open(config.clone()).unwrap();
                }
            }
            check(&store, &model)?;
        }
        drop(store);
        let store = LogStore::open(config).unwrap();
        check(&store, &model)?;
    }
}
