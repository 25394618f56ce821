//! `fit: face`: the fallbacks on pictures made here, and a real face (scikit-image's
//! `astronaut`, a public-domain NASA portrait shipped in the scikit-image wheel on PyPI) put
//! in a corner of a wide picture, which must end up inside the circle WhatsApp shows.
//! `.ci/run` downloads the wheel, takes the picture out and names it in
//! `AVATAR_SYNC_ASTRONAUT` for the `#[ignore]`d test.

use super::*;

fn face_fit() -> Processing {
    Processing {
        fit: Fit::Face,
        ..Processing::default()
    }
}

/// `image` as an untagged PNG.
fn png(image: &RgbImage) -> Vec<u8> {
    super::colour_tests::png_tagged(image, None)
}

#[test]
fn an_empty_or_all_white_picture_falls_back_to_the_centre() {
    for (what, colour) in [("white", [255; 3]), ("black", [0; 3]), ("grey", [128; 3])] {
        for (w, h) in [(900, 300), (300, 900), (41, 17)] {
            let image = RgbImage::from_pixel(w, h, Rgb(colour));
            let square = face::square(&image);
            assert_eq!(square.found, Found::Centre, "{what} {w}x{h}");
            assert_eq!(
                (square.x, square.y),
                ((w - square.side) / 2, (h - square.side) / 2)
            );
            assert_eq!(square.side, w.min(h));
            // Then the upload is exactly `fit: cover`'s.
            let cover = Processing {
                fit: Fit::Cover,
                ..Processing::default()
            };
            assert_eq!(
                process(&png(&image), &face_fit()).unwrap(),
                process(&png(&image), &cover).unwrap(),
                "{what} {w}x{h}"
            );
        }
    }
}

#[test]
fn without_a_face_the_square_goes_where_something_stands_out() {
    // A flat wide picture with one busy, saturated patch near its right edge.
    let mut rng = fastrand::Rng::with_seed(7);
    let image = RgbImage::from_fn(1200, 400, |x, y| {
        if (950..1150).contains(&x) && (100..300).contains(&y) {
            Rgb([rng.u8(150..), rng.u8(..60), rng.u8(..60)])
        } else {
            Rgb([200, 200, 200])
        }
    });
    let square = face::square(&image);
    assert_eq!(square.found, Found::Saliency);
    assert!(
        square.x <= 950 && square.x + square.side >= 1150,
        "the patch is in the square: {square:?}"
    );
}

#[test]
fn the_same_picture_always_gives_the_same_crop() {
    let mut rng = fastrand::Rng::with_seed(3);
    let image = RgbImage::from_fn(700, 300, |_, _| Rgb([rng.u8(..), rng.u8(..), rng.u8(..)]));
    let bytes = png(&image);
    let first = process(&bytes, &face_fit()).unwrap();
    for _ in 0..3 {
        assert_eq!(process(&bytes, &face_fit()).unwrap(), first);
    }
    let explained = explain(&bytes, &face_fit(), 700).unwrap();
    assert_eq!(explained.square, Some(face::square(&image)));
}

#[test]
fn the_square_never_leaves_the_picture() {
    // Faces or not, at odd sizes: the square is inside the picture and as tall as needed.
    for (w, h, seed) in [(49, 48, 1), (1000, 48, 2), (48, 1000, 3), (1999, 1001, 4)] {
        let mut rng = fastrand::Rng::with_seed(seed);
        let image = RgbImage::from_fn(w, h, |_, _| Rgb([rng.u8(..), 0, rng.u8(..)]));
        let s = face::square(&image);
        assert!(
            s.side >= 1 && s.x + s.side <= w && s.y + s.side <= h,
            "{w}x{h}: {s:?}"
        );
    }
}

/// Where the astronaut's face is in `astronaut.png` (512 × 512), measured by eye: brows to
/// chin, ear to ear.
const ASTRONAUT_FACE: (u32, u32, u32, u32) = (172, 78, 282, 190);

/// `astronaut.png` from `AVATAR_SYNC_ASTRONAUT`.
fn astronaut() -> RgbImage {
    let path = std::env::var("AVATAR_SYNC_ASTRONAUT")
        .expect("AVATAR_SYNC_ASTRONAUT names scikit-image's astronaut.png (see .ci/run)");
    image::open(path).unwrap().into_rgb8()
}

/// True when the box (left, top, right, bottom) is inside the circle inscribed in `square`.
fn in_circle(square: &Square, (l, t, r, b): (u32, u32, u32, u32)) -> bool {
    let radius = f64::from(square.side) / 2.0;
    let (cx, cy) = (f64::from(square.x) + radius, f64::from(square.y) + radius);
    [(l, t), (r, t), (l, b), (r, b)]
        .iter()
        .all(|&(x, y)| (f64::from(x) - cx).hypot(f64::from(y) - cy) <= radius)
}

#[test]
#[ignore = "needs scikit-image's astronaut.png from PyPI in AVATAR_SYNC_ASTRONAUT; .ci/run fetches it and runs it"]
fn a_face_in_a_corner_of_a_wide_picture_is_inside_the_circle() {
    let portrait = astronaut();
    // Each corner of a 3:1 picture, the rest a flat grey wall.
    let (w, h) = (1800u32, 600u32);
    for (cx, cy) in [(0, 0), (w - 512, 0), (0, h - 512), (w - 512, h - 512)] {
        let mut wide = RgbImage::from_pixel(w, h, Rgb([120, 120, 120]));
        image::imageops::replace(&mut wide, &portrait, i64::from(cx), i64::from(cy));
        let (l, t, r, b) = ASTRONAUT_FACE;
        let face = (cx + l, cy + t, cx + r, cy + b);
        let bytes = png(&wide);
        let explained = explain(&bytes, &face_fit(), w).unwrap();
        let square = explained.square.unwrap();
        assert_eq!(square.found, Found::Faces(1), "corner ({cx}, {cy})");
        assert!(
            in_circle(&square, face),
            "corner ({cx}, {cy}): {square:?} misses {face:?}"
        );
        // `fit: cover` on the same picture cuts the centre and loses the face entirely.
        let cover = face::centre(w, h);
        assert!(!in_circle(&cover, face), "corner ({cx}, {cy})");
        println!("corner ({cx}, {cy}): face {face:?} in square {square:?}; cover {cover:?}");
        // And the upload is that square.
        let (upload, _) = process(&bytes, &face_fit()).unwrap();
        let decoded = image::load_from_memory(&upload).unwrap();
        assert_eq!(decoded.width(), decoded.height());
    }
}

#[test]
#[ignore = "needs scikit-image's astronaut.png from PyPI in AVATAR_SYNC_ASTRONAUT; .ci/run fetches it and runs it"]
fn the_detector_finds_the_astronaut_where_she_is() {
    // A check on ASTRONAUT_FACE and on the detector together: the face found overlaps the
    // one measured by eye.
    let portrait = astronaut();
    let mut wide = RgbImage::from_pixel(1536, 512, Rgb([90, 90, 90]));
    image::imageops::replace(&mut wide, &portrait, 512, 0);
    let square = face::square(&wide);
    let (l, t, r, b) = ASTRONAUT_FACE;
    assert_eq!(square.found, Found::Faces(1));
    assert!(in_circle(&square, (512 + l, t, 512 + r, b)), "{square:?}");
}
