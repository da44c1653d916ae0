//! Where a replica stands in its group, from its property file: [`GroupLayout`].
//!
//! - **dledger** (`enableDLegerCommitLog=true`): the group is `dLegerGroup`, the node id is
//!   `dLegerSelfId`'s number, and every voter's replication address is in `dLegerPeers`.
//! - **classic** (`brokerRole` and `brokerId`, no peer list): the group is `brokerName`, the
//!   node id is the `brokerId`, this replica's replication address is
//!   `brokerIP2:haListenPort`, and the others are found through the nameserver. `brokerId` 0
//!   (the master of the file) is the preferred leader; a classic group of two data replicas
//!   gets a witness on a nameserver (`witnessAddr`, default the first `namesrvAddr`).

use std::collections::BTreeMap;

use crate::config::BrokerConfig;
use crate::raft::typ::NodeId;
use crate::{Error, Result};

/// A replica's identity inside its group, and what it knows of the others.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupLayout {
    pub group: String,
    pub self_id: NodeId,
    /// This replica's replication address (`host:port`).
    pub raft_addr: String,
    pub preferred_leader: Option<NodeId>,
    pub kind: LayoutKind,
}

/// How a group learns its members.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LayoutKind {
    /// Every voter is in the file: node id → replication address.
    DLedger { peers: BTreeMap<NodeId, String> },
    /// Members join through the nameserver; `witness` is the address of the nameserver that
    /// hosts the group's witness, if there is a nameserver at all.
    Classic { witness: Option<String> },
}

/// Turns a DLedger peer id (`n0`, `n1`, ...) into a Raft node id: its trailing number. `key`
/// names the setting the id comes from, for the error.
pub fn node_id_of(key: &'static str, peer_id: &str) -> Result<NodeId> {
    let digits: String = peer_id
        .chars()
        .rev()
        .take_while(|c| c.is_ascii_digit())
        .collect();
    if digits.is_empty() {
        return Err(Error::PeerIdWithoutNumber {
            key,
            peer_id: peer_id.to_owned(),
        });
    }
    digits
        .chars()
        .rev()
        .collect::<String>()
        .parse()
        .map_err(|_| Error::PeerIdOutOfRange {
            key,
            peer_id: peer_id.to_owned(),
        })
}

impl GroupLayout {
    /// The layout `config` describes; `Err` says which key is wrong.
    pub fn from_config(config: &BrokerConfig) -> Result<GroupLayout> {
        let Some(d) = &config.dledger else {
            return Ok(GroupLayout {
                group: config.broker_name.clone(),
                self_id: config.broker_id,
                raft_addr: format!("{}:{}", config.broker_ip2, config.ha_listen_port),
                preferred_leader: Some(0),
                kind: LayoutKind::Classic {
                    witness: config
                        .witness_addr
                        .as_ref()
                        .or(config.namesrv_addr.first())
                        .map(ToString::to_string),
                },
            });
        };
        let mut peers = BTreeMap::new();
        for p in &d.peers {
            let id = node_id_of("dLegerPeers", &p.id)?;
            if peers.insert(id, p.addr.to_string()).is_some() {
                return Err(Error::DuplicatePeer { node_id: id });
            }
        }
        let self_id = node_id_of("dLegerSelfId", &d.self_id)?;
        let preferred_leader = match &d.preferred_leader_id {
            Some(p) => Some(node_id_of("preferredLeaderId", p)?),
            None => None,
        };
        let raft_addr = peers.get(&self_id).cloned().ok_or(Error::SelfNotAPeer)?;
        Ok(GroupLayout {
            group: d.group.clone(),
            self_id,
            raft_addr,
            preferred_leader,
            kind: LayoutKind::DLedger { peers },
        })
    }

    /// Whether this is a classic (master/slave) group.
    pub fn is_classic(&self) -> bool {
        matches!(self.kind, LayoutKind::Classic { .. })
    }
}

/// The brokerId replica `node_id` goes by in routes and status: 0 while it leads (RocketMQ's
/// master id, [`proto::broker_id`]). Otherwise a dledger replica shows its node id + 1, and a
/// classic one its configured brokerId; a classic master (brokerId 0) that does not lead shows
/// the id of the slave that leads in its place, so no two members share an id.
pub fn wire_broker_id(classic: bool, node_id: NodeId, leader: Option<NodeId>) -> u64 {
    let leads = leader == Some(node_id);
    match (classic, leads) {
        (false, _) | (true, true) => proto::broker_id(node_id, leads),
        (true, false) if node_id != 0 => node_id,
        (true, false) => leader.map_or(proto::broker_id(node_id, false), |l| l),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Environment;

    fn layout(text: &str) -> GroupLayout {
        let file = raftmq_properties::parse_str(text, std::path::Path::new("b.properties"))
            .expect("parses");
        let env = Environment {
            hostname: Some("h".into()),
            home: Some("/home/h".into()),
        };
        let (config, _) = BrokerConfig::from_properties(&file, &[], &env).expect("loads");
        GroupLayout::from_config(&config).expect("a layout")
    }

    #[test]
    fn classic_members_keep_their_broker_id_and_the_master_takes_the_leading_slaves() {
        assert_eq!(wire_broker_id(true, 0, Some(0)), 0);
        assert_eq!(wire_broker_id(true, 1, Some(0)), 1);
        assert_eq!(wire_broker_id(true, 1, Some(1)), 0);
        assert_eq!(wire_broker_id(true, 0, Some(1)), 1);
        assert_eq!(wire_broker_id(true, 2, Some(1)), 2);
        // dledger: node id + 1 unless leading.
        assert_eq!(wire_broker_id(false, 1, Some(0)), 2);
        assert_eq!(wire_broker_id(false, 0, Some(0)), 0);
    }

    #[test]
    fn peer_ids() {
        assert_eq!(node_id_of("dLegerSelfId", "n0").unwrap(), 0);
        assert_eq!(node_id_of("dLegerSelfId", "node12").unwrap(), 12);
        let err = node_id_of("dLegerSelfId", "leader")
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "dLegerSelfId: peer id \"leader\" does not end in a number (use n0, n1, n2, ...)"
        );
        let err = node_id_of("dLegerPeers", "n99999999999999999999").unwrap_err();
        assert_eq!(
            err.to_string(),
            "dLegerPeers: peer id \"n99999999999999999999\" is out of range"
        );
    }

    #[test]
    fn a_classic_file_names_its_group_id_and_replication_address() {
        let slave = layout(
            "brokerName=broker-a\nbrokerId=1\nbrokerRole=SLAVE\nlistenPort=10921\n\
             namesrvAddr=127.0.0.1:9876;127.0.0.1:9877\n",
        );
        assert_eq!(
            slave,
            GroupLayout {
                group: "broker-a".into(),
                self_id: 1,
                raft_addr: "127.0.0.1:10922".into(),
                preferred_leader: Some(0),
                kind: LayoutKind::Classic {
                    witness: Some("127.0.0.1:9876".into())
                },
            }
        );
        let other = layout("brokerName=b\nwitnessAddr=10.0.0.9:9876\nhaListenPort=20000\n");
        assert_eq!(other.raft_addr, "127.0.0.1:20000");
        assert_eq!(
            other.kind,
            LayoutKind::Classic {
                witness: Some("10.0.0.9:9876".into())
            }
        );
    }
}
