//! `gradphoto`: the command line. `gradphoto check` judges photos against the degree-photo standard.

mod batch;
mod check;
mod eval;
mod files;
mod fix;
mod keys;
mod models;
mod output;
mod seal;
mod serve;

use std::io::Write;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

// Freed pages stay with the process for the next check: with the system allocator every check's images and
// tensors came back as fresh pages, and faulting them in cost 5–8 ms of a 12 MP check (docs/development.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(name = "gradphoto", version, about = "学历证书电子注册图像检查 — degree-certificate photo checker")]
struct Cli {
    /// 数据目录（模型缓存等）/ data folder (model cache …); default GRADPHOTO_DATA or ~/.local/share/gradphoto
    #[arg(long, global = true)]
    data: Option<std::path::PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// 检查照片 / Check photos (files or folders, recursively) against a profile of the standard.
    Check(check::CheckArgs),
    /// 人脸模型 / face models
    Models(models::ModelsArgs),
    /// 在标注集上评估并校准阈值 / evaluate on the labelled set and calibrate the thresholds
    Eval(eval::EvalArgs),
    /// 由审核通过的原图生成注册图像 / turn an approved original into the registered file
    Fix(fix::FixArgs),
    /// 注释段加密学籍信息 / the sealed identity
    Seal(seal::SealArgs),
    /// 启动采集服务 / run the collection service (SQLite and local files in the data folder by default)
    Serve(serve::ServeArgs),
    /// 管理账号 / staff accounts
    Admin(serve::AdminArgs),
    /// 本地演示用的模拟微信服务器 / fake WeChat servers (official account and WeChat Pay) for a local demo
    #[command(name = "wechat-fake")]
    WechatFake(WechatFakeArgs),
    /// 打印 API 描述 / print the service's OpenAPI 3.1 description (as `/api/openapi.json` serves it), for client
    /// generators and validators
    Openapi,
}

#[derive(clap::Args)]
struct WechatFakeArgs {
    /// Where the fake keeps its keys and settings (made on first start, reused after).
    #[arg(long, default_value = "wechat-fake")]
    dir: std::path::PathBuf,
    /// Address the fake listens on.
    #[arg(long, default_value = "127.0.0.1:8090")]
    listen: std::net::SocketAddr,
    /// The service's address as a browser reaches it (the `base_url` printed for config.toml).
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    service: String,
}

fn wechat_fake(args: WechatFakeArgs) -> anyhow::Result<ExitCode> {
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    rt.block_on(gradphoto_wechat_fake::run_demo(&args.dir, args.listen, &args.service)).map_err(anyhow::Error::msg)?;
    Ok(ExitCode::SUCCESS)
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            // --help and --version are not usage errors.
            return if e.use_stderr() { ExitCode::from(2) } else { ExitCode::SUCCESS };
        }
    };
    let result = match cli.command {
        Command::Check(args) => check::run(args, models::data_dir(cli.data)),
        Command::Models(args) => models::run(args, models::data_dir(cli.data)),
        Command::Eval(args) => eval::run(args, models::data_dir(cli.data)),
        Command::Fix(args) => fix::run(args, models::data_dir(cli.data)),
        Command::Seal(args) => seal::run(args, models::data_dir(cli.data)),
        Command::Serve(args) => serve::serve(args, models::data_dir(cli.data)),
        Command::Admin(args) => serve::admin(args, models::data_dir(cli.data)),
        Command::WechatFake(args) => wechat_fake(args),
        Command::Openapi => {
            println!("{:#}", gradphoto_web::routes::openapi());
            Ok(ExitCode::SUCCESS)
        }
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            // stderr may be a closed pipe too: never panic for it.
            let _ = writeln!(std::io::stderr(), "gradphoto: {e:#}");
            ExitCode::from(2)
        }
    }
}
