//! Controlled changes of a compliant rendering whose truth is known by construction: hair painted over the
//! eyebrows, an eye or the ears (placed by the truth mesh, in the person's own hair colour, with strands); the
//! mouth corners or the brows moved by a smooth warp (a smile, raised brows); the picture shown on a screen or
//! printed in halftone and photographed again.

use gradphoto_core::decode::RgbImage;
use gradphoto_core::measure::face::detect::sample;
use gradphoto_core::measure::face::geometry::Crop;
use gradphoto_core::measure::face::segment::Mask;

use crate::build::Source;

/// Lower edge of each eyebrow, outer end to inner end (subject's right = image left).
const RIGHT_BROW_LOWER: [usize; 5] = [46, 53, 52, 65, 55];
const LEFT_BROW_LOWER: [usize; 5] = [276, 283, 282, 295, 285];
const RIGHT_EYE: (usize, usize) = (33, 133);
const LEFT_EYE: (usize, usize) = (362, 263);
const CHEEKS: (usize, usize) = (234, 454);
const NOSE_BOTTOM: usize = 2;
const MOUTH_CORNERS: (usize, usize) = (61, 291);
const BROWS_MID: (usize, usize) = (105, 334);
const FOREHEAD_TOP: usize = 10;

/// The median colour of the person between the hair top and the mesh's forehead top, in the middle of the head.
pub fn crown_colour(img: &RgbImage, l: &[[f32; 3]], mask: &Mask, hair_top_y: f32) -> [f32; 3] {
    let top = l[FOREHEAD_TOP];
    let fw = (l[CHEEKS.1][0] - l[CHEEKS.0][0]).abs().max(1.0);
    let span = top[1] - hair_top_y;
    let mut v: [Vec<f32>; 3] = Default::default();
    for j in 1..=6 {
        let y = hair_top_y + span * (0.05 + 0.5 * j as f32 / 6.0);
        for i in -4..=4 {
            let x = top[0] + i as f32 * fw / 16.0;
            if mask.at(x, y) > 0.7 {
                let p = sample(img, x, y);
                (0..3).for_each(|k| v[k].push(p[k]));
            }
        }
    }
    v.map(|mut c| {
        c.sort_by(f32::total_cmp);
        c.get(c.len() / 2).copied().unwrap_or(40.0)
    })
}

fn hash(n: i64) -> f32 {
    let mut x = (n as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    x ^= x >> 31;
    x = x.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x ^= x >> 29;
    (x % 10_000) as f32 / 10_000.0
}

/// Hair: the crown colour, in strands about 2 px wide running slightly slanted, each lighter or darker by up to
/// a quarter, with a faint shine along them.
fn strands(hair: [f32; 3], x: f32, y: f32) -> [f32; 3] {
    let strand = ((x + 0.25 * y) / 2.0).floor() as i64;
    let k = 0.75 + 0.5 * hash(strand) + 0.05 * (y * 0.35 + strand as f32).sin();
    hair.map(|c| c * k)
}

/// Where the truth mesh's landmark `i` falls in the rendering of `crop`.
fn at(src: &Source, crop: &Crop, i: usize) -> [f32; 2] {
    let p = src.landmarks[i];
    [crop.render_x(p[0]), crop.render_y(p[1])]
}

fn face_width(src: &Source, crop: &Crop) -> f32 {
    let (a, b) = (at(src, crop, CHEEKS.0), at(src, crop, CHEEKS.1));
    (b[0] - a[0]).hypot(b[1] - a[1])
}

/// The lower edge of a fringe at `x`: the brows' lower edge (straight between their points, level beyond them),
/// 0.02 face widths lower, ragged by up to 4 px.
fn brow_line(points: &[[f32; 2]], x: f32) -> f32 {
    let first = points[0];
    let last = points[points.len() - 1];
    if x <= first[0] {
        return first[1];
    }
    if x >= last[0] {
        return last[1];
    }
    for w in points.windows(2) {
        if x >= w[0][0] && x <= w[1][0] {
            let t = (x - w[0][0]) / (w[1][0] - w[0][0]).max(1e-3);
            return w[0][1] + (w[1][1] - w[0][1]) * t;
        }
    }
    last[1]
}

type Edit = Box<dyn Fn(f32, f32, [f32; 3], f32) -> [f32; 3]>;

/// A fringe: hair from the crown down over the whole forehead to just below both eyebrows, across the face.
pub fn fringe(src: &Source, crop: &Crop) -> Edit {
    let fw = face_width(src, crop);
    let mut pts: Vec<[f32; 2]> =
        RIGHT_BROW_LOWER.iter().chain(LEFT_BROW_LOWER.iter()).map(|&i| at(src, crop, i)).collect();
    pts.sort_by(|a, b| a[0].total_cmp(&b[0]));
    let (x0, x1) = (at(src, crop, CHEEKS.0)[0] - 0.05 * fw, at(src, crop, CHEEKS.1)[0] + 0.05 * fw);
    let hair = src.hair_rgb;
    Box::new(move |x, y, c, p| {
        let edge = brow_line(&pts, x) + 0.02 * fw + 4.0 * hash((x / 3.0) as i64 + 7);
        if x >= x0 && x <= x1 && y <= edge && p > 0.5 { strands(hair, x, y) } else { c }
    })
}

/// A lock of hair falling from the crown over the image-left eye (and the eyebrow above it).
pub fn lock_over_eye(src: &Source, crop: &Crop) -> Edit {
    let (a, b) = (at(src, crop, RIGHT_EYE.0), at(src, crop, RIGHT_EYE.1));
    let c = [(a[0] + b[0]) / 2.0, (a[1] + b[1]) / 2.0];
    let w = (b[0] - a[0]).hypot(b[1] - a[1]);
    let hair = src.hair_rgb;
    Box::new(move |x, y, col, p| {
        let (dx, dy) = ((x - c[0]) / (0.75 * w), (y - c[1]) / (0.6 * w));
        let inside = dx * dx + dy * dy <= 1.0 || (dx.abs() <= 1.0 && y < c[1] && p > 0.5);
        if inside { strands(hair, x, y) } else { col }
    })
}

/// A dark spectacle rim, thick enough to hide the image-right eye from lid to lid.
pub fn rim_over_eye(src: &Source, crop: &Crop) -> Edit {
    let (a, b) = (at(src, crop, LEFT_EYE.0), at(src, crop, LEFT_EYE.1));
    let c = [(a[0] + b[0]) / 2.0, (a[1] + b[1]) / 2.0];
    let w = (b[0] - a[0]).hypot(b[1] - a[1]);
    Box::new(move |x, y, col, _| {
        let (dx, dy) = ((x - c[0]) / (0.7 * w), (y - c[1]) / (0.4 * w));
        if dx * dx + dy * dy <= 1.0 { [38.0, 30.0, 28.0] } else { col }
    })
}

/// Hair hanging over both ears: from the eyebrows' height to below the nose, from inside the face contour to a
/// quarter of the face width beyond it, over background and all.
pub fn hair_over_ears(src: &Source, crop: &Crop) -> Edit {
    let fw = face_width(src, crop);
    let (l, r) = (at(src, crop, CHEEKS.0), at(src, crop, CHEEKS.1));
    let top = at(src, crop, BROWS_MID.0)[1].min(at(src, crop, BROWS_MID.1)[1]);
    let bottom = at(src, crop, NOSE_BOTTOM)[1] + 0.15 * fw;
    let hair = src.hair_rgb;
    Box::new(move |x, y, c, _| {
        let left = x >= l[0] - 0.25 * fw && x <= l[0] + 0.02 * fw;
        let right = x >= r[0] - 0.02 * fw && x <= r[0] + 0.25 * fw;
        if (left || right) && y >= top && y <= bottom { strands(hair, x, y) } else { c }
    })
}

/// Moves the picture smoothly: each (centre, displacement, radius) pulls what lay at the centre by the
/// displacement, fading with a Gaussian of the radius.
fn warp(img: &RgbImage, moves: &[([f32; 2], [f32; 2], f32)]) -> RgbImage {
    let mut pixels = Vec::with_capacity(img.pixels.len());
    for y in 0..img.height {
        for x in 0..img.width {
            let (fx, fy) = (x as f32, y as f32);
            let (mut sx, mut sy) = (fx, fy);
            for &(c, d, r) in moves {
                // Backward map, evaluated at the target so that the moved feature lands where asked.
                let (tx, ty) = (c[0] + d[0], c[1] + d[1]);
                let g = (-((fx - tx).powi(2) + (fy - ty).powi(2)) / (2.0 * r * r)).exp();
                sx -= d[0] * g;
                sy -= d[1] * g;
            }
            pixels.extend(sample(img, sx, sy).map(|v| v.round().clamp(0.0, 255.0) as u8));
        }
    }
    RgbImage { width: img.width, height: img.height, pixels }
}

/// A smile: each mouth corner lifted by 0.045 and moved outward by 0.025 face widths.
pub fn smile(src: &Source, crop: &Crop, img: &RgbImage) -> RgbImage {
    let fw = face_width(src, crop);
    let (a, b) = (at(src, crop, MOUTH_CORNERS.0), at(src, crop, MOUTH_CORNERS.1));
    let r = 0.07 * fw;
    warp(img, &[(a, [-0.025 * fw, -0.045 * fw], r), (b, [0.025 * fw, -0.045 * fw], r)])
}

/// Raised eyebrows: the middle of each brow lifted by 0.04 face widths.
pub fn raised_brows(src: &Source, crop: &Crop, img: &RgbImage) -> RgbImage {
    let fw = face_width(src, crop);
    let (a, b) = (at(src, crop, BROWS_MID.0), at(src, crop, BROWS_MID.1));
    let r = 0.09 * fw;
    warp(img, &[(a, [0.0, -0.04 * fw], r), (b, [0.0, -0.04 * fw], r)])
}

fn blur(img: &RgbImage, sigma: f32) -> RgbImage {
    let b = image::imageops::blur(&crate::to_image(img), sigma);
    RgbImage { width: img.width, height: img.height, pixels: b.into_raw() }
}

/// The picture on a screen, photographed: a pixel grid of 3.4 px turned 2°, each pixel's red, green and blue
/// stripes side by side, dark gaps between rows (screen door), a slow moiré beat, then the camera's slight blur.
pub fn screen(img: &RgbImage) -> RgbImage {
    let (s, c) = 2f32.to_radians().sin_cos();
    let pitch = 3.4;
    let tau = std::f32::consts::TAU;
    let mut pixels = Vec::with_capacity(img.pixels.len());
    for y in 0..img.height {
        for x in 0..img.width {
            let (fx, fy) = (x as f32, y as f32);
            let (u, v) = ((fx * c + fy * s) / pitch, (-fx * s + fy * c) / pitch);
            let door = 0.85 + 0.15 * (tau * v).cos();
            let beat = 1.0 + 0.05 * (tau * (0.011 * fx + 0.017 * fy)).cos();
            let p = img.pixel(x, y).map(f32::from);
            for (k, ch) in p.iter().enumerate() {
                let stripe = 0.8 + 0.2 * (tau * (u - k as f32 / 3.0)).cos();
                pixels.push((ch * stripe * door * beat).round().clamp(0.0, 255.0) as u8);
            }
        }
    }
    blur(&RgbImage { width: img.width, height: img.height, pixels }, 0.6)
}

/// The picture printed in CMY halftone (dots of 4.2 px on screens turned 15°, 75° and 45°) and photographed.
pub fn halftone(img: &RgbImage) -> RgbImage {
    let pitch = 4.2;
    let tau = std::f32::consts::TAU;
    let angles = [15f32, 75.0, 45.0].map(|a| a.to_radians().sin_cos());
    let mut pixels = Vec::with_capacity(img.pixels.len());
    for y in 0..img.height {
        for x in 0..img.width {
            let (fx, fy) = (x as f32, y as f32);
            let p = img.pixel(x, y).map(f32::from);
            for k in 0..3 {
                let (s, c) = angles[k];
                let (u, v) = ((fx * c + fy * s) / pitch, (-fx * s + fy * c) / pitch);
                // Ink where the cover wanted exceeds the dot's threshold: round dots that grow with the cover.
                let threshold = 0.5 + 0.25 * ((tau * u).cos() + (tau * v).cos());
                let cover = 1.0 - p[k] / 255.0;
                pixels.push(if cover > threshold { 25 } else { 245 });
            }
        }
    }
    blur(&RgbImage { width: img.width, height: img.height, pixels }, 0.8)
}
