//! `gradphoto eval`: builds the labelled set from the shared photos, checks it, prints the per-rule confusion
//! table, the framing accuracy, the shift response and the calibrated thresholds.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::Args;
use gradphoto_core::Profile;

#[derive(Args)]
pub struct EvalArgs {
    /// 测试照片目录 / the shared test data (default: ../shared/testdata beside the checkout, or GRADPHOTO_SHARED)
    #[arg(long)]
    testdata: Option<PathBuf>,
    /// 列出每张照片的结果 / list every case
    #[arg(long)]
    verbose: bool,
    /// 把标注集的照片写到此文件夹 / write the labelled set's photos into this folder
    #[arg(long, value_name = "DIR")]
    dump: Option<PathBuf>,
}

pub fn run(args: EvalArgs, data: PathBuf) -> anyhow::Result<ExitCode> {
    let testdata = args.testdata.unwrap_or_else(|| gradphoto_testkit::shared_dir().join("testdata"));
    let models = Arc::new(crate::check::load_models(&data)?);
    let profile = Profile::registered();
    let t = std::time::Instant::now();
    let sources = gradphoto_eval::sources(&models, &testdata.join("portraits"));
    let no_face: Vec<(String, image::RgbImage)> =
        ["brick.png", "coffee.png", "grass.png", "hubble_deep_field.jpg", "rocket_launch.jpg"]
            .iter()
            .filter_map(|n| {
                let path = testdata.join("no-face").join(n);
                Some((n.to_string(), image::open(path).ok()?.to_rgb8()))
            })
            .collect();
    let cases = gradphoto_eval::build_cases(&sources, &no_face);
    if let Some(dir) = &args.dump {
        std::fs::create_dir_all(dir)?;
        for (i, c) in cases.iter().enumerate() {
            let name: String =
                c.name.chars().map(|ch| if ch.is_alphanumeric() || ch == '.' { ch } else { '_' }).collect();
            std::fs::write(dir.join(format!("{i:03}-{name}.jpg")), &c.jpeg)?;
        }
    }
    let ev = gradphoto_eval::evaluate(&cases, models, &profile);
    let mut s = String::new();
    let _ = writeln!(
        s,
        "labelled set: {} cases from {} portraits and {} photos without a face ({:.1} s)\n",
        cases.len(),
        sources.len(),
        no_face.len(),
        t.elapsed().as_secs_f64()
    );
    if args.verbose {
        for o in &ev.outcomes {
            let wrong: Vec<String> = o
                .rules
                .iter()
                .filter(|(_, (t, f))| t != f)
                .map(|(r, (t, _))| format!("{r}{}", if *t { " missed" } else { " false reject" }))
                .collect();
            let framing = o
                .framing_error
                .map(|e| format!(" (framing error px: eyes {:.1}, hair {:.1}, width {:.1})", e[0], e[1], e[2]))
                .unwrap_or_default();
            let verdict = if wrong.is_empty() { "ok".to_string() } else { wrong.join(", ") };
            let _ = writeln!(s, "{:<60} {verdict}{framing}", o.case);
        }
        let _ = writeln!(s);
    }
    s.push_str(&ev.table());
    let errs: Vec<[f32; 3]> = ev.outcomes.iter().filter_map(|o| o.framing_error).collect();
    if !errs.is_empty() {
        let max = |k: usize| errs.iter().map(|e| e[k]).fold(0.0f32, f32::max);
        let mean = |k: usize| errs.iter().map(|e| e[k]).sum::<f32>() / errs.len() as f32;
        let _ = writeln!(
            s,
            "\nframing error against the constructed truth, {} renderings (px): eye line mean {:.1} max {:.1}; hair top mean {:.1} max {:.1}; face width mean {:.1} max {:.1}",
            errs.len(),
            mean(0),
            max(0),
            mean(1),
            max(1),
            mean(2),
            max(2)
        );
    }
    let shifts = ev.shift_errors();
    if !shifts.is_empty() {
        let worst_eye = shifts.iter().map(|s| s.1.abs()).fold(0.0f32, f32::max);
        let worst_hair = shifts.iter().map(|s| s.2.abs()).fold(0.0f32, f32::max);
        let _ = writeln!(
            s,
            "shift response, {} shifted crops: eye line moves by d ± {worst_eye:.1} px, hair top by d ± {worst_hair:.1} px",
            shifts.len()
        );
    }
    let _ = writeln!(s, "\ncalibrated thresholds (false rejects count double):\n");
    let _ = writeln!(
        s,
        "| rule | measure | broken when | threshold | compliant | broken | false rejects | false accepts | compliant edge | broken edge |"
    );
    let _ = writeln!(s, "|---|---|---|---:|---:|---:|---:|---:|---:|---:|");
    for c in gradphoto_eval::calibrate(&ev, &profile) {
        let _ = writeln!(
            s,
            "| `{}` | {} | {} | {:.3} | {} | {} | {} | {} | {:.3} | {:.3} |",
            c.rule,
            c.measure,
            if c.above { "above" } else { "below" },
            c.threshold,
            c.compliant,
            c.broken,
            c.false_rejects,
            c.false_accepts,
            c.compliant_edge,
            c.broken_edge
        );
    }
    print!("{s}");
    Ok(ExitCode::SUCCESS)
}
