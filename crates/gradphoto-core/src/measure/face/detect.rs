//! BlazeFace short range: where the faces are. Pre-processing (letterbox to 128 × 128, RGB in [−1, 1]),
//! the 896 anchors, box and key-point decoding, and weighted non-maximum suppression, as MediaPipe does them.

use super::pyramid::Pyramid;
use crate::decode::RgbImage;

/// The detector's input side.
pub const INPUT: usize = 128;
/// Anchors: 16 × 16 × 2 at stride 8 and 8 × 8 × 6 at stride 16.
pub const ANCHORS: usize = 896;
/// Values per anchor in the regressor output: box (4) and six key points (12).
pub const VALUES: usize = 16;

/// Key points, in the subject's terms: the subject's right eye is on the image's left.
pub const RIGHT_EYE: usize = 0;
pub const LEFT_EYE: usize = 1;
pub const NOSE_TIP: usize = 2;
pub const MOUTH: usize = 3;
pub const RIGHT_EAR: usize = 4;
pub const LEFT_EAR: usize = 5;

/// A face found by the detector, in pixels of the analysed image.
#[derive(Debug, Clone, PartialEq)]
pub struct Detection {
    pub score: f32,
    /// x, y of the top-left corner, width, height.
    pub bbox: [f32; 4],
    pub keypoints: [[f32; 2]; 6],
}

impl Detection {
    pub fn center(&self) -> [f32; 2] {
        [self.bbox[0] + self.bbox[2] / 2.0, self.bbox[1] + self.bbox[3] / 2.0]
    }
}

/// How the image sits in the letterboxed input: input = (image − 0) · scale + pad.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Letterbox {
    pub scale: f32,
    pub pad_x: f32,
    pub pad_y: f32,
}

impl Letterbox {
    pub fn for_size(width: u32, height: u32, side: usize) -> Letterbox {
        let scale = side as f32 / width.max(height) as f32;
        Letterbox {
            scale,
            pad_x: (side as f32 - width as f32 * scale) / 2.0,
            pad_y: (side as f32 - height as f32 * scale) / 2.0,
        }
    }

    /// From normalised input coordinates (0–1 of the input side) to image pixels.
    pub fn to_image(&self, side: usize, x: f32, y: f32) -> [f32; 2] {
        [(x * side as f32 - self.pad_x) / self.scale, (y * side as f32 - self.pad_y) / self.scale]
    }
}

/// Bilinear sample of channel values at a real position, clamped to the image.
pub fn sample(img: &RgbImage, x: f32, y: f32) -> [f32; 3] {
    let (w, h) = (img.width as usize, img.height as usize);
    let x = x.clamp(0.0, (w - 1) as f32);
    let y = y.clamp(0.0, (h - 1) as f32);
    // Both are clamped to ≥ 0, where truncation is floor: `floor()` is a library call on baseline x86-64.
    let (x0, y0) = (x as usize, y as usize);
    let (x1, y1) = ((x0 + 1).min(w - 1), (y0 + 1).min(h - 1));
    let (fx, fy) = (x - x0 as f32, y - y0 as f32);
    let px = |xx: usize, yy: usize| {
        let i = (yy * w + xx) * 3;
        [f32::from(img.pixels[i]), f32::from(img.pixels[i + 1]), f32::from(img.pixels[i + 2])]
    };
    let (a, b, c, d) = (px(x0, y0), px(x1, y0), px(x0, y1), px(x1, y1));
    let mut out = [0.0; 3];
    for k in 0..3 {
        let top = a[k] + (b[k] - a[k]) * fx;
        let bottom = c[k] + (d[k] - c[k]) * fx;
        out[k] = top + (bottom - top) * fy;
    }
    out
}

/// The detector input: the whole image letterboxed into 128 × 128, RGB in [−1, 1], padding −1.
pub fn input(pyr: &Pyramid) -> (Vec<f32>, Letterbox) {
    let img = pyr.base();
    let lb = Letterbox::for_size(img.width, img.height, INPUT);
    let mut out = vec![-1.0f32; INPUT * INPUT * 3];
    let step = 1.0 / lb.scale;
    // Input pixel (x, y) sits at image position ((x + 0.5 − pad) / scale − 0.5): a resampling from −pad / scale.
    pyr.resample((-lb.pad_x * step, -lb.pad_y * step), (step, step), (INPUT, INPUT), |y, first, values| {
        let row = &mut out[(y * INPUT + first) * 3..][..values.len()];
        for (o, v) in row.iter_mut().zip(values) {
            *o = v * (1.0 / 127.5) - 1.0;
        }
    });
    (out, lb)
}

/// Anchor centres in normalised input coordinates, in the order of the model's outputs.
pub fn anchors() -> Vec<[f32; 2]> {
    let mut out = Vec::with_capacity(ANCHORS);
    for (grid, per_cell) in [(16usize, 2usize), (8, 6)] {
        for y in 0..grid {
            for x in 0..grid {
                for _ in 0..per_cell {
                    out.push([(x as f32 + 0.5) / grid as f32, (y as f32 + 0.5) / grid as f32]);
                }
            }
        }
    }
    out
}

fn iou(a: &[f32; 4], b: &[f32; 4]) -> f32 {
    let x0 = a[0].max(b[0]);
    let y0 = a[1].max(b[1]);
    let x1 = (a[0] + a[2]).min(b[0] + b[2]);
    let y1 = (a[1] + a[3]).min(b[1] + b[3]);
    let inter = (x1 - x0).max(0.0) * (y1 - y0).max(0.0);
    let union = a[2] * a[3] + b[2] * b[3] - inter;
    if union > 0.0 { inter / union } else { 0.0 }
}

/// Decodes the raw outputs into faces in image pixels: score ≥ `min_score`, weighted NMS at IoU 0.3.
pub fn decode(regressors: &[f32], scores: &[f32], lb: &Letterbox, min_score: f32) -> Vec<Detection> {
    let anchors = anchors();
    let side = INPUT as f32;
    let mut raw: Vec<Detection> = Vec::new();
    for (i, a) in anchors.iter().enumerate() {
        let (Some(r), Some(&logit)) = (regressors.get(i * VALUES..(i + 1) * VALUES), scores.get(i)) else { break };
        let score = 1.0 / (1.0 + (-logit.clamp(-100.0, 100.0)).exp());
        if score < min_score {
            continue;
        }
        let (cx, cy) = (r[0] / side + a[0], r[1] / side + a[1]);
        let (w, h) = (r[2] / side, r[3] / side);
        let tl = lb.to_image(INPUT, cx - w / 2.0, cy - h / 2.0);
        let br = lb.to_image(INPUT, cx + w / 2.0, cy + h / 2.0);
        let mut keypoints = [[0.0; 2]; 6];
        for (k, kp) in keypoints.iter_mut().enumerate() {
            *kp = lb.to_image(INPUT, r[4 + 2 * k] / side + a[0], r[5 + 2 * k] / side + a[1]);
        }
        raw.push(Detection { score, bbox: [tl[0], tl[1], br[0] - tl[0], br[1] - tl[1]], keypoints });
    }
    weighted_nms(raw, 0.3)
}

/// MediaPipe's weighted NMS: overlapping candidates are averaged, weighted by score, into the best one.
fn weighted_nms(mut candidates: Vec<Detection>, threshold: f32) -> Vec<Detection> {
    candidates.sort_by(|a, b| b.score.total_cmp(&a.score));
    let mut out = Vec::new();
    while let Some(best) = candidates.first().cloned() {
        let (group, rest): (Vec<Detection>, Vec<Detection>) =
            candidates.into_iter().partition(|c| iou(&best.bbox, &c.bbox) > threshold);
        candidates = rest;
        let total: f32 = group.iter().map(|d| d.score).sum();
        let mut merged = Detection { score: best.score, bbox: [0.0; 4], keypoints: [[0.0; 2]; 6] };
        for d in &group {
            let w = d.score / total;
            for k in 0..4 {
                merged.bbox[k] += d.bbox[k] * w;
            }
            for k in 0..6 {
                merged.keypoints[k][0] += d.keypoints[k][0] * w;
                merged.keypoints[k][1] += d.keypoints[k][1] * w;
            }
        }
        out.push(merged);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn anchor_layout() {
        let a = anchors();
        assert_eq!(a.len(), ANCHORS);
        assert_eq!(a[0], [0.5 / 16.0, 0.5 / 16.0]);
        assert_eq!(a[1], a[0]);
        assert_eq!(a[2], [1.5 / 16.0, 0.5 / 16.0]);
        assert_eq!(a[512], [0.5 / 8.0, 0.5 / 8.0]);
        assert_eq!(a[895], [7.5 / 8.0, 7.5 / 8.0]);
    }

    #[test]
    fn letterbox_round_trip() {
        let lb = Letterbox::for_size(480, 640, INPUT);
        assert_eq!(lb.scale, 0.2);
        assert_eq!((lb.pad_x, lb.pad_y), (16.0, 0.0));
        assert_eq!(lb.to_image(INPUT, 0.5, 0.5), [240.0, 320.0]);
    }

    #[test]
    fn a_synthetic_detection_decodes_and_overlaps_merge() {
        let lb = Letterbox::for_size(480, 640, INPUT);
        let mut reg = vec![0.0f32; ANCHORS * VALUES];
        let mut scores = vec![-10.0f32; ANCHORS];
        // Anchor 512 + 6 * (3 * 8 + 4): the stride-16 cell at x = 4, y = 3, centre (0.5625, 0.4375).
        for (i, dx) in [(512 + 6 * 28, 0.0f32), (512 + 6 * 28 + 1, 2.0)] {
            reg[i * VALUES] = dx;
            reg[i * VALUES + 2] = 40.0;
            reg[i * VALUES + 3] = 40.0;
            scores[i] = 3.0;
        }
        let d = decode(&reg, &scores, &lb, 0.5);
        assert_eq!(d.len(), 1, "two overlapping candidates merge");
        let c = d[0].center();
        // Centre: input x = 0.5625 · 128 + 1 (mean shift) = 73, image x = (73 − 16) / 0.2 = 285.
        assert!((c[0] - 285.0).abs() < 0.01, "{c:?}");
        assert!((c[1] - 0.4375 * 128.0 / 0.2).abs() < 0.01, "{c:?}");
        assert!((d[0].bbox[2] - 200.0).abs() < 0.01);
        assert!(decode(&reg, &scores, &lb, 0.99).is_empty());
    }
}
