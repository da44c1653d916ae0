//! `mqbroker`: one replica of one broker group.

use std::path::PathBuf;
use std::process::ExitCode;

use broker::node::BrokerNode;
use broker::BrokerConfig;
use clap::Parser;
use tracing_subscriber::EnvFilter;

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
    /// Broker property file (RocketMQ key names: brokerName, listenPort, dLegerPeers, ...).
    #[arg(short = 'c', long = "config")]
    config: Option<PathBuf>,
    /// Name server address list, "host:port;host:port" (overrides namesrvAddr).
    #[arg(short = 'n', long = "namesrvAddr")]
    namesrv: Option<String>,
    /// Override any key: --set key=value (repeatable; applied after the file).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    set: Vec<String>,
    /// Print the effective configuration (every key, defaults included) and exit.
    #[arg(short = 'p', long = "printConfigItem")]
    print_config: bool,
}

fn main() -> ExitCode {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();

    let mut overrides = args.set.clone();
    if let Some(n) = &args.namesrv {
        overrides.push(format!("namesrvAddr={n}"));
    }
    let (config, warnings) = match BrokerConfig::load(args.config.as_deref(), &overrides) {
        Ok(v) => v,
        Err(e) => {
            eprintln!("mqbroker: {e}");
            return ExitCode::from(2);
        }
    };
    for w in &warnings {
        tracing::warn!("{w}");
    }
    if args.print_config {
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
            eprintln!("mqbroker: {e:#}");
            ExitCode::FAILURE
        }
    }
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
