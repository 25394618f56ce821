//! `--drift` (issue 9): what WhatsApp shows, read from the fake's live side and compared
//! with the manifest perceptually; exit 0 when all match, 2 when any drifted, 1 on errors;
//! never an upload, never a state write.

use crate::util::*;
use std::time::Duration;

const IDS: [&str; 3] = ["1101000001", "1101000002", "1101000003"];

/// A 160 × 120 picture: a disc and a band on a gradient, laid out differently for each
/// `seed`.
fn photo(seed: u32) -> Vec<u8> {
    let mut rng = fastrand::Rng::with_seed(u64::from(seed));
    let (cx, cy, r) = (rng.f32(), rng.f32(), 0.15 + rng.f32() * 0.2);
    let (band, angle) = (rng.f32(), rng.f32() * std::f32::consts::PI);
    let img = image::RgbImage::from_fn(160, 120, |x, y| {
        let (fx, fy) = (x as f32 / 160.0, y as f32 / 120.0);
        let mut c = [fx * 90.0, 60.0, fy * 90.0];
        if (fx - cx).powi(2) + (fy - cy).powi(2) < r * r {
            c = [240.0, 220.0, 40.0];
        }
        if ((fx * angle.cos() + fy * angle.sin()) - band).abs() < 0.08 {
            c = [30.0, 30.0, 200.0];
        }
        image::Rgb(c.map(|v| v as u8))
    });
    let mut out = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 90)
        .encode_image(&img)
        .unwrap();
    out
}

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
    let run = world.run(&["--drift", "--json", "-vv"]);
    assert_eq!(run.code, 0, "{run:?}");
    for id in IDS {
        assert_eq!(run.status_of(id), "in-sync", "{run:?}");
        assert_eq!(reads(&world, id, "getWaSettings"), 1);
    }
    assert!(world.fake.reads().iter().all(|r| r.method != "avatar"));

    // A rotated signature (same path) is not drift; a new path with the same picture
    // behind it is not either, once the picture is looked at.
    world.fake.rotate_signature(IDS[0]);
    world.fake.move_live_picture(IDS[1]);
    let run = world.run(&["--drift", "--json"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(reads(&world, IDS[0], "avatar"), 0);
    assert_eq!(reads(&world, IDS[1], "avatar"), 1);

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
