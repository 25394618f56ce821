//! The daemon: one loop over one stream of [`Event`]s. It sleeps until the earliest of an
//! event, a change hint settling, the next instance due (throttle, backoff), the resync
//! timer, a batched save or a watchdog ping, then does what is due. No polling: an idle
//! daemon sleeps in `epoll_wait`.
//!
//! Everything the loop touches comes in as an argument, as kube-rs's `applier` takes its
//! streams: the events (file hints from [`watch`], signals from [`signals`]), the
//! reconciler (with its store, gateway and clock), the manifest source, the notifier and
//! the jitter. So the loop runs the same under systemd and on tokio's paused clock in tests.
//!
//! - [`Event::Changed`] is a hint; a pass starts once hints have been quiet for [`QUIET`]
//!   (at most [`QUIET_MAX`] after the first, so a constant trickle cannot starve it).
//! - A manifest edit that does not parse is logged (file, line) and ignored; the last good
//!   manifest stays in force. The manifest is parsed only when its bytes changed.
//! - [`Event::Reload`] (SIGHUP) reloads and gives instances in a slow backoff a fresh
//!   chance; [`Event::Stop`] (SIGTERM/SIGINT) stops taking new work, lets calls in flight
//!   finish (at most [`DRAIN`]), saves, returns; a second one returns at once, the state
//!   file still whole (it is only ever replaced atomically).

pub(crate) mod board;
pub(crate) mod health;
pub(crate) mod http;
mod notify;
mod quiet;
pub(crate) mod signals;
mod source;
pub(crate) mod watch;

pub(crate) use notify::{Notice, Notify, Systemd, status_line};
pub use quiet::{QUIET, QUIET_MAX};
pub(crate) use source::{ManifestSource, watched_files};

use crate::clock::Jitter;
use crate::gateway::Gateway;
use crate::manifest::Manifest;
use crate::manifest::git_revision;
use crate::reconcile::{Reconciler, sleep_until_opt};
use crate::state::StateError;
use board::Observed;
use health::BEAT;
use quiet::QuietWindow;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc::UnboundedReceiver;
use tokio::time::Instant;

/// How long a graceful stop waits for calls in flight.
pub const DRAIN: Duration = Duration::from_secs(10);
/// The resync timer's jitter, as a fraction of `resyncInterval`.
const RESYNC_JITTER: f64 = 0.1;

/// What reaches the loop from outside.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Event {
    /// A watched file may have changed (a hint: the pass decides).
    Changed,
    /// SIGHUP: reload the manifest and reconcile everything now.
    Reload,
    /// SIGTERM or SIGINT: stop gracefully; a second one stops at once.
    Stop,
}

/// What the loop works with, besides its events.
pub(crate) struct Parts<G, N> {
    /// Drives the instances; holds the store, the gateway and the clock.
    pub reconciler: Reconciler<G>,
    /// The manifest file, re-read when a pass starts.
    pub source: ManifestSource,
    /// Where `READY=1`, `STATUS=` and the rest go.
    pub notifier: N,
    /// Spreads the resync timer.
    pub jitter: Jitter,
    /// Called with every manifest that comes into force (the watcher follows its files).
    pub follow: Box<dyn FnMut(&Manifest) + Send>,
    /// Where the loop says it is alive and ready and shows its report (`/healthz`,
    /// `/readyz`, `/`), when listening.
    pub observed: Option<Arc<Observed>>,
}

/// Why a pass starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Pass {
    Changed,
    Resync,
    Reload,
}

/// Runs the loop until [`Event::Stop`] (or until every event sender is gone), then drains
/// and saves. The first pass was planned when the reconciler was made: the loop says
/// `READY=1` at once.
pub(crate) async fn run<G: Gateway, N: Notify>(
    mut events: UnboundedReceiver<Event>,
    parts: Parts<G, N>,
) -> Result<(), StateError> {
    let Parts {
        mut reconciler,
        mut source,
        notifier,
        mut jitter,
        mut follow,
        observed,
    } = parts;
    let health = observed.as_ref().map(|o| &o.health);
    follow(reconciler.manifest());
    let metrics = Arc::clone(reconciler.metrics());
    metrics.manifest_loaded(source.last_load());
    notifier.notify(Notice::Ready);
    if let Some(health) = health {
        health.beat();
        health.planned();
    }
    let mut last_status = String::new();
    report_status(
        &reconciler,
        &notifier,
        &mut last_status,
        observed.as_deref(),
    );
    tracing::info!(
        manifest = %source.path().display(),
        "daemon started: watching the manifest and its pictures"
    );

    let mut quiet = QuietWindow::default();
    let mut resync_at = next_resync(reconciler.manifest(), &mut jitter);
    let watchdog_every = notifier.watchdog_interval();
    let mut watchdog_at = watchdog_every.map(|every| Instant::now() + every);

    let mut beat_at = health.as_ref().map(|_| Instant::now() + BEAT);
    loop {
        if let Some(health) = health {
            health.beat();
        }
        let clock = reconciler.clock();
        reconciler.fire_timers(clock.now());
        reconciler.dispatch();
        let next_timer = reconciler.next_timer().map(|at| clock.instant_at(at));
        let save_at = reconciler.save_due_at();
        let mut pass = None;
        tokio::select! {
            () = reconciler.land_next() => {
                if !reconciler.has_in_flight() && !reconciler.has_queued() {
                    report_status(&reconciler, &notifier, &mut last_status, observed.as_deref());
                }
            }
            () = sleep_until_opt(next_timer) => {}
            () = sleep_until_opt(save_at) => {}
            event = events.recv() => match event {
                Some(Event::Changed) => quiet.note(Instant::now()),
                Some(Event::Reload) => pass = Some(Pass::Reload),
                Some(Event::Stop) | None => break,
            },
            () = sleep_until_opt(quiet.due_at()) => {
                quiet.clear();
                pass = Some(Pass::Changed);
            }
            () = tokio::time::sleep_until(resync_at) => pass = Some(Pass::Resync),
            () = sleep_until_opt(watchdog_at) => {
                notifier.notify(Notice::Watchdog);
                watchdog_at = watchdog_every.map(|every| Instant::now() + every);
            }
            // Only to beat: an idle loop still tells /healthz it turns.
            () = sleep_until_opt(beat_at) => beat_at = Some(Instant::now() + BEAT),
        }
        if let Some(pass) = pass {
            if pass == Pass::Reload {
                tracing::info!("SIGHUP: reloading the manifest and reconciling everything now");
                notifier.notify(Notice::Reloading);
            }
            // Every pass re-reads pictures from disk; the manifest is parsed only if it changed.
            let manifest = source
                .reload(pass == Pass::Reload)
                .map(Arc::new)
                .unwrap_or_else(|| Arc::clone(reconciler.manifest()));
            metrics.manifest_loaded(source.last_load());
            follow(&manifest);
            reconciler.set_manifest(manifest);
            if pass == Pass::Reload {
                reconciler.retry_blocked_now();
                notifier.notify(Notice::Ready);
            }
            if pass == Pass::Resync {
                resync_at = next_resync(reconciler.manifest(), &mut jitter);
            }
            report_status(
                &reconciler,
                &notifier,
                &mut last_status,
                observed.as_deref(),
            );
        }
        let saved = reconciler.save_if_due();
        if let Err(e) = &saved {
            tracing::error!("{e}; retrying at the next save");
        }
        if let Some(health) = health {
            health.saved(saved.is_ok());
        }
    }

    tracing::info!("stopping: no new calls; letting calls in flight finish");
    notifier.notify(Notice::Stopping);
    let drain_until = Instant::now() + DRAIN;
    while reconciler.has_in_flight() {
        tokio::select! {
            () = reconciler.land_next() => {}
            () = tokio::time::sleep_until(drain_until) => {
                tracing::warn!("calls still in flight after {DRAIN:?}; stopping without them");
                break;
            }
            Some(Event::Stop) = events.recv() => {
                tracing::warn!("second signal: stopping now");
                break;
            }
        }
    }
    reconciler.save()?;
    tracing::info!("stopped; state saved");
    Ok(())
}

/// When the next resync is due: `resyncInterval` from now, plus up to 10 % jitter.
fn next_resync(manifest: &Manifest, jitter: &mut Jitter) -> Instant {
    let every = manifest.resync_interval;
    Instant::now() + every + every.mul_f64(RESYNC_JITTER * jitter.draw())
}

/// Sends `STATUS=` (and logs it) when the summary line changed; updates the metrics and,
/// when listening, the status page.
fn report_status<G: Gateway>(
    reconciler: &Reconciler<G>,
    notifier: &impl Notify,
    last: &mut String,
    observed: Option<&Observed>,
) {
    let summary = reconciler.summary();
    reconciler.metrics().set_instances(&summary);
    if let Some(observed) = observed {
        let mut report = reconciler.report();
        report.manifest_revision = git_revision(&reconciler.manifest().path);
        observed.board.publish(report, reconciler.clock().now());
    }
    let line = status_line(&summary);
    if *last != line {
        tracing::info!(status = %line, "instances");
        notifier.notify(Notice::Status(line.clone()));
        *last = line;
    }
}

#[cfg(test)]
mod tests;
