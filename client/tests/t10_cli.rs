//! The tools' error paths that need no cluster: bad usage exits 2 and an unreachable
//! nameserver exits 1, each with exactly one line on stderr.

use std::process::{Command, Output};

fn run(bin: &str, args: &[&str]) -> Output {
    Command::new(bin)
        .args(args)
        .env_remove("NAMESRV_ADDR")
        .env_remove("RUST_LOG")
        .output()
        .unwrap()
}

/// Asserts `out` failed with `code` and one stderr line starting `prefix` and containing
/// `needle`.
fn assert_one_line(out: &Output, code: i32, prefix: &str, needle: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(code), "stderr: {stderr}");
    assert_eq!(stderr.lines().count(), 1, "not one line: {stderr:?}");
    assert!(stderr.starts_with(prefix), "{stderr:?}");
    assert!(stderr.contains(needle), "{needle:?} not in {stderr:?}");
}

const MQADMIN: &str = env!("CARGO_BIN_EXE_mqadmin");
const MQBENCH: &str = env!("CARGO_BIN_EXE_mqbench");

#[test]
fn t11_mqadmin_bad_usage_exits_2_with_one_line() {
    assert_one_line(
        &run(MQADMIN, &["clusterList", "--bogus"]),
        2,
        "mqadmin: ",
        "--bogus",
    );
    assert_one_line(&run(MQADMIN, &["topicRoute"]), 2, "mqadmin: ", "--topic");
    assert_one_line(
        &run(MQADMIN, &["noSuchCommand"]),
        2,
        "mqadmin: ",
        "noSuchCommand",
    );
    assert_one_line(
        &run(MQADMIN, &["updateTopic", "-t", "T", "-p", "5"]),
        2,
        "mqadmin: ",
        "permission",
    );
}

#[test]
fn t12_mqadmin_unreachable_nameserver_exits_1_naming_it() {
    for cmd in [
        &["clusterList"][..],
        &["topicRoute", "-t", "T"],
        &["sendMessage", "-t", "T", "-p", "x"],
    ] {
        let mut args = cmd.to_vec();
        args.extend(["-n", "127.0.0.1:1"]);
        assert_one_line(&run(MQADMIN, &args), 1, "mqadmin: ", "127.0.0.1:1");
    }
    // A malformed list is bad usage.
    assert_one_line(
        &run(MQADMIN, &["clusterList", "-n", "nonsense"]),
        2,
        "mqadmin: ",
        "nonsense",
    );
}

#[test]
fn t13_help_lists_rocketmq_sub_commands() {
    let out = run(MQADMIN, &["--help"]);
    assert_eq!(out.status.code(), Some(0));
    let help = String::from_utf8_lossy(&out.stdout);
    for name in [
        "clusterList",
        "topicList",
        "topicRoute",
        "topicStatus",
        "updateTopic",
        "deleteTopic",
        "brokerStatus",
        "consumerProgress",
        "sendMessage",
        "consumeMessage",
        "queryMsgById",
    ] {
        assert!(help.contains(name), "{name} missing from --help");
    }
    let out = run(MQBENCH, &["producer", "--help"]);
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stdout).contains("--record"));
}

#[test]
fn t14_mqbench_errors_are_one_line() {
    assert_one_line(
        &run(MQBENCH, &["producer", "--bogus"]),
        2,
        "mqbench: ",
        "--bogus",
    );
    assert_one_line(
        &run(MQBENCH, &["producer", "--duration", "soon"]),
        2,
        "mqbench: ",
        "soon",
    );
    let out = run(MQBENCH, &["producer", "-n", "127.0.0.1:1", "--count", "1"]);
    assert_one_line(&out, 1, "mqbench: ", "127.0.0.1:1");
    let out = run(
        MQBENCH,
        &["verify", "--acked", "/nonexistent/acked.txt", "-t", "T"],
    );
    assert_one_line(&out, 1, "mqbench: ", "/nonexistent/acked.txt");
}
