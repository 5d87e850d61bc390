//! gradphoto-wechat: the WeChat protocols a student's path runs on, as the public documentation states them
//! (sources in `../shared/notes/wechat.md`):
//! - [`oauth`]: the official account's web authorisation (`snsapi_base`): the authorize URL and the code → openid
//!   exchange;
//! - [`token`]: the stable server token (`/cgi-bin/stable_token`) and when a force refresh is allowed;
//! - [`template`]: template messages under the 2023 rules (typed keys, 20 characters, no first/remark);
//! - [`pay`] and [`sign`]: WeChat Pay API v3 for JSAPI — orders, the page's `paySign`, notifications (signature and
//!   AEAD_AES_256_GCM), query and refund;
//! - [`client`]: the HTTP client for all of the above, with base URLs that a test points at the fakes.
//!
//! The signing and encryption code here is the only copy: the fakes (`gradphoto-wechat-fake`) sign, verify,
//! encrypt and decrypt with it too, so a test cannot pass by two halves agreeing on a mistake only one of them
//! makes — each side checks what the other produced with the documented message layout.

pub mod client;
pub mod oauth;
pub mod pay;
pub mod sign;
pub mod template;
pub mod token;

pub use client::{MpClient, PayClient};
/// The HTTP client crate the clients are built on, for the service's own outgoing requests (webhooks): one
/// version of it in the service, with the same TLS roots.
pub use reqwest;
pub use sign::{MerchantKey, PayVerifier};

/// An error answer of the official-account API: `{"errcode": N, "errmsg": "…"}`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize, serde::Serialize, thiserror::Error)]
#[error("WeChat error {errcode}: {errmsg}")]
pub struct ApiError {
    pub errcode: i64,
    #[serde(default)]
    pub errmsg: String,
}

impl ApiError {
    pub fn new(errcode: i64, errmsg: &str) -> ApiError {
        ApiError { errcode, errmsg: errmsg.to_string() }
    }

    /// The server token was refused as invalid (40001) or expired (42001): the only reasons to force a refresh.
    pub fn is_token_error(&self) -> bool {
        matches!(self.errcode, 40001 | 42001)
    }

    /// A web-authorisation code that is invalid or expired (40029) or used already (40163).
    pub fn is_code_error(&self) -> bool {
        matches!(self.errcode, 40029 | 40163)
    }

    /// Frequency or quota limits (45009 daily quota, 45011 too frequent, 45047 too many messages to one user):
    /// worth retrying later, unlike a refused argument.
    pub fn is_rate_limit(&self) -> bool {
        matches!(self.errcode, 45009 | 45011 | 45047 | -1)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum WechatError {
    #[error(transparent)]
    Api(#[from] ApiError),
    /// WeChat Pay answered with an error status: `{code, message}`.
    #[error("WeChat Pay {status}: {code} {message}")]
    Pay { status: u16, code: String, message: String },
    #[error("network: {0}")]
    Http(String),
    #[error("unexpected answer: {0}")]
    Answer(String),
    #[error("signature: {0}")]
    Signature(String),
    #[error("decryption: {0}")]
    Decrypt(String),
    #[error("key: {0}")]
    Key(String),
    #[error("template field {key}: {why}")]
    Template { key: String, why: String },
}

impl From<reqwest::Error> for WechatError {
    fn from(e: reqwest::Error) -> Self {
        // Without the URL: the official-account calls carry the secret or the token in their query.
        WechatError::Http(e.without_url().to_string())
    }
}

/// Seconds since the Unix epoch, as WeChat's timestamps are.
pub fn now_s() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// A random string of `n` letters and digits (nonces, states, trade numbers).
pub fn random_alnum(n: usize) -> String {
    use rand::Rng;
    const CHARS: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::rng();
    (0..n).map(|_| CHARS[rng.random_range(0..CHARS.len())] as char).collect()
}
