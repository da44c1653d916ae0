//! The send proposer: one task on every replica through which all sends reach Raft.
//!
//! A send that arrives while earlier proposals are still waiting for their quorum is not
//! proposed on its own: the proposer keeps at most [`MAX_IN_FLIGHT`] entries uncommitted and
//! coalesces whatever queued up meanwhile into one BATCH entry (see `command`). Under load an
//! entry then carries tens of sends, so the per-entry costs (append, replication round,
//! commit, apply) are paid once for all of them; a lone send is proposed at once, as itself.
//!
//! Proposals are handed to Raft one at a time, in arrival order, with `client_write_ff`, so the
//! log keeps the order in which sends reached the proposer while their commits overlap.
//!
//! **When a send is acknowledged.** With [`AckOn::Commit`] (`brokerRole=SYNC_MASTER`, the
//! dledger default) a send is answered once its entry is committed by a majority and applied,
//! with the queue offsets the state machine assigned. With [`AckOn::Append`]
//! (`ASYNC_MASTER`) it is answered as soon as the entry is in the leader's own log (fsynced
//! first under `SYNC_FLUSH`), before any follower has it. Queue offsets are assigned when an
//! entry is applied, so the proposer predicts them: it is the only writer of sends in its
//! term, so a queue's next offset is the applied one plus what it has proposed since. It
//! predicts only when that is certain to come true:
//! - the leader has applied an entry of its own term (everything before it is applied);
//! - no message of the send is a retry of one the state machine remembers or of one still in
//!   flight (a retry takes the original's offset instead of a new one); such a send waits for
//!   its commit, and so does every later send to its queue until the queue has no send in
//!   flight.
//!
//! The prediction is checked against the offsets the state machine assigns; a mismatch (a
//! topic deleted meanwhile, say) is logged and the queue waits for commits again until it
//! has nothing in flight. An acknowledged send whose entry is lost with its leader before a
//! follower had it is lost: the ASYNC_MASTER contract.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use openraft::error::ClientWriteError;
use raft_log::format::ENTRY_HEADER_LEN;
use raft_log::raft::{AppendObserver, AppendedToken};
use tokio::sync::{mpsc, oneshot, Semaphore};
use tracing::{debug, warn};

use crate::command::{Command, LogCommand};
use crate::raft::typ::{ApplyResult, Node, NodeId, Raft};
use crate::state::applied::{prepare_command, Prepared};
use crate::state::recent_keys::fingerprint;
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

/// When a send is answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AckOn {
    /// Once a majority has the entry and it is applied (SYNC_MASTER).
    Commit,
    /// Once the leader's own log has the entry (ASYNC_MASTER).
    Append,
}

/// Why a proposal produced no apply result.
#[derive(Debug, Clone)]
pub enum ProposeError {
    /// Raft refused the write (not the leader, or leadership lost before commit).
    Write(ClientWriteError<NodeId, Node>),
    /// Raft stopped on this replica.
    Stopped(String),
    /// The entry was applied but its result does not fit the batch (a bug, not a refusal).
    Internal(String),
}

type Done = oneshot::Sender<Result<ApplyResult, ProposeError>>;

struct Proposal {
    cmd: LogCommand,
    done: Done,
}

/// The handle request handlers propose sends through.
pub struct Proposer {
    queue: mpsc::UnboundedSender<Proposal>,
}

impl Proposer {
    /// Starts the proposer task for `raft`; it ends when the last handle is dropped. With
    /// [`AckOn::Append`], `early` must be the waiters whose observer the log store calls.
    pub fn spawn(
        raft: Raft,
        state: BrokerState,
        ack: AckOn,
        early: Arc<AppendWaiters>,
    ) -> Arc<Proposer> {
        let (queue, rx) = mpsc::unbounded_channel();
        let proposer = Task {
            raft,
            state,
            ack,
            early,
            predictor: Arc::default(),
        };
        tokio::spawn(proposer.run(rx));
        Arc::new(Proposer { queue })
    }

    /// Proposes a SEND command and waits until it is acknowledged (see the module docs).
    pub async fn propose(&self, cmd: LogCommand) -> Result<ApplyResult, ProposeError> {
        debug_assert!(cmd.is_send(), "only sends are coalesced");
        let (done, result) = oneshot::channel();
        self.queue
            .send(Proposal { cmd, done })
            .map_err(|_| ProposeError::Stopped("the send proposer has stopped".into()))?;
        result
            .await
            .map_err(|_| ProposeError::Stopped("the send proposer dropped the send".into()))?
    }
}

/// A queue: (topic, queue id).
type QueueKey = (String, u32);

/// What the proposer knows about the queues it has sends in flight to (this term).
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
}

impl Predictor {
    /// One send is done (applied, or failed).
    fn settle(&mut self, term: u64, part: &Part) {
        if term != self.term {
            return;
        }
        for k in &part.keys {
            self.in_flight_keys.remove(k);
        }
        let key = &part.key;
        if let Some(n) = self.in_flight.get_mut(key) {
            *n -= 1;
            if *n == 0 {
                self.in_flight.remove(key);
                self.next.remove(key);
            }
        }
    }
}

/// How one send of an entry is answered.
struct Part {
    key: QueueKey,
    /// Fingerprints of the send's `UNIQ_KEY`s, when predicted.
    keys: Vec<u128>,
    /// Predicted first queue offset, when answered on the local append.
    predicted: Option<u64>,
    /// `None` once answered early.
    done: Option<Done>,
}

struct Task {
    raft: Raft,
    state: BrokerState,
    ack: AckOn,
    early: Arc<AppendWaiters>,
    predictor: Arc<Mutex<Predictor>>,
}

impl Task {
    async fn run(self, mut queue: mpsc::UnboundedReceiver<Proposal>) {
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
            // Waiting for a free slot is what lets later sends pile up behind this one.
            let Ok(permit) = in_flight.clone().acquire_owned().await else {
                return;
            };
            let mut bytes = first.cmd.0.len();
            let mut batch = vec![first];
            while batch.len() < MAX_BATCH_SENDS {
                let Ok(next) = queue.try_recv() else { break };
                if bytes + next.cmd.0.len() > MAX_BATCH_BYTES {
                    carry = Some(next);
                    break;
                }
                bytes += next.cmd.0.len();
                batch.push(next);
            }
            let cmd = match batch.as_slice() {
                [one] => one.cmd.clone(),
                many => LogCommand::batch(many.iter().map(|p| &p.cmd)),
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
                    self.early.attach(token, parts);
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
                            Ok(Ok(resp)) => Ok(resp.data),
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

    /// Decides for each send of an entry whether it is answered on the local append (with
    /// predicted offsets) or on commit, and books it as in flight.
    fn plan(&self, batch: Vec<Proposal>) -> (u64, Vec<Part>) {
        if self.ack == AckOn::Commit {
            // Nothing to predict or book: every send waits for its commit.
            let parts = batch
                .into_iter()
                .map(|p| Part {
                    key: (String::new(), u32::MAX),
                    keys: Vec::new(),
                    predicted: None,
                    done: Some(p.done),
                })
                .collect();
            return (0, parts);
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
            *predictor = Predictor {
                term,
                ..Default::default()
            };
        }
        let predict = self.ack == AckOn::Append && ready;
        let applied = predict.then(|| self.state.read());
        let parts = batch
            .into_iter()
            .map(|p| {
                let Ok(Command::Send {
                    topic,
                    queue_id,
                    count,
                    uniq_keys,
                    ..
                }) = p.cmd.decode()
                else {
                    // Not a send: the state machine will say what is wrong with it.
                    return Part {
                        key: (String::new(), u32::MAX),
                        keys: Vec::new(),
                        predicted: None,
                        done: Some(p.done),
                    };
                };
                let key = (topic, queue_id);
                let in_flight = predictor.in_flight.get(&key).copied().unwrap_or(0);
                let mut keys = Vec::new();
                let predicted = applied.as_ref().and_then(|st| {
                    keys = uniq_keys
                        .iter()
                        .filter(|k| !k.is_empty())
                        .map(|k| fingerprint(&key.0, key.1, k))
                        .collect();
                    let retry = keys.iter().any(|k| predictor.in_flight_keys.contains(k))
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
                    key,
                    keys,
                    predicted,
                    done: Some(p.done),
                }
            })
            .collect();
        (term, parts)
    }
}

/// Hands each send its part of the entry's outcome (those not answered early), checks the
/// predictions, and settles the sends' bookings.
fn deliver(
    parts: Vec<Part>,
    outcome: Result<ApplyResult, ProposeError>,
    term: u64,
    predictor: &Mutex<Predictor>,
) {
    let count = parts.len();
    let results: Result<Vec<ApplyResult>, ProposeError> = match outcome {
        Ok(ApplyResult::Batch(results)) if results.len() == count => Ok(results),
        Ok(result) if count == 1 => Ok(vec![result]),
        Ok(other) => {
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
        Ok(results) => {
            for (part, result) in parts.into_iter().zip(results) {
                if let Some(base) = part.predicted {
                    check_prediction(&part.key, base, &result, term, &mut predictor);
                }
                predictor.settle(term, &part);
                if let Some(done) = part.done {
                    let _ = done.send(Ok(result));
                }
            }
        }
        Err(e) => {
            for part in parts {
                if part.done.is_none() {
                    debug!(topic = %part.key.0, queue = part.key.1, error = ?e,
                        "a send answered on the local append was not committed");
                }
                predictor.settle(term, &part);
                // A queue whose predicted sends failed starts again from the applied state.
                predictor.next.remove(&part.key);
                if let Some(done) = part.done {
                    let _ = done.send(Err(e.clone()));
                }
            }
        }
    }
}

fn check_prediction(
    key: &QueueKey,
    base: u64,
    result: &ApplyResult,
    term: u64,
    predictor: &mut Predictor,
) {
    let actual = match result {
        ApplyResult::Stored { offsets, .. } => offsets.first().copied(),
        _ => None,
    };
    if actual != Some(base) {
        warn!(topic = %key.0, queue = key.1, predicted = base, ?actual,
            "a send answered on the local append got other queue offsets when applied");
        if term == predictor.term {
            predictor.next.remove(key);
        }
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
    /// `None` until the proposer attaches them (right after proposing).
    parts: Option<Vec<Part>>,
    /// Where the entry landed, once its append was observed.
    appended_at: Option<u64>,
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
                parts: None,
                appended_at: None,
            },
        );
        Some(token)
    }

    /// Hands the parts of `token`'s entry to its waiter: the predicted ones are answered when
    /// the append is observed, or now if it already was.
    fn attach(&self, token: usize, mut parts: Vec<Part>) {
        let mut waiting = self.lock();
        let Some(waiter) = waiting.get_mut(&token) else {
            return;
        };
        if let Some(position) = waiter.appended_at {
            answer(&waiter.cmd, position, &mut parts);
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
            waiter.appended_at = Some(t.position);
            if let Some(parts) = waiter.parts.as_mut() {
                answer(&waiter.cmd, t.position, parts);
            }
        }
    }
}

/// Answers the predicted parts of the entry `cmd`, now in the log at `position`.
fn answer(cmd: &LogCommand, position: u64, parts: &mut [Part]) {
    let size = (ENTRY_HEADER_LEN + cmd.0.len()) as u32;
    let prepared = match prepare_command(cmd, || Ok((position, size))) {
        Ok(Prepared::Batch(sends)) => sends,
        Ok(one) => vec![one],
        Err(why) => {
            warn!(%why, "cannot read back an entry answered on its append");
            return;
        }
    };
    for (part, send) in parts.iter_mut().zip(prepared) {
        let (Some(base), Prepared::Send { records, .. }) = (part.predicted, send) else {
            continue;
        };
        if let Some(done) = part.done.take() {
            let n = records.len() as u64;
            let _ = done.send(Ok(ApplyResult::Stored {
                queue_id: part.key.1,
                offsets: (base..base + n).collect(),
                positions: records.iter().map(|r| r.position).collect(),
                duplicates: 0,
            }));
        }
    }
}
