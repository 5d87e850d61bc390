//! Measures of the person, from the model outputs and the pixels: framing anchors, pose, eyes and mouth, the
//! background under the person mask, the light on the face, sharpness. Numbers only; the judge decides.

use serde::Serialize;

use super::color::{Lab, delta_e2000, lab};
use super::face::detect::Detection;
use super::face::geometry::Anchors;
use super::face::mesh::index as lm;
use super::face::segment::Mask;
use crate::decode::RgbImage;

/// What the three models found in the analysed image, in its pixels.
#[derive(Debug, Clone)]
pub struct FaceOutputs {
    /// Every face the detector found, the largest first.
    pub detections: Vec<Detection>,
    /// The mesh of the first face: x, y in image pixels, z in the same scale.
    pub landmarks: Option<Vec<[f32; 3]>>,
    /// The mesh model's confidence that its crop holds a face (0–1).
    pub mesh_score: f32,
    pub mask: Option<Mask>,
    /// For an original, the person mask of the crop its framing chose, segmented on its own as the registered
    /// file will be: the hair top is read from it (see [`FaceModels::analyse_framed`]).
    ///
    /// [`FaceModels::analyse_framed`]: super::face::models::FaceModels::analyse_framed
    pub framed_mask: Option<Mask>,
}

fn mean2(a: [f32; 3], b: [f32; 3]) -> [f32; 2] {
    [(a[0] + b[0]) / 2.0, (a[1] + b[1]) / 2.0]
}

fn dist(a: [f32; 3], b: [f32; 3]) -> f32 {
    ((a[0] - b[0]).powi(2) + (a[1] - b[1]).powi(2)).sqrt()
}

/// Eye centres (image-left, image-right), cheeks, and the hair top from the person mask above the face.
pub fn anchors(l: &[[f32; 3]], mask: &Mask) -> Anchors {
    // The subject's right eye is on the image's left.
    let left_eye = mean2(l[lm::RIGHT_EYE_OUTER], l[lm::RIGHT_EYE_INNER]);
    let right_eye = mean2(l[lm::LEFT_EYE_INNER], l[lm::LEFT_EYE_OUTER]);
    let cheeks = [[l[lm::RIGHT_CHEEK][0], l[lm::RIGHT_CHEEK][1]], [l[lm::LEFT_CHEEK][0], l[lm::LEFT_CHEEK][1]]];
    // The highest point of the head within the middle half of the face width: the crown, not a raised shoulder.
    let (x0, x1) = (cheeks[0][0], cheeks[1][0]);
    let mid = (x0 + x1) / 2.0;
    let half = (x1 - x0).abs() / 4.0;
    let below = left_eye[1].min(right_eye[1]);
    let forehead = l[lm::FOREHEAD_TOP][1];
    let hair_top_y = (0..=8)
        .filter_map(|i| mask.top_in_column(mid - half + half * i as f32 / 4.0, below))
        .fold(f32::INFINITY, f32::min);
    // No person above the eyes in the mask: fall back to the mesh's forehead top, which is below the hair line.
    let hair_top_y = if hair_top_y.is_finite() { hair_top_y } else { forehead };
    Anchors { hair_top_y, eyes: [left_eye, right_eye], cheeks }
}

/// Sharpens the mask's hair top (the mask is 256 rows over the whole image, soft at fine hair) from the pixels.
/// In 17 columns across the middle half of the face, each pixel's colour distance from the column's own background
/// (the rows above the mask's answer, below any frame; the picture's background where there is no room) is compared
/// with the hair's (a few rows inside the mask's answer), and the edge is where it first reaches half of it: the
/// middle of the blend between background and hair. That point stays put when the exposure, a blur or the
/// background's colour change, where a fixed colour distance from the background does not (dark hair on a dark
/// background, an under-exposed photo, a background graded top to bottom).
pub fn refine_hair_top(img: &RgbImage, mask: &Mask, frame: f32, background: Option<[f32; 3]>, a: &mut Anchors) {
    let cols = hair_top_columns(img, mask, frame, background, a);
    // Each column is read with two neighbours either side (the middle of the five, an eighth of the face width):
    // a column or two may catch a stray strand or a mark on the background, while the crown spans more.
    let mut best = f32::INFINITY;
    for i in 0..cols.len() {
        let mut near: Vec<f32> = cols[i.saturating_sub(2)..(i + 3).min(cols.len())].iter().flatten().copied().collect();
        near.sort_by(f32::total_cmp);
        if near.len() >= 3 {
            best = best.min(near[near.len() / 2]);
        }
    }
    if best.is_finite() {
        a.hair_top_y = best;
    }
}

/// Columns across the middle half of the face in which the hair top is looked for, a 32nd of the face width apart.
const HAIR_COLUMNS: usize = 17;

/// The hair top found in each column of [`refine_hair_top`], where one is found.
fn hair_top_columns(
    img: &RgbImage,
    mask: &Mask,
    frame: f32,
    background: Option<[f32; 3]>,
    a: &Anchors,
) -> [Option<f32>; HAIR_COLUMNS] {
    let mut out = [None; HAIR_COLUMNS];
    let (x0, x1) = (a.cheeks[0][0], a.cheeks[1][0]);
    let mid = (x0 + x1) / 2.0;
    let half = (x1 - x0).abs() / 4.0;
    // Windows in pixels of a face 240 px wide (the rendering's scale); no face is wider than the image, which also
    // bounds every loop below by the image's size.
    let unit = (a.face_width() / 240.0).min(img.width.max(img.height) as f32 / 240.0).max(0.25);
    let below = a.eyes[0][1].min(a.eyes[1][1]);
    let first_row = if frame > 0.0 { frame.ceil() + 1.0 } else { 0.0 };
    let last_row = img.height as f32 - 1.0;
    let bg_rows = (3.0 * unit).ceil().max(2.0);
    for (i, slot) in out.iter_mut().enumerate() {
        let x = mid - half + 2.0 * half * i as f32 / (HAIR_COLUMNS - 1) as f32;
        let Some(top) = mask.top_in_column(x, below) else { continue };
        let y0 = (top - 16.0 * unit).max(first_row).floor();
        // The column's own background, where there is room above the hair for it; else the picture's.
        let bg = if top - y0 >= 2.0 * bg_rows {
            mean_colour((0..bg_rows as usize).map(|k| super::face::detect::sample(img, x, y0 + k as f32)))
                .unwrap_or([0.0; 3])
        } else if let Some(bg) = background {
            bg
        } else {
            *slot = Some(top);
            continue;
        };
        // The hair's colour, a few pixels inside the mask's answer.
        let Some(hair) = mean_colour(
            (0..=(6.0 * unit) as usize)
                .map(|k| top + 4.0 * unit + k as f32)
                .filter(|&y| y < below && y <= last_row && mask.at(x, y) >= 0.5)
                .map(|y| super::face::detect::sample(img, x, y)),
        ) else {
            continue;
        };
        let contrast = rgb_distance(hair, bg);
        // Too little contrast for the pixels to say more than the mask (white hair on a beige background).
        if contrast < 40.0 {
            *slot = Some(top);
            continue;
        }
        // How far a row's colour has gone from the background, in units of the hair's distance from it.
        let reach = |y: f32| rgb_distance(super::face::detect::sample(img, x, y), bg) / contrast;
        let y1 = (top + 12.0 * unit).min(last_row);
        let profile: Vec<f32> = (0..=((y1 - y0).max(0.0) as usize)).map(|k| reach(y0 + k as f32)).collect();
        let level = 0.5;
        if profile[0] >= level {
            // The hair reaches the top of the picture (or its frame).
            *slot = Some(y0);
            continue;
        }
        if let Some(k) = (1..profile.len().saturating_sub(1)).find(|&k| profile[k] >= level && profile[k + 1] >= level)
        {
            let (p, q) = (profile[k - 1], profile[k]);
            let t = if q > p { ((level - p) / (q - p)).clamp(0.0, 1.0) } else { 1.0 };
            *slot = Some(y0 + (k - 1) as f32 + t);
        }
    }
    out
}

/// The mean of some colours; None when there are none.
fn mean_colour(colours: impl Iterator<Item = [f32; 3]>) -> Option<[f32; 3]> {
    let (sum, n) = colours.fold(([0.0f32; 3], 0usize), |(s, n), c| ([s[0] + c[0], s[1] + c[1], s[2] + c[2]], n + 1));
    (n > 0).then(|| sum.map(|v| v / n as f32))
}

/// Euclidean distance between two RGB colours.
fn rgb_distance(a: [f32; 3], b: [f32; 3]) -> f32 {
    ((a[0] - b[0]).powi(2) + (a[1] - b[1]).powi(2) + (a[2] - b[2]).powi(2)).sqrt()
}

/// Head pose in degrees: roll from the eye line, yaw and pitch from the mesh's depth.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Pose {
    pub roll: f32,
    pub yaw: f32,
    pub pitch: f32,
}

pub fn pose(l: &[[f32; 3]]) -> Pose {
    let a = l[lm::RIGHT_EYE_OUTER];
    let b = l[lm::LEFT_EYE_OUTER];
    let roll = (b[1] - a[1]).atan2(b[0] - a[0]).to_degrees();
    let (rc, lc) = (l[lm::RIGHT_CHEEK], l[lm::LEFT_CHEEK]);
    let yaw = (lc[2] - rc[2]).atan2(dist(lc, rc)).to_degrees();
    let (top, chin) = (l[lm::FOREHEAD_TOP], l[lm::CHIN]);
    let pitch = (chin[2] - top[2]).atan2(dist(chin, top)).to_degrees();
    Pose { roll, yaw, pitch }
}

/// Eye opening (lid gap over eye width) for the image-left and image-right eye, the mouth's inner-lip gap over
/// its width, and the three signs of a posed expression, in the face's own axes so that a tilted head reads the same.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Expression {
    pub eye_open: [f32; 2],
    pub mouth_gap: f32,
    /// How far the mouth corners sit above the middle of the lips, over the mouth width (a smile lifts them).
    pub corner_lift: f32,
    /// Mouth width (outer corners) over face width (a smile stretches it).
    pub mouth_width: f32,
    /// Eye centre to the middle of the eyebrow, over face width, both sides averaged (raised brows lengthen it).
    pub brow_raise: f32,
}

pub fn expression(l: &[[f32; 3]]) -> Expression {
    let f = super::occlusion::FaceFrame::new(l);
    let v = |i: usize| f.coords(l[i])[1];
    // The outer corners (the inner-lip ones, 78 and 308, sit where the lips meet and move less in a smile).
    let corners = (v(lm::MOUTH_CORNER_RIGHT) + v(lm::MOUTH_CORNER_LEFT)) / 2.0;
    let mid_lips = (v(lm::UPPER_LIP_INNER) + v(lm::LOWER_LIP_INNER)) / 2.0;
    let mouth_w = dist(l[lm::MOUTH_CORNER_RIGHT], l[lm::MOUTH_CORNER_LEFT]).max(1e-3);
    let brow_gap = |a: usize, b: usize, brow: usize| (v(a) + v(b)) / 2.0 - v(brow);
    let ratio = |up: usize, low: usize, a: usize, b: usize| dist(l[up], l[low]) / dist(l[a], l[b]).max(1e-3);
    Expression {
        eye_open: [
            ratio(lm::RIGHT_UPPER_LID, lm::RIGHT_LOWER_LID, lm::RIGHT_EYE_OUTER, lm::RIGHT_EYE_INNER),
            ratio(lm::LEFT_UPPER_LID, lm::LEFT_LOWER_LID, lm::LEFT_EYE_INNER, lm::LEFT_EYE_OUTER),
        ],
        mouth_gap: ratio(lm::UPPER_LIP_INNER, lm::LOWER_LIP_INNER, lm::MOUTH_RIGHT, lm::MOUTH_LEFT),
        corner_lift: (mid_lips - corners) / mouth_w,
        mouth_width: mouth_w / f.width,
        brow_raise: (brow_gap(lm::RIGHT_EYE_OUTER, lm::RIGHT_EYE_INNER, lm::RIGHT_BROW)
            + brow_gap(lm::LEFT_EYE_INNER, lm::LEFT_EYE_OUTER, lm::LEFT_BROW))
            / 2.0
            / f.width,
    }
}

/// The background: pixels the mask calls background, away from the person's edge.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Background {
    /// Share of the image that is background.
    pub coverage: f32,
    pub mean_rgb: [f32; 3],
    pub mean_lab: Lab,
    /// 90th percentile of CIEDE2000 from the mean colour: how uneven it is.
    pub spread: f32,
    /// CIEDE2000 between the left and right thirds, and between the top and bottom halves, of the background.
    pub gradient: f32,
    /// Share of background pixels more than 12 ΔE from the mean colour (shadows, objects, other people).
    pub foreign: f32,
}

/// Measures the background on a grid of 64 samples across, keeping those with person probability < 0.1.
pub fn background(img: &RgbImage, mask: &Mask) -> Option<Background> {
    let (w, h) = (img.width as f32, img.height as f32);
    let step = (w / 64.0).max(1.0);
    let mut samples: Vec<(f32, f32, Lab, [f32; 3])> = Vec::new();
    let mut total = 0usize;
    let mut y = step / 2.0;
    while y < h {
        let mut x = step / 2.0;
        while x < w {
            total += 1;
            // Keep away from the person's edge: the mask is soft and hair is fine.
            if mask.at(x, y) < 0.1 && mask.at(x - 2.0 * step, y) < 0.1 && mask.at(x + 2.0 * step, y) < 0.1 {
                let rgb = crate::measure::face::detect::sample(img, x, y);
                samples.push((x, y, lab(rgb), rgb));
            }
            x += step;
        }
        y += step;
    }
    if samples.len() < 20 {
        return None;
    }
    let n = samples.len() as f32;
    let mut mean_lab = [0.0f32; 3];
    let mut mean_rgb = [0.0f32; 3];
    for (_, _, l, c) in &samples {
        (0..3).for_each(|k| {
            mean_lab[k] += l[k] / n;
            mean_rgb[k] += c[k] / n;
        });
    }
    let mut d: Vec<f32> = samples.iter().map(|s| delta_e2000(s.2, mean_lab)).collect();
    d.sort_by(f32::total_cmp);
    let spread = d[(d.len() * 9 / 10).min(d.len() - 1)];
    let foreign = d.iter().filter(|&&v| v > 12.0).count() as f32 / n;
    let region_mean = |f: &dyn Fn(f32, f32) -> bool| {
        let sel: Vec<&Lab> = samples.iter().filter(|s| f(s.0, s.1)).map(|s| &s.2).collect();
        (sel.len() >= 5).then(|| {
            let m = sel.len() as f32;
            [0, 1, 2].map(|k| sel.iter().map(|l| l[k]).sum::<f32>() / m)
        })
    };
    let pair = |a: Option<Lab>, b: Option<Lab>| a.zip(b).map(|(a, b)| delta_e2000(a, b)).unwrap_or(0.0);
    let lr = pair(region_mean(&|x, _| x < w / 3.0), region_mean(&|x, _| x > 2.0 * w / 3.0));
    let tb = pair(region_mean(&|_, y| y < h / 2.0), region_mean(&|_, y| y >= h / 2.0));
    Some(Background { coverage: n / total as f32, mean_rgb, mean_lab, spread, gradient: lr.max(tb), foreign })
}

/// Light on the face: skin patches on both cheeks and the forehead.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct FaceLight {
    /// Mean L* of the skin patches.
    pub lightness: f32,
    /// L* of the image-left cheek minus the image-right cheek.
    pub balance: f32,
    /// Share of skin samples with a channel at 250 or more.
    pub clipped: f32,
    /// Mean a*, b* of the skin.
    pub skin_ab: [f32; 2],
}

pub fn face_light(img: &RgbImage, l: &[[f32; 3]]) -> FaceLight {
    let fw = dist(l[lm::RIGHT_CHEEK], l[lm::LEFT_CHEEK]).max(1.0);
    let r = fw * 0.07;
    // Patch centres: between cheek edge and nose, level with the nose tip; and the middle of the forehead.
    let nose = l[lm::NOSE_TIP];
    let toward = |a: [f32; 3], t: f32| [a[0] + (nose[0] - a[0]) * t, a[1] + (nose[1] - a[1]) * t];
    let left = toward(l[lm::RIGHT_CHEEK], 0.4);
    let right = toward(l[lm::LEFT_CHEEK], 0.4);
    let brows = mean2(l[lm::RIGHT_BROW], l[lm::LEFT_BROW]);
    let forehead = [brows[0], brows[1] - fw * 0.12];
    let patch = |c: [f32; 2]| {
        let mut out = Vec::new();
        for j in -2..=2 {
            for i in -2..=2 {
                let p = crate::measure::face::detect::sample(img, c[0] + i as f32 * r / 2.0, c[1] + j as f32 * r / 2.0);
                out.push(p);
            }
        }
        out
    };
    let (pl, pr, pf) = (patch(left), patch(right), patch(forehead));
    let mean_l = |ps: &[[f32; 3]]| ps.iter().map(|p| lab(*p)[0]).sum::<f32>() / ps.len() as f32;
    let all: Vec<[f32; 3]> = pl.iter().chain(&pr).chain(&pf).copied().collect();
    let n = all.len() as f32;
    let labs: Vec<Lab> = all.iter().map(|p| lab(*p)).collect();
    FaceLight {
        lightness: labs.iter().map(|l| l[0]).sum::<f32>() / n,
        balance: mean_l(&pl) - mean_l(&pr),
        clipped: all.iter().filter(|p| p.iter().any(|&c| c >= 250.0)).count() as f32 / n,
        skin_ab: [labs.iter().map(|l| l[1]).sum::<f32>() / n, labs.iter().map(|l| l[2]).sum::<f32>() / n],
    }
}

/// Sharpness: variance of the Laplacian of luminance over the inner face, resampled so that the face is 240 px
/// wide — the same measure whatever the file's size.
pub fn sharpness(img: &RgbImage, l: &[[f32; 3]]) -> f32 {
    let fw = dist(l[lm::RIGHT_CHEEK], l[lm::LEFT_CHEEK]).max(1.0);
    let scale = fw / 240.0;
    let nose = l[lm::NOSE_TIP];
    let n = 96usize;
    let mut luma = vec![0.0f32; n * n];
    for j in 0..n {
        for i in 0..n {
            let x = nose[0] + (i as f32 - n as f32 / 2.0) * scale;
            let y = nose[1] + (j as f32 - n as f32 / 2.0) * scale;
            let p = crate::measure::face::detect::sample(img, x, y);
            luma[j * n + i] = 0.299 * p[0] + 0.587 * p[1] + 0.114 * p[2];
        }
    }
    let mut acc = Vec::with_capacity((n - 2) * (n - 2));
    for j in 1..n - 1 {
        for i in 1..n - 1 {
            let c = luma[j * n + i];
            acc.push(
                luma[j * n + i - 1] + luma[j * n + i + 1] + luma[(j - 1) * n + i] + luma[(j + 1) * n + i] - 4.0 * c,
            );
        }
    }
    let m = acc.iter().sum::<f32>() / acc.len() as f32;
    acc.iter().map(|v| (v - m).powi(2)).sum::<f32>() / acc.len() as f32
}

/// How the analysed image maps to the registered rendering.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum FramingMode {
    /// The file is the registered photo: the whole image is the rendering (scaled to 480 × 640).
    Whole,
    /// The file is an original: the best 3:4 crop at least `min_width` analysed pixels wide (480 original pixels).
    BestCrop { min_width: f32 },
}

/// Everything measured of the person, in pixels of the 480 × 640 rendering where a position is meant.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PersonMeasurements {
    pub faces: usize,
    /// Detector scores of the faces, largest face first.
    pub face_scores: Vec<f32>,
    pub mesh_score: f32,
    /// The crop of the analysed image that is the rendering (the whole image for a registered file).
    pub crop: Option<super::face::geometry::Crop>,
    /// Why no crop fits, for an original.
    pub no_crop: Option<super::face::geometry::NoCrop>,
    pub framing: Option<super::face::geometry::Framing>,
    /// The anchors in analysed-image pixels (for drawing).
    pub anchors: Option<Anchors>,
    pub pose: Option<Pose>,
    pub expression: Option<Expression>,
    pub background: Option<Background>,
    pub light: Option<FaceLight>,
    pub sharpness: Option<f32>,
    /// Share of the rendering's left and right edge columns, above the chin, that is person.
    pub edge_contact: Option<[f32; 2]>,
    /// The eyes: red pupils and bright glare.
    pub eyes: Option<EyeRegions>,
    /// CIEDE2000 between the clothing below the chin and the background, and whether the clothing is blue.
    pub clothing: Option<Clothing>,
    /// A frame added around the picture: the widest uniform band along the edges that differs from what is
    /// just inside it, in analysed pixels (0 when there is none).
    pub frame_width: f32,
    /// What covers the eyebrows, the eyes and the ears.
    pub occlusion: Option<super::occlusion::Occlusion>,
    /// A fine periodic pattern over background and skin (a photo of a screen or a print).
    pub periodicity: Option<super::recapture::Periodicity>,
}

/// The pupils and the area around the eyes.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct EyeRegions {
    /// Share of pupil samples that are strongly red (red eye).
    pub red: f32,
    /// Share of samples in the eye regions that are clipped white (reflections on spectacles, glare).
    pub glare: f32,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Clothing {
    pub delta_e: f32,
    /// Hue angle of the clothing in CIELAB, degrees.
    pub hue: f32,
    pub chroma: f32,
}

/// Red pupils and glare: samples in a disc of a fifth of the eye width around each eye centre (pupils), and in a
/// box of the eye's width around it (glare on spectacle lenses).
pub fn eye_regions(img: &RgbImage, l: &[[f32; 3]]) -> EyeRegions {
    let mut red = 0usize;
    let mut pupil = 0usize;
    let mut glare = 0usize;
    let mut around = 0usize;
    for (outer, inner) in [(lm::RIGHT_EYE_OUTER, lm::RIGHT_EYE_INNER), (lm::LEFT_EYE_INNER, lm::LEFT_EYE_OUTER)] {
        let c = mean2(l[outer], l[inner]);
        let w = dist(l[outer], l[inner]).max(2.0);
        for j in -8..=8 {
            for i in -8..=8 {
                let (dx, dy) = (i as f32 / 8.0 * w, j as f32 / 8.0 * w * 0.6);
                let p = super::face::detect::sample(img, c[0] + dx, c[1] + dy);
                around += 1;
                if p.iter().all(|&v| v >= 250.0) {
                    glare += 1;
                }
                if (dx * dx + dy * dy).sqrt() <= w * 0.2 {
                    pupil += 1;
                    // Skin under warm light reaches twice as much red as green; a red pupil three times and more.
                    if p[0] > 90.0 && p[0] > 3.0 * p[1].max(p[2]) {
                        red += 1;
                    }
                }
            }
        }
    }
    EyeRegions { red: red as f32 / pupil.max(1) as f32, glare: glare as f32 / around.max(1) as f32 }
}

/// The clothing: person pixels in a band below the chin, between the cheeks' x positions widened by half.
pub fn clothing(img: &RgbImage, l: &[[f32; 3]], mask: &Mask, background: &Background) -> Option<Clothing> {
    let chin = l[lm::CHIN];
    let fw = dist(l[lm::RIGHT_CHEEK], l[lm::LEFT_CHEEK]).max(1.0);
    let (x0, x1) = (chin[0] - fw * 0.75, chin[0] + fw * 0.75);
    let (y0, y_end) = (chin[1] + fw * 0.35, chin[1] + fw * 0.9);
    // Less than half the band in the picture: the clothing is not visible enough to judge.
    if (img.height as f32 - y0) < (y_end - y0) / 2.0 {
        return None;
    }
    let y1 = y_end.min(img.height as f32 - 1.0);
    let mut labs = Vec::new();
    let mut y = y0;
    while y <= y1 {
        let mut x = x0.max(0.0);
        while x <= x1.min(img.width as f32 - 1.0) {
            if mask.at(x, y) > 0.7 {
                labs.push(lab(super::face::detect::sample(img, x, y)));
            }
            x += fw / 24.0;
        }
        y += fw / 24.0;
    }
    if labs.len() < 20 {
        return None;
    }
    let n = labs.len() as f32;
    let mean = [0, 1, 2].map(|k| labs.iter().map(|l| l[k]).sum::<f32>() / n);
    Some(Clothing {
        delta_e: delta_e2000(mean, background.mean_lab),
        hue: mean[2].atan2(mean[1]).to_degrees().rem_euclid(360.0),
        chroma: (mean[1] * mean[1] + mean[2] * mean[2]).sqrt(),
    })
}

/// A border someone added: on each of the four sides, the outermost line is uniform (90% within 6 ΔE76) and the
/// lines inward keep its colour until they change abruptly by more than 12 ΔE, within a sixteenth of the
/// picture; a frame is where three or four sides agree on that width (within 2 px). A person touching one edge, or a
/// background that drifts slowly, is not a frame.
pub fn frame_width(img: &RgbImage) -> f32 {
    let (w, h) = (img.width as usize, img.height as usize);
    if w < 40 || h < 40 {
        return 0.0;
    }
    let px = |x: usize, y: usize| super::color::lab_u8(img.pixel(x as u32, y as u32));
    // CIE76 is enough to tell a frame from a picture, and runs on every sampled pixel of up to 40 lines a side.
    let de = |a: Lab, b: Lab| ((a[0] - b[0]).powi(2) + (a[1] - b[1]).powi(2) + (a[2] - b[2]).powi(2)).sqrt();
    // Line d of a side (0 top, 1 bottom, 2 left, 3 right), every twelfth pixel.
    let points = |side: usize, d: usize| {
        let along = if side < 2 { w } else { h };
        (d..along - d).step_by(12).map(move |t| match side {
            0 => px(t, d),
            1 => px(t, h - 1 - d),
            2 => px(d, t),
            _ => px(w - 1 - d, t),
        })
    };
    // The outermost line: its mean colour and the 90th-percentile spread (the lines inward need only their mean).
    let edge = |side: usize| {
        let pts: Vec<Lab> = points(side, 0).collect();
        let mean = mean_colour(pts.iter().copied())?;
        let mut dev: Vec<f32> = pts.iter().map(|p| de(*p, mean)).collect();
        // The 90th percentile: compression smears colour into the corners of a frame.
        dev.sort_by(f32::total_cmp);
        Some((mean, dev[(dev.len() * 9 / 10).min(dev.len() - 1)]))
    };
    let width_of = |side: usize| -> Option<usize> {
        let (edge, spread) = edge(side)?;
        if spread > 6.0 {
            return None;
        }
        let mut prev = edge;
        for d in 1..(w.min(h) / 16) {
            let inner = mean_colour(points(side, d))?;
            if de(inner, edge) > 12.0 {
                return (de(inner, prev) > 6.0).then_some(d);
            }
            prev = inner;
        }
        None
    };
    let mut widths: Vec<usize> = (0..4).filter_map(width_of).collect();
    widths.sort_unstable();
    // Three sides at least: the fourth may border clothing as dark as the frame.
    widths.windows(3).filter(|t| t[2] - t[0] <= 2).map(|t| (t[0] + t[1] + t[2]) as f32 / 3.0).next().unwrap_or(0.0)
}

/// A mesh `measure` can use: every point there and finite.
fn usable(l: &[[f32; 3]]) -> bool {
    l.len() >= super::face::mesh::POINTS && l.iter().all(|p| p.iter().all(|v| v.is_finite()))
}

/// The measures that depend on the framing: the anchors (the hair top from the framed mask where there is one),
/// the crop or why none fits, the framing, the edge contact and the occlusion (which starts at the hair top).
fn measure_framing(
    img: &RgbImage,
    l: &[[f32; 3]],
    out: &FaceOutputs,
    mask: &Mask,
    framing: FramingMode,
    m: &mut PersonMeasurements,
) {
    use super::face::geometry;
    let hair_mask = out.framed_mask.as_ref().unwrap_or(mask);
    let mut a = anchors(l, hair_mask);
    refine_hair_top(img, hair_mask, m.frame_width, m.background.as_ref().map(|b| b.mean_rgb), &mut a);
    let crop = match framing {
        FramingMode::Whole => Ok(geometry::Crop::whole(img.width, img.height)),
        FramingMode::BestCrop { min_width } => geometry::best_crop(&a, img.width as f32, img.height as f32, min_width),
    };
    (m.crop, m.no_crop, m.framing, m.edge_contact) = (None, None, None, None);
    match crop {
        Ok(c) => {
            m.framing = Some(geometry::framing(&a, &c));
            let chin = l[super::face::mesh::index::CHIN][1];
            let contact = |x: f32| {
                let rows = ((chin - c.top).max(1.0) / 2.0) as usize;
                let hit = (0..rows).filter(|i| mask.is_person(x, c.top + *i as f32 * 2.0)).count();
                hit as f32 / rows.max(1) as f32
            };
            m.edge_contact = Some([contact(c.left + 1.0), contact(c.left + c.width - 1.0)]);
            m.crop = Some(c);
        }
        Err(e) => m.no_crop = Some(e),
    }
    m.occlusion = Some(super::occlusion::occlusion(img, l, mask, a.hair_top_y));
    m.anchors = Some(a);
}

/// Takes the measures that depend on the framing again, after `out.framed_mask` was set (see
/// [`FaceModels::analyse_framed`]); the rest of `m` stands.
///
/// [`FaceModels::analyse_framed`]: super::face::models::FaceModels::analyse_framed
pub fn reframe(img: &RgbImage, out: &FaceOutputs, framing: FramingMode, m: &mut PersonMeasurements) {
    let (Some(l), Some(mask)) = (out.landmarks.as_deref(), out.mask.as_ref()) else { return };
    if usable(l) {
        measure_framing(img, l, out, mask, framing, m);
    }
}

pub fn measure(img: &RgbImage, out: &FaceOutputs, framing: FramingMode) -> PersonMeasurements {
    let mut m = PersonMeasurements {
        faces: out.detections.len(),
        face_scores: out.detections.iter().map(|d| d.score).collect(),
        mesh_score: out.mesh_score,
        crop: None,
        no_crop: None,
        framing: None,
        anchors: None,
        pose: None,
        expression: None,
        background: out.mask.as_ref().and_then(|mask| background(img, mask)),
        light: None,
        sharpness: None,
        edge_contact: None,
        eyes: None,
        clothing: None,
        frame_width: frame_width(img),
        occlusion: None,
        periodicity: None,
    };
    let (Some(l), Some(mask)) = (out.landmarks.as_deref(), out.mask.as_ref()) else { return m };
    if !usable(l) {
        return m;
    }
    measure_framing(img, l, out, mask, framing, &mut m);
    m.periodicity = super::recapture::periodicity(img, l, mask);
    m.pose = Some(pose(l));
    m.expression = Some(expression(l));
    m.light = Some(face_light(img, l));
    m.sharpness = Some(sharpness(img, l));
    m.eyes = Some(eye_regions(img, l));
    m.clothing = m.background.as_ref().and_then(|bg| clothing(img, l, mask, bg));
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    const BLUE: [f32; 3] = [100.0, 197.0, 255.0];
    const HAIR: [f32; 3] = [40.0, 32.0, 30.0];

    /// A head (an ellipse, its crown at y = `top`, centred at x = 240) on a plain background, anti-aliased by 4 × 4
    /// supersampling, with `mark` painted as hair too; and a soft person mask whose 0.5 level lies 3 px below the
    /// true outline, as a segmenter's coarse mask may. The measured hair top must come back to the outline.
    fn scene(top: f32, frame: u32, gain: f32, mark: Option<(f32, f32, f32, f32)>) -> (RgbImage, Mask) {
        let (w, h) = (480u32, 640u32);
        let (cx, cy, rx, ry) = (240.0f32, top + 160.0, 120.0f32, 160.0f32);
        let inside = |x: f32, y: f32| {
            ((x - cx) / rx).powi(2) + ((y - cy) / ry).powi(2) <= 1.0
                || mark.is_some_and(|(x0, x1, y0, y1)| x >= x0 && x < x1 && y >= y0 && y < y1)
        };
        let mut pixels = Vec::with_capacity((w * h * 3) as usize);
        let mut probs = Vec::with_capacity((w * h) as usize);
        for y in 0..h {
            for x in 0..w {
                let cover = (0..16)
                    .filter(|i| {
                        inside(x as f32 + (i % 4) as f32 / 4.0 + 0.125, y as f32 + (i / 4) as f32 / 4.0 + 0.125)
                    })
                    .count() as f32
                    / 16.0;
                let framed = x < frame || y < frame || x >= w - frame || y >= h - frame;
                let c: [f32; 3] = if framed {
                    [15.0; 3]
                } else {
                    std::array::from_fn(|k| (BLUE[k] * (1.0 - cover) + HAIR[k] * cover) * gain)
                };
                pixels.extend(c.map(|v| v.round().clamp(0.0, 255.0) as u8));
                // Distance inside the head's outline along the vertical, softened over ±6 px and moved 3 px down.
                let d = ((y as f32 - cy) / ry).powi(2) + ((x as f32 - cx) / rx).powi(2);
                let depth = (1.0 - d) * ry / 2.0;
                probs.push(((depth - 3.0) / 12.0 + 0.5).clamp(0.0, 1.0));
            }
        }
        (RgbImage { width: w, height: h, pixels }, Mask::with_grid(probs, w as usize, h as usize, w, h))
    }

    fn anchors(top: f32) -> Anchors {
        let eye = top + 150.0;
        Anchors {
            hair_top_y: f32::NAN,
            eyes: [[190.0, eye], [290.0, eye]],
            cheeks: [[130.0, eye + 50.0], [350.0, eye + 50.0]],
        }
    }

    fn measured(top: f32, frame: u32, gain: f32, mark: Option<(f32, f32, f32, f32)>) -> f32 {
        let (img, mask) = scene(top, frame, gain, mark);
        let mut a = anchors(top);
        refine_hair_top(&img, &mask, frame as f32, Some(BLUE.map(|v| v * gain)), &mut a);
        a.hair_top_y
    }

    #[test]
    fn a_frame_reads_its_width_and_none_reads_zero() {
        for frame in [0, 3, 12, 25] {
            let (img, _) = scene(150.0, frame, 1.0, None);
            assert_eq!(frame_width(&img), frame as f32, "a {frame} px frame");
        }
        // A picture whose edge is not uniform (the head cut by the top edge) has no frame there, nor elsewhere.
        let (img, _) = scene(-60.0, 0, 1.0, None);
        assert_eq!(frame_width(&img), 0.0);
    }

    #[test]
    fn hair_top_returns_to_the_outline_whatever_the_exposure_or_frame() {
        // The crown's highest column window (the middle of five columns 6.9 px apart) lies 0.3 px below the top.
        for (top, frame, gain) in [(100.0, 0, 1.0), (100.0, 0, 0.4), (20.0, 12, 1.0), (20.0, 12, 0.4)] {
            let got = measured(top, frame, gain, None);
            assert!((got - top - 0.3).abs() <= 1.0, "frame {frame}, exposure ×{gain}: {got} for {top}");
        }
    }

    #[test]
    fn a_mark_two_columns_wide_above_the_crown_is_not_the_hair_top() {
        let got = measured(100.0, 0, 1.0, Some((236.0, 248.0, 90.0, 95.0)));
        assert!((got - 100.3).abs() <= 1.0, "{got}");
    }

    #[test]
    fn hair_cut_off_by_the_top_edge_reads_zero() {
        let got = measured(-10.0, 0, 1.0, None);
        assert!(got <= 1.0, "{got}");
    }

    #[test]
    fn degenerate_inputs_do_not_panic() {
        let tiny = RgbImage { width: 1, height: 1, pixels: vec![0, 0, 0] };
        let mask = Mask::with_grid(vec![1.0], 1, 1, 1, 1);
        let mut a = anchors(0.0);
        refine_hair_top(&tiny, &mask, 0.0, None, &mut a);
        let mut nan = Anchors { hair_top_y: f32::NAN, eyes: [[f32::NAN; 2]; 2], cheeks: [[f32::NAN; 2]; 2] };
        refine_hair_top(&tiny, &mask, 0.0, Some(BLUE), &mut nan);
        let (img, mask) = scene(100.0, 0, 1.0, None);
        let mut huge = Anchors { hair_top_y: 0.0, eyes: [[0.0, 1e9]; 2], cheeks: [[-1e9, 5.0], [1e9, 5.0]] };
        refine_hair_top(&img, &mask, 1e6, None, &mut huge);
    }
}
