//! The daemon loop on tokio's paused clock: every event, timer and wake-up lands at an exact
//! instant, so each test asserts the exact calls and when they were made, with no sleeps in
//! real time. GREEN-API is a scripted [`Gateway`] that records each call; the manifest,
//! pictures and state directory are real files.

use super::*;
use crate::clock::Clock;
use crate::gateway::{InstanceState, Reader, Upload, WaSettings};
use crate::outcome::{CallFailure, CallOutcome, FailureKind};
use crate::reconcile::Options;
use crate::state::{State, StateDir, StateStore};
use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::Mutex;
use tokio::sync::mpsc::UnboundedSender;

const ID: &str = "1101000001";
const SECOND: Duration = Duration::from_secs(1);

/// A scripted GREEN-API: answers uploads in order (then `Applied`), each after its
/// latency, and records when each call started (time since the test's start) and what it
/// sent. Reads of live state answer at once with [`Scripted::set_state`]'s state and the
/// URL an upload answers (so a look finds the applied picture without a download), and are
/// recorded too.
#[derive(Clone)]
struct Scripted {
    start: Instant,
    answers: Arc<Mutex<VecDeque<(Duration, CallOutcome)>>>,
    calls: Arc<Mutex<Vec<Call>>>,
    reads: Arc<Mutex<Vec<(Duration, &'static str)>>>,
    state: Arc<Mutex<&'static str>>,
    /// How long each read of live state takes to answer.
    read_latency: Arc<Mutex<Duration>>,
}

/// The URL every scripted upload answers, and every scripted look finds live.
const AVATAR_URL: &str = "https://pps.whatsapp.net/v/t61/a.jpg";

impl Scripted {
    fn new(answers: impl IntoIterator<Item = (Duration, CallOutcome)>) -> Self {
        Self {
            start: Instant::now(),
            answers: Arc::new(Mutex::new(answers.into_iter().collect())),
            calls: Arc::default(),
            reads: Arc::default(),
            state: Arc::new(Mutex::new("authorized")),
            read_latency: Arc::default(),
        }
    }

    /// How long reads of live state take to answer from now on.
    fn set_read_latency(&self, latency: Duration) {
        *self.read_latency.lock().unwrap() = latency;
    }

    /// What reads of live state answer from now on (`stateInstance`).
    fn set_state(&self, state: &'static str) {
        *self.state.lock().unwrap() = state;
    }

    /// When each read of `method` started, since the test's start.
    fn read_times(&self, method: &str) -> Vec<Duration> {
        let reads = self.reads.lock().unwrap();
        (reads.iter().filter(|(_, m)| *m == method))
            .map(|(at, _)| *at)
            .collect()
    }

    fn read(&self, method: &'static str) -> InstanceState {
        let at = Instant::now() - self.start;
        self.reads.lock().unwrap().push((at, method));
        InstanceState(Some((*self.state.lock().unwrap()).to_owned()))
    }

    /// When each call started, since the test's start.
    fn call_times(&self) -> Vec<Duration> {
        let calls = self.calls.lock().unwrap();
        calls.iter().map(|(at, ..)| *at).collect()
    }

    fn bytes_of_call(&self, n: usize) -> Vec<u8> {
        self.calls.lock().unwrap()[n].2.clone()
    }
}

impl Gateway for Scripted {
    async fn set_profile_picture(&self, upload: Upload) -> CallOutcome {
        let at = Instant::now() - self.start;
        let (latency, answer) = self.answers.lock().unwrap().pop_front().unwrap_or((
            Duration::ZERO,
            CallOutcome::Applied {
                url_avatar: Some(AVATAR_URL.to_owned()),
            },
        ));
        (self.calls.lock().unwrap()).push((at, upload.id.to_string(), upload.bytes));
        tokio::time::sleep(latency).await;
        answer
    }

    async fn wa_settings(&self, _: &Reader) -> Result<WaSettings, CallFailure> {
        let state = self.read("getWaSettings");
        let latency = *self.read_latency.lock().unwrap();
        tokio::time::sleep(latency).await;
        let avatar = state.is_authorized().then(|| AVATAR_URL.to_owned());
        Ok(WaSettings { avatar, state })
    }

    async fn state_instance(&self, _: &Reader) -> Result<InstanceState, CallFailure> {
        Ok(self.read("getStateInstance"))
    }
}

/// One call: when it started (since the test's start), the instance, the bytes sent.
type Call = (Duration, String, Vec<u8>);

/// Records every notice with its time since the test's start.
#[derive(Clone)]
struct Recorder {
    start: Instant,
    notices: Arc<Mutex<Vec<(Duration, Notice)>>>,
    watchdog: Option<Duration>,
}

impl Notify for Recorder {
    fn notify(&self, notice: Notice) {
        let at = Instant::now() - self.start;
        self.notices.lock().unwrap().push((at, notice));
    }

    fn watchdog_interval(&self) -> Option<Duration> {
        self.watchdog
    }
}

impl Recorder {
    fn kinds(&self) -> Vec<(Duration, Notice)> {
        self.notices.lock().unwrap().clone()
    }
}

fn failed(kind: FailureKind) -> CallOutcome {
    CallOutcome::Failed(CallFailure {
        kind,
        detail: format!("scripted {kind}"),
    })
}

/// A manifest of one instance and its picture in a temporary folder.
struct World {
    dir: tempfile::TempDir,
}

impl World {
    fn new(extra: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let world = Self { dir };
        world.picture(&jpeg(1));
        let yaml = format!(
            "apiUrl: http://127.0.0.1:9\nminInterval: 10s\n{extra}instances:\n  - idInstance: \"{ID}\"\n    apiTokenInstance: abc123\n    picture: a.jpg\n"
        );
        std::fs::write(world.manifest_path(), yaml).unwrap();
        world
    }

    fn manifest_path(&self) -> PathBuf {
        self.dir.path().join("manifest.yaml")
    }

    fn state_dir(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    /// Replaces the picture by rename, as an editor saves it.
    fn picture(&self, bytes: &[u8]) {
        let tmp = self.dir.path().join(".a.jpg.tmp");
        std::fs::write(&tmp, bytes).unwrap();
        std::fs::rename(&tmp, self.dir.path().join("a.jpg")).unwrap();
    }
}

/// A complete 16×16 JPEG whose bytes differ for each `n` (no metadata: sent as it is).
fn jpeg(n: u8) -> Vec<u8> {
    let img = image::RgbImage::from_fn(16, 16, |x, y| image::Rgb([n, x as u8 * 9, y as u8 * 9]));
    let mut out = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 90)
        .encode_image(&img)
        .unwrap();
    out
}

/// The loop running in a task, its event sender, and what it talks to.
struct Running {
    events: UnboundedSender<Event>,
    metrics: Arc<crate::metrics::Metrics>,
    gateway: Scripted,
    notices: Recorder,
    task: tokio::task::JoinHandle<Result<(), StateError>>,
}

fn start(world: &World, gateway: Scripted, watchdog: Option<Duration>) -> Running {
    start_with(world, gateway, watchdog, None)
}

fn start_with(
    world: &World,
    gateway: Scripted,
    watchdog: Option<Duration>,
    observed: Option<Arc<Observed>>,
) -> Running {
    let manifest = crate::manifest::load(&world.manifest_path(), None).unwrap();
    let dir = StateDir::new(world.state_dir());
    let lock = dir.lock("test").unwrap();
    let loaded = dir.load_for_write(&lock).unwrap();
    let store = StateStore::new(dir, lock, loaded).unwrap();
    let options = Options {
        concurrency: 4,
        give_up_when_blocked: false,
        // The loop's timing is tested here; settling pictures, in tests/hardening.rs.
        settle: Duration::ZERO,
        // Looks and polls on, as the daemon runs.
        live_reads: true,
        observe_only: false,
        wait_for_windows: true,
    };
    let reconciler = Reconciler::new(
        Arc::new(manifest),
        store,
        gateway.clone(),
        Clock::start(),
        Jitter::Fixed(0.0),
        options,
    );
    let metrics = Arc::clone(reconciler.metrics());
    let notices = Recorder {
        start: gateway.start,
        notices: Arc::default(),
        watchdog,
    };
    let parts = Parts {
        reconciler,
        source: ManifestSource::new(world.manifest_path(), crate::manifest::Scope::all()),
        notifier: notices.clone(),
        jitter: Jitter::Fixed(0.0),
        follow: Box::new(|_: &Arc<Manifest>, _: &[std::path::PathBuf]| {}),
        observed,
    };
    let (events, receiver) = tokio::sync::mpsc::unbounded_channel();
    let task = tokio::spawn(run(receiver, parts));
    Running {
        events,
        metrics,
        gateway,
        notices,
        task,
    }
}

impl Running {
    /// Sends `Stop` and waits for the loop to return; the time it took, since the start.
    async fn stop(self) -> (Duration, Scripted, Recorder) {
        self.events.send(Event::Stop).unwrap();
        self.task.await.unwrap().unwrap();
        (
            Instant::now() - self.gateway.start,
            self.gateway,
            self.notices,
        )
    }
}

/// Sleeps until `at` after the test's start (on the paused clock: instantly).
async fn until(gateway: &Scripted, at: Duration) {
    tokio::time::sleep_until(gateway.start + at).await;
}

fn recorded(world: &World) -> State {
    StateDir::new(world.state_dir()).load().unwrap().state
}

#[tokio::test(start_paused = true)]
async fn a_burst_of_changes_makes_one_pass_once_quiet() {
    let world = World::new("");
    let daemon = start(&world, Scripted::new([]), None);
    // The first picture is sent at once.
    until(&daemon.gateway, 20 * SECOND).await;
    // A `git pull` of three files, 100 ms apart, changes the picture.
    world.picture(&jpeg(2));
    for _ in 0..3 {
        daemon.events.send(Event::Changed).unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    until(&daemon.gateway, 60 * SECOND).await;
    let (_, gateway, _) = daemon.stop().await;
    // One pass, 300 ms after the last hint (sent at 20.2 s): one call, with the new bytes.
    assert_eq!(
        gateway.call_times(),
        [Duration::ZERO, Duration::from_millis(20_500)]
    );
    assert_eq!(gateway.bytes_of_call(0), jpeg(1));
    assert_eq!(gateway.bytes_of_call(1), jpeg(2));
}

#[tokio::test(start_paused = true)]
async fn a_constant_trickle_of_changes_passes_after_quiet_max() {
    let world = World::new("");
    let daemon = start(&world, Scripted::new([]), None);
    until(&daemon.gateway, 20 * SECOND).await;
    world.picture(&jpeg(2));
    // A hint every 100 ms for 5 s: never quiet for 300 ms.
    for _ in 0..50 {
        daemon.events.send(Event::Changed).unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    until(&daemon.gateway, 60 * SECOND).await;
    let (_, gateway, _) = daemon.stop().await;
    // The first pass starts QUIET_MAX after the first hint, the trickle notwithstanding.
    assert_eq!(
        gateway.call_times(),
        [Duration::ZERO, 20 * SECOND + QUIET_MAX]
    );
}

#[tokio::test(start_paused = true)]
async fn resync_rechecks_everything_without_events() {
    let world = World::new("resyncInterval: 1m\n");
    let daemon = start(&world, Scripted::new([]), None);
    until(&daemon.gateway, 5 * SECOND).await;
    // Changed behind the daemon's back, and nobody tells it.
    world.picture(&jpeg(2));
    until(&daemon.gateway, 150 * SECOND).await;
    let (_, gateway, _) = daemon.stop().await;
    // The resync at 60 s (jitter 0) finds it; the one at 120 s finds nothing to do.
    assert_eq!(gateway.call_times(), [Duration::ZERO, 60 * SECOND]);
}

#[tokio::test(start_paused = true)]
async fn backoff_wakes_the_instance_exactly_on_the_ladder() {
    let world = World::new("");
    let answers = [
        (Duration::ZERO, failed(FailureKind::ServerError)),
        (Duration::ZERO, failed(FailureKind::Timeout)),
        (Duration::ZERO, failed(FailureKind::RateOverlimit)),
    ];
    let daemon = start(&world, Scripted::new(answers), None);
    until(&daemon.gateway, 10 * 60 * SECOND).await;
    let (_, gateway, notices) = daemon.stop().await;
    // 10 s, 20 s, 40 s after each failure (jitter 0), then applied: nothing more.
    assert_eq!(
        gateway.call_times(),
        [0, 10, 30, 70].map(|s| s * SECOND).to_vec()
    );
    let record = &recorded(&world).instances[&crate::manifest::InstanceId::parse(ID).unwrap()];
    assert!(record.applied.is_some() && record.failure.is_none());
    // STATUS= follows the instance: pending while it waits, in sync once applied.
    let statuses: Vec<String> = (notices.kinds().into_iter())
        .filter_map(|(_, n)| match n {
            Notice::Status(line) => Some(line),
            _ => None,
        })
        .collect();
    assert_eq!(statuses.first().unwrap(), "0 in sync, 1 pending, 0 failed");
    assert_eq!(statuses.last().unwrap(), "1 in sync, 0 pending, 0 failed");
}

#[tokio::test(start_paused = true)]
async fn sighup_retries_a_blocked_instance_at_once() {
    let world = World::new("");
    let daemon = start(
        &world,
        Scripted::new([(Duration::ZERO, failed(FailureKind::Unauthorized))]),
        None,
    );
    // Unauthorized: retried slowly (15 minutes) ...
    until(&daemon.gateway, 30 * SECOND).await;
    assert_eq!(daemon.gateway.call_times(), [Duration::ZERO]);
    // ... unless the operator reloads.
    daemon.events.send(Event::Reload).unwrap();
    until(&daemon.gateway, 60 * SECOND).await;
    let (_, gateway, notices) = daemon.stop().await;
    assert_eq!(gateway.call_times(), [Duration::ZERO, 30 * SECOND]);
    let around_reload: Vec<Notice> = (notices.kinds().into_iter())
        .filter(|(at, n)| *at == 30 * SECOND && !matches!(n, Notice::Status(_)))
        .map(|(_, n)| n)
        .collect();
    assert_eq!(around_reload, [Notice::Reloading, Notice::Ready]);
}

#[tokio::test(start_paused = true)]
async fn stop_lets_the_call_in_flight_finish_and_saves_it() {
    let world = World::new("");
    let daemon = start(
        &world,
        Scripted::new([(
            5 * SECOND,
            CallOutcome::Applied {
                url_avatar: Some("https://pps.whatsapp.net/v/t61/b.jpg".to_owned()),
            },
        )]),
        None,
    );
    until(&daemon.gateway, SECOND).await;
    let (stopped_after, gateway, notices) = daemon.stop().await;
    assert_eq!(
        stopped_after,
        5 * SECOND,
        "it waited for the answer, no longer"
    );
    assert_eq!(gateway.call_times(), [Duration::ZERO]);
    let record = &recorded(&world).instances[&crate::manifest::InstanceId::parse(ID).unwrap()];
    assert_eq!(
        record.applied.as_ref().unwrap().sha256,
        crate::picture::Digest::of(&jpeg(1))
    );
    assert!(notices.kinds().contains(&(SECOND, Notice::Stopping)));
}

#[tokio::test(start_paused = true)]
async fn stop_waits_for_a_call_in_flight_at_most_drain() {
    let world = World::new("");
    let daemon = start(
        &world,
        Scripted::new([(3600 * SECOND, failed(FailureKind::Timeout))]),
        None,
    );
    until(&daemon.gateway, SECOND).await;
    let (stopped_after, ..) = daemon.stop().await;
    assert_eq!(stopped_after, SECOND + DRAIN);
    // The abandoned call may still land: the next start counts the throttle from its start.
    let id = crate::manifest::InstanceId::parse(ID).unwrap();
    let record = recorded(&world).instances[&id].clone();
    assert!(record.call_started_at.is_some(), "{record:?}");
    assert_eq!((record.applied, record.last_call_at), (None, None));
}

#[tokio::test(start_paused = true)]
async fn a_second_stop_ends_the_drain_at_once() {
    let world = World::new("");
    let daemon = start(
        &world,
        Scripted::new([(3600 * SECOND, failed(FailureKind::Timeout))]),
        None,
    );
    until(&daemon.gateway, SECOND).await;
    daemon.events.send(Event::Stop).unwrap();
    until(&daemon.gateway, 3 * SECOND).await;
    let (stopped_after, ..) = daemon.stop().await;
    assert_eq!(stopped_after, 3 * SECOND);
}

#[tokio::test(start_paused = true)]
async fn ready_comes_first_and_the_watchdog_is_pinged_on_time() {
    let world = World::new("");
    let daemon = start(&world, Scripted::new([]), Some(4 * SECOND));
    until(&daemon.gateway, 10 * SECOND).await;
    let (_, _, notices) = daemon.stop().await;
    let notices = notices.kinds();
    assert_eq!(notices[0], (Duration::ZERO, Notice::Ready));
    let pings: Vec<Duration> = (notices.iter())
        .filter(|(_, n)| *n == Notice::Watchdog)
        .map(|(at, _)| *at)
        .collect();
    assert_eq!(pings, [4 * SECOND, 8 * SECOND]);
}

#[tokio::test(start_paused = true)]
async fn a_broken_manifest_edit_keeps_the_last_good_one() {
    let world = World::new("");
    let daemon = start(&world, Scripted::new([]), None);
    until(&daemon.gateway, 20 * SECOND).await;
    std::fs::write(world.manifest_path(), "instances: [unclosed\n").unwrap();
    world.picture(&jpeg(3));
    daemon.events.send(Event::Changed).unwrap();
    until(&daemon.gateway, 40 * SECOND).await;
    let (_, gateway, _) = daemon.stop().await;
    // The pass after the edit still knows the instance, and sends its new picture.
    assert_eq!(gateway.call_times(), [Duration::ZERO, 20 * SECOND + QUIET]);
    assert_eq!(gateway.bytes_of_call(1), jpeg(3));
}

#[tokio::test(start_paused = true)]
async fn an_idle_loop_keeps_beating_and_is_ready_after_its_first_pass() {
    let world = World::new("resyncInterval: 1h\n");
    let observed = Arc::new(Observed {
        health: health::Health::new(),
        board: board::Board::new(std::path::Path::new("m.yaml"), world.state_dir()),
    });
    let health = &observed.health;
    assert!(health.ready().is_err());
    let daemon = start_with(&world, Scripted::new([]), None, Some(Arc::clone(&observed)));
    // An hour with nothing to do: the loop still turns at least every BEAT.
    for _ in 0..720 {
        tokio::time::sleep(health::BEAT).await;
        assert_eq!(health.alive(), Ok(()));
    }
    assert_eq!(health.ready(), Ok(()));
    let page = observed.board.page();
    assert!(
        page.contains("<div class=\"count in-sync\"><b>1</b>in sync</div>"),
        "{page}"
    );
    let (_, gateway, _) = daemon.stop().await;
    assert_eq!(gateway.call_times(), [Duration::ZERO]);
}

#[tokio::test(start_paused = true)]
async fn an_idle_loop_reads_no_file_between_resyncs() {
    // Every read of the manifest and the pictures happens in a pass; an idle hour with a
    // 10-minute resync makes exactly the first pass and six resyncs, and no call.
    let world = World::new("resyncInterval: 10m\n");
    let daemon = start(&world, Scripted::new([]), Some(4 * SECOND));
    let metrics = Arc::clone(&daemon.metrics);
    tokio::time::sleep(3600 * SECOND + SECOND).await;
    let text = metrics.encode();
    let (_, gateway, _) = daemon.stop().await;
    assert!(
        text.lines()
            .any(|l| l == "avatar_sync_pass_duration_seconds_count 7"),
        "{text}"
    );
    assert_eq!(gateway.call_times(), [Duration::ZERO]);
}

#[test]
fn a_reload_refuses_what_a_fresh_start_refuses() {
    // Invalid UTF-8 (a Latin-1 é in a comment): were the daemon to read it lossily, it would
    // run a manifest that the service then refuses at its next start.
    let world = World::new("");
    let mut source = ManifestSource::new(world.manifest_path(), crate::manifest::Scope::all());
    let mut bytes = b"# caf\xe9\n".to_vec();
    bytes.extend(std::fs::read(world.manifest_path()).unwrap());
    std::fs::write(world.manifest_path(), &bytes).unwrap();
    let fresh = crate::manifest::load(&world.manifest_path(), None).unwrap_err();
    assert!(fresh.to_string().contains("UTF-8"), "{fresh}");
    assert!(source.reload(false).is_none());
    assert_eq!(source.last_load(), None);
}

#[tokio::test(start_paused = true)]
async fn an_in_sync_instance_is_looked_at_once_per_drift_interval_never_twice_a_second() {
    let world = World::new("driftInterval: 1m\n");
    let daemon = start(&world, Scripted::new([]), None);
    until(&daemon.gateway, 10 * 60 * SECOND + SECOND).await;
    let (_, gateway, _) = daemon.stop().await;
    assert_eq!(gateway.call_times(), [Duration::ZERO]);
    let looks = gateway.read_times("getWaSettings");
    // The adoption read before the upload, at 0; then the first look at this instance's
    // fixed point of the interval (never within the read spacing of the first), then
    // exactly one a minute.
    assert_eq!(looks[0], Duration::ZERO, "{looks:?}");
    let first = looks[1];
    assert!(
        first >= Duration::from_millis(1100) && first < 60 * SECOND,
        "{looks:?}"
    );
    let expected: Vec<Duration> = (0..)
        .map(|n| first + n * 60 * SECOND)
        .take_while(|at| *at <= 601 * SECOND)
        .collect();
    assert_eq!(looks[1..], expected[..], "{looks:?}");
    assert!(gateway.read_times("getStateInstance").is_empty());
    // Each look is recorded.
    let record = &recorded(&world).instances[&crate::manifest::InstanceId::parse(ID).unwrap()];
    let applied_at = record.applied.as_ref().unwrap().at;
    assert_eq!(
        record.live_checked_at,
        Some(applied_at + *expected.last().unwrap())
    );
}

#[tokio::test(start_paused = true)]
async fn a_blocked_instance_is_polled_every_five_minutes_and_sent_to_once_authorised() {
    // (A resync plans the next poll afresh, 5 minutes from the pass: none here.)
    let world = World::new("resyncInterval: 1h\n");
    let gateway = Scripted::new([(Duration::ZERO, failed(FailureKind::InstanceNotUsable))]);
    gateway.set_state("notAuthorized");
    let daemon = start(&world, gateway, None);
    until(&daemon.gateway, 7 * 60 * SECOND).await;
    // Not authorised at the polls of 5 minutes; authorised before the one of 10.
    assert_eq!(
        daemon.gateway.read_times("getStateInstance"),
        [300 * SECOND]
    );
    daemon.gateway.set_state("authorized");
    until(&daemon.gateway, 12 * 60 * SECOND).await;
    let (_, gateway, _) = daemon.stop().await;
    assert_eq!(
        gateway.read_times("getStateInstance"),
        [300 * SECOND, 600 * SECOND]
    );
    // Uploaded at once when the poll finds it authorised, not at the slow retry's 15 minutes.
    assert_eq!(gateway.call_times(), [Duration::ZERO, 600 * SECOND]);
    let record = &recorded(&world).instances[&crate::manifest::InstanceId::parse(ID).unwrap()];
    assert_eq!(record.state_instance.as_deref(), Some("authorized"));
    assert!(record.failure.is_none() && record.applied.is_some());
}

#[tokio::test(start_paused = true)]
async fn n2_a_manifest_that_cannot_be_read_is_read_again_soon_without_an_event() {
    // The edit's event comes while the file cannot be read (as with EMFILE, or a checkout
    // replacing it); nothing will say when it can be read again.
    let world = World::new("");
    let daemon = start(&world, Scripted::new([]), None);
    until(&daemon.gateway, 20 * SECOND).await;
    let manifest = std::fs::read_to_string(world.manifest_path()).unwrap();
    std::fs::remove_file(world.manifest_path()).unwrap();
    std::fs::create_dir(world.manifest_path()).unwrap(); // not a regular file: unreadable
    daemon.events.send(Event::Changed).unwrap();
    until(&daemon.gateway, 20 * SECOND + QUIET + SECOND / 2).await;
    // Readable again, with an edit (another picture), and no event.
    std::fs::remove_dir(world.manifest_path()).unwrap();
    let edited = manifest.replace("picture: a.jpg", "picture: b.jpg");
    std::fs::write(world.dir.path().join("b.jpg"), jpeg(5)).unwrap();
    std::fs::write(world.manifest_path(), edited).unwrap();
    until(&daemon.gateway, 60 * SECOND).await;
    let (_, gateway, _) = daemon.stop().await;
    // Read again 1 s after the failed read, and found (the throttle allows the call at
    // once: 20 s since the first).
    let reread = 20 * SECOND + QUIET + super::source::REREAD_FIRST;
    assert_eq!(gateway.call_times(), [Duration::ZERO, reread]);
    assert_eq!(gateway.bytes_of_call(1), jpeg(5));
}

#[tokio::test(start_paused = true)]
async fn n18_hung_reads_hold_back_no_upload_and_leave_their_instances_as_they_are() {
    // Twelve instances in sync, each looked at once a minute; GREEN-API's read endpoint
    // hangs for 30 s. An edit's upload is sent after the quiet window, as when nothing
    // is read; the instances being looked at stay in sync in STATUS=; the stop waits for
    // no read and calls none of them an upload.
    let world = World::new("");
    let mut yaml = String::from(
        "apiUrl: http://127.0.0.1:9\nminInterval: 10s\nadopt: false\ndrift: warn\ndriftInterval: 1m\ninstances:\n",
    );
    for n in 1..=12 {
        yaml.push_str(&format!(
            "  - idInstance: \"11010000{n:02}\"\n    apiTokenInstance: abc123\n    picture: a.jpg\n"
        ));
    }
    std::fs::write(world.manifest_path(), &yaml).unwrap();
    let gateway = Scripted::new([]);
    gateway.set_read_latency(30 * SECOND);
    let daemon = start(&world, gateway, None);
    until(&daemon.gateway, 120 * SECOND).await;
    assert_eq!(daemon.gateway.call_times(), [Duration::ZERO; 12]);
    let looks = daemon.gateway.read_times("getWaSettings");
    assert!(looks.len() >= 4, "the looks hang, two at a time: {looks:?}");
    std::fs::write(world.dir.path().join("b.jpg"), jpeg(7)).unwrap();
    let edited = yaml.replacen("picture: a.jpg", "picture: b.jpg", 1);
    std::fs::write(world.manifest_path(), edited).unwrap();
    daemon.events.send(Event::Changed).unwrap();
    until(&daemon.gateway, 130 * SECOND).await;
    let stop_at = Instant::now() - daemon.gateway.start;
    let (stopped, gateway, notices) = daemon.stop().await;
    assert_eq!(gateway.call_times()[12..], [120 * SECOND + QUIET]);
    assert_eq!(gateway.bytes_of_call(12), jpeg(7));
    // Never more than two reads at once: each hangs 30 s, so no two starts of three
    // consecutive looks are 30 s apart or more... within any 30 s, at most two start.
    let looks = gateway.read_times("getWaSettings");
    for window in looks.windows(3) {
        assert!(window[2] - window[0] >= 30 * SECOND, "{looks:?}");
    }
    let lines: Vec<String> = (notices.notices.lock().unwrap().iter())
        .filter_map(|(_, notice)| match notice {
            Notice::Status(line) => Some(line.clone()),
            _ => None,
        })
        .collect();
    assert!(
        lines.iter().all(|line| !line.contains("suspended")),
        "{lines:?}"
    );
    // The stop waited for no hung read.
    assert_eq!(stopped, stop_at);
}
