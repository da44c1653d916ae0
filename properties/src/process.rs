//! What every raftmq process does with its command line and environment before it starts:
//! the flags a server reads its configuration from ([`ServerArgs`]), and logging
//! ([`init_logging`]).
//!
//! `mqbroker` and `mqnamesrv` take the same three flags (RocketMQ's `-c`, `-p`, plus
//! raftmq's `--set key=value`) and log the same way; `mqadmin`, `mqbench`, `e2e-bench` and the
//! raft-log tools log the same way too, so a change to either lands everywhere at once.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use tracing_subscriber::EnvFilter;

/// The command-line flags of a server process, to `#[command(flatten)]` into its clap
/// arguments.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct ServerArgs {
    /// Property file (Java .properties with RocketMQ's key names).
    #[arg(
        short = 'c',
        long = "configFile",
        visible_alias = "config",
        value_name = "FILE"
    )]
    pub config_file: Option<PathBuf>,
    /// Set a key, overriding the file; repeatable.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
    /// Print the effective configuration as key=value lines and exit.
    #[arg(short = 'p', long = "printConfigItem")]
    pub print_config: bool,
}

impl ServerArgs {
    /// The property file, if one was given.
    pub fn config_file(&self) -> Option<&Path> {
        self.config_file.as_deref()
    }

    /// The `--set` overrides followed by `extra` ones (a process's own shorthand flags, such
    /// as `mqbroker -n`), in the order they apply: later ones win.
    pub fn overrides(&self, extra: impl IntoIterator<Item = String>) -> Vec<String> {
        self.set.iter().cloned().chain(extra).collect()
    }
}

/// Logs to stderr, filtered by `RUST_LOG` when it is set, else by `default_filter` (a
/// `RUST_LOG`-style directive list such as `"info,openraft::replication=off"`).
///
/// Colours only when stderr is a terminal: `mqcluster` and the process tests send it to log
/// files, where escape codes are noise for `grep` and `less`. A second call leaves the first
/// set-up in place.
pub fn init_logging(default_filter: &str) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_filter));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .try_init();
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        server: ServerArgs,
        #[arg(short = 'n')]
        namesrv: Option<String>,
    }

    #[test]
    fn server_flags_parse_in_either_spelling_and_overrides_keep_their_order() {
        let cli = Cli::try_parse_from([
            "x",
            "-c",
            "a.properties",
            "--set",
            "k=1",
            "-n",
            "h:1",
            "--set",
            "k=2",
            "-p",
        ])
        .unwrap();
        assert_eq!(cli.server.config_file(), Some(Path::new("a.properties")));
        assert!(cli.server.print_config);
        let extra = cli.namesrv.map(|n| format!("namesrvAddr={n}"));
        assert_eq!(
            cli.server.overrides(extra),
            ["k=1", "k=2", "namesrvAddr=h:1"]
        );
        for long in ["--configFile", "--config"] {
            let cli = Cli::try_parse_from(["x", long, "b"]).unwrap();
            assert_eq!(cli.server.config_file(), Some(Path::new("b")));
        }
        let bare = Cli::try_parse_from(["x"]).unwrap();
        assert_eq!(bare.server.config_file(), None);
        assert!(bare.server.overrides(None).is_empty());
    }
}
