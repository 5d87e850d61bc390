//! The depthwise rows that take most of a depthwise layer's time: multiplier 1, a square 3 × 3 or 5 × 5 kernel,
//! stride 1 or 2, no dilation, all kernel rows inside the input (every output row but the first and last). For
//! each vector of channels the k × k weights are loaded once (a 3 × 3 kernel's nine stay in registers) and the
//! row is swept PIX output pixels at a time: each input vector a block needs is loaded once and used by every
//! tap of every pixel that reads it (LLVM merges the repeated loads of one address), so a 3 × 3 stride-1 block
//! of 4 pixels does 36 FMAs from 18 loads. Channel counts that are not whole vectors (28, 36, 42) take one more,
//! overlapping vector at the end: it recomputes a few channels with the same result instead of using partial
//! loads and stores.

use pulp::Simd;

/// Output pixels per register block: 4 accumulators + 9 weights + the loaded inputs fit AVX's 16 registers.
const PIX: usize = 4;

/// One output row. `rows` are the k input rows of the kernel (all inside the input), `weights` [k][k][c],
/// `xs[ox]` the kernel columns inside the input (first, end) and the input column of the first, as
/// `kernels::tap_ranges` gives them. Returns false, doing nothing, when the shape is not one this handles.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
pub(crate) fn row<S: Simd>(
    simd: S,
    k: usize,
    stride: usize,
    rows: &[&[f32]],
    weights: &[f32],
    bias: &[f32],
    xs: &[(usize, usize, usize)],
    c: usize,
    out: &mut [f32],
) -> bool {
    if c < S::F32_LANES || rows.len() != k {
        return false;
    }
    match (k, stride) {
        (3, 1) => row_k::<S, 3, 1>(simd, rows, weights, bias, xs, c, out),
        (3, 2) => row_k::<S, 3, 2>(simd, rows, weights, bias, xs, c, out),
        (5, 1) => row_k::<S, 5, 1>(simd, rows, weights, bias, xs, c, out),
        (5, 2) => row_k::<S, 5, 2>(simd, rows, weights, bias, xs, c, out),
        _ => return false,
    }
    true
}

#[inline(always)]
fn row_k<S: Simd, const K: usize, const STRIDE: usize>(
    simd: S,
    rows: &[&[f32]],
    weights: &[f32],
    bias: &[f32],
    xs: &[(usize, usize, usize)],
    c: usize,
    out: &mut [f32],
) {
    let lanes = S::F32_LANES;
    let load = |s: &[f32], at: usize| S::as_simd_f32s(&s[at..at + lanes]).0[0];
    let rows: [&[f32]; K] = std::array::from_fn(|ky| rows[ky]);
    let out_w = xs.len();
    // Interior pixels (all K taps inside the row) form one run [lo, hi).
    let inside = |ox: usize| xs[ox].0 == 0 && xs[ox].1 == K;
    let lo = (0..out_w).find(|&ox| inside(ox)).unwrap_or(out_w);
    let hi = (lo..out_w).find(|&ox| !inside(ox)).unwrap_or(out_w);
    // Channel vectors: whole ones, then one ending at c if c is not a multiple of the width.
    let groups = c / lanes + usize::from(!c.is_multiple_of(lanes));
    for gi in 0..groups {
        let c0 = (gi * lanes).min(c - lanes);
        let w: [[S::f32s; K]; K] =
            std::array::from_fn(|ky| std::array::from_fn(|kx| load(weights, (ky * K + kx) * c + c0)));
        let b = load(bias, c0);
        // Views starting at this vector's channels: a pixel's vector is then `load(r, x * c)`.
        let rs: [&[f32]; K] = std::array::from_fn(|ky| &rows[ky][c0..]);
        let o = &mut out[c0..];
        let mut ox = 0;
        while ox < out_w {
            if ox >= lo && ox + PIX <= hi {
                let x0 = xs[ox].2;
                let mut acc = [b; PIX];
                for (r, w) in rs.iter().zip(&w) {
                    let r = &r[x0 * c..];
                    for (q, acc) in acc.iter_mut().enumerate() {
                        for (kx, &w) in w.iter().enumerate() {
                            *acc = simd.mul_add_e_f32s(load(r, (q * STRIDE + kx) * c), w, *acc);
                        }
                    }
                }
                for (q, acc) in acc.iter().enumerate() {
                    S::as_mut_simd_f32s(&mut o[(ox + q) * c..][..lanes]).0[0] = *acc;
                }
                ox += PIX;
            } else {
                // Edge pixels and the run's last few: the taps inside the row, one pixel.
                let (kx0, kx1, ix0) = xs[ox];
                let mut acc = b;
                for (r, w) in rs.iter().zip(&w) {
                    for (t, &w) in w[kx0..kx1].iter().enumerate() {
                        acc = simd.mul_add_e_f32s(load(r, (ix0 + t) * c), w, acc);
                    }
                }
                S::as_mut_simd_f32s(&mut o[ox * c..][..lanes]).0[0] = acc;
                ox += 1;
            }
        }
    }
}
