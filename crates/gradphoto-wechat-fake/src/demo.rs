//! The local demo: the fake, with identities and keys kept in a folder so that the service's configuration
//! stays valid from one run to the next.

use std::net::SocketAddr;
use std::path::Path;

use gradphoto_wechat::MerchantKey;
use serde::{Deserialize, Serialize};

use crate::{FakeConfig, FakeWechat};

const MERCHANT_KEY: &str = "merchant_key.pem";
const PLATFORM_PUBLIC: &str = "platform_public.pem";
const FAKE_JSON: &str = "fake.json";

/// `fake.json`: everything but the merchant's private key, which the service reads from its own file.
#[derive(Serialize, Deserialize)]
struct Saved {
    appid: String,
    secret: String,
    mchid: String,
    merchant_serial: String,
    apiv3_key: String,
    platform_serial: String,
    platform_private_pem: String,
    #[serde(default)]
    template_ids: Vec<String>,
    #[serde(default = "default_lifetime")]
    token_lifetime_s: i64,
}

fn default_lifetime() -> i64 {
    7200
}

/// Private files (keys, the secret) readable by their owner only.
fn write_private(path: &Path, text: &str) -> Result<(), String> {
    use std::io::Write;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    f.write_all(text.as_bytes()).map_err(|e| format!("{}: {e}", path.display()))
}

/// The demo's identities and keys in `dir`: read back, or made and saved on first start.
pub fn load_or_create(dir: &Path) -> Result<FakeConfig, String> {
    let (key_path, json_path) = (dir.join(MERCHANT_KEY), dir.join(FAKE_JSON));
    let config = match (key_path.exists(), json_path.exists()) {
        (true, true) => {
            let read = |p: &Path| std::fs::read_to_string(p).map_err(|e| format!("{}: {e}", p.display()));
            let saved: Saved =
                serde_json::from_str(&read(&json_path)?).map_err(|e| format!("{}: {e}", json_path.display()))?;
            let merchant = MerchantKey::from_pem(&read(&key_path)?, &saved.merchant_serial)
                .map_err(|e| format!("{}: {e}", key_path.display()))?;
            let platform = MerchantKey::from_pem(&saved.platform_private_pem, &saved.platform_serial)
                .map_err(|e| format!("{}: {e}", json_path.display()))?;
            let mut config = FakeConfig::from_keys(&merchant, platform)?;
            config.appid = saved.appid;
            config.secret = saved.secret;
            config.mchid = saved.mchid;
            config.apiv3_key = saved.apiv3_key;
            config.template_ids = saved.template_ids;
            config.token_lifetime_s = saved.token_lifetime_s;
            config
        }
        (false, false) => {
            let (config, merchant) = FakeConfig::generate();
            let saved = Saved {
                appid: config.appid.clone(),
                secret: config.secret.clone(),
                mchid: config.mchid.clone(),
                merchant_serial: config.merchant_serial.clone(),
                apiv3_key: config.apiv3_key.clone(),
                platform_serial: config.platform_key.serial.clone(),
                platform_private_pem: config.platform_key.private_pem().map_err(|e| e.to_string())?,
                template_ids: Vec::new(),
                token_lifetime_s: config.token_lifetime_s,
            };
            write_private(&key_path, &merchant.private_pem().map_err(|e| e.to_string())?)?;
            let json = serde_json::to_string_pretty(&saved).map_err(|e| e.to_string())?;
            write_private(&json_path, &json)?;
            config
        }
        _ => {
            return Err(format!(
                "{} holds only one of {MERCHANT_KEY} and {FAKE_JSON}: remove both to start afresh",
                dir.display()
            ));
        }
    };
    // Always rewritten from the private key, so it cannot drift from it.
    let public = config.platform_key.public_pem().map_err(|e| e.to_string())?;
    let public_path = dir.join(PLATFORM_PUBLIC);
    std::fs::write(&public_path, public).map_err(|e| format!("{}: {e}", public_path.display()))?;
    Ok(config)
}

impl FakeConfig {
    /// A configuration around existing keys, with fresh identities (used by the demo's loader).
    fn from_keys(merchant: &MerchantKey, platform: MerchantKey) -> Result<FakeConfig, String> {
        Ok(FakeConfig {
            appid: String::new(),
            secret: String::new(),
            mchid: String::new(),
            merchant_serial: merchant.serial.clone(),
            merchant_public_pem: merchant.public_pem().map_err(|e| e.to_string())?,
            platform_key: platform,
            apiv3_key: String::new(),
            template_ids: Vec::new(),
            token_lifetime_s: 7200,
            notify_schedule: crate::wechat_notify_schedule(),
            code_lifetime: std::time::Duration::from_secs(300),
        })
    }
}

/// A TOML basic string.
fn toml_str(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => out.push_str(&format!("\\u{:04X}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The `[wechat]` block of the service's `config.toml` for this fake.
pub fn config_block(config: &FakeConfig, dir: &Path, fake_base: &str, service_base: &str) -> String {
    let file = |name: &str| toml_str(&dir.join(name).display().to_string());
    let q = |s: &str| toml_str(s);
    format!(
        "[wechat]\nappid = {}\nsecret = {}\nbase_url = {}\napi_base = {}\nopen_base = {}\ncashier_url = {}\n\n\
         [wechat.templates.submitted]\nid = \"DEMO-SUBMITTED\"\n\
         keys = {{ thing1 = \"school\", character_string2 = \"student_no\", phrase3 = \"status\", time4 = \"time\" }}\n\n\
         [wechat.templates.approved]\nid = \"DEMO-APPROVED\"\n\
         keys = {{ thing1 = \"school\", character_string2 = \"student_no\", phrase3 = \"status\", time4 = \"time\" }}\n\n\
         [wechat.templates.rejected]\nid = \"DEMO-REJECTED\"\n\
         keys = {{ thing1 = \"school\", phrase3 = \"status\", thing4 = \"reasons\", time5 = \"time\" }}\n\n\
         [wechat.templates.exported]\nid = \"DEMO-EXPORTED\"\n\
         keys = {{ thing1 = \"school\", phrase3 = \"status\", time4 = \"time\" }}\n\n\
         [wechat.pay]\nmchid = {}\nmerchant_serial = {}\nmerchant_key_file = {}\napiv3_key = {}\n\
         public_key_id = {}\npublic_key_file = {}\npay_base = {}\n",
        q(&config.appid),
        q(&config.secret),
        q(service_base),
        q(fake_base),
        q(fake_base),
        q(&format!("{fake_base}/__fake/cashier")),
        q(&config.mchid),
        q(&config.merchant_serial),
        file(MERCHANT_KEY),
        q(&config.apiv3_key),
        q(&config.platform_key.serial),
        file(PLATFORM_PUBLIC),
        q(fake_base),
    )
}

/// Runs the fake for a local demo: loads or creates its identities and keys in `dir` (`merchant_key.pem`, the
/// merchant's private key the service signs with; `platform_public.pem`; `fake.json`, the rest), prints the
/// `[wechat]` block for the service's `config.toml`, and serves on `listen` until Ctrl-C.
pub async fn run_demo(dir: &Path, listen: SocketAddr, service_base: &str) -> Result<(), String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let dir = dir.canonicalize().map_err(|e| format!("{}: {e}", dir.display()))?;
    // Key generation takes a moment of CPU: off the async threads.
    let load_dir = dir.clone();
    let config = tokio::task::spawn_blocking(move || load_or_create(&load_dir))
        .await
        .map_err(|e| format!("loading the keys: {e}"))??;
    let listener = tokio::net::TcpListener::bind(listen).await.map_err(|e| format!("listen on {listen}: {e}"))?;
    let fake = FakeWechat::try_start_on(config, listener).await?;
    // Listen for Ctrl-C before saying it stops us: `ctrl_c()` would only register when first awaited.
    #[cfg(unix)]
    let mut interrupt = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())
        .map_err(|e| format!("listening for Ctrl-C: {e}"))?;
    println!("# the fake WeChat servers are at {}; add this to the service's config.toml:\n", fake.base);
    println!("{}", config_block(fake.config(), &dir, &fake.base, service_base.trim_end_matches('/')));
    println!(
        "# Open the service's pages with a User-Agent containing MicroMessenger (WeChat's browser) and MMWEBID/<digits>\n\
         # (that WeChat user); without MMWEBID a cookie names you. In a desktop browser, set the agent in the\n\
         # developer tools' device toolbar. Payments go through {}/__fake/cashier; the messages a user received are\n\
         # at /__fake/chat?openid=…. Ctrl-C stops.",
        fake.base
    );
    #[cfg(unix)]
    interrupt.recv().await;
    #[cfg(not(unix))]
    tokio::signal::ctrl_c().await.map_err(|e| format!("waiting for Ctrl-C: {e}"))?;
    drop(fake);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn toml_strings_are_escaped() {
        assert_eq!(toml_str(r#"a"b\c"#), r#""a\"b\\c""#);
        assert_eq!(toml_str("x\ny"), r#""x\ny""#);
    }
}
