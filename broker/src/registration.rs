//! Registration with the nameservers (DESIGN §5): every replica registers with every
//! nameserver in `namesrvAddr` on start, at once whenever its Raft role or term changes or an
//! applied entry changes the topic set (the state machine signals it), and by heartbeat every
//! `registerNameServerPeriod` (1 s). Nameservers share nothing, so each gets its own loop; one
//! that is down does not delay the others. A nameserver that refuses the replica because
//! another live broker holds its node id stops it (see [`spawn`]); [`check_node_id_free`]
//! asks the same before Raft starts.

use std::time::Duration;

use openraft::ServerState;
use proto::v1::name_service_client::NameServiceClient;
use proto::v1::{self as pb};
use tokio::sync::watch;
use tonic::transport::{Channel, Endpoint};
use tracing::{debug, info, warn};

use crate::raft::typ::NodeId;
use crate::service::BrokerContext;
use crate::Error;

/// How long a nameserver keeps this broker without a heartbeat: five missed periods.
fn heartbeat_timeout(period: Duration) -> Duration {
    period * 5
}

/// What this replica tells a nameserver right now.
fn registration(ctx: &BrokerContext, ha_addr: &str) -> pb::RegisterBrokerRequest {
    let metrics = ctx.raft.metrics().borrow().clone();
    let (state, term, leader) = (metrics.state, metrics.current_term, metrics.current_leader);
    let is_leader = state == ServerState::Leader && leader == Some(ctx.node_id);
    pb::RegisterBrokerRequest {
        cluster_name: ctx.config.broker_cluster_name.clone(),
        broker_name: ctx.config.broker_name.clone(),
        broker_id: crate::layout::wire_broker_id(
            ctx.config.dledger.is_none(),
            ctx.node_id,
            if is_leader {
                Some(ctx.node_id)
            } else {
                leader.filter(|l| *l != ctx.node_id)
            },
        ),
        node_id: ctx.node_id,
        broker_addr: ctx.client_addr.to_string(),
        ha_addr: ha_addr.to_string(),
        configured_role: ctx.config.broker_role.to_pb() as i32,
        raft_role: raftmq_raft::convert::raft_role(state) as i32,
        term,
        is_leader,
        topics: ctx.state.topics(),
        replicas: if is_leader {
            crate::raft::progress::replica_progress(&metrics, &ctx.log, &ctx.in_sync.borrow())
        } else {
            Vec::new()
        },
        heartbeat_timeout_ms: heartbeat_timeout(ctx.config.register_name_server_period).as_millis()
            as u64,
    }
}

/// Checks with every reachable nameserver that no other live broker registered this
/// replica's node id of its group (two brokers started with one `dLegerSelfId` or
/// `brokerId`). `Err` names both brokers; a nameserver that does not answer within a second
/// is skipped (the registration loop refuses the twin later anyway).
pub async fn check_node_id_free(
    config: &crate::BrokerConfig,
    node_id: NodeId,
    client_addr: &str,
) -> crate::Result<()> {
    for addr in &config.namesrv_addr {
        let Some(info) =
            crate::namesrv::cluster_info(&addr.to_string(), Duration::from_secs(1)).await
        else {
            continue;
        };
        let holder = info
            .clusters
            .iter()
            .flat_map(|c| &c.groups)
            .filter(|g| g.broker_name == config.broker_name)
            .flat_map(|g| &g.members)
            .find(|m| m.node_id == node_id && !m.witness && m.broker_addr != client_addr);
        if let Some(m) = holder {
            return Err(Error::NodeIdTaken {
                group: config.broker_name.clone(),
                nameserver: addr.to_string(),
                client_addr: client_addr.to_owned(),
                holder: Box::new(m.clone()),
            });
        }
    }
    Ok(())
}

/// Starts one registration loop per nameserver; they end when `stopped` turns true, after
/// telling each nameserver this replica is going. A nameserver that keeps refusing this
/// replica because another live broker holds its node id (longer than a registration takes to
/// expire) makes the replica stop: `fatal` receives that nameserver's address and remark.
pub fn spawn(
    ctx: BrokerContext,
    ha_addr: String,
    stopped: watch::Receiver<bool>,
    fatal: watch::Sender<Option<(String, String)>>,
) -> Vec<tokio::task::JoinHandle<()>> {
    ctx.config
        .namesrv_addr
        .iter()
        .map(|addr| addr.to_string())
        .filter_map(
            |addr| match Endpoint::from_shared(format!("http://{addr}")) {
                Ok(endpoint) => Some((addr, endpoint)),
                Err(e) => {
                    warn!(%addr, error = %e, "namesrvAddr entry is not a usable address");
                    None
                }
            },
        )
        .map(|(addr, endpoint)| {
            let channel = endpoint
                .connect_timeout(Duration::from_millis(500))
                .timeout(Duration::from_secs(2))
                .tcp_nodelay(true)
                .connect_lazy();
            tokio::spawn(register_loop(
                ctx.clone(),
                ha_addr.clone(),
                addr,
                channel,
                stopped.clone(),
                fatal.clone(),
            ))
        })
        .collect()
}

async fn register_loop(
    ctx: BrokerContext,
    ha_addr: String,
    addr: String,
    channel: Channel,
    mut stopped: watch::Receiver<bool>,
    fatal: watch::Sender<Option<(String, String)>>,
) {
    let mut client = NameServiceClient::new(channel);
    let mut metrics = ctx.raft.metrics();
    let mut topics = ctx.state.topic_changes();
    let mut last_sent: Option<(pb::RaftRole, u64, bool)> = None;
    let mut reachable = true;
    // When the nameserver first said another broker holds this node id.
    let mut refused_since: Option<tokio::time::Instant> = None;
    let patience =
        heartbeat_timeout(ctx.config.register_name_server_period) + Duration::from_secs(1);
    loop {
        let req = registration(&ctx, &ha_addr);
        let key = (req.raft_role(), req.term, req.is_leader);
        match client.register_broker(req).await {
            Ok(resp) if resp.get_ref().node_id_taken => {
                let why = resp
                    .into_inner()
                    .status
                    .map(|s| s.remark)
                    .unwrap_or_default();
                let since = *refused_since.get_or_insert_with(tokio::time::Instant::now);
                // A broker that moved may find its old registration there until it expires;
                // one that stays refused for longer has a live twin.
                if since.elapsed() >= patience {
                    tracing::error!(%addr, "{why}");
                    fatal.send_replace(Some((addr, why)));
                    return;
                }
                warn!(%addr, "{why}; retrying until the other registration would have expired");
                last_sent = None;
            }
            Ok(resp) => {
                refused_since = None;
                let resp = resp.into_inner();
                if !reachable {
                    info!(%addr, "nameserver reachable again");
                    reachable = true;
                }
                if key.2 && !resp.leader_accepted {
                    debug!(%addr, term = key.1, "nameserver knows a leader with a higher term");
                }
                if last_sent != Some(key) {
                    info!(%addr, role = ?key.0, term = key.1, "registered with nameserver");
                }
                last_sent = Some(key);
            }
            Err(e) => {
                if reachable {
                    warn!(%addr, error = %e.message(), "cannot register with nameserver; retrying every period");
                    reachable = false;
                }
                last_sent = None;
            }
        }
        // Next: the heartbeat period, or at once when role, term or the topic set changes.
        let period = tokio::time::sleep(ctx.config.register_name_server_period);
        tokio::pin!(period);
        loop {
            tokio::select! {
                _ = &mut period => break,
                changed = metrics.changed() => {
                    if changed.is_err() { return; }
                    let m = metrics.borrow_and_update().clone();
                    let now = (raftmq_raft::convert::raft_role(m.state), m.current_term, m.current_leader == Some(ctx.node_id) && m.state == ServerState::Leader);
                    if last_sent != Some(now) { break; }
                }
                changed = topics.changed() => {
                    if changed.is_err() { return; }
                    topics.borrow_and_update();
                    break;
                }
                changed = stopped.changed() => {
                    let stop = changed.is_err() || *stopped.borrow();
                    if stop {
                        unregister(&ctx, &mut client).await;
                        return;
                    }
                }
            }
        }
    }
}

/// Tells a nameserver this replica is going, so routes drop it now rather than at expiry.
async fn unregister(ctx: &BrokerContext, client: &mut NameServiceClient<Channel>) {
    let bye = pb::UnregisterBrokerRequest {
        cluster_name: ctx.config.broker_cluster_name.clone(),
        broker_name: ctx.config.broker_name.clone(),
        broker_id: ctx.node_id,
        node_id: ctx.node_id,
        broker_addr: ctx.client_addr.to_string(),
    };
    let _ = tokio::time::timeout(Duration::from_millis(500), client.unregister_broker(bye)).await;
}
