//! NHWC f32 kernels. Shapes and geometry are validated when the model is prepared, so slice
//! lengths here always match; loops use `chunks_exact`/`zip` so the compiler can vectorise them.

use crate::direct::Direct;
use crate::gemm::Packed;
use crate::schema::{Activation, Padding};

/// Sliding-window geometry of a convolution or pool on an NHWC tensor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Geom {
    pub batch: usize,
    pub in_h: usize,
    pub in_w: usize,
    pub in_c: usize,
    pub out_h: usize,
    pub out_w: usize,
    pub out_c: usize,
    pub k_h: usize,
    pub k_w: usize,
    pub stride_h: usize,
    pub stride_w: usize,
    pub dil_h: usize,
    pub dil_w: usize,
    pub pad_top: usize,
    pub pad_left: usize,
}

/// Output size and leading padding along one axis, as TFLite's `ComputeOutSize` and
/// `ComputePaddingWithOffset` do it: SAME pads `total / 2` before and the rest after.
pub(crate) fn out_size_and_pad(
    padding: Padding,
    input: usize,
    kernel: usize,
    stride: usize,
    dilation: usize,
) -> Option<(usize, usize)> {
    let eff = kernel.checked_sub(1)?.checked_mul(dilation)?.checked_add(1)?;
    let out = match padding {
        Padding::Same => input.div_ceil(stride),
        Padding::Valid => (input + stride).checked_sub(eff)? / stride,
    };
    if out == 0 {
        return None;
    }
    let total = ((out - 1) * stride + eff).saturating_sub(input);
    Some((out, total / 2))
}

impl Geom {
    /// Input row `oy * stride + ky * dilation - pad`, or None when it falls in the padding.
    #[inline]
    fn in_y(&self, oy: usize, ky: usize) -> Option<usize> {
        (oy * self.stride_h + ky * self.dil_h).checked_sub(self.pad_top).filter(|&y| y < self.in_h)
    }
    #[inline]
    fn in_x(&self, ox: usize, kx: usize) -> Option<usize> {
        (ox * self.stride_w + kx * self.dil_w).checked_sub(self.pad_left).filter(|&x| x < self.in_w)
    }
}

/// An elementwise step fused onto the end of a kernel (the op's own activation, or a following
/// RELU / PRELU / HARD_SWISH / LOGISTIC whose input had no other reader).
#[derive(Clone, Debug)]
pub(crate) enum Post {
    Act(Activation),
    HardSwish,
    Logistic,
    /// Per-channel slope for negative values.
    PRelu(Vec<f32>),
    /// Adds the same-shaped extra input `k` (a residual ADD folded into its producer).
    AddInput(usize),
}

/// Applies `posts` to `data`, which starts at element `at` of the op's output; `extras` are the
/// op's inputs beyond its own (for `Post::AddInput`).
pub(crate) fn apply_posts(data: &mut [f32], at: usize, channels: usize, posts: &[Post], extras: &[&[f32]]) {
    if !posts.is_empty() {
        // Compiled for the CPU's vector unit (8 lanes on AVX2, rather than baseline x86-64's 4).
        pulp::Arch::new().dispatch(Posts { data, at, channels, posts, extras });
    }
}

struct Posts<'a> {
    data: &'a mut [f32],
    at: usize,
    channels: usize,
    posts: &'a [Post],
    extras: &'a [&'a [f32]],
}

impl pulp::WithSimd for Posts<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, simd: S) {
        let Posts { data, at, channels, posts, extras } = self;
        apply_posts_inline(simd, data, at, channels, posts, extras);
    }
}

#[inline(always)]
fn apply_posts_inline<S: pulp::Simd>(
    simd: S,
    data: &mut [f32],
    at: usize,
    channels: usize,
    posts: &[Post],
    extras: &[&[f32]],
) {
    for p in posts {
        match p {
            Post::AddInput(k) => {
                let n = data.len();
                for (v, &r) in data.iter_mut().zip(&extras[*k][at..at + n]) {
                    *v += r;
                }
            }
            Post::Act(a) => activate(data, *a),
            Post::HardSwish => data.iter_mut().for_each(|v| *v = hard_swish(*v)),
            Post::Logistic => logistic(data),
            Post::PRelu(alpha) => {
                // Whole vectors explicitly (the compiler's loop for a run-time length steps 32 floats on AVX2,
                // more than a 16-channel pixel), the same two roundings as `prelu`.
                let zero = simd.splat_f32s(0.0);
                let (av, at) = S::as_simd_f32s(alpha);
                for px in data.chunks_exact_mut(channels) {
                    let (pv, pt) = S::as_mut_simd_f32s(px);
                    for (v, &a) in pv.iter_mut().zip(av) {
                        let neg = simd.mul_f32s(a, simd.min_f32s(*v, zero));
                        *v = simd.add_f32s(simd.max_f32s(*v, zero), neg);
                    }
                    for (v, &a) in pt.iter_mut().zip(at) {
                        *v = prelu(*v, a);
                    }
                }
            }
        }
    }
}

#[inline(always)]
pub(crate) fn activate(data: &mut [f32], act: Activation) {
    let (lo, hi) = match act {
        Activation::None => return,
        Activation::Relu => (0.0, f32::INFINITY),
        Activation::Relu6 => (0.0, 6.0),
        Activation::ReluN1To1 => (-1.0, 1.0),
    };
    // max/min written as compares so NaN handling does not block vectorisation.
    for v in data {
        let x = if *v < lo { lo } else { *v };
        *v = if x > hi { hi } else { x };
    }
}

/// x >= 0 ? x : a * x, as two selects and no branch so loops over it vectorise.
#[inline(always)]
fn prelu(x: f32, a: f32) -> f32 {
    let pos = if x > 0.0 { x } else { 0.0 };
    let neg = if x < 0.0 { x } else { 0.0 };
    pos + a * neg
}

#[inline(always)]
fn hard_swish(x: f32) -> f32 {
    let r = x + 3.0;
    let r = if r < 0.0 { 0.0 } else { r };
    let r = if r > 6.0 { 6.0 } else { r };
    x * r * (1.0 / 6.0)
}

/// 1 / (1 + e^-x), with a polynomial exp that vectorises (relative error about 2e-7).
#[inline(always)]
pub(crate) fn logistic(data: &mut [f32]) {
    for v in data {
        // Below -87 the result would be subnormal, and subnormal arithmetic is ~100x slower on x86;
        // the clamp changes results by less than 1.2e-38.
        let x = v.clamp(-87.0, 87.0);
        *v = 1.0 / (1.0 + fast_exp(-x));
    }
}

/// e^x for |x| <= 88: 2^n * e^r with n = round(x / ln 2), |r| <= ln2 / 2, degree-6 polynomial.
/// Written with integer bit tricks only, so it vectorises on plain SSE2 (no libm call, no
/// saturating float-to-int conversion).
#[inline(always)]
fn fast_exp(x: f32) -> f32 {
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    // Adding 1.5 * 2^23 rounds to an integer held in the low mantissa bits.
    const MAGIC: f32 = 12_582_912.0;
    let t = x * std::f32::consts::LOG2_E + MAGIC;
    let n = t - MAGIC;
    let n_int = t.to_bits().wrapping_sub(MAGIC.to_bits());
    let r = x - n * LN2_HI - n * LN2_LO;
    let p = 1.0 + r * (1.0 + r * (0.5 + r * (1.0 / 6.0 + r * (1.0 / 24.0 + r * (1.0 / 120.0 + r * (1.0 / 720.0))))));
    // n is in [-127, 127] here, so the biased exponent stays in 0..=254.
    p * f32::from_bits(n_int.wrapping_add(127) << 23)
}

/// Number of output pixels per GEMM call: few enough that the im2col tile and the output tile stay in L2 for
/// the steps applied to the tile after it (activation, residual add).
fn tile_rows(k: usize, n: usize) -> usize {
    let by_k = (48 * 1024 / (k.max(1) * 4)).max(1);
    by_k.max(n / 2).clamp(32, 1024)
}

/// CONV_2D: im2col (skipped for 1×1 stride-1 convolutions) + GEMM, tile by tile.
#[derive(Debug)]
pub(crate) struct Conv {
    pub g: Geom,
    /// [K][Cout], K = k_h * k_w * Cin in (ky, kx, c) order, packed for the GEMM.
    pub weights: Packed,
    pub bias: Vec<f32>,
    pub posts: Vec<Post>,
    /// The direct kernel, for layers with few input channels (see `direct`).
    direct: Option<Direct>,
}

impl Conv {
    /// `w_kn` in [K][Cout] order.
    pub(crate) fn new(g: Geom, w_kn: &[f32], bias: Vec<f32>, posts: Vec<Post>) -> Conv {
        let k = g.k_h * g.k_w * g.in_c;
        let direct = Direct::new(&g, w_kn, &bias);
        Conv { g, weights: Packed::new(w_kn, k, g.out_c), bias, posts, direct }
    }
    fn k(&self) -> usize {
        self.g.k_h * self.g.k_w * self.g.in_c
    }
    fn pointwise(&self) -> bool {
        let g = &self.g;
        g.k_h == 1 && g.k_w == 1 && g.stride_h == 1 && g.stride_w == 1 && g.pad_top == 0 && g.pad_left == 0
    }
    pub(crate) fn scratch_len(&self) -> usize {
        if self.pointwise() || self.direct.is_some() { 0 } else { tile_rows(self.k(), self.g.out_c) * self.k() }
    }

    pub(crate) fn run(&self, input: &[f32], out: &mut [f32], scratch: &mut [f32], extras: &[&[f32]]) {
        let g = &self.g;
        let (k, n) = (self.k(), g.out_c);
        let pixels = g.out_h * g.out_w;
        let tile = tile_rows(k, n);
        for batch in 0..g.batch {
            let inp = &input[batch * g.in_h * g.in_w * g.in_c..][..g.in_h * g.in_w * g.in_c];
            let outb = &mut out[batch * pixels * n..][..pixels * n];
            if let Some(d) = &self.direct {
                d.run(g, inp, outb, &self.posts, extras, batch * pixels * n);
                continue;
            }
            let mut p0 = 0;
            while p0 < pixels {
                let m = tile.min(pixels - p0);
                let c_tile = &mut outb[p0 * n..(p0 + m) * n];
                let a_data: &[f32] = if self.pointwise() {
                    &inp[p0 * k..(p0 + m) * k]
                } else {
                    let s = &mut scratch[..m * k];
                    self.im2col(inp, p0, m, s);
                    s
                };
                self.weights.product(a_data, Some(&self.bias), c_tile);
                apply_posts(c_tile, (batch * pixels + p0) * n, n, &self.posts, extras);
                p0 += m;
            }
        }
    }

    /// Rows p0..p0+m of the patch matrix, one row of K values per output pixel.
    fn im2col(&self, inp: &[f32], p0: usize, m: usize, dst: &mut [f32]) {
        // First layers read 3 channels: a kernel row is 9 or 15 floats, and a memcpy call per
        // row costs more than the copy. A constant length lets the compiler inline it.
        match self.g.k_w * self.g.in_c {
            9 => self.im2col_n::<9>(inp, p0, m, dst),
            15 => self.im2col_n::<15>(inp, p0, m, dst),
            _ => self.im2col_n::<0>(inp, p0, m, dst),
        }
    }

    /// `L` is the kernel-row length when known at compile time, else 0.
    #[inline(always)]
    fn im2col_n<const L: usize>(&self, inp: &[f32], p0: usize, m: usize, dst: &mut [f32]) {
        let g = &self.g;
        let c = g.in_c;
        let row_len = g.k_w * c;
        for (i, row) in dst.chunks_exact_mut(g.k_h * row_len).take(m).enumerate() {
            let p = p0 + i;
            let (oy, ox) = (p / g.out_w, p % g.out_w);
            for (ky, seg) in row.chunks_exact_mut(row_len).enumerate() {
                let Some(iy) = g.in_y(oy, ky) else {
                    seg.fill(0.0);
                    continue;
                };
                let in_row = &inp[iy * g.in_w * c..][..g.in_w * c];
                if g.dil_w == 1 {
                    // Taps of one kernel row are contiguous in the input: copy the valid run at once.
                    let x0 = (ox * g.stride_w) as isize - g.pad_left as isize;
                    let lo = (-x0).clamp(0, g.k_w as isize) as usize;
                    let hi = (g.in_w as isize - x0).clamp(lo as isize, g.k_w as isize) as usize;
                    if L != 0 && lo == 0 && hi == g.k_w {
                        let src = x0 as usize * c;
                        seg.copy_from_slice(&in_row[src..src + L]);
                        continue;
                    }
                    seg[..lo * c].fill(0.0);
                    if hi > lo {
                        let src = (x0 + lo as isize) as usize * c;
                        seg[lo * c..hi * c].copy_from_slice(&in_row[src..src + (hi - lo) * c]);
                    }
                    seg[hi * c..].fill(0.0);
                } else {
                    for (kx, tap) in seg.chunks_exact_mut(c).enumerate() {
                        match g.in_x(ox, kx) {
                            Some(ix) => tap.copy_from_slice(&in_row[ix * c..][..c]),
                            None => tap.fill(0.0),
                        }
                    }
                }
            }
        }
    }
}

/// DEPTHWISE_CONV_2D with direct loops over channels (the innermost, contiguous axis).
#[derive(Debug)]
pub(crate) struct Depthwise {
    pub g: Geom,
    pub multiplier: usize,
    /// [k_h][k_w][Cout] as stored by TFLite.
    pub weights: Vec<f32>,
    pub bias: Vec<f32>,
    pub posts: Vec<Post>,
}

/// For each output coordinate: the range of kernel taps that land inside the input (contiguous,
/// because the input position grows with the tap index) and the input position of the first one.
fn tap_ranges(out: usize, input: usize, k: usize, stride: usize, dil: usize, pad: usize) -> Vec<(usize, usize, usize)> {
    (0..out)
        .map(|o| {
            let pos = |t: usize| (o * stride + t * dil).checked_sub(pad);
            let lo = (0..k).find(|&t| pos(t).is_some()).unwrap_or(k);
            let hi = (lo..k).find(|&t| pos(t).is_none_or(|p| p >= input)).unwrap_or(k);
            (lo, hi, if lo < hi { pos(lo).unwrap_or(0) } else { 0 })
        })
        .collect()
}

impl Depthwise {
    pub(crate) fn new(g: Geom, multiplier: usize, weights: Vec<f32>, bias: Vec<f32>, posts: Vec<Post>) -> Self {
        Depthwise { g, multiplier, weights, bias, posts }
    }

    pub(crate) fn run(&self, input: &[f32], out: &mut [f32], extras: &[&[f32]]) {
        if self.multiplier == 1 {
            return self.run_vectors(input, out, extras);
        }
        // A channel multiplier (none in these models' hot layers): plain loops, output channel c reading input
        // channel c / multiplier.
        let g = &self.g;
        let (ci, co) = (g.in_c, g.out_c);
        let row_len = g.out_w * co;
        let ys = tap_ranges(g.out_h, g.in_h, g.k_h, g.stride_h, g.dil_h, g.pad_top);
        let xs = tap_ranges(g.out_w, g.in_w, g.k_w, g.stride_w, g.dil_w, g.pad_left);
        for batch in 0..g.batch {
            let inp = &input[batch * g.in_h * g.in_w * ci..][..g.in_h * g.in_w * ci];
            let outb = &mut out[batch * g.out_h * row_len..][..g.out_h * row_len];
            for (oy, orow) in outb.chunks_exact_mut(row_len).enumerate() {
                let (ky0, ky1, iy0) = ys[oy];
                for (ox, o) in orow.chunks_exact_mut(co).enumerate() {
                    let (kx0, kx1, ix0) = xs[ox];
                    o.copy_from_slice(&self.bias);
                    for ky in ky0..ky1 {
                        let row = (iy0 + (ky - ky0) * g.dil_h) * g.in_w;
                        for kx in kx0..kx1 {
                            let io = (row + ix0 + (kx - kx0) * g.dil_w) * ci;
                            let w = &self.weights[(ky * g.k_w + kx) * co..][..co];
                            let px = &inp[io..io + ci];
                            for (c, (o, &w)) in o.iter_mut().zip(w).enumerate() {
                                *o += px[c / self.multiplier] * w;
                            }
                        }
                    }
                }
                apply_posts(orow, (batch * g.out_h + oy) * row_len, co, &self.posts, extras);
            }
        }
    }
}

impl Depthwise {
    /// Multiplier 1, in vectors of channels chosen at run time: for each output row, each vector of channels and
    /// four output pixels at a time, every tap accumulates in registers (four independent chains keep the FMA
    /// units busy) and each output is stored once.
    fn run_vectors(&self, input: &[f32], out: &mut [f32], extras: &[&[f32]]) {
        let arch = pulp::Arch::new();
        self.run_rows_with(input, out, extras, |row| arch.dispatch(row));
    }

    /// `run_vectors` with the instruction set chosen by `each_row` (tests force the scalar one).
    fn run_rows_with(
        &self,
        input: &[f32],
        out: &mut [f32],
        extras: &[&[f32]],
        mut each_row: impl FnMut(DepthwiseRow<'_>),
    ) {
        let g = &self.g;
        let c = g.in_c;
        let row_len = g.out_w * c;
        let ys = tap_ranges(g.out_h, g.in_h, g.k_h, g.stride_h, g.dil_h, g.pad_top);
        let xs = tap_ranges(g.out_w, g.in_w, g.k_w, g.stride_w, g.dil_w, g.pad_left);
        for batch in 0..g.batch {
            let inp = &input[batch * g.in_h * g.in_w * c..][..g.in_h * g.in_w * c];
            let outb = &mut out[batch * g.out_h * row_len..][..g.out_h * row_len];
            for (oy, orow) in outb.chunks_exact_mut(row_len).enumerate() {
                each_row(DepthwiseRow { dw: self, inp, orow: &mut *orow, ys: ys[oy], xs: &xs });
                apply_posts(orow, (batch * g.out_h + oy) * row_len, c, &self.posts, extras);
            }
        }
    }
}

/// Kernel rows the whole-vector depthwise path holds (taller kernels take the general path).
const MAX_DW_ROWS: usize = 8;

/// One output row of a multiplier-1 depthwise convolution (see `Depthwise::run_vectors`).
struct DepthwiseRow<'a> {
    dw: &'a Depthwise,
    inp: &'a [f32],
    orow: &'a mut [f32],
    ys: (usize, usize, usize),
    xs: &'a [(usize, usize, usize)],
}

impl pulp::WithSimd for DepthwiseRow<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, simd: S) {
        const PIXELS: usize = 4;
        let DepthwiseRow { dw, inp, orow, ys: (ky0, ky1, iy0), xs } = self;
        let g = &dw.g;
        let c = g.in_c;
        let lanes = S::F32_LANES;
        // Whole vectors by plain loads and stores; pulp's partial ones go through a table of routines.
        let load = |s: &[f32]| if s.len() == lanes { S::as_simd_f32s(s).0[0] } else { simd.partial_load_f32s(s) };
        let store = |s: &mut [f32], v: S::f32s| {
            if s.len() == lanes {
                S::as_mut_simd_f32s(s).0[0] = v;
            } else {
                simd.partial_store_f32s(s, v);
            }
        };
        let full = (0, g.k_w);
        if g.dil_h == 1 && g.dil_w == 1 && g.k_h == g.k_w && ky1 - ky0 == g.k_h && g.k_h <= MAX_DW_ROWS {
            // Rows with every kernel row inside the input: the kernels written for these models' shapes.
            let mut rows: [&[f32]; MAX_DW_ROWS] = [&[]; MAX_DW_ROWS];
            for (ky, r) in rows.iter_mut().enumerate().take(g.k_h) {
                *r = &inp[(iy0 + ky) * g.in_w * c..][..g.in_w * c];
            }
            let rows = &rows[..g.k_h];
            if crate::depthwise::row(simd, g.k_w, g.stride_w, rows, &dw.weights, &dw.bias, xs, c, orow) {
                return;
            }
        }
        if c % lanes == 0 && ky1 - ky0 <= MAX_DW_ROWS {
            // Whole vectors only: every pixel's channels are `cv` vectors, indexed without slicing. The general
            // path below does the same sum; this one makes each model 6–10% faster (alternated runs).
            let cv = c / lanes;
            let w = S::as_simd_f32s(&dw.weights).0;
            let bias = S::as_simd_f32s(&dw.bias).0;
            let mut rows: [&[S::f32s]; MAX_DW_ROWS] = [&[]; MAX_DW_ROWS];
            for (ky, r) in (ky0..ky1).zip(rows.iter_mut()) {
                let iy = iy0 + (ky - ky0) * g.dil_h;
                *r = S::as_simd_f32s(&inp[iy * g.in_w * c..][..g.in_w * c]).0;
            }
            let rows = &rows[..ky1 - ky0];
            let out = S::as_mut_simd_f32s(orow).0;
            for j in 0..cv {
                let mut ox = 0;
                while ox < g.out_w {
                    let (kx0, kx1, ix0) = xs[ox];
                    let block = ox + PIXELS <= g.out_w && (0..PIXELS).all(|q| (xs[ox + q].0, xs[ox + q].1) == full);
                    if block {
                        // Offsets worked out once per block; the taps then only add a step.
                        let at: [usize; PIXELS] = std::array::from_fn(|q| xs[ox + q].2 * cv + j);
                        let step = g.dil_w * cv;
                        let mut acc = [bias[j]; PIXELS];
                        for (dy, r) in rows.iter().enumerate() {
                            let taps = &w[(ky0 + dy) * g.k_w * cv + j..];
                            for kx in 0..g.k_w {
                                let wk = taps[kx * cv];
                                let off = kx * step;
                                for (acc, &a) in acc.iter_mut().zip(&at) {
                                    *acc = simd.mul_add_e_f32s(r[a + off], wk, *acc);
                                }
                            }
                        }
                        for (q, acc) in acc.iter().enumerate() {
                            out[(ox + q) * cv + j] = *acc;
                        }
                        ox += PIXELS;
                    } else {
                        let mut acc = bias[j];
                        for (dy, r) in rows.iter().enumerate() {
                            let ky = ky0 + dy;
                            for kx in kx0..kx1 {
                                let ix = ix0 + (kx - kx0) * g.dil_w;
                                acc = simd.mul_add_e_f32s(r[ix * cv + j], w[(ky * g.k_w + kx) * cv + j], acc);
                            }
                        }
                        out[ox * cv + j] = acc;
                        ox += 1;
                    }
                }
            }
            return;
        }
        let mut c0 = 0;
        while c0 < c {
            let width = lanes.min(c - c0);
            let bias = load(&dw.bias[c0..c0 + width]);
            let mut ox = 0;
            while ox < g.out_w {
                let (kx0, kx1, ix0) = xs[ox];
                // Four pixels whose taps are all inside the row share one loop.
                let block = ox + PIXELS <= g.out_w && (0..PIXELS).all(|q| (xs[ox + q].0, xs[ox + q].1) == full);
                if block {
                    let mut acc = [bias; PIXELS];
                    for ky in ky0..ky1 {
                        let row = (iy0 + (ky - ky0) * g.dil_h) * g.in_w;
                        for kx in 0..g.k_w {
                            let w = load(&dw.weights[(ky * g.k_w + kx) * c + c0..][..width]);
                            for (q, acc) in acc.iter_mut().enumerate() {
                                let io = (row + xs[ox + q].2 + kx * g.dil_w) * c + c0;
                                *acc = simd.mul_add_e_f32s(load(&inp[io..io + width]), w, *acc);
                            }
                        }
                    }
                    for (q, acc) in acc.iter().enumerate() {
                        store(&mut orow[(ox + q) * c + c0..][..width], *acc);
                    }
                    ox += PIXELS;
                } else {
                    let mut acc = bias;
                    for ky in ky0..ky1 {
                        let row = (iy0 + (ky - ky0) * g.dil_h) * g.in_w;
                        for kx in kx0..kx1 {
                            let io = (row + ix0 + (kx - kx0) * g.dil_w) * c + c0;
                            let w = load(&dw.weights[(ky * g.k_w + kx) * c + c0..][..width]);
                            acc = simd.mul_add_e_f32s(load(&inp[io..io + width]), w, acc);
                        }
                    }
                    store(&mut orow[ox * c + c0..][..width], acc);
                    ox += 1;
                }
            }
            c0 += width;
        }
    }
}

/// MediaPipe's Convolution2DTransposeBias: each input pixel scatters `W · x` into a k_h × k_w
/// window of the output at `(iy * stride - pad, ix * stride - pad)`. Computed as a GEMM of the
/// input pixels with all taps' weights, then a scatter-add of each tap's Cout values (col2im).
#[derive(Debug)]
pub(crate) struct TransposeConv {
    /// `in_*` is the op's input, `out_*` its output; `pad_*` the offsets subtracted from output positions.
    pub g: Geom,
    /// [Cin][k_h][k_w][Cout] (TFLite stores [Cout][k_h][k_w][Cin]), packed for the GEMM.
    pub weights: Packed,
    pub bias: Vec<f32>,
    /// `bias` repeated for each of the k_h · k_w taps (the GEMM's bias when the taps tile the output).
    pub bias_taps: Vec<f32>,
    pub posts: Vec<Post>,
}

impl TransposeConv {
    /// Repacks TFLite's [Cout][k_h][k_w][Cin] weights for the GEMM.
    pub(crate) fn pack(w: &[f32], co: usize, taps: usize, ci: usize) -> Vec<f32> {
        let mut packed = vec![0.0; w.len()];
        for oc in 0..co {
            for t in 0..taps {
                for c in 0..ci {
                    packed[(c * taps + t) * co + oc] = w[(oc * taps + t) * ci + c];
                }
            }
        }
        packed
    }

    fn cols(&self) -> usize {
        self.g.k_h * self.g.k_w * self.g.out_c
    }

    pub(crate) fn scratch_len(&self) -> usize {
        (tile_rows(self.g.in_c, self.cols()) * self.cols()).max(self.g.in_w * self.cols())
    }

    /// Taps that tile the output exactly (stride = kernel, no padding: MediaPipe's 2 × 2 / 2 upsampling).
    fn tiles_exactly(&self) -> bool {
        let g = &self.g;
        g.stride_h == g.k_h
            && g.stride_w == g.k_w
            && g.pad_top == 0
            && g.pad_left == 0
            && g.out_h == g.in_h * g.k_h
            && g.out_w == g.in_w * g.k_w
    }

    pub(crate) fn run(&self, input: &[f32], out: &mut [f32], scratch: &mut [f32], extras: &[&[f32]]) {
        let g = &self.g;
        let (ci, co, n) = (g.in_c, g.out_c, self.cols());
        if self.tiles_exactly() {
            // Each output value is written once: one input row's product (bias included) is copied to its k_h
            // output rows, which then get the posts while in cache; no bias fill, no scatter-add.
            let (in_row, out_rows) = (g.in_w * ci, g.k_h * g.out_w * co);
            let kw_run = g.k_w * co;
            let ins = input.chunks_exact(in_row).take(g.batch * g.in_h);
            for (r, (inp, orows)) in ins.zip(out.chunks_exact_mut(out_rows)).enumerate() {
                let cols = &mut scratch[..g.in_w * n];
                self.weights.product(inp, Some(&self.bias_taps), cols);
                for (ky, orow) in orows.chunks_exact_mut(g.out_w * co).enumerate() {
                    for (o, px) in orow.chunks_exact_mut(kw_run).zip(cols.chunks_exact(n)) {
                        o.copy_from_slice(&px[ky * kw_run..][..kw_run]);
                    }
                }
                apply_posts(orows, r * out_rows, co, &self.posts, extras);
            }
            return;
        }
        let pixels = g.in_h * g.in_w;
        let tile = tile_rows(ci, n);
        for batch in 0..g.batch {
            let inp = &input[batch * pixels * ci..][..pixels * ci];
            let outb = &mut out[batch * g.out_h * g.out_w * co..][..g.out_h * g.out_w * co];
            for px in outb.chunks_exact_mut(co) {
                px.copy_from_slice(&self.bias);
            }
            let mut p0 = 0;
            while p0 < pixels {
                let m = tile.min(pixels - p0);
                let cols = &mut scratch[..m * n];
                self.weights.product(&inp[p0 * ci..(p0 + m) * ci], None, cols);
                // Taps that tile the output without overlap or padding along x (MediaPipe's 2 × 2 / 2 upsampling):
                // a pixel's kernel row is one run of the output row.
                let run_x = g.stride_w == g.k_w && g.pad_left == 0 && g.out_w >= g.in_w * g.k_w;
                for (i, row) in cols.chunks_exact(n).enumerate() {
                    let (iy, ix) = ((p0 + i) / g.in_w, (p0 + i) % g.in_w);
                    for (ky, krow) in row.chunks_exact(g.k_w * co).enumerate() {
                        let Some(oy) = (iy * g.stride_h + ky).checked_sub(g.pad_top).filter(|&y| y < g.out_h) else {
                            continue;
                        };
                        if run_x {
                            let o = &mut outb[(oy * g.out_w + ix * g.k_w) * co..][..g.k_w * co];
                            for (o, &v) in o.iter_mut().zip(krow) {
                                *o += v;
                            }
                            continue;
                        }
                        for (kx, vals) in krow.chunks_exact(co).enumerate() {
                            let Some(ox) = (ix * g.stride_w + kx).checked_sub(g.pad_left).filter(|&x| x < g.out_w)
                            else {
                                continue;
                            };
                            let o = &mut outb[(oy * g.out_w + ox) * co..][..co];
                            for (o, &v) in o.iter_mut().zip(vals) {
                                *o += v;
                            }
                        }
                    }
                }
                p0 += m;
            }
            apply_posts(outb, batch * g.out_h * g.out_w * co, co, &self.posts, extras);
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum PoolKind {
    Max,
    Average,
}

/// MAX_POOL_2D / AVERAGE_POOL_2D. Padding never contributes: the average divides by the
/// number of in-bounds taps, as TFLite does.
#[derive(Debug)]
pub(crate) struct Pool {
    pub g: Geom,
    pub kind: PoolKind,
    pub posts: Vec<Post>,
}

impl Pool {
    pub(crate) fn run(&self, input: &[f32], out: &mut [f32], extras: &[&[f32]]) {
        pulp::Arch::new().dispatch(PoolRun { pool: self, input, out: &mut *out });
        apply_posts(out, 0, self.g.in_c, &self.posts, extras);
    }
}

/// A pool's windows, compiled for the CPU's vector unit: the taps inside the input are worked out once per output
/// row and column (as for depthwise), so the loop over taps has no per-tap padding test.
struct PoolRun<'a> {
    pool: &'a Pool,
    input: &'a [f32],
    out: &'a mut [f32],
}

impl pulp::WithSimd for PoolRun<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, simd: S) {
        let PoolRun { pool, input, out } = self;
        let g = &pool.g;
        let c = g.in_c;
        let row_len = g.out_w * c;
        let ys = tap_ranges(g.out_h, g.in_h, g.k_h, g.stride_h, g.dil_h, g.pad_top);
        let xs = tap_ranges(g.out_w, g.in_w, g.k_w, g.stride_w, g.dil_w, g.pad_left);
        let max = pool.kind == PoolKind::Max;
        for batch in 0..g.batch {
            let inp = &input[batch * g.in_h * g.in_w * c..][..g.in_h * g.in_w * c];
            let outb = &mut out[batch * g.out_h * row_len..][..g.out_h * row_len];
            for (orow, &(ky0, ky1, iy0)) in outb.chunks_exact_mut(row_len).zip(&ys) {
                for (o, &(kx0, kx1, ix0)) in orow.chunks_exact_mut(c).zip(&xs) {
                    o.fill(if max { f32::NEG_INFINITY } else { 0.0 });
                    for ty in 0..ky1 - ky0 {
                        let row = &inp[(iy0 + ty * g.dil_h) * g.in_w * c..][..g.in_w * c];
                        for tx in 0..kx1 - kx0 {
                            let px = &row[(ix0 + tx * g.dil_w) * c..][..c];
                            // Whole vectors explicitly: the compiler's own vector loop for a run-time length
                            // takes 32 floats per step on AVX2 and would leave 16-channel pixels to its tail.
                            let ((ov, ot), (pv, pt)) = (S::as_mut_simd_f32s(o), S::as_simd_f32s(px));
                            if max {
                                for (o, &x) in ov.iter_mut().zip(pv) {
                                    *o = simd.max_f32s(*o, x);
                                }
                                for (o, &x) in ot.iter_mut().zip(pt) {
                                    *o = if x > *o { x } else { *o };
                                }
                            } else {
                                for (o, &x) in ov.iter_mut().zip(pv) {
                                    *o = simd.add_f32s(*o, x);
                                }
                                for (o, &x) in ot.iter_mut().zip(pt) {
                                    *o += x;
                                }
                            }
                        }
                    }
                    if !max {
                        // Padding never counts: the average is over the taps inside, as TFLite does.
                        let inv = 1.0 / ((ky1 - ky0) * (kx1 - kx0)).max(1) as f32;
                        o.iter_mut().for_each(|v| *v *= inv);
                    }
                }
            }
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum BinKind {
    Add,
    Mul,
    /// x >= 0 ? x : x * alpha (alpha is the second operand).
    PRelu,
}

#[inline]
fn bin(kind: BinKind, a: f32, b: f32) -> f32 {
    match kind {
        BinKind::Add => a + b,
        BinKind::Mul => a * b,
        BinKind::PRelu => prelu(a, b),
    }
}

fn bin_slices(kind: BinKind, a: &[f32], b: &[f32], out: &mut [f32]) {
    // One loop per kind so each vectorises.
    let it = out.iter_mut().zip(a).zip(b);
    match kind {
        BinKind::Add => it.for_each(|((o, &x), &y)| *o = x + y),
        BinKind::Mul => it.for_each(|((o, &x), &y)| *o = x * y),
        BinKind::PRelu => it.for_each(|((o, &x), &y)| *o = prelu(x, y)),
    }
}

/// ADD / MUL / PRELU with NumPy broadcasting over shapes padded to rank 4.
#[derive(Debug)]
pub(crate) struct Binary {
    pub kind: BinKind,
    pub a_shape: [usize; 4],
    pub b_shape: [usize; 4],
    pub out_shape: [usize; 4],
    pub posts: Vec<Post>,
}

fn strides(shape: &[usize; 4]) -> [usize; 4] {
    let mut s = [0; 4];
    let mut acc = 1;
    for i in (0..4).rev() {
        // A broadcast (size-1) axis does not advance.
        s[i] = if shape[i] == 1 { 0 } else { acc };
        acc *= shape[i];
    }
    s
}

impl Binary {
    pub(crate) fn run(&self, a: &[f32], b: &[f32], out: &mut [f32], extras: &[&[f32]]) {
        let c = self.out_shape[3];
        if self.a_shape == self.b_shape {
            bin_slices(self.kind, a, b, out);
        } else if self.a_shape == self.out_shape && self.b_shape[..3] == [1, 1, 1] && self.b_shape[3] == c {
            // Per-channel operand, as in squeeze-and-excitation blocks and PReLU.
            for (o, x) in out.chunks_exact_mut(c).zip(a.chunks_exact(c)) {
                bin_slices(self.kind, x, b, o);
            }
        } else {
            let (sa, sb) = (strides(&self.a_shape), strides(&self.b_shape));
            let s = self.out_shape;
            let mut idx = 0;
            for i0 in 0..s[0] {
                for i1 in 0..s[1] {
                    for i2 in 0..s[2] {
                        for i3 in 0..s[3] {
                            let ia = i0 * sa[0] + i1 * sa[1] + i2 * sa[2] + i3 * sa[3];
                            let ib = i0 * sb[0] + i1 * sb[1] + i2 * sb[2] + i3 * sb[3];
                            out[idx] = bin(self.kind, a[ia], b[ib]);
                            idx += 1;
                        }
                    }
                }
            }
        }
        apply_posts(out, 0, c, &self.posts, extras);
    }
}

/// PAD with zeros, shapes padded to rank 4; `before[i]` elements are inserted ahead of axis i.
#[derive(Debug)]
pub(crate) struct Pad {
    pub in_shape: [usize; 4],
    pub out_shape: [usize; 4],
    pub before: [usize; 4],
}

impl Pad {
    pub(crate) fn run(&self, input: &[f32], out: &mut [f32]) {
        pulp::Arch::new().dispatch(PadRun { pad: self, input, out });
    }
}

/// PAD's rows copied in whole vectors: BlazeFace pads channels (24 → 28, …) of every pixel, and a `memcpy`
/// call per pixel cost more than the copy.
struct PadRun<'a> {
    pad: &'a Pad,
    input: &'a [f32],
    out: &'a mut [f32],
}

impl pulp::WithSimd for PadRun<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _simd: S) {
        let PadRun { pad, input, out } = self;
        let lanes = S::F32_LANES;
        let copy = |dst: &mut [f32], src: &[f32]| {
            let n = src.len();
            if n < lanes {
                dst.copy_from_slice(src);
                return;
            }
            let vec = |s: &[f32]| S::as_simd_f32s(s).0[0];
            let mut i = 0;
            while i + lanes <= n {
                S::as_mut_simd_f32s(&mut dst[i..i + lanes]).0[0] = vec(&src[i..i + lanes]);
                i += lanes;
            }
            if i < n {
                // The last vector overlaps the one before: same values, no partial store.
                S::as_mut_simd_f32s(&mut dst[n - lanes..n]).0[0] = vec(&src[n - lanes..n]);
            }
        };
        pad.run_with(input, out, copy);
    }
}

impl Pad {
    #[inline(always)]
    fn run_with(&self, input: &[f32], out: &mut [f32], copy: impl Fn(&mut [f32], &[f32])) {
        out.fill(0.0);
        let (si, so) = (self.in_shape, self.out_shape);
        let row = si[3];
        let mut src = 0;
        for i0 in 0..si[0] {
            for i1 in 0..si[1] {
                for i2 in 0..si[2] {
                    let o = (((i0 + self.before[0]) * so[1] + i1 + self.before[1]) * so[2] + i2 + self.before[2])
                        * so[3]
                        + self.before[3];
                    copy(&mut out[o..o + row], &input[src..src + row]);
                    src += row;
                }
            }
        }
    }
}

/// CONCATENATION: for each `outer` index, each input contributes a contiguous block.
#[derive(Debug)]
pub(crate) struct Concat {
    pub outer: usize,
    /// Elements per outer index for each input.
    pub blocks: Vec<usize>,
    pub act: Activation,
}

impl Concat {
    pub(crate) fn run(&self, inputs: &[&[f32]], out: &mut [f32]) {
        let total: usize = self.blocks.iter().sum();
        for o in 0..self.outer {
            let mut at = o * total;
            for (inp, &blk) in inputs.iter().zip(&self.blocks) {
                out[at..at + blk].copy_from_slice(&inp[o * blk..(o + 1) * blk]);
                at += blk;
            }
        }
        activate(out, self.act);
    }
}

/// RESIZE_BILINEAR exactly as TFLite's reference kernel (including its edge clamping).
#[derive(Debug)]
pub(crate) struct Resize {
    pub batch: usize,
    pub in_h: usize,
    pub in_w: usize,
    pub c: usize,
    pub out_h: usize,
    pub out_w: usize,
    pub align_corners: bool,
    pub half_pixel_centers: bool,
    pub posts: Vec<Post>,
}

/// (lower index, upper index, weight of the upper one) for each output coordinate.
fn interp_table(out: usize, input: usize, align_corners: bool, half_pixel: bool) -> Vec<(usize, usize, f32)> {
    let scale =
        if align_corners && out > 1 { (input - 1) as f32 / (out - 1) as f32 } else { input as f32 / out as f32 };
    (0..out)
        .map(|i| {
            let v = if half_pixel { (i as f32 + 0.5) * scale - 0.5 } else { i as f32 * scale };
            let lo = (v.floor() as isize).max(0) as usize;
            let hi = (v.ceil() as isize).clamp(0, input as isize - 1) as usize;
            // The fraction is taken from the clamped lower index, as TFLite does.
            let lo = lo.min(input - 1);
            (lo, hi, v - lo as f32)
        })
        .collect()
}

impl Resize {
    pub(crate) fn run(&self, input: &[f32], out: &mut [f32], extras: &[&[f32]]) {
        let ys = interp_table(self.out_h, self.in_h, self.align_corners, self.half_pixel_centers);
        let xs = interp_table(self.out_w, self.in_w, self.align_corners, self.half_pixel_centers);
        let c = self.c;
        let orow = self.out_w * c;
        for b in 0..self.batch {
            let inp = &input[b * self.in_h * self.in_w * c..][..self.in_h * self.in_w * c];
            let outb = &mut out[b * self.out_h * orow..][..self.out_h * orow];
            for (row, &(y0, y1, fy)) in outb.chunks_exact_mut(orow).zip(&ys) {
                let r0 = &inp[y0 * self.in_w * c..][..self.in_w * c];
                let r1 = &inp[y1 * self.in_w * c..][..self.in_w * c];
                for (o, &(x0, x1, fx)) in row.chunks_exact_mut(c).zip(&xs) {
                    let (a, bb) = (&r0[x0 * c..][..c], &r0[x1 * c..][..c]);
                    let (cc, d) = (&r1[x0 * c..][..c], &r1[x1 * c..][..c]);
                    let w00 = (1.0 - fy) * (1.0 - fx);
                    let w01 = (1.0 - fy) * fx;
                    let w10 = fy * (1.0 - fx);
                    let w11 = fy * fx;
                    for i in 0..c {
                        o[i] = a[i] * w00 + bb[i] * w01 + cc[i] * w10 + d[i] * w11;
                    }
                }
            }
        }
        apply_posts(out, 0, c, &self.posts, extras);
    }
}

/// Standalone elementwise op (when it could not be fused into its producer).
#[derive(Debug)]
pub(crate) struct Unary {
    pub channels: usize,
    pub posts: Vec<Post>,
}

impl Unary {
    pub(crate) fn run(&self, input: &[f32], out: &mut [f32], extras: &[&[f32]]) {
        out.copy_from_slice(input);
        apply_posts(out, 0, self.channels, &self.posts, extras);
    }
}

/// Converts IEEE half-precision bits to f32 (subnormals, infinities and NaN included).
pub(crate) fn f16_to_f32(h: u16) -> f32 {
    // Normal numbers (nearly all weights): rebias the exponent by 127 - 15 = 112.
    let em = (h & 0x7fff) as u32;
    if (0x0400..0x7c00).contains(&em) {
        return f32::from_bits((((h & 0x8000) as u32) << 16) | ((em << 13) + (112 << 23)));
    }
    let sign = ((h >> 15) as u32) << 31;
    let exp = ((h >> 10) & 0x1f) as u32;
    let mant = (h & 0x3ff) as u32;
    let bits = match (exp, mant) {
        (0, 0) => sign,
        (0, m) => {
            // Subnormal: value = m * 2^-24.
            return if sign != 0 { -(m as f32) * 2f32.powi(-24) } else { m as f32 * 2f32.powi(-24) };
        }
        (31, 0) => sign | 0x7f80_0000,
        (31, m) => sign | 0x7fc0_0000 | (m << 13),
        (e, m) => sign | ((e + 127 - 15) << 23) | (m << 13),
    };
    f32::from_bits(bits)
}

#[cfg(test)]
mod tests {
    use super::*;
    use pulp::WithSimd;

    /// The vector depthwise paths (`depthwise::row` and the general one), with the CPU's instructions and with
    /// the scalar fallback, against the definition: odd channel counts (a partial or overlapping last vector,
    /// fewer channels than a vector), strides 1 and 2, padding on every side, rows narrower than a pixel block,
    /// dilation.
    #[test]
    fn depthwise_matches_the_definition() {
        let cases = [
            // (channels, stride, dilation, kernel, input width)
            (16, 1, 1, 3, 13),
            (28, 2, 1, 3, 13),
            (5, 1, 2, 3, 13),
            (24, 2, 1, 5, 13),
            (9, 1, 1, 1, 13),
            (36, 1, 1, 3, 17),
            (42, 2, 1, 3, 6),
            (42, 1, 1, 5, 19),
            (13, 2, 1, 5, 14),
            (8, 1, 1, 3, 3),
            (7, 1, 1, 3, 12),
            (16, 1, 1, 3, 2),
        ];
        for (c, stride, dil, k, in_w) in cases {
            let in_h = 11;
            let (out_h, pad_top) = out_size_and_pad(Padding::Same, in_h, k, stride, dil).expect("size");
            let (out_w, pad_left) = out_size_and_pad(Padding::Same, in_w, k, stride, dil).expect("size");
            let g = Geom {
                batch: 1,
                in_h,
                in_w,
                in_c: c,
                out_h,
                out_w,
                out_c: c,
                k_h: k,
                k_w: k,
                stride_h: stride,
                stride_w: stride,
                dil_h: dil,
                dil_w: dil,
                pad_top,
                pad_left,
            };
            let input: Vec<f32> = (0..in_h * in_w * c).map(|i| ((i * 7919) % 29) as f32 * 0.1 - 1.4).collect();
            let weights: Vec<f32> = (0..k * k * c).map(|i| ((i * 104_729) % 17) as f32 * 0.05 - 0.4).collect();
            let bias: Vec<f32> = (0..c).map(|i| i as f32 * 0.01).collect();
            let dw = Depthwise::new(g, 1, weights.clone(), bias.clone(), Vec::new());
            let mut want = vec![0.0f32; out_h * out_w * c];
            for oy in 0..out_h {
                for ox in 0..out_w {
                    for ch in 0..c {
                        let mut v = bias[ch];
                        for ky in 0..k {
                            for kx in 0..k {
                                let iy = (oy * stride + ky * dil) as isize - pad_top as isize;
                                let ix = (ox * stride + kx * dil) as isize - pad_left as isize;
                                if (0..in_h as isize).contains(&iy) && (0..in_w as isize).contains(&ix) {
                                    let x = input[(iy as usize * in_w + ix as usize) * c + ch];
                                    v += x * weights[(ky * k + kx) * c + ch];
                                }
                            }
                        }
                        want[(oy * out_w + ox) * c + ch] = v;
                    }
                }
            }
            let mut fast = vec![f32::NAN; want.len()];
            dw.run(&input, &mut fast, &[]);
            let mut scalar = vec![f32::NAN; want.len()];
            dw.run_rows_with(&input, &mut scalar, &[], |row| row.with_simd(pulp::Scalar::new()));
            let mut avx2 = vec![f32::NAN; want.len()];
            dw.run_rows_with(&input, &mut avx2, &[], |row| crate::gemm::with_avx2(row));
            for (i, w) in want.iter().enumerate() {
                for got in [fast[i], scalar[i], avx2[i]] {
                    assert!((got - w).abs() <= 1e-4 * w.abs().max(1.0), "c {c} stride {stride} [{i}]: {got} vs {w}");
                }
            }
        }
    }

    /// The transposed convolution, both when its taps tile the output (stride = kernel) and when they overlap,
    /// against the definition, with several input and output channels and two images.
    #[test]
    fn transposed_conv_matches_the_definition() {
        for (k, stride, in_h, in_w, ci, co) in
            [(2, 2, 3, 5, 5, 3), (2, 2, 2, 3, 16, 1), (3, 2, 3, 4, 4, 2), (2, 1, 3, 3, 3, 9)]
        {
            let (out_h, out_w) = ((in_h - 1) * stride + k, (in_w - 1) * stride + k);
            let g = Geom {
                batch: 2,
                in_h,
                in_w,
                in_c: ci,
                out_h,
                out_w,
                out_c: co,
                k_h: k,
                k_w: k,
                stride_h: stride,
                stride_w: stride,
                dil_h: 1,
                dil_w: 1,
                pad_top: 0,
                pad_left: 0,
            };
            let input: Vec<f32> = (0..2 * in_h * in_w * ci).map(|i| ((i * 7919) % 29) as f32 * 0.1 - 1.4).collect();
            // TFLite's [Cout][k_h][k_w][Cin].
            let w: Vec<f32> = (0..co * k * k * ci).map(|i| ((i * 104_729) % 17) as f32 * 0.05 - 0.4).collect();
            let bias: Vec<f32> = (0..co).map(|i| i as f32 * 0.1).collect();
            let tc = TransposeConv {
                g,
                weights: Packed::new(&TransposeConv::pack(&w, co, k * k, ci), ci, k * k * co),
                bias_taps: bias.repeat(k * k),
                bias: bias.clone(),
                posts: Vec::new(),
            };
            let mut want = vec![0.0f32; 2 * out_h * out_w * co];
            for b in 0..2 {
                for (i, v) in want[b * out_h * out_w * co..][..out_h * out_w * co].iter_mut().enumerate() {
                    *v = bias[i % co];
                }
                for iy in 0..in_h {
                    for ix in 0..in_w {
                        for ky in 0..k {
                            for kx in 0..k {
                                let (oy, ox) = (iy * stride + ky, ix * stride + kx);
                                for o in 0..co {
                                    for c in 0..ci {
                                        want[((b * out_h + oy) * out_w + ox) * co + o] += input
                                            [((b * in_h + iy) * in_w + ix) * ci + c]
                                            * w[((o * k + ky) * k + kx) * ci + c];
                                    }
                                }
                            }
                        }
                    }
                }
            }
            let mut got = vec![f32::NAN; want.len()];
            let mut scratch = vec![0.0; tc.scratch_len()];
            tc.run(&input, &mut got, &mut scratch, &[]);
            for (i, (g, w)) in got.iter().zip(&want).enumerate() {
                assert!((g - w).abs() <= 1e-4 * w.abs().max(1.0), "k {k} s {stride} [{i}]: {g} vs {w}");
            }
        }
    }

    #[test]
    fn f16_conversion_matches_the_definition() {
        for h in 0..=u16::MAX {
            let (sign, exp, mant) = ((h >> 15) as i32, ((h >> 10) & 0x1f) as i32, (h & 0x3ff) as f64);
            let got = f16_to_f32(h);
            let magnitude = match exp {
                0 => mant * 2f64.powi(-24),
                31 if mant == 0.0 => f64::INFINITY,
                31 => {
                    assert!(got.is_nan(), "{h:#06x}");
                    continue;
                }
                e => (1.0 + mant / 1024.0) * 2f64.powi(e - 15),
            };
            let want = if sign == 1 { -magnitude } else { magnitude };
            assert_eq!(got as f64, want, "{h:#06x}");
            assert_eq!(got.is_sign_negative(), sign == 1, "{h:#06x}");
        }
    }

    #[test]
    fn fast_exp_is_accurate() {
        let mut worst = 0.0f64;
        let mut x = -87.0f32;
        while x <= 87.0 {
            let want = (x as f64).exp();
            worst = worst.max(((fast_exp(x) as f64 - want) / want).abs());
            x += 0.0137;
        }
        assert!(worst < 4e-7, "relative error {worst}");
    }

    #[test]
    fn same_and_valid_sizes_follow_tflite() {
        // (padding, input, kernel, stride, dilation) -> (output, padding before)
        let cases = [
            (Padding::Same, 4, 3, 2, 1, (2, 0)),
            (Padding::Same, 5, 3, 2, 1, (3, 1)),
            (Padding::Same, 128, 5, 2, 1, (64, 1)),
            (Padding::Same, 7, 3, 1, 2, (7, 2)),
            (Padding::Valid, 5, 3, 2, 1, (2, 0)),
            (Padding::Valid, 6, 3, 2, 1, (2, 0)),
            (Padding::Valid, 5, 3, 1, 2, (1, 0)),
        ];
        for (p, i, k, s, d, want) in cases {
            assert_eq!(out_size_and_pad(p, i, k, s, d), Some(want), "{p:?} in {i} k {k} s {s} d {d}");
        }
        assert_eq!(out_size_and_pad(Padding::Valid, 2, 3, 1, 1), None);
    }
}
