//! The whole check of one photo: decode → measure → judge, as one call that always returns a report.

use std::sync::Arc;

use crate::decode::{ReadError, RgbImage, Scale, pixels};
use crate::judge::profile::ProfileFraming;
use crate::judge::report::{Report, ReportError};
use crate::judge::{JudgeContext, Profile, file_rules, person_rules};
use crate::limits::Limits;
use crate::measure::face::models::FaceModels;
use crate::measure::person::{self, FramingMode};
use crate::measure::{self, FileMeasurements, Inspection};

#[derive(Debug, Clone)]
pub struct CheckOptions {
    pub limits: Limits,
    pub context: JudgeContext,
    /// Pixels are decoded at the smallest DCT scale whose long side is at least this. Default 800: a 12-megapixel
    /// original is analysed at 1000 × 750.
    pub analysis_min_long_side: u32,
    /// The face models; without them the person rules are not judged (absent from the report, never passed).
    pub models: Option<Arc<FaceModels>>,
    /// The seal keys; with them `format.embedded_id` is decrypted and checked, not only found.
    pub sealer: Option<Arc<dyn crate::seal::Sealer>>,
}

impl Default for CheckOptions {
    fn default() -> Self {
        CheckOptions {
            limits: Limits::DEFAULT,
            context: JudgeContext::default(),
            analysis_min_long_side: 800,
            models: None,
            sealer: None,
        }
    }
}

/// A report, and the upright analysis image when the pixels could be decoded.
#[derive(Debug, Clone)]
pub struct Checked {
    pub report: Report,
    pub image: Option<RgbImage>,
    /// What was measured of the person, when the models ran.
    pub person: Option<person::PersonMeasurements>,
    /// The person mask, when the models ran (for drawing).
    pub mask: Option<crate::measure::face::segment::Mask>,
}

fn measurements_json(m: &FileMeasurements) -> serde_json::Map<String, serde_json::Value> {
    match serde_json::to_value(m) {
        Ok(serde_json::Value::Object(map)) => map,
        _ => serde_json::Map::new(),
    }
}

/// The file rules alone: container, metadata and tables, no pixel decoded.
pub fn check_file(name: &str, data: &[u8], profile: &Profile, options: &CheckOptions) -> Report {
    match measure::inspect(name, data, &options.limits) {
        Ok(inspection) => {
            let mut report = file_report(name, profile, options, &inspection, None);
            verify_seal(&mut report, data, profile, options);
            report
        }
        Err(e) => error_report(name, profile, &e),
    }
}

/// Checks one photo: every rule of `profile` that is implemented, with the analysis image decoded on the way.
pub fn check(name: &str, data: &[u8], profile: &Profile, options: &CheckOptions) -> Checked {
    let inspection = match measure::inspect(name, data, &options.limits) {
        Ok(i) => i,
        Err(e) => return Checked { report: error_report(name, profile, &e), image: None, person: None, mask: None },
    };
    let frame = &inspection.container.frame;
    let scale = Scale::for_analysis(frame.width, frame.height, options.analysis_min_long_side);
    match pixels::decode(data, &inspection.container, scale) {
        Ok(img) => {
            let img = pixels::upright(img, inspection.measurements.metadata.orientation.unwrap_or(1));
            let mut report = file_report(name, profile, options, &inspection, None);
            verify_seal(&mut report, data, profile, options);
            report.measurements.insert("analysis_scale".into(), serde_json::json!(scale.denominator()));
            report.measurements.insert("analysis_size".into(), serde_json::json!([img.width, img.height]));
            let mut person = None;
            let mut mask = None;
            if let Some(models) = options.models.as_deref().filter(|_| profile.needs_faces()) {
                let upright_width = inspection.measurements.upright_width.max(1) as f32;
                let mode = match profile.framing {
                    ProfileFraming::Whole => FramingMode::Whole,
                    // At least 480 pixels of the original: no upscaling.
                    ProfileFraming::Crop => {
                        FramingMode::BestCrop { min_width: 480.0 * img.width as f32 / upright_width }
                    }
                };
                match models.analyse_framed(&img, mode) {
                    Ok((outputs, m)) => {
                        report.findings.extend(person_rules::judge(&m, &profile.rules));
                        if let Ok(v) = serde_json::to_value(&m) {
                            report.measurements.insert("person".into(), v);
                        }
                        person = Some(m);
                        mask = outputs.mask;
                    }
                    Err(e) => {
                        report.error = Some(ReportError {
                            code: "analysis.failed".into(),
                            message: crate::message::Message::new("人脸分析失败。", e.to_string()),
                        });
                    }
                }
                report.settle();
            }
            Checked { report, image: Some(img), person, mask }
        }
        Err(e) => Checked {
            report: file_report(name, profile, options, &inspection, Some(&e)),
            image: None,
            person: None,
            mask: None,
        },
    }
}

fn file_report(
    name: &str,
    profile: &Profile,
    options: &CheckOptions,
    inspection: &Inspection<'_>,
    error: Option<&ReadError>,
) -> Report {
    let findings = file_rules::judge(&inspection.measurements, &profile.rules, &options.context);
    Report::new(
        name.to_string(),
        profile.name.clone(),
        error.map(ReportError::from),
        findings,
        measurements_json(&inspection.measurements),
    )
}

/// With seal keys configured, `format.embedded_id` is decrypted and checked against the file, not only found.
fn verify_seal(report: &mut Report, data: &[u8], profile: &Profile, options: &CheckOptions) {
    let (Some(sealer), Some(rule)) = (&options.sealer, &profile.rules.embedded_id) else { return };
    let opened = crate::seal::verify_jpeg(data, sealer.as_ref());
    if let Some(f) = report.findings.iter_mut().find(|f| f.rule == crate::judge::Rule::FormatEmbeddedId) {
        *f = file_rules::embedded_id_verified(&opened, rule);
        report.settle();
    }
}

fn error_report(name: &str, profile: &Profile, e: &ReadError) -> Report {
    Report::new(name.to_string(), profile.name.clone(), Some(e.into()), Vec::new(), serde_json::Map::new())
}
