//! Bad input and unsupported layouts: one line `mqcluster: ...` on stderr, a non-zero exit,
//! and nothing left running.

mod common;

use common::{mqcluster, recorded, text, Cluster};

/// The last stderr line (earlier ones may be progress lines) is the error.
fn error_line(stderr: &[u8]) -> String {
    text(stderr).lines().last().unwrap_or_default().to_owned()
}

#[test]
fn t20_bad_command_lines_are_one_line_usage_errors() {
    for args in [
        &["up", "--bogus"][..],
        &["up", "--layout", "3m"],
        &["up", "--timeout", "soon"],
        &["kill"],
        &["frobnicate"],
    ] {
        let out = mqcluster(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let stderr = text(&out.stderr);
        assert_eq!(stderr.lines().count(), 1, "{args:?}: {stderr}");
        assert!(stderr.starts_with("mqcluster: "), "{args:?}: {stderr}");
    }
    let help = mqcluster(&["up", "--help"]);
    assert!(help.status.success());
    assert!(text(&help.stdout).contains("--base-port"));
}

#[test]
fn t21_commands_on_a_missing_cluster_fail_in_one_line() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_str().unwrap();
    for args in [
        &["status", "--data-dir", dir][..],
        &["kill", "n0", "--data-dir", dir],
        &["restart", "n0", "--data-dir", dir],
        &["down", "--data-dir", dir],
    ] {
        let out = mqcluster(args);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        let stderr = text(&out.stderr);
        assert_eq!(stderr.lines().count(), 1, "{args:?}: {stderr}");
        assert!(
            stderr.starts_with(&format!("mqcluster: no cluster in {dir}")),
            "{args:?}: {stderr}"
        );
    }
}

#[test]
fn t22_missing_programs_are_named() {
    let tmp = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_mqcluster"))
        .args([
            "up",
            "--conf-dir",
            concat!(env!("CARGO_MANIFEST_DIR"), "/../conf"),
            "--data-dir",
        ])
        .arg(tmp.path().join("c"))
        .env("MQCLUSTER_BIN_DIR", tmp.path())
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        error_line(&out.stderr).starts_with("mqcluster: mqbroker is not in MQCLUSTER_BIN_DIR="),
        "{}",
        text(&out.stderr)
    );
}

/// A cluster that is not ready by the deadline: `up` fails in one line naming the groups
/// and what they still lack, and stops what it started. (A zero timeout: no broker can have
/// registered when the first look is taken.)
#[test]
fn t23_a_cluster_not_ready_in_time_fails_cleanly() {
    let (cluster, out) = Cluster::up(&["--layout", "2m-2s-sync", "--timeout", "0s"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stdout));
    let line = error_line(&out.stderr);
    assert!(
        line.starts_with(
            "mqcluster: no leaders, voting in-sync slaves and witnesses within 0ns: broker-a: "
        ),
        "{}",
        text(&out.stderr)
    );
    assert!(line.contains("; broker-b: "), "{line}");
    assert!(text(&out.stdout).is_empty(), "{}", text(&out.stdout));
    let json = std::fs::read_to_string(cluster.dir.join("cluster.json")).unwrap();
    assert!(recorded(&cluster.dir).is_empty(), "pids kept: {json}");
    // Every process it started is gone: mqcluster runs them in the data dir.
    let dir = cluster.dir.canonicalize().unwrap();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(cwd) = std::fs::read_link(entry.path().join("cwd")) else {
            continue;
        };
        let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
        assert!(
            !cwd.starts_with(&dir),
            "left running: {}",
            String::from_utf8_lossy(&cmdline).replace('\0', " ")
        );
    }
}
