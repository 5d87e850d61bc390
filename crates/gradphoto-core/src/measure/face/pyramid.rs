//! An image pyramid (each level half the size of the one before, by 2 × 2 averages), so that the model inputs are
//! sampled from a level at most twice their resolution: bilinear sampling is then both cheap and free of aliasing.

use super::detect::sample;
use crate::decode::RgbImage;

pub struct Pyramid {
    levels: Vec<RgbImage>,
}

fn half(img: &RgbImage) -> RgbImage {
    let (w, h) = ((img.width / 2).max(1) as usize, (img.height / 2).max(1) as usize);
    let sw = img.width as usize;
    let mut out = vec![0u8; w * h * 3];
    for y in 0..h {
        let (r0, r1) = ((2 * y).min(img.height as usize - 1), (2 * y + 1).min(img.height as usize - 1));
        for x in 0..w {
            let (c0, c1) = ((2 * x).min(sw - 1), (2 * x + 1).min(sw - 1));
            for k in 0..3 {
                let s = u16::from(img.pixels[(r0 * sw + c0) * 3 + k])
                    + u16::from(img.pixels[(r0 * sw + c1) * 3 + k])
                    + u16::from(img.pixels[(r1 * sw + c0) * 3 + k])
                    + u16::from(img.pixels[(r1 * sw + c1) * 3 + k]);
                out[(y * w + x) * 3 + k] = ((s + 2) / 4) as u8;
            }
        }
    }
    RgbImage { width: w as u32, height: h as u32, pixels: out }
}

impl Pyramid {
    /// Levels down to about 64 pixels on the short side.
    pub fn new(img: &RgbImage) -> Pyramid {
        let mut levels = vec![img.clone()];
        while let Some(last) = levels.last()
            && last.width.min(last.height) >= 128
        {
            let next = half(last);
            levels.push(next);
        }
        Pyramid { levels }
    }

    pub fn base(&self) -> &RgbImage {
        &self.levels[0]
    }

    /// Bilinear sample at base-image position (x, y) from the level suited to `step` base pixels per sample.
    pub fn sample(&self, x: f32, y: f32, step: f32) -> [f32; 3] {
        let mut level = 0;
        let mut f = 1.0f32;
        while level + 1 < self.levels.len() && step >= 2.0 * f * 2.0 {
            level += 1;
            f *= 2.0;
        }
        // Pixel centres: base x maps to (x + 0.5) / f − 0.5 at a level f times smaller.
        sample(&self.levels[level], (x + 0.5) / f - 0.5, (y + 0.5) / f - 0.5)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_halve_and_average() {
        let img =
            RgbImage { width: 300, height: 400, pixels: (0..300 * 400 * 3).map(|i| (i % 7 * 30) as u8).collect() };
        let p = Pyramid::new(&img);
        assert_eq!((p.levels[1].width, p.levels[1].height), (150, 200));
        assert_eq!(p.levels.last().unwrap().width.min(p.levels.last().unwrap().height), 75);
        // A flat image stays flat at every level and every sampling step.
        let flat = RgbImage { width: 300, height: 400, pixels: vec![77; 300 * 400 * 3] };
        let p = Pyramid::new(&flat);
        for step in [1.0, 3.0, 9.0] {
            assert_eq!(p.sample(123.4, 234.5, step), [77.0; 3]);
        }
    }
}
