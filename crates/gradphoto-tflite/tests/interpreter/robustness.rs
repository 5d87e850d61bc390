//! Hostile bytes: truncated, random and mutated models give `Err` (or a model that runs), never a panic.

use crate::common::{Graph, SAME, V, VALID, conv_opts, op, opt};
use gradphoto_tflite::Model;

/// xorshift64*: deterministic bytes without a dependency.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// A small model touching most of the reader: fp16 DEQUANTIZE, conv, depthwise, pool, PAD,
/// ADD, RESHAPE, CONCATENATION, RESIZE_BILINEAR and the custom transposed conv.
fn small_model() -> Vec<u8> {
    let mut g = Graph::new();
    let x = g.input(&[1, 4, 4, 2]);
    let w16 = g.f16s(&[3, 3, 3, 2], &[0x3c00; 54]);
    let w = g.tensor(&[3, 3, 3, 2]);
    g.op(op::DEQUANTIZE, &[w16], &[w], 0, &[]);
    let c = g.tensor(&[1, 2, 2, 3]);
    g.op(op::CONV_2D, &[x, w, -1], &[c], opt::CONV_2D, &conv_opts(SAME, 2, 1));
    let dw = g.f32s(&[1, 3, 3, 3], &[0.5; 27]);
    let db = g.f32s(&[3], &[0.0, 1.0, 2.0]);
    let d = g.tensor(&[1, 2, 2, 3]);
    let mut o = conv_opts(SAME, 1, 0);
    o[3] = (3, V::I32(1));
    g.op(op::DEPTHWISE_CONV_2D, &[c, dw, db], &[d], opt::DEPTHWISE_CONV_2D, &o);
    let p = g.tensor(&[1, 1, 1, 3]);
    let po = vec![(0, V::U8(VALID)), (1, V::I32(2)), (2, V::I32(2)), (3, V::I32(2)), (4, V::I32(2))];
    g.op(op::MAX_POOL_2D, &[d], &[p], opt::POOL_2D, &po);
    let pads = g.i32s(&[4, 2], &[0, 0, 0, 0, 0, 0, 0, 1]);
    let q = g.tensor(&[1, 1, 1, 4]);
    g.op(op::PAD, &[p, pads], &[q], 0, &[]);
    let size = g.i32s(&[2], &[2, 2]);
    let r = g.tensor(&[1, 2, 2, 4]);
    g.op(op::RESIZE_BILINEAR, &[q, size], &[r], opt::RESIZE_BILINEAR, &[(3, V::Bool(true))]);
    let tw = g.f32s(&[1, 2, 2, 4], &[0.25; 16]);
    let tb = g.f32s(&[1], &[0.0]);
    let t = g.tensor(&[1, 4, 4, 1]);
    let topts: Vec<u8> = [1i32, 2, 2].iter().flat_map(|v| v.to_le_bytes()).collect();
    g.custom("Convolution2DTransposeBias", &[r, tw, tb], &[t], &topts);
    let s = g.tensor(&[1, 16]);
    g.op(op::RESHAPE, &[t], &[s], opt::RESHAPE, &[(0, V::Ints(vec![1, 16]))]);
    let k = g.f32s(&[1, 2], &[7.0, 8.0]);
    let out = g.tensor(&[1, 18]);
    g.op(op::CONCATENATION, &[s, k], &[out], opt::CONCATENATION, &[(0, V::I32(1))]);
    let sum = g.tensor(&[1, 18]);
    g.op(op::ADD, &[out, out], &[sum], opt::ADD, &[]);
    g.output(sum);
    g.build()
}

/// Loads `bytes`; when that succeeds, runs the model on zeros. Either way it must not panic.
fn load_and_maybe_run(bytes: &[u8]) -> bool {
    match Model::from_bytes(bytes) {
        Err(_) => false,
        Ok(m) => {
            let inputs: Vec<Vec<f32>> = m.input_shapes().iter().map(|s| vec![0.0; s.iter().product()]).collect();
            let refs: Vec<&[f32]> = inputs.iter().map(|v| v.as_slice()).collect();
            let outs = m.run(&refs).expect("inputs of the declared shapes");
            for (o, s) in outs.iter().zip(m.output_shapes()) {
                assert_eq!(o.len(), s.iter().product::<usize>());
            }
            true
        }
    }
}

#[test]
fn small_model_is_valid() {
    let bytes = small_model();
    let m = Model::from_bytes(&bytes).unwrap();
    let out = m.run(&[&[1.0; 32]]).unwrap();
    assert_eq!(out[0].len(), 18);
    assert_eq!(&out[0][16..], &[14.0, 16.0]);
}

#[test]
fn every_truncation_of_a_small_model_is_an_error() {
    let bytes = small_model();
    for len in 0..bytes.len() {
        assert!(Model::from_bytes(&bytes[..len]).is_err(), "truncated to {len} of {} bytes loaded", bytes.len());
    }
}

#[test]
fn random_bytes_are_errors() {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    for i in 0..3000 {
        let len = rng.below(if i % 10 == 0 { 65536 } else { 512 });
        let mut bytes: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
        if i % 2 == 0 && len >= 8 {
            // A plausible header: small root offset and the TFLite file identifier.
            bytes[..4].copy_from_slice(&((rng.below(64) as u32 + 8).to_le_bytes()));
            bytes[4..8].copy_from_slice(b"TFL3");
        }
        assert!(Model::from_bytes(&bytes).is_err(), "random buffer {i} ({len} bytes) loaded");
    }
}

#[test]
fn mutated_small_models_never_panic() {
    let good = small_model();
    let mut rng = Rng(42);
    let mut loaded = 0;
    for _ in 0..20_000 {
        let mut bytes = good.clone();
        for _ in 0..1 + rng.below(4) {
            let at = rng.below(bytes.len());
            bytes[at] = match rng.below(4) {
                0 => rng.next() as u8,
                1 => bytes[at].wrapping_add(1),
                2 => 0xff,
                _ => 0,
            };
        }
        loaded += load_and_maybe_run(&bytes) as usize;
    }
    // Many mutations hit constant data and still load; the rest are refused.
    assert!(loaded > 100, "only {loaded} mutated models loaded");
}

fn real_model(file: &str) -> Vec<u8> {
    crate::real::model_bytes(file)
}

/// MediaPipe appends a ZIP archive (model metadata) after the flatbuffer. Cutting only into it
/// leaves the flatbuffer whole, so that loads; every cut into the flatbuffer must be an error.
fn appended_zip_start(bytes: &[u8]) -> usize {
    let tail = bytes.len().saturating_sub(4096);
    let find = |sig: &[u8]| bytes[tail..].windows(4).position(|w| w == sig).map(|p| tail + p);
    find(b"PK\x03\x04").or_else(|| find(b"PK\x05\x06")).unwrap_or(bytes.len())
}

#[test]
fn truncated_real_models_are_errors() {
    for file in ["face_detection_short_range.tflite", "face_landmark.tflite", "selfie_segmentation.tflite"] {
        let bytes = real_model(file);
        let n = bytes.len();
        let fb_end = appended_zip_start(&bytes);
        assert!(n - fb_end < 200, "{file}: {} bytes after the flatbuffer", n - fb_end);
        let mut lens: Vec<usize> = (0..200).map(|i| i * fb_end / 200).collect();
        lens.extend([1, 4, 7, 8, 9]);
        // Every cut in the last 300 bytes of the flatbuffer.
        lens.extend(fb_end - 300..fb_end);
        for len in lens {
            assert!(Model::from_bytes(&bytes[..len]).is_err(), "{file} truncated to {len} of {n} bytes loaded");
        }
        // Cutting only the appended archive leaves a loadable model.
        assert!(Model::from_bytes(&bytes[..fb_end]).is_ok());
    }
}

#[test]
fn mutated_detector_never_panics() {
    let good = real_model("face_detection_short_range.tflite");
    let mut rng = Rng(7);
    let mut runs = 0;
    for _ in 0..3000 {
        let mut bytes = good.clone();
        let at = rng.below(bytes.len());
        bytes[at] = rng.next() as u8;
        match Model::from_bytes(&bytes) {
            Err(_) => {}
            // Running costs milliseconds; a few dozen runs cover what loads.
            Ok(_) if runs < 40 => {
                runs += 1;
                load_and_maybe_run(&bytes);
            }
            Ok(_) => {}
        }
    }
}
