//! The two bounded runs every target gets in `cargo test`, and the replay of saved inputs.
#![allow(dead_code)]

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;

use fuzz_targets::mutate::mutants;
use proptest::strategy::Strategy;
use proptest::test_runner::{Config, TestRunner};

/// Runs `target` on each seed, then on `count` deterministic mutants of them; a failure
/// names the mutant and shows its bytes.
pub fn run_mutants(target: fn(&[u8]), seeds: &[Vec<u8>], tokens: &[&str], count: usize) {
    for (i, seed) in seeds.iter().enumerate() {
        check(target, seed, &format!("seed {i}"));
    }
    for (i, input) in mutants(seeds, tokens, count, 0x5eed).enumerate() {
        check(target, &input, &format!("mutant {i}"));
    }
}

/// Runs `check` on `cases` inputs drawn from `strategy`; proptest shrinks a failing one.
pub fn run_generated<S: Strategy>(cases: u32, strategy: S, check: impl Fn(&S::Value)) {
    let config = Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    };
    let result = TestRunner::new(config).run(&strategy, |input| {
        check(&input);
        Ok(())
    });
    if let Err(e) = result {
        panic!("{e}");
    }
}

fn check(target: fn(&[u8]), input: &[u8], name: &str) {
    if catch_unwind(AssertUnwindSafe(|| target(input))).is_err() {
        panic!(
            "{name} fails (the panic is above); its {} bytes: {}",
            input.len(),
            hex(input)
        );
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Runs `target` on every input saved under `fuzz-targets/regressions/<name>/`: the crashes
/// `cargo fuzz` found, kept once fixed.
pub fn replay_saved(name: &str, target: fn(&[u8])) {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("regressions")
        .join(name);
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return;
    };
    for entry in entries {
        let path = entry.expect("a saved input").path();
        let input = std::fs::read(&path).expect("reading a saved input");
        check(target, &input, &path.display().to_string());
    }
}
