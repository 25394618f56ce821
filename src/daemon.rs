//! The daemon: one loop that sleeps until the earliest of a change hint settling, the next
//! instance due (throttle, backoff), the resync timer, a watchdog ping or a signal, then
//! does what is due. No polling: an idle daemon sleeps in `epoll_wait`.
//!
//! - File events are hints; a pass starts once they have been quiet for [`QUIET`] (at most
//!   [`QUIET_MAX`] after the first, so a constant trickle cannot starve it).
//! - A manifest edit that does not parse is logged (file, line) and ignored; the last good
//!   manifest stays in force. The manifest is parsed only when its bytes changed.
//! - SIGHUP reloads and gives instances in a slow backoff a fresh chance; SIGTERM/SIGINT stop
//!   taking new work, let calls in flight finish (at most [`DRAIN`]), save, exit 0; a second
//!   signal exits at once, the state file still whole (it is only ever replaced atomically).

use crate::Error;
use crate::clock::Clock;
use crate::gateway::Gateway;
use crate::manifest::{self, Manifest, TokenSource};
use crate::reconcile::{Options, Reconciler, sleep_until_opt, take_state};
use crate::state::{StateDir, StateStore};
use crate::systemd::{Notifier, status_line};
use crate::watch::Watcher;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::signal::unix::{SignalKind, signal};
use tokio::time::Instant;

/// Files must be quiet this long before a pass acts on them.
pub const QUIET: Duration = Duration::from_millis(300);
/// A pass starts at most this long after the first event, however busy the files are.
pub const QUIET_MAX: Duration = Duration::from_secs(2);
/// How long a graceful stop waits for calls in flight.
pub const DRAIN: Duration = Duration::from_secs(10);
/// The resync timer's jitter, as a fraction of `resyncInterval`.
const RESYNC_JITTER: f64 = 0.1;

/// What the daemon needs from the command line.
#[derive(Clone, Debug)]
pub struct DaemonArgs {
    /// The manifest.
    pub manifest: PathBuf,
    /// The state directory.
    pub state_dir: PathBuf,
    /// At most this many calls in flight.
    pub concurrency: usize,
}

/// The manifest file as last read: its bytes, so an unchanged file is not parsed again.
struct ManifestSource {
    path: PathBuf,
    bytes: Vec<u8>,
}

impl ManifestSource {
    /// Reads the manifest again; `Some` when it changed (or `force`) and is valid, `None`
    /// when it is unchanged or (logged) invalid. `force` also re-reports a broken manifest.
    fn reload(&mut self, force: bool) -> Option<Manifest> {
        let bytes = match std::fs::read(&self.path) {
            Ok(bytes) => bytes,
            Err(e) => {
                tracing::error!(
                    "cannot read the manifest {}: {e}; keeping the last good one",
                    self.path.display()
                );
                return None;
            }
        };
        let changed = bytes != self.bytes;
        if !changed && !force {
            return None;
        }
        self.bytes = bytes;
        let text = String::from_utf8_lossy(&self.bytes);
        match manifest::parse(&text, &self.path, &|name| std::env::var(name).ok()) {
            Ok(manifest) => {
                let what = if changed {
                    "manifest changed; reloaded"
                } else {
                    "manifest reloaded"
                };
                tracing::info!(manifest = %self.path.display(), "{what}");
                log_warnings(&manifest);
                Some(manifest)
            }
            Err(e) => {
                for problem in &e.problems {
                    tracing::error!("{problem}");
                }
                tracing::error!(
                    "the manifest edit above is ignored; the last good manifest stays in force"
                );
                None
            }
        }
    }
}

fn log_warnings(manifest: &Manifest) {
    for warning in &manifest.warnings {
        tracing::warn!("{warning}");
    }
}

/// The files the daemon watches: the manifest, every picture and every token file (a
/// corrected token is retried at once).
fn watched_files(manifest: &Manifest) -> Vec<PathBuf> {
    let pictures = manifest
        .instances
        .iter()
        .filter_map(|i| i.picture.path.clone().ok());
    let tokens = manifest.instances.iter().filter_map(|i| match &i.token {
        TokenSource::File(Ok(path)) => Some(path.clone()),
        _ => None,
    });
    std::iter::once(manifest.path.clone())
        .chain(pictures)
        .chain(tokens)
        .collect()
}

/// Runs the daemon on `first` (the manifest as loaded at start) until SIGTERM or SIGINT.
pub async fn run(args: DaemonArgs, first: Manifest) -> Result<(), Error> {
    let clock = Clock::start();
    let notifier = Notifier;
    let mut source = ManifestSource {
        path: args.manifest.clone(),
        bytes: std::fs::read(&args.manifest).unwrap_or_default(),
    };
    let dir = StateDir::new(&args.state_dir);
    let lock = dir.lock("avatar-sync daemon")?;
    let state = take_state(&dir, dir.load_for_write(&lock)?);
    let store = StateStore::new(dir, lock, state);
    let gateway = Gateway::new()?;

    let signal_error = |e: std::io::Error| Error::Host(format!("cannot listen for signals: {e}"));
    let mut sighup = signal(SignalKind::hangup()).map_err(signal_error)?;
    let mut sigterm = signal(SignalKind::terminate()).map_err(signal_error)?;
    let mut sigint = signal(SignalKind::interrupt()).map_err(signal_error)?;

    let (hint_tx, mut hints) = tokio::sync::mpsc::unbounded_channel();
    let mut watcher =
        Watcher::new(hint_tx).map_err(|e| Error::Host(format!("cannot watch files: {e}")))?;
    watcher.follow(watched_files(&first).iter().map(PathBuf::as_path));

    let options = Options {
        concurrency: args.concurrency,
        give_up_when_blocked: false,
    };
    let mut reconciler = Reconciler::new(Arc::new(first), store, gateway, clock, options);
    notifier.ready();
    let mut last_status = String::new();
    report_status(&reconciler, notifier, &mut last_status);
    tracing::info!(
        manifest = %args.manifest.display(),
        "daemon started: watching the manifest and its pictures"
    );

    let mut quiet = QuietWindow::default();
    let mut resync_at = next_resync(&reconciler);
    let watchdog_every = notifier.watchdog_interval();
    let mut watchdog_at = watchdog_every.map(|every| Instant::now() + every);

    loop {
        reconciler.fire_timers(clock.now());
        reconciler.dispatch();
        let next_timer = reconciler.next_timer().map(|at| clock.instant_at(at));
        let save_at = reconciler.save_due_at();
        let quiet_at = quiet.due_at();
        let mut pass = Pass::None;
        tokio::select! {
            () = reconciler.land_next() => {
                if !reconciler.has_in_flight() && !reconciler.has_queued() {
                    report_status(&reconciler, notifier, &mut last_status);
                }
            }
            () = sleep_until_opt(next_timer) => {}
            () = sleep_until_opt(save_at) => {}
            Some(()) = hints.recv() => quiet.note(Instant::now()),
            () = sleep_until_opt(quiet_at) => {
                quiet.clear();
                pass = Pass::Changed;
            }
            () = tokio::time::sleep_until(resync_at) => pass = Pass::Resync,
            _ = sighup.recv() => pass = Pass::Reload,
            _ = sigterm.recv() => break,
            _ = sigint.recv() => break,
            () = sleep_until_opt(watchdog_at) => {
                notifier.watchdog();
                watchdog_at = watchdog_every.map(|every| Instant::now() + every);
            }
        }
        if pass != Pass::None {
            if pass == Pass::Reload {
                tracing::info!("SIGHUP: reloading the manifest and reconciling everything now");
                notifier.reloading();
            }
            // Every pass re-reads pictures from disk; the manifest is parsed only if it changed.
            let manifest = source
                .reload(pass == Pass::Reload)
                .map(Arc::new)
                .unwrap_or_else(|| Arc::clone(reconciler.manifest()));
            watcher.follow(watched_files(&manifest).iter().map(PathBuf::as_path));
            reconciler.set_manifest(manifest);
            if pass == Pass::Reload {
                reconciler.retry_blocked_now();
                notifier.ready();
            }
            if pass == Pass::Resync {
                resync_at = next_resync(&reconciler);
            }
            report_status(&reconciler, notifier, &mut last_status);
        }
        if let Err(e) = reconciler.save_if_due() {
            tracing::error!("{e}; retrying at the next save");
        }
    }

    tracing::info!("stopping: no new calls; letting calls in flight finish");
    notifier.stopping();
    let drain_until = Instant::now() + DRAIN;
    while reconciler.has_in_flight() {
        tokio::select! {
            () = reconciler.land_next() => {}
            () = tokio::time::sleep_until(drain_until) => {
                tracing::warn!("calls still in flight after {DRAIN:?}; stopping without them");
                break;
            }
            _ = sigterm.recv() => { tracing::warn!("second signal: stopping now"); break; }
            _ = sigint.recv() => { tracing::warn!("second signal: stopping now"); break; }
        }
    }
    reconciler.save()?;
    tracing::info!("stopped; state saved");
    Ok(())
}

/// The quiet window: a pass starts once change hints have stopped for [`QUIET`], and at
/// most [`QUIET_MAX`] after the first of them, so a constant trickle cannot starve it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct QuietWindow {
    /// (first hint, last hint) since the last pass.
    span: Option<(Instant, Instant)>,
}

impl QuietWindow {
    /// A hint arrived at `now`.
    pub fn note(&mut self, now: Instant) {
        self.span = Some(self.span.map_or((now, now), |(first, _)| (first, now)));
    }

    /// When the pass is due, if any hint is waiting.
    pub fn due_at(&self) -> Option<Instant> {
        self.span
            .map(|(first, last)| (last + QUIET).min(first + QUIET_MAX))
    }

    /// The pass is starting: forget the hints it covers.
    pub fn clear(&mut self) {
        self.span = None;
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Pass {
    None,
    Changed,
    Resync,
    Reload,
}

fn next_resync(reconciler: &Reconciler) -> Instant {
    let every = reconciler.manifest().resync_interval;
    Instant::now() + every + every.mul_f64(RESYNC_JITTER * fastrand::f64())
}

fn report_status(reconciler: &Reconciler, notifier: Notifier, last: &mut String) {
    let summary = reconciler.summary();
    let line = status_line(&summary);
    if *last != line {
        tracing::info!(status = %line, "instances");
        notifier.status(&summary);
        *last = line;
    }
}

#[cfg(test)]
mod tests;
