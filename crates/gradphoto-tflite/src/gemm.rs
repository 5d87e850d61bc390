//! The matrix product under every convolution: `out[p] = bias + a[p] · W` for each row p (an output pixel's
//! inputs), W being [K][N]. These models' matrices are narrow (N of 16 to 128, K of 16 to 288) and their rows
//! many, so a general GEMM spends most of its time packing the rows. Here W is packed once, at load, into
//! blocks of 16 columns; the rows are read where they lie; 4 rows × 16 columns accumulate in registers over
//! all of K. The vector width is chosen at run time (`pulp`: AVX2 + FMA on most x86-64 machines, NEON on ARM,
//! scalar elsewhere), through a safe API.

use pulp::{Simd, WithSimd};

/// Columns per packed block: two AVX vectors, four NEON ones.
const BLOCK: usize = 16;
/// Rows per register block: 4 × 2 accumulators plus the weights fit the 16 AVX registers.
const ROWS: usize = 4;

/// W packed as `ceil(N / 16)` blocks of [K][16], the last block's missing columns zero.
#[derive(Debug)]
pub(crate) struct Packed {
    pub k: usize,
    pub n: usize,
    data: Vec<f32>,
}

impl Packed {
    /// From W in [K][N] row-major order.
    pub(crate) fn new(w: &[f32], k: usize, n: usize) -> Packed {
        let blocks = n.div_ceil(BLOCK);
        let mut data = vec![0.0; blocks * k * BLOCK];
        for (b, block) in data.chunks_exact_mut(k * BLOCK).enumerate() {
            let width = BLOCK.min(n - b * BLOCK);
            for (kk, row) in block.chunks_exact_mut(BLOCK).enumerate() {
                row[..width].copy_from_slice(&w[kk * n + b * BLOCK..][..width]);
            }
        }
        Packed { k, n, data }
    }

    /// `out[p][..n] = bias + a[p][..k] · W` for the `a.len() / k` rows of `a`; `bias`, when given, is `n` long.
    pub(crate) fn product(&self, a: &[f32], bias: Option<&[f32]>, out: &mut [f32]) {
        pulp::Arch::new().dispatch(Product { w: self, a, bias, out });
    }
}

struct Product<'a> {
    w: &'a Packed,
    a: &'a [f32],
    bias: Option<&'a [f32]>,
    out: &'a mut [f32],
}

impl WithSimd for Product<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: Simd>(self, simd: S) {
        let Product { w, a, bias, out } = self;
        let (k, n) = (w.k, w.n);
        let lanes = S::F32_LANES;
        // Vectors per block (2 for AVX); the arrays below are sized for the narrowest (scalar) case.
        let nv = BLOCK / lanes;
        let m = a.len() / k;
        let zero = simd.splat_f32s(0.0);
        // Lane range of vector v within a block of `width` valid columns.
        let span = |v: usize, width: usize| ((v * lanes).min(width), ((v + 1) * lanes).min(width));
        for (b, block) in w.data.chunks_exact(k * BLOCK).enumerate() {
            let n0 = b * BLOCK;
            let width = BLOCK.min(n - n0);
            let mut start = [zero; BLOCK];
            if let Some(bias) = bias {
                for (v, s) in start.iter_mut().enumerate().take(nv) {
                    let (lo, hi) = span(v, width);
                    *s = simd.partial_load_f32s(&bias[n0 + lo..n0 + hi]);
                }
            }
            let mut p = 0;
            while p < m {
                let rows = ROWS.min(m - p);
                let mut acc = [start; ROWS];
                if rows == ROWS {
                    let a_rows: [&[f32]; ROWS] = std::array::from_fn(|r| &a[(p + r) * k..][..k]);
                    for (kk, w_row) in block.chunks_exact(BLOCK).enumerate() {
                        let (wv, _) = S::as_simd_f32s(w_row);
                        for (acc, a_row) in acc.iter_mut().zip(&a_rows) {
                            let x = simd.splat_f32s(a_row[kk]);
                            for v in 0..nv {
                                acc[v] = simd.mul_add_e_f32s(x, wv[v], acc[v]);
                            }
                        }
                    }
                } else {
                    for (r, acc) in acc.iter_mut().enumerate().take(rows) {
                        for (&x, w_row) in a[(p + r) * k..][..k].iter().zip(block.chunks_exact(BLOCK)) {
                            let (wv, _) = S::as_simd_f32s(w_row);
                            let x = simd.splat_f32s(x);
                            for v in 0..nv {
                                acc[v] = simd.mul_add_e_f32s(x, wv[v], acc[v]);
                            }
                        }
                    }
                }
                for (r, acc) in acc.iter().enumerate().take(rows) {
                    let o = &mut out[(p + r) * n + n0..][..width];
                    if width == BLOCK {
                        let (ov, _) = S::as_mut_simd_f32s(o);
                        ov.copy_from_slice(&acc[..nv]);
                    } else {
                        for (v, &x) in acc.iter().enumerate().take(nv) {
                            let (lo, hi) = span(v, width);
                            simd.partial_store_f32s(&mut o[lo..hi], x);
                        }
                    }
                }
                p += rows;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every shape class the models have (narrow, wide, a remainder block, fewer rows than a register block)
    /// against the plain triple loop.
    #[test]
    fn product_matches_the_definition() {
        for (m, k, n) in [(37, 16, 16), (9, 27, 16), (5, 16, 72), (1, 288, 1404), (3, 5, 3), (8, 128, 128)] {
            let a: Vec<f32> = (0..m * k).map(|i| ((i * 7919) % 23) as f32 * 0.1 - 1.0).collect();
            let w: Vec<f32> = (0..k * n).map(|i| ((i * 104_729) % 19) as f32 * 0.05 - 0.4).collect();
            let bias: Vec<f32> = (0..n).map(|i| i as f32 * 0.01).collect();
            let packed = Packed::new(&w, k, n);
            let mut fast = vec![f32::NAN; m * n];
            packed.product(&a, Some(&bias), &mut fast);
            // The fallback for CPUs without vector units, forced.
            let mut scalar = vec![f32::NAN; m * n];
            Product { w: &packed, a: &a, bias: Some(&bias), out: &mut scalar }.with_simd(pulp::Scalar::new());
            for p in 0..m {
                for j in 0..n {
                    let want = bias[j] + (0..k).map(|kk| a[p * k + kk] * w[kk * n + j]).sum::<f32>();
                    for got in [fast[p * n + j], scalar[p * n + j]] {
                        assert!(
                            (got - want).abs() <= 1e-4 * want.abs().max(1.0),
                            "{m}x{k}x{n} [{p}][{j}]: {got} vs {want}"
                        );
                    }
                }
            }
        }
    }
}
