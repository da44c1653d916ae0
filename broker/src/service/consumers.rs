//! Consumer group membership, for rebalancing: members heartbeat every broker they read from,
//! and a member silent for longer than [`MEMBER_EXPIRY`] leaves its group. Membership lives
//! in memory on each broker (as in RocketMQ): it is soft state rebuilt by the next heartbeats.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use proto::v1::{self as pb, ResponseCode, ResponseStatus};

/// How long a member stays without a heartbeat (clients heartbeat every few seconds).
pub const MEMBER_EXPIRY: Duration = Duration::from_secs(10);

struct Member {
    subscriptions: Vec<pb::Subscription>,
    message_model: i32,
    last_heartbeat: Instant,
}

/// group → client id → member.
#[derive(Default)]
pub struct ConsumerGroups {
    groups: Mutex<BTreeMap<String, BTreeMap<String, Member>>>,
}

impl ConsumerGroups {
    pub fn heartbeat(
        &self,
        req: pb::HeartbeatConsumerRequest,
        now: Instant,
    ) -> pb::HeartbeatConsumerResponse {
        let status = if req.consumer_group.is_empty() || req.client_id.is_empty() {
            ResponseStatus::new(
                ResponseCode::IllegalArgument,
                "consumer_group and client_id must be set",
            )
        } else {
            let mut groups = self.groups.lock().unwrap_or_else(|p| p.into_inner());
            groups.entry(req.consumer_group).or_default().insert(
                req.client_id,
                Member {
                    subscriptions: req.subscriptions,
                    message_model: req.message_model,
                    last_heartbeat: now,
                },
            );
            ResponseStatus::ok()
        };
        pb::HeartbeatConsumerResponse {
            status: Some(status),
            expire_after_ms: MEMBER_EXPIRY.as_millis() as u64,
        }
    }

    pub fn unregister(&self, req: pb::UnregisterConsumerRequest) -> pb::UnregisterConsumerResponse {
        let mut groups = self.groups.lock().unwrap_or_else(|p| p.into_inner());
        let removed = groups
            .get_mut(&req.consumer_group)
            .and_then(|g| g.remove(&req.client_id))
            .is_some();
        let status = if removed {
            ResponseStatus::ok()
        } else {
            ResponseStatus::new(
                ResponseCode::NotFound,
                format!(
                    "{} is not a member of {}",
                    req.client_id, req.consumer_group
                ),
            )
        };
        pb::UnregisterConsumerResponse {
            status: Some(status),
        }
    }

    /// Live members sorted by client id (every member computes the same assignment from it).
    pub fn members(
        &self,
        req: pb::ListConsumerGroupMembersRequest,
        now: Instant,
    ) -> pb::ListConsumerGroupMembersResponse {
        let mut groups = self.groups.lock().unwrap_or_else(|p| p.into_inner());
        let members = match groups.get_mut(&req.consumer_group) {
            Some(group) => {
                group.retain(|_, m| now.duration_since(m.last_heartbeat) < MEMBER_EXPIRY);
                group
                    .iter()
                    .map(|(id, m)| pb::ConsumerMember {
                        client_id: id.clone(),
                        subscriptions: m.subscriptions.clone(),
                        message_model: m.message_model,
                        last_heartbeat_age_ms: now.duration_since(m.last_heartbeat).as_millis()
                            as u64,
                    })
                    .collect()
            }
            None => Vec::new(),
        };
        pb::ListConsumerGroupMembersResponse {
            status: Some(ResponseStatus::ok()),
            members,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hb(group: &str, id: &str) -> pb::HeartbeatConsumerRequest {
        pb::HeartbeatConsumerRequest {
            consumer_group: group.into(),
            client_id: id.into(),
            ..Default::default()
        }
    }

    #[test]
    fn members_join_expire_and_leave() {
        let g = ConsumerGroups::default();
        let t0 = Instant::now();
        g.heartbeat(hb("G", "b"), t0);
        g.heartbeat(hb("G", "a"), t0 + Duration::from_secs(5));
        let list = |now| {
            g.members(
                pb::ListConsumerGroupMembersRequest {
                    consumer_group: "G".into(),
                },
                now,
            )
            .members
            .into_iter()
            .map(|m| m.client_id)
            .collect::<Vec<_>>()
        };
        assert_eq!(list(t0 + Duration::from_secs(6)), ["a", "b"]);
        assert_eq!(list(t0 + MEMBER_EXPIRY + Duration::from_secs(1)), ["a"]);
        let r = g.unregister(pb::UnregisterConsumerRequest {
            consumer_group: "G".into(),
            client_id: "a".into(),
        });
        assert!(r.status.unwrap().is_ok());
        assert!(list(t0 + Duration::from_secs(7)).is_empty());
        assert!(!g.heartbeat(hb("", "x"), t0).status.unwrap().is_ok());
    }
}
