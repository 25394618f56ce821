//! The processing options' vocabulary: `fit`, `size`, `background`, `quality`, as the
//! manifest writes them and the picture pipeline reads them.

use std::fmt;
use std::str::FromStr;

/// How the picture is shaped into what WhatsApp shows (a square cropped to a circle).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Fit {
    /// Keep the aspect ratio; only scale down.
    None,
    /// Centre-crop to a square, then scale down.
    Cover,
    /// Scale down to fit inside a square, then pad to that square with the background.
    Contain,
    /// Crop to a square around the faces found (inside the circle WhatsApp shows), else
    /// around what stands out (edges, skin, saturation), else the centre; then scale down.
    Face,
}

impl fmt::Display for Fit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::None => "none",
            Self::Cover => "cover",
            Self::Contain => "contain",
            Self::Face => "face",
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
            "face" => Ok(Self::Face),
            _ => Err(format!(
                "`{text}` is not a fit; expected one of: none, cover, contain, face"
            )),
        }
    }
}

/// What to make of a picture. Two pictures with equal bytes and equal options always give
/// equal output.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Processing {
    /// How the picture is shaped.
    pub fit: Fit,
    /// The longest edge of the output, in pixels; pictures are never scaled up. 0 counts as 1.
    pub size: u32,
    /// The colour (RGB) of padding and of transparent pixels.
    pub background: [u8; 3],
    /// JPEG quality, 1-100; values outside are clamped into that range.
    pub quality: u8,
}

impl Default for Processing {
    fn default() -> Self {
        Self {
            fit: Fit::None,
            size: 640,
            background: [0xFF, 0xFF, 0xFF],
            quality: 90,
        }
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
