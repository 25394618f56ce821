//! Colour management, tested against a reference conversion written out here in f64 from the
//! published colour-space definitions (not through `moxcms`): patches of known colour in
//! AdobeRGB and ProPhoto, tagged with profiles `moxcms` encodes, must come out of the
//! pipeline within ΔE2000 2 of what the reference says, while the same pixels untagged (what
//! the pipeline did before) differ by far more. Real profiles from Debian's packages
//! (icc-profiles-free, colord-data, libgs-common) are in the `#[ignore]`d tests, which
//! `.ci/run` installs the packages for and runs by name.

use super::*;
use image::codecs::png::PngEncoder;
use image::codecs::webp::WebPEncoder;
use image::{ExtendedColorType, ImageEncoder, ImageFormat};
use moxcms::ColorProfile;

/// Twelve patches of the ColorChecker (sRGB, as X-Rite publishes them), and grey.
const PATCHES: [[u8; 3]; 12] = [
    [115, 82, 68],   // dark skin
    [194, 150, 130], // light skin
    [98, 122, 157],  // blue sky
    [87, 108, 67],   // foliage
    [133, 128, 177], // blue flower
    [103, 189, 170], // bluish green
    [214, 126, 44],  // orange
    [175, 54, 60],   // red
    [70, 148, 73],   // green
    [56, 61, 150],   // blue
    [231, 199, 31],  // yellow
    [160, 160, 160], // neutral 6.5
];

/// Pixels a patch is wide and tall; the centre half is measured (JPEG's blocks at the edges
/// mix neighbouring patches).
const PATCH: u32 = 32;

/// A wide-gamut RGB space as published: transfer function and RGB → XYZ (D65) matrix.
struct Space {
    name: &'static str,
    decode: fn(f64) -> f64,
    to_xyz_d65: [[f64; 3]; 3],
}

fn srgb_decode(v: f64) -> f64 {
    if v <= 0.04045 {
        v / 12.92
    } else {
        ((v + 0.055) / 1.055).powf(2.4)
    }
}

fn srgb_encode(v: f64) -> f64 {
    if v <= 0.003_130_8 {
        v * 12.92
    } else {
        1.055 * v.powf(1.0 / 2.4) - 0.055
    }
}

/// XYZ (D65) → linear sRGB (IEC 61966-2-1).
const XYZ_TO_SRGB: [[f64; 3]; 3] = [
    [3.240_454_2, -1.537_138_5, -0.498_531_4],
    [-0.969_266_0, 1.876_010_8, 0.041_556_0],
    [0.055_643_4, -0.204_025_9, 1.057_225_2],
];

/// Adobe RGB (1998): gamma 563/256, D65.
const ADOBE: Space = Space {
    name: "AdobeRGB",
    decode: |v| v.powf(563.0 / 256.0),
    to_xyz_d65: [
        [0.576_730_9, 0.185_554_0, 0.188_185_2],
        [0.297_376_9, 0.627_349_1, 0.075_274_1],
        [0.027_034_3, 0.070_687_2, 0.991_108_5],
    ],
};

/// ProPhoto (ROMM) RGB: gamma 1.8, D50 primaries, brought to D65 by Bradford.
fn prophoto() -> Space {
    const D50: [[f64; 3]; 3] = [
        [0.797_674_9, 0.135_191_7, 0.031_353_4],
        [0.288_040_2, 0.711_874_1, 0.000_085_7],
        [0.0, 0.0, 0.825_210_0],
    ];
    const BRADFORD_D50_TO_D65: [[f64; 3]; 3] = [
        [0.955_576_6, -0.023_039_3, 0.063_163_6],
        [-0.028_289_5, 1.009_941_6, 0.021_007_7],
        [0.012_298_2, -0.020_483_0, 1.329_909_8],
    ];
    Space {
        name: "ProPhoto",
        decode: |v| v.powf(1.8),
        to_xyz_d65: mul(BRADFORD_D50_TO_D65, D50),
    }
}

fn mul(a: [[f64; 3]; 3], b: [[f64; 3]; 3]) -> [[f64; 3]; 3] {
    let mut out = [[0.0; 3]; 3];
    for (i, row) in out.iter_mut().enumerate() {
        for (j, cell) in row.iter_mut().enumerate() {
            *cell = (0..3).map(|k| a[i][k] * b[k][j]).sum();
        }
    }
    out
}

fn apply(m: [[f64; 3]; 3], v: [f64; 3]) -> [f64; 3] {
    [0, 1, 2].map(|i| m[i][0] * v[0] + m[i][1] * v[1] + m[i][2] * v[2])
}

fn invert(m: [[f64; 3]; 3]) -> [[f64; 3]; 3] {
    let det = m[0][0] * (m[1][1] * m[2][2] - m[1][2] * m[2][1])
        - m[0][1] * (m[1][0] * m[2][2] - m[1][2] * m[2][0])
        + m[0][2] * (m[1][0] * m[2][1] - m[1][1] * m[2][0]);
    let c =
        |r0: usize, c0: usize, r1: usize, c1: usize| m[r0][c0] * m[r1][c1] - m[r0][c1] * m[r1][c0];
    [
        [c(1, 1, 2, 2), -c(0, 1, 2, 2), c(0, 1, 1, 2)],
        [-c(1, 0, 2, 2), c(0, 0, 2, 2), -c(0, 0, 1, 2)],
        [c(1, 0, 2, 1), -c(0, 0, 2, 1), c(0, 0, 1, 1)],
    ]
    .map(|row| row.map(|v| v / det))
}

/// The reference: an 8-bit pixel of `space` as sRGB (0-255, unrounded, unclipped).
fn reference_to_srgb(space: &Space, pixel: [u8; 3]) -> [f64; 3] {
    let linear = pixel.map(|v| (space.decode)(f64::from(v) / 255.0));
    let srgb_linear = apply(XYZ_TO_SRGB, apply(space.to_xyz_d65, linear));
    srgb_linear.map(|v| srgb_encode(v.clamp(0.0, 1.0)) * 255.0)
}

/// The reference the other way: an sRGB colour as the nearest 8-bit pixel of `space`.
fn reference_from_srgb(space: &Space, pixel: [u8; 3]) -> [u8; 3] {
    let linear = pixel.map(|v| srgb_decode(f64::from(v) / 255.0));
    let xyz = apply(invert(XYZ_TO_SRGB), linear);
    let wide = apply(invert(space.to_xyz_d65), xyz);
    // Each space's transfer is a plain power here: invert it numerically by bisection.
    wide.map(|target| {
        let (mut lo, mut hi) = (0.0f64, 1.0f64);
        for _ in 0..60 {
            let mid = (lo + hi) / 2.0;
            if (space.decode)(mid) < target {
                lo = mid;
            } else {
                hi = mid;
            }
        }
        (lo * 255.0).round().clamp(0.0, 255.0) as u8
    })
}

/// CIE Lab (D65 white) of an sRGB colour given as 0-255 floats.
fn lab(rgb: [f64; 3]) -> [f64; 3] {
    const WHITE: [f64; 3] = [0.950_47, 1.0, 1.088_83];
    let linear = rgb.map(|v| srgb_decode((v / 255.0).clamp(0.0, 1.0)));
    let xyz = apply(invert(XYZ_TO_SRGB), linear);
    let f = |t: f64| {
        if t > 216.0 / 24389.0 {
            t.cbrt()
        } else {
            (24389.0 / 27.0 * t + 16.0) / 116.0
        }
    };
    let [fx, fy, fz] = [0, 1, 2].map(|i| f(xyz[i] / WHITE[i]));
    [116.0 * fy - 16.0, 500.0 * (fx - fy), 200.0 * (fy - fz)]
}

/// CIEDE2000 (Sharma, Wu and Dalal's formulation).
fn delta_e_2000(a: [f64; 3], b: [f64; 3]) -> f64 {
    use std::f64::consts::PI;
    let [l1, a1, b1] = a;
    let [l2, a2, b2] = b;
    let c1 = a1.hypot(b1);
    let c2 = a2.hypot(b2);
    let c_mean = (c1 + c2) / 2.0;
    let g = 0.5 * (1.0 - (c_mean.powi(7) / (c_mean.powi(7) + 25f64.powi(7))).sqrt());
    let (a1p, a2p) = ((1.0 + g) * a1, (1.0 + g) * a2);
    let (c1p, c2p) = (a1p.hypot(b1), a2p.hypot(b2));
    let hue = |b: f64, a: f64| {
        if a == 0.0 && b == 0.0 {
            0.0
        } else {
            let h = b.atan2(a).to_degrees();
            if h < 0.0 { h + 360.0 } else { h }
        }
    };
    let (h1p, h2p) = (hue(b1, a1p), hue(b2, a2p));
    let dl = l2 - l1;
    let dc = c2p - c1p;
    let dh = if c1p * c2p == 0.0 {
        0.0
    } else if (h2p - h1p).abs() <= 180.0 {
        h2p - h1p
    } else if h2p - h1p > 180.0 {
        h2p - h1p - 360.0
    } else {
        h2p - h1p + 360.0
    };
    let dhh = 2.0 * (c1p * c2p).sqrt() * (dh.to_radians() / 2.0).sin();
    let l_mean = (l1 + l2) / 2.0;
    let cp_mean = (c1p + c2p) / 2.0;
    let hp_mean = if c1p * c2p == 0.0 {
        h1p + h2p
    } else if (h1p - h2p).abs() <= 180.0 {
        (h1p + h2p) / 2.0
    } else if h1p + h2p < 360.0 {
        (h1p + h2p + 360.0) / 2.0
    } else {
        (h1p + h2p - 360.0) / 2.0
    };
    let t = 1.0 - 0.17 * (hp_mean - 30.0).to_radians().cos()
        + 0.24 * (2.0 * hp_mean).to_radians().cos()
        + 0.32 * (3.0 * hp_mean + 6.0).to_radians().cos()
        - 0.20 * (4.0 * hp_mean - 63.0).to_radians().cos();
    let d_theta = 30.0 * (-((hp_mean - 275.0) / 25.0).powi(2)).exp();
    let rc = 2.0 * (cp_mean.powi(7) / (cp_mean.powi(7) + 25f64.powi(7))).sqrt();
    let sl = 1.0 + 0.015 * (l_mean - 50.0).powi(2) / (20.0 + (l_mean - 50.0).powi(2)).sqrt();
    let sc = 1.0 + 0.045 * cp_mean;
    let sh = 1.0 + 0.015 * cp_mean * t;
    let rt = -(2.0 * d_theta.to_radians()).sin() * rc;
    let _ = PI;
    ((dl / sl).powi(2) + (dc / sc).powi(2) + (dhh / sh).powi(2) + rt * (dc / sc) * (dhh / sh))
        .sqrt()
}

/// A strip of patches (each `PATCH` pixels square), one row.
fn strip(pixels: &[[u8; 3]]) -> RgbImage {
    let width = PATCH * u32::try_from(pixels.len()).unwrap();
    RgbImage::from_fn(width, PATCH, |x, _| Rgb(pixels[(x / PATCH) as usize]))
}

pub(super) fn png_tagged(image: &RgbImage, icc: Option<Vec<u8>>) -> Vec<u8> {
    let mut out = Vec::new();
    let mut encoder = PngEncoder::new(&mut out);
    if let Some(icc) = icc {
        encoder.set_icc_profile(icc).unwrap();
    }
    encoder
        .write_image(
            image.as_raw(),
            image.width(),
            image.height(),
            ExtendedColorType::Rgb8,
        )
        .unwrap();
    out
}

/// The mean colour of the centre half of each patch of an upload.
fn measured(upload: &[u8], count: usize) -> Vec<[f64; 3]> {
    let image = image::load_from_memory_with_format(upload, ImageFormat::Jpeg)
        .unwrap()
        .into_rgb8();
    (0..count as u32)
        .map(|i| {
            let mut sum = [0.0; 3];
            let mut n = 0.0;
            for y in PATCH / 4..PATCH * 3 / 4 {
                for x in i * PATCH + PATCH / 4..i * PATCH + PATCH * 3 / 4 {
                    let p = image.get_pixel(x, y).0;
                    for c in 0..3 {
                        sum[c] += f64::from(p[c]);
                    }
                    n += 1.0;
                }
            }
            sum.map(|s| s / n)
        })
        .collect()
}

fn untouched() -> Processing {
    Processing {
        fit: Fit::None,
        ..Processing::default()
    }
}

/// Runs one space's patches through the pipeline tagged and untagged; returns the ΔE2000 of
/// each patch from the reference, (tagged, untagged), and prints them.
fn patches_through(space: &Space, icc: Vec<u8>) -> Vec<(f64, f64)> {
    let wide: Vec<[u8; 3]> = PATCHES
        .iter()
        .map(|&p| reference_from_srgb(space, p))
        .collect();
    let image = strip(&wide);
    let (tagged, route) = process(&png_tagged(&image, Some(icc)), &untouched()).unwrap();
    assert_eq!(route, Route::Reencoded);
    let (untagged, _) = process(&png_tagged(&image, None), &untouched()).unwrap();
    let tagged = measured(&tagged, wide.len());
    let untagged = measured(&untagged, wide.len());
    println!(
        "{}: ΔE2000 from the reference, per patch (converted | as before)",
        space.name
    );
    wide.iter()
        .zip(tagged.iter().zip(&untagged))
        .map(|(&pixel, (got, before))| {
            let want = lab(reference_to_srgb(space, pixel));
            let now = delta_e_2000(want, lab(*got));
            let then = delta_e_2000(want, lab(*before));
            println!("  {pixel:?}: {now:5.2} | {then:5.2}");
            (now, then)
        })
        .collect()
}

fn summarise(name: &str, deltas: &[(f64, f64)]) {
    let max = |f: fn(&(f64, f64)) -> f64| deltas.iter().map(f).fold(0.0, f64::max);
    let mean = |f: fn(&(f64, f64)) -> f64| deltas.iter().map(f).sum::<f64>() / deltas.len() as f64;
    println!(
        "{name}: converted max {:.2} mean {:.2}; as before max {:.2} mean {:.2}",
        max(|d| d.0),
        mean(|d| d.0),
        max(|d| d.1),
        mean(|d| d.1)
    );
    assert!(
        max(|d| d.0) <= 2.0,
        "{name}: a patch is off by more than ΔE 2"
    );
    // Before, the same pixels went out untagged: off by more than the threshold, and on
    // average at least five times as far as now.
    assert!(max(|d| d.1) > 2.0, "{name}: untagged should be off");
    assert!(
        mean(|d| d.1) > 5.0 * mean(|d| d.0),
        "{name}: untagged should be far off"
    );
}

#[test]
fn adobe_rgb_patches_come_out_within_delta_e_2_of_the_reference() {
    let deltas = patches_through(&ADOBE, ColorProfile::new_adobe_rgb().encode().unwrap());
    summarise("AdobeRGB", &deltas);
}

#[test]
fn prophoto_patches_come_out_within_delta_e_2_of_the_reference() {
    let deltas = patches_through(
        &prophoto(),
        ColorProfile::new_pro_photo_rgb().encode().unwrap(),
    );
    summarise("ProPhoto", &deltas);
}

#[test]
fn the_reference_itself_round_trips_srgb() {
    // The reference both ways through sRGB is the identity: a check on the matrices above.
    let srgb = Space {
        name: "sRGB",
        decode: srgb_decode,
        to_xyz_d65: invert(XYZ_TO_SRGB),
    };
    for p in PATCHES {
        let back = reference_to_srgb(&srgb, p);
        for c in 0..3 {
            assert!(
                (back[c] - f64::from(p[c])).abs() < 1e-6,
                "{p:?} -> {back:?}"
            );
        }
    }
    // And the ΔE2000 implementation against Sharma et al.'s first test pair.
    let d = delta_e_2000([50.0, 2.6772, -79.7751], [50.0, 0.0, -82.7485]);
    assert!((d - 2.0425).abs() < 1e-4, "{d}");
}

#[test]
fn an_srgb_tagged_picture_uploads_exactly_what_an_untagged_one_did() {
    // Today's output for untagged pixels, re-encoded (PNG) and stripped (JPEG): tagging
    // them sRGB changes nothing, byte for byte.
    let image = RgbImage::from_fn(200, 120, |x, y| Rgb([(x % 256) as u8, (y * 2) as u8, 77]));
    let srgb = ColorProfile::new_srgb().encode().unwrap();
    for fit in [Fit::None, Fit::Cover, Fit::Contain] {
        let options = Processing {
            fit,
            ..Processing::default()
        };
        let plain = process(&png_tagged(&image, None), &options).unwrap();
        let tagged = process(&png_tagged(&image, Some(srgb.clone())), &options).unwrap();
        assert_eq!(plain, tagged, "{fit}");
    }
    // A small JPEG tagged sRGB is still uploaded as it is, profile and all.
    let mut jpeg = Vec::new();
    let mut encoder = JpegEncoder::new_with_quality(&mut jpeg, 90);
    encoder.set_icc_profile(srgb).unwrap();
    encoder.encode_image(&image).unwrap();
    let (out, route) = process(&jpeg, &Processing::default()).unwrap();
    assert_eq!(route, Route::Stripped);
    assert_eq!(out, jpeg);
}

#[test]
fn a_wide_gamut_jpeg_is_converted_even_when_it_needs_no_other_change() {
    // A small AdobeRGB JPEG used to go out as it was, tagged; now it is converted and
    // uploaded untagged, so WhatsApp's re-encode (which drops metadata) shows it right.
    let wide = reference_from_srgb(&ADOBE, [214, 126, 44]);
    let image = RgbImage::from_pixel(64, 64, Rgb(wide));
    let mut jpeg = Vec::new();
    let mut encoder = JpegEncoder::new_with_quality(&mut jpeg, 95);
    encoder
        .set_icc_profile(ColorProfile::new_adobe_rgb().encode().unwrap())
        .unwrap();
    encoder.encode_image(&image).unwrap();
    let (out, route) = process(&jpeg, &Processing::default()).unwrap();
    assert_eq!(route, Route::Reencoded);
    assert!(
        !out.windows(11).any(|w| w == b"ICC_PROFILE"),
        "the upload is untagged"
    );
    let got = measured_flat(&out);
    let d = delta_e_2000(lab(reference_to_srgb(&ADOBE, wide)), lab(got));
    assert!(d <= 2.0, "ΔE {d}");
}

fn measured_flat(upload: &[u8]) -> [f64; 3] {
    let image = image::load_from_memory(upload).unwrap().into_rgb8();
    let p = image.get_pixel(image.width() / 2, image.height() / 2).0;
    p.map(f64::from)
}

#[test]
fn a_webp_with_an_iccp_chunk_is_converted() {
    let wide = reference_from_srgb(&ADOBE, [70, 148, 73]);
    let image = RgbImage::from_pixel(40, 40, Rgb(wide));
    let mut webp = Vec::new();
    let mut encoder = WebPEncoder::new_lossless(&mut webp);
    encoder
        .set_icc_profile(ColorProfile::new_adobe_rgb().encode().unwrap())
        .unwrap();
    encoder
        .write_image(image.as_raw(), 40, 40, ExtendedColorType::Rgb8)
        .unwrap();
    let (out, _) = process(&webp, &Processing::default()).unwrap();
    let d = delta_e_2000(
        lab(reference_to_srgb(&ADOBE, wide)),
        lab(measured_flat(&out)),
    );
    assert!(d <= 2.0, "ΔE {d}");
}

#[test]
fn a_profile_that_lies_about_its_size_is_refused_cleanly() {
    let image = RgbImage::from_pixel(16, 16, Rgb([10, 20, 30]));
    let good = ColorProfile::new_adobe_rgb().encode().unwrap();
    let mut longer = good.clone();
    let claimed = u32::try_from(good.len() + 1000).unwrap();
    longer[..4].copy_from_slice(&claimed.to_be_bytes());
    let mut shorter = good.clone();
    shorter[..4].copy_from_slice(&100u32.to_be_bytes());
    // Every tag offset pointing far past the end.
    let mut far = good.clone();
    let tags = u32::from_be_bytes(far[128..132].try_into().unwrap()) as usize;
    for t in 0..tags {
        let at = 132 + t * 12 + 4;
        far[at..at + 4].copy_from_slice(&0x7fff_fff0u32.to_be_bytes());
    }
    for (what, icc) in [("longer", longer), ("shorter", shorter), ("far", far)] {
        let error = process(&png_tagged(&image, Some(icc)), &untouched()).unwrap_err();
        assert!(matches!(error, ProcessError::Profile(_)), "{what}: {error}");
        assert_eq!(error.label(), "picture-undecodable");
        assert!(error.to_string().contains("ICC colour profile"), "{error}");
    }
}

#[test]
fn no_damage_to_a_profile_panics() {
    // Every byte of the header and tag table, set to each of a few values: an error or an
    // upload, never a panic.
    let image = RgbImage::from_pixel(8, 8, Rgb([200, 100, 50]));
    let good = ColorProfile::new_pro_photo_rgb().encode().unwrap();
    for at in 0..good.len().min(256) {
        for value in [0x00, 0x01, 0x7f, 0xff] {
            let mut icc = good.clone();
            icc[at] = value;
            let _ = process(&png_tagged(&image, Some(icc)), &untouched());
        }
    }
}

#[test]
fn a_jpeg_whose_profile_chunks_do_not_add_up_is_refused() {
    let image = RgbImage::from_pixel(16, 16, Rgb([10, 20, 30]));
    let mut jpeg = Vec::new();
    let mut encoder = JpegEncoder::new_with_quality(&mut jpeg, 90);
    encoder
        .set_icc_profile(ColorProfile::new_adobe_rgb().encode().unwrap())
        .unwrap();
    encoder.encode_image(&image).unwrap();
    // "ICC_PROFILE\0" then chunk 1 of 1: say it is chunk 1 of 2.
    let at = jpeg
        .windows(12)
        .position(|w| w == b"ICC_PROFILE\0")
        .unwrap()
        + 13;
    jpeg[at] = 2;
    let error = process(&jpeg, &Processing::default()).unwrap_err();
    assert!(matches!(error, ProcessError::Profile(_)), "{error}");
}

/// A CMYK JPEG of `ink` (cyan, magenta, yellow, black; 0 = none) in `kind`, with `icc`.
fn cmyk_jpeg(ink: [u8; 4], kind: jpeg_encoder::ColorType, icc: Option<&[u8]>) -> Vec<u8> {
    let (w, h) = (24u16, 16u16);
    let data: Vec<u8> = (0..usize::from(w) * usize::from(h))
        .flat_map(|_| ink)
        .collect();
    let mut out = Vec::new();
    let mut encoder = jpeg_encoder::Encoder::new(&mut out, 95);
    if let Some(icc) = icc {
        encoder.add_icc_profile(icc).unwrap();
    }
    encoder.encode(&data, w, h, kind).unwrap();
    out
}

#[test]
fn a_cmyk_jpeg_without_a_profile_converts_as_it_always_did() {
    // No profile: the decoder's own ink-to-RGB (255 × (1 - ink) × (1 - black)).
    for kind in [
        jpeg_encoder::ColorType::Cmyk,
        jpeg_encoder::ColorType::CmykAsYcck,
    ] {
        let jpeg = cmyk_jpeg([0, 255, 255, 0], kind, None);
        let (out, route) = process(&jpeg, &Processing::default()).unwrap();
        assert_eq!(route, Route::Reencoded);
        let got = measured_flat(&out);
        assert!(
            got[0] > 230.0 && got[1] < 25.0 && got[2] < 25.0,
            "{kind:?}: {got:?}"
        );
    }
}

/// A real CMYK profile: Ghostscript's default (SWOP-like coated), from Debian's libgs-common.
const GHOSTSCRIPT_CMYK: &str = "/usr/share/color/icc/ghostscript/default_cmyk.icc";

#[test]
#[ignore = "needs Debian's libgs-common (its default_cmyk.icc); .ci/run installs it and runs it"]
fn a_cmyk_jpeg_with_a_real_profile_converts_through_it() {
    let icc = std::fs::read(GHOSTSCRIPT_CMYK).expect("apt-get install libgs-common");
    // Pure cyan ink is a mid blue-green in sRGB (out of gamut: clipped red), no ink is
    // paper white, full black ink is nearly black; naive conversion says (0, 255, 255) for
    // cyan, which no press prints.
    for kind in [
        jpeg_encoder::ColorType::Cmyk,
        jpeg_encoder::ColorType::CmykAsYcck,
    ] {
        let cyan = measured_flat(
            &process(&cmyk_jpeg([255, 0, 0, 0], kind, Some(&icc)), &untouched())
                .unwrap()
                .0,
        );
        let paper = measured_flat(
            &process(&cmyk_jpeg([0, 0, 0, 0], kind, Some(&icc)), &untouched())
                .unwrap()
                .0,
        );
        let black = measured_flat(
            &process(&cmyk_jpeg([0, 0, 0, 255], kind, Some(&icc)), &untouched())
                .unwrap()
                .0,
        );
        println!(
            "{kind:?} through {GHOSTSCRIPT_CMYK}: cyan {cyan:?}, paper {paper:?}, black {black:?}"
        );
        assert!(
            cyan[0] < 40.0 && (130.0..200.0).contains(&cyan[1]) && cyan[2] > 200.0,
            "cyan {cyan:?}"
        );
        assert!(paper.iter().all(|&c| c > 235.0), "paper {paper:?}");
        assert!(black.iter().all(|&c| c < 70.0), "black {black:?}");
    }
}

/// Debian's real RGB profiles (icc-profiles-free, colord-data).
const DEBIAN_ADOBE: &str = "/usr/share/color/icc/colord/AdobeRGB1998.icc";
const DEBIAN_PROPHOTO: &str = "/usr/share/color/icc/colord/ProPhotoRGB.icc";
const DEBIAN_SRGB: [&str; 2] = [
    "/usr/share/color/icc/sRGB.icc",
    "/usr/share/color/icc/colord/sRGB.icc",
];

#[test]
#[ignore = "needs Debian's colord-data and icc-profiles-free; .ci/run installs them and runs it"]
fn debian_profiles_convert_within_delta_e_2_and_their_srgb_changes_nothing() {
    for (space, path) in [(ADOBE, DEBIAN_ADOBE), (prophoto(), DEBIAN_PROPHOTO)] {
        let icc = std::fs::read(path).expect("apt-get install colord-data");
        let deltas = patches_through(&space, icc);
        summarise(path, &deltas);
    }
    let image = RgbImage::from_fn(90, 60, |x, y| Rgb([(x * 2) as u8, (y * 4) as u8, 128]));
    for path in DEBIAN_SRGB {
        let icc = std::fs::read(path).expect("apt-get install icc-profiles-free colord-data");
        let plain = process(&png_tagged(&image, None), &Processing::default()).unwrap();
        let tagged = process(&png_tagged(&image, Some(icc)), &Processing::default()).unwrap();
        assert_eq!(plain, tagged, "{path} counts as sRGB");
    }
}

#[test]
fn a_greyscale_png_with_a_grey_profile_is_converted_and_an_rgb_profile_on_grey_is_ignored() {
    // Grey 2.2 against sRGB's curve: mid-grey 128 is 0.216 linear under gamma 2.2, which
    // sRGB writes as 128.6, but a dark 32 (0.0104 linear) is 26.5 in sRGB: converted, the
    // dark end moves.
    let grey = image::GrayImage::from_pixel(16, 16, image::Luma([32]));
    let png = |icc: Option<Vec<u8>>| {
        let mut out = Vec::new();
        let mut encoder = PngEncoder::new(&mut out);
        if let Some(icc) = icc {
            encoder.set_icc_profile(icc).unwrap();
        }
        encoder
            .write_image(grey.as_raw(), 16, 16, ExtendedColorType::L8)
            .unwrap();
        out
    };
    let gamma = ColorProfile::new_gray_with_gamma(2.2).encode().unwrap();
    let converted = measured_flat(&process(&png(Some(gamma)), &untouched()).unwrap().0);
    assert!(
        converted.iter().all(|&c| (22.0..=30.0).contains(&c)),
        "{converted:?}"
    );
    // With alpha too (grey and alpha through the profile, then flattened onto white).
    let grey_alpha = image::GrayAlphaImage::from_pixel(16, 16, image::LumaA([32, 255]));
    let mut with_alpha = Vec::new();
    let mut encoder = PngEncoder::new(&mut with_alpha);
    encoder
        .set_icc_profile(ColorProfile::new_gray_with_gamma(2.2).encode().unwrap())
        .unwrap();
    encoder
        .write_image(grey_alpha.as_raw(), 16, 16, ExtendedColorType::La8)
        .unwrap();
    let converted = measured_flat(&process(&with_alpha, &untouched()).unwrap().0);
    assert!(
        converted.iter().all(|&c| (22.0..=30.0).contains(&c)),
        "{converted:?}"
    );
    // An RGB profile in a greyscale picture does not apply: the bytes are as untagged.
    let rgb = ColorProfile::new_adobe_rgb().encode().unwrap();
    assert_eq!(
        process(&png(Some(rgb)), &untouched()).unwrap(),
        process(&png(None), &untouched()).unwrap()
    );
}
