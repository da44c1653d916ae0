//! [`Admin`]: what `mqadmin` reads and changes — clusters, topics, brokers, consumer
//! progress, messages by id. Writes go to every concerned group's leader.

use std::collections::BTreeSet;
use std::time::Duration;

use futures::future::join_all;
use proto::v1::{self as pb, ResponseCode, StoredMessage, TopicConfig};
use proto::OffsetMsgId;

use crate::cluster::{expect_ok, Cluster};
use crate::error::ClientError;
use crate::message::MessageQueue;
use crate::nameserver::{refused, status_code};
use crate::pull_consumer::{PullConsumer, QueueRange};
use crate::transport::ClientOptions;

/// Which groups a topic change applies to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TopicTarget {
    /// Every group of this cluster (`-c CLUSTER`).
    Cluster(String),
    /// The group of the broker at this address (`-b ADDR`); its leader if that broker
    /// is a follower.
    Broker(String),
    /// Every group the nameservers know.
    AllGroups,
}

/// One queue's readable range (`mqadmin topicStatus`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueStatus {
    /// The queue.
    pub queue: MessageQueue,
    /// Its offsets, or why they could not be read.
    pub range: Result<QueueRange, String>,
}

/// A consumer group's progress on one queue (`mqadmin consumerProgress`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueLag {
    /// The queue.
    pub queue: MessageQueue,
    /// Next offset to be written in the queue.
    pub broker_offset: u64,
    /// The group's committed offset (next to consume).
    pub consumer_offset: u64,
    /// Messages not consumed yet: `broker_offset - consumer_offset`.
    pub lag: u64,
    /// When the offset was last committed, ms since the Unix epoch, as the broker reports it;
    /// 0 = unknown.
    pub last_commit_timestamp_ms: i64,
    /// When the last consumed message (the one before `consumer_offset`) was stored, ms since
    /// the Unix epoch: how far consumption has got in time (RocketMQ's `#LastTime`). 0 = the
    /// group consumed nothing there yet, or that message is no longer retained.
    pub last_consumed_store_timestamp_ms: i64,
}

/// A group a topic change was applied to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupChange {
    /// brokerName.
    pub broker_name: String,
    /// Address of the leader that applied it.
    pub addr: String,
}

/// Admin operations on one cluster.
#[derive(Clone)]
pub struct Admin {
    cluster: Cluster,
}

impl Admin {
    /// Connects to the nameservers of `namesrv` for one-shot queries (no route watch).
    pub async fn connect(namesrv: &str) -> Result<Self, ClientError> {
        let options = ClientOptions {
            watch_routes: false,
            ..ClientOptions::default()
        };
        Ok(Self::new(Cluster::connect(namesrv, options).await?))
    }

    /// Admin on an open cluster connection.
    pub fn new(cluster: Cluster) -> Self {
        Self { cluster }
    }

    /// The cluster connection.
    pub fn cluster(&self) -> &Cluster {
        &self.cluster
    }

    /// Every cluster with its groups and members (`clusterList`).
    pub async fn cluster_info(&self) -> Result<Vec<pb::ClusterInfo>, ClientError> {
        self.cluster.namesrv().cluster_info().await
    }

    /// Every topic some live broker hosts, optionally of one cluster only (`topicList`).
    pub async fn topic_list(&self, cluster: Option<&str>) -> Result<Vec<String>, ClientError> {
        self.cluster.namesrv().topic_names(cluster).await
    }

    /// The topic's route as the nameserver has it (`topicRoute`).
    pub async fn topic_route(&self, topic: &str) -> Result<pb::QueryRouteResponse, ClientError> {
        let route = self.cluster.namesrv().query_route(topic).await?;
        let route = route.ok_or_else(|| self.no_route(topic))?;
        Ok(route)
    }

    /// Min and max offset of every readable queue of the topic (`topicStatus`).
    pub async fn topic_status(&self, topic: &str) -> Result<Vec<QueueStatus>, ClientError> {
        let route = self.route(topic).await?;
        let consumer = PullConsumer::new(self.cluster.clone(), "");
        let queues: Vec<MessageQueue> = route
            .groups
            .iter()
            .flat_map(|g| {
                let n = g.read_queue_nums.max(g.write_queue_nums);
                (0..n).map(|q| MessageQueue::new(topic, &g.broker_name, q as i32))
            })
            .collect();
        let ranges = join_all(queues.iter().map(|q| consumer.queue_offsets(q))).await;
        Ok(queues
            .into_iter()
            .zip(ranges)
            .map(|(queue, range)| QueueStatus {
                queue,
                range: range.map_err(|e| e.to_string()),
            })
            .collect())
    }

    /// Creates or updates a topic on every group of `target`, through each group's leader
    /// (`updateTopic`). Fails, naming the groups, if any group refused.
    pub async fn create_or_update_topic(
        &self,
        config: TopicConfig,
        target: &TopicTarget,
    ) -> Result<Vec<GroupChange>, ClientError> {
        if config.topic_name.is_empty() {
            return Err(ClientError::InvalidArgument(
                "the topic name is empty".into(),
            ));
        }
        let groups = self.target_groups(target).await?;
        let request = pb::CreateOrUpdateTopicRequest {
            topic: Some(config),
        };
        self.on_each_leader(&groups, "CreateOrUpdateTopic", |mut c| {
            let request = request.clone();
            async move { c.create_or_update_topic(request).await }
        })
        .await
    }

    /// Deletes a topic from every group hosting it (`deleteTopic`).
    pub async fn delete_topic(&self, topic: &str) -> Result<Vec<GroupChange>, ClientError> {
        let route = self.route(topic).await?;
        let groups: Vec<String> = route.groups.iter().map(|g| g.broker_name.clone()).collect();
        let request = pb::DeleteTopicRequest {
            topic: topic.to_owned(),
        };
        self.on_each_leader(&groups, "DeleteTopic", |mut c| {
            let request = request.clone();
            async move { c.delete_topic(request).await }
        })
        .await
    }

    /// The status of the broker at `addr` (its failure is the call's failure), or of every
    /// member of every group, each with its address and its status or why it did not
    /// answer (`brokerStatus`).
    pub async fn broker_status(
        &self,
        addr: Option<&str>,
    ) -> Result<Vec<(String, Result<pb::BrokerStatusResponse, String>)>, ClientError> {
        if let Some(addr) = addr {
            let reply = self.status_of(addr).await?;
            return Ok(vec![(addr.to_owned(), Ok(reply))]);
        }
        self.cluster.routes().refresh_groups().await?;
        let addrs: BTreeSet<String> = self.cluster.routes().read(|t| {
            t.groups()
                .flat_map(|g| g.members.iter().filter(|m| !m.witness))
                .map(|m| m.broker_addr.clone())
                .filter(|a| !a.is_empty())
                .collect()
        });
        if addrs.is_empty() {
            return Err(ClientError::NoBrokers);
        }
        let replies = join_all(addrs.iter().map(|a| self.status_of(a))).await;
        Ok(addrs
            .into_iter()
            .zip(replies)
            .map(|(a, r)| (a, r.map_err(|e| e.to_string())))
            .collect())
    }

    async fn status_of(&self, addr: &str) -> Result<pb::BrokerStatusResponse, ClientError> {
        let reply = self
            .cluster
            .call_addr(addr, "BrokerStatus", |mut c| async move {
                c.broker_status(pb::BrokerStatusRequest {}).await
            })
            .await?;
        expect_ok(addr, reply)
    }

    /// A consumer group's committed offset and lag on every queue, optionally of one topic
    /// (`consumerProgress`). Fails when no group leader has progress for it.
    pub async fn consumer_progress(
        &self,
        group: &str,
        topic: Option<&str>,
    ) -> Result<Vec<QueueLag>, ClientError> {
        let groups: Vec<String> = match topic {
            Some(t) => self
                .route(t)
                .await?
                .groups
                .iter()
                .map(|g| g.broker_name.clone())
                .collect(),
            None => {
                self.cluster.routes().refresh_groups().await?;
                self.cluster
                    .routes()
                    .read(|t| t.groups().map(|g| g.broker_name.clone()).collect())
            }
        };
        let request = pb::GetConsumeStatsRequest {
            consumer_group: group.to_owned(),
            topic: topic.unwrap_or_default().to_owned(),
        };
        let timeout = self.cluster.options().request_timeout;
        let replies = join_all(groups.iter().map(|g| {
            let request = request.clone();
            async move {
                let (addr, reply) = self
                    .cluster
                    .on_leader(g, "GetConsumeStats", timeout, |mut c| {
                        let request = request.clone();
                        async move { c.get_consume_stats(request).await }
                    })
                    .await?;
                expect_ok(&addr, reply)
            }
        }))
        .await;
        let mut rows = Vec::new();
        for (broker_name, reply) in groups.iter().zip(replies) {
            for s in reply?.stats {
                if s.consumer_group != group {
                    continue;
                }
                rows.push(QueueLag {
                    queue: MessageQueue::new(s.topic, broker_name, s.queue_id),
                    broker_offset: s.broker_offset,
                    consumer_offset: s.consumer_offset,
                    lag: s.broker_offset.saturating_sub(s.consumer_offset),
                    last_commit_timestamp_ms: s.last_commit_timestamp_ms,
                    last_consumed_store_timestamp_ms: 0,
                });
            }
        }
        let reader = PullConsumer::new(self.cluster.clone(), group);
        let stored = join_all(rows.iter().map(|r| last_consumed_store_time(&reader, r))).await;
        for (row, at) in rows.iter_mut().zip(stored) {
            row.last_consumed_store_timestamp_ms = at;
        }
        if rows.is_empty() {
            return Err(ClientError::Refused {
                addr: self.cluster.namesrv().list().to_string(),
                code: ResponseCode::NotFound,
                remark: format!(
                    "consumer group {group} has no committed offset{}",
                    topic.map(|t| format!(" on topic {t}")).unwrap_or_default()
                ),
            });
        }
        rows.sort_by(|a, b| a.queue.cmp(&b.queue));
        Ok(rows)
    }

    /// The message with broker-assigned id `msg_id` (`queryMsgById`): asked of the leader
    /// of the group whose member stored it, or of the storing address itself.
    pub async fn query_msg_by_id(&self, msg_id: &str) -> Result<StoredMessage, ClientError> {
        let id: OffsetMsgId = msg_id.trim().parse()?;
        let store_addr = id.store_addr.to_string();
        let request = pb::QueryMessageByIdRequest {
            msg_id: msg_id.trim().to_owned(),
        };
        if let Err(e) = self.cluster.routes().refresh_groups().await {
            tracing::debug!(error = %e, "cannot refresh groups; asking the storing broker");
        }
        let group = self
            .cluster
            .routes()
            .read(|t| t.group_of_member(&store_addr).map(str::to_owned));
        let (addr, reply) = match group {
            Some(g) => {
                let timeout = self.cluster.options().request_timeout;
                self.cluster
                    .on_leader(&g, "QueryMessageById", timeout, |mut c| {
                        let request = request.clone();
                        async move { c.query_message_by_id(request).await }
                    })
                    .await?
            }
            None => {
                let reply = self
                    .cluster
                    .call_addr(&store_addr, "QueryMessageById", |mut c| async move {
                        c.query_message_by_id(request).await
                    })
                    .await?;
                (store_addr, reply)
            }
        };
        match status_code(&reply.status) {
            ResponseCode::Ok => reply.message.ok_or_else(|| {
                ClientError::Internal(format!("{addr} answered OK without the message"))
            }),
            code => Err(refused(&addr, code, &reply.status)),
        }
    }

    /// The topic's route (fresh from the nameserver), or TOPIC_NOT_EXIST.
    async fn route(&self, topic: &str) -> Result<crate::route_table::TopicRoute, ClientError> {
        self.cluster
            .routes()
            .refresh_topic(topic)
            .await?
            .ok_or_else(|| self.no_route(topic))
    }

    fn no_route(&self, topic: &str) -> ClientError {
        ClientError::TopicNotExist {
            topic: topic.to_owned(),
            remark: format!(
                "no route on the nameservers ({})",
                self.cluster.namesrv().list()
            ),
        }
    }

    /// brokerNames of the groups a topic change targets.
    async fn target_groups(&self, target: &TopicTarget) -> Result<Vec<String>, ClientError> {
        let routes = self.cluster.routes();
        routes.refresh_groups().await?;
        let groups: Vec<String> = match target {
            TopicTarget::AllGroups => {
                routes.read(|t| t.groups().map(|g| g.broker_name.clone()).collect())
            }
            TopicTarget::Cluster(name) => {
                let (groups, known): (Vec<String>, BTreeSet<String>) = routes.read(|t| {
                    (
                        t.groups()
                            .filter(|g| g.cluster_name == *name)
                            .map(|g| g.broker_name.clone())
                            .collect(),
                        t.groups().map(|g| g.cluster_name.clone()).collect(),
                    )
                });
                if groups.is_empty() {
                    return Err(ClientError::InvalidArgument(format!(
                        "cluster {name} is unknown to the nameservers; known: {}",
                        known.into_iter().collect::<Vec<_>>().join(", ")
                    )));
                }
                groups
            }
            TopicTarget::Broker(addr) => {
                let group = routes.read(|t| t.group_of_member(addr).map(str::to_owned));
                vec![group.ok_or_else(|| {
                    ClientError::InvalidArgument(format!("no registered broker has address {addr}"))
                })?]
            }
        };
        if groups.is_empty() {
            return Err(ClientError::NoBrokers);
        }
        Ok(groups)
    }

    /// Runs a leader-only admin request on each group; fails naming every group that
    /// refused.
    async fn on_each_leader<T, F, Fut>(
        &self,
        groups: &[String],
        what: &str,
        f: F,
    ) -> Result<Vec<GroupChange>, ClientError>
    where
        T: crate::cluster::Reply,
        F: Fn(proto::BrokerServiceClient<tonic::transport::Channel>) -> Fut + Clone,
        Fut: std::future::Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    {
        let timeout = self.cluster.options().request_timeout;
        let results = join_all(groups.iter().map(|g| {
            let f = f.clone();
            async move {
                let (addr, reply) = self.cluster.on_leader(g, what, timeout, f).await?;
                expect_ok(&addr, reply).map(|_| addr)
            }
        }))
        .await;
        let mut done = Vec::new();
        let mut failed = Vec::new();
        for (group, result) in groups.iter().zip(results) {
            match result {
                Ok(addr) => done.push(GroupChange {
                    broker_name: group.clone(),
                    addr,
                }),
                Err(e) => failed.push(format!("{group}: {e}")),
            }
        }
        if failed.is_empty() {
            Ok(done)
        } else {
            Err(ClientError::GroupsFailed {
                what: what.to_owned(),
                failed: failed.len(),
                total: groups.len(),
                detail: failed.join("; "),
            })
        }
    }
}
/// When the message before `lag.consumer_offset` was stored, read back from its queue; 0 when
/// there is none or it cannot be read (the column is informational: it never fails the
/// command).
async fn last_consumed_store_time(reader: &PullConsumer, lag: &QueueLag) -> i64 {
    let Some(offset) = lag.consumer_offset.checked_sub(1) else {
        return 0;
    };
    match reader.pull(&lag.queue, offset, 1, Duration::ZERO).await {
        Ok(pulled) => pulled
            .messages
            .first()
            .filter(|m| m.queue_offset == offset)
            .map_or(0, |m| m.store_timestamp_ms),
        Err(e) => {
            tracing::debug!(queue = %lag.queue, offset, error = %e, "last consumed message unreadable");
            0
        }
    }
}
