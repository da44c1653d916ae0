//! `mqcluster up`: starts a layout's nameserver(s) and brokers as detached processes,
//! waits until every broker group has a leader registered at the nameserver (a classic
//! group: until its leader reports there that its slaves vote and are in sync and that the
//! witness votes), prints where everything is and what to try next, and returns while the
//! processes keep running.
//!
//! Either the whole cluster comes up or nothing stays running: on any failure (a process
//! that exits during start, the deadline, Ctrl-C) every process this run started is
//! stopped again, and the error names the node and the last line of its log.

use std::collections::HashMap;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Child;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use tokio::time::Instant;

use super::{default_data_dir, parse_duration, Progress};
use crate::layout::{self, BrokerConf, Layout, PlanInput, MAX_NAMESRVS};
use crate::probe::{self, Channels, Leader, NamesrvRoute, Snapshot};
use crate::process;
use crate::programs::{self, Programs};
use crate::report;
use crate::state::{ClusterFile, DataDir, NodeKind, NodeRecord, FORMAT_VERSION};

/// How often the cluster is looked at while waiting.
const POLL: Duration = Duration::from_millis(100);
/// A group whose brokers agree on a leader, but which no nameserver has ever heard of, is
/// accepted after this long: its mqbroker does not register with nameservers (yet).
const REGISTRATION_GRACE: Duration = Duration::from_secs(3);
/// How long processes get to stop when a failed `up` takes them down again.
const CLEANUP_GRACE: Duration = Duration::from_secs(5);
/// The nameserver port when the conf dir has no `namesrv.properties` (RocketMQ's).
const DEFAULT_NAMESRV_PORT: u16 = 9876;

/// `mqcluster up`.
#[derive(Debug, clap::Args)]
pub struct UpArgs {
    /// The layout to start: a directory of the conf dir
    #[arg(long, value_enum, default_value = "dledger")]
    pub layout: Layout,
    /// Where stores, logs and cluster.json go [default: data/<layout>]
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Move every port: nameserver P (P+1, ... for more), broker i (i-th property file)
    /// client port P+10+10*i and Raft port P+11+10*i [default: the ports of the conf files;
    /// on a data dir used before, the ports it was started with]
    #[arg(long, value_name = "P")]
    pub base_port: Option<u16>,
    /// Where the layouts are [default: ./conf, else the conf/ of the checkout mqcluster was
    /// built in]
    #[arg(long, value_name = "DIR")]
    pub conf_dir: Option<PathBuf>,
    /// How many nameservers to start (brokers register with each)
    #[arg(long, value_name = "N", default_value_t = 1,
          value_parser = clap::value_parser!(u16).range(1..=i64::from(MAX_NAMESRVS)))]
    pub namesrvs: u16,
    /// How long to wait for every group to have a leader registered at the nameserver (a
    /// classic group: and its slaves voting and in sync, with the witness)
    #[arg(long, value_name = "DURATION", default_value = "60s", value_parser = parse_duration)]
    pub timeout: Duration,
}

/// Runs `mqcluster up`.
pub async fn run(args: UpArgs) -> Result<()> {
    let layout_name = args.layout.dir_name();
    let conf_dir = find_conf_dir(args.conf_dir.as_deref(), args.layout)?;
    let programs = Programs::find()?;
    let data_dir_arg = args
        .data_dir
        .clone()
        .unwrap_or_else(|| default_data_dir(layout_name));
    let data = DataDir::create(&data_dir_arg)?;
    let _lock = data.lock()?;
    let base_port = check_previous(data.load()?.as_ref(), &args, &data)?;

    let brokers = read_layout(&programs, &conf_dir.join(layout_name))?;
    let namesrv_conf = Some(conf_dir.join("namesrv.properties")).filter(|p| p.is_file());
    let namesrv_port = match &namesrv_conf {
        Some(conf) => {
            let props = programs::effective_config(&programs.mqnamesrv, conf)?;
            props
                .get("listenPort")
                .and_then(|p| p.parse().ok())
                .with_context(|| format!("{}: no listenPort", conf.display()))?
        }
        None => DEFAULT_NAMESRV_PORT,
    };
    let nodes = layout::plan(&PlanInput {
        brokers: &brokers,
        namesrv_conf: namesrv_conf.as_deref(),
        namesrv_port,
        namesrv_count: args.namesrvs,
        base_port,
        mqnamesrv: &programs.mqnamesrv,
        mqbroker: &programs.mqbroker,
        log_path: &|name| data.log_path(name),
        store_path: &|name| data.store_path(name),
    })?;
    check_ports_free(&nodes)?;

    let mut file = ClusterFile {
        format: FORMAT_VERSION,
        layout: layout_name.to_owned(),
        base_port,
        conf_dir,
        namesrv_addrs: nodes
            .iter()
            .filter(|n| n.kind == NodeKind::Namesrv)
            .map(|n| n.addr.clone())
            .collect(),
        nodes,
    };
    let started = Instant::now();
    let mut children = Vec::new();
    let outcome = tokio::select! {
        outcome = start_and_wait(&data, &mut file, &mut children, args.timeout) => outcome,
        // Ctrl-C does not reach the nodes (their own sessions): take them down here.
        _ = tokio::signal::ctrl_c() => Err(anyhow!("interrupted; stopping what was started")),
    };
    match outcome {
        Ok((snap, unregistered)) => {
            for group in unregistered {
                eprintln!(
                    "mqcluster: note: no nameserver has a registration from {group}; its leader \
                     was found by asking its brokers (this mqbroker does not register yet?)"
                );
            }
            print_summary(&file, &snap, &data, &data_dir_arg, started.elapsed());
            Ok(())
        }
        Err(e) => {
            stop_started(&data, &mut file, &mut children).await;
            Err(e)
        }
    }
}

/// The conf dir that holds `layout`: the one given, or `./conf`, or the `conf/` two levels
/// above the mqcluster executable (`target/release/mqcluster` in a checkout).
fn find_conf_dir(given: Option<&Path>, layout: Layout) -> Result<PathBuf> {
    let name = layout.dir_name();
    if let Some(dir) = given {
        if !dir.join(name).is_dir() {
            bail!("{} has no {name}/ layout directory", dir.display());
        }
        return dir
            .canonicalize()
            .with_context(|| format!("cannot resolve {}", dir.display()));
    }
    let checkout = programs::own_dir().and_then(|d| d.parent()?.parent().map(|p| p.join("conf")));
    [Some(PathBuf::from("conf")), checkout]
        .into_iter()
        .flatten()
        .find(|dir| dir.join(name).is_dir())
        .and_then(|dir| dir.canonicalize().ok())
        .with_context(|| {
            format!(
                "no conf/{name}/ here or in the checkout mqcluster was built in; run from the \
                 raftmq checkout or pass --conf-dir"
            )
        })
}

/// Refuses to start over a running cluster or with ports its stores do not know; returns
/// the base port to use (a data dir used before keeps its own).
fn check_previous(
    prev: Option<&ClusterFile>,
    args: &UpArgs,
    data: &DataDir,
) -> Result<Option<u16>> {
    let Some(prev) = prev else {
        return Ok(args.base_port);
    };
    let dir = programs::display_path(data.path());
    let running: Vec<String> = prev
        .nodes
        .iter()
        .filter_map(|n| process::live_pid(n).map(|pid| format!("{} pid {pid}", n.full_name())))
        .collect();
    if !running.is_empty() {
        bail!(
            "a cluster is already running from {dir} ({}); `mqcluster status --data-dir {dir}` \
             shows it, `mqcluster down --data-dir {dir}` stops it",
            running.join(", ")
        );
    }
    if prev.layout != args.layout.dir_name() {
        bail!(
            "{dir} holds a {} cluster; start it with --layout {}, or use another --data-dir",
            prev.layout,
            prev.layout
        );
    }
    let stores_exist = prev
        .nodes
        .iter()
        .any(|n| n.store.as_ref().is_some_and(|s| s.exists()));
    match args.base_port {
        _ if !stores_exist => Ok(args.base_port),
        None => Ok(prev.base_port),
        Some(p) if Some(p) == prev.base_port => Ok(Some(p)),
        Some(_) => bail!(
            "{dir} was started {}, and the Raft stores in it record those peer addresses; start \
             it the same way, or use a fresh --data-dir",
            match prev.base_port {
                Some(p) => format!("with --base-port {p}"),
                None => "with the ports of the conf files (no --base-port)".to_owned(),
            }
        ),
    }
}

/// Every `*.properties` of a layout directory, in name order, as `mqbroker -p` reads it.
fn read_layout(programs: &Programs, dir: &Path) -> Result<Vec<BrokerConf>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("cannot list {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "properties"))
        .collect();
    files.sort();
    files
        .iter()
        .map(|file| {
            let props = programs::effective_config(&programs.mqbroker, file)?;
            BrokerConf::from_properties(file, &props)
        })
        .collect()
}

/// Fails before anything starts if a port of the plan is taken.
fn check_ports_free(nodes: &[NodeRecord]) -> Result<()> {
    for node in nodes {
        let addrs = [
            Some((&node.addr, "port")),
            node.raft_addr.as_ref().map(|a| (a, "Raft port")),
        ];
        for (addr, what) in addrs.into_iter().flatten() {
            if let Err(e) = TcpListener::bind(addr.as_str()) {
                bail!(
                    "cannot listen on {addr} ({} {what}): {e}; is another cluster running \
                     (mqcluster status)? --base-port P moves every port",
                    node.full_name()
                );
            }
        }
    }
    Ok(())
}

/// Starts every node, recording each pid at once (so `down` finds it even if this run is
/// interrupted), then waits for the leaders.
async fn start_and_wait(
    data: &DataDir,
    file: &mut ClusterFile,
    children: &mut Vec<(usize, Child)>,
    timeout: Duration,
) -> Result<(Snapshot, Vec<String>)> {
    for i in 0..file.nodes.len() {
        let child = process::start(&file.nodes[i], data.path())?;
        file.nodes[i].pid = Some(child.id());
        children.push((i, child));
        data.save(file)?;
    }
    wait_for_leaders(file, children, timeout).await
}

/// Where a group stands while `up` waits.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Readiness {
    /// Every nameserver routes to a live leader of the group; in a classic group, every
    /// nameserver has heard from it that its slaves are voters in sync and the witness votes.
    Registered(Leader),
    /// No nameserver knows the group, but its brokers have agreed on a leader for
    /// [`REGISTRATION_GRACE`].
    BrokersOnly(Leader),
    /// Not yet: what is missing.
    Waiting(String),
}

/// Decides where `group` stands; `agreed_for` is how long its brokers have agreed on
/// their current leader.
fn readiness(file: &ClusterFile, snap: &Snapshot, group: &str, agreed_for: Duration) -> Readiness {
    let routes: Vec<NamesrvRoute> = Snapshot::namesrvs(file)
        .map(|ns| snap.namesrv_route(file, ns, group))
        .collect();
    let registered: Vec<Leader> = routes
        .iter()
        .filter_map(|route| match route {
            NamesrvRoute::Leader {
                node: Some(node),
                term,
                ..
            } if snap.nodes[*node].pid.is_some() => Some(Leader {
                node: *node,
                term: *term,
            }),
            _ => None,
        })
        .collect();
    if !routes.is_empty() && registered.len() == routes.len() {
        if let Some(leader) = registered.iter().max_by_key(|l| l.term) {
            // A classic group is up once its slaves and the witness vote and the slaves are
            // in sync, as every nameserver hears it from the leader: before that, a SYNC_MASTER
            // answers SLAVE_NOT_AVAILABLE and a killed master is not replaced.
            let gap = if file.is_classic() {
                Snapshot::namesrvs(file).find_map(|ns| {
                    let replicas = snap.namesrv_replicas(file, ns, group).unwrap_or_default();
                    probe::replication_gap(file, group, leader.node, &replicas)
                })
            } else {
                None
            };
            return match gap {
                None => Readiness::Registered(*leader),
                Some(gap) => Readiness::Waiting(format!(
                    "{group}: {} leads term {}, {gap}",
                    file.nodes[leader.node].name, leader.term
                )),
            };
        }
    }
    let agreed = snap.agreed_leader(file, group);
    let unknown_everywhere = routes.iter().all(|r| *r == NamesrvRoute::UnknownGroup);
    if let Some(leader) = agreed {
        if unknown_everywhere && agreed_for >= REGISTRATION_GRACE {
            return Readiness::BrokersOnly(leader);
        }
    }
    let (members, answering) = snap.answering(file, group);
    let raft = match (agreed, snap.claimed_leader(file, group)) {
        (Some(l), _) => format!("{} leads term {}", file.nodes[l.node].name, l.term),
        (None, Some(l)) => format!(
            "{} leads term {}, not yet known to every replica",
            file.nodes[l.node].name, l.term
        ),
        (None, None) => "no leader elected yet".to_owned(),
    };
    let registration = if registered.is_empty() {
        "leader not registered at the nameserver yet".to_owned()
    } else {
        format!(
            "leader registered at {} of {} nameservers",
            registered.len(),
            routes.len()
        )
    };
    Readiness::Waiting(format!(
        "{group}: {answering}/{members} brokers answer, {raft}, {registration}"
    ))
}

/// Polls until every group is [`Readiness::Registered`] (or `BrokersOnly`), a started
/// process exits, or `timeout` passes. Returns the last snapshot and the groups accepted
/// without a registration.
async fn wait_for_leaders(
    file: &ClusterFile,
    children: &mut [(usize, Child)],
    timeout: Duration,
) -> Result<(Snapshot, Vec<String>)> {
    let start = Instant::now();
    let deadline = start + timeout;
    let mut channels = Channels::default();
    let mut progress = Progress::new();
    // When each group's brokers began to agree on their current leader.
    let mut agreed_since: HashMap<String, (Leader, Instant)> = HashMap::new();
    loop {
        for (i, child) in children.iter_mut() {
            if let Some(status) = child.try_wait().context("cannot check a started process")? {
                progress.clear();
                let node = &file.nodes[*i];
                bail!(
                    "{} exited during start ({status}): {} (log: {})",
                    node.full_name(),
                    process::last_log_line(&node.log).unwrap_or_default(),
                    programs::display_path(&node.log)
                );
            }
        }
        let snap = probe::snapshot(file, &mut channels).await;
        let now = Instant::now();
        let mut waiting = Vec::new();
        let mut unregistered = Vec::new();
        for group in file.groups() {
            let agreed_for = match snap.agreed_leader(file, group) {
                Some(leader) => {
                    let since = agreed_since
                        .entry(group.to_owned())
                        .and_modify(|(l, t)| {
                            if *l != leader {
                                *l = leader;
                                *t = now;
                            }
                        })
                        .or_insert((leader, now));
                    now - since.1
                }
                None => {
                    agreed_since.remove(group);
                    Duration::ZERO
                }
            };
            match readiness(file, &snap, group, agreed_for) {
                Readiness::Registered(_) => {}
                Readiness::BrokersOnly(_) => unregistered.push(group.to_owned()),
                Readiness::Waiting(what) => waiting.push(what),
            }
        }
        if waiting.is_empty() {
            progress.clear();
            return Ok((snap, unregistered));
        }
        let awaited = if file.is_classic() {
            "leaders, voting in-sync slaves and witnesses"
        } else {
            "leaders"
        };
        if now >= deadline {
            progress.clear();
            bail!(
                "no {awaited} within {timeout:?}: {}; logs in {}",
                waiting.join("; "),
                file.nodes[0]
                    .log
                    .parent()
                    .map_or_else(String::new, programs::display_path)
            );
        }
        progress.show(
            &format!("mqcluster: waiting for {awaited}: {}", waiting.join("; ")),
            start.elapsed(),
        );
        tokio::time::sleep(POLL).await;
    }
}

/// After a failed `up`: stops what this run started, reaps it, forgets the pids.
async fn stop_started(data: &DataDir, file: &mut ClusterFile, children: &mut [(usize, Child)]) {
    let nodes: Vec<&NodeRecord> = children.iter().map(|(i, _)| &file.nodes[*i]).collect();
    if let Err(e) = process::stop_all(&nodes, CLEANUP_GRACE).await {
        eprintln!("mqcluster: while stopping the started processes: {e:#}");
    }
    for (i, child) in children.iter_mut() {
        // Gone (stopped above, or exited by itself): collect its exit status so no zombie
        // is left behind. Still running means the stop above failed and said so: keep its
        // pid for `down`.
        if process::live_pid(&file.nodes[*i]).is_none() {
            let _ = child.wait();
            file.nodes[*i].pid = None;
        }
    }
    if let Err(e) = data.save(file) {
        eprintln!("mqcluster: {e:#}");
    }
}

/// The report of a successful `up`: nameserver line first, then the nodes, the groups and
/// what to try next.
fn print_summary(
    file: &ClusterFile,
    snap: &Snapshot,
    data: &DataDir,
    data_dir_arg: &Path,
    elapsed: Duration,
) {
    println!("{}", report::namesrv_line(file));
    println!();
    print!("{}", report::node_table(file, snap));
    println!();
    for line in report::group_lines(file, snap) {
        println!("{line}");
    }
    println!();
    println!(
        "Up in {:.1}s. Stores, logs (logs/NODE.log) and cluster.json are in {}.",
        elapsed.as_secs_f64(),
        programs::display_path(data.path())
    );
    println!();
    let namesrv = shell_word(&file.namesrv_list());
    // The sub-commands find this data dir by themselves only in the default place.
    let data_dir_flag = if data_dir_arg == default_data_dir("dledger") {
        String::new()
    } else {
        format!(
            " --data-dir {}",
            shell_word(&data_dir_arg.display().to_string())
        )
    };
    let mqcluster = programs::display_command("mqcluster");
    let mqadmin = programs::display_command("mqadmin");
    let mqbench = programs::display_command("mqbench");
    let group = file.groups().first().map_or("GROUP", |g| *g).to_owned();
    let members = file
        .nodes
        .iter()
        .filter(|n| n.group.as_deref() == Some(group.as_str()))
        .count();
    // The node `kill --leader` kills: the master of a classic group just started.
    let leader = snap
        .claimed_leader(file, &group)
        .map_or("NODE", |l| file.nodes[l.node].name.as_str());
    println!("Next steps:");
    println!("  export NAMESRV_ADDR={namesrv}");
    println!("  {mqadmin} clusterList -n {namesrv}");
    println!("  {mqbench} producer -n {namesrv} --duration 10s");
    if members > 1 {
        println!("  {mqcluster} kill --leader {group}{data_dir_flag}   # a new leader takes over");
    } else {
        println!(
            "  {mqcluster} kill --leader {group}{data_dir_flag}   # no slave: {group} is down \
             until restarted"
        );
    }
    println!("  {mqcluster} status{data_dir_flag}");
    if file.is_classic() && members > 1 {
        println!("  {mqcluster} restart {leader}{data_dir_flag}   # leads again once caught up");
    }
    println!("  {mqcluster} down{data_dir_flag}");
}

/// `word` quoted for a POSIX shell when it needs it (`a;b` → `'a;b'`).
fn shell_word(word: &str) -> String {
    let plain = word
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "-_./:=@,+".contains(c));
    if plain && !word.is_empty() {
        word.to_owned()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use proto::v1::RaftRole;

    use super::*;
    use crate::probe::tests::{
        classic_file, classic_namesrv, dledger_file, in_sync_replicas, namesrv, progress, view,
    };
    use crate::probe::NodeStatus;

    fn snapshot(ns: NodeStatus) -> Snapshot {
        Snapshot {
            nodes: vec![
                ns,
                view(RaftRole::Leader, 2, Some(11)),
                view(RaftRole::Follower, 2, Some(11)),
                view(RaftRole::Follower, 2, Some(11)),
            ],
        }
    }

    #[test]
    fn a_group_is_ready_once_the_nameserver_routes_to_a_live_leader() {
        let file = dledger_file();
        let ready = snapshot(namesrv(Some((11, 2))));
        assert_eq!(
            readiness(&file, &ready, "RaftNode00", Duration::ZERO),
            Readiness::Registered(Leader { node: 1, term: 2 })
        );

        let mut dead_leader = ready.clone();
        dead_leader.nodes[1] = NodeStatus::default();
        let Readiness::Waiting(why) = readiness(&file, &dead_leader, "RaftNode00", Duration::ZERO)
        else {
            panic!("a dead leader is not ready");
        };
        assert_eq!(
            why,
            "RaftNode00: 2/3 brokers answer, no leader elected yet, leader not registered at the \
             nameserver yet"
        );

        let no_leader = snapshot(namesrv(None));
        let Readiness::Waiting(why) = readiness(&file, &no_leader, "RaftNode00", Duration::ZERO)
        else {
            panic!("no route, not ready");
        };
        assert!(why.contains("3/3 brokers answer, n0 leads term 2"), "{why}");
    }

    #[test]
    fn brokers_that_never_register_are_accepted_after_a_grace_period() {
        let file = dledger_file();
        let mut unknown = snapshot(namesrv(None));
        unknown.nodes[0].routes = Some(Vec::new());
        assert!(matches!(
            readiness(&file, &unknown, "RaftNode00", Duration::from_secs(1)),
            Readiness::Waiting(_)
        ));
        assert_eq!(
            readiness(&file, &unknown, "RaftNode00", REGISTRATION_GRACE),
            Readiness::BrokersOnly(Leader { node: 1, term: 2 })
        );
        // A nameserver that knows the group but has no leader is waited for.
        let known = snapshot(namesrv(None));
        assert!(matches!(
            readiness(&file, &known, "RaftNode00", REGISTRATION_GRACE),
            Readiness::Waiting(_)
        ));
    }

    #[test]
    fn a_classic_group_is_ready_once_its_slave_and_witness_vote_in_sync() {
        let file = classic_file();
        let mut snap = Snapshot {
            nodes: vec![
                classic_namesrv(Vec::new()),
                view(RaftRole::Follower, 2, Some(21)),
                view(RaftRole::Leader, 2, Some(21)),
            ],
        };
        let Readiness::Waiting(why) = readiness(&file, &snap, "broker-a", Duration::ZERO) else {
            panic!("no report yet, not ready");
        };
        assert_eq!(
            why,
            "broker-a: broker-a leads term 2, broker-a has not reported its replicas to the \
             nameserver yet"
        );
        snap.nodes[0] = classic_namesrv(vec![progress(1, "127.0.0.1:12", false, false, false, 9)]);
        let Readiness::Waiting(why) = readiness(&file, &snap, "broker-a", Duration::ZERO) else {
            panic!("a learner, not ready");
        };
        assert!(
            why.starts_with("broker-a: broker-a leads term 2, broker-a-s is a learner"),
            "{why}"
        );
        snap.nodes[0] = classic_namesrv(in_sync_replicas());
        assert_eq!(
            readiness(&file, &snap, "broker-a", Duration::ZERO),
            Readiness::Registered(Leader { node: 2, term: 2 })
        );
    }

    #[test]
    fn shell_words_are_quoted_when_needed() {
        assert_eq!(shell_word("127.0.0.1:9876"), "127.0.0.1:9876");
        assert_eq!(shell_word("a:1;b:2"), "'a:1;b:2'");
        assert_eq!(shell_word("it's"), r"'it'\''s'");
    }
}
