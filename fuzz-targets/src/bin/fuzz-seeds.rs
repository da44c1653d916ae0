//! Writes the seed corpus of the targets whose input is plain bytes: `fuzz-seeds [DIR]` makes
//! `DIR/<target>/seed-<n>` (DIR defaults to `fuzz/corpus`, where `cargo fuzz run <target>`
//! reads and grows its corpus). `log_recovery` needs none: its input is a structured case.

use std::path::PathBuf;

use fuzz_targets::{command, log_entry, properties};

fn main() -> std::io::Result<()> {
    let root = std::env::args_os()
        .nth(1)
        .map_or_else(|| PathBuf::from("fuzz/corpus"), PathBuf::from);
    for (target, seeds) in [
        ("properties_parse", properties::seeds()),
        ("log_entry_decode", log_entry::seeds()),
        ("command_decode", command::seeds()),
    ] {
        let dir = root.join(target);
        std::fs::create_dir_all(&dir)?;
        for (i, seed) in seeds.iter().enumerate() {
            std::fs::write(dir.join(format!("seed-{i}")), seed)?;
        }
        println!("{}: {} seeds", dir.display(), seeds.len());
    }
    Ok(())
}
