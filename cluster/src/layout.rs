//! A `conf/` layout turned into the processes `mqcluster up` starts: which property files,
//! what each node is called, which ports and directories it gets, and its command line.
//!
//! The property files are not interpreted here: `mqbroker -c FILE -p` prints the effective
//! configuration of each (defaults, aliases and all), and this module reads the handful of
//! keys it needs from that, so mqcluster and mqbroker never disagree about a file.
//!
//! # Port scheme
//!
//! Without `--base-port`, every node keeps the ports of its property file: the nameserver
//! the `listenPort` of `namesrv.properties` (9876; further nameservers the next ports), a
//! broker its `listenPort` and, as Raft port, the address of its own `dLegerPeers` entry
//! (classic layouts: `haListenPort`).
//!
//! With `--base-port P`, broker `i` being the `i`-th property file of the layout in name
//! order:
//!
//! | process | port |
//! |---|---|
//! | nameserver `k` (`k` = 0, 1, ...) | `P + k` |
//! | broker `i`, client port (`listenPort`) | `P + 10 + 10·i` |
//! | broker `i`, Raft / replication port (`dLegerPeers` entry, `haListenPort`) | `P + 11 + 10·i` |
//!
//! so the dledger layout takes `P` to `P + 31`: nameserver `P`, n0 `P+10`/`P+11`, n1
//! `P+20`/`P+21`, n2 `P+30`/`P+31`. Everything listens on 127.0.0.1.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};

use crate::state::{NodeKind, NodeRecord};

/// The host every node listens on: mqcluster runs a cluster on one machine.
pub const LOOPBACK: &str = "127.0.0.1";
/// Most nameservers one cluster may have (their ports sit below the first broker's).
pub const MAX_NAMESRVS: u16 = 10;
/// With `--base-port`, the first broker's client port is this far above the base.
const FIRST_BROKER_OFFSET: u32 = 10;
/// With `--base-port`, consecutive brokers' ports are this far apart.
const BROKER_STRIDE: u32 = 10;
/// A nameserver's `witnessStorePath` is this directory of its node directory
/// (`<data-dir>/namesrv/witness`): the votes and log ids of the witnesses it hosts for classic
/// groups stay with the cluster, survive a `restart namesrv`, and are never shared with another
/// nameserver of the machine (the default, `~/namesrv/witness`, would be).
pub const WITNESS_DIR: &str = "witness";

/// The layouts of `conf/`, one directory each.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Layout {
    /// One group of three Raft replicas (`conf/dledger`).
    #[value(name = "dledger")]
    Dledger,
    /// Two groups, a master each, no slave (`conf/2m-noslave`).
    #[value(name = "2m-noslave")]
    TwoMastersNoSlave,
    /// Two groups of master + slave, acked after the master's append (`conf/2m-2s-async`).
    #[value(name = "2m-2s-async")]
    TwoMastersTwoSlavesAsync,
    /// Two groups of master + slave, acked after the slave has it too (`conf/2m-2s-sync`).
    #[value(name = "2m-2s-sync")]
    TwoMastersTwoSlavesSync,
}

impl Layout {
    /// The directory under `conf/`, also the layout's name on the command line.
    pub fn dir_name(self) -> &'static str {
        match self {
            Layout::Dledger => "dledger",
            Layout::TwoMastersNoSlave => "2m-noslave",
            Layout::TwoMastersTwoSlavesAsync => "2m-2s-async",
            Layout::TwoMastersTwoSlavesSync => "2m-2s-sync",
        }
    }

    /// The layout whose directory is `name` (as cluster.json records it).
    pub fn named(name: &str) -> Option<Layout> {
        use clap::ValueEnum;
        Layout::value_variants()
            .iter()
            .copied()
            .find(|l| l.dir_name() == name)
    }

    /// Whether its groups are classic ones (`brokerRole` files: a master, its slaves and a
    /// witness on the nameserver) rather than DLedger peers.
    pub fn is_classic(self) -> bool {
        self != Layout::Dledger
    }
}

/// The effective settings of one broker property file that mqcluster needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerConf {
    /// The property file (absolute).
    pub file: PathBuf,
    /// `brokerName`: the group.
    pub group: String,
    /// `listenPort`.
    pub listen_port: u16,
    /// `haListenPort` (classic replication port).
    pub ha_listen_port: u16,
    /// The DLedger settings, when `enableDLegerCommitLog=true`.
    pub dledger: Option<DledgerConf>,
}

/// `dLegerSelfId` and `dLegerPeers`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DledgerConf {
    /// `dLegerSelfId`.
    pub self_id: String,
    /// `dLegerPeers`: peer id → Raft port.
    pub peers: Vec<(String, u16)>,
}

impl BrokerConf {
    /// Reads the keys mqcluster needs from an effective configuration (`mqbroker -p`).
    pub fn from_properties(file: &Path, props: &BTreeMap<String, String>) -> Result<BrokerConf> {
        let get = |key: &str| {
            props
                .get(key)
                .map(String::as_str)
                .ok_or_else(|| anyhow!("{}: mqbroker -p printed no {key}", file.display()))
        };
        let port = |key: &str| -> Result<u16> {
            let raw = get(key)?;
            raw.parse()
                .map_err(|_| anyhow!("{}: {key}={raw} is not a port", file.display()))
        };
        let dledger = if get("enableDLegerCommitLog")? == "true" {
            let peers = get("dLegerPeers")?
                .split(';')
                .filter(|p| !p.trim().is_empty())
                .map(|peer| parse_peer(peer.trim()))
                .collect::<Option<Vec<_>>>()
                .ok_or_else(|| {
                    anyhow!("{}: dLegerPeers is not id-host:port;...", file.display())
                })?;
            Some(DledgerConf {
                self_id: get("dLegerSelfId")?.to_owned(),
                peers,
            })
        } else {
            None
        };
        Ok(BrokerConf {
            file: file.to_owned(),
            group: get("brokerName")?.to_owned(),
            listen_port: port("listenPort")?,
            ha_listen_port: port("haListenPort")?,
            dledger,
        })
    }

    /// The node's name: `dLegerSelfId` in a dledger group (`n0`), else the property
    /// file's name without `.properties` (`broker-a-s`).
    pub fn node_name(&self) -> String {
        match &self.dledger {
            Some(d) => d.self_id.clone(),
            None => self
                .file
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default(),
        }
    }

    /// The Raft port the file itself gives this node.
    fn own_raft_port(&self) -> Result<u16> {
        match &self.dledger {
            Some(d) => d
                .peers
                .iter()
                .find(|(id, _)| *id == d.self_id)
                .map(|(_, port)| *port)
                .ok_or_else(|| {
                    anyhow!(
                        "{}: dLegerSelfId {} is not among dLegerPeers",
                        self.file.display(),
                        d.self_id
                    )
                }),
            None => Ok(self.ha_listen_port),
        }
    }
}

/// `n0-127.0.0.1:40911` → (`n0`, 40911).
fn parse_peer(peer: &str) -> Option<(String, u16)> {
    let (id, addr) = peer.split_once('-')?;
    let (_, port) = addr.rsplit_once(':')?;
    Some((id.to_owned(), port.parse().ok()?))
}

/// Everything a plan is made from.
pub struct PlanInput<'a> {
    /// The brokers' effective settings, in layout (file name) order.
    pub brokers: &'a [BrokerConf],
    /// `namesrv.properties`, when the layout's conf dir has one.
    pub namesrv_conf: Option<&'a Path>,
    /// The nameserver port the conf gives (9876).
    pub namesrv_port: u16,
    /// How many nameservers to start.
    pub namesrv_count: u16,
    /// `--base-port`.
    pub base_port: Option<u16>,
    /// The `mqnamesrv` program.
    pub mqnamesrv: &'a Path,
    /// The `mqbroker` program.
    pub mqbroker: &'a Path,
    /// Where node `name` logs.
    pub log_path: &'a dyn Fn(&str) -> PathBuf,
    /// Where node `name` stores: a broker its `storePathRootDir`, a nameserver the parent
    /// of its `witnessStorePath` ([`WITNESS_DIR`]).
    pub store_path: &'a dyn Fn(&str) -> PathBuf,
}

/// Every node of the cluster with its ports and command line (not started: no pid).
/// Nameservers come first: brokers register with them as they start.
pub fn plan(input: &PlanInput<'_>) -> Result<Vec<NodeRecord>> {
    if input.namesrv_count == 0 || input.namesrv_count > MAX_NAMESRVS {
        bail!(
            "between 1 and {MAX_NAMESRVS} nameservers, not {}",
            input.namesrv_count
        );
    }
    if input.brokers.is_empty() {
        bail!("the layout has no broker property file");
    }
    let ports = Ports::new(input)?;
    let mut nodes = Vec::new();
    let namesrv_addrs: Vec<String> = (0..input.namesrv_count)
        .map(|k| format!("{LOOPBACK}:{}", ports.namesrv(k)))
        .collect();
    for (k, addr) in (0..input.namesrv_count).zip(&namesrv_addrs) {
        let name = if input.namesrv_count == 1 {
            "namesrv".to_owned()
        } else {
            format!("namesrv{k}")
        };
        let store = (input.store_path)(&name);
        let mut command = vec![path_arg(input.mqnamesrv)?];
        if let Some(conf) = input.namesrv_conf {
            command.extend(["-c".to_owned(), path_arg(conf)?]);
        }
        command.extend(set("listenPort", &ports.namesrv(k).to_string()));
        command.extend(set("bindAddress", LOOPBACK));
        command.extend(set(
            "witnessStorePath",
            &path_arg(&store.join(WITNESS_DIR))?,
        ));
        nodes.push(NodeRecord {
            log: (input.log_path)(&name),
            name,
            kind: NodeKind::Namesrv,
            group: None,
            addr: addr.clone(),
            raft_addr: None,
            command,
            store: Some(store),
            pid: None,
        });
    }

    let names: Vec<String> = input.brokers.iter().map(BrokerConf::node_name).collect();
    for (i, name) in names.iter().enumerate() {
        // A node's name is its directory in the data dir: no two nodes may share one.
        let namesrv_name = nodes.iter().any(|n| n.name == *name);
        if name.is_empty() || names[..i].contains(name) || namesrv_name {
            bail!(
                "{}: node name {name:?} is not unique in the layout",
                input.brokers[i].file.display()
            );
        }
    }
    for (i, broker) in input.brokers.iter().enumerate() {
        let name = &names[i];
        let client_port = ports.client(i, broker)?;
        let raft_port = ports.raft(i, broker)?;
        let store = (input.store_path)(name);
        let mut command = vec![
            path_arg(input.mqbroker)?,
            "-c".to_owned(),
            path_arg(&broker.file)?,
            "-n".to_owned(),
            namesrv_addrs.join(";"),
        ];
        command.extend(set("storePathRootDir", &path_arg(&store)?));
        command.extend(set("brokerIP1", LOOPBACK));
        command.extend(set("listenPort", &client_port.to_string()));
        match &broker.dledger {
            Some(d) => {
                let peers = dledger_peers(input.brokers, d, &ports, broker)?;
                command.extend(set("dLegerPeers", &peers));
            }
            None => command.extend(set("haListenPort", &raft_port.to_string())),
        }
        nodes.push(NodeRecord {
            name: name.clone(),
            kind: NodeKind::Broker,
            group: Some(broker.group.clone()),
            addr: format!("{LOOPBACK}:{client_port}"),
            raft_addr: Some(format!("{LOOPBACK}:{raft_port}")),
            command,
            log: (input.log_path)(name),
            store: Some(store),
            pid: None,
        });
    }
    Ok(nodes)
}

/// The `dLegerPeers` value for `broker`: every peer of its file, at the Raft port of the
/// layout node with that `dLegerSelfId` in the same group.
fn dledger_peers(
    brokers: &[BrokerConf],
    conf: &DledgerConf,
    ports: &Ports,
    broker: &BrokerConf,
) -> Result<String> {
    let mut peers = Vec::new();
    for (peer_id, _) in &conf.peers {
        let (index, peer) = brokers
            .iter()
            .enumerate()
            .find(|(_, b)| {
                b.group == broker.group && b.dledger.as_ref().is_some_and(|d| d.self_id == *peer_id)
            })
            .ok_or_else(|| {
                anyhow!(
                    "{}: dLegerPeers names {peer_id}, but no property file of the layout has \
                     brokerName={} and dLegerSelfId={peer_id}",
                    broker.file.display(),
                    broker.group
                )
            })?;
        peers.push(format!("{peer_id}-{LOOPBACK}:{}", ports.raft(index, peer)?));
    }
    Ok(peers.join(";"))
}

/// The port scheme of the module docs.
struct Ports {
    base: Option<u16>,
    namesrv_port: u16,
}

impl Ports {
    fn new(input: &PlanInput<'_>) -> Result<Ports> {
        let ports = Ports {
            base: input.base_port,
            namesrv_port: input.namesrv_port,
        };
        // Check the highest port once, so the per-node functions cannot overflow.
        let highest = match input.base_port {
            Some(base) => {
                u32::from(base) + FIRST_BROKER_OFFSET + 1 + BROKER_STRIDE * brokers_u32(input)?
                    - BROKER_STRIDE
            }
            None => u32::from(input.namesrv_port) + u32::from(input.namesrv_count) - 1,
        };
        if highest > u32::from(u16::MAX) {
            match input.base_port {
                Some(base) => bail!(
                    "--base-port {base} is too high: this layout uses ports {base} to {highest}"
                ),
                None => bail!(
                    "{} nameservers from port {} go past port 65535",
                    input.namesrv_count,
                    input.namesrv_port
                ),
            }
        }
        if input.base_port == Some(0) {
            bail!("--base-port must be a port number above 0");
        }
        Ok(ports)
    }

    fn namesrv(&self, k: u16) -> u16 {
        self.base.unwrap_or(self.namesrv_port) + k
    }

    fn client(&self, i: usize, broker: &BrokerConf) -> Result<u16> {
        match self.base {
            Some(base) => offset(base, FIRST_BROKER_OFFSET + BROKER_STRIDE * index_u32(i)?),
            None => Ok(broker.listen_port),
        }
    }

    fn raft(&self, i: usize, broker: &BrokerConf) -> Result<u16> {
        match self.base {
            Some(base) => offset(
                base,
                FIRST_BROKER_OFFSET + 1 + BROKER_STRIDE * index_u32(i)?,
            ),
            None => broker.own_raft_port(),
        }
    }
}

fn brokers_u32(input: &PlanInput<'_>) -> Result<u32> {
    index_u32(input.brokers.len())
}

fn index_u32(i: usize) -> Result<u32> {
    u32::try_from(i).context("too many brokers")
}

fn offset(base: u16, by: u32) -> Result<u16> {
    u16::try_from(u32::from(base) + by).context("port past 65535")
}

/// `--set KEY=VALUE` as two arguments.
fn set(key: &str, value: &str) -> [String; 2] {
    ["--set".to_owned(), format!("{key}={value}")]
}

/// A path as a command-line argument; recorded in cluster.json, so it must be UTF-8.
fn path_arg(path: &Path) -> Result<String> {
    path.to_str()
        .map(str::to_owned)
        .with_context(|| format!("{} is not a UTF-8 path", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dledger_conf(self_id: &str, listen: u16) -> BrokerConf {
        BrokerConf {
            file: PathBuf::from(format!("/conf/dledger/broker-{self_id}.properties")),
            group: "RaftNode00".into(),
            listen_port: listen,
            ha_listen_port: listen + 1,
            dledger: Some(DledgerConf {
                self_id: self_id.into(),
                peers: vec![
                    ("n0".into(), 40911),
                    ("n1".into(), 40912),
                    ("n2".into(), 40913),
                ],
            }),
        }
    }

    fn classic_conf(stem: &str, group: &str, listen: u16) -> BrokerConf {
        BrokerConf {
            file: PathBuf::from(format!("/conf/2m-2s-sync/{stem}.properties")),
            group: group.into(),
            listen_port: listen,
            ha_listen_port: listen + 1,
            dledger: None,
        }
    }

    fn run_plan(
        brokers: &[BrokerConf],
        base: Option<u16>,
        namesrvs: u16,
    ) -> Result<Vec<NodeRecord>> {
        plan(&PlanInput {
            brokers,
            namesrv_conf: Some(Path::new("/conf/namesrv.properties")),
            namesrv_port: 9876,
            namesrv_count: namesrvs,
            base_port: base,
            mqnamesrv: Path::new("/bin/mqnamesrv"),
            mqbroker: Path::new("/bin/mqbroker"),
            log_path: &|name| PathBuf::from(format!("/data/logs/{name}.log")),
            store_path: &|name| PathBuf::from(format!("/data/{name}")),
        })
    }

    fn dledger() -> Vec<BrokerConf> {
        vec![
            dledger_conf("n0", 30911),
            dledger_conf("n1", 30921),
            dledger_conf("n2", 30931),
        ]
    }

    fn arg_after<'a>(node: &'a NodeRecord, key: &str) -> Option<&'a str> {
        node.command
            .iter()
            .find_map(|a| a.strip_prefix(&format!("{key}=")))
    }

    #[test]
    fn conf_ports_are_kept_without_a_base_port() {
        let nodes = run_plan(&dledger(), None, 1).unwrap();
        let names: Vec<String> = nodes.iter().map(NodeRecord::full_name).collect();
        assert_eq!(
            names,
            ["namesrv", "RaftNode00/n0", "RaftNode00/n1", "RaftNode00/n2"]
        );
        assert_eq!(nodes[0].addr, "127.0.0.1:9876");
        assert_eq!(
            nodes[0].command,
            [
                "/bin/mqnamesrv",
                "-c",
                "/conf/namesrv.properties",
                "--set",
                "listenPort=9876",
                "--set",
                "bindAddress=127.0.0.1",
                "--set",
                "witnessStorePath=/data/namesrv/witness"
            ]
        );
        assert_eq!(nodes[0].store, Some(PathBuf::from("/data/namesrv")));
        assert_eq!(nodes[2].addr, "127.0.0.1:30921");
        assert_eq!(nodes[2].raft_addr.as_deref(), Some("127.0.0.1:40912"));
        assert_eq!(
            &nodes[2].command[..5],
            [
                "/bin/mqbroker",
                "-c",
                "/conf/dledger/broker-n1.properties",
                "-n",
                "127.0.0.1:9876"
            ]
        );
        assert_eq!(arg_after(&nodes[2], "storePathRootDir"), Some("/data/n1"));
        assert_eq!(arg_after(&nodes[2], "listenPort"), Some("30921"));
        assert_eq!(
            arg_after(&nodes[2], "dLegerPeers"),
            Some("n0-127.0.0.1:40911;n1-127.0.0.1:40912;n2-127.0.0.1:40913")
        );
        assert_eq!(nodes[2].log, PathBuf::from("/data/logs/n1.log"));
    }

    #[test]
    fn a_base_port_moves_every_port() {
        let nodes = run_plan(&dledger(), Some(20000), 2).unwrap();
        let addrs: Vec<(&str, Option<&str>)> = nodes
            .iter()
            .map(|n| (n.addr.as_str(), n.raft_addr.as_deref()))
            .collect();
        assert_eq!(
            addrs,
            [
                ("127.0.0.1:20000", None),
                ("127.0.0.1:20001", None),
                ("127.0.0.1:20010", Some("127.0.0.1:20011")),
                ("127.0.0.1:20020", Some("127.0.0.1:20021")),
                ("127.0.0.1:20030", Some("127.0.0.1:20031")),
            ]
        );
        assert_eq!(nodes[0].name, "namesrv0");
        assert_eq!(nodes[1].name, "namesrv1");
        // Each nameserver keeps its own witnesses.
        assert_eq!(
            arg_after(&nodes[1], "witnessStorePath"),
            Some("/data/namesrv1/witness")
        );
        for broker in &nodes[2..] {
            assert!(broker
                .command
                .windows(2)
                .any(|w| w == ["-n", "127.0.0.1:20000;127.0.0.1:20001"]));
            assert_eq!(
                arg_after(broker, "dLegerPeers"),
                Some("n0-127.0.0.1:20011;n1-127.0.0.1:20021;n2-127.0.0.1:20031")
            );
        }
    }

    #[test]
    fn classic_layouts_are_named_by_file_and_set_the_ha_port() {
        let brokers = [
            classic_conf("broker-a", "broker-a", 10911),
            classic_conf("broker-a-s", "broker-a", 10921),
        ];
        let nodes = run_plan(&brokers, Some(30000), 1).unwrap();
        assert_eq!(nodes[2].full_name(), "broker-a/broker-a-s");
        assert_eq!(arg_after(&nodes[2], "listenPort"), Some("30020"));
        assert_eq!(arg_after(&nodes[2], "haListenPort"), Some("30021"));
        let nodes = run_plan(&brokers, None, 1).unwrap();
        assert_eq!(arg_after(&nodes[1], "haListenPort"), Some("10912"));
    }

    #[test]
    fn impossible_plans_are_explained() {
        let err = run_plan(&dledger(), Some(65530), 1)
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "--base-port 65530 is too high: this layout uses ports 65530 to 65561"
        );
        assert!(run_plan(&dledger(), Some(65504), 1).is_ok());
        assert!(run_plan(&dledger(), Some(65505), 1).is_err());

        let mut lonely = dledger();
        lonely.remove(2);
        let err = run_plan(&lonely, Some(20000), 1).unwrap_err().to_string();
        assert!(
            err.contains("dLegerPeers names n2, but no property file"),
            "{err}"
        );

        let twins = [dledger_conf("n0", 1), dledger_conf("n0", 2)];
        let err = run_plan(&twins, None, 1).unwrap_err().to_string();
        assert!(err.contains("\"n0\" is not unique"), "{err}");
        // A broker named like a nameserver would share its directory.
        let namesake = [classic_conf("namesrv", "broker-a", 10911)];
        let err = run_plan(&namesake, None, 1).unwrap_err().to_string();
        assert!(err.contains("\"namesrv\" is not unique"), "{err}");
        assert!(Layout::named("2m-2s-sync").is_some_and(Layout::is_classic));
        assert!(!Layout::named("dledger").is_some_and(Layout::is_classic));
        assert_eq!(Layout::named("3m"), None);
        assert!(run_plan(&dledger(), None, 0).is_err());
    }

    #[test]
    fn effective_properties_are_read() {
        let props: BTreeMap<String, String> = [
            ("brokerName", "RaftNode00"),
            ("listenPort", "30911"),
            ("haListenPort", "30912"),
            ("enableDLegerCommitLog", "true"),
            ("dLegerSelfId", "n0"),
            ("dLegerPeers", "n0-127.0.0.1:40911;n1-localhost:40912"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        let conf = BrokerConf::from_properties(Path::new("/c/b.properties"), &props).unwrap();
        assert_eq!(conf.node_name(), "n0");
        assert_eq!(conf.own_raft_port().unwrap(), 40911);
        assert_eq!(
            conf.dledger.unwrap().peers,
            [("n0".to_owned(), 40911), ("n1".to_owned(), 40912)]
        );

        let mut classic = props.clone();
        classic.insert("enableDLegerCommitLog".into(), "false".into());
        let conf =
            BrokerConf::from_properties(Path::new("/c/broker-b.properties"), &classic).unwrap();
        assert_eq!(conf.node_name(), "broker-b");
        assert_eq!(conf.own_raft_port().unwrap(), 30912);

        let mut bad = props;
        bad.insert("listenPort".into(), "x".into());
        let err = BrokerConf::from_properties(Path::new("/c/b.properties"), &bad).unwrap_err();
        assert_eq!(
            err.to_string(),
            "/c/b.properties: listenPort=x is not a port"
        );
    }
}
