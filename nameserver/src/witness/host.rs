//! [`WitnessHost`]: the witnesses one nameserver hosts, one per group, served on the
//! nameserver's own port (`raftmq.v1.RaftService`).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use raft_log::raft::RaftLogStore;
use raft_log::{FlushMode, LogConfig, LogStore};
use raftmq_raft::network::GrpcNetworkFactory;
use raftmq_raft::rejoin::{catch_up, Standing, VoteGate};
use raftmq_raft::service::{not_found, Member, MemberDirectory, NoHooks};
use raftmq_raft::typ::{NodeId, Raft, RaftMetrics};
use raftmq_raft::WITNESS_NODE_ID;
use tonic::Status;
use tracing::{info, warn};

use super::state::WitnessStateMachine;
use super::typ::WitnessConfig;

/// A witness store's segment size: entries are a 48-byte header each.
const SEGMENT_BYTES: u64 = 16 << 20;

/// Tells whether a group is registered with this nameserver (only those get a witness).
pub type KnownGroup = Arc<dyn Fn(&str) -> bool + Send + Sync>;

/// The witnesses this nameserver hosts, by group (brokerName).
pub struct WitnessHost {
    /// `witnessStorePath`: one store directory per group.
    dir: PathBuf,
    known: KnownGroup,
    witnesses: tokio::sync::Mutex<HashMap<String, Arc<Member<WitnessConfig>>>>,
}

/// A group name that is also a safe directory name: RocketMQ's rule (1..=127 characters of
/// `[A-Za-z0-9_%|-]`), so no path can be named through it.
fn valid_group(name: &str) -> bool {
    (1..=127).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_%|-".contains(c))
}

impl WitnessHost {
    /// Opens every witness store under `dir` (a nameserver restart) and starts their Raft.
    /// `known` says which groups may get a new witness.
    pub async fn open(dir: &Path, known: KnownGroup) -> Result<Self, String> {
        let host = WitnessHost {
            dir: dir.to_path_buf(),
            known,
            witnesses: tokio::sync::Mutex::default(),
        };
        let entries = match std::fs::read_dir(dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(host),
            Err(e) => {
                return Err(format!(
                    "cannot read witnessStorePath {}: {e}",
                    dir.display()
                ))
            }
        };
        let mut witnesses = host.witnesses.lock().await;
        for entry in entries.flatten() {
            let Some(group) = entry.file_name().to_str().map(str::to_owned) else {
                continue;
            };
            if !valid_group(&group) || !entry.path().is_dir() {
                continue;
            }
            let witness = start(&entry.path(), &group).await?;
            info!(%group, "witness opened");
            witnesses.insert(group, witness);
        }
        drop(witnesses);
        Ok(host)
    }

    /// Every hosted witness, by group, with its Raft metrics (for displays).
    pub async fn metrics(&self) -> Vec<(String, RaftMetrics)> {
        let witnesses = self.witnesses.lock().await;
        let mut out: Vec<(String, RaftMetrics)> = witnesses
            .iter()
            .map(|(group, w)| (group.clone(), w.raft.metrics().borrow().clone()))
            .collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }

    /// Stops every witness's Raft (a nameserver shutting down).
    pub async fn shutdown(&self) {
        let witnesses = self.witnesses.lock().await;
        for (group, w) in witnesses.iter() {
            if let Err(e) = w.raft.shutdown().await {
                warn!(%group, error = %e, "witness shutdown");
            }
        }
    }
}

/// Opens (or creates) the witness store of `group` at `dir` and starts its Raft. A witness
/// with an empty store grants no vote until it has caught up with a leader.
async fn start(dir: &Path, group: &str) -> Result<Arc<Member<WitnessConfig>>, String> {
    let log = LogStore::open(
        LogConfig::new(dir)
            .segment_size(SEGMENT_BYTES)
            .flush(FlushMode::Sync),
    )
    .map_err(|e| format!("cannot open the witness store of group {group}: {e}"))?;
    let pristine = log.last_log_id().is_none()
        && log.last_purged().is_none()
        && log
            .meta()
            .load(raft_log::raft::VOTE_META)
            .map_err(|e| format!("cannot read the witness vote of group {group}: {e}"))?
            .is_none();
    let state = WitnessStateMachine::open(log.clone())
        .map_err(|e| format!("cannot open the witness state of group {group}: {e}"))?;
    let store = RaftLogStore::<WitnessConfig>::new(log.clone())
        .map_err(|e| format!("cannot open the witness log of group {group}: {e}"))?;
    let network = GrpcNetworkFactory::<WitnessConfig>::new(group, WITNESS_NODE_ID);
    let raft: Raft<WitnessConfig> = Raft::new(
        WITNESS_NODE_ID,
        Arc::new(raftmq_raft::timing::witness_config()),
        network,
        store,
        state,
    )
    .await
    .map_err(|e| format!("cannot start the witness of group {group}: {e}"))?;
    let gate = if pristine {
        let gate = VoteGate::new(Standing::Rejoining);
        let (raft, waiting) = (raft.clone(), gate.clone());
        let group = group.to_owned();
        tokio::spawn(async move {
            if catch_up(&raft, &waiting, WITNESS_NODE_ID).await {
                info!(%group, "new witness caught up with its group's leader: it votes");
            }
        });
        gate
    } else {
        VoteGate::member()
    };
    Ok(Arc::new(Member {
        group: group.to_owned(),
        node_id: WITNESS_NODE_ID,
        raft,
        gate,
        log,
        hooks: Arc::new(NoHooks),
    }))
}

#[tonic::async_trait]
impl MemberDirectory<WitnessConfig> for WitnessHost {
    /// The witness of `group`; created on the first append for a group registered here.
    async fn member(
        &self,
        group: &str,
        target: NodeId,
        appending: bool,
    ) -> Result<Arc<Member<WitnessConfig>>, Status> {
        let here = "a nameserver hosting witnesses";
        if target != WITNESS_NODE_ID {
            return Err(not_found(group, target, here));
        }
        let mut witnesses = self.witnesses.lock().await;
        if let Some(w) = witnesses.get(group) {
            return Ok(w.clone());
        }
        if !appending || !valid_group(group) || !(self.known)(group) {
            return Err(not_found(group, target, here));
        }
        let witness = start(&self.dir.join(group), group)
            .await
            .map_err(Status::unavailable)?;
        info!(%group, dir = %self.dir.join(group).display(), "hosting a new witness");
        witnesses.insert(group.to_owned(), witness.clone());
        Ok(witness)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_group_names_become_directories() {
        assert!(valid_group("broker-a"));
        assert!(valid_group("Raft%Node|00_x"));
        for bad in ["", "..", "../x", "a/b", "a b", "ä", &"g".repeat(128)] {
            assert!(!valid_group(bad), "{bad:?}");
        }
    }
}
