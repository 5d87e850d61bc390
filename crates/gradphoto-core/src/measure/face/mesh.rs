//! FaceMesh: 468 landmarks of the face found by the detector. The crop is the detector's box centre, a side of
//! 1.5 × the larger box side, turned so that the eyes are level; the landmarks come back in image pixels.

use super::detect::{Detection, LEFT_EYE, RIGHT_EYE};
use super::pyramid::Pyramid;

pub const INPUT: usize = 192;
pub const POINTS: usize = 468;

/// Landmark indices used by the rules (subject's right = image left).
pub mod index {
    pub const RIGHT_EYE_OUTER: usize = 33;
    pub const RIGHT_EYE_INNER: usize = 133;
    pub const LEFT_EYE_INNER: usize = 362;
    pub const LEFT_EYE_OUTER: usize = 263;
    pub const RIGHT_UPPER_LID: usize = 159;
    pub const RIGHT_LOWER_LID: usize = 145;
    pub const LEFT_UPPER_LID: usize = 386;
    pub const LEFT_LOWER_LID: usize = 374;
    pub const RIGHT_CHEEK: usize = 234;
    pub const LEFT_CHEEK: usize = 454;
    pub const CHIN: usize = 152;
    pub const FOREHEAD_TOP: usize = 10;
    pub const NOSE_TIP: usize = 1;
    pub const UPPER_LIP_INNER: usize = 13;
    pub const LOWER_LIP_INNER: usize = 14;
    pub const MOUTH_RIGHT: usize = 78;
    pub const MOUTH_LEFT: usize = 308;
    /// The outer mouth corners, where the lips end.
    pub const MOUTH_CORNER_RIGHT: usize = 61;
    pub const MOUTH_CORNER_LEFT: usize = 291;
    pub const RIGHT_BROW: usize = 105;
    pub const LEFT_BROW: usize = 334;
}

/// A square region of the image, turned by `angle` radians (the eye line's slope).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Roi {
    pub center: [f32; 2],
    pub side: f32,
    pub angle: f32,
}

impl Roi {
    /// The crop MediaPipe takes for the mesh from a detection.
    pub fn from_detection(d: &Detection) -> Roi {
        let [re, le] = [d.keypoints[RIGHT_EYE], d.keypoints[LEFT_EYE]];
        Roi { center: d.center(), side: d.bbox[2].max(d.bbox[3]) * 1.5, angle: (le[1] - re[1]).atan2(le[0] - re[0]) }
    }

    /// The crop MediaPipe takes from a previous mesh: the landmarks' box scaled 1.5 ×, turned by the outer eye
    /// corners. A second pass from it is steadier than the detector's box.
    pub fn from_landmarks(l: &[[f32; 3]]) -> Option<Roi> {
        let (a, b) = (l.get(index::RIGHT_EYE_OUTER)?, l.get(index::LEFT_EYE_OUTER)?);
        let angle = (b[1] - a[1]).atan2(b[0] - a[0]);
        let (s, c) = angle.sin_cos();
        // The box in the face's own frame, so that a tilted head gets the same crop as an upright one.
        let (mut lo, mut hi) = ([f32::INFINITY; 2], [f32::NEG_INFINITY; 2]);
        for p in l {
            let (u, v) = (p[0] * c + p[1] * s, -p[0] * s + p[1] * c);
            lo = [lo[0].min(u), lo[1].min(v)];
            hi = [hi[0].max(u), hi[1].max(v)];
        }
        let (cu, cv) = ((lo[0] + hi[0]) / 2.0, (lo[1] + hi[1]) / 2.0);
        let side = (hi[0] - lo[0]).max(hi[1] - lo[1]) * 1.5;
        (side.is_finite() && side > 1.0).then_some(Roi { center: [cu * c - cv * s, cu * s + cv * c], side, angle })
    }

    /// How far `other` is from this crop: the largest of the centre shift and the side change as fractions of
    /// this side, and the turn between them in radians.
    pub fn drift(&self, other: &Roi) -> f32 {
        let shift = (self.center[0] - other.center[0]).hypot(self.center[1] - other.center[1]) / self.side;
        let size = (other.side / self.side - 1.0).abs();
        let d = self.angle - other.angle;
        let turn = d.sin().atan2(d.cos()).abs();
        shift.max(size).max(turn)
    }

    /// Image position of crop coordinates (0 … `size`).
    pub fn to_image(&self, size: usize, u: f32, v: f32) -> [f32; 2] {
        let dx = (u / size as f32 - 0.5) * self.side;
        let dy = (v / size as f32 - 0.5) * self.side;
        let (s, c) = self.angle.sin_cos();
        [self.center[0] + dx * c - dy * s, self.center[1] + dx * s + dy * c]
    }
}

/// The mesh input: the crop resampled to 192 × 192, RGB in [0, 1].
pub fn input(pyr: &Pyramid, roi: &Roi) -> Vec<f32> {
    let mut out = vec![0.0f32; INPUT * INPUT * 3];
    let step = roi.side / INPUT as f32;
    // One pyramid level for the whole crop, chosen once.
    let (level, f) = pyr.level(step);
    // The crop's affine map, worked out once: image = origin + u·du + v·dv (in level pixels).
    let origin = roi.to_image(INPUT, 0.5, 0.5);
    let right = roi.to_image(INPUT, 1.5, 0.5);
    let down = roi.to_image(INPUT, 0.5, 1.5);
    let du = [(right[0] - origin[0]) / f, (right[1] - origin[1]) / f];
    let dv = [(down[0] - origin[0]) / f, (down[1] - origin[1]) / f];
    let (ox, oy) = (origin[0] / f - 0.5, origin[1] / f - 0.5);
    // Bilinear, clamped to the edge, as `detect::sample`, written out so that the loop stays tight (two model
    // passes per check sample 2 × 36 864 points).
    let (w, h) = (level.width as usize, level.height as usize);
    let (max_x, max_y) = ((w - 1) as f32, (h - 1) as f32);
    let px = &level.pixels;
    let texel = |i: usize| [f32::from(px[i]), f32::from(px[i + 1]), f32::from(px[i + 2])];
    for (v, row) in out.chunks_exact_mut(INPUT * 3).enumerate() {
        let vf = v as f32;
        let (rx, ry) = (ox + vf * dv[0], oy + vf * dv[1]);
        for (u, o) in row.chunks_exact_mut(3).enumerate() {
            let uf = u as f32;
            let x = (rx + uf * du[0]).clamp(0.0, max_x);
            let y = (ry + uf * du[1]).clamp(0.0, max_y);
            // Non-negative after the clamp: truncation is floor.
            let (x0, y0) = (x as usize, y as usize);
            let (fx, fy) = (x - x0 as f32, y - y0 as f32);
            let x1 = (x0 + 1).min(w - 1);
            let (r0, r1) = (y0 * w, (y0 + 1).min(h - 1) * w);
            let (a, b, c, d) = (texel((r0 + x0) * 3), texel((r0 + x1) * 3), texel((r1 + x0) * 3), texel((r1 + x1) * 3));
            for k in 0..3 {
                let top = a[k] + (b[k] - a[k]) * fx;
                let bottom = c[k] + (d[k] - c[k]) * fx;
                o[k] = (top + (bottom - top) * fy) * (1.0 / 255.0);
            }
        }
    }
    out
}

/// Landmarks in image pixels (x, y) and the model's depth (z, in crop pixels), from the raw output.
pub fn landmarks(raw: &[f32], roi: &Roi) -> Option<Vec<[f32; 3]>> {
    if raw.len() < POINTS * 3 {
        return None;
    }
    Some(
        raw.chunks_exact(3)
            .take(POINTS)
            .map(|p| {
                let [x, y] = roi.to_image(INPUT, p[0], p[1]);
                [x, y, p[2] * roi.side / INPUT as f32]
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roi_maps_its_corners_and_turns_with_the_eyes() {
        let roi = Roi { center: [100.0, 200.0], side: 60.0, angle: 0.0 };
        assert_eq!(roi.to_image(INPUT, 0.0, 0.0), [70.0, 170.0]);
        assert_eq!(roi.to_image(INPUT, 192.0, 96.0), [130.0, 200.0]);
        let turned = Roi { angle: std::f32::consts::FRAC_PI_2, ..roi };
        let p = turned.to_image(INPUT, 192.0, 96.0);
        assert!((p[0] - 100.0).abs() < 1e-4 && (p[1] - 230.0).abs() < 1e-4, "{p:?}");
        let d = Detection {
            score: 0.9,
            bbox: [80.0, 180.0, 40.0, 40.0],
            keypoints: [[90.0, 195.0], [110.0, 195.0], [100.0, 205.0], [100.0, 212.0], [80.0, 198.0], [120.0, 198.0]],
        };
        let r = Roi::from_detection(&d);
        assert_eq!((r.center, r.side, r.angle), ([100.0, 200.0], 60.0, 0.0));
    }

    #[test]
    fn the_input_is_the_pyramid_sampled_at_each_crop_position() {
        let img = crate::decode::RgbImage {
            width: 301,
            height: 257,
            pixels: (0..301u64 * 257 * 3).map(|i| ((i * 7919) % 251) as u8).collect(),
        };
        let pyr = Pyramid::new(&img);
        // Inside and turned; reaching past every edge (clamped there); large enough to read a coarser level.
        for roi in [
            Roi { center: [150.0, 120.0], side: 90.0, angle: 0.3 },
            Roi { center: [20.0, 240.0], side: 120.0, angle: -0.2 },
            Roi { center: [280.0, 10.0], side: 100.0, angle: 1.1 },
            Roi { center: [150.0, 130.0], side: 900.0, angle: 0.05 },
        ] {
            let got = input(&pyr, &roi);
            let (level, f) = pyr.level(roi.side / INPUT as f32);
            for v in (0..INPUT).step_by(7) {
                for u in (0..INPUT).step_by(5) {
                    let [x, y] = roi.to_image(INPUT, u as f32 + 0.5, v as f32 + 0.5);
                    // The crop maps to continuous image positions (pixel centres at +0.5), clamped at the
                    // level's edge.
                    let (lx, ly) = (x / f - 0.5, y / f - 0.5);
                    let want = crate::measure::face::detect::sample(level, lx, ly);
                    let o = (v * INPUT + u) * 3;
                    // Within half a grey level: the input steps along the crop while `to_image` maps each point
                    // afresh, and on this image a thousandth of a pixel moves a value by a tenth of a level. A
                    // wrong texel or weight is off by many levels.
                    for k in 0..3 {
                        assert!(
                            (got[o + k] - want[k] / 255.0).abs() < 0.5 / 255.0,
                            "{roi:?} {u},{v},{k}: {} {} at {lx},{ly} f {f}",
                            got[o + k],
                            want[k] / 255.0
                        );
                    }
                }
            }
        }
    }
}
