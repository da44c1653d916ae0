//! `mqbench verify`: reads every queue of the topic from offset 0 to its end and compares
//! what it finds with the producer's record files.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use client::bench::{decode_body, Record, Verifier};
use client::{ClientOptions, Cluster, MessageQueue, PullConsumer, PullStatus};
use futures::{stream, StreamExt, TryStreamExt};

use crate::Common;

/// Queues read at once.
const PARALLEL_QUEUES: usize = 8;
/// Messages asked for per pull.
const PULL_BATCH: u32 = 256;

/// Arguments of `mqbench verify`.
#[derive(Args, Debug)]
pub struct VerifyArgs {
    #[command(flatten)]
    pub common: Common,
    /// Record file written by `mqbench producer --record` (repeat for several producers)
    #[arg(long, value_name = "FILE", required = true)]
    pub acked: Vec<PathBuf>,
    /// Consumer group the reads are made as (no offset is committed)
    #[arg(short = 'g', long = "group", default_value = "mqbench_verify")]
    pub group: String,
}

/// Runs the check; `Ok(false)` when messages were lost or duplicated.
pub async fn run(args: VerifyArgs) -> anyhow::Result<bool> {
    let records = args
        .acked
        .iter()
        .map(|p| Record::read(p))
        .collect::<Result<Vec<_>, _>>()?;
    for (path, r) in args.acked.iter().zip(&records) {
        if !r.topic.is_empty() && r.topic != args.common.topic {
            eprintln!(
                "mqbench: warning: {} recorded topic {} but -t is {}",
                path.display(),
                r.topic,
                args.common.topic
            );
        }
    }
    let cluster = Cluster::connect_list(args.common.namesrv()?, ClientOptions::default()).await?;
    let consumer = PullConsumer::new(cluster, args.group.clone());
    let queues = consumer.queues(&args.common.topic).await?;
    let contents: Vec<(MessageQueue, QueueContents)> = stream::iter(queues)
        .map(|q| {
            let consumer = consumer.clone();
            async move {
                let contents = read_queue(&consumer, &q).await?;
                anyhow::Ok((q, contents))
            }
        })
        .buffered(PARALLEL_QUEUES)
        .try_collect()
        .await?;

    let mut verifier = Verifier::new(&records);
    let mut purged = 0;
    for (queue, contents) in &contents {
        purged += contents.purged;
        for decoded in &contents.decoded {
            verifier.observe_decoded(queue, *decoded);
        }
    }
    let report = verifier.report();
    eprintln!(
        "mqbench: read {} message(s) from {} queue(s); foreign={} unacked_found={} purged={}",
        contents.iter().map(|(_, c)| c.decoded.len()).sum::<usize>(),
        contents.len(),
        report.foreign,
        report.unacked_found,
        purged
    );
    println!("{report}");
    Ok(report.passed())
}

/// What one queue holds, decoded.
struct QueueContents {
    /// (run, seq) of each message in queue order; `None` for non-benchmark bodies.
    decoded: Vec<Option<(u64, u64)>>,
    /// Messages below the queue's minimum offset (removed by retention).
    purged: u64,
}

/// Reads `queue` from offset 0 to its current end.
async fn read_queue(
    consumer: &PullConsumer,
    queue: &MessageQueue,
) -> anyhow::Result<QueueContents> {
    let range = consumer.queue_offsets(queue).await?;
    let mut decoded = Vec::new();
    let purged = range.min;
    let mut offset = range.min;
    while offset < range.max {
        let pulled = consumer
            .pull(queue, offset, PULL_BATCH, Duration::ZERO)
            .await?;
        match pulled.status {
            PullStatus::Found | PullStatus::NoMatchedMessage => {
                decoded.extend(pulled.messages.iter().map(|m| decode_body(&m.body)));
                if pulled.next_begin_offset <= offset {
                    anyhow::bail!("{queue}: the broker did not advance past offset {offset}");
                }
                offset = pulled.next_begin_offset;
            }
            PullStatus::OffsetIllegal { below_min: true } => offset = pulled.min_offset,
            PullStatus::OffsetIllegal { below_min: false } | PullStatus::NoNewMessage => break,
        }
    }
    Ok(QueueContents { decoded, purged })
}
