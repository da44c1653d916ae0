//! Helpers shared by the crates that start real raftmq processes on loopback: the broker's and
//! the workspace's process tests, and `e2e-bench`.

use std::future::Future;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// The workspace root (where `conf/` is).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the testkit crate lives one level below the workspace root")
        .to_path_buf()
}

/// Waits until `check` returns `Some`, polling every 20 ms; panics naming `what` after
/// `timeout`. The way a process test waits for a condition instead of sleeping.
pub async fn wait_for<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits until `observe` gives the same value (`Some`) for every one of `replicas`, polling
/// every 20 ms; returns it. After `timeout` it panics naming `what` and what each replica
/// showed last, so a test that waits for replicas to agree says how they disagreed.
pub async fn wait_until_equal<T, F, Fut>(
    what: &str,
    timeout: Duration,
    replicas: &[usize],
    mut observe: F,
) -> T
where
    T: PartialEq + Clone + std::fmt::Debug,
    F: FnMut(usize) -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        let mut seen = Vec::with_capacity(replicas.len());
        for &i in replicas {
            seen.push((i, observe(i).await));
        }
        if let Some((_, Some(first))) = seen.first() {
            if seen.iter().all(|(_, v)| v.as_ref() == Some(first)) {
                return first.clone();
            }
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}; last seen (replica, value): {seen:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// First port handed out; the range stays below the kernel's ephemeral range (32768 and up).
const FIRST: u32 = 20_000;
/// Ports in the range.
const COUNT: u32 = 12_000;

/// `count` distinct free ports on 127.0.0.1 for processes to bind soon after.
///
/// They come from below the ephemeral range: a port from that range, once released, can go to
/// some process's outgoing connection before the server binds it (seen in CI as "Address
/// already in use"). Each process starts at its own offset and never hands a port out twice;
/// the ports are held open together while they are picked, then released.
pub fn free_ports(count: usize) -> std::io::Result<Vec<u16>> {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let start = std::process::id().wrapping_mul(7919) % COUNT;
    let mut held = Vec::with_capacity(count);
    for _ in 0..COUNT {
        if held.len() == count {
            break;
        }
        let port = (FIRST + (start + NEXT.fetch_add(1, Ordering::Relaxed)) % COUNT) as u16;
        if let Ok(listener) = TcpListener::bind(("127.0.0.1", port)) {
            held.push(listener);
        }
    }
    if held.len() < count {
        return Err(std::io::Error::new(
            std::io::ErrorKind::AddrInUse,
            format!(
                "no {count} free ports on 127.0.0.1 in {FIRST}..{}",
                FIRST + COUNT
            ),
        ));
    }
    held.iter()
        .map(|l| l.local_addr().map(|a| a.port()))
        .collect()
}

/// One free port; see [`free_ports`]. Panics when none is left (tests only).
pub fn free_port() -> u16 {
    match free_ports(1) {
        Ok(ports) => ports[0],
        Err(e) => panic!("{e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_are_distinct_bindable_and_below_the_ephemeral_range() {
        let ports = free_ports(20).unwrap();
        let distinct: std::collections::HashSet<_> = ports.iter().collect();
        assert_eq!(distinct.len(), 20);
        for p in ports {
            assert!((FIRST as u16..(FIRST + COUNT) as u16).contains(&p));
            TcpListener::bind(("127.0.0.1", p)).unwrap();
        }
    }
}
