//! Direct convolution for layers with few input channels (the models' first layer: 3 RGB channels, 3 × 3 or
//! 5 × 5, stride 2). Through im2col such a layer copies every input value k_h · k_w / stride² times and the GEMM
//! then reads the copy; here the GEMM's rows are read straight from the input: for one output row and one kernel
//! row, the taps of an interior pixel are `k_w · c` contiguous input floats. Weights are packed at load as
//! [k_h · k_w · c][NP], NP the output channels rounded up to 8 (whole AVX / NEON vectors), and R pixels × NP
//! channels accumulate in registers over all taps, R chosen per NP so that the accumulators fill the registers.
//! Pixels whose taps cross the left or right edge get a zero-padded copy of their taps first.

use pulp::{Simd, WithSimd};

use crate::kernels::{Geom, Post, apply_posts};

/// Tallest kernel handled (taller ones take im2col + GEMM).
const MAX_KH: usize = 7;

#[derive(Debug)]
pub(crate) struct Direct {
    /// Output channels rounded up to a multiple of 8.
    np: usize,
    /// Floats in one kernel row: k_w · in_c.
    l: usize,
    /// [k_h · k_w · in_c][np], missing channels zero.
    w: Vec<f32>,
    /// `np` long, missing channels zero.
    bias: Vec<f32>,
}

impl Direct {
    /// For weights in [K][Cout] order (K = k_h · k_w · c), when the layer has a shape this kernel is compiled for.
    pub(crate) fn new(g: &Geom, w_kn: &[f32], bias: &[f32]) -> Option<Direct> {
        // Whole vectors of the CPU's width (8 lanes for AVX2 and NEON, 16 for AVX-512).
        let np = g.out_c.next_multiple_of(crate::gemm::vector_lanes().max(8));
        let l = g.k_w * g.in_c;
        let shape_ok = matches!(np, 8 | 16 | 24 | 32) && matches!(l, 9 | 15);
        if !shape_ok || g.dil_h != 1 || g.dil_w != 1 || g.k_h > MAX_KH || g.pad_left >= g.k_w {
            return None;
        }
        let k = g.k_h * l;
        let mut w = vec![0.0; k * np];
        for (dst, src) in w.chunks_exact_mut(np).zip(w_kn.chunks_exact(g.out_c)) {
            dst[..g.out_c].copy_from_slice(src);
        }
        let mut b = vec![0.0; np];
        b[..g.out_c].copy_from_slice(bias);
        Some(Direct { np, l, w, bias: b })
    }

    /// One batch image: `input` is [in_h][in_w][in_c], `out` [out_h][out_w][out_c]; `at` is where `out` starts
    /// in the op's output (for the posts' extra inputs).
    pub(crate) fn run(&self, g: &Geom, input: &[f32], out: &mut [f32], posts: &[Post], extras: &[&[f32]], at: usize) {
        let arch = pulp::Arch::new();
        self.run_with(g, input, out, posts, extras, at, |rows| arch.dispatch(rows));
    }

    /// `run` with the instruction set chosen by `each_row` (tests force the scalar one).
    #[allow(clippy::too_many_arguments)]
    fn run_with(
        &self,
        g: &Geom,
        input: &[f32],
        out: &mut [f32],
        posts: &[Post],
        extras: &[&[f32]],
        at: usize,
        mut each_row: impl FnMut(Row<'_>),
    ) {
        let row_len = g.out_w * g.out_c;
        for (oy, orow) in out.chunks_exact_mut(row_len).enumerate() {
            each_row(Row { d: self, g, input, oy, orow: &mut *orow });
            apply_posts(orow, at + oy * row_len, g.out_c, posts, extras);
        }
    }
}

/// One output row (see `Direct`).
struct Row<'a> {
    d: &'a Direct,
    g: &'a Geom,
    input: &'a [f32],
    oy: usize,
    orow: &'a mut [f32],
}

impl WithSimd for Row<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: Simd>(self, simd: S) {
        let lanes = S::F32_LANES;
        if !self.d.np.is_multiple_of(lanes) {
            // Vectors wider than 8 lanes (AVX-512, when enabled) would split a channel vector: scalar instead.
            return dispatch(pulp::Scalar::new(), self, 1);
        }
        dispatch(simd, self, lanes);
    }
}

/// Picks the instantiation for the layer: NV vectors of channels, R pixels per register block (about 12
/// accumulators: AVX has 16 registers), L floats per kernel row.
#[inline(always)]
fn dispatch<S: Simd>(simd: S, r: Row<'_>, lanes: usize) {
    macro_rules! pick {
        ($(($nv:literal, $r:literal)),*) => {
            match (r.d.np / lanes, r.d.l) {
                $(($nv, 9) => row::<S, $nv, $r, 9>(simd, r),
                ($nv, 15) => row::<S, $nv, $r, 15>(simd, r),)*
                _ => unreachable!("Direct::new accepts only these shapes"),
            }
        };
    }
    // AVX: 1..=4 vectors; NEON: 2..=8; scalar: 8..=32.
    pick!((1, 8), (2, 6), (3, 3), (4, 3), (6, 2), (8, 1), (16, 1), (24, 1), (32, 1))
}

#[inline(always)]
fn row<S: Simd, const NV: usize, const R: usize, const L: usize>(simd: S, row: Row<'_>) {
    let Row { d, g, input, oy, orow } = row;
    let c = g.in_c;
    let in_row_len = g.in_w * c;
    // Kernel rows inside the input (rows in the padding add nothing).
    let y0 = (oy * g.stride_h) as isize - g.pad_top as isize;
    let ky0 = (-y0).clamp(0, g.k_h as isize) as usize;
    let ky1 = (g.in_h as isize - y0).clamp(ky0 as isize, g.k_h as isize) as usize;
    let mut rows: [&[f32]; MAX_KH] = [&[]; MAX_KH];
    for (ky, r) in (ky0..ky1).zip(rows.iter_mut()) {
        let iy = (y0 + ky as isize) as usize;
        *r = &input[iy * in_row_len..][..in_row_len];
    }
    let rows = &rows[..ky1 - ky0];
    let w = &S::as_simd_f32s(&d.w).0.as_chunks::<NV>().0[ky0 * L..];
    let bias: [S::f32s; NV] = S::as_simd_f32s(&d.bias).0.try_into().expect("NV vectors");
    // Interior pixels: all k_w taps inside the row.
    let x0 = |ox: usize| (ox * g.stride_w) as isize - g.pad_left as isize;
    let lo = g.pad_left.div_ceil(g.stride_w).min(g.out_w);
    let hi =
        if g.in_w + g.pad_left >= g.k_w { ((g.in_w + g.pad_left - g.k_w) / g.stride_w + 1).min(g.out_w) } else { 0 };
    let hi = hi.max(lo);
    let oc = g.out_c;
    let mut ox = 0;
    while ox < g.out_w {
        if ox < lo || ox >= hi {
            // Taps cross an edge: a zero-padded copy of each kernel row.
            let mut padded = [[0.0f32; L]; MAX_KH];
            let x = x0(ox);
            let t0 = (-x).clamp(0, g.k_w as isize) as usize;
            let t1 = (g.in_w as isize - x).clamp(t0 as isize, g.k_w as isize) as usize;
            for (p, r) in padded.iter_mut().zip(rows) {
                if t1 > t0 {
                    let src = (x + t0 as isize) as usize * c;
                    p[t0 * c..t1 * c].copy_from_slice(&r[src..src + (t1 - t0) * c]);
                }
            }
            let prow: [&[f32]; MAX_KH] = std::array::from_fn(|i| &padded[i][..]);
            tile::<S, NV, 1, L>(simd, w, bias, &prow[..rows.len()], [0], &mut orow[ox * oc..][..oc], oc);
            ox += 1;
        } else if ox + R <= hi {
            let xo: [usize; R] = std::array::from_fn(|r| x0(ox + r) as usize * c);
            tile::<S, NV, R, L>(simd, w, bias, rows, xo, &mut orow[ox * oc..][..R * oc], oc);
            ox += R;
        } else {
            tile::<S, NV, 1, L>(simd, w, bias, rows, [x0(ox) as usize * c], &mut orow[ox * oc..][..oc], oc);
            ox += 1;
        }
    }
}

/// R pixels: `out[r][..oc] = bias + Σ_dy Σ_i rows[dy][xo[r] + i] · w[dy · L + i]`.
#[inline(always)]
fn tile<S: Simd, const NV: usize, const R: usize, const L: usize>(
    simd: S,
    w: &[[S::f32s; NV]],
    bias: [S::f32s; NV],
    rows: &[&[f32]],
    xo: [usize; R],
    out: &mut [f32],
    oc: usize,
) {
    let lanes = S::F32_LANES;
    // Exactly R × NV accumulators, so that they can all live in registers.
    let mut acc = [bias; R];
    for (row, w) in rows.iter().zip(w.chunks_exact(L)) {
        // One bounds check per pixel and kernel row; the taps below index fixed-size arrays.
        let src: [&[f32; L]; R] = std::array::from_fn(|r| row[xo[r]..][..L].try_into().expect("L floats"));
        let w: &[[S::f32s; NV]; L] = w.try_into().expect("L rows");
        for (i, wv) in w.iter().enumerate() {
            for (a, s) in acc.iter_mut().zip(&src) {
                let x = simd.splat_f32s(s[i]);
                for (a, &wv) in a.iter_mut().zip(wv) {
                    *a = simd.mul_add_e_f32s(x, wv, *a);
                }
            }
        }
    }
    for (a, o) in acc.iter().zip(out.chunks_exact_mut(oc)) {
        if oc == NV * lanes {
            S::as_mut_simd_f32s(o).0.copy_from_slice(a);
        } else {
            for (v, &x) in a.iter().enumerate() {
                let (s, e) = ((v * lanes).min(oc), ((v + 1) * lanes).min(oc));
                if s < e {
                    simd.partial_store_f32s(&mut o[s..e], x);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::out_size_and_pad;
    use crate::schema::Padding;

    /// SIMD and scalar paths against the definition: 3×3 and 5×5, strides 1 and 2, SAME and VALID padding (edge
    /// pixels on both sides), odd sizes, channel counts that are not whole vectors.
    #[test]
    fn direct_matches_the_definition() {
        let cases = [
            // (in_h, in_w, c, k, stride, out_c, padding)
            (13, 17, 3, 3, 2, 16, Padding::Same),
            (12, 16, 3, 3, 2, 16, Padding::Same),
            (11, 19, 3, 5, 2, 24, Padding::Same),
            (9, 9, 3, 5, 1, 5, Padding::Same),
            (10, 23, 3, 3, 1, 29, Padding::Valid),
            (7, 6, 3, 5, 2, 11, Padding::Valid),
            (5, 30, 3, 3, 2, 8, Padding::Same),
            (2, 2, 3, 3, 1, 16, Padding::Same),
        ];
        for (in_h, in_w, c, k, stride, out_c, padding) in cases {
            let (out_h, pad_top) = out_size_and_pad(padding, in_h, k, stride, 1).expect("size");
            let (out_w, pad_left) = out_size_and_pad(padding, in_w, k, stride, 1).expect("size");
            let g = Geom {
                batch: 1,
                in_h,
                in_w,
                in_c: c,
                out_h,
                out_w,
                out_c,
                k_h: k,
                k_w: k,
                stride_h: stride,
                stride_w: stride,
                dil_h: 1,
                dil_w: 1,
                pad_top,
                pad_left,
            };
            let kk = k * k * c;
            let input: Vec<f32> = (0..in_h * in_w * c).map(|i| ((i * 7919) % 29) as f32 * 0.1 - 1.4).collect();
            let w: Vec<f32> = (0..kk * out_c).map(|i| ((i * 104_729) % 17) as f32 * 0.05 - 0.4).collect();
            let bias: Vec<f32> = (0..out_c).map(|i| i as f32 * 0.01).collect();
            let d = Direct::new(&g, &w, &bias).expect("shape handled");
            let mut want = vec![0.0f32; out_h * out_w * out_c];
            for oy in 0..out_h {
                for ox in 0..out_w {
                    for o in 0..out_c {
                        let mut v = bias[o];
                        for ky in 0..k {
                            for kx in 0..k {
                                let iy = (oy * stride + ky) as isize - pad_top as isize;
                                let ix = (ox * stride + kx) as isize - pad_left as isize;
                                if (0..in_h as isize).contains(&iy) && (0..in_w as isize).contains(&ix) {
                                    for ch in 0..c {
                                        let x = input[(iy as usize * in_w + ix as usize) * c + ch];
                                        v += x * w[((ky * k + kx) * c + ch) * out_c + o];
                                    }
                                }
                            }
                        }
                        want[(oy * out_w + ox) * out_c + o] = v;
                    }
                }
            }
            let mut fast = vec![f32::NAN; want.len()];
            d.run(&g, &input, &mut fast, &[], &[], 0);
            let mut scalar = vec![f32::NAN; want.len()];
            d.run_with(&g, &input, &mut scalar, &[], &[], 0, |r| r.with_simd(pulp::Scalar::new()));
            let mut avx2 = vec![f32::NAN; want.len()];
            d.run_with(&g, &input, &mut avx2, &[], &[], 0, |r| crate::gemm::with_avx2(r));
            for (i, wv) in want.iter().enumerate() {
                for got in [fast[i], scalar[i], avx2[i]] {
                    assert!(
                        (got - wv).abs() <= 1e-4 * wv.abs().max(1.0),
                        "{in_h}x{in_w} k{k} s{stride} oc{out_c} [{i}]: {got} vs {wv}"
                    );
                }
            }
        }
    }
}
