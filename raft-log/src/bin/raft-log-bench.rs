//! `raft-log-bench`: the store against plain file IO on the same disk, in one run.
//!
//! Each phase writes through the store and through plain sequential file writes (same entry
//! encoding, same chunk sizes) and prints one `RESULT bench=NAME key=value ...` line on
//! stdout; progress goes to stderr through `tracing`. `--help` lists the targets the store is
//! meant to reach; nothing here asserts them (the disk and CPUs are often shared).

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::{Parser, Subcommand, ValueEnum};
use raft_log::format::{encode_entry, ENTRY_HEADER_LEN};
use raft_log::{EntryKind, FlushMode, LogConfig, LogStore, NewEntry};
use tracing::info;

const TERM: u64 = 1;
/// How often the hidden fill process reports the store's end position.
const FILL_REPORT_BYTES: u64 = 8 << 20;

#[derive(Debug, Parser)]
#[command(
    name = "raft-log-bench",
    version,
    about = "Benchmark the raft-log store against plain file IO on the same disk",
    long_about = concat!(
        "Benchmark the raft-log store against plain file IO on the same disk. Each phase ",
        "prints one `RESULT bench=NAME key=value ...` line on stdout (MB = 10^6 bytes; ratio = ",
        "store / plain) and progress on stderr. Phases, with their targets (not asserted):\n\n",
        "  async_append             ASYNC_FLUSH, --batch entries per append, vs plain write_all of\n",
        "                           the same bytes with an fdatasync every flush interval from a\n",
        "                           second thread (ratio >= 0.8; plain_no_fsync_mb_per_s: no fsync)\n",
        "  sync_group_commit        SYNC_FLUSH, --appenders threads of append_next + wait_flushed,\n",
        "                           vs one thread doing write + fdatasync per entry (ratio >= 10)\n",
        "  sync_vs_plain_fdatasync  SYNC_FLUSH, one writer, a batch per append then wait, vs write +\n",
        "                           fdatasync of the same batch; alternating rounds (ratio >= 0.8)\n",
        "  read_by_index            one thread, scattered indexes, from the page cache\n",
        "                           (>= 1,000,000 entries/s)\n",
        "  reopen_after_kill        kill -9 a child process filling a store (1 GiB segments) once it\n",
        "                           holds --reopen-gib, then time LogStore::open (<= 1 s)\n\n",
        "Build with --release: cargo run --release -p raft-log --bin raft-log-bench -- --seconds 3"
    )
)]
#[command(args_conflicts_with_subcommands = true)]
struct Args {
    #[command(subcommand)]
    internal: Option<Internal>,

    /// Directory to work in (a fresh sub-directory is made and removed); default $TMPDIR or /tmp.
    #[arg(long)]
    dir: Option<PathBuf>,

    /// Seconds per timed phase.
    #[arg(long, default_value_t = 3.0)]
    seconds: f64,

    /// Run one phase only.
    #[arg(long, value_enum)]
    only: Option<Bench>,

    /// Size the store reaches before its writer is killed (reopen_after_kill).
    #[arg(long, default_value_t = 1.0)]
    reopen_gib: f64,

    /// Concurrent appenders in sync_group_commit.
    #[arg(long, default_value_t = 64)]
    appenders: usize,

    /// Entries per append call (async_append, sync_vs_plain_fdatasync, fills).
    #[arg(long, default_value_t = 64)]
    batch: usize,

    /// Body bytes per entry.
    #[arg(long, default_value_t = 1024)]
    body_bytes: usize,

    /// Page-cache window of the store in async_append, in MiB (the broker's
    /// pageCacheWindowCommitLog); 0 leaves caching to the kernel, as plain writes do.
    #[arg(long, default_value_t = 0)]
    cache_window_mib: u64,

    /// Keep the work directory afterwards.
    #[arg(long)]
    keep: bool,
}

#[derive(Debug, Subcommand)]
enum Internal {
    /// Appends to a store until killed, printing `end=POSITION` every 8 MiB (used by
    /// reopen_after_kill).
    #[command(hide = true)]
    FillUntilKilled {
        #[arg(long)]
        dir: PathBuf,
        #[arg(long)]
        batch: usize,
        #[arg(long)]
        body_bytes: usize,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Bench {
    #[value(name = "async_append")]
    AsyncAppend,
    #[value(name = "sync_group_commit")]
    SyncGroupCommit,
    #[value(name = "sync_vs_plain_fdatasync")]
    SyncVsPlainFdatasync,
    #[value(name = "read_by_index")]
    ReadByIndex,
    #[value(name = "reopen_after_kill")]
    ReopenAfterKill,
}

const ALL: [Bench; 5] = [
    Bench::AsyncAppend,
    Bench::SyncGroupCommit,
    Bench::SyncVsPlainFdatasync,
    Bench::ReadByIndex,
    Bench::ReopenAfterKill,
];

fn main() -> ExitCode {
    raftmq_properties::process::init_logging("info");
    let args = Args::parse();
    let result = match &args.internal {
        Some(Internal::FillUntilKilled {
            dir,
            batch,
            body_bytes,
        }) => fill_until_killed(dir, *batch, *body_bytes),
        None => run(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("raft-log-bench: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// What every phase needs.
struct Setup {
    work: PathBuf,
    phase: Duration,
    batch: usize,
    body: Vec<u8>,
    appenders: usize,
    reopen_bytes: u64,
    cache_window: Option<u64>,
}

impl Setup {
    /// Encoded size of one entry.
    fn entry_len(&self) -> u64 {
        (ENTRY_HEADER_LEN + self.body.len()) as u64
    }

    /// `n` consecutive entries from `first`, all carrying the bench body.
    fn entries(&self, first: u64, n: usize) -> Vec<NewEntry<'_>> {
        (0..n as u64)
            .map(|i| NewEntry {
                index: first + i,
                term: TERM,
                kind: EntryKind::Normal,
                body: &self.body,
            })
            .collect()
    }

    /// The bytes the store writes for `n` entries, for the plain-file side.
    fn encoded(&self, n: usize) -> Vec<u8> {
        let mut out = Vec::with_capacity(n * self.entry_len() as usize);
        for i in 0..n as u64 {
            let at = out.len() as u64;
            encode_entry(&mut out, 1 + i, TERM, at, EntryKind::Normal, &self.body);
        }
        out
    }
}

/// A work directory removed when the run ends.
struct WorkDir {
    path: PathBuf,
    keep: bool,
}

impl Drop for WorkDir {
    fn drop(&mut self) {
        if self.keep {
            eprintln!("raft-log-bench: kept {}", self.path.display());
        } else if let Err(e) = std::fs::remove_dir_all(&self.path) {
            eprintln!("raft-log-bench: cannot remove {}: {e}", self.path.display());
        }
    }
}

fn run(args: &Args) -> anyhow::Result<()> {
    let positive = |v: f64| v.is_finite() && v > 0.0;
    if !positive(args.seconds)
        || !positive(args.reopen_gib)
        || args.batch == 0
        || args.appenders == 0
    {
        bail!("--seconds, --batch, --appenders and --reopen-gib must be positive");
    }
    let parent = args.dir.clone().unwrap_or_else(std::env::temp_dir);
    let work = WorkDir {
        path: parent.join(format!("raft-log-bench-{}", std::process::id())),
        keep: args.keep,
    };
    std::fs::create_dir_all(&work.path)
        .with_context(|| format!("create {}", work.path.display()))?;
    info!(dir = %work.path.display(), "working directory");
    let setup = Setup {
        work: work.path.clone(),
        phase: Duration::from_secs_f64(args.seconds),
        batch: args.batch,
        body: (0..args.body_bytes).map(|i| (i * 31 % 251) as u8).collect(),
        appenders: args.appenders,
        reopen_bytes: (args.reopen_gib * (1u64 << 30) as f64) as u64,
        cache_window: Some(args.cache_window_mib << 20).filter(|&w| w > 0),
    };
    for bench in ALL {
        if args.only.is_some_and(|only| only != bench) {
            continue;
        }
        let line = match bench {
            Bench::AsyncAppend => async_append(&setup),
            Bench::SyncGroupCommit => sync_group_commit(&setup),
            Bench::SyncVsPlainFdatasync => sync_vs_plain_fdatasync(&setup),
            Bench::ReadByIndex => read_by_index(&setup),
            Bench::ReopenAfterKill => reopen_after_kill(&setup),
        }
        .with_context(|| format!("{bench:?}"))?;
        println!("RESULT {line}");
        std::io::stdout().flush()?;
    }
    Ok(())
}

fn mb_per_s(bytes: u64, elapsed: Duration) -> f64 {
    bytes as f64 / 1e6 / elapsed.as_secs_f64()
}

fn per_s(n: u64, elapsed: Duration) -> f64 {
    n as f64 / elapsed.as_secs_f64()
}

/// A fresh, empty sub-directory of the work directory.
fn fresh(setup: &Setup, name: &str) -> anyhow::Result<PathBuf> {
    let dir = setup.work.join(name);
    if dir.exists() {
        std::fs::remove_dir_all(&dir)?;
    }
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

/// A plain file created in the work directory, removed when dropped.
struct PlainFile {
    path: PathBuf,
    file: std::fs::File,
}

impl PlainFile {
    fn create(setup: &Setup, name: &str) -> anyhow::Result<Self> {
        let path = setup.work.join(name);
        let file = std::fs::File::create(&path)?;
        Ok(Self { path, file })
    }
}

impl Drop for PlainFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// ASYNC_FLUSH batched appends for the phase's duration, then plain sequential `write_all` of
/// the same bytes in the same chunks: once with an fdatasync from a second thread at the
/// store's flush interval (the same durability policy: the ratio's denominator), once with no
/// fsync at all (page-cache speed, for reference).
fn async_append(setup: &Setup) -> anyhow::Result<String> {
    let config = LogConfig::new(fresh(setup, "async")?).cache_window(setup.cache_window);
    let FlushMode::Async { interval } = config.flush else {
        bail!("the default flush mode is expected to be ASYNC_FLUSH");
    };
    info!(
        "async_append: store, ASYNC_FLUSH every {interval:?}, {} entries per append, page-cache window {:?} bytes",
        setup.batch, setup.cache_window
    );
    let dir = config.dir.clone();
    let store = LogStore::open(config)?;
    let mut next = 1u64;
    let mut slowest = Duration::ZERO;
    let start = Instant::now();
    while start.elapsed() < setup.phase {
        let t = Instant::now();
        store.append(&setup.entries(next, setup.batch))?;
        slowest = slowest.max(t.elapsed());
        next += setup.batch as u64;
    }
    let store_time = start.elapsed();
    store.close()?;
    std::fs::remove_dir_all(&dir)?;
    let appends = (next - 1) / setup.batch as u64;
    let bytes = appends * setup.batch as u64 * setup.entry_len();

    let chunk = setup.encoded(setup.batch);
    info!("async_append: plain write_all of the same {bytes} bytes, fdatasync every {interval:?}");
    let plain_time = plain_writes(setup, &chunk, appends, Some(interval))?;
    info!("async_append: plain write_all of the same {bytes} bytes, no fsync");
    let page_cache_time = plain_writes(setup, &chunk, appends, None)?;

    let store_mb = mb_per_s(bytes, store_time);
    let plain_mb = mb_per_s(bytes, plain_time);
    Ok(format!(
        "bench=async_append mb_per_s={store_mb:.1} plain_mb_per_s={plain_mb:.1} ratio={:.2} \
         plain_no_fsync_mb_per_s={:.1} entries={} bytes={bytes} batch={} body_bytes={} \
         slowest_append_ms={:.1} cache_window_bytes={}",
        store_mb / plain_mb,
        mb_per_s(bytes, page_cache_time),
        appends * setup.batch as u64,
        setup.batch,
        setup.body.len(),
        slowest.as_secs_f64() * 1e3,
        setup.cache_window.unwrap_or(0)
    ))
}

/// Writes `chunk` `times` to a fresh file with `write_all`, with an fdatasync from a second
/// thread every `interval` if given; returns the writer's time.
fn plain_writes(
    setup: &Setup,
    chunk: &[u8],
    times: u64,
    interval: Option<Duration>,
) -> anyhow::Result<Duration> {
    let mut plain = PlainFile::create(setup, "plain-async.dat")?;
    let syncer = plain.file.try_clone()?;
    let done = AtomicBool::new(false);
    std::thread::scope(|s| {
        let (syncer, done) = (&syncer, &done);
        let flusher = interval.map(|interval| {
            s.spawn(move || -> std::io::Result<()> {
                while !done.load(Ordering::Relaxed) {
                    std::thread::sleep(interval);
                    syncer.sync_data()?;
                }
                Ok(())
            })
        });
        let start = Instant::now();
        let written = (0..times).try_for_each(|_| plain.file.write_all(chunk));
        let elapsed = start.elapsed();
        done.store(true, Ordering::Relaxed);
        if let Some(flusher) = flusher {
            flusher
                .join()
                .map_err(|_| anyhow::anyhow!("the fsync thread panicked"))??;
        }
        written?;
        Ok(elapsed)
    })
}

/// Latency percentile (`p` in 0..=100) of sorted samples, in microseconds.
fn percentile_us(sorted: &[Duration], p: usize) -> u128 {
    if sorted.is_empty() {
        return 0;
    }
    sorted[(sorted.len() - 1) * p / 100].as_micros()
}

/// SYNC_FLUSH group commit: many threads each append one entry and wait for its fsync; vs one
/// thread doing write + fdatasync per entry.
fn sync_group_commit(setup: &Setup) -> anyhow::Result<String> {
    info!(
        "sync_group_commit: store, SYNC_FLUSH, {} threads of append_next + wait_flushed",
        setup.appenders
    );
    let dir = fresh(setup, "group")?;
    let store = LogStore::open(LogConfig::new(&dir).flush(FlushMode::Sync))?;
    let stop = AtomicBool::new(false);
    let start = Instant::now();
    let per_thread: Vec<anyhow::Result<Vec<Duration>>> = std::thread::scope(|s| {
        let workers: Vec<_> = (0..setup.appenders)
            .map(|_| {
                s.spawn(|| -> anyhow::Result<Vec<Duration>> {
                    let mut latencies = Vec::new();
                    while !stop.load(Ordering::Relaxed) {
                        let t = Instant::now();
                        let (_, appended) =
                            store.append_next(TERM, EntryKind::Normal, &setup.body)?;
                        store.wait_flushed(appended.seq)?;
                        latencies.push(t.elapsed());
                    }
                    Ok(latencies)
                })
            })
            .collect();
        std::thread::sleep(setup.phase);
        stop.store(true, Ordering::Relaxed);
        workers
            .into_iter()
            .map(|w| {
                w.join()
                    .unwrap_or_else(|_| Err(anyhow::anyhow!("appender panicked")))
            })
            .collect()
    });
    let store_time = start.elapsed();
    let mut latencies = Vec::new();
    for l in per_thread {
        latencies.extend(l?);
    }
    latencies.sort_unstable();
    store.close()?;
    std::fs::remove_dir_all(&dir)?;
    let ops = latencies.len() as u64;

    info!("sync_group_commit: plain write + fdatasync per entry, one thread");
    let entry = setup.encoded(1);
    let mut plain = PlainFile::create(setup, "plain-fsync-each.dat")?;
    let mut plain_ops = 0u64;
    let start = Instant::now();
    while start.elapsed() < setup.phase {
        plain.file.write_all(&entry)?;
        plain.file.sync_data()?;
        plain_ops += 1;
    }
    let plain_time = start.elapsed();
    drop(plain);

    let store_rate = per_s(ops, store_time);
    let plain_rate = per_s(plain_ops, plain_time);
    Ok(format!(
        "bench=sync_group_commit appenders={} ops_per_s={store_rate:.0} \
         one_fsync_per_append_ops_per_s={plain_rate:.0} ratio={:.1} p50_us={} p99_us={} \
         plain_fsync_us={:.0}",
        setup.appenders,
        store_rate / plain_rate,
        percentile_us(&latencies, 50),
        percentile_us(&latencies, 99),
        1e6 / plain_rate
    ))
}

/// Rounds the fsync-bound comparisons are split into, alternating store and plain, so that a
/// change in what else the shared disk is doing weighs on both sides alike.
const ROUNDS: u32 = 6;

/// SYNC_FLUSH, one writer: a batch per append, then wait for its fsync; vs write + fdatasync
/// of the same batch bytes, as many times. The two alternate in [`ROUNDS`] rounds.
fn sync_vs_plain_fdatasync(setup: &Setup) -> anyhow::Result<String> {
    info!(
        "sync_vs_plain_fdatasync: store (SYNC_FLUSH, {} entries per append + wait) and plain \
         write + fdatasync of the same batches, alternating in {ROUNDS} rounds",
        setup.batch
    );
    let dir = fresh(setup, "sync")?;
    let store = LogStore::open(LogConfig::new(&dir).flush(FlushMode::Sync))?;
    let chunk = setup.encoded(setup.batch);
    let mut plain = PlainFile::create(setup, "plain-sync.dat")?;
    let (mut store_time, mut plain_time) = (Duration::ZERO, Duration::ZERO);
    let mut next = 1u64;
    for _ in 0..ROUNDS {
        let round = setup.phase / ROUNDS;
        let first = next;
        let start = Instant::now();
        while start.elapsed() < round {
            let appended = store.append(&setup.entries(next, setup.batch))?;
            store.wait_flushed(appended.seq)?;
            next += setup.batch as u64;
        }
        store_time += start.elapsed();
        let start = Instant::now();
        for _ in (first..next).step_by(setup.batch) {
            plain.file.write_all(&chunk)?;
            plain.file.sync_data()?;
        }
        plain_time += start.elapsed();
    }
    store.close()?;
    std::fs::remove_dir_all(&dir)?;
    drop(plain);
    let batches = (next - 1) / setup.batch as u64;
    let bytes = batches * setup.batch as u64 * setup.entry_len();

    let store_mb = mb_per_s(bytes, store_time);
    let plain_mb = mb_per_s(bytes, plain_time);
    Ok(format!(
        "bench=sync_vs_plain_fdatasync batch={} mb_per_s={store_mb:.1} \
         plain_mb_per_s={plain_mb:.1} batches_per_s={:.0} plain_batches_per_s={:.0} ratio={:.2}",
        setup.batch,
        per_s(batches, store_time),
        per_s(batches, plain_time),
        store_mb / plain_mb
    ))
}

/// Reads by index from one thread, in a scattered order, after one untimed pass has brought
/// every page into the page cache and the store's mapping.
fn read_by_index(setup: &Setup) -> anyhow::Result<String> {
    // 256 MiB of entries: well inside the page cache, well past the CPU caches.
    let count = ((256u64 << 20) / setup.entry_len()).max(1);
    info!("read_by_index: writing {count} entries");
    let dir = fresh(setup, "read")?;
    let store = LogStore::open(LogConfig::new(&dir))?;
    let mut next = 1u64;
    while next <= count {
        let n = (setup.batch as u64).min(count - next + 1) as usize;
        store.append(&setup.entries(next, n))?;
        next += n as u64;
    }
    let mut checksum = 0usize;
    for index in 1..=count {
        checksum = checksum.wrapping_add(store.read(index)?.body.len());
    }
    info!("read_by_index: reading in a scattered order, one thread");
    // An odd stride visits every index of a power-of-two range once per cycle; indexes past
    // `count` are skipped.
    let span = count.next_power_of_two();
    let stride = (span / 2 + span / 8 + 1) | 1;
    let mut reads = 0u64;
    let mut cursor = 0u64;
    let start = Instant::now();
    while start.elapsed() < setup.phase {
        for _ in 0..4096 {
            cursor = (cursor + stride) & (span - 1);
            if cursor < count {
                let entry = store.read(cursor + 1)?;
                checksum = checksum.wrapping_add(entry.body.len());
                reads += 1;
            }
        }
    }
    let elapsed = start.elapsed();
    std::hint::black_box(checksum);
    store.close()?;
    std::fs::remove_dir_all(&dir)?;
    Ok(format!(
        "bench=read_by_index entries_per_s={:.0} entries={count} body_bytes={}",
        per_s(reads, elapsed),
        setup.body.len()
    ))
}

/// Fills a store in a child process (this binary, `fill-until-killed`), kills it with SIGKILL
/// once the store holds `reopen_bytes`, then times `LogStore::open` here. Default 1 GiB
/// segments and ASYNC_FLUSH, like production.
fn reopen_after_kill(setup: &Setup) -> anyhow::Result<String> {
    let dir = fresh(setup, "reopen")?;
    info!(
        "reopen_after_kill: filling a store to {} bytes in a child process",
        setup.reopen_bytes
    );
    let exe = std::env::current_exe().context("locate this executable")?;
    let mut child = Command::new(exe)
        .arg("fill-until-killed")
        .arg("--dir")
        .arg(&dir)
        .arg("--batch")
        .arg(setup.batch.to_string())
        .arg("--body-bytes")
        .arg(setup.body.len().to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .context("start the fill process")?;
    let pid = child.id();
    let stdout = child.stdout.take().context("the fill process's stdout")?;
    // From here on the child dies with us, whatever happens.
    let mut child = KillOnDrop(child);
    let mut reached = None;
    for line in BufReader::new(stdout).lines() {
        let line = line?;
        if let Some(end) = line
            .strip_prefix("end=")
            .and_then(|v| v.parse::<u64>().ok())
        {
            if end >= setup.reopen_bytes {
                reached = Some(end);
                break;
            }
        }
    }
    // SIGKILL while it keeps appending: what a crash leaves behind.
    child.0.kill().context("kill the fill process")?;
    let status = child.0.wait()?;
    let Some(reported) = reached else {
        bail!("the fill process (pid {pid}) stopped before the store reached the size: {status}");
    };
    info!(pid, %status, reported, "reopen_after_kill: killed the writer; reopening");
    let start = Instant::now();
    let store = LogStore::open(LogConfig::new(&dir))?;
    let reopen = start.elapsed();
    let segments = store.segments();
    let store_bytes: u64 = segments.iter().map(|s| s.used_bytes).sum();
    let last_index = store.last_log_id().map_or(0, |l| l.index);
    store.close()?;
    std::fs::remove_dir_all(&dir)?;
    Ok(format!(
        "bench=reopen_after_kill store_bytes={store_bytes} reopen_ms={:.1} segments={} \
         last_index={last_index}",
        reopen.as_secs_f64() * 1e3,
        segments.len()
    ))
}

/// A child process killed (SIGKILL, by its pid) and reaped when dropped.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        // Both fail harmlessly once the child has been killed and reaped.
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The child side of reopen_after_kill: appends forever, reporting progress on stdout.
fn fill_until_killed(dir: &Path, batch: usize, body_bytes: usize) -> anyhow::Result<()> {
    let setup = Setup {
        work: dir.to_path_buf(),
        phase: Duration::ZERO,
        batch: batch.max(1),
        body: vec![0x5a; body_bytes],
        appenders: 1,
        reopen_bytes: 0,
        cache_window: None,
    };
    let store = LogStore::open(LogConfig::new(dir))?;
    let mut out = std::io::stdout().lock();
    let mut next = 1u64;
    let mut report_at = FILL_REPORT_BYTES;
    loop {
        let appended = store.append(&setup.entries(next, setup.batch))?;
        next += setup.batch as u64;
        if appended.end_position >= report_at {
            writeln!(out, "end={}", appended.end_position)?;
            out.flush()?;
            report_at = appended.end_position + FILL_REPORT_BYTES;
        }
    }
}
