//! Turns a source picture (JPEG, PNG or WebP bytes) into the JPEG that is uploaded.
//!
//! One job: bytes in, bytes out, deterministically, with no I/O. A JPEG that needs no pixel
//! change keeps its compressed image data byte for byte and only loses its metadata
//! ([`Route::Stripped`]); anything else is decoded under size limits, turned upright,
//! flattened onto the background, cropped or padded to the requested fit, resized and encoded
//! as a baseline JPEG with no metadata at all ([`Route::Reencoded`]). The JPEG marker walk
//! and the EXIF orientation lookup are written here by hand, with every read bounds-checked,
//! because they must never panic on hostile bytes.

use image::codecs::jpeg::{JpegDecoder, JpegEncoder};
use image::codecs::png::PngDecoder;
use image::codecs::webp::WebPDecoder;
use image::imageops::FilterType;
use image::{DynamicImage, ImageDecoder, ImageError, Limits, Rgb, RgbImage};
use std::fmt;
use std::io::Cursor;
use std::ops::Range;
use std::str::FromStr;

#[cfg(test)]
mod tests;

/// Bump when the output bytes for the same input and options change.
pub const PIPELINE_VERSION: u32 = 1;

/// Pictures wider or taller than this (pixels) are refused before their pixels are decoded.
pub const MAX_SIDE: u32 = 10_000;

/// The most memory the decoded pixels of one picture may take (300 MiB): a 10,000 × 10,000
/// RGB picture fits, a 9,000 × 9,000 16-bit RGBA one does not.
pub const MAX_DECODED_BYTES: u64 = 300 * 1024 * 1024;

/// How the picture is shaped into what WhatsApp shows (a square cropped to a circle).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Fit {
    /// Keep the aspect ratio; only scale down.
    None,
    /// Centre-crop to a square, then scale down.
    Cover,
    /// Scale down to fit inside a square, then pad to that square with the background.
    Contain,
}

impl fmt::Display for Fit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::None => "none",
            Self::Cover => "cover",
            Self::Contain => "contain",
        })
    }
}

impl FromStr for Fit {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        match text {
            "none" => Ok(Self::None),
            "cover" => Ok(Self::Cover),
            "contain" => Ok(Self::Contain),
            _ => Err(format!(
                "`{text}` is not a fit; expected one of: none, cover, contain"
            )),
        }
    }
}

/// What to make of a picture. Two pictures with equal bytes and equal options always give
/// equal output.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Options {
    /// How the picture is shaped.
    pub fit: Fit,
    /// The longest edge of the output, in pixels; pictures are never scaled up. 0 counts as 1.
    pub size: u32,
    /// The colour (RGB) of padding and of transparent pixels.
    pub background: [u8; 3],
    /// JPEG quality, 1-100; values outside are clamped into that range.
    pub quality: u8,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            fit: Fit::None,
            size: 640,
            background: [0xFF, 0xFF, 0xFF],
            quality: 90,
        }
    }
}

impl Options {
    /// Stable text naming these options and the pipeline version, e.g.
    /// "v1;fit=cover;size=640;bg=ffffff;q=90": a cache key.
    pub fn cache_key(&self) -> String {
        let [r, g, b] = self.background;
        format!(
            "v{PIPELINE_VERSION};fit={};size={};bg={r:02x}{g:02x}{b:02x};q={}",
            self.fit, self.size, self.quality
        )
    }
}

/// Parses a background colour written as `#rrggbb` (hex digits in either case).
pub fn parse_background(text: &str) -> Result<[u8; 3], String> {
    let bad = || format!("`{text}` is not a colour; expected #rrggbb, e.g. #ffffff");
    // Checked as bytes first so that slicing below never lands inside a multi-byte character.
    let digits = text.strip_prefix('#').ok_or_else(bad)?;
    if digits.len() != 6 || !digits.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(bad());
    }
    let mut rgb = [0u8; 3];
    for (i, channel) in rgb.iter_mut().enumerate() {
        let pair = digits.get(2 * i..2 * i + 2).ok_or_else(bad)?;
        *channel = u8::from_str_radix(pair, 16).map_err(|_| bad())?;
    }
    Ok(rgb)
}

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
    /// The processed picture could not be encoded as a JPEG.
    #[error("the processed picture cannot be encoded as a JPEG: {0}")]
    Encode(String),
}

impl ProcessError {
    /// A stable machine label for `--json` and logs.
    pub fn label(&self) -> &'static str {
        match self {
            Self::Empty => "picture-empty",
            Self::UnsupportedFormat { .. } => "picture-unsupported-format",
            Self::Truncated { .. } => "picture-truncated",
            Self::TooLarge { .. } => "picture-too-large",
            Self::Decode(_) => "picture-undecodable",
            Self::Encode(_) => "picture-unencodable",
        }
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
pub fn process(source: &[u8], options: &Options) -> Result<(Vec<u8>, Route), ProcessError> {
    let format = detect(source)?;
    let source = if format == Format::Jpeg {
        let jpeg = JpegLayout::read(source)?;
        if jpeg.needs_no_pixel_change(options) {
            return Ok((jpeg.stripped(source), Route::Stripped));
        }
        // Only the primary image: whatever follows its end marker (secondary MPF images, a
        // motion photo's video) is not part of the picture.
        source.get(..jpeg.end).unwrap_or(source)
    } else {
        source
    };
    let image = decode(format, source)?;
    let image = flatten(image, options.background);
    let image = shape(image, options);
    let mut out = Vec::new();
    JpegEncoder::new_with_quality(&mut out, options.quality.clamp(1, 100))
        .encode_image(&image)
        .map_err(|e| ProcessError::Encode(e.to_string()))?;
    Ok((out, Route::Reencoded))
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

/// The size and kind of a JPEG's frame, from its SOFn segment.
#[derive(Clone, Copy, Debug)]
struct Frame {
    /// The SOFn marker code: 0xC0 baseline, 0xC1 extended, 0xC2 progressive, others rarer.
    marker: u8,
    /// Bits per sample.
    precision: u8,
    /// Pixels.
    width: u16,
    /// Pixels.
    height: u16,
    /// 1 for greyscale, 3 for YCbCr (or RGB), 4 for CMYK/YCCK.
    components: u8,
}

/// What a walk over a JPEG's markers found: enough to decide whether it needs decoding and
/// to copy it without its metadata.
#[derive(Debug)]
struct JpegLayout {
    /// The header segments to keep, in order, each with the fill bytes before its marker.
    kept: Vec<Range<usize>>,
    /// Where the first scan (SOS) starts: from here to `end` is copied verbatim.
    scan: usize,
    /// One past the primary image's end-of-image marker.
    end: usize,
    /// The first frame header, if any.
    frame: Option<Frame>,
    /// The orientation value in the last EXIF APP1, as the decoder would read it.
    orientation: Option<u16>,
}

impl JpegLayout {
    /// Walks the markers from SOI through the header, then the entropy-coded data up to the
    /// primary image's EOI. Running out of bytes anywhere is [`ProcessError::Truncated`].
    fn read(bytes: &[u8]) -> Result<Self, ProcessError> {
        let malformed = |what: &str| ProcessError::Decode(format!("malformed JPEG: {what}"));
        let mut kept = Vec::new();
        let mut frame = None;
        let mut orientation = None;
        let mut at = 2; // after SOI
        let scan = loop {
            let marker = next_marker(bytes, at, true)?;
            match marker.code {
                0xD8 => return Err(malformed("a second start-of-image marker")),
                0xD9 => return Err(malformed("the image ends before any image data")),
                0xDA => break marker.start,
                // Standalone markers carry no length; harmless, so they are kept.
                0x01 | 0xD0..=0xD7 => {
                    kept.push(marker.start..marker.after);
                    at = marker.after;
                }
                code => {
                    let end = segment_end(bytes, marker.after)?;
                    let payload = bytes.get(marker.after + 2..end).unwrap_or_default();
                    if is_frame_header(code) && frame.is_none() {
                        frame = Some(read_frame(code, payload).ok_or_else(|| {
                            malformed("the frame header is shorter than 6 bytes")
                        })?);
                    }
                    // The decoder (zune-jpeg) keeps the last EXIF segment; so do we.
                    if code == 0xE1
                        && let Some(tiff) = payload.strip_prefix(b"Exif\0\0")
                    {
                        orientation = exif_orientation(tiff);
                    }
                    if keeps_segment(code, payload) {
                        kept.push(marker.start..end);
                    }
                    at = end;
                }
            }
        };
        // Entropy-coded data: a 0xFF in it is always followed by a stuffed 0x00 or a restart
        // marker; any other marker (more scans, tables) carries a length; EOI ends the image.
        let mut at = scan;
        let end = loop {
            let marker = next_marker(bytes, at, false)?;
            at = match marker.code {
                0xD9 => break marker.after,
                0xD8 => return Err(malformed("a start-of-image marker inside the image data")),
                0x00 | 0x01 | 0xD0..=0xD7 => marker.after,
                _ => segment_end(bytes, marker.after)?,
            };
        };
        Ok(Self {
            kept,
            scan,
            end,
            frame,
            orientation,
        })
    }

    /// True when uploading this JPEG's own image data gives exactly what `options` ask for:
    /// upright already, small enough, square if the fit wants a square, and a plain 8-bit
    /// greyscale or colour JPEG of a kind every viewer shows (CMYK is re-encoded to RGB).
    fn needs_no_pixel_change(&self, options: &Options) -> bool {
        let Some(frame) = self.frame else {
            return false;
        };
        let plain = matches!(frame.marker, 0xC0..=0xC2)
            && frame.precision == 8
            && matches!(frame.components, 1 | 3)
            && frame.width > 0
            && frame.height > 0;
        // EXIF orientation values other than 2-8 mean "as stored" to the decoder too.
        let upright = !matches!(self.orientation, Some(2..=8));
        let small = u32::from(frame.width.max(frame.height)) <= options.size;
        let shaped = options.fit == Fit::None || frame.width == frame.height;
        plain && upright && small && shaped
    }

    /// SOI, the kept header segments, then everything from the first scan to EOI.
    fn stripped(&self, bytes: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.end);
        out.extend_from_slice(bytes.get(..2).unwrap_or_default());
        for range in &self.kept {
            out.extend_from_slice(bytes.get(range.clone()).unwrap_or_default());
        }
        out.extend_from_slice(bytes.get(self.scan..self.end).unwrap_or_default());
        out
    }
}

/// A marker found in a JPEG.
struct Marker {
    /// Offset of the first 0xFF (fill bytes included).
    start: usize,
    /// The marker code (the byte after the 0xFF run).
    code: u8,
    /// Offset just past the marker code.
    after: usize,
}

/// Finds the next marker at or after `at`. In the header (`header`), stray bytes before a
/// marker are skipped as libjpeg does; in entropy-coded data every byte before a 0xFF is
/// image data anyway.
fn next_marker(bytes: &[u8], at: usize, header: bool) -> Result<Marker, ProcessError> {
    let mut search = at;
    loop {
        let rest = bytes.get(search..).ok_or_else(truncated_jpeg)?;
        let offset = rest.iter().position(|&b| b == 0xFF);
        let start = search + offset.ok_or_else(truncated_jpeg)?;
        // Any number of 0xFF fill bytes may precede the code.
        let mut code_at = start + 1;
        while bytes.get(code_at) == Some(&0xFF) {
            code_at += 1;
        }
        let code = *bytes.get(code_at).ok_or_else(truncated_jpeg)?;
        if header && code == 0x00 {
            // FF 00 is not a marker outside image data: more stray bytes.
            search = code_at + 1;
            continue;
        }
        return Ok(Marker {
            start,
            code,
            after: code_at + 1,
        });
    }
}

/// The end of a segment whose two-byte big-endian length (which counts itself) is at `at`.
fn segment_end(bytes: &[u8], at: usize) -> Result<usize, ProcessError> {
    let length = match bytes.get(at..at + 2) {
        Some(&[hi, lo]) => usize::from(u16::from_be_bytes([hi, lo])),
        _ => return Err(truncated_jpeg()),
    };
    if length < 2 {
        return Err(ProcessError::Decode(
            "malformed JPEG: a segment length below 2".to_owned(),
        ));
    }
    let end = at + length;
    if end > bytes.len() {
        return Err(truncated_jpeg());
    }
    Ok(end)
}

fn truncated_jpeg() -> ProcessError {
    ProcessError::Truncated {
        format: Format::Jpeg,
    }
}

/// SOF0-SOF15, except DHT (C4), JPG (C8) and DAC (CC), which share the range.
fn is_frame_header(code: u8) -> bool {
    matches!(code, 0xC0..=0xCF) && !matches!(code, 0xC4 | 0xC8 | 0xCC)
}

/// Reads a frame header's payload: precision, height, width, component count.
fn read_frame(marker: u8, payload: &[u8]) -> Option<Frame> {
    match payload.get(..6)? {
        &[precision, h1, h2, w1, w2, components] => Some(Frame {
            marker,
            precision,
            width: u16::from_be_bytes([w1, w2]),
            height: u16::from_be_bytes([h1, h2]),
            components,
        }),
        _ => None,
    }
}

/// Whether a header segment survives stripping. Metadata goes (APP1 EXIF/XMP, APP3-APP13
/// including IPTC/Photoshop, APP15, comments, and APP2 unless it is the ICC profile, e.g.
/// MPF); what changes how pixels look stays (APP0 JFIF, APP2 ICC profile, APP14 Adobe
/// colour transform), and so do tables and the frame header.
fn keeps_segment(code: u8, payload: &[u8]) -> bool {
    match code {
        0xE0 | 0xEE => true,
        0xE2 => payload.starts_with(b"ICC_PROFILE\0"),
        0xE1 | 0xE3..=0xED | 0xEF | 0xFE => false,
        _ => true,
    }
}

/// The orientation (tag 0x0112) in IFD0 of an EXIF TIFF block, read as the `image` crate
/// reads it: a SHORT with count 1. `None` when absent or unreadable.
fn exif_orientation(tiff: &[u8]) -> Option<u16> {
    let big_endian = match tiff.get(..4)? {
        b"MM\0*" => true,
        b"II*\0" => false,
        _ => return None,
    };
    let bytes = |at: usize, n: usize| tiff.get(at..at.checked_add(n)?);
    let u16_at = |at: usize| -> Option<u16> {
        let pair: [u8; 2] = bytes(at, 2)?.try_into().ok()?;
        Some(if big_endian {
            u16::from_be_bytes(pair)
        } else {
            u16::from_le_bytes(pair)
        })
    };
    let u32_at = |at: usize| -> Option<u32> {
        let quad: [u8; 4] = bytes(at, 4)?.try_into().ok()?;
        Some(if big_endian {
            u32::from_be_bytes(quad)
        } else {
            u32::from_le_bytes(quad)
        })
    };
    let ifd0 = usize::try_from(u32_at(4)?).ok()?;
    let entries = u16_at(ifd0)?;
    // Each IFD entry is 12 bytes: tag, type, count (u32), value or offset (4 bytes).
    for index in 0..usize::from(entries) {
        let entry = ifd0.checked_add(2)?.checked_add(index * 12)?;
        if u16_at(entry)? != 0x0112 {
            continue;
        }
        const SHORT: u16 = 3;
        let is_one_short =
            u16_at(entry.checked_add(2)?)? == SHORT && u32_at(entry.checked_add(4)?)? == 1;
        return if is_one_short {
            u16_at(entry.checked_add(8)?)
        } else {
            None
        };
    }
    None
}

/// Decodes under [`MAX_SIDE`] and [`MAX_DECODED_BYTES`], then turns the picture upright by
/// the orientation its own metadata (EXIF) gives.
fn decode(format: Format, bytes: &[u8]) -> Result<DynamicImage, ProcessError> {
    let mut limits = Limits::default();
    limits.max_image_width = Some(MAX_SIDE);
    limits.max_image_height = Some(MAX_SIDE);
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
) -> Result<DynamicImage, ProcessError> {
    let dimensions = decoder.dimensions();
    if dimensions.0 == 0 || dimensions.1 == 0 {
        return Err(ProcessError::Decode(format!("the {format} has no pixels")));
    }
    let fail = |e| image_error(format, e, Some(dimensions));
    // Reserve the whole pixel buffer before decoding, so a bomb fails here, having cost only
    // its header; the decoder gets what is left for its own buffers.
    limits.reserve(decoder.total_bytes()).map_err(fail)?;
    decoder.set_limits(limits).map_err(fail)?;
    let orientation = decoder.orientation().map_err(fail)?;
    let mut image = DynamicImage::from_decoder(decoder).map_err(fail)?;
    image.apply_orientation(orientation);
    Ok(image)
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
fn shape(image: RgbImage, options: &Options) -> RgbImage {
    let size = options.size.max(1);
    match options.fit {
        Fit::None => scale_within(image, size),
        Fit::Cover => {
            let (width, height) = image.dimensions();
            let side = width.min(height);
            let square = if width == height {
                image
            } else {
                DynamicImage::ImageRgb8(image)
                    .crop_imm((width - side) / 2, (height - side) / 2, side, side)
                    .into_rgb8()
            };
            scale_within(square, size)
        }
        Fit::Contain => pad_to_square(scale_within(image, size), options.background),
    }
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
