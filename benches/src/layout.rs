//! Which group a benchmark starts: the `dledger` layout's three Raft replicas, or one group of
//! a classic layout (`broker-a`: its master and its slave, plus a nameserver hosting the
//! group's witness), and what each member's property file says about it.
//!
//! The files are not interpreted here: `mqbroker -c FILE --set ... -p` prints the effective
//! configuration (defaults, aliases and the benchmark's overrides applied), and the few keys
//! the benchmark needs are read from that, so it and the broker never disagree about a file.

use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Result};

/// The layouts a group can be started from, each a directory of `conf/`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Layout {
    /// Three Raft replicas (`broker-n0` .. `broker-n2`), no nameserver.
    #[value(name = "dledger")]
    Dledger,
    /// broker-a's master (`SYNC_MASTER`) and slave, and a nameserver hosting the witness.
    #[value(name = "2m-2s-sync")]
    TwoMastersTwoSlavesSync,
    /// broker-a's master (`ASYNC_MASTER`) and slave, and a nameserver hosting the witness.
    #[value(name = "2m-2s-async")]
    TwoMastersTwoSlavesAsync,
}

impl Layout {
    /// The directory under `conf/`, also the name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Layout::Dledger => "dledger",
            Layout::TwoMastersTwoSlavesSync => "2m-2s-sync",
            Layout::TwoMastersTwoSlavesAsync => "2m-2s-async",
        }
    }

    /// A master/slave layout: its group needs a nameserver, takes `brokerRole` from its files
    /// and has a witness voter.
    pub fn is_classic(self) -> bool {
        self != Layout::Dledger
    }

    /// The property files of the group's members, without `.properties`, in member order.
    pub fn member_files(self) -> &'static [&'static str] {
        match self {
            Layout::Dledger => &["broker-n0", "broker-n1", "broker-n2"],
            Layout::TwoMastersTwoSlavesSync | Layout::TwoMastersTwoSlavesAsync => {
                &["broker-a", "broker-a-s"]
            }
        }
    }

    /// `conf/<layout>` of the workspace.
    pub fn default_conf_dir(self) -> PathBuf {
        raftmq_testkit::workspace_root()
            .join("conf")
            .join(self.name())
    }
}

/// One member of the group, as its property file (and the benchmark's `--set`) makes it.
#[derive(Clone, Debug)]
pub struct MemberConf {
    /// The file's name without `.properties` ("broker-n0", "broker-a-s"), also the name in
    /// progress lines and the name of its log and store.
    pub name: String,
    /// The property file.
    pub file: PathBuf,
    /// Its Raft node id: the index in `dLegerPeers` (dledger), `brokerId` (classic).
    pub node_id: u64,
    /// `brokerRole` of a classic member (dledger: set by the benchmark, `None` here).
    pub role: Option<String>,
}

/// The members of `layout` from the files in `conf_dir`, with `extra` overrides applied.
/// A classic layout's files must make one group: one master (`brokerId=0`) and one slave.
pub fn members(
    layout: Layout,
    conf_dir: &Path,
    mqbroker: &Path,
    extra: &[String],
) -> Result<Vec<MemberConf>> {
    let mut members = Vec::new();
    for (i, name) in layout.member_files().iter().enumerate() {
        let file = conf_dir.join(format!("{name}.properties"));
        if !file.is_file() {
            bail!(
                "no {name}.properties in {} (the {} layout's files): pass --conf-dir DIR",
                conf_dir.display(),
                layout.name()
            );
        }
        let member = if layout.is_classic() {
            let props = raftmq_properties::process::effective_config(mqbroker, &file, extra)?;
            let get = |key: &str| {
                props
                    .get(key)
                    .cloned()
                    .ok_or_else(|| anyhow!("{}: mqbroker -p printed no {key}", file.display()))
            };
            let broker_id = get("brokerId")?;
            MemberConf {
                name: (*name).to_string(),
                node_id: broker_id.parse().map_err(|_| {
                    anyhow!("{}: brokerId={broker_id} is not a number", file.display())
                })?,
                role: Some(get("brokerRole")?),
                file,
            }
        } else {
            MemberConf {
                name: (*name).to_string(),
                node_id: i as u64,
                role: None,
                file,
            }
        };
        members.push(member);
    }
    if layout.is_classic() {
        check_classic_pair(&members)?;
    }
    Ok(members)
}

/// A master (`brokerId` 0, not `SLAVE`) first, then a slave.
fn check_classic_pair(members: &[MemberConf]) -> Result<()> {
    let [master, slave] = members else {
        bail!("a classic group here is one master and one slave");
    };
    let role = |m: &MemberConf| m.role.clone().unwrap_or_default();
    if master.node_id != 0 || role(master) == "SLAVE" {
        bail!(
            "{}: expected the master (brokerId=0, a *_MASTER brokerRole), found brokerId={} \
             brokerRole={}",
            master.file.display(),
            master.node_id,
            role(master)
        );
    }
    if slave.node_id == 0 || role(slave) != "SLAVE" {
        bail!(
            "{}: expected a slave (brokerId>0, brokerRole=SLAVE), found brokerId={} \
             brokerRole={}",
            slave.file.display(),
            slave.node_id,
            role(slave)
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(name: &str, node_id: u64, role: &str) -> MemberConf {
        MemberConf {
            name: name.into(),
            file: PathBuf::from(format!("{name}.properties")),
            node_id,
            role: Some(role.into()),
        }
    }

    #[test]
    fn a_classic_group_is_a_master_then_a_slave() {
        let master = member("broker-a", 0, "SYNC_MASTER");
        let slave = member("broker-a-s", 1, "SLAVE");
        check_classic_pair(&[master.clone(), slave.clone()]).unwrap();
        assert!(check_classic_pair(&[slave.clone(), master.clone()]).is_err());
        assert!(check_classic_pair(std::slice::from_ref(&master)).is_err());
        let second_master = member("broker-a-s", 1, "ASYNC_MASTER");
        assert!(check_classic_pair(&[master, second_master]).is_err());
    }

    #[test]
    fn the_workspace_has_every_layouts_files() {
        for layout in [
            Layout::Dledger,
            Layout::TwoMastersTwoSlavesSync,
            Layout::TwoMastersTwoSlavesAsync,
        ] {
            for name in layout.member_files() {
                let file = layout.default_conf_dir().join(format!("{name}.properties"));
                assert!(file.is_file(), "{}", file.display());
            }
        }
    }
}
