//! Failover: a producer sends one message at a time while, round after round, the leader is
//! killed (`kill -9` of its process). Each round measures the time from the kill to the first
//! send acknowledged by the new leader, as the producer sees it (it learns the new leader
//! from NOT_LEADER hints or by asking the survivors' `BrokerStatus`); then the killed member
//! restarts and catches up before the next round: in a classic group it must be an in-sync
//! voter again, and a killed master is given time to take its leadership back, which moves
//! the producer once more (the longest pause between acks while it rejoins is reported).
//! At the end the whole queue is read back from the leader: every acknowledged message must
//! be there exactly once.

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
/// Deadline for the restarted member to catch up.
const CATCH_UP: Duration = Duration::from_secs(120);
/// How long a restarted classic master gets to lead again before the next round kills
/// whichever member leads (it takes leadership back a few seconds after its restart).
const HANDBACK: Duration = Duration::from_secs(20);

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
    /// Acks with a degraded status (stored without the copies the mode waits for, e.g.
    /// `SLAVE_NOT_AVAILABLE` from a slave that took over while its master is down).
    pub degraded: usize,
    /// Per round in which the preferred member (a classic master) led again: its restart to
    /// its leadership.
    pub handbacks: Vec<Duration>,
    /// Per round: the longest time between two acks from the restart until the group was
    /// settled again (a handback moves the producer).
    pub rejoin_pauses: Vec<Duration>,
    /// Messages the restarted members dropped from their logs when they rejoined (a deposed
    /// leader's uncommitted tail; under ASYNC_MASTER acked sends among them are lost).
    pub dropped_messages: u64,
}

/// What the producer's acks said so far.
#[derive(Default)]
struct AckLog {
    /// Sequence number -> the queue offset its ack gave.
    acked: BTreeMap<u64, Option<u64>>,
    /// Acks with a degraded status, by status.
    degraded: BTreeMap<&'static str, usize>,
    last_at: Option<Instant>,
    /// While set, the longest gap between consecutive acks arriving after this instant is
    /// kept in `longest_gap`.
    gaps_after: Option<Instant>,
    longest_gap: Duration,
}

impl AckLog {
    fn record(&mut self, ack: &Ack) {
        self.acked.insert(ack.seq, ack.queue_offset);
        if ack.code != ResponseCode::Ok {
            *self.degraded.entry(ack.code.as_str_name()).or_default() += 1;
        }
        if let (Some(last), Some(after)) = (self.last_at, self.gaps_after) {
            if ack.at > after {
                self.longest_gap = self.longest_gap.max(ack.at - last);
            }
        }
        self.last_at = Some(ack.at);
    }

    /// Keeps the longest gap between acks from `at` on.
    fn watch_gaps(&mut self, at: Instant) {
        self.gaps_after = Some(at);
        self.longest_gap = Duration::ZERO;
    }

    /// The longest gap since [`AckLog::watch_gaps`]; stops watching.
    fn take_longest_gap(&mut self) -> Duration {
        self.gaps_after = None;
        std::mem::take(&mut self.longest_gap)
    }

    /// Records every ack already received.
    fn drain(&mut self, acks: &mut mpsc::UnboundedReceiver<Ack>) {
        while let Ok(a) = acks.try_recv() {
            self.record(&a);
        }
    }
}

/// One acknowledged message, as the producer saw it.
struct Ack {
    seq: u64,
    queue_offset: Option<u64>,
    /// `Ok`, or the degraded status it was acked with.
    code: ResponseCode,
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
                    code: acked.code,
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
    log: &mut AckLog,
    timeout: Duration,
    wanted: impl Fn(&Ack) -> bool,
) -> Option<(Arc<str>, Instant)> {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let ack = tokio::time::timeout_at(deadline, acks.recv())
            .await
            .ok()??;
        log.record(&ack);
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

    let mut log = AckLog::default();
    let mut report = FailoverReport {
        kills: 0,
        outages: Vec::new(),
        timeouts: 0,
        acked: 0,
        lost_acked: 0,
        duplicates: 0,
        moved: 0,
        degraded: 0,
        handbacks: Vec::new(),
        rejoin_pauses: Vec::new(),
        dropped_messages: 0,
    };
    let rounds_result = async {
        for round in 1..=rounds {
            let leader = group.leader(Duration::from_secs(30)).await?;
            let leader_addr = group.client_addr(leader);
            // The producer is sending to this leader.
            let killed = group.name(leader);
            wait_for_ack(&mut acks, &mut log, FAILOVER_DEADLINE, |a| {
                *a.leader == *leader_addr
            })
            .await
            .ok_or_else(|| anyhow!("round {round}: the producer gets no ack from {killed}"))?;
            let steady_until = tokio::time::Instant::now() + STEADY;
            while let Ok(Some(a)) = tokio::time::timeout_at(steady_until, acks.recv()).await {
                log.record(&a);
            }

            let killed_at = group.kill9(leader).await?;
            report.kills += 1;
            let first = wait_for_ack(&mut acks, &mut log, FAILOVER_DEADLINE, |a| {
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
                        .map_or_else(|| new_leader.to_string(), |i| group.name(i));
                    eprintln!(
                        "[failover] round {round}: killed {killed}; first ack from {by} after \
                         {:.1} ms",
                        outage.as_secs_f64() * 1e3
                    );
                    report.outages.push(outage);
                }
                None => {
                    eprintln!(
                        "[failover] round {round}: killed {killed}; no ack from another \
                         member within {FAILOVER_DEADLINE:?}"
                    );
                    report.timeouts += 1;
                }
            }
            log.drain(&mut acks);
            let restarted_at = Instant::now();
            log.watch_gaps(restarted_at);
            group.restart(leader).await?;
            let settled = group
                .settle_after_restart(leader, restarted_at, HANDBACK, CATCH_UP)
                .await?;
            log.drain(&mut acks);
            let pause = log.take_longest_gap();
            report.rejoin_pauses.push(pause);
            report.dropped_messages += settled.dropped_messages;
            let mut line = format!(
                "[failover] round {round}: {killed} back after {:.1} s",
                restarted_at.elapsed().as_secs_f64()
            );
            if let Some(back) = settled.preferred_back_after {
                report.handbacks.push(back);
                line += &format!(
                    ", leading again {:.1} s after its restart",
                    back.as_secs_f64()
                );
            } else if group.preferred().is_some() {
                line += &format!(", {} leads", group.name(settled.leader));
            }
            line += &format!(
                "; longest pause between acks meanwhile {:.1} ms",
                pause.as_secs_f64() * 1e3
            );
            if settled.dropped_messages > 0 {
                line += &format!(
                    "; it dropped {} messages of its old log",
                    settled.dropped_messages
                );
            }
            eprintln!("{line}");
        }
        anyhow::Ok(())
    }
    .await;

    let _ = stop_tx.send(true);
    let producer_result = producer.await;
    log.drain(&mut acks);
    progress.abort();
    rounds_result?;
    producer_result.map_err(|e| anyhow!("the failover producer died: {e}"))?;

    report.acked = log.acked.len();
    report.degraded = log.degraded.values().sum();
    if !log.degraded.is_empty() {
        let by_code: Vec<String> = log
            .degraded
            .iter()
            .map(|(code, n)| format!("{n} {code}"))
            .collect();
        eprintln!("[failover] degraded acks: {}", by_code.join(", "));
    }
    let leader = group.leader(Duration::from_secs(30)).await?;
    let stored = read_queue(&group.client_addr(leader), &source, &log.acked).await?;
    for (seq, offset) in &log.acked {
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
