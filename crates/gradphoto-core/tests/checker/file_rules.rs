//! Every file rule of both profiles, on photos built from the shared portraits with one known property changed.

use gradphoto_core::judge::JudgeContext;
use gradphoto_core::{CheckOptions, Profile, Report, Rule, Severity, Verdict, calendar, check};
use gradphoto_testkit::exif::ExifSpec;
use gradphoto_testkit::{JpegSpec, add_noise, crop_to, encode, portrait};

fn options() -> CheckOptions {
    CheckOptions {
        context: JudgeContext { today: Some(calendar::days_from_civil(2026, 11, 29)) },
        ..Default::default()
    }
}

fn registered_photo(spec: &JpegSpec) -> Vec<u8> {
    encode(&crop_to(&portrait("chris_pratt_ccby.jpeg"), 480, 640), spec)
}

/// A studio-like original: 1200 × 1600 with grain, so that it lands inside 100 KiB – 2 MiB.
fn original(spec: &JpegSpec) -> Vec<u8> {
    let mut img = crop_to(&portrait("alex_lacamoire_grey_bg.jpg"), 1200, 1600);
    add_noise(&mut img, 6, 7);
    encode(&img, spec)
}

fn run(name: &str, data: &[u8], profile: &Profile) -> Report {
    check(name, data, profile, &options()).report
}

fn severity(r: &Report, rule: Rule) -> Severity {
    r.finding(rule).unwrap_or_else(|| panic!("{rule} missing from {r:#?}")).severity
}

fn camera() -> Option<Vec<u8>> {
    Some(ExifSpec::camera().build())
}

#[test]
fn a_compliant_original_passes_every_file_rule() {
    let data = original(&JpegSpec { quality: 92, exif: camera(), ..Default::default() });
    let r = run("a.jpg", &data, &Profile::upload());
    assert_eq!(r.verdict, Verdict::Pass, "{r:#?}");
    let ids: Vec<&str> = r.findings.iter().map(|f| f.rule.id()).collect();
    assert_eq!(
        ids,
        [
            "format.jpeg",
            "format.file_size",
            "format.dimensions",
            "format.density",
            "format.color_depth",
            "format.quality",
            "provenance.camera",
            "provenance.software",
            "provenance.recency",
            "authenticity.no_mirror"
        ]
    );
}

#[test]
fn the_json_contract_holds() {
    let data = registered_photo(&JpegSpec { quality: 75, ..Default::default() });
    let r = run("x/reg.JPG", &data, &Profile::registered());
    let v = serde_json::to_value(&r).unwrap();
    let obj = v.as_object().unwrap();
    let mut keys: Vec<&str> = obj.keys().map(String::as_str).collect();
    keys.sort();
    assert_eq!(keys, ["error", "file", "findings", "measurements", "profile", "verdict"]);
    assert_eq!(v["file"], "x/reg.JPG");
    assert_eq!(v["profile"], "registered");
    assert!(v["error"].is_null());
    for f in v["findings"].as_array().unwrap() {
        let mut fk: Vec<&str> = f.as_object().unwrap().keys().map(String::as_str).collect();
        fk.sort();
        assert_eq!(fk, ["limit", "measured", "message", "rule", "severity"]);
        assert!(f["message"]["zh"].as_str().is_some_and(|s| !s.is_empty()));
        assert!(f["message"]["en"].as_str().is_some_and(|s| !s.is_empty()));
    }
    let find = |id: &str| v["findings"].as_array().unwrap().iter().find(|f| f["rule"] == id).cloned().unwrap();
    assert_eq!(find("format.quality")["measured"], 75);
    assert_eq!(find("format.dimensions")["measured"], serde_json::json!([480, 640]));
    assert_eq!(find("format.density")["measured"], serde_json::json!([300.0, 300.0]));
    // The registered file has no seal yet: fixable, the worst finding.
    assert_eq!(find("format.embedded_id")["severity"], "fixable");
    assert_eq!(v["verdict"], "fixable");
    // A round trip through JSON gives the same report: other tools read it back.
    let back: Report = serde_json::from_value(v).unwrap();
    assert_eq!(back, r);
}

#[test]
fn file_size_bounds_in_both_profiles() {
    let reg = Profile::registered();
    let small = registered_photo(&JpegSpec { quality: 20, ..Default::default() });
    let r = run("s.jpg", &small, &reg);
    assert!(small.len() < 20 * 1024, "{}", small.len());
    assert_eq!(severity(&r, Rule::FormatFileSize), Severity::Fixable);
    assert_eq!(r.finding(Rule::FormatFileSize).unwrap().measured, serde_json::json!(small.len()));
    // The highest quality whose file fits 20–40 KiB, as normalisation will pick it.
    let mid = (30..=95u8)
        .rev()
        .map(|quality| registered_photo(&JpegSpec { quality, ..Default::default() }))
        .find(|d| d.len() <= 40 * 1024)
        .unwrap();
    assert!(mid.len() >= 20 * 1024, "{}", mid.len());
    assert_eq!(severity(&run("m.jpg", &mid, &reg), Rule::FormatFileSize), Severity::Pass);
    // An original under 100 KiB is refused in the upload profile.
    assert_eq!(severity(&run("m.jpg", &mid, &Profile::upload()), Rule::FormatFileSize), Severity::Reject);
}

#[test]
fn dimensions_exact_at_least_and_landscape() {
    let img = portrait("alex_lacamoire_grey_bg.jpg");
    let at = |w, h| encode(&crop_to(&img, w, h), &JpegSpec::default());
    let reg = Profile::registered();
    let up = Profile::upload();
    assert_eq!(severity(&run("a.jpg", &at(480, 640), &reg), Rule::FormatDimensions), Severity::Pass);
    assert_eq!(severity(&run("a.jpg", &at(600, 800), &reg), Rule::FormatDimensions), Severity::Fixable);
    assert_eq!(severity(&run("a.jpg", &at(479, 640), &reg), Rule::FormatDimensions), Severity::Reject);
    assert_eq!(severity(&run("a.jpg", &at(600, 800), &up), Rule::FormatDimensions), Severity::Pass);
    assert_eq!(severity(&run("a.jpg", &at(480, 639), &up), Rule::FormatDimensions), Severity::Reject);
    assert_eq!(severity(&run("a.jpg", &at(1000, 700), &up), Rule::FormatDimensions), Severity::Fixable);
}

#[test]
fn density_from_jfif_dots_per_cm_exif_or_missing() {
    let reg = Profile::registered();
    let with = |density| registered_photo(&JpegSpec { density, ..Default::default() });
    let r = run("a.jpg", &with(Some((2, 118, 118))), &reg);
    assert_eq!(severity(&r, Rule::FormatDensity), Severity::Pass, "118 dots/cm is 299.7 dpi");
    assert_eq!(severity(&run("a.jpg", &with(Some((1, 72, 72))), &reg), Rule::FormatDensity), Severity::Fixable);
    assert_eq!(severity(&run("a.jpg", &with(Some((1, 300, 299))), &reg), Rule::FormatDensity), Severity::Fixable);
    let none = run("a.jpg", &with(Some((0, 1, 1))), &reg);
    assert_eq!(severity(&none, Rule::FormatDensity), Severity::Fixable);
    assert!(none.finding(Rule::FormatDensity).unwrap().measured.is_null());
    // No JFIF units: the EXIF resolution counts.
    let exif = registered_photo(&JpegSpec { density: Some((0, 1, 1)), exif: camera(), ..Default::default() });
    let r = run("a.jpg", &exif, &reg);
    assert_eq!(severity(&r, Rule::FormatDensity), Severity::Pass);
    assert_eq!(r.measurements["density"]["source"], "exif");
}

#[test]
fn greyscale_is_refused_as_colour_depth_but_still_decoded() {
    let grey = registered_photo(&JpegSpec { grey: true, ..Default::default() });
    let checked = check("g.jpg", &grey, &Profile::registered(), &options());
    let r = &checked.report;
    assert_eq!(severity(r, Rule::FormatColorDepth), Severity::Reject);
    assert_eq!(r.finding(Rule::FormatColorDepth).unwrap().measured, 8);
    assert_eq!(r.verdict, Verdict::Reject);
    let img = checked.image.expect("grey decodes to RGB");
    assert_eq!((img.width, img.height), (480, 640));
    let p = img.pixel(240, 320);
    assert!(p[0] == p[1] && p[1] == p[2]);
}

#[test]
fn quality_threshold_at_60() {
    let reg = Profile::registered();
    for (q, want) in [(59u8, Severity::Fixable), (60, Severity::Pass), (61, Severity::Pass)] {
        let r = run("a.jpg", &registered_photo(&JpegSpec { quality: q, ..Default::default() }), &reg);
        assert_eq!(severity(&r, Rule::FormatQuality), want, "q={q}");
        assert_eq!(r.finding(Rule::FormatQuality).unwrap().measured, q);
    }
}

#[test]
fn seal_absent_malformed_present() {
    let reg = Profile::registered();
    let mut good = b"GPSEAL\x01\x05k2026".to_vec();
    good.extend([9u8; 60]);
    let cases = [
        (vec![b"CREATOR: gd-jpeg v1.0".to_vec()], Severity::Fixable, "absent"),
        (vec![b"GPSEAL\x02".to_vec()], Severity::Fixable, "malformed"),
        (vec![good], Severity::Review, "present"),
    ];
    for (comments, want, measured) in cases {
        let r = run("a.jpg", &registered_photo(&JpegSpec { comments, ..Default::default() }), &reg);
        assert_eq!(severity(&r, Rule::FormatEmbeddedId), want, "{measured}");
        assert_eq!(r.finding(Rule::FormatEmbeddedId).unwrap().measured, measured);
    }
    assert!(
        run("a.jpg", &original(&JpegSpec::default()), &Profile::upload()).finding(Rule::FormatEmbeddedId).is_none()
    );
}

#[test]
fn provenance_camera_phone_missing_unknown() {
    let up = Profile::upload();
    let with = |make: Option<&str>, model: Option<&str>| {
        let exif = ExifSpec { make: make.map(Into::into), model: model.map(Into::into), ..ExifSpec::camera() }.build();
        run("a.jpg", &original(&JpegSpec { exif: Some(exif), ..Default::default() }), &up)
    };
    assert_eq!(severity(&with(Some("NIKON CORPORATION"), Some("NIKON Z 6")), Rule::ProvenanceCamera), Severity::Pass);
    let phone = with(Some("Apple"), Some("iPhone 15 Pro"));
    assert_eq!(severity(&phone, Rule::ProvenanceCamera), Severity::Reject);
    assert_eq!(phone.verdict, Verdict::Reject);
    assert!(phone.finding(Rule::ProvenanceCamera).unwrap().message.zh.contains("手机"));
    assert_eq!(severity(&with(Some("HUAWEI"), Some("ALN-AL00")), Rule::ProvenanceCamera), Severity::Reject);
    assert_eq!(severity(&with(Some("Acme"), Some("Cam 1")), Rule::ProvenanceCamera), Severity::Review);
    let none = run("a.jpg", &original(&JpegSpec::default()), &up);
    assert_eq!(severity(&none, Rule::ProvenanceCamera), Severity::Review);
}

#[test]
fn provenance_software_names_editors() {
    let up = Profile::upload();
    let with = |software: &str| {
        let exif = ExifSpec { software: Some(software.into()), ..ExifSpec::camera() }.build();
        run("a.jpg", &original(&JpegSpec { exif: Some(exif), ..Default::default() }), &up)
    };
    assert_eq!(severity(&with("Adobe Photoshop 25.0 (Windows)"), Rule::ProvenanceSoftware), Severity::Review);
    assert_eq!(severity(&with("MTXX 美图秀秀"), Rule::ProvenanceSoftware), Severity::Review);
    assert_eq!(severity(&with("Firmware Version 1.8.1"), Rule::ProvenanceSoftware), Severity::Pass);
    // A Photoshop resource block alone is a trace of Adobe software.
    let mut irb = b"Photoshop 3.0\0".to_vec();
    irb.extend([0u8; 12]);
    let data = gradphoto_testkit::insert_after_app0(
        &original(&JpegSpec { exif: camera(), ..Default::default() }),
        &[gradphoto_testkit::marker_segment(0xED, &irb)],
    );
    assert_eq!(severity(&run("a.jpg", &data, &up), Rule::ProvenanceSoftware), Severity::Review);
}

#[test]
fn recency_window_and_future_dates() {
    let up = Profile::upload();
    let with = |date: Option<&str>| {
        let exif = ExifSpec { datetime_original: date.map(Into::into), ..ExifSpec::camera() }.build();
        run("a.jpg", &original(&JpegSpec { exif: Some(exif), ..Default::default() }), &up)
    };
    let recent = with(Some("2026:06:01 10:00:00"));
    assert_eq!(severity(&recent, Rule::ProvenanceRecency), Severity::Pass);
    assert_eq!(recent.finding(Rule::ProvenanceRecency).unwrap().measured, 181);
    assert_eq!(severity(&with(Some("2025:10:25 10:00:00")), Rule::ProvenanceRecency), Severity::Pass); // 400 days
    assert_eq!(severity(&with(Some("2025:10:24 10:00:00")), Rule::ProvenanceRecency), Severity::Review); // 401 days
    assert_eq!(severity(&with(Some("2027:01:01 00:00:00")), Rule::ProvenanceRecency), Severity::Review);
    assert_eq!(severity(&with(None), Rule::ProvenanceRecency), Severity::Pass);
    // Without today's date the rule is not judged, so it is absent rather than passed.
    let data = original(&JpegSpec { exif: camera(), ..Default::default() });
    assert!(check("a.jpg", &data, &up, &CheckOptions::default()).report.finding(Rule::ProvenanceRecency).is_none());
}

#[test]
fn mirroring_orientations_are_rejected_and_rotations_turned_upright() {
    let reg = Profile::registered();
    for o in 1..=8u16 {
        let exif = ExifSpec { orientation: Some(o), ..ExifSpec::camera() }.build();
        let data = registered_photo(&JpegSpec { exif: Some(exif), ..Default::default() });
        let checked = check("a.jpg", &data, &reg, &options());
        let want = if matches!(o, 2 | 4 | 5 | 7) { Severity::Reject } else { Severity::Pass };
        assert_eq!(severity(&checked.report, Rule::AuthenticityNoMirror), want, "orientation {o}");
        let img = checked.image.unwrap();
        let upright = if o >= 5 { (640, 480) } else { (480, 640) };
        assert_eq!((img.width, img.height), upright, "orientation {o}");
        assert_eq!(checked.report.measurements["upright_width"], upright.0);
    }
}

#[test]
fn wrong_extension_is_fixable() {
    let data = registered_photo(&JpegSpec::default());
    let reg = Profile::registered();
    assert_eq!(severity(&run("a.jpeg", &data, &reg), Rule::FormatJpeg), Severity::Fixable);
    assert_eq!(severity(&run("a.JPG", &data, &reg), Rule::FormatJpeg), Severity::Pass);
    assert_eq!(severity(&run("a.png", &data, &Profile::upload()), Rule::FormatJpeg), Severity::Fixable);
    assert_eq!(severity(&run("a.JPEG", &data, &Profile::upload()), Rule::FormatJpeg), Severity::Pass);
}

#[test]
fn a_site_profile_from_toml_changes_thresholds() {
    let text = r#"
name = "strict"
title = { zh = "严格", en = "strict" }
[rules."format.quality"]
min = 90
severity = "reject"
"#;
    let p = Profile::from_toml(text).unwrap();
    let r = run("a.jpg", &registered_photo(&JpegSpec { quality: 85, ..Default::default() }), &p);
    assert_eq!(r.findings.len(), 1);
    assert_eq!(severity(&r, Rule::FormatQuality), Severity::Reject);
}
