//! `mqbench producer`: `-w` workers, each sending one request (one message, or a batch of
//! `-b`) at a time, so at most `-w` requests are in flight. Message `seq` carries its
//! sequence number in its body (`client::bench::encode_body`).

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Args;
use client::bench::{encode_body, parse_duration, RecordWriter, BODY_HEADER_LEN};
use client::{ClientOptions, Cluster, Message, Producer, ProducerConfig};

use crate::stats::{self, LastError, Stats};
use crate::{Common, Length};

/// Arguments of `mqbench producer`.
#[derive(Args, Debug)]
pub struct ProducerArgs {
    #[command(flatten)]
    pub common: Common,
    /// Message size in bytes (the first 16 hold the sequence number and run id)
    #[arg(short = 's', long = "messageSize", default_value_t = 1024, value_parser = parse_size)]
    pub size: usize,
    /// Requests in flight at once
    #[arg(short = 'w', long = "threadCount", default_value_t = 64, value_parser = clap::value_parser!(u64).range(1..=100_000))]
    pub window: u64,
    /// Messages per request (one queue per batch)
    #[arg(short = 'b', long = "batchSize", default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=10_000))]
    pub batch: u64,
    #[command(flatten)]
    pub length: Length,
    /// Write "<seq> <msg_id>" for every acknowledged message to FILE (for mqbench verify)
    #[arg(long, value_name = "FILE")]
    pub record: Option<PathBuf>,
    /// Time one send may take, retries included
    #[arg(long, default_value = "3s", value_parser = parse_duration)]
    pub send_timeout: Duration,
}

fn parse_size(text: &str) -> Result<usize, String> {
    match text.parse::<usize>() {
        Ok(n) if n >= BODY_HEADER_LEN => Ok(n),
        _ => Err(format!(
            "{text:?}: the size must be a number of bytes, at least {BODY_HEADER_LEN}"
        )),
    }
}

/// Runs the benchmark; `Ok(false)` when not a single message was acknowledged.
pub async fn run(args: ProducerArgs) -> anyhow::Result<bool> {
    let cluster = Cluster::connect_list(args.common.namesrv()?, ClientOptions::default()).await?;
    let producer = Producer::new(
        cluster,
        ProducerConfig {
            group: "benchmark_producer".into(),
            send_timeout: args.send_timeout,
            max_in_flight: usize::try_from(args.window).unwrap_or(usize::MAX),
            ..ProducerConfig::default()
        },
    );
    let run_id: u64 = rand::random();
    let recorder = match &args.record {
        Some(path) => Some(Recorder::start(path.clone(), run_id, &args.common.topic)?),
        None => None,
    };
    let stats = Arc::new(Stats::new()?);
    let next_seq = Arc::new(AtomicU64::new(0));
    let last_error: LastError = Arc::default();
    let deadline = args.length.duration_limit().map(|d| Instant::now() + d);
    let count = args.length.count;

    let workers: Vec<_> = (0..args.window)
        .map(|_| {
            let worker = Worker {
                producer: producer.clone(),
                topic: args.common.topic.clone(),
                size: args.size,
                batch: args.batch,
                run_id,
                stats: Arc::clone(&stats),
                next_seq: Arc::clone(&next_seq),
                last_error: Arc::clone(&last_error),
                acks: recorder.as_ref().map(|r| r.sender.clone()),
                deadline,
                count,
            };
            tokio::spawn(worker.run())
        })
        .collect();

    let reporter = stats::spawn_reporter(Arc::clone(&stats), Arc::clone(&last_error));
    for w in workers {
        w.await?;
    }
    reporter.abort();

    let issued = match count {
        Some(c) => next_seq.load(Ordering::Relaxed).min(c),
        None => next_seq.load(Ordering::Relaxed),
    };
    if let Some(recorder) = recorder {
        recorder.finish(issued)?;
    }
    stats::print_last_error(&last_error);
    let summary = stats.summary(false);
    println!("{}", summary.result_line("producer"));
    Ok(summary.messages > 0 || summary.failed == 0)
}

/// One sender of the in-flight window.
struct Worker {
    producer: Producer,
    topic: String,
    size: usize,
    batch: u64,
    run_id: u64,
    stats: Arc<Stats>,
    next_seq: Arc<AtomicU64>,
    last_error: LastError,
    acks: Option<std::sync::mpsc::Sender<(u64, String, u64)>>,
    deadline: Option<Instant>,
    count: Option<u64>,
}

impl Worker {
    async fn run(self) {
        loop {
            if self.deadline.is_some_and(|d| Instant::now() >= d) {
                return;
            }
            let first = self.next_seq.fetch_add(self.batch, Ordering::SeqCst);
            let end = match self.count {
                Some(c) if first >= c => return,
                Some(c) => (first + self.batch).min(c),
                None => first + self.batch,
            };
            let messages: Vec<Message> = (first..end)
                .map(|seq| Message::new(&self.topic, encode_body(self.run_id, seq, self.size)))
                .collect();
            let n = end - first;
            let started = Instant::now();
            let sent = if n == 1 {
                let one = messages.into_iter().next();
                match one {
                    Some(m) => self.producer.send(m).await.map(|r| vec![r]),
                    None => continue,
                }
            } else {
                self.producer.send_batch(messages).await
            };
            match sent {
                Ok(results) => {
                    self.stats.ok(n, started.elapsed());
                    if let Some(acks) = &self.acks {
                        // Every sequence number from here on is sent after this ack.
                        let issued = self.next_seq.load(Ordering::SeqCst);
                        for (seq, r) in (first..end).zip(results) {
                            // The writer only goes away when the run ends.
                            let _ = acks.send((seq, r.msg_id, issued));
                        }
                    }
                }
                Err(e) => {
                    self.stats.failed(n);
                    *self.last_error.lock().unwrap_or_else(|p| p.into_inner()) =
                        Some(e.to_string());
                }
            }
        }
    }
}

/// Writes acknowledgements to the record file on a thread of its own (file IO off the
/// async workers).
struct Recorder {
    sender: std::sync::mpsc::Sender<(u64, String, u64)>,
    writer: std::thread::JoinHandle<Result<RecordWriter, client::ClientError>>,
}

impl Recorder {
    fn start(path: PathBuf, run_id: u64, topic: &str) -> anyhow::Result<Self> {
        let mut file = RecordWriter::create(&path, run_id, topic)?;
        let (sender, receiver) = std::sync::mpsc::channel::<(u64, String, u64)>();
        let writer = std::thread::spawn(move || {
            for (seq, msg_id, issued) in receiver {
                file.record(seq, &msg_id, issued)?;
            }
            Ok(file)
        });
        Ok(Self { sender, writer })
    }

    fn finish(self, issued: u64) -> anyhow::Result<()> {
        drop(self.sender);
        let file = self
            .writer
            .join()
            .map_err(|_| anyhow::anyhow!("the record writer thread panicked"))??;
        file.finish(issued)?;
        Ok(())
    }
}
