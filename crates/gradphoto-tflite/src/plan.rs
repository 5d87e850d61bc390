//! Turns the parsed flatbuffer into an execution plan, once, at load: constants decoded (fp16
//! DEQUANTIZE folded), every shape checked against what the op computes, RESHAPE turned into an
//! alias, elementwise ops fused into their producer, and tensors packed into reusable slots.

use std::collections::HashMap;

use crate::Error;
use crate::gemm::Packed;
use crate::kernels::{
    BinKind, Binary, Concat, Conv, Depthwise, Geom, Pad, Pool, PoolKind, Post, Resize, TransposeConv, Unary,
    f16_to_f32, out_size_and_pad,
};
use crate::schema::{self, Activation, ModelFile, Padding, op, opt, ttype};

/// Largest tensor we accept (elements); far above the models' 1 M, far below an allocation failure.
const MAX_ELEMENTS: usize = 1 << 26;
/// Largest working memory of one run (activation slots + im2col scratch), in floats (512 MiB).
const MAX_WORKING_FLOATS: usize = 1 << 27;

#[derive(Debug)]
pub(crate) enum Kernel {
    Conv(Conv),
    Depthwise(Depthwise),
    TransposeConv(TransposeConv),
    Pool(Pool),
    Binary(Binary),
    Pad(Pad),
    Concat(Concat),
    Resize(Resize),
    Unary(Unary),
}

impl Kernel {
    fn posts_mut(&mut self) -> Option<&mut Vec<Post>> {
        match self {
            Kernel::Conv(k) => Some(&mut k.posts),
            Kernel::Depthwise(k) => Some(&mut k.posts),
            Kernel::TransposeConv(k) => Some(&mut k.posts),
            Kernel::Pool(k) => Some(&mut k.posts),
            Kernel::Binary(k) => Some(&mut k.posts),
            Kernel::Resize(k) => Some(&mut k.posts),
            Kernel::Unary(k) => Some(&mut k.posts),
            Kernel::Pad(_) | Kernel::Concat(_) => None,
        }
    }

    pub(crate) fn scratch_len(&self) -> usize {
        match self {
            Kernel::Conv(k) => k.scratch_len(),
            Kernel::TransposeConv(k) => k.scratch_len(),
            _ => 0,
        }
    }

    /// One line for profiles: kind, geometry, fused steps.
    pub(crate) fn describe(&self) -> String {
        let posts =
            |p: &[Post]| p.iter().map(|p| format!("{p:?}").chars().take(12).collect::<String>()).collect::<Vec<_>>();
        let geom =
            |g: &Geom| format!("{}x{}/{} {}x{}x{}->{}", g.k_h, g.k_w, g.stride_h, g.in_h, g.in_w, g.in_c, g.out_c);
        match self {
            Kernel::Conv(k) => format!("conv {} {:?}", geom(&k.g), posts(&k.posts)),
            Kernel::Depthwise(k) => format!("dw {} {:?}", geom(&k.g), posts(&k.posts)),
            Kernel::TransposeConv(k) => format!("tconv {} {:?}", geom(&k.g), posts(&k.posts)),
            Kernel::Pool(k) => format!("pool-{:?} {} {:?}", k.kind, geom(&k.g), posts(&k.posts)),
            Kernel::Binary(k) => format!("{:?} {:?} {:?} {:?}", k.kind, k.a_shape, k.b_shape, posts(&k.posts)),
            Kernel::Pad(k) => format!("pad {:?}->{:?}", k.in_shape, k.out_shape),
            Kernel::Concat(k) => format!("concat {:?}", k.blocks),
            Kernel::Resize(k) => {
                format!("resize {}x{}x{}->{}x{} {:?}", k.in_h, k.in_w, k.c, k.out_h, k.out_w, posts(&k.posts))
            }
            Kernel::Unary(k) => format!("unary {:?}", posts(&k.posts)),
        }
    }

    /// Inputs the kernel itself reads; any after these are extra inputs of fused posts.
    fn own_inputs(&self, total: usize) -> usize {
        match self {
            Kernel::Binary(_) => 2,
            Kernel::Concat(_) => total,
            _ => 1,
        }
    }

    pub(crate) fn run(&self, ins: &[&[f32]], out: &mut [f32], scratch: &mut [f32]) {
        let extras = &ins[self.own_inputs(ins.len())..];
        match self {
            Kernel::Conv(k) => k.run(ins[0], out, scratch, extras),
            Kernel::Depthwise(k) => k.run(ins[0], out, extras),
            Kernel::TransposeConv(k) => k.run(ins[0], out, scratch, extras),
            Kernel::Pool(k) => k.run(ins[0], out, extras),
            Kernel::Binary(k) => k.run(ins[0], ins[1], out, extras),
            Kernel::Pad(k) => k.run(ins[0], out),
            Kernel::Concat(k) => k.run(ins, out),
            Kernel::Resize(k) => k.run(ins[0], out, extras),
            Kernel::Unary(k) => k.run(ins[0], out, extras),
        }
    }
}

/// Where a tensor's data lives during `run`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Loc {
    Input(usize),
    Const(usize),
    Slot(usize),
}

#[derive(Debug)]
pub(crate) struct Step {
    pub kernel: Kernel,
    /// Where each input lives and its element count (slots may be longer than the tensor).
    pub inputs: Vec<(Loc, usize)>,
    pub output: usize,
    pub out_len: usize,
}

#[derive(Debug)]
pub(crate) struct Io {
    pub name: String,
    pub shape: Vec<usize>,
    pub loc: Loc,
    pub len: usize,
}

#[derive(Debug)]
pub(crate) struct Plan {
    pub steps: Vec<Step>,
    pub consts: Vec<Vec<f32>>,
    pub slot_sizes: Vec<usize>,
    pub scratch_len: usize,
    pub inputs: Vec<Io>,
    pub outputs: Vec<Io>,
}

/// Transposes a row-major rows × cols matrix, in 32 × 32 blocks so that neither side strides
/// through memory a cache line per element (FaceMesh's last layer is 1404 × 288).
fn transpose(src: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    const B: usize = 32;
    let mut dst = vec![0.0; rows * cols];
    for r0 in (0..rows).step_by(B) {
        for c0 in (0..cols).step_by(B) {
            for r in r0..(r0 + B).min(rows) {
                for c in c0..(c0 + B).min(cols) {
                    dst[c * rows + r] = src[r * cols + c];
                }
            }
        }
    }
    dst
}

fn bad(msg: String) -> Error {
    Error::Malformed(msg)
}

/// An op before fusion and slot assignment; tensors are still tensor ids.
struct Draft {
    kernel: Kernel,
    inputs: Vec<usize>,
    output: usize,
    /// Set when this draft was fused into an earlier one.
    removed: bool,
}

struct Builder<'a> {
    f: ModelFile<'a>,
    /// Constants produced at load (DEQUANTIZE of fp16 weights, RESHAPE of a constant).
    folded: HashMap<usize, Vec<f32>>,
    /// RESHAPE output → the tensor whose data it shares.
    alias: HashMap<usize, usize>,
    defined: Vec<bool>,
    drafts: Vec<Draft>,
}

pub(crate) fn build(bytes: &[u8]) -> Result<Plan, Error> {
    let f = schema::parse(bytes)?;
    let n = f.tensors.len();
    let mut b =
        Builder { f, folded: HashMap::new(), alias: HashMap::new(), defined: vec![false; n], drafts: Vec::new() };
    for t in 0..n {
        b.defined[t] = b.has_buffer(t)?;
    }
    for &i in &b.f.inputs.clone() {
        let t = b.tid(i)?;
        if b.defined[t] {
            return Err(bad(format!("graph input {t} is a constant")));
        }
        b.check_f32(t)?;
        b.shape(t)?;
        b.defined[t] = true;
    }
    for i in 0..b.f.operators.len() {
        b.add_op(i).map_err(|e| match e {
            Error::Malformed(m) => Error::Malformed(format!("operator {i}: {m}")),
            Error::Unsupported(m) => Error::Unsupported(format!("operator {i}: {m}")),
            other => other,
        })?;
    }
    b.fuse();
    b.finish()
}

impl Builder<'_> {
    fn tid(&self, i: i32) -> Result<usize, Error> {
        usize::try_from(i).ok().filter(|&t| t < self.f.tensors.len()).ok_or_else(|| bad(format!("tensor index {i}")))
    }

    fn has_buffer(&self, t: usize) -> Result<bool, Error> {
        let b = self.f.tensors[t].buffer as usize;
        let data = self.f.buffers.get(b).ok_or_else(|| bad(format!("tensor {t}: buffer index {b}")))?;
        Ok(!data.is_empty())
    }

    fn is_const(&self, t: usize) -> bool {
        self.folded.contains_key(&t) || self.has_buffer(t).unwrap_or(false)
    }

    fn shape(&self, t: usize) -> Result<Vec<usize>, Error> {
        let dims = &self.f.tensors[t].shape;
        let mut numel = 1usize;
        let mut out = Vec::with_capacity(dims.len());
        for &d in dims {
            let d = usize::try_from(d).ok().filter(|&d| d > 0).ok_or_else(|| bad(format!("tensor {t}: dim {d}")))?;
            numel = numel
                .checked_mul(d)
                .filter(|&n| n <= MAX_ELEMENTS)
                .ok_or_else(|| bad(format!("tensor {t} too large")))?;
            out.push(d);
        }
        if dims.len() > 6 {
            return Err(Error::Unsupported(format!("tensor {t} of rank {}", dims.len())));
        }
        Ok(out)
    }

    fn numel(&self, t: usize) -> Result<usize, Error> {
        Ok(self.shape(t)?.iter().product())
    }

    fn shape4(&self, t: usize) -> Result<[usize; 4], Error> {
        let s = self.shape(t)?;
        s.try_into().map_err(|_| Error::Unsupported(format!("tensor {t}: expected rank 4")))
    }

    fn check_f32(&self, t: usize) -> Result<(), Error> {
        let ty = self.f.tensors[t].ttype;
        if ty != ttype::FLOAT32 {
            return Err(Error::Unsupported(format!("tensor {t} of type {ty}, expected float32")));
        }
        Ok(())
    }

    fn raw(&self, t: usize) -> &[u8] {
        let b = self.f.tensors[t].buffer as usize;
        self.f.buffers.get(b).copied().unwrap_or(&[])
    }

    fn const_f32(&self, t: usize) -> Result<Vec<f32>, Error> {
        if let Some(v) = self.folded.get(&t) {
            return Ok(v.clone());
        }
        if !self.has_buffer(t)? {
            return Err(Error::Unsupported(format!("tensor {t} must be a constant")));
        }
        self.check_f32(t)?;
        let n = self.numel(t)?;
        let raw = self.raw(t);
        if raw.len() != n * 4 {
            return Err(bad(format!("tensor {t}: {} bytes for {n} floats", raw.len())));
        }
        Ok(raw.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect())
    }

    fn const_ints(&self, t: usize) -> Result<Vec<i64>, Error> {
        if !self.has_buffer(t)? {
            return Err(Error::Unsupported(format!("tensor {t} must be a constant")));
        }
        let n = self.numel(t)?;
        let raw = self.raw(t);
        match self.f.tensors[t].ttype {
            ttype::INT32 if raw.len() == n * 4 => {
                Ok(raw.chunks_exact(4).map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]]) as i64).collect())
            }
            ttype::INT64 if raw.len() == n * 8 => Ok(raw
                .chunks_exact(8)
                .map(|c| i64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]))
                .collect()),
            ty => Err(bad(format!("tensor {t}: integer constant of type {ty} with {} bytes", raw.len()))),
        }
    }

    /// A data input: must already hold a value; RESHAPE aliases resolved.
    fn data_in(&self, t: usize) -> Result<usize, Error> {
        if !self.defined[t] {
            return Err(bad(format!("reads tensor {t} before it is written")));
        }
        self.check_f32(t)?;
        Ok(*self.alias.get(&t).unwrap_or(&t))
    }

    fn define_out(&mut self, t: usize) -> Result<(), Error> {
        if self.defined[t] {
            return Err(bad(format!("writes tensor {t} twice (or a constant)")));
        }
        self.check_f32(t)?;
        self.defined[t] = true;
        Ok(())
    }

    fn add_op(&mut self, i: usize) -> Result<(), Error> {
        let o = &self.f.operators[i];
        let code =
            self.f.codes.get(o.opcode_index as usize).ok_or_else(|| bad(format!("opcode index {}", o.opcode_index)))?;
        let builtin = code.builtin;
        let custom = code.custom.clone();
        let ins: Vec<Option<usize>> =
            o.inputs.iter().map(|&x| if x < 0 { Ok(None) } else { self.tid(x).map(Some) }).collect::<Result<_, _>>()?;
        let outs: Vec<usize> = o.outputs.iter().map(|&x| self.tid(x)).collect::<Result<_, _>>()?;
        let [out] = outs[..] else {
            return Err(Error::Unsupported(format!("{} outputs", outs.len())));
        };
        let input = |k: usize| -> Result<usize, Error> {
            ins.get(k).copied().flatten().ok_or_else(|| bad(format!("missing input {k}")))
        };
        let optional = |k: usize| ins.get(k).copied().flatten();

        const IMPLEMENTED: [i32; 18] = [
            op::ADD,
            op::AVERAGE_POOL_2D,
            op::CONCATENATION,
            op::CONV_2D,
            op::DEPTHWISE_CONV_2D,
            op::DEQUANTIZE,
            op::LOGISTIC,
            op::MAX_POOL_2D,
            op::MUL,
            op::RELU,
            op::RELU_N1_TO_1,
            op::RELU6,
            op::RESHAPE,
            op::RESIZE_BILINEAR,
            op::CUSTOM,
            op::PAD,
            op::PRELU,
            op::HARD_SWISH,
        ];
        if !IMPLEMENTED.contains(&builtin) {
            return Err(Error::Unsupported(format!("builtin operator code {builtin}")));
        }
        if builtin == op::CUSTOM && custom.as_deref() != Some("Convolution2DTransposeBias") {
            return Err(Error::Unsupported(format!("custom operator {custom:?}")));
        }

        // Ops folded at load, with no step.
        match builtin {
            op::DEQUANTIZE => {
                let t = input(0)?;
                if !self.has_buffer(t)? {
                    return Err(Error::Unsupported("DEQUANTIZE of a runtime tensor".into()));
                }
                let n = self.numel(t)?;
                if self.numel(out)? != n {
                    return Err(bad("DEQUANTIZE changes the element count".into()));
                }
                let raw = self.raw(t);
                let data = match self.f.tensors[t].ttype {
                    ttype::FLOAT16 if raw.len() == 2 * n => {
                        raw.chunks_exact(2).map(|c| f16_to_f32(u16::from_le_bytes([c[0], c[1]]))).collect()
                    }
                    ttype::FLOAT16 => return Err(bad(format!("tensor {t}: {} bytes for {n} halves", raw.len()))),
                    ttype::FLOAT32 => self.const_f32(t)?,
                    ty => return Err(Error::Unsupported(format!("DEQUANTIZE from type {ty}"))),
                };
                self.define_out(out)?;
                self.folded.insert(out, data);
                return Ok(());
            }
            op::RESHAPE => {
                let t = input(0)?;
                if self.numel(t)? != self.numel(out)? {
                    return Err(bad("RESHAPE changes the element count".into()));
                }
                // The declared output shape is what counts; an explicit new_shape must agree with it.
                let new_shape = schema::reshape_new_shape(o)?;
                let declared = self.shape(out)?;
                if !new_shape.is_empty()
                    && (new_shape.len() != declared.len()
                        || new_shape.iter().zip(&declared).any(|(&n, &d)| n != -1 && n as i64 != d as i64))
                {
                    return Err(bad(format!("RESHAPE new_shape {new_shape:?} vs output {declared:?}")));
                }
                let src = self.data_in(t)?;
                self.define_out(out)?;
                if self.is_const(src) {
                    let v = self.const_f32(src)?;
                    self.folded.insert(out, v);
                } else {
                    self.alias.insert(out, src);
                }
                return Ok(());
            }
            _ => {}
        }

        // Shapes come from the op's own tensor ids; data from the RESHAPE-resolved ones.
        let x = input(0)?;
        let mut data_inputs = vec![self.data_in(x)?];
        let kernel = match builtin {
            op::CONV_2D => {
                let opts = schema::conv_options(o)?;
                let (w, bias) = (input(1)?, optional(2));
                let c = self.shape4(x)?[3];
                let [co, kh, kw, ci] = self.shape4(w)?;
                if ci != c {
                    return Err(bad(format!("weights for {ci} channels, input has {c}")));
                }
                let g = self.window_geom(x, out, [kh, kw], co, opts.window)?;
                let wts = self.const_f32(w)?;
                let k = kh * kw * ci;
                // TFLite stores [Cout][K]; the kernels want [K][Cout].
                Kernel::Conv(Conv::new(
                    g,
                    &transpose(&wts, co, k),
                    self.bias(bias, co)?,
                    vec![Post::Act(opts.activation)],
                ))
            }
            op::DEPTHWISE_CONV_2D => {
                let opts = schema::depthwise_options(o)?;
                let (w, bias) = (input(1)?, optional(2));
                let [_, _, _, c] = self.shape4(x)?;
                let [one, kh, kw, co] = self.shape4(w)?;
                let m = if opts.depth_multiplier == 0 { co / c } else { opts.depth_multiplier };
                if one != 1 || c.checked_mul(m) != Some(co) {
                    return Err(bad(format!("depthwise weights {:?} for {c} channels", [one, kh, kw, co])));
                }
                let g = self.window_geom(x, out, [kh, kw], co, opts.window)?;
                Kernel::Depthwise(Depthwise::new(
                    g,
                    m,
                    self.const_f32(w)?,
                    self.bias(bias, co)?,
                    vec![Post::Act(opts.activation)],
                ))
            }
            op::MAX_POOL_2D | op::AVERAGE_POOL_2D => {
                let opts = schema::pool_options(o)?;
                let c = self.shape4(x)?[3];
                let g = self.window_geom(x, out, [opts.filter_h, opts.filter_w], c, opts.window)?;
                let kind = if builtin == op::MAX_POOL_2D { PoolKind::Max } else { PoolKind::Average };
                Kernel::Pool(Pool { g, kind, posts: vec![Post::Act(opts.activation)] })
            }
            op::ADD | op::MUL => {
                let y = input(1)?;
                data_inputs.push(self.data_in(y)?);
                let (kind, tag) = if builtin == op::ADD { (BinKind::Add, opt::ADD) } else { (BinKind::Mul, opt::MUL) };
                let act = schema::arith_activation(o, tag)?;
                self.binary(kind, x, y, out, vec![Post::Act(act)])?
            }
            op::PRELU => {
                let alpha = input(1)?;
                let c = *self.shape(x)?.last().unwrap_or(&1);
                let ashape = self.shape(alpha)?;
                let per_channel = self.is_const(alpha)
                    && ashape.last() == Some(&c)
                    && ashape.iter().rev().skip(1).all(|&d| d == 1)
                    && ashape.len() <= self.shape(x)?.len();
                if per_channel {
                    self.same_shape(x, out)?;
                    let a = self.const_f32(alpha)?;
                    Kernel::Unary(Unary { channels: c, posts: vec![Post::PRelu(a)] })
                } else {
                    data_inputs.push(self.data_in(alpha)?);
                    self.binary(BinKind::PRelu, x, alpha, out, Vec::new())?
                }
            }
            op::RELU | op::RELU6 | op::RELU_N1_TO_1 | op::LOGISTIC | op::HARD_SWISH => {
                self.same_shape(x, out)?;
                let post = match builtin {
                    op::RELU => Post::Act(Activation::Relu),
                    op::RELU6 => Post::Act(Activation::Relu6),
                    op::RELU_N1_TO_1 => Post::Act(Activation::ReluN1To1),
                    op::LOGISTIC => Post::Logistic,
                    _ => Post::HardSwish,
                };
                let c = *self.shape(x)?.last().unwrap_or(&1);
                Kernel::Unary(Unary { channels: c, posts: vec![post] })
            }
            op::PAD => {
                let p = self.const_ints(input(1)?)?;
                let si = self.shape(x)?;
                let so = self.shape(out)?;
                if si.len() > 4 || so.len() != si.len() || p.len() != 2 * si.len() {
                    return Err(Error::Unsupported(format!("PAD of rank {}", si.len())));
                }
                let lead = 4 - si.len();
                let mut before = [0usize; 4];
                let (mut in4, mut out4) = ([1usize; 4], [1usize; 4]);
                for d in 0..si.len() {
                    let (a, z) = (p[2 * d], p[2 * d + 1]);
                    if a < 0
                        || z < 0
                        || (si[d] as i64).checked_add(a).and_then(|v| v.checked_add(z)) != Some(so[d] as i64)
                    {
                        return Err(bad(format!("PAD {a},{z} on axis {d}: {} -> {}", si[d], so[d])));
                    }
                    before[lead + d] = a as usize;
                    in4[lead + d] = si[d];
                    out4[lead + d] = so[d];
                }
                Kernel::Pad(Pad { in_shape: in4, out_shape: out4, before })
            }
            op::CONCATENATION => {
                let (axis, act) = schema::concat_options(o)?;
                let so = self.shape(out)?;
                let rank = so.len() as i64;
                let axis = if axis < 0 { axis as i64 + rank } else { axis as i64 };
                if !(0..rank).contains(&axis) {
                    return Err(bad(format!("concatenation axis {axis}")));
                }
                let axis = axis as usize;
                let mut blocks = Vec::new();
                let mut sum = 0;
                data_inputs.clear();
                for k in 0..ins.len() {
                    let t = input(k)?;
                    let s = self.shape(t)?;
                    if s.len() != so.len() || (0..s.len()).any(|d| d != axis && s[d] != so[d]) {
                        return Err(bad(format!("concatenation input {k} shape {s:?} vs {so:?}")));
                    }
                    sum += s[axis];
                    blocks.push(s[axis..].iter().product());
                    data_inputs.push(self.data_in(t)?);
                }
                if sum != so[axis] || blocks.is_empty() {
                    return Err(bad("concatenation sizes".into()));
                }
                Kernel::Concat(Concat { outer: so[..axis].iter().product(), blocks, act })
            }
            op::RESIZE_BILINEAR => {
                let (align_corners, half_pixel_centers) = schema::resize_options(o)?;
                let [n, h, w, c] = self.shape4(x)?;
                let [on, oh, ow, oc] = self.shape4(out)?;
                if (on, oc) != (n, c) {
                    return Err(bad("RESIZE_BILINEAR shape".into()));
                }
                if let Some(size) = optional(1).filter(|&t| self.is_const(t))
                    && self.const_ints(size)? != [oh as i64, ow as i64]
                {
                    return Err(bad("RESIZE_BILINEAR size differs from the output shape".into()));
                }
                Kernel::Resize(Resize {
                    batch: n,
                    in_h: h,
                    in_w: w,
                    c,
                    out_h: oh,
                    out_w: ow,
                    align_corners,
                    half_pixel_centers,
                    posts: Vec::new(),
                })
            }
            op::CUSTOM if custom.as_deref() == Some("Convolution2DTransposeBias") => {
                let (padding, sw, sh) = schema::transpose_conv_options(o)?;
                let (w, bias) = (input(1)?, input(2)?);
                let [n, h, wd, c] = self.shape4(x)?;
                let [co, kh, kw, ci] = self.shape4(w)?;
                if ci != c {
                    return Err(bad(format!("weights for {ci} channels, input has {c}")));
                }
                // MediaPipe's Prepare: SAME trims max(0, k - (in - 1) % stride - 1), half of it before.
                let trim = |k: usize, i: usize, s: usize| match padding {
                    Padding::Same => (k + 1).saturating_sub((i - 1) % s + 2),
                    Padding::Valid => 0,
                };
                let (th, tw) = (trim(kh, h, sh), trim(kw, wd, sw));
                let oh = (sh * (h - 1) + kh).checked_sub(th).filter(|&v| v > 0);
                let ow = (sw * (wd - 1) + kw).checked_sub(tw).filter(|&v| v > 0);
                let (Some(oh), Some(ow)) = (oh, ow) else { return Err(bad("transposed conv output size".into())) };
                if self.shape(out)? != [n, oh, ow, co] {
                    return Err(bad(format!("output shape {:?}, expected {:?}", self.shape(out)?, [n, oh, ow, co])));
                }
                let g = Geom {
                    batch: n,
                    in_h: h,
                    in_w: wd,
                    in_c: c,
                    out_h: oh,
                    out_w: ow,
                    out_c: co,
                    k_h: kh,
                    k_w: kw,
                    stride_h: sh,
                    stride_w: sw,
                    dil_h: 1,
                    dil_w: 1,
                    pad_top: th / 2,
                    pad_left: tw / 2,
                };
                let bias = self.bias(Some(bias), co)?;
                Kernel::TransposeConv(TransposeConv {
                    g,
                    weights: Packed::new(&TransposeConv::pack(&self.const_f32(w)?, co, kh * kw, ci), ci, kh * kw * co),
                    bias_taps: bias.repeat(kh * kw),
                    bias,
                    posts: Vec::new(),
                })
            }
            other => return Err(Error::Unsupported(format!("builtin operator code {other}"))),
        };
        self.define_out(out)?;
        self.numel(out)?;
        self.drafts.push(Draft { kernel, inputs: data_inputs, output: out, removed: false });
        Ok(())
    }

    fn bias(&self, t: Option<usize>, n: usize) -> Result<Vec<f32>, Error> {
        match t {
            None => Ok(vec![0.0; n]),
            Some(t) => {
                let v = self.const_f32(t)?;
                if v.len() != n {
                    return Err(bad(format!("bias of {} values for {n} channels", v.len())));
                }
                Ok(v)
            }
        }
    }

    fn same_shape(&self, a: usize, b: usize) -> Result<(), Error> {
        if self.shape(a)? != self.shape(b)? {
            return Err(bad(format!("tensors {a} and {b} differ in shape")));
        }
        Ok(())
    }

    /// Geometry of a conv/pool from the input and declared output; the output must be what TFLite computes.
    fn window_geom(
        &self,
        x: usize,
        out: usize,
        [kh, kw]: [usize; 2],
        out_c: usize,
        win: schema::Window,
    ) -> Result<Geom, Error> {
        let [n, h, w, c] = self.shape4(x)?;
        let (oh, pt) = out_size_and_pad(win.padding, h, kh, win.stride_h, win.dilation_h)
            .ok_or_else(|| bad("window larger than input".into()))?;
        let (ow, pl) = out_size_and_pad(win.padding, w, kw, win.stride_w, win.dilation_w)
            .ok_or_else(|| bad("window larger than input".into()))?;
        let declared = self.shape(out)?;
        if declared != [n, oh, ow, out_c] {
            return Err(bad(format!("output shape {declared:?}, expected {:?}", [n, oh, ow, out_c])));
        }
        Ok(Geom {
            batch: n,
            in_h: h,
            in_w: w,
            in_c: c,
            out_h: oh,
            out_w: ow,
            out_c,
            k_h: kh,
            k_w: kw,
            stride_h: win.stride_h,
            stride_w: win.stride_w,
            dil_h: win.dilation_h,
            dil_w: win.dilation_w,
            pad_top: pt,
            pad_left: pl,
        })
    }

    fn binary(&self, kind: BinKind, a: usize, b: usize, out: usize, posts: Vec<Post>) -> Result<Kernel, Error> {
        let pad4 = |s: Vec<usize>| -> Result<[usize; 4], Error> {
            if s.len() > 4 {
                return Err(Error::Unsupported(format!("broadcast of rank {}", s.len())));
            }
            let mut r = [1; 4];
            r[4 - s.len()..].copy_from_slice(&s);
            Ok(r)
        };
        let (sa, sb, so) = (pad4(self.shape(a)?)?, pad4(self.shape(b)?)?, pad4(self.shape(out)?)?);
        for d in 0..4 {
            let expect = match (sa[d], sb[d]) {
                (x, y) if x == y => x,
                (1, y) => y,
                (x, 1) => x,
                _ => return Err(bad(format!("shapes {sa:?} and {sb:?} do not broadcast"))),
            };
            if so[d] != expect {
                return Err(bad(format!("output shape {so:?} for inputs {sa:?}, {sb:?}")));
            }
        }
        Ok(Kernel::Binary(Binary { kind, a_shape: sa, b_shape: sb, out_shape: so, posts }))
    }

    /// Moves an elementwise step into its producer when nothing else reads the intermediate:
    /// unary ops (RELU, PRELU, LOGISTIC, ...) and same-shape ADDs whose other operand already
    /// exists when the producer runs (residual connections), so both cost no extra pass.
    fn fuse(&mut self) {
        let pinned: Vec<usize> = self
            .f
            .outputs
            .iter()
            .filter_map(|&t| self.tid(t).ok())
            .map(|t| *self.alias.get(&t).unwrap_or(&t))
            .collect();
        let mut readers: HashMap<usize, usize> = HashMap::new();
        for d in &self.drafts {
            for &t in &d.inputs {
                *readers.entry(t).or_default() += 1;
            }
        }
        // Tensor → index of the draft that now produces it (graph inputs and constants: none).
        let mut producer: HashMap<usize, usize> = HashMap::new();
        for j in 0..self.drafts.len() {
            let output = self.drafts[j].output;
            // Candidates: (intermediate produced earlier, posts to append, extra input for them).
            let mut candidates: Vec<(usize, Vec<Post>, Option<usize>)> = Vec::new();
            match &self.drafts[j].kernel {
                Kernel::Unary(u) => candidates.push((self.drafts[j].inputs[0], u.posts.clone(), None)),
                Kernel::Binary(b)
                    if b.kind == BinKind::Add && b.a_shape == b.b_shape && self.drafts[j].inputs.len() == 2 =>
                {
                    let (x, y) = (self.drafts[j].inputs[0], self.drafts[j].inputs[1]);
                    if x != y {
                        candidates.push((x, b.posts.clone(), Some(y)));
                        candidates.push((y, b.posts.clone(), Some(x)));
                    }
                }
                _ => {}
            }
            let chosen = candidates.into_iter().find(|(t, _, other)| {
                let Some(&i) = producer.get(t) else { return false };
                let ready = other.is_none_or(|u| producer.get(&u).is_none_or(|&p| p < i));
                readers.get(t) == Some(&1)
                    && !pinned.contains(t)
                    && ready
                    && self.drafts[i].kernel.posts_mut().is_some()
            });
            match chosen {
                Some((t, posts, other)) => {
                    let i = producer[&t];
                    let d = &mut self.drafts[i];
                    let extra_index = d.inputs.len() - d.kernel.own_inputs(d.inputs.len());
                    if let Some(p) = d.kernel.posts_mut() {
                        if other.is_some() {
                            p.push(Post::AddInput(extra_index));
                        }
                        p.extend(posts);
                    }
                    if let Some(u) = other {
                        d.inputs.push(u);
                    }
                    d.output = output;
                    self.drafts[j].removed = true;
                    producer.insert(output, i);
                }
                None => {
                    producer.insert(output, j);
                }
            }
        }
        self.drafts.retain(|d| !d.removed);
        for d in &mut self.drafts {
            if let Some(p) = d.kernel.posts_mut() {
                p.retain(|p| !matches!(p, Post::Act(Activation::None)));
            }
        }
    }

    fn finish(mut self) -> Result<Plan, Error> {
        let drafts = std::mem::take(&mut self.drafts);
        let graph_inputs: Vec<usize> = self.f.inputs.iter().map(|&t| self.tid(t)).collect::<Result<_, _>>()?;
        let graph_outputs: Vec<usize> = self.f.outputs.iter().map(|&t| self.tid(t)).collect::<Result<_, _>>()?;
        let canon = |t: usize| *self.alias.get(&t).unwrap_or(&t);

        // Last step that reads each tensor; graph outputs live to the end.
        let mut last_use: HashMap<usize, usize> = HashMap::new();
        for (s, d) in drafts.iter().enumerate() {
            for &t in &d.inputs {
                last_use.insert(t, s);
            }
        }
        for &t in &graph_outputs {
            if !self.defined[t] {
                return Err(bad(format!("graph output {t} is never written")));
            }
            self.check_f32(t)?;
            last_use.insert(canon(t), usize::MAX);
        }

        let mut consts: Vec<Vec<f32>> = Vec::new();
        let mut const_ids: HashMap<usize, usize> = HashMap::new();
        let mut slot_of: HashMap<usize, usize> = HashMap::new();
        let mut slot_sizes: Vec<usize> = Vec::new();
        let mut free: Vec<usize> = Vec::new();
        let mut live: Vec<(usize, usize)> = Vec::new(); // (tensor, slot)
        let mut steps = Vec::with_capacity(drafts.len());
        let mut scratch_len = 0;

        let mut loc = |t: usize, consts: &mut Vec<Vec<f32>>, slot_of: &HashMap<usize, usize>| -> Result<Loc, Error> {
            if let Some(k) = graph_inputs.iter().position(|&g| g == t) {
                return Ok(Loc::Input(k));
            }
            if let Some(&s) = slot_of.get(&t) {
                return Ok(Loc::Slot(s));
            }
            if self.is_const(t) {
                let k = match const_ids.get(&t) {
                    Some(&k) => k,
                    None => {
                        consts.push(self.const_f32(t)?);
                        const_ids.insert(t, consts.len() - 1);
                        consts.len() - 1
                    }
                };
                return Ok(Loc::Const(k));
            }
            Err(bad(format!("tensor {t} has no value")))
        };

        for (s, d) in drafts.into_iter().enumerate() {
            // Release slots whose tensors were last read by an earlier step.
            live.retain(|&(t, slot)| {
                let keep = last_use.get(&t).is_some_and(|&u| u >= s);
                if !keep {
                    free.push(slot);
                }
                keep
            });
            let inputs = d
                .inputs
                .iter()
                .map(|&t| Ok((loc(t, &mut consts, &slot_of)?, self.numel(t)?)))
                .collect::<Result<Vec<_>, Error>>()?;
            let out_len = self.numel(d.output)?;
            // Best fit among free slots, else grow the largest free one, else a new slot.
            let pick = free
                .iter()
                .enumerate()
                .filter(|&(_, &sl)| slot_sizes[sl] >= out_len)
                .min_by_key(|&(_, &sl)| slot_sizes[sl])
                .or_else(|| free.iter().enumerate().max_by_key(|&(_, &sl)| slot_sizes[sl]))
                .map(|(i, _)| i);
            let slot = match pick {
                Some(i) => free.swap_remove(i),
                None => {
                    slot_sizes.push(0);
                    slot_sizes.len() - 1
                }
            };
            slot_sizes[slot] = slot_sizes[slot].max(out_len);
            slot_of.insert(d.output, slot);
            live.push((d.output, slot));
            scratch_len = scratch_len.max(d.kernel.scratch_len());
            steps.push(Step { kernel: d.kernel, inputs, output: slot, out_len });
        }

        // A hostile file can declare huge tensors without data; refuse before `run` would allocate.
        let floats = slot_sizes.iter().fold(scratch_len, |a, &n| a.saturating_add(n));
        if floats > MAX_WORKING_FLOATS {
            return Err(Error::Unsupported(format!("working memory of {floats} floats")));
        }
        let mut io = |t: usize, consts: &mut Vec<Vec<f32>>| -> Result<Io, Error> {
            let shape = self.shape(t)?;
            Ok(Io {
                name: self.f.tensors[t].name.clone(),
                len: shape.iter().product(),
                shape,
                loc: loc(canon(t), consts, &slot_of)?,
            })
        };
        let inputs = graph_inputs.iter().map(|&t| io(t, &mut consts)).collect::<Result<Vec<_>, _>>()?;
        let outputs = graph_outputs.iter().map(|&t| io(t, &mut consts)).collect::<Result<Vec<_>, _>>()?;
        Ok(Plan { steps, consts, slot_sizes, scratch_len, inputs, outputs })
    }
}
