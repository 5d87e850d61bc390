//! `gradphoto seal verify`: whether a registered file's sealed identity opens, and matches.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Subcommand};
use gradphoto_core::seal::{SealError, verify_jpeg};

#[derive(Args)]
pub struct SealArgs {
    #[command(subcommand)]
    command: SealCommand,
}

#[derive(Subcommand)]
enum SealCommand {
    /// 核对注释段中的加密学籍信息 / check the sealed identity. Exit 0 ok, 3 tampered, 4 unknown key, 5 absent,
    /// 6 another student's id, 2 unreadable or malformed
    Verify {
        file: PathBuf,
        /// 期望的证件号码 / the id number the seal must hold
        #[arg(long)]
        expect_id_number: Option<String>,
        #[arg(long)]
        key_file: Option<PathBuf>,
    },
}

pub fn run(args: SealArgs, data: std::path::PathBuf) -> anyhow::Result<ExitCode> {
    let SealCommand::Verify { file, expect_id_number, key_file } = args.command;
    let sealer = crate::keys::load(key_file.as_deref(), &data)?;
    let bytes = std::fs::read(&file).with_context(|| format!("reading {}", file.display()))?;
    let (code, zh, en) = match verify_jpeg(&bytes, sealer.as_ref()) {
        Ok((identity, key)) => match expect_id_number {
            Some(want) if want.trim() != identity.id_number => {
                (6, "加密信息属于另一名学生".to_string(), "the seal holds another student's id number".to_string())
            }
            _ => (0, format!("有效（密钥 {key}）"), format!("ok (key {key})")),
        },
        Err(SealError::Tampered) => (3, "文件在封存后被改动".into(), "tampered: the file changed after sealing".into()),
        Err(SealError::UnknownKey(k)) => (4, format!("未知密钥 {k}"), format!("unknown key {k}")),
        Err(SealError::Absent) => (5, "没有加密学籍信息".into(), "absent: no seal in the file".into()),
        Err(e) => (2, "无法读取封存信息".into(), format!("malformed: {e}")),
    };
    println!("{}: {zh} / {en}", file.display());
    Ok(ExitCode::from(code))
}
