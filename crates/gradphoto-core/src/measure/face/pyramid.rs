//! An image pyramid (each level half the size of the one before, by 2 × 2 averages), so that the model inputs are
//! sampled from a level at most twice their resolution: bilinear sampling is then both cheap and free of aliasing.

use super::detect::sample;
use crate::decode::RgbImage;

/// The base is borrowed: copying a 12 MP original's 750 × 1000 analysis image (2.25 MB of fresh pages) cost more
/// than the halvings.
pub struct Pyramid<'a> {
    base: &'a RgbImage,
    /// Level 1 (half the base) onwards.
    above: Vec<RgbImage>,
}

/// The next level: each pixel the rounded mean of a 2 × 2 block (an odd last row or column is left out).
/// `Pyramid::new` halves only images at least 128 pixels on each side, so every output pixel has a whole block.
/// The two rows are summed first over their whole length, which the compiler turns into vector adds, and the
/// pairs of pixels then: a 12 MP original's 750 × 1000 base took 2.7 ms per check pixel by pixel.
fn half(img: &RgbImage) -> RgbImage {
    let (w, h) = ((img.width / 2).max(1) as usize, (img.height / 2).max(1) as usize);
    let (sw, sh) = (img.width as usize, img.height as usize);
    let mut out = vec![0u8; w * h * 3];
    let mut sums = vec![0u16; sw * 3];
    for (y, dst) in out.chunks_exact_mut(w * 3).enumerate() {
        let (r0, r1) = ((2 * y).min(sh - 1), (2 * y + 1).min(sh - 1));
        let (top, bottom) = (&img.pixels[r0 * sw * 3..][..sw * 3], &img.pixels[r1 * sw * 3..][..sw * 3]);
        for ((s, &t), &b) in sums.iter_mut().zip(top).zip(bottom) {
            *s = u16::from(t) + u16::from(b);
        }
        for (d, pair) in dst.chunks_exact_mut(3).zip(sums.chunks_exact(6)) {
            for k in 0..3 {
                d[k] = ((pair[k] + pair[k + 3] + 2) / 4) as u8;
            }
        }
    }
    RgbImage { width: w as u32, height: h as u32, pixels: out }
}

impl<'a> Pyramid<'a> {
    /// Levels down to about 64 pixels on the short side.
    pub fn new(img: &'a RgbImage) -> Pyramid<'a> {
        Pyramid::for_step(img, f32::INFINITY)
    }

    /// Only the levels that sampling at `step` base pixels per sample reads (see [`Pyramid::level`]): a rendering
    /// at the image's own scale, as the annotated picture of a registered photo is, needs the base alone.
    pub fn for_step(img: &'a RgbImage, step: f32) -> Pyramid<'a> {
        let mut above: Vec<RgbImage> = Vec::new();
        let mut f = 1.0f32;
        loop {
            let last = above.last().unwrap_or(img);
            if last.width.min(last.height) < 128 || step < 2.0 * f * 2.0 {
                break;
            }
            let next = half(last);
            above.push(next);
            f *= 2.0;
        }
        Pyramid { base: img, above }
    }

    pub fn base(&self) -> &RgbImage {
        self.base
    }

    /// The level for `step` base pixels per sample, and its size factor: the smallest level still at least twice
    /// as fine as the sampling.
    pub fn level(&self, step: f32) -> (&RgbImage, f32) {
        let mut level = 0;
        let mut f = 1.0f32;
        while level < self.above.len() && step >= 2.0 * f * 2.0 {
            level += 1;
            f *= 2.0;
        }
        (if level == 0 { self.base } else { &self.above[level - 1] }, f)
    }

    /// Bilinear sample at base-image position (x, y) from the level suited to `step` base pixels per sample.
    pub fn sample(&self, x: f32, y: f32, step: f32) -> [f32; 3] {
        let (img, f) = self.level(step);
        // Pixel centres: base x maps to (x + 0.5) / f − 0.5 at a level f times smaller.
        sample(img, (x + 0.5) / f - 0.5, (y + 0.5) / f - 0.5)
    }

    /// An axis-aligned resampling into `out_w × out_h`: output pixel (i, j) takes the base position
    /// (x0 + (i + 0.5)·sx − 0.5, y0 + (j + 0.5)·sy − 0.5), bilinear. Positions outside the image are left out:
    /// `write(j, first, values)` gets output row j from column `first` on, three values per column, for the columns
    /// inside the image (always one run: the mapping is monotonic); rows outside are not written at all.
    /// Separable, row at a time: the two source rows are interpolated across into buffers, then blended
    /// down, so the inner loops are flat slices without per-pixel closures (a 480 × 640 rendering of a
    /// 12 MP original's analysis image took 4 ms pixel by pixel).
    pub fn resample(
        &self,
        (x0, y0): (f32, f32),
        (sx, sy): (f32, f32),
        (out_w, out_h): (usize, usize),
        mut write: impl FnMut(usize, usize, &[f32]),
    ) {
        let (img, f) = self.level(sx.max(sy));
        let (w, h) = (img.width as usize, img.height as usize);
        // For each output index: the two source indices, the weight of the second, or None when outside.
        let axis = |n: usize, origin: f32, step: f32, size: usize, full: u32| -> Vec<Option<(usize, usize, f32)>> {
            (0..n)
                .map(|i| {
                    let base = origin + (i as f32 + 0.5) * step - 0.5;
                    if base < -0.5 || base > full as f32 - 0.5 {
                        return None;
                    }
                    let p = ((base + 0.5) / f - 0.5).clamp(0.0, (size - 1) as f32);
                    let a = p.floor() as usize;
                    Some((a, (a + 1).min(size - 1), p - a as f32))
                })
                .collect()
        };
        let cols = axis(out_w, x0, sx, w, self.base.width);
        let rows = axis(out_h, y0, sy, h, self.base.height);
        let Some(first) = cols.iter().position(Option::is_some) else { return };
        // The inside columns as byte offsets into a source row, and their weights.
        let inside: Vec<(usize, usize, f32)> =
            cols[first..].iter().map_while(|c| c.map(|(a, b, fx)| (a * 3, b * 3, fx))).collect();
        let n = inside.len() * 3;
        let across = |row: &[u8], out: &mut [f32]| {
            for (o, &(a, b, fx)) in out.chunks_exact_mut(3).zip(&inside) {
                let (p, q) = (&row[a..a + 3], &row[b..b + 3]);
                for k in 0..3 {
                    let (p, q) = (f32::from(p[k]), f32::from(q[k]));
                    o[k] = p + (q - p) * fx;
                }
            }
        };
        let (mut top, mut bottom, mut blended) = (vec![0.0f32; n], vec![0.0f32; n], vec![0.0f32; n]);
        // The source rows `top` and `bottom` hold now: neighbouring output rows often share them.
        let mut held = (usize::MAX, usize::MAX);
        let px = &img.pixels;
        let source = |y: usize| &px[y * w * 3..][..w * 3];
        for (j, row) in rows.iter().enumerate() {
            let Some((ya, yb, fy)) = *row else { continue };
            if held != (ya, yb) {
                if held.1 == ya {
                    std::mem::swap(&mut top, &mut bottom);
                } else {
                    across(source(ya), &mut top);
                }
                across(source(yb), &mut bottom);
                held = (ya, yb);
            }
            for ((o, &t), &b) in blended.iter_mut().zip(&top).zip(&bottom) {
                *o = t + (b - t) * fy;
            }
            write(j, first, &blended);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An image whose neighbouring pixels all differ, so that any wrong level or weight shows.
    fn busy(width: u32, height: u32) -> RgbImage {
        let n = u64::from(width) * u64::from(height) * 3;
        RgbImage { width, height, pixels: (0..n).map(|i| ((i * 7919) % 251) as u8).collect() }
    }

    #[test]
    fn resample_matches_per_pixel_sampling() {
        let img = busy(300, 400);
        let p = Pyramid::new(&img);
        // Shrinking (from a finer level) and enlarging (neighbouring output rows share their source rows).
        for (sx, sy, out_w, out_h) in [(300.0 / 64.0, 400.0 / 80.0, 64, 80), (0.37, 0.41, 90, 70)] {
            let mut n = 0;
            p.resample((0.0, 0.0), (sx, sy), (out_w, out_h), |j, first, values| {
                assert_eq!((first, values.len()), (0, out_w * 3));
                for (i, rgb) in values.chunks_exact(3).enumerate() {
                    let want = p.sample((i as f32 + 0.5) * sx - 0.5, (j as f32 + 0.5) * sy - 0.5, sx.max(sy));
                    assert!(rgb.iter().zip(want).all(|(a, b)| (a - b).abs() < 1e-3), "{i},{j}: {rgb:?} {want:?}");
                    n += 1;
                }
            });
            assert_eq!(n, out_w * out_h);
        }
        // Positions outside the image are left out: a frame offset by half its width gets its right half, a frame
        // above the image only the rows inside.
        let (sx, sy) = (300.0 / 64.0, 400.0 / 80.0);
        let mut inside = 0;
        p.resample((-150.0, 0.0), (sx, sy), (64, 80), |_, first, values| {
            assert_eq!(first, 32);
            inside += values.len() / 3;
        });
        assert_eq!(inside, 32 * 80);
        let mut rows = Vec::new();
        p.resample((0.0, -200.0), (sx, sy), (64, 80), |j, _, _| rows.push(j));
        assert_eq!(rows, (40..80).collect::<Vec<_>>());
    }

    #[test]
    fn a_pyramid_for_one_step_samples_as_the_whole_one() {
        let img = busy(640, 480);
        let whole = Pyramid::new(&img);
        for step in [0.5, 1.0, 3.9, 4.0, 7.0, 9.0, 40.0] {
            let part = Pyramid::for_step(&img, step);
            assert!(part.above.len() <= whole.above.len());
            assert_eq!(part.sample(321.7, 123.2, step), whole.sample(321.7, 123.2, step), "step {step}");
        }
        assert!(Pyramid::for_step(&img, 1.0).above.is_empty());
    }

    #[test]
    fn a_level_is_the_rounded_mean_of_each_block() {
        // Odd sizes: the last row and column have no block and are left out.
        let img = busy(301, 403);
        let next = half(&img);
        assert_eq!((next.width, next.height), (150, 201));
        let at = |x: usize, y: usize, k: usize| u16::from(img.pixels[(y * 301 + x) * 3 + k]);
        for y in 0..201 {
            for x in 0..150 {
                for k in 0..3 {
                    let sum = at(2 * x, 2 * y, k)
                        + at(2 * x + 1, 2 * y, k)
                        + at(2 * x, 2 * y + 1, k)
                        + at(2 * x + 1, 2 * y + 1, k);
                    assert_eq!(u16::from(next.pixels[(y * 150 + x) * 3 + k]), (sum + 2) / 4, "{x},{y},{k}");
                }
            }
        }
    }

    #[test]
    fn levels_halve_and_average() {
        let img =
            RgbImage { width: 300, height: 400, pixels: (0..300 * 400 * 3).map(|i| (i % 7 * 30) as u8).collect() };
        let p = Pyramid::new(&img);
        assert_eq!((p.above[0].width, p.above[0].height), (150, 200));
        assert_eq!(p.above.last().unwrap().width.min(p.above.last().unwrap().height), 75);
        // A flat image stays flat at every level and every sampling step.
        let flat = RgbImage { width: 300, height: 400, pixels: vec![77; 300 * 400 * 3] };
        let p = Pyramid::new(&flat);
        for step in [1.0, 3.0, 9.0] {
            assert_eq!(p.sample(123.4, 234.5, step), [77.0; 3]);
        }
    }
}
