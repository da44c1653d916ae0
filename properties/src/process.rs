//! What every raftmq process does with its command line and environment before it starts:
//! the flags a server reads its configuration from ([`ServerArgs`]), and logging
//! ([`init_logging`]); and how a tool that starts servers learns what configuration one
//! would run with ([`effective_config`]).
//!
//! `mqbroker` and `mqnamesrv` take the same three flags (RocketMQ's `-c`, `-p`, plus
//! raftmq's `--set key=value`) and log the same way; `mqadmin`, `mqbench`, `e2e-bench` and the
//! raft-log tools log the same way too, so a change to either lands everywhere at once.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::Command;

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

/// The effective configuration of server `program` (`mqbroker`, `mqnamesrv`) started with
/// property file `file` and `--set` overrides `sets`, key by key: what `program -c FILE --set
/// ... -p` prints (defaults, aliases and overrides applied). A tool that starts servers reads
/// the keys it needs from this instead of interpreting the file itself, so it and the server
/// never disagree about a file.
pub fn effective_config(
    program: &Path,
    file: &Path,
    sets: &[String],
) -> Result<BTreeMap<String, String>, crate::Error> {
    let mut cmd = Command::new(program);
    cmd.arg("-c").arg(file);
    for set in sets {
        cmd.arg("--set").arg(set);
    }
    let out = cmd.arg("-p").output().map_err(|source| crate::Error::Run {
        program: program.to_owned(),
        source,
    })?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        let message = stderr
            .lines()
            .rev()
            .map(str::trim)
            .find(|l| !l.is_empty())
            .unwrap_or("no error message")
            .to_owned();
        return Err(crate::Error::Rejected {
            program: program.to_owned(),
            file: file.to_owned(),
            message,
        });
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let pairs = crate::parse_str(&text, file)?;
    Ok(pairs.into_iter().map(|p| (p.key, p.value)).collect())
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

    /// A stand-in server program: a shell script with `body`, in `dir`.
    fn fake_server(dir: &Path, body: &str) -> PathBuf {
        use std::os::unix::fs::PermissionsExt;
        let path = dir.join("server");
        std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        path
    }

    #[test]
    fn effective_config_passes_file_and_overrides_and_reads_back_what_is_printed() {
        let dir = tempfile::tempdir().unwrap();
        // Arguments: -c FILE --set A --set B -p
        let server = fake_server(
            dir.path(),
            r#"[ "$1 $3 $5 $7" = "-c --set --set -p" ] || exit 3
echo "file=$2"; echo "$4"; echo "$6"; echo 'escaped=a\:b'"#,
        );
        let sets = ["brokerId=1".to_string(), "brokerId=2".to_string()];
        let config = effective_config(&server, Path::new("b.properties"), &sets).unwrap();
        assert_eq!(config["file"], "b.properties");
        // Later lines win, as for the server itself.
        assert_eq!(config["brokerId"], "2");
        assert_eq!(config["escaped"], "a:b");
    }

    #[test]
    fn effective_config_names_the_file_and_the_servers_last_complaint() {
        let dir = tempfile::tempdir().unwrap();
        let server = fake_server(
            dir.path(),
            "echo 'warning' >&2; echo 'bad key x' >&2; exit 1",
        );
        let err = effective_config(&server, Path::new("b.properties"), &[]).unwrap_err();
        let text = err.to_string();
        assert!(text.starts_with("b.properties: "), "{text}");
        assert!(text.ends_with("rejects it: bad key x"), "{text}");
        let missing = effective_config(&dir.path().join("none"), Path::new("b"), &[]);
        assert!(matches!(missing, Err(crate::Error::Run { .. })));
    }
}
