//! systemd `Type=notify`: `READY=1`, `RELOADING=1` with `MONOTONIC_USEC`, `STOPPING=1`,
//! `STATUS=` and `WATCHDOG=1`. Without `NOTIFY_SOCKET` every message is silently dropped.

use crate::report::Summary;
use sd_notify::NotifyState;
use std::time::Duration;

/// Talks to the service manager, if there is one.
#[derive(Clone, Copy, Debug, Default)]
pub struct Notifier;

impl Notifier {
    /// The first pass is planned: the service is up.
    pub fn ready(self) {
        send(&[NotifyState::Ready]);
    }

    /// A reload starts (SIGHUP). systemd ≥ 253 requires the monotonic time with it.
    pub fn reloading(self) {
        send(&[
            NotifyState::Reloading,
            NotifyState::monotonic_usec_now().unwrap_or(NotifyState::MonotonicUsec(0)),
        ]);
    }

    /// Graceful stop starts.
    pub fn stopping(self) {
        send(&[NotifyState::Stopping]);
    }

    /// The loop is alive.
    pub fn watchdog(self) {
        send(&[NotifyState::Watchdog]);
    }

    /// One line on where the instances stand, for `systemctl status`.
    pub fn status(self, summary: &Summary) {
        send(&[NotifyState::Status(&status_line(summary))]);
    }

    /// How often to ping the watchdog: half of `WATCHDOG_USEC`, if systemd asks for pings.
    pub fn watchdog_interval(self) -> Option<Duration> {
        sd_notify::watchdog_enabled().map(|d| d / 2)
    }
}

/// `12 in sync, 1 pending, 0 failed` (applied counts as in sync; throttled as pending).
pub fn status_line(s: &Summary) -> String {
    let mut line = format!(
        "{} in sync, {} pending, {} failed",
        s.in_sync + s.applied,
        s.pending + s.throttled,
        s.failed
    );
    if s.suspended > 0 {
        line.push_str(&format!(", {} suspended", s.suspended));
    }
    line
}

fn send(states: &[NotifyState<'_>]) {
    if std::env::var_os("NOTIFY_SOCKET").is_none() {
        return;
    }
    if let Err(e) = sd_notify::notify(states) {
        tracing::debug!("cannot notify systemd: {e}");
    }
}
