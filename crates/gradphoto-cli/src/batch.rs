//! `gradphoto fix DIR --roster FILE --out DIR`: a studio's folder of originals becomes the registry's folder of
//! registered files, named by id number, with a manifest. Resumable: a finished output whose source has not changed
//! is skipped. Every file is written through a temporary file and a rename; no input is ever touched.

use std::collections::{BTreeMap, HashMap};
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use anyhow::{Context, bail};
use gradphoto_core::CheckOptions;
use gradphoto_core::normalise::{self, FixError, FixOptions};
use gradphoto_core::roster::{self, RosterRow};
use gradphoto_core::seal::{Identity, Sealer};
use indicatif::{ProgressBar, ProgressStyle};
use rayon::prelude::*;
use sha2::{Digest, Sha256};

use crate::files::write_atomic;

pub struct Batch<'a> {
    pub input: &'a Path,
    pub roster: &'a Path,
    pub out: &'a Path,
    pub school: &'a str,
    /// Output name, with `{id}`, `{student_no}` and `{school}` replaced.
    pub name: &'a str,
    pub sealer: Arc<dyn Sealer>,
    pub models: Arc<gradphoto_core::measure::face::models::FaceModels>,
}

const MANIFEST: &str = "manifest.csv";
const HEADER: [&str; 9] =
    ["source", "source_sha256", "student_no", "output", "sha256", "bytes", "quality", "verdict", "message"];

fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

/// Photos in the folder by lower-case file stem (student number or id number).
fn photos(dir: &Path) -> anyhow::Result<HashMap<String, PathBuf>> {
    let mut map = HashMap::new();
    for entry in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let path = entry?.path();
        let ext = path.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase);
        if matches!(ext.as_deref(), Some("jpg" | "jpeg"))
            && let Some(stem) = path.file_stem().and_then(|s| s.to_str())
        {
            map.insert(stem.trim().to_lowercase(), path);
        }
    }
    Ok(map)
}

/// The manifest rows of an earlier run, by output name; a line cut by a crash is ignored.
fn earlier(out: &Path) -> HashMap<String, Vec<String>> {
    let Ok(mut r) = csv::Reader::from_path(out.join(MANIFEST)) else { return HashMap::new() };
    r.records()
        .filter_map(Result::ok)
        .filter(|rec| rec.len() == HEADER.len())
        .map(|rec| (rec[3].to_string(), rec.iter().map(String::from).collect()))
        .collect()
}

fn output_name(pattern: &str, row: &RosterRow, school: &str) -> String {
    pattern
        .replace("{id}", row.id_number.as_str())
        .replace("{student_no}", &row.student_no)
        .replace("{school}", school)
        .replace(['/', '\\'], "_")
}

/// Runs the batch; returns whether every roster row produced its file.
pub fn run(b: Batch<'_>) -> anyhow::Result<bool> {
    let bytes = std::fs::read(b.roster).with_context(|| format!("reading {}", b.roster.display()))?;
    let parsed = roster::parse(&bytes).map_err(|e| anyhow::anyhow!("{} ({})", e.message().zh, e.message().en))?;
    let mut problems: BTreeMap<usize, String> = BTreeMap::new();
    for e in &parsed.errors {
        problems.insert(e.line, format!("{}: {} / {}", e.code, e.message.zh, e.message.en));
    }
    std::fs::create_dir_all(b.out).with_context(|| format!("creating {}", b.out.display()))?;
    crate::files::sweep(b.out);
    // Probe that the folder takes files before any work.
    write_atomic(&b.out.join(".gradphoto-write-test"), b"ok")?;
    let _ = std::fs::remove_file(b.out.join(".gradphoto-write-test"));
    let photos = photos(b.input)?;
    let before = earlier(b.out);
    let manifest = Arc::new(Mutex::new(
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(b.out.join(MANIFEST))
            .context("opening the manifest")?,
    ));
    {
        let mut m = manifest.lock().map_err(|_| anyhow::anyhow!("manifest lock"))?;
        if m.metadata()?.len() == 0 {
            writeln!(m, "{}", HEADER.join(","))?;
        }
    }
    let progress = if std::io::stderr().is_terminal() && parsed.rows.len() >= 5 {
        let bar = ProgressBar::new(parsed.rows.len() as u64);
        bar.set_style(
            ProgressStyle::with_template("{bar:40} {pos}/{len} 剩余 {eta}")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        bar
    } else {
        ProgressBar::hidden()
    };
    let results: Vec<(usize, Result<Vec<String>, String>)> = parsed
        .rows
        .par_iter()
        .map(|row| {
            let r = one(&b, row, &photos, &before);
            // Each finished file is in the manifest at once, so a killed run can be resumed.
            if let (Ok(fields), Ok(mut m)) = (&r, manifest.lock()) {
                let mut w = csv::Writer::from_writer(Vec::new());
                let _ = w.write_record(fields);
                if let Ok(line) = w.into_inner() {
                    let _ = m.write_all(&line).and_then(|()| m.flush());
                }
            }
            progress.inc(1);
            (row.line, r)
        })
        .collect();
    progress.finish_and_clear();
    // The manifest again, whole and in roster order: one line per output.
    let mut rows: Vec<Vec<String>> = Vec::new();
    for (line, r) in results {
        match r {
            Ok(fields) => rows.push(fields),
            Err(e) => {
                problems.insert(line, e);
            }
        }
    }
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record(HEADER)?;
    for r in &rows {
        w.write_record(r)?;
    }
    write_atomic(&b.out.join(MANIFEST), &w.into_inner().map_err(|e| anyhow::anyhow!("{e}"))?)?;
    for (line, p) in &problems {
        let _ = writeln!(std::io::stderr(), "{}:{line}: {p}", b.roster.display());
    }
    println!(
        "{} 个注册图像，{} 行有问题（见上）/ {} registered files, {} rows with problems; manifest: {}",
        rows.len(),
        problems.len(),
        rows.len(),
        problems.len(),
        b.out.join(MANIFEST).display()
    );
    Ok(problems.is_empty())
}

fn one(
    b: &Batch<'_>,
    row: &RosterRow,
    photos: &HashMap<String, PathBuf>,
    before: &HashMap<String, Vec<String>>,
) -> Result<Vec<String>, String> {
    let source = photos
        .get(&row.student_no.to_lowercase())
        .or_else(|| photos.get(&row.id_number.as_str().to_lowercase()))
        .ok_or_else(|| {
            format!(
                "photo.missing: 没有找到学号 {} 的原图 / no original named after student {}",
                row.student_no, row.student_no
            )
        })?;
    let data = std::fs::read(source).map_err(|e| format!("io.read: {}: {e}", source.display()))?;
    let source_hash = sha256_hex(&data);
    let name = output_name(b.name, row, b.school);
    let target = b.out.join(&name);
    // Resume: the same source already made this output, and the output is still what the manifest says.
    if let Some(prev) = before.get(&name)
        && prev[1] == source_hash
        && std::fs::read(&target).is_ok_and(|out| sha256_hex(&out) == prev[4])
    {
        return Ok(prev.clone());
    }
    let who = Identity {
        id_number: row.id_number.as_str().to_string(),
        student_no: row.student_no.clone(),
        school: b.school.to_string(),
    };
    let fixed = normalise::fix(&data, &b.models, &b.sealer, &who, &CheckOptions::default(), &FixOptions::default())
        .map_err(|e| match e {
            FixError::NotCroppable(n) => {
                format!("geometry.croppable: missing {:?} px (top, bottom, left, right)", n.missing.map(f32::round))
            }
            other => format!("fix.failed: {other}"),
        })?;
    write_atomic(&target, &fixed.jpeg).map_err(|e| format!("io.write: {e:#}"))?;
    Ok(vec![
        source.display().to_string(),
        source_hash,
        row.student_no.clone(),
        name,
        sha256_hex(&fixed.jpeg),
        fixed.jpeg.len().to_string(),
        fixed.quality.to_string(),
        fixed.report.verdict.label().1.to_string(),
        String::new(),
    ])
}

/// Checked before anything else: a batch needs a roster and an output folder that is not the input.
pub fn check_args(input: &Path, out: &Path) -> anyhow::Result<()> {
    let same = std::fs::canonicalize(input).ok().zip(std::fs::canonicalize(out).ok()).is_some_and(|(a, b)| a == b);
    if same {
        bail!("the output folder must not be the input folder: originals are never touched");
    }
    Ok(())
}
