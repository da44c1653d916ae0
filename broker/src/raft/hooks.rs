//! What a broker replica adds to the plain Raft RPCs of its replication port
//! ([`raftmq_raft::service::MemberHooks`]): the handback campaign a `TimeoutNow` starts, and what
//! the answers to other candidates' vote requests tell its failover campaign.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use openraft::raft::VoteResponse;
use proto::v1 as pb;
use raftmq_raft::rejoin::VoteGate;
use raftmq_raft::service::MemberHooks;
use tokio::sync::watch;
use tonic::Status;
use tracing::{debug, info};

use crate::raft::failover::{spawn_handback_campaign, Campaign, VoteRefusals};
use crate::raft::handback::{check_handback, Handback};
use crate::raft::typ::{LogId, NodeId, Raft};

/// A broker replica's hooks.
pub struct ReplicaHooks {
    raft: Raft,
    group: Arc<str>,
    self_id: NodeId,
    gate: VoteGate,
    /// Candidates this replica refused although their log is ahead of its own: a handback
    /// campaign yields to them (the detector's copy, fed by outgoing vote requests, lives in the
    /// network layer).
    longer_logs: VoteRefusals,
    /// The failover detector's refusals, told when this replica refuses a candidate whose log
    /// is behind its own (see [`VoteRefusals::refused_shorter_log`]).
    detector: VoteRefusals,
    /// A handback campaign runs: a second `TimeoutNow` must not start another.
    handback_running: Arc<AtomicBool>,
    /// Ends handback campaigns when the replica shuts down.
    shutdown: watch::Receiver<bool>,
    /// A classic group's replica: a slave may ask it to join (`JoinGroup`).
    admits: bool,
}

/// Clears [`ReplicaHooks::handback_running`] when a handback campaign ends, however it ends.
struct HandbackRunning(Arc<AtomicBool>);

impl Drop for HandbackRunning {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}

impl ReplicaHooks {
    pub fn new(
        raft: Raft,
        group: &str,
        self_id: NodeId,
        gate: VoteGate,
        detector: VoteRefusals,
        shutdown: watch::Receiver<bool>,
    ) -> Self {
        ReplicaHooks {
            raft,
            group: Arc::from(group),
            self_id,
            gate,
            longer_logs: VoteRefusals::default(),
            detector,
            handback_running: Arc::default(),
            shutdown,
            admits: false,
        }
    }

    /// Takes `JoinGroup` requests (a classic group's replicas, whose slaves join through them).
    pub fn admitting_members(mut self, admits: bool) -> Self {
        self.admits = admits;
        self
    }
}

#[tonic::async_trait]
impl MemberHooks for ReplicaHooks {
    fn voted(
        &self,
        candidate: NodeId,
        term: u64,
        candidate_log: Option<LogId>,
        resp: &VoteResponse<NodeId>,
    ) {
        if resp.vote_granted {
            return;
        }
        // `resp.last_log_id` is this replica's own last log id.
        if candidate_log > resp.last_log_id {
            self.longer_logs.refused_longer_log(candidate, term);
        } else if candidate_log < resp.last_log_id {
            self.detector.refused_shorter_log();
        }
    }

    async fn join_group(&self, req: pb::JoinGroupRequest) -> Result<pb::JoinGroupResponse, Status> {
        if !self.admits {
            return Err(Status::unimplemented(
                "JoinGroup: a dledger group's members come from dLegerPeers",
            ));
        }
        Ok(crate::raft::classic::admit(&self.raft, &self.group, &req).await)
    }

    async fn timeout_now(
        &self,
        req: pb::TimeoutNowRequest,
    ) -> Result<pb::TimeoutNowResponse, Status> {
        let handback = Handback::from_pb(&req)?;
        let declined = |remark: String| {
            debug!(group = %self.group, leader = handback.leader.id, %remark, "declined a handback");
            Ok(pb::TimeoutNowResponse {
                status: Some(pb::ResponseStatus::new(
                    pb::ResponseCode::IllegalArgument,
                    remark,
                )),
            })
        };
        if let Some(why) = check_handback(&self.raft.metrics().borrow(), self.self_id, &handback) {
            return declined(why);
        }
        if self
            .handback_running
            .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
            .is_err()
        {
            return declined(format!(
                "node {} is already campaigning for a handback",
                self.self_id
            ));
        }
        let running = HandbackRunning(self.handback_running.clone());
        // Only candidates of this campaign count: one seen ahead in an earlier term must not
        // keep this replica from standing now.
        self.longer_logs.clear();
        info!(group = %self.group, leader = handback.leader.id, term = handback.leader.term,
            preferred = handback.preferred, "the leader hands leadership back; campaigning");
        let campaign = Campaign::new(
            self.raft.clone(),
            self.self_id,
            self.group.clone(),
            Some(handback.preferred),
            self.longer_logs.clone(),
        )
        .with_vote_gate(self.gate.clone());
        let task = spawn_handback_campaign(campaign, handback.leader, Some(self.shutdown.clone()));
        tokio::spawn(async move {
            let _ = task.await;
            drop(running);
        });
        Ok(pb::TimeoutNowResponse {
            status: Some(pb::ResponseStatus::ok()),
        })
    }
}
