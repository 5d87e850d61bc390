//! The matrix product under every convolution: `out[p] = bias + a[p] · W` for each row p (an output pixel's
//! inputs), W being [K][N]. These models' matrices are narrow (N of 16 to 128, K of 16 to 288) and their rows
//! many, so a general GEMM spends most of its time packing the rows. Here W is packed once, at load, into
//! blocks of 16 (or 8) columns; the rows are read where they lie; 6 rows × 16 columns (8 × 8) accumulate in
//! registers over all of K. The vector width is chosen at run time (`pulp`: AVX2 + FMA on most x86-64 machines, NEON on ARM,
//! scalar elsewhere), through a safe API.

use pulp::{Simd, WithSimd};

/// Columns per packed block: two AVX vectors, four NEON ones. A last remainder of at most 8 columns gets a block
/// of 8 instead, so that 24, 72 or 88 columns waste nothing and 4 columns waste half a vector, not three.
const BLOCK: usize = 16;
const HALF: usize = 8;

/// W packed as blocks of [K][16] (the last one [K][8] when at most 8 columns remain), missing columns zero.
#[derive(Debug)]
pub(crate) struct Packed {
    pub k: usize,
    pub n: usize,
    /// Whether a last remainder may take an 8-column block (not when the CPU's vectors are 16 lanes wide).
    half: bool,
    data: Vec<f32>,
}

/// Lanes of the vectors `pulp::Arch::new().dispatch` will use on this CPU.
pub(crate) fn vector_lanes() -> usize {
    struct Lanes;
    impl WithSimd for Lanes {
        type Output = usize;
        #[inline(always)]
        fn with_simd<S: Simd>(self, _simd: S) -> usize {
            S::F32_LANES
        }
    }
    pulp::Arch::new().dispatch(Lanes)
}

impl Packed {
    /// From W in [K][N] row-major order.
    pub(crate) fn new(w: &[f32], k: usize, n: usize) -> Packed {
        Packed::with_half(w, k, n, vector_lanes() <= HALF)
    }

    fn with_half(w: &[f32], k: usize, n: usize, half: bool) -> Packed {
        let mut data = Vec::with_capacity(n.div_ceil(BLOCK) * BLOCK * k);
        let mut n0 = 0;
        while n0 < n {
            let b = block_width(n - n0, half);
            let width = b.min(n - n0);
            for kk in 0..k {
                let at = data.len();
                data.resize(at + b, 0.0);
                data[at..at + width].copy_from_slice(&w[kk * n + n0..][..width]);
            }
            n0 += width;
        }
        Packed { k, n, half, data }
    }

    /// `out[p][..n] = bias + a[p][..k] · W` for the `a.len() / k` rows of `a`; `bias`, when given, is `n` long.
    pub(crate) fn product(&self, a: &[f32], bias: Option<&[f32]>, out: &mut [f32]) {
        pulp::Arch::new().dispatch(Product { w: self, a, bias, out });
    }
}

/// Width of the block holding columns from here on, when `left` columns remain.
fn block_width(left: usize, half: bool) -> usize {
    if left <= HALF && half { HALF } else { BLOCK }
}

/// Runs `op` with AVX2 + FMA when the CPU has them, else with the scalar code. Tests use it besides the dispatch:
/// on an AVX-512 CPU the dispatch takes 16 lanes, and the 8-lane code would otherwise go untested.
#[cfg(test)]
pub(crate) fn with_avx2<Op: WithSimd>(op: Op) -> Op::Output {
    #[cfg(target_arch = "x86_64")]
    if let Some(v3) = pulp::x86::V3::try_new() {
        return Simd::vectorize(v3, op);
    }
    op.with_simd(pulp::Scalar::new())
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
        if S::F32_LANES > HALF && self.w.half && !self.w.n.is_multiple_of(BLOCK) && self.w.n % BLOCK <= HALF {
            // An 8-column block under 16-lane vectors (packed for another CPU): scalar rather than split vectors.
            return self.with_simd(pulp::Scalar::new());
        }
        let Product { w, a, bias, out } = self;
        let (k, n) = (w.k, w.n);
        let mut n0 = 0;
        let mut data = &w.data[..];
        while n0 < n {
            let b = block_width(n - n0, w.half);
            let (block, rest) = data.split_at(k * b);
            data = rest;
            // Register blocks of rows × vectors: 6 × 2 (16 columns) or 8 × 1 (8 columns) AVX accumulators, 12 and
            // 8 of the 16 registers, the rest for the weights and the broadcast input.
            let lanes = S::F32_LANES;
            match (b, b / lanes) {
                // AVX-512: 32 registers, 12 rows × 1 vector.
                (BLOCK, 1) => block_product::<S, 1, 12>(simd, block, k, n, n0, a, bias, out),
                (BLOCK, 2) => block_product::<S, 2, 6>(simd, block, k, n, n0, a, bias, out),
                (BLOCK, 4) => block_product::<S, 4, 4>(simd, block, k, n, n0, a, bias, out),
                (BLOCK, _) => block_product::<S, BLOCK, 1>(simd, block, k, n, n0, a, bias, out),
                (_, 1) => block_product::<S, 1, 8>(simd, block, k, n, n0, a, bias, out),
                (_, 2) => block_product::<S, 2, 6>(simd, block, k, n, n0, a, bias, out),
                (_, _) => block_product::<S, HALF, 1>(simd, block, k, n, n0, a, bias, out),
            }
            n0 += b.min(n - n0);
        }
    }
}

/// One packed block (`NV` vectors wide) of the product, `R` rows at a time.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn block_product<S: Simd, const NV: usize, const R: usize>(
    simd: S,
    block: &[f32],
    k: usize,
    n: usize,
    n0: usize,
    a: &[f32],
    bias: Option<&[f32]>,
    out: &mut [f32],
) {
    let lanes = S::F32_LANES;
    let b = NV * lanes;
    let width = b.min(n - n0);
    let m = a.len() / k;
    let wv = S::as_simd_f32s(block).0.as_chunks::<NV>().0;
    let zero = simd.splat_f32s(0.0);
    let mut start = [zero; NV];
    if let Some(bias) = bias {
        for (v, s) in start.iter_mut().enumerate() {
            let (lo, hi) = ((v * lanes).min(width), ((v + 1) * lanes).min(width));
            *s = simd.partial_load_f32s(&bias[n0 + lo..n0 + hi]);
        }
    }
    let store = |acc: &[S::f32s; NV], o: &mut [f32]| {
        if width == b {
            S::as_mut_simd_f32s(o).0.copy_from_slice(acc);
        } else {
            for (v, &x) in acc.iter().enumerate() {
                let (lo, hi) = ((v * lanes).min(width), ((v + 1) * lanes).min(width));
                simd.partial_store_f32s(&mut o[lo..hi], x);
            }
        }
    };
    let mut p = 0;
    while p + R <= m {
        let mut acc = [start; R];
        let a_rows: [&[f32]; R] = std::array::from_fn(|r| &a[(p + r) * k..][..k]);
        for (kk, w) in wv[..k].iter().enumerate() {
            for (acc, a_row) in acc.iter_mut().zip(&a_rows) {
                let x = simd.splat_f32s(a_row[kk]);
                for (acc, &w) in acc.iter_mut().zip(w) {
                    *acc = simd.mul_add_e_f32s(x, w, *acc);
                }
            }
        }
        for (r, acc) in acc.iter().enumerate() {
            store(acc, &mut out[(p + r) * n + n0..][..width]);
        }
        p += R;
    }
    for p in p..m {
        let mut acc = start;
        for (&x, w) in a[p * k..][..k].iter().zip(wv) {
            let x = simd.splat_f32s(x);
            for (acc, &w) in acc.iter_mut().zip(w) {
                *acc = simd.mul_add_e_f32s(x, w, *acc);
            }
        }
        store(&acc, &mut out[p * n + n0..][..width]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every shape class the models have (narrow, wide, a remainder block, fewer rows than a register block)
    /// against the plain triple loop.
    #[test]
    fn product_matches_the_definition() {
        for (m, k, n) in [
            (37, 16, 16),
            (9, 27, 16),
            (5, 16, 72),
            (1, 288, 1404),
            (3, 5, 3),
            (8, 128, 128),
            (13, 16, 4),
            (17, 24, 24),
            (7, 9, 25),
            (19, 33, 88),
        ] {
            let a: Vec<f32> = (0..m * k).map(|i| ((i * 7919) % 23) as f32 * 0.1 - 1.0).collect();
            let w: Vec<f32> = (0..k * n).map(|i| ((i * 104_729) % 19) as f32 * 0.05 - 0.4).collect();
            let bias: Vec<f32> = (0..n).map(|i| i as f32 * 0.01).collect();
            let packed = Packed::new(&w, k, n);
            let mut fast = vec![f32::NAN; m * n];
            packed.product(&a, Some(&bias), &mut fast);
            // The fallback for CPUs without vector units, forced, and AVX2 (on an AVX-512 CPU, the dispatch's
            // 16 lanes pack no 8-column blocks: both packings here).
            let half = Packed::with_half(&w, k, n, true);
            let mut scalar = vec![f32::NAN; m * n];
            Product { w: &half, a: &a, bias: Some(&bias), out: &mut scalar }.with_simd(pulp::Scalar::new());
            let mut avx2 = vec![f32::NAN; m * n];
            with_avx2(Product { w: &half, a: &a, bias: Some(&bias), out: &mut avx2 });
            let whole = Packed::with_half(&w, k, n, false);
            let mut avx2_whole = vec![f32::NAN; m * n];
            with_avx2(Product { w: &whole, a: &a, bias: Some(&bias), out: &mut avx2_whole });
            for p in 0..m {
                for j in 0..n {
                    let want = bias[j] + (0..k).map(|kk| a[p * k + kk] * w[kk * n + j]).sum::<f32>();
                    for got in [fast[p * n + j], scalar[p * n + j], avx2[p * n + j], avx2_whole[p * n + j]] {
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
