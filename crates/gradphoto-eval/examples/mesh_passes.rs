//! When one FaceMesh pass is enough: the labelled set checked with the second pass always (the baseline) and
//! only where the landmarks' crop drifts from the detector's by more than each threshold, and what changes —
//! verdicts per rule, the eye line, hair top and face width, roll / yaw / pitch, the eye and mouth measures.
//! The threshold kept in `models::REFINE_ABOVE` is the largest at which no verdict changes.
//!
//! Run: `cargo run -p gradphoto-eval --example mesh_passes [thresholds, e.g. 0.02,0.04,0.08]`

use std::sync::Arc;

use gradphoto_core::Profile;
use gradphoto_eval::Evaluation;

fn main() {
    let thresholds: Vec<f32> = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "0.01,0.02,0.03,0.04,0.06,0.08,0.12".into())
        .split(',')
        .map(|t| t.trim().parse().expect("a threshold"))
        .collect();
    let data = gradphoto_testkit::models_data_dir();
    let testdata = gradphoto_testkit::shared_dir().join("testdata");
    let models = Arc::new(gradphoto_eval::face_models(&data).expect("models").with_refine_above(0.0));
    let sources = gradphoto_eval::sources(&models, &testdata.join("portraits"));
    let no_face: Vec<(String, gradphoto_testkit::RgbImage)> = ["brick.png", "coffee.png", "rocket_launch.jpg"]
        .iter()
        .map(|n| (n.to_string(), gradphoto_testkit::open(&testdata.join("no-face").join(n))))
        .collect();
    let cases = gradphoto_eval::build_cases(&sources, &no_face);
    let profile = Profile::registered();
    let base = gradphoto_eval::evaluate(&cases, models, &profile);
    println!("{} cases; baseline: two passes everywhere", cases.len());
    println!(
        "| drift above | one pass | verdicts changed | eye line Δ max | hair top Δ max | face width Δ max | roll/yaw/pitch Δ max (°) | eye open / mouth gap Δ max |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|");
    for t in thresholds {
        let models = Arc::new(gradphoto_eval::face_models(&data).expect("models").with_refine_above(t));
        let ev = gradphoto_eval::evaluate(&cases, models.clone(), &profile);
        let [one, two] = models.mesh_passes();
        let d = differences(&base, &ev);
        println!(
            "| {t} | {one} of {} | {} | {:.2} | {:.2} | {:.2} | {:.2} | {:.3} |",
            one + two,
            d.verdicts.len(),
            d.framing[0],
            d.framing[1],
            d.framing[2],
            d.pose,
            d.expression
        );
        for v in d.verdicts.iter().take(5) {
            println!("|   | {v} | | | | | | |");
        }
    }
}

#[derive(Default)]
struct Differences {
    verdicts: Vec<String>,
    framing: [f32; 3],
    pose: f32,
    expression: f32,
}

fn differences(base: &Evaluation, ev: &Evaluation) -> Differences {
    let mut d = Differences::default();
    for (a, b) in base.outcomes.iter().zip(&ev.outcomes) {
        assert_eq!(a.case, b.case);
        for (rule, (_, found)) in &a.rules {
            if b.rules.get(rule).is_some_and(|(_, f)| f != found) {
                d.verdicts.push(format!("{} {rule}", a.case));
            }
        }
        let (Some(pa), Some(pb)) = (&a.person, &b.person) else { continue };
        if let (Some(fa), Some(fb)) = (&pa.framing, &pb.framing) {
            let eye = (fa.eye_line[0] - fb.eye_line[0]).abs().max((fa.eye_line[1] - fb.eye_line[1]).abs());
            let deltas = [eye, (fa.hair_top - fb.hair_top).abs(), (fa.face_width - fb.face_width).abs()];
            for (m, v) in d.framing.iter_mut().zip(deltas) {
                *m = m.max(v);
            }
        }
        if let (Some(qa), Some(qb)) = (&pa.pose, &pb.pose) {
            let p = (qa.roll - qb.roll).abs().max((qa.yaw - qb.yaw).abs()).max((qa.pitch - qb.pitch).abs());
            d.pose = d.pose.max(p);
        }
        if let (Some(ea), Some(eb)) = (&pa.expression, &pb.expression) {
            let e = (ea.eye_open[0] - eb.eye_open[0])
                .abs()
                .max((ea.eye_open[1] - eb.eye_open[1]).abs())
                .max((ea.mouth_gap - eb.mouth_gap).abs());
            d.expression = d.expression.max(e);
        }
    }
    d
}
