//! The engine with a notifier, on tokio's paused clock: a receiver that fails for a minute
//! while uploads go on at the very instants they would without it, and the scripted day of
//! issue 23. The receiver here is in memory (a [`Post`] that records each attempt): a real
//! socket's timeouts would fire on the paused clock. `tests/notify.rs` runs the real binary
//! against a real receiver on 127.0.0.1.

use crate::clock::{Clock, Jitter};
use crate::gateway::{Gateway, Upload};
use crate::manifest::{self, WebhookUrl};
use crate::metrics::Metrics;
use crate::notify::post::{ID_HEADER, Post};
use crate::notify::{Event, EventKind, Notices, Subject, spawn};
use crate::outcome::{CallFailure, CallOutcome, FailureKind};
use crate::reconcile::{Options, Reconciler};
use crate::state::{Loaded, State, StateDir, StateStore};
use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;

const MINUTE: Duration = Duration::from_secs(60);

fn subject(id: &str, picture: &[u8]) -> Subject {
    Subject::in_test(id, picture)
}

/// One attempt a receiver saw: when (since the start), its answer, the headers, the body.
type Attempt = (Duration, u16, Vec<(&'static str, String)>, String);

/// A receiver in memory: answers 500 until `healthy_at`, then 200, recording each attempt
/// (when, the answer, the headers and the body).
#[derive(Clone)]
struct Memory {
    start: Instant,
    healthy_at: Duration,
    attempts: Arc<Mutex<Vec<Attempt>>>,
}

impl Post for Memory {
    async fn post(
        &self,
        _: &WebhookUrl,
        headers: Vec<(&'static str, String)>,
        body: String,
    ) -> Result<u16, String> {
        let at = Instant::now() - self.start;
        let status = if at < self.healthy_at { 500 } else { 200 };
        self.attempts
            .lock()
            .unwrap()
            .push((at, status, headers, body));
        Ok(status)
    }
}

/// GREEN-API in memory: each instance answers its scripted failures first, then applies;
/// every call's start is recorded (time since the test's start, instance).
#[derive(Clone)]
struct Script {
    start: Instant,
    failures: Arc<Mutex<HashMap<String, u32>>>,
    /// Instances that fail every upload until this long after the start.
    failing_until: Arc<Mutex<HashMap<String, Duration>>>,
    calls: Arc<Mutex<Vec<(Duration, String)>>>,
}

impl Gateway for Script {
    async fn set_profile_picture(&self, upload: Upload) -> CallOutcome {
        let id = upload.id.to_string();
        self.calls
            .lock()
            .unwrap()
            .push((Instant::now() - self.start, id.clone()));
        tokio::time::sleep(Duration::from_millis(200)).await;
        let until = self.failing_until.lock().unwrap().get(&id).copied();
        let mut failures = self.failures.lock().unwrap();
        if until.is_some_and(|until| Instant::now() - self.start < until) {
            failures.insert(id.clone(), 1);
        }
        match failures.get_mut(&id) {
            Some(n) if *n > 0 => {
                *n -= 1;
                CallOutcome::Failed(CallFailure {
                    kind: FailureKind::ServerError,
                    detail: "HTTP 500: internal error".to_owned(),
                })
            }
            _ => CallOutcome::Applied { url_avatar: None },
        }
    }
}

/// `n` instances, each showing `picture`, with a receiver `after: 3` at the top.
fn manifest(dir: &Path, n: usize, picture: &str) -> manifest::Manifest {
    manifest_with(dir, n, picture, "")
}

/// [`manifest`], with the receiver's `events` and the rest of the top (`extra`) as given.
fn manifest_with(dir: &Path, n: usize, picture: &str, extra: &str) -> manifest::Manifest {
    let mut yaml = format!(
        "apiUrl: http://127.0.0.1:9\nnotify:\n  - url: http://127.0.0.1:1/hook\n    after: 3\n{extra}instances:\n",
    );
    for i in 1..=n {
        yaml.push_str(&format!(
            "  - idInstance: \"1101000{i:03}\"\n    apiTokenInstance: abc123\n    picture: {picture}\n"
        ));
    }
    manifest::parse(&yaml, &dir.join("manifest.yaml"), &|_| None).unwrap()
}

/// A folder with two pictures (`a.jpg`, `b.jpg`) and an empty state directory, locked: the
/// world both runs start from.
fn world() -> (tempfile::TempDir, StateDir, StateStore) {
    let dir = tempfile::tempdir().unwrap();
    for (name, bytes) in [
        (
            "a.jpg",
            &include_bytes!("../../examples/pictures/support.jpg")[..],
        ),
        (
            "b.jpg",
            &include_bytes!("../../examples/pictures/sales.jpg")[..],
        ),
    ] {
        std::fs::write(dir.path().join(name), bytes).unwrap();
    }
    let state_dir = StateDir::new(dir.path().join("state"));
    let lock = state_dir.lock("test").unwrap();
    let store = StateStore::new(state_dir.clone(), lock, Loaded::from(State::default())).unwrap();
    (dir, state_dir, store)
}

/// The daemon's options: a blocked instance is retried, not given up on.
fn daemon_options() -> Options {
    Options {
        give_up_when_blocked: false,
        ..Options::one_shot(8)
    }
}

/// Starts the notifier of `engine`'s receivers, sending through `receiver`.
fn notify<G: Gateway>(
    engine: &mut Reconciler<G>,
    state_dir: &StateDir,
    receiver: &Memory,
) -> Notices {
    let metrics = Arc::new(Metrics::new());
    let (notices, _task) = spawn(
        state_dir.path(),
        &engine.manifest().notify,
        receiver.clone(),
        metrics,
    )
    .unwrap();
    engine.notify_to(notices.clone());
    notices
}

/// A day in the engine: instance 01 fails three times (told at the third), the receiver
/// answers 500 for the first minute after that; at 40 s nine instances get a new
/// picture. Returns when each upload started, and the receiver's attempts.
async fn run(notify: bool) -> (Vec<(Duration, String)>, Memory) {
    let (dir, state_dir, store) = world();
    let start = Instant::now();
    let gateway = Script {
        start,
        failures: Arc::new(Mutex::new(HashMap::from([("1101000001".to_owned(), 3)]))),
        failing_until: Arc::default(),
        calls: Arc::default(),
    };
    let clock = Clock::start();
    let first = Arc::new(manifest(dir.path(), 10, "a.jpg"));
    let jitter = Jitter::Fixed(0.5);
    let options = daemon_options();
    let mut engine = Reconciler::new(first, store, gateway.clone(), clock, jitter, options);
    // Told at about 30 s (the third failure): healthy a minute later.
    let receiver = Memory {
        start,
        healthy_at: Duration::from_secs(30) + MINUTE,
        attempts: Arc::default(),
    };
    if notify {
        self::notify(&mut engine, &state_dir, &receiver);
    }
    let t0 = clock.now();
    engine
        .run_until(t0 + Duration::from_secs(35))
        .await
        .unwrap();
    tokio::time::sleep_until(start + Duration::from_secs(40)).await;
    let mut second = manifest(dir.path(), 10, "b.jpg");
    second.instances[0].picture = manifest(dir.path(), 1, "a.jpg").instances.remove(0).picture;
    engine.set_manifest(Arc::new(second));
    engine
        .run_until(t0 + Duration::from_secs(300))
        .await
        .unwrap();
    tokio::time::sleep_until(start + Duration::from_secs(600)).await;
    let calls = gateway.calls.lock().unwrap().clone();
    (calls, receiver)
}

#[tokio::test(start_paused = true)]
async fn a_receiver_down_for_a_minute_gets_the_message_after_and_uploads_never_wait() {
    let (quiet, _) = run(false).await;
    let (told, receiver) = run(true).await;
    // The same uploads at the same instants, told or not, the receiver failing meanwhile.
    assert_eq!(told, quiet);
    assert!(told.len() >= 10 + 3 + 9, "{told:?}");
    let attempts = receiver.attempts.lock().unwrap().clone();
    let delivered: Vec<_> = attempts.iter().filter(|a| a.1 == 200).collect();
    // The failure (after 3) and its recovery, each delivered once, in order.
    let events: Vec<String> = (delivered.iter())
        .map(|a| serde_json::from_str::<serde_json::Value>(&a.3).unwrap()["event"].to_string())
        .collect();
    assert_eq!(events, ["\"failed\"", "\"recovered\""], "{attempts:?}");
    let failing = attempts.iter().filter(|a| a.1 == 500).count();
    assert!(failing >= 5, "retried while down: {failing}");
    let first_ok = delivered[0].0;
    // Backoff 1, 2, 4, ... 64 s (+20 %): delivered within about a minute of recovery.
    assert!(
        first_ok >= Duration::from_secs(90) && first_ok <= Duration::from_secs(90) + 2 * MINUTE,
        "{first_ok:?}"
    );
    // Every attempt of one message carries the same id.
    let ids: std::collections::BTreeSet<&str> = (attempts.iter())
        .filter(|a| a.3.contains("\"failed\""))
        .flat_map(|a| {
            a.2.iter()
                .filter(|h| h.0 == ID_HEADER)
                .map(|h| h.1.as_str())
        })
        .collect();
    assert_eq!(ids.len(), 1);
}

/// The closing figure of issue 23: a scripted day of 100 instances. At 1 h a revision
/// changes every picture (the rollout: 100 uploads); 3 instances fail every upload for the
/// hour after it; one instance is seen drifted by each hourly look for the rest of the day
/// (24 looks, handed to the notifier as the engine hands a drift). The naive count is one
/// message per event: every upload (applied or failed), every recovery, every look that
/// saw drift. Run with `--nocapture` to see it.
#[tokio::test(start_paused = true)]
async fn a_scripted_day_tells_a_handful_of_messages_not_one_per_event() {
    let (dir, state_dir, store) = world();
    let start = Instant::now();
    let hour = Duration::from_secs(3600);
    let failing = ["1101000007", "1101000042", "1101000099"];
    let gateway = Script {
        start,
        failures: Arc::default(),
        failing_until: Arc::new(Mutex::new(
            failing
                .iter()
                .map(|id| ((*id).to_owned(), 2 * hour))
                .collect(),
        )),
        calls: Arc::default(),
    };
    let clock = Clock::start();
    let t0 = clock.now();
    // The revision at 1 h goes out in waves (1, then a tenth, then all, 10 minutes apart).
    let rollout = "rollout:\n  waves: [1, 10%, 100%]\n  maxFailures: 10%\n  pause: 10m\n";
    let events = "    events: [failed, drifted, halted, rollout]\n";
    let yaml = |picture: &str| {
        let extra = format!("{events}{rollout}");
        Arc::new(manifest_with(dir.path(), 100, picture, &extra))
    };
    let mut engine = Reconciler::new(
        yaml("a.jpg"),
        store,
        gateway.clone(),
        clock,
        Jitter::Fixed(0.5),
        daemon_options(),
    );
    // The day starts converged.
    engine
        .run_until(t0 + Duration::from_secs(60))
        .await
        .unwrap();
    let before = gateway.calls.lock().unwrap().len();
    let receiver = Memory {
        start,
        healthy_at: Duration::ZERO,
        attempts: Arc::default(),
    };
    let notices = notify(&mut engine, &state_dir, &receiver);

    tokio::time::sleep_until(start + hour).await;
    engine.set_manifest(yaml("b.jpg"));
    engine.run_until(t0 + 3 * hour).await.unwrap();
    let drifting = subject(
        "1101000050",
        include_bytes!("../../examples/pictures/sales.jpg"),
    );
    let looks = 24;
    for _ in 0..looks {
        let kind = EventKind::Drifted {
            subject: drifting.clone(),
            why: "another picture is live".to_owned(),
        };
        notices.tell(Event {
            at: clock.now(),
            kind,
        });
    }
    tokio::time::sleep_until(start + 24 * hour).await;

    let calls = gateway.calls.lock().unwrap().len() - before;
    let recoveries = failing.len();
    let naive = calls + recoveries + looks;
    let attempts = receiver.attempts.lock().unwrap().clone();
    let sent: Vec<String> = (attempts.iter())
        .map(|a| {
            serde_json::from_str::<serde_json::Value>(&a.3).unwrap()["event"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    println!(
        "scripted day: 100 instances, 3 failing for an hour, 1 drifting, one rollout: \
         {naive} events ({calls} uploads, {recoveries} recoveries, {looks} drift looks), \
         {} messages sent: {sent:?}",
        sent.len()
    );
    let count = |e: &str| sent.iter().filter(|s| *s == e).count();
    assert_eq!(
        (count("failed"), count("recovered"), count("drifted")),
        (3, 3, 1)
    );
    // One digest per wave, where a per-instance notifier would send 100.
    assert_eq!((count("rollout"), count("halted")), (3, 0), "{sent:?}");
    assert_eq!(sent.len(), 10);
    assert!(
        calls > 100 + 3 * 10,
        "100 rollout uploads and each failing one retried: {calls}"
    );
}
