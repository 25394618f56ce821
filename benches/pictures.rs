//! The picture pipeline's costs and the encoder comparison: the figures of
//! docs/performance.md's picture section and the README's encoder table, measured on this
//! machine (release build, one thread).
//!
//! ```sh
//! cargo bench --bench pictures                 # both sections, about a minute
//! cargo bench --bench pictures -- face         # fit: face against fit: cover
//! cargo bench --bench pictures -- encoders     # the encoder comparison
//! cargo bench --bench pictures -- write DIR    # writes the P3 photo and the fixtures used
//! ```
//!
//! **face**: a 12-megapixel (4000 × 3000) photo in Display P3 (a JPEG tagged with a P3
//! profile, as phones write them), with a face off-centre, prepared with `fit: cover` and
//! with `fit: face`, five times each; the medians and their ratio, and each fit's peak
//! memory measured in a child process of its own. The face is scikit-image's `astronaut`
//! when `AVATAR_SYNC_ASTRONAUT` names it (`.ci/run` fetches it), else a drawn stand-in
//! (then the detector finds nothing and the figure is the saliency fallback's).
//!
//! **encoders**: each fixture picture shaped as `fit: cover` at 640 pixels, encoded by the
//! current encoder (`image`'s, quality 90, 4:4:4, standard Huffman tables) and by
//! `jpeg-encoder` (quality 90; optimised Huffman tables; 4:2:0 and 4:4:4); then put
//! through a simulated WhatsApp re-encode (640 pixels at quality 50, as its clients store
//! avatars, then the 96-pixel preview GREEN-API reads back). Each is scored by size and by
//! SSIM (luma, 8 × 8 windows) against the shaped pixels taken straight to the same size.

use avatar_sync::picture::process::{self, Fit, Processing};
use image::imageops::FilterType;
use image::{DynamicImage, GrayImage, ImageEncoder, RgbImage};
use moxcms::{ColorProfile, Layout, TransformOptions};
use std::time::{Duration, Instant};

const SUPPORT_JPG: &[u8] = include_bytes!("../examples/pictures/support.jpg");
const SALES_JPG: &[u8] = include_bytes!("../examples/pictures/sales.jpg");
const SALES_V2_JPG: &[u8] = include_bytes!("../examples/pictures/sales-v2.jpg");

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    if let [child, fit, path] = args.as_slice()
        && child == "--child"
    {
        // One preparation in a process of its own, for its peak memory.
        let bytes = std::fs::read(path).unwrap();
        process::process(
            &bytes,
            &options(if fit == "face" { Fit::Face } else { Fit::Cover }),
        )
        .unwrap();
        return;
    }
    if let [write, dir] = args.as_slice()
        && write == "write"
    {
        std::fs::create_dir_all(dir).unwrap();
        let path = std::path::Path::new(dir).join("p3-portrait.jpg");
        std::fs::write(&path, p3_photo()).unwrap();
        println!("wrote {}", path.display());
        // Each candidate encoder's upload of one fixture, to look at.
        let shaped = process::shaped(SUPPORT_JPG, &options(Fit::Cover)).unwrap();
        for (n, candidate) in candidates().iter().enumerate() {
            let path = std::path::Path::new(dir).join(format!("support.encoder{n}.jpg"));
            std::fs::write(&path, (candidate.encode)(&shaped)).unwrap();
            println!("wrote {} ({})", path.display(), candidate.name);
        }
        return;
    }
    machine();
    let all = args.is_empty();
    if all || args.iter().any(|a| a == "face") {
        face();
    }
    if all || args.iter().any(|a| a == "encoders") {
        encoders();
    }
}

fn options(fit: Fit) -> Processing {
    Processing {
        fit,
        ..Processing::default()
    }
}

/// Which machine the figures are from.
fn machine() {
    let cores = std::thread::available_parallelism().map_or(0, usize::from);
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".to_owned());
    println!("== machine: {cores} cores (nproc), {model}");
}

/// The face: scikit-image's astronaut if it is at hand, else a drawn oval "face".
fn portrait() -> RgbImage {
    if let Ok(path) = std::env::var("AVATAR_SYNC_ASTRONAUT") {
        return image::open(path).unwrap().into_rgb8();
    }
    RgbImage::from_fn(512, 512, |x, y| {
        let (dx, dy) = (f64::from(x) - 256.0, (f64::from(y) - 230.0) * 0.8);
        if dx.hypot(dy) < 150.0 {
            image::Rgb([224, 172, 140])
        } else {
            image::Rgb([40, 60, 140])
        }
    })
}

/// A 4000 × 3000 photo: a textured wall with a vivid red and green stripe, and the face a
/// third of the way in from the right, encoded as a Display P3 JPEG (pixel values in P3,
/// the P3 profile embedded).
fn p3_photo() -> Vec<u8> {
    let (w, h) = (4000u32, 3000u32);
    let mut rng = fastrand::Rng::with_seed(24);
    let mut photo = RgbImage::from_fn(w, h, |x, y| {
        let t = f64::from(x) / f64::from(w);
        let grain = rng.i32(-6..=6);
        let base = if (900..1300).contains(&x) {
            [200.0, 30.0, 40.0]
        } else if (1300..1700).contains(&x) {
            [40.0, 170.0, 70.0]
        } else {
            [190.0 - 60.0 * t, 200.0 - 30.0 * t, 210.0 + 20.0 * t]
        };
        let shade = 0.85 + 0.15 * (f64::from(y) / f64::from(h));
        image::Rgb(base.map(|v| ((v * shade) as i32 + grain).clamp(0, 255) as u8))
    });
    let face = image::imageops::resize(&portrait(), 1800, 1800, FilterType::CatmullRom);
    image::imageops::replace(&mut photo, &face, 2300, 600);
    // sRGB values to P3 values, as a phone's camera pipeline would have them.
    let p3 = ColorProfile::new_display_p3();
    let to_p3 = ColorProfile::new_srgb()
        .create_transform_8bit(Layout::Rgb, &p3, Layout::Rgb, TransformOptions::default())
        .unwrap();
    let mut converted = vec![0u8; photo.as_raw().len()];
    to_p3.transform(photo.as_raw(), &mut converted).unwrap();
    let photo = RgbImage::from_raw(w, h, converted).unwrap();
    let mut out = Vec::new();
    let mut encoder = image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 92);
    encoder.set_icc_profile(p3.encode().unwrap()).unwrap();
    encoder.encode_image(&photo).unwrap();
    out
}

fn median(mut times: Vec<Duration>) -> Duration {
    times.sort();
    times[times.len() / 2]
}

/// `fit: face` against `fit: cover` on the 12-megapixel P3 photo.
fn face() {
    let photo = p3_photo();
    println!(
        "== face: a 4000 x 3000 Display P3 JPEG ({} bytes), face off-centre ({})",
        photo.len(),
        if std::env::var_os("AVATAR_SYNC_ASTRONAUT").is_some() {
            "scikit-image's astronaut"
        } else {
            "a drawn stand-in: set AVATAR_SYNC_ASTRONAUT for a real face"
        }
    );
    let (mut cover, mut face) = (Vec::new(), Vec::new());
    // Alternating, so a machine that slows down mid-run slows both alike.
    for _ in 0..5 {
        let start = Instant::now();
        process::process(&photo, &options(Fit::Cover)).unwrap();
        cover.push(start.elapsed());
        let start = Instant::now();
        process::process(&photo, &options(Fit::Face)).unwrap();
        face.push(start.elapsed());
    }
    let explained = process::explain(&photo, &options(Fit::Face), 4000).unwrap();
    let (cover, face) = (median(cover), median(face));
    println!(
        "fit: cover  {:>7.0} ms (median of 5)",
        cover.as_secs_f64() * 1e3
    );
    println!(
        "fit: face   {:>7.0} ms (median of 5), {:.2}x cover; square {:?}",
        face.as_secs_f64() * 1e3,
        face.as_secs_f64() / cover.as_secs_f64(),
        explained.square
    );
    // Peak memory, each fit in a child process of its own (RUSAGE_CHILDREN keeps the
    // largest child's peak: cover first, then face).
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("p3.jpg");
    std::fs::write(&path, &photo).unwrap();
    let exe = std::env::current_exe().unwrap();
    for fit in ["cover", "face"] {
        let status = std::process::Command::new(&exe)
            .args(["--child", fit, path.to_str().unwrap()])
            .status()
            .unwrap();
        assert!(status.success());
        let usage =
            nix::sys::resource::getrusage(nix::sys::resource::UsageWho::RUSAGE_CHILDREN).unwrap();
        println!(
            "peak memory after fit: {fit:<5}: {:.0} MB (largest child so far)",
            usage.max_rss() as f64 / 1024.0
        );
    }
}

/// The fixtures of the encoder comparison: the example pictures, the P3 photo, and the
/// astronaut when it is at hand.
fn fixtures() -> Vec<(&'static str, Vec<u8>)> {
    let mut all = vec![
        ("support.jpg", SUPPORT_JPG.to_vec()),
        ("sales.jpg", SALES_JPG.to_vec()),
        ("sales-v2.jpg", SALES_V2_JPG.to_vec()),
        ("p3 photo", p3_photo()),
    ];
    if let Ok(path) = std::env::var("AVATAR_SYNC_ASTRONAUT") {
        all.push(("astronaut", std::fs::read(path).unwrap()));
    }
    all
}

/// One way to encode the upload.
struct Candidate {
    name: &'static str,
    encode: fn(&RgbImage) -> Vec<u8>,
}

fn current(image: &RgbImage) -> Vec<u8> {
    let mut out = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 90)
        .encode_image(image)
        .unwrap();
    out
}

fn jpeg_encoder(image: &RgbImage, sampling: jpeg_encoder::SamplingFactor) -> Vec<u8> {
    let mut out = Vec::new();
    let mut encoder = jpeg_encoder::Encoder::new(&mut out, 90);
    encoder.set_optimized_huffman_tables(true);
    encoder.set_sampling_factor(sampling);
    let (w, h) = (
        u16::try_from(image.width()).unwrap(),
        u16::try_from(image.height()).unwrap(),
    );
    encoder
        .encode(image.as_raw(), w, h, jpeg_encoder::ColorType::Rgb)
        .unwrap();
    out
}

/// Decodes a JPEG with libjpeg-turbo's `djpeg` (Debian's libjpeg-turbo-progs), the decoder
/// phones use, when it is installed; `None` otherwise.
fn libjpeg(jpeg: &[u8]) -> Option<RgbImage> {
    use std::io::Write as _;
    let mut child = std::process::Command::new("djpeg")
        .args(["-pnm"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .ok()?;
    // Fed from a thread: djpeg writes its output while it reads, and a pipe holds 64 KiB.
    let mut stdin = child.stdin.take()?;
    let input = jpeg.to_vec();
    let feeder = std::thread::spawn(move || stdin.write_all(&input));
    let out = child.wait_with_output().ok()?;
    feeder.join().ok()?.ok()?;
    // P6, width height, 255, then the pixels.
    let mut fields = out.stdout.splitn(5, |b| b.is_ascii_whitespace());
    let (_, w, h, _) = (
        fields.next()?,
        fields.next()?,
        fields.next()?,
        fields.next()?,
    );
    let parse = |f: &[u8]| std::str::from_utf8(f).ok()?.parse::<u32>().ok();
    RgbImage::from_raw(parse(w)?, parse(h)?, fields.next()?.to_vec())
}

/// Mean absolute difference per channel of two pictures of one size.
fn mean_difference(a: &RgbImage, b: &RgbImage) -> f64 {
    let sum: u64 = (a.as_raw().iter().zip(b.as_raw()))
        .map(|(x, y)| u64::from(x.abs_diff(*y)))
        .sum();
    sum as f64 / a.as_raw().len() as f64
}

/// WhatsApp as GREEN-API sees it: the upload at 640 pixels, quality 50, then 96 pixels.
/// The upload is decoded by libjpeg-turbo when `djpeg` is there (as a phone would), else by
/// `image`.
fn whatsapp(upload: &[u8]) -> (RgbImage, RgbImage) {
    let decoded =
        libjpeg(upload).unwrap_or_else(|| image::load_from_memory(upload).unwrap().into_rgb8());
    let stored = DynamicImage::ImageRgb8(decoded).resize(640, 640, FilterType::Triangle);
    let mut q50 = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut q50, 50)
        .write_image(
            stored.as_bytes(),
            stored.width(),
            stored.height(),
            image::ExtendedColorType::Rgb8,
        )
        .unwrap();
    let stored = image::load_from_memory(&q50).unwrap();
    let preview = stored.resize(96, 96, FilterType::Triangle).into_rgb8();
    (stored.into_rgb8(), preview)
}

/// Mean SSIM of the luma of two pictures of one size, over 8 × 8 windows every 4 pixels.
fn ssim(a: &RgbImage, b: &RgbImage) -> f64 {
    let (a, b): (GrayImage, GrayImage) = (
        DynamicImage::ImageRgb8(a.clone()).into_luma8(),
        DynamicImage::ImageRgb8(b.clone()).into_luma8(),
    );
    assert_eq!(a.dimensions(), b.dimensions());
    let (c1, c2) = ((0.01f64 * 255.0).powi(2), (0.03f64 * 255.0).powi(2));
    let (w, h) = a.dimensions();
    let (mut total, mut n) = (0.0, 0.0);
    for y in (0..h.saturating_sub(7)).step_by(4) {
        for x in (0..w.saturating_sub(7)).step_by(4) {
            let (mut sa, mut sb, mut saa, mut sbb, mut sab) = (0.0, 0.0, 0.0, 0.0, 0.0);
            for dy in 0..8 {
                for dx in 0..8 {
                    let p = f64::from(a.get_pixel(x + dx, y + dy).0[0]);
                    let q = f64::from(b.get_pixel(x + dx, y + dy).0[0]);
                    sa += p;
                    sb += q;
                    saa += p * p;
                    sbb += q * q;
                    sab += p * q;
                }
            }
            let (ma, mb) = (sa / 64.0, sb / 64.0);
            let (va, vb, cov) = (
                saa / 64.0 - ma * ma,
                sbb / 64.0 - mb * mb,
                sab / 64.0 - ma * mb,
            );
            total += ((2.0 * ma * mb + c1) * (2.0 * cov + c2))
                / ((ma * ma + mb * mb + c1) * (va + vb + c2));
            n += 1.0;
        }
    }
    total / n
}

/// The encoders compared.
fn candidates() -> [Candidate; 4] {
    [
        Candidate {
            name: "image (current), q90 4:4:4",
            encode: current,
        },
        Candidate {
            name: "jpeg-encoder q90 4:2:0 opt. Huffman",
            encode: |i| jpeg_encoder(i, jpeg_encoder::SamplingFactor::R_4_2_0),
        },
        Candidate {
            name: "jpeg-encoder q90 4:4:4 opt. Huffman",
            encode: |i| jpeg_encoder(i, jpeg_encoder::SamplingFactor::R_4_4_4),
        },
        Candidate {
            name: "jpeg-encoder q90 4:4:4 std. Huffman",
            encode: |i| {
                let mut out = Vec::new();
                let mut encoder = jpeg_encoder::Encoder::new(&mut out, 90);
                encoder.set_sampling_factor(jpeg_encoder::SamplingFactor::R_4_4_4);
                let (w, h) = (i.width() as u16, i.height() as u16);
                encoder
                    .encode(i.as_raw(), w, h, jpeg_encoder::ColorType::Rgb)
                    .unwrap();
                out
            },
        },
    ]
}

/// Every candidate on every fixture: bytes, SSIM at 640 after quality 50, SSIM at 96.
fn encoders() {
    let candidates = candidates();
    let djpeg = libjpeg(&current(&RgbImage::new(8, 8))).is_some();
    println!(
        "== encoders: fit: cover at 640 px; WhatsApp simulated as 640 px q50, then 96 px; \
         uploads decoded by {}",
        if djpeg {
            "libjpeg-turbo (djpeg)"
        } else {
            "image (install libjpeg-turbo-progs for djpeg)"
        }
    );
    println!(
        "{:<14} {:<37} {:>8} {:>10} {:>9} {:>8}",
        "fixture", "encoder", "bytes", "SSIM 640", "SSIM 96", "image Δ"
    );
    let mut sums = vec![(0.0f64, 0.0f64, 0.0f64); candidates.len()];
    let fixtures = fixtures();
    for (name, bytes) in &fixtures {
        let shaped = process::shaped(bytes, &options(Fit::Cover)).unwrap();
        let reference_640 = DynamicImage::ImageRgb8(shaped.clone())
            .resize(640, 640, FilterType::Triangle)
            .into_rgb8();
        let reference_96 = DynamicImage::ImageRgb8(shaped.clone())
            .resize(640, 640, FilterType::Triangle)
            .resize(96, 96, FilterType::Triangle)
            .into_rgb8();
        for (candidate, sum) in candidates.iter().zip(&mut sums) {
            let upload = (candidate.encode)(&shaped);
            let (stored, preview) = whatsapp(&upload);
            let (s640, s96) = (ssim(&reference_640, &stored), ssim(&reference_96, &preview));
            // How far our own decoder (drift checks, the status page) reads the upload from
            // libjpeg-turbo: mean absolute difference per channel, 0-255.
            let ours = image::load_from_memory(&upload).unwrap().into_rgb8();
            let apart = libjpeg(&upload).map_or(f64::NAN, |theirs| mean_difference(&ours, &theirs));
            println!(
                "{name:<14} {:<37} {:>8} {s640:>10.4} {s96:>9.4} {apart:>8.2}",
                candidate.name,
                upload.len()
            );
            sum.0 += upload.len() as f64;
            sum.1 += s640;
            sum.2 += s96;
        }
    }
    let n = fixtures.len() as f64;
    for (candidate, (bytes, s640, s96)) in candidates.iter().zip(sums) {
        println!(
            "{:<14} {:<37} {:>8.0} {:>10.4} {:>9.4}",
            "mean",
            candidate.name,
            bytes / n,
            s640 / n,
            s96 / n
        );
    }
}
