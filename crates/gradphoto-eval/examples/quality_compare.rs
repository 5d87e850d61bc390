//! Image quality of the registered file, compared: for every shared portrait (smiling or not) a 3000 × 4000 studio
//! original (face 900 px wide, libjpeg q92, camera EXIF), the lossless Lanczos3 rendering `normalise::prepare` makes
//! of it for `fix` — the reference, written as PNG — and ours: that rendering encoded by `normalise::encode_within_budget`, the search `fix` runs: the highest
//! (fractional) quality from 60 whose file fits 40 960 bytes. `tools/compare_quality.py` then encodes each reference the way
//! HivisionIDPhotos does and measures both against the reference.
//!
//! Writes target/quality-compare/: `<stem>-reference.png`, `<stem>-ours.jpg` and `index.json`.
//!
//! Run: `cargo run --release -p gradphoto-eval --example quality_compare && python3 tools/compare_quality.py`

use std::path::PathBuf;
use std::sync::Arc;

use gradphoto_core::CheckOptions;
use gradphoto_core::decode::RgbImage;
use gradphoto_core::normalise::{self, FixOptions};
use gradphoto_core::seal::{AesGcmSealer, Identity, Sealer, seal_jpeg};
use gradphoto_testkit::exif::ExifSpec;
use gradphoto_testkit::{JpegSpec, encode};

const WIDTH: u32 = 3000;
const HEIGHT: u32 = 4000;
const FACE_WIDTH: f32 = 900.0;
/// A throw-away key, only to measure what the seal costs in bytes.
const KEY: &str = "k2026:BwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc=";

/// Our encoder's search, as `fix` runs it: the highest (fractional) quality whose finished file fits the budget.
fn search(img: &RgbImage, fix: &FixOptions, finish: normalise::SealStep<'_>) -> (f32, Vec<u8>, bool) {
    let (q, jpeg) = normalise::encode_within_budget(img, fix, finish).expect("encode");
    let fits = jpeg.len() <= fix.max_bytes;
    (q, jpeg, fits)
}

fn main() {
    let out = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/quality-compare");
    std::fs::create_dir_all(&out).expect("output folder");
    let out = out.canonicalize().unwrap_or(out);
    let models = Arc::new(gradphoto_eval::face_models(&gradphoto_testkit::models_data_dir()).expect("models"));
    let sealer: Arc<dyn Sealer> = Arc::new(AesGcmSealer::from_spec(KEY).expect("key"));
    let who =
        Identity { id_number: "11010519491231002X".into(), student_no: "2021000001".into(), school: "10055".into() };
    let check = CheckOptions::default();
    let fix = FixOptions::default();
    let portraits = gradphoto_testkit::shared_dir().join("testdata/portraits");
    let sources = gradphoto_eval::sources(&models, &portraits);
    eprintln!("{} sources", sources.len());
    let mut entries = Vec::new();
    for src in &sources {
        let stem = src.name.rsplit_once('.').map_or(src.name.as_str(), |(s, _)| s).to_string();
        let studio = gradphoto_eval::studio_original(src, WIDTH, HEIGHT, FACE_WIDTH);
        let spec = JpegSpec { quality: 92, exif: Some(ExifSpec::camera().build()), ..Default::default() };
        let data = encode(&gradphoto_eval::to_image(&studio), &spec);
        // The reference: the lossless rendering `fix` itself encodes (its crop, its decode scale, Lanczos3).
        let prepared = match normalise::prepare(&data, &models, &check, &fix) {
            Ok(p) => p,
            Err(e) => {
                eprintln!("{}: skipped, {e}", src.name);
                continue;
            }
        };
        let (crop, fix_scale, reference) = (prepared.crop, prepared.source_scale, prepared.rendered);
        let reference_file = format!("{stem}-reference.png");
        gradphoto_eval::to_image(&reference).save(out.join(&reference_file)).expect("write PNG");
        // Ours: the same rendering through our encoder at the highest quality that fits 40 KB.
        let (quality, jpeg, fits) = search(&reference, &fix, &|j| Ok(j.to_vec()));
        let ours_file = format!("{stem}-ours.jpg");
        std::fs::write(out.join(&ours_file), &jpeg).expect("write JPEG");
        // What `fix` itself would write: the seal's bytes count towards the 40 KB (for the record only).
        let (sealed_quality, sealed, _) =
            search(&reference, &fix, &|j| Ok(seal_jpeg(j, sealer.as_ref(), &who).expect("seal")));
        eprintln!(
            "{}: crop {:.0} × {:.0} at ({:.0}, {:.0}), ours q{quality:.2} {} bytes (sealed q{sealed_quality:.2} {} bytes)",
            src.name,
            crop.width,
            crop.height(),
            crop.left,
            crop.top,
            jpeg.len(),
            sealed.len()
        );
        entries.push(serde_json::json!({
            "photo": src.name,
            "mouth_closed": src.mouth_closed,
            "head_tilted": src.head_tilted,
            "original": {"width": WIDTH, "height": HEIGHT, "face_width": FACE_WIDTH, "jpeg_quality": 92,
                         "bytes": data.len()},
            "crop": {"left": crop.left, "top": crop.top, "width": crop.width, "height": crop.height()},
            "fix_decode_scale": fix_scale.denominator(),
            "reference": reference_file,
            "ours": ours_file,
            "quality": quality,
            "bytes": jpeg.len(),
            "fits": fits,
            "sealed_quality": sealed_quality,
            "sealed_bytes": sealed.len(),
        }));
    }
    let index = serde_json::json!({ "max_bytes": fix.max_bytes, "min_quality": fix.min_quality, "photos": entries });
    std::fs::write(out.join("index.json"), serde_json::to_string_pretty(&index).expect("json") + "\n")
        .expect("write index");
    println!("{} photos written to {}", entries.len(), out.display());
}
