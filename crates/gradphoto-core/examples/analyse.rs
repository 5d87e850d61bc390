//! Prints what the face models measure on photos: `cargo run --release -p gradphoto-core --example analyse -- MODEL_DIR FILES…`

use std::sync::Arc;

use gradphoto_core::measure::face::models::FaceModels;
use gradphoto_core::{CheckOptions, Profile, check};

fn main() {
    let mut args = std::env::args().skip(1);
    let dir = std::path::PathBuf::from(args.next().expect("model dir"));
    let read = |n: &str| std::fs::read(dir.join(n)).expect("model file");
    let models = FaceModels::load(
        &read("face_detection_short_range.tflite"),
        &read("face_landmark.tflite"),
        &read("selfie_segmentation.tflite"),
    )
    .expect("models load");
    let options = CheckOptions { models: Some(Arc::new(models)), ..Default::default() };
    for file in args {
        let data = std::fs::read(&file).expect("photo");
        let t = std::time::Instant::now();
        let checked = check(&file, &data, &Profile::registered(), &options);
        println!("== {file} ({:.1} ms)", t.elapsed().as_secs_f64() * 1e3);
        if let Some(p) = &checked.person {
            println!("faces {} {:?} mesh {:.2}", p.faces, p.face_scores, p.mesh_score);
            println!("framing {:?}", p.framing);
            println!("pose {:?}", p.pose);
            println!("expression {:?}", p.expression);
            println!("background {:?}", p.background);
            println!("light {:?} sharp {:?} edges {:?}", p.light, p.sharpness, p.edge_contact);
        }
        for f in checked.report.findings.iter().filter(|f| f.severity != gradphoto_core::Severity::Pass) {
            println!("  {:?} {} {}", f.severity, f.rule, f.message.en);
        }
    }
}
