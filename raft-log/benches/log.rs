//! Micro-benchmarks of the log store: batched appends (ASYNC_FLUSH), reads by index, and the
//! entry codec. Measurement times are short so `cargo bench -p raft-log` takes a minute or two;
//! `raft-log-bench` compares the store with plain file IO instead.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use raft_log::format::{check_body, decode_entry_header, encode_entry, ENTRY_HEADER_LEN};
use raft_log::{EntryKind, LogConfig, LogId, LogStore, NewEntry};

const BODY: usize = 1024;
const BATCH: u64 = 64;
/// Segments small enough that purging old ones keeps the disk use of a run bounded.
const SEGMENT: u64 = 64 << 20;
/// Entries kept when the append benchmark purges.
const KEEP: u64 = 128 * 1024;

fn body() -> Vec<u8> {
    (0..BODY).map(|i| (i * 7 % 251) as u8).collect()
}

fn entries(body: &[u8], first: u64, n: u64) -> Vec<NewEntry<'_>> {
    (first..first + n)
        .map(|index| NewEntry {
            index,
            term: 1,
            kind: EntryKind::Normal,
            body,
        })
        .collect()
}

fn append(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = LogStore::open(LogConfig::new(dir.path()).segment_size(SEGMENT)).expect("open");
    let body = body();
    let mut next = 1u64;
    let mut group = c.benchmark_group("append");
    group.throughput(Throughput::Bytes(BATCH * (ENTRY_HEADER_LEN + BODY) as u64));
    group.bench_function("batch_64x1KiB_async_flush", |b| {
        b.iter_custom(|iters| {
            let mut timed = Duration::ZERO;
            for _ in 0..iters {
                let batch = entries(&body, next, BATCH);
                let start = Instant::now();
                store.append(&batch).expect("append");
                timed += start.elapsed();
                next += BATCH;
                // Untimed: drop old segments so a run does not fill the disk.
                if next > 2 * KEEP && (next - 1).is_multiple_of(KEEP) {
                    let upto = LogId {
                        term: 1,
                        index: next - 1 - KEEP,
                    };
                    store.purge_up_to(upto).expect("purge");
                }
            }
            timed
        })
    });
    group.finish();
    store.close().expect("close");
}

fn read(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = LogStore::open(LogConfig::new(dir.path()).segment_size(SEGMENT)).expect("open");
    let body = body();
    let count = 64 * 1024u64;
    for first in (1..=count).step_by(BATCH as usize) {
        store.append(&entries(&body, first, BATCH)).expect("append");
    }
    let mut group = c.benchmark_group("read");
    group.throughput(Throughput::Elements(1));
    let mut cursor = 0u64;
    group.bench_function("by_index_1KiB", |b| {
        b.iter(|| {
            // An odd stride over a power-of-two count: a scattered order that visits all.
            cursor = (cursor + 40_503) % count;
            black_box(store.read(cursor + 1).expect("read").body.len())
        })
    });
    group.finish();
    store.close().expect("close");
}

fn codec(c: &mut Criterion) {
    let body = body();
    let mut buf = Vec::with_capacity(ENTRY_HEADER_LEN + BODY);
    encode_entry(&mut buf, 42, 7, 4096, EntryKind::Normal, &body);
    let encoded = buf.clone();
    let header = decode_entry_header(&encoded, u64::MAX)
        .expect("valid")
        .expect("not zeros");
    let mut group = c.benchmark_group("entry");
    group.bench_function("encode_1KiB", |b| {
        b.iter(|| {
            buf.clear();
            encode_entry(
                &mut buf,
                black_box(42),
                7,
                4096,
                EntryKind::Normal,
                black_box(&body),
            );
            buf.len()
        })
    });
    group.bench_function("decode_header", |b| {
        b.iter(|| decode_entry_header(black_box(&encoded[..ENTRY_HEADER_LEN]), u64::MAX))
    });
    group.bench_function("check_body_1KiB", |b| {
        b.iter(|| check_body(&header, black_box(&encoded[ENTRY_HEADER_LEN..])))
    });
    group.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .measurement_time(Duration::from_secs(2))
        .warm_up_time(Duration::from_millis(500))
        .sample_size(20)
}

criterion_group! {
    name = benches;
    config = config();
    targets = append, read, codec
}
criterion_main!(benches);
