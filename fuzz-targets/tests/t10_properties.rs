//! `properties_parse`, bounded: mutants of the shipped property files, and generated files
//! that are mostly well formed (known keys with values of their own kind or at the edges,
//! every separator, escapes, continuations, comments, line ends, Latin-1).

mod common;

use std::path::Path;

use common::{replay_saved, run_generated, run_mutants};
use fuzz_targets::properties::{properties_parse, seeds, TOKENS};
use proptest::prelude::*;
use proptest::sample::select;
use raftmq_properties::{escape_key, escape_value, parse_bytes};

#[test]
fn mutants_of_the_shipped_files() {
    run_mutants(properties_parse, &seeds(), TOKENS, 2500);
}

#[test]
fn generated_files() {
    run_generated(1000, property_file(known_pairs()), |bytes| {
        properties_parse(bytes)
    });
}

#[test]
fn saved_inputs() {
    replay_saved("properties_parse", properties_parse);
}

/// Every pair of the shipped files, and the aliases and ignored keys they leave out.
fn known_pairs() -> Vec<(String, String)> {
    let mut pairs: Vec<(String, String)> = seeds()
        .into_iter()
        .filter_map(|bytes| parse_bytes(bytes, Path::new("seed.properties")).ok())
        .flatten()
        .map(|p| (p.key, p.value))
        .collect();
    for (key, value) in [
        ("mapedFileSizeCommitLog", "1073741824"),
        ("brokerHeartbeatInterval", "30000"),
        ("sendMessageThreadPoolNums", "16"),
        ("storePathRootDir", "~/store"),
        ("storePathCommitLog", "~/store/commitlog"),
        ("preferredLeaderId", "n1"),
        ("brokerIP2", "10.0.0.2"),
        ("aclEnable", "false"),
    ] {
        pairs.push((key.into(), value.into()));
    }
    pairs.sort();
    pairs.dedup();
    pairs
}

/// A value for any key: its own kind of value usually, else something at an edge.
fn value(own: String) -> impl Strategy<Value = String> {
    prop_oneof![
        6 => Just(own.clone()),
        1 => select(vec![
            "", "0", "-1", "+7", " 12 ", "0x10", "1e3", "65535", "65536", "4294967295",
            "4294967296", "18446744073709551615", "18446744073709551616",
            "-9223372036854775808", "99999999999999999999999", "١٢", "７", "TRUE", "yes",
        ])
        .prop_map(str::to_owned),
        1 => "\\PC{0,24}",
        1 => (Just(own.clone()), "[ \t;:=~\\\\]{1,3}").prop_map(|(v, s)| format!("{v}{s}")),
        1 => prop::collection::vec("[a-z][a-z0-9]{0,3}-[0-9.]{1,15}:[0-9]{1,6}", 0..5)
            .prop_map(|peers| peers.join(";")),
    ]
}

/// One logical line, as text (without its line end).
fn line(pairs: Vec<(String, String)>) -> impl Strategy<Value = String> {
    let pair = select(pairs)
        .prop_flat_map(|(key, own)| (Just(key), value(own)))
        .prop_flat_map(|(key, value)| {
            (
                Just(key),
                Just(value),
                select(vec!["=", ":", " ", " = ", "\t:\t", "  "]),
                any::<bool>(),
                any::<u8>(),
            )
        })
        .prop_map(|(key, value, sep, escaped, cut)| {
            let (key, value) = if escaped {
                (escape_key(&key), escape_value(&value))
            } else {
                (key, value)
            };
            let mut line = format!("{key}{sep}{value}");
            // Continue the line at a character boundary, as a long peer list would be.
            if cut % 4 == 0 && !line.is_empty() {
                let at = line
                    .char_indices()
                    .map(|(i, _)| i)
                    .nth(usize::from(cut) % line.chars().count())
                    .unwrap_or(0);
                line.insert_str(at, "\\\n    ");
            }
            line
        });
    let line = prop_oneof![
        8 => pair,
        1 => "[#!]\\PC{0,30}\\\\?",
        1 => "[ \t]{0,3}",
        1 => "\\PC{0,20}[=: ]\\PC{0,20}",
    ];
    // What may come first on a line: blanks are skipped, a byte-order mark only at the start.
    let start = select(vec!["", "", "", "", " ", "\t", "\x0c", "\u{feff}"]);
    (start, line).prop_map(|(start, line)| format!("{start}{line}"))
}

/// A whole file: lines joined by any line end, maybe a byte-order mark, maybe Latin-1.
fn property_file(pairs: Vec<(String, String)>) -> impl Strategy<Value = Vec<u8>> {
    (
        prop::collection::vec(line(pairs), 0..20),
        select(vec!["\n", "\r\n", "\r"]),
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(|(lines, end, bom, latin1)| {
            let mut text = if bom {
                "\u{feff}".to_owned()
            } else {
                String::new()
            };
            for line in lines {
                text.push_str(&line);
                text.push_str(end);
            }
            match latin1 && text.chars().all(|c| u32::from(c) < 0x100) {
                true => text.chars().map(|c| u32::from(c) as u8).collect(),
                false => text.into_bytes(),
            }
        })
}
