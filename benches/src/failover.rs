//! Failover: a producer sends one message at a time while, round after round, the leader is
//! killed (`kill -9` of its process). Each round measures the time from the kill to the first
//! send acknowledged by the new leader, as the producer sees it (it learns the new leader
//! from NOT_LEADER hints or by asking the survivors' `BrokerStatus`); then the killed replica
//! restarts and catches up before the next round. At the end the whole queue is read back
//! from the leader: every acknowledged message must be there exactly once.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Result};
use proto::v1::{self as pb, ResponseCode};
use tokio::sync::{mpsc, watch};

use crate::group::BrokerGroup;
use crate::messages::{MessageSource, UNIQ_KEY};
use crate::report::{spawn_progress, Counters};
use crate::route::{connect, LeaderRoute};

/// The queue the producer writes to and the read-back reads.
const QUEUE: i32 = 0;
/// How long the producer retries one message before giving up on it.
const SEND_GIVE_UP: Duration = Duration::from_secs(30);
/// A round without an ack from a new leader within this long is a failed round.
const FAILOVER_DEADLINE: Duration = Duration::from_secs(30);
/// How long the producer runs against a leader before it is killed.
const STEADY: Duration = Duration::from_millis(500);
/// Deadline for the restarted replica to catch up.
const CATCH_UP: Duration = Duration::from_secs(120);

/// What the failover scenario measured.
pub struct FailoverReport {
    pub kills: usize,
    /// Kill to first ack on the new leader, per round that got one.
    pub outages: Vec<Duration>,
    /// Rounds in which no new leader acked within [`FAILOVER_DEADLINE`].
    pub timeouts: usize,
    /// Messages acknowledged by the producer.
    pub acked: usize,
    /// Acknowledged messages missing from the read-back.
    pub lost_acked: usize,
    /// Extra copies in the read-back (a message stored twice counts once here).
    pub duplicates: usize,
    /// Acknowledged messages found at another queue offset than their ack said.
    pub moved: usize,
}

/// One acknowledged message, as the producer saw it.
struct Ack {
    seq: u64,
    queue_offset: Option<u64>,
    leader: Arc<str>,
    at: Instant,
}

/// Sends message after message, one at a time, until `stop`; reports every ack.
async fn produce(
    route: Arc<LeaderRoute>,
    source: MessageSource,
    acks: mpsc::UnboundedSender<Ack>,
    counters: Arc<Counters>,
    stop: watch::Receiver<bool>,
) {
    let mut seq = 0;
    while !*stop.borrow() {
        let req = source.request(QUEUE, seq, 1);
        match route.send(0, &req, Instant::now() + SEND_GIVE_UP).await {
            Ok(acked) => {
                counters.ack(1);
                let ack = Ack {
                    seq,
                    queue_offset: acked.response.results.first().map(|r| r.queue_offset),
                    leader: acked.leader,
                    at: acked.at,
                };
                if acks.send(ack).is_err() {
                    return;
                }
            }
            Err(e) => {
                counters.fail(1);
                tracing::warn!("failover producer gave up on seq {seq}: {e:#}");
            }
        }
        seq += 1;
    }
}

/// Records acks as they arrive, until one satisfies `wanted` (returned) or `timeout` passes.
async fn wait_for_ack(
    acks: &mut mpsc::UnboundedReceiver<Ack>,
    acked: &mut BTreeMap<u64, Option<u64>>,
    timeout: Duration,
    wanted: impl Fn(&Ack) -> bool,
) -> Option<(Arc<str>, Instant)> {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let ack = tokio::time::timeout_at(deadline, acks.recv())
            .await
            .ok()??;
        acked.insert(ack.seq, ack.queue_offset);
        if wanted(&ack) {
            return Some((ack.leader, ack.at));
        }
    }
}

/// Runs `rounds` kill rounds on `group`, then checks the queue.
pub async fn run(
    group: &mut BrokerGroup,
    route: Arc<LeaderRoute>,
    source: MessageSource,
    rounds: usize,
) -> Result<FailoverReport> {
    let counters = Arc::new(Counters::default());
    let progress = spawn_progress("failover", counters.clone(), Instant::now());
    let (ack_tx, mut acks) = mpsc::unbounded_channel();
    let (stop_tx, stop) = watch::channel(false);
    let producer = tokio::spawn(produce(
        route.clone(),
        source.clone(),
        ack_tx,
        counters,
        stop,
    ));

    let mut acked = BTreeMap::new();
    let mut report = FailoverReport {
        kills: 0,
        outages: Vec::new(),
        timeouts: 0,
        acked: 0,
        lost_acked: 0,
        duplicates: 0,
        moved: 0,
    };
    let rounds_result = async {
        for round in 1..=rounds {
            let leader = group.leader(Duration::from_secs(30)).await?;
            let leader_addr = group.client_addr(leader);
            // The producer is sending to this leader.
            wait_for_ack(&mut acks, &mut acked, FAILOVER_DEADLINE, |a| {
                *a.leader == *leader_addr
            })
            .await
            .ok_or_else(|| anyhow!("round {round}: the producer gets no ack from n{leader}"))?;
            let steady_until = tokio::time::Instant::now() + STEADY;
            while tokio::time::timeout_at(steady_until, acks.recv())
                .await
                .ok()
                .flatten()
                .map(|a| acked.insert(a.seq, a.queue_offset))
                .is_some()
            {}

            let killed_at = group.kill9(leader).await?;
            report.kills += 1;
            let first = wait_for_ack(&mut acks, &mut acked, FAILOVER_DEADLINE, |a| {
                a.at > killed_at && *a.leader != *leader_addr
            })
            .await;
            match first {
                Some((new_leader, at)) => {
                    let outage = at - killed_at;
                    let by = group
                        .client_addrs()
                        .iter()
                        .position(|a| **a == *new_leader)
                        .map_or_else(|| new_leader.to_string(), |i| format!("n{i}"));
                    eprintln!(
                        "[failover] round {round}: killed n{leader}; first ack from {by} after \
                         {:.1} ms",
                        outage.as_secs_f64() * 1e3
                    );
                    report.outages.push(outage);
                }
                None => {
                    eprintln!(
                        "[failover] round {round}: killed n{leader}; no ack from another \
                         replica within {FAILOVER_DEADLINE:?}"
                    );
                    report.timeouts += 1;
                }
            }
            group.restart(leader).await?;
            let new_leader = group.leader(Duration::from_secs(30)).await?;
            group.wait_caught_up(leader, new_leader, CATCH_UP).await?;
        }
        anyhow::Ok(())
    }
    .await;

    let _ = stop_tx.send(true);
    let producer_result = producer.await;
    while let Ok(a) = acks.try_recv() {
        acked.insert(a.seq, a.queue_offset);
    }
    progress.abort();
    rounds_result?;
    producer_result.map_err(|e| anyhow!("the failover producer died: {e}"))?;

    report.acked = acked.len();
    let leader = group.leader(Duration::from_secs(30)).await?;
    let stored = read_queue(&group.client_addr(leader), &source, &acked).await?;
    for (seq, offset) in &acked {
        match stored.get(seq) {
            None => report.lost_acked += 1,
            Some(found) => {
                if offset.is_some_and(|o| !found.contains(&o)) {
                    report.moved += 1;
                }
            }
        }
    }
    report.duplicates = stored.values().map(|o| o.len() - 1).sum();
    Ok(report)
}

/// Reads queue [`QUEUE`] of the source's topic from `addr` from offset 0 to its end, once
/// it covers the highest acknowledged offset; the queue offsets at which each of the
/// source's sequence numbers is stored.
async fn read_queue(
    addr: &str,
    source: &MessageSource,
    acked: &BTreeMap<u64, Option<u64>>,
) -> Result<HashMap<u64, Vec<u64>>> {
    let mut client = connect(addr)?;
    let topic = source.message(QUEUE, 0).topic;
    let highest = acked.values().flatten().max().copied();
    let deadline = Instant::now() + Duration::from_secs(30);
    // The leader applies what it commits; wait until everything acked is readable.
    loop {
        let resp = client
            .get_queue_offsets(pb::GetQueueOffsetsRequest {
                topic: topic.clone(),
                queue_id: QUEUE,
            })
            .await
            .map_err(|e| anyhow!("GetQueueOffsets on {addr}: {}", e.message()))?
            .into_inner();
        if highest.is_none_or(|h| resp.max_offset > h) {
            break;
        }
        if Instant::now() > deadline {
            bail!(
                "{addr} shows queue offsets up to {} but offset {highest:?} was acked",
                resp.max_offset
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let mut stored: HashMap<u64, Vec<u64>> = HashMap::new();
    let mut offset = 0;
    loop {
        let resp = client
            .pull_message(pb::PullMessageRequest {
                consumer_group: "e2e-bench".to_string(),
                topic: topic.clone(),
                queue_id: QUEUE,
                queue_offset: offset,
                max_count: 1024,
                max_wait_ms: 0,
                tag_expression: "*".to_string(),
            })
            .await
            .map_err(|e| anyhow!("pull at {offset} from {addr}: {}", e.message()))?
            .into_inner();
        let status = resp.status.unwrap_or_default();
        match status.code() {
            ResponseCode::Ok => {
                for m in &resp.messages {
                    let seq = m
                        .properties
                        .get(UNIQ_KEY)
                        .and_then(|k| source.seq_of(k))
                        .ok_or_else(|| {
                            anyhow!(
                                "message at queue offset {} carries no UNIQ_KEY of this run",
                                m.queue_offset
                            )
                        })?;
                    stored.entry(seq).or_default().push(m.queue_offset);
                }
                if resp.next_begin_offset <= offset {
                    bail!("pull at {offset} from {addr} did not advance");
                }
                offset = resp.next_begin_offset;
            }
            ResponseCode::NoNewMessage => return Ok(stored),
            other => bail!("pull at {offset} from {addr}: {other:?} {}", status.remark),
        }
    }
}
