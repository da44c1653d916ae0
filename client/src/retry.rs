//! What a producer does after a send attempt: pure decisions, no IO, so each rule is tested
//! on its own.
//!
//! The rules, in RocketMQ terms (`retryTimesWhenSendFailed`, default 2):
//! - `NOT_LEADER` is not a failure: the broker told us where the leader is, so the send
//!   goes there at once (or, during an election, waits for the new leader, or moves to
//!   another group). Redirects are bounded so two confused brokers cannot bounce a send
//!   forever; past the bound they count as failures.
//! - "Unavailable" (connection refused, `SERVICE_NOT_AVAILABLE`) is a failure: the send
//!   moves to another group's queue when the topic has one, else waits for its group's
//!   leader to change (a failover) and retries.
//! - A send whose request may have reached the broker is retried, on the same queue, only
//!   when the policy allows it (it does by default: the broker recognises a retried copy by
//!   its `UNIQ_KEY` and stores it once). That is a connection broken mid-request; an attempt
//!   left unanswered for its share of the send timeout ([`attempt_timeout`]: a leader that
//!   froze keeps its connections open and answers nothing, so only time tells); and an answer
//!   that gave up waiting without per-message results ([`unconfirmed`]: the entry may still
//!   commit). The retry goes to whichever replica leads the group by then.
//! - Anything else (illegal message, no permission, unknown topic) is final.

use std::time::Duration;

use proto::v1::ResponseCode;

/// The least time one attempt of a send is given (a loaded broker can take hundreds of
/// milliseconds to answer a batch).
pub const MIN_ATTEMPT_TIMEOUT: Duration = Duration::from_secs(1);

/// How long one attempt of a send waits for its answer: a third of the send timeout, at least
/// [`MIN_ATTEMPT_TIMEOUT`], and never longer than the `remaining` time of the send. An
/// attempt that runs out may have been stored, and is retried on the group's current leader:
/// with a 3 s send timeout a leader that froze costs 1 s, not the whole send.
pub fn attempt_timeout(send_timeout: Duration, remaining: Duration) -> Duration {
    (send_timeout / 3).max(MIN_ATTEMPT_TIMEOUT).min(remaining)
}

/// Whether a send answered `code` without a result per message may have been stored anyway:
/// the broker stopped waiting for its entry (a quorum or an fsync did not confirm in time, or
/// the leader lost its term with the entry in flight) and the entry may still commit. Such a
/// send is retried like one whose answer was lost. (With its results, a `FLUSH_*_TIMEOUT` or
/// `SLAVE_NOT_AVAILABLE` answer means stored, with less durability than asked.)
pub fn unconfirmed(code: ResponseCode) -> bool {
    matches!(
        code,
        ResponseCode::FlushSlaveTimeout
            | ResponseCode::FlushDiskTimeout
            | ResponseCode::SlaveNotAvailable
            | ResponseCode::ServiceNotAvailable
    )
}

/// How persistent a producer is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Failed attempts retried before giving up (RocketMQ `retryTimesWhenSendFailed`).
    pub retries_when_failed: u32,
    /// Retry a send whose request may have been stored. Safe by default: every message
    /// carries a `UNIQ_KEY` and the retry goes to the same queue, where the broker stores a
    /// retried copy only once.
    pub retry_when_maybe_stored: bool,
    /// `NOT_LEADER` redirects taken for free before they count as failures.
    pub max_free_redirects: u32,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            retries_when_failed: 2,
            retry_when_maybe_stored: true,
            max_free_redirects: 5,
        }
    }
}

/// One attempt's result, as far as retrying is concerned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttemptOutcome {
    /// The broker stored the message(s): done.
    Stored,
    /// The broker is not the leader; `leader_addr` is where it says the leader is.
    NotLeader {
        /// The hinted leader's client address, if the broker knew one.
        leader_addr: Option<String>,
    },
    /// The group could not take the request (down, no quorum, disk full).
    Unavailable {
        /// The request may have been executed anyway (its answer was lost).
        maybe_stored: bool,
    },
    /// A refusal that retrying will not change.
    Final,
}

/// What to do next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NextStep {
    /// Stop: the attempt succeeded.
    Done,
    /// Send again at once to this address (the hinted leader), same queue.
    FollowLeader(String),
    /// The group is electing: wait for its new leader, then send there.
    AwaitLeader,
    /// Send at once to a queue of another group.
    OtherGroup,
    /// Wait until the group's leader changes (or a short backoff passes), then send again.
    WaitThenRetry,
    /// Stop and report the attempt's error.
    GiveUp,
}

/// Counters of one send across its attempts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RetryState {
    /// Attempts that counted as failures.
    pub failures: u32,
    /// `NOT_LEADER` redirects followed.
    pub redirects: u32,
}

impl RetryPolicy {
    /// Decides the next step after `outcome`, updating `state`. `other_groups` tells whether
    /// the topic has a writable queue in a group other than the one just tried.
    pub fn decide(
        &self,
        state: &mut RetryState,
        outcome: &AttemptOutcome,
        other_groups: bool,
    ) -> NextStep {
        match outcome {
            AttemptOutcome::Stored => NextStep::Done,
            AttemptOutcome::Final => NextStep::GiveUp,
            AttemptOutcome::NotLeader { leader_addr } => {
                state.redirects += 1;
                if state.redirects > self.max_free_redirects {
                    return self.after_failure(state, other_groups);
                }
                match leader_addr {
                    Some(addr) => NextStep::FollowLeader(addr.clone()),
                    None if other_groups => NextStep::OtherGroup,
                    None => NextStep::AwaitLeader,
                }
            }
            AttemptOutcome::Unavailable { maybe_stored } => {
                if *maybe_stored {
                    if !self.retry_when_maybe_stored {
                        return NextStep::GiveUp;
                    }
                    // Same queue only: the broker recognises a retried copy (by UNIQ_KEY)
                    // within the queue the first attempt may have reached.
                    state.failures += 1;
                    return if state.failures > self.retries_when_failed {
                        NextStep::GiveUp
                    } else {
                        NextStep::WaitThenRetry
                    };
                }
                self.after_failure(state, other_groups)
            }
        }
    }

    fn after_failure(&self, state: &mut RetryState, other_groups: bool) -> NextStep {
        state.failures += 1;
        if state.failures > self.retries_when_failed {
            NextStep::GiveUp
        } else if other_groups {
            NextStep::OtherGroup
        } else {
            NextStep::WaitThenRetry
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn not_leader(addr: Option<&str>) -> AttemptOutcome {
        AttemptOutcome::NotLeader {
            leader_addr: addr.map(str::to_owned),
        }
    }

    const DOWN: AttemptOutcome = AttemptOutcome::Unavailable {
        maybe_stored: false,
    };

    #[test]
    fn not_leader_follows_the_hint_without_counting_a_failure() {
        let p = RetryPolicy::default();
        let mut s = RetryState::default();
        for _ in 0..p.max_free_redirects {
            assert_eq!(
                p.decide(&mut s, &not_leader(Some("b:1")), false),
                NextStep::FollowLeader("b:1".into())
            );
        }
        assert_eq!(s.failures, 0);
        // Past the free redirects, bouncing counts as failing.
        assert_eq!(
            p.decide(&mut s, &not_leader(Some("b:1")), false),
            NextStep::WaitThenRetry
        );
        assert_eq!(s.failures, 1);
    }

    #[test]
    fn not_leader_without_hint_waits_or_moves_on() {
        let p = RetryPolicy::default();
        let mut s = RetryState::default();
        assert_eq!(
            p.decide(&mut s, &not_leader(None), false),
            NextStep::AwaitLeader
        );
        assert_eq!(
            p.decide(&mut s, &not_leader(None), true),
            NextStep::OtherGroup
        );
        assert_eq!(s.failures, 0);
    }

    #[test]
    fn unavailable_moves_to_another_group_then_gives_up() {
        let p = RetryPolicy::default();
        let mut s = RetryState::default();
        assert_eq!(p.decide(&mut s, &DOWN, true), NextStep::OtherGroup);
        assert_eq!(p.decide(&mut s, &DOWN, false), NextStep::WaitThenRetry);
        // retryTimesWhenSendFailed = 2: the third failure is final.
        assert_eq!(p.decide(&mut s, &DOWN, true), NextStep::GiveUp);
        assert_eq!(s.failures, 3);
    }

    #[test]
    fn maybe_stored_is_retried_on_the_same_queue_unless_disallowed() {
        let lost_answer = AttemptOutcome::Unavailable { maybe_stored: true };
        let p = RetryPolicy::default();
        // Never another group: only the same queue recognises the retried copy.
        let mut s = RetryState::default();
        assert_eq!(
            p.decide(&mut s, &lost_answer, true),
            NextStep::WaitThenRetry
        );
        assert_eq!(
            p.decide(&mut s, &lost_answer, true),
            NextStep::WaitThenRetry
        );
        assert_eq!(p.decide(&mut s, &lost_answer, true), NextStep::GiveUp);
        let p = RetryPolicy {
            retry_when_maybe_stored: false,
            ..p
        };
        assert_eq!(
            p.decide(&mut RetryState::default(), &lost_answer, true),
            NextStep::GiveUp
        );
    }

    #[test]
    fn an_attempt_gets_a_third_of_the_send_timeout_but_at_least_a_second() {
        let s = Duration::from_secs;
        let ms = Duration::from_millis;
        assert_eq!(attempt_timeout(s(3), s(3)), s(1));
        assert_eq!(attempt_timeout(s(30), s(30)), s(10));
        assert_eq!(
            attempt_timeout(s(30), s(4)),
            s(4),
            "never past the send's deadline"
        );
        assert_eq!(
            attempt_timeout(ms(1500), ms(1500)),
            s(1),
            "at least a second"
        );
        assert_eq!(attempt_timeout(ms(500), ms(500)), ms(500));
        assert_eq!(attempt_timeout(s(3), Duration::ZERO), Duration::ZERO);
    }

    #[test]
    fn answers_that_gave_up_waiting_may_have_stored_the_message() {
        for code in [
            ResponseCode::FlushSlaveTimeout,
            ResponseCode::FlushDiskTimeout,
            ResponseCode::SlaveNotAvailable,
            ResponseCode::ServiceNotAvailable,
        ] {
            assert!(unconfirmed(code), "{code:?}");
        }
        for code in [
            ResponseCode::Ok,
            ResponseCode::NotLeader,
            ResponseCode::MessageIllegal,
            ResponseCode::TopicNotExist,
        ] {
            assert!(!unconfirmed(code), "{code:?}");
        }
        // Such an answer is retried on the same queue until the send's retries run out.
        let p = RetryPolicy::default();
        let mut s = RetryState::default();
        let timed_out = AttemptOutcome::Unavailable { maybe_stored: true };
        assert_eq!(p.decide(&mut s, &timed_out, true), NextStep::WaitThenRetry);
    }

    #[test]
    fn final_refusals_and_success_stop() {
        let p = RetryPolicy {
            retries_when_failed: 0,
            ..RetryPolicy::default()
        };
        assert_eq!(
            p.decide(&mut RetryState::default(), &AttemptOutcome::Final, true),
            NextStep::GiveUp
        );
        assert_eq!(
            p.decide(&mut RetryState::default(), &AttemptOutcome::Stored, true),
            NextStep::Done
        );
        assert_eq!(
            p.decide(&mut RetryState::default(), &DOWN, true),
            NextStep::GiveUp
        );
    }
}
