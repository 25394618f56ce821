//! The planner as a table of cases with an explicit `now`.

use super::*;
use crate::outcome::CallFailure;
use crate::outcome::{CallOutcome, LocalKind};
use crate::plan::transition::record_outcome;
use crate::state::Applied;

const T0: u64 = 1_800_000_000;

pub(super) fn at(secs: f64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(T0) + Duration::from_secs_f64(secs)
}

pub(super) fn policy() -> Policy {
    Policy {
        min_interval: Duration::from_secs(10),
    }
}

pub(super) fn a() -> Digest {
    Digest::of(b"picture a")
}

pub(super) fn b() -> Digest {
    Digest::of(b"picture b")
}

pub(super) const CREDS: &str = "0123456789abcdef";

fn want(digest: Digest) -> Desired {
    Desired::Picture {
        digest,
        drift: DriftMode::Warn,
        credentials: Some(CREDS.to_owned()),
    }
}

fn applied(digest: Digest, secs: f64) -> InstanceRecord {
    InstanceRecord {
        applied: Some(Applied {
            sha256: digest,
            at: at(secs),
            url_avatar: None,
            perceptual_hash: None,
        }),
        last_call_at: Some(at(secs)),
        ..InstanceRecord::default()
    }
}

fn failed(kind: FailureKind, digest: Digest, last_call: f64, next: f64) -> InstanceRecord {
    InstanceRecord {
        last_call_at: Some(at(last_call)),
        failure: Some(Box::new(Failure {
            kind,
            reason: format!("{kind} happened"),
            // The third failure in a row: the waits below are within its rung.
            consecutive: 3,
            next_attempt_at: at(next),
            sha256: digest,
            credentials: CREDS.to_owned(),
        })),
        ..InstanceRecord::default()
    }
}

/// The short name of a decision, with its time when it waits.
fn shape(decision: &Decision) -> String {
    let secs = |t: &SystemTime| {
        t.duration_since(at(0.0))
            .map(|d| d.as_secs_f64())
            .unwrap_or(-1.0)
    };
    match decision {
        Decision::Suspended => "suspended".into(),
        Decision::Unusable(p) => format!("unusable {}", p.kind.label()),
        Decision::InSync => "in-sync".into(),
        Decision::Drifted { .. } => "drifted".into(),
        Decision::Refused { .. } => "refused".into(),
        Decision::Due { digest } if *digest == a() => "due a".into(),
        Decision::Due { .. } => "due b".into(),
        Decision::Wait {
            until,
            cause: WaitCause::Throttle,
            ..
        } => format!("throttle until {}", secs(until)),
        Decision::Wait {
            until,
            cause: WaitCause::Backoff(f),
            ..
        } => format!("backoff {} until {}", f.kind, secs(until)),
        Decision::Blocked { until, failure, .. } => {
            format!("blocked {} until {}", failure.kind, secs(until))
        }
        Decision::Held { hold, .. } => format!("held {}", hold.label()),
    }
}

#[test]
fn a_replace_sends_an_applied_picture_again_within_the_throttle_and_backoff() {
    let replaced = |r: &InstanceRecord, now: f64| {
        shape(&decide(
            &want(a()),
            Some(&as_replaced(r)),
            at(now),
            &policy(),
        ))
    };
    let in_sync = applied(a(), 0.0);
    assert_eq!(replaced(&in_sync, 3.0), "throttle until 10");
    assert_eq!(replaced(&in_sync, 10.0), "due a");
    let mut drifted = applied(a(), 0.0);
    drifted.drifted = Some("another picture".into());
    assert_eq!(replaced(&drifted, 20.0), "due a");
    let mut backing_off = failed(FailureKind::ServerError, a(), 0.0, 40.0);
    backing_off.applied = in_sync.applied.clone();
    assert_eq!(
        replaced(&backing_off, 20.0),
        "backoff server-error until 40"
    );
    let mut refused = failed(FailureKind::RefusedBytes, a(), 0.0, 10.0);
    refused.remember_refused(a());
    assert_eq!(replaced(&refused, 20.0), "refused");
    assert_eq!(
        shape(&decide(
            &Desired::Suspended,
            Some(&as_replaced(&in_sync)),
            at(20.0),
            &policy()
        )),
        "suspended"
    );
}

#[test]
fn decisions_table() {
    let unusable = Desired::Unusable(LocalProblem::new(LocalKind::PictureMissing, "gone"));
    let mut refused = failed(FailureKind::RefusedBytes, a(), 0.0, 10.0);
    refused.remember_refused(a());
    let other_creds = {
        let mut r = failed(FailureKind::Unauthorized, a(), 0.0, 900.0);
        r.failure.as_mut().unwrap().credentials = "ffffffffffffffff".into();
        r
    };
    // (what is desired, what is recorded, now in seconds after T0, expected decision)
    let cases: Vec<(&str, Desired, Option<InstanceRecord>, f64, &str)> = vec![
        ("never applied", want(a()), None, 0.0, "due a"),
        (
            "already applied",
            want(a()),
            Some(applied(a(), 0.0)),
            1.0,
            "in-sync",
        ),
        (
            "suspended wins",
            Desired::Suspended,
            Some(applied(b(), 0.0)),
            1.0,
            "suspended",
        ),
        (
            "unusable picture",
            unusable,
            None,
            0.0,
            "unusable picture-missing",
        ),
        (
            "changed, throttled",
            want(b()),
            Some(applied(a(), 0.0)),
            3.0,
            "throttle until 10",
        ),
        (
            "changed, throttle over",
            want(b()),
            Some(applied(a(), 0.0)),
            10.0,
            "due b",
        ),
        (
            "rate-overlimit backoff",
            want(a()),
            Some(failed(FailureKind::RateOverlimit, a(), 0.0, 20.0)),
            12.0,
            "backoff rate-overlimit until 20",
        ),
        (
            "transient backoff holds for a new picture too",
            want(b()),
            Some(failed(FailureKind::ServerError, a(), 0.0, 20.0)),
            12.0,
            "backoff server-error until 20",
        ),
        (
            "backoff over",
            want(a()),
            Some(failed(FailureKind::ServerError, a(), 0.0, 20.0)),
            20.0,
            "due a",
        ),
        (
            "bad token: blocked slowly",
            want(a()),
            Some(failed(FailureKind::Unauthorized, a(), 0.0, 900.0)),
            60.0,
            "blocked unauthorized until 900",
        ),
        (
            "bad token, new picture: throttle only",
            want(b()),
            Some(failed(FailureKind::Unauthorized, a(), 0.0, 900.0)),
            5.0,
            "throttle until 10",
        ),
        (
            "bad token, token changed: due at once",
            want(a()),
            Some(other_creds),
            60.0,
            "due a",
        ),
        (
            "bad token, token unknown here (--status): still blocked",
            Desired::Picture {
                digest: a(),
                drift: DriftMode::Warn,
                credentials: None,
            },
            Some(failed(FailureKind::Unauthorized, a(), 0.0, 900.0)),
            60.0,
            "blocked unauthorized until 900",
        ),
        (
            "quota: an hour",
            want(a()),
            Some(failed(FailureKind::QuotaExceeded, a(), 0.0, 3600.0)),
            60.0,
            "backoff quota-exceeded until 3600",
        ),
        (
            "refused bytes are not resent",
            want(a()),
            Some(refused.clone()),
            999.0,
            "refused",
        ),
        (
            "a new picture after a refusal",
            want(b()),
            Some(refused),
            999.0,
            "due b",
        ),
    ];
    for (name, desired, record, now, expected) in cases {
        let decision = decide(&desired, record.as_ref(), at(now), &policy());
        assert_eq!(shape(&decision), expected, "case: {name}");
    }
}

#[test]
fn backoff_ladder_doubles_from_min_interval_and_caps_at_five_minutes() {
    let min = Duration::from_secs(10);
    let secs = |n| backoff(FailureKind::ServerError, n, min, 0.0).as_secs();
    assert_eq!(
        [secs(1), secs(2), secs(3), secs(4), secs(5)],
        [10, 20, 40, 80, 160]
    );
    assert_eq!(secs(6), 300);
    assert_eq!(secs(60), 300);
    assert_eq!(backoff(FailureKind::Unauthorized, 1, min, 0.0), SLOW_RETRY);
    assert_eq!(
        backoff(FailureKind::QuotaExceeded, 3, min, 0.0),
        QUOTA_RETRY
    );
}

#[test]
fn jitter_adds_at_most_a_fifth_and_never_goes_below_min_interval() {
    let min = Duration::from_secs(10);
    for jitter in [0.0, 0.25, 0.5, 0.999, 1.0, 7.0, -1.0] {
        let wait = backoff(FailureKind::RateOverlimit, 1, min, jitter);
        assert!(wait >= min, "{jitter}: {wait:?}");
        assert!(wait <= Duration::from_secs(12), "{jitter}: {wait:?}");
    }
    assert_eq!(
        backoff(FailureKind::TooManyRequests, 1, min, 0.5),
        Duration::from_secs(11)
    );
}

#[test]
fn a_long_min_interval_is_never_shortened_by_the_cap() {
    let min = Duration::from_secs(600);
    assert_eq!(
        backoff(FailureKind::Timeout, 4, min, 0.0),
        Duration::from_secs(600)
    );
}

#[test]
fn recording_a_success_clears_the_failure_and_throttles_from_the_answer() {
    let previous = failed(FailureKind::ServerError, a(), 0.0, 10.0);
    let outcome = CallOutcome::Applied {
        url_avatar: Some("https://pps.example/a.jpg".into()),
    };
    let record = record_outcome(
        Some(&previous),
        a(),
        CREDS,
        &outcome,
        at(12.5),
        &policy(),
        0.3,
    );
    assert_eq!(record.failure, None);
    assert_eq!(record.last_call_at, Some(at(12.5)));
    let applied = record.applied.as_ref().unwrap();
    assert_eq!((applied.sha256, applied.at), (a(), at(12.5)));
    assert_eq!(
        applied.url_avatar.as_deref(),
        Some("https://pps.example/a.jpg")
    );
    // The next change waits minInterval from when this answer arrived.
    assert_eq!(
        shape(&decide(&want(b()), Some(&record), at(20.0), &policy())),
        "throttle until 22.5"
    );
}

#[test]
fn consecutive_failures_climb_the_ladder_and_a_success_resets_it() {
    let fail = |kind| {
        CallOutcome::Failed(CallFailure {
            kind,
            detail: "x".into(),
        })
    };
    let mut record: Option<InstanceRecord> = None;
    let mut now = 0.0;
    let mut waits = Vec::new();
    for kind in [
        FailureKind::RateOverlimit,
        FailureKind::ServerError,
        FailureKind::Connection,
        FailureKind::TooManyRequests,
    ] {
        let next = record_outcome(
            record.as_ref(),
            a(),
            CREDS,
            &fail(kind),
            at(now),
            &policy(),
            0.0,
        );
        let failure = next.failure.clone().unwrap();
        let wait = failure.next_attempt_at.duration_since(at(now)).unwrap();
        waits.push(wait.as_secs());
        now += wait.as_secs_f64();
        record = Some(next);
    }
    assert_eq!(waits, [10, 20, 40, 80]);
    assert_eq!(
        record
            .as_ref()
            .unwrap()
            .failure
            .as_ref()
            .unwrap()
            .consecutive,
        4
    );

    let ok = CallOutcome::Applied { url_avatar: None };
    let record = record_outcome(record.as_ref(), a(), CREDS, &ok, at(now), &policy(), 0.0);
    let again = record_outcome(
        Some(&record),
        b(),
        CREDS,
        &fail(FailureKind::ServerError),
        at(now + 20.0),
        &policy(),
        0.0,
    );
    assert_eq!(again.failure.as_ref().unwrap().consecutive, 1);
    assert_eq!(again.applied.as_ref().unwrap().sha256, a());
}

#[test]
fn a_refusal_is_remembered_per_picture() {
    let refused = CallOutcome::Failed(CallFailure {
        kind: FailureKind::RefusedBytes,
        detail: "GREEN-API answered 400: Unsupported media type".into(),
    });
    let record = record_outcome(None, a(), CREDS, &refused, at(0.0), &policy(), 0.0);
    assert_eq!(record.refused_sha256, vec![a()]);
    match decide(&want(a()), Some(&record), at(1000.0), &policy()) {
        Decision::Refused { digest, reason } => {
            assert_eq!(digest, a());
            assert_eq!(
                reason.as_deref(),
                Some("GREEN-API answered 400: Unsupported media type")
            );
        }
        other => panic!("expected refused, got {other:?}"),
    }
}

#[test]
fn wake_at_names_the_time_of_waiting_decisions_only() {
    let record = applied(a(), 0.0);
    let wait = decide(&want(b()), Some(&record), at(1.0), &policy());
    assert_eq!(wait.wake_at(), Some(at(10.0)));
    assert_eq!(
        decide(&want(a()), Some(&record), at(1.0), &policy()).wake_at(),
        None
    );
}

#[test]
fn a_far_future_time_in_the_state_waits_no_longer_than_the_policy_allows() {
    // A clock that ran ahead, or a hand-edited state: lastCallAt in 2100, nextAttemptAt in
    // 2999. A call cannot have finished after now, and no backoff is longer than its rung.
    let far = |year: u64| SystemTime::UNIX_EPOCH + Duration::from_secs((year - 1970) * 31_557_600);
    let mut record = failed(FailureKind::ServerError, a(), 0.0, 0.0);
    record.failure.as_mut().unwrap().consecutive = 1;
    record.last_call_at = Some(far(2100));
    record.failure.as_mut().unwrap().next_attempt_at = far(2999);
    let now = at(0.0);
    let decision = decide(&want(a()), Some(&record), now, &policy());
    let latest = now + backoff(FailureKind::ServerError, 1, policy().min_interval, 1.0);
    assert!(decision.wake_at().unwrap() <= latest, "{decision:?}");

    // The throttle alone: at most minInterval from now.
    let mut throttled = applied(b(), 0.0);
    throttled.last_call_at = Some(far(2999));
    let decision = decide(&want(a()), Some(&throttled), now, &policy());
    assert_eq!(decision.wake_at(), Some(now + policy().min_interval));

    // A slow retry of an unusable instance: at most its rung, counted from now.
    let mut blocked = failed(FailureKind::Unauthorized, a(), 0.0, 0.0);
    blocked.failure.as_mut().unwrap().consecutive = 1;
    blocked.failure.as_mut().unwrap().next_attempt_at = far(2999);
    let decision = decide(&want(a()), Some(&blocked), now, &policy());
    let latest = at(0.0) + backoff(FailureKind::Unauthorized, 1, policy().min_interval, 1.0);
    assert!(decision.wake_at().unwrap() <= latest, "{decision:?}");
}

#[test]
fn a_drifted_instance_is_reported_healed_or_ignored_as_its_drift_mode_says() {
    let mut record = applied(a(), 0.0);
    record.drifted = Some("another picture is live".to_owned());
    let with = |drift| Desired::Picture {
        digest: a(),
        drift,
        credentials: Some(CREDS.to_owned()),
    };
    let decide_at = |drift, secs| decide(&with(drift), Some(&record), at(secs), &policy());
    assert_eq!(decide_at(DriftMode::Off, 60.0), Decision::InSync);
    assert!(matches!(
        decide_at(DriftMode::Warn, 60.0),
        Decision::Drifted { reason, .. } if reason == "another picture is live"
    ));
    // Heal: sent again, under the throttle like any call.
    assert_eq!(
        decide_at(DriftMode::Heal, 60.0),
        Decision::Due { digest: a() }
    );
    assert!(matches!(
        decide_at(DriftMode::Heal, 5.0),
        Decision::Wait { .. }
    ));
    // A new upload clears it.
    let ok = CallOutcome::Applied { url_avatar: None };
    let healed = record_outcome(Some(&record), a(), CREDS, &ok, at(60.0), &policy(), 0.0);
    assert_eq!(healed.drifted, None);
}
