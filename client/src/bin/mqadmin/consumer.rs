//! `consumerProgress`.

use clap::Args;
use client::Admin;
use serde_json::json;

use crate::table::{fmt_time_ms, Table};
use crate::Output;

/// Arguments of `consumerProgress`.
#[derive(Args, Debug)]
pub struct ProgressArgs {
    /// Consumer group
    #[arg(short = 'g', long = "groupName")]
    pub group: String,
    /// Only this topic
    #[arg(short = 't', long = "topic")]
    pub topic: Option<String>,
}

/// `consumerProgress`: broker offset, committed offset and lag per queue, and the total.
///
/// LAST TIME is when the last consumed message was stored (RocketMQ's `#LastTime`), read back
/// from the queue; LAST COMMIT is when the offset was committed, as the broker reports it
/// ("-" while brokers do not record commit times).
pub async fn consumer_progress(admin: &Admin, args: ProgressArgs) -> anyhow::Result<Output> {
    let rows = admin
        .consumer_progress(&args.group, args.topic.as_deref())
        .await?;
    let mut table = Table::new(&[
        "topic",
        "broker_name",
        "queue_id",
        "broker_offset",
        "consumer_offset",
        "diff",
        "last_time",
        "last_commit",
    ]);
    let mut total = 0u64;
    for r in &rows {
        total += r.lag;
        table.row(vec![
            json!(r.queue.topic),
            json!(r.queue.broker_name),
            json!(r.queue.queue_id),
            json!(r.broker_offset),
            json!(r.consumer_offset),
            json!(r.lag),
            json!(fmt_time_ms(r.last_consumed_store_timestamp_ms)),
            json!(fmt_time_ms(r.last_commit_timestamp_ms)),
        ]);
    }
    let text = format!("{}\n\nDiff Total: {total}", table.to_text());
    let json = json!({ "group": args.group, "queues": table.to_json(), "diff_total": total });
    Ok(Output::new(text, json))
}
