//! Normalisation and sealing from studio-like originals built from the shared portraits (background made light blue
//! through the person mask, camera size, camera EXIF): every output passes the registered check and verifies;
//! any changed byte outside COM is tampering; an original framed too tight is refused with what is missing.

use std::path::Path;
use std::process::{Command, Output};
use std::sync::Arc;

use gradphoto_core::measure::face::models::FaceModels;
use gradphoto_core::seal::{AesGcmSealer, Identity, SealError, Sealer, verify_jpeg};
use gradphoto_core::{CheckOptions, Limits, Profile, Rule, Severity, check};
use gradphoto_testkit::exif::ExifSpec;
use gradphoto_testkit::{JpegSpec, encode};

const KEY: &str = "k2026:BwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc=";

fn models() -> Arc<FaceModels> {
    Arc::new(gradphoto_eval::face_models(&gradphoto_testkit::models_data_dir()).expect("models"))
}

fn sealer() -> Arc<dyn Sealer> {
    Arc::new(AesGcmSealer::from_spec(KEY).unwrap())
}

fn originals(models: &FaceModels) -> Vec<(String, Vec<u8>)> {
    let portraits = gradphoto_testkit::shared_dir().join("testdata/portraits");
    gradphoto_eval::sources(models, &portraits)
        .iter()
        // An approved original: the person labelled with lips closed and head upright.
        .filter(|src| src.mouth_closed == Some(true) && !src.head_tilted)
        .map(|src| {
            let img = gradphoto_eval::studio_original(src, 1500, 2000, 520.0);
            let spec = JpegSpec { quality: 92, exif: Some(ExifSpec::camera().build()), ..Default::default() };
            (src.name.clone(), encode(&gradphoto_eval::to_image(&img), &spec))
        })
        .collect()
}

#[test]
fn studio_originals_become_registered_files_that_pass_and_verify() {
    let models = models();
    let sealer = sealer();
    let originals = originals(&models);
    assert!(originals.len() >= 2, "{} approvable originals", originals.len());
    for (name, data) in &originals {
        let who = Identity {
            id_number: "11010519491231002X".into(),
            student_no: "2021000001".into(),
            school: "10055".into(),
        };
        let fixed =
            gradphoto_core::normalise::fix(data, &models, &sealer, &who, &CheckOptions::default(), &Default::default())
                .unwrap_or_else(|e| panic!("{name}: {e}"));
        let f = &fixed.jpeg;
        assert!((60..=100).contains(&fixed.quality), "{name}: q {}", fixed.quality);
        assert!(f.len() <= 40 * 1024, "{name}: {} bytes", f.len());
        let c = gradphoto_core::decode::container::read(f, &Limits::DEFAULT).unwrap();
        assert_eq!((c.frame.width, c.frame.height), (480, 640));
        assert!(c.exif.is_none(), "{name}: no EXIF may leak");
        let jfif = c.jfif.unwrap();
        assert_eq!((jfif.units, jfif.x_density, jfif.y_density), (1, 300, 300));
        assert_eq!(verify_jpeg(f, sealer.as_ref()).unwrap().0, who);
        // The registered check, made independently here, with the keys: everything passes.
        let opts = CheckOptions { models: Some(models.clone()), sealer: Some(sealer.clone()), ..Default::default() };
        let r = check("out.jpg", f, &Profile::registered(), &opts).report;
        // No reject, and nothing left for normalisation to fix; review findings (a person's judgement) may stand.
        let bad: Vec<_> = r
            .findings
            .iter()
            .filter(|x| {
                x.severity == Severity::Reject || (x.severity == Severity::Fixable && x.rule != Rule::FormatFileSize)
            })
            .collect();
        assert!(bad.is_empty(), "{name}: {bad:#?}");
        assert_eq!(r.finding(Rule::FormatEmbeddedId).unwrap().measured, "verified");
        // Flipping bytes outside COM: tampering, every time.
        let com = f.windows(6).position(|w| w == b"GPSEAL").expect("a COM seal") - 4;
        for at in [2usize, 10, com.saturating_sub(1), f.len() / 2, f.len() - 3] {
            if (com..com + 100).contains(&at) {
                continue;
            }
            let mut t = f.clone();
            t[at] ^= 0x10;
            assert!(
                matches!(
                    verify_jpeg(&t, sealer.as_ref()),
                    Err(SealError::Tampered | SealError::NotJpeg | SealError::Absent)
                ),
                "{name}: byte {at} changed but the seal still verifies"
            );
        }
    }
}

#[test]
fn an_original_showing_teeth_is_refused_by_the_self_check() {
    let models = models();
    let portraits = gradphoto_testkit::shared_dir().join("testdata/portraits");
    let smiling: Vec<_> =
        gradphoto_eval::sources(&models, &portraits).into_iter().filter(|s| s.mouth_closed == Some(false)).collect();
    assert!(!smiling.is_empty());
    for src in &smiling {
        let img = gradphoto_eval::studio_original(src, 1500, 2000, 520.0);
        let data = encode(&gradphoto_eval::to_image(&img), &JpegSpec { quality: 92, ..Default::default() });
        let who = Identity { id_number: "x".into(), student_no: "y".into(), school: "z".into() };
        match gradphoto_core::normalise::fix(
            &data,
            &models,
            &sealer(),
            &who,
            &CheckOptions::default(),
            &Default::default(),
        ) {
            Err(gradphoto_core::normalise::FixError::SelfCheck(r)) => {
                let f = r.finding(Rule::ExpressionMouthClosed).unwrap();
                assert_eq!(f.severity, Severity::Reject, "{}", src.name);
            }
            other => panic!("{}: expected the self-check to refuse, got {:?}", src.name, other.map(|f| f.quality)),
        }
    }
}

#[test]
fn an_original_framed_too_tight_is_refused_with_what_is_missing() {
    let models = models();
    let portraits = gradphoto_testkit::shared_dir().join("testdata/portraits");
    let src = &gradphoto_eval::sources(&models, &portraits)[0];
    // The face fills the frame: no room above the hair.
    let img = gradphoto_eval::studio_original(src, 1200, 1600, 1000.0);
    let data = encode(&gradphoto_eval::to_image(&img), &JpegSpec { quality: 92, ..Default::default() });
    let who = Identity { id_number: "x".into(), student_no: "y".into(), school: "z".into() };
    let err =
        gradphoto_core::normalise::fix(&data, &models, &sealer(), &who, &CheckOptions::default(), &Default::default())
            .unwrap_err();
    match err {
        gradphoto_core::normalise::FixError::NotCroppable(e) => {
            assert!(e.missing.iter().any(|&m| m > 1.0) || e.needs_upscale, "{e:?}")
        }
        other => panic!("expected geometry.croppable, got {other}"),
    }
}

/// Issue 13 item 5: the file `fix` writes measures its hair top where the crop aimed it. Originals 1800 × 2400 of
/// every shared portrait (smiling too: the self-check refuses teeth, but frames and measures all the same), the face
/// from near the smallest that needs no upscaling to one that leaves little room, the eyes at a third to over half
/// the height (room above the head from much to little). On a tall original with a small head the whole picture's
/// person mask missed a white cap the file's mask finds: files measured the hair top up to 23 px above where the
/// crop aimed it, down to 43 px. (Hair far above the eyes, which no shared portrait has, is geometry.rs's test.)
#[test]
fn the_file_fix_writes_measures_its_framing_where_the_crop_aimed_it() {
    use gradphoto_core::normalise::{FixError, prepare};
    let models = models();
    let sealer = sealer();
    let portraits = gradphoto_testkit::shared_dir().join("testdata/portraits");
    let sources = gradphoto_eval::sources(&models, &portraits);
    assert!(sources.len() >= 6, "{} sources", sources.len());
    let who = Identity { id_number: "11010519491231002X".into(), student_no: "1".into(), school: "2".into() };
    let (check, options) = (CheckOptions::default(), Default::default());
    let number = |r: &gradphoto_core::Report, rule: Rule| -> Vec<f64> {
        let m = &r.finding(rule).unwrap_or_else(|| panic!("{rule} not measured")).measured;
        m.as_array().map_or_else(|| vec![m.as_f64().unwrap()], |v| v.iter().filter_map(|x| x.as_f64()).collect())
    };
    let mut worst = [0.0f64; 3];
    let mut n = 0;
    for src in &sources {
        for (face, eyes) in [260.0, 400.0, 540.0].into_iter().flat_map(|f| [0.33, 0.45, 0.57].map(|e| (f, e))) {
            let case = format!("{} face {face} eyes at {eyes}", src.name);
            let img = gradphoto_eval::studio_original_with_eyes_at(src, 1800, 2400, face, eyes);
            let data = encode(&gradphoto_eval::to_image(&img), &JpegSpec { quality: 92, ..Default::default() });
            let (aimed, report) = match gradphoto_core::normalise::fix(&data, &models, &sealer, &who, &check, &options)
            {
                Ok(f) => (f.aimed, f.report),
                Err(FixError::SelfCheck(r)) => {
                    let aimed = prepare(&data, &models, &check, &options).unwrap().aimed;
                    (aimed, *r)
                }
                Err(e) => panic!("{case}: {e}"),
            };
            for rule in [Rule::GeometryHairTop, Rule::GeometryEyeLine, Rule::GeometryFaceWidth, Rule::GeometryCentered]
            {
                let f = report.finding(rule).unwrap();
                assert_eq!(f.severity, Severity::Pass, "{case}: {f:?}");
            }
            let hair = number(&report, Rule::GeometryHairTop)[0];
            let eye = number(&report, Rule::GeometryEyeLine);
            let width = number(&report, Rule::GeometryFaceWidth)[0];
            let off = [
                hair - f64::from(aimed.hair_top),
                (eye[0] + eye[1] - f64::from(aimed.eye_line[0] + aimed.eye_line[1])) / 2.0,
                width - f64::from(aimed.face_width),
            ];
            assert!(off[0].abs() <= 3.0 && off[1].abs() <= 3.0, "{case}: aimed {aimed:?}, measured {off:?} off");
            // The mesh of a face 130 px wide (the smallest, at the analysis scale) puts the cheeks up to 9 px
            // (of the file) narrower than on the file: well inside 180–300, and not what this is about.
            assert!(off[2].abs() <= 15.0, "{case}: aimed {aimed:?}, measured {off:?} off");
            (0..3).for_each(|k| worst[k] = worst[k].max(off[k].abs()));
            n += 1;
        }
    }
    eprintln!("{n} originals: hair top, eye line, face width at most {worst:.1?} px from where the crop aimed them");
}

fn gradphoto(args: &[&str], key: Option<&str>) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_gradphoto"));
    c.args(args).env("GRADPHOTO_DATA", gradphoto_testkit::models_data_dir()).env_remove("GRADPHOTO_SEAL_KEY");
    if let Some(k) = key {
        c.env("GRADPHOTO_SEAL_KEY", k);
    }
    c.output().expect("runs")
}

#[test]
fn the_commands_fix_and_seal_verify() {
    let models = models();
    let dir = tempfile::tempdir().unwrap();
    let (_, data) = originals(&models).into_iter().next().unwrap();
    let input = dir.path().join("orig.jpg");
    std::fs::write(&input, &data).unwrap();
    let out = dir.path().join("reg.jpg");
    let (i, o) = (input.to_str().unwrap(), out.to_str().unwrap());
    let args =
        ["fix", i, "--out", o, "--id-number", "11010519491231002X", "--student-no", "2021000001", "--school", "10055"];
    // No key: a clear stop, nothing written.
    let r = gradphoto(&args, None);
    assert_eq!(r.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&r.stderr).contains("GRADPHOTO_SEAL_KEY"));
    assert!(!out.exists());
    // A short key stops too.
    let r = gradphoto(&args, Some("k:AAAA"));
    assert_eq!(r.status.code(), Some(2), "{}", String::from_utf8_lossy(&r.stderr));
    assert!(!out.exists());
    let r = gradphoto(&args, Some(KEY));
    assert_eq!(r.status.code(), Some(0), "{}", String::from_utf8_lossy(&r.stderr));
    let verify = |file: &str, extra: &[&str], key: &str| {
        let mut a = vec!["seal", "verify", file];
        a.extend_from_slice(extra);
        gradphoto(&a, Some(key)).status.code()
    };
    assert_eq!(verify(o, &[], KEY), Some(0));
    assert_eq!(verify(o, &["--expect-id-number", "11010519491231002X"], KEY), Some(0));
    assert_eq!(verify(o, &["--expect-id-number", "110105194912310038"], KEY), Some(6));
    assert_eq!(verify(o, &[], "other:CQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQk="), Some(4));
    assert_eq!(verify(i, &[], KEY), Some(5));
    let mut t = std::fs::read(&out).unwrap();
    let n = t.len();
    t[n / 2] ^= 0x01;
    let tampered = dir.path().join("t.jpg");
    std::fs::write(&tampered, t).unwrap();
    assert_eq!(verify(tampered.to_str().unwrap(), &[], KEY), Some(3));
}

/// A valid mainland id number for a serial, with its GB 11643 check character.
fn id_number(serial: u32) -> String {
    let body = format!("11010519900101{:03}", serial % 1000);
    const W: [u32; 17] = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
    let sum: u32 = body.bytes().zip(W).map(|(b, w)| u32::from(b - b'0') * w).sum();
    format!("{body}{}", b"10X98765432"[(sum % 11) as usize] as char)
}

fn sha(path: &Path) -> Vec<u8> {
    use sha2::Digest;
    sha2::Sha256::digest(std::fs::read(path).unwrap()).to_vec()
}

#[test]
fn a_batch_with_a_gbk_roster_bad_rows_missing_photos_resumes_and_survives_a_kill() {
    let models = models();
    let dir = tempfile::tempdir().unwrap();
    let (input, out) = (dir.path().join("originals"), dir.path().join("registered"));
    std::fs::create_dir_all(&input).unwrap();
    let portraits = gradphoto_testkit::shared_dir().join("testdata/portraits");
    let sources = gradphoto_eval::sources(&models, &portraits);
    let mut lines = vec!["学号,姓名,证件类型,证件号码,学院".to_string()];
    let mut expected = Vec::new();
    for (i, src) in sources.iter().enumerate() {
        let no = format!("20210{i:02}");
        let img = gradphoto_eval::studio_original(src, 1500, 2000, 520.0);
        let spec = JpegSpec { quality: 92, exif: Some(ExifSpec::camera().build()), ..Default::default() };
        std::fs::write(input.join(format!("{no}.jpg")), encode(&gradphoto_eval::to_image(&img), &spec)).unwrap();
        let id = id_number(i as u32);
        lines.push(format!("{no},学生{i},居民身份证,{id},文学院"));
        // Teeth showing is a reject the normaliser cannot repair; a tilted head is a review, which an approved
        // original carries into its registered file.
        if src.mouth_closed == Some(true) {
            expected.push(id);
        }
    }
    lines.push("2021990,坏号码,居民身份证,110105199001010000,文学院".into()); // wrong check digit
    lines.push("2021991,没有照片,居民身份证,11010519491231002X,文学院".into());
    let text = lines.join("\r\n") + "\r\n";
    let (gbk, _, _) = encoding_rs::GBK.encode(&text);
    let roster = dir.path().join("名单.csv");
    std::fs::write(&roster, &gbk).unwrap();
    let before: Vec<Vec<u8>> = std::fs::read_dir(&input).unwrap().map(|e| sha(&e.unwrap().path())).collect();
    let args = [
        "fix",
        input.to_str().unwrap(),
        "--roster",
        roster.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--school",
        "10055",
    ];

    // Killed mid-batch: no half-written file under a final name, and the rerun finishes the job.
    let mut child = Command::new(env!("CARGO_BIN_EXE_gradphoto"))
        .args(args)
        .env("GRADPHOTO_DATA", gradphoto_testkit::models_data_dir())
        .env("GRADPHOTO_SEAL_KEY", KEY)
        .env("RAYON_NUM_THREADS", "1")
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(900));
    let _ = child.kill();
    let _ = child.wait();
    let s = sealer();
    for e in std::fs::read_dir(&out).into_iter().flatten().flatten() {
        let name = e.file_name().to_string_lossy().to_string();
        if name.ends_with(".jpg") {
            assert!(verify_jpeg(&std::fs::read(e.path()).unwrap(), s.as_ref()).is_ok(), "{name} is half-written");
        }
    }

    let r = gradphoto(&args, Some(KEY));
    assert_eq!(r.status.code(), Some(1), "bad rows make the exit 1: {}", String::from_utf8_lossy(&r.stderr));
    let err = String::from_utf8_lossy(&r.stderr);
    let bad_line = lines.len() - 1; // 1-based line of the wrong check digit
    assert!(err.contains(&format!(":{bad_line}: id.")), "{err}");
    assert!(err.contains(&format!(":{}: photo.missing", lines.len())), "{err}");
    for id in &expected {
        let f = out.join(format!("{id}.jpg"));
        let bytes = std::fs::read(&f).unwrap_or_else(|_| panic!("{id}.jpg missing; {err}"));
        assert_eq!(verify_jpeg(&bytes, s.as_ref()).unwrap().0.id_number, *id);
    }
    let manifest = std::fs::read_to_string(out.join("manifest.csv")).unwrap();
    assert_eq!(manifest.lines().count(), 1 + expected.len(), "{manifest}");
    assert!(manifest.starts_with("source,source_sha256,student_no,output,sha256,bytes,quality,verdict"));
    assert!(
        !std::fs::read_dir(&out).unwrap().any(|e| e
            .unwrap()
            .file_name()
            .to_string_lossy()
            .starts_with(".gradphoto-tmp-"))
    );
    let after: Vec<Vec<u8>> = std::fs::read_dir(&input).unwrap().map(|e| sha(&e.unwrap().path())).collect();
    assert_eq!(before, after, "inputs are never touched");

    // Resumed: nothing is redone, the files stay byte for byte, the manifest is the same.
    let times: Vec<_> = expected
        .iter()
        .map(|id| std::fs::metadata(out.join(format!("{id}.jpg"))).unwrap().modified().unwrap())
        .collect();
    let again = gradphoto(&args, Some(KEY));
    assert_eq!(again.status.code(), Some(1));
    let times2: Vec<_> = expected
        .iter()
        .map(|id| std::fs::metadata(out.join(format!("{id}.jpg"))).unwrap().modified().unwrap())
        .collect();
    assert_eq!(times, times2, "finished outputs are skipped");
    assert_eq!(std::fs::read_to_string(out.join("manifest.csv")).unwrap(), manifest);
}

#[test]
fn an_output_folder_that_cannot_be_written_stops_before_any_work() {
    let dir = tempfile::tempdir().unwrap();
    let blocker = dir.path().join("blocker");
    std::fs::write(&blocker, b"a file, not a folder").unwrap();
    let input = dir.path().join("in");
    std::fs::create_dir_all(&input).unwrap();
    std::fs::write(dir.path().join("r.csv"), "学号,姓名,证件号码\n2021001,甲,11010519491231002X\n").unwrap();
    let out = blocker.join("registered");
    let r = gradphoto(
        &[
            "fix",
            input.to_str().unwrap(),
            "--roster",
            dir.path().join("r.csv").to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "--school",
            "1",
        ],
        Some(KEY),
    );
    assert_eq!(r.status.code(), Some(2), "{}", String::from_utf8_lossy(&r.stderr));
    assert!(String::from_utf8_lossy(&r.stderr).contains("registered"));
    // A single fix into a folder that does not exist: a clear error, no file.
    let single = gradphoto(
        &[
            "fix",
            "missing.jpg",
            "--out",
            out.join("x.jpg").to_str().unwrap(),
            "--id-number",
            "1",
            "--student-no",
            "2",
            "--school",
            "3",
        ],
        Some(KEY),
    );
    assert_eq!(single.status.code(), Some(2));
    assert!(!out.exists());
}

#[test]
fn a_write_that_fails_halfway_leaves_no_file_under_the_final_name() {
    // The file-size limit of the process stands in for a full disk: the write of the registered file fails
    // (the kernel stops the process with SIGXFSZ), and nothing may appear under the output's name.
    let models = models();
    let dir = tempfile::tempdir().unwrap();
    let (_, data) = originals(&models).into_iter().next().unwrap();
    let input = dir.path().join("orig.jpg");
    std::fs::write(&input, &data).unwrap();
    let out = dir.path().join("reg.jpg");
    let cmd = format!(
        "ulimit -f 8; exec '{}' fix '{}' --out '{}' --id-number 11010519491231002X --student-no 1 --school 1",
        env!("CARGO_BIN_EXE_gradphoto"),
        input.display(),
        out.display()
    );
    let r = Command::new("bash")
        .args(["-c", &cmd])
        .env("GRADPHOTO_DATA", gradphoto_testkit::models_data_dir())
        .env("GRADPHOTO_SEAL_KEY", KEY)
        .output()
        .unwrap();
    assert!(!r.status.success());
    assert!(!out.exists(), "a half-written registered file under its final name");
}

#[test]
fn seal_keys_from_the_data_folders_config() {
    let dir = tempfile::tempdir().unwrap();
    let img = gradphoto_testkit::crop_to(&gradphoto_testkit::portrait("grace_hopper.jpg"), 120, 160);
    let who = Identity { id_number: "11010519491231002X".into(), student_no: "1".into(), school: "2".into() };
    let sealed = gradphoto_core::seal::seal_jpeg(&encode(&img, &JpegSpec::default()), sealer().as_ref(), &who).unwrap();
    let file = dir.path().join("s.jpg");
    std::fs::write(&file, sealed).unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let run = || {
        Command::new(env!("CARGO_BIN_EXE_gradphoto"))
            .args(["--data", data.to_str().unwrap(), "seal", "verify", file.to_str().unwrap()])
            .env_remove("GRADPHOTO_SEAL_KEY")
            .output()
            .unwrap()
    };
    let none = run();
    assert_eq!(none.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&none.stderr).contains("config.toml"));
    std::fs::write(data.join("config.toml"), format!("seal_keys = \"{KEY}\"\n")).unwrap();
    assert_eq!(run().status.code(), Some(0));
    // An unknown setting is refused, not ignored.
    std::fs::write(data.join("config.toml"), "seal_key = \"typo\"\n").unwrap();
    assert_eq!(run().status.code(), Some(2));
}
