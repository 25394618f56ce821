//! Change windows at exact times, across daylight-saving changes.

use super::*;

/// `y-m-d h:mi` UTC.
fn utc(y: i16, m: i8, d: i8, h: i8, mi: i8) -> SystemTime {
    let zoned = jiff::civil::date(y, m, d).at(h, mi, 0, 0);
    SystemTime::from(zoned.to_zoned(TimeZone::UTC).unwrap().timestamp())
}

fn window(kind: WindowKind, cron: &str, duration: &str, zone: Option<&str>) -> Window {
    let duration = crate::clock::parse_duration(duration).unwrap();
    Window::new(kind, cron, duration, zone, 1).unwrap()
}

fn deny(cron: &str, duration: &str, zone: &str) -> Windows {
    Windows(vec![window(WindowKind::Deny, cron, duration, Some(zone))])
}

#[test]
fn a_weekday_deny_window_in_berlin_holds_office_hours_and_opens_at_their_end() {
    // The contract's example: no uploads from 09:00 for 8 hours, Monday to Friday.
    let w = deny("0 9 * * 1-5", "8h", "Europe/Berlin");
    // Monday 2026-12-07, 09:00 CET = 08:00 UTC.
    assert_eq!(w.gate(utc(2026, 12, 7, 7, 59)), Gate::Open);
    let closed = Gate::Closed {
        opens: Some(utc(2026, 12, 7, 16, 0)),
    };
    assert_eq!(w.gate(utc(2026, 12, 7, 8, 0)), closed);
    assert_eq!(w.gate(utc(2026, 12, 7, 15, 59)), closed);
    assert_eq!(w.gate(utc(2026, 12, 7, 16, 0)), Gate::Open);
    // Saturday: open all day.
    assert_eq!(w.gate(utc(2026, 12, 12, 10, 0)), Gate::Open);
    // In summer, 09:00 CEST is 07:00 UTC.
    let summer = Gate::Closed {
        opens: Some(utc(2026, 7, 6, 15, 0)),
    };
    assert_eq!(w.gate(utc(2026, 7, 6, 7, 0)), summer);
    assert_eq!(
        w.next_close(utc(2026, 12, 7, 16, 0)),
        Some(utc(2026, 12, 8, 8, 0))
    );
}

#[test]
fn a_window_in_the_repeated_autumn_hour_opens_once() {
    // Europe/Berlin, 2026-10-25: 03:00 CEST falls back to 02:00 CET, so 02:30 happens at
    // 00:30 UTC and again at 01:30 UTC. The window opens at the first only.
    let w = deny("30 2 * * *", "20m", "Europe/Berlin");
    assert_eq!(
        w.gate(utc(2026, 10, 25, 0, 35)),
        Gate::Closed {
            opens: Some(utc(2026, 10, 25, 0, 50))
        }
    );
    assert_eq!(w.gate(utc(2026, 10, 25, 0, 50)), Gate::Open);
    assert_eq!(w.gate(utc(2026, 10, 25, 1, 35)), Gate::Open, "opened twice");
    // The next opening after the first is the next day's, not the repeated hour's.
    assert_eq!(
        w.next_close(utc(2026, 10, 25, 0, 50)),
        Some(utc(2026, 10, 26, 1, 30))
    );
}

#[test]
fn a_window_in_the_spring_gap_opens_just_after_it_and_once() {
    // Europe/Berlin, 2026-03-29: 02:00 CET jumps to 03:00 CEST; 02:30 does not exist.
    // The window opens at 03:00 CEST (01:00 UTC), for its 30 minutes.
    let w = deny("30 2 * * *", "30m", "Europe/Berlin");
    assert_eq!(w.gate(utc(2026, 3, 29, 0, 59)), Gate::Open);
    assert_eq!(
        w.gate(utc(2026, 3, 29, 1, 0)),
        Gate::Closed {
            opens: Some(utc(2026, 3, 29, 1, 30))
        }
    );
    assert_eq!(w.gate(utc(2026, 3, 29, 1, 30)), Gate::Open);
    assert_eq!(
        w.next_close(utc(2026, 3, 29, 1, 30)),
        Some(utc(2026, 3, 30, 0, 30))
    );
}

#[test]
fn a_duration_across_the_change_is_real_time() {
    // From 01:00 CET for 3 hours on the spring change: 00:00 to 03:00 UTC, which reads
    // 01:00 to 05:00 on the wall clock.
    let w = deny("0 1 * * *", "3h", "Europe/Berlin");
    assert_eq!(
        w.gate(utc(2026, 3, 29, 2, 0)),
        Gate::Closed {
            opens: Some(utc(2026, 3, 29, 3, 0))
        }
    );
}

#[test]
fn uploads_happen_only_inside_allow_windows_and_never_inside_a_deny_one() {
    let windows = Windows(vec![
        // Nights, 22:00 to 06:00 UTC.
        window(WindowKind::Allow, "0 22 * * *", "8h", None),
        // But not during the Sunday maintenance, 23:00 to 01:00.
        window(WindowKind::Deny, "0 23 * * 0", "2h", None),
    ]);
    // Monday noon: closed until 22:00.
    assert_eq!(
        windows.gate(utc(2026, 12, 7, 12, 0)),
        Gate::Closed {
            opens: Some(utc(2026, 12, 7, 22, 0))
        }
    );
    assert_eq!(windows.gate(utc(2026, 12, 7, 23, 0)), Gate::Open);
    // Sunday 23:30: the deny window ends at 01:00, inside the allow window.
    assert_eq!(
        windows.gate(utc(2026, 12, 13, 23, 30)),
        Gate::Closed {
            opens: Some(utc(2026, 12, 14, 1, 0))
        }
    );
    // Open now, closes at the allow window's end.
    assert_eq!(
        windows.next_close(utc(2026, 12, 8, 3, 0)),
        Some(utc(2026, 12, 8, 6, 0))
    );
}

#[test]
fn overlapping_deny_windows_open_when_the_last_one_ends() {
    let windows = Windows(vec![
        window(WindowKind::Deny, "0 9 * * *", "2h", None),
        window(WindowKind::Deny, "30 10 * * *", "1h", None),
    ]);
    assert_eq!(
        windows.gate(utc(2026, 12, 7, 9, 15)),
        Gate::Closed {
            opens: Some(utc(2026, 12, 7, 11, 30))
        }
    );
}

#[test]
fn a_window_set_that_never_opens_says_so() {
    // Denied every minute for two minutes: always closed.
    let windows = deny("* * * * *", "2m", "UTC");
    assert_eq!(
        windows.gate(utc(2026, 12, 7, 9, 15)),
        Gate::Closed { opens: None }
    );
}

#[test]
fn bad_schedules_and_zones_are_named() {
    let e = Window::new(
        WindowKind::Deny,
        "0 9 * *",
        Duration::from_secs(60),
        None,
        3,
    )
    .unwrap_err();
    assert!(e.contains("five fields") && e.contains("it has 4"), "{e}");
    let e = Window::new(
        WindowKind::Deny,
        "0 25 * * *",
        Duration::from_secs(60),
        None,
        3,
    )
    .unwrap_err();
    assert!(e.contains("`0 25 * * *` is not a cron schedule"), "{e}");
    let e = Window::new(
        WindowKind::Deny,
        "0 9 * * *",
        Duration::from_secs(60),
        Some("Europe/Berlim"),
        3,
    )
    .unwrap_err();
    assert!(
        e.contains("`Europe/Berlim` is not an IANA time zone"),
        "{e}"
    );
    assert_eq!(
        local_time(
            utc(2026, 12, 7, 8, 0),
            &TimeZone::get("Europe/Berlin").unwrap()
        ),
        "2026-12-07 09:00 CET"
    );
}
