//! Rollouts and change windows (CONTRACT section 12), end to end: the real binary against
//! the fake with a fleet of 100 whose picture a revision changes. Each test prints the
//! calls' times as a table (`-- --nocapture` shows them).

use crate::util::*;
use std::collections::{BTreeMap, HashSet};
use std::time::{Duration, Instant, SystemTime};

const FLEET: u32 = 100;
/// The canaries: always in the first wave.
const CANARIES: [u32; 2] = [7, 42];
const ROLLOUT: &str = "rollout:\n  waves: [2, 10%, 100%]\n  verify: true\n  pause: 2s\n";

fn id(n: u32) -> String {
    format!("{}", 1_101_000_000 + n)
}

/// The fleet, each instance showing `picture.jpg`, under `extra` (rollout:, windows:).
fn manifest(world: &World, extra: &str) {
    let mut yaml = format!("apiUrl: {{url}}\nminInterval: 1s\n{extra}instances:\n");
    for n in 1..=FLEET {
        yaml.push_str(&format!(
            "  - idInstance: \"{}\"\n    apiTokenEnv: TOKEN_ENV\n    picture: picture.jpg\n",
            id(n)
        ));
        if CANARIES.contains(&n) {
            yaml.push_str("    canary: true\n");
        }
    }
    world.write_manifest(&yaml);
}

/// A fleet of 100 showing picture A (applied, recorded), then a revision that changes it
/// to B for every instance, under `extra`.
fn revised(extra: &str) -> World {
    let world = World::new(Duration::from_secs(1));
    for n in 1..=FLEET {
        world.instance(&id(n));
    }
    world.write("picture.jpg", &photo(1));
    manifest(&world, "");
    let run = world.run(&["--reconcile", "--concurrency", "16"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(world.fake.request_count(), FLEET as usize);
    // WhatsApp's 1 s between two changes of one instance.
    std::thread::sleep(Duration::from_millis(1100));
    world.write("picture.jpg", &photo(2));
    manifest(&world, extra);
    world
}

/// `uploads` grouped by the wave the rollout (as `rollout.json` records it) put each
/// instance in: each wave's instances and first and last upload.
fn waves(world: &World, uploads: &[Request]) -> Vec<(Vec<String>, Instant, Instant)> {
    let text = std::fs::read_to_string(world.state_dir().join("rollout.json")).unwrap();
    let rollout: serde_json::Value = serde_json::from_str(&text).unwrap();
    let order: Vec<&str> = (rollout["instances"].as_array().unwrap().iter())
        .map(|id| id.as_str().unwrap())
        .collect();
    let cuts: Vec<usize> = (rollout["waves"].as_array().unwrap().iter())
        .map(|c| c.as_u64().unwrap() as usize)
        .collect();
    let wave_of = |id: &str| {
        let place = order.iter().position(|o| *o == id).unwrap();
        cuts.partition_point(|&cut| cut <= place)
    };
    let mut waves: Vec<(Vec<String>, Instant, Instant)> = Vec::new();
    for r in uploads {
        let wave = wave_of(&r.instance);
        if waves.len() <= wave {
            waves.resize(wave + 1, (Vec::new(), r.received_at, r.received_at));
        }
        let (ids, first, last) = &mut waves[wave];
        if ids.is_empty() {
            (*first, *last) = (r.received_at, r.received_at);
        }
        ids.push(r.instance.clone());
        *first = (*first).min(r.received_at);
        *last = (*last).max(r.received_at);
    }
    waves
}

/// How many uploads each wave that had any got.
fn sizes(waves: &[(Vec<String>, Instant, Instant)]) -> Vec<usize> {
    waves.iter().map(|w| w.0.len()).filter(|&n| n > 0).collect()
}

/// The last `getWaSettings` read of any of `ids` (their read-back).
fn read_back(world: &World, ids: &[String]) -> Instant {
    let ids: HashSet<&String> = ids.iter().collect();
    (world.fake.reads().into_iter())
        .filter(|r| r.method == "getWaSettings" && ids.contains(&r.instance))
        .map(|r| r.received_at)
        .max()
        .expect("the wave was read back")
}

/// Prints the waves as a table of call times, from `start`.
fn print_waves(
    title: &str,
    world: &World,
    waves: &[(Vec<String>, Instant, Instant)],
    start: Instant,
) {
    let ms = |t: Instant| (t - start).as_millis();
    eprintln!("\n{title}\n| wave | uploads | first upload | last upload | last read-back |");
    eprintln!("|---|---|---|---|---|");
    for (n, (ids, first, last)) in waves.iter().enumerate() {
        if ids.is_empty() {
            continue;
        }
        eprintln!(
            "| {} | {} | {} ms | {} ms | {} ms |",
            n + 1,
            ids.len(),
            ms(*first),
            ms(*last),
            ms(read_back(world, ids))
        );
    }
}

#[test]
fn a_revision_goes_out_in_waves_of_2_then_10_then_all_each_read_back_and_paused() {
    let world = revised(ROLLOUT);
    // What the run will do: the canaries now, the others held by their waves.
    let dry = world.run(&["--dry-run", "--json"]);
    assert_eq!(dry.code, 2, "{dry:?}");
    let summary = &dry.json()["summary"];
    assert_eq!(
        (summary["pending"].as_u64(), summary["held"].as_u64()),
        (Some(2), Some(98))
    );
    assert_eq!(dry.row(&id(7))["status"], "pending");
    assert_eq!(dry.row(&id(1))["errorKind"], "rollout-wave");
    let start = Instant::now();
    let run = world.run(&["--reconcile", "--json", "--concurrency", "8"]);
    assert_eq!(run.code, 0, "{run:?}");
    let uploads = world.fake.requests_since(FLEET as usize);
    assert_eq!(
        uploads.len(),
        FLEET as usize,
        "every instance once, no more"
    );
    let distinct: HashSet<&String> = uploads.iter().map(|r| &r.instance).collect();
    assert_eq!(distinct.len(), FLEET as usize);
    assert!(uploads.iter().all(|r| r.answer == "applied"));

    let waves = waves(&world, &uploads);
    print_waves(
        "waves: [2, 10%, 100%], verify, pause 2s",
        &world,
        &waves,
        start,
    );
    assert_eq!(sizes(&waves), vec![2, 8, 90], "cumulative 2, 10, 100");
    let canaries: HashSet<String> = CANARIES.iter().map(|&n| id(n)).collect();
    assert_eq!(waves[0].0.iter().cloned().collect::<HashSet<_>>(), canaries);
    // Each wave starts only after the one before was read back, and the pause passed.
    for pair in waves.windows(2) {
        let landed = read_back(&world, &pair[0].0);
        assert!(pair[0].2 <= landed, "read back after its uploads");
        assert!(
            pair[1].1 - landed >= Duration::from_secs(2),
            "the pause: {:?}",
            pair[1].1 - landed
        );
    }
    let json = run.json();
    let rollout = &json["rollout"];
    assert_eq!(rollout["waves"], serde_json::json!([2, 10, 100]));
    assert_eq!(
        (rollout["landed"].as_u64(), rollout["failed"].as_u64()),
        (Some(100), Some(0))
    );
    assert!(rollout["doneAt"].is_string(), "{rollout}");
    assert_eq!(json["summary"]["applied"], 100);

    // Nothing more: the rollout is done, the next run is a no-op.
    let again = world.run(&["--reconcile"]);
    assert_eq!(again.code, 0, "{again:?}");
    assert_eq!(world.fake.request_count(), 2 * FLEET as usize);
    assert!(again.stdout.contains("rollout of revision"), "{again:?}");
}

#[test]
fn canaries_shown_as_another_picture_halt_the_rollout_with_98_untouched_until_resumed() {
    let world = revised(ROLLOUT);
    for n in CANARIES {
        world.fake.show_instead(&id(n), &photo(99));
    }
    let run = world.run(&["--reconcile", "--json"]);
    assert_eq!(run.code, 1, "a halt needs someone: {run:?}");
    let uploads = world.fake.requests_since(FLEET as usize);
    let ids: HashSet<String> = uploads.iter().map(|r| r.instance.clone()).collect();
    let canaries: HashSet<String> = CANARIES.iter().map(|&n| id(n)).collect();
    assert_eq!(ids, canaries, "wave 1 only");
    let json = run.json();
    assert_eq!(json["summary"]["held"], 98);
    let halted = &json["rollout"]["halted"];
    assert_eq!(
        (halted["wave"].as_u64(), halted["failed"].as_u64()),
        (Some(1), Some(2))
    );
    let reasons: Vec<&str> = (halted["failures"].as_array().unwrap().iter())
        .map(|f| f["reason"].as_str().unwrap())
        .collect();
    assert!(
        reasons
            .iter()
            .all(|r| r.starts_with("read back: another picture is live")),
        "{reasons:?}"
    );
    assert!(run.stderr.contains("HALTED at wave 1 of 3"), "{run:?}");
    assert!(
        run.stderr.contains(&id(7)) && run.stderr.contains(&id(42)),
        "{run:?}"
    );

    // The halt holds: another run sends nothing and says why, as --status does.
    let table = world.run(&["--reconcile"]);
    assert_eq!(table.code, 1, "{table:?}");
    assert!(table.stdout.contains("HALTED at wave 1 of 3"), "{table:?}");
    assert!(table.stdout.contains("--resume"), "{table:?}");
    let status = world.run(&["--status", "--json"]);
    assert_eq!(status.code, 1, "{status:?}");
    assert_eq!(status.json()["rollout"]["halted"]["failed"], 2);
    assert_eq!(status.row(&id(1))["errorKind"], "rollout-halted");
    assert_eq!(world.fake.request_count(), FLEET as usize + 2);

    // Resumed: wave 2, the pause, wave 3.
    let start = Instant::now();
    let resumed = world.run(&["--reconcile", "--resume", "--json"]);
    assert_eq!(resumed.code, 0, "{resumed:?}");
    let after = world.fake.requests_since(FLEET as usize + 2);
    let waves = waves(&world, &after);
    print_waves("resumed after the halt", &world, &waves, start);
    assert_eq!(sizes(&waves), vec![8, 90]);
}

#[test]
fn kill_9_in_the_middle_of_wave_2_loses_nothing_and_repeats_no_upload() {
    let world = revised(ROLLOUT);
    // Each upload answered after 400 ms, two at a time: wave 2 (8) takes about 1.6 s.
    world.fake.set_default_latency(Duration::from_millis(400));
    let start = Instant::now();
    let mut first = Daemon::spawn(
        &world,
        world.command(&["--reconcile", "--concurrency", "2"]),
        "first",
    );
    // Wave 1 (2), then 3 of wave 2 received: killed with calls in flight.
    first.wait_for_requests(&world, FLEET as usize + 5);
    first.kill();
    let killed_at = Instant::now();
    let before = world.fake.request_count() - FLEET as usize;
    assert!(
        (5..10).contains(&before),
        "killed during wave 2: {before} uploads"
    );

    world.fake.set_default_latency(Duration::ZERO);
    let second = world.run(&["--reconcile", "--concurrency", "8", "--json"]);
    assert_eq!(second.code, 0, "{second:?}");
    let uploads = world.fake.requests_since(FLEET as usize);
    // Every instance exactly once: the calls in flight at the kill were looked at (they
    // had landed) and recorded without a second upload.
    let mut count: BTreeMap<&String, usize> = BTreeMap::new();
    for r in &uploads {
        *count.entry(&r.instance).or_default() += 1;
    }
    assert_eq!(count.len(), FLEET as usize, "{count:?}");
    assert!(
        count.values().all(|&n| n == 1),
        "an upload repeated: {count:?}"
    );
    let waves = waves(&world, &uploads);
    print_waves(
        "kill -9 during wave 2, then a new run",
        &world,
        &waves,
        start,
    );
    eprintln!(
        "killed at {} ms, after {before} uploads",
        (killed_at - start).as_millis()
    );
    // Wave 3 still came after all of wave 2 was read back, and the pause.
    assert_eq!(sizes(&waves), vec![2, 8, 90]);
    assert!(waves[2].1 - read_back(&world, &waves[1].0) >= Duration::from_secs(2));
    assert!(second.json()["rollout"]["doneAt"].is_string());
}

/// A deny window in UTC that opened `ago` and lasts `duration` (six fields: seconds first).
fn deny_window(ago: Duration, duration: &str) -> (String, SystemTime) {
    let opened = SystemTime::now() - ago;
    let secs = opened
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let (h, m, s) = ((secs / 3600) % 24, (secs / 60) % 60, secs % 60);
    let yaml = format!("windows:\n  - deny: \"{s} {m} {h} * * *\"\n    duration: {duration}\n");
    (yaml, SystemTime::UNIX_EPOCH + Duration::from_secs(secs))
}

#[test]
fn a_deny_window_holds_every_upload_and_reconcile_exits_0_saying_when_it_opens() {
    let (window, opened) = deny_window(Duration::ZERO, "1h");
    let world = revised(&window);
    let check = world.run(&["--check"]);
    assert_eq!(check.code, 0, "{check:?}");
    assert!(
        check
            .stdout
            .contains("change windows: uploads are held now"),
        "{check:?}"
    );
    let run = world.run(&["--reconcile", "--json"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(
        world.fake.request_count(),
        FLEET as usize,
        "nothing uploaded"
    );
    let json = run.json();
    assert_eq!(json["summary"]["held"], 100);
    let opens = json["window"]["opensAt"].as_str().unwrap();
    let expected = humantime::format_rfc3339_millis(opened + Duration::from_secs(3600)).to_string();
    assert_eq!(opens, expected);
    let table = world.run(&["--reconcile"]);
    assert!(
        table.stdout.contains(&format!(
            "a change window holds every upload until {expected}"
        )),
        "{table:?}"
    );
}

#[test]
fn the_daemon_holds_uploads_until_the_deny_window_opens_then_sends_them_all() {
    // A window that opened a second ago and closes 5 s from its start.
    let (window, opened) = deny_window(Duration::from_secs(1), "5s");
    let world = revised(&window);
    let opens = opened + Duration::from_secs(5);
    let daemon = Daemon::start(&world, &["--concurrency", "16"]);
    daemon.wait_for_requests(&world, 2 * FLEET as usize);
    let uploads = world.fake.requests_since(FLEET as usize);
    // The fake's instants, as wall-clock times: anchored now.
    let (now_i, now_s) = (Instant::now(), SystemTime::now());
    let wall = |t: Instant| now_s - (now_i - t);
    let first = uploads.iter().map(|r| wall(r.received_at)).min().unwrap();
    assert!(
        first >= opens,
        "an upload {:?} before the window opened",
        opens.duration_since(first)
    );
    eprintln!(
        "\ndeny window: opened at {}, closed at {}; first upload {} ms after it closed, \
         {} uploads by {} ms after",
        humantime::format_rfc3339_millis(opened),
        humantime::format_rfc3339_millis(opens),
        first.duration_since(opens).unwrap().as_millis(),
        uploads.len(),
        uploads
            .iter()
            .map(|r| wall(r.received_at)
                .duration_since(opens)
                .unwrap()
                .as_millis())
            .max()
            .unwrap()
    );
    assert!(
        daemon.log().contains("a change window holds uploads until"),
        "{}",
        daemon.log()
    );
    daemon.stop();
}

#[test]
fn the_daemon_shows_a_halt_everywhere_and_sigusr1_resumes_it() {
    let world = revised(ROLLOUT);
    for n in CANARIES {
        world.fake.show_instead(&id(n), &photo(99));
    }
    let daemon = Daemon::start(&world, &["--listen", "127.0.0.1:0"]);
    let address_file = world.state_dir().join("listen-address");
    daemon.wait_until("the listen address", || address_file.exists());
    let addr = std::fs::read_to_string(&address_file).unwrap();
    daemon.wait_for_log("HALTED at wave 1 of 3");
    daemon.wait_until("the halt in /metrics", || {
        http(&addr, "GET", "/metrics")
            .1
            .contains("avatar_sync_rollout_halted 1")
    });
    let metrics = http(&addr, "GET", "/metrics").1;
    assert!(metrics.contains("avatar_sync_rollout_wave 1"), "{metrics}");
    assert!(
        metrics.contains("avatar_sync_instances{status=\"held\"} 98"),
        "{metrics}"
    );
    let page = http(&addr, "GET", "/").1;
    assert!(page.contains("<h2>Rollout</h2>"), "{page}");
    assert!(page.contains("HALTED at wave 1 of 3"), "{page}");
    assert!(page.contains(&id(7)), "{page}");
    let status = daemon.run_beside(&["--status", "--json"]);
    assert_eq!(status.code, 1, "{status:?}");
    assert_eq!(status.json()["rollout"]["halted"]["failed"], 2);
    assert_eq!(world.fake.request_count(), FLEET as usize + 2);

    daemon.signal("USR1");
    daemon.wait_for_requests(&world, 2 * FLEET as usize);
    daemon.wait_until("the rollout done in /metrics", || {
        let metrics = http(&addr, "GET", "/metrics").1;
        metrics.contains("avatar_sync_rollout_wave 0")
            && metrics.contains("avatar_sync_rollout_halted 0")
    });
    assert!(
        daemon
            .log()
            .contains("SIGUSR1: resuming the halted rollout")
    );
    assert_eq!(daemon.stop(), 0);
}
