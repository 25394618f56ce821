//! A perceptual hash of a picture: a fingerprint that stays (nearly) the same when WhatsApp
//! re-encodes a picture, scales it down to a 96-pixel thumbnail or crops it to its centre
//! square, and differs for a different picture. Two pictures match when their fingerprints'
//! [`PerceptualHash::similarity`] is at least [`MATCH_SIMILARITY`].
//!
//! The layout of the picture, as pHash takes it: the centre square, in grey, scaled to
//! 32 × 32; its 2-D DCT; the 8 × 8 lowest frequencies without the DC term. Low frequencies
//! carry the layout, which survives JPEG and scaling. pHash keeps one bit per coefficient
//! (above or below their median); that is fragile for logos and flat artwork, whose many
//! near-zero coefficients sit on the median and flip with any re-encode. So the
//! coefficients themselves are kept (square-root compressed, a byte each) and compared as
//! vectors: the cosine of their angle, blind to brightness and contrast, negative for an
//! inverted picture. A flat picture (no layout to speak of) matches only a flat one of about the
//! same brightness.

use image::imageops::FilterType;
use image::{DynamicImage, GrayImage};
use std::fmt;

/// Pictures whose fingerprints' similarity is at least this are the same picture. The
/// variants test below measures both sides over 24 generated photos and logos: re-encodes
/// at quality 40-70, 96- and 640-pixel squares and centre crops stay above 0.99 (worst
/// 0.998); another photo or logo, an inverted copy or a blank square below 0.6 (closest
/// 0.572).
pub const MATCH_SIMILARITY: f64 = 0.8;

/// Side of the grey square the DCT runs on.
const SIDE: usize = 32;
/// Side of the low-frequency block that makes the hash.
const LOW: usize = 8;
/// The AC coefficients kept.
const AC: usize = LOW * LOW - 1;
/// Below this largest AC coefficient (per pixel, in grey levels) a picture is flat.
const FLAT: f64 = 1.5;
/// Two flat pictures match when their mean grey levels differ by at most this.
const FLAT_BRIGHTNESS: u8 = 24;

/// A perceptual fingerprint: the 63 lowest AC coefficients of the picture's DCT, scaled so
/// the largest is ±127, with the picture's contrast and mean brightness.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct PerceptualHash {
    coefficients: [i8; AC],
    /// The largest AC coefficient, per pixel, in grey levels (saturating).
    contrast: u8,
    /// The mean grey level.
    mean: u8,
}

impl PerceptualHash {
    /// The fingerprint of a decoded picture.
    pub fn of(image: &DynamicImage) -> Self {
        let grey = centre_square(image).to_luma8();
        let small = image::imageops::resize(&grey, SIDE as u32, SIDE as u32, FilterType::Triangle);
        of_square(&small)
    }

    /// How alike two pictures are: the cosine of the angle between their coefficients, from
    /// 1 (the same layout) through 0 (unrelated) to -1 (inverted). Flat pictures are 1 to
    /// a flat one of about the same brightness, else 0.
    pub fn similarity(self, other: Self) -> f64 {
        match (self.is_flat(), other.is_flat()) {
            (true, true) => f64::from(u8::from(self.mean.abs_diff(other.mean) <= FLAT_BRIGHTNESS)),
            (false, false) => {
                let dot = |a: &[i8; AC], b: &[i8; AC]| -> f64 {
                    a.iter()
                        .zip(b)
                        .map(|(x, y)| f64::from(*x) * f64::from(*y))
                        .sum()
                };
                let (a, b) = (&self.coefficients, &other.coefficients);
                dot(a, b) / (dot(a, a).sqrt() * dot(b, b).sqrt()).max(f64::MIN_POSITIVE)
            }
            _ => 0.0,
        }
    }

    /// Whether the two are the same picture.
    pub fn matches(self, other: Self) -> bool {
        self.similarity(other) >= MATCH_SIMILARITY
    }

    fn is_flat(self) -> bool {
        f64::from(self.contrast) < FLAT
    }
}

impl fmt::Debug for PerceptualHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl std::str::FromStr for PerceptualHash {
    type Err = String;

    /// Reads back what [`fmt::Display`] writes.
    fn from_str(text: &str) -> Result<Self, String> {
        let byte = |i: usize| {
            text.get(2 * i..2 * i + 2)
                .and_then(|hex| u8::from_str_radix(hex, 16).ok())
                .ok_or_else(|| format!("`{text}` is not a perceptual hash"))
        };
        if text.len() != 2 * (AC + 2) {
            return Err(format!("`{text}` is not a perceptual hash"));
        }
        let mut coefficients = [0_i8; AC];
        for (i, c) in coefficients.iter_mut().enumerate() {
            *c = byte(i + 2)?.cast_signed();
        }
        Ok(Self {
            coefficients,
            contrast: byte(0)?,
            mean: byte(1)?,
        })
    }
}

impl fmt::Display for PerceptualHash {
    /// 65 bytes in hex: contrast, mean, then the 63 coefficients.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:02x}{:02x}", self.contrast, self.mean)?;
        self.coefficients
            .iter()
            .try_for_each(|c| write!(f, "{:02x}", c.cast_unsigned()))
    }
}

/// The largest centred square of `image` (WhatsApp shows a square, cropped to a circle).
fn centre_square(image: &DynamicImage) -> DynamicImage {
    let (width, height) = (image.width(), image.height());
    let side = width.min(height);
    image.crop_imm((width - side) / 2, (height - side) / 2, side, side)
}

/// The fingerprint of a 32 × 32 grey square.
fn of_square(grey: &GrayImage) -> PerceptualHash {
    let pixels: Vec<f64> = grey.pixels().map(|p| f64::from(p.0[0])).collect();
    let mean = pixels.iter().sum::<f64>() / pixels.len() as f64;
    let coefficients = dct_low(&pixels);
    // The DC term (the mean brightness) says nothing about layout: leave it out.
    let ac = &coefficients[1..];
    let largest = ac.iter().fold(0.0_f64, |m, c| m.max(c.abs()));
    let mut scaled = [0_i8; AC];
    if largest > 0.0 {
        for (out, c) in scaled.iter_mut().zip(ac) {
            // Square-root compressed: a few dominant coefficients (a gradient, a big
            // shape) must not decide alone; near-zero ones stay near zero.
            *out = (c.signum() * (c.abs() / largest).sqrt() * 127.0).round() as i8;
        }
    }
    PerceptualHash {
        coefficients: scaled,
        // Unnormalised DCT sums: per pixel, the largest is at most 4 × the grey levels.
        contrast: (largest / (SIDE * SIDE) as f64 * 4.0).min(255.0) as u8,
        mean: mean.round().clamp(0.0, 255.0) as u8,
    }
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

    /// A "logo": flat colours in bands and a disc on white, different for each `seed`;
    /// most of its coefficients are near zero, where a bit-per-coefficient hash flips.
    fn logo(seed: u32, width: u32, height: u32) -> RgbImage {
        let mut rng = fastrand::Rng::with_seed(u64::from(seed) + 77);
        let colour = [rng.u8(..200), rng.u8(..200), rng.u8(..200)];
        let (cx, cy, r) = (rng.f64(), rng.f64(), 0.15 + rng.f64() * 0.25);
        let bands = 2 + rng.u32(..5);
        let vertical = rng.bool();
        let (from, to) = (rng.f64() * 0.4, 0.6 + rng.f64() * 0.4);
        RgbImage::from_fn(width, height, |x, y| {
            let (mut fx, mut fy) = (
                f64::from(x) / f64::from(width),
                f64::from(y) / f64::from(height),
            );
            let in_disc = (fx - cx).powi(2) + (fy - cy).powi(2) < r * r;
            if vertical {
                std::mem::swap(&mut fx, &mut fy);
            }
            let in_band =
                ((fy * f64::from(bands)) as u32).is_multiple_of(2) && fx > from && fx < to;
            if in_disc || in_band {
                Rgb(colour)
            } else {
                Rgb([255, 255, 255])
            }
        })
    }

    #[test]
    fn the_threshold_separates_variants_from_other_pictures() {
        let mut worst_same = f64::MAX;
        let mut best_other = f64::MIN;
        for seed in 0..24 {
            // Uploads are square or not; WhatsApp's live picture is always square.
            let (w, h) = if seed % 3 == 0 {
                (400, 300)
            } else {
                (320, 320)
            };
            let make = |seed| {
                if seed % 2 == 0 {
                    photo(seed, w, h)
                } else {
                    logo(seed, w, h)
                }
            };
            let upload = make(seed);
            let hash = PerceptualHash::of(&reencoded(&upload, 90));
            for (what, variant) in as_whatsapp_shows(&upload) {
                let s = hash.similarity(PerceptualHash::of(&variant));
                assert!(
                    s >= MATCH_SIMILARITY,
                    "seed {seed}, {what}: similarity {s:.3}"
                );
                worst_same = worst_same.min(s);
            }
            let inverted = {
                let mut copy = upload.clone();
                image::imageops::invert(&mut copy);
                copy
            };
            let blank = RgbImage::from_pixel(w, h, Rgb([200, 200, 200]));
            let others = [
                ("another photo", photo(seed + 1000, w, h)),
                ("another logo", logo(seed + 1001, w, h)),
                ("inverted", inverted),
                ("blank", blank),
            ];
            for (what, other) in others {
                let s = hash.similarity(PerceptualHash::of(&reencoded(&other, 90)));
                assert!(
                    s < MATCH_SIMILARITY,
                    "seed {seed}, {what}: similarity {s:.3} matches"
                );
                best_other = best_other.max(s);
            }
        }
        println!("worst variant: {worst_same:.3}; closest other picture: {best_other:.3}");
        // The margin on both sides, so a change of the hash shows up here first.
        assert!(worst_same >= 0.95, "worst variant: {worst_same:.3}");
        assert!(best_other <= 0.65, "closest other picture: {best_other:.3}");
    }

    #[test]
    fn flat_pictures_match_only_flat_ones_of_about_the_same_brightness() {
        let flat = |grey: u8| {
            PerceptualHash::of(&DynamicImage::ImageRgb8(RgbImage::from_pixel(
                64,
                64,
                Rgb([grey; 3]),
            )))
        };
        assert!(flat(200).matches(flat(210)));
        assert!(!flat(200).matches(flat(60)));
        let photo = PerceptualHash::of(&DynamicImage::ImageRgb8(photo(3, 64, 64)));
        assert!(!flat(200).matches(photo) && !photo.matches(flat(200)));
    }

    #[test]
    fn the_hash_is_stable_and_prints_as_hex() {
        let image = DynamicImage::ImageRgb8(photo(7, 64, 64));
        let a = PerceptualHash::of(&image);
        assert_eq!(a, PerceptualHash::of(&image));
        assert!((a.similarity(a) - 1.0).abs() < 1e-9);
        assert!(a.matches(a));
        assert_eq!(a.to_string().len(), 130);
        assert_eq!(a.to_string().parse::<PerceptualHash>(), Ok(a));
        assert!("00ff".parse::<PerceptualHash>().is_err());
    }
}
