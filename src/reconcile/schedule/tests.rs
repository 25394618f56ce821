//! The schedule with exact times: when looks and polls fall, the one-read-a-second rule,
//! and the order entries come off the heap.

use super::*;

const MINUTE: Duration = Duration::from_secs(60);
const HOUR: Duration = Duration::from_secs(3600);

/// `secs` (may be negative) from a fixed instant.
fn at(secs: f64) -> SystemTime {
    let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
    match secs < 0.0 {
        true => t0 - Duration::from_secs_f64(-secs),
        false => t0 + Duration::from_secs_f64(secs),
    }
}

fn look(last: Option<f64>, spread: f64) -> Read {
    Read::Look {
        last: last.map(at),
        spread,
    }
}

#[test]
fn a_look_falls_one_interval_after_the_last_one() {
    let now = at(1000.0);
    assert_eq!(
        read_time(look(Some(400.0), 0.3), now, HOUR, None),
        at(4000.0)
    );
}

#[test]
fn a_first_look_or_one_long_past_falls_at_the_instances_point_of_the_interval() {
    let now = at(1000.0);
    assert_eq!(read_time(look(None, 0.25), now, HOUR, None), at(1900.0));
    // Looked at two hours ago: the next look is not owed at once, it is spread again.
    assert_eq!(
        read_time(look(Some(-6200.0), 0.5), now, HOUR, None),
        at(2800.0)
    );
    // Exactly one interval ago counts as past.
    assert_eq!(
        read_time(look(Some(-2600.0), 0.0), now, HOUR, None),
        at(1000.0)
    );
}

#[test]
fn a_blocked_instance_is_polled_every_five_minutes_or_every_interval_if_shorter() {
    let now = at(0.0);
    assert_eq!(read_time(Read::Poll, now, HOUR, None), at(300.0));
    assert_eq!(read_time(Read::Poll, now, 2 * MINUTE, None), at(120.0));
}

#[test]
fn no_two_reads_of_one_instance_are_closer_than_the_spacing() {
    let now = at(10.0);
    // Read half a second ago (adoption, say): a look due now waits 0.6 s more.
    assert_eq!(
        read_time(look(None, 0.0), now, HOUR, Some(at(9.5))),
        at(10.6)
    );
    // A poll with no interval to speak of: the spacing, from now.
    assert_eq!(
        read_time(Read::Poll, now, Duration::ZERO, Some(at(9.5))),
        at(11.1)
    );
    // An interval shorter than the spacing is the spacing.
    assert_eq!(
        read_time(look(Some(9.9), 0.0), now, Duration::from_millis(10), None),
        at(11.0)
    );
    // A read long ago does not hold anything back.
    assert_eq!(
        read_time(look(None, 0.5), now, HOUR, Some(at(0.0))),
        at(1810.0)
    );
}

#[test]
fn entries_come_off_in_time_order_and_only_once_their_time_has_come() {
    let mut schedule = Schedule::default();
    schedule.wait_until(0, at(30.0));
    schedule.wait_until(1, at(10.0));
    schedule.read_at(2, at(20.0));
    schedule.read_at(3, at(5.0));
    assert_eq!(schedule.next_at(), Some(at(5.0)));
    assert_eq!(schedule.wait_over(at(9.0)), None);
    assert_eq!(schedule.read_come(at(9.0)), Some((at(5.0), 3)));
    assert_eq!(schedule.read_come(at(9.0)), None);
    assert_eq!(schedule.next_at(), Some(at(10.0)));
    assert_eq!(schedule.wait_over(at(30.0)), Some((at(10.0), 1)));
    assert_eq!(schedule.wait_over(at(30.0)), Some((at(30.0), 0)));
    assert_eq!(schedule.next_at(), Some(at(20.0)));
    assert_eq!(schedule.counts(), (0, 0));
}

#[test]
fn due_calls_and_reads_keep_their_order_and_a_new_pass_clears_all_but_the_reads_times() {
    let mut schedule = Schedule::default();
    let id = InstanceId::parse("1101000001").unwrap();
    schedule.call_now(4);
    schedule.call_now(2);
    schedule.read_now(7);
    schedule.read_started(&id, at(1.0));
    assert!(schedule.calls_queued());
    assert_eq!(schedule.counts(), (2, 0));
    assert_eq!(schedule.next_call(at(0.0)), Some(4));
    schedule.wait_until(9, at(50.0));
    schedule.clear();
    assert_eq!(schedule.next_call(at(0.0)), None);
    assert_eq!(schedule.next_read(), None);
    assert_eq!(schedule.next_at(), None);
    assert_eq!(schedule.last_read(&id), Some(at(1.0)));
}

#[test]
fn held_calls_start_no_sooner_than_the_hold_ends_and_keep_their_order() {
    let mut schedule = Schedule::default();
    schedule.call_now(3);
    // 1 and 2 could not start at 0 s (their journal line was not written): held for 5 s.
    schedule.hold_calls(2, at(5.0));
    schedule.hold_calls(1, at(5.0));
    assert_eq!(schedule.next_at(), Some(at(5.0)));
    assert_eq!(schedule.next_call(at(4.9)), None);
    assert!(schedule.queued());
    assert_eq!(schedule.next_call(at(5.0)), Some(1));
    assert_eq!(schedule.next_call(at(5.0)), Some(2));
    assert_eq!(schedule.next_call(at(5.0)), Some(3));
    assert_eq!(schedule.next_at(), None);
}
