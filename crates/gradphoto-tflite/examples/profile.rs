//! Per-step time of one model, summed over runs: `cargo run --release --example profile -- selfie`.
use std::collections::BTreeMap;
fn main() {
    let name = std::env::args().nth(1).unwrap_or_else(|| "selfie_segmentation".into());
    let data = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/models-data");
    gradphoto_models::ensure(&data, |m| eprintln!("{m}")).expect("models fetched");
    let dir = gradphoto_models::cache_dir(&data);
    let path = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| p.to_string_lossy().contains(&name))
        .unwrap();
    let model = gradphoto_tflite::Model::from_bytes(&std::fs::read(&path).unwrap()).unwrap();
    let n: usize = model.input_shapes()[0].iter().product();
    let input: Vec<f32> = (0..n).map(|i| (i % 251) as f32 / 251.0).collect();
    let runs = 100;
    let mut total: Vec<(String, f64)> = Vec::new();
    for r in 0..runs + 5 {
        let p = model.profile(&[&input]).unwrap();
        if r < 5 {
            continue;
        }
        if total.is_empty() {
            total = p.iter().map(|(d, _)| (d.clone(), 0.0)).collect();
        }
        for (t, (_, d)) in total.iter_mut().zip(&p) {
            t.1 += d.as_secs_f64() * 1e3 / runs as f64;
        }
    }
    let mut by_kind: BTreeMap<String, f64> = BTreeMap::new();
    for (d, t) in &total {
        println!("{t:7.3} ms  {d}");
        *by_kind.entry(d.split(' ').next().unwrap().to_string()).or_default() += t;
    }
    println!("{by_kind:?} total {:.3}", total.iter().map(|t| t.1).sum::<f64>());
}
