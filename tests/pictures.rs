//! Pictures as people have them (PNG, WebP, big photos, metadata), through the real binary:
//! what the fake receives is a decodable JPEG of the size the options ask for, and the
//! options are part of what decides "already applied".

use crate::util::*;
use image::GenericImageView as _;
use std::time::Duration;

const MIN: Duration = Duration::from_secs(1);

fn encode(img: &image::DynamicImage, format: image::ImageFormat) -> Vec<u8> {
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, format).unwrap();
    out.into_inner()
}

/// A 4000 × 3000 photo, as a JPEG.
fn big_photo() -> Vec<u8> {
    let img = image::RgbImage::from_fn(4000, 3000, |x, y| {
        image::Rgb([(x / 16) as u8, (y / 12) as u8, 128])
    });
    encode(
        &image::DynamicImage::ImageRgb8(img),
        image::ImageFormat::Jpeg,
    )
}

fn decoded(bytes: &[u8]) -> image::DynamicImage {
    image::load_from_memory_with_format(bytes, image::ImageFormat::Jpeg)
        .expect("the upload is a decodable JPEG")
}

fn manifest(world: &World, instances: &[(&str, &str, &str)], top: &str) {
    let mut yaml = format!("apiUrl: {{url}}\nminInterval: 1s\n{top}instances:\n");
    for (id, picture, extra) in instances {
        world.instance(id);
        yaml.push_str(&format!(
            "  - idInstance: \"{id}\"\n    apiTokenEnv: TOKEN_ENV\n    picture: {picture}\n{extra}"
        ));
    }
    world.write_manifest(&yaml);
}

#[test]
fn a_big_photo_is_sent_at_the_size_and_fit_the_manifest_asks() {
    let world = World::new(MIN);
    world.write("photo.jpg", &big_photo());
    manifest(
        &world,
        &[
            ("1101000001", "photo.jpg", ""),
            ("1101000002", "photo.jpg", "    fit: cover\n"),
            (
                "1101000003",
                "photo.jpg",
                "    fit: contain\n    size: 320\n",
            ),
        ],
        "",
    );
    let run = world.run(&["--reconcile", "--json"]);
    assert_eq!(run.code, 0, "{run:?}");
    let sizes: Vec<(String, (u32, u32))> = world
        .fake
        .requests()
        .iter()
        .map(|r| (r.instance.clone(), decoded(&r.file).dimensions()))
        .collect();
    let size_of = |id: &str| sizes.iter().find(|(i, _)| i == id).unwrap().1;
    assert_eq!(size_of("1101000001"), (640, 480));
    assert_eq!(size_of("1101000002"), (640, 640));
    assert_eq!(size_of("1101000003"), (320, 320));
    // Two option sets over one source give two different uploads.
    let requests = world.fake.requests();
    assert_eq!(requests.len(), 3);
    assert_ne!(requests[0].file_sha256, requests[1].file_sha256);
    // The state records what was uploaded, not the source.
    let applied = world.state()["instances"]["1101000002"]["applied"]["sha256"].clone();
    let sent = world.fake.requests_for("1101000002")[0].file_sha256.clone();
    assert_eq!(applied, sent);
}

#[test]
fn changing_fit_sends_again_and_an_unchanged_source_never_does() {
    let world = World::new(MIN);
    world.write("photo.jpg", &big_photo());
    manifest(&world, &[("1101000001", "photo.jpg", "")], "");
    assert_eq!(world.run(&["--reconcile"]).code, 0);
    let again = world.run(&["--reconcile", "-v"]);
    assert_eq!(again.code, 0, "{again:?}");
    assert_eq!(
        world.fake.request_count(),
        1,
        "an unchanged source is never sent again"
    );
    assert!(
        again.stderr.contains("pictures_prepared=0"),
        "a pass never decodes an unchanged picture again: {again:?}"
    );

    std::thread::sleep(MIN);
    manifest(&world, &[("1101000001", "photo.jpg", "")], "fit: cover\n");
    let changed = world.run(&["--reconcile", "--json"]);
    assert_eq!(changed.code, 0, "{changed:?}");
    let requests = world.fake.requests();
    assert_eq!(requests.len(), 2);
    assert_eq!(decoded(&requests[1].file).dimensions(), (640, 640));
}

#[test]
fn a_transparent_png_is_flattened_onto_the_background() {
    let world = World::new(MIN);
    // Left half opaque blue, right half fully transparent.
    let img = image::RgbaImage::from_fn(200, 100, |x, _| {
        if x < 100 {
            image::Rgba([0, 0, 255, 255])
        } else {
            image::Rgba([0, 255, 0, 0])
        }
    });
    world.write(
        "logo.png",
        &encode(
            &image::DynamicImage::ImageRgba8(img),
            image::ImageFormat::Png,
        ),
    );
    manifest(
        &world,
        &[("1101000001", "logo.png", "")],
        "fit: contain\nbackground: \"#ff0000\"\n",
    );
    let run = world.run(&["--reconcile"]);
    assert_eq!(run.code, 0, "{run:?}");
    let requests = world.fake.requests();
    assert_eq!(requests[0].filename.as_deref(), Some("logo.jpg"));
    assert_eq!(requests[0].part_content_type.as_deref(), Some("image/jpeg"));
    let sent = decoded(&requests[0].file).to_rgb8();
    assert_eq!(
        sent.dimensions(),
        (200, 200),
        "padded to a square, never upscaled"
    );
    let near =
        |p: &image::Rgb<u8>, want: [u8; 3]| p.0.iter().zip(want).all(|(a, b)| a.abs_diff(b) <= 24);
    assert!(
        near(sent.get_pixel(100, 10), [255, 0, 0]),
        "padding is the background"
    );
    assert!(
        near(sent.get_pixel(50, 100), [0, 0, 255]),
        "opaque pixels keep their colour"
    );
    assert!(
        near(sent.get_pixel(150, 100), [255, 0, 0]),
        "transparent pixels become the background"
    );
}

#[test]
fn a_webp_is_sent_as_a_jpeg() {
    let world = World::new(MIN);
    let img = image::RgbImage::from_fn(64, 48, |x, y| image::Rgb([x as u8 * 4, y as u8 * 5, 60]));
    world.write(
        "pic.webp",
        &encode(
            &image::DynamicImage::ImageRgb8(img),
            image::ImageFormat::WebP,
        ),
    );
    manifest(&world, &[("1101000001", "pic.webp", "")], "");
    let run = world.run(&["--reconcile"]);
    assert_eq!(run.code, 0, "{run:?}");
    let requests = world.fake.requests();
    assert_eq!(requests[0].filename.as_deref(), Some("pic.jpg"));
    assert_eq!(decoded(&requests[0].file).dimensions(), (64, 48));
}

#[test]
fn a_plain_jpeg_is_sent_byte_for_byte() {
    let world = World::new(MIN);
    world.write("support.jpg", SUPPORT_JPG);
    manifest(&world, &[("1101000001", "support.jpg", "")], "");
    assert_eq!(world.run(&["--reconcile"]).code, 0);
    // What an older avatar-sync recorded (the file's own hash) is what this one sends:
    // upgrading never re-sends a plain JPEG that was already applied.
    assert_eq!(world.fake.requests()[0].file, SUPPORT_JPG);
    assert_eq!(
        world.state()["instances"]["1101000001"]["applied"]["sha256"],
        sha256(SUPPORT_JPG)
    );
}

#[test]
fn a_decompression_bomb_is_refused_without_a_call() {
    let world = World::new(MIN);
    world.instance("1101000002");
    // A PNG header that claims 20,000 × 20,000 pixels, and almost nothing after it.
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut ihdr = b"IHDR".to_vec();
    ihdr.extend_from_slice(&20_000u32.to_be_bytes());
    ihdr.extend_from_slice(&20_000u32.to_be_bytes());
    ihdr.extend_from_slice(&[8, 2, 0, 0, 0]);
    png.extend_from_slice(&13u32.to_be_bytes());
    png.extend_from_slice(&ihdr);
    png.extend_from_slice(&crc32(&ihdr).to_be_bytes());
    png.extend_from_slice(&[0, 0, 0, 0, b'I', b'E', b'N', b'D', 0xAE, 0x42, 0x60, 0x82]);
    world.write("bomb.png", &png);
    world.write("ok.jpg", &jpeg(1));
    manifest(
        &world,
        &[("1101000001", "bomb.png", ""), ("1101000002", "ok.jpg", "")],
        "",
    );
    let check = world.run(&["--check", "--json"]);
    assert_eq!(check.code, 1, "{check:?}");
    assert_eq!(check.row("1101000001")["errorKind"], "picture-too-large");
    let run = world.run(&["--reconcile", "--json"]);
    assert_eq!(run.code, 1, "{run:?}");
    assert_eq!(run.row("1101000001")["errorKind"], "picture-too-large");
    assert_eq!(run.status_of("1101000002"), "applied");
    assert_eq!(world.fake.request_count(), 1);
}

#[test]
fn preview_writes_exactly_what_would_be_sent_and_touches_nothing_else() {
    let world = World::new(MIN);
    world.write("photo.jpg", &big_photo());
    world.write("support.jpg", SUPPORT_JPG);
    manifest(
        &world,
        &[
            ("1101000001", "photo.jpg", "    fit: cover\n"),
            ("1101000002", "support.jpg", ""),
        ],
        "",
    );
    let out = world.path("preview");
    let run = world.run(&["--preview", out.to_str().unwrap(), "--json"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(world.fake.request_count(), 0, "no network");
    assert!(!world.state_dir().exists(), "no state");
    let preview = std::fs::read(out.join("1101000001.jpg")).unwrap();
    assert_eq!(decoded(&preview).dimensions(), (640, 640));
    assert_eq!(
        std::fs::read(out.join("1101000002.jpg")).unwrap(),
        SUPPORT_JPG
    );
    assert_eq!(run.row("1101000001")["sha256"], sha256(&preview));

    // The reconcile that follows sends exactly those bytes.
    assert_eq!(world.run(&["--reconcile"]).code, 0);
    assert_eq!(world.fake.requests_for("1101000001")[0].file, preview);
}

#[test]
fn processing_options_are_validated_with_their_line() {
    let world = World::new(MIN);
    world.write("a.jpg", &jpeg(1));
    let cases = [
        ("fit: stretch\n", ":3 "),
        ("size: 0\n", ":3 "),
        ("background: red\n", ":3 "),
        ("quality: 101\n", ":3 "),
    ];
    for (top, line) in cases {
        manifest(&world, &[("1101000001", "a.jpg", "")], top);
        let run = world.run(&["--check"]);
        assert_eq!(run.code, 1, "{top}: {run:?}");
        assert!(
            run.stdout.contains(&format!("manifest.yaml{line}")),
            "{top}: {run:?}"
        );
    }
    manifest(&world, &[("1101000001", "a.jpg", "    size: 5000\n")], "");
    let run = world.run(&["--check"]);
    assert_eq!(run.code, 1, "{run:?}");
    assert!(
        run.stdout.contains("manifest.yaml:7 ") && run.stdout.contains("size 5000"),
        "{run:?}"
    );
}

/// CRC-32 (IEEE), as PNG chunks carry.
fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = 0xFFFF_FFFFu32;
    for &byte in bytes {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

#[test]
fn a_lost_prepared_picture_is_prepared_again_before_it_is_sent() {
    let world = World::new(MIN);
    world.write("a.jpg", &jpeg(1));
    world.write("b.jpg", &jpeg(2));
    manifest(&world, &[("1101000001", "a.jpg", "")], "");
    assert_eq!(world.run(&["--reconcile"]).code, 0);
    // A new picture is prepared, but its call waits on the throttle past a zero timeout.
    manifest(&world, &[("1101000001", "b.jpg", "")], "");
    let waiting = world.run(&["--reconcile", "--json", "--timeout", "0s"]);
    assert_eq!(waiting.code, 1, "{waiting:?}");
    assert_eq!(waiting.status_of("1101000001"), "throttled");
    let prepared = world.state_dir().join("prepared");
    let kept: Vec<_> = std::fs::read_dir(&prepared).unwrap().collect();
    assert_eq!(kept.len(), 1, "only the picture the manifest uses is kept");
    std::fs::remove_dir_all(&prepared).unwrap();

    std::thread::sleep(MIN);
    let run = world.run(&["--reconcile", "--json"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert!(run.stderr.contains("missing or damaged"), "{run:?}");
    let requests = world.fake.requests();
    assert_eq!(requests.len(), 2);
    assert_eq!(requests[1].file, jpeg(2));
}
