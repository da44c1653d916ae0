//! The mqnamesrv process itself: configuration errors, a port in use, --help, -p, a graceful
//! stop on SIGTERM, its log output and its connections' socket options.

mod common;

use std::io::Write;
use std::time::{Duration, Instant};

use common::{run_to_exit, watch, Namesrv};
use proto::v1 as pb;

#[test]
fn t40_bad_config_value_is_one_line_naming_file_line_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("namesrv.properties");
    let mut file = std::fs::File::create(&path).unwrap();
    writeln!(file, "# test\nlistenPort=0\nbrokerExpiryMs=five").unwrap();
    drop(file);

    let out = run_to_exit(&["-c", path.to_str().unwrap()]);
    assert!(!out.status.success());
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty(), "nothing on stdout: {:?}", out.stdout);
    let lines: Vec<&str> = out.stderr.lines().collect();
    assert_eq!(lines.len(), 1, "one line: {:?}", out.stderr);
    assert_eq!(
        lines[0],
        format!(
            "mqnamesrv: {}:3: brokerExpiryMs = five is not allowed; expected an integer from 1 to 86400000",
            path.display()
        )
    );

    let out = run_to_exit(&["--set", "listenPort=99999"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        out.stderr.trim_end(),
        "mqnamesrv: --set: listenPort = 99999 is not allowed; expected an integer from 0 to 65535"
    );

    let out = run_to_exit(&["-c", "/nonexistent/namesrv.properties"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(out.stderr.lines().count(), 1, "{:?}", out.stderr);
    assert!(out
        .stderr
        .starts_with("mqnamesrv: /nonexistent/namesrv.properties: cannot read:"));
}

#[test]
fn t41_port_in_use_is_one_line_naming_the_address() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    let out = run_to_exit(&["--set", &format!("listenPort={}", addr.port())]);
    assert_eq!(out.status.code(), Some(1));
    let errors: Vec<&str> = out
        .stderr
        .lines()
        .filter(|l| l.starts_with("mqnamesrv:"))
        .collect();
    assert_eq!(errors.len(), 1, "{:?}", out.stderr);
    assert!(
        errors[0].starts_with(&format!("mqnamesrv: cannot listen on {addr}: ")),
        "{}",
        errors[0]
    );
    assert!(
        errors[0].contains("listenPort"),
        "says what to do: {}",
        errors[0]
    );
}

#[test]
fn t42_help_explains_keys_and_p_prints_the_effective_config() {
    let out = run_to_exit(&["--help"]);
    assert!(out.status.success());
    for key in [
        "-c",
        "--set",
        "listenPort=9876",
        "bindAddress=127.0.0.1",
        "brokerExpiryMs=5000",
        "scanNotActiveBrokerInterval",
        "witnessStorePath",
    ] {
        assert!(
            out.stdout.contains(key),
            "--help mentions {key}:\n{}",
            out.stdout
        );
    }

    let out = run_to_exit(&[
        "-p",
        "--set",
        "brokerExpiryMs=1234",
        "--set",
        "listenAddress=0.0.0.0",
        "--set",
        "witnessStorePath=/srv/w",
    ]);
    assert!(out.status.success(), "{}", out.stderr);
    assert_eq!(
        out.stdout,
        "listenPort=9876\nbindAddress=0.0.0.0\nbrokerExpiryMs=1234\nscanNotActiveBrokerInterval=200\nwitnessStorePath=/srv/w\n"
    );
}

#[test]
fn t43_unknown_key_is_a_warning_not_an_error() {
    let out = run_to_exit(&["-p", "--set", "brokerExpiryMS=1"]);
    assert!(out.status.success(), "{}", out.stderr);
    assert!(
        out.stderr.contains("did you mean brokerExpiryMs?"),
        "{}",
        out.stderr
    );
}

#[test]
fn t46_logs_to_a_pipe_or_file_carry_no_colour_codes() {
    // stderr is a pipe here, as it is a log file under mqcluster: no terminal to colour for.
    let out = run_to_exit(&["-p", "--set", "brokerExpiryMS=1"]);
    assert!(
        out.stderr.contains(" WARN "),
        "a logged line: {}",
        out.stderr
    );
    assert!(
        !out.stderr.contains("\x1b["),
        "colour codes: {:?}",
        out.stderr
    );
}

#[tokio::test]
async fn t44_sigterm_stops_gracefully_with_status_0_even_with_a_watcher() {
    let mut namesrv = Namesrv::start(&[]);
    let mut client = namesrv.client();
    let (mut stream, _) = watch(&mut client).await;

    namesrv.signal(libc::SIGTERM);
    let status = tokio::task::spawn_blocking(move || {
        let status = namesrv.wait_exit();
        (status, namesrv.stderr_text())
    })
    .await
    .unwrap();
    assert_eq!(status.0.code(), Some(0), "stderr:\n{}", status.1);
    // The watch stream ended (cleanly or as a broken connection) instead of holding the
    // stop up.
    let end = tokio::time::timeout(common::DEADLINE, stream.message())
        .await
        .expect("the watch stream ends");
    assert!(
        !matches!(end, Ok(Some(_))),
        "no event after the stop: {end:?}"
    );
}

#[tokio::test]
async fn t45_sigint_stops_gracefully_too() {
    let mut namesrv = Namesrv::start(&[]);
    namesrv.signal(libc::SIGINT);
    let status = tokio::task::spawn_blocking(move || namesrv.wait_exit())
        .await
        .unwrap();
    assert_eq!(status.code(), Some(0));
}

/// Accepted connections have TCP_NODELAY: with Nagle on, a reply written in pieces (headers,
/// data, trailers) waited for the client's delayed ACK, and ListTopics of a few hundred topics
/// took 44 ms every time. A functional check of the socket option, not a performance target:
/// the bound is far above a loopback round trip and far below the 40 ms of a delayed ACK.
#[tokio::test]
async fn t47_unary_calls_are_not_held_back_by_nagle() {
    let namesrv = Namesrv::start(&[]);
    let mut client = namesrv.client();
    // A reply big enough to be written in more than one piece.
    let mut member = common::member("g", 0, 1, true);
    member.topics = (0..300)
        .map(|i| pb::TopicConfig {
            topic_name: format!("TopicWithAFairlyLongName{i:04}"),
            read_queue_nums: 4,
            write_queue_nums: 4,
            perm: proto::PERM_READ | proto::PERM_WRITE,
            order: false,
        })
        .collect();
    common::register(&mut client, member).await;
    // The first call connects; the ones after it reuse the connection.
    client
        .list_topics(pb::ListTopicNamesRequest::default())
        .await
        .expect("ListTopics");
    let mut took = Vec::new();
    for _ in 0..20 {
        let started = Instant::now();
        client
            .list_topics(pb::ListTopicNamesRequest::default())
            .await
            .expect("ListTopics");
        took.push(started.elapsed());
    }
    took.sort();
    let median = took[took.len() / 2];
    assert!(
        median < Duration::from_millis(20),
        "median ListTopics call {median:?} (all: {took:?})"
    );
}
