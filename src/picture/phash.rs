//! A perceptual hash of a picture: 64 bits that stay (nearly) the same when WhatsApp
//! re-encodes a picture, scales it down to a 96-pixel thumbnail or crops it to its centre
//! square, and differ for a different picture. Two pictures match when their hashes differ
//! in at most [`MATCH_DISTANCE`] bits.
//!
//! The classic DCT hash (pHash): the centre square, in grey, scaled to 32 × 32; its 2-D DCT;
//! the 8 × 8 lowest frequencies without the DC term; one bit per coefficient, set when it is
//! above their median. Low frequencies carry the picture's layout, which survives JPEG and
//! scaling; the median makes the hash blind to brightness and contrast shifts but not to an
//! inverted picture (every sign flips).

use image::imageops::FilterType;
use image::{DynamicImage, GrayImage};
use std::fmt;

/// Pictures whose hashes differ in at most this many of 64 bits are the same picture. The
/// variants test below measures both sides over generated photos: re-encodes at quality
/// 40-70, 96- and 640-pixel squares and centre crops differ by at most 4 bits; another
/// photo, an inverted copy or a blank square by at least 24.
pub const MATCH_DISTANCE: u32 = 12;

/// Side of the grey square the DCT runs on.
const SIDE: usize = 32;
/// Side of the low-frequency block that makes the hash.
const LOW: usize = 8;

/// A 64-bit perceptual hash.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct PerceptualHash(pub u64);

impl PerceptualHash {
    /// The hash of a decoded picture.
    pub fn of(image: &DynamicImage) -> Self {
        let grey = centre_square(image).to_luma8();
        let small = image::imageops::resize(&grey, SIDE as u32, SIDE as u32, FilterType::Triangle);
        Self(hash_of_square(&small))
    }

    /// How many bits differ.
    pub fn distance(self, other: Self) -> u32 {
        (self.0 ^ other.0).count_ones()
    }

    /// Whether the two are the same picture.
    pub fn matches(self, other: Self) -> bool {
        self.distance(other) <= MATCH_DISTANCE
    }
}

impl fmt::Debug for PerceptualHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

impl fmt::Display for PerceptualHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

/// The largest centred square of `image` (WhatsApp shows a square, cropped to a circle).
fn centre_square(image: &DynamicImage) -> DynamicImage {
    let (width, height) = (image.width(), image.height());
    let side = width.min(height);
    image.crop_imm((width - side) / 2, (height - side) / 2, side, side)
}

/// The hash of a 32 × 32 grey square.
fn hash_of_square(grey: &GrayImage) -> u64 {
    let pixels: Vec<f64> = grey.pixels().map(|p| f64::from(p.0[0])).collect();
    let coefficients = dct_low(&pixels);
    // The DC term (the mean brightness) says nothing about layout: leave it out.
    let ac = &coefficients[1..];
    let mut sorted = ac.to_vec();
    sorted.sort_by(f64::total_cmp);
    let median = (sorted[sorted.len() / 2 - 1] + sorted[sorted.len() / 2]) / 2.0;
    ac.iter().enumerate().fold(
        0,
        |hash, (i, &c)| if c > median { hash | (1 << i) } else { hash },
    )
}

/// The 8 × 8 lowest-frequency coefficients of the 2-D DCT-II of a 32 × 32 block, row-major.
fn dct_low(pixels: &[f64]) -> Vec<f64> {
    // cos((2x + 1) u π / 2N) for the frequencies kept.
    let basis: Vec<f64> = (0..LOW)
        .flat_map(|u| {
            (0..SIDE).map(move |x| {
                ((2 * x + 1) as f64 * u as f64 * std::f64::consts::PI / (2 * SIDE) as f64).cos()
            })
        })
        .collect();
    // Rows first: each row's 8 lowest frequencies.
    let mut rows = vec![0.0; SIDE * LOW];
    for y in 0..SIDE {
        for u in 0..LOW {
            rows[y * LOW + u] = (0..SIDE)
                .map(|x| pixels[y * SIDE + x] * basis[u * SIDE + x])
                .sum();
        }
    }
    // Then columns.
    let mut out = vec![0.0; LOW * LOW];
    for v in 0..LOW {
        for u in 0..LOW {
            out[v * LOW + u] = (0..SIDE)
                .map(|y| rows[y * LOW + u] * basis[v * SIDE + y])
                .sum();
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::codecs::jpeg::JpegEncoder;
    use image::{Rgb, RgbImage};

    /// A "photo": soft shapes and a gradient, different for each `seed`.
    fn photo(seed: u32, width: u32, height: u32) -> RgbImage {
        let mut rng = fastrand::Rng::with_seed(u64::from(seed));
        let blobs: Vec<(f64, f64, f64, [f64; 3])> = (0..6)
            .map(|_| {
                (
                    rng.f64(),
                    rng.f64(),
                    0.1 + rng.f64() * 0.3,
                    [rng.f64() * 255.0, rng.f64() * 255.0, rng.f64() * 255.0],
                )
            })
            .collect();
        RgbImage::from_fn(width, height, |x, y| {
            let (fx, fy) = (
                f64::from(x) / f64::from(width),
                f64::from(y) / f64::from(height),
            );
            let mut colour = [fx * 120.0, fy * 120.0, 60.0];
            for (bx, by, r, c) in &blobs {
                let d = ((fx - bx).powi(2) + (fy - by).powi(2)).sqrt();
                let w = (1.0 - d / r).clamp(0.0, 1.0);
                for (k, channel) in colour.iter_mut().enumerate() {
                    *channel = *channel * (1.0 - w) + c[k] * w;
                }
            }
            Rgb(colour.map(|c| c.clamp(0.0, 255.0) as u8))
        })
    }

    /// `image` through a JPEG encoder at `quality` and back.
    fn reencoded(image: &RgbImage, quality: u8) -> DynamicImage {
        let mut bytes = Vec::new();
        JpegEncoder::new_with_quality(&mut bytes, quality)
            .encode_image(image)
            .unwrap();
        image::load_from_memory(&bytes).unwrap()
    }

    fn scaled(image: &DynamicImage, side: u32) -> DynamicImage {
        image.resize_exact(side, side, FilterType::Lanczos3)
    }

    /// What WhatsApp may do to an upload: re-encode it at another quality, scale it to the
    /// 640-pixel picture or the 96-pixel thumbnail, after cropping it to its centre square.
    fn as_whatsapp_shows(upload: &RgbImage) -> Vec<(&'static str, DynamicImage)> {
        let square = centre_square(&DynamicImage::ImageRgb8(upload.clone()));
        vec![
            ("re-encoded at 70", reencoded(upload, 70)),
            ("re-encoded at 40", reencoded(upload, 40)),
            ("640 px", scaled(&reencoded(&square.to_rgb8(), 80), 640)),
            ("96 px", scaled(&reencoded(&square.to_rgb8(), 75), 96)),
            (
                "96 px, re-encoded",
                reencoded(&scaled(&square, 96).to_rgb8(), 60),
            ),
        ]
    }

    #[test]
    fn the_threshold_separates_variants_from_other_pictures() {
        let mut worst_same = 0;
        let mut best_other = u32::MAX;
        for seed in 0..12 {
            // Uploads are square or not; WhatsApp's live picture is always square.
            let (w, h) = if seed % 3 == 0 {
                (400, 300)
            } else {
                (320, 320)
            };
            let upload = photo(seed, w, h);
            let hash = PerceptualHash::of(&reencoded(&upload, 90));
            for (what, variant) in as_whatsapp_shows(&upload) {
                let d = hash.distance(PerceptualHash::of(&variant));
                assert!(d <= MATCH_DISTANCE, "seed {seed}, {what}: distance {d}");
                worst_same = worst_same.max(d);
            }
            let inverted = {
                let mut copy = upload.clone();
                image::imageops::invert(&mut copy);
                copy
            };
            let blank = RgbImage::from_pixel(w, h, Rgb([200, 200, 200]));
            let others = [
                ("another photo", photo(seed + 1000, w, h)),
                ("inverted", inverted),
                ("blank", blank),
            ];
            for (what, other) in others {
                let d = hash.distance(PerceptualHash::of(&reencoded(&other, 90)));
                assert!(
                    d > MATCH_DISTANCE,
                    "seed {seed}, {what}: distance {d} matches"
                );
                best_other = best_other.min(d);
            }
        }
        println!("worst variant: {worst_same} bits; closest other picture: {best_other} bits");
        // The margin on both sides, so a change of the hash shows up here first.
        assert!(
            worst_same <= MATCH_DISTANCE / 2 + 2,
            "worst variant: {worst_same}"
        );
        assert!(
            best_other >= MATCH_DISTANCE + 6,
            "closest other picture: {best_other}"
        );
    }

    #[test]
    fn the_hash_is_stable_and_prints_as_hex() {
        let image = DynamicImage::ImageRgb8(photo(7, 64, 64));
        let a = PerceptualHash::of(&image);
        assert_eq!(a, PerceptualHash::of(&image));
        assert_eq!(a.distance(a), 0);
        assert!(a.matches(a));
        assert_eq!(a.to_string().len(), 16);
        assert_eq!(PerceptualHash(0x0f).distance(PerceptualHash(0xf0)), 8);
    }
}
