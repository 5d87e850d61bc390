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
    /// 更换证件号加密密钥 / rotate the key that seals id numbers, openids and webhook secrets: `rotate`, restart
    /// every node, `reseal`, then `retire`
    #[command(name = "id-key", subcommand)]
    IdKey(IdKeyStep),
}

#[derive(Subcommand, Clone, Copy)]
enum IdKeyStep {
    /// 生成新密钥（旧密钥仍可解密）/ make a new key that seals from now on; the old one still opens. Then copy
    /// keys.toml to every node and restart them one by one.
    Rotate,
    /// 用新密钥重新加密所有记录 / re-seal every row that an old key sealed with the new one (run once every node
    /// has been restarted with the new keys.toml)
    Reseal,
    /// 删除旧密钥 / remove the old keys from keys.toml once no row needs them
    Retire,
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
        AdminCommand::IdKey(step) => return id_key(step, &data),
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

fn id_key(step: IdKeyStep, data: &std::path::Path) -> anyhow::Result<ExitCode> {
    use gradphoto_web::secrets::{Secrets, reseal};
    if !data.join("keys.toml").exists() {
        bail!("{} has no keys.toml: start the service there once, or name the data folder with --data", data.display());
    }
    let (mut secrets, _) = Secrets::load_or_create(data)?;
    let config = gradphoto_web::Config::load(data)?;
    let survey = |write: bool| {
        let vault = secrets.vault();
        let url = config.database_url(data);
        runtime()?.block_on(async move {
            let db = gradphoto_store::Db::connect(&url).await?;
            anyhow::Ok(reseal(&db, &vault, write).await?)
        })
    };
    match step {
        IdKeyStep::Rotate => {
            if !secrets.previous_id_keys.is_empty() {
                bail!(
                    "a rotation is under way: run `gradphoto admin id-key reseal`, then `retire`, before the next one"
                );
            }
            secrets.rotate_id_key();
            secrets.save(data)?;
            println!(
                "a new id key seals from now on; the old one still opens. Next: copy {} to every node and restart \
                 them one by one, then run `gradphoto admin id-key reseal`",
                data.join("keys.toml").display()
            );
        }
        IdKeyStep::Reseal => {
            if secrets.previous_id_keys.is_empty() {
                bail!("no rotation is under way: run `gradphoto admin id-key rotate` first");
            }
            let r = survey(true)?;
            println!(
                "re-sealed {} rows with the new key ({} were already); next: `gradphoto admin id-key retire`",
                r.previous, r.current
            );
            if r.unopenable > 0 {
                eprintln!("note: {} rows open with no key in keys.toml and were left as they are", r.unopenable);
            }
        }
        IdKeyStep::Retire => {
            let r = survey(false)?;
            if r.previous > 0 {
                bail!(
                    "{} rows are still sealed with an old key: run `gradphoto admin id-key reseal` first",
                    r.previous
                );
            }
            let retired = std::mem::take(&mut secrets.previous_id_keys).len();
            secrets.save(data)?;
            println!(
                "retired {retired} old keys: every one of {} rows opens with the current key. Copy keys.toml to every \
                 node; each drops the old key from memory at its next restart",
                r.current
            );
            if r.unopenable > 0 {
                eprintln!("note: {} rows open with no key and were left as they are", r.unopenable);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
