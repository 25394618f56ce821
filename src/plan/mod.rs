//! PURE: (desired, recorded, now, policy) → what to do with each instance, and when the
//! next thing needs doing. Every change to a record is in [`transition`].
//!
//! No async, no clock, no I/O: time comes in as `now`, randomness as `jitter`. The
//! contract's rules live here: call only when the desired picture differs from the last
//! one confirmed; never two calls of one instance closer than `minInterval` (counted from
//! the previous answer); per-kind backoff (`minInterval × 2^(n-1)` capped at 5 minutes,
//! 15 minutes for an unusable instance, an hour for a used-up quota, plus up to 20 %
//! jitter); never resend bytes the gateway refused.

use crate::manifest::DriftMode;
use crate::outcome::{ANSWER_DEADLINE, FailureKind, LocalProblem};
use crate::picture::Digest;
use crate::state::{Failure, InstanceRecord};
use std::borrow::Cow;
use std::time::{Duration, SystemTime};

pub mod rollout;
pub mod transition;

/// The ladder's cap for retryable failures.
pub const BACKOFF_CAP: Duration = Duration::from_secs(5 * 60);
/// "Retry slowly": an instance that is not usable (bad token, wrong host, logged out).
pub const SLOW_RETRY: Duration = Duration::from_secs(15 * 60);
/// "Retry much later": the account's quota is used up.
pub const QUOTA_RETRY: Duration = Duration::from_secs(60 * 60);
/// The largest jitter, as a fraction of the wait.
pub const MAX_JITTER: f64 = 0.2;

/// The knobs the planner needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Policy {
    /// Least time between the end of one call of an instance and the start of the next.
    pub min_interval: Duration,
}

/// How a failure kind is retried.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Retry {
    /// Exponential ladder from `minInterval`, capped: transient trouble.
    Ladder,
    /// After [`SLOW_RETRY`], or at once when the picture or credentials change. One-shot
    /// runs give up on these at once.
    Slowly,
    /// After [`QUOTA_RETRY`].
    MuchLater,
    /// Never with the same bytes.
    NotTheseBytes,
}

impl Retry {
    /// The retry class of a failure kind (the contract's GREEN-API table).
    pub fn of(kind: FailureKind) -> Self {
        match kind {
            FailureKind::RateOverlimit
            | FailureKind::NotApplied
            | FailureKind::InstanceStarting
            | FailureKind::TooManyRequests
            | FailureKind::ServerError
            | FailureKind::Timeout
            | FailureKind::Connection
            | FailureKind::UnexpectedAnswer => Self::Ladder,
            FailureKind::Unauthorized | FailureKind::Forbidden | FailureKind::InstanceNotUsable => {
                Self::Slowly
            }
            FailureKind::QuotaExceeded => Self::MuchLater,
            FailureKind::RefusedBytes => Self::NotTheseBytes,
        }
    }
}

/// What an instance should show, as far as this pass could tell.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Desired {
    /// `suspend: true`.
    Suspended,
    /// The picture or the token cannot be used.
    Unusable(LocalProblem),
    /// This picture, sent with these credentials (a one-way fingerprint of apiUrl + token).
    Picture {
        /// SHA-256 of the picture's bytes.
        digest: Digest,
        /// What a drifted live picture means for it.
        drift: DriftMode,
        /// Fingerprint of apiUrl and token; `None` where the token is not at hand
        /// (`--status` run without the service's secrets): recorded failures then hold.
        credentials: Option<String>,
    },
}

/// Why a call that is wanted must wait.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WaitCause {
    /// `minInterval` since the last call has not passed.
    Throttle,
    /// A retryable failure's backoff is in force.
    Backoff(Failure),
}

/// What holds back an upload that is due (CONTRACT section 12). The engine keeps one timer
/// for each (the next wave, the window's opening), not one per instance.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Hold {
    /// Its wave (0 is the first, of `waves`) has not started: the one before has not landed
    /// yet, or its pause runs until `opens`.
    Wave {
        /// Its wave.
        wave: usize,
        /// How many waves the rollout has.
        waves: usize,
        /// When it starts, once known.
        opens: Option<SystemTime>,
    },
    /// The rollout halted at `wave`: nothing more is uploaded for this revision.
    Halted {
        /// The wave that failed.
        wave: usize,
        /// How many waves the rollout has.
        waves: usize,
    },
    /// A change window holds every upload until `opens` (`None`: not within a year).
    Window {
        /// When uploads may happen again.
        opens: Option<SystemTime>,
    },
}

impl Hold {
    /// The stable label, as `errorKind`.
    pub fn label(self) -> &'static str {
        match self {
            Self::Wave { .. } => "rollout-wave",
            Self::Halted { .. } => "rollout-halted",
            Self::Window { .. } => "change-window",
        }
    }

    /// Why, for people.
    pub fn describe(self) -> String {
        let when = |at: Option<SystemTime>| match at {
            Some(at) => crate::clock::rfc3339(at),
            None => "not within a year".to_owned(),
        };
        match self {
            Self::Wave {
                wave,
                waves,
                opens: Some(at),
            } => format!(
                "in wave {} of {waves}, which starts at {} (the pause after wave {})",
                wave + 1,
                crate::clock::rfc3339(at),
                wave
            ),
            Self::Wave { wave, waves, .. } => format!(
                "in wave {} of {waves}, which starts once wave {} has landed",
                wave + 1,
                wave
            ),
            Self::Halted { wave, waves } => format!(
                "the rollout halted at wave {} of {waves}; `avatar-sync --reconcile --resume` \
                 (or SIGUSR1 to the daemon) resumes it, a new revision starts a new one",
                wave + 1
            ),
            Self::Window { opens } => {
                format!("a change window holds uploads; it opens at {}", when(opens))
            }
        }
    }
}

/// The decision for one instance.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Left alone on purpose.
    Suspended,
    /// Cannot be sent: the picture or token is unusable. No call.
    Unusable(LocalProblem),
    /// The desired picture is the one last confirmed.
    InSync,
    /// The desired picture was confirmed, but the live one is another (`drift: warn`).
    Drifted {
        /// The desired (and confirmed) picture.
        digest: Digest,
        /// What the last look found.
        reason: String,
    },
    /// The gateway refused exactly these bytes before; waiting for a new picture.
    Refused {
        /// The refused picture.
        digest: Digest,
        /// What the gateway said, if still recorded.
        reason: Option<String>,
    },
    /// Call now.
    Due {
        /// The picture to send.
        digest: Digest,
    },
    /// Call, but not before `until`.
    Wait {
        /// The picture to send.
        digest: Digest,
        /// Not before this time.
        until: SystemTime,
        /// Why.
        cause: WaitCause,
    },
    /// Call, but a rollout or a change window holds it back.
    Held {
        /// The picture to send.
        digest: Digest,
        /// What holds it.
        hold: Hold,
    },
    /// The instance is not usable (bad token, wrong host, logged out): retried slowly,
    /// or at once when the picture or credentials change; one-shot runs give up.
    Blocked {
        /// The picture to send.
        digest: Digest,
        /// The slow retry's time.
        until: SystemTime,
        /// The failure in force.
        failure: Failure,
    },
}

impl Decision {
    /// When this decision needs looking at again, if it is waiting for time to pass.
    pub fn wake_at(&self) -> Option<SystemTime> {
        match self {
            Self::Wait { until, .. } | Self::Blocked { until, .. } => Some(*until),
            _ => None,
        }
    }
}

/// Decides what to do with one instance.
pub fn decide(
    desired: &Desired,
    record: Option<&InstanceRecord>,
    now: SystemTime,
    policy: &Policy,
) -> Decision {
    let (digest, drift, credentials) = match desired {
        Desired::Suspended => return Decision::Suspended,
        Desired::Unusable(problem) => return Decision::Unusable(problem.clone()),
        Desired::Picture {
            digest,
            drift,
            credentials,
        } => (*digest, *drift, credentials.as_deref()),
    };
    let empty = InstanceRecord::default();
    let record = within_policy(record.unwrap_or(&empty), now, policy);

    if record.applied.as_ref().map(|a| a.sha256) == Some(digest) {
        match (&record.drifted, drift) {
            (None, _) | (Some(_), DriftMode::Off) => return Decision::InSync,
            (Some(reason), DriftMode::Warn) => {
                let reason = reason.clone();
                return Decision::Drifted { digest, reason };
            }
            // Heal: sent again, under the rules below.
            (Some(_), DriftMode::Heal) => {}
        }
    }
    if record.refused_sha256.contains(&digest) {
        let reason = record
            .failure
            .as_ref()
            .filter(|f| f.kind == FailureKind::RefusedBytes && f.sha256 == digest)
            .map(|f| f.reason.clone());
        return Decision::Refused { digest, reason };
    }

    // The throttle counts from the last answer, or from the latest moment a call whose
    // answer was never recorded could have been answered.
    let unanswered = record
        .call_started_at
        .map(|at| at + ANSWER_DEADLINE + policy.min_interval);
    let throttle_until = record
        .last_call_at
        .map(|at| at + policy.min_interval)
        .max(unanswered);
    let failure = record
        .failure
        .as_ref()
        .filter(|f| still_in_force(f, digest, credentials));
    let backoff_until = failure.map(|f| f.next_attempt_at);
    let until = throttle_until.max(backoff_until);

    match (until, failure) {
        (Some(until), _) if until <= now => Decision::Due { digest },
        (None, _) => Decision::Due { digest },
        (Some(until), Some(f)) if Retry::of(f.kind) == Retry::Slowly => Decision::Blocked {
            digest,
            until,
            failure: Failure::clone(f),
        },
        (Some(until), Some(f)) if backoff_until >= throttle_until => Decision::Wait {
            digest,
            until,
            cause: WaitCause::Backoff(Failure::clone(f)),
        },
        (Some(until), _) => Decision::Wait {
            digest,
            until,
            cause: WaitCause::Throttle,
        },
    }
}

/// `record` as a replace (`--replace`, the daemon's `replace` file) has the planner see it:
/// nothing applied, so the desired picture is sent again, while the throttle, any backoff
/// and refused bytes hold as recorded.
pub fn as_replaced(record: &InstanceRecord) -> InstanceRecord {
    InstanceRecord {
        applied: None,
        drifted: None,
        ..record.clone()
    }
}

/// `record` with its times clamped to what the policy could have produced by `now`: a call
/// cannot have started or ended after now, and no backoff outlasts its rung (with the most jitter)
/// counted from that call. So a clock that ran ahead, or a hand-edited state, never blocks
/// an instance for years. Borrowed when nothing needed clamping. The reconciler stores a
/// clamped record, so the clamp happens once and later decisions stand still.
pub fn within_policy<'r>(
    record: &'r InstanceRecord,
    now: SystemTime,
    policy: &Policy,
) -> Cow<'r, InstanceRecord> {
    let last_call = record.last_call_at.map(|at| at.min(now));
    let call_started = record.call_started_at.map(|at| at.min(now));
    let latest_retry = |f: &Failure| {
        let longest = backoff(f.kind, f.consecutive, policy.min_interval, 1.0);
        f.next_attempt_at.min(last_call.unwrap_or(now) + longest)
    };
    let failure_clamped = record
        .failure
        .as_ref()
        .is_some_and(|f| latest_retry(f) != f.next_attempt_at);
    if last_call == record.last_call_at
        && call_started == record.call_started_at
        && !failure_clamped
    {
        return Cow::Borrowed(record);
    }
    let mut clamped = record.clone();
    clamped.last_call_at = last_call;
    clamped.call_started_at = call_started;
    if let Some(failure) = clamped.failure.as_mut() {
        failure.next_attempt_at = latest_retry(failure);
    }
    Cow::Owned(clamped)
}

/// A recorded failure holds while the credentials are the same (or unknown); a slow
/// (unusable instance) or refused-bytes failure also ends when the picture changes.
fn still_in_force(failure: &Failure, digest: Digest, credentials: Option<&str>) -> bool {
    credentials.is_none_or(|c| failure.credentials == c)
        && match Retry::of(failure.kind) {
            Retry::Slowly | Retry::NotTheseBytes => failure.sha256 == digest,
            Retry::Ladder | Retry::MuchLater => true,
        }
}

/// How long to wait after the `consecutive`-th failure in a row of `kind`.
/// `jitter` in `[0, 1)` adds up to [`MAX_JITTER`] of the wait.
pub fn backoff(
    kind: FailureKind,
    consecutive: u32,
    min_interval: Duration,
    jitter: f64,
) -> Duration {
    let base = match Retry::of(kind) {
        Retry::Ladder => {
            let cap = BACKOFF_CAP.max(min_interval);
            let doublings = consecutive.saturating_sub(1).min(20);
            min_interval.saturating_mul(1 << doublings).min(cap)
        }
        Retry::Slowly => SLOW_RETRY.max(min_interval),
        Retry::MuchLater => QUOTA_RETRY.max(min_interval),
        Retry::NotTheseBytes => min_interval,
    };
    base + base.mul_f64(MAX_JITTER * jitter.clamp(0.0, 1.0))
}

#[cfg(test)]
mod properties;
#[cfg(test)]
mod tests;
