//! `mqbroker`: one replica of one broker group.

use std::process::ExitCode;

use broker::node::BrokerNode;
use broker::BrokerConfig;
use clap::Parser;
use raftmq_properties::process::{init_logging, ServerArgs};
use raftmq_raft::network::QUIET_OPENRAFT_REPLICATION;

// mimalloc: the broker allocates and frees small buffers per message on every thread (gRPC
// frames, decoded messages); glibc's malloc showed up as a tenth of the leader's CPU.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Start one raftmq broker replica from a RocketMQ-style property file.
///
/// A dledger group is three of these processes, one per `dLegerSelfId`; the Raft leader is
/// the master and takes writes, followers serve reads and take over when the leader dies.
#[derive(Parser, Debug)]
#[command(
    name = "mqbroker",
    version,
    after_help = "Example:\n  mqbroker -c conf/dledger/broker-n0.properties\n  mqbroker -c conf/dledger/broker-n1.properties --set storePathRootDir=/tmp/n1"
)]
struct Args {
    // -c, --set and -p, as mqnamesrv takes them.
    #[command(flatten)]
    server: ServerArgs,
    /// Name server address list, "host:port;host:port" (overrides namesrvAddr).
    #[arg(short = 'n', long = "namesrvAddr")]
    namesrv: Option<String>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    init_logging(&format!("info,{QUIET_OPENRAFT_REPLICATION}"));

    let overrides = args
        .server
        .overrides(args.namesrv.as_ref().map(|n| format!("namesrvAddr={n}")));
    let (config, warnings) = match BrokerConfig::load(args.server.config_file(), &overrides) {
        Ok(v) => v,
        Err(e) => {
            eprintln!("mqbroker: {e}");
            return ExitCode::from(2);
        }
    };
    for line in broker::config::warning_lines(&warnings) {
        tracing::warn!("{line}");
    }
    if args.server.print_config {
        print!("{}", config.to_properties_text());
        return ExitCode::SUCCESS;
    }

    let mut runtime = tokio::runtime::Builder::new_multi_thread();
    if config.server_worker_threads > 0 {
        runtime.worker_threads(config.server_worker_threads as usize);
    }
    let runtime = match runtime.enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("mqbroker: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async move {
        let name = config.broker_name.clone();
        let namesrv = config
            .namesrv_addr
            .iter()
            .map(|h| h.to_string())
            .collect::<Vec<_>>()
            .join(";");
        let node = BrokerNode::start(config).await?;
        println!(
            "The broker[{name}, {}] boot success. raft={} name server is {}",
            node.client_addr,
            node.raft_addr,
            if namesrv.is_empty() {
                "(none)"
            } else {
                &namesrv
            }
        );
        node.run_until(shutdown_signal()).await
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("mqbroker: {}", with_causes(&e));
            ExitCode::FAILURE
        }
    }
}

/// An error and its causes on one line, joined by `: `.
fn with_causes(err: &(dyn std::error::Error + 'static)) -> String {
    std::iter::successors(Some(err), |e| e.source())
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(": ")
}

/// SIGTERM or SIGINT.
async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) {
        (Ok(mut term), Ok(mut int)) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
        }
        _ => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
