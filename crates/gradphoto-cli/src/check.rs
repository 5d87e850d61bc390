//! `gradphoto check`: files and folders in, one report per photo out, in parallel over all cores.

use std::io::{IsTerminal, Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use clap::{Args, ValueEnum};
use gradphoto_core::annotate::annotated_jpeg;
use gradphoto_core::judge::{JudgeContext, ReportError};
use gradphoto_core::measure::face::models::FaceModels;
use gradphoto_core::{CheckOptions, Lang, Message, Profile, Report, Verdict};
use indicatif::{ProgressBar, ProgressStyle};
use rayon::prelude::*;

use crate::output;

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum Format {
    Text,
    Json,
    Jsonl,
    Csv,
}

#[derive(Args)]
pub struct CheckArgs {
    /// 规范：upload（上传原图）、registered（注册图像），或一个 TOML 规范文件 / profile: upload, registered, or a TOML file
    #[arg(long, default_value = "upload")]
    profile: String,
    /// 输出格式 / output format
    #[arg(long, value_enum, default_value = "text")]
    format: Format,
    /// 语言 / language of the messages
    #[arg(long, value_enum, default_value = "zh")]
    lang: LangArg,
    /// 为每张照片写出标注图到此文件夹 / write an annotated picture of each photo into this folder
    #[arg(long, value_name = "DIR")]
    annotate: Option<PathBuf>,
    /// 只检查文件本身，不运行人脸模型 / judge the file rules only, without the face models
    #[arg(long)]
    file_rules_only: bool,
    /// 照片文件或文件夹（递归查找 .jpg/.jpeg）/ photo files or folders (searched for .jpg/.jpeg)
    #[arg(required = true)]
    paths: Vec<PathBuf>,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum LangArg {
    Zh,
    En,
}

/// Files below `paths`: named files as given, folders searched recursively for .jpg/.jpeg in any case.
fn collect(paths: &[PathBuf]) -> anyhow::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for p in paths {
        if p.is_dir() {
            let mut found: Vec<PathBuf> = walkdir::WalkDir::new(p)
                .follow_links(false)
                .into_iter()
                .filter_map(Result::ok)
                .filter(|e| e.file_type().is_file())
                .map(walkdir::DirEntry::into_path)
                .filter(|p| {
                    p.extension()
                        .and_then(|e| e.to_str())
                        .is_some_and(|e| e.eq_ignore_ascii_case("jpg") || e.eq_ignore_ascii_case("jpeg"))
                })
                .collect();
            found.sort();
            files.extend(found);
        } else {
            files.push(p.clone());
        }
    }
    Ok(files)
}

fn load_profile(name: &str) -> anyhow::Result<Profile> {
    if let Some(p) = Profile::builtin(name) {
        return Ok(p);
    }
    let path = Path::new(name);
    if !path.is_file() {
        bail!("unknown profile {name:?}: use upload, registered or the path of a TOML profile");
    }
    let text = std::fs::read_to_string(path).with_context(|| format!("reading profile {}", path.display()))?;
    Ok(Profile::from_toml(&text)?)
}

/// Reads a file, refusing one over the limit before allocating for it.
fn read_bounded(path: &Path, limit: u64) -> Result<Vec<u8>, ReportError> {
    let io_error = |e: std::io::Error| ReportError {
        code: "io.read".into(),
        message: Message::new(format!("无法读取文件：{e}"), format!("cannot read the file: {e}")),
    };
    let file = std::fs::File::open(path).map_err(io_error)?;
    let declared = file.metadata().map_err(io_error)?.len();
    let too_large = |size: u64| {
        let e = gradphoto_core::decode::ReadError::TooLarge { size, limit };
        ReportError::from(&e)
    };
    if declared > limit {
        return Err(too_large(declared));
    }
    let mut data = Vec::with_capacity(declared as usize);
    // The file may grow while we read it: never take more than the limit.
    file.take(limit + 1).read_to_end(&mut data).map_err(io_error)?;
    if data.len() as u64 > limit {
        return Err(too_large(data.len() as u64));
    }
    Ok(data)
}

fn today() -> i64 {
    let secs = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    (secs / 86_400) as i64
}

/// Loads the face models from the cache, fetching them on first use.
pub fn load_models(data: &Path) -> anyhow::Result<FaceModels> {
    gradphoto_eval::face_models(data).map_err(|e| anyhow::anyhow!(e))
}

/// The annotated picture's file name: the photo's path with separators flattened, so that no two collide.
fn annotated_name(path: &Path) -> String {
    let flat: String = path
        .with_extension("")
        .to_string_lossy()
        .trim_start_matches("./")
        .chars()
        .map(|c| if c == '/' || c == '\\' || c == ':' { '_' } else { c })
        .collect();
    format!("{}.annotated.jpg", flat.trim_start_matches(['.', '_']))
}

pub fn run(args: CheckArgs, data: PathBuf) -> anyhow::Result<ExitCode> {
    let profile = load_profile(&args.profile)?;
    let lang = match args.lang {
        LangArg::Zh => Lang::Zh,
        LangArg::En => Lang::En,
    };
    let files = collect(&args.paths)?;
    if files.is_empty() {
        bail!("no .jpg or .jpeg files found in the given paths");
    }
    let models =
        if profile.needs_faces() && !args.file_rules_only { Some(Arc::new(load_models(&data)?)) } else { None };
    if let Some(dir) = &args.annotate {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let options = CheckOptions {
        context: JudgeContext { today: Some(today()) },
        models,
        sealer: crate::keys::optional(&data),
        ..CheckOptions::default()
    };
    let progress = if std::io::stderr().is_terminal() && files.len() >= 20 {
        let bar = ProgressBar::new(files.len() as u64);
        bar.set_style(
            ProgressStyle::with_template("{bar:40} {pos}/{len} {per_sec} 剩余 {eta}")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        bar
    } else {
        ProgressBar::hidden()
    };
    let reports: Vec<Report> = files
        .par_iter()
        .map(|path| {
            let name = path.display().to_string();
            let report = match read_bounded(path, options.limits.max_file_bytes) {
                Ok(data) => {
                    let checked = gradphoto_core::check(&name, &data, &profile, &options);
                    if let Some(dir) = &args.annotate
                        && let Some(jpeg) = annotated_jpeg(&checked)
                    {
                        let out = dir.join(annotated_name(path));
                        if let Err(e) = std::fs::write(&out, jpeg) {
                            let _ = writeln!(std::io::stderr(), "gradphoto: writing {}: {e}", out.display());
                        }
                    }
                    checked.report
                }
                Err(err) => Report::new(name, profile.name.clone(), Some(err), Vec::new(), Default::default()),
            };
            progress.inc(1);
            report
        })
        .collect();
    progress.finish_and_clear();

    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    output::write(&mut out, &reports, args.format, lang)?;
    if matches!(args.format, Format::Text) {
        output::summary(&mut out, &reports, lang)?;
    } else if std::io::stderr().is_terminal() {
        output::summary(&mut std::io::stderr().lock(), &reports, lang)?;
    }

    let code = if reports.iter().any(|r| r.verdict == Verdict::Error) {
        2
    } else if reports.iter().any(|r| r.verdict != Verdict::Pass) {
        1
    } else {
        0
    };
    Ok(ExitCode::from(code))
}
