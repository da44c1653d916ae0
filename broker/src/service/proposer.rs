//! The proposer: one task on every replica through which every write reaches Raft (sends,
//! and the topic, offset and node commands), in the order they arrive.
//!
//! A send that arrives while earlier proposals are still waiting for their quorum is not
//! proposed on its own: the proposer keeps at most [`MAX_IN_FLIGHT`] entries uncommitted and
//! coalesces the sends that queued up meanwhile into one BATCH entry (see `command`). Under
//! load an entry then carries tens of sends, so the per-entry costs (append, replication
//! round, commit, apply) are paid once for all of them; a lone send is proposed at once, as
//! itself. Other commands are proposed alone, in their place in the order.
//!
//! Proposals are handed to Raft one at a time, in arrival order, with `client_write_ff`, so the
//! log keeps the order in which writes reached the proposer while their commits overlap.
//!
//! **Bounded.** The queue holds at most [`MAX_QUEUED_BYTES`] of commands; a write that does not
//! fit is refused at once ([`ProposeError::Busy`]), which is the broker's back-pressure. Every
//! write has a deadline (`syncFlushTimeout`): a caller that stops waiting gets
//! [`ProposeError::TimedOut`], saying whether its command reached the log (it may then still
//! be committed: a producer retries with the same `UNIQ_KEY`) or not (then it never will: the
//! proposer drops a queued command whose caller is gone). With the quorum lost, memory stays
//! flat: the queue is bounded, and so are the entries in flight.
//!
//! **When a send is acknowledged.** With [`AckOn::Commit`] (`brokerRole=SYNC_MASTER`, the
//! dledger default) a send is answered once its entry is committed by a majority and applied,
//! with the queue offsets the state machine assigned. With [`AckOn::Append`]
//! (`ASYNC_MASTER`) it is answered as soon as the entry is in the leader's own log (fsynced
//! first under `SYNC_FLUSH`), before any follower has it. Queue offsets are assigned when an
//! entry is applied, so the proposer predicts them: it is the only writer in its term, so a
//! queue's next offset is the applied one plus what it has proposed since. It predicts only
//! when that is certain to come true:
//! - the leader has applied an entry of its own term (everything before it is applied);
//! - the applied topic config takes the send, and no change of that topic is in flight (the
//!   change lands before the send, and could refuse it or restart its queue);
//! - no message of the send is a retry of one the state machine remembers, of one still in
//!   flight, or of another message of the same send (a retry takes the original's offset
//!   instead of a new one); such a send waits for its commit, and so does every later send to
//!   its queue until the queue has no send in flight.
//!
//! Every predicted offset is checked against the ones the state machine assigns; a mismatch
//! (a bug) is logged, counted ([`Proposer::prediction_mismatches`], shown by `brokerStatus`),
//! and the queue waits for commits again until it has nothing in flight. An acknowledged send
//! whose entry is lost with its leader before a follower had it is lost: the ASYNC_MASTER
//! contract.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};

use openraft::error::ClientWriteError;
use openraft::CommittedLeaderId;
use raft_log::format::ENTRY_HEADER_LEN;
use raft_log::raft::{AppendObserver, AppendedToken};
use tokio::sync::{mpsc, oneshot, watch, OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;
use tracing::{debug, warn};

use crate::command::{Command, LogCommand};
use crate::raft::typ::{ApplyResult, LogId, Node, NodeId, Raft};
use crate::state::applied::{prepare_command, Prepared};
use crate::state::recent_keys::fingerprint;
use crate::state::topics::send_refusal;
use crate::state::BrokerState;

/// Entries the proposer keeps between proposal and commit, so that appending, replicating,
/// committing and applying successive entries overlap. Measured side by side (e2e-bench, two
/// rounds): 3 gave the lowest throughput of 2, 3, 6, 8 and 12; 6 to 12 were alike (batch32x8
/// about +5 %, inflight64 about +6 % over 3), and 8 had the lowest p99.
pub const MAX_IN_FLIGHT: usize = 8;
/// Most bytes of sends coalesced into one entry.
pub const MAX_BATCH_BYTES: usize = 4 << 20;
/// Most sends coalesced into one entry.
pub const MAX_BATCH_SENDS: usize = 1024;
/// Most bytes of commands waiting in the proposer's queue: 16 full batches.
pub const MAX_QUEUED_BYTES: usize = 64 << 20;

/// When a send is answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AckOn {
    /// Once a majority has the entry and it is applied (SYNC_MASTER).
    Commit,
    /// Once the leader's own log has the entry (ASYNC_MASTER).
    Append,
}

/// Why a proposal produced no apply result.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ProposeError {
    /// Raft refused the write (not the leader, or leadership lost before commit).
    #[error(transparent)]
    Write(ClientWriteError<NodeId, Node>),
    /// Raft stopped on this replica.
    #[error("{0}")]
    Stopped(String),
    /// The entry was applied but its result does not fit the batch (a bug, not a refusal).
    #[error("{0}")]
    Internal(String),
    /// The queue is full: the broker takes writes faster than its group commits them.
    #[error(
        "the proposer's queue is full: the broker takes writes faster than its group commits them"
    )]
    Busy,
    /// No answer before the deadline. `proposed`: the command reached the log (and may still
    /// be committed); otherwise it never will.
    #[error(
        "no answer before the deadline; the write {}",
        if *proposed { "is in the log and may still be committed" } else { "was not stored" }
    )]
    TimedOut { proposed: bool },
}

/// A write's outcome: what applying it gave (or, for a send acknowledged on the append, what
/// applying it will give), and the log id of the entry that carries it.
#[derive(Debug, Clone, PartialEq)]
pub struct Proposed {
    pub result: ApplyResult,
    pub log_id: LogId,
}

type Done = oneshot::Sender<Result<Proposed, ProposeError>>;

struct Proposal {
    cmd: LogCommand,
    done: Done,
    /// [`QUEUED`], then [`PROPOSED`] (the task hands it to Raft) or [`ABANDONED`] (the caller
    /// stopped waiting first): whoever moves it from `QUEUED` decides.
    fate: Arc<AtomicU8>,
    /// Its share of [`MAX_QUEUED_BYTES`], given back when it leaves the queue.
    _queued: OwnedSemaphorePermit,
}

const QUEUED: u8 = 0;
const PROPOSED: u8 = 1;
const ABANDONED: u8 = 2;

impl Proposal {
    /// Claims the proposal for Raft; false when its caller has given up on it.
    fn claim(&self) -> bool {
        self.fate
            .compare_exchange(QUEUED, PROPOSED, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }
}

/// The handle request handlers write through.
pub struct Proposer {
    queue: mpsc::UnboundedSender<Proposal>,
    queued_bytes: Arc<Semaphore>,
    mismatches: Arc<AtomicU64>,
}

impl Proposer {
    /// Starts the proposer task for `raft`; it ends when the last handle is dropped. With
    /// [`AckOn::Append`], `early` must be the waiters whose observer the log store calls.
    pub fn spawn(
        raft: Raft,
        state: BrokerState,
        ack: AckOn,
        early: Arc<AppendWaiters>,
        hold: watch::Receiver<u32>,
    ) -> Arc<Proposer> {
        let (queue, rx) = mpsc::unbounded_channel();
        let mismatches = Arc::new(AtomicU64::new(0));
        let proposer = Task {
            raft,
            state,
            ack,
            early,
            predictor: Arc::new(Mutex::new(Predictor {
                mismatches: mismatches.clone(),
                ..Default::default()
            })),
        };
        tokio::spawn(proposer.run(rx, hold));
        Arc::new(Proposer {
            queue,
            queued_bytes: Arc::new(Semaphore::new(MAX_QUEUED_BYTES)),
            mismatches,
        })
    }

    /// Proposes a command and waits until it is acknowledged (see the module docs), or until
    /// `deadline`.
    pub async fn propose(
        &self,
        cmd: LogCommand,
        deadline: Instant,
    ) -> Result<Proposed, ProposeError> {
        let bytes = u32::try_from(cmd.0.len().max(1)).map_err(|_| ProposeError::Busy)?;
        let queued = self
            .queued_bytes
            .clone()
            .try_acquire_many_owned(bytes)
            .map_err(|_| ProposeError::Busy)?;
        let (done, result) = oneshot::channel();
        let fate = Arc::new(AtomicU8::new(QUEUED));
        self.queue
            .send(Proposal {
                cmd,
                done,
                fate: fate.clone(),
                _queued: queued,
            })
            .map_err(|_| ProposeError::Stopped("the proposer has stopped".into()))?;
        match tokio::time::timeout_at(deadline, result).await {
            Ok(Ok(outcome)) => outcome,
            Ok(Err(_)) => Err(ProposeError::Stopped(
                "the proposer dropped the write".into(),
            )),
            Err(_elapsed) => {
                let abandoned = fate
                    .compare_exchange(QUEUED, ABANDONED, Ordering::AcqRel, Ordering::Acquire)
                    .is_ok();
                Err(ProposeError::TimedOut {
                    proposed: !abandoned,
                })
            }
        }
    }

    /// Sends acknowledged on the append whose predicted queue offsets differed from the ones
    /// applied, since this replica started (0 unless there is a bug).
    pub fn prediction_mismatches(&self) -> u64 {
        self.mismatches.load(Ordering::Relaxed)
    }
}

/// A queue: (topic, queue id).
type QueueKey = (String, u32);

/// What the proposer knows about the queues and topics it has writes in flight to (this term).
#[derive(Default)]
struct Predictor {
    term: u64,
    /// The next offset to hand out, for queues whose in-flight sends were all predicted.
    next: HashMap<QueueKey, u64>,
    /// Sends in flight per queue, predicted or not.
    in_flight: HashMap<QueueKey, usize>,
    /// `UNIQ_KEY` fingerprints of the predicted sends in flight: a retry of one of them is
    /// not a new message, so it gets no predicted offset.
    in_flight_keys: HashSet<u128>,
    /// Topic changes (create, update, delete) in flight, per topic.
    changing_topics: HashMap<String, usize>,
    /// Counts predictions that apply did not confirm (shared with [`Proposer`]).
    mismatches: Arc<AtomicU64>,
}

impl Predictor {
    /// One write is done (applied, or failed).
    fn settle(&mut self, term: u64, part: &Part) {
        if term != self.term {
            return;
        }
        if let Some(topic) = &part.topic_change {
            if let Some(n) = self.changing_topics.get_mut(topic) {
                *n -= 1;
                if *n == 0 {
                    self.changing_topics.remove(topic);
                }
            }
        }
        let Some(key) = &part.queue else { return };
        for k in &part.keys {
            self.in_flight_keys.remove(k);
        }
        if let Some(n) = self.in_flight.get_mut(key) {
            *n -= 1;
            if *n == 0 {
                self.in_flight.remove(key);
                self.next.remove(key);
            }
        }
    }
}

/// How one write of an entry is answered.
struct Part {
    /// The queue of a send.
    queue: Option<QueueKey>,
    /// The topic a topic change is about.
    topic_change: Option<String>,
    /// Fingerprints of the send's `UNIQ_KEY`s, when predicted.
    keys: Vec<u128>,
    /// Predicted first queue offset, when answered on the local append.
    predicted: Option<u64>,
    /// `None` once answered early.
    done: Option<Done>,
}

impl Part {
    fn plain(done: Done) -> Part {
        Part {
            queue: None,
            topic_change: None,
            keys: Vec::new(),
            predicted: None,
            done: Some(done),
        }
    }
}

struct Task {
    raft: Raft,
    state: BrokerState,
    ack: AckOn,
    early: Arc<AppendWaiters>,
    predictor: Arc<Mutex<Predictor>>,
}

/// The proposal, if its caller still waits for it.
fn live(p: Proposal) -> Option<Proposal> {
    (p.fate.load(Ordering::Acquire) == QUEUED).then_some(p)
}

impl Task {
    async fn run(
        self,
        mut queue: mpsc::UnboundedReceiver<Proposal>,
        mut hold: watch::Receiver<u32>,
    ) {
        let in_flight = Arc::new(Semaphore::new(MAX_IN_FLIGHT));
        let mut carry: Option<Proposal> = None;
        loop {
            let first = match carry.take() {
                Some(p) => p,
                None => match queue.recv().await {
                    Some(p) => p,
                    None => return,
                },
            };
            // A caller that gave up (its deadline passed while the command was queued) is
            // never proposed for: it was told its write did not reach the log.
            let Some(first) = live(first) else { continue };
            // A leader handing leadership back holds writes for a moment (`WriteHold`).
            if *hold.borrow() > 0 && hold.wait_for(|n| *n == 0).await.is_err() {
                return;
            }
            // Waiting for a free slot is what lets later sends pile up behind this one.
            let Ok(permit) = in_flight.clone().acquire_owned().await else {
                return;
            };
            // Claimed only now: the caller may have given up while this waited for a slot.
            if !first.claim() {
                continue;
            }
            let mut batch = vec![first];
            if batch[0].cmd.is_send() {
                let mut bytes = batch[0].cmd.0.len();
                while batch.len() < MAX_BATCH_SENDS {
                    let Ok(next) = queue.try_recv() else { break };
                    let Some(next) = live(next) else { continue };
                    if !next.cmd.is_send() || bytes + next.cmd.0.len() > MAX_BATCH_BYTES {
                        carry = Some(next);
                        break;
                    }
                    if !next.claim() {
                        continue;
                    }
                    bytes += next.cmd.0.len();
                    batch.push(next);
                }
            }
            let cmd = match batch.as_slice() {
                [one] => one.cmd.clone(),
                many => match LogCommand::batch(many.iter().map(|p| &p.cmd)) {
                    Ok(cmd) => cmd,
                    Err(e) => {
                        // Cannot happen within MAX_BATCH_BYTES; refuse rather than propose.
                        for p in batch {
                            let _ = p.done.send(Err(ProposeError::Internal(e.to_string())));
                        }
                        continue;
                    }
                },
            };
            let (term, parts) = self.plan(batch);
            let token = parts
                .iter()
                .any(|p| p.predicted.is_some())
                .then(|| self.early.wait(&cmd))
                .flatten();
            let written = self.raft.client_write_ff(cmd).await;
            // From here on the waiter holds the parts: it answers the predicted ones on the
            // append, and gives them all back once the entry is committed or has failed.
            let parts = match token {
                Some(token) => {
                    self.early.attach(token, term, parts);
                    None
                }
                None => Some(parts),
            };
            let take_back = {
                let early = self.early.clone();
                move |parts: Option<Vec<Part>>| match (parts, token) {
                    (Some(parts), _) => parts,
                    (None, Some(token)) => early.detach(token),
                    (None, None) => Vec::new(),
                }
            };
            match written {
                Ok(response) => {
                    let predictor = self.predictor.clone();
                    tokio::spawn(async move {
                        let outcome = match response.await {
                            Ok(Ok(resp)) => Ok((resp.data, resp.log_id)),
                            Ok(Err(e)) => Err(ProposeError::Write(e)),
                            Err(_) => Err(ProposeError::Stopped(
                                "Raft dropped the write before it was committed".into(),
                            )),
                        };
                        drop(permit);
                        deliver(take_back(parts), outcome, term, &predictor);
                    });
                }
                Err(fatal) => {
                    let e = ProposeError::Stopped(format!(
                        "the group's Raft stopped on this replica: {fatal}"
                    ));
                    deliver(take_back(parts), Err(e), term, &self.predictor);
                }
            }
        }
    }

    /// Decides for each write of an entry whether it is answered on the local append (with
    /// predicted offsets) or on commit, and books it as in flight.
    fn plan(&self, batch: Vec<Proposal>) -> (u64, Vec<Part>) {
        if self.ack == AckOn::Commit {
            // Nothing to predict or book: every write waits for its commit.
            return (0, batch.into_iter().map(|p| Part::plain(p.done)).collect());
        }
        let (term, ready) = {
            let metrics = self.raft.metrics();
            let m = metrics.borrow();
            let ready = m
                .last_applied
                .is_some_and(|l| l.leader_id.term == m.current_term);
            (m.current_term, ready)
        };
        let mut predictor = self.predictor.lock().unwrap_or_else(|p| p.into_inner());
        if predictor.term != term {
            let mismatches = predictor.mismatches.clone();
            *predictor = Predictor {
                term,
                mismatches,
                ..Default::default()
            };
        }
        let applied = ready.then(|| self.state.read());
        let parts = batch
            .into_iter()
            .map(|p| {
                let decoded = p.cmd.decode();
                let topic_change = match &decoded {
                    Ok(Command::UpsertTopic(c)) => Some(c.topic_name.clone()),
                    Ok(Command::DeleteTopic(name)) => Some(name.clone()),
                    _ => None,
                };
                if let Some(topic) = topic_change {
                    *predictor.changing_topics.entry(topic.clone()).or_default() += 1;
                    return Part {
                        topic_change: Some(topic),
                        ..Part::plain(p.done)
                    };
                }
                let Ok(Command::Send {
                    topic,
                    queue_id,
                    count,
                    uniq_keys,
                    ..
                }) = decoded
                else {
                    // Not a send: answered on commit.
                    return Part::plain(p.done);
                };
                let key = (topic, queue_id);
                let in_flight = predictor.in_flight.get(&key).copied().unwrap_or(0);
                let mut keys = Vec::new();
                let predicted = applied.as_ref().and_then(|st| {
                    if predictor.changing_topics.contains_key(&key.0)
                        || send_refusal(&key.0, st.topics.get(&key.0), key.1).is_some()
                    {
                        return None;
                    }
                    keys = uniq_keys
                        .iter()
                        .filter(|k| !k.is_empty())
                        .map(|k| fingerprint(&key.0, key.1, k))
                        .collect();
                    let distinct: HashSet<u128> = keys.iter().copied().collect();
                    let retry = distinct.len() != keys.len()
                        || keys.iter().any(|k| predictor.in_flight_keys.contains(k))
                        || uniq_keys
                            .iter()
                            .any(|k| !k.is_empty() && st.recent.get(&key.0, key.1, k).is_some());
                    if retry {
                        return None;
                    }
                    match predictor.next.get(&key) {
                        Some(&next) => Some(next),
                        // Nothing in flight: the applied state is the whole story.
                        None if in_flight == 0 => {
                            Some(st.queue(&key.0, key.1).map_or(0, |q| q.max_offset()))
                        }
                        // Sends in flight that were not predicted.
                        None => None,
                    }
                });
                match predicted {
                    Some(base) => {
                        predictor.next.insert(key.clone(), base + u64::from(count));
                        predictor.in_flight_keys.extend(keys.iter().copied());
                    }
                    None => {
                        predictor.next.remove(&key);
                        keys.clear();
                    }
                }
                *predictor.in_flight.entry(key.clone()).or_default() += 1;
                Part {
                    queue: Some(key),
                    topic_change: None,
                    keys,
                    predicted,
                    done: Some(p.done),
                }
            })
            .collect();
        (term, parts)
    }
}

/// Hands each write its part of the entry's outcome (those not answered early), checks the
/// predictions, and settles the writes' bookings.
fn deliver(
    parts: Vec<Part>,
    outcome: Result<(ApplyResult, LogId), ProposeError>,
    term: u64,
    predictor: &Mutex<Predictor>,
) {
    let count = parts.len();
    let results: Result<(Vec<ApplyResult>, LogId), ProposeError> = match outcome {
        Ok((ApplyResult::Batch(results), log_id)) if results.len() == count => {
            Ok((results, log_id))
        }
        Ok((result, log_id)) if count == 1 => Ok((vec![result], log_id)),
        // A batch entry refused as a whole (it did not decode): every send gets the refusal.
        Ok((refused @ ApplyResult::Refused(_), log_id)) => Ok((vec![refused; count], log_id)),
        Ok((other, _)) => {
            warn!(
                ?other,
                count, "a batch entry applied to a result that does not fit it"
            );
            Err(ProposeError::Internal(format!(
                "a batch of {count} sends applied to an unexpected result"
            )))
        }
        Err(e) => Err(e),
    };
    let mut predictor = predictor.lock().unwrap_or_else(|p| p.into_inner());
    match results {
        Ok((results, log_id)) => {
            for (part, result) in parts.into_iter().zip(results) {
                if let (Some(base), Some(key)) = (part.predicted, &part.queue) {
                    check_prediction(key, base, &result, term, &mut predictor);
                }
                predictor.settle(term, &part);
                if let Some(done) = part.done {
                    let _ = done.send(Ok(Proposed { result, log_id }));
                }
            }
        }
        Err(e) => {
            for part in parts {
                if part.done.is_none() {
                    debug!(queue = ?part.queue, error = ?e,
                        "a send answered on the local append was not committed");
                }
                predictor.settle(term, &part);
                // A queue whose predicted sends failed starts again from the applied state.
                if let Some(key) = &part.queue {
                    predictor.next.remove(key);
                }
                if let Some(done) = part.done {
                    let _ = done.send(Err(e.clone()));
                }
            }
        }
    }
}

/// Whether applying gave exactly the offsets `base..` predicted for a send, all of them.
fn prediction_holds(base: u64, result: &ApplyResult) -> bool {
    match result {
        ApplyResult::Stored {
            offsets,
            duplicates: 0,
            ..
        } => offsets
            .iter()
            .copied()
            .eq(base..base + offsets.len() as u64),
        _ => false,
    }
}

fn check_prediction(
    key: &QueueKey,
    base: u64,
    result: &ApplyResult,
    term: u64,
    predictor: &mut Predictor,
) {
    if prediction_holds(base, result) {
        return;
    }
    predictor.mismatches.fetch_add(1, Ordering::Relaxed);
    warn!(topic = %key.0, queue = key.1, predicted = base, ?result,
        "a send answered on the local append got other queue offsets when applied");
    if term == predictor.term {
        predictor.next.remove(key);
    }
}

/// Entries whose sends are answered on the local append, by the entry's append token (the
/// address of its buffer, which the waiter keeps alive, so no other entry can share it).
#[derive(Default)]
pub struct AppendWaiters {
    waiting: Mutex<HashMap<usize, Waiter>>,
}

struct Waiter {
    cmd: LogCommand,
    /// The term the entry was proposed in (its log id's).
    term: u64,
    /// `None` until the proposer attaches them (right after proposing).
    parts: Option<Vec<Part>>,
    /// Where the entry landed (index, position), once its append was observed.
    appended_at: Option<(u64, u64)>,
}

impl AppendWaiters {
    /// The observer to install in the log store.
    pub fn observer(self: &Arc<Self>) -> AppendObserver {
        let me = self.clone();
        Arc::new(move |tokens| me.appended(tokens))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<usize, Waiter>> {
        self.waiting.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Registers `cmd` before it is proposed (its append may be observed before
    /// `client_write_ff` returns); returns its token.
    fn wait(&self, cmd: &LogCommand) -> Option<usize> {
        let token = raft_log::raft::LogPayload::append_token(cmd)?;
        self.lock().insert(
            token,
            Waiter {
                cmd: cmd.clone(),
                term: 0,
                parts: None,
                appended_at: None,
            },
        );
        Some(token)
    }

    /// Hands the parts of `token`'s entry, proposed in `term`, to its waiter: the predicted
    /// ones are answered when the append is observed, or now if it already was.
    fn attach(&self, token: usize, term: u64, mut parts: Vec<Part>) {
        let mut waiting = self.lock();
        let Some(waiter) = waiting.get_mut(&token) else {
            return;
        };
        waiter.term = term;
        if let Some((index, position)) = waiter.appended_at {
            answer(&waiter.cmd, term, index, position, &mut parts);
        }
        waiter.parts = Some(parts);
    }

    /// Takes back the parts of `token`'s entry (answered early or not) once it is committed
    /// or has failed.
    fn detach(&self, token: usize) -> Vec<Part> {
        self.lock()
            .remove(&token)
            .and_then(|w| w.parts)
            .unwrap_or_default()
    }

    fn appended(&self, tokens: &[AppendedToken]) {
        let mut waiting = self.lock();
        if waiting.is_empty() {
            return;
        }
        for t in tokens {
            let Some(waiter) = waiting.get_mut(&t.token) else {
                continue;
            };
            waiter.appended_at = Some((t.index, t.position));
            if let Some(parts) = waiter.parts.as_mut() {
                answer(&waiter.cmd, waiter.term, t.index, t.position, parts);
            }
        }
    }
}

/// Answers the predicted parts of the entry `cmd`, now in the log at `index` and `position`.
fn answer(cmd: &LogCommand, term: u64, index: u64, position: u64, parts: &mut [Part]) {
    let size = (ENTRY_HEADER_LEN + cmd.0.len()) as u32;
    let prepared = match prepare_command(cmd, || Ok((position, size))) {
        Ok(Prepared::Batch(sends)) => sends,
        Ok(one) => vec![one],
        Err(why) => {
            warn!(%why, "cannot read back an entry answered on its append");
            return;
        }
    };
    let log_id = LogId::new(CommittedLeaderId::new(term, 0), index);
    for (part, send) in parts.iter_mut().zip(prepared) {
        let (Some(base), Some(key), Prepared::Send { records, .. }) =
            (part.predicted, &part.queue, send)
        else {
            continue;
        };
        if let Some(done) = part.done.take() {
            let n = records.len() as u64;
            let _ = done.send(Ok(Proposed {
                result: ApplyResult::Stored {
                    queue_id: key.1,
                    offsets: (base..base + n).collect(),
                    positions: records.iter().map(|r| r.position).collect(),
                    duplicates: 0,
                },
                log_id,
            }));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_prediction_holds_only_when_every_offset_matches() {
        let stored = |offsets: Vec<u64>, duplicates| ApplyResult::Stored {
            queue_id: 0,
            positions: vec![0; offsets.len()],
            offsets,
            duplicates,
        };
        assert!(prediction_holds(5, &stored(vec![5, 6, 7], 0)));
        assert!(!prediction_holds(5, &stored(vec![5, 6, 8], 0)), "the last");
        assert!(!prediction_holds(4, &stored(vec![5, 6, 7], 0)), "the first");
        assert!(
            !prediction_holds(5, &stored(vec![5, 5], 1)),
            "a retry inside"
        );
        assert!(!prediction_holds(5, &ApplyResult::Refused("gone".into())));
    }
}
