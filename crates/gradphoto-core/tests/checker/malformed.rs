//! More than 300 malformed files: each is an `error` with a stable code, never a panic, within the limits.

use gradphoto_core::{CheckOptions, Profile, Verdict, check};
use gradphoto_testkit::hostile;

#[test]
fn every_malformed_file_is_a_clear_error() {
    let cases = hostile::corpus();
    assert!(cases.len() >= 300, "only {} cases", cases.len());
    let profile = Profile::upload();
    let options = CheckOptions::default();
    let mut wrong = Vec::new();
    for case in &cases {
        let name = format!("{}.jpg", case.label);
        let outcome =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| check(&name, &case.bytes, &profile, &options)));
        let Ok(checked) = outcome else {
            wrong.push(format!("{}: PANIC", case.label));
            continue;
        };
        let r = checked.report;
        let code = r.error.as_ref().map(|e| e.code.as_str());
        if r.verdict != Verdict::Error || !code.is_some_and(|c| case.codes.contains(&c)) {
            wrong.push(format!(
                "{}: verdict {:?}, code {code:?}, expected one of {:?}",
                case.label, r.verdict, case.codes
            ));
            continue;
        }
        let e = r.error.unwrap();
        if e.message.zh.is_empty() || e.message.en.is_empty() {
            wrong.push(format!("{}: empty message", case.label));
        }
    }
    assert!(wrong.is_empty(), "{} of {} cases wrong:\n{}", wrong.len(), cases.len(), wrong.join("\n"));
}

#[test]
fn the_same_fault_gives_the_same_code_every_time() {
    let cases = hostile::corpus();
    let profile = Profile::upload();
    for case in cases.iter().step_by(17) {
        let a = check("a.jpg", &case.bytes, &profile, &CheckOptions::default()).report.error;
        let b = check("a.jpg", &case.bytes, &profile, &CheckOptions::default()).report.error;
        assert_eq!(a, b, "{}", case.label);
    }
}

#[test]
fn a_huge_declared_frame_is_refused_before_decoding() {
    // 65 535 × 65 535 declared in a file of a few kilobytes: refused from the header, nothing allocated for it.
    let case = hostile::corpus().into_iter().find(|c| c.label.contains("65535×65535")).unwrap();
    let r = check("big.jpg", &case.bytes, &Profile::upload(), &CheckOptions::default()).report;
    assert_eq!(r.error.unwrap().code, "limits.pixels");
    assert!(r.measurements.is_empty());
}

#[test]
fn limits_refuse_large_files_and_many_segments() {
    let good = &hostile::sources()[0].1;
    let tight = CheckOptions {
        limits: gradphoto_core::Limits { max_file_bytes: 1000, ..Default::default() },
        ..Default::default()
    };
    let r = check("a.jpg", good, &Profile::upload(), &tight).report;
    assert_eq!(r.error.unwrap().code, "limits.file_bytes");
    let few =
        CheckOptions { limits: gradphoto_core::Limits { max_segments: 3, ..Default::default() }, ..Default::default() };
    let r = check("a.jpg", good, &Profile::upload(), &few).report;
    assert_eq!(r.error.unwrap().code, "limits.segments");
    // Thousands of comment segments: refused by the segment count, not read to the end.
    let com = gradphoto_testkit::marker_segment(0xFE, b"x");
    let many: Vec<Vec<u8>> = std::iter::repeat_n(com, 5000).collect();
    let spam = gradphoto_testkit::insert_after_app0(good, &many);
    let r = check("a.jpg", &spam, &Profile::upload(), &CheckOptions::default()).report;
    assert_eq!(r.error.unwrap().code, "limits.segments");
}
