//! What covers the eyebrows, the eyes and the ears: samples placed by the mesh, each called skin or hair by its
//! colour against two references measured on the same photo (the cheeks for skin, the crown for hair). Numbers
//! only; the judge decides.

use serde::Serialize;

use super::color::{Lab, lab};
use super::face::detect::sample;
use super::face::mesh::index as lm;
use super::face::segment::Mask;
use crate::decode::RgbImage;

/// Upper edge of each eyebrow, outer end to inner end (subject's right = image left).
const RIGHT_BROW_UPPER: [usize; 5] = [70, 63, 105, 66, 107];
const LEFT_BROW_UPPER: [usize; 5] = [300, 293, 334, 296, 336];
/// Nose bottom: the lower end of the ear band.
const NOSE_BOTTOM: usize = 2;

/// Below this distance (see [`colour_distance`]) hair cannot be told from skin by colour: grey or blond hair on
/// pale skin, a bald crown.
pub const MIN_SEPARATION: f32 = 10.0;

/// The face's own axes: x along the eye line (image-left eye to image-right eye), y down the face; in pixels.
#[derive(Debug, Clone, Copy)]
pub struct FaceFrame {
    pub ex: [f32; 2],
    pub ey: [f32; 2],
    /// Cheek to cheek, the unit for every offset.
    pub width: f32,
}

impl FaceFrame {
    pub fn new(l: &[[f32; 3]]) -> FaceFrame {
        let (a, b) = (l[lm::RIGHT_EYE_OUTER], l[lm::LEFT_EYE_OUTER]);
        let (dx, dy) = (b[0] - a[0], b[1] - a[1]);
        let n = dx.hypot(dy).max(1e-3);
        let (c, s) = (dx / n, dy / n);
        let (r, q) = (l[lm::RIGHT_CHEEK], l[lm::LEFT_CHEEK]);
        FaceFrame { ex: [c, s], ey: [-s, c], width: (q[0] - r[0]).hypot(q[1] - r[1]).max(1.0) }
    }

    /// `p` moved by (u, v) face widths along the face's axes.
    pub fn offset(&self, p: [f32; 2], u: f32, v: f32) -> [f32; 2] {
        let (u, v) = (u * self.width, v * self.width);
        [p[0] + u * self.ex[0] + v * self.ey[0], p[1] + u * self.ex[1] + v * self.ey[1]]
    }

    /// Coordinates of `p` along the face's axes, in pixels.
    pub fn coords(&self, p: [f32; 3]) -> [f32; 2] {
        [p[0] * self.ex[0] + p[1] * self.ex[1], p[0] * self.ey[0] + p[1] * self.ey[1]]
    }
}

/// CIE76 with lightness counted half: shading moves lightness far more than it moves hue and chroma, and the
/// references are taken where the light differs (cheeks, crown).
pub fn colour_distance(a: Lab, b: Lab) -> f32 {
    (((a[0] - b[0]) / 2.0).powi(2) + (a[1] - b[1]).powi(2) + (a[2] - b[2]).powi(2)).sqrt()
}

/// The skin and hair colours of this photo.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct References {
    /// Median of both cheeks.
    pub skin: Lab,
    /// Each cheek alone (image-left, image-right): the brow and the ear on a side share its light.
    pub skin_sides: [Lab; 2],
    /// The crown's colour (hair, or whatever covers the head); None when too little person lies above the face.
    pub hair: Option<Lab>,
    /// [`colour_distance`] between them (0 without hair).
    pub separation: f32,
}

impl References {
    /// The references with the skin of one side.
    fn side(&self, k: usize) -> References {
        let skin = self.skin_sides[k];
        References { skin, separation: self.hair.map_or(0.0, |h| colour_distance(skin, h)), ..*self }
    }

    /// Whether a sample looks like skin rather than hair. Without a usable hair colour, near the skin colour.
    fn skin_like(&self, c: Lab) -> bool {
        let ds = colour_distance(c, self.skin);
        match self.hair.filter(|_| self.separation >= MIN_SEPARATION) {
            Some(h) => ds < colour_distance(c, h) && ds < 2.0 * self.separation.max(12.0),
            None => ds < 12.0,
        }
    }
}

fn median(mut v: Vec<f32>) -> f32 {
    v.sort_by(f32::total_cmp);
    v[v.len() / 2]
}

fn median_lab(v: &[Lab]) -> Lab {
    [0, 1, 2].map(|k| median(v.iter().map(|c| c[k]).collect()))
}

/// Skin from the two cheek patches; hair from the person mask between the hair top and the mesh's forehead top,
/// in the middle half of the face width.
pub fn references(img: &RgbImage, l: &[[f32; 3]], mask: &Mask, hair_top_y: f32) -> References {
    let f = FaceFrame::new(l);
    let nose = l[lm::NOSE_TIP];
    let mut skin = Vec::with_capacity(50);
    let mut sides = [[0.0; 3]; 2];
    for (k, cheek) in [l[lm::RIGHT_CHEEK], l[lm::LEFT_CHEEK]].into_iter().enumerate() {
        // Between the cheek edge and the nose, level with the nose tip (as the exposure patches).
        let c = [cheek[0] + (nose[0] - cheek[0]) * 0.4, cheek[1] + (nose[1] - cheek[1]) * 0.4];
        for j in -2..=2 {
            for i in -2..=2 {
                let p = f.offset(c, i as f32 * 0.035, j as f32 * 0.035);
                skin.push(lab(sample(img, p[0], p[1])));
            }
        }
        sides[k] = median_lab(&skin[k * 25..]);
    }
    let skin = median_lab(&skin);
    let top = l[lm::FOREHEAD_TOP];
    let mut hair = Vec::new();
    let span = top[1] - hair_top_y;
    if span > 2.0 {
        for j in 1..=6 {
            let y = hair_top_y + span * (0.05 + 0.5 * j as f32 / 6.0);
            for i in -4..=4 {
                let x = top[0] + i as f32 * f.width / 16.0;
                if mask.at(x, y) > 0.7 {
                    hair.push(lab(sample(img, x, y)));
                }
            }
        }
    }
    let hair = (hair.len() >= 10).then(|| median_lab(&hair));
    References { skin, skin_sides: sides, hair, separation: hair.map_or(0.0, |h| colour_distance(skin, h)) }
}

/// Per side (image-left, image-right): how much of what should show is covered, and how the eyes look.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Occlusion {
    pub references: References,
    /// Share of the samples just above each eyebrow that do not look like skin (a fringe reaching down).
    pub brows_covered: [f32; 2],
    /// Lightness spread (90th − 10th percentile of L*) inside each eye opening (iris against sclera and lids),
    /// over the skin's L*: exposure scales both, so a dark photo keeps its eyes.
    pub eye_contrast: [f32; 2],
    /// Beside the face contour at ear height: share of the person samples that look like skin (None when the
    /// mask puts too little person there to judge).
    pub ears_skin: [Option<f32>; 2],
}

/// A forehead strip from the brow's upper edge up to 0.07 face widths above it: skin unless hair comes down.
fn brow_covered(img: &RgbImage, l: &[[f32; 3]], f: &FaceFrame, refs: &References, upper: &[usize; 5]) -> f32 {
    let mut covered = 0usize;
    let mut n = 0usize;
    for w in upper.windows(2) {
        let (a, b) = (l[w[0]], l[w[1]]);
        for t in [0.0f32, 0.5] {
            let p = [a[0] + (b[0] - a[0]) * t, a[1] + (b[1] - a[1]) * t];
            // From just clear of the brow hairs upwards.
            for up in [0.03f32, 0.05, 0.07] {
                let q = f.offset(p, 0.0, -up);
                n += 1;
                if !refs.skin_like(lab(sample(img, q[0], q[1]))) {
                    covered += 1;
                }
            }
        }
    }
    covered as f32 / n.max(1) as f32
}

/// L* spread in an ellipse of 0.8 × the eye's width and 0.8 × its lid gap: an open, visible eye holds dark iris
/// and light sclera; hair or a frame rim over it is much more even.
fn eye_contrast(img: &RgbImage, l: &[[f32; 3]], corners: (usize, usize), lids: (usize, usize)) -> f32 {
    let (a, b) = (l[corners.0], l[corners.1]);
    let c = [(a[0] + b[0]) / 2.0, (a[1] + b[1]) / 2.0];
    let (ux, uy) = ((b[0] - a[0]) * 0.4, (b[1] - a[1]) * 0.4);
    let (up, low) = (l[lids.0], l[lids.1]);
    let gap = (low[0] - up[0]).hypot(low[1] - up[1]).max(1.0) * 0.4;
    let n = (ux.hypot(uy)).max(1.0);
    let (vx, vy) = (-uy / n * gap, ux / n * gap);
    let mut v = Vec::with_capacity(60);
    for j in -2..=2 {
        for i in -5..=5 {
            let (s, t) = (i as f32 / 5.0, j as f32 / 2.0);
            if s * s + t * t > 1.0 {
                continue;
            }
            let p = sample(img, c[0] + s * ux + t * vx, c[1] + s * uy + t * vy);
            v.push(lab(p)[0]);
        }
    }
    v.sort_by(f32::total_cmp);
    let k = v.len();
    v[k * 9 / 10] - v[k / 10]
}

/// A band outward from the face contour (0.03–0.15 face widths) from the eye line down to the nose bottom: the
/// ear's place. Only samples the mask calls person count; a quarter of them at least, or no answer.
fn ear_skin(
    img: &RgbImage,
    l: &[[f32; 3]],
    mask: &Mask,
    f: &FaceFrame,
    refs: &References,
    side: f32,
    cheek: usize,
) -> Option<f32> {
    let eye_v = f.coords(l[lm::RIGHT_EYE_OUTER])[1].min(f.coords(l[lm::LEFT_EYE_OUTER])[1]);
    let nose_v = f.coords(l[NOSE_BOTTOM])[1];
    let c = l[cheek];
    let cv = f.coords(c)[1];
    let (mut person, mut skin, mut total) = (0usize, 0usize, 0usize);
    for j in 0..6 {
        let v = (eye_v + (nose_v - eye_v) * j as f32 / 5.0 - cv) / f.width;
        for i in 0..5 {
            let u = side * (0.03 + 0.03 * i as f32);
            let p = f.offset([c[0], c[1]], u, v);
            total += 1;
            if mask.at(p[0], p[1]) >= 0.5 {
                person += 1;
                if refs.skin_like(lab(sample(img, p[0], p[1]))) {
                    skin += 1;
                }
            }
        }
    }
    (person * 4 >= total).then(|| skin as f32 / person as f32)
}

pub fn occlusion(img: &RgbImage, l: &[[f32; 3]], mask: &Mask, hair_top_y: f32) -> Occlusion {
    let refs = references(img, l, mask, hair_top_y);
    let f = FaceFrame::new(l);
    Occlusion {
        references: refs,
        brows_covered: [
            brow_covered(img, l, &f, &refs.side(0), &RIGHT_BROW_UPPER),
            brow_covered(img, l, &f, &refs.side(1), &LEFT_BROW_UPPER),
        ],
        eye_contrast: [
            eye_contrast(
                img,
                l,
                (lm::RIGHT_EYE_OUTER, lm::RIGHT_EYE_INNER),
                (lm::RIGHT_UPPER_LID, lm::RIGHT_LOWER_LID),
            ),
            eye_contrast(img, l, (lm::LEFT_EYE_INNER, lm::LEFT_EYE_OUTER), (lm::LEFT_UPPER_LID, lm::LEFT_LOWER_LID)),
        ]
        .map(|c| c / refs.skin[0].max(5.0)),
        ears_skin: [
            ear_skin(img, l, mask, &f, &refs.side(0), -1.0, lm::RIGHT_CHEEK),
            ear_skin(img, l, mask, &f, &refs.side(1), 1.0, lm::LEFT_CHEEK),
        ],
    }
}
