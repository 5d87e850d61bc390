//! `gradphoto serve` (the collection service) and `gradphoto admin create` (staff accounts, the first
//! super-admin among them).

use std::io::BufRead;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use gradphoto_store::db::Role;

#[derive(Args)]
pub struct ServeArgs {
    /// 监听地址 / address to listen on (default 127.0.0.1:8080, or `listen` in config.toml)
    #[arg(long)]
    listen: Option<SocketAddr>,
    /// 创建示范学校和账号 / create a demo school with demo accounts (never in production)
    #[arg(long)]
    demo: bool,
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread().enable_all().build().context("starting the async runtime")
}

pub fn serve(args: ServeArgs, data: PathBuf) -> anyhow::Result<ExitCode> {
    init_logging();
    let mut config = gradphoto_web::Config::load(&data)?;
    if let Some(listen) = args.listen {
        config.listen = listen;
    }
    runtime()?.block_on(async move {
        let listen = config.listen;
        let state = gradphoto_web::open(&data, config).await?;
        bootstrap_admin(&state).await?;
        if args.demo {
            for line in gradphoto_web::seed_demo(&state).await.map_err(anyhow::Error::msg)? {
                println!("demo: {line}");
            }
        }
        let listener =
            tokio::net::TcpListener::bind(listen).await.with_context(|| format!("listening on {listen}"))?;
        let addr = listener.local_addr()?;
        if state.db.count_staff().await? == 0 {
            println!(
                "no staff account yet: run `gradphoto admin create --username NAME --role super_admin` (the password is read from stdin)"
            );
        }
        println!("gradphoto 已启动 / listening: http://{addr}/  (data: {})", data.display());
        println!("students: http://{addr}/   staff: http://{addr}/staff/login");
        gradphoto_web::serve(state, listener).await?;
        Ok(ExitCode::SUCCESS)
    })
}

/// `GRADPHOTO_BOOTSTRAP_ADMIN=name:password` creates the first super-admin when there is no staff at all (for
/// unattended installs); ignored once any account exists.
async fn bootstrap_admin(state: &gradphoto_web::state::AppState) -> anyhow::Result<()> {
    let Ok(spec) = std::env::var("GRADPHOTO_BOOTSTRAP_ADMIN") else { return Ok(()) };
    if state.db.count_staff().await? > 0 {
        return Ok(());
    }
    let Some((user, password)) = spec.split_once(':') else {
        bail!("GRADPHOTO_BOOTSTRAP_ADMIN must be name:password");
    };
    gradphoto_web::create_staff(&state.db, user, password, Role::SuperAdmin, None).await.map_err(anyhow::Error::msg)?;
    println!("created the super-admin {user}");
    Ok(())
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("GRADPHOTO_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_target(false).try_init();
}

#[derive(Args)]
pub struct AdminArgs {
    #[command(subcommand)]
    command: AdminCommand,
}

#[derive(Subcommand)]
enum AdminCommand {
    /// 创建工作人员账号（密码从标准输入读取）/ create a staff account (password read from stdin)
    Create {
        #[arg(long)]
        username: String,
        /// super_admin, school_admin or reviewer
        #[arg(long, default_value = "super_admin")]
        role: String,
        /// 学校代码（学校管理员和审核员必填）/ school code (school admins and reviewers)
        #[arg(long)]
        school: Option<String>,
    },
    /// 备份数据目录（服务运行时亦可）/ back up the data folder while the service runs: the database snapshot, the
    /// files its rows name, keys.toml and config.toml, into a new folder that is itself a data folder
    Backup {
        /// 目标目录（须为空或不存在）/ the new folder (empty or absent)
        #[arg(long)]
        to: PathBuf,
    },
}

pub fn admin(args: AdminArgs, data: PathBuf) -> anyhow::Result<ExitCode> {
    let (username, role, school) = match args.command {
        AdminCommand::Create { username, role, school } => (username, role, school),
        AdminCommand::Backup { to } => {
            let config = gradphoto_web::Config::load(&data)?;
            let report =
                runtime()?.block_on(gradphoto_web::backup::backup(&data, &config, &to)).map_err(anyhow::Error::msg)?;
            println!(
                "backed up to {}: the database, {} files ({} bytes); restore with `gradphoto serve --data {}`",
                to.display(),
                report.files.files,
                report.files.bytes,
                to.display()
            );
            for w in report.warnings.iter().chain(report.files.missing.iter()) {
                eprintln!("note: {w}");
            }
            return Ok(ExitCode::SUCCESS);
        }
    };
    let role =
        Role::parse(&role).with_context(|| format!("unknown role {role}: super_admin, school_admin or reviewer"))?;
    let mut password = String::new();
    std::io::stdin().lock().read_line(&mut password).context("reading the password from stdin")?;
    let password = password.trim_end_matches(['\r', '\n']).to_string();
    let config = gradphoto_web::Config::load(&data)?;
    std::fs::create_dir_all(&data).with_context(|| format!("creating {}", data.display()))?;
    runtime()?.block_on(async move {
        let db = gradphoto_store::Db::connect(&config.database_url(&data)).await?;
        let school = match (&role, school) {
            (Role::SuperAdmin, None) => None,
            (Role::SuperAdmin, Some(_)) => bail!("a super-admin belongs to no school"),
            (_, Some(code)) => Some(db.school_by_code(&code).await.with_context(|| format!("no school {code}"))?.id),
            (_, None) => bail!("--school is needed for this role"),
        };
        let id =
            gradphoto_web::create_staff(&db, &username, &password, role, school).await.map_err(anyhow::Error::msg)?;
        println!("created {} {username} (id {id})", role.as_str());
        Ok(ExitCode::SUCCESS)
    })
}
