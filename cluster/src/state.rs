//! `<data-dir>/cluster.json`: what `mqcluster up` started, so that every later command
//! (`status`, `kill`, `restart`, `down`) can find the same processes again.
//!
//! The file records, per node, the exact command line it was started with and its pid. A
//! pid is only ever signalled after `/proc/PID/cmdline` has been checked to still be that
//! command line (see [`crate::process`]), so a recycled pid is never hit.
//!
//! Writes are atomic (temp file, fsync, rename), so a reader never sees half a file, and
//! commands that change the file hold `<data-dir>/cluster.lock` for their whole run, so two
//! of them never overwrite each other's pids.

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

/// Version of the `cluster.json` format; bumped when a field changes meaning.
pub const FORMAT_VERSION: u32 = 1;

/// Name of the state file inside the data dir.
const STATE_FILE: &str = "cluster.json";
/// Name of the lock file inside the data dir.
const LOCK_FILE: &str = "cluster.lock";

/// What kind of process a node is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NodeKind {
    /// An `mqnamesrv`.
    Namesrv,
    /// An `mqbroker`: one replica of one broker group.
    Broker,
}

/// One process of the cluster, as started.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeRecord {
    /// What `kill` and `restart` call it: `namesrv`, `n0`, `broker-a-s`.
    pub name: String,
    /// Nameserver or broker.
    pub kind: NodeKind,
    /// The broker group (`brokerName`); none for a nameserver.
    pub group: Option<String>,
    /// Where clients reach it: the broker's client port, the nameserver's port.
    pub addr: String,
    /// The broker's Raft (replication) address; none for a nameserver.
    pub raft_addr: Option<String>,
    /// Program and arguments exactly as started: `restart` runs them again, and a pid is
    /// only signalled while `/proc/PID/cmdline` still reads the same.
    pub command: Vec<String>,
    /// Its stdout and stderr (appended to across restarts).
    pub log: PathBuf,
    /// Its directory of the data dir: a broker's store (`storePathRootDir`), a nameserver's
    /// witness stores (under `witness/`); none for a nameserver recorded by an older mqcluster.
    pub store: Option<PathBuf>,
    /// Pid of the last start; none once `down` stopped it (or before it was started).
    pub pid: Option<u32>,
}

impl NodeRecord {
    /// `RaftNode00/n0` for a broker, `namesrv` for a nameserver: unique in a cluster.
    pub fn full_name(&self) -> String {
        match &self.group {
            Some(group) => format!("{group}/{}", self.name),
            None => self.name.clone(),
        }
    }

    /// Whether `query` names this node: its name or its `GROUP/name`.
    pub fn is_named(&self, query: &str) -> bool {
        query == self.name || query == self.full_name()
    }
}

/// The content of `cluster.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterFile {
    /// [`FORMAT_VERSION`] of the writer.
    pub format: u32,
    /// Layout name (`dledger`, `2m-noslave`, ...).
    pub layout: String,
    /// `--base-port` of `up`, none when the ports came from the property files. The Raft
    /// membership inside the stores records peer addresses, so a later `up` on the same
    /// data dir must use the same ports.
    pub base_port: Option<u16>,
    /// The `conf/` directory the property files came from.
    pub conf_dir: PathBuf,
    /// Every nameserver address, in the order brokers were given them (`-n`).
    pub namesrv_addrs: Vec<String>,
    /// Nameservers first, then brokers in layout order.
    pub nodes: Vec<NodeRecord>,
}

impl ClusterFile {
    /// The `-n` value for clients: the nameserver addresses joined with `;`.
    pub fn namesrv_list(&self) -> String {
        self.namesrv_addrs.join(";")
    }

    /// Whether the layout's groups are classic ones (master, slaves, witness).
    pub fn is_classic(&self) -> bool {
        crate::layout::Layout::named(&self.layout).is_some_and(crate::layout::Layout::is_classic)
    }

    /// Broker group names in layout order, each once.
    pub fn groups(&self) -> Vec<&str> {
        let mut groups: Vec<&str> = Vec::new();
        for group in self.nodes.iter().filter_map(|n| n.group.as_deref()) {
            if !groups.contains(&group) {
                groups.push(group);
            }
        }
        groups
    }

    /// The index of the one node `query` names (see [`NodeRecord::is_named`]); an error
    /// listing the nodes when none or several match.
    pub fn find(&self, query: &str) -> Result<usize> {
        let matches: Vec<usize> = (0..self.nodes.len())
            .filter(|&i| self.nodes[i].is_named(query))
            .collect();
        match matches.as_slice() {
            [one] => Ok(*one),
            [] => bail!(
                "no node {query:?} in this cluster (nodes: {})",
                self.nodes
                    .iter()
                    .map(NodeRecord::full_name)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            several => bail!(
                "{query:?} names {} nodes ({}); use GROUP/NODE",
                several.len(),
                several
                    .iter()
                    .map(|&i| self.nodes[i].full_name())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        }
    }
}

/// A cluster's data directory: stores, logs and `cluster.json`.
#[derive(Debug, Clone)]
pub struct DataDir {
    /// Absolute path.
    path: PathBuf,
}

/// Held while a command may change `cluster.json`; released on drop.
#[derive(Debug)]
pub struct StateLock {
    /// The locked file: the lock lives as long as this handle.
    _file: File,
}

impl DataDir {
    /// Creates the directory (and `logs/` in it) if needed.
    pub fn create(path: &Path) -> Result<DataDir> {
        fs::create_dir_all(path.join("logs"))
            .with_context(|| format!("cannot create the data dir {}", path.display()))?;
        Self::open_existing(path)
    }

    /// An existing data directory that holds a `cluster.json`.
    pub fn open(path: &Path) -> Result<DataDir> {
        if !path.join(STATE_FILE).is_file() {
            bail!(
                "no cluster in {} (no {STATE_FILE}); start one with `mqcluster up`{}",
                path.display(),
                if path.is_dir() {
                    ", or pass the --data-dir it used"
                } else {
                    ""
                }
            );
        }
        Self::open_existing(path)
    }

    fn open_existing(path: &Path) -> Result<DataDir> {
        let path = path
            .canonicalize()
            .with_context(|| format!("cannot resolve the data dir {}", path.display()))?;
        Ok(DataDir { path })
    }

    /// The absolute path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Path of `cluster.json`.
    pub fn state_path(&self) -> PathBuf {
        self.path.join(STATE_FILE)
    }

    /// Where node `name` logs.
    pub fn log_path(&self, name: &str) -> PathBuf {
        self.path.join("logs").join(format!("{name}.log"))
    }

    /// Where node `name` keeps its store (a nameserver: its witness stores).
    pub fn store_path(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }

    /// Takes the lock that serialises commands changing `cluster.json` (waits for it).
    pub fn lock(&self) -> Result<StateLock> {
        let path = self.path.join(LOCK_FILE);
        let file = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .with_context(|| format!("cannot open {}", path.display()))?;
        file.lock()
            .with_context(|| format!("cannot lock {}", path.display()))?;
        Ok(StateLock { _file: file })
    }

    /// Reads `cluster.json`; none when there is none.
    pub fn load(&self) -> Result<Option<ClusterFile>> {
        let path = self.state_path();
        let text = match fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
        };
        let file: ClusterFile = serde_json::from_str(&text)
            .with_context(|| format!("{} is not a cluster file", path.display()))?;
        if file.format != FORMAT_VERSION {
            bail!(
                "{} has format {} but this mqcluster reads format {FORMAT_VERSION}",
                path.display(),
                file.format
            );
        }
        Ok(Some(file))
    }

    /// Reads `cluster.json`, which must exist.
    pub fn load_existing(&self) -> Result<ClusterFile> {
        self.load()?
            .with_context(|| format!("{} has disappeared", self.state_path().display()))
    }

    /// Writes `cluster.json` atomically: temp file, fsync, rename.
    pub fn save(&self, file: &ClusterFile) -> Result<()> {
        let path = self.state_path();
        let tmp = self.path.join(format!("{STATE_FILE}.tmp"));
        let mut text = serde_json::to_string_pretty(file).context("cannot encode the state")?;
        text.push('\n');
        let write = || -> std::io::Result<()> {
            let mut out = File::create(&tmp)?;
            out.write_all(text.as_bytes())?;
            out.sync_all()?;
            fs::rename(&tmp, &path)
        };
        write().with_context(|| format!("cannot write {}", path.display()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(name: &str, group: Option<&str>) -> NodeRecord {
        NodeRecord {
            name: name.into(),
            kind: if group.is_some() {
                NodeKind::Broker
            } else {
                NodeKind::Namesrv
            },
            group: group.map(Into::into),
            addr: "127.0.0.1:1".into(),
            raft_addr: None,
            command: vec!["/bin/true".into()],
            log: PathBuf::from("/tmp/x.log"),
            store: None,
            pid: Some(7),
        }
    }

    fn cluster(nodes: Vec<NodeRecord>) -> ClusterFile {
        ClusterFile {
            format: FORMAT_VERSION,
            layout: "dledger".into(),
            base_port: Some(20000),
            conf_dir: PathBuf::from("/conf"),
            namesrv_addrs: vec!["127.0.0.1:20000".into()],
            nodes,
        }
    }

    #[test]
    fn nodes_are_found_by_name_or_group_and_name() {
        let c = cluster(vec![
            node("namesrv", None),
            node("n0", Some("A")),
            node("n1", Some("A")),
            node("n0", Some("B")),
        ]);
        assert_eq!(c.find("namesrv").unwrap(), 0);
        assert_eq!(c.find("n1").unwrap(), 2);
        assert_eq!(c.find("A/n1").unwrap(), 2);
        assert_eq!(c.find("B/n0").unwrap(), 3);
        let ambiguous = c.find("n0").unwrap_err().to_string();
        assert!(ambiguous.contains("A/n0, B/n0"), "{ambiguous}");
        let unknown = c.find("n9").unwrap_err().to_string();
        assert!(unknown.contains("nodes: namesrv, A/n0"), "{unknown}");
        assert_eq!(c.groups(), vec!["A", "B"]);
    }

    #[test]
    fn the_file_round_trips_and_is_replaced_atomically() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = DataDir::create(tmp.path()).unwrap();
        assert_eq!(dir.load().unwrap(), None);
        let _lock = dir.lock().unwrap();
        let mut c = cluster(vec![node("namesrv", None), node("n0", Some("A"))]);
        dir.save(&c).unwrap();
        assert_eq!(dir.load().unwrap(), Some(c.clone()));
        c.nodes[1].pid = None;
        dir.save(&c).unwrap();
        assert_eq!(dir.load_existing().unwrap(), c);
        assert!(!dir.path().join("cluster.json.tmp").exists());
        assert!(DataDir::open(tmp.path()).is_ok());
    }

    #[test]
    fn a_dir_without_a_cluster_says_how_to_start_one() {
        let tmp = tempfile::tempdir().unwrap();
        let err = DataDir::open(tmp.path()).unwrap_err().to_string();
        assert!(err.contains("mqcluster up"), "{err}");
    }
}
