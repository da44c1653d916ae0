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

use std::sync::Arc;

use openraft::error::ClientWriteError;
use tokio::sync::{mpsc, oneshot, Semaphore};
use tracing::warn;

use crate::command::LogCommand;
use crate::raft::typ::{ApplyResult, Node, NodeId, Raft};

/// Entries the proposer keeps between proposal and commit. Enough to overlap one entry's
/// replication round with the next one's append; more would only make entries smaller.
pub const MAX_IN_FLIGHT: usize = 3;
/// Most bytes of sends coalesced into one entry.
pub const MAX_BATCH_BYTES: usize = 4 << 20;
/// Most sends coalesced into one entry.
pub const MAX_BATCH_SENDS: usize = 1024;

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

struct Proposal {
    cmd: LogCommand,
    done: oneshot::Sender<Result<ApplyResult, ProposeError>>,
}

/// The handle request handlers propose sends through.
pub struct Proposer {
    queue: mpsc::UnboundedSender<Proposal>,
}

impl Proposer {
    /// Starts the proposer task for `raft`; it ends when the last handle is dropped.
    pub fn spawn(raft: Raft) -> Arc<Proposer> {
        let (queue, rx) = mpsc::unbounded_channel();
        tokio::spawn(run(raft, rx));
        Arc::new(Proposer { queue })
    }

    /// Proposes a SEND command and waits until it is committed and applied.
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

async fn run(raft: Raft, mut queue: mpsc::UnboundedReceiver<Proposal>) {
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
        match raft.client_write_ff(cmd).await {
            Ok(response) => {
                tokio::spawn(async move {
                    let outcome = match response.await {
                        Ok(Ok(resp)) => Ok(resp.data),
                        Ok(Err(e)) => Err(ProposeError::Write(e)),
                        Err(_) => Err(ProposeError::Stopped(
                            "Raft dropped the write before it was committed".into(),
                        )),
                    };
                    drop(permit);
                    deliver(batch, outcome);
                });
            }
            Err(fatal) => deliver(
                batch,
                Err(ProposeError::Stopped(format!(
                    "the group's Raft stopped on this replica: {fatal}"
                ))),
            ),
        }
    }
}

/// Hands each send its part of the entry's outcome.
fn deliver(batch: Vec<Proposal>, outcome: Result<ApplyResult, ProposeError>) {
    let count = batch.len();
    match outcome {
        Ok(ApplyResult::Batch(results)) if results.len() == count => {
            for (p, r) in batch.into_iter().zip(results) {
                let _ = p.done.send(Ok(r));
            }
        }
        Ok(result) if count == 1 => {
            for p in batch {
                let _ = p.done.send(Ok(result.clone()));
            }
        }
        Ok(other) => {
            warn!(
                ?other,
                count, "a batch entry applied to a result that does not fit it"
            );
            let e = ProposeError::Internal(format!(
                "a batch of {count} sends applied to an unexpected result"
            ));
            for p in batch {
                let _ = p.done.send(Err(e.clone()));
            }
        }
        Err(e) => {
            for p in batch {
                let _ = p.done.send(Err(e.clone()));
            }
        }
    }
}
