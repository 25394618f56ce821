//! A CMYK (or YCCK) JPEG with an embedded CMYK profile: its ink values are decoded as they
//! are stored, with `zune-jpeg` (the decoder `image` uses, asked for the raw four channels
//! instead of its own naive ink-to-RGB guess), and converted to sRGB through the profile.
//! A CMYK JPEG without a profile keeps the naive conversion it always had: there is nothing
//! better to go by, and its upload stays as it was.

use super::colour::cmyk_to_srgb;
use super::{Format, MAX_DECODED_BYTES, MAX_SIDE, ProcessError, budget};
use image::DynamicImage;
use image::metadata::Orientation;
use moxcms::ColorProfile;
use zune_core::bytestream::ZCursor;
use zune_core::colorspace::ColorSpace;
use zune_core::options::DecoderOptions;

/// Decodes a CMYK or YCCK JPEG under the usual limits and converts it from `profile` to
/// sRGB, turned upright by its EXIF `orientation`. `adobe` is its APP14 colour transform.
pub(super) fn decode(
    bytes: &[u8],
    profile: &ColorProfile,
    adobe: Option<u8>,
    orientation: Option<u16>,
) -> Result<(DynamicImage, budget::Reservation<'static>), ProcessError> {
    let fail = |e: zune_jpeg::errors::DecodeErrors| ProcessError::Decode(e.to_string());
    let options = DecoderOptions::default()
        .set_strict_mode(false)
        .set_max_width(MAX_SIDE as usize)
        .set_max_height(MAX_SIDE as usize);
    let mut decoder = zune_jpeg::JpegDecoder::new_with_options(ZCursor::new(bytes), options);
    decoder.decode_headers().map_err(fail)?;
    let (width, height) = decoder
        .dimensions()
        .ok_or_else(|| ProcessError::Decode("the JPEG has no frame".to_owned()))?;
    let (width, height) = (
        u32::try_from(width).unwrap_or(u32::MAX),
        u32::try_from(height).unwrap_or(u32::MAX),
    );
    // Four bytes a pixel, and three more for the converted copy.
    let total = u64::from(width) * u64::from(height) * 4;
    if width == 0 || height == 0 || total > MAX_DECODED_BYTES {
        return Err(ProcessError::TooLarge { width, height });
    }
    let pixels = budget::DECODES.reserve(total.saturating_mul(2));
    let stored = decoder.input_colorspace().unwrap_or(ColorSpace::CMYK);
    // Asking for the stored colour space gives the samples untouched (zune-jpeg copies four
    // components through when input and output agree).
    decoder.set_options(
        DecoderOptions::default()
            .set_strict_mode(false)
            .set_max_width(MAX_SIDE as usize)
            .set_max_height(MAX_SIDE as usize)
            .jpeg_set_out_colorspace(stored),
    );
    let mut samples = decoder.decode().map_err(|e| match e {
        zune_jpeg::errors::DecodeErrors::ExhaustedData => ProcessError::Truncated {
            format: Format::Jpeg,
        },
        other => fail(other),
    })?;
    if samples.len() != total as usize {
        return Err(ProcessError::Decode(format!(
            "the CMYK JPEG decoded to {} bytes, not {total}",
            samples.len()
        )));
    }
    if stored == ColorSpace::YCCK {
        ycc_to_cmy(&mut samples);
    }
    // Adobe's writers store ink inverted (0 = full ink) and say so with an APP14 segment;
    // YCCK is always Adobe's. Without the segment, the samples are ink as they stand.
    let inverted = adobe.is_some() || stored == ColorSpace::YCCK;
    let mut image = cmyk_to_srgb(samples, width, height, inverted, profile)?;
    let orientation = orientation
        .and_then(|value| u8::try_from(value).ok())
        .and_then(Orientation::from_exif)
        .unwrap_or(Orientation::NoTransforms);
    image.apply_orientation(orientation);
    Ok((image, pixels))
}

/// YCCK to Adobe's inverted CMYK in place, as libjpeg does it: Y, Cb, Cr become R, G, B by
/// JFIF's matrix, and 255 minus those are the stored (inverted) cyan, magenta and yellow,
/// like the stored K beside them.
fn ycc_to_cmy(samples: &mut [u8]) {
    for pixel in samples.chunks_exact_mut(4) {
        let y = f32::from(pixel[0]);
        let cb = f32::from(pixel[1]) - 128.0;
        let cr = f32::from(pixel[2]) - 128.0;
        let channel = |v: f32| 255 - v.round().clamp(0.0, 255.0) as u8;
        pixel[0] = channel(y + 1.402 * cr);
        pixel[1] = channel(y - 0.344_136 * cb - 0.714_136 * cr);
        pixel[2] = channel(y + 1.772 * cb);
    }
}
