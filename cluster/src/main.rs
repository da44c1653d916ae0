//! `mqcluster`: the local orchestrator. Starts a nameserver and the broker groups of a
//! `conf/` layout as separate OS processes on loopback, shows their state, kills and
//! restarts nodes, and stops them all (DESIGN §1).
//!
//! Modules, by idea:
//! - a conf layout turned into nodes, ports and command lines: [`layout`];
//! - finding `mqbroker` / `mqnamesrv`, reading effective configs: [`programs`];
//! - detached starts and pid-safe signals: [`process`];
//! - `<data-dir>/cluster.json`: [`state`];
//! - what the running nodes report, and who leads: [`probe`];
//! - the table `up` and `status` print: [`report`];
//! - one module per sub-command: [`cmd`].

#![warn(clippy::unwrap_used)]

mod cmd;
mod layout;
mod probe;
mod process;
mod programs;
mod report;
mod state;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Exit status of a failed command.
const EXIT_FAILURE: u8 = 1;
/// Exit status of a command line that does not parse.
const EXIT_USAGE: u8 = 2;

const EXAMPLES: &str = "\
Examples:
  mqcluster up                                   # conf/dledger: a nameserver + 3 Raft replicas
  mqcluster up --base-port 20000 --data-dir /tmp/c1
  mqcluster up --layout 2m-2s-sync               # broker-a, broker-b: master + slave + witness
  mqcluster status                               # --json for scripts
  mqcluster kill --leader RaftNode00             # SIGKILL the group's current leader
  mqcluster restart n0                           # same command line as before
  mqcluster restart broker-a                     # classic: the master takes leadership back
  mqcluster down                                 # SIGTERM all; stores and logs stay

Every sub-command takes --data-dir (default data/<layout>; for all but `up`, the one data/*/
with a node running, else data/dledger, else the only data/*/ with a cluster.json). mqbroker
and mqnamesrv are taken from $MQCLUSTER_BIN_DIR, else from mqcluster's own directory, else
from PATH.";

/// Start, inspect and stop a local raftmq cluster: a nameserver and the broker groups of a
/// conf/ layout, each a separate process on 127.0.0.1.
#[derive(Debug, Parser)]
#[command(name = "mqcluster", version, after_help = EXAMPLES)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Start the nameserver and brokers of a layout, wait for every group's leader to be
    /// registered at the nameserver (a classic group's: with its slaves voting and in sync, and
    /// the witness voting), print the addresses, and return
    Up(cmd::up::UpArgs),
    /// Show every node: pid, alive, Raft role and term; each group's leader; a classic
    /// group's slaves (in sync or not, lag) and witness
    Status(cmd::status::StatusArgs),
    /// SIGKILL a node, or the current leader of a group
    Kill(cmd::kill::KillArgs),
    /// Start a node again with its recorded command line (stopping it first if it runs)
    Restart(cmd::restart::RestartArgs),
    /// Stop every node (SIGTERM, then SIGKILL after the grace period); keep the data
    Down(cmd::down::DownArgs),
}

/// Dies quietly on a closed stdout (`mqcluster status | head`), as command-line tools do,
/// instead of panicking in `println!`: Rust ignores SIGPIPE unless told otherwise.
#[allow(unsafe_code)]
fn default_sigpipe() {
    // SAFETY: restores the default disposition of one signal before any thread starts.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

fn main() -> ExitCode {
    default_sigpipe();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return usage_error(&e),
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => return failure(&format!("cannot start the async runtime: {e}")),
    };
    let result = runtime.block_on(async move {
        match cli.command {
            Command::Up(args) => cmd::up::run(args).await,
            Command::Status(args) => cmd::status::run(args).await,
            Command::Kill(args) => cmd::kill::run(args).await,
            Command::Restart(args) => cmd::restart::run(args).await,
            Command::Down(args) => cmd::down::run(args).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => failure(&format!("{e:#}")),
    }
}

/// One line `mqcluster: ...` on stderr; exit 1.
fn failure(message: &str) -> ExitCode {
    eprintln!("mqcluster: {}", message.replace('\n', " "));
    ExitCode::from(EXIT_FAILURE)
}

/// Help and version on stdout (exit 0); a bad command line as one line on stderr (exit 2).
fn usage_error(e: &clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    match e.kind() {
        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => {
            let _ = e.print();
            ExitCode::SUCCESS
        }
        ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            let _ = e.print();
            ExitCode::from(EXIT_USAGE)
        }
        _ => {
            // clap's first paragraph is the message; the rest is usage and tips.
            let text = e.to_string();
            let message: Vec<&str> = text
                .lines()
                .map(str::trim)
                .skip_while(|l| l.is_empty())
                .take_while(|l| !l.is_empty())
                .collect();
            let message = message.join(" ");
            eprintln!(
                "mqcluster: {} (see mqcluster --help)",
                message.strip_prefix("error: ").unwrap_or(&message)
            );
            ExitCode::from(EXIT_USAGE)
        }
    }
}
