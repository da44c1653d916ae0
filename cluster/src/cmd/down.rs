//! `mqcluster down`: SIGTERM every node (brokers first, so they can still reach the
//! nameservers while they stop), wait, SIGKILL stragglers. Stores, logs and cluster.json
//! stay; only the pids are forgotten, so `up` starts the same cluster again.

use std::time::Duration;

use anyhow::Result;

use super::{parse_duration, DataDirArg};
use crate::process::{self, Stopped};
use crate::programs;
use crate::state::{NodeKind, NodeRecord};

/// `mqcluster down`.
#[derive(Debug, clap::Args)]
pub struct DownArgs {
    #[command(flatten)]
    pub data_dir: DataDirArg,
    /// How long the nodes get to stop after SIGTERM before SIGKILL
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = parse_duration)]
    pub grace: Duration,
}

/// Runs `mqcluster down`.
pub async fn run(args: DownArgs) -> Result<()> {
    let data = args.data_dir.open()?;
    let _lock = data.lock()?;
    let mut file = data.load_existing()?;
    let mut stopped_any = false;
    for kind in [NodeKind::Broker, NodeKind::Namesrv] {
        let nodes: Vec<&NodeRecord> = file.nodes.iter().filter(|n| n.kind == kind).collect();
        let outcome = process::stop_all(&nodes, args.grace).await?;
        for (node, stopped) in nodes.iter().zip(outcome) {
            match stopped {
                Stopped::NotRunning => {}
                Stopped::Terminated(pid) => println!("stopped {} (pid {pid})", node.full_name()),
                Stopped::Killed(pid) => println!(
                    "killed {} (pid {pid}): it ignored SIGTERM for {:?}",
                    node.full_name(),
                    args.grace
                ),
            }
            stopped_any |= stopped != Stopped::NotRunning;
        }
    }
    for node in &mut file.nodes {
        node.pid = None;
    }
    data.save(&file)?;
    if !stopped_any {
        println!(
            "nothing was running in {}",
            programs::display_path(data.path())
        );
    }
    Ok(())
}
