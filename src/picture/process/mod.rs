//! Turns a source picture (JPEG, PNG or WebP bytes) into the JPEG that is uploaded.
//!
//! One job: bytes in, bytes out, deterministically, with no I/O. A JPEG that needs no pixel
//! change keeps its compressed image data byte for byte and only loses its metadata
//! ([`Route::Stripped`]); anything else is decoded under size limits, turned upright,
//! flattened onto the background, cropped or padded to the requested fit, resized and encoded
//! as a baseline JPEG with no metadata at all ([`Route::Reencoded`]). The JPEG marker walk
//! and the EXIF orientation lookup are written here by hand, with every read bounds-checked,
//! because they must never panic on hostile bytes.

use crate::outcome::LocalKind;
use image::codecs::jpeg::{JpegDecoder, JpegEncoder};
use image::codecs::png::PngDecoder;
use image::codecs::webp::WebPDecoder;
use image::imageops::FilterType;
use image::{DynamicImage, ImageDecoder, ImageError, Limits, Rgb, RgbImage};
use std::fmt;
use std::io::Cursor;

mod budget;
mod cmyk;
mod colour;
#[cfg(test)]
mod colour_tests;
mod face;
#[cfg(test)]
mod face_tests;
mod jpeg;
#[cfg(test)]
mod tests;

pub use crate::manifest::{Fit, Processing};
use colour::{Colour, Pixels as Kind};
pub use face::{Found, Square};
use jpeg::JpegLayout;

/// Bump when the output bytes for the same input and options change. 2: pictures with a
/// wide-gamut ICC profile (or a CMYK one) are converted to sRGB; everything else gives the
/// bytes version 1 gave, so after an upgrade the prepared pictures are made once more (the
/// cache's keys change) but the uploads' digests, which decide what is sent, do not.
pub const PIPELINE_VERSION: u32 = 2;

/// Stable text naming `options` and the pipeline version, e.g.
/// "v2;fit=cover;size=640;bg=ffffff;q=90": the prepared-picture cache's key.
pub fn cache_key(options: &Processing) -> String {
    let [r, g, b] = options.background;
    format!(
        "v{PIPELINE_VERSION};fit={};size={};bg={r:02x}{g:02x}{b:02x};q={}",
        options.fit, options.size, options.quality
    )
}

/// Pictures wider or taller than this (pixels) are refused before their pixels are decoded.
pub const MAX_SIDE: u32 = 10_000;

/// The most memory the decoded pixels of one picture may take (300 MiB): a 10,000 × 10,000
/// RGB picture fits, a 9,000 × 9,000 16-bit RGBA one does not.
pub const MAX_DECODED_BYTES: u64 = 300 * 1024 * 1024;

/// The picture formats that are accepted, as recognised by their first bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Format {
    /// JPEG (`FF D8 FF`).
    Jpeg,
    /// PNG (`89 50 4E 47 0D 0A 1A 0A`).
    Png,
    /// WebP (`RIFF....WEBP`).
    WebP,
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Jpeg => "JPEG",
            Self::Png => "PNG",
            Self::WebP => "WebP",
        })
    }
}

/// Why a picture cannot be turned into an upload.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ProcessError {
    /// There are no bytes at all.
    #[error("the picture is empty")]
    Empty,
    /// The bytes are not JPEG, PNG or WebP.
    #[error("the picture is {found}; only JPEG, PNG and WebP are supported")]
    UnsupportedFormat {
        /// What the first bytes look like, e.g. "a GIF", "a HEIC/HEIF image".
        found: &'static str,
    },
    /// The picture stops before its end.
    #[error("the picture is a truncated {format} (it stops before its end)")]
    Truncated {
        /// The format its first bytes announced.
        format: Format,
    },
    /// The picture has more pixels than the decoder is allowed to unpack.
    #[error(
        "the picture is {width} × {height} pixels; at most {MAX_SIDE} pixels a side and {} MiB of decoded pixels are allowed",
        MAX_DECODED_BYTES >> 20
    )]
    TooLarge {
        /// Width in pixels, as its header says.
        width: u32,
        /// Height in pixels, as its header says.
        height: u32,
    },
    /// The picture is damaged or uses a feature the decoder does not support.
    #[error("the picture cannot be decoded: {0}")]
    Decode(String),
    /// The picture's embedded ICC colour profile cannot be read or used.
    #[error("the picture's embedded ICC colour profile is broken: {0}")]
    Profile(String),
    /// The processed picture could not be encoded as a JPEG.
    #[error("the processed picture cannot be encoded as a JPEG: {0}")]
    Encode(String),
}

impl ProcessError {
    /// What kind of problem it is for the instance that shows the picture.
    pub fn kind(&self) -> LocalKind {
        match self {
            Self::Empty => LocalKind::PictureEmpty,
            Self::UnsupportedFormat { .. } => LocalKind::PictureUnsupportedFormat,
            Self::Truncated { .. } => LocalKind::PictureTruncated,
            Self::TooLarge { .. } => LocalKind::PictureTooLarge,
            Self::Decode(_) | Self::Profile(_) => LocalKind::PictureUndecodable,
            Self::Encode(_) => LocalKind::PictureUnencodable,
        }
    }

    /// A stable machine label for `--json` and logs.
    pub fn label(&self) -> &'static str {
        self.kind().label()
    }
}

/// What was done, for logs and tests.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Route {
    /// A JPEG whose compressed image data was copied byte for byte; only metadata was dropped.
    Stripped,
    /// The picture was decoded, processed and encoded anew.
    Reencoded,
}

/// Turns a source picture (JPEG, PNG or WebP bytes) into the JPEG to upload. Deterministic:
/// the same bytes and options always give the same output bytes.
pub fn process(source: &[u8], options: &Processing) -> Result<(Vec<u8>, Route), ProcessError> {
    process_cut(source, options).map(|(bytes, route, _)| (bytes, route))
}

/// Where an upload was cut from its source: the square (in the upright source's pixels,
/// with how it was chosen) and the source's size.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cut {
    /// The square.
    pub square: Square,
    /// The upright source's width and height.
    pub width: u32,
    /// Its height.
    pub height: u32,
}

impl std::fmt::Display for Cut {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let Square { x, y, side, found } = self.square;
        let how = match found {
            Found::Faces(_) => format!("cut around {found}"),
            Found::Saliency => "cut around what stands out (no face found)".to_owned(),
            Found::Centre => "cut from the centre".to_owned(),
        };
        write!(
            f,
            "{how}: a {side} px square at ({x}, {y}) of the {} × {} picture",
            self.width, self.height
        )
    }
}

/// [`process`], and where the upload was cut from its source (`fit: cover` and `fit:
/// face`, when the source is not square already).
pub fn process_cut(
    source: &[u8],
    options: &Processing,
) -> Result<(Vec<u8>, Route, Option<Cut>), ProcessError> {
    let (image, _pixels) = match pixels(source, options)? {
        Pixels::Stripped(bytes) => return Ok((bytes, Route::Stripped, None)),
        Pixels::Decoded(image, reservation) => (image, reservation),
    };
    // The reservation is held until the processed picture is encoded.
    let (width, height) = image.dimensions();
    let (image, square) = shape_cut(image, options);
    let mut out = Vec::new();
    JpegEncoder::new_with_quality(&mut out, options.quality.clamp(1, 100))
        .encode_image(&image)
        .map_err(|e| ProcessError::Encode(e.to_string()))?;
    let cut = square.map(|square| Cut {
        square,
        width,
        height,
    });
    Ok((out, Route::Reencoded, cut))
}

/// The pixels [`process`] would encode: for the encoder comparison
/// (`cargo bench --bench pictures -- encoders`), which encodes them other ways.
pub fn shaped(source: &[u8], options: &Processing) -> Result<RgbImage, ProcessError> {
    match pixels(source, options)? {
        Pixels::Stripped(bytes) => Ok(decode(Format::Jpeg, &bytes, MAX_SIDE)?.0.into_rgb8()),
        Pixels::Decoded(image, _reservation) => Ok(shape(image, options)),
    }
}

/// Where an upload's pixels came from, for `--preview`: the picture as it stands (upright,
/// in sRGB, flattened), at most `side` pixels a side, and the square cut from it (in its
/// pixels), if the fit cuts one.
pub struct Explained {
    /// The whole source picture, scaled down.
    pub picture: RgbImage,
    /// The square the upload was cut from, scaled as `picture`.
    pub square: Option<Square>,
}

/// Explains how `source` becomes its upload under `options` ([`Explained`]).
pub fn explain(source: &[u8], options: &Processing, side: u32) -> Result<Explained, ProcessError> {
    let image = match pixels(source, options)? {
        // Uploaded as it is: decoded only to be shown.
        Pixels::Stripped(bytes) => decode(Format::Jpeg, &bytes, MAX_SIDE)?.0.into_rgb8(),
        Pixels::Decoded(image, _reservation) => image,
    };
    let square = match options.fit {
        Fit::Cover => Some(face::centre(image.width(), image.height())),
        Fit::Face => Some(face::square(&image)),
        Fit::None | Fit::Contain => None,
    };
    let width = image.width();
    let picture = scale_within(image, side);
    let ratio = f64::from(picture.width()) / f64::from(width.max(1));
    let square = square.map(|s| {
        let at = |v: u32| (f64::from(v) * ratio).round() as u32;
        Square {
            x: at(s.x),
            y: at(s.y),
            side: at(s.side).max(1),
            found: s.found,
        }
    });
    Ok(Explained { picture, square })
}

/// A picture's pixels, ready to be shaped, or the JPEG that needs none.
enum Pixels {
    /// A JPEG that is uploaded as it is, less its metadata.
    Stripped(Vec<u8>),
    /// Upright, sRGB, flattened onto the background; with its share of the decodes' budget.
    Decoded(RgbImage, budget::Reservation<'static>),
}

/// Decodes `source`, converts it to sRGB and flattens it; or strips it, when it is a JPEG
/// that needs no pixel change.
fn pixels(source: &[u8], options: &Processing) -> Result<Pixels, ProcessError> {
    let format = detect(source)?;
    let mut cmyk = None;
    let mut jpeg_colour = None;
    let source = if format == Format::Jpeg {
        let jpeg = JpegLayout::read(source)?;
        let kind = match jpeg.components() {
            1 => Kind::Grey,
            4 => Kind::Cmyk,
            _ => Kind::Rgb,
        };
        let colour = Colour::read(jpeg.icc_profile(source)?.as_deref(), kind)?;
        if colour.is_srgb() && jpeg.needs_no_pixel_change(options) {
            return Ok(Pixels::Stripped(jpeg.stripped(source)));
        }
        // Only the primary image: whatever follows its end marker (secondary MPF images, a
        // motion photo's video) is not part of the picture.
        let primary = source.get(..jpeg.end).unwrap_or(source);
        match colour {
            Colour::Convert(profile) if kind == Kind::Cmyk => {
                cmyk = Some((profile, jpeg.adobe, jpeg.orientation));
            }
            other => jpeg_colour = Some(other),
        }
        primary
    } else {
        source
    };
    let (image, reservation) = match cmyk {
        Some((profile, adobe, orientation)) => cmyk::decode(source, &profile, adobe, orientation)?,
        None => {
            let (image, icc, reservation) = decode(format, source, MAX_SIDE)?;
            let kind = if image.color().has_color() {
                Kind::Rgb
            } else {
                Kind::Grey
            };
            // A JPEG's profile was read from its own APP2 chunks above.
            let colour = match jpeg_colour {
                Some(colour) => colour,
                None => Colour::read(icc.as_deref(), kind)?,
            };
            // Colour before anything else: resizing mixes neighbouring pixels, which is only
            // right in the space the eye will see them in.
            match colour {
                Colour::Srgb => (image, reservation),
                Colour::Convert(profile) => (colour::to_srgb(image, &profile)?, reservation),
            }
        }
    };
    Ok(Pixels::Decoded(
        flatten(image, options.background),
        reservation,
    ))
}

/// The longest side of a live picture that is decoded. WhatsApp serves avatars of at most
/// 640 pixels a side (96 for previews); anything much larger is not one of its pictures,
/// and decoding it would cost up to [`MAX_DECODED_BYTES`] for one look.
pub const MAX_LIVE_SIDE: u32 = 2048;

/// The perceptual hash of a picture (JPEG, PNG or WebP bytes: one of our uploads), decoded
/// with the same limits as any decode.
pub fn perceptual_hash(bytes: &[u8]) -> Result<super::phash::PerceptualHash, ProcessError> {
    let (image, _, _pixels) = decode(detect(bytes)?, bytes, MAX_SIDE)?;
    Ok(super::phash::PerceptualHash::of(&image))
}

/// The perceptual hash of a live avatar a server sent: as [`perceptual_hash`], refused
/// before decoding when a side is over [`MAX_LIVE_SIDE`].
pub fn live_perceptual_hash(bytes: &[u8]) -> Result<super::phash::PerceptualHash, ProcessError> {
    let (image, _, _pixels) = decode(detect(bytes)?, bytes, MAX_LIVE_SIDE)?;
    Ok(super::phash::PerceptualHash::of(&image))
}

/// A small JPEG of an upload, for the status page: `side` pixels on its longest edge (never
/// larger than the upload), with the same limits as any decode.
pub fn thumbnail(upload: &[u8], side: u32) -> Result<Vec<u8>, ProcessError> {
    let (image, _, _pixels) = decode(Format::Jpeg, upload, MAX_SIDE)?;
    let image = image.to_rgb8();
    let image = scale_within(image, side);
    let mut out = Vec::new();
    JpegEncoder::new_with_quality(&mut out, 85)
        .encode_image(&image)
        .map_err(|e| ProcessError::Encode(e.to_string()))?;
    Ok(out)
}

/// Recognises the format by its first bytes (never by a file name).
fn detect(bytes: &[u8]) -> Result<Format, ProcessError> {
    const PNG: &[u8] = b"\x89PNG\r\n\x1a\n";
    if bytes.is_empty() {
        return Err(ProcessError::Empty);
    }
    if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
        return Ok(Format::Jpeg);
    }
    if bytes.starts_with(PNG) {
        return Ok(Format::Png);
    }
    let riff = bytes.starts_with(b"RIFF");
    if riff && bytes.get(8..12) == Some(b"WEBP") {
        return Ok(Format::WebP);
    }
    let found = if bytes.starts_with(b"GIF8") {
        "a GIF"
    } else if bytes.get(4..8) == Some(b"ftyp") {
        match bytes.get(8..12) {
            Some(b"avif" | b"avis") => "an AVIF image",
            Some(b"heic" | b"heix" | b"heim" | b"heis" | b"hevc" | b"hevx" | b"mif1" | b"msf1") => {
                "a HEIC/HEIF image"
            }
            _ => "an MP4/QuickTime file",
        }
    } else if riff {
        "a RIFF file that is not WebP"
    } else if bytes.starts_with(b"II*\0") || bytes.starts_with(b"MM\0*") {
        "a TIFF (or camera raw) image"
    } else if bytes.starts_with(b"BM") {
        "a BMP"
    } else if bytes.starts_with(&[0xFF, 0x0A]) || bytes.starts_with(b"\0\0\0\x0cJXL ") {
        "a JPEG XL image"
    } else if bytes.starts_with(b"%PDF") {
        "a PDF"
    } else if bytes.starts_with(b"<svg") || bytes.starts_with(b"<?xml") {
        "an SVG or other XML file"
    } else {
        "not a recognised image"
    };
    Err(ProcessError::UnsupportedFormat { found })
}

/// A decoded picture, its embedded ICC profile's bytes, and its share of the decodes' budget.
type Decoded = (DynamicImage, Option<Vec<u8>>, budget::Reservation<'static>);

/// Decodes under `max_side` (at most [`MAX_SIDE`]) and [`MAX_DECODED_BYTES`], within the
/// decodes' shared budget (held by the returned reservation), then turns the picture upright
/// by the orientation its own metadata (EXIF) gives. The ICC profile comes with it.
fn decode(format: Format, bytes: &[u8], max_side: u32) -> Result<Decoded, ProcessError> {
    let mut limits = Limits::default();
    limits.max_image_width = Some(max_side.min(MAX_SIDE));
    limits.max_image_height = Some(max_side.min(MAX_SIDE));
    limits.max_alloc = Some(MAX_DECODED_BYTES);
    let reader = Cursor::new(bytes);
    match format {
        Format::Jpeg => {
            let decoder = JpegDecoder::new(reader).map_err(|e| image_error(format, e, None))?;
            decode_with(decoder, limits, format)
        }
        Format::Png => {
            // The PNG decoder checks the limits while reading the header, before we can ask
            // for its dimensions: read them from IHDR for the error.
            let decoder = PngDecoder::with_limits(reader, limits.clone())
                .map_err(|e| image_error(format, e, png_dimensions(bytes)))?;
            decode_with(decoder, limits, format)
        }
        Format::WebP => {
            let decoder = WebPDecoder::new(reader).map_err(|e| image_error(format, e, None))?;
            decode_with(decoder, limits, format)
        }
    }
}

fn decode_with(
    mut decoder: impl ImageDecoder,
    mut limits: Limits,
    format: Format,
) -> Result<Decoded, ProcessError> {
    let dimensions = decoder.dimensions();
    if dimensions.0 == 0 || dimensions.1 == 0 {
        return Err(ProcessError::Decode(format!("the {format} has no pixels")));
    }
    let fail = |e| image_error(format, e, Some(dimensions));
    limits
        .check_dimensions(dimensions.0, dimensions.1)
        .map_err(fail)?;
    // Reserve the whole pixel buffer before decoding, so a bomb fails here, having cost only
    // its header; the decoder gets what is left for its own buffers.
    limits.reserve(decoder.total_bytes()).map_err(fail)?;
    // The pixels, and about as much again for their flattened and shaped copies.
    let pixels = budget::DECODES.reserve(decoder.total_bytes().saturating_mul(2));
    decoder.set_limits(limits).map_err(fail)?;
    let orientation = decoder.orientation().map_err(fail)?;
    // A profile the container cannot even hand over (a PNG iCCP that does not inflate) is
    // as broken as one that does not parse.
    let icc = decoder
        .icc_profile()
        .map_err(|e| ProcessError::Profile(e.to_string()))?;
    let mut image = DynamicImage::from_decoder(decoder).map_err(fail)?;
    image.apply_orientation(orientation);
    Ok((image, icc, pixels))
}

/// Width and height from a PNG's IHDR chunk, which must come first.
fn png_dimensions(bytes: &[u8]) -> Option<(u32, u32)> {
    if bytes.get(12..16)? != b"IHDR" {
        return None;
    }
    let be = |at: usize| -> Option<u32> {
        Some(u32::from_be_bytes(bytes.get(at..at + 4)?.try_into().ok()?))
    };
    Some((be(16)?, be(20)?))
}

fn image_error(format: Format, error: ImageError, dimensions: Option<(u32, u32)>) -> ProcessError {
    match error {
        ImageError::Limits(_) => {
            let (width, height) = dimensions.unwrap_or_default();
            ProcessError::TooLarge { width, height }
        }
        ImageError::IoError(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
            ProcessError::Truncated { format }
        }
        other => ProcessError::Decode(other.to_string()),
    }
}

/// Composites the picture over an opaque `background`, giving 8-bit RGB.
fn flatten(image: DynamicImage, background: [u8; 3]) -> RgbImage {
    if !image.color().has_alpha() {
        return image.into_rgb8();
    }
    let rgba = image.into_rgba8();
    let (width, height) = rgba.dimensions();
    let mut out = RgbImage::new(width, height);
    for (rgb, px) in out.chunks_exact_mut(3).zip(rgba.as_raw().chunks_exact(4)) {
        let alpha = u32::from(px[3]);
        for ((channel, &colour), &back) in rgb.iter_mut().zip(px).zip(&background) {
            // Straight alpha over an opaque colour, rounded to nearest: at most 255 * 255.
            let mixed = (u32::from(colour) * alpha + u32::from(back) * (255 - alpha) + 127) / 255;
            *channel = u8::try_from(mixed).unwrap_or(u8::MAX);
        }
    }
    out
}

/// Crops, scales and pads by `options.fit`; never scales up.
fn shape(image: RgbImage, options: &Processing) -> RgbImage {
    shape_cut(image, options).0
}

/// [`shape`], and the square it cut, if it cut one.
fn shape_cut(image: RgbImage, options: &Processing) -> (RgbImage, Option<Square>) {
    let size = options.size.max(1);
    let (width, height) = image.dimensions();
    let square = match options.fit {
        Fit::None => return (scale_within(image, size), None),
        Fit::Contain => {
            let padded = pad_to_square(scale_within(image, size), options.background);
            return (padded, None);
        }
        _ if width == height => return (scale_within(image, size), None),
        Fit::Cover => face::centre(width, height),
        Fit::Face => face::square(&image),
    };
    let cropped = DynamicImage::ImageRgb8(image)
        .crop_imm(square.x, square.y, square.side, square.side)
        .into_rgb8();
    (scale_within(cropped, size), Some(square))
}

/// Scales down so the long edge is at most `size` pixels, keeping the aspect ratio.
fn scale_within(image: RgbImage, size: u32) -> RgbImage {
    let (width, height) = image.dimensions();
    let long = width.max(height);
    if long <= size {
        return image;
    }
    // Round to the nearest pixel, and never to 0 (a 5000 × 1 strip stays 1 pixel tall).
    let scaled = |edge: u32| {
        let exact = (u64::from(edge) * u64::from(size) + u64::from(long) / 2) / u64::from(long);
        u32::try_from(exact).unwrap_or(size).max(1)
    };
    // Lanczos3 keeps downscaled photos sharp; through DynamicImage so the resize runs in the
    // `image` crate's (optimised) code.
    DynamicImage::ImageRgb8(image)
        .resize_exact(scaled(width), scaled(height), FilterType::Lanczos3)
        .into_rgb8()
}

/// Centres the picture on a square of `background` as wide as its long edge.
fn pad_to_square(image: RgbImage, background: [u8; 3]) -> RgbImage {
    let (width, height) = image.dimensions();
    let side = width.max(height);
    if width == height {
        return image;
    }
    let mut canvas = RgbImage::from_pixel(side, side, Rgb(background));
    let (left, top) = ((side - width) / 2, (side - height) / 2);
    let row = width as usize * 3;
    let stride = side as usize * 3;
    for (y, source) in image.as_raw().chunks_exact(row).enumerate() {
        let start = (top as usize + y) * stride + left as usize * 3;
        if let Some(target) = canvas.get_mut(start..start + row) {
            target.copy_from_slice(source);
        }
    }
    canvas
}
