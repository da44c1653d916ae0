//! `mqcluster restart NODE`: start a node again with the command line it was first started
//! with (stopping it first if it still runs), and wait until it answers.

use std::time::Duration;

use anyhow::{bail, Context, Result};
use tokio::time::Instant;

use super::{parse_duration, DataDirArg, Progress};
use crate::probe::{self, role_name, Channels};
use crate::process::{self, Stopped};
use crate::programs;
use crate::state::NodeKind;

/// How often the restarted node is looked at.
const POLL: Duration = Duration::from_millis(100);

/// `mqcluster restart`.
#[derive(Debug, clap::Args)]
pub struct RestartArgs {
    /// The node to restart: n1, RaftNode00/n1, namesrv (as `status` names them)
    pub node: String,
    #[command(flatten)]
    pub data_dir: DataDirArg,
    /// How long to wait until it answers (a broker: and agrees with its group on a leader)
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = parse_duration)]
    pub timeout: Duration,
    /// If it still runs: how long it gets to stop after SIGTERM before SIGKILL
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = parse_duration)]
    pub grace: Duration,
}

/// Runs `mqcluster restart`.
pub async fn run(args: RestartArgs) -> Result<()> {
    let data = args.data_dir.open()?;
    let _lock = data.lock()?;
    let mut file = data.load_existing()?;
    let index = file.find(&args.node)?;
    let name = file.nodes[index].full_name();

    match process::stop_all(&[&file.nodes[index]], args.grace).await?[..] {
        [Stopped::Terminated(pid)] => println!("stopped {name} (pid {pid})"),
        [Stopped::Killed(pid)] => println!(
            "killed {name} (pid {pid}): it ignored SIGTERM for {:?}",
            args.grace
        ),
        _ => {}
    }
    let mut child = process::start(&file.nodes[index], data.path())?;
    file.nodes[index].pid = Some(child.id());
    data.save(&file)?;

    let start = Instant::now();
    let deadline = start + args.timeout;
    let mut channels = Channels::default();
    let mut progress = Progress::new();
    loop {
        let node = &file.nodes[index];
        if let Some(status) = child
            .try_wait()
            .context("cannot check the started process")?
        {
            progress.clear();
            bail!(
                "{name} exited during start ({status}): {} (log: {})",
                process::last_log_line(&node.log).unwrap_or_default(),
                programs::display_path(&node.log)
            );
        }
        let snap = probe::snapshot(&file, &mut channels).await;
        let status = &snap.nodes[index];
        let pid = child.id();
        match (node.kind, &status.broker) {
            (NodeKind::Namesrv, _) if status.routes.is_some() => {
                progress.clear();
                println!("restarted {name} (pid {pid}), listening on {}", node.addr);
                return Ok(());
            }
            // Right after a start a replica may still report what it persisted (even
            // itself as leader of an old term): done once the group agrees on a leader.
            (NodeKind::Broker, Some(view)) => {
                let group = node.group.as_deref().unwrap_or_default();
                if let Some(leader) = snap.agreed_leader(&file, group) {
                    progress.clear();
                    println!(
                        "restarted {name} (pid {pid}): {} in term {}, leader {}",
                        role_name(view.role),
                        view.term,
                        file.nodes[leader.node].name
                    );
                    return Ok(());
                }
            }
            _ => {}
        }
        if Instant::now() >= deadline {
            progress.clear();
            bail!(
                "{name} (pid {pid}) started but did not {} within {:?}; it keeps running (log: {})",
                if node.kind == NodeKind::Broker {
                    "agree with its group on a leader"
                } else {
                    "answer"
                },
                args.timeout,
                programs::display_path(&node.log)
            );
        }
        progress.show(&format!("mqcluster: waiting for {name}"), start.elapsed());
        tokio::time::sleep(POLL).await;
    }
}
