//! Three replicas of one group in one process, talking Raft through the real gRPC network on
//! loopback: the group elects a leader, replicates commands byte for byte, and when the leader
//! dies (its server and every connection to it cut at once, as `kill -9` does) a new leader is
//! elected fast; the dead replica then restarts from its log and catches up, and it happens
//! again with the next leader.
//!
//! Logs are the real `raft-log` store in temp dirs; the state machine is a small in-memory one
//! that records what it applied.

use std::collections::BTreeMap;
use std::io::Cursor;
use std::net::{Shutdown, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use broker::command::LogCommand;
use broker::raft::failover::{spawn_failover_detector, Campaign, VoteRefusals};
use broker::raft::typ::{
    ApplyResult, Entry, EntryPayload, LogId, NodeId, Raft, Snapshot, SnapshotMeta, StorageError,
    StoredMembership, TypeConfig,
};
use bytes::Bytes;
use openraft::storage::{RaftSnapshotBuilder, RaftStateMachine};
use openraft::{BasicNode, ServerState, StorageIOError};
use raft_log::raft::RaftLogStore;
use raft_log::{FlushMode, LogConfig, LogStore};
use raftmq_raft::network::GrpcNetworkFactory;
use raftmq_raft::rejoin::VoteGate;
use raftmq_raft::service::{replication_server_builder, Member, NoHooks, RaftGrpcService};
use raftmq_raft::timing::replica_config;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

const GROUP: &str = "broker-a";
/// Generous bounds: the test measures failover time, it must not flake on a loaded machine.
const ELECTION_BOUND: Duration = Duration::from_secs(5);
const CATCH_UP_BOUND: Duration = Duration::from_secs(20);

// ---- an in-memory state machine ----

/// What a replica applied: the last log id, the membership, and every normal entry's bytes.
#[derive(Debug, Default, Clone, serde::Serialize, serde::Deserialize)]
struct Applied {
    last_applied: Option<LogId>,
    membership: StoredMembership,
    commands: BTreeMap<u64, Bytes>,
}

#[derive(Clone, Default)]
struct MemStateMachine {
    applied: Arc<Mutex<Applied>>,
    snapshot_seq: Arc<Mutex<u64>>,
}

fn io_error(e: impl std::error::Error + 'static) -> StorageError {
    StorageIOError::read_state_machine(&e).into()
}

impl MemStateMachine {
    fn applied(&self) -> Applied {
        self.applied.lock().expect("state machine lock").clone()
    }
}

impl RaftSnapshotBuilder<TypeConfig> for MemStateMachine {
    async fn build_snapshot(&mut self) -> Result<Snapshot, StorageError> {
        let applied = self.applied();
        let data = serde_json::to_vec(&applied).map_err(io_error)?;
        let mut seq = self.snapshot_seq.lock().expect("snapshot lock");
        *seq += 1;
        let meta = SnapshotMeta {
            last_log_id: applied.last_applied,
            last_membership: applied.membership.clone(),
            snapshot_id: format!("{:?}-{seq}", applied.last_applied.map(|l| l.index)),
        };
        Ok(Snapshot {
            meta,
            snapshot: Box::new(Cursor::new(data)),
        })
    }
}

impl RaftStateMachine<TypeConfig> for MemStateMachine {
    type SnapshotBuilder = MemStateMachine;

    async fn applied_state(&mut self) -> Result<(Option<LogId>, StoredMembership), StorageError> {
        let a = self.applied();
        Ok((a.last_applied, a.membership))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<ApplyResult>, StorageError>
    where
        I: IntoIterator<Item = Entry> + Send,
        I::IntoIter: Send,
    {
        let mut a = self.applied.lock().expect("state machine lock");
        let mut out = Vec::new();
        for entry in entries {
            a.last_applied = Some(entry.log_id);
            match entry.payload {
                EntryPayload::Blank => {}
                EntryPayload::Normal(cmd) => {
                    a.commands.insert(entry.log_id.index, cmd.0);
                }
                EntryPayload::Membership(m) => {
                    a.membership = StoredMembership::new(Some(entry.log_id), m)
                }
            }
            out.push(ApplyResult::Done);
        }
        Ok(out)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.clone()
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<Cursor<Vec<u8>>>, StorageError> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), StorageError> {
        let mut applied: Applied = serde_json::from_slice(snapshot.get_ref()).map_err(io_error)?;
        applied.last_applied = meta.last_log_id;
        applied.membership = meta.last_membership.clone();
        *self.applied.lock().expect("state machine lock") = applied;
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot>, StorageError> {
        Ok(None)
    }
}

// ---- one replica: Raft, its replication server, its failover detector ----

struct Replica {
    id: NodeId,
    raft: Raft,
    /// The log under `raft`, which the replication service answers from.
    store: LogStore,
    sm: MemStateMachine,
    server: JoinHandle<()>,
    /// Clones of every accepted connection, to cut them all at once.
    accepted: Arc<Mutex<Vec<std::net::TcpStream>>>,
    stop: watch::Sender<bool>,
    detector: JoinHandle<()>,
}

impl Replica {
    async fn start(id: NodeId, listener: TcpListener, dir: &std::path::Path) -> Replica {
        let log = LogStore::open(
            LogConfig::new(dir)
                .segment_size(4 << 20)
                .flush(FlushMode::Sync),
        )
        .expect("open log");
        let store = log.clone();
        let log = RaftLogStore::<TypeConfig>::new(log).expect("raft log");
        let sm = MemStateMachine::default();
        let refusals = VoteRefusals::default();
        let network = GrpcNetworkFactory::<TypeConfig>::new(GROUP, id)
            .with_vote_observer(Arc::new(refusals.clone()));
        let raft = Raft::new(id, Arc::new(replica_config()), network, log, sm.clone())
            .await
            .expect("raft");

        let accepted = Arc::new(Mutex::new(Vec::new()));
        let (stop, stopped) = watch::channel(false);
        let server = serve(
            raft.clone(),
            id,
            &store,
            listener,
            accepted.clone(),
            stopped.clone(),
        );
        let detector = spawn_failover_detector(
            Campaign::new(raft.clone(), id, GROUP, None, refusals),
            stopped,
        );
        Replica {
            id,
            raft,
            store,
            sm,
            server,
            accepted,
            stop,
            detector,
        }
    }

    /// Closes the replication port and cuts every connection to it; Raft keeps running.
    fn cut_off(&self) {
        self.server.abort();
        for conn in self.accepted.lock().expect("accepted lock").drain(..) {
            let _ = conn.shutdown(Shutdown::Both);
        }
    }

    /// Serves the replication port again after [`Replica::cut_off`].
    fn reconnect(&mut self, listener: TcpListener) {
        let stopped = self.stop.subscribe();
        self.server = serve(
            self.raft.clone(),
            self.id,
            &self.store,
            listener,
            self.accepted.clone(),
            stopped,
        );
    }

    /// What `kill -9` does to a replica, seen from its peers: the listening port closes, every
    /// connection is cut, and nothing is sent any more.
    async fn kill(self) {
        self.cut_off();
        let _ = self.stop.send(true);
        self.detector.abort();
        let _ = self.raft.shutdown().await;
    }
}

/// Serves `raft`'s RaftService and LeaderWatchService on `listener` until `stopped` turns
/// true, keeping a handle on every accepted connection in `accepted`.
fn serve(
    raft: Raft,
    id: NodeId,
    store: &LogStore,
    listener: TcpListener,
    accepted: Arc<Mutex<Vec<std::net::TcpStream>>>,
    stopped: watch::Receiver<bool>,
) -> JoinHandle<()> {
    let member = Arc::new(Member {
        group: GROUP.to_owned(),
        node_id: id,
        raft,
        gate: VoteGate::member(),
        log: store.clone(),
        hooks: Arc::new(NoHooks),
    });
    let service = RaftGrpcService::new(member).with_shutdown(stopped);
    let incoming =
        futures::stream::unfold((listener, accepted), |(listener, accepted)| async move {
            let conn = match listener.accept().await {
                Ok((stream, _)) => keep_a_handle(stream, &accepted),
                Err(e) => Err(e),
            };
            Some((conn, (listener, accepted)))
        });
    tokio::spawn(async move {
        let _ = replication_server_builder()
            .add_service(service.leader_watch_server())
            .add_service(service.into_server())
            .serve_with_incoming(incoming)
            .await;
    })
}

/// Keeps a duplicate of the accepted socket's descriptor, so the test can cut the connection.
fn keep_a_handle(
    stream: tokio::net::TcpStream,
    accepted: &Mutex<Vec<std::net::TcpStream>>,
) -> std::io::Result<tokio::net::TcpStream> {
    let std_stream = stream.into_std()?;
    accepted
        .lock()
        .expect("accepted lock")
        .push(std_stream.try_clone()?);
    tokio::net::TcpStream::from_std(std_stream)
}

// ---- helpers ----

async fn listen() -> (TcpListener, SocketAddr) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("local addr");
    (listener, addr)
}

/// Waits until one of `replicas` leads; returns its index in `replicas`.
async fn wait_for_leader(replicas: &[&Replica], timeout: Duration) -> usize {
    let waits = replicas.iter().map(|r| {
        Box::pin(async move {
            r.raft
                .wait(Some(timeout))
                .metrics(|m| m.state == ServerState::Leader, "a leader")
                .await
        })
    });
    let (result, index, _) = futures::future::select_all(waits).await;
    if let Err(e) = result {
        panic!("no leader within {timeout:?}: {e}");
    }
    index
}

/// Writes `cmd` through `leader`, retrying while leadership is still settling.
async fn write(leader: &Raft, cmd: LogCommand, deadline: Instant) -> LogId {
    loop {
        match leader.client_write(cmd.clone()).await {
            Ok(resp) => return resp.log_id,
            Err(e) if Instant::now() < deadline => {
                tracing::debug!(error = %e, "write refused; retrying");
                // Leadership is settling: try again when the leader's state moves.
                let mut metrics = leader.metrics();
                let _ = tokio::time::timeout(Duration::from_millis(20), metrics.changed()).await;
            }
            Err(e) => panic!("no write acknowledged before the deadline: {e}"),
        }
    }
}

fn command(i: usize) -> LogCommand {
    LogCommand(Bytes::from(format!(
        "command #{i}: {}",
        "x".repeat(i * 37 % 500)
    )))
}

/// Waits until `replica` applied `index` and checks it holds every command of `written`.
async fn assert_caught_up(replica: &Replica, index: u64, written: &BTreeMap<u64, Bytes>) {
    replica
        .raft
        .wait(Some(CATCH_UP_BOUND))
        .applied_index_at_least(Some(index), "caught up")
        .await
        .unwrap_or_else(|e| panic!("node {} did not catch up: {e}", replica.id));
    let applied = replica.sm.applied();
    for (index, bytes) in written {
        assert_eq!(
            applied.commands.get(index),
            Some(bytes),
            "node {} at index {index}",
            replica.id
        );
    }
}

/// Starts three replicas on ephemeral ports and initializes the group.
async fn start_group(
    dirs: &[tempfile::TempDir],
) -> (Vec<Option<Replica>>, BTreeMap<NodeId, SocketAddr>) {
    // Quiet unless RUST_LOG asks: openraft logs every refused connection to a dead peer as an
    // error.
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("off"));
    let _ = tracing_subscriber::fmt().with_env_filter(filter).try_init();
    let mut addrs = BTreeMap::new();
    let mut replicas = Vec::new();
    for (id, dir) in (0..).zip(dirs) {
        let (listener, addr) = listen().await;
        addrs.insert(id, addr);
        replicas.push(Some(Replica::start(id, listener, dir.path()).await));
    }
    let members: BTreeMap<NodeId, BasicNode> = addrs
        .iter()
        .map(|(id, a)| {
            (
                *id,
                BasicNode {
                    addr: a.to_string(),
                },
            )
        })
        .collect();
    replicas[0]
        .as_ref()
        .expect("started")
        .raft
        .initialize(members)
        .await
        .expect("initialize");
    (replicas, addrs)
}

fn temp_dirs() -> Vec<tempfile::TempDir> {
    (0..3)
        .map(|_| tempfile::tempdir().expect("temp dir"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_replicates_over_grpc_and_replaces_a_dead_leader_fast() {
    let dirs = temp_dirs();
    let (mut replicas, addrs) = start_group(&dirs).await;

    let live = |replicas: &[Option<Replica>]| -> Vec<usize> {
        replicas
            .iter()
            .enumerate()
            .filter_map(|(i, r)| r.as_ref().map(|_| i))
            .collect()
    };

    let mut written = BTreeMap::new();
    let mut next_command = 0;
    let mut timings = Vec::new();
    for round in 0..3 {
        // Elect (or find) the leader and replicate a few commands to everyone.
        let alive = live(&replicas);
        let refs: Vec<&Replica> = alive
            .iter()
            .map(|i| replicas[*i].as_ref().expect("live"))
            .collect();
        let leader = refs[wait_for_leader(&refs, ELECTION_BOUND * 2).await];
        let deadline = Instant::now() + ELECTION_BOUND;
        let mut last = None;
        for _ in 0..5 {
            let cmd = command(next_command);
            next_command += 1;
            let log_id = write(&leader.raft, cmd.clone(), deadline).await;
            written.insert(log_id.index, cmd.0);
            last = Some(log_id.index);
        }
        let last = last.expect("wrote");
        for r in &refs {
            assert_caught_up(r, last, &written).await;
        }

        // Kill the leader.
        let dead = leader.id;
        let killed_at = Instant::now();
        replicas[dead as usize]
            .take()
            .expect("leader is live")
            .kill()
            .await;

        // A survivor takes over and acknowledges a write.
        let alive = live(&replicas);
        let refs: Vec<&Replica> = alive
            .iter()
            .map(|i| replicas[*i].as_ref().expect("live"))
            .collect();
        let new_leader = refs[wait_for_leader(&refs, ELECTION_BOUND).await];
        let elected = killed_at.elapsed();
        assert_ne!(new_leader.id, dead);
        let cmd = command(next_command);
        next_command += 1;
        let log_id = write(&new_leader.raft, cmd.clone(), killed_at + ELECTION_BOUND).await;
        let acked = killed_at.elapsed();
        written.insert(log_id.index, cmd.0);
        println!(
            "round {round}: leader {dead} killed; node {} leads after {} ms, first write acked after {} ms",
            new_leader.id,
            elected.as_millis(),
            acked.as_millis()
        );
        assert!(acked < ELECTION_BOUND, "failover took {acked:?}");
        timings.push(acked);
        for r in &refs {
            assert_caught_up(r, log_id.index, &written).await;
        }

        // The dead replica restarts from its log on its old address and catches up.
        let listener = TcpListener::bind(addrs[&dead])
            .await
            .expect("rebind the dead replica's port");
        let restarted = Replica::start(dead, listener, dirs[dead as usize].path()).await;
        assert_caught_up(&restarted, log_id.index, &written).await;
        replicas[dead as usize] = Some(restarted);
    }
    timings.sort();
    println!("failover (kill -> first acked write), sorted: {timings:?}");

    for r in replicas.into_iter().flatten() {
        r.kill().await;
    }
}

/// The first-ranked survivor (lowest id) missed the last entries, so it cannot win: the
/// other survivor must, without waiting for the campaign to give up (the vote refusal
/// "my log is ahead" makes the first-ranked one stand aside).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_survivor_with_a_longer_log_wins_over_a_higher_ranked_one() {
    let dirs = temp_dirs();
    let (mut replicas, addrs) = start_group(&dirs).await;
    let refs: Vec<&Replica> = replicas.iter().flatten().collect();
    let leader_id = refs[wait_for_leader(&refs, ELECTION_BOUND * 2).await].id;
    let behind_id = (0..3).find(|id| *id != leader_id).expect("a follower");
    let ahead_id = (0..3)
        .find(|id| *id != leader_id && *id != behind_id)
        .expect("another follower");

    let mut written = BTreeMap::new();
    let deadline = Instant::now() + ELECTION_BOUND;
    let leader = replicas[leader_id as usize].as_ref().expect("live");
    for i in 0..3 {
        let cmd = command(i);
        written.insert(
            write(&leader.raft, cmd.clone(), deadline).await.index,
            cmd.0,
        );
    }
    let last = *written.keys().last().expect("wrote");
    for r in replicas.iter().flatten() {
        assert_caught_up(r, last, &written).await;
    }

    // The first-ranked follower stops hearing from the leader; the rest of the group goes on.
    let behind = replicas[behind_id as usize].as_ref().expect("live");
    behind.cut_off();
    let mut last = last;
    for i in 3..6 {
        let cmd = command(i);
        last = write(&leader.raft, cmd.clone(), deadline).await.index;
        written.insert(last, cmd.0);
    }
    assert_caught_up(
        replicas[ahead_id as usize].as_ref().expect("live"),
        last,
        &written,
    )
    .await;
    assert!(behind.raft.metrics().borrow().last_log_index < Some(last));

    // The leader dies as the lagging follower is reachable again.
    let killed_at = Instant::now();
    replicas[leader_id as usize]
        .take()
        .expect("live")
        .kill()
        .await;
    let listener = TcpListener::bind(addrs[&behind_id]).await.expect("rebind");
    replicas[behind_id as usize]
        .as_mut()
        .expect("live")
        .reconnect(listener);

    let refs: Vec<&Replica> = replicas.iter().flatten().collect();
    let new_leader = refs[wait_for_leader(&refs, ELECTION_BOUND).await];
    let elected = killed_at.elapsed();
    assert_eq!(
        new_leader.id, ahead_id,
        "only the replica with every committed entry can win"
    );
    let cmd = command(6);
    let log_id = write(&new_leader.raft, cmd.clone(), killed_at + ELECTION_BOUND).await;
    let acked = killed_at.elapsed();
    written.insert(log_id.index, cmd.0);
    println!(
        "lagging first-ranked survivor: node {ahead_id} leads after {} ms, first write acked after {} ms",
        elected.as_millis(),
        acked.as_millis()
    );
    // Well below the campaign's give-up time (2 s) plus Raft's own election timers.
    assert!(
        acked < Duration::from_millis(1_500),
        "failover took {acked:?}"
    );
    for r in replicas.iter().flatten() {
        assert_caught_up(r, log_id.index, &written).await;
    }
    for r in replicas.into_iter().flatten() {
        r.kill().await;
    }
}

/// The replication port answers only for its own node of its own group, refuses malformed
/// requests, lets only the leader be watched, and ends watches when its node shuts down.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replication_port_checks_addressing_leadership_and_input() {
    use proto::v1 as pb;
    use proto::v1::leader_watch_service_client::LeaderWatchServiceClient;
    use proto::RaftServiceClient;
    use tonic::Code;

    let dirs = temp_dirs();
    let (replicas, addrs) = start_group(&dirs).await;
    let refs: Vec<&Replica> = replicas.iter().flatten().collect();
    let leader = refs[wait_for_leader(&refs, ELECTION_BOUND * 2).await];
    let follower = refs.iter().find(|r| r.id != leader.id).expect("a follower");
    let channel = |id: NodeId| {
        raftmq_raft::network::peer_endpoint(&addrs[&id].to_string())
            .expect("endpoint")
            .connect_lazy()
    };

    let mut raft_client = RaftServiceClient::new(channel(follower.id));
    let heartbeat = |group: &str, target: NodeId| pb::AppendEntriesRequest {
        group: group.into(),
        target_node_id: target,
        vote: None,
        ..Default::default()
    };
    for (group, target, expected) in [
        ("other-group", follower.id, Code::NotFound),
        (GROUP, leader.id, Code::NotFound),
        (GROUP, follower.id, Code::InvalidArgument),
    ] {
        let refused = raft_client
            .append_entries(heartbeat(group, target))
            .await
            .expect_err("refused");
        assert_eq!(refused.code(), expected, "{group} / {target}: {refused}");
    }
    // JoinGroup checks its addressing too; a member whose host adds no JoinGroup says so.
    let join = |group: &str, target| pb::JoinGroupRequest {
        group: group.into(),
        target_node_id: target,
        ..Default::default()
    };
    let refused = raft_client
        .join_group(join("other", follower.id))
        .await
        .expect_err("another group");
    assert_eq!(refused.code(), Code::NotFound);
    let refused = raft_client
        .join_group(join(GROUP, follower.id))
        .await
        .expect_err("no JoinGroup here");
    assert_eq!(refused.code(), Code::Unimplemented);
    // TimeoutNow (the preferred-leader handback) checks its addressing like every Raft RPC.
    let timeout_now = raft_client
        .timeout_now(pb::TimeoutNowRequest::default())
        .await
        .map(|_| ());
    assert_eq!(timeout_now.expect_err("wrong group").code(), Code::NotFound);

    let watch = |target: NodeId| pb::WatchLeaderRequest {
        group: GROUP.into(),
        target_node_id: target,
        follower_node_id: 99,
    };
    let refused = LeaderWatchServiceClient::new(channel(follower.id))
        .watch_leader(watch(follower.id))
        .await
        .expect_err("a follower cannot be watched");
    assert_eq!(refused.code(), Code::FailedPrecondition);

    let mut pings = LeaderWatchServiceClient::new(channel(leader.id))
        .watch_leader(watch(leader.id))
        .await
        .expect("the leader can be watched")
        .into_inner();
    let ping = pings.message().await.expect("a ping").expect("not ended");
    let term = leader.raft.metrics().borrow().current_term;
    assert_eq!((ping.leader_node_id, ping.term), (leader.id, term));

    // The leader's node shuts down: the watch ends at once.
    let _ = leader.stop.send(true);
    let ended = tokio::time::timeout(ELECTION_BOUND, async {
        loop {
            match pings.message().await {
                Ok(Some(_)) => continue,
                other => return other,
            }
        }
    })
    .await
    .expect("the watch ends");
    assert_eq!(
        ended.expect_err("ends with a status").code(),
        Code::Unavailable
    );

    for r in replicas.into_iter().flatten() {
        r.kill().await;
    }
}
