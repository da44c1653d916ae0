//! Consumer group membership, for rebalancing: members heartbeat every broker they read from,
//! and a member silent for longer than `channelExpiredTimeout` leaves its group. Membership
//! lives in memory on each broker (as in RocketMQ): it is soft state rebuilt by the next
//! heartbeats. Silent members are swept at least once per expiry period, so heartbeats under
//! ever new names cannot grow the broker's memory for long.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use proto::v1::{self as pb, ResponseCode, ResponseStatus};

use crate::limits::{check_client_id, check_group_name, Refusal, SUBSCRIPTIONS_MAX};

struct Member {
    subscriptions: Vec<pb::Subscription>,
    message_model: i32,
    last_heartbeat: Instant,
}

/// group → client id → member.
pub struct ConsumerGroups {
    /// How long a member stays without a heartbeat (`channelExpiredTimeout`).
    expiry: Duration,
    groups: Mutex<Groups>,
}

struct Groups {
    by_name: BTreeMap<String, BTreeMap<String, Member>>,
    /// When silent members were last swept from every group.
    swept: Option<Instant>,
}

impl ConsumerGroups {
    /// Members expire after `expiry` without a heartbeat.
    pub fn new(expiry: Duration) -> Self {
        ConsumerGroups {
            expiry,
            groups: Mutex::new(Groups {
                by_name: BTreeMap::new(),
                swept: None,
            }),
        }
    }

    fn check(req: &pb::HeartbeatConsumerRequest) -> Result<(), Refusal> {
        check_group_name("consumer group", &req.consumer_group)?;
        check_client_id(&req.client_id)?;
        if req.subscriptions.len() > SUBSCRIPTIONS_MAX {
            return Err(Refusal::new(format!(
                "{} subscriptions, more than {SUBSCRIPTIONS_MAX}",
                req.subscriptions.len()
            )));
        }
        for sub in &req.subscriptions {
            crate::limits::check_topic_name(&sub.topic)?;
            if sub.tag_expression.len() > crate::limits::PROPERTIES_MAX_BYTES {
                return Err(Refusal::new(format!(
                    "the tag expression for {} is {} bytes, more than {}",
                    sub.topic,
                    sub.tag_expression.len(),
                    crate::limits::PROPERTIES_MAX_BYTES
                )));
            }
        }
        Ok(())
    }

    pub fn heartbeat(
        &self,
        req: pb::HeartbeatConsumerRequest,
        now: Instant,
    ) -> pb::HeartbeatConsumerResponse {
        let status = match Self::check(&req) {
            Err(why) => ResponseStatus::new(ResponseCode::IllegalArgument, why.to_string()),
            Ok(()) => {
                let mut groups = self.groups.lock().unwrap_or_else(|p| p.into_inner());
                if groups
                    .swept
                    .is_none_or(|at| now.saturating_duration_since(at) >= self.expiry)
                {
                    let expiry = self.expiry;
                    groups.by_name.retain(|_, members| {
                        members.retain(|_, m| {
                            now.saturating_duration_since(m.last_heartbeat) < expiry
                        });
                        !members.is_empty()
                    });
                    groups.swept = Some(now);
                }
                groups
                    .by_name
                    .entry(req.consumer_group)
                    .or_default()
                    .insert(
                        req.client_id,
                        Member {
                            subscriptions: req.subscriptions,
                            message_model: req.message_model,
                            last_heartbeat: now,
                        },
                    );
                ResponseStatus::ok()
            }
        };
        pb::HeartbeatConsumerResponse {
            status: Some(status),
            expire_after_ms: self.expiry.as_millis() as u64,
        }
    }

    pub fn unregister(&self, req: pb::UnregisterConsumerRequest) -> pb::UnregisterConsumerResponse {
        let mut groups = self.groups.lock().unwrap_or_else(|p| p.into_inner());
        let removed = groups
            .by_name
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
        let expiry = self.expiry;
        let members = match groups.by_name.get_mut(&req.consumer_group) {
            Some(group) => {
                group.retain(|_, m| now.saturating_duration_since(m.last_heartbeat) < expiry);
                group
                    .iter()
                    .map(|(id, m)| pb::ConsumerMember {
                        client_id: id.clone(),
                        subscriptions: m.subscriptions.clone(),
                        message_model: m.message_model,
                        last_heartbeat_age_ms: now
                            .saturating_duration_since(m.last_heartbeat)
                            .as_millis() as u64,
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
        let expiry = Duration::from_secs(10);
        let g = ConsumerGroups::new(expiry);
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
        assert_eq!(list(t0 + expiry + Duration::from_secs(1)), ["a"]);
        let r = g.unregister(pb::UnregisterConsumerRequest {
            consumer_group: "G".into(),
            client_id: "a".into(),
        });
        assert!(r.status.unwrap().is_ok());
        assert!(list(t0 + Duration::from_secs(7)).is_empty());
        assert!(!g.heartbeat(hb("", "x"), t0).status.unwrap().is_ok());
        assert!(!g.heartbeat(hb("G", ""), t0).status.unwrap().is_ok());
        assert!(!g
            .heartbeat(hb("bad group", "x"), t0)
            .status
            .unwrap()
            .is_ok());
    }

    #[test]
    fn silent_members_of_every_group_are_swept() {
        let expiry = Duration::from_secs(10);
        let g = ConsumerGroups::new(expiry);
        let t0 = Instant::now();
        for i in 0..1000 {
            g.heartbeat(hb(&format!("G{i}"), "c"), t0);
        }
        assert_eq!(g.groups.lock().unwrap().by_name.len(), 1000);
        g.heartbeat(hb("Other", "c"), t0 + expiry + Duration::from_secs(1));
        assert_eq!(
            g.groups.lock().unwrap().by_name.len(),
            1,
            "only the live group stays"
        );
    }
}
