//! The service's configuration: typed, every field with a documented default, read from `<data>/config.toml`
//! (unknown keys refused, so a typo is an error, not a silent default) and then from `GRADPHOTO_*` variables.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("reading {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{path}: {source}")]
    Parse { path: PathBuf, source: Box<toml::de::Error> },
    #[error("the variable {name} is not valid: {value:?}")]
    Env { name: &'static str, value: String },
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Address to listen on. Default `127.0.0.1:8080`; env `GRADPHOTO_LISTEN`.
    pub listen: SocketAddr,
    /// Database address: `sqlite:PATH` or `postgres://…`. Default `sqlite:<data>/gradphoto.db`; env
    /// `GRADPHOTO_DATABASE_URL`.
    pub database_url: Option<String>,
    /// Folder of the byte store. Default `<data>/store`; env `GRADPHOTO_STORE`.
    pub store_dir: Option<PathBuf>,
    /// An S3-compatible bucket for the byte store instead of `store_dir` (`[s3]` with `endpoint`, `bucket`,
    /// optional `region`, `access_key_id`, `secret_access_key`). Default none.
    pub s3: Option<gradphoto_store::S3Config>,
    /// Folder holding the face-model cache (`models/…`). Default the data folder; env `GRADPHOTO_MODELS`.
    pub models_dir: Option<PathBuf>,
    /// Mark session cookies `Secure` (sent over HTTPS only). Default true; set false only for plain-HTTP use on
    /// a trusted network. Browsers treat `http://localhost` as secure, so local use works either way. Env
    /// `GRADPHOTO_COOKIE_SECURE`.
    pub cookie_secure: bool,
    /// Largest upload in bytes, checked while the body streams in. Default 20 MiB (the checker's own limit);
    /// env `GRADPHOTO_MAX_UPLOAD`.
    pub max_upload: usize,
    /// Largest roster file in bytes. Default 50 MiB.
    pub max_roster: usize,
    /// Session lifetime in minutes. Default 720 (a working day).
    pub session_minutes: i64,
    /// Failed logins that lock an account. Default 5.
    pub lockout_failures: i64,
    /// How long a locked account stays locked, in minutes. Default 15.
    pub lockout_minutes: i64,
    /// Login attempts allowed per client address per minute, across accounts. Default 30.
    pub login_rate_per_minute: u32,
    /// Requests allowed per API token per minute (counted in the database, so every node limits alike); over it a
    /// token is answered 429 with `Retry-After`. Default 120; env `GRADPHOTO_TOKEN_RATE_PER_MINUTE`.
    pub token_rate_per_minute: u32,
    /// Behind a reverse proxy: take the client's address from the last entry of `X-Forwarded-For` (which the proxy
    /// appends) instead of the connection's. Default false; set it only when every request comes through the proxy.
    /// Env `GRADPHOTO_BEHIND_PROXY`.
    pub behind_proxy: bool,
    /// Photo checks run at once on this node (each takes one core for ~50 ms). Default: the number of cores. 0:
    /// this node answers pages and uploads and leaves the checks to the other nodes. Env `GRADPHOTO_CHECK_WORKERS`.
    pub check_workers: Option<usize>,
    /// Uploads taken in at once (body read, file rules, stored, answered); later ones wait before their first byte
    /// is read, so a burst cannot take the memory and the cores that pages need, and each upload taken in is
    /// answered at once (a proxy in front buffers bodies, so a slow phone does not hold a place). Default 8; env
    /// `GRADPHOTO_UPLOAD_BODIES`.
    pub upload_bodies: usize,
    /// Start-up recovery leaves unnamed files (staged without a row, published without one) younger than this many
    /// seconds alone: on a shared database and bucket they may be another live node's write in flight. Default 0 on
    /// SQLite (one node), 600 on PostgreSQL; set 0 after stopping every node to sweep everything. Env
    /// `GRADPHOTO_RECOVERY_GRACE_SECS`.
    pub recovery_grace_secs: Option<u64>,
    /// This node's name in the claims it takes (outbox messages, checks, periodic jobs). Default
    /// `<host name>:<port>`; env `GRADPHOTO_NODE`. A node started again under its name takes back at once what it
    /// had claimed before it stopped (otherwise those claims wait for their leases to end); two running nodes must
    /// never share a name.
    pub node: Option<String>,
    /// The seal key ring for registered files (`id:base64[,…]`); default the one in `<data>/keys.toml`.
    pub seal_keys: Option<String>,
    /// The photo partner's WeChat official account (`[wechat]`): sign-in and binding, template messages, and
    /// with `[wechat.pay]` WeChat Pay. Default none: WeChat is off, students bind to a browser and pay offline.
    pub wechat: Option<WechatConfig>,
    /// How events are delivered to the schools' webhooks (`[webhooks]`, docs/webhooks.md).
    pub webhooks: WebhookConfig,
}

/// `[webhooks]`: delivering events to the URL a school registered. Every field has a default.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WebhookConfig {
    /// Seconds one delivery may take, connecting included; a receiver slower than this counts as failed and is
    /// tried again after the backoff. Default 10, at most 60 (a claimed row's lease must outlast its deliveries).
    pub timeout_secs: u64,
    /// Also accept plain `http://` URLs on this machine (`http://127.0.0.1…`, `http://localhost…`,
    /// `http://[::1]…`), for a receiver installed beside the service (on-site installs, tests); every other URL
    /// must be `https://`. Default false; env `GRADPHOTO_WEBHOOK_LOOPBACK_HTTP`.
    pub allow_loopback_http: bool,
    /// The proxy deliveries go through (`http://proxy.example:3128`). Default none: deliveries connect directly,
    /// whatever `HTTP(S)_PROXY` says, so a proxy meant for something else never sees the events.
    pub proxy: Option<String>,
}

impl Default for WebhookConfig {
    fn default() -> Self {
        WebhookConfig { timeout_secs: 10, allow_loopback_http: false, proxy: None }
    }
}

/// A value that must never reach a log: `Debug` prints an ellipsis.
#[derive(Clone, Deserialize, Default)]
#[serde(transparent)]
pub struct Secret(pub String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(…)")
    }
}

/// `[wechat]`: what the partner registered with WeChat (docs/service.md lists the steps).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WechatConfig {
    /// The official account's AppID (`wx…`).
    pub appid: String,
    /// The AppSecret. Env `GRADPHOTO_WECHAT_SECRET` overrides it, so it need not be in a file.
    #[serde(default)]
    pub secret: Secret,
    /// This service's public address as WeChat reaches it (`https://photo.example.edu.cn`): the sign-in callback
    /// and the payment notification URL are built from it, and its domain is the one registered as the web
    /// authorisation domain. Required.
    pub base_url: String,
    /// The official-account API. Default `https://api.weixin.qq.com`.
    #[serde(default = "default_api_base")]
    pub api_base: String,
    /// The authorize page. Default `https://open.weixin.qq.com`.
    #[serde(default = "default_open_base")]
    pub open_base: String,
    /// For a local demo with `gradphoto wechat-fake` only: where the pay page sends a browser that has no
    /// WeChat bridge (the fake's cashier). Default none; never set it in production.
    #[serde(default)]
    pub cashier_url: Option<String>,
    /// Template messages per event; an event without one is told in-site only.
    #[serde(default)]
    pub templates: Templates,
    /// Attempts before a WeChat message becomes a dead letter an admin can resend. Default 8 (about three hours
    /// of backoff).
    #[serde(default = "default_max_attempts")]
    pub max_attempts: i64,
    /// WeChat Pay (`[wechat.pay]`); without it fees are paid offline.
    #[serde(default)]
    pub pay: Option<WechatPayConfig>,
}

fn default_api_base() -> String {
    gradphoto_wechat::client::API_BASE.into()
}

fn default_open_base() -> String {
    gradphoto_wechat::client::OPEN_BASE.into()
}

fn default_pay_base() -> String {
    gradphoto_wechat::client::PAY_BASE.into()
}

fn default_max_attempts() -> i64 {
    8
}

/// `[wechat.templates.<event>]` for the events submitted, approved, rejected and exported.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Templates {
    pub submitted: Option<TemplateConfig>,
    pub approved: Option<TemplateConfig>,
    pub rejected: Option<TemplateConfig>,
    pub exported: Option<TemplateConfig>,
}

/// One template from the category library: its id, and which of our fields fills each of its keys, e.g.
/// `keys = { thing1 = "school", character_string2 = "student_no", phrase3 = "status", thing4 = "reasons",
/// time5 = "time" }`. Fields: `school`, `student_no`, `name`, `photo_type`, `status`, `reasons`, `note`, `time`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TemplateConfig {
    pub id: String,
    pub keys: std::collections::BTreeMap<String, String>,
}

/// `[wechat.pay]`: the direct merchant's WeChat Pay API v3 settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WechatPayConfig {
    /// The merchant number.
    pub mchid: String,
    /// The serial number of the merchant's API certificate.
    pub merchant_serial: String,
    /// The merchant's private key (`apiclient_key.pem`, PKCS#8); a relative path is taken in the data folder.
    pub merchant_key_file: PathBuf,
    /// The 32-character APIv3 key. Env `GRADPHOTO_WECHAT_APIV3_KEY` overrides it.
    #[serde(default)]
    pub apiv3_key: Secret,
    /// The WeChat Pay public key id (`PUB_KEY_ID_…`) or platform certificate serial that signs WeChat Pay's answers.
    pub public_key_id: String,
    /// That key as a PEM: the WeChat Pay public key (`-----BEGIN PUBLIC KEY-----`) or the platform certificate
    /// (`-----BEGIN CERTIFICATE-----`); relative to the data folder.
    pub public_key_file: PathBuf,
    /// The API. Default `https://api.mch.weixin.qq.com`.
    #[serde(default = "default_pay_base")]
    pub pay_base: String,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            database_url: None,
            store_dir: None,
            s3: None,
            models_dir: None,
            cookie_secure: true,
            max_upload: 20 * 1024 * 1024,
            max_roster: 50 * 1024 * 1024,
            session_minutes: 720,
            lockout_failures: 5,
            lockout_minutes: 15,
            login_rate_per_minute: 30,
            token_rate_per_minute: 120,
            behind_proxy: false,
            check_workers: None,
            upload_bodies: 8,
            node: None,
            recovery_grace_secs: None,
            seal_keys: None,
            wechat: None,
            webhooks: WebhookConfig::default(),
        }
    }
}

fn env_parse<T: std::str::FromStr>(name: &'static str) -> Result<Option<T>, ConfigError> {
    match std::env::var(name) {
        Ok(v) if !v.trim().is_empty() => v.trim().parse().map(Some).map_err(|_| ConfigError::Env { name, value: v }),
        _ => Ok(None),
    }
}

impl Config {
    /// `<data>/config.toml` if present, then the environment.
    pub fn load(data: &Path) -> Result<Config, ConfigError> {
        let path = data.join("config.toml");
        let mut config = match std::fs::read_to_string(&path) {
            Ok(text) => toml::from_str(&text).map_err(|e| ConfigError::Parse { path, source: Box::new(e) })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Config::default(),
            Err(source) => return Err(ConfigError::Read { path, source }),
        };
        if let Some(v) = env_parse("GRADPHOTO_LISTEN")? {
            config.listen = v;
        }
        if let Some(v) = env_parse::<String>("GRADPHOTO_DATABASE_URL")? {
            config.database_url = Some(v);
        }
        if let Some(v) = env_parse::<PathBuf>("GRADPHOTO_STORE")? {
            config.store_dir = Some(v);
        }
        if let Some(v) = env_parse::<PathBuf>("GRADPHOTO_MODELS")? {
            config.models_dir = Some(v);
        }
        if let Some(v) = env_parse("GRADPHOTO_COOKIE_SECURE")? {
            config.cookie_secure = v;
        }
        if let Some(v) = env_parse("GRADPHOTO_MAX_UPLOAD")? {
            config.max_upload = v;
        }
        if let Some(v) = env_parse("GRADPHOTO_CHECK_WORKERS")? {
            config.check_workers = Some(v);
        }
        if let Some(v) = env_parse::<String>("GRADPHOTO_NODE")? {
            config.node = Some(v);
        }
        if let Some(v) = env_parse("GRADPHOTO_UPLOAD_BODIES")? {
            config.upload_bodies = v;
        }
        if let Some(v) = env_parse("GRADPHOTO_TOKEN_RATE_PER_MINUTE")? {
            config.token_rate_per_minute = v;
        }
        if let Some(v) = env_parse("GRADPHOTO_BEHIND_PROXY")? {
            config.behind_proxy = v;
        }
        if let Some(v) = env_parse("GRADPHOTO_RECOVERY_GRACE_SECS")? {
            config.recovery_grace_secs = Some(v);
        }
        if let Some(v) = env_parse("GRADPHOTO_WEBHOOK_LOOPBACK_HTTP")? {
            config.webhooks.allow_loopback_http = v;
        }
        if let Some(w) = config.wechat.as_mut() {
            if let Some(v) = env_parse::<String>("GRADPHOTO_WECHAT_SECRET")? {
                w.secret = Secret(v);
            }
            if let (Some(p), Some(v)) = (w.pay.as_mut(), env_parse::<String>("GRADPHOTO_WECHAT_APIV3_KEY")?) {
                p.apiv3_key = Secret(v);
            }
        }
        Ok(config)
    }

    pub fn database_url(&self, data: &Path) -> String {
        self.database_url.clone().unwrap_or_else(|| format!("sqlite:{}", data.join("gradphoto.db").display()))
    }

    pub fn store_dir(&self, data: &Path) -> PathBuf {
        self.store_dir.clone().unwrap_or_else(|| data.join("store"))
    }

    pub fn models_dir(&self, data: &Path) -> PathBuf {
        self.models_dir.clone().unwrap_or_else(|| data.to_path_buf())
    }

    /// Start-up recovery's grace in ms. On PostgreSQL other nodes may be writing, so by default ten minutes (far
    /// above a stage-to-commit gap); SQLite is one node by definition, so nothing can be in flight.
    pub fn recovery_grace_ms(&self, backend_is_postgres: bool) -> i64 {
        let secs = self.recovery_grace_secs.unwrap_or(if backend_is_postgres { 600 } else { 0 });
        i64::try_from(secs.saturating_mul(1000)).unwrap_or(i64::MAX)
    }

    pub fn node(&self) -> String {
        self.node.clone().unwrap_or_else(|| {
            let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
                .or_else(|_| std::env::var("HOSTNAME"))
                .unwrap_or_else(|_| "gradphoto".into());
            format!("{}:{}", host.trim(), self.listen.port())
        })
    }

    pub fn check_workers(&self) -> usize {
        self.check_workers.unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_then_defaults_and_typos_refused() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("config.toml"), "listen = \"0.0.0.0:9000\"\ncookie_secure = false\n").unwrap();
        let c = Config::load(dir.path()).unwrap();
        assert_eq!(c.listen.port(), 9000);
        assert!(!c.cookie_secure);
        assert_eq!((c.lockout_failures, c.token_rate_per_minute), (5, 120));
        assert_eq!((c.recovery_grace_ms(false), c.recovery_grace_ms(true)), (0, 600_000));
        let c = Config { recovery_grace_secs: Some(0), ..c };
        assert_eq!(c.recovery_grace_ms(true), 0, "set explicitly, it holds on PostgreSQL too");
        std::fs::write(dir.path().join("config.toml"), "lisen = \"0.0.0.0:9000\"\n").unwrap();
        assert!(Config::load(dir.path()).is_err());
    }

    #[test]
    fn wechat_section_with_defaults_and_a_secret_that_does_not_print() {
        let dir = tempfile::tempdir().unwrap();
        let text = "[wechat]\nappid = \"wx1\"\nsecret = \"s3cr3t-value\"\nbase_url = \"https://p.example\"\n\
            [wechat.templates.approved]\nid = \"T1\"\nkeys = { thing1 = \"school\", phrase2 = \"status\" }\n";
        std::fs::write(dir.path().join("config.toml"), text).unwrap();
        let c = Config::load(dir.path()).unwrap();
        let w = c.wechat.as_ref().unwrap();
        assert_eq!((w.api_base.as_str(), w.max_attempts), ("https://api.weixin.qq.com", 8));
        assert_eq!(w.templates.approved.as_ref().unwrap().keys["phrase2"], "status");
        assert!(w.pay.is_none() && w.templates.rejected.is_none());
        assert!(!format!("{c:?}").contains("s3cr3t"), "the secret must not print");
        std::fs::write(dir.path().join("config.toml"), "[wechat]\nappid = \"wx1\"\nbase_url = \"x\"\nsecrt = \"x\"\n")
            .unwrap();
        assert!(Config::load(dir.path()).is_err(), "a typo in [wechat] is refused");
    }
}
