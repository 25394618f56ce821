//! Property tests of the planner: for generated records (times from 1970 to the far
//! future, every failure kind, any count of consecutive failures, refused pictures,
//! changed credentials), generated clocks and generated policies, every decision keeps
//! the contract's promises. Seeded, so a failure names a case that can be replayed.

use super::*;
use crate::outcome::CallFailure;
use crate::outcome::CallOutcome;
use crate::plan::transition::record_outcome;
use crate::state::Applied;
use crate::testing::cases;

const NOW_SECS: u64 = 1_800_000_000;

fn digest(rng: &mut fastrand::Rng) -> Digest {
    Digest::of(&[rng.u8(..3)])
}

/// A time anywhere from 1970 to a thousand years on, mostly near now.
fn time(rng: &mut fastrand::Rng) -> SystemTime {
    let secs = match rng.u8(..4) {
        0 => rng.u64(..NOW_SECS * 20),
        1 => NOW_SECS + rng.u64(..30 * 24 * 3600),
        _ => NOW_SECS - rng.u64(..24 * 3600),
    };
    SystemTime::UNIX_EPOCH + Duration::from_millis(secs * 1000 + rng.u64(..1000))
}

fn credentials(rng: &mut fastrand::Rng) -> String {
    ["aaaa", "bbbb"][rng.usize(..2)].to_owned()
}

fn record(rng: &mut fastrand::Rng) -> InstanceRecord {
    InstanceRecord {
        applied: rng.bool().then(|| Applied {
            sha256: digest(rng),
            at: time(rng),
            url_avatar: None,
            perceptual_hash: None,
        }),
        last_call_at: rng.bool().then(|| time(rng)),
        live_checked_at: rng.bool().then(|| time(rng)),
        live_matched_at: rng.bool().then(|| time(rng)),
        read_started_at: rng.bool().then(|| time(rng)),
        state_instance: None,
        drifted: rng.bool().then(|| "another picture is live".to_owned()),
        call_started_at: rng.bool().then(|| time(rng)),
        failure: rng.bool().then(|| {
            Box::new(Failure {
                kind: FailureKind::ALL[rng.usize(..FailureKind::ALL.len())],
                reason: "generated".to_owned(),
                consecutive: if rng.bool() {
                    rng.u32(1..8)
                } else {
                    rng.u32(..)
                },
                next_attempt_at: time(rng),
                sha256: digest(rng),
                credentials: credentials(rng),
            })
        }),
        refused_sha256: (0..rng.usize(..3)).map(|_| digest(rng)).collect(),
    }
}

fn policy(rng: &mut fastrand::Rng) -> Policy {
    let millis = match rng.u8(..3) {
        0 => rng.u64(1..1000),
        1 => rng.u64(1_000..60_000),
        _ => rng.u64(1..=crate::clock::MAX_DURATION.as_millis() as u64),
    };
    Policy {
        min_interval: Duration::from_millis(millis),
    }
}

/// The longest any recorded wait may be, from `from`, under `policy`.
fn longest_wait(record: &InstanceRecord, policy: &Policy) -> Duration {
    let backoff = record.failure.as_ref().map_or(Duration::ZERO, |f| {
        backoff(f.kind, f.consecutive, policy.min_interval, 1.0)
    });
    let unanswered = if record.call_started_at.is_some() {
        crate::outcome::ANSWER_DEADLINE + policy.min_interval
    } else {
        Duration::ZERO
    };
    backoff.max(policy.min_interval).max(unanswered)
}

#[test]
fn every_decision_keeps_the_throttle_and_the_policys_bounds() {
    let mut rng = fastrand::Rng::with_seed(0x706c_616e);
    for case in 0..cases(100_000) {
        let record = record(&mut rng);
        let policy = policy(&mut rng);
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(NOW_SECS);
        let want = digest(&mut rng);
        let drift = [DriftMode::Off, DriftMode::Warn, DriftMode::Heal][rng.usize(..3)];
        let desired = Desired::Picture {
            digest: want,
            drift,
            credentials: Some(credentials(&mut rng)),
        };
        let decision = decide(&desired, Some(&record), now, &policy);
        let why = || format!("case {case}: {decision:?}\nfrom {record:?}\nunder {policy:?}");
        let confirmed = record.applied.as_ref().is_some_and(|a| a.sha256 == want);
        let (drifted, off) = (record.drifted.is_some(), drift == DriftMode::Off);
        let in_sync = confirmed && (!drifted || off);
        assert_eq!(decision == Decision::InSync, in_sync, "{}", why());
        let reported_drifted = confirmed && drifted && drift == DriftMode::Warn;
        assert_eq!(
            matches!(decision, Decision::Drifted { .. }),
            reported_drifted,
            "{}",
            why()
        );
        let healing = confirmed && drifted && drift == DriftMode::Heal;
        if (!confirmed || healing) && record.refused_sha256.contains(&want) {
            assert!(matches!(decision, Decision::Refused { .. }), "{}", why());
        }
        // The throttle, counted from a last answer that cannot be later than now, or from
        // the latest answer of a call whose answer was not recorded.
        let unanswered = (record.call_started_at)
            .map(|at| at.min(now) + crate::outcome::ANSWER_DEADLINE + policy.min_interval);
        let throttle = (record.last_call_at)
            .map(|at| at.min(now) + policy.min_interval)
            .max(unanswered);
        match &decision {
            Decision::Due { .. } => {
                assert!(throttle.is_none_or(|t| t <= now), "{}", why());
            }
            Decision::Wait { until, .. } | Decision::Blocked { until, .. } => {
                assert!(*until > now, "{}", why());
                assert!(throttle.is_none_or(|t| *until >= t), "{}", why());
                assert!(*until <= now + longest_wait(&record, &policy), "{}", why());
            }
            _ => assert_eq!(decision.wake_at(), None, "{}", why()),
        }
    }
}

#[test]
fn every_recorded_failure_waits_its_rung_and_no_more() {
    let mut rng = fastrand::Rng::with_seed(0x6c61_6464);
    for case in 0..cases(100_000) {
        let previous = rng.bool().then(|| record(&mut rng));
        let policy = policy(&mut rng);
        let finished = time(&mut rng);
        let kind = FailureKind::ALL[rng.usize(..FailureKind::ALL.len())];
        let outcome = CallOutcome::Failed(CallFailure {
            kind,
            detail: "generated".to_owned(),
        });
        let jitter = rng.f64();
        let next = record_outcome(
            previous.as_ref(),
            digest(&mut rng),
            "aaaa",
            &outcome,
            finished,
            &policy,
            jitter,
        );
        let failure = next.failure.as_ref().unwrap();
        let waited = failure.next_attempt_at.duration_since(finished).unwrap();
        let rung = |j| backoff(kind, failure.consecutive, policy.min_interval, j);
        assert!(
            waited >= rung(0.0) && waited <= rung(1.0),
            "case {case}: {waited:?}"
        );
        assert!(waited >= policy.min_interval, "case {case}: {waited:?}");
        assert_eq!(next.last_call_at, Some(finished), "case {case}");
        assert_eq!(next.call_started_at, None, "case {case}");
        // What was confirmed before stays confirmed.
        assert_eq!(
            next.applied,
            previous.and_then(|p| p.applied),
            "case {case}"
        );
    }
}
