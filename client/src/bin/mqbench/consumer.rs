//! `mqbench consumer`: one clustering group member consuming the topic; RT is the time
//! from the producer's send (born timestamp) to consumption, in ms.

use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::{Args, ValueEnum};
use client::{ClientOptions, Cluster, ConsumeFromWhere, GroupConsumer, GroupConsumerConfig};

use crate::stats::{self, LastError, Stats};
use crate::{Common, Length};

/// Where a new group starts.
#[derive(ValueEnum, Debug, Clone, Copy)]
pub enum From {
    /// Only messages sent from now on (RocketMQ's default)
    Last,
    /// Every retained message
    First,
}

/// Arguments of `mqbench consumer`.
#[derive(Args, Debug)]
pub struct ConsumerArgs {
    #[command(flatten)]
    pub common: Common,
    /// Consumer group
    #[arg(short = 'g', long = "group", default_value = "benchmark_consumer")]
    pub group: String,
    /// Where a group with no committed offset starts
    #[arg(long, value_enum, default_value = "last")]
    pub from: From,
    #[command(flatten)]
    pub length: Length,
}

/// Runs the benchmark.
pub async fn run(args: ConsumerArgs) -> anyhow::Result<bool> {
    let cluster = Cluster::connect_list(args.common.namesrv()?, ClientOptions::default()).await?;
    let mut config = GroupConsumerConfig::new(&args.group, &args.common.topic);
    config.consume_from = match args.from {
        From::Last => ConsumeFromWhere::LastOffset,
        From::First => ConsumeFromWhere::FirstOffset,
    };
    let consumer = GroupConsumer::start(cluster, config).await?;
    let stats = Arc::new(Stats::new()?);
    let deadline = args.length.duration_limit().map(|d| Instant::now() + d);

    let reporter = stats::spawn_reporter(Arc::clone(&stats), LastError::default());
    let outcome = async {
        loop {
            if deadline.is_some_and(|d| Instant::now() >= d) {
                break;
            }
            if args.length.count.is_some_and(|c| stats.messages() >= c) {
                break;
            }
            let wait = deadline.map_or(Duration::from_millis(500), |d| {
                d.saturating_duration_since(Instant::now())
                    .min(Duration::from_millis(500))
            });
            let messages = consumer.poll(wait).await?;
            let now_ms = client_now_ms();
            for m in &messages {
                let rt = u64::try_from(now_ms.saturating_sub(m.born_timestamp_ms)).unwrap_or(0);
                stats.ok(1, Duration::from_millis(rt));
            }
        }
        anyhow::Ok(())
    }
    .await;
    reporter.abort();
    let left = consumer.shutdown().await;
    outcome?;
    if let Err(e) = left {
        eprintln!("mqbench: leaving the group: {e}");
    }
    println!("{}", stats.summary(true).result_line("consumer"));
    Ok(true)
}

fn client_now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}
