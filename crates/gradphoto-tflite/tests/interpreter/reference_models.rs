//! The three MediaPipe models against outputs of Google's runtime (ai-edge-litert 2.3.0, XNNPACK,
//! written by tools/tflite_reference.py into tests/reference/). Inputs are rebuilt here bit for bit:
//! the hash pattern, and the shared test photo (never committed, not even as pixels) cropped and
//! shrunk by an integer box average, so no resampler is involved and both sides get the same pixels.
//!
//! Tolerance: max |ours - reference| <= 1e-3 * max(1, max |reference|) per output.
//! Measured max abs differences (x86-64, both inputs): detector 1.5e-4 (classificators, scale 105;
//! regressors 1.2e-4 at scale 154), FaceMesh 1.1e-4 (landmarks, scale 165; presence 2.9e-6),
//! selfie segmentation 4.8e-5 (mask in [0, 1]) - float rounding, about 1e-6 of each output's scale.

use std::path::PathBuf;

use gradphoto_testkit::RgbImage;
use gradphoto_tflite::Model;
use serde_json::Value;

fn reference_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/reference")
}

/// The photo the reference inputs are made from, relative to the shared test data folder.
const PHOTO: &str = "portraits/astronaut_eileen_collins.png";

fn read_index() -> Value {
    serde_json::from_str(&std::fs::read_to_string(reference_dir().join("index.json")).unwrap()).unwrap()
}

/// The shared test photo (512x512 PNG), checked against the hash the reference was made from.
fn photo() -> RgbImage {
    let path = gradphoto_testkit::shared_dir().join("testdata").join(PHOTO);
    let index = read_index();
    assert_eq!(index["photo"], PHOTO);
    let png = std::fs::read(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    assert_eq!(gradphoto_models::sha256_hex(&png), index["photo_sha256"].as_str().unwrap(), "{}", path.display());
    gradphoto_testkit::open(&path)
}

/// RGB u8 pixels (row-major) of the crop [left, top, right, bottom) of `img`, shrunk by a
/// `box_size` x `box_size` average per channel in integers: (sum + n / 2) / n with n = box_size^2.
fn crop_box(img: &RgbImage, crop: [u32; 4], box_size: u32) -> Vec<u8> {
    let [left, top, right, bottom] = crop;
    assert!(right <= img.width() && bottom <= img.height(), "crop {crop:?} outside the photo");
    let (w, h) = (right - left, bottom - top);
    assert!(w % box_size == 0 && h % box_size == 0, "crop {crop:?} not a multiple of {box_size}");
    let n = box_size * box_size;
    let mut out = Vec::with_capacity((w / box_size * h / box_size * 3) as usize);
    for by in 0..h / box_size {
        for bx in 0..w / box_size {
            let mut sum = [0u32; 3];
            for y in 0..box_size {
                for x in 0..box_size {
                    let p = img.get_pixel(left + bx * box_size + x, top + by * box_size + y);
                    for c in 0..3 {
                        sum[c] += u32::from(p[c]);
                    }
                }
            }
            out.extend(sum.map(|s| ((s + n / 2) / n) as u8));
        }
    }
    out
}

/// The photo input of a model as recorded in index.json (crop, box factor), checked against the
/// hash of the pixels the reference runtime was given.
fn photo_pixels(img: &RgbImage, m: &Value) -> Vec<u8> {
    let crop: Vec<u32> = m["photo_crop"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap() as u32).collect();
    let pixels = crop_box(img, crop.try_into().unwrap(), m["photo_box"].as_u64().unwrap() as u32);
    assert_eq!(gradphoto_models::sha256_hex(&pixels), m["photo_pixels_sha256"].as_str().unwrap(), "{}", m["name"]);
    pixels
}

fn model_entry(index: &Value, name: &str) -> Value {
    index["models"].as_array().unwrap().iter().find(|m| m["name"] == name).unwrap().clone()
}

/// The documented pattern: lo + (hi - lo) * u(i), u from a 32-bit integer hash of the index.
fn pattern(n: usize, lo: f32, hi: f32) -> Vec<f32> {
    (0..n)
        .map(|i| {
            let mut h = (i as u32).wrapping_mul(0x9E37_79B1);
            h ^= h >> 15;
            h = h.wrapping_mul(0x85EB_CA77);
            h ^= h >> 13;
            let u = (h >> 8) as f32 / 16_777_216.0;
            lo + (hi - lo) * u
        })
        .collect()
}

fn from_u8(pixels: &[u8], lo: f32, hi: f32) -> Vec<f32> {
    pixels.iter().map(|&v| lo + (hi - lo) * (v as f32 / 255.0)).collect()
}

fn read_f32(file: &str) -> Vec<f32> {
    let b = std::fs::read(reference_dir().join(file)).unwrap();
    b.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect()
}

/// Runs one model on both recorded inputs and checks every output against the reference.
fn check_model(name: &str) {
    let m = model_entry(&read_index(), name);
    let bytes = crate::real::model_bytes(m["file"].as_str().unwrap());
    let model = Model::from_bytes(&bytes).unwrap();
    let shape: Vec<usize> = m["input_shape"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap() as usize).collect();
    assert_eq!(model.input_shapes(), vec![shape.clone()]);
    let n: usize = shape.iter().product();
    let lo = m["range"][0].as_f64().unwrap() as f32;
    let hi = m["range"][1].as_f64().unwrap() as f32;
    for case in m["cases"].as_array().unwrap() {
        let input = match case["input"].as_str().unwrap() {
            "pattern" => pattern(n, lo, hi),
            "photo" => from_u8(&photo_pixels(&photo(), &m), lo, hi),
            other => panic!("unknown input recipe {other}"),
        };
        assert_eq!(input.len(), n);
        let outs = model.run(&[&input]).unwrap();
        let expected = case["outputs"].as_array().unwrap();
        assert_eq!(outs.len(), expected.len());
        let names = model.output_names();
        for (k, (got, exp)) in outs.iter().zip(expected).enumerate() {
            assert_eq!(names[k], exp["name"].as_str().unwrap());
            let want = read_f32(exp["file"].as_str().unwrap());
            assert_eq!(got.len(), want.len(), "{name} output {k} length");
            let scale = want.iter().fold(1.0f32, |a, v| a.max(v.abs()));
            let diff = got.iter().zip(&want).fold(0.0f32, |a, (g, w)| a.max((g - w).abs()));
            assert!(got.iter().all(|v| v.is_finite()), "{name} output {k}: non-finite values");
            eprintln!("{name} {} output {k} ({}): max abs diff {diff:.3e}, scale {scale:.3e}", case["input"], names[k]);
            assert!(diff <= 1e-3 * scale, "{name} {} output {k}: max abs diff {diff} > 1e-3 * {scale}", case["input"]);
        }
    }
}

#[test]
fn face_detection_short_range_matches_litert() {
    check_model("face_detection_short_range");
}

#[test]
fn face_landmark_matches_litert() {
    check_model("face_landmark");
}

#[test]
fn selfie_segmentation_matches_litert() {
    check_model("selfie_segmentation");
}

/// The photo's detector output must contain the face (one anchor scores above 0.5), so the test
/// above would also catch a plausible-looking but wrong output layout.
#[test]
fn detector_finds_the_face_in_the_photo() {
    let model = Model::from_bytes(&crate::real::model_bytes("face_detection_short_range.tflite")).unwrap();
    let pixels = photo_pixels(&photo(), &model_entry(&read_index(), "face_detection_short_range"));
    let outs = model.run(&[&from_u8(&pixels, -1.0, 1.0)]).unwrap();
    assert_eq!(model.output_names(), ["regressors", "classificators"]);
    assert_eq!(model.output_shapes(), vec![vec![1, 896, 16], vec![1, 896, 1]]);
    let best = outs[1].iter().cloned().fold(f32::MIN, f32::max);
    assert!(best > 0.0, "best face logit {best}");
}
