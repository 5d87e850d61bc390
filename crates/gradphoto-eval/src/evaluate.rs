//! Running the checker over the labelled set: per-rule confusion, framing accuracy, shift response, and the
//! thresholds that separate the truths best.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Arc;

use gradphoto_core::measure::color::{delta_e2000, lab};
use gradphoto_core::measure::face::models::FaceModels;
use gradphoto_core::measure::person::PersonMeasurements;
use gradphoto_core::{CheckOptions, Profile, Rule, Severity, check};

use crate::build::Case;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Confusion {
    /// Broken, and found.
    pub true_positive: usize,
    /// Compliant, but found broken (a false reject).
    pub false_positive: usize,
    pub true_negative: usize,
    /// Broken, but passed (a false accept).
    pub false_negative: usize,
}

impl Confusion {
    pub fn total(&self) -> usize {
        self.true_positive + self.false_positive + self.true_negative + self.false_negative
    }

    pub fn agreement(&self) -> f64 {
        (self.true_positive + self.true_negative) as f64 / self.total().max(1) as f64
    }
}

/// One case's outcome.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub case: String,
    pub source: String,
    pub variation: String,
    /// Rule → (truth: broken, found: broken).
    pub rules: BTreeMap<Rule, (bool, bool)>,
    /// |measured − constructed| for eye line (worse eye), hair top, face width, in rendering pixels.
    pub framing_error: Option<[f32; 3]>,
    pub person: Option<PersonMeasurements>,
    /// The measured eye line and hair top (for the shift response).
    pub eye_hair: Option<(f32, f32)>,
}

#[derive(Debug, Clone, Default)]
pub struct Evaluation {
    pub outcomes: Vec<Outcome>,
    pub confusion: BTreeMap<Rule, Confusion>,
    /// Cases with a truth that the rule left to a reviewer as undecidable (not in `confusion`).
    pub undecided: BTreeMap<Rule, usize>,
}

/// Checks every case with the `registered` profile.
pub fn evaluate(cases: &[Case], models: Arc<FaceModels>, profile: &Profile) -> Evaluation {
    let options = CheckOptions { models: Some(models), ..Default::default() };
    let mut ev = Evaluation::default();
    for case in cases {
        let checked = check("case.jpg", &case.jpeg, profile, &options);
        let mut rules = BTreeMap::new();
        for (&rule, &truth) in &case.truth {
            let Some(f) = checked.report.finding(rule) else { continue };
            // Clothing cut off by the frame is not judged (a reviewer looks): no truth to compare with.
            if rule == Rule::ClothingContrast && f.measured.is_null() {
                continue;
            }
            // Likewise ears the pixels cannot decide (a reviewer looks): counted apart, in `undecided`.
            if rule == Rule::OcclusionEars && f.measured.get("decided") == Some(&serde_json::Value::Bool(false)) {
                *ev.undecided.entry(rule).or_default() += 1;
                continue;
            }
            let found = f.severity != Severity::Pass;
            rules.insert(rule, (truth, found));
            let c = ev.confusion.entry(rule).or_default();
            match (truth, found) {
                (true, true) => c.true_positive += 1,
                (false, true) => c.false_positive += 1,
                (false, false) => c.true_negative += 1,
                (true, false) => c.false_negative += 1,
            }
        }
        let measured = checked.person.as_ref().and_then(|p| p.framing);
        // Only where the truth lies inside the frame: a hair top above the picture cannot be measured.
        let inside = |v: f32| (0.0..640.0).contains(&v);
        let framing_error = case
            .framing
            .zip(measured)
            .filter(|(t, _)| inside(t.hair_top) && t.eye_line.iter().all(|&e| inside(e)))
            .map(|(t, m)| {
                let eye = (m.eye_line[0] - t.eye_line[0]).abs().max((m.eye_line[1] - t.eye_line[1]).abs());
                [eye, (m.hair_top - t.hair_top).abs(), (m.face_width - t.face_width).abs()]
            });
        ev.outcomes.push(Outcome {
            case: case.name.clone(),
            source: case.source.clone(),
            variation: case.variation.clone(),
            rules,
            framing_error,
            eye_hair: measured.map(|m| ((m.eye_line[0] + m.eye_line[1]) / 2.0, m.hair_top)),
            person: checked.person,
        });
    }
    ev
}

impl Evaluation {
    /// For each "shifted down d px" case, the measured movement of the eye line and hair top minus d.
    pub fn shift_errors(&self) -> Vec<(String, f32, f32)> {
        let mut out = Vec::new();
        for o in &self.outcomes {
            let Some(d) =
                o.variation.strip_prefix("shifted down ").and_then(|v| v.trim_end_matches(" px").parse::<f32>().ok())
            else {
                continue;
            };
            let base = self.outcomes.iter().find(|b| b.source == o.source && b.variation == "compliant");
            if let (Some((be, bh)), Some((e, h))) = (base.and_then(|b| b.eye_hair), o.eye_hair) {
                out.push((o.case.clone(), (e - be) - d, (h - bh) - d));
            }
        }
        out
    }

    /// The table a person reads: per rule, the confusion and the agreement.
    pub fn table(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "| rule | broken & found | compliant & found (false reject) | compliant & passed | broken & passed (false accept) | agreement |"
        );
        let _ = writeln!(s, "|---|---:|---:|---:|---:|---:|");
        for (rule, c) in &self.confusion {
            let _ = writeln!(
                s,
                "| `{rule}` | {} | {} | {} | {} | {:.1}% |",
                c.true_positive,
                c.false_positive,
                c.true_negative,
                c.false_negative,
                c.agreement() * 100.0
            );
        }
        let all = self.confusion.values().fold(Confusion::default(), |a, c| Confusion {
            true_positive: a.true_positive + c.true_positive,
            false_positive: a.false_positive + c.false_positive,
            true_negative: a.true_negative + c.true_negative,
            false_negative: a.false_negative + c.false_negative,
        });
        for (rule, n) in &self.undecided {
            let _ = writeln!(s, "| `{rule}` undecided (review, not counted) | {n} | | | | |");
        }
        let _ = writeln!(
            s,
            "| all | {} | {} | {} | {} | {:.1}% |",
            all.true_positive,
            all.false_positive,
            all.true_negative,
            all.false_negative,
            all.agreement() * 100.0
        );
        s
    }
}

/// A threshold chosen on the labelled set.
#[derive(Debug, Clone)]
pub struct Calibration {
    pub rule: Rule,
    /// What is compared with the threshold.
    pub measure: &'static str,
    /// Broken when the measure is above the threshold (else below).
    pub above: bool,
    pub threshold: f64,
    pub compliant: usize,
    pub broken: usize,
    pub false_rejects: usize,
    pub false_accepts: usize,
    /// The compliant value nearest the broken side, and the broken value nearest the compliant side.
    pub compliant_edge: f64,
    pub broken_edge: f64,
}

type Extract = fn(&PersonMeasurements, &Profile) -> Option<f64>;

fn nearest_background(p: &PersonMeasurements, profile: &Profile) -> Option<f64> {
    let bg = p.background?;
    let allowed = profile.rules.background_color.as_ref()?;
    allowed.allowed.iter().map(|c| f64::from(delta_e2000(bg.mean_lab, lab(c.rgb())))).reduce(f64::min)
}

/// The measures of the rules marked *calibrate* that the labelled set has truth for.
fn cast(p: &PersonMeasurements, profile: &Profile) -> Option<f64> {
    let bg = p.background?;
    let allowed = profile.rules.background_color.as_ref()?;
    allowed
        .allowed
        .iter()
        .map(|c| {
            let r = lab(c.rgb());
            f64::from((bg.mean_lab[1] - r[1]).hypot(bg.mean_lab[2] - r[2]))
        })
        .reduce(f64::min)
}

const MEASURES: [(Rule, &str, bool, Extract); 18] = [
    (Rule::GeometryCentered, "|face centre − 240| px", true, |p, _| {
        p.framing.map(|f| f64::from((f.face_center_x - 240.0).abs()))
    }),
    (Rule::GeometryRoll, "|eye-line tilt| °", true, |p, _| p.pose.map(|x| f64::from(x.roll.abs()))),
    (Rule::BackgroundColor, "CIEDE2000 to the nearest allowed colour", true, nearest_background),
    (Rule::BackgroundUniform, "max(spread, gradient) ΔE", true, |p, _| {
        p.background.map(|b| f64::from(b.spread.max(b.gradient)))
    }),
    (Rule::ExpressionMouthClosed, "inner-lip gap / mouth width", true, |p, _| {
        p.expression.map(|e| f64::from(e.mouth_gap))
    }),
    (Rule::LightingExposure, "|face L* − 60|", true, |p, _| p.light.map(|l| f64::from((l.lightness - 60.0).abs()))),
    (Rule::LightingBalance, "|ΔL*| between cheeks", true, |p, _| p.light.map(|l| f64::from(l.balance.abs()))),
    (Rule::QualitySharpness, "Laplacian variance", false, |p, _| p.sharpness.map(f64::from)),
    (Rule::LightingColorCast, "background a*b* distance from its reference", true, cast),
    (Rule::LightingRedEye, "share of red pupil samples", true, |p, _| p.eyes.map(|e| f64::from(e.red))),
    (Rule::ClothingContrast, "CIEDE2000 clothing to background", false, |p, _| {
        p.clothing.map(|c| f64::from(c.delta_e))
    }),
    (Rule::OcclusionEyebrows, "share above the brow not skin (worse side)", true, |p, _| {
        p.occlusion.map(|o| f64::from(o.brows_covered[0].max(o.brows_covered[1])))
    }),
    (Rule::OcclusionEyes, "L* spread in the eye opening / skin L* (worse eye)", false, |p, _| {
        p.occlusion.map(|o| f64::from(o.eye_contrast[0].min(o.eye_contrast[1])))
    }),
    (Rule::OcclusionEars, "skin share at ear height (worse side)", false, |p, _| {
        let o = p.occlusion?;
        Some(f64::from(o.ears_skin[0]?.min(o.ears_skin[1]?)))
    }),
    (Rule::ExpressionNeutral, "mouth-corner lift / mouth width", true, |p, _| {
        p.expression.map(|e| f64::from(e.corner_lift))
    }),
    (Rule::ExpressionNeutral, "mouth width / face width", true, |p, _| p.expression.map(|e| f64::from(e.mouth_width))),
    (Rule::ExpressionNeutral, "eye to mid-brow / face width", true, |p, _| {
        p.expression.map(|e| f64::from(e.brow_raise))
    }),
    (Rule::AuthenticityNotRephotographed, "periodic peak over typical amplitude", true, |p, _| {
        p.periodicity.as_ref().map(|q| f64::from(q.score))
    }),
];

/// For each measure, the threshold with the fewest errors on the labelled set, false rejects counting double
/// (a compliant student turned away costs more than a case a reviewer will see anyway); ties go to the middle of
/// the widest gap.
pub fn calibrate(ev: &Evaluation, profile: &Profile) -> Vec<Calibration> {
    let mut out = Vec::new();
    for (rule, measure, above, extract) in MEASURES {
        let mut points: Vec<(f64, bool)> = ev
            .outcomes
            .iter()
            .filter_map(|o| {
                let truth = o.rules.get(&rule)?.0;
                Some((extract(o.person.as_ref()?, profile)?, truth))
            })
            .collect();
        if points.is_empty() {
            continue;
        }
        points.sort_by(|a, b| a.0.total_cmp(&b.0));
        let broken = |v: f64, t: f64| if above { v > t } else { v < t };
        let mut candidates: Vec<f64> = points.windows(2).map(|w| (w[0].0 + w[1].0) / 2.0).collect();
        candidates.push(points[0].0 - 1.0);
        candidates.push(points[points.len() - 1].0 + 1.0);
        let cost = |t: f64| {
            let fr = points.iter().filter(|(v, truth)| !truth && broken(*v, t)).count();
            let fa = points.iter().filter(|(v, truth)| *truth && !broken(*v, t)).count();
            (2 * fr + fa, fr, fa)
        };
        let best = candidates.iter().map(|&t| cost(t).0).min().unwrap_or(0);
        // Among the best, the threshold in the middle of the run of equally good ones.
        let good: Vec<f64> = candidates.iter().copied().filter(|&t| cost(t).0 == best).collect();
        let threshold = good[good.len() / 2];
        let (_, fr, fa) = cost(threshold);
        let values = |t: bool| points.iter().filter(move |p| p.1 == t).map(|p| p.0);
        let (compliant_edge, broken_edge) = if above {
            (values(false).fold(f64::NEG_INFINITY, f64::max), values(true).fold(f64::INFINITY, f64::min))
        } else {
            (values(false).fold(f64::INFINITY, f64::min), values(true).fold(f64::NEG_INFINITY, f64::max))
        };
        out.push(Calibration {
            compliant_edge,
            broken_edge,
            rule,
            measure,
            above,
            threshold,
            compliant: points.iter().filter(|p| !p.1).count(),
            broken: points.iter().filter(|p| p.1).count(),
            false_rejects: fr,
            false_accepts: fa,
        });
    }
    out
}
