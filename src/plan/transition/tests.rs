//! Each record transition with exact values, then a property: no sequence of events moves
//! a record's call times backwards or forgets a confirmed picture except for another one.

use super::*;
use crate::outcome::CallFailure;
use crate::testing::cases;
use std::time::Duration;

use crate::plan::tests::{CREDS, a, b, policy};

fn at(secs: u64) -> SystemTime {
    crate::plan::tests::at(secs as f64)
}

fn applied(digest: Digest, secs: u64) -> InstanceRecord {
    InstanceRecord {
        applied: Some(Applied {
            sha256: digest,
            at: at(secs),
            url_avatar: Some("https://pps.whatsapp.net/a.jpg".to_owned()),
            perceptual_hash: Some("fp-a".into()),
        }),
        last_call_at: Some(at(secs)),
        ..InstanceRecord::default()
    }
}

fn failure(kind: FailureKind) -> CallOutcome {
    CallOutcome::Failed(CallFailure {
        kind,
        detail: format!("{kind} happened"),
    })
}

#[test]
fn a_call_that_applied_records_the_picture_its_time_and_fingerprint() {
    let before = InstanceRecord {
        call_started_at: Some(at(5)),
        drifted: Some("another picture is live".to_owned()),
        ..applied(b(), 0)
    };
    let ok = CallOutcome::Applied {
        url_avatar: Some("https://pps.whatsapp.net/new.jpg".to_owned()),
    };
    let after = record_outcome(Some(&before), a(), CREDS, &ok, at(7), &policy(), 0.5);
    let after = record_fingerprint(after, a(), "fp".into());
    let expected = InstanceRecord {
        applied: Some(Applied {
            sha256: a(),
            at: at(7),
            url_avatar: Some("https://pps.whatsapp.net/new.jpg".to_owned()),
            perceptual_hash: Some("fp".into()),
        }),
        last_call_at: Some(at(7)),
        ..InstanceRecord::default()
    };
    assert_eq!(after, expected);
}

#[test]
fn a_failed_call_keeps_the_applied_picture_and_its_fingerprint() {
    let before = applied(b(), 0);
    let failed = failure(FailureKind::ServerError);
    let after = record_outcome(Some(&before), a(), CREDS, &failed, at(20), &policy(), 0.0);
    // A fingerprint of another picture than the applied one is not kept.
    let after = record_fingerprint(after, a(), "fp".into());
    assert_eq!(after.applied, before.applied);
    assert_eq!(after.last_call_at, Some(at(20)));
    let f = after.failure.unwrap();
    assert_eq!(
        (f.kind, f.consecutive, f.sha256),
        (FailureKind::ServerError, 1, a())
    );
    // The first rung: minInterval, no jitter.
    assert_eq!(f.next_attempt_at, at(30));
    assert_eq!(f.credentials, CREDS);
}

#[test]
fn a_poll_records_the_state_and_releases_an_authorised_instance_only() {
    let blocked = record_outcome(
        None,
        a(),
        CREDS,
        &failure(FailureKind::InstanceNotUsable),
        at(0),
        &policy(),
        0.0,
    );
    assert_eq!(blocked.failure.as_ref().unwrap().next_attempt_at, at(900));
    let still = Polled {
        state: "notAuthorized",
        authorized: false,
    };
    let polled = record_polled(&blocked, still, at(300));
    assert_eq!(polled.state_instance.as_deref(), Some("notAuthorized"));
    assert_eq!(polled.failure.as_ref().unwrap().next_attempt_at, at(900));
    let back = Polled {
        state: "authorized",
        authorized: true,
    };
    let released = record_polled(&polled, back, at(600));
    assert_eq!(released.state_instance.as_deref(), Some("authorized"));
    assert_eq!(released.failure.as_ref().unwrap().next_attempt_at, at(600));
    // Everything else is as it was.
    assert_eq!(released.last_call_at, blocked.last_call_at);
    assert_eq!(released.failure.as_ref().unwrap().consecutive, 1);
}

#[test]
fn a_look_records_drift_and_its_time_and_a_stale_look_changes_nothing() {
    let record = applied(a(), 0);
    let differs = record_looked(&record, a(), Sight::Differs("no picture is live"), at(60));
    let differs = differs.unwrap();
    assert_eq!(differs.drifted.as_deref(), Some("no picture is live"));
    assert_eq!(differs.live_checked_at, Some(at(60)));
    // A failed read keeps what was known, but counts as a read (the spacing holds).
    let unknown = record_looked(&differs, a(), Sight::Unknown, at(120)).unwrap();
    assert_eq!(unknown.drifted.as_deref(), Some("no picture is live"));
    assert_eq!(unknown.live_checked_at, Some(at(120)));
    let healed = record_looked(&unknown, a(), Sight::Matches, at(180)).unwrap();
    assert_eq!(healed.drifted, None);
    assert_eq!(healed.live_checked_at, Some(at(180)));
    assert_eq!(healed.applied, record.applied);
    // Looked at while `b` was applied: `a` was applied meanwhile.
    assert_eq!(record_looked(&record, b(), Sight::Matches, at(60)), None);
}

#[test]
fn adoption_records_the_live_picture_without_touching_the_throttle() {
    let before = InstanceRecord {
        call_started_at: Some(at(5)),
        last_call_at: Some(at(1)),
        ..InstanceRecord::default()
    };
    let after = record_adopted(Some(&before), a(), "https://x/a.jpg".to_owned(), at(6));
    assert_eq!(after.applied.as_ref().unwrap().sha256, a());
    assert_eq!(after.applied.as_ref().unwrap().at, at(6));
    assert_eq!(after.last_call_at, Some(at(1)));
    assert_eq!(after.call_started_at, None);
    assert_eq!(after.live_checked_at, Some(at(6)));
}

#[test]
fn a_call_never_sent_puts_back_the_start_it_replaced_and_a_release_is_now() {
    let record = InstanceRecord {
        call_started_at: Some(at(50)),
        ..applied(a(), 0)
    };
    assert_eq!(
        record_not_sent(&record, Some(at(3))).call_started_at,
        Some(at(3))
    );
    assert_eq!(record_not_sent(&record, None).call_started_at, None);
    let blocked = record_outcome(
        Some(&record),
        b(),
        CREDS,
        &failure(FailureKind::Unauthorized),
        at(60),
        &policy(),
        0.0,
    );
    let released = record_released(&blocked, at(61));
    assert_eq!(released.failure.as_ref().unwrap().next_attempt_at, at(61));
    // Nothing to release: unchanged.
    assert_eq!(record_released(&record, at(61)), record);
}

/// One generated event, applied to `record` at `now` (times never run backwards in the
/// generator, as the engine's clock does not).
fn step(
    rng: &mut fastrand::Rng,
    record: Option<&InstanceRecord>,
    now: SystemTime,
) -> InstanceRecord {
    let digest = [a(), b()][rng.usize(..2)];
    let empty = InstanceRecord::default();
    let current = record.unwrap_or(&empty);
    match rng.u8(..7) {
        0 => {
            let outcome = if rng.bool() {
                CallOutcome::Applied { url_avatar: None }
            } else {
                failure(FailureKind::ALL[rng.usize(..FailureKind::ALL.len())])
            };
            let next = record_outcome(record, digest, CREDS, &outcome, now, &policy(), rng.f64());
            match rng.bool() {
                true => record_fingerprint(next, digest, Arc::from("fp")),
                false => next,
            }
        }
        1 => record_adopted(record, digest, "https://x/y.jpg".to_owned(), now),
        2 => {
            let polled = Polled {
                state: "authorized",
                authorized: rng.bool(),
            };
            record_polled(current, polled, now)
        }
        3 => {
            let sight = [Sight::Matches, Sight::Differs("x"), Sight::Unknown][rng.usize(..3)];
            record_looked(current, digest, sight, now).unwrap_or_else(|| current.clone())
        }
        4 => record_not_sent(current, current.call_started_at),
        5 => record_released(current, now),
        _ => {
            let mut started = current.clone();
            started.call_started_at = Some(now);
            started
        }
    }
}

#[test]
fn no_sequence_of_events_moves_the_last_call_backwards_or_forgets_a_confirmed_picture() {
    for seed in 0..cases(300) as u64 {
        let mut rng = fastrand::Rng::with_seed(seed);
        let mut record: Option<InstanceRecord> = None;
        let mut now = at(0);
        for n in 0..rng.usize(1..40) {
            now += Duration::from_millis(rng.u64(..120_000));
            let next = step(&mut rng, record.as_ref(), now);
            if let Some(before) = &record {
                assert!(
                    next.last_call_at >= before.last_call_at,
                    "seed {seed}, event {n}: last call {:?} after {:?}",
                    next.last_call_at,
                    before.last_call_at
                );
                if let Some(was) = &before.applied {
                    let is = next.applied.as_ref();
                    assert!(
                        is.is_some_and(|is| is.sha256 == was.sha256 || is.at >= was.at),
                        "seed {seed}, event {n}: the applied picture was lost"
                    );
                }
            }
            record = Some(next);
        }
    }
}
