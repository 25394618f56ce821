//! Daemon mode's entry: takes the state directory, then wires the real world to the
//! [`crate::daemon`] loop: signals and file hints as its events, the HTTP gateway, systemd
//! as its notifier, random jitter.

use crate::Error;
use crate::clock::{Clock, Jitter};
use crate::daemon::watch::Watcher;
use crate::daemon::{self, ManifestSource, Parts, Systemd, watched_files};
use crate::gateway::HttpGateway;
use crate::manifest::{Manifest, Scope};
use crate::reconcile::{Options, Reconciler};
use crate::state::{StateDir, StateStore};
use std::path::PathBuf;
use std::sync::Arc;

/// Runs the daemon on `first` (the manifest as loaded at start) until SIGTERM or SIGINT.
pub(crate) async fn serve(
    manifest_path: PathBuf,
    dir: StateDir,
    concurrency: usize,
    scope: Scope,
    first: Manifest,
) -> Result<(), Error> {
    let clock = Clock::start();
    let source = ManifestSource::new(manifest_path, scope);
    let lock = dir.lock("avatar-sync daemon")?;
    let state = dir.load_for_write(&lock)?.take(&dir);
    let store = StateStore::new(dir, lock, state);
    let gateway = HttpGateway::new()?;

    let (events, receiver) = tokio::sync::mpsc::unbounded_channel();
    daemon::signals::forward(events.clone()).map_err(|source| Error::Host {
        what: "cannot listen for signals".to_owned(),
        source,
    })?;
    let mut watcher = Watcher::new(events).map_err(|e| Error::Host {
        what: "cannot watch files".to_owned(),
        source: std::io::Error::other(e),
    })?;

    let options = Options {
        concurrency,
        give_up_when_blocked: false,
    };
    let manifest = Arc::new(first);
    let reconciler = Reconciler::new(manifest, store, gateway, clock, Jitter::random(), options);
    let parts = Parts {
        reconciler,
        source,
        notifier: Systemd,
        jitter: Jitter::random(),
        follow: Box::new(move |manifest: &Manifest| {
            watcher.follow(watched_files(manifest).iter().map(PathBuf::as_path));
        }),
    };
    daemon::run(receiver, parts).await?;
    Ok(())
}
