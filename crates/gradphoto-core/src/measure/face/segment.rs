//! Selfie segmentation: the person mask. The whole image is stretched to 256 × 256, RGB in [0, 1]; the output is
//! the probability that a pixel belongs to the person.

use super::pyramid::Pyramid;

pub const INPUT: usize = 256;

pub fn input(pyr: &Pyramid) -> Vec<f32> {
    let img = pyr.base();
    input_of(pyr, [0.0, 0.0, img.width as f32, img.height as f32])
}

/// The model's input from a region of the image (left, top, width, height, in image pixels), stretched to
/// 256 × 256 as a whole image is.
pub fn input_of(pyr: &Pyramid, [left, top, width, height]: [f32; 4]) -> Vec<f32> {
    let mut out = vec![0.0f32; INPUT * INPUT * 3];
    let (sx, sy) = (width / INPUT as f32, height / INPUT as f32);
    pyr.resample((left, top), (sx, sy), (INPUT, INPUT), |y, first, values| {
        let row = &mut out[(y * INPUT + first) * 3..][..values.len()];
        for (o, v) in row.iter_mut().zip(values) {
            *o = v * (1.0 / 255.0);
        }
    });
    out
}

/// The person mask on a grid (the model's 256 × 256, or any other), sampled at image positions.
#[derive(Debug, Clone)]
pub struct Mask {
    pub probs: Vec<f32>,
    pub cols: usize,
    pub rows: usize,
    pub image_width: u32,
    pub image_height: u32,
    /// What the grid covers, in image pixels: left, top, width, height (the whole image, or the region the
    /// segmenter was shown). Outside it the nearest cell answers.
    pub region: [f32; 4],
}

impl Mask {
    /// The model's output: 256 × 256 over the whole image.
    pub fn new(probs: Vec<f32>, image_width: u32, image_height: u32) -> Mask {
        Mask::with_grid(probs, INPUT, INPUT, image_width, image_height)
    }

    /// A probability map on a grid of its own (`probs.len()` must be `cols × rows`).
    pub fn with_grid(probs: Vec<f32>, cols: usize, rows: usize, image_width: u32, image_height: u32) -> Mask {
        let region = [0.0, 0.0, image_width as f32, image_height as f32];
        Mask { probs, cols, rows, image_width, image_height, region }
    }

    /// The model's output for a region of the image (left, top, width, height; see [`input_of`]).
    pub fn of_region(probs: Vec<f32>, image_width: u32, image_height: u32, region: [f32; 4]) -> Mask {
        Mask { region, ..Mask::new(probs, image_width, image_height) }
    }

    /// Person probability at an image position (bilinear between grid cells).
    pub fn at(&self, x: f32, y: f32) -> f32 {
        let (nc, nr) = (self.cols as f32, self.rows as f32);
        let [left, top, width, height] = self.region;
        let mx = ((x + 0.5 - left) / width * nc - 0.5).clamp(0.0, nc - 1.0);
        let my = ((y + 0.5 - top) / height * nr - 0.5).clamp(0.0, nr - 1.0);
        // Clamped to ≥ 0 (NaN gives 0), so truncation is floor, without `floor()`'s library call.
        let (x0, y0) = (mx as usize, my as usize);
        let (x1, y1) = ((x0 + 1).min(self.cols - 1), (y0 + 1).min(self.rows - 1));
        let (fx, fy) = (mx - x0 as f32, my - y0 as f32);
        let p = |xx: usize, yy: usize| self.probs.get(yy * self.cols + xx).copied().unwrap_or(0.0);
        let top = p(x0, y0) + (p(x1, y0) - p(x0, y0)) * fx;
        let bottom = p(x0, y1) + (p(x1, y1) - p(x0, y1)) * fx;
        top + (bottom - top) * fy
    }

    pub fn is_person(&self, x: f32, y: f32) -> bool {
        self.at(x, y) >= 0.5
    }

    /// The first image row, from the top of the region, at which the column at `x` turns to person (sub-pixel,
    /// by interpolating the probability between rows); None when the column never does above `below`.
    pub fn top_in_column(&self, x: f32, below: f32) -> Option<f32> {
        let first = self.region[1].ceil().max(0.0);
        let mut prev = self.at(x, first);
        if prev >= 0.5 {
            return Some(first);
        }
        let mut y = first + 1.0;
        // Bounded by the image, whatever `below` says.
        let below = below.min(self.image_height as f32);
        while y <= below {
            let p = self.at(x, y);
            if p >= 0.5 {
                return Some(y - 1.0 + (0.5 - prev) / (p - prev));
            }
            prev = p;
            y += 1.0;
        }
        None
    }
}
