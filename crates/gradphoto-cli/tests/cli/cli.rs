//! `gradphoto check` as a user runs it: a folder of photos, every output format, the exit codes.

use std::path::Path;
use std::process::{Command, Output};

use gradphoto_testkit::exif::ExifSpec;
use gradphoto_testkit::{JpegSpec, add_noise, crop_to, encode, portrait};

/// The data folder of the tests: models fetched once into target/, never into the user's home.
fn data_dir() -> std::path::PathBuf {
    gradphoto_testkit::models_data_dir()
}

fn gradphoto(args: &[&str], dir: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_gradphoto"))
        .args(args)
        .env("GRADPHOTO_DATA", data_dir())
        .current_dir(dir)
        .output()
        .expect("runs")
}

fn original(exif: ExifSpec) -> Vec<u8> {
    let mut img = crop_to(&portrait("alex_lacamoire_grey_bg.jpg"), 1200, 1600);
    add_noise(&mut img, 6, 7);
    // A capture date close to today, whenever the test runs.
    let exif = ExifSpec { datetime_original: None, ..exif };
    encode(&img, &JpegSpec { quality: 92, exif: Some(exif.build()), ..Default::default() })
}

/// A folder as a photographer hands it over: good originals, a phone shot, a PNG named .jpg, other files.
fn folder() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path();
    std::fs::create_dir_all(p.join("学院/sub")).unwrap();
    std::fs::write(p.join("good.jpg"), original(ExifSpec::camera())).unwrap();
    std::fs::write(p.join("学院/sub/GOOD2.JPEG"), original(ExifSpec::camera())).unwrap();
    let phone = ExifSpec { make: Some("Apple".into()), model: Some("iPhone 15".into()), ..ExifSpec::camera() };
    std::fs::write(p.join("学院/phone.jpg"), original(phone)).unwrap();
    let mut png = Vec::new();
    gradphoto_testkit::resize(&portrait("grace_hopper.jpg"), 60, 80)
        .write_to(&mut std::io::Cursor::new(&mut png), image_png())
        .unwrap();
    std::fs::write(p.join("renamed.jpg"), &png).unwrap();
    std::fs::write(p.join("notes.txt"), "not a photo").unwrap();
    std::fs::write(p.join("ignored.png"), &png).unwrap();
    dir
}

fn image_png() -> gradphoto_testkit::ImageFormat {
    gradphoto_testkit::ImageFormat::Png
}

#[test]
fn a_folder_in_json_with_every_file_and_exit_2_for_the_unreadable_one() {
    let dir = folder();
    let out = gradphoto(&["check", "--file-rules-only", "--format", "json", "."], dir.path());
    assert_eq!(out.status.code(), Some(2), "{}", String::from_utf8_lossy(&out.stderr));
    let reports: serde_json::Value = serde_json::from_slice(&out.stdout).expect("stdout is one JSON document");
    let reports = reports.as_array().unwrap();
    let files: Vec<&str> = reports.iter().map(|r| r["file"].as_str().unwrap()).collect();
    assert_eq!(files, ["./good.jpg", "./renamed.jpg", "./学院/phone.jpg", "./学院/sub/GOOD2.JPEG"]);
    let verdict = |f: &str| reports.iter().find(|r| r["file"] == f).unwrap()["verdict"].as_str().unwrap().to_string();
    assert_eq!(verdict("./good.jpg"), "pass");
    assert_eq!(verdict("./学院/sub/GOOD2.JPEG"), "pass");
    assert_eq!(verdict("./学院/phone.jpg"), "reject");
    assert_eq!(verdict("./renamed.jpg"), "error");
    let renamed = reports.iter().find(|r| r["file"] == "./renamed.jpg").unwrap();
    assert_eq!(renamed["error"]["code"], "input.not_jpeg");
    assert!(renamed["error"]["message"]["zh"].as_str().unwrap().contains("PNG"));
}

#[test]
fn exit_0_when_all_pass_and_1_on_a_finding() {
    let dir = folder();
    let ok = gradphoto(&["check", "--file-rules-only", "good.jpg", "学院/sub"], dir.path());
    assert_eq!(ok.status.code(), Some(0), "{}", String::from_utf8_lossy(&ok.stdout));
    let text = String::from_utf8(ok.stdout).unwrap();
    assert!(text.contains("✓ good.jpg — 通过"), "{text}");
    assert!(text.contains("共 2 个文件：通过 2"), "{text}");
    let phone = gradphoto(&["check", "--file-rules-only", "--lang", "en", "学院/phone.jpg"], dir.path());
    assert_eq!(phone.status.code(), Some(1));
    let text = String::from_utf8(phone.stdout).unwrap();
    assert!(text.contains("reject") && text.contains("Taken with a phone"), "{text}");
    assert!(text.contains("provenance.camera"), "{text}");
}

#[test]
fn jsonl_and_csv_carry_the_same_findings() {
    let dir = folder();
    let jsonl =
        gradphoto(&["check", "--file-rules-only", "--format", "jsonl", "--profile", "registered", "."], dir.path());
    let lines: Vec<serde_json::Value> =
        String::from_utf8(jsonl.stdout).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 4);
    assert!(lines.iter().all(|r| r["profile"] == "registered"));
    let csv_out =
        gradphoto(&["check", "--file-rules-only", "--format", "csv", "--profile", "registered", "."], dir.path());
    let mut reader = csv::Reader::from_reader(csv_out.stdout.as_slice());
    assert_eq!(
        reader.headers().unwrap().iter().collect::<Vec<_>>(),
        ["file", "profile", "verdict", "error", "rule", "severity", "measured", "limit", "message"]
    );
    let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    let findings: usize = lines.iter().map(|r| r["findings"].as_array().unwrap().len().max(1)).sum();
    assert_eq!(rows.len(), findings);
    let dims = rows.iter().find(|r| &r[0] == "./good.jpg" && &r[4] == "format.dimensions").unwrap();
    assert_eq!((&dims[5], &dims[6]), ("fixable", "[1200,1600]"));
    assert!(rows.iter().any(|r| &r[0] == "./renamed.jpg" && &r[3] == "input.not_jpeg"));
}

#[test]
fn usage_errors_and_missing_files_exit_2() {
    let dir = folder();
    assert_eq!(gradphoto(&["check"], dir.path()).status.code(), Some(2));
    assert_eq!(gradphoto(&["check", "--profile", "nope", "good.jpg"], dir.path()).status.code(), Some(2));
    assert_eq!(gradphoto(&["check", "--format", "xml", "good.jpg"], dir.path()).status.code(), Some(2));
    let missing = gradphoto(&["check", "--file-rules-only", "--format", "json", "good.jpg", "missing.jpg"], dir.path());
    assert_eq!(missing.status.code(), Some(2));
    let v: serde_json::Value = serde_json::from_slice(&missing.stdout).unwrap();
    assert_eq!(v[1]["error"]["code"], "io.read");
    assert_eq!(v[0]["verdict"], "pass");
    let empty = tempfile::tempdir().unwrap();
    assert_eq!(gradphoto(&["check", "."], empty.path()).status.code(), Some(2));
    assert_eq!(gradphoto(&["--help"], dir.path()).status.code(), Some(0));
}

#[test]
fn a_site_profile_file_is_accepted() {
    let dir = folder();
    std::fs::write(
        dir.path().join("strict.toml"),
        "name = \"strict\"\ntitle = { zh = \"严格\", en = \"strict\" }\n[rules.\"format.quality\"]\nmin = 95\nseverity = \"reject\"\n",
    )
    .unwrap();
    let out = gradphoto(&["check", "--format", "json", "--profile", "strict.toml", "good.jpg"], dir.path());
    assert_eq!(out.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v[0]["profile"], "strict");
    assert_eq!(v[0]["findings"][0]["rule"], "format.quality");
    assert_eq!(v[0]["findings"][0]["severity"], "reject");
}

#[test]
fn models_fetch_from_a_folder_and_a_clear_error_without_pip() {
    // The models the other tests fetched with pip, copied into a folder as an air-gapped site would.
    let paths = gradphoto_models::ensure(&data_dir(), |_| {}).expect("models");
    let folder = tempfile::tempdir().unwrap();
    for p in [&paths.face_detector, &paths.face_landmarker, &paths.person_segmenter] {
        std::fs::copy(p, folder.path().join(p.file_name().unwrap())).unwrap();
    }
    let data = tempfile::tempdir().unwrap();
    let from = folder.path().to_str().unwrap();
    let out = gradphoto(&["models", "fetch", "--from", from, "--data", data.path().to_str().unwrap()], data.path());
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(gradphoto_models::cached(data.path()).is_some());
    // No pip and nothing cached: a clear message naming the air-gapped way, exit 2.
    let empty = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_gradphoto"))
        .args(["models", "fetch", "--data", empty.path().to_str().unwrap()])
        .env("GRADPHOTO_PIP", "/nonexistent/pip")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--from DIR"), "{err}");
}

#[test]
fn the_face_rules_and_the_annotated_picture() {
    // A registered-size photo cut from a real portrait: the eyes and face are measured, and the picture is drawn.
    let dir = tempfile::tempdir().unwrap();
    let img = crop_to(&portrait("chris_pratt_ccby.jpeg"), 480, 640);
    std::fs::write(dir.path().join("reg.jpg"), encode(&img, &JpegSpec { quality: 80, ..Default::default() })).unwrap();
    let out = gradphoto(
        &["check", "--profile", "registered", "--format", "json", "--annotate", "drawn", "reg.jpg"],
        dir.path(),
    );
    assert_eq!(out.status.code(), Some(1), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let find = |id: &str| v[0]["findings"].as_array().unwrap().iter().find(|f| f["rule"] == id).cloned().unwrap();
    assert_eq!(find("face.count")["measured"], 1);
    let eyes = find("geometry.eye_line")["measured"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e.as_f64().unwrap())
        .collect::<Vec<_>>();
    assert!(eyes.iter().all(|e| (150.0..350.0).contains(e)), "{eyes:?}");
    // The grey studio background is not light blue, white or light grey.
    assert_eq!(find("background.color")["severity"], "reject");
    let drawn = std::fs::read(dir.path().join("drawn/reg.annotated.jpg")).expect("annotated picture");
    let pic = image::load_from_memory(&drawn).unwrap();
    assert_eq!((pic.width(), pic.height()), (480, 640));
}
