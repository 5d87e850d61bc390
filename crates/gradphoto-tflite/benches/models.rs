//! One-thread speed of the three models: median of warm runs, and the first call (load + first run).
//! Targets (median): detector <= 3 ms, FaceMesh <= 6 ms, selfie segmentation <= 9 ms.
//!
//! Run: `cargo bench -p gradphoto-tflite --bench models` (the models are fetched with pip into target/ on first
//! use; `RUNS=n` changes the number of timed runs; `PROFILE=1` also prints where each model's time goes,
//! `PROFILE=n` the n slowest steps, `PROFILE_MIN=1` each step's fastest time instead of its median).

use std::path::PathBuf;
use std::time::Instant;

use gradphoto_tflite::Model;

fn main() {
    let data = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/models-data");
    gradphoto_models::ensure(&data, |m| eprintln!("{m}")).expect("models fetched");
    let dir = gradphoto_models::cache_dir(&data);
    let runs: usize = std::env::var("RUNS").ok().and_then(|v| v.parse().ok()).unwrap_or(200);
    let filter = std::env::args().skip(1).find(|a| !a.starts_with('-'));
    for (file, target) in
        [("face_detection_short_range.tflite", 3.0), ("face_landmark.tflite", 6.0), ("selfie_segmentation.tflite", 9.0)]
    {
        if filter.as_deref().is_some_and(|f| !file.contains(f)) {
            continue;
        }
        let bytes = match std::fs::read(dir.join(file)) {
            Ok(b) => b,
            Err(e) => {
                eprintln!("{file}: {e}; skipped");
                continue;
            }
        };
        let t0 = Instant::now();
        let model = Model::from_bytes(&bytes).expect("model loads");
        let load = t0.elapsed();
        let n: usize = model.input_shapes()[0].iter().product();
        // Deterministic input in [0, 1); timing does not depend on the values.
        let input: Vec<f32> =
            (0..n).map(|i| ((i as u32).wrapping_mul(2_654_435_761) >> 8) as f32 / 16_777_216.0).collect();
        let out = model.run(&[&input]).expect("runs");
        let first = t0.elapsed();
        std::hint::black_box(out);
        let mut times: Vec<f64> = (0..runs)
            .map(|_| {
                let t = Instant::now();
                std::hint::black_box(model.run(&[&input]).expect("runs"));
                t.elapsed().as_secs_f64() * 1e3
            })
            .collect();
        times.sort_by(f64::total_cmp);
        if std::env::var_os("PROFILE").is_some() {
            profile(&model, &input);
        }
        let median = times[runs / 2];
        println!(
            "{file:36} median {median:6.3} ms (target {target} ms, min {:.3}, p90 {:.3}) | first call {:.2} ms (load {:.2} ms)",
            times[0],
            times[runs * 9 / 10],
            first.as_secs_f64() * 1e3,
            load.as_secs_f64() * 1e3,
        );
    }
}

/// Median time of each step over repeated runs (`PROFILE_MIN=1`: the fastest of 300, steadier than medians on a
/// shared machine), summed by kind of step, and the ten slowest steps.
fn profile(model: &Model, input: &[f32]) {
    let fastest = std::env::var_os("PROFILE_MIN").is_some();
    let runs: Vec<Vec<(String, std::time::Duration)>> =
        (0..if fastest { 300 } else { 50 }).map(|_| model.profile(&[input]).expect("runs")).collect();
    let mut steps: Vec<(String, f64)> = (0..runs[0].len())
        .map(|i| {
            let mut t: Vec<f64> = runs.iter().map(|r| r[i].1.as_secs_f64() * 1e3).collect();
            t.sort_by(f64::total_cmp);
            (runs[0][i].0.clone(), if fastest { t[0] } else { t[t.len() / 2] })
        })
        .collect();
    let mut kinds: Vec<(String, f64, usize)> = Vec::new();
    for (name, t) in &steps {
        let kind = name.split_whitespace().next().unwrap_or("").to_string();
        let kind = if kind == "conv" && name.contains(" 1x1") { "conv 1x1".to_string() } else { kind };
        match kinds.iter_mut().find(|k| k.0 == kind) {
            Some(k) => {
                k.1 += t;
                k.2 += 1
            }
            None => kinds.push((kind, *t, 1)),
        }
    }
    kinds.sort_by(|a, b| b.1.total_cmp(&a.1));
    for (kind, t, n) in kinds {
        println!("  {kind:12} {n:3} steps {t:7.3} ms");
    }
    steps.sort_by(|a, b| b.1.total_cmp(&a.1));
    // PROFILE=n prints the n slowest steps (default 10).
    let shown = std::env::var("PROFILE").ok().and_then(|v| v.parse().ok()).unwrap_or(10);
    for (name, t) in steps.iter().take(shown) {
        println!("    {t:7.3} ms  {name}");
    }
}
