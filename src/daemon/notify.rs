//! Telling the service manager how the daemon is doing: systemd `Type=notify` (`READY=1`,
//! `RELOADING=1` with `MONOTONIC_USEC`, `STOPPING=1`, `STATUS=`, `WATCHDOG=1`). The loop
//! speaks to a [`Notify`]; without `NOTIFY_SOCKET`, [`Systemd`] silently drops everything.

use crate::report::Summary;
use sd_notify::NotifyState;
use std::time::Duration;

/// One message for the service manager.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Notice {
    /// The first pass is planned (or a reload finished): the service is up.
    Ready,
    /// A reload starts (SIGHUP).
    Reloading,
    /// Graceful stop starts.
    Stopping,
    /// The loop is alive.
    Watchdog,
    /// One line on where the instances stand, for `systemctl status`.
    Status(String),
}

/// Where the loop's notices go.
pub(crate) trait Notify: Send {
    /// Sends one notice.
    fn notify(&self, notice: Notice);

    /// How often the loop must ping the watchdog, if the manager asks for pings.
    fn watchdog_interval(&self) -> Option<Duration>;
}

/// systemd, through `$NOTIFY_SOCKET`.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Systemd;

impl Notify for Systemd {
    fn notify(&self, notice: Notice) {
        if std::env::var_os("NOTIFY_SOCKET").is_none() {
            return;
        }
        let result = match &notice {
            Notice::Ready => sd_notify::notify(&[NotifyState::Ready]),
            // systemd ≥ 253 requires the monotonic time with it.
            Notice::Reloading => sd_notify::notify(&[
                NotifyState::Reloading,
                NotifyState::monotonic_usec_now().unwrap_or(NotifyState::MonotonicUsec(0)),
            ]),
            Notice::Stopping => sd_notify::notify(&[NotifyState::Stopping]),
            Notice::Watchdog => sd_notify::notify(&[NotifyState::Watchdog]),
            Notice::Status(line) => sd_notify::notify(&[NotifyState::Status(line)]),
        };
        if let Err(e) = result {
            tracing::debug!("cannot notify systemd: {e}");
        }
    }

    /// Half of `WATCHDOG_USEC`, if systemd asks for pings.
    fn watchdog_interval(&self) -> Option<Duration> {
        sd_notify::watchdog_enabled().map(|d| d / 2)
    }
}

/// `12 in sync, 1 pending, 0 failed` (applied counts as in sync; throttled and unreachable
/// as pending).
pub(crate) fn status_line(s: &Summary) -> String {
    let mut line = format!(
        "{} in sync, {} pending, {} failed",
        s.in_sync + s.applied + s.adopted,
        s.pending + s.throttled + s.unreachable,
        s.failed
    );
    if s.drifted > 0 {
        line.push_str(&format!(", {} drifted", s.drifted));
    }
    if s.suspended > 0 {
        line.push_str(&format!(", {} suspended", s.suspended));
    }
    line
}
