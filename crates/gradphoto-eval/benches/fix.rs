//! Normalisation's speed bars, on one core unless said otherwise:
//! - `normalise::fix` of a 12-megapixel studio original (3000 × 4000, face 900 px wide, libjpeg q92, camera EXIF),
//!   from the JPEG bytes to the sealed, self-checked 480 × 640 file: at most 150 ms median;
//! - a batch of those originals on 2 threads at least 1.8 × faster than on one.
//!
//! The originals are built from the shared portraits a reviewer could approve (labelled lips closed, head upright),
//! as in crates/gradphoto-cli/tests/cli/fix.rs. Models loaded once, before the clock starts.
//!
//! Run: `cargo bench -p gradphoto-eval --bench fix`

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use gradphoto_core::CheckOptions;
use gradphoto_core::normalise::{FixOptions, fix};
use gradphoto_core::seal::{AesGcmSealer, Identity, Sealer};
use gradphoto_testkit::exif::ExifSpec;
use gradphoto_testkit::{JpegSpec, encode};

const KEY: &str = "k2026:BwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc=";

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn main() {
    let models = Arc::new(gradphoto_eval::face_models(&gradphoto_testkit::models_data_dir()).expect("models"));
    let sealer: Arc<dyn Sealer> = Arc::new(AesGcmSealer::from_spec(KEY).expect("key"));
    let who =
        Identity { id_number: "11010519491231002X".into(), student_no: "2021000001".into(), school: "10055".into() };
    let (check, options) = (CheckOptions::default(), FixOptions::default());

    let portraits = gradphoto_testkit::shared_dir().join("testdata/portraits");
    let originals: Vec<(String, Vec<u8>)> = gradphoto_eval::sources(&models, &portraits)
        .iter()
        .filter(|src| src.mouth_closed == Some(true) && !src.head_tilted)
        .map(|src| {
            let img = gradphoto_eval::studio_original(src, 3000, 4000, 900.0);
            let spec = JpegSpec { quality: 92, exif: Some(ExifSpec::camera().build()), ..Default::default() };
            (src.name.clone(), encode(&gradphoto_eval::to_image(&img), &spec))
        })
        .collect();
    assert!(!originals.is_empty(), "no approvable original among the shared portraits");

    // Every original must normalise: a refusal would time an early return, not the work.
    for (name, data) in &originals {
        let f = fix(data, &models, &sealer, &who, &check, &options).unwrap_or_else(|e| panic!("{name}: {e}"));
        eprintln!("{name}: {} bytes → q{} {} bytes", data.len(), f.quality, f.jpeg.len());
    }

    let runs = 9;
    let time_each = || {
        let mut times = Vec::new();
        for _ in 0..runs {
            for (_, data) in &originals {
                let t = Instant::now();
                black_box(fix(black_box(data), &models, &sealer, &who, &check, &options).expect("fix"));
                times.push(t.elapsed());
            }
        }
        median(times)
    };
    let one_median = time_each();
    // The same on a spawned thread, where the batches run. It is slower there: glibc gives the thread its own malloc
    // arena (with MALLOC_ARENA_MAX=1 the gap closes), most likely handing the large buffers' pages back on free.
    let spawned_median = std::thread::scope(|s| s.spawn(time_each).join().expect("thread"));

    // A batch on one thread and on two: the originals four times over, dealt out in turn.
    let batch: Vec<&Vec<u8>> = (0..4).flat_map(|_| originals.iter().map(|(_, d)| d)).collect();
    let run_batch = |threads: usize| {
        let t = Instant::now();
        std::thread::scope(|s| {
            for k in 0..threads {
                let (batch, models, sealer, who, check, options) = (&batch, &models, &sealer, &who, &check, &options);
                s.spawn(move || {
                    for data in batch.iter().skip(k).step_by(threads) {
                        black_box(fix(data, models, sealer, who, check, options).expect("fix"));
                    }
                });
            }
        });
        t.elapsed()
    };
    run_batch(1);
    let one = median((0..3).map(|_| run_batch(1)).collect());
    let two = median((0..3).map(|_| run_batch(2)).collect());

    println!(
        "fix, 3000 × 4000 original → sealed 480 × 640 ({} originals × {runs}): median {:.1} ms (bar 150 ms)",
        originals.len(),
        ms(one_median)
    );
    println!("the same on a spawned thread: median {:.1} ms", ms(spawned_median));
    println!(
        "batch of {} originals: 1 thread {:.0} ms, 2 threads {:.0} ms, speed-up {:.2}× (bar 1.8×; {} cores here)",
        batch.len(),
        ms(one),
        ms(two),
        one.as_secs_f64() / two.as_secs_f64(),
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
}
