//! `--drift` (issue 9): what WhatsApp shows, read from the fake's live side and compared
//! with the manifest perceptually; exit 0 when all match, 2 when any drifted, 1 on errors;
//! never an upload, never a state write.

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
    let state = std::fs::read(world.state_dir().join("state.json")).unwrap();

    // Everything as applied: the live paths are the ones recorded, no file is downloaded.
    let before = world.fake.reads().len();
    let run = world.run(&["--drift", "--json", "-vv"]);
    assert_eq!(run.code, 0, "{run:?}");
    for id in IDS {
        assert_eq!(run.status_of(id), "in-sync", "{run:?}");
    }
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

    // Read-only: no upload, the state file untouched, and no token anywhere.
    assert_eq!(world.fake.request_count(), 3);
    assert_eq!(
        std::fs::read(world.state_dir().join("state.json")).unwrap(),
        state
    );
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
