//! PURE: every change to an instance's record, as a function of (record, event, time).
//!
//! The engine never edits a record by hand: a call that landed, a picture adopted, a poll,
//! a look at the live picture, a call that never went out, a release from a slow backoff
//! each go through one function here, and the result is what the state keeps. So the
//! promises the records carry (the throttle's times never run backwards, a confirmed
//! picture is forgotten only for another confirmed one) are tested here, on values.

use super::{Policy, backoff};
use crate::outcome::{CallOutcome, FailureKind};
use crate::picture::Digest;
use crate::state::{Applied, Failure, InstanceRecord};
use std::sync::Arc;
use std::time::SystemTime;

/// What a look at the live picture found, as far as the record is concerned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sight<'a> {
    /// The live picture is the applied one.
    Matches,
    /// Another picture (or none) is live; why, for people.
    Differs(&'a str),
    /// It could not be told (a failed read): the record keeps what it knew.
    Unknown,
}

/// What a poll of `getStateInstance` answered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Polled<'a> {
    /// `stateInstance` as GREEN-API spells it (`authorized`, `notAuthorized`, …).
    pub state: &'a str,
    /// Whether uploads may go to it again.
    pub authorized: bool,
}

/// The record after the live picture was found to be `digest` (adoption): applied, with no
/// call made, so the throttle and any backoff are as they were.
pub fn record_adopted(
    previous: Option<&InstanceRecord>,
    digest: Digest,
    url_avatar: String,
    at: SystemTime,
) -> InstanceRecord {
    let mut record = previous.cloned().unwrap_or_default();
    record.applied = Some(Applied {
        sha256: digest,
        at,
        url_avatar: Some(url_avatar),
        perceptual_hash: None,
    });
    // The start recorded for it was only a read.
    record.call_started_at = None;
    record.failure = None;
    record.drifted = None;
    record.live_checked_at = Some(at);
    record.live_matched_at = Some(at);
    record
}

/// The record after a call of `digest` (sent with `credentials`) finished at `finished_at`
/// with `outcome`. Pure: `jitter` in `[0, 1)` comes from the caller.
pub fn record_outcome(
    previous: Option<&InstanceRecord>,
    digest: Digest,
    credentials: &str,
    outcome: &CallOutcome,
    finished_at: SystemTime,
    policy: &Policy,
    jitter: f64,
) -> InstanceRecord {
    let mut record = previous.cloned().unwrap_or_default();
    record.last_call_at = Some(finished_at);
    record.call_started_at = None;
    match outcome {
        CallOutcome::Applied { url_avatar } => {
            record.applied = Some(Applied {
                sha256: digest,
                at: finished_at,
                url_avatar: url_avatar.clone(),
                perceptual_hash: None,
            });
            record.failure = None;
            record.drifted = None;
        }
        CallOutcome::Failed(failure) => {
            let consecutive = record.failure.as_ref().map_or(1, |f| f.consecutive + 1);
            if failure.kind == FailureKind::RefusedBytes {
                record.remember_refused(digest);
            }
            record.failure = Some(Box::new(Failure {
                kind: failure.kind,
                reason: failure.detail.clone(),
                consecutive,
                next_attempt_at: finished_at
                    + backoff(failure.kind, consecutive, policy.min_interval, jitter),
                sha256: digest,
                credentials: credentials.to_owned(),
            }));
        }
    }
    record
}

/// `record` with the perceptual `fingerprint` of `digest` kept with its applied picture,
/// when that picture is `digest` (drift compares the live picture with it).
pub fn record_fingerprint(
    mut record: InstanceRecord,
    digest: Digest,
    fingerprint: Arc<str>,
) -> InstanceRecord {
    if let Some(applied) = record.applied.as_mut()
        && applied.sha256 == digest
    {
        applied.perceptual_hash = Some(fingerprint);
    }
    record
}

/// The record after a poll at `at`: the state it answered, and an authorised instance
/// released from its slow backoff (sent to as soon as the throttle allows).
pub fn record_polled(
    previous: &InstanceRecord,
    polled: Polled<'_>,
    at: SystemTime,
) -> InstanceRecord {
    let mut record = previous.clone();
    if polled.authorized {
        release(&mut record, at);
    }
    record.state_instance = Some(polled.state.to_owned());
    record
}

/// The record after a look at `at` at the live picture, made while `digest` was the applied
/// one; `None` when another picture was applied meanwhile (the look is stale and changes
/// nothing).
pub fn record_looked(
    previous: &InstanceRecord,
    digest: Digest,
    sight: Sight<'_>,
    at: SystemTime,
) -> Option<InstanceRecord> {
    if previous.applied.as_ref().map(|a| a.sha256) != Some(digest) {
        return None;
    }
    let mut record = previous.clone();
    record.live_checked_at = Some(at);
    match sight {
        Sight::Matches => {
            record.drifted = None;
            record.live_matched_at = Some(at);
        }
        Sight::Differs(why) => record.drifted = Some(why.to_owned()),
        Sight::Unknown => {}
    }
    Some(record)
}

/// The record of an instance a read of whose live state starts at `at`.
pub fn record_read_started(previous: &InstanceRecord, at: SystemTime) -> InstanceRecord {
    let mut record = previous.clone();
    record.read_started_at = Some(at);
    record
}

/// The record after a call that started was never sent (its prepared picture was damaged):
/// the `callStartedAt` it replaced, `before`, is put back.
pub fn record_not_sent(previous: &InstanceRecord, before: Option<SystemTime>) -> InstanceRecord {
    let mut record = previous.clone();
    record.call_started_at = before;
    record
}

/// The record of an instance released from its backoff at `at` (an operator's reload, or
/// a poll that found it authorised): due once the throttle allows.
pub fn record_released(previous: &InstanceRecord, at: SystemTime) -> InstanceRecord {
    let mut record = previous.clone();
    release(&mut record, at);
    record
}

fn release(record: &mut InstanceRecord, at: SystemTime) {
    if let Some(failure) = record.failure.as_mut() {
        failure.next_attempt_at = at;
    }
}

#[cfg(test)]
mod tests;
