//! The HTTP client: the official account's API ([`MpClient`]) and WeChat Pay's ([`PayClient`]). Base URLs are
//! configuration, so that tests and the local demo point them at the fakes; every answer is read within a size
//! limit and a timeout, and WeChat Pay's answers are verified before they are believed.

use std::time::Duration;

use serde::de::DeserializeOwned;

use crate::oauth::OauthToken;
use crate::pay::{JsapiOrder, Notification, PayErrorBody, Prepay, Refund, RefundRequest, Transaction};
use crate::sign::{ApiV3Key, MerchantKey, PayVerifier, authorization};
use crate::template::{SendResult, TemplateMessage};
use crate::token::{AccessToken, StableTokenRequest};
use crate::{ApiError, WechatError};

pub const API_BASE: &str = "https://api.weixin.qq.com";
pub const OPEN_BASE: &str = "https://open.weixin.qq.com";
pub const PAY_BASE: &str = "https://api.mch.weixin.qq.com";

/// Larger answers are refused: none of these APIs answers more than a few kilobytes.
const MAX_ANSWER: usize = 1024 * 1024;

fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .connect_timeout(Duration::from_secs(5))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap_or_default()
}

async fn read_limited(mut r: reqwest::Response) -> Result<Vec<u8>, WechatError> {
    let mut body = Vec::new();
    while let Some(chunk) = r.chunk().await? {
        if body.len() + chunk.len() > MAX_ANSWER {
            return Err(WechatError::Answer("the answer is larger than 1 MiB".into()));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// Parses an official-account answer: `{errcode≠0}` is an error, anything else is `T`.
fn parse_mp<T: DeserializeOwned>(body: &[u8]) -> Result<T, WechatError> {
    let v: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| WechatError::Answer(format!("not JSON: {e}")))?;
    if v.get("errcode").and_then(serde_json::Value::as_i64).is_some_and(|c| c != 0) {
        let e: ApiError = serde_json::from_value(v).map_err(|e| WechatError::Answer(e.to_string()))?;
        return Err(e.into());
    }
    serde_json::from_value(v).map_err(|e| WechatError::Answer(format!("unexpected shape: {e}")))
}

/// The official account's API: web authorisation, the server token, template messages.
#[derive(Clone)]
pub struct MpClient {
    http: reqwest::Client,
    pub api_base: String,
    pub appid: String,
    secret: String,
}

impl std::fmt::Debug for MpClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "MpClient({}, {})", self.api_base, self.appid)
    }
}

impl MpClient {
    pub fn new(api_base: &str, appid: &str, secret: &str) -> MpClient {
        MpClient {
            http: http(),
            api_base: api_base.trim_end_matches('/').to_string(),
            appid: appid.into(),
            secret: secret.into(),
        }
    }

    /// Exchanges a web-authorisation code for the openid (`/sns/oauth2/access_token`).
    pub async fn oauth_exchange(&self, code: &str) -> Result<OauthToken, WechatError> {
        let r = self
            .http
            .get(format!("{}/sns/oauth2/access_token", self.api_base))
            .query(&[
                ("appid", self.appid.as_str()),
                ("secret", self.secret.as_str()),
                ("code", code),
                ("grant_type", "authorization_code"),
            ])
            .send()
            .await?;
        parse_mp(&read_limited(r).await?)
    }

    /// The stable server token; `force` only after a 40001/42001, within the platform's limits.
    pub async fn stable_token(&self, force: bool) -> Result<AccessToken, WechatError> {
        let body = StableTokenRequest {
            grant_type: "client_credential".into(),
            appid: self.appid.clone(),
            secret: self.secret.clone(),
            force_refresh: force,
        };
        let r = self.http.post(format!("{}/cgi-bin/stable_token", self.api_base)).json(&body).send().await?;
        parse_mp(&read_limited(r).await?)
    }

    /// Sends a template message; the values are checked against the 2023 rules first.
    pub async fn send_template(&self, access_token: &str, msg: &TemplateMessage) -> Result<SendResult, WechatError> {
        msg.validate()?;
        let r = self
            .http
            .post(format!("{}/cgi-bin/message/template/send", self.api_base))
            .query(&[("access_token", access_token)])
            .json(msg)
            .send()
            .await?;
        parse_mp(&read_limited(r).await?)
    }
}

/// WeChat Pay API v3 as a direct merchant.
#[derive(Clone)]
pub struct PayClient {
    http: reqwest::Client,
    pub pay_base: String,
    pub mchid: String,
    pub appid: String,
    pub key: MerchantKey,
    pub verifier: PayVerifier,
    pub apiv3: ApiV3Key,
}

impl std::fmt::Debug for PayClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PayClient({}, mchid {})", self.pay_base, self.mchid)
    }
}

impl PayClient {
    pub fn new(
        pay_base: &str,
        mchid: &str,
        appid: &str,
        key: MerchantKey,
        verifier: PayVerifier,
        apiv3: ApiV3Key,
    ) -> PayClient {
        PayClient {
            http: http(),
            pay_base: pay_base.trim_end_matches('/').to_string(),
            mchid: mchid.into(),
            appid: appid.into(),
            key,
            verifier,
            apiv3,
        }
    }

    /// Sends a signed request; verifies the answer's signature; returns the status and the verified body.
    async fn call(&self, method: &str, path_and_query: &str, body: Option<String>) -> Result<Vec<u8>, WechatError> {
        let text = body.unwrap_or_default();
        let auth = authorization(&self.mchid, &self.key, method, path_and_query, &text);
        let url = format!("{}{path_and_query}", self.pay_base);
        let req = match method {
            "GET" => self.http.get(url),
            _ => self.http.post(url).header("content-type", "application/json").body(text),
        };
        let r = req.header("authorization", auth).header("accept", "application/json").send().await?;
        let status = r.status().as_u16();
        let header =
            |name: &str| r.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_string).unwrap_or_default();
        let (serial, signature, timestamp, nonce) = (
            header("wechatpay-serial"),
            header("wechatpay-signature"),
            header("wechatpay-timestamp"),
            header("wechatpay-nonce"),
        );
        let body = read_limited(r).await?;
        if !(200..300).contains(&status) {
            let e: PayErrorBody = serde_json::from_slice(&body)
                .unwrap_or(PayErrorBody { code: "UNKNOWN".into(), message: String::from_utf8_lossy(&body).into() });
            return Err(WechatError::Pay { status, code: e.code, message: e.message });
        }
        // A 2xx that is not WeChat Pay's (a proxy, a forged answer) has no valid signature and is not believed.
        self.verifier.verify_headers(&serial, &signature, &timestamp, &nonce, &body, crate::now_s())?;
        Ok(body)
    }

    fn parse<T: DeserializeOwned>(body: &[u8]) -> Result<T, WechatError> {
        serde_json::from_slice(body).map_err(|e| WechatError::Answer(format!("unexpected shape: {e}")))
    }

    /// Creates a JSAPI order; the prepay id is valid for two hours.
    pub async fn create_jsapi(&self, order: &JsapiOrder) -> Result<Prepay, WechatError> {
        order.validate().map_err(WechatError::Answer)?;
        let body = serde_json::to_string(order).map_err(|e| WechatError::Answer(e.to_string()))?;
        Self::parse(&self.call("POST", crate::pay::JSAPI_PATH, Some(body)).await?)
    }

    /// The order's state by the merchant's number.
    pub async fn query(&self, out_trade_no: &str) -> Result<Transaction, WechatError> {
        Self::parse(&self.call("GET", &crate::pay::query_path(out_trade_no, &self.mchid), None).await?)
    }

    pub async fn refund(&self, req: &RefundRequest) -> Result<Refund, WechatError> {
        let body = serde_json::to_string(req).map_err(|e| WechatError::Answer(e.to_string()))?;
        Self::parse(&self.call("POST", crate::pay::REFUND_PATH, Some(body)).await?)
    }

    /// A notification as received: the four headers verified over the raw body (within the time window), then
    /// parsed. Decrypt its resource with [`Notification::decrypt`] and `self.apiv3`.
    pub fn verify_notification(
        &self,
        serial: &str,
        signature: &str,
        timestamp: &str,
        nonce: &str,
        body: &[u8],
    ) -> Result<Notification, WechatError> {
        self.verifier.verify_headers(serial, signature, timestamp, nonce, body, crate::now_s())?;
        serde_json::from_slice(body).map_err(|e| WechatError::Answer(format!("notification: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn official_account_errors_are_errors() {
        let e = parse_mp::<AccessToken>(br#"{"errcode":40013,"errmsg":"invalid appid rid: 1"}"#).unwrap_err();
        assert!(matches!(e, WechatError::Api(ApiError { errcode: 40013, .. })));
        let ok: AccessToken = parse_mp(br#"{"access_token":"T","expires_in":7200}"#).unwrap();
        assert_eq!(ok.expires_in, 7200);
        // errcode 0 is success (the template send's answer).
        let sent: SendResult = parse_mp(br#"{"errcode":0,"errmsg":"ok","msgid":200228332}"#).unwrap();
        assert_eq!(sent.msgid, Some(200228332));
        assert!(parse_mp::<AccessToken>(b"<html>").is_err());
    }
}
