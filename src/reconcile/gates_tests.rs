//! Rollouts and change windows in the engine, on tokio's paused clock: waves, their
//! read-back, the pause, a halt and its resume, a later run that continues, a window, each
//! at exact times. GREEN-API is faked at the [`Gateway`] boundary: it applies every upload
//! and shows it on `getWaSettings`, unless told to show another picture for an instance.

use super::*;
use crate::gateway::{InstanceState, Reader, Upload, WaSettings};
use crate::manifest::{self, InstanceId};
use crate::outcome::{CallFailure, CallOutcome};
use crate::state::{Loaded, StateDir};
use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

const FLEET: u32 = 100;
const SUPPORT: &[u8] = include_bytes!("../../examples/pictures/support.jpg");
const SALES: &[u8] = include_bytes!("../../examples/pictures/sales.jpg");

fn id(n: u32) -> InstanceId {
    InstanceId::parse(&format!("{}", 1_101_000_000 + n)).unwrap()
}

/// WhatsApp as far as the engine sees it.
#[derive(Clone, Default)]
struct Whatsapp(Arc<Mutex<Seen>>);

#[derive(Default)]
struct Seen {
    /// Each upload: who, when.
    uploads: Vec<(InstanceId, tokio::time::Instant)>,
    /// Each `getWaSettings`: who, when.
    reads: Vec<(InstanceId, tokio::time::Instant)>,
    /// The URL each instance shows.
    live: HashMap<InstanceId, String>,
    /// Instances that show another picture than the one uploaded.
    mangles: HashSet<InstanceId>,
}

impl Whatsapp {
    fn uploads(&self) -> Vec<(InstanceId, tokio::time::Instant)> {
        self.0.lock().unwrap().uploads.clone()
    }

    fn reads(&self) -> usize {
        self.0.lock().unwrap().reads.len()
    }

    fn mangle(&self, id: InstanceId) {
        self.0.lock().unwrap().mangles.insert(id);
    }
}

impl Gateway for Whatsapp {
    async fn set_profile_picture(&self, upload: Upload) -> CallOutcome {
        let mut seen = self.0.lock().unwrap();
        seen.uploads
            .push((upload.id.clone(), tokio::time::Instant::now()));
        let url = format!(
            "https://pps.whatsapp.net/v/{}/{}.jpg",
            upload.id,
            seen.uploads.len()
        );
        let live = match seen.mangles.contains(&upload.id) {
            true => format!("https://pps.whatsapp.net/v/{}/other.jpg", upload.id),
            false => url.clone(),
        };
        seen.live.insert(upload.id, live);
        CallOutcome::Applied {
            url_avatar: Some(url),
        }
    }

    async fn wa_settings(&self, reader: &Reader) -> Result<WaSettings, CallFailure> {
        let mut seen = self.0.lock().unwrap();
        seen.reads
            .push((reader.id.clone(), tokio::time::Instant::now()));
        Ok(WaSettings {
            avatar: seen.live.get(&reader.id).cloned(),
            state: InstanceState(Some("authorized".to_owned())),
        })
    }

    async fn avatar_file(&self, _: &Reader, _: &str) -> Result<Vec<u8>, CallFailure> {
        // Only a mangled picture is ever downloaded (another path than the upload's).
        Ok(checkerboard())
    }
}

/// A picture nothing like the fleet's: black and white squares.
fn checkerboard() -> Vec<u8> {
    let image = image::RgbImage::from_fn(96, 96, |x, y| match (x / 12 + y / 12) % 2 {
        0 => image::Rgb([0, 0, 0]),
        _ => image::Rgb([255, 255, 255]),
    });
    let mut bytes = Vec::new();
    image::DynamicImage::ImageRgb8(image)
        .write_to(
            &mut std::io::Cursor::new(&mut bytes),
            image::ImageFormat::Jpeg,
        )
        .unwrap();
    bytes
}

/// A fleet of [`FLEET`] instances showing one picture, instances 7 and 42 canaries, under
/// `extra` (rollout:, windows:).
fn fleet(dir: &Path, extra: &str) -> Manifest {
    std::fs::write(dir.join("a.jpg"), SUPPORT).unwrap();
    let mut yaml = format!("apiUrl: http://127.0.0.1:9\nadopt: false\n{extra}instances:\n");
    for n in 1..=FLEET {
        yaml.push_str(&format!(
            "  - idInstance: \"{}\"\n    apiTokenInstance: abc123\n    picture: a.jpg\n",
            id(n)
        ));
        if n == 7 || n == 42 {
            yaml.push_str("    canary: true\n");
        }
    }
    manifest::parse(&yaml, &dir.join("manifest.yaml"), &|_| None).unwrap()
}

fn engine(
    dir: &Path,
    manifest: Manifest,
    clock: Clock,
    whatsapp: &Whatsapp,
) -> Reconciler<Whatsapp> {
    let state_dir = StateDir::new(dir.join("state"));
    let lock = state_dir.lock("test").unwrap();
    let loaded: Loaded = state_dir.load_for_write(&lock).unwrap();
    let store = StateStore::new(state_dir, lock, loaded).unwrap();
    let options = Options::one_shot(8);
    Reconciler::new(
        Arc::new(manifest),
        store,
        whatsapp.clone(),
        clock,
        Jitter::Fixed(0.0),
        options,
    )
}

const WAVES: &str = "rollout:\n  waves: [2, 10%, 100%]\n  verify: true\n  pause: 10m\n";

/// The upload times, in whole seconds after `start`, and how many at each.
fn timeline(
    uploads: &[(InstanceId, tokio::time::Instant)],
    start: tokio::time::Instant,
) -> Vec<(u64, usize)> {
    let mut at: Vec<(u64, usize)> = Vec::new();
    for (_, when) in uploads {
        let secs = (*when - start).as_secs();
        match at.last_mut() {
            Some((s, n)) if *s == secs => *n += 1,
            _ => at.push((secs, 1)),
        }
    }
    at
}

#[tokio::test(start_paused = true)]
async fn waves_of_2_then_10_percent_then_all_each_read_back_and_paused() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Clock::start();
    let start = tokio::time::Instant::now();
    let whatsapp = Whatsapp::default();
    let mut engine = engine(dir.path(), fleet(dir.path(), WAVES), clock, &whatsapp);
    engine
        .run_until(clock.now() + Duration::from_secs(3600))
        .await
        .unwrap();

    let uploads = whatsapp.uploads();
    // 2 at once (the canaries), 8 more 10 minutes after they were read back, the other 90
    // 10 minutes after those: waves are cumulative, each after a read-back and the pause.
    assert_eq!(
        timeline(&uploads, start),
        vec![(0, 2), (600, 8), (1200, 90)]
    );
    let first: HashSet<&InstanceId> = uploads[..2].iter().map(|(id, _)| id).collect();
    assert_eq!(first, HashSet::from([&id(7), &id(42)]));
    let distinct: HashSet<&InstanceId> = uploads.iter().map(|(id, _)| id).collect();
    assert_eq!(distinct.len(), 100, "no instance twice");
    // Every upload was read back once.
    assert_eq!(whatsapp.reads(), 100);
    let report = engine.report();
    assert_eq!(report.summary.applied, 100);
    let rollout = report.rollout.clone().unwrap();
    assert_eq!(rollout.waves, vec![2, 10, 100]);
    assert!(rollout.done_at.is_some() && rollout.halted.is_none());
    assert_eq!((rollout.landed, rollout.failed), (100, 0));
    use crate::report::Render as _;
    assert_eq!(report.exit_code(), 0);
}

#[tokio::test(start_paused = true)]
async fn canaries_read_back_as_another_picture_halt_with_98_untouched_until_resumed() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Clock::start();
    let start = tokio::time::Instant::now();
    let whatsapp = Whatsapp::default();
    whatsapp.mangle(id(7));
    whatsapp.mangle(id(42));
    let mut engine = engine(dir.path(), fleet(dir.path(), WAVES), clock, &whatsapp);
    engine
        .run_until(clock.now() + Duration::from_secs(3600))
        .await
        .unwrap();

    assert_eq!(timeline(&whatsapp.uploads(), start), vec![(0, 2)]);
    // The run ended as soon as nothing was left to do: a halt waits for a person.
    assert!(tokio::time::Instant::now() - start < Duration::from_secs(10));
    let report = engine.report();
    assert_eq!(report.summary.held, 98);
    let halt = report.rollout.as_ref().unwrap().halted.clone().unwrap();
    assert_eq!((halt.wave, halt.failed), (1, 2));
    assert!(
        halt.failures[0]
            .reason
            .starts_with("read back: another picture is live"),
        "{halt:?}"
    );
    use crate::report::Render as _;
    assert_eq!(report.exit_code(), 1, "a halt needs someone");
    let row = report
        .instances
        .iter()
        .find(|r| r.id_instance == id(1).as_str())
        .unwrap();
    assert_eq!(row.error_kind.as_deref(), Some("rollout-halted"));
    // On disk, for the next run and --status.
    let recorded = crate::state::rollout::load(&dir.path().join("state"))
        .unwrap()
        .unwrap();
    assert_eq!(recorded.halted.unwrap().failed, 2);

    // Resumed: wave 2 starts now (its canaries' failures accepted), then the pause.
    let resumed_at = tokio::time::Instant::now();
    assert!(engine.resume());
    engine
        .run_until(clock.now() + Duration::from_secs(3600))
        .await
        .unwrap();
    let after: Vec<_> = whatsapp.uploads()[2..].to_vec();
    assert_eq!(timeline(&after, resumed_at), vec![(0, 8), (600, 90)]);
}

#[tokio::test(start_paused = true)]
async fn a_later_run_continues_the_rollout_where_it_was_and_never_skips_the_pause() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Clock::start();
    let start = tokio::time::Instant::now();
    let whatsapp = Whatsapp::default();
    {
        // A one-shot run with a 5-minute timeout: wave 1, then the pause outlasts it.
        let mut first = engine(dir.path(), fleet(dir.path(), WAVES), clock, &whatsapp);
        first
            .run_until(clock.now() + Duration::from_secs(300))
            .await
            .unwrap();
        let report = first.report();
        assert_eq!((report.summary.applied, report.summary.held), (2, 98));
        use crate::report::Render as _;
        assert_eq!(
            report.exit_code(),
            0,
            "held by the rollout is not a failure"
        );
        crate::usage::free_aside(first.close());
    }
    // A run one minute later, as from a timer: nothing is sent before the pause ends.
    tokio::time::advance(Duration::from_secs(60)).await;
    let mut second = engine(dir.path(), fleet(dir.path(), WAVES), clock, &whatsapp);
    second
        .run_until(clock.now() + Duration::from_secs(3600))
        .await
        .unwrap();
    assert_eq!(
        timeline(&whatsapp.uploads(), start),
        vec![(0, 2), (600, 8), (1200, 90)]
    );
    let distinct: HashSet<InstanceId> = whatsapp.uploads().into_iter().map(|(id, _)| id).collect();
    assert_eq!(distinct.len(), 100);
}

#[tokio::test(start_paused = true)]
async fn a_new_revision_starts_its_own_rollout_from_the_canaries() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Clock::start();
    let whatsapp = Whatsapp::default();
    whatsapp.mangle(id(7));
    let mut engine = engine(dir.path(), fleet(dir.path(), WAVES), clock, &whatsapp);
    engine
        .run_until(clock.now() + Duration::from_secs(3600))
        .await
        .unwrap();
    assert!(engine.report().rollout.unwrap().halted.is_some());
    // The fix: a new picture, a new revision, a new rollout (the halt was the old one's).
    std::fs::write(dir.path().join("a.jpg"), SALES).unwrap();
    whatsapp.0.lock().unwrap().mangles.clear();
    let manifest = Arc::clone(engine.manifest());
    engine.set_manifest(manifest);
    let before = whatsapp.uploads().len();
    let start = tokio::time::Instant::now();
    engine
        .run_until(clock.now() + Duration::from_secs(3600))
        .await
        .unwrap();
    let new: Vec<_> = whatsapp.uploads()[before..].to_vec();
    // Waves of the 100 changed ones again; the throttle (10 s) holds the canaries a moment.
    let times = timeline(&new, start);
    assert_eq!(
        times.iter().map(|&(_, n)| n).collect::<Vec<_>>(),
        vec![2, 8, 90],
        "{times:?}"
    );
    let rollout = engine.report().rollout.unwrap();
    assert!(rollout.halted.is_none() && rollout.done_at.is_some());
}

#[tokio::test(start_paused = true)]
async fn a_deny_window_holds_every_upload_and_a_one_shot_run_ends_saying_when_it_opens() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Clock::start();
    let now = jiff::Timestamp::try_from(clock.now()).unwrap();
    // A window that opened at this very second, for an hour.
    let at = now.to_zoned(jiff::tz::TimeZone::UTC);
    let window = format!(
        "windows:\n  - deny: \"{} {} {} * * *\"\n    duration: 1h\n",
        at.second(),
        at.minute(),
        at.hour()
    );
    let whatsapp = Whatsapp::default();
    let mut engine = engine(dir.path(), fleet(dir.path(), &window), clock, &whatsapp);
    engine
        .run_until(clock.now() + Duration::from_secs(300))
        .await
        .unwrap();
    assert!(whatsapp.uploads().is_empty());
    let report = engine.report();
    assert_eq!(report.summary.held, 100);
    let opens = report.window.unwrap().opens_at.unwrap();
    let whole = |t: SystemTime| t.duration_since(SystemTime::UNIX_EPOCH).unwrap().as_secs();
    assert_eq!(whole(opens), now.as_second() as u64 + 3600);
    use crate::report::Render as _;
    assert_eq!(report.exit_code(), 0, "a window is not a failure");

    // The daemon waits for it: everything goes out at the opening, not a second before.
    engine.gates.wait_for_windows = true;
    let start = tokio::time::Instant::now();
    engine
        .run_until(clock.now() + Duration::from_secs(7200))
        .await
        .unwrap();
    let uploads = whatsapp.uploads();
    assert_eq!(uploads.len(), 100);
    let first = uploads.iter().map(|(_, t)| *t).min().unwrap();
    let opened_in = clock.instant_at(opens) - start;
    // (The opening is a whole second; the clock's instants, nanoseconds.)
    assert!(
        (first - start).abs_diff(opened_in) < Duration::from_millis(1),
        "{:?} {opened_in:?}",
        first - start
    );
}
