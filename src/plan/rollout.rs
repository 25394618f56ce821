//! PURE: a revision's rollout (`rollout:`, CONTRACT section 12). Which instances a revision
//! changes and in what order they go (canaries first, then by a stable hash of the id, so
//! the same revision always makes the same waves); what became of each (derived from its
//! record, never kept twice); which wave lets an instance go; and every change to the
//! rollout's record as a function of (record, event, time).

use super::{Decision, Hold};
use crate::manifest::{Amount, InstanceId, RolloutPolicy};
use crate::outcome::FailureKind;
use crate::picture::Digest;
use crate::state::InstanceRecord;
use crate::state::rollout::{Halt, HaltFailure, MAX_HALT_FAILURES, RolloutRecord};
use sha2::{Digest as _, Sha256};
use std::time::SystemTime;

/// The revision a set of desired pictures makes: SHA-256 (hex) over every instance's id and
/// desired picture, in id order. Any change of a picture, or of who has one, is a new
/// revision, and so a new rollout; the same pictures are the same revision, however the
/// manifest is written or reloaded.
pub fn revision<'a>(desired: impl Iterator<Item = (&'a InstanceId, Digest)>) -> String {
    let mut pairs: Vec<(&InstanceId, Digest)> = desired.collect();
    pairs.sort_unstable_by(|a, b| a.0.cmp(b.0));
    let mut lines = String::with_capacity(pairs.len() * 80);
    for (id, digest) in pairs {
        lines.push_str(id.as_str());
        lines.push(' ');
        lines.push_str(&digest.to_string());
        lines.push('\n');
    }
    Digest::of(lines.as_bytes()).to_string()
}

/// The changed instances (`(id, canary)`) in wave order: canaries first, then by a stable
/// hash of the id (not the manifest's order, so a wave is a sample of the fleet).
pub fn wave_order(changed: Vec<(InstanceId, bool)>) -> Vec<InstanceId> {
    let mut keyed: Vec<(bool, [u8; 32], InstanceId)> = (changed.into_iter())
        .map(|(id, canary)| (!canary, Sha256::digest(id.as_str().as_bytes()).into(), id))
        .collect();
    keyed.sort_unstable();
    keyed.into_iter().map(|(_, _, id)| id).collect()
}

/// A rollout of `revision` over `order` (the changed instances in wave order), its first
/// wave released at `now`; `None` when the revision changes nothing.
pub fn start(
    revision: String,
    order: Vec<InstanceId>,
    policy: &RolloutPolicy,
    now: SystemTime,
) -> Option<RolloutRecord> {
    let waves = policy.cuts(order.len());
    if waves.is_empty() {
        return None;
    }
    Some(RolloutRecord {
        revision,
        started_at: now,
        instances: order,
        waves,
        wave: 0,
        wave_started_at: now,
        next_wave_at: None,
        halted: None,
        done_at: None,
    })
}

/// An instance the manifest gives a picture: what a revision is made of.
#[derive(Clone, Copy, Debug)]
pub struct Wanted<'a> {
    /// The instance.
    pub id: &'a InstanceId,
    /// Its desired picture.
    pub digest: Digest,
    /// `canary: true`.
    pub canary: bool,
}

/// The revision `wanted` makes ([`revision`]).
pub fn revision_of(wanted: &[Wanted<'_>]) -> String {
    revision(wanted.iter().map(|w| (w.id, w.digest)))
}

/// Where the rollout of a revision stands.
#[derive(Debug, PartialEq, Eq)]
pub enum Current {
    /// The one recorded is this revision's: carried on.
    Recorded(RolloutRecord),
    /// A new one, started now.
    Started(RolloutRecord),
    /// The revision changes no instance's upload: no rollout.
    Nothing,
}

/// The rollout of `revision` (made of `wanted`): `recorded` when it is that revision's,
/// else a new one started at `now` over the instances whose `applied` picture is not the
/// desired one.
pub fn current(
    revision: String,
    wanted: &[Wanted<'_>],
    applied: impl Fn(&InstanceId) -> Option<Digest>,
    recorded: Option<RolloutRecord>,
    policy: &RolloutPolicy,
    now: SystemTime,
) -> Current {
    if let Some(record) = recorded.filter(|r| r.revision == revision) {
        return Current::Recorded(record);
    }
    let changed = (wanted.iter())
        .filter(|w| applied(w.id) != Some(w.digest))
        .map(|w| (w.id.clone(), w.canary))
        .collect();
    match start(revision, wave_order(changed), policy, now) {
        Some(record) => Current::Started(record),
        None => Current::Nothing,
    }
}

/// What became of one instance of a rollout, as its record and decision tell.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Member {
    /// Not uploaded yet.
    Waiting,
    /// Uploaded (GREEN-API confirmed it); not read back yet.
    Landed,
    /// Uploaded and read back: WhatsApp shows it.
    Verified,
    /// A failure of its wave, with why.
    Failed(String),
}

impl Member {
    /// Whether its wave need not wait for it any more.
    pub fn settled(&self, verify: bool) -> bool {
        match self {
            Self::Waiting => false,
            Self::Landed => !verify,
            Self::Verified | Self::Failed(_) => true,
        }
    }
}

/// What became of the instance whose desired picture is `digest`, from its `record` and
/// the `decision` planned for it.
pub fn member(record: Option<&InstanceRecord>, decision: &Decision, digest: Digest) -> Member {
    match decision {
        Decision::Unusable(problem) => return Member::Failed(problem.message.clone()),
        Decision::Refused { reason, .. } => {
            let reason = reason.as_deref().unwrap_or("GREEN-API refused the picture");
            return Member::Failed(format!("refused-bytes: {reason}"));
        }
        _ => {}
    }
    let Some(record) = record else {
        return Member::Waiting;
    };
    match record.applied.as_ref().filter(|a| a.sha256 == digest) {
        Some(applied) => match &record.drifted {
            Some(why) => Member::Failed(format!("read back: {why}")),
            None if record.live_matched_at.is_some_and(|at| at >= applied.at) => Member::Verified,
            None => Member::Landed,
        },
        None => match record.failure.as_ref().filter(|f| f.sha256 == digest) {
            // WhatsApp's throttle is a wait, not a failure of the wave.
            Some(f)
                if !matches!(
                    f.kind,
                    FailureKind::RateOverlimit | FailureKind::TooManyRequests
                ) =>
            {
                Member::Failed(format!("{}: {}", f.kind.label(), f.reason))
            }
            _ => Member::Waiting,
        },
    }
}

/// What holds back the instance at `position` of `rollout` (in wave order), if anything.
pub fn hold(rollout: &RolloutRecord, position: usize) -> Option<Hold> {
    if rollout.done_at.is_some() {
        return None;
    }
    let waves = rollout.waves.len();
    if let Some(halt) = &rollout.halted {
        return Some(Hold::Halted {
            wave: halt.wave,
            waves,
        });
    }
    let wave = rollout.waves.partition_point(|&cut| cut <= position);
    if wave <= rollout.wave {
        return None;
    }
    let opens = (wave == rollout.wave + 1)
        .then_some(rollout.next_wave_at)
        .flatten();
    Some(Hold::Wave { wave, waves, opens })
}

/// The instances of wave `wave` (their positions).
pub fn wave_positions(rollout: &RolloutRecord, wave: usize) -> std::ops::Range<usize> {
    let start = wave.checked_sub(1).map_or(0, |w| rollout.waves[w]);
    start..rollout.waves.get(wave).copied().unwrap_or(start)
}

/// How many failures wave `wave` may have without halting.
pub fn failure_budget(rollout: &RolloutRecord, wave: usize, max: Amount) -> usize {
    max.of_floor(wave_positions(rollout, wave).len())
}

/// The rollout once its released wave landed at `now`: done if it was the last, else the
/// next wave starts after `pause`.
pub fn wave_landed(
    rollout: &RolloutRecord,
    now: SystemTime,
    pause: std::time::Duration,
) -> RolloutRecord {
    let mut next = rollout.clone();
    if rollout.wave + 1 >= rollout.waves.len() {
        next.done_at = Some(now);
        next.next_wave_at = None;
    } else {
        next.next_wave_at = Some(now + pause);
    }
    next
}

/// The rollout with its next wave released, if its pause is over at `now`.
pub fn advance(rollout: &RolloutRecord, now: SystemTime) -> Option<RolloutRecord> {
    let at = rollout.next_wave_at.filter(|&at| at <= now)?;
    if rollout.halted.is_some() || rollout.done_at.is_some() {
        return None;
    }
    let mut next = rollout.clone();
    next.wave += 1;
    next.wave_started_at = at;
    next.next_wave_at = None;
    Some(next)
}

/// The rollout halted at `now` by `failures` (id, why) of its released wave.
pub fn halted(
    rollout: &RolloutRecord,
    now: SystemTime,
    failures: Vec<(InstanceId, String)>,
) -> RolloutRecord {
    let mut next = rollout.clone();
    let failed = failures.len();
    next.halted = Some(Halt {
        at: now,
        wave: rollout.wave,
        failed,
        failures: (failures.into_iter().take(MAX_HALT_FAILURES))
            .map(|(id_instance, reason)| HaltFailure {
                id_instance,
                reason,
            })
            .collect(),
    });
    next.next_wave_at = None;
    next
}

/// The halted rollout resumed at `now` (`--resume`, SIGUSR1): its wave counts as landed,
/// and the next starts at once (the operator has looked).
pub fn resumed(rollout: &RolloutRecord, now: SystemTime) -> Option<RolloutRecord> {
    rollout.halted.as_ref()?;
    let mut next = rollout.clone();
    next.halted = None;
    Some(wave_landed(&next, now, std::time::Duration::ZERO))
}

#[cfg(test)]
#[path = "rollout_tests.rs"]
mod tests;
