//! `--drift` (issue 9): what WhatsApp shows, read from the fake's live side and compared
//! with the manifest perceptually; exit 0 when all match, 2 when any drifted, 1 on errors;
//! never an upload. What it saw is recorded (the engine's observing policy), so `--status`
//! and the next daemon know it.

use crate::util::*;
use std::time::Duration;

const IDS: [&str; 3] = ["1101000001", "1101000002", "1101000003"];

/// Three instances applied (so the fake shows their pictures).
fn applied_world() -> World {
    let world = World::new(Duration::ZERO);
    // The test runs --drift back to back; the pace of reads across runs is not its subject.
    world.fake.set_read_window(Duration::ZERO);
    let mut yaml = "apiUrl: {url}\nminInterval: 1s\ninstances:\n".to_owned();
    for (n, id) in IDS.iter().enumerate() {
        world.instance(id);
        world.write(&format!("p{n}.jpg"), &photo(n as u32 + 1));
        yaml.push_str(&format!(
            "  - idInstance: \"{id}\"\n    apiTokenEnv: TOKEN_ENV\n    picture: p{n}.jpg\n"
        ));
    }
    world.write_manifest(&yaml);
    assert_eq!(world.run(&["--reconcile"]).code, 0);
    assert_eq!(world.fake.request_count(), 3);
    world
}

fn reads(world: &World, id: &str, method: &str) -> usize {
    (world.fake.reads_for(id).iter())
        .filter(|r| r.method == method)
        .count()
}

#[test]
fn drift_reads_what_is_live_and_exits_0_2_or_1() {
    let world = applied_world();
    let recorded = world.state();

    // Everything as applied: the live paths are the ones recorded, no file is downloaded.
    let before = world.fake.reads().len();
    let run = world.run(&["--drift", "--json", "-vv"]);
    assert_eq!(run.code, 0, "{run:?}");
    for id in IDS {
        assert_eq!(run.status_of(id), "in-sync", "{run:?}");
    }
    assert_eq!(run.json()["calls"]["getWaSettings"], 3);
    assert_eq!(run.json()["calls"]["setProfilePicture"], 0);
    let drift_reads = &world.fake.reads()[before..];
    assert_eq!(
        drift_reads.len(),
        3,
        "one getWaSettings each: {drift_reads:?}"
    );
    assert!(drift_reads.iter().all(|r| r.method == "getWaSettings"));

    // A rotated signature (same path) is not drift; a new path with the same picture
    // behind it is not either, once the picture is looked at.
    world.fake.rotate_signature(IDS[0]);
    world.fake.move_live_picture(IDS[1]);
    let (before0, before1) = (
        reads(&world, IDS[0], "avatar"),
        reads(&world, IDS[1], "avatar"),
    );
    let run = world.run(&["--drift", "--json"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(reads(&world, IDS[0], "avatar"), before0);
    assert_eq!(reads(&world, IDS[1], "avatar"), before1 + 1);

    // Changed from the phone, or removed: drifted, exit 2.
    world.fake.set_live_picture(IDS[2], &photo(9));
    world.fake.remove_live_picture(IDS[0]);
    let run = world.run(&["--drift", "--json"]);
    assert_eq!(run.code, 2, "{run:?}");
    assert_eq!(run.status_of(IDS[0]), "drifted");
    assert_eq!(run.row(IDS[0])["error"], "no picture is live");
    assert_eq!(run.status_of(IDS[1]), "in-sync");
    assert_eq!(run.status_of(IDS[2]), "drifted");
    assert_eq!(run.json()["summary"]["drifted"], 2);
    let table = world.run(&["--drift"]);
    assert_eq!(table.code, 2);
    assert!(table.stdout.contains("2 drifted"), "{table:?}");

    // An instance that is not authorised cannot be read: an error, exit 1.
    world.fake.set_instance_state(IDS[1], Some("notAuthorized"));
    let run = world.run(&["--drift", "--json"]);
    assert_eq!(run.code, 1, "{run:?}");
    assert_eq!(run.row(IDS[1])["errorKind"], "instance-not-usable");

    // No upload. What was seen is recorded, and nothing else changed: the applied
    // pictures and the throttle's times are as the upload left them.
    assert_eq!(world.fake.request_count(), 3);
    let after = world.state();
    for id in IDS {
        let (was, is) = (&recorded["instances"][id], &after["instances"][id]);
        assert_eq!(is["applied"], was["applied"], "{id}");
        assert_eq!(is["lastCallAt"], was["lastCallAt"], "{id}");
        assert!(is["liveCheckedAt"].is_string(), "{id}: {is}");
    }
    assert_eq!(after["instances"][IDS[0]]["drifted"], "no picture is live");
    let seen = after["instances"][IDS[2]]["drifted"].as_str().unwrap();
    assert!(seen.starts_with("another picture is live"), "{seen}");
    // A failed read keeps what was known of the instance that could not be read.
    assert_eq!(
        after["instances"][IDS[1]]["drifted"],
        serde_json::Value::Null
    );
    // `--status` knows what `--drift` saw.
    let status = world.run(&["--status", "--json"]);
    assert_eq!(status.status_of(IDS[0]), "drifted", "{status:?}");
    assert_eq!(status.status_of(IDS[2]), "drifted", "{status:?}");
    assert_eq!(status.status_of(IDS[1]), "in-sync", "{status:?}");
    assert!(!shows_token(&String::from_utf8_lossy(&world.state_bytes())));
    for run in [&run, &table] {
        assert!(
            !shows_token(&run.stdout) && !shows_token(&run.stderr),
            "{run:?}"
        );
    }
}

#[test]
fn another_photo_an_inverted_copy_or_a_blank_square_is_drift() {
    let world = applied_world();
    let inverted = {
        let mut img = image::load_from_memory(&photo(1)).unwrap().to_rgb8();
        image::imageops::invert(&mut img);
        let mut out = Vec::new();
        image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 90)
            .encode_image(&img)
            .unwrap();
        out
    };
    let blank = {
        let img = image::RgbImage::from_pixel(160, 160, image::Rgb([240, 240, 240]));
        let mut out = Vec::new();
        image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 90)
            .encode_image(&img)
            .unwrap();
        out
    };
    world.fake.set_live_picture(IDS[0], &inverted);
    world.fake.set_live_picture(IDS[1], &blank);
    world.fake.set_live_picture(IDS[2], &photo(1)); // another instance's photo
    let run = world.run(&["--drift", "--json"]);
    assert_eq!(run.code, 2, "{run:?}");
    for id in IDS {
        assert_eq!(run.status_of(id), "drifted", "{run:?}");
    }
}

#[test]
fn a_failing_read_is_an_error_of_that_instance_only() {
    let world = applied_world();
    world
        .fake
        .script_reads(IDS[0], [Answer::Status(500, "down".into())]);
    world
        .fake
        .script_reads(IDS[1], [Answer::Status(401, String::new())]);
    let run = world.run(&["--drift", "--json"]);
    assert_eq!(run.code, 1, "{run:?}");
    assert_eq!(run.row(IDS[0])["errorKind"], "server-error");
    assert_eq!(run.row(IDS[1])["errorKind"], "unauthorized");
    assert_eq!(run.status_of(IDS[2]), "in-sync");
}

/// One instance under a daemon that looks at live pictures every second.
fn daemon_world(drift: &str) -> (World, Daemon) {
    let world = World::new(Duration::from_secs(1));
    world.instance(IDS[0]);
    world.write("p.jpg", &photo(1));
    world.write_manifest(&format!(
        "apiUrl: {{url}}\nminInterval: 1s\ndriftInterval: 1s\ndrift: {drift}\ninstances:\n  - idInstance: \"{}\"\n    apiTokenEnv: TOKEN_ENV\n    picture: p.jpg\n",
        IDS[0]
    ));
    let daemon = Daemon::start(&world, &["-v"]);
    daemon.wait_for_requests(&world, 1);
    (world, daemon)
}

/// Polls `--status` until the instance has `status` (or a generous bound passes).
fn wait_for_status(world: &World, status: &str) -> Run {
    let deadline = std::time::Instant::now() + GENEROUS;
    loop {
        let run = world.run(&["--status", "--json"]);
        if run.status_of(IDS[0]) == status || std::time::Instant::now() > deadline {
            return run;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The `method` reads of the instance the fake received after `after`.
fn reads_since(world: &World, method: &str, after: std::time::Instant) -> usize {
    (world.fake.reads_for(IDS[0]).iter())
        .filter(|r| r.method == method && r.received_at > after)
        .count()
}

/// No two reads of one method closer than a second.
fn assert_reads_paced(world: &World) {
    for method in ["getWaSettings", "getStateInstance"] {
        let reads: Vec<_> = (world.fake.reads_for(IDS[0]).into_iter())
            .filter(|r| r.method == method)
            .collect();
        for pair in reads.windows(2) {
            let gap = pair[1].received_at.duration_since(pair[0].received_at);
            assert!(gap >= Duration::from_millis(999), "{method} {gap:?} apart");
        }
        assert!(reads.iter().all(|r| r.answer != "429"), "{reads:?}");
    }
}

#[test]
fn the_daemon_warns_of_drift_and_sends_nothing() {
    let (world, daemon) = daemon_world("warn");
    assert_eq!(
        wait_for_status(&world, "in-sync").status_of(IDS[0]),
        "in-sync"
    );
    // The upload's fingerprint is kept, to compare live pictures with.
    let applied = &world.state()["instances"][IDS[0]]["applied"];
    assert_eq!(
        applied["perceptualHash"].as_str().map(str::len),
        Some(130),
        "{applied}"
    );
    world.fake.set_live_picture(IDS[0], &photo(50));
    let status = wait_for_status(&world, "drifted");
    assert_eq!(status.status_of(IDS[0]), "drifted", "{status:?}");
    assert!(
        status.row(IDS[0])["error"]
            .as_str()
            .unwrap()
            .contains("another picture")
    );
    // Changed back: in sync again, and never an upload meanwhile.
    world
        .fake
        .set_live_picture(IDS[0], &world.fake.requests()[0].file);
    assert_eq!(
        wait_for_status(&world, "in-sync").status_of(IDS[0]),
        "in-sync"
    );
    assert_eq!(daemon.stop(), 0);
    assert_eq!(world.fake.request_count(), 1);
    assert_reads_paced(&world);
    let log = std::fs::read_to_string(world.path("daemon.log")).unwrap();
    assert!(log.contains("the live picture drifted"), "{log}");
    assert!(!shows_token(&log));
}

#[test]
fn the_daemon_heals_drift_with_one_upload_under_the_throttle() {
    let (world, daemon) = daemon_world("heal");
    world.fake.set_live_picture(IDS[0], &photo(50));
    let healed = daemon.wait_for_requests(&world, 2)[1].clone();
    assert_eq!(
        wait_for_status(&world, "in-sync").status_of(IDS[0]),
        "in-sync"
    );
    // A few more looks find it healed: no third upload. Counted, not waited out: looks
    // come a driftInterval (1 s) apart, and a look that saw drift would upload as soon as
    // minInterval (1 s) allows, so an upload for the first or second look after the heal
    // would reach the fake before the third look does.
    let answered = healed.answered_at.unwrap_or(healed.received_at);
    daemon.wait_until("three looks after the heal", || {
        reads_since(&world, "getWaSettings", answered) >= 3
    });
    let status = world.run(&["--status", "--json"]);
    assert_eq!(status.status_of(IDS[0]), "in-sync", "{status:?}");
    let record = &world.state()["instances"][IDS[0]];
    assert!(record["drifted"].is_null(), "{record}");
    assert_eq!(daemon.stop(), 0);
    let requests = world.fake.requests();
    assert_eq!(requests.len(), 2, "{requests:?}");
    assert_eq!(requests[1].file, requests[0].file);
    assert!(
        requests.iter().all(|r| r.answer == "applied"),
        "{requests:?}"
    );
    assert_spaced(&requests, Duration::from_secs(1));
    assert_reads_paced(&world);
}

#[test]
fn an_unauthorised_instance_is_polled_and_uploaded_to_once_authorised() {
    let world = World::new(Duration::from_secs(1));
    world.instance(IDS[0]);
    world.fake.set_instance_state(IDS[0], Some("notAuthorized"));
    world.write("p.jpg", &photo(1));
    world.write_manifest(&format!(
        "apiUrl: {{url}}\nminInterval: 1s\ndriftInterval: 1s\ninstances:\n  - idInstance: \"{}\"\n    apiTokenEnv: TOKEN_ENV\n    picture: p.jpg\n",
        IDS[0]
    ));
    let daemon = Daemon::start(&world, &["-v"]);
    // The upload is refused (400 not authorized); then the state is polled, not uploaded.
    daemon.wait_for_requests(&world, 1);
    let status = wait_for_status(&world, "failed");
    let polls = || {
        (world.fake.reads_for(IDS[0]).iter())
            .filter(|r| r.method == "getStateInstance")
            .count()
    };
    daemon.wait_until("two polls of the instance's state", || polls() >= 2);
    assert!(polls() >= 2, "{:?}", world.fake.reads());
    assert_eq!(world.fake.request_count(), 1, "uploaded on a blind timer");
    let status_now = world.run(&["--status", "--json"]);
    assert_eq!(
        status_now.row(IDS[0])["stateInstance"],
        "notAuthorized",
        "{status_now:?}"
    );
    assert_eq!(status.row(IDS[0])["errorKind"], "instance-not-usable");

    // Authorised: the next poll says so, and the picture is sent at once.
    world.fake.set_instance_state(IDS[0], Some("authorized"));
    let requests = daemon.wait_for_requests(&world, 2);
    assert_eq!(requests.len(), 2);
    assert_eq!(requests[1].answer, "applied");
    assert_eq!(
        wait_for_status(&world, "in-sync").status_of(IDS[0]),
        "in-sync"
    );
    assert_eq!(daemon.stop(), 0);
    assert_reads_paced(&world);
}

#[test]
fn beside_a_writer_that_holds_the_lock_drift_reads_and_records_nothing() {
    let world = applied_world();
    world.fake.remove_live_picture(IDS[0]);
    let state = world.state_bytes();
    // A daemon holds the state directory (the same lock avatar-sync takes).
    let lock = std::fs::OpenOptions::new()
        .write(true)
        .open(world.state_dir().join("lock"))
        .unwrap();
    lock.try_lock().unwrap();
    let run = world.run(&["--drift", "--json", "-v"]);
    assert_eq!(run.code, 2, "{run:?}");
    assert_eq!(run.status_of(IDS[0]), "drifted");
    assert!(run.stderr.contains("not recorded"), "{run:?}");
    assert_eq!(
        world.state_bytes(),
        state,
        "nothing written beside the writer"
    );
    drop(lock);
    // Once free, the same look is recorded.
    assert_eq!(world.run(&["--drift"]).code, 2);
    assert_eq!(
        world.state()["instances"][IDS[0]]["drifted"],
        "no picture is live"
    );
}
