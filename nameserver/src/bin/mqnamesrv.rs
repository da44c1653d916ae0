//! `mqnamesrv`: the raftmq nameserver process (RocketMQ's `bin/mqnamesrv`).
//!
//! Prints `The Name Server boot success. listen=HOST:PORT` on stdout once it listens (with
//! the real port when `listenPort=0`), logs to stderr through `tracing` (`RUST_LOG`,
//! default `info`), and stops gracefully on SIGTERM or SIGINT with exit status 0. A bad
//! configuration or a port in use is one line on stderr and exit status 1.

use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use nameserver::{NamesrvConfig, BOOT_SUCCESS};
use raftmq_properties::process::{init_logging, ServerArgs};
use tokio::signal::unix::{signal, Signal, SignalKind};
use tokio::sync::watch;
use tracing::{info, warn};

/// How long a graceful stop may take before the process exits anyway.
const STOP_GRACE: Duration = Duration::from_secs(10);

const KEYS_HELP: &str = "\
Configuration keys (in the -c file or with --set; RocketMQ's names):
  listenPort=9876                   port for brokers and clients; 0 picks a free port
                                    (the boot line shows which)
  bindAddress=127.0.0.1             local IP address to listen on (alias listenAddress);
                                    0.0.0.0 listens on every interface
  brokerExpiryMs=5000               drop a broker after this long without a heartbeat
                                    (brokers heartbeat every second; RocketMQ uses 120 s)
  scanNotActiveBrokerInterval=200   how often silent brokers are looked for, ms
  witnessStorePath=~/namesrv/witness
                                    where the witnesses this nameserver hosts for classic
                                    groups (two data replicas) keep votes and log ids

RocketMQ's JVM and Netty keys (serverWorkerThreads, rocketmqHome, ...) are accepted and
ignored with a warning; an unknown key is a warning naming the nearest known key; a bad
value stops the start with an error naming the file, line and key.

Examples:
  mqnamesrv -c conf/namesrv.properties
  mqnamesrv --set listenPort=0 --set brokerExpiryMs=2000
  RUST_LOG=debug mqnamesrv";

/// The raftmq nameserver: brokers register with it (and heartbeat), clients ask it where
/// each topic's queues and each group's Raft leader are.
#[derive(Debug, Parser)]
#[command(name = "mqnamesrv", version, after_help = KEYS_HELP)]
struct Args {
    // -c, --set and -p, as mqbroker takes them.
    #[command(flatten)]
    server: ServerArgs,
}

fn main() -> ExitCode {
    let args = Args::parse();
    init_logging("info");
    match run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("mqnamesrv: {err}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: Args) -> Result<(), Box<dyn std::error::Error>> {
    let (config, warnings) =
        NamesrvConfig::load(args.server.config_file(), &args.server.overrides(None))?;
    for warning in &warnings {
        warn!("{warning}");
    }
    if args.server.print_config {
        print!("{}", config.to_properties_text());
        return Ok(());
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the async runtime: {e}"))?;
    runtime.block_on(serve(config))
}

async fn serve(config: NamesrvConfig) -> Result<(), Box<dyn std::error::Error>> {
    // Install the handlers before announcing the address: a signal sent right after the
    // boot line must stop the server gracefully, not kill it.
    let terminate = signal(SignalKind::terminate())
        .map_err(|e| format!("cannot install the SIGTERM handler: {e}"))?;
    let interrupt = signal(SignalKind::interrupt())
        .map_err(|e| format!("cannot install the SIGINT handler: {e}"))?;

    let listener = nameserver::bind(&config).await?;
    let addr = listener.local_addr().map_err(|e| {
        format!(
            "cannot read the address bound for {}: {e}",
            config.listen_addr()
        )
    })?;
    println!("{BOOT_SUCCESS}{addr}");
    std::io::stdout().flush()?;
    info!(%addr, "nameserver listening");

    let (stopping_tx, mut stopping) = watch::channel(false);
    let shutdown = async move {
        wait_for_signal(terminate, interrupt).await;
        stopping_tx.send_replace(true);
    };
    tokio::select! {
        served = nameserver::serve(listener, config, shutdown) => served?,
        _ = async {
            // Resolves STOP_GRACE after the signal (never, if serve fails first).
            if stopping.wait_for(|s| *s).await.is_ok() {
                tokio::time::sleep(STOP_GRACE).await;
            } else {
                std::future::pending::<()>().await;
            }
        } => warn!("graceful stop took longer than {STOP_GRACE:?}; exiting anyway"),
    }
    info!("nameserver stopped");
    Ok(())
}

async fn wait_for_signal(mut terminate: Signal, mut interrupt: Signal) {
    tokio::select! {
        _ = terminate.recv() => info!("SIGTERM received"),
        _ = interrupt.recv() => info!("SIGINT received"),
    }
}
