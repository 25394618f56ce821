//! The reconcile loop on tokio's paused clock: minutes of backoff in milliseconds.

use super::*;
use crate::gateway::HttpGateway;
use crate::manifest::{self, InstanceId};
use crate::state::{Loaded, State, StateDir};
use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

fn world(api_url: &str) -> (tempfile::TempDir, Manifest) {
    let dir = tempfile::tempdir().unwrap();
    let jpeg = include_bytes!("../../examples/pictures/support.jpg");
    std::fs::write(dir.path().join("a.jpg"), jpeg).unwrap();
    let yaml = format!(
        "apiUrl: {api_url}\ninstances:\n  - idInstance: \"1101000001\"\n    apiTokenInstance: abc123\n    picture: a.jpg\n"
    );
    let path = dir.path().join("manifest.yaml");
    let manifest = manifest::parse(&yaml, &path, &|_| None).unwrap();
    (dir, manifest)
}

fn reconciler(dir: &Path, manifest: Manifest, clock: Clock) -> Reconciler<HttpGateway> {
    with_gateway(dir, manifest, clock, HttpGateway::new().unwrap())
}

fn with_gateway<G: Gateway>(
    dir: &Path,
    manifest: Manifest,
    clock: Clock,
    gateway: G,
) -> Reconciler<G> {
    let state_dir = StateDir::new(dir.join("state"));
    let lock = state_dir.lock("test").unwrap();
    let store = StateStore::new(state_dir, lock, Loaded::from(State::default())).unwrap();
    let options = Options::one_shot(4);
    Reconciler::new(
        Arc::new(manifest),
        store,
        gateway,
        clock,
        Jitter::random(),
        options,
    )
}

#[tokio::test(start_paused = true)]
async fn a_failing_gateway_is_retried_on_the_ladder_until_the_deadline() {
    // Nothing listens on port 9 of loopback: every call fails at once with a connection error.
    let (dir, manifest) = world("http://127.0.0.1:9");
    let clock = Clock::start();
    let start = clock.now();
    let mut reconciler = reconciler(dir.path(), manifest, clock);
    reconciler
        .run_until(start + Duration::from_secs(300))
        .await
        .unwrap();

    // Attempts at 0 s, then after 10, 20, 40 and 80 s (each plus up to 20 % jitter): the
    // fifth lands by 180 s; the sixth would wait 160 s more, past the 300 s deadline.
    let record = &reconciler.store.state().instances[&InstanceId::parse("1101000001").unwrap()];
    let failure = record.failure.as_ref().unwrap();
    assert_eq!(failure.kind, crate::outcome::FailureKind::Connection);
    assert_eq!(failure.consecutive, 5);
    let last_call = record.last_call_at.unwrap().duration_since(start).unwrap();
    assert!(
        last_call >= Duration::from_secs(150) && last_call <= Duration::from_secs(180),
        "{last_call:?}"
    );
    let waits = failure
        .next_attempt_at
        .duration_since(record.last_call_at.unwrap())
        .unwrap();
    assert!(
        waits >= Duration::from_secs(160) && waits <= Duration::from_secs(192),
        "{waits:?}"
    );
    // The loop returned as soon as nothing was left before the deadline, not at it.
    assert!(clock.now().duration_since(start).unwrap() < Duration::from_secs(181));

    let report = reconciler.report();
    // Nothing listens: named, never a throttle.
    assert_eq!(report.summary.unreachable, 1);
    assert_eq!(report.summary.throttled, 0);
    // Everything is on disk once the loop returns.
    let saved = StateDir::new(dir.path().join("state"))
        .load()
        .unwrap()
        .state;
    let saved = &saved.instances[&InstanceId::parse("1101000001").unwrap()];
    assert_eq!(saved.failure.as_ref().unwrap().consecutive, 5);
    let ms = |t: SystemTime| {
        t.duration_since(SystemTime::UNIX_EPOCH)
            .unwrap()
            .as_millis()
    };
    assert_eq!(saved.last_call_at.map(ms), record.last_call_at.map(ms));
}

#[tokio::test(start_paused = true)]
async fn nothing_to_do_returns_at_once() {
    let (dir, mut manifest) = world("http://127.0.0.1:9");
    manifest.instances[0].suspend = true;
    let clock = Clock::start();
    let start = clock.now();
    let mut reconciler = reconciler(dir.path(), manifest, clock);
    reconciler
        .run_until(start + Duration::from_secs(300))
        .await
        .unwrap();
    assert_eq!(clock.now(), start);
    assert_eq!(reconciler.report().summary.suspended, 1);
    assert!(
        !dir.path().join("state/state.json").exists(),
        "nothing changed, nothing written"
    );
}

/// A GREEN-API that applies every upload at once, noting when each started.
#[derive(Clone, Default)]
struct Applies(Arc<Mutex<Vec<tokio::time::Instant>>>);

impl Applies {
    fn calls(&self) -> Vec<tokio::time::Instant> {
        self.0.lock().unwrap().clone()
    }
}

impl Gateway for Applies {
    async fn set_profile_picture(&self, _: crate::gateway::Upload) -> crate::outcome::CallOutcome {
        self.0.lock().unwrap().push(tokio::time::Instant::now());
        crate::outcome::CallOutcome::Applied { url_avatar: None }
    }
}

#[tokio::test(start_paused = true)]
async fn a_replace_uploads_an_applied_instance_once_more_within_the_throttle() {
    let (dir, manifest) = world("http://127.0.0.1:9");
    let clock = Clock::start();
    let gateway = Applies::default();
    let mut reconciler = with_gateway(dir.path(), manifest, clock, gateway.clone());
    let id = InstanceId::parse("1101000001").unwrap();
    let five_minutes = Duration::from_secs(300);
    reconciler
        .run_until(clock.now() + five_minutes)
        .await
        .unwrap();
    assert_eq!(gateway.calls().len(), 1);
    assert_eq!(reconciler.summary().applied, 1);

    // Planned again from its record, as a new run would: in sync, so no token is read.
    reconciler.set_manifest(Arc::clone(reconciler.manifest()));
    assert_eq!(reconciler.summary().in_sync, 1);
    assert!(reconciler.table.slots[0].target.token.is_none());
    // Its record says applied; a replace plans an upload all the same, held by the
    // throttle (minInterval, 10 s by default) that the first call started.
    reconciler.replace([id.clone()]);
    assert!(reconciler.table.replacing(&id));
    assert_eq!(reconciler.summary().throttled, 1);
    reconciler
        .run_until(clock.now() + five_minutes)
        .await
        .unwrap();
    let calls = gateway.calls();
    assert_eq!(calls.len(), 2);
    assert!(calls[1] - calls[0] >= Duration::from_secs(10), "{calls:?}");
    assert_eq!(reconciler.summary().applied, 1);
    // Landed applied: the replace is done, and the instance is in sync again.
    assert!(!reconciler.table.replacing(&id));
    reconciler.set_manifest(Arc::clone(reconciler.manifest()));
    reconciler
        .run_until(clock.now() + five_minutes)
        .await
        .unwrap();
    assert_eq!(gateway.calls().len(), 2, "one replace, one upload");
    assert_eq!(reconciler.summary().in_sync, 1);
}

#[tokio::test(start_paused = true)]
async fn a_replace_of_a_suspended_instance_sends_nothing() {
    let (dir, mut manifest) = world("http://127.0.0.1:9");
    manifest.instances[0].suspend = true;
    let clock = Clock::start();
    let gateway = Applies::default();
    let mut reconciler = with_gateway(dir.path(), manifest, clock, gateway.clone());
    let id = InstanceId::parse("1101000001").unwrap();
    reconciler.replace([id.clone()]);
    assert!(!reconciler.table.replacing(&id));
    let five_minutes = Duration::from_secs(300);
    reconciler
        .run_until(clock.now() + five_minutes)
        .await
        .unwrap();
    assert!(gateway.calls().is_empty());
    assert_eq!(reconciler.summary().suspended, 1);
}
