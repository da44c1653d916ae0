//! `raft-log-dump`: prints what a raft-log store directory holds and checks it, without
//! changing a byte (opening a store repairs a torn tail; this never does).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use raft_log::inspect::{self, StoreReport};

/// Exit status when the store is damaged.
const EXIT_DAMAGED: u8 = 1;
/// Exit status for a usage error or a store that cannot be read at all.
const EXIT_USAGE: u8 = 2;

#[derive(Debug, Parser)]
#[command(
    name = "raft-log-dump",
    version,
    about = "Print and check a raft-log store directory (read-only)",
    long_about = "Print and check a raft-log store directory (storePathCommitLog) without \
changing it: its segments (base position, index range, entry count, bytes used, term runs, \
entry kinds), whether each index file agrees with the data, the metadata files, and every \
problem found.\n\nA problem is a TORN TAIL when it is at the end of the last segment, where a \
crash leaves an incomplete write and opening the store truncates the log; anything else is \
CORRUPTION: opening the store refuses it, a read of an entry fails, or whole entries would be \
lost. Each problem says which.\n\nExit status: 0 healthy, 1 damaged (torn tail or corruption), \
2 usage error or unreadable directory. Set RUST_LOG (e.g. debug) for progress on stderr.",
    after_help = "Examples:\n  raft-log-dump /data/store/commitlog\n  raft-log-dump --verify \
/data/store/commitlog && echo healthy\n  raft-log-dump --json DIR | jq '.problems[0]'"
)]
struct Args {
    /// The store directory.
    dir: PathBuf,

    /// Check only: print one line, `ok: ...` (exit 0) or `FILE: byte OFFSET: WHAT` for the
    /// first problem (exit 1).
    #[arg(long)]
    verify: bool,

    /// Print the whole report as JSON (the exit status is as without it).
    #[arg(long)]
    json: bool,
}

fn main() -> ExitCode {
    raftmq_properties::process::init_logging("warn");
    let args = Args::parse();
    match run(&args) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("raft-log-dump: {e:#}");
            ExitCode::from(EXIT_USAGE)
        }
    }
}

fn run(args: &Args) -> anyhow::Result<ExitCode> {
    if !args.dir.is_dir() {
        anyhow::bail!(
            "{}: no such directory (give the store directory, storePathCommitLog)",
            args.dir.display()
        );
    }
    let report = inspect::inspect(&args.dir)?;
    tracing::debug!(
        segments = report.segments.len(),
        problems = report.problems.len(),
        "inspected"
    );
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else if args.verify {
        println!("{}", verdict(&report));
    } else {
        print!("{report}");
    }
    Ok(if report.is_healthy() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_DAMAGED)
    })
}

/// The one line `--verify` prints.
fn verdict(report: &StoreReport) -> String {
    match report.first_problem() {
        Some(problem) => problem.to_string(),
        None => format!(
            "ok: {}: {} entries{} in {} segments",
            report.dir.display(),
            report.entries,
            match (report.first_index, report.last_index) {
                (Some(first), Some(last)) => format!(" ({first}..={last})"),
                _ => String::new(),
            },
            report.segments.len()
        ),
    }
}
