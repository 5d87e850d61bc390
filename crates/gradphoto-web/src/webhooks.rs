//! Events out: a school's own systems follow its decisions and exports through one URL it registers
//! (docs/webhooks.md). Events are queued in the outbox in the transaction of the change they report (only for a
//! school with a webhook then), and the outbox worker delivers them as signed JSON POSTs:
//! - `submission.approved`, `submission.rejected` (rule-id reasons and the note) and `export.created` (the number
//!   of photos and the SHA-256 of the ZIP); no personal data beyond the student number and the submission id;
//! - `x-gradphoto-signature: v1=<hex HMAC-SHA256(secret, "{timestamp}.{body}")>`, the secret shown once at
//!   registration and sealed at rest by the vault (the service needs it back to sign, so it is not hashed);
//! - at least once: the delivery id (`x-gradphoto-delivery`, the body's `id`) is the outbox id, the same on every
//!   retry, and receivers de-duplicate on it. 2xx is done; 5xx, 408, 429, timeouts and connection errors are retried
//!   with the outbox's backoff; any other answer makes a dead letter an admin can resend.

use std::time::Duration;

use axum::extract::{Form, Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use gradphoto_core::Message;
use gradphoto_store::SchoolId;
use gradphoto_store::db::OutboxItem;
use gradphoto_store::now_ms;
use gradphoto_wechat::reqwest;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use serde_json::json;
use sha2::Sha256;

use crate::auth::{self, StaffSession};
use crate::config::WebhookConfig;
use crate::error::{AppError, AppResult, done, wants_json};
use crate::state::AppState;
use crate::worker::Delivery;

pub const APPROVED: &str = "submission.approved";
pub const REJECTED: &str = "submission.rejected";
pub const EXPORTED: &str = "export.created";

/// Longest URL accepted: far above any real endpoint, small enough for a page and a log line.
const MAX_URL: usize = 2000;

/// The vault context of a school's secret: a sealed secret moved to another school's row does not open.
pub fn secret_context(school: SchoolId) -> String {
    format!("webhook-secret:{school}")
}

/// The client deliveries go through: a short timeout, no redirects (a receiver that moved is a configuration to
/// fix, not a place to follow signed events to), and only the configured proxy, never one from the environment.
pub fn client(config: &WebhookConfig) -> Result<reqwest::Client, String> {
    let timeout = Duration::from_secs(config.timeout_secs.clamp(1, 60));
    let builder = reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout.min(Duration::from_secs(5)))
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("gradphoto-webhooks/", env!("CARGO_PKG_VERSION")));
    let builder = match config.proxy.as_deref().filter(|p| !p.trim().is_empty()) {
        Some(p) => builder.proxy(reqwest::Proxy::all(p.trim()).map_err(|e| format!("[webhooks] proxy: {e}"))?),
        None => builder.no_proxy(),
    };
    builder.build().map_err(|e| format!("[webhooks] HTTP client: {e}"))
}

/// The event as queued: everything delivered but the delivery id, which is the outbox row's id.
pub fn payload(school_code: &str, kind: &str, data: serde_json::Value) -> String {
    json!({ "type": kind, "created_at": now_ms(), "school": school_code, "data": data }).to_string()
}

#[derive(Deserialize)]
struct Queued {
    #[serde(rename = "type")]
    kind: String,
    created_at: i64,
    school: String,
    data: serde_json::Value,
}

/// What a receiver gets, in this field order.
#[derive(Serialize)]
struct Envelope {
    id: String,
    #[serde(rename = "type")]
    kind: String,
    created_at: i64,
    school: String,
    data: serde_json::Value,
}

/// The body of a row's delivery: the same bytes on every attempt.
fn body(item: &OutboxItem) -> Result<String, String> {
    let q: Queued = serde_json::from_str(&item.payload).map_err(|e| format!("the queued event is damaged: {e}"))?;
    let e =
        Envelope { id: item.id.to_string(), kind: q.kind, created_at: q.created_at, school: q.school, data: q.data };
    serde_json::to_string(&e).map_err(|e| e.to_string())
}

/// `v1=` and the hex HMAC-SHA256 of `{timestamp}.{body}` under the secret (its text, `whsec_` included).
pub fn signature(secret: &str, timestamp: i64, body: &str) -> String {
    // HMAC takes a key of any length: this cannot fail.
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key length");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body.as_bytes());
    format!("v1={:x}", mac.finalize().into_bytes())
}

/// What an answer's status means for the delivery.
fn outcome(status: StatusCode) -> Delivery {
    if status.is_success() {
        Delivery::Done
    } else if status.is_server_error()
        || status == StatusCode::REQUEST_TIMEOUT
        || status == StatusCode::TOO_MANY_REQUESTS
    {
        Delivery::Retry(format!("HTTP {}", status.as_u16()))
    } else {
        // Refused (4xx) or redirected (3xx): the same request would get the same answer.
        Delivery::Dead(format!("HTTP {}", status.as_u16()))
    }
}

/// A transport error in words, its causes included (reqwest's own text stops at "error sending request"); without
/// the URL, which the admin knows.
fn transport_error(e: reqwest::Error, timeout_secs: u64) -> String {
    if e.is_timeout() {
        return format!("no answer within {} s", timeout_secs.clamp(1, 60));
    }
    let e = e.without_url();
    let mut text = e.to_string();
    let mut cause = std::error::Error::source(&e);
    while let Some(c) = cause {
        text.push_str(": ");
        text.push_str(&c.to_string());
        cause = c.source();
    }
    text
}

/// Delivers one webhook row.
pub async fn deliver(state: &AppState, item: &OutboxItem) -> Delivery {
    let Some(school) = item.school_id else { return Delivery::Dead("a webhook event without a school".into()) };
    let hook = match state.db.webhook(school).await {
        Ok(Some(h)) => h,
        // Removed since the event was queued: nobody wants it any more.
        Ok(None) => return Delivery::Skipped,
        Err(e) => return Delivery::Retry(e.to_string()),
    };
    let Ok(secret) = state.vault.open(&secret_context(school), &hook.secret_cipher) else {
        return Delivery::Dead("the stored webhook secret does not open with this key".into());
    };
    let body = match body(item) {
        Ok(b) => b,
        Err(e) => return Delivery::Dead(e),
    };
    let timestamp = now_ms() / 1000;
    let sent = state
        .webhook_http
        .post(&hook.url)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .header("x-gradphoto-event", &item.kind)
        .header("x-gradphoto-delivery", item.id.to_string())
        .header("x-gradphoto-timestamp", timestamp.to_string())
        .header("x-gradphoto-signature", signature(&secret, timestamp, &body))
        .body(body)
        .send()
        .await;
    // The answer's body is not read: only its status counts.
    let result = match sent {
        Ok(r) => outcome(r.status()),
        Err(e) => Delivery::Retry(transport_error(e, state.config.webhooks.timeout_secs)),
    };
    // For the school page; the outbox row keeps its own error for the retry or the dead letter.
    let noted = match &result {
        Delivery::Done => state.db.webhook_delivered(school).await,
        Delivery::Retry(e) | Delivery::Dead(e) => state.db.webhook_failed(school, e).await,
        Delivery::Skipped => Ok(()),
    };
    if let Err(e) = noted {
        tracing::warn!(school = school.0, error = %e, "noting a webhook delivery failed");
    }
    result
}

// ---------------------------------------------------------------------------------------------------------------
// Registration
// ---------------------------------------------------------------------------------------------------------------

fn bad_url(zh: &str, en: &str) -> AppError {
    AppError::BadRequest("webhook.url", Message::new(zh, en))
}

/// The URL as it will be called, if acceptable: `https://`, or `http://` to this machine when the configuration
/// allows it; no user name or password in it (the signature authenticates, and the URL is shown on the page).
fn checked_url(text: &str, config: &WebhookConfig) -> AppResult<String> {
    let text = text.trim();
    if text.is_empty() || text.len() > MAX_URL {
        return Err(bad_url(
            "请填写 Webhook 地址（不超过 2000 个字符）",
            "give the webhook URL (2000 characters at most)",
        ));
    }
    let url = reqwest::Url::parse(text)
        .map_err(|_| bad_url("Webhook 地址格式不正确", "the webhook URL is not a valid URL"))?;
    let host = url.host_str().unwrap_or("");
    if host.is_empty() {
        return Err(bad_url("Webhook 地址缺少主机名", "the webhook URL has no host"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(bad_url(
            "Webhook 地址中不能包含用户名或密码，请用签名验证请求",
            "no user name or password in the webhook URL: verify the signature instead",
        ));
    }
    let loopback = matches!(host, "127.0.0.1" | "localhost" | "[::1]");
    match url.scheme() {
        "https" => Ok(url.to_string()),
        "http" if loopback && config.allow_loopback_http => Ok(url.to_string()),
        _ => Err(bad_url("Webhook 地址必须以 https:// 开头", "the webhook URL must start with https://")),
    }
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub struct RegisterForm {
    url: String,
}

/// `POST /admin/schools/{school}/webhook`: registers the school's webhook, or replaces it with a new secret.
/// The secret is in this answer only.
pub async fn register(
    State(state): State<AppState>,
    s: StaffSession,
    Path(id): Path<i64>,
    Form(f): Form<RegisterForm>,
) -> AppResult<Response> {
    let school = SchoolId(id);
    s.require_admin(school)?;
    state.db.school(school).await?;
    let url = checked_url(&f.url, &state.config.webhooks)?;
    let secret = format!("whsec_{}", auth::random_token());
    let sealed = state.vault.seal(&secret_context(school), &secret);
    let rotated = state.db.webhook(school).await?.is_some();
    state.db.set_webhook(school, &url, &sealed).await?;
    let host = reqwest::Url::parse(&url).ok().and_then(|u| u.host_str().map(str::to_string)).unwrap_or_default();
    let action = if rotated { "webhook.rotate" } else { "webhook.register" };
    state.db.audit(&s.actor(), action, Some(school), &format!("host:{host}")).await?;
    if wants_json() {
        let answer = crate::answers::WebhookRegistered { webhook: crate::answers::NewWebhook { url, secret } };
        return Ok(axum::Json(answer).into_response());
    }
    // A page, not a redirect: the secret cannot be shown again.
    let message = format!(
        "Webhook 已登记，签名密钥（只显示这一次，请立即保存）：{secret} · Webhook registered; the signing secret is \
         shown this once, keep it now: {secret}"
    );
    let shown = crate::admin::Shown { message: Some(message), ..Default::default() };
    crate::admin::render_school(&state, &s, school, shown).await
}

/// `POST /admin/schools/{school}/webhook/delete`: removes the school's webhook; events still queued for it are
/// dropped.
pub async fn delete(State(state): State<AppState>, s: StaffSession, Path(id): Path<i64>) -> AppResult<Response> {
    let school = SchoolId(id);
    s.require_admin(school)?;
    state.db.school(school).await?;
    let removed = state.db.delete_webhook(school).await?;
    if removed {
        state.db.audit(&s.actor(), "webhook.delete", Some(school), "").await?;
    }
    Ok(done(&format!("/admin/schools/{school}"), crate::answers::WebhookDeleted { ok: true, removed }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_statuses_and_signatures() {
        let strict = WebhookConfig::default();
        let local = WebhookConfig { allow_loopback_http: true, ..WebhookConfig::default() };
        assert_eq!(
            checked_url(" https://hooks.example.edu.cn/gp ", &strict).unwrap(),
            "https://hooks.example.edu.cn/gp"
        );
        assert!(checked_url("http://127.0.0.1:9000/hook", &strict).is_err(), "plain HTTP only when allowed");
        assert!(checked_url("http://127.0.0.1:9000/hook", &local).is_ok());
        assert!(checked_url("http://localhost/hook", &local).is_ok());
        assert!(checked_url("http://hooks.example.edu.cn/gp", &local).is_err(), "loopback only");
        assert!(checked_url("http://127.0.0.1.evil.example/", &local).is_err());
        assert!(checked_url("https://user:pw@hooks.example.edu.cn/", &strict).is_err());
        assert!(checked_url("ftp://hooks.example.edu.cn/", &strict).is_err());
        assert!(checked_url("not a url", &strict).is_err());
        assert_eq!(outcome(StatusCode::NO_CONTENT), Delivery::Done);
        assert!(matches!(outcome(StatusCode::BAD_GATEWAY), Delivery::Retry(_)));
        assert!(matches!(outcome(StatusCode::TOO_MANY_REQUESTS), Delivery::Retry(_)));
        assert!(matches!(outcome(StatusCode::REQUEST_TIMEOUT), Delivery::Retry(_)));
        assert!(matches!(outcome(StatusCode::GONE), Delivery::Dead(_)));
        assert!(matches!(outcome(StatusCode::FOUND), Delivery::Dead(_)));
        // Computed apart, with Python's hmac module (docs/webhooks.md shows the same check).
        assert_eq!(
            signature("whsec_test", 1_700_000_000, r#"{"id":"1"}"#),
            "v1=11bf4466ea17c3df3fd743af0b435368e16b7a05eb8eced85e8c4670767bdec5"
        );
    }
}
