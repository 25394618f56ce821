//! The quiet window on tokio's paused clock.

use super::*;
use tokio::time::advance;

#[tokio::test(start_paused = true)]
async fn a_burst_of_hints_makes_one_pass_once_quiet() {
    let mut quiet = QuietWindow::default();
    assert_eq!(quiet.due_at(), None);
    let start = Instant::now();
    // A `git pull` of ten files: ten hints 10 ms apart.
    for _ in 0..10 {
        quiet.note(Instant::now());
        advance(Duration::from_millis(10)).await;
    }
    let last = start + Duration::from_millis(90);
    assert_eq!(quiet.due_at(), Some(last + QUIET));
    // Nothing more: due once quiet, not before.
    tokio::time::sleep_until(quiet.due_at().unwrap()).await;
    assert_eq!(Instant::now() - start, Duration::from_millis(90) + QUIET);
    quiet.clear();
    assert_eq!(quiet.due_at(), None);
}

#[tokio::test(start_paused = true)]
async fn a_constant_trickle_cannot_starve_the_pass() {
    let mut quiet = QuietWindow::default();
    let first = Instant::now();
    // A hint every 100 ms for 10 s: never quiet for 300 ms.
    for _ in 0..100 {
        quiet.note(Instant::now());
        assert!(quiet.due_at().unwrap() <= first + QUIET_MAX);
        advance(Duration::from_millis(100)).await;
    }
    assert_eq!(quiet.due_at(), Some(first + QUIET_MAX));
}

#[test]
fn the_quiet_window_is_a_short_moment() {
    assert_eq!(QUIET, Duration::from_millis(300));
    assert!(QUIET_MAX > QUIET && QUIET_MAX <= Duration::from_secs(5));
}
