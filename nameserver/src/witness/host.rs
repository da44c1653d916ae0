//! [`WitnessHost`]: the witnesses one nameserver hosts, one per group, served on the
//! nameserver's own port (`raftmq.v1.RaftService`).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use proto::v1 as pb;
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
    start_on(log, group, pristine).await
}

/// Starts the witness Raft of `group` on its open store.
async fn start_on(
    log: LogStore,
    group: &str,
    pristine: bool,
) -> Result<Arc<Member<WitnessConfig>>, String> {
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

/// How long a witness must have heard nothing from a leader before it forgets its tail for an
/// unclean election: well past any leader's heartbeats, so a live master is never undercut.
pub const UNCLEAN_SILENCE: Duration = Duration::from_secs(1);

impl WitnessHost {
    /// `ForgetWitnessTail`: the witness of `req.group` removes the log ids after `req.keep`
    /// and restarts on its shortened store, so that it can vote for the asking slave.
    async fn forget_tail(
        &self,
        req: &pb::ForgetWitnessTailRequest,
    ) -> Result<pb::ForgetWitnessTailResponse, Status> {
        let refuse = |why: String| Status::failed_precondition(why);
        let group = req.group.as_str();
        let mut witnesses = self.witnesses.lock().await;
        let Some(w) = witnesses.get(group).cloned() else {
            return Err(not_found(
                group,
                WITNESS_NODE_ID,
                "a nameserver hosting witnesses",
            ));
        };
        let m = w.raft.metrics().borrow().clone();
        if m.running_state.is_err() {
            return Err(Status::unavailable(format!(
                "the witness of {group} has stopped"
            )));
        }
        if !m
            .membership_config
            .membership()
            .voter_ids()
            .any(|v| v == req.asker_node_id && v != WITNESS_NODE_ID)
        {
            return Err(refuse(format!(
                "node {} is not a voter of group {group}",
                req.asker_node_id
            )));
        }
        let heard = w
            .raft
            .with_raft_state(|st| st.vote_last_modified())
            .await
            .map_err(|e| Status::unavailable(e.to_string()))?;
        if let Some(at) = heard {
            let silent = at.elapsed();
            if silent < UNCLEAN_SILENCE {
                return Err(refuse(format!(
                    "the witness of {group} heard from a leader {} ms ago",
                    silent.as_millis()
                )));
            }
        }
        let keep = req.keep.as_ref().map(|l| l.index);
        let last_before = w.log.last_log_id();
        let forgotten = match (last_before, keep) {
            (None, _) => 0,
            (Some(last), Some(k)) if k >= last.index => 0,
            (Some(last), k) => last.index - k.map_or(0, |k| k + 1) + 1,
        };
        let last_pb = last_before.map(|l| pb::LogId {
            term: l.term,
            node_id: 0,
            index: l.index,
        });
        if forgotten == 0 {
            return Ok(pb::ForgetWitnessTailResponse {
                forgotten_entries: 0,
                last_before: last_pb,
            });
        }
        if let (Some(k), Some(keep_id)) = (keep, req.keep.as_ref()) {
            // The asker's log must be a prefix of the witness's: same term at its last index.
            match w.log.read(k) {
                Ok(e) if e.term == keep_id.term => {}
                Ok(e) => {
                    return Err(refuse(format!(
                        "the witness's entry {k} is of term {}, the asker's of term {}: their \
                         logs differ",
                        e.term, keep_id.term
                    )))
                }
                Err(e) => return Err(refuse(format!("the witness cannot read entry {k}: {e}"))),
            }
        }
        if w.log
            .last_purged()
            .is_some_and(|p| keep.is_none_or(|k| p.index > k))
        {
            return Err(refuse(format!(
                "the witness of {group} has purged past entry {keep:?}"
            )));
        }
        // Stop the witness's Raft, cut its log, start it again on the same store.
        witnesses.remove(group);
        w.raft
            .shutdown()
            .await
            .map_err(|e| Status::unavailable(format!("witness shutdown: {e}")))?;
        let cut = match keep {
            Some(k) => w.log.truncate_after(k),
            None => w.log.truncate_from(0),
        };
        let log = w.log.clone();
        let restarted = match cut {
            Ok(()) => start_on(log, group, false).await,
            Err(e) => Err(format!("cannot cut the witness log of {group}: {e}")),
        };
        let witness = match restarted {
            Ok(witness) => witness,
            Err(why) => {
                warn!(%group, %why, "the witness could not forget its tail; it is stopped until the nameserver restarts");
                return Err(Status::unavailable(why));
            }
        };
        witnesses.insert(group.to_owned(), witness);
        warn!(%group, asker = req.asker_node_id, keep = ?keep, forgotten,
            "unclean election (enableElectUncleanMaster): the witness forgot entries only the dead master had, to vote for an out-of-sync slave; their messages are given up");
        Ok(pb::ForgetWitnessTailResponse {
            forgotten_entries: forgotten,
            last_before: last_pb,
        })
    }
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

    async fn forget_witness_tail(
        &self,
        req: pb::ForgetWitnessTailRequest,
    ) -> Result<pb::ForgetWitnessTailResponse, Status> {
        self.forget_tail(&req).await
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
