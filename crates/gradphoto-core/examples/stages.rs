//! Where the time of a check goes, stage by stage (median over repeated runs, one thread), for tuning:
//! `cargo run --release -p gradphoto-core --example stages -- DATA_DIR FILES…`
//! (DATA_DIR as for `gradphoto --data`, e.g. target/models-data, where the tests keep the models)

// The allocator `gradphoto` runs with, so that first touches of fresh pages count as they do there.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::hint::black_box;
use std::time::{Duration, Instant};

use gradphoto_core::annotate::annotate;
use gradphoto_core::decode::{Scale, pixels};
use gradphoto_core::measure::face::mesh::Roi;
use gradphoto_core::measure::face::models::FaceModels;
use gradphoto_core::measure::face::pyramid::Pyramid;
use gradphoto_core::measure::face::{detect, mesh, segment};
use gradphoto_core::measure::person::{self, FramingMode};
use gradphoto_core::{CheckOptions, Limits, Profile, check, measure, normalise};

fn main() {
    let mut args = std::env::args().skip(1);
    let data = std::path::PathBuf::from(args.next().expect("data folder"));
    // The pinned models, verified, from the data folder's cache (fetched there on first use).
    let m = gradphoto_models::ensure_bytes(&data, |m| eprintln!("{m}")).expect("models");
    let models = FaceModels::load(&m.face_detector, &m.face_landmarker, &m.person_segmenter).expect("models load");
    let files: Vec<(String, Vec<u8>)> = args.map(|f| (f.clone(), std::fs::read(&f).expect("photo"))).collect();
    let mut stages: Vec<(&str, Vec<Duration>)> = Vec::new();
    let mut note = |name: &'static str, d: Duration| match stages.iter_mut().find(|(n, _)| *n == name) {
        Some((_, v)) => v.push(d),
        None => stages.push((name, vec![d])),
    };
    let options = CheckOptions { models: Some(std::sync::Arc::new(models)), ..Default::default() };
    let models = options.models.as_deref().expect("models");
    let profile = Profile::registered();
    for _ in 0..10 {
        for (name, data) in &files {
            let t = Instant::now();
            let checked = black_box(check(name, data, &profile, &options));
            note("whole check", t.elapsed());
            if let Some(img) = &checked.image {
                let t = Instant::now();
                let picture = annotate(img, checked.person.as_ref(), checked.mask.as_ref(), &checked.report);
                note("annotated picture", t.elapsed());
                let t = Instant::now();
                black_box(normalise::encode(&picture, 85.0).ok());
                note("annotated picture, optimised", t.elapsed());
                let t = Instant::now();
                black_box(normalise::encode_view(&picture, 85.0).ok());
                note("annotated picture's encoding", t.elapsed());
            }

            let t = Instant::now();
            let inspection = measure::inspect(name, data, &Limits::DEFAULT).expect("inspect");
            note("inspect", t.elapsed());
            let scale = Scale::for_analysis(inspection.measurements.width, inspection.measurements.height, 800);
            let t = Instant::now();
            let img = pixels::decode(data, &inspection.container, scale).expect("decode");
            note("decode", t.elapsed());
            // A phone's portrait is often stored turned, with EXIF orientation 6 (copy of the image included).
            let t = Instant::now();
            black_box(pixels::upright(img.clone(), 6));
            note("turn upright (EXIF 6)", t.elapsed());
            let t = Instant::now();
            let pyr = Pyramid::new(&img);
            note("pyramid", t.elapsed());
            let t = Instant::now();
            black_box(detect::input(&pyr));
            note("detector input", t.elapsed());
            let t = Instant::now();
            let faces = models.detect(&pyr, 0.5).expect("detect");
            note("detector (input + model)", t.elapsed());
            if let Some(face) = faces.first() {
                let roi = Roi::from_detection(face);
                let t = Instant::now();
                black_box(mesh::input(&pyr, &roi));
                note("mesh input", t.elapsed());
                let t = Instant::now();
                black_box(models.landmarks(&pyr, face).expect("mesh"));
                note("mesh, two passes", t.elapsed());
            }
            let t = Instant::now();
            black_box(segment::input(&pyr));
            note("segmenter input", t.elapsed());
            let t = Instant::now();
            black_box(models.mask(&pyr).expect("mask"));
            note("segmenter (input + model)", t.elapsed());
            let outputs = models.analyse(&img).expect("analyse");
            let t = Instant::now();
            black_box(person::measure(&img, &outputs, FramingMode::Whole));
            note("person measures", t.elapsed());
        }
    }
    for (name, mut v) in stages {
        v.sort();
        println!("{name:28} {:7.3} ms", v[v.len() / 2].as_secs_f64() * 1e3);
    }
}
