//! `e2e-bench`: end-to-end benchmark of a raftmq broker group.
//!
//! For each scenario it starts a fresh group of real processes (temp dir, free loopback
//! ports): by default the dledger layout's 3 Raft replicas; with `--layout 2m-2s-sync` or
//! `2m-2s-async` one classic group (broker-a's master and slave, and a nameserver hosting its
//! witness). It drives the group over gRPC against the leader, prints a progress line per
//! second on stderr and one `RESULT scenario=...` line on stdout, and kills the group.

// The client of the benchmark should cost as little as the library's producer (mqbench).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod cpu;
mod failover;
mod group;
mod layout;
mod load;
mod messages;
mod report;
mod route;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::{Parser, ValueEnum};
use proto::v1 as pb;
use proto::{PERM_READ, PERM_WRITE};

use group::{BrokerGroup, Flush, GroupSettings, Role};
use layout::Layout;
use load::{LoadOptions, LoadShape};
use messages::MessageSource;
use route::LeaderRoute;

/// The scenarios, in the order they run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Scenario {
    /// 64 single-message sends in flight over several connections.
    Inflight64,
    /// Batches of 32 messages, 8 batches in flight.
    Batch32x8,
    /// One message at a time.
    Sync1,
    /// kill -9 of the leader, repeatedly: time to the first ack on the new leader.
    Failover,
}

impl Scenario {
    fn name(self) -> &'static str {
        match self {
            Scenario::Inflight64 => "inflight64",
            Scenario::Batch32x8 => "batch32x8",
            Scenario::Sync1 => "sync1",
            Scenario::Failover => "failover",
        }
    }

    fn load_shape(self, connections: usize) -> Option<LoadShape> {
        let (senders, batch, connections) = match self {
            Scenario::Inflight64 => (64, 1, connections),
            Scenario::Batch32x8 => (8, 32, connections),
            Scenario::Sync1 => (1, 1, 1),
            Scenario::Failover => return None,
        };
        Some(LoadShape {
            name: self.name(),
            senders,
            batch,
            connections,
        })
    }
}

/// End-to-end benchmark of a raftmq broker group (real mqbroker processes on loopback): the
/// dledger layout's 3 replicas, or one classic master/slave group with its nameserver. Each
/// scenario gets a fresh group; results are `RESULT scenario=...` lines on stdout, progress
/// goes to stderr.
#[derive(Parser, Debug)]
#[command(
    name = "e2e-bench",
    after_help = "Examples:\n  \
        cargo build --release -p broker --bins -p raftmq-benches\n  \
        target/release/e2e-bench\n  \
        target/release/e2e-bench --only sync1 --seconds 5 --flush sync\n  \
        cargo build --release -p broker -p nameserver --bins -p raftmq-benches\n  \
        target/release/e2e-bench --layout 2m-2s-sync --only inflight64,failover"
)]
struct Args {
    /// Run only this scenario (repeatable, or comma-separated).
    #[arg(long, value_enum, value_delimiter = ',')]
    only: Vec<Scenario>,
    /// The group: dledger = 3 Raft replicas (conf/dledger); 2m-2s-sync, 2m-2s-async = the
    /// layout's broker-a master and slave (brokerRole from their files) with a nameserver
    /// that hosts the group's witness.
    #[arg(long, value_enum, default_value = "dledger")]
    layout: Layout,
    /// Measured seconds per load scenario.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Warm-up seconds before each load scenario's measurement.
    #[arg(long, default_value_t = 2)]
    warmup: u64,
    /// flushDiskType of every broker.
    #[arg(long, value_enum, default_value = "async")]
    flush: Flush,
    /// brokerRole of every dledger replica: sync = SYNC_MASTER (ack after quorum commit),
    /// async = ASYNC_MASTER [default: sync]. A classic layout takes it from its files
    /// (2m-2s-sync: SYNC_MASTER, 2m-2s-async: ASYNC_MASTER).
    #[arg(long, value_enum)]
    role: Option<Role>,
    /// The mqbroker binary (default: next to this executable).
    #[arg(long)]
    mqbroker: Option<PathBuf>,
    /// The mqnamesrv binary of a classic layout (default: next to this executable).
    #[arg(long)]
    mqnamesrv: Option<PathBuf>,
    /// Directory with the layout's property files: broker-n0..n2.properties (dledger),
    /// broker-a.properties and broker-a-s.properties (classic) [default: the workspace's
    /// conf/<layout>].
    #[arg(long)]
    conf_dir: Option<PathBuf>,
    /// More broker properties for every broker: --set key=value (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    set: Vec<String>,
    /// Message body size in bytes.
    #[arg(long, default_value_t = 1024)]
    body_size: usize,
    /// How sends travel: a send stream per connection (as the producer sends) or unary calls.
    #[arg(long, value_enum, default_value = "stream")]
    transport: route::Transport,
    /// HTTP/2 connections to the leader for inflight64 and batch32x8.
    #[arg(long, default_value_t = 4)]
    connections: usize,
    /// Threads of the benchmark client. It shares the 2 cores with the three replicas, and a
    /// second thread cost more in hand-offs than it added (inflight64: 43k with 2, 51k with 1).
    #[arg(long, default_value_t = 1)]
    client_workers: usize,
    /// Kill rounds of the failover scenario (a round ends once the killed member is back in
    /// sync and, in a classic group, its master leads again or has not within 20 s).
    #[arg(long, default_value_t = 10)]
    rounds: usize,
    /// Queues of the benchmark topic (load senders spread over them).
    #[arg(long, default_value_t = 8)]
    queues: u32,
    /// Keep each group's stores and logs (the path is printed).
    #[arg(long)]
    keep_data: bool,
}

fn main() -> ExitCode {
    let args = Args::parse();
    raftmq_properties::process::init_logging("warn");
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.client_workers.max(1))
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("e2e-bench: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    // Every group is dropped (its replicas killed) before the runtime goes away.
    let code = runtime.block_on(run(args));
    drop(runtime);
    code
}

async fn run(args: Args) -> ExitCode {
    let settings = match settings(&args) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("e2e-bench: {e:#}");
            return ExitCode::from(2);
        }
    };
    let scenarios = if args.only.is_empty() {
        Scenario::value_variants().to_vec()
    } else {
        args.only.clone()
    };
    eprintln!(
        "e2e-bench: {} {}, {} B bodies",
        settings.mqbroker.display(),
        settings.describe(),
        args.body_size
    );
    let mut code = ExitCode::SUCCESS;
    for scenario in scenarios {
        // SIGINT or SIGTERM drops the scenario, and with it the group: its replicas are killed
        // and its temp dir removed.
        let outcome = tokio::select! {
            r = run_scenario(scenario, &args, &settings) => r,
            _ = stop_signal() => {
                eprintln!("e2e-bench: interrupted");
                return ExitCode::from(130);
            }
        };
        match outcome {
            Ok(line) => println!("{line}"),
            Err(e) => {
                eprintln!("e2e-bench: {}: {e:#}", scenario.name());
                code = ExitCode::FAILURE;
            }
        }
    }
    code
}

/// SIGINT (Ctrl-C) or SIGTERM.
async fn stop_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

/// `given`, else `name` next to this executable; it must exist (`package` builds it).
fn program(given: Option<&PathBuf>, name: &str, package: &str) -> Result<PathBuf> {
    let path = match given {
        Some(p) => p.clone(),
        None => std::env::current_exe()
            .context("cannot locate this executable")?
            .with_file_name(name),
    };
    if !path.is_file() {
        bail!(
            "no {name} binary at {}: build it with `cargo build --release -p {package} --bins` \
             or pass --{name} PATH",
            path.display()
        );
    }
    Ok(path)
}

/// Where the binaries and the layout's property files are, and how to start the group.
fn settings(args: &Args) -> Result<GroupSettings> {
    let layout = args.layout;
    let mqbroker = program(args.mqbroker.as_ref(), "mqbroker", "broker")?;
    let mqnamesrv = if layout.is_classic() {
        Some(program(args.mqnamesrv.as_ref(), "mqnamesrv", "nameserver")?)
    } else {
        None
    };
    let role = match (layout.is_classic(), args.role) {
        (false, role) => Some(role.unwrap_or(Role::Sync)),
        (true, None) => None,
        (true, Some(_)) => bail!(
            "--role is for --layout dledger; {} takes brokerRole from its files (another \
             layout, or --set brokerRole=..., changes it)",
            layout.name()
        ),
    };
    let conf_dir = args
        .conf_dir
        .clone()
        .unwrap_or_else(|| layout.default_conf_dir());
    let members = layout::members(layout, &conf_dir, &mqbroker, &args.set)?;
    if args.seconds == 0 {
        bail!("--seconds must be at least 1");
    }
    Ok(GroupSettings {
        layout,
        mqbroker,
        mqnamesrv,
        members,
        flush: args.flush,
        role,
        extra: args.set.clone(),
        keep_data: args.keep_data,
    })
}

/// Starts a group, runs one scenario on it, and returns its RESULT line.
async fn run_scenario(scenario: Scenario, args: &Args, settings: &GroupSettings) -> Result<String> {
    let name = scenario.name();
    let mut group = BrokerGroup::start(settings.clone()).await?;
    // A classic group is measured once its slave is an in-sync voter (SYNC_MASTER sends say
    // SLAVE_NOT_AVAILABLE before) and the witness votes (failover needs it).
    let leader = group.ready(Duration::from_secs(60)).await?;
    let lanes = scenario
        .load_shape(args.connections)
        .map_or(1, |s| s.connections);
    let route = Arc::new(
        LeaderRoute::discover(
            &group.client_addrs(),
            lanes,
            args.transport,
            Duration::from_secs(30),
        )
        .await?,
    );
    let topic = format!("E2eBench_{name}");
    route
        .create_topic(
            pb::TopicConfig {
                topic_name: topic.clone(),
                read_queue_nums: args.queues,
                write_queue_nums: args.queues,
                perm: PERM_READ | PERM_WRITE,
                order: false,
            },
            Duration::from_secs(30),
        )
        .await?;
    let source = MessageSource::new(&topic, args.body_size);
    let settings_tail = settings.describe();

    if let Some(shape) = scenario.load_shape(args.connections) {
        let opts = LoadOptions {
            warmup: Duration::from_secs(args.warmup),
            measure: Duration::from_secs(args.seconds),
            queues: args.queues,
            tracked: group.tracked(leader),
        };
        let r = load::run(route, source, shape, &opts).await?;
        let batches = if shape.batch > 1 {
            format!(" batches={}", r.latency.count())
        } else {
            String::new()
        };
        return Ok(format!(
            "RESULT scenario={name} msgs={}{batches} msgs_per_s={:.0} p50_ms={:.3} p99_ms={:.3} \
             p999_ms={:.3} failed={} degraded={} {settings_tail}",
            r.messages,
            r.msgs_per_s(),
            r.latency.ms(0.5),
            r.latency.ms(0.99),
            r.latency.ms(0.999),
            r.failed,
            r.degraded,
        ));
    }

    let r = failover::run(&mut group, route, source, args.rounds).await?;
    let as_ms = |v: &[Duration]| -> Vec<f64> { v.iter().map(|d| d.as_secs_f64() * 1e3).collect() };
    let ms = as_ms(&r.outages);
    let stat = |v: Option<f64>| v.map_or("nan".to_string(), |x| format!("{x:.1}"));
    let min = ms.iter().copied().reduce(f64::min);
    let max = ms.iter().copied().reduce(f64::max);
    let pause_max = as_ms(&r.rejoin_pauses).into_iter().reduce(f64::max);
    let handback = if group.preferred().is_some() {
        format!(
            " handbacks={} handback_median_ms={}",
            r.handbacks.len(),
            stat(report::median(&as_ms(&r.handbacks)))
        )
    } else {
        String::new()
    };
    if r.moved > 0 {
        eprintln!(
            "[failover] {} acknowledged messages sit at another queue offset than acked",
            r.moved
        );
    }
    Ok(format!(
        "RESULT scenario=failover kills={} median_ms={} min_ms={} max_ms={} lost_acked={} \
         duplicates={} timeouts={} acked={} degraded={} dropped={} rejoin_pause_max_ms={}\
         {handback} {settings_tail}",
        r.kills,
        stat(report::median(&ms)),
        stat(min),
        stat(max),
        r.lost_acked,
        r.duplicates,
        r.timeouts,
        r.acked,
        r.degraded,
        r.dropped_messages,
        stat(pause_max),
    ))
}
