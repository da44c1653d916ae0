//! The live route registry of one nameserver process: the [`RouteTable`] behind a lock,
//! the broadcast of its changes to watchers, and the process's epoch.
//!
//! Every update converts its changes to [`pb::RouteEvent`]s and broadcasts them while
//! still holding the table lock, so events enter the channel in version order. A watcher
//! subscribes before it takes its snapshot, so it misses nothing: events at or below the
//! snapshot's version are skipped, the rest follow in order. A watcher that falls more
//! than the channel's capacity behind is sent a fresh snapshot instead of the events it
//! missed (namesrv.proto: `RouteEvent.snapshot`).

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use futures::Stream;
use proto::v1 as pb;
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::{broadcast, watch};
use tracing::{debug, info, warn};

use crate::config::NamesrvConfig;
use crate::convert;
use crate::route_table::{Group, NodeIdTaken, Registration, RouteChange, RouteTable};

/// What a registration did, as the wire reports it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Registered {
    /// The broker is (still) the group's recorded leader.
    pub leader_accepted: bool,
    /// The group after the registration.
    pub group: pb::GroupRoute,
}

/// One nameserver's routes, shared by its gRPC service, its expiry task and its watchers.
pub(crate) struct Registry {
    table: Mutex<RouteTable>,
    /// Heartbeat timeout of brokers that do not send their own (`brokerExpiryMs`).
    default_heartbeat_timeout: Duration,
    /// Every change, as sent to watchers; each watcher holds a receiver.
    events: broadcast::Sender<Arc<pb::RouteEvent>>,
    /// Random per process: versions of two epochs are not comparable.
    epoch: String,
    /// Set once on shutdown: watch streams end and the expiry task stops, so the server's
    /// graceful shutdown is not held up by streams that would otherwise never finish.
    closed: watch::Sender<bool>,
}

impl Registry {
    /// An empty registry with a fresh random epoch.
    pub fn new(config: &NamesrvConfig) -> Self {
        Registry {
            table: Mutex::new(RouteTable::new()),
            default_heartbeat_timeout: config.broker_expiry,
            events: broadcast::channel(config.watch_buffer.max(1)).0,
            epoch: format!("{:016x}", rand::random::<u64>()),
            closed: watch::channel(false).0,
        }
    }

    /// Heartbeat timeout of brokers that do not send their own.
    pub fn default_heartbeat_timeout(&self) -> Duration {
        self.default_heartbeat_timeout
    }

    /// This process's epoch.
    pub fn epoch(&self) -> &str {
        &self.epoch
    }

    /// Records a registration (or heartbeat); refused when another live broker holds its node
    /// id.
    pub fn register(&self, registration: Registration) -> Result<Registered, NodeIdTaken> {
        let now = Instant::now();
        let name = registration.broker_name.clone();
        let member = registration.member.clone();
        let claims_leadership = registration.is_leader;
        let leader_of = |g: &Group| g.leader().map(|m| (m.info.node_id, g.term()));

        let mut table = self.lock();
        let group_before = table.group(&name);
        let known = group_before.is_some_and(|g| g.member(member.node_id).is_some());
        let leader_before = group_before.and_then(leader_of);
        let outcome = match table.register(registration, now) {
            Ok(outcome) => outcome,
            Err(taken) => {
                drop(table);
                warn!(group = %name, node_id = taken.node_id, held_by = %taken.held_by,
                    claimed_by = %taken.claimed_by, "registration refused: {taken}");
                return Err(taken);
            }
        };
        self.publish(&outcome.changes, now);
        drop(table);

        let (node_id, addr, term) = (member.node_id, &member.broker_addr, member.term);
        if !known {
            info!(group = %name, node_id, %addr, term, claims_leadership, "broker registered");
        }
        let leader_after = leader_of(&outcome.group);
        if leader_after.is_some() && leader_after != leader_before {
            info!(group = %name, node_id, %addr, term, "group leader recorded");
        }
        for old in &outcome.superseded {
            info!(
                group = %name, node_id = old.node_id, addr = %old.broker_addr,
                claimed_term = old.term, term,
                "former leader dropped: a leader of a higher term registered"
            );
        }
        if claims_leadership && !outcome.leader_accepted {
            warn!(
                group = %name, node_id, %addr, claimed_term = term,
                recorded_leader = ?leader_after.map(|(id, _)| id),
                recorded_term = outcome.group.term(),
                "stale leadership claim refused: a leader with a higher term is recorded"
            );
        }
        Ok(Registered {
            leader_accepted: outcome.leader_accepted,
            group: convert::group_route(&outcome.group, now),
        })
    }

    /// Whether a broker of group `broker_name` is registered (only those get a witness here).
    pub fn knows_group(&self, broker_name: &str) -> bool {
        self.lock().group(broker_name).is_some()
    }

    /// Removes a member at once; false when no such member is registered.
    pub fn unregister(&self, broker_name: &str, node_id: u64, broker_addr: &str) -> bool {
        let now = Instant::now();
        let mut table = self.lock();
        let Some(changes) = table.unregister(broker_name, node_id, broker_addr) else {
            return false;
        };
        self.publish(&changes, now);
        drop(table);
        info!(group = %broker_name, node_id, addr = %broker_addr, "broker unregistered");
        true
    }

    /// Drops the members whose heartbeat timeout ran out by `now`.
    pub fn expire(&self, now: Instant) {
        let mut table = self.lock();
        let expiry = table.expire(now);
        self.publish(&expiry.changes, now);
        drop(table);
        for member in expiry.expired {
            warn!(
                group = %member.broker_name,
                node_id = member.info.node_id,
                addr = %member.info.broker_addr,
                silent_ms = member.silent_for.as_millis() as u64,
                was_leader = member.was_leader,
                "broker expired: no heartbeat within its timeout"
            );
        }
    }

    /// The route of `topic`, if a live group hosts it.
    pub fn query_route(&self, topic: &str) -> Option<(pb::TopicQueues, Vec<pb::GroupRoute>)> {
        let now = Instant::now();
        let table = self.lock();
        let (route, groups) = table.topic_route(topic)?;
        Some((
            convert::topic_queues(route),
            groups
                .into_iter()
                .map(|g| convert::group_route(g, now))
                .collect(),
        ))
    }

    /// Every cluster with its groups, sorted by cluster then brokerName.
    pub fn clusters(&self) -> Vec<pb::ClusterInfo> {
        let now = Instant::now();
        let table = self.lock();
        let mut clusters: Vec<pb::ClusterInfo> = Vec::new();
        for group in table.groups() {
            let route = convert::group_route(group, now);
            match clusters.last_mut() {
                Some(cluster) if cluster.cluster_name == route.cluster_name => {
                    cluster.groups.push(route);
                }
                _ => clusters.push(pb::ClusterInfo {
                    cluster_name: route.cluster_name.clone(),
                    groups: vec![route],
                }),
            }
        }
        clusters
    }

    /// Names of the topics hosted in `cluster` (every cluster when `None`), sorted.
    pub fn topic_names(&self, cluster: Option<&str>) -> Vec<String> {
        self.lock().topic_names(cluster)
    }

    /// The whole table as a snapshot event.
    pub fn snapshot_event(&self) -> pb::RouteEvent {
        let now = Instant::now();
        let snapshot = self.lock().snapshot();
        convert::snapshot_event(&snapshot, &self.epoch, now)
    }

    /// Every route change from now on, after a snapshot of the current table; ends when
    /// the registry is closed.
    pub fn watch(self: &Arc<Self>) -> impl Stream<Item = pb::RouteEvent> + Send + 'static {
        let watcher = Watcher {
            // Subscribe first: every change after the snapshot is then in the channel.
            events: self.events.subscribe(),
            closed: self.closed.subscribe(),
            registry: Arc::clone(self),
            seen: None,
        };
        futures::stream::unfold(watcher, Watcher::next)
    }

    /// Ends every watch stream and tells background tasks to stop.
    pub fn close(&self) {
        self.closed.send_replace(true);
    }

    /// Resolves once [`Registry::close`] has been called.
    pub async fn closed(&self) {
        let mut closed = self.closed.subscribe();
        // An error means the sender is gone, which cannot happen while `self` lives.
        let _ = closed.wait_for(|closed| *closed).await;
    }

    fn publish(&self, changes: &[RouteChange], now: Instant) {
        for change in changes {
            // No receivers (no watchers) is not an error.
            let _ = self
                .events
                .send(Arc::new(convert::change_event(change, &self.epoch, now)));
        }
    }

    fn lock(&self) -> MutexGuard<'_, RouteTable> {
        // The table is never left half-updated by a panic (updates compute, then assign),
        // so a poisoned lock still guards a consistent table.
        self.table.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// One WatchRoutes subscriber.
struct Watcher {
    registry: Arc<Registry>,
    events: broadcast::Receiver<Arc<pb::RouteEvent>>,
    closed: watch::Receiver<bool>,
    /// Version of the last event sent; `None` while a snapshot is owed (at the start and
    /// after falling behind).
    seen: Option<u64>,
}

impl Watcher {
    /// The next event for this watcher, or `None` when the registry closes.
    async fn next(mut self) -> Option<(pb::RouteEvent, Self)> {
        loop {
            let Some(seen) = self.seen else {
                let snapshot = self.registry.snapshot_event();
                self.seen = Some(snapshot.version);
                return Some((snapshot, self));
            };
            let received = tokio::select! {
                biased;
                _ = self.closed.wait_for(|closed| *closed) => return None,
                received = self.events.recv() => received,
            };
            match received {
                // Already contained in the snapshot this watcher was sent.
                Ok(event) if event.version <= seen => continue,
                Ok(event) => {
                    self.seen = Some(event.version);
                    return Some((pb::RouteEvent::clone(&event), self));
                }
                Err(RecvError::Lagged(missed)) => {
                    debug!(
                        missed,
                        "route watcher fell behind; sending a fresh snapshot"
                    );
                    // Start over at the channel's tail: the old receiver would still walk
                    // the buffered events the snapshot replaces, and lag again if they
                    // were overwritten before it got to them.
                    self.events = self.events.resubscribe();
                    self.seen = None;
                }
                Err(RecvError::Closed) => return None,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::StreamExt;
    use proto::v1::route_event::Change as PbChange;

    fn registration(group: &str, node: u64, term: u64, is_leader: bool) -> Registration {
        let request = pb::RegisterBrokerRequest {
            cluster_name: "c".into(),
            broker_name: group.into(),
            broker_id: node,
            node_id: node,
            broker_addr: format!("127.0.0.1:1091{node}"),
            term,
            is_leader,
            ..Default::default()
        };
        convert::registration(request, Duration::from_secs(5)).unwrap()
    }

    fn registry(watch_buffer: usize) -> Arc<Registry> {
        Arc::new(Registry::new(&NamesrvConfig {
            watch_buffer,
            ..NamesrvConfig::default()
        }))
    }

    async fn next(stream: &mut (impl Stream<Item = pb::RouteEvent> + Unpin)) -> pb::RouteEvent {
        tokio::time::timeout(Duration::from_secs(5), stream.next())
            .await
            .expect("an event within 5 s")
            .expect("stream still open")
    }

    #[tokio::test]
    async fn snapshot_first_then_changes_in_version_order() {
        let registry = registry(16);
        registry.register(registration("g", 0, 1, true)).unwrap();
        let mut stream = Box::pin(registry.watch());
        let first = next(&mut stream).await;
        assert_eq!(first.epoch, registry.epoch());
        assert_eq!(first.version, 1);
        match first.change {
            Some(PbChange::Snapshot(s)) => assert_eq!(s.groups[0].leader_node_id, Some(0)),
            other => panic!("expected a snapshot, got {other:?}"),
        }
        let out = registry.register(registration("g", 1, 2, true)).unwrap();
        assert!(out.leader_accepted);
        let event = next(&mut stream).await;
        assert_eq!(event.version, 2);
        match event.change {
            Some(PbChange::GroupUpdated(g)) => {
                assert_eq!((g.leader_node_id, g.term), (Some(1), 2));
            }
            other => panic!("expected a group update, got {other:?}"),
        }
        // A plain heartbeat sends nothing; the next real change comes next.
        registry.register(registration("g", 1, 2, true)).unwrap();
        assert!(registry.unregister("g", 0, ""));
        assert_eq!(next(&mut stream).await.version, 3);
    }

    #[tokio::test]
    async fn a_lagging_watcher_gets_a_fresh_snapshot() {
        let registry = registry(2);
        let mut stream = Box::pin(registry.watch());
        assert_eq!(next(&mut stream).await.version, 0);
        // Ten changes while the watcher is not reading: more than the channel holds.
        for node in 0..10 {
            registry
                .register(registration("g", node, 1, false))
                .unwrap();
        }
        let event = next(&mut stream).await;
        assert_eq!(event.version, 10);
        match event.change {
            Some(PbChange::Snapshot(s)) => assert_eq!(s.groups[0].members.len(), 10),
            other => panic!("expected a snapshot, got {other:?}"),
        }
        // Back in step: the next change is an ordinary event.
        registry.register(registration("g", 10, 1, false)).unwrap();
        let event = next(&mut stream).await;
        assert_eq!(event.version, 11);
        assert!(
            matches!(event.change, Some(PbChange::GroupUpdated(_))),
            "{event:?}"
        );
    }

    #[tokio::test]
    async fn closing_ends_watch_streams() {
        let registry = registry(16);
        let mut stream = Box::pin(registry.watch());
        next(&mut stream).await;
        registry.close();
        let end = tokio::time::timeout(Duration::from_secs(5), stream.next()).await;
        assert_eq!(end.expect("ends promptly"), None);
        registry.closed().await;
    }

    #[test]
    fn expiry_and_queries_through_the_registry() {
        let registry = registry(16);
        let mut reg = registration("g", 0, 1, true);
        reg.topics.insert(
            "T".into(),
            crate::route_table::QueueConfig {
                read_queue_nums: 2,
                write_queue_nums: 2,
                perm: 6,
            },
        );
        registry.register(reg).unwrap();
        let (topic, groups) = registry.query_route("T").unwrap();
        assert_eq!(topic.queue_datas.len(), 1);
        assert_eq!(groups[0].broker_name, "g");
        assert_eq!(registry.topic_names(Some("c")), ["T"]);
        assert_eq!(registry.clusters()[0].groups.len(), 1);
        registry.expire(Instant::now() + Duration::from_secs(6));
        assert!(registry.query_route("T").is_none());
        assert!(registry.clusters().is_empty());
        assert!(!registry.unregister("g", 0, ""));
    }
}
