//! The live route cache: a [`RouteTable`] kept current by a background task that follows
//! `WatchRoutes` on one nameserver and moves to the next when the stream breaks. Clients
//! read leaders and queues from it and wait on it for a group's leader to change.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use futures::StreamExt;
use proto::v1::{LeaderHint, WatchRoutesRequest};
use tokio::sync::watch;
use tokio::time::Instant;

use crate::error::ClientError;
use crate::nameserver::NameServerClient;
use crate::route_table::{Applied, RouteTable, TopicRoute};
use crate::task::AbortOnDrop;

/// Longest pause between two rounds of reconnection attempts over the whole list.
const MAX_RECONNECT_BACKOFF: Duration = Duration::from_secs(2);
/// While the watch is down, how often a waiter re-reads the groups with a unary call.
const UNWATCHED_REFRESH: Duration = Duration::from_millis(500);

/// A shared, self-updating view of the cluster's routes. Cheap to clone; the watch task
/// stops when the last clone is dropped.
#[derive(Clone)]
pub struct Routes {
    shared: Arc<Shared>,
    /// The watch task; aborted when the last clone goes away.
    _watcher: Option<Arc<AbortOnDrop>>,
}

struct Shared {
    namesrv: NameServerClient,
    table: RwLock<RouteTable>,
    /// Bumped on every change of `table`, so waiters wake up without polling.
    changes: watch::Sender<u64>,
    /// A `WatchRoutes` stream is open and has delivered its snapshot.
    watching: AtomicBool,
    /// Every nameserver of the list failed to open a watch at least once since the last
    /// working stream: starting clients stop waiting for a snapshot then.
    all_failed: AtomicBool,
}

impl Routes {
    /// Starts the cache: with `options.watch_routes` it opens the watch and waits up to
    /// `options.route_ready_timeout` for the first snapshot; if none came (or watching is
    /// off) it reads the groups once with `GetClusterInfo`, which also fails fast with
    /// [`ClientError::NameServerUnreachable`] when no nameserver answers.
    pub async fn start(namesrv: NameServerClient) -> Result<Self, ClientError> {
        let options = namesrv.options().clone();
        let (changes, _) = watch::channel(0);
        let shared = Arc::new(Shared {
            namesrv,
            table: RwLock::new(RouteTable::new()),
            changes,
            watching: AtomicBool::new(false),
            all_failed: AtomicBool::new(false),
        });
        let watcher = options.watch_routes.then(|| {
            let task = tokio::spawn(watch_loop(Arc::downgrade(&shared)));
            Arc::new(AbortOnDrop(task))
        });
        let routes = Self {
            shared,
            _watcher: watcher,
        };
        if options.watch_routes {
            let mut rx = routes.subscribe();
            let deadline = Instant::now() + options.route_ready_timeout;
            while !routes.read(RouteTable::has_snapshot)
                && !routes.shared.all_failed.load(Ordering::Relaxed)
            {
                if tokio::time::timeout_at(deadline, rx.changed())
                    .await
                    .is_err()
                {
                    break;
                }
            }
        }
        if !routes.read(RouteTable::has_snapshot) {
            routes.refresh_groups().await?;
        }
        Ok(routes)
    }

    /// The nameserver client the cache reads from.
    pub fn namesrv(&self) -> &NameServerClient {
        &self.shared.namesrv
    }

    /// A receiver that sees a new value whenever the routes change.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.shared.changes.subscribe()
    }

    /// Whether a `WatchRoutes` stream is currently delivering changes.
    pub fn is_watching(&self) -> bool {
        self.shared.watching.load(Ordering::Relaxed)
    }

    /// Reads the table under its lock.
    pub fn read<R>(&self, f: impl FnOnce(&RouteTable) -> R) -> R {
        f(&self.shared.table.read().unwrap_or_else(|p| p.into_inner()))
    }

    /// Changes the table under its lock and wakes waiters if `f` says it changed.
    fn update(&self, f: impl FnOnce(&mut RouteTable) -> bool) -> bool {
        let changed = f(&mut self.shared.table.write().unwrap_or_else(|p| p.into_inner()));
        if changed {
            self.shared.changes.send_modify(|v| *v += 1);
        }
        changed
    }

    /// Client address of a group's leader, as far as the cache knows.
    pub fn leader_addr(&self, broker_name: &str) -> Option<String> {
        self.read(|t| t.leader_addr(broker_name).map(str::to_owned))
    }

    /// The topic's route from the cache, without asking anyone.
    pub fn cached_topic_route(&self, topic: &str) -> Option<TopicRoute> {
        self.read(|t| t.topic_route(topic))
    }

    /// The topic's route: from the cache, else asked with `QueryRoute`. `None` when no live
    /// broker hosts the topic.
    pub async fn topic_route(&self, topic: &str) -> Result<Option<TopicRoute>, ClientError> {
        match self.cached_topic_route(topic) {
            Some(route) => Ok(Some(route)),
            None => self.refresh_topic(topic).await,
        }
    }

    /// Asks a nameserver for `topic`'s route and merges the answer into the cache.
    pub async fn refresh_topic(&self, topic: &str) -> Result<Option<TopicRoute>, ClientError> {
        match self.shared.namesrv.query_route(topic).await? {
            Some(response) => {
                self.update(|t| t.merge_query(&response));
                Ok(self.cached_topic_route(topic))
            }
            None => Ok(None),
        }
    }

    /// Reads every group with `GetClusterInfo` and merges them into the cache.
    pub async fn refresh_groups(&self) -> Result<(), ClientError> {
        let clusters = self.shared.namesrv.cluster_info().await?;
        self.update(|t| t.merge_groups(clusters.into_iter().flat_map(|c| c.groups)));
        Ok(())
    }

    /// Records a `NOT_LEADER` hint; returns whether it moved the group's leader.
    pub fn note_leader(&self, hint: &LeaderHint) -> bool {
        self.update(|t| t.note_leader(hint))
    }

    /// Waits until group `broker_name` has a leader other than `old` (any leader when
    /// `old` is `None`), or until `deadline`. Returns the leader's address, or `None` on
    /// timeout. Woken by route changes; while no watch stream is open it re-reads the
    /// groups itself every half second.
    pub async fn wait_leader_change(
        &self,
        broker_name: &str,
        old: Option<&str>,
        deadline: Instant,
    ) -> Option<String> {
        let mut rx = self.subscribe();
        loop {
            if let Some(leader) = self.leader_addr(broker_name) {
                if Some(leader.as_str()) != old {
                    return Some(leader);
                }
            }
            let wake = if self.is_watching() {
                deadline
            } else {
                deadline.min(Instant::now() + UNWATCHED_REFRESH)
            };
            match tokio::time::timeout_at(wake, rx.changed()).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) => return None,
                Err(_) if Instant::now() >= deadline => return None,
                Err(_) => {
                    if let Err(e) = self.refresh_groups().await {
                        tracing::debug!(error = %e, "route refresh while the watch is down failed");
                    }
                }
            }
        }
    }
}

/// Follows `WatchRoutes` for as long as the cache exists, moving along the nameserver list
/// whenever a stream cannot be opened or breaks.
async fn watch_loop(shared: std::sync::Weak<Shared>) {
    let mut attempt = 0usize;
    let mut failures_in_a_row = 0usize;
    let mut backoff = Duration::from_millis(100);
    loop {
        let Some(routes) = shared.upgrade() else {
            return;
        };
        let namesrv = routes.namesrv.clone();
        let n = namesrv.list().addrs().len();
        let (addr, mut client) = namesrv.nth(attempt);
        let addr = addr.to_owned();
        drop(routes);

        let opened = tokio::time::timeout(
            namesrv.options().request_timeout,
            client.watch_routes(WatchRoutesRequest {}),
        )
        .await;
        let mut delivered = false;
        match opened {
            Ok(Ok(response)) => {
                let mut stream = response.into_inner();
                let mut expiry = tokio::time::interval(Duration::from_secs(1));
                loop {
                    let next = tokio::select! {
                        next = stream.next() => next,
                        _ = expiry.tick() => {
                            let Some(shared) = shared.upgrade() else {
                                return;
                            };
                            let expired = shared
                                .table
                                .write()
                                .unwrap_or_else(|p| p.into_inner())
                                .expire(std::time::Instant::now());
                            if expired {
                                shared.changes.send_modify(|v| *v += 1);
                            }
                            continue;
                        }
                    };
                    let event = match next {
                        Some(Ok(event)) => event,
                        Some(Err(status)) => {
                            tracing::info!(nameserver = %addr, error = %ClientError::from_status(&addr, &status), "route watch broke");
                            break;
                        }
                        None => {
                            tracing::info!(nameserver = %addr, "route watch ended");
                            break;
                        }
                    };
                    let Some(shared) = shared.upgrade() else {
                        return;
                    };
                    let applied = {
                        let mut table = shared.table.write().unwrap_or_else(|p| p.into_inner());
                        table.apply(&event, std::time::Instant::now())
                    };
                    match applied {
                        Applied::Changed => {
                            if !delivered {
                                delivered = true;
                                namesrv.prefer(attempt);
                                attempt = 0;
                                shared.watching.store(true, Ordering::Relaxed);
                                shared.all_failed.store(false, Ordering::Relaxed);
                                tracing::debug!(nameserver = %addr, "watching routes");
                            }
                            shared.changes.send_modify(|v| *v += 1);
                        }
                        Applied::Stale => {}
                        Applied::NeedsResync(why) => {
                            tracing::warn!(nameserver = %addr, "route watch out of step ({why}); reconnecting");
                            break;
                        }
                    }
                }
            }
            Ok(Err(status)) => {
                tracing::debug!(nameserver = %addr, error = %ClientError::from_status(&addr, &status), "cannot watch routes");
            }
            Err(_) => tracing::debug!(nameserver = %addr, "WatchRoutes did not open in time"),
        }

        if delivered {
            // The stream worked until now: go straight to the next nameserver.
            failures_in_a_row = 0;
            backoff = Duration::from_millis(100);
            attempt = 1;
        } else {
            attempt += 1;
            failures_in_a_row += 1;
        }
        if let Some(shared) = shared.upgrade() {
            shared.watching.store(false, Ordering::Relaxed);
            if failures_in_a_row >= n {
                shared.all_failed.store(true, Ordering::Relaxed);
            }
            // Waiters re-check and fall back to unary refreshes while the watch is down.
            shared.changes.send_modify(|v| *v += 1);
        }
        if delivered {
            continue;
        }
        if failures_in_a_row.is_multiple_of(n) {
            // Every nameserver failed once: pause before the next round.
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(MAX_RECONNECT_BACKOFF);
        }
    }
}
