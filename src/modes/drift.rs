//! `--drift`: is what WhatsApp shows what the manifest wants? Read-only towards GREEN-API,
//! like `terraform plan -refresh-only`: one `getWaSettings` per instance, and the live
//! picture's file only when its URL's path is not the one GREEN-API answered when the
//! desired picture was applied (the signed query string changes without the picture
//! changing). Pictures are compared perceptually, since WhatsApp re-encodes and resizes
//! what it was sent. No upload.
//!
//! It is the engine's observing policy: the same reads, the same one-read-a-second rule,
//! and what it saw is recorded in the state directory (the next daemon start, `--status`
//! and the status page know it), unless another process holds the state directory's lock:
//! then it only reads, beside that writer.

use crate::Error;
use crate::clock::{Clock, Jitter};
use crate::gateway::HttpGateway;
use crate::manifest::Manifest;
use crate::reconcile::{Options, Reconciler};
use crate::report::Report;
use crate::state::{StateDir, StateError, StateStore};
use std::sync::Arc;
use std::time::Duration;

/// Reads every instance's live picture and compares it with its desired one, within
/// `timeout` (a read GREEN-API asked to slow down is tried again until then).
pub(crate) async fn drift(
    manifest: Manifest,
    dir: &StateDir,
    concurrency: usize,
    timeout: Duration,
) -> Result<Report, Error> {
    let store = open(dir)?;
    let gateway = HttpGateway::new()?;
    let options = Options {
        concurrency,
        give_up_when_blocked: true,
        // Pictures are read as they are, as `--check` reads them.
        settle: Duration::ZERO,
        live_reads: false,
        wait_for_windows: false,
        observe_only: true,
    };
    let clock = Clock::start();
    let (manifest, jitter) = (Arc::new(manifest), Jitter::random());
    let mut engine = Reconciler::new(manifest, store, gateway, clock, jitter, options);
    // Each read is bounded by the gateway's timeout; the run, by --timeout.
    engine.run_until(clock.now() + timeout).await?;
    let mut report = engine.observed();
    report.calls = Some(engine.metrics().calls());
    crate::usage::free_aside(engine.close());
    let s = &report.summary;
    tracing::info!(
        in_sync = s.in_sync,
        drifted = s.drifted,
        failed = s.failed,
        suspended = s.suspended,
        "drift checked"
    );
    Ok(report)
}

/// The state directory as `--drift` uses it: locked, so what it sees is recorded; or, when
/// another process holds the lock (a daemon), read only. A directory that does not exist
/// is not made (there is nothing recorded to update).
fn open(dir: &StateDir) -> Result<StateStore, Error> {
    if !dir.path().exists() {
        return Ok(StateStore::unlocked(dir.clone(), dir.load()?));
    }
    match dir.lock("avatar-sync --drift") {
        Ok(lock) => {
            let loaded = dir.load_for_write(&lock)?;
            Ok(StateStore::new(dir.clone(), lock, loaded)?)
        }
        Err(e @ StateError::Locked { .. }) => {
            tracing::info!("{e}: reading only; what --drift sees is not recorded");
            Ok(StateStore::unlocked(dir.clone(), dir.load()?))
        }
        Err(e) => Err(e.into()),
    }
}
