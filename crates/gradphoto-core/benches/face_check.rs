//! Issue 4's speed bars, on one core unless said otherwise:
//! - a full check (decode, file rules, detector, two mesh passes, segmentation, person measures) of a 480 × 640
//!   photo at most 15 ms median; of a 12-megapixel original at most 45 ms; models loaded once (first call reported);
//! - a folder checked on 2 threads at least 1.8 × faster than on one.
//!
//! Writes the photos and our timings to target/bench-faces/ so that `tools/compare_mediapipe.py` can time Python
//! MediaPipe 0.10.14 on the very same files and print our time over its time.
//!
//! Run: `cargo bench -p gradphoto-core --bench face_check`

use std::hint::black_box;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use gradphoto_core::measure::face::models::FaceModels;
use gradphoto_core::{CheckOptions, Profile, check};
use gradphoto_testkit::{JpegSpec, crop_to, encode, exif::ExifSpec, portrait, portrait_names};

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn main() {
    let out = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/bench-faces");
    std::fs::create_dir_all(&out).expect("bench folder");
    let m =
        gradphoto_models::ensure_bytes(&gradphoto_testkit::models_data_dir(), |m| eprintln!("{m}")).expect("models");
    let (det, mesh, seg) = (m.face_detector, m.face_landmarker, m.person_segmenter);

    // The photos: every shared portrait as a 480 × 640 registered photo and as a 3000 × 4000 camera original.
    let mut small = Vec::new();
    let mut large = Vec::new();
    for name in portrait_names() {
        let img = portrait(&name);
        let stem = name.rsplit_once('.').map_or(name.as_str(), |(s, _)| s).to_string();
        let reg = encode(&crop_to(&img, 480, 640), &JpegSpec { quality: 85, ..Default::default() });
        let orig = encode(
            &crop_to(&img, 3000, 4000),
            &JpegSpec { quality: 90, exif: Some(ExifSpec::camera().build()), ..Default::default() },
        );
        std::fs::write(out.join(format!("{stem}-480x640.jpg")), &reg).expect("write");
        std::fs::write(out.join(format!("{stem}-3000x4000.jpg")), &orig).expect("write");
        small.push(reg);
        large.push(orig);
    }

    // First call: load the models and check one photo.
    let t = Instant::now();
    let models = Arc::new(FaceModels::load(&det, &mesh, &seg).expect("models load"));
    let load = t.elapsed();
    let options = CheckOptions { models: Some(models), ..Default::default() };
    let reg = Profile::registered();
    let up = Profile::upload();
    let t = Instant::now();
    black_box(check("a.jpg", &small[0], &reg, &options));
    let first = t.elapsed();

    let runs = 15;
    let time_all = |files: &[Vec<u8>], profile: &Profile| {
        let mut v = Vec::new();
        for _ in 0..runs {
            for f in files {
                let t = Instant::now();
                black_box(check("a.jpg", black_box(f), profile, &options));
                v.push(t.elapsed());
            }
        }
        median(v)
    };
    let small_median = time_all(&small, &reg);
    let large_median = time_all(&large, &up);

    // A folder on one thread and on two.
    let folder: Vec<&Vec<u8>> = small.iter().chain(large.iter()).collect();
    let run_folder = |threads: usize| {
        let t = Instant::now();
        std::thread::scope(|s| {
            for k in 0..threads {
                let (folder, options, reg) = (&folder, &options, &reg);
                s.spawn(move || {
                    for _ in 0..3 {
                        for f in folder.iter().skip(k).step_by(threads) {
                            black_box(check("a.jpg", f, reg, options));
                        }
                    }
                });
            }
        });
        t.elapsed()
    };
    run_folder(1);
    let one = median((0..3).map(|_| run_folder(1)).collect());
    let two = median((0..3).map(|_| run_folder(2)).collect());

    println!("models loaded in {:.1} ms; first check {:.1} ms", ms(load), ms(first));
    println!("full check, 480 × 640 ({} photos × {runs}): median {:.2} ms (bar 15 ms)", small.len(), ms(small_median));
    println!("full check, 3000 × 4000 originals: median {:.2} ms (bar 45 ms)", ms(large_median));
    println!(
        "folder of {} photos × 3: 1 thread {:.0} ms, 2 threads {:.0} ms, speed-up {:.2}× (bar 1.8×; {} cores here)",
        folder.len(),
        ms(one),
        ms(two),
        one.as_secs_f64() / two.as_secs_f64(),
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    let json = format!(
        "{{\"load_ms\": {:.3}, \"first_ms\": {:.3}, \"small_ms\": {:.3}, \"large_ms\": {:.3}, \"one_thread_ms\": {:.1}, \"two_threads_ms\": {:.1}}}\n",
        ms(load),
        ms(first),
        ms(small_median),
        ms(large_median),
        ms(one),
        ms(two)
    );
    std::fs::write(out.join("rust.json"), json).expect("write timings");
}
