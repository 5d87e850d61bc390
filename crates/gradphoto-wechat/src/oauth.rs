//! The official account's web authorisation (网页授权): a browser redirect to the authorize page, which sends the
//! user back with `code` and `state`; the code is exchanged once, within five minutes, for the openid.

use serde::{Deserialize, Serialize};

/// `snsapi_base`: silent, gives the openid only — all that binding a student needs.
pub const SCOPE_BASE: &str = "snsapi_base";

/// The authorize URL (`#wechat_redirect` is required whether the link is opened directly or reached by a 302).
/// `state` must be `[a-zA-Z0-9]`, at most 128 bytes.
pub fn authorize_url(open_base: &str, appid: &str, redirect_uri: &str, scope: &str, state: &str) -> String {
    let mut url = url::Url::parse(open_base)
        .unwrap_or_else(|_| url::Url::parse("https://open.weixin.qq.com").expect("literal URL"));
    url.set_path("/connect/oauth2/authorize");
    // WeChat reads the parameters in the documented order; build the query by hand to keep it.
    let redirect: String = url::form_urlencoded::byte_serialize(redirect_uri.as_bytes()).collect();
    url.set_query(Some(&format!(
        "appid={appid}&redirect_uri={redirect}&response_type=code&scope={scope}&state={state}"
    )));
    url.set_fragment(Some("wechat_redirect"));
    url.to_string()
}

/// Whether a `state` is one WeChat accepts.
pub fn valid_state(state: &str) -> bool {
    !state.is_empty() && state.len() <= 128 && state.bytes().all(|b| b.is_ascii_alphanumeric())
}

/// The code exchange's answer (`/sns/oauth2/access_token`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct OauthToken {
    pub access_token: String,
    pub expires_in: i64,
    #[serde(default)]
    pub refresh_token: String,
    pub openid: String,
    #[serde(default)]
    pub scope: String,
    /// Present and 1 only for a snapshot-mode virtual user (a page opened from a shared moment without
    /// following): no real identity, so it must not bind an account.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_snapshotuser: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unionid: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn authorize_url_has_the_documented_shape() {
        let u = authorize_url(
            "https://open.weixin.qq.com",
            "wx520c15f417810387",
            "https://p.example/cb?x=1",
            SCOPE_BASE,
            "Ab1",
        );
        assert_eq!(
            u,
            "https://open.weixin.qq.com/connect/oauth2/authorize?appid=wx520c15f417810387&redirect_uri=https%3A%2F%2Fp.example%2Fcb%3Fx%3D1&response_type=code&scope=snsapi_base&state=Ab1#wechat_redirect"
        );
        assert!(valid_state("Ab1") && !valid_state("a-b") && !valid_state("") && !valid_state(&"a".repeat(129)));
    }
}
