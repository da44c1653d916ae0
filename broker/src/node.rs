//! One replica put together: the store, Raft, the two servers (client port, replication
//! port), and an orderly shutdown.

use std::collections::BTreeMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use openraft::BasicNode;
use raft_log::raft::RaftLogStore;

use crate::config::BrokerRole;
use crate::service::proposer::{AckOn, AppendWaiters, Proposer};
use raft_log::{FlushMode, LogConfig, LogStore};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tracing::{debug, info, warn};

use crate::command::LogCommand;
use crate::config::{BrokerConfig, FlushDiskType};
use raftmq_raft::network::GrpcNetworkFactory;
use raftmq_raft::rejoin::{Standing, VoteGate};
use raftmq_raft::service::{replication_server_builder, Member, RaftGrpcService};

use crate::layout::{GroupLayout, LayoutKind};
use crate::raft::classic;
use crate::raft::dropped::DroppedTail;
use crate::raft::failover::{Campaign, VoteRefusals};
use crate::raft::hooks::ReplicaHooks;
use crate::raft::in_sync::InSyncState;
use crate::raft::typ::{NodeId, Raft, TypeConfig};
use crate::service::consumers::ConsumerGroups;
use crate::service::{BrokerContext, BrokerGrpc};
use crate::state::{BrokerState, StateMachine};
use crate::{Error, Result};

/// How the store flushes, from `flushDiskType` and `flushIntervalCommitLog`.
fn flush_mode(config: &BrokerConfig) -> FlushMode {
    match config.flush_disk_type {
        FlushDiskType::SyncFlush => FlushMode::Sync,
        FlushDiskType::AsyncFlush => FlushMode::Async {
            interval: config.flush_interval_commit_log,
        },
    }
}

async fn bind(addr: &str, what: &'static str) -> Result<TcpListener> {
    TcpListener::bind(addr).await.map_err(|source| Error::Bind {
        addr: addr.to_owned(),
        what,
        source,
    })
}

/// Accepted connections with Nagle's algorithm off. tonic ignores the builder's
/// `tcp_nodelay` for `serve_with_incoming*`, and with Nagle on a reply written in pieces waits
/// for the peer's delayed ACK (about 40 ms on Linux).
fn no_delay(listener: TcpListener) -> tonic::transport::server::TcpIncoming {
    tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true))
}

/// A running replica. Drop it, or call [`BrokerNode::shutdown`], to stop.
pub struct BrokerNode {
    pub raft: Raft,
    pub state: BrokerState,
    pub log: LogStore,
    pub client_addr: SocketAddr,
    pub raft_addr: SocketAddr,
    stop: watch::Sender<bool>,
    /// Set when the replica must stop by itself (a nameserver refuses it: another broker has
    /// its node id): that nameserver's address and remark.
    fatal: watch::Receiver<Option<(String, String)>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl BrokerNode {
    /// Opens the store, starts Raft and both servers. Returns once both ports listen.
    pub async fn start(config: BrokerConfig) -> Result<BrokerNode> {
        let config = Arc::new(config);
        let layout = GroupLayout::from_config(&config)?;

        // Bind first: a port in use fails start-up before any state is touched.
        let client_listener = bind(
            &format!("{}:{}", config.broker_ip1, config.listen_port),
            "listenPort",
        )
        .await?;
        let raft_port_key = match layout.kind {
            LayoutKind::DLedger { .. } => "dLegerPeers replication port",
            LayoutKind::Classic { .. } => "haListenPort",
        };
        let raft_listener = bind(&layout.raft_addr, raft_port_key).await?;
        let client_addr = client_listener
            .local_addr()
            .map_err(Error::ListenerAddress)?;
        let raft_addr = raft_listener.local_addr().map_err(Error::ListenerAddress)?;
        // Before Raft starts: a twin with this node id would take part in the group's votes.
        crate::registration::check_node_id_free(&config, layout.self_id, &client_addr.to_string())
            .await?;

        let log_config = LogConfig::new(&config.store_path_commit_log)
            .segment_size(config.mapped_file_size_commit_log)
            .flush(flush_mode(&config))
            .cache_window(Some(config.page_cache_window_commit_log).filter(|&window| window > 0));
        let log = LogStore::open(log_config).map_err(|source| Error::Store {
            step: "cannot open the commitlog",
            source,
        })?;
        let log_storage =
            RaftLogStore::<TypeConfig>::new(log.clone()).map_err(|source| Error::Store {
                step: "cannot open the Raft log",
                source,
            })?;
        // ASYNC_MASTER answers a send once the leader's own log has it: the store tells the
        // proposer's waiters when an entry is appended (and fsynced under SYNC_FLUSH).
        let early_acks = Arc::new(AppendWaiters::default());
        // A slave that takes over its group answers once a send is committed, whatever its
        // master's file said: its own file does not say, and waiting is the safe choice.
        let ack_on = match config.broker_role {
            BrokerRole::AsyncMaster => AckOn::Append,
            BrokerRole::SyncMaster | BrokerRole::Slave => AckOn::Commit,
        };
        if ack_on == AckOn::Append {
            let _ = log_storage.set_append_observer(early_acks.observer());
        }
        let dropped = Arc::new(DroppedTail::default());
        let _ = log_storage.set_truncate_observer(dropped.observer(log.clone()));
        // A store that holds nothing (a new replica, or one whose disk was wiped) may not
        // vote until it knows whether its group exists (see `raft::rejoin`).
        let pristine = log.last_log_id().is_none()
            && log.last_purged().is_none()
            && log
                .meta()
                .load(raft_log::raft::VOTE_META)
                .map_err(|source| Error::Store {
                    step: "cannot read the vote",
                    source,
                })?
                .is_none();
        let gate = match (&layout.kind, pristine) {
            (_, false) => VoteGate::member(),
            (LayoutKind::DLedger { .. }, true) => VoteGate::new(Standing::Undecided),
            (LayoutKind::Classic { .. }, true) => VoteGate::new(Standing::Rejoining),
        };
        let state_machine = StateMachine::open(log.clone())?;
        let state = state_machine.state();

        let raft_config = raftmq_raft::timing::replica_config();
        let refusals = VoteRefusals::default();
        // A classic leader holds the witness back to its in-sync slaves (`raft::in_sync`).
        let (witness_cap, witness_cap_rx) = watch::channel(None);
        let (in_sync, in_sync_rx) = watch::channel(InSyncState::default());
        let network = GrpcNetworkFactory::<TypeConfig>::new(layout.group.clone(), layout.self_id)
            .with_vote_observer(Arc::new(refusals.clone()))
            .with_witness_cap(witness_cap_rx);
        let raft = Raft::new(
            layout.self_id,
            Arc::new(raft_config),
            network,
            log_storage,
            state_machine,
        )
        .await
        .map_err(|fatal| Error::StartRaft(Box::new(fatal)))?;

        let (stop, stopped) = watch::channel(false);
        let mut tasks = Vec::new();

        // Replication port: Raft RPCs between the replicas.
        let hooks = ReplicaHooks::new(
            raft.clone(),
            &layout.group,
            layout.self_id,
            gate.clone(),
            refusals.clone(),
            stopped.clone(),
        )
        .admitting_members(layout.is_classic());
        let member = Arc::new(Member {
            group: layout.group.clone(),
            node_id: layout.self_id,
            raft: raft.clone(),
            gate: gate.clone(),
            log: log.clone(),
            hooks: Arc::new(hooks),
        });
        let raft_service = RaftGrpcService::new(member).with_shutdown(stopped.clone());
        let mut stop_rx = stopped.clone();
        tasks.push(tokio::spawn(async move {
            let leader_watch = raft_service.leader_watch_server();
            let result = replication_server_builder()
                .add_service(raft_service.into_server())
                .add_service(leader_watch)
                .serve_with_incoming_shutdown(no_delay(raft_listener), async move {
                    let _ = stop_rx.wait_for(|s| *s).await;
                })
                .await;
            if let Err(e) = result {
                warn!(error = %e, "replication server stopped");
            }
        }));

        match &layout.kind {
            LayoutKind::DLedger { peers } if pristine => {
                let settling = raftmq_raft::rejoin::settle(
                    raft.clone(),
                    gate.clone(),
                    layout.group.clone(),
                    layout.self_id,
                    peers.clone(),
                );
                let mut stop_rx = stopped.clone();
                tasks.push(tokio::spawn(async move {
                    tokio::select! {
                        () = settling => {}
                        _ = stop_rx.wait_for(|s| *s) => {}
                    }
                }));
                tasks.push(tokio::spawn(found_if_new(
                    raft.clone(),
                    layout.clone(),
                    gate.clone(),
                    stopped.clone(),
                )));
            }
            LayoutKind::DLedger { .. } => {}
            LayoutKind::Classic { witness } => {
                if pristine {
                    tasks.push(tokio::spawn(classic::found_or_join(
                        raft.clone(),
                        layout.clone(),
                        gate.clone(),
                        config.namesrv_addr.clone(),
                        client_addr.to_string(),
                        stopped.clone(),
                    )));
                }
                let leader = classic::ClassicLeader {
                    raft: raft.clone(),
                    log: log.clone(),
                    self_id: layout.self_id,
                    group: layout.group.clone(),
                    witness_addr: witness.clone(),
                    max_gap_bytes: config.ha_max_gap_not_in_sync,
                    slave_timeout: config.slave_timeout,
                    in_sync,
                    witness_cap,
                };
                tasks.push(tokio::spawn(leader.run(stopped.clone())));
            }
        }

        let write_hold = crate::raft::handback::WriteHold::default();
        let ctx = BrokerContext {
            config: config.clone(),
            node_id: layout.self_id,
            client_addr,
            raft_addr,
            raft: raft.clone(),
            proposer: Proposer::spawn(
                raft.clone(),
                state.clone(),
                ack_on,
                early_acks,
                write_hold.watch(),
            ),
            ack_on,
            gate: gate.clone(),
            in_sync: in_sync_rx,
            state: state.clone(),
            log: log.clone(),
            consumers: Arc::new(ConsumerGroups::new(config.channel_expired_timeout)),
            queue_cursor: Default::default(),
            counters: Default::default(),
            dropped,
            booted: Instant::now(),
            boot_timestamp_ms: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as i64),
        };
        tasks.push(tokio::spawn(announce_leadership(
            ctx.clone(),
            stopped.clone(),
        )));
        let (fatal, fatal_rx) = watch::channel(None);
        tasks.extend(crate::registration::spawn(
            ctx.clone(),
            raft_addr.to_string(),
            stopped.clone(),
            fatal,
        ));
        let campaign = Campaign::new(
            raft.clone(),
            layout.self_id,
            layout.group.clone(),
            layout.preferred_leader,
            refusals,
        )
        .with_vote_gate(gate)
        .electing_unclean(
            (layout.is_classic() && config.enable_elect_unclean_master).then(|| log.clone()),
        );
        tasks.push(crate::raft::failover::spawn_failover_detector(
            campaign,
            stopped.clone(),
        ));
        tasks.push(crate::raft::handback::spawn_leadership_handback(
            raft.clone(),
            layout.self_id,
            layout.group.clone(),
            layout.preferred_leader,
            write_hold,
            stopped.clone(),
        ));

        // Client port: the broker API.
        let mut stop_rx = stopped.clone();
        let grpc = BrokerGrpc::new(ctx, stopped.clone());
        tasks.push(tokio::spawn(async move {
            let result = tonic::transport::Server::builder()
                .tcp_nodelay(true)
                .add_service(grpc.into_server())
                .serve_with_incoming_shutdown(no_delay(client_listener), async move {
                    let _ = stop_rx.wait_for(|s| *s).await;
                })
                .await;
            if let Err(e) = result {
                warn!(error = %e, "client server stopped");
            }
        }));

        Ok(BrokerNode {
            raft,
            state,
            log,
            client_addr,
            raft_addr,
            stop,
            fatal: fatal_rx,
            tasks,
        })
    }

    /// Stops taking requests, lets in-flight ones finish, stops Raft, flushes the store.
    pub async fn shutdown(self) -> Result<()> {
        let _ = self.stop.send(true);
        for task in self.tasks {
            let _ = tokio::time::timeout(Duration::from_secs(5), task).await;
        }
        if let Err(e) = self.raft.shutdown().await {
            warn!(error = %e, "raft shutdown");
        }
        self.log.flush().map_err(|source| Error::Store {
            step: "final flush of the commitlog",
            source,
        })?;
        Ok(())
    }

    /// Runs until `signal` resolves, then shuts down; or until the replica must stop by
    /// itself, then shuts down and says why (`Err`).
    pub async fn run_until(self, signal: impl Future<Output = ()>) -> Result<()> {
        let mut fatal = self.fatal.clone();
        let must_stop = async move {
            match fatal.wait_for(Option::is_some).await {
                Ok(why) => why.clone(),
                // No registration loop (no nameserver): nothing will ever say so.
                Err(_) => std::future::pending().await,
            }
        };
        let why = tokio::select! {
            () = signal => None,
            why = must_stop => why,
        };
        info!("shutting down");
        self.shutdown().await?;
        match why {
            Some((nameserver, remark)) => Err(Error::NodeIdRefused { nameserver, remark }),
            None => Ok(()),
        }
    }
}

/// Forms a brand-new group: only the lowest node id does it, and only once every peer has
/// said its store is empty too (`raft::rejoin`). A replica whose store was wiped finds a peer
/// that has taken part in the group and rejoins it instead: founding a second group beside
/// it would lose the first one's data (its elections, with a higher term and an empty log,
/// would keep deposing the real leader).
async fn found_if_new(
    raft: Raft,
    layout: GroupLayout,
    gate: VoteGate,
    mut stopped: watch::Receiver<bool>,
) {
    let LayoutKind::DLedger { peers } = &layout.kind else {
        return;
    };
    if peers.keys().next() != Some(&layout.self_id) {
        return; // the others wait for the founder (or the existing leader) to reach them
    }
    let standing = tokio::select! {
        standing = gate.decided() => standing,
        _ = stopped.wait_for(|s| *s) => return,
    };
    if standing != Standing::Member || raft.is_initialized().await.unwrap_or(true) {
        return;
    }
    let members: BTreeMap<NodeId, BasicNode> = peers
        .iter()
        .map(|(id, addr)| (*id, BasicNode { addr: addr.clone() }))
        .collect();
    match raft.initialize(members).await {
        Ok(()) => info!(group = %layout.group, "formed a new group"),
        Err(e) => info!(error = %e, "group already initialized"),
    }
}

/// When this replica becomes leader, it writes its client address into the log (once per
/// term), so every replica can send producers to it, and its retry-memory settings when the
/// applied ones differ, so every replica drops retries alike.
async fn announce_leadership(ctx: BrokerContext, mut stopped: watch::Receiver<bool>) {
    let mut metrics = ctx.raft.metrics();
    let mut announced_term = None;
    loop {
        let (leader, term) = {
            let m = metrics.borrow_and_update();
            (m.current_leader, m.current_term)
        };
        if leader == Some(ctx.node_id) && announced_term != Some(term) {
            match announce(&ctx).await {
                Ok(()) => announced_term = Some(term),
                Err(status) => {
                    debug!(remark = %status.remark, "announcing the leadership failed; retrying");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
            continue;
        }
        tokio::select! {
            changed = metrics.changed() => if changed.is_err() { return },
            _ = stopped.wait_for(|s| *s) => return,
        }
    }
}

/// Writes a new leader's NODE command, and its DEDUP settings if they differ from the applied.
async fn announce(ctx: &BrokerContext) -> Result<(), proto::v1::ResponseStatus> {
    let addr = ctx.client_addr.to_string();
    ctx.write_encoded(LogCommand::node_info(ctx.node_id, &addr))
        .await?;
    let wanted = ctx.config.duplicate_memory;
    let applied = ctx.state.duplicate_memory();
    if applied != wanted {
        ctx.write(LogCommand::dedup(wanted))
            .await
            .map_err(|e| e.status())?;
        info!(
            ?applied,
            ?wanted,
            "the group's retry memory takes this leader's settings"
        );
    }
    info!(%addr, "leading the group");
    Ok(())
}
