//! Colour: a picture that carries an ICC profile (JPEG APP2, PNG iCCP, WebP ICCP) is turned
//! into sRGB pixels with `moxcms` before anything else touches them, because the upload
//! goes out untagged and WhatsApp, like every browser, shows untagged pixels as sRGB.
//!
//! A profile that already means sRGB (any of the many sRGB profiles cameras and editors
//! embed) is recognised by what it does, not by its name: its transform is run on a probe
//! grid and, when no probe moves by more than one level, the pixels are left alone, so the
//! output stays byte for byte what it was before colour management existed. A profile that
//! cannot be read is an error of the instance ([`ProcessError::Profile`]), never a guess.

use super::ProcessError;
use image::{DynamicImage, RgbImage, RgbaImage};
use moxcms::{ColorProfile, DataColorSpace, Layout, RenderingIntent, TransformOptions};

/// The largest profile read (4 MiB): real ones are a few kB (matrix-shaper) to a few hundred
/// kB (printer LUTs); a JPEG cannot carry more than 255 × 65,519 bytes anyway.
const MAX_PROFILE_BYTES: usize = 4 * 1024 * 1024;

/// What a picture's embedded profile asks of its pixels.
pub(super) enum Colour {
    /// No profile, or one that means sRGB (or does not apply to these pixels): nothing to do.
    Srgb,
    /// Pixels in this profile's colour space, to be converted to sRGB.
    Convert(Box<ColorProfile>),
}

impl Colour {
    /// Reads `icc` (the profile's bytes, if the picture has one) for pixels of `kind`.
    pub(super) fn read(icc: Option<&[u8]>, kind: Pixels) -> Result<Self, ProcessError> {
        let Some(icc) = icc else {
            return Ok(Self::Srgb);
        };
        let profile = parse(icc)?;
        let applies = matches!(
            (profile.color_space, kind),
            (DataColorSpace::Rgb, Pixels::Rgb)
                | (DataColorSpace::Gray, Pixels::Grey)
                | (DataColorSpace::Cmyk, Pixels::Cmyk)
        );
        // A profile for other pixels than these (an RGB profile in a greyscale JPEG) is
        // ignored, as browsers and libjpeg-based viewers ignore it.
        if !applies {
            return Ok(Self::Srgb);
        }
        if kind != Pixels::Cmyk && means_srgb(&profile, kind)? {
            return Ok(Self::Srgb);
        }
        Ok(Self::Convert(Box::new(profile)))
    }

    /// True when the pixels are left as they are.
    pub(super) fn is_srgb(&self) -> bool {
        matches!(self, Self::Srgb)
    }
}

/// The kind of pixels a decoder gives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Pixels {
    /// Red, green, blue (with or without alpha).
    Rgb,
    /// Greyscale (with or without alpha).
    Grey,
    /// Cyan, magenta, yellow, black ink (a CMYK JPEG).
    Cmyk,
}

/// Parses a profile, refusing one whose header lies about its size before `moxcms` reads
/// any tag (its tag offsets are checked against the bytes present, not the size claimed).
fn parse(icc: &[u8]) -> Result<ColorProfile, ProcessError> {
    let broken = |why: String| ProcessError::Profile(why);
    if icc.len() > MAX_PROFILE_BYTES {
        return Err(broken(format!(
            "it is {} bytes; at most {MAX_PROFILE_BYTES} are read",
            icc.len()
        )));
    }
    let declared = match icc.get(..4) {
        Some(&[a, b, c, d]) => u32::from_be_bytes([a, b, c, d]) as usize,
        _ => return Err(broken("it is shorter than its header".to_owned())),
    };
    // 128 header bytes and a tag count: nothing shorter is a profile.
    if declared < 132 || declared != icc.len() {
        return Err(broken(format!(
            "its header says it is {declared} bytes but {} are present",
            icc.len()
        )));
    }
    ColorProfile::new_from_slice(icc).map_err(|e| broken(e.to_string()))
}

/// The options of every transform: perceptual intent, as a photo wants (out-of-gamut colours
/// compressed rather than clipped where the profile has the tables for it).
fn options() -> TransformOptions {
    TransformOptions {
        rendering_intent: RenderingIntent::Perceptual,
        ..TransformOptions::default()
    }
}

/// True when converting from `profile` to sRGB moves no probe colour by more than one level
/// (of 255): the profile is sRGB under another name, and converting would only add rounding.
fn means_srgb(profile: &ColorProfile, kind: Pixels) -> Result<bool, ProcessError> {
    let srgb = ColorProfile::new_srgb();
    let fail = |e: moxcms::CmsError| ProcessError::Profile(e.to_string());
    let probe: Vec<u8> = match kind {
        Pixels::Grey => (0..=255).collect(),
        // A 16 × 16 × 16 grid over the cube, corners included (0, 17, ..., 255).
        _ => (0..4096u32)
            .flat_map(|i| [i >> 8, (i >> 4) & 15, i & 15].map(|v| (v * 17) as u8))
            .collect(),
    };
    let layout = if kind == Pixels::Grey {
        Layout::Gray
    } else {
        Layout::Rgb
    };
    let transform = profile
        .create_transform_8bit(layout, &srgb, layout, options())
        .map_err(fail)?;
    let mut out = vec![0u8; probe.len()];
    transform.transform(&probe, &mut out).map_err(fail)?;
    Ok(probe.iter().zip(&out).all(|(a, b)| a.abs_diff(*b) <= 1))
}

/// Converts decoded pixels (RGB or greyscale, with or without alpha, any depth) from
/// `profile` to 8-bit sRGB; alpha is carried over untouched.
pub(super) fn to_srgb(
    image: DynamicImage,
    profile: &ColorProfile,
) -> Result<DynamicImage, ProcessError> {
    let srgb = ColorProfile::new_srgb();
    let fail = |e: moxcms::CmsError| ProcessError::Profile(e.to_string());
    let (width, height) = (image.width(), image.height());
    let alpha = image.color().has_alpha();
    let grey = matches!(
        image,
        DynamicImage::ImageLuma8(_)
            | DynamicImage::ImageLumaA8(_)
            | DynamicImage::ImageLuma16(_)
            | DynamicImage::ImageLumaA16(_)
    );
    let (source, from, to, channels) = match (grey, alpha) {
        (true, false) => (image.into_luma8().into_raw(), Layout::Gray, Layout::Rgb, 3),
        (true, true) => (
            image.into_luma_alpha8().into_raw(),
            Layout::GrayAlpha,
            Layout::Rgba,
            4,
        ),
        (false, false) => (image.into_rgb8().into_raw(), Layout::Rgb, Layout::Rgb, 3),
        (false, true) => (image.into_rgba8().into_raw(), Layout::Rgba, Layout::Rgba, 4),
    };
    let transform = profile
        .create_transform_8bit(from, &srgb, to, options())
        .map_err(fail)?;
    let mut out = vec![0u8; width as usize * height as usize * channels];
    // Row by row: the transform holds no state, and this never needs a second full copy.
    let (in_row, out_row) = (
        source.len() / height.max(1) as usize,
        width as usize * channels,
    );
    for (src, dst) in source
        .chunks_exact(in_row.max(1))
        .zip(out.chunks_exact_mut(out_row.max(1)))
    {
        transform.transform(src, dst).map_err(fail)?;
    }
    let bad = || ProcessError::Profile("the converted picture has the wrong size".to_owned());
    Ok(if channels == 4 {
        DynamicImage::ImageRgba8(RgbaImage::from_raw(width, height, out).ok_or_else(bad)?)
    } else {
        DynamicImage::ImageRgb8(RgbImage::from_raw(width, height, out).ok_or_else(bad)?)
    })
}

/// Converts a CMYK JPEG's samples, as stored (`inverted` when an Adobe APP14 segment says
/// so, as Photoshop writes them), from `profile` to sRGB.
pub(super) fn cmyk_to_srgb(
    mut samples: Vec<u8>,
    width: u32,
    height: u32,
    inverted: bool,
    profile: &ColorProfile,
) -> Result<DynamicImage, ProcessError> {
    let fail = |e: moxcms::CmsError| ProcessError::Profile(e.to_string());
    if inverted {
        for sample in &mut samples {
            *sample = 255 - *sample;
        }
    }
    // CMYK travels in the RGBA layout (four 8-bit channels), as moxcms documents.
    let transform = profile
        .create_transform_8bit(
            Layout::Rgba,
            &ColorProfile::new_srgb(),
            Layout::Rgb,
            options(),
        )
        .map_err(fail)?;
    let row = width as usize;
    let mut out = vec![0u8; row * height as usize * 3];
    for (src, dst) in samples
        .chunks_exact(row * 4)
        .zip(out.chunks_exact_mut(row * 3))
    {
        transform.transform(src, dst).map_err(fail)?;
    }
    RgbImage::from_raw(width, height, out)
        .map(DynamicImage::ImageRgb8)
        .ok_or_else(|| ProcessError::Decode("the CMYK JPEG has the wrong size".to_owned()))
}
