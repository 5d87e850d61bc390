//! The server's access token, from `/cgi-bin/stable_token`: in normal mode WeChat returns the same token for as
//! long as it is valid (so every node asking gets the same one), and renews it 5 minutes before it expires. A
//! force refresh is allowed 20 times a day, 30 s apart, and is used only when WeChat says the token is invalid
//! (40001) or expired (42001).

use serde::{Deserialize, Serialize};

pub const FORCE_PER_DAY: i64 = 20;
pub const FORCE_MIN_GAP_MS: i64 = 30_000;
/// Renew this long before WeChat's own expiry, so that no call goes out with a token about to lapse.
pub const RENEW_MARGIN_MS: i64 = 60_000;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StableTokenRequest {
    pub grant_type: String,
    pub appid: String,
    pub secret: String,
    #[serde(default)]
    pub force_refresh: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct AccessToken {
    pub access_token: String,
    pub expires_in: i64,
}

/// The day (Beijing time, UTC+8) a time in ms falls on: the daily force-refresh count resets at Beijing midnight.
pub fn beijing_day(ms: i64) -> i64 {
    (ms + 8 * 3_600_000).div_euclid(86_400_000)
}
