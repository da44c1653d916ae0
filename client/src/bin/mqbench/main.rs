//! `mqbench`: producer and consumer benchmarks in the spirit of RocketMQ's
//! `benchmark/producer.sh` and `consumer.sh`, and `verify`, which checks a topic against
//! the acknowledgements a producer run recorded (see `client::bench` for the formats).
//!
//! Exit codes: 0 success, 1 failure (one line `mqbench: ...` on stderr, or a verification
//! that found lost or duplicated messages), 2 bad usage.

mod consumer;
mod producer;

// mimalloc: a producer allocates per message (the message, its wire form, the reply); glibc's
// malloc was a fifth of mqbench's CPU at 64 sends in flight.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod stats;
mod verify;

use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use client::bench::parse_duration;
use client::{cli, NameServerList};

/// raftmq benchmark: producer / consumer load with per-second TPS and latency.
#[derive(Parser, Debug)]
#[command(name = "mqbench", version, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Client threads. One drives roughly 100k single-message sends a second, and on a machine
    /// that also runs the brokers a second thread costs more in hand-offs than it adds (47k vs
    /// 43k msgs/s at 64 in flight here); raise it when this machine has idle cores to spare
    #[arg(long, global = true, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=256))]
    workers: u16,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Send messages as fast as the in-flight window allows
    Producer(producer::ProducerArgs),
    /// Consume a topic as a consumer group member
    Consumer(consumer::ConsumerArgs),
    /// Check a topic against producer record files: lost, duplicated, reordered messages
    Verify(verify::VerifyArgs),
}

/// Flags shared by every sub-command.
#[derive(Args, Debug, Clone)]
pub struct Common {
    /// Nameserver list "host:port;host:port" [default: $NAMESRV_ADDR, else 127.0.0.1:9876]
    #[arg(short = 'n', long = "namesrvAddr", value_name = "ADDRS", value_parser = cli::parse_namesrv)]
    pub namesrv: Option<NameServerList>,
    /// Topic
    #[arg(short = 't', long = "topic", default_value = "BenchmarkTest")]
    pub topic: String,
}

impl Common {
    pub fn namesrv(&self) -> anyhow::Result<NameServerList> {
        Ok(match &self.namesrv {
            Some(list) => list.clone(),
            None => NameServerList::from_env_or_default()?,
        })
    }
}

/// How long a benchmark runs.
#[derive(Args, Debug, Clone)]
pub struct Length {
    /// Run for this long (30s, 500ms, 2m, 1h)
    #[arg(long, value_parser = parse_duration, conflicts_with = "count")]
    pub duration: Option<Duration>,
    /// Stop after this many messages
    #[arg(long)]
    pub count: Option<u64>,
}

impl Length {
    /// The run's duration limit: `--duration`, or 30 s when neither flag is given.
    pub fn duration_limit(&self) -> Option<Duration> {
        match (self.duration, self.count) {
            (Some(d), _) => Some(d),
            (None, Some(_)) => None,
            (None, None) => Some(Duration::from_secs(30)),
        }
    }
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return cli::usage_error("mqbench", e),
    };
    raftmq_properties::process::init_logging("warn");
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(usize::from(cli.workers))
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return cli::failure("mqbench", &format!("cannot start the async runtime: {e}")),
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Producer(args) => producer::run(args).await,
            Command::Consumer(args) => consumer::run(args).await,
            Command::Verify(args) => verify::run(args).await,
        }
    });
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(cli::EXIT_FAILURE),
        Err(e) => cli::failure("mqbench", &format!("{e:#}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("mqbench").chain(args.iter().copied()))
    }

    #[test]
    fn one_client_thread_unless_asked() {
        assert_eq!(parse(&["producer"]).unwrap().workers, 1);
        assert_eq!(parse(&["producer", "--workers", "4"]).unwrap().workers, 4);
        assert_eq!(parse(&["--workers", "3", "consumer"]).unwrap().workers, 3);
        assert!(parse(&["producer", "--workers", "0"]).is_err());
    }

    #[test]
    fn producer_defaults_follow_the_brief() {
        let Command::Producer(p) = parse(&["producer"]).unwrap().command else {
            panic!("not a producer")
        };
        assert_eq!(p.common.topic, "BenchmarkTest");
        assert_eq!((p.size, p.window, p.batch), (1024, 64, 1));
        assert_eq!(p.length.duration_limit(), Some(Duration::from_secs(30)));
        let Command::Producer(p) = parse(&["producer", "--count", "10", "-s", "16"])
            .unwrap()
            .command
        else {
            panic!("not a producer")
        };
        assert_eq!(
            (p.length.count, p.length.duration_limit()),
            (Some(10), None)
        );
    }

    #[test]
    fn bad_usage_is_rejected() {
        assert!(parse(&["producer", "--duration", "5s", "--count", "3"]).is_err());
        assert!(parse(&["producer", "--duration", "fast"]).is_err());
        assert!(
            parse(&["producer", "-s", "8"]).is_err(),
            "a body must hold its sequence"
        );
        assert!(
            parse(&["verify", "-t", "T"]).is_err(),
            "--acked is required"
        );
        assert!(parse(&["verify", "--acked", "a", "--acked", "b", "-t", "T"]).is_ok());
    }
}
