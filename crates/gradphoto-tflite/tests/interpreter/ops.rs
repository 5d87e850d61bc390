//! One test per operator on tiny tensors whose results were worked out by hand (comments show the sums).

use crate::common::{Graph, RELU, RELU6, SAME, V, VALID, assert_close, conv_opts, iota, op, opt, run};
use gradphoto_tflite::{Error, Model};

/// 4×4 single-channel input 1..16, 3×3 kernels of ones (Cout 0) and twos (Cout 1), SAME, stride 2.
/// Output 2×2; TFLite pads 1 row/column at the bottom/right only (total 1, before = 0).
#[test]
fn conv_same_stride_2() {
    let mut g = Graph::new();
    let x = g.input(&[1, 4, 4, 1]);
    let mut w = vec![1.0; 9];
    w.extend([2.0; 9]);
    let w = g.f32s(&[2, 3, 3, 1], &w);
    let b = g.f32s(&[2], &[0.5, 0.0]);
    let y = g.tensor(&[1, 2, 2, 2]);
    g.op(op::CONV_2D, &[x, w, b], &[y], opt::CONV_2D, &conv_opts(SAME, 2, 0));
    g.output(y);
    // (0,0): 1+2+3+5+6+7+9+10+11 = 54; (0,1): 3+4+7+8+11+12 = 45; (1,0): 9+10+11+13+14+15 = 72; (1,1): 11+12+15+16 = 54.
    let out = run(&g, &iota(16, 1.0));
    assert_close(&out[0], &[54.5, 108.0, 45.5, 90.0, 72.5, 144.0, 54.5, 108.0]);
}

/// 5×5 input 0..24, 3×3 ones, VALID, stride 2, bias -100 and fused RELU.
#[test]
fn conv_valid_stride_2_relu() {
    let mut g = Graph::new();
    let x = g.input(&[1, 5, 5, 1]);
    let w = g.f32s(&[1, 3, 3, 1], &[1.0; 9]);
    let b = g.f32s(&[1], &[-100.0]);
    let y = g.tensor(&[1, 2, 2, 1]);
    g.op(op::CONV_2D, &[x, w, b], &[y], opt::CONV_2D, &conv_opts(VALID, 2, RELU));
    g.output(y);
    // Window sums 54, 72, 144, 162 minus 100, clamped at 0.
    assert_close(&run(&g, &iota(25, 0.0))[0], &[0.0, 0.0, 44.0, 62.0]);
}

/// Dilation 2: a 3×3 kernel on a 5×5 input (VALID) reads the corners, edge centres and centre.
#[test]
fn conv_dilated() {
    let mut g = Graph::new();
    let x = g.input(&[1, 5, 5, 1]);
    let w = g.f32s(&[1, 3, 3, 1], &[1.0; 9]);
    let y = g.tensor(&[1, 1, 1, 1]);
    let mut o = conv_opts(VALID, 1, 0);
    o.extend([(4, V::I32(2)), (5, V::I32(2))]);
    // No bias input at all (-1).
    g.op(op::CONV_2D, &[x, w, -1], &[y], opt::CONV_2D, &o);
    g.output(y);
    // 0+2+4+10+12+14+20+22+24
    assert_close(&run(&g, &iota(25, 0.0))[0], &[108.0]);
}

/// 1×1 convolution (the GEMM-only path): 2 pixels × 2 channels → 3 channels, RELU6.
#[test]
fn conv_pointwise_relu6() {
    let mut g = Graph::new();
    let x = g.input(&[1, 1, 2, 2]);
    // Rows are output channels: [1, 1], [1, -1], [3, 0].
    let w = g.f32s(&[3, 1, 1, 2], &[1.0, 1.0, 1.0, -1.0, 3.0, 0.0]);
    let b = g.f32s(&[3], &[0.0, 0.0, 0.5]);
    let y = g.tensor(&[1, 1, 2, 3]);
    g.op(op::CONV_2D, &[x, w, b], &[y], opt::CONV_2D, &conv_opts(SAME, 1, RELU6));
    g.output(y);
    // Pixel (1, 2): [3, -1, 3.5]; pixel (3, -4): [-1, 7, 9.5] → clamped to [0, 6].
    assert_close(&run(&g, &[1.0, 2.0, 3.0, -4.0])[0], &[3.0, 0.0, 3.5, 0.0, 6.0, 6.0]);
}

/// Depthwise with multiplier 2: output channel c reads input channel c / 2.
#[test]
fn depthwise_multiplier_2() {
    let mut g = Graph::new();
    let x = g.input(&[1, 3, 3, 2]);
    // Per tap: [1, centre-only, 1, -1] for the four output channels.
    let mut w = Vec::new();
    for tap in 0..9 {
        w.extend([1.0, if tap == 4 { 1.0 } else { 0.0 }, 1.0, -1.0]);
    }
    let w = g.f32s(&[1, 3, 3, 4], &w);
    let b = g.f32s(&[4], &[0.0, 0.0, 0.0, 1.0]);
    let y = g.tensor(&[1, 1, 1, 4]);
    let mut o = conv_opts(VALID, 1, 0);
    o[3] = (3, V::I32(2)); // depth_multiplier
    o.push((4, V::U8(0))); // fused activation
    g.op(op::DEPTHWISE_CONV_2D, &[x, w, b], &[y], opt::DEPTHWISE_CONV_2D, &o);
    g.output(y);
    // Channel 0 holds 1..9, channel 1 holds 10..90.
    let input: Vec<f32> = (1..=9).flat_map(|v| [v as f32, 10.0 * v as f32]).collect();
    // sum(1..9) = 45, centre 5, sum(10..90) = 450, -450 + 1.
    assert_close(&run(&g, &input)[0], &[45.0, 5.0, 450.0, -449.0]);
}

/// Depthwise SAME stride 2 on 17 channels (a block of 8 twice, then 1 left over), every channel
/// equal to the conv_same_stride_2 case scaled by (c + 1).
#[test]
fn depthwise_same_stride_2_many_channels() {
    let c = 17;
    let mut g = Graph::new();
    let x = g.input(&[1, 4, 4, c]);
    let w: Vec<f32> = (0..9).flat_map(|_| (0..c).map(|k| (k + 1) as f32)).collect();
    let w = g.f32s(&[1, 3, 3, c], &w);
    let b = g.f32s(&[c], &vec![0.0; c]);
    let y = g.tensor(&[1, 2, 2, c]);
    let mut o = conv_opts(SAME, 2, 0);
    o[3] = (3, V::I32(1));
    g.op(op::DEPTHWISE_CONV_2D, &[x, w, b], &[y], opt::DEPTHWISE_CONV_2D, &o);
    g.output(y);
    let input: Vec<f32> = (1..=16).flat_map(|v| vec![v as f32; c]).collect();
    let want: Vec<f32> =
        [54.0, 45.0, 72.0, 54.0].iter().flat_map(|s| (0..c).map(move |k| s * (k + 1) as f32)).collect();
    assert_close(&run(&g, &input)[0], &want);
}

/// Depthwise SAME stride 1 (the row-wise path): 3×3 input 1..9, kernel of ones (channel 0) and
/// twos (channel 1), so each output is the sum (or twice the sum) of its in-bounds 3×3 neighbourhood.
#[test]
fn depthwise_same_stride_1() {
    let mut g = Graph::new();
    let x = g.input(&[1, 3, 3, 2]);
    let w: Vec<f32> = (0..9).flat_map(|_| [1.0, 2.0]).collect();
    let w = g.f32s(&[1, 3, 3, 2], &w);
    let b = g.f32s(&[2], &[0.0, 0.5]);
    let y = g.tensor(&[1, 3, 3, 2]);
    let mut o = conv_opts(SAME, 1, 0);
    o[3] = (3, V::I32(1));
    g.op(op::DEPTHWISE_CONV_2D, &[x, w, b], &[y], opt::DEPTHWISE_CONV_2D, &o);
    g.output(y);
    let input: Vec<f32> = (1..=9).flat_map(|v| [v as f32, v as f32]).collect();
    let sums = [12.0, 21.0, 16.0, 27.0, 45.0, 33.0, 24.0, 39.0, 28.0];
    let want: Vec<f32> = sums.iter().flat_map(|s| [*s, 2.0 * s + 0.5]).collect();
    assert_close(&run(&g, &input)[0], &want);
}

/// A 1×5 depthwise kernel on a 3-wide row (wider than the input): out[x] = sum_k in[x + k - 2] * w[k].
#[test]
fn depthwise_kernel_wider_than_input() {
    let mut g = Graph::new();
    let x = g.input(&[1, 1, 3, 1]);
    let w = g.f32s(&[1, 1, 5, 1], &[1.0, 2.0, 3.0, 4.0, 5.0]);
    let y = g.tensor(&[1, 1, 3, 1]);
    let mut o = conv_opts(SAME, 1, 0);
    o[3] = (3, V::I32(1));
    g.op(op::DEPTHWISE_CONV_2D, &[x, w, -1], &[y], opt::DEPTHWISE_CONV_2D, &o);
    g.output(y);
    // 1*3 + 2*4 + 3*5, 1*2 + 2*3 + 3*4, 1*1 + 2*2 + 3*3
    assert_close(&run(&g, &[1.0, 2.0, 3.0])[0], &[26.0, 20.0, 14.0]);
}

/// A residual ADD (+ RELU6) is folded into the conv that produces one operand when the other
/// already exists; when the other is computed after the conv and is also a graph output, the ADD
/// stays a step of its own. Both give the same values.
#[test]
fn residual_add_fused_or_not() {
    for other_after in [false, true] {
        let mut g = Graph::new();
        let x = g.input(&[1, 1, 2, 2]);
        let mut u = x;
        if !other_after {
            u = g.tensor(&[1, 1, 2, 2]);
            g.op(op::RELU, &[x], &[u], 0, &[]);
        }
        let w = g.f32s(&[2, 1, 1, 2], &[2.0, 0.0, 0.0, 2.0]);
        let y = g.tensor(&[1, 1, 2, 2]);
        g.op(op::CONV_2D, &[x, w, -1], &[y], opt::CONV_2D, &conv_opts(VALID, 1, 0));
        if other_after {
            u = g.tensor(&[1, 1, 2, 2]);
            g.op(op::RELU, &[x], &[u], 0, &[]);
        }
        let z = g.tensor(&[1, 1, 2, 2]);
        g.op(op::ADD, &[u, y], &[z], opt::ADD, &[(0, V::U8(RELU6))]);
        g.output(z);
        if other_after {
            g.output(u);
        }
        // relu6(relu(x) + 2x)
        let x = [1.0, -1.0, 3.0, -0.25];
        let want: Vec<f32> = x.iter().map(|&v: &f32| (v.max(0.0) + 2.0 * v).clamp(0.0, 6.0)).collect();
        let model = Model::from_bytes(&g.build()).unwrap();
        // RELU + conv-with-ADD, or conv + RELU + ADD.
        let steps = if other_after { "steps: 3" } else { "steps: 2" };
        assert!(format!("{model:?}").contains(steps), "{model:?}");
        let out = model.run(&[&x]).unwrap();
        assert_close(&out[0], &want);
        if other_after {
            assert_close(&out[1], &[1.0, 0.0, 3.0, 0.0]);
        }
    }
}

/// PRELU with a per-channel slope (fused into no producer: it reads the graph input).
#[test]
fn prelu_per_channel() {
    let mut g = Graph::new();
    let x = g.input(&[1, 1, 2, 2]);
    let a = g.f32s(&[1, 1, 2], &[0.5, 0.25]);
    let y = g.tensor(&[1, 1, 2, 2]);
    g.op(op::PRELU, &[x, a], &[y], 0, &[]);
    g.output(y);
    assert_close(&run(&g, &[-2.0, 3.0, 4.0, -5.0])[0], &[-1.0, 3.0, 4.0, -1.25]);
}

/// PRELU whose slope varies over width as well (the general broadcasting path).
#[test]
fn prelu_broadcast() {
    let mut g = Graph::new();
    let x = g.input(&[1, 1, 2, 2]);
    let a = g.f32s(&[2, 1], &[0.5, 0.1]);
    let y = g.tensor(&[1, 1, 2, 2]);
    g.op(op::PRELU, &[x, a], &[y], 0, &[]);
    g.output(y);
    assert_close(&run(&g, &[-2.0, -3.0, 4.0, -5.0])[0], &[-1.0, -1.5, 4.0, -0.5]);
}

fn pool(kind: i32, padding: u8, stride: i32, filter: i32, out: usize) -> Vec<f32> {
    let mut g = Graph::new();
    let x = g.input(&[1, 4, 4, 1]);
    let y = g.tensor(&[1, out, out, 1]);
    let o = vec![
        (0, V::U8(padding)),
        (1, V::I32(stride)),
        (2, V::I32(stride)),
        (3, V::I32(filter)),
        (4, V::I32(filter)),
        (5, V::U8(0)),
    ];
    g.op(kind, &[x], &[y], opt::POOL_2D, &o);
    g.output(y);
    run(&g, &iota(16, 1.0)).remove(0)
}

#[test]
fn max_pool_valid() {
    assert_close(&pool(op::MAX_POOL_2D, VALID, 2, 2, 2), &[6.0, 8.0, 14.0, 16.0]);
}

/// Average over in-bounds taps only: 54/9, 45/6, 72/6, 54/4.
#[test]
fn average_pool_same_ignores_padding() {
    assert_close(&pool(op::AVERAGE_POOL_2D, SAME, 2, 3, 2), &[6.0, 7.5, 12.0, 13.5]);
}

/// Global average pool, as in the squeeze-and-excitation blocks of selfie segmentation.
#[test]
fn average_pool_global() {
    assert_close(&pool(op::AVERAGE_POOL_2D, VALID, 1, 4, 1), &[8.5]);
}

fn resize(align_corners: bool, half_pixel: bool) -> Vec<f32> {
    let mut g = Graph::new();
    let x = g.input(&[1, 2, 2, 1]);
    let size = g.i32s(&[2], &[4, 4]);
    let y = g.tensor(&[1, 4, 4, 1]);
    g.op(
        op::RESIZE_BILINEAR,
        &[x, size],
        &[y],
        opt::RESIZE_BILINEAR,
        &[(2, V::Bool(align_corners)), (3, V::Bool(half_pixel))],
    );
    g.output(y);
    run(&g, &[0.0, 1.0, 2.0, 3.0]).remove(0)
}

/// Source coordinate i * 0.5: 0, 0.5, 1, 1.5 (the last clamps to the edge).
#[test]
fn resize_bilinear_default() {
    #[rustfmt::skip]
    let want = [
        0.0, 0.5, 1.0, 1.0,
        1.0, 1.5, 2.0, 2.0,
        2.0, 2.5, 3.0, 3.0,
        2.0, 2.5, 3.0, 3.0,
    ];
    assert_close(&resize(false, false), &want);
}

/// Source coordinate (i + 0.5) * 0.5 - 0.5: -0.25, 0.25, 0.75, 1.25 (both ends clamp).
#[test]
fn resize_bilinear_half_pixel_centers() {
    #[rustfmt::skip]
    let want = [
        0.0, 0.25, 0.75, 1.0,
        0.5, 0.75, 1.25, 1.5,
        1.5, 1.75, 2.25, 2.5,
        2.0, 2.25, 2.75, 3.0,
    ];
    assert_close(&resize(false, true), &want);
}

/// Source coordinate i / 3.
#[test]
fn resize_bilinear_align_corners() {
    let t = 1.0 / 3.0;
    #[rustfmt::skip]
    let want = [
        0.0, t, 2.0 * t, 1.0,
        2.0 * t, 1.0, 4.0 * t, 5.0 * t,
        4.0 * t, 5.0 * t, 2.0, 7.0 * t,
        2.0, 7.0 * t, 8.0 * t, 3.0,
    ];
    assert_close(&resize(true, false), &want);
}

/// MediaPipe's transposed conv options: {padding 1 = SAME / 2 = VALID, stride_w, stride_h} as raw i32s.
fn tconv_options(padding: i32, stride: i32) -> Vec<u8> {
    [padding, stride, stride].iter().flat_map(|v| v.to_le_bytes()).collect()
}

/// Stride 2, 2×2 kernel (the selfie model's case): each input pixel paints its own 2×2 block.
#[test]
fn transposed_conv_stride_2_same() {
    let mut g = Graph::new();
    let x = g.input(&[1, 2, 2, 1]);
    let w = g.f32s(&[1, 2, 2, 1], &[1.0, 2.0, 3.0, 4.0]);
    let b = g.f32s(&[1], &[0.5]);
    let y = g.tensor(&[1, 4, 4, 1]);
    g.custom("Convolution2DTransposeBias", &[x, w, b], &[y], &tconv_options(1, 2));
    g.output(y);
    #[rustfmt::skip]
    let want = [
        1.0, 2.0, 2.0, 4.0,
        3.0, 4.0, 6.0, 8.0,
        3.0, 6.0, 4.0, 8.0,
        9.0, 12.0, 12.0, 16.0,
    ];
    let want: Vec<f32> = want.iter().map(|v| v + 0.5).collect();
    assert_close(&run(&g, &[1.0, 2.0, 3.0, 4.0])[0], &want);
}

/// Stride 1: windows overlap and contributions add up. VALID gives 3×3; SAME trims one row and
/// column at the end (trim = k - 1 = 1, half of it, 0, at the start).
#[test]
fn transposed_conv_overlapping() {
    for (padding, side, want) in
        [(2, 3, vec![1.0, 4.0, 4.0, 6.0, 20.0, 16.0, 9.0, 24.0, 16.0]), (1, 2, vec![1.0, 4.0, 6.0, 20.0])]
    {
        let mut g = Graph::new();
        let x = g.input(&[1, 2, 2, 1]);
        let w = g.f32s(&[1, 2, 2, 1], &[1.0, 2.0, 3.0, 4.0]);
        let b = g.f32s(&[1], &[0.0]);
        let y = g.tensor(&[1, side, side, 1]);
        g.custom("Convolution2DTransposeBias", &[x, w, b], &[y], &tconv_options(padding, 1));
        g.output(y);
        assert_close(&run(&g, &[1.0, 2.0, 3.0, 4.0])[0], &want);
    }
}

/// Two input and two output channels: out[oc] = sum over ic of W[oc][ky][kx][ic] * x[ic].
#[test]
fn transposed_conv_channels() {
    let mut g = Graph::new();
    let x = g.input(&[1, 1, 1, 2]);
    // Cout 0: all taps [1, 0]; Cout 1: all taps [0, 10].
    let mut w = Vec::new();
    for oc in 0..2 {
        for _ in 0..4 {
            w.extend(if oc == 0 { [1.0, 0.0] } else { [0.0, 10.0] });
        }
    }
    let w = g.f32s(&[2, 2, 2, 2], &w);
    let b = g.f32s(&[2], &[0.0, 1.0]);
    let y = g.tensor(&[1, 2, 2, 2]);
    g.custom("Convolution2DTransposeBias", &[x, w, b], &[y], &tconv_options(2, 2));
    g.output(y);
    assert_close(&run(&g, &[3.0, 5.0])[0], &[3.0, 51.0, 3.0, 51.0, 3.0, 51.0, 3.0, 51.0]);
}

/// ADD with a broadcast operand and fused RELU; MUL by a per-channel constant.
#[test]
fn add_broadcast_relu_and_mul() {
    let mut g = Graph::new();
    let x = g.input(&[1, 1, 2, 2]);
    let c = g.f32s(&[2], &[1.0, -10.0]);
    let y = g.tensor(&[1, 1, 2, 2]);
    g.op(op::ADD, &[x, c], &[y], opt::ADD, &[(0, V::U8(RELU))]);
    let s = g.f32s(&[1, 1, 1, 2], &[2.0, 3.0]);
    let z = g.tensor(&[1, 1, 2, 2]);
    g.op(op::MUL, &[y, s], &[z], opt::MUL, &[]);
    g.output(z);
    // x + [1, -10] = [2, -8, 4, 30] → RELU [2, 0, 4, 30] → × [2, 3] = [4, 0, 8, 90].
    assert_close(&run(&g, &[1.0, 2.0, 3.0, 40.0])[0], &[4.0, 0.0, 8.0, 90.0]);
}

/// ADD of two runtime tensors where one broadcasts over width (general path).
#[test]
fn add_general_broadcast() {
    let mut g = Graph::new();
    let x = g.input(&[1, 2, 2, 1]);
    let y = g.tensor(&[1, 2, 1, 1]);
    // y = max pool over width: [max(row 0), max(row 1)].
    let o = vec![(0, V::U8(VALID)), (1, V::I32(2)), (2, V::I32(1)), (3, V::I32(2)), (4, V::I32(1))];
    g.op(op::MAX_POOL_2D, &[x], &[y], opt::POOL_2D, &o);
    let z = g.tensor(&[1, 2, 2, 1]);
    g.op(op::ADD, &[x, y], &[z], opt::ADD, &[]);
    g.output(z);
    assert_close(&run(&g, &[1.0, 5.0, 2.0, 3.0])[0], &[6.0, 10.0, 5.0, 6.0]);
}

fn unary(code: i32, input: &[f32]) -> Vec<f32> {
    let mut g = Graph::new();
    let x = g.input(&[1, input.len()]);
    let y = g.tensor(&[1, input.len()]);
    g.op(code, &[x], &[y], 0, &[]);
    g.output(y);
    run(&g, input).remove(0)
}

#[test]
fn elementwise_activations() {
    let x = [-4.0, -1.5, -0.5, 0.0, 0.5, 2.0, 7.0];
    assert_close(&unary(op::RELU, &x), &[0.0, 0.0, 0.0, 0.0, 0.5, 2.0, 7.0]);
    assert_close(&unary(op::RELU6, &x), &[0.0, 0.0, 0.0, 0.0, 0.5, 2.0, 6.0]);
    assert_close(&unary(op::RELU_N1_TO_1, &x), &[-1.0, -1.0, -0.5, 0.0, 0.5, 1.0, 1.0]);
    // x * relu6(x + 3) / 6
    assert_close(&unary(op::HARD_SWISH, &x), &[0.0, -0.375, -5.0 / 24.0, 0.0, 7.0 / 24.0, 10.0 / 6.0, 7.0]);
    let want: Vec<f32> = x.iter().map(|v: &f32| 1.0 / (1.0 + (-v).exp())).collect();
    assert_close(&unary(op::LOGISTIC, &x), &want);
    // Saturates without NaN or subnormal trouble.
    assert_close(&unary(op::LOGISTIC, &[-1000.0, 1000.0]), &[0.0, 1.0]);
}

/// PAD on height and channels (the detector pads channels before its residual ADDs).
#[test]
fn pad_height_and_channels() {
    let mut g = Graph::new();
    let x = g.input(&[1, 1, 2, 1]);
    let p = g.i32s(&[4, 2], &[0, 0, 1, 0, 0, 0, 0, 2]);
    let y = g.tensor(&[1, 2, 2, 3]);
    g.op(op::PAD, &[x, p], &[y], 0, &[]);
    g.output(y);
    assert_close(&run(&g, &[7.0, 8.0])[0], &[0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 7.0, 0.0, 0.0, 8.0, 0.0, 0.0]);
}

/// RESHAPE then CONCATENATION on axis 1 (the detector's output head), axis given as -2.
#[test]
fn reshape_and_concatenate() {
    let mut g = Graph::new();
    let x = g.input(&[1, 2, 2, 2]);
    let a = g.tensor(&[1, 4, 2]);
    g.op(op::RESHAPE, &[x], &[a], opt::RESHAPE, &[(0, V::Ints(vec![1, 4, 2]))]);
    let c = g.f32s(&[1, 1, 2], &[-1.0, -2.0]);
    let y = g.tensor(&[1, 5, 2]);
    g.op(op::CONCATENATION, &[a, c], &[y], opt::CONCATENATION, &[(0, V::I32(-2))]);
    g.output(y);
    let mut want = iota(8, 0.0);
    want.extend([-1.0, -2.0]);
    assert_close(&run(&g, &iota(8, 0.0))[0], &want);
}

/// Concatenation on the last axis interleaves per outer index.
#[test]
fn concatenate_channels() {
    let mut g = Graph::new();
    let x = g.input(&[1, 2, 1]);
    let c = g.f32s(&[1, 2, 2], &[10.0, 11.0, 12.0, 13.0]);
    let y = g.tensor(&[1, 2, 3]);
    g.op(op::CONCATENATION, &[x, c], &[y], opt::CONCATENATION, &[(0, V::I32(2))]);
    g.output(y);
    assert_close(&run(&g, &[1.0, 2.0])[0], &[1.0, 10.0, 11.0, 2.0, 12.0, 13.0]);
}

/// fp16 weights through DEQUANTIZE (folded at load), written with only the old opcode field.
#[test]
fn dequantize_fp16_weights() {
    let mut g = Graph::new();
    g.old_opcodes = true;
    let x = g.input(&[1, 1, 1, 2]);
    // 1.0, -2.0, 0.5, 65504 (largest half), a subnormal (2^-24) and -0.0.
    let w16 = g.f16s(&[3, 1, 1, 2], &[0x3c00, 0xc000, 0x3800, 0x7bff, 0x0001, 0x8000]);
    let w = g.tensor(&[3, 1, 1, 2]);
    g.op(op::DEQUANTIZE, &[w16], &[w], 0, &[]);
    let y = g.tensor(&[1, 1, 1, 3]);
    g.op(op::CONV_2D, &[x, w, -1], &[y], opt::CONV_2D, &conv_opts(VALID, 1, 0));
    g.output(y);
    let sub = 2f32.powi(-24);
    // [1*1 + 2*(-2), 1*0.5 + 2*65504, 1*2^-24 + 2*(-0)]
    assert_close(&run(&g, &[1.0, 2.0])[0], &[-3.0, 131008.5, sub]);
}

/// Elementwise ops fold into the producer, but an intermediate that is itself a graph output
/// keeps its own value.
#[test]
fn fused_and_pinned_outputs() {
    let mut g = Graph::new();
    let x = g.input(&[1, 1, 1, 2]);
    let w = g.f32s(&[2, 1, 1, 2], &[1.0, 0.0, 0.0, -1.0]);
    let y = g.tensor(&[1, 1, 1, 2]);
    g.op(op::CONV_2D, &[x, w, -1], &[y], opt::CONV_2D, &conv_opts(VALID, 1, 0));
    let r = g.tensor(&[1, 1, 1, 2]);
    g.op(op::RELU, &[y], &[r], 0, &[]);
    let s = g.tensor(&[1, 1, 1, 2]);
    g.op(op::LOGISTIC, &[r], &[s], 0, &[]);
    g.output(s);
    g.output(y);
    let out = run(&g, &[3.0, 4.0]);
    let sig = |v: f32| 1.0 / (1.0 + (-v).exp());
    assert_close(&out[0], &[sig(3.0), 0.5]);
    assert_close(&out[1], &[3.0, -4.0]);
}

/// A chain long enough that slots get reused, run twice on one Model (arena reuse) and from two threads.
#[test]
fn repeated_and_concurrent_runs() {
    let mut g = Graph::new();
    let x = g.input(&[1, 2, 2, 1]);
    let mut t = x;
    for i in 0..6 {
        let c = g.f32s(&[1], &[i as f32]);
        let y = g.tensor(&[1, 2, 2, 1]);
        g.op(
            if i % 2 == 0 { op::ADD } else { op::MUL },
            &[t, c],
            &[y],
            if i % 2 == 0 { opt::ADD } else { opt::MUL },
            &[],
        );
        t = y;
    }
    g.output(t);
    let model = Model::from_bytes(&g.build()).unwrap();
    // ((((x + 0) * 1 + 2) * 3) + 4) * 5 = 15x + 50
    let want = |v: f32| 15.0 * v + 50.0;
    for _ in 0..2 {
        assert_close(&model.run(&[&[1.0, 2.0, 3.0, 4.0]]).unwrap()[0], &[want(1.0), want(2.0), want(3.0), want(4.0)]);
    }
    std::thread::scope(|s| {
        for k in 0..2 {
            let model = &model;
            s.spawn(move || {
                let v = k as f32;
                for _ in 0..50 {
                    assert_close(&model.run(&[&[v; 4]]).unwrap()[0], &[want(v); 4]);
                }
            });
        }
    });
}

#[test]
fn model_is_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<Model>();
}

#[test]
fn api_reports_shapes_names_and_bad_inputs() {
    let mut g = Graph::new();
    let x = g.input(&[1, 2, 2, 1]);
    let y = g.tensor(&[1, 2, 2, 1]);
    g.op(op::RELU, &[x], &[y], 0, &[]);
    g.output(y);
    let model = Model::from_bytes(&g.build()).unwrap();
    assert_eq!(model.input_shapes(), vec![vec![1, 2, 2, 1]]);
    assert_eq!(model.output_shapes(), vec![vec![1, 2, 2, 1]]);
    assert_eq!(model.output_names(), vec!["t1".to_string()]);
    assert!(matches!(model.run(&[]), Err(Error::InputCount { expected: 1, got: 0 })));
    assert!(matches!(model.run(&[&[0.0; 3]]), Err(Error::InputLength { index: 0, expected: 4, got: 3 })));
}

#[test]
fn unsupported_ops_and_bad_shapes_are_errors() {
    // TANH is a real op this interpreter does not implement.
    let mut g = Graph::new();
    let x = g.input(&[1, 4]);
    let y = g.tensor(&[1, 4]);
    g.op(op::TANH, &[x], &[y], 0, &[]);
    g.output(y);
    assert!(matches!(Model::from_bytes(&g.build()), Err(Error::Unsupported(_))));

    // A declared output shape that is not what SAME stride 2 gives.
    let mut g = Graph::new();
    let x = g.input(&[1, 4, 4, 1]);
    let w = g.f32s(&[1, 3, 3, 1], &[1.0; 9]);
    let y = g.tensor(&[1, 3, 3, 1]);
    g.op(op::CONV_2D, &[x, w, -1], &[y], opt::CONV_2D, &conv_opts(SAME, 2, 0));
    g.output(y);
    assert!(matches!(Model::from_bytes(&g.build()), Err(Error::Malformed(_))));

    // Weights whose byte count does not match their shape.
    let mut g = Graph::new();
    let x = g.input(&[1, 1, 1, 2]);
    let w = g.f32s(&[1, 1, 1, 1], &[1.0]);
    let y = g.tensor(&[1, 1, 1, 1]);
    g.op(op::CONV_2D, &[x, w, -1], &[y], opt::CONV_2D, &conv_opts(VALID, 1, 0));
    g.output(y);
    assert!(Model::from_bytes(&g.build()).is_err());

    // An op that reads a tensor nothing has written yet.
    let mut g = Graph::new();
    let x = g.input(&[1, 4]);
    let a = g.tensor(&[1, 4]);
    let y = g.tensor(&[1, 4]);
    g.op(op::ADD, &[x, a], &[y], opt::ADD, &[]);
    g.output(y);
    assert!(matches!(Model::from_bytes(&g.build()), Err(Error::Malformed(_))));
}
