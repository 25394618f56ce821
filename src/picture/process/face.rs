//! `fit: face`: where to cut the square from. Faces first (`rustface`, the SeetaFace frontal
//! detector, with its model compiled into the binary so it works offline), then what stands
//! out (`smartcrop2`: edges, skin, saturation), then the centre. Everything runs on one small
//! greyscale/colour copy (at most [`LOOK_SIDE`] pixels a side), so a 12-megapixel photo
//! costs about what a 0.6-megapixel one does, and nothing here reads the clock or a random
//! source: the same pixels always give the same square.

use image::imageops::FilterType;
use image::{DynamicImage, RgbImage};
use std::num::NonZeroU32;
use std::sync::OnceLock;

/// The long side (pixels) of the copy the detectors look at: faces down to about 1/40 of
/// it (20 pixels) are found, and the search stays well under a second on one core.
pub(super) const LOOK_SIDE: u32 = 800;

/// The SeetaFace frontal model that ships inside the `rustface` crate (BSD-2-Clause,
/// `assets/rustface/LICENSE`), 1.2 MB.
const MODEL: &[u8] = include_bytes!("../../../assets/rustface/seeta_fd_frontal_v1.0.bin");

/// How a square was chosen.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Found {
    /// Around this many faces.
    Faces(usize),
    /// Around the most salient region (no face found).
    Saliency,
    /// The centre (no face, nothing stands out).
    Centre,
}

impl std::fmt::Display for Found {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Faces(1) => f.write_str("1 face"),
            Self::Faces(n) => write!(f, "{n} faces"),
            Self::Saliency => f.write_str("saliency"),
            Self::Centre => f.write_str("centre"),
        }
    }
}

/// A square inside the picture, in its pixels, and how it was chosen.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Square {
    /// Left edge.
    pub x: u32,
    /// Top edge.
    pub y: u32,
    /// Side.
    pub side: u32,
    /// How it was chosen.
    pub found: Found,
}

/// A box in the picture's pixels, as floating point (detections are scaled back up).
#[derive(Clone, Copy, Debug)]
struct Area {
    left: f64,
    top: f64,
    right: f64,
    bottom: f64,
}

/// The square `fit: face` cuts from `image`.
pub(super) fn square(image: &RgbImage) -> Square {
    let (width, height) = image.dimensions();
    let centre = centre(width, height);
    if width == height || width.min(height) < 2 {
        return centre;
    }
    let scale = f64::from(width.max(height)) / f64::from(LOOK_SIDE);
    let small = if scale > 1.0 {
        let shrink = |edge: u32| ((f64::from(edge) / scale).round() as u32).max(1);
        // Triangle is enough for detection and several times cheaper than Lanczos.
        image::imageops::resize(image, shrink(width), shrink(height), FilterType::Triangle)
    } else {
        image.clone()
    };
    let scale = scale.max(1.0);
    let faces = faces(&small);
    if !faces.is_empty() {
        let head = heads(&faces, scale, width, height);
        return around(head, width, height, Found::Faces(faces.len()));
    }
    salient(&small, scale, width, height).unwrap_or(centre)
}

/// The largest centred square.
pub(super) fn centre(width: u32, height: u32) -> Square {
    let side = width.min(height);
    Square {
        x: (width - side) / 2,
        y: (height - side) / 2,
        side,
        found: Found::Centre,
    }
}

/// The faces the detector is sure of, in `small`'s pixels.
fn faces(small: &RgbImage) -> Vec<Area> {
    static MODEL_PARSED: OnceLock<Option<rustface::Model>> = OnceLock::new();
    let (width, height) = small.dimensions();
    // The detector's window is 40 pixels: it cannot look at less (and would underflow).
    if width.min(height) < 48 {
        return Vec::new();
    }
    let Some(model) = MODEL_PARSED
        .get_or_init(|| rustface::read_model(MODEL).ok())
        .clone()
    else {
        return Vec::new();
    };
    let grey = DynamicImage::ImageRgb8(small.clone()).into_luma8();
    let mut detector = rustface::create_detector_with_model(model);
    detector.set_min_face_size(20);
    // The settings of the detector's own examples (score 2.0, pyramid 0.8, step 4).
    detector.set_score_thresh(2.0);
    detector.set_pyramid_scale_factor(0.8);
    detector.set_slide_window_step(4, 4);
    let found = detector.detect(&rustface::ImageData::new(grey.as_raw(), width, height));
    found
        .iter()
        .map(|face| {
            let b = face.bbox();
            let (left, top) = (f64::from(b.x()), f64::from(b.y()));
            Area {
                left,
                top,
                right: left + f64::from(b.width()),
                bottom: top + f64::from(b.height()),
            }
        })
        .collect()
}

/// The heads around `faces` (scaled up to the picture): a detection box covers brows to
/// chin, so a head is a third of it wider each side, 60 % of it higher (hair, head room)
/// and 20 % lower (the chin's shadow, the neck); all heads together, inside the picture.
fn heads(faces: &[Area], scale: f64, width: u32, height: u32) -> Area {
    let mut all = Area {
        left: f64::MAX,
        top: f64::MAX,
        right: f64::MIN,
        bottom: f64::MIN,
    };
    for face in faces {
        let (w, h) = (face.right - face.left, face.bottom - face.top);
        all.left = all.left.min((face.left - w / 3.0) * scale);
        all.right = all.right.max((face.right + w / 3.0) * scale);
        all.top = all.top.min((face.top - 0.6 * h) * scale);
        all.bottom = all.bottom.max((face.bottom + 0.2 * h) * scale);
    }
    Area {
        left: all.left.max(0.0),
        top: all.top.max(0.0),
        right: all.right.min(f64::from(width)),
        bottom: all.bottom.min(f64::from(height)),
    }
}

/// The largest square inside the picture whose inscribed circle holds `area`, centred on it
/// as far as the picture's edges allow; when none does (the area is hard in a corner, or
/// wider than the picture's short side), the smallest square tried: one whose circle would
/// just hold the area if it could be centred on it (its diagonal, plus 5 %).
fn around(area: Area, width: u32, height: u32, found: Found) -> Square {
    let short = width.min(height);
    let (cx, cy) = (
        (area.left + area.right) / 2.0,
        (area.top + area.bottom) / 2.0,
    );
    let (aw, ah) = (area.right - area.left, area.bottom - area.top);
    // A w × h box fits in a circle of diameter d, centred, when d ≥ √(w² + h²).
    let least = (aw.hypot(ah) * 1.05).ceil().clamp(1.0, f64::from(short)) as u32;
    let place = |side: u32| -> (u32, u32) {
        let half = f64::from(side) / 2.0;
        let clamp = |centre: f64, edge: u32| -> u32 {
            let most = f64::from(edge - side);
            (centre - half).round().clamp(0.0, most) as u32
        };
        (clamp(cx, width), clamp(cy, height))
    };
    let holds = |side: u32| -> bool {
        let (x, y) = place(side);
        let r = f64::from(side) / 2.0;
        let (ox, oy) = (f64::from(x) + r, f64::from(y) + r);
        [
            (area.left, area.top),
            (area.right, area.top),
            (area.left, area.bottom),
            (area.right, area.bottom),
        ]
        .iter()
        .all(|&(px, py)| (px - ox).hypot(py - oy) <= r + 0.5)
    };
    // Whole pixels from the short side down, in steps of 1 % (deterministic, at most 100).
    let step = (short / 100).max(1);
    let mut side = short;
    while side > least && !holds(side) {
        side = side.saturating_sub(step).max(least);
    }
    let (x, y) = place(side);
    Square { x, y, side, found }
}

/// The square `smartcrop2` scores best, when anything in the picture stands out at all.
fn salient(small: &RgbImage, scale: f64, width: u32, height: u32) -> Option<Square> {
    // A flat picture (empty, all white, a solid logo background) has nothing to find, and
    // smartcrop would still pick its first candidate, the top-left corner: the centre is
    // the honest answer. "Flat" is a spread of luma under 2 levels of 255.
    let grey = DynamicImage::ImageRgb8(small.clone()).into_luma8();
    let (lo, hi) = grey
        .as_raw()
        .iter()
        .fold((u8::MAX, u8::MIN), |(lo, hi), &v| (lo.min(v), hi.max(v)));
    if hi.saturating_sub(lo) < 2 {
        return None;
    }
    let one = NonZeroU32::MIN;
    let best = smartcrop::find_best_crop(small, one, one).ok()?;
    if best.score.total <= 0.0 || !best.score.total.is_finite() {
        return None;
    }
    let crop = best.crop;
    let area = Area {
        left: f64::from(crop.x) * scale,
        top: f64::from(crop.y) * scale,
        right: f64::from(crop.x + crop.width) * scale,
        bottom: f64::from(crop.y + crop.height) * scale,
    };
    // smartcrop's square, in the picture's pixels, as large as the short side allows.
    let short = width.min(height);
    let side =
        (((area.right - area.left).max(area.bottom - area.top)).round() as u32).clamp(1, short);
    let most_x = f64::from(width - side);
    let most_y = f64::from(height - side);
    Some(Square {
        x: area.left.round().clamp(0.0, most_x) as u32,
        y: area.top.round().clamp(0.0, most_y) as u32,
        side,
        found: Found::Saliency,
    })
}
