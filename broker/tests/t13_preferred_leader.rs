//! `preferredLeaderId`: a group of real processes hands leadership to its preferred replica
//! once that replica has caught up, after forming and again after the replica was killed and
//! restarted, and no acknowledged message is lost on the way.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::{code, pull_all, wait_for, Group};
use proto::v1::{self as pb, ResponseCode};

/// The replica every node names in `preferredLeaderId`.
const PREFERRED: usize = 2;
/// How long the preferred replica may take to lead: the leader hands back after leading
/// ~0.7 s with the replica caught up for 0.5 s, and at most once per 5 s (the stand-in after the
/// kill may have handed back to n2 just before it); the campaign itself takes milliseconds. The
/// rest is slack for a loaded 2-core machine.
const HANDBACK_DEADLINE: Duration = Duration::from_secs(10);
const TOPIC: &str = "PreferredTopic";

/// The leader and term every live replica agrees on right now, if they do.
async fn agreed_leader(group: &Group) -> Option<(usize, u64)> {
    let mut seen = None;
    for i in (0..3).filter(|&i| group.nodes[i].is_running()) {
        let mut c = group.client(i).await;
        let status = tokio::time::timeout(
            Duration::from_millis(500),
            c.broker_status(pb::BrokerStatusRequest {}),
        )
        .await
        .ok()?
        .ok()?
        .into_inner();
        let raft = status.raft?;
        let here = (raft.leader_node_id? as usize, raft.current_term);
        if seen.is_some_and(|s| s != here) {
            return None;
        }
        seen = Some(here);
    }
    seen
}

/// Waits until every live replica agrees that the preferred replica leads, within
/// [`HANDBACK_DEADLINE`] of `since`; prints how long that took after `what` and returns the term.
async fn wait_for_handback(group: &Group, what: &str, since: Instant) -> u64 {
    let term = wait_for(
        &format!("n{PREFERRED} to lead after {what}"),
        HANDBACK_DEADLINE.saturating_sub(since.elapsed()),
        || async {
            agreed_leader(group)
                .await
                .and_then(|(leader, term)| (leader == PREFERRED).then_some(term))
        },
    )
    .await;
    eprintln!(
        "n{PREFERRED} leads term {term} {:?} after {what}",
        since.elapsed()
    );
    term
}

/// Sends `seq-N` to queue 0 of [`TOPIC`] through whichever replica leads, following
/// NOT_LEADER and retrying with the same UNIQ_KEY (stored once however often it is retried);
/// returns the queue offset it was acknowledged at.
async fn send_acked(group: &Group, seq: u64) -> u64 {
    let mut message = common::message(TOPIC, 0, format!("seq-{seq}"));
    message
        .properties
        .insert("UNIQ_KEY".into(), format!("{TOPIC}-{seq}"));
    let req = pb::SendMessageRequest {
        messages: vec![message],
        producer_group: "p".into(),
    };
    wait_for(
        &format!("seq {seq} acknowledged"),
        Duration::from_secs(20),
        || {
            let req = req.clone();
            async move {
                let (leader, _) = agreed_leader(group).await?;
                let mut client = group.client(leader).await;
                let resp = tokio::time::timeout(Duration::from_secs(2), client.send_message(req))
                    .await
                    .ok()?
                    .ok()?
                    .into_inner();
                (code(&resp.status) == ResponseCode::Ok).then(|| resp.results[0].queue_offset)
            }
        },
    )
    .await
}

/// Sends the next `count` sequence numbers one at a time, recording each acknowledged offset.
async fn send_more(group: &Group, acked: &mut BTreeMap<u64, u64>, count: u64) {
    let from = acked.len() as u64;
    for seq in from..from + count {
        acked.insert(seq, send_acked(group, seq).await);
    }
}

/// Every acknowledged message is on replica `node` exactly once, at its acknowledged offset,
/// and nothing else is there.
async fn verify(group: &Group, node: usize, acked: &BTreeMap<u64, u64>) {
    let client = group.client(node).await;
    let messages = wait_for(
        &format!("n{node} has every acked message"),
        Duration::from_secs(20),
        || {
            let mut c = client.clone();
            async move {
                let got = pull_all(&mut c, TOPIC, 0, 0).await;
                (got.len() >= acked.len()).then_some(got)
            }
        },
    )
    .await;
    let on_node: BTreeMap<u64, u64> = messages
        .iter()
        .map(|m| {
            let body = std::str::from_utf8(&m.body).expect("utf-8 body");
            let seq = body
                .strip_prefix("seq-")
                .and_then(|s| s.parse().ok())
                .unwrap_or_else(|| panic!("unexpected message {body:?} on n{node}"));
            (seq, m.queue_offset)
        })
        .collect();
    assert_eq!(
        on_node.len(),
        messages.len(),
        "a message appears twice on n{node}"
    );
    assert_eq!(
        &on_node, acked,
        "n{node} differs from what was acknowledged"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leadership_returns_to_the_preferred_replica_and_no_acked_message_is_lost() {
    let mut group = Group::start(&["preferredLeaderId=n2", "brokerRole=SYNC_MASTER"]);
    let mut acked = BTreeMap::new();

    // (a) n0 founds the group and usually leads first; leadership then moves to n2.
    let (first, first_term) = wait_for("a leader", Duration::from_secs(20), || {
        agreed_leader(&group)
    })
    .await;
    eprintln!("formed with n{first} leading term {first_term}");
    wait_for_handback(&group, "forming", Instant::now()).await;
    send_more(&group, &mut acked, 20).await;

    // (b) kill -9 the preferred leader: another replica leads and sends keep working.
    group.nodes[PREFERRED].kill9();
    let killed = Instant::now();
    let (stand_in, stand_in_term) = wait_for("a new leader", Duration::from_secs(20), || async {
        agreed_leader(&group)
            .await
            .filter(|(leader, _)| *leader != PREFERRED)
    })
    .await;
    eprintln!(
        "n{stand_in} leads term {stand_in_term} {:?} after the kill",
        killed.elapsed()
    );
    send_more(&group, &mut acked, 30).await;
    verify(&group, stand_in, &acked).await;

    // The preferred replica restarts, catches up and leads again.
    let restarted = Instant::now();
    group.restart(PREFERRED);
    let term = wait_for_handback(&group, "its restart", restarted).await;
    send_more(&group, &mut acked, 20).await;

    // (c) No acknowledged message was lost, on any replica.
    for node in 0..3 {
        verify(&group, node, &acked).await;
    }
    // And the handback stuck: no election since n2 took over.
    assert_eq!(agreed_leader(&group).await, Some((PREFERRED, term)));
}
