//! Noticing a dead leader (see the parent module's docs, "Detection"): one `WatchLeader`
//! stream per follower, probed when it breaks or falls silent, and the campaign when the
//! leader is gone.

use std::time::Duration;

use openraft::ServerState;
use proto::v1 as pb;
use proto::v1::leader_watch_service_client::LeaderWatchServiceClient;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tonic::Code;
use tracing::{debug, info};

use raftmq_raft::network::peer_endpoint;

use super::campaign::{Campaign, CampaignCause, OutgoingLeader};
use crate::raft::typ::{NodeId, RaftMetrics};

/// A watched stream that brings nothing for this long is probed.
pub const PING_SILENCE: Duration = Duration::from_millis(500);
/// Deadline of a probe: connect, ask, get the first ping.
pub const PROBE_TIMEOUT: Duration = Duration::from_millis(250);
/// How soon a follower asks again a leader that said it does not lead.
pub const NOT_LEADER_RETRY: Duration = Duration::from_millis(200);

/// The leader a voter should watch: known, not itself, with an address. `None` for a
/// learner, a leader, or while no leader is known.
fn leader_to_watch(m: &RaftMetrics, self_id: NodeId) -> Option<(OutgoingLeader, String)> {
    let leader = m.current_leader?;
    let membership = m.membership_config.membership();
    if leader == self_id
        || m.state != ServerState::Follower
        || !membership.voter_ids().any(|v| v == self_id)
    {
        return None;
    }
    let addr = membership.get_node(&leader)?.addr.clone();
    Some((
        OutgoingLeader {
            id: leader,
            term: m.current_term,
        },
        addr,
    ))
}

/// Starts watching the leader for the replica `campaign` describes (see the module docs);
/// runs until `shutdown` turns true (or its sender is dropped) or the Raft stops.
///
/// The campaign's refusals must be the [`VoteRefusals`](super::VoteRefusals) of the replica's
/// `GrpcNetworkFactory`; its preferred node is `preferredLeaderId`, which campaigns first.
pub fn spawn_failover_detector(
    campaign: Campaign,
    mut shutdown: watch::Receiver<bool>,
) -> JoinHandle<()> {
    let detector = Detector { campaign };
    tokio::spawn(async move {
        tokio::select! {
            _ = detector.run() => {}
            _ = shutdown.wait_for(|stop| *stop) => {}
        }
    })
}

/// Watches the leader and campaigns when it is gone; `campaign` also says who this replica is.
struct Detector {
    campaign: Campaign,
}

/// Why watching a leader ended.
enum WatchEnd {
    /// Raft now names another leader or term: watch that one.
    LeaderChanged,
    /// Our Raft stopped.
    RaftStopped,
    /// The target says it does not lead; Raft will learn who does.
    NotLeader,
    /// The target cannot take part in this (an older peer without the service): nothing to
    /// detect with.
    Unsupported,
    /// The leader is gone.
    Gone(String),
}

/// A live `WatchLeader` stream.
type PingStream = tonic::Streaming<pb::LeaderPing>;

impl Detector {
    async fn run(&self) {
        let me = &self.campaign;
        let mut metrics = me.raft.metrics();
        // The leader a campaign already failed to replace: not campaigned against twice.
        let mut given_up: Option<OutgoingLeader> = None;
        loop {
            let (target, addr) = loop {
                let found = {
                    let m = metrics.borrow_and_update();
                    if m.running_state.is_err() || m.state == ServerState::Shutdown {
                        return;
                    }
                    leader_to_watch(&m, me.self_id).filter(|(t, _)| Some(*t) != given_up)
                };
                if let Some(found) = found {
                    break found;
                }
                if metrics.changed().await.is_err() {
                    return;
                }
            };
            given_up = None;
            match self.watch(target, &addr, &mut metrics).await {
                WatchEnd::LeaderChanged => {}
                WatchEnd::RaftStopped => return,
                WatchEnd::NotLeader => {
                    // Raft will learn who leads. Ask again shortly all the same: this replica
                    // may have heard of the new leader before the leader's own metrics said so.
                    let _ = tokio::time::timeout(NOT_LEADER_RETRY, metrics.changed()).await;
                }
                WatchEnd::Unsupported => given_up = Some(target),
                WatchEnd::Gone(why) => {
                    info!(group = %me.group, leader = target.id, term = target.term, reason = %why,
                        "leader is gone; campaigning");
                    if !me
                        .run(target, CampaignCause::LeaderGone, &mut metrics)
                        .await
                        && !me.elect_unclean(target, &mut metrics).await
                    {
                        given_up = Some(target);
                    }
                }
            }
        }
    }

    /// Follows `target` until it changes or is found gone.
    async fn watch(
        &self,
        target: OutgoingLeader,
        addr: &str,
        metrics: &mut watch::Receiver<RaftMetrics>,
    ) -> WatchEnd {
        let me = &self.campaign;
        let mut stream = match self.open(target, addr).await {
            Ok(stream) => stream,
            Err(end) => return end,
        };
        debug!(group = %me.group, leader = target.id, term = target.term, "watching the leader");
        loop {
            let broken = tokio::select! {
                biased;
                changed = metrics.changed() => {
                    if changed.is_err() {
                        return WatchEnd::RaftStopped;
                    }
                    let m = metrics.borrow_and_update();
                    if m.running_state.is_err() {
                        return WatchEnd::RaftStopped;
                    }
                    if leader_to_watch(&m, me.self_id).map(|(t, _)| t) != Some(target) {
                        return WatchEnd::LeaderChanged;
                    }
                    continue;
                }
                next = tokio::time::timeout(PING_SILENCE, stream.message()) => match next {
                    Ok(Ok(Some(_ping))) => continue,
                    Ok(Ok(None)) => "the leader ended the stream".to_owned(),
                    Ok(Err(status)) if status.code() == Code::FailedPrecondition => return WatchEnd::NotLeader,
                    Ok(Err(status)) => format!("stream broke: {}: {}", status.code(), status.message()),
                    Err(_) => format!("no ping for {PING_SILENCE:?}"),
                },
            };
            debug!(group = %me.group, leader = target.id, reason = %broken, "probing the leader");
            stream = match self.open(target, addr).await {
                Ok(stream) => stream,
                Err(WatchEnd::Gone(why)) => return WatchEnd::Gone(format!("{broken}; then {why}")),
                Err(end) => return end,
            };
        }
    }

    /// Dials the leader afresh and waits for its first ping.
    async fn open(&self, target: OutgoingLeader, addr: &str) -> Result<PingStream, WatchEnd> {
        let request = pb::WatchLeaderRequest {
            group: self.campaign.group.to_string(),
            target_node_id: target.id,
            follower_node_id: self.campaign.self_id,
        };
        let attempt = async {
            let endpoint = peer_endpoint(addr)
                .map_err(|e| WatchEnd::Gone(format!("bad address {addr:?}: {e}")))?;
            let channel = endpoint
                .connect()
                .await
                .map_err(|e| WatchEnd::Gone(format!("cannot connect to {addr}: {e}")))?;
            let mut client = LeaderWatchServiceClient::new(channel);
            let mut stream = client
                .watch_leader(request)
                .await
                .map_err(end_of)?
                .into_inner();
            match stream.message().await {
                Ok(Some(_first_ping)) => Ok(stream),
                Ok(None) => Err(WatchEnd::Gone("the leader ended the stream".to_owned())),
                Err(status) => Err(end_of(status)),
            }
        };
        match tokio::time::timeout(PROBE_TIMEOUT, attempt).await {
            Ok(result) => result,
            Err(_) => Err(WatchEnd::Gone(format!(
                "no answer from {addr} within {PROBE_TIMEOUT:?}"
            ))),
        }
    }
}

/// What a failed WatchLeader call says about the target.
fn end_of(status: tonic::Status) -> WatchEnd {
    match status.code() {
        Code::FailedPrecondition => WatchEnd::NotLeader,
        Code::Unimplemented => WatchEnd::Unsupported,
        _ => WatchEnd::Gone(format!("{}: {}", status.code(), status.message())),
    }
}
