//! Signs that the picture is a photo of a screen or of a print: a fine periodic pattern (the screen's pixel grid
//! and its colour stripes, a printer's halftone dots) laid over everything, background and skin alike. A camera's
//! own picture of a person has no single strong frequency in a small flat patch; a re-photographed one has the
//! same one in every patch. Numbers only; the judge decides.

use serde::Serialize;

use super::face::mesh::index as lm;
use super::face::segment::Mask;
use super::occlusion::FaceFrame;
use crate::decode::RgbImage;

/// Patch side in analysed pixels: a power of two for the FFT, small enough to fit on a cheek at the rendering's
/// scale (0.13 of a 240 px face), with 32 frequency steps, fine enough to resolve a 3–6 px screen or halftone pitch.
const N: usize = 32;
/// Frequencies below this many cycles per patch are shading and face shape, not a pattern.
const MIN_FREQ: usize = 3;
/// Amplitude (grey levels) added to the typical one before dividing: a painted, nearly flat background has
/// almost no texture, and a faint stray peak over nothing must not count as a pattern.
const FLOOR: f32 = 0.15;

/// The strongest single frequency against the typical one, patch by patch.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Periodicity {
    /// Median over the patches of (peak amplitude / (median amplitude + floor)), the larger of luma and the red −
    /// green difference (the colour stripes of a screen).
    pub score: f32,
    /// Patches measured: background first, then skin.
    pub patches: usize,
}

fn fft(re: &mut [f32; N], im: &mut [f32; N]) {
    let bits = N.trailing_zeros();
    for i in 0..N {
        let j = i.reverse_bits() >> (usize::BITS - bits);
        if j > i {
            re.swap(i, j);
            im.swap(i, j);
        }
    }
    let mut len = 2;
    while len <= N {
        let ang = -2.0 * std::f32::consts::PI / len as f32;
        for start in (0..N).step_by(len) {
            for k in 0..len / 2 {
                let (s, c) = (ang * k as f32).sin_cos();
                let (a, b) = (start + k, start + k + len / 2);
                let (tr, ti) = (re[b] * c - im[b] * s, re[b] * s + im[b] * c);
                re[b] = re[a] - tr;
                im[b] = im[a] - ti;
                re[a] += tr;
                im[a] += ti;
            }
        }
        len *= 2;
    }
}

/// Peak over typical amplitude of one channel of one patch (values row by row, N × N).
fn peak_ratio(values: &[f32], window: &[f32; N]) -> f32 {
    let mean = values.iter().sum::<f32>() / values.len() as f32;
    let mut re = [[0.0f32; N]; N];
    let mut im = [[0.0f32; N]; N];
    for y in 0..N {
        for x in 0..N {
            re[y][x] = (values[y * N + x] - mean) * window[x] * window[y];
        }
        fft(&mut re[y], &mut im[y]);
    }
    let wsum: f32 = window.iter().sum::<f32>().powi(2);
    let mut amps = Vec::with_capacity(N * N / 2);
    let mut peak = 0.0f32;
    for x in 0..N {
        let mut cr = [0.0f32; N];
        let mut ci = [0.0f32; N];
        for y in 0..N {
            cr[y] = re[y][x];
            ci[y] = im[y][x];
        }
        fft(&mut cr, &mut ci);
        // One half of the plane: the other mirrors it.
        for y in 0..=N / 2 {
            let (u, v) = (if x > N / 2 { N - x } else { x }, y);
            if u * u + v * v < MIN_FREQ * MIN_FREQ {
                continue;
            }
            // The 8 × 8 blocks of JPEG put energy at multiples of N / 8 in both directions: not a sign of anything.
            if u % (N / 8) == 0 && v % (N / 8) == 0 {
                continue;
            }
            let a = cr[y].hypot(ci[y]) / wsum;
            peak = peak.max(a);
            amps.push(a);
        }
    }
    amps.sort_by(f32::total_cmp);
    peak / (amps[amps.len() / 2] + FLOOR)
}

/// Patch corners (top-left, analysed pixels): background tiles clear of the person, and three skin patches.
fn patch_origins(img: &RgbImage, l: &[[f32; 3]], mask: &Mask) -> Vec<[f32; 2]> {
    let (w, h) = (img.width as f32, img.height as f32);
    let n = N as f32;
    let mut out = Vec::new();
    if w < 2.0 * n || h < 2.0 * n {
        return out;
    }
    // Background: the tiles of a coarse grid whose corners and centre are all clear of the person.
    let mut background = Vec::new();
    let step = (w.min(h) / 6.0).max(n);
    // Half a patch in from the edges: an edge (a frame, the border of the scan) is a step, and a step's spectrum
    // is a line of peaks that is not a pattern; content.no_additions judges frames.
    let margin = n / 2.0;
    let mut y = margin;
    while y + n + margin <= h {
        let mut x = margin;
        while x + n + margin <= w {
            let clear = [(0.0, 0.0), (n, 0.0), (0.0, n), (n, n), (n / 2.0, n / 2.0)]
                .iter()
                .all(|(dx, dy)| mask.at(x + dx, y + dy) < 0.1);
            if clear {
                background.push([x, y]);
            }
            x += step;
        }
        y += step;
    }
    // At most six, spread over the candidates.
    let k = background.len().div_ceil(6).max(1);
    out.extend(background.into_iter().step_by(k));
    let f = FaceFrame::new(l);
    let nose = l[lm::NOSE_TIP];
    for cheek in [l[lm::RIGHT_CHEEK], l[lm::LEFT_CHEEK]] {
        let c = [cheek[0] + (nose[0] - cheek[0]) * 0.4, cheek[1] + (nose[1] - cheek[1]) * 0.4];
        out.push([c[0] - n / 2.0, c[1] - n / 2.0]);
    }
    let brows =
        [(l[lm::RIGHT_BROW][0] + l[lm::LEFT_BROW][0]) / 2.0, (l[lm::RIGHT_BROW][1] + l[lm::LEFT_BROW][1]) / 2.0];
    let forehead = f.offset(brows, 0.0, -0.12);
    out.push([forehead[0] - n / 2.0, forehead[1] - n / 2.0]);
    out.retain(|p| p[0] >= 0.0 && p[1] >= 0.0 && p[0] + n <= w && p[1] + n <= h);
    out
}

pub fn periodicity(img: &RgbImage, l: &[[f32; 3]], mask: &Mask) -> Option<Periodicity> {
    let origins = patch_origins(img, l, mask);
    if origins.is_empty() {
        return None;
    }
    let window: [f32; N] =
        std::array::from_fn(|i| 0.5 - 0.5 * (2.0 * std::f32::consts::PI * (i as f32 + 0.5) / N as f32).cos());
    let mut scores: Vec<f32> = origins
        .iter()
        .map(|o| {
            let (x0, y0) = (o[0] as u32, o[1] as u32);
            let mut luma = vec![0.0f32; N * N];
            let mut chroma = vec![0.0f32; N * N];
            for y in 0..N {
                for x in 0..N {
                    let p = img.pixel(x0 + x as u32, y0 + y as u32).map(f32::from);
                    luma[y * N + x] = 0.299 * p[0] + 0.587 * p[1] + 0.114 * p[2];
                    chroma[y * N + x] = p[0] - p[1];
                }
            }
            peak_ratio(&luma, &window).max(peak_ratio(&chroma, &window))
        })
        .collect();
    let patches = scores.len();
    scores.sort_by(f32::total_cmp);
    Some(Periodicity { score: scores[patches / 2], patches })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sinusoid_stands_out_and_noise_does_not() {
        let window: [f32; N] =
            std::array::from_fn(|i| 0.5 - 0.5 * (2.0 * std::f32::consts::PI * (i as f32 + 0.5) / N as f32).cos());
        let grid: Vec<f32> =
            (0..N * N).map(|i| 128.0 + 6.0 * (2.0 * std::f32::consts::PI * (i % N) as f32 / 3.3).cos()).collect();
        let mut seed = 12345u32;
        let noise: Vec<f32> = (0..N * N)
            .map(|_| {
                seed ^= seed << 13;
                seed ^= seed >> 17;
                seed ^= seed << 5;
                128.0 + (seed % 13) as f32 - 6.0
            })
            .collect();
        let (g, n) = (peak_ratio(&grid, &window), peak_ratio(&noise, &window));
        assert!(g > 3.0 * n, "grid {g}, noise {n}");
    }
}
