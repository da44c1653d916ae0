//! The sub-commands, one module each, and what they share: `--data-dir`, `--timeout`
//! values and the progress line shown while waiting.

pub mod down;
pub mod kill;
pub mod restart;
pub mod status;
pub mod up;

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Result};

use crate::process;
use crate::state::DataDir;

/// Where `up` puts a layout's cluster when no `--data-dir` is given: `data/<layout>`,
/// which is also where the conf files' own `storePathRootDir` points.
pub fn default_data_dir(layout: &str) -> PathBuf {
    Path::new("data").join(layout)
}

/// `--data-dir` of the commands that act on a running cluster.
#[derive(Debug, Clone, clap::Args)]
pub struct DataDirArg {
    /// The cluster's data dir, as given to `up` [default: the one data/*/ with a node
    /// running, else data/dledger, else the only data/*/ holding a cluster.json]
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
}

impl DataDirArg {
    /// The data dir named, or the default one; it must hold a `cluster.json`.
    pub fn open(&self) -> Result<DataDir> {
        match &self.data_dir {
            Some(dir) => DataDir::open(dir),
            None => DataDir::open(&default_cluster_dir(Path::new("data"))?),
        }
    }
}

/// The one cluster of `data` with a process running (after `down` of one layout and `up` of
/// another, the one that runs); else `data/dledger` when it holds a cluster; else the one
/// directory of `data` that does.
fn default_cluster_dir(data: &Path) -> Result<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(data)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.join("cluster.json").is_file())
                .collect()
        })
        .unwrap_or_default();
    found.sort();
    let running: Vec<&PathBuf> = found.iter().filter(|dir| runs_a_node(dir)).collect();
    if let [one] = running[..] {
        return Ok(one.clone());
    }
    let dledger = data.join("dledger");
    if dledger.join("cluster.json").is_file() {
        return Ok(dledger);
    }
    match found.len() {
        1 => Ok(found.remove(0)),
        0 => Ok(dledger),
        _ => bail!(
            "several clusters under {}/ ({}); say which with --data-dir",
            data.display(),
            found
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// Whether a node recorded in `dir`'s cluster.json still runs.
fn runs_a_node(dir: &Path) -> bool {
    DataDir::open(dir)
        .and_then(|data| data.load_existing())
        .is_ok_and(|file| file.nodes.iter().any(|n| process::live_pid(n).is_some()))
}

/// Parses `--timeout`: `90s`, `500ms`, `2m`, or plain seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let (number, unit) = match text.find(|c: char| !c.is_ascii_digit()) {
        Some(at) => text.split_at(at),
        None => (text, "s"),
    };
    let n: u64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a duration such as 30s, 500ms or 2m"))?;
    match unit {
        "ms" => Ok(Duration::from_millis(n)),
        "s" => Ok(Duration::from_secs(n)),
        "m" => Ok(Duration::from_secs(n.saturating_mul(60))),
        _ => Err(format!(
            "{text:?} is not a duration such as 30s, 500ms or 2m"
        )),
    }
}

/// A wait shorter than this shows no progress line: a quick command prints only its result.
const QUIET_WAIT: Duration = Duration::from_secs(1);

/// The "waiting for ..." line on stderr once a wait has lasted [`QUIET_WAIT`]: redrawn in
/// place on a terminal, otherwise written again only when its text changes (so logs of
/// scripted runs stay short).
#[derive(Debug)]
pub struct Progress {
    terminal: bool,
    last: String,
}

impl Progress {
    /// A progress line on stderr.
    pub fn new() -> Progress {
        Progress {
            terminal: std::io::stderr().is_terminal(),
            last: String::new(),
        }
    }

    /// Shows `what`, then how long the wait has lasted (`elapsed`).
    pub fn show(&mut self, what: &str, elapsed: Duration) {
        if elapsed < QUIET_WAIT {
            return;
        }
        let mut err = std::io::stderr();
        if self.terminal {
            let _ = write!(err, "\r\x1b[2K{what} ({:.1}s)", elapsed.as_secs_f64());
            let _ = err.flush();
        } else if what != self.last {
            let _ = writeln!(err, "{what} ({:.1}s)", elapsed.as_secs_f64());
        }
        self.last = what.to_owned();
    }

    /// Removes the line (on a terminal).
    pub fn clear(&mut self) {
        if self.terminal && !self.last.is_empty() {
            let _ = write!(std::io::stderr(), "\r\x1b[2K");
            let _ = std::io::stderr().flush();
        }
        self.last.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("90"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("5h").is_err());
    }

    #[test]
    fn the_default_cluster_is_dledger_or_the_only_one() {
        let tmp = tempfile::tempdir().unwrap();
        let data = tmp.path();
        assert_eq!(default_cluster_dir(data).unwrap(), data.join("dledger"));
        std::fs::create_dir_all(data.join("2m-noslave")).unwrap();
        std::fs::write(data.join("2m-noslave/cluster.json"), "{}").unwrap();
        assert_eq!(default_cluster_dir(data).unwrap(), data.join("2m-noslave"));
        std::fs::create_dir_all(data.join("2m-2s-sync")).unwrap();
        std::fs::write(data.join("2m-2s-sync/cluster.json"), "{}").unwrap();
        assert!(default_cluster_dir(data).is_err());
        std::fs::create_dir_all(data.join("dledger")).unwrap();
        std::fs::write(data.join("dledger/cluster.json"), "{}").unwrap();
        assert_eq!(default_cluster_dir(data).unwrap(), data.join("dledger"));

        // A cluster with a live node wins over a stopped dledger one.
        let mut sleeper = std::process::Command::new("/bin/sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let file = crate::state::ClusterFile {
            format: crate::state::FORMAT_VERSION,
            layout: "2m-2s-sync".into(),
            base_port: None,
            conf_dir: PathBuf::new(),
            namesrv_addrs: Vec::new(),
            nodes: vec![crate::state::NodeRecord {
                name: "namesrv".into(),
                kind: crate::state::NodeKind::Namesrv,
                group: None,
                addr: String::new(),
                raft_addr: None,
                command: vec!["/bin/sleep".into(), "30".into()],
                log: PathBuf::new(),
                store: None,
                pid: Some(sleeper.id()),
            }],
        };
        let sync = DataDir::open(&data.join("2m-2s-sync")).unwrap();
        sync.save(&file).unwrap();
        assert_eq!(default_cluster_dir(data).unwrap(), data.join("2m-2s-sync"));
        sleeper.kill().unwrap();
        sleeper.wait().unwrap();
        assert_eq!(default_cluster_dir(data).unwrap(), data.join("dledger"));
    }
}
