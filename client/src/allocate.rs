//! Queue allocation among the members of a consumer group: RocketMQ's
//! `AllocateMessageQueueAveragely`. Every member sorts the same queues and the same client
//! ids, so each computes its own share and the shares never overlap.

use crate::message::MessageQueue;

/// The queues member `me` owns when `queues` are shared among `members` in contiguous
/// blocks: the first `queues % members` members get one extra queue. Inputs need not be
/// sorted or deduplicated; a member not in `members` owns nothing.
pub fn allocate_averagely(
    queues: &[MessageQueue],
    members: &[String],
    me: &str,
) -> Vec<MessageQueue> {
    let mut queues = queues.to_vec();
    queues.sort();
    queues.dedup();
    let mut members: Vec<&str> = members.iter().map(String::as_str).collect();
    members.sort_unstable();
    members.dedup();
    let Some(index) = members.iter().position(|m| *m == me) else {
        return Vec::new();
    };
    if queues.is_empty() {
        return Vec::new();
    }
    let (n_queues, n_members) = (queues.len(), members.len());
    let rem = n_queues % n_members;
    let average = if n_queues <= n_members {
        1
    } else if rem > 0 && index < rem {
        n_queues / n_members + 1
    } else {
        n_queues / n_members
    };
    let start = if rem > 0 && index < rem {
        index * average
    } else {
        index * average + rem
    };
    let range = average.min(n_queues.saturating_sub(start));
    (0..range)
        .map(|i| queues[(start + i) % n_queues].clone())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn queues(groups: &[(&str, i32)]) -> Vec<MessageQueue> {
        groups
            .iter()
            .flat_map(|(g, n)| (0..*n).map(move |q| MessageQueue::new("T", *g, q)))
            .collect()
    }

    fn ids(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("c{i}")).collect()
    }

    fn names(qs: &[MessageQueue]) -> Vec<String> {
        qs.iter()
            .map(|q| format!("{}{}", q.broker_name, q.queue_id))
            .collect()
    }

    #[test]
    fn matches_rocketmq_for_uneven_shares() {
        // 8 queues over 3 members: 3, 3, 2, contiguous, in sorted order.
        let qs = queues(&[("b", 4), ("a", 4)]);
        let members = ids(3);
        assert_eq!(
            names(&allocate_averagely(&qs, &members, "c0")),
            ["a0", "a1", "a2"]
        );
        assert_eq!(
            names(&allocate_averagely(&qs, &members, "c1")),
            ["a3", "b0", "b1"]
        );
        assert_eq!(
            names(&allocate_averagely(&qs, &members, "c2")),
            ["b2", "b3"]
        );
    }

    #[test]
    fn every_queue_has_exactly_one_owner() {
        for n_queues in 0..12 {
            for n_members in 1..7 {
                let qs = queues(&[("a", n_queues)]);
                let members = ids(n_members);
                let mut owned: Vec<MessageQueue> = members
                    .iter()
                    .flat_map(|m| allocate_averagely(&qs, &members, m))
                    .collect();
                owned.sort();
                assert_eq!(owned, qs, "{n_queues} queues, {n_members} members");
            }
        }
    }

    #[test]
    fn more_members_than_queues_leaves_the_last_idle() {
        let qs = queues(&[("a", 2)]);
        let members = ids(3);
        assert_eq!(allocate_averagely(&qs, &members, "c0").len(), 1);
        assert_eq!(allocate_averagely(&qs, &members, "c1").len(), 1);
        assert!(allocate_averagely(&qs, &members, "c2").is_empty());
    }

    #[test]
    fn unknown_member_gets_nothing_and_order_does_not_matter() {
        let qs = queues(&[("a", 4)]);
        assert!(allocate_averagely(&qs, &ids(2), "stranger").is_empty());
        let shuffled = vec!["c1".to_string(), "c0".to_string(), "c1".to_string()];
        assert_eq!(
            allocate_averagely(&qs, &shuffled, "c0"),
            allocate_averagely(&qs, &ids(2), "c0")
        );
    }
}
