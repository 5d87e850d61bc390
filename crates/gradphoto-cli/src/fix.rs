//! `gradphoto fix`: an approved original becomes the registered 480 × 640 file with the identity sealed in COM.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::Args;
use gradphoto_core::CheckOptions;
use gradphoto_core::normalise::{self, FixError, FixOptions};
use gradphoto_core::seal::Identity;

#[derive(Args)]
pub struct FixArgs {
    /// 原图，或原图文件夹（配合 --roster）/ the approved original, or a folder of them (with --roster)
    input: PathBuf,
    /// 输出的注册图像（批量时为文件夹）/ the registered file to write (a folder in batch mode)
    #[arg(long)]
    out: PathBuf,
    /// 证件号码 / identity-document number
    #[arg(long, required_unless_present = "roster")]
    id_number: Option<String>,
    /// 学号 / student number
    #[arg(long, required_unless_present = "roster")]
    student_no: Option<String>,
    /// 名单（CSV：学号、姓名、证件类型、证件号码…）/ roster CSV for a folder of originals
    #[arg(long)]
    roster: Option<PathBuf>,
    /// 输出文件名 / output file name; {id}, {student_no}, {school} are replaced
    #[arg(long, default_value = "{id}.jpg")]
    name: String,
    /// 学校代码 / school code
    #[arg(long)]
    school: String,
    /// 封存密钥文件（否则用 GRADPHOTO_SEAL_KEY）/ seal key file (else GRADPHOTO_SEAL_KEY)
    #[arg(long)]
    key_file: Option<PathBuf>,
}

pub fn run(args: FixArgs, data: PathBuf) -> anyhow::Result<ExitCode> {
    // Keys first: a missing or short key stops before any work.
    let sealer = crate::keys::load(args.key_file.as_deref(), &data)?;
    if let Some(roster) = &args.roster {
        crate::batch::check_args(&args.input, &args.out)?;
        let models = Arc::new(crate::check::load_models(&data)?);
        let all_done = crate::batch::run(crate::batch::Batch {
            input: &args.input,
            roster,
            out: &args.out,
            school: &args.school,
            name: &args.name,
            sealer,
            models,
        })?;
        return Ok(if all_done { ExitCode::SUCCESS } else { ExitCode::from(1) });
    }
    let models = Arc::new(crate::check::load_models(&data)?);
    let original = std::fs::read(&args.input).with_context(|| format!("reading {}", args.input.display()))?;
    let identity = Identity {
        id_number: args.id_number.unwrap_or_default(),
        student_no: args.student_no.unwrap_or_default(),
        school: args.school,
    };
    let fixed = match normalise::fix(
        &original,
        &models,
        &sealer,
        &identity,
        &CheckOptions::default(),
        &FixOptions::default(),
    ) {
        Ok(f) => f,
        Err(FixError::NotCroppable(e)) => {
            let [top, bottom, left, right] = e.missing.map(|v| v.round());
            let _ = writeln!(
                std::io::stderr(),
                "geometry.croppable: 构图过紧，无法裁剪（上 {top}、下 {bottom}、左 {left}、右 {right} 像素不足{}）/ framed too tight: missing {top} px above, {bottom} below, {left} left, {right} right{}",
                if e.needs_upscale { "，且需放大" } else { "" },
                if e.needs_upscale { ", and the face would need upscaling" } else { "" }
            );
            return Ok(ExitCode::from(1));
        }
        Err(e) => return Err(e.into()),
    };
    crate::files::write_atomic(&args.out, &fixed.jpeg)?;
    println!(
        "{} → {}: {}×{} 的裁剪，品质 {}，{} 字节，注册图像检查 {} / crop {}×{}, quality {}, {} bytes, registered check {}",
        args.input.display(),
        args.out.display(),
        fixed.crop.width.round(),
        fixed.crop.height().round(),
        fixed.quality,
        fixed.jpeg.len(),
        fixed.report.verdict.label().0,
        fixed.crop.width.round(),
        fixed.crop.height().round(),
        fixed.quality,
        fixed.jpeg.len(),
        fixed.report.verdict.label().1,
    );
    Ok(ExitCode::SUCCESS)
}
