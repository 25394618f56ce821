//! What WhatsApp shows for each instance, and GREEN-API's reads of it: `getWaSettings`,
//! `getStateInstance`, `getAvatar`, and the avatar files at loopback URLs shaped like
//! WhatsApp's CDN ones (`/v/t61.24694-24/<id>_<n>_n.jpg?stp=…&oh=…&oe=…`). As WhatsApp does,
//! the files are re-encoded (JPEG quality 60), the settings' one a 96 × 96 centre-square
//! thumbnail, `getAvatar`'s at most 640 px; the signed query (`oh`, `oe`) rotates without
//! the picture changing, and the path changes with the picture. Reads are rate-limited
//! (one per second per instance and method: 429 beyond) and recorded apart from the
//! `setProfilePicture` calls.

use image::imageops::FilterType;
use std::io::Cursor;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// GREEN-API's limit on reads of one method for one instance, unless configured.
pub const DEFAULT_READ_WINDOW: Duration = Duration::from_secs(1);

/// The size of the thumbnail `getWaSettings` links to.
pub const THUMBNAIL_SIDE: u32 = 96;
/// The longest side of the picture `getAvatar` links to.
pub const FULL_SIDE: u32 = 640;

/// One read the fake received: a GREEN-API read method or an avatar file.
#[derive(Clone, Debug)]
pub struct Read {
    /// When the request was fully received.
    pub received_at: Instant,
    /// When the answer was written; `None` for a hang or a reset.
    pub answered_at: Option<Instant>,
    /// The `idInstance` it was for.
    pub instance: String,
    /// `getWaSettings`, `getStateInstance`, `getAvatar` or `avatar` (a picture file).
    pub method: String,
    /// Whether the token was the instance's (always true for `avatar`).
    pub token_valid: bool,
    /// The HTTP status, or `reset` / `hang`.
    pub answer: String,
}

/// One instance as WhatsApp shows it.
#[derive(Debug)]
pub(crate) struct Live {
    /// The picture shown (as uploaded or set "from the phone").
    pub(crate) picture: Option<Arc<[u8]>>,
    /// The CDN path's number: new whenever the picture changes.
    pub(crate) path: u64,
    /// The signature's generation: `oh`/`oe` rotate with it.
    pub(crate) signature: u64,
    /// The account's phone number.
    pub(crate) phone: String,
    /// `stateInstance`; `None` answers the body `null` (an instance being created).
    pub(crate) state: Option<String>,
    /// When each read method was last read (for the read limit).
    pub(crate) last_read: Vec<(String, Instant)>,
    /// Re-encoded files: (path, side) → JPEG bytes.
    encoded: Vec<((u64, u32), Vec<u8>)>,
}

impl Default for Live {
    fn default() -> Self {
        Self {
            picture: None,
            path: 0,
            signature: 0,
            phone: "79001234567".to_owned(),
            state: Some("authorized".to_owned()),
            last_read: Vec::new(),
            encoded: Vec::new(),
        }
    }
}

impl Live {
    /// Shows `picture` under the new CDN path `path`.
    pub(crate) fn show(&mut self, picture: Option<Arc<[u8]>>, path: u64) {
        self.picture = picture;
        self.path = path;
        self.encoded.clear();
    }

    pub(crate) fn authorized(&self) -> bool {
        self.state.as_deref() == Some("authorized")
    }

    /// The file URL of the picture shown, at `side` (96: the settings' thumbnail), or ""
    /// when none is shown or the instance is not authorised.
    pub(crate) fn url(&self, base: &str, id: &str, side: u32) -> String {
        if self.picture.is_none() || !self.authorized() {
            return String::new();
        }
        let stp = if side == THUMBNAIL_SIDE {
            "dst-jpg_s96x96"
        } else {
            "dst-jpg_s640x640"
        };
        format!(
            "{base}/v/t61.24694-24/{id}_{}_n.jpg?stp={stp}&ccb=11-4&oh=01_Q5Aa{:08x}&oe={:08X}",
            self.path,
            self.signature.wrapping_mul(0x9e37_79b9),
            0x6000_0000 + self.signature
        )
    }

    /// Whether a read of `method` now is within the read limit (and notes it).
    pub(crate) fn allow_read(&mut self, method: &str, now: Instant, window: Duration) -> bool {
        match self.last_read.iter_mut().find(|(m, _)| m == method) {
            Some((_, last)) if now.duration_since(*last) < window => false,
            Some((_, last)) => {
                *last = now;
                true
            }
            None => {
                self.last_read.push((method.to_owned(), now));
                true
            }
        }
    }

    /// The picture at `path`, re-encoded at `side`, if `path` is the one shown.
    pub(crate) fn file(&mut self, path: u64, side: u32) -> Option<Vec<u8>> {
        if path != self.path {
            return None;
        }
        if let Some((_, bytes)) = self.encoded.iter().find(|(key, _)| *key == (path, side)) {
            return Some(bytes.clone());
        }
        let bytes = reencode(self.picture.as_ref()?, side)?;
        self.encoded.push(((path, side), bytes.clone()));
        Some(bytes)
    }
}

/// As WhatsApp serves a picture: the thumbnail a centre square scaled to `side`, the full
/// one scaled to fit `side`; JPEG quality 60.
fn reencode(picture: &[u8], side: u32) -> Option<Vec<u8>> {
    let image = image::load_from_memory(picture).ok()?.to_rgb8();
    let image = if side == THUMBNAIL_SIDE {
        let square = image.width().min(image.height());
        let x = (image.width() - square) / 2;
        let y = (image.height() - square) / 2;
        let cropped = image::imageops::crop_imm(&image, x, y, square, square).to_image();
        image::imageops::resize(&cropped, side, side, FilterType::Triangle)
    } else if image.width().max(image.height()) > side {
        let scale = f64::from(side) / f64::from(image.width().max(image.height()));
        let w = ((f64::from(image.width()) * scale).round() as u32).max(1);
        let h = ((f64::from(image.height()) * scale).round() as u32).max(1);
        image::imageops::resize(&image, w, h, FilterType::Triangle)
    } else {
        image
    };
    let mut out = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(Cursor::new(&mut out), 60)
        .encode_image(&image)
        .ok()?;
    Some(out)
}

/// `(idInstance, path, side)` of an avatar file target.
pub(crate) fn avatar_target(target: &str) -> Option<(&str, u64, u32)> {
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let file = path
        .strip_prefix("/v/t61.24694-24/")?
        .strip_suffix("_n.jpg")?;
    let (id, number) = file.split_once('_')?;
    let side = if query.contains("s96x96") {
        THUMBNAIL_SIDE
    } else {
        FULL_SIDE
    };
    Some((id, number.parse().ok()?, side))
}
