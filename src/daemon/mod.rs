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
//! - [`Event::Reload`] (SIGHUP) reloads, gives instances in a slow backoff a fresh
//!   chance and takes the ids of the state directory's `replace` file ([`replace`]);
//!   [`Event::Resume`] (SIGUSR1) resumes a halted rollout; [`Event::Stop`] (SIGTERM/SIGINT) stops taking new work, lets calls in flight
//!   finish (at most [`DRAIN`]), saves, returns; a second one returns at once, the state
//!   file still whole (it is only ever replaced atomically).

pub(crate) mod board;
pub(crate) mod connections;
pub(crate) mod health;
pub(crate) mod http;
mod notify;
mod quiet;
mod replace;
pub(crate) mod signals;
mod source;
pub(crate) mod watch;

pub(crate) use notify::{Notice, Notify, Systemd, status_line};
pub use quiet::{QUIET, QUIET_MAX};
pub(crate) use source::{ManifestSource, watched_files};

use crate::clock::{Jitter, human_duration};
use crate::gateway::Gateway;
use crate::manifest::Manifest;
use crate::manifest::{Revision, git_revision, head_commit};
use crate::reconcile::{Reconciler, Woke, sleep_until_opt};
use crate::state::{SAVE_RETRY, StateError};
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
    /// SIGUSR1: resume the halted rollout.
    Resume,
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
    /// Called with the manifest in force after every pass, and the source's own files to
    /// watch besides (the watcher follows them all).
    pub follow: Follow,
    /// Where the loop says it is alive and ready and shows its report (`/healthz`,
    /// `/readyz`, `/`), when listening.
    pub observed: Option<Arc<Observed>>,
}

/// What the loop calls with the manifest in force after every pass.
pub(crate) type Follow = Box<dyn FnMut(&Arc<Manifest>, &[std::path::PathBuf]) + Send>;

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
    let mut daemon = Loop::start(parts);
    while daemon.turn(&mut events).await {}
    daemon.drain(&mut events).await
}

/// The loop's state between two turns.
struct Loop<G, N> {
    parts: Parts<G, N>,
    metrics: Arc<crate::metrics::Metrics>,
    last_status: String,
    quiet: QuietWindow,
    resync_at: Instant,
    watchdog_every: Option<Duration>,
    watchdog_at: Option<Instant>,
    /// When the loop must turn only to beat (when listening).
    beat_at: Option<Instant>,
    /// When to read a manifest that could not be read again.
    reread_at: Option<Instant>,
    /// The git revision of the manifest and pictures, as of the last pass (when listening).
    revision: Option<Revision>,
}

impl<G: Gateway, N: Notify> Loop<G, N> {
    /// Says the daemon is up: the first pass is planned.
    fn start(mut parts: Parts<G, N>) -> Self {
        (parts.follow)(parts.reconciler.manifest(), &parts.source.also_watched());
        let metrics = Arc::clone(parts.reconciler.metrics());
        metrics.manifest_loaded(parts.source.last_load());
        parts.notifier.notify(Notice::Ready);
        if let Some(observed) = &parts.observed {
            observed.health.beat();
            observed.health.planned();
        }
        tracing::info!(
            manifest = %parts.source.path().display(),
            "daemon started: watching the manifest and its pictures"
        );
        let watchdog_every = parts.notifier.watchdog_interval();
        let now = Instant::now();
        let mut daemon = Self {
            resync_at: next_resync(parts.reconciler.manifest(), &mut parts.jitter),
            watchdog_at: watchdog_every.map(|every| now + every),
            watchdog_every,
            beat_at: parts.observed.as_ref().map(|_| now + BEAT),
            reread_at: None,
            revision: None,
            metrics,
            last_status: String::new(),
            quiet: QuietWindow::default(),
            parts,
        };
        daemon.read_revision();
        daemon.report_status();
        daemon
    }

    /// Reads the git revision again, for the status page: once a pass, since a pass follows
    /// every change of the files it names (a commit of unchanged files shows at the next).
    /// With signed revisions, the one in force and a newer one not applied, also in
    /// `/metrics`.
    fn read_revision(&mut self) {
        if let Some(revision) = self.parts.source.revision() {
            if let Some((in_force, unverified)) = self.parts.source.commits() {
                self.metrics.revision(in_force, unverified);
            }
            self.revision = Some(revision);
        } else if self.parts.observed.is_some() {
            self.revision = git_revision(self.parts.reconciler.manifest());
        }
        // Messages name the commit the daemon acts on (only `HEAD`'s id when no page
        // needs the rest: the files that differ from it cost a pass over the fleet).
        if self.parts.reconciler.notifies() {
            let commit = match &self.revision {
                Some(revision) => revision.commit.clone(),
                None => head_commit(&self.parts.reconciler.manifest().path).map(|(id, _)| id),
            };
            self.parts.reconciler.set_revision(commit);
        }
    }

    /// Sleeps until something is due, does it; `false` once asked to stop.
    async fn turn(&mut self, events: &mut UnboundedReceiver<Event>) -> bool {
        if let Some(observed) = &self.parts.observed {
            observed.health.beat();
        }
        let reconciler = &mut self.parts.reconciler;
        reconciler.step(true);
        let mut pass = None;
        tokio::select! {
            woke = reconciler.wait(None) => match woke {
                Woke::Landed if !reconciler.has_in_flight() && !reconciler.has_queued() => {
                    self.report_status();
                }
                // A picture was still being written: look again once it has been still.
                Woke::Recheck => pass = Some(Pass::Changed),
                Woke::Landed | Woke::Due => {}
            },
            event = events.recv() => match event {
                Some(Event::Changed) => self.quiet.note(Instant::now()),
                Some(Event::Reload) => pass = Some(Pass::Reload),
                Some(Event::Resume) => {
                    tracing::info!("SIGUSR1: resuming the halted rollout");
                    reconciler.resume();
                    self.report_status();
                }
                Some(Event::Stop) | None => return false,
            },
            () = sleep_until_opt(self.reread_at) => pass = Some(Pass::Changed),
            () = sleep_until_opt(self.quiet.due_at()) => {
                self.quiet.clear();
                pass = Some(Pass::Changed);
            }
            () = tokio::time::sleep_until(self.resync_at) => pass = Some(Pass::Resync),
            () = sleep_until_opt(self.watchdog_at) => {
                self.parts.notifier.notify(Notice::Watchdog);
                self.watchdog_at = self.watchdog_every.map(|every| Instant::now() + every);
            }
            // Only to beat: an idle loop still tells /healthz it turns.
            () = sleep_until_opt(self.beat_at) => self.beat_at = Some(Instant::now() + BEAT),
        }
        if let Some(pass) = pass {
            self.pass(pass);
        }
        if let Err(e) = self.parts.reconciler.save_if_due() {
            tracing::error!("{e}; retrying in {}", human_duration(SAVE_RETRY));
        }
        if let Some(observed) = &self.parts.observed {
            // Not ready while the state cannot be saved, until a save succeeds.
            observed.health.saved(!self.parts.reconciler.save_failing());
        }
        true
    }

    /// Re-reads the pictures (and the manifest, if it changed or a reload asks) and plans
    /// every instance again.
    fn pass(&mut self, pass: Pass) {
        let started = std::time::Instant::now();
        let parts = &mut self.parts;
        if pass == Pass::Reload {
            tracing::info!("SIGHUP: reloading the manifest and reconciling everything now");
            parts.notifier.notify(Notice::Reloading);
        }
        // Every pass re-reads pictures from disk; the manifest is parsed only if it changed.
        let manifest = (parts.source.reload(pass == Pass::Reload))
            .map(Arc::new)
            .unwrap_or_else(|| Arc::clone(parts.reconciler.manifest()));
        self.metrics.manifest_loaded(parts.source.last_load());
        (parts.follow)(&manifest, &parts.source.also_watched());
        parts.reconciler.set_manifest(manifest);
        if pass == Pass::Reload {
            parts.reconciler.retry_blocked_now();
            take_replaces(&mut parts.reconciler);
            parts.notifier.notify(Notice::Ready);
        }
        if pass == Pass::Resync {
            self.resync_at = next_resync(parts.reconciler.manifest(), &mut parts.jitter);
        }
        self.reread_at = parts.source.reread_in().map(|wait| Instant::now() + wait);
        self.read_revision();
        self.report_status();
        // The whole pass: the manifest, the watches and the plan.
        tracing::debug!(
            pass_ms = crate::clock::millis(started.elapsed()),
            "pass done"
        );
    }

    /// Takes no new work, lets uploads in flight finish (at most [`DRAIN`], or until a
    /// second stop; reads of live state are not waited for), saves.
    async fn drain(mut self, events: &mut UnboundedReceiver<Event>) -> Result<(), StateError> {
        tracing::info!("stopping: no new calls; letting calls in flight finish");
        self.parts.notifier.notify(Notice::Stopping);
        let reconciler = &mut self.parts.reconciler;
        let drain_until = Instant::now() + DRAIN;
        while reconciler.has_uploads_in_flight() {
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
        let abandoned = reconciler.abandon_in_flight();
        reconciler.save()?;
        if abandoned.uploads > 0 {
            tracing::warn!(
                abandoned = abandoned.uploads,
                reads = abandoned.reads,
                "stopped; state saved; {} upload(s) were given up in flight: their instances \
                 are sent again after minInterval",
                abandoned.uploads
            );
        } else if abandoned.reads > 0 {
            tracing::info!(
                reads = abandoned.reads,
                "stopped; state saved; {} read(s) of live state were given up (nothing is lost)",
                abandoned.reads
            );
        } else {
            tracing::info!("stopped; state saved");
        }
        Ok(())
    }

    /// Sends `STATUS=` (and logs it) when the summary line changed; updates the metrics
    /// and, when listening, the status page.
    fn report_status(&mut self) {
        let reconciler = &self.parts.reconciler;
        let summary = reconciler.summary();
        self.metrics.set_instances(&summary);
        self.metrics.rollout(reconciler.rollout_metrics());
        if let Some(observed) = &self.parts.observed {
            let mut report = reconciler.report();
            report.revision.clone_from(&self.revision);
            observed.board.publish(report, reconciler.clock().now());
        }
        let line = status_line(&summary);
        if self.last_status != line {
            let calls = self.metrics.calls();
            tracing::info!(
                status = %line,
                set_profile_picture = calls.set_profile_picture,
                get_wa_settings = calls.get_wa_settings,
                get_state_instance = calls.get_state_instance,
                "instances"
            );
            self.parts.notifier.notify(Notice::Status(line.clone()));
            self.last_status = line;
        }
    }
}

/// Takes the ids of the state directory's `replace` file: each instance the daemon acts on
/// is uploaded again; a line naming another is logged.
fn take_replaces<G: Gateway>(reconciler: &mut Reconciler<G>) {
    let named = replace::take(reconciler.state_dir().path());
    let ids = named.into_iter().filter_map(|(line, id)| {
        if reconciler.has_instance(&id) {
            return Some(id);
        }
        tracing::warn!(
            instance = %id,
            line,
            "replace file, line {line}: instance {id} is not one this daemon acts on (not in \
             the manifest, or not in its --instance or shard); skipped"
        );
        None
    });
    let ids: Vec<_> = ids.collect();
    reconciler.replace(ids);
}

/// When the next resync is due: `resyncInterval` from now, plus up to 10 % jitter.
fn next_resync(manifest: &Manifest, jitter: &mut Jitter) -> Instant {
    let every = manifest.resync_interval;
    Instant::now() + every + every.mul_f64(RESYNC_JITTER * jitter.draw())
}

#[cfg(test)]
mod tests;
