//! The person rules on real faces and on photos without one: clear findings, never a panic.

use std::sync::Arc;

use gradphoto_core::measure::face::models::FaceModels;
use gradphoto_core::{CheckOptions, Profile, Rule, Severity, Verdict, check};
use gradphoto_testkit::{JpegSpec, crop_to, encode, portrait, resize};

fn options() -> CheckOptions {
    static MODELS: std::sync::OnceLock<Arc<FaceModels>> = std::sync::OnceLock::new();
    let models = MODELS.get_or_init(|| {
        let m = gradphoto_models::ensure_bytes(&gradphoto_testkit::models_data_dir(), |m| eprintln!("{m}"))
            .expect("models");
        Arc::new(FaceModels::load(&m.face_detector, &m.face_landmarker, &m.person_segmenter).expect("load"))
    });
    CheckOptions { models: Some(models.clone()), ..Default::default() }
}

fn severity(r: &gradphoto_core::Report, rule: Rule) -> Severity {
    r.finding(rule).unwrap_or_else(|| panic!("{rule} missing")).severity
}

#[test]
fn a_real_face_is_measured_in_rendering_pixels() {
    let img = crop_to(&portrait("chris_pratt_ccby.jpeg"), 480, 640);
    let c = check("a.jpg", &encode(&img, &JpegSpec::default()), &Profile::registered(), &options());
    let p = c.person.expect("measured");
    assert_eq!(p.faces, 1);
    let f = p.framing.expect("framing");
    assert!((180.0..260.0).contains(&f.eye_line[0]) && (f.eye_line[0] - f.eye_line[1]).abs() < 8.0, "{f:?}");
    assert!((180.0..300.0).contains(&f.face_width), "{f:?}");
    assert!((f.face_center_x - 240.0).abs() < 30.0, "{f:?}");
    assert_eq!(severity(&c.report, Rule::FaceCount), Severity::Pass);
    assert!(c.report.measurements["person"]["framing"]["eye_line"].is_array());
    // The face's details are reported for every photo with a face, each with what was measured; this plain
    // portrait shows its brows and eyes and is no photo of a screen.
    for rule in [
        Rule::OcclusionEyebrows,
        Rule::OcclusionEyes,
        Rule::OcclusionEars,
        Rule::ExpressionNeutral,
        Rule::AuthenticityNotRephotographed,
    ] {
        let f = c.report.finding(rule).unwrap_or_else(|| panic!("{rule} missing"));
        assert!(!f.measured.is_null(), "{rule}: {f:?}");
    }
    for rule in [Rule::OcclusionEyebrows, Rule::OcclusionEyes, Rule::AuthenticityNotRephotographed] {
        assert_eq!(severity(&c.report, rule), Severity::Pass, "{:?}", c.report.finding(rule));
    }
}

#[test]
fn an_original_too_tight_to_crop_says_how_much_is_missing() {
    // The head fills the frame: no 3:4 crop leaves 50 px above the hair.
    let tight = crop_to(&portrait("biden_official_vp.jpg"), 1200, 1600);
    let head = image::imageops::crop_imm(&tight, 200, 150, 800, 1066).to_image();
    let big = resize(&head, 1200, 1600);
    let r = check("a.jpg", &encode(&big, &JpegSpec::default()), &Profile::upload(), &options()).report;
    let f = r.finding(Rule::GeometryCroppable).expect("croppable judged");
    assert_eq!(f.severity, Severity::Reject, "{f:?}");
    assert!(f.measured["missing"].as_array().unwrap().iter().any(|m| m.as_f64().unwrap() > 1.0), "{f:?}");
    // A portrait with light-blue room around the head, as a studio frames it, can be cropped.
    let mut roomy = image::RgbImage::from_pixel(1200, 1600, image::Rgb([100, 197, 255]));
    image::imageops::replace(&mut roomy, &crop_to(&portrait("chris_pratt_ccby.jpeg"), 750, 993), 225, 607);
    let r = check("b.jpg", &encode(&roomy, &JpegSpec::default()), &Profile::upload(), &options()).report;
    assert_eq!(severity(&r, Rule::GeometryCroppable), Severity::Pass, "{:?}", r.finding(Rule::GeometryCroppable));
}

#[test]
fn no_face_two_faces_and_odd_sizes_give_findings_not_panics() {
    let reg = Profile::registered();
    // No face: face.count rejects and the geometry rules say they could not measure.
    let brick = gradphoto_testkit::open(&gradphoto_testkit::shared_dir().join("testdata/no-face/brick.png"));
    let r = check("n.jpg", &encode(&crop_to(&brick, 480, 640), &JpegSpec::default()), &reg, &options()).report;
    assert_eq!(severity(&r, Rule::FaceCount), Severity::Reject);
    assert_eq!(r.finding(Rule::FaceCount).unwrap().measured, 0);
    let eyes = r.finding(Rule::GeometryEyeLine).unwrap();
    assert!(eyes.measured.is_null() && eyes.severity == Severity::Reject);
    // Two faces side by side.
    let a = crop_to(&portrait("chris_pratt_ccby.jpeg"), 240, 320);
    let b = crop_to(&portrait("grace_hopper.jpg"), 240, 320);
    let mut two = image::RgbImage::new(480, 640);
    image::imageops::replace(&mut two, &a, 0, 160);
    image::imageops::replace(&mut two, &b, 240, 160);
    let r = check("t.jpg", &encode(&two, &JpegSpec::default()), &reg, &options()).report;
    assert_eq!(r.finding(Rule::FaceCount).unwrap().measured, 2, "{:?}", r.finding(Rule::FaceCount));
    assert_eq!(severity(&r, Rule::FaceCount), Severity::Reject);
    // A face cut off by the edge, a tiny face, 1 × 1 and 20 000 × 30 pixels: a report, no panic.
    let face = crop_to(&portrait("chris_pratt_ccby.jpeg"), 480, 640);
    let cut = image::imageops::crop_imm(&face, 200, 0, 280, 640).to_image();
    let mut tiny = image::RgbImage::from_pixel(480, 640, image::Rgb([100, 197, 255]));
    image::imageops::replace(&mut tiny, &resize(&face, 24, 32), 228, 300);
    for (name, img) in [
        ("cut", cut),
        ("tiny", tiny),
        ("1x1", image::RgbImage::new(1, 1)),
        ("wide", image::RgbImage::from_pixel(20_000, 30, image::Rgb([200, 200, 200]))),
    ] {
        let checked = check(name, &encode(&img, &JpegSpec::default()), &reg, &options());
        assert_ne!(checked.report.verdict, Verdict::Pass, "{name}");
        assert!(checked.report.finding(Rule::FaceCount).is_some() || checked.report.error.is_some(), "{name}");
    }
}
