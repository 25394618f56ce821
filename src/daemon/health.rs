//! Whether the daemon is alive and ready, as `/healthz` and `/readyz` report it.
//!
//! Alive: the loop turned within [`STUCK_AFTER`] (it beats at least every [`BEAT`], idle or
//! not). Ready: a manifest is loaded, the first pass was planned, and the last save of the
//! state directory succeeded. Neither depends on GREEN-API answering or on instances
//! failing: restarting the daemon cannot fix a revoked token.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;
use tokio::time::Instant;

/// The loop beats at least this often, even when it has nothing else to do.
pub const BEAT: Duration = Duration::from_secs(5);
/// The loop is stuck when it has not beaten for this long.
pub const STUCK_AFTER: Duration = Duration::from_secs(30);

/// Shared between the loop (which writes) and the HTTP listener (which reads).
#[derive(Debug)]
pub(crate) struct Health {
    start: Instant,
    /// Milliseconds from `start` to the last beat.
    last_beat_ms: AtomicU64,
    planned: AtomicBool,
    save_failing: AtomicBool,
}

impl Health {
    /// Alive now, not ready yet.
    pub(crate) fn new() -> Self {
        Self {
            start: Instant::now(),
            last_beat_ms: AtomicU64::new(0),
            planned: AtomicBool::new(false),
            save_failing: AtomicBool::new(false),
        }
    }

    /// The loop turned.
    pub(crate) fn beat(&self) {
        let ms = u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_beat_ms.store(ms, Ordering::Relaxed);
    }

    /// The first pass was planned (as `READY=1` says).
    pub(crate) fn planned(&self) {
        self.planned.store(true, Ordering::Relaxed);
    }

    /// Whether the last save of the state directory failed.
    pub(crate) fn saved(&self, ok: bool) {
        self.save_failing.store(!ok, Ordering::Relaxed);
    }

    /// `Ok` while the loop turns; otherwise how long ago it last did.
    pub(crate) fn alive(&self) -> Result<(), Duration> {
        let last = Duration::from_millis(self.last_beat_ms.load(Ordering::Relaxed));
        let since = self.start.elapsed().saturating_sub(last);
        if since <= STUCK_AFTER {
            Ok(())
        } else {
            Err(since)
        }
    }

    /// `Ok` once ready; otherwise why not.
    pub(crate) fn ready(&self) -> Result<(), &'static str> {
        if !self.planned.load(Ordering::Relaxed) {
            Err("the first pass is not planned yet")
        } else if self.save_failing.load(Ordering::Relaxed) {
            Err("the state directory cannot be written")
        } else {
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_loop_that_stops_beating_is_stuck_after_thirty_seconds() {
        let health = Health::new();
        health.beat();
        tokio::time::advance(STUCK_AFTER).await;
        assert_eq!(health.alive(), Ok(()));
        tokio::time::advance(Duration::from_millis(1)).await;
        assert_eq!(health.alive(), Err(STUCK_AFTER + Duration::from_millis(1)));
        health.beat();
        assert_eq!(health.alive(), Ok(()));
    }

    #[test]
    fn ready_after_the_first_pass_while_saves_succeed() {
        let health = Health::new();
        assert_eq!(health.ready(), Err("the first pass is not planned yet"));
        health.planned();
        assert_eq!(health.ready(), Ok(()));
        health.saved(false);
        assert_eq!(health.ready(), Err("the state directory cannot be written"));
        health.saved(true);
        assert_eq!(health.ready(), Ok(()));
    }
}
