//! Prints what the face models measure on photos: `cargo run --release -p gradphoto-core --example analyse -- DATA_DIR FILES…`
//! (DATA_DIR as for `gradphoto --data`, e.g. target/models-data, where the tests keep the models)

use std::sync::Arc;

use gradphoto_core::measure::face::models::FaceModels;
use gradphoto_core::{CheckOptions, Profile, check};

fn main() {
    let mut args = std::env::args().skip(1);
    let data = std::path::PathBuf::from(args.next().expect("data folder"));
    // The pinned models, verified, from the data folder's cache (fetched there on first use).
    let m = gradphoto_models::ensure_bytes(&data, |m| eprintln!("{m}")).expect("models");
    let models = FaceModels::load(&m.face_detector, &m.face_landmarker, &m.person_segmenter).expect("models load");
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
