//! A JPEG's layout, read by walking its markers by hand: the frame, the metadata segments,
//! the EXIF orientation and where the primary image ends. Every read is bounds-checked,
//! because this runs on hostile bytes and must never panic.

use super::{Fit, Format, ProcessError, Processing};
use std::ops::Range;

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
pub(super) struct JpegLayout {
    /// The header segments to keep, in order, each with the fill bytes before its marker.
    kept: Vec<Range<usize>>,
    /// Where the first scan (SOS) starts: from here to `end` is copied verbatim.
    scan: usize,
    /// One past the primary image's end-of-image marker.
    pub(super) end: usize,
    /// The first frame header, if any.
    frame: Option<Frame>,
    /// The orientation value in the last EXIF APP1, as the decoder would read it.
    pub(super) orientation: Option<u16>,
    /// The ICC profile's APP2 chunks: (sequence number, chunk count, the chunk's bytes).
    icc: Vec<(u8, u8, Range<usize>)>,
    /// The colour transform of an Adobe APP14 segment (0: none, so CMYK is stored inverted;
    /// 1: YCbCr; 2: YCCK), if there is one.
    pub(super) adobe: Option<u8>,
}

impl JpegLayout {
    /// Walks the markers from SOI through the header, then the entropy-coded data up to the
    /// primary image's EOI. Running out of bytes anywhere is [`ProcessError::Truncated`].
    pub(super) fn read(bytes: &[u8]) -> Result<Self, ProcessError> {
        let malformed = |what: &str| ProcessError::Decode(format!("malformed JPEG: {what}"));
        let mut kept = Vec::new();
        let mut frame = None;
        let mut orientation = None;
        let mut icc = Vec::new();
        let mut adobe = None;
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
                    // "ICC_PROFILE\0", the chunk's number (from 1), the number of chunks.
                    if code == 0xE2
                        && let Some(&[seq, count, ..]) = payload.strip_prefix(ICC_TAG)
                    {
                        let start = marker.after + 2 + ICC_TAG.len() + 2;
                        icc.push((seq, count, start..end));
                    }
                    // "Adobe", version (2 bytes), flags0, flags1 (2 bytes each), transform.
                    if code == 0xEE
                        && let Some(rest) = payload.strip_prefix(b"Adobe")
                    {
                        adobe = rest.get(6).copied();
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
            icc,
            adobe,
        })
    }

    /// The embedded ICC profile, its APP2 chunks put together in their numbered order, or
    /// `None` without one. Chunks that do not number 1 to n exactly once are an error, as a
    /// profile pieced together from them would be garbage.
    pub(super) fn icc_profile(&self, bytes: &[u8]) -> Result<Option<Vec<u8>>, ProcessError> {
        let Some(&(_, count, _)) = self.icc.first() else {
            return Ok(None);
        };
        let broken = || {
            ProcessError::Profile(format!(
                "its {} APP2 chunks are not numbered 1 to {count}",
                self.icc.len()
            ))
        };
        if count == 0 || self.icc.len() != usize::from(count) {
            return Err(broken());
        }
        let mut chunks: Vec<_> = self.icc.iter().collect();
        chunks.sort_by_key(|(seq, _, _)| *seq);
        let mut profile = Vec::new();
        for (expected, (seq, chunk_count, range)) in (1..=count).zip(chunks) {
            if *seq != expected || *chunk_count != count {
                return Err(broken());
            }
            profile.extend_from_slice(bytes.get(range.clone()).ok_or_else(broken)?);
        }
        Ok(Some(profile))
    }

    /// How many components the frame has (1 grey, 3 colour, 4 CMYK or YCCK), 0 without one.
    pub(super) fn components(&self) -> u8 {
        self.frame.map_or(0, |frame| frame.components)
    }

    /// True when uploading this JPEG's own image data gives exactly what `options` ask for:
    /// upright already, small enough, square if the fit wants a square, and a plain 8-bit
    /// greyscale or colour JPEG of a kind every viewer shows (CMYK is re-encoded to RGB).
    pub(super) fn needs_no_pixel_change(&self, options: &Processing) -> bool {
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
    pub(super) fn stripped(&self, bytes: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.end);
        out.extend_from_slice(bytes.get(..2).unwrap_or_default());
        for range in &self.kept {
            out.extend_from_slice(bytes.get(range.clone()).unwrap_or_default());
        }
        out.extend_from_slice(bytes.get(self.scan..self.end).unwrap_or_default());
        out
    }
}

/// How an APP2 segment holding a piece of an ICC profile starts.
const ICC_TAG: &[u8] = b"ICC_PROFILE\0";

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
        0xE2 => payload.starts_with(ICC_TAG),
        0xE1 | 0xE3..=0xED | 0xEF | 0xFE => false,
        _ => true,
    }
}

/// The orientation (tag 0x0112) in IFD0 of an EXIF TIFF block, read as the `image` crate
/// reads it: a SHORT with count 1. `None` when absent or unreadable.
pub(super) fn exif_orientation(tiff: &[u8]) -> Option<u16> {
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
