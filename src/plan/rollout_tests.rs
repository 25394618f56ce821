//! A rollout's waves, what became of each instance, and every change of its record, on
//! values at exact times.

use super::*;
use crate::manifest::{Amount, RolloutPolicy};
use crate::outcome::LocalProblem;
use crate::plan::WaitCause;
use crate::state::{Applied, Failure};
use std::time::Duration;

fn id(n: u32) -> InstanceId {
    InstanceId::parse_written(&format!("{}", 1_101_000_000 + n)).unwrap()
}

fn t(secs: u64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000 + secs)
}

fn policy(waves: &[Amount], pause: u64) -> RolloutPolicy {
    RolloutPolicy {
        waves: waves.to_vec(),
        verify: true,
        max_failures: Amount::Count(0),
        pause: Duration::from_secs(pause),
    }
}

fn hundred() -> RolloutRecord {
    let order = wave_order((1..=100).map(|n| (id(n), n == 50 || n == 77)).collect());
    let waves = [Amount::Count(2), Amount::Percent(10), Amount::Percent(100)];
    start("r".repeat(64), order, &policy(&waves, 60), t(0)).unwrap()
}

#[test]
fn canaries_go_first_then_a_stable_hash_the_same_for_the_same_instances() {
    let rollout = hundred();
    assert_eq!(rollout.waves, vec![2, 10, 100]);
    let first: Vec<&InstanceId> = rollout.instances[..2].iter().collect();
    assert!(
        first.contains(&&id(50)) && first.contains(&&id(77)),
        "{first:?}"
    );
    // The same instances, written in another order, make the same waves.
    let again = wave_order(
        (1..=100)
            .rev()
            .map(|n| (id(n), n == 50 || n == 77))
            .collect(),
    );
    assert_eq!(again, rollout.instances);
    // Not the manifest's order.
    assert_ne!(
        rollout.instances[2..12],
        (1..=10).map(id).collect::<Vec<_>>()[..]
    );
}

#[test]
fn the_revision_is_the_set_of_desired_pictures_in_any_order() {
    let a = Digest::of(b"a");
    let b = Digest::of(b"b");
    let (one, two) = (id(1), id(2));
    let forward = revision([(&one, a), (&two, b)].into_iter());
    assert_eq!(forward, revision([(&two, b), (&one, a)].into_iter()));
    assert_ne!(forward, revision([(&one, b), (&two, a)].into_iter()));
    assert_eq!(forward.len(), 64);
}

#[test]
fn a_wave_lets_its_instances_go_and_holds_the_later_ones_until_its_pause_ends() {
    let rollout = hundred();
    assert_eq!(hold(&rollout, 0), None);
    assert_eq!(hold(&rollout, 1), None);
    let second = Hold::Wave {
        wave: 1,
        waves: 3,
        opens: None,
    };
    assert_eq!(hold(&rollout, 2), Some(second));
    assert_eq!(
        hold(&rollout, 10),
        Some(Hold::Wave {
            wave: 2,
            waves: 3,
            opens: None
        })
    );
    // Wave 1 lands at 30 s: wave 2 starts after the 60 s pause, not before.
    let landed = wave_landed(&rollout, t(30), Duration::from_secs(60));
    assert_eq!(landed.next_wave_at, Some(t(90)));
    assert_eq!(
        hold(&landed, 2),
        Some(Hold::Wave {
            wave: 1,
            waves: 3,
            opens: Some(t(90))
        })
    );
    assert_eq!(advance(&landed, t(89)), None);
    let second = advance(&landed, t(95)).unwrap();
    assert_eq!((second.wave, second.wave_started_at), (1, t(90)));
    assert_eq!(hold(&second, 9), None);
    assert!(hold(&second, 10).is_some());
    assert_eq!(wave_positions(&second, 1), 2..10);
    // The last wave landing ends it.
    let third = advance(&wave_landed(&second, t(200), Duration::ZERO), t(200)).unwrap();
    let done = wave_landed(&third, t(300), Duration::from_secs(60));
    assert_eq!((done.done_at, done.next_wave_at), (Some(t(300)), None));
    assert_eq!(hold(&done, 99), None);
    assert_eq!(advance(&done, t(10_000)), None);
}

#[test]
fn a_halt_holds_everyone_not_uploaded_until_resumed() {
    let rollout = hundred();
    let failures = vec![(id(50), "read back: another picture is live".to_owned())];
    let halted = halted(&rollout, t(40), failures);
    let halt = halted.halted.as_ref().unwrap();
    assert_eq!((halt.wave, halt.failed, halt.at), (0, 1, t(40)));
    assert_eq!(hold(&halted, 1), Some(Hold::Halted { wave: 0, waves: 3 }));
    assert_eq!(hold(&halted, 99), Some(Hold::Halted { wave: 0, waves: 3 }));
    // A halt is not advanced by time; resuming starts the next wave now.
    assert_eq!(advance(&halted, t(10_000)), None);
    let resumed = resumed(&halted, t(500)).unwrap();
    assert_eq!(
        (resumed.halted.clone(), resumed.next_wave_at),
        (None, Some(t(500)))
    );
    assert_eq!(advance(&resumed, t(500)).unwrap().wave, 1);
    assert_eq!(super::resumed(&rollout, t(500)), None, "not halted");
}

#[test]
fn failures_are_counted_against_the_waves_own_size() {
    let rollout = hundred();
    assert_eq!(failure_budget(&rollout, 0, Amount::Percent(5)), 0);
    assert_eq!(failure_budget(&rollout, 2, Amount::Percent(5)), 4);
    assert_eq!(failure_budget(&rollout, 1, Amount::Count(3)), 3);
}

#[test]
fn what_became_of_an_instance_is_read_from_its_record() {
    let digest = Digest::of(b"new");
    let old = Digest::of(b"old");
    let due = Decision::Due { digest };
    assert_eq!(member(None, &due, digest), Member::Waiting);
    let applied = |sha256, at| Applied {
        sha256,
        at,
        url_avatar: None,
        perceptual_hash: None,
    };
    let mut record = InstanceRecord {
        applied: Some(applied(old, t(0))),
        ..InstanceRecord::default()
    };
    assert_eq!(member(Some(&record), &due, digest), Member::Waiting);
    record.applied = Some(applied(digest, t(10)));
    assert_eq!(
        member(Some(&record), &Decision::InSync, digest),
        Member::Landed
    );
    assert!(!Member::Landed.settled(true) && Member::Landed.settled(false));
    // A look before the upload is not its read-back.
    record.live_matched_at = Some(t(5));
    assert_eq!(
        member(Some(&record), &Decision::InSync, digest),
        Member::Landed
    );
    record.live_matched_at = Some(t(12));
    assert_eq!(
        member(Some(&record), &Decision::InSync, digest),
        Member::Verified
    );
    record.drifted = Some("another picture is live".to_owned());
    assert_eq!(
        member(Some(&record), &Decision::InSync, digest),
        Member::Failed("read back: another picture is live".to_owned())
    );
    // A failed upload of this picture fails the wave; WhatsApp's throttle does not.
    let failure = |kind| Failure {
        kind,
        reason: "why".to_owned(),
        consecutive: 1,
        next_attempt_at: t(60),
        sha256: digest,
        credentials: String::new(),
    };
    let mut failing = InstanceRecord {
        failure: Some(Box::new(failure(FailureKind::ServerError))),
        ..InstanceRecord::default()
    };
    let wait = Decision::Wait {
        digest,
        until: t(60),
        cause: WaitCause::Throttle,
    };
    assert_eq!(
        member(Some(&failing), &wait, digest),
        Member::Failed("server-error: why".to_owned())
    );
    failing.failure = Some(Box::new(failure(FailureKind::RateOverlimit)));
    assert_eq!(member(Some(&failing), &wait, digest), Member::Waiting);
    // A picture that cannot be read is a failure too (it would hold its wave forever).
    let problem = LocalProblem::new(crate::outcome::LocalKind::PictureUnreadable, "gone");
    assert_eq!(
        member(None, &Decision::Unusable(problem), digest),
        Member::Failed("gone".to_owned())
    );
}

#[test]
fn a_revision_carries_on_its_recorded_rollout_or_starts_one_over_what_it_changes() {
    let (a, b) = (Digest::of(b"a"), Digest::of(b"b"));
    let ids = [id(1), id(2), id(3)];
    let wanted: Vec<Wanted<'_>> = (ids.iter().enumerate())
        .map(|(n, id)| Wanted {
            id,
            digest: b,
            canary: n == 2,
        })
        .collect();
    let revision = revision_of(&wanted);
    let policy = policy(&[Amount::Count(1), Amount::Percent(100)], 0);
    // Instance 1 already shows b: the rollout is over 2 and 3, the canary first.
    let applied = |i: &InstanceId| Some(if *i == id(1) { b } else { a });
    let Current::Started(started) =
        current(revision.clone(), &wanted, applied, None, &policy, t(0))
    else {
        panic!("started");
    };
    assert_eq!(started.instances, vec![id(3), id(2)]);
    // The same revision again: the recorded one, as it was.
    let halted = halted(&started, t(5), vec![]);
    let again = current(
        revision.clone(),
        &wanted,
        applied,
        Some(halted.clone()),
        &policy,
        t(9),
    );
    assert_eq!(again, Current::Recorded(halted.clone()));
    // Another revision: a new one; a revision that changes nothing: none.
    let other = current(
        "other".to_owned(),
        &wanted,
        applied,
        Some(halted),
        &policy,
        t(9),
    );
    assert!(matches!(other, Current::Started(r) if r.revision == "other"));
    let all_b = |_: &InstanceId| Some(b);
    assert_eq!(
        current(revision, &wanted, all_b, None, &policy, t(9)),
        Current::Nothing
    );
}
