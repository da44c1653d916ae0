//! Running `mqcluster` from tests: a [`Cluster`] guard that brings a layout up in a temp
//! dir on a random port range and makes sure no process outlives the test.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde_json::Value;

/// How long a cluster gets to elect a new leader after a kill.
pub const FAILOVER_DEADLINE: Duration = Duration::from_secs(30);

/// The directory the test's `mqcluster` looks for `mqbroker` and `mqnamesrv` in.
pub fn bin_dir() -> PathBuf {
    match std::env::var_os("MQCLUSTER_BIN_DIR").filter(|d| !d.is_empty()) {
        Some(dir) => PathBuf::from(dir),
        None => Path::new(env!("CARGO_BIN_EXE_mqcluster"))
            .parent()
            .expect("mqcluster has a directory")
            .to_path_buf(),
    }
}

/// Builds `mqbroker` and `mqnamesrv` into the test's target dir once, if they are not
/// there yet (`cargo test --workspace` has built them already; `cargo test -p mqcluster`
/// has not).
pub fn ensure_server_binaries() {
    static BUILT: OnceLock<()> = OnceLock::new();
    BUILT.get_or_init(|| {
        let dir = bin_dir();
        if dir.join("mqbroker").is_file() && dir.join("mqnamesrv").is_file() {
            return;
        }
        // target/<profile>/mqcluster: build the same profile into the same target dir.
        let profile_dir = Path::new(env!("CARGO_BIN_EXE_mqcluster"))
            .parent()
            .expect("profile dir");
        let target_dir = profile_dir.parent().expect("target dir");
        let profile = match profile_dir.file_name().and_then(|n| n.to_str()) {
            Some("debug") | None => "dev",
            Some(other) => other,
        };
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
        let out = Command::new(cargo)
            .args([
                "build",
                "-p",
                "broker",
                "-p",
                "nameserver",
                "--bins",
                "--profile",
            ])
            .arg(profile)
            .arg("--target-dir")
            .arg(target_dir)
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .output()
            .expect("run cargo");
        assert!(
            out.status.success(),
            "cannot build mqbroker and mqnamesrv:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    });
}

pub fn mqcluster(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_mqcluster"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("run mqcluster")
}

pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Whether `pid` still runs `command` (as mqcluster itself decides it).
pub fn runs(pid: u64, command: &[String]) -> bool {
    std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|raw| {
        let args: Vec<&[u8]> = raw
            .strip_suffix(&[0])
            .unwrap_or(&raw)
            .split(|&b| b == 0)
            .collect();
        !raw.is_empty()
            && args.len() == command.len()
            && args.iter().zip(command).all(|(a, c)| *a == c.as_bytes())
    })
}

/// A cluster started by `mqcluster up` in a temp dir; stopped (for sure) when dropped.
pub struct Cluster {
    /// Holds one `attempt-N` data dir per `up` tried.
    tmp: tempfile::TempDir,
    /// The data dir of the last attempt.
    pub dir: PathBuf,
}

impl Cluster {
    /// `mqcluster up --base-port P` with a random P; again with another P (and a fresh data
    /// dir) when a port turns out to be taken.
    pub fn up(extra: &[&str]) -> (Cluster, Output) {
        ensure_server_binaries();
        let mut cluster = Cluster {
            tmp: tempfile::tempdir().expect("temp dir"),
            dir: PathBuf::new(),
        };
        for attempt in 0..5 {
            cluster.dir = cluster.tmp.path().join(format!("attempt-{attempt}"));
            let base = rand::random_range(20000u16..60000).to_string();
            // The layouts of this checkout, wherever the target dir is (CARGO_TARGET_DIR).
            let conf = concat!(env!("CARGO_MANIFEST_DIR"), "/../conf");
            let mut args = vec!["up", "--base-port", &base, "--conf-dir", conf];
            args.extend_from_slice(extra);
            let out = cluster.run(&args);
            if out.status.success() || !text(&out.stderr).contains("in use") {
                return (cluster, out);
            }
        }
        panic!("no free port range found in 5 attempts");
    }

    pub fn run(&self, args: &[&str]) -> Output {
        run_in(&self.dir, args)
    }

    pub fn status(&self) -> Value {
        let out = self.run(&["status", "--json"]);
        assert!(out.status.success(), "status: {}", text(&out.stderr));
        serde_json::from_slice(&out.stdout).expect("status --json is JSON")
    }

    /// Polls `status --json` until `check` accepts it.
    pub fn wait_for(&self, what: &str, check: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + FAILOVER_DEADLINE;
        loop {
            let status = self.status();
            if check(&status) {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}; last status: {status:#}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// `mqcluster ARGS --data-dir DIR`.
pub fn run_in(dir: &Path, args: &[&str]) -> Output {
    let mut all = args.to_vec();
    all.extend(["--data-dir", dir.to_str().expect("utf-8 temp dir")]);
    mqcluster(&all)
}

/// Every (pid, command) a cluster.json records.
pub fn recorded(dir: &Path) -> Vec<(u64, Vec<String>)> {
    let Ok(raw) = std::fs::read(dir.join("cluster.json")) else {
        return Vec::new();
    };
    let file: Value = serde_json::from_slice(&raw).expect("cluster.json is JSON");
    file["nodes"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|n| {
            let pid = n["pid"].as_u64()?;
            let command = n["command"]
                .as_array()?
                .iter()
                .filter_map(|a| a.as_str().map(str::to_owned))
                .collect();
            Some((pid, command))
        })
        .collect()
}

impl Drop for Cluster {
    /// `down` every attempt's cluster, then SIGKILL any recorded pid that survived; on a
    /// failing test, show the end of every log first.
    fn drop(&mut self) {
        let dirs: Vec<PathBuf> = std::fs::read_dir(self.tmp.path())
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path())
            .collect();
        for dir in dirs {
            if std::thread::panicking() {
                print_logs(&dir);
            }
            let pids = recorded(&dir);
            let _ = run_in(&dir, &["down", "--grace", "5s"]);
            for (pid, command) in pids {
                if runs(pid, &command) {
                    // SAFETY: kill(2) on a pid checked just above to run a recorded command.
                    #[allow(unsafe_code)]
                    unsafe {
                        libc::kill(pid as libc::pid_t, libc::SIGKILL);
                    }
                }
            }
        }
    }
}

pub fn print_logs(dir: &Path) {
    for entry in std::fs::read_dir(dir.join("logs"))
        .into_iter()
        .flatten()
        .flatten()
    {
        let log = std::fs::read_to_string(entry.path()).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        eprintln!("---- {} (last 30 lines) ----", entry.path().display());
        for line in &lines[lines.len().saturating_sub(30)..] {
            eprintln!("{line}");
        }
    }
}

/// The live nodes of a status, and the names of those that say they lead.
pub fn live_and_leaders(status: &Value) -> (usize, Vec<String>) {
    let nodes = status["nodes"].as_array().expect("nodes");
    let live = nodes.iter().filter(|n| n["alive"] == true).count();
    let leaders = nodes
        .iter()
        .filter(|n| n["alive"] == true && n["role"] == "LEADER")
        .map(|n| n["name"].as_str().unwrap_or_default().to_owned())
        .collect();
    (live, leaders)
}

pub fn group(status: &Value) -> &Value {
    &status["groups"][0]
}
