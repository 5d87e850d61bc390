//! The student's channel inside the photo partner's WeChat official account (STANDARD.md P4, P7, P9):
//! - sign-in: opened in WeChat's browser, the student pages go through web authorisation (`snsapi_base`) with a
//!   single-use `state` tied to the pre-session cookie; the openid is kept in a sealed cookie, and the student's
//!   account is bound to it at the first sign-in — a second WeChat user is refused until an admin releases it;
//! - messages: the outbox's WeChat channel sends template messages with the shared server token;
//! - fees: WeChat Pay JSAPI orders, the signed notification, the order query that reconciles what a notification
//!   missed, and refunds.
//!
//! Outside WeChat (or with `[wechat]` unset) nothing here runs: the browser binding and offline payment stay.

use std::path::Path;

use axum::body::Bytes;
use axum::extract::{Path as UrlPath, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use gradphoto_core::Message;
use gradphoto_store::db::{BindOutcome, Confirm, OutboxItem, PayStatus, Payment, Student};
use gradphoto_store::{PaymentId, SchoolId, StudentId, now_ms};
use gradphoto_wechat::pay::{Amount, JsapiOrder, JsapiParams, Payer, RefundAmount, RefundRequest, Transaction};
use gradphoto_wechat::sign::{ApiV3Key, MerchantKey, PayVerifier};
use gradphoto_wechat::template::{TemplateMessage, Value, fit};
use gradphoto_wechat::{ApiError, MpClient, PayClient, WechatError, oauth, token};
use serde::Deserialize;

use crate::auth::{self, PRE_COOKIE, StaffSession, StudentSession};
use crate::config::{TemplateConfig, WechatConfig};
use crate::error::{AppError, AppResult, done};
use crate::state::AppState;
use crate::worker::Delivery;

/// The cookie that carries the WeChat user's openid, sealed, between the authorisation and the sign-in.
pub const WX_COOKIE: &str = "gp_wx";
/// How long the sealed openid is believed: a student who signs in a day later goes through authorisation again.
const WX_COOKIE_MS: i64 = 24 * 3_600_000;
/// How long an authorisation may take from the redirect to the callback.
const STATE_MS: i64 = 10 * 60_000;
/// A prepay id is valid for two hours; reuse it a little less, so that the page never gets a lapsed one.
const PREPAY_MS: i64 = 2 * 3_600_000 - 10 * 60_000;

/// The clients, built once at start from `[wechat]`.
pub struct WeChat {
    pub config: WechatConfig,
    pub mp: MpClient,
    pub pay: Option<PayClient>,
}

impl WeChat {
    pub fn open(config: &WechatConfig, data: &Path) -> Result<WeChat, String> {
        if config.appid.is_empty() || config.secret.0.is_empty() || config.base_url.is_empty() {
            return Err("[wechat] needs appid, secret (or GRADPHOTO_WECHAT_SECRET) and base_url".into());
        }
        let mp = MpClient::new(&config.api_base, &config.appid, &config.secret.0);
        let pay = match &config.pay {
            None => None,
            Some(p) => {
                let read = |f: &Path| {
                    let path = if f.is_absolute() { f.to_path_buf() } else { data.join(f) };
                    std::fs::read_to_string(&path).map_err(|e| format!("[wechat.pay] {}: {e}", path.display()))
                };
                let key = MerchantKey::from_pem(&read(&p.merchant_key_file)?, &p.merchant_serial)
                    .map_err(|e| format!("[wechat.pay] merchant_key_file: {e}"))?;
                let mut verifier = PayVerifier::new();
                verifier
                    .add_pem(&p.public_key_id, &read(&p.public_key_file)?)
                    .map_err(|e| format!("[wechat.pay] public_key_file: {e}"))?;
                let apiv3 = ApiV3Key::new(&p.apiv3_key.0).map_err(|e| format!("[wechat.pay] apiv3_key: {e}"))?;
                Some(PayClient::new(&p.pay_base, &p.mchid, &config.appid, key, verifier, apiv3))
            }
        };
        Ok(WeChat { config: config.clone(), mp, pay })
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.config.base_url.trim_end_matches('/'))
    }
}

/// WeChat's in-app browser says so in its user agent.
pub fn in_wechat(headers: &HeaderMap) -> bool {
    headers.get(header::USER_AGENT).and_then(|v| v.to_str().ok()).is_some_and(|ua| ua.contains("MicroMessenger"))
}

/// Whether this request comes through WeChat with WeChat configured: the student path then binds to an openid.
pub fn active(state: &AppState, headers: &HeaderMap) -> bool {
    state.wechat.is_some() && in_wechat(headers)
}

pub fn openid_hash(state: &AppState, openid: &str) -> Vec<u8> {
    state.vault.keyed(b"wechat-openid", openid.as_bytes())
}

pub const OPENID_CONTEXT: &str = "wechat-openid";
const COOKIE_CONTEXT: &str = "wechat-openid-cookie";

fn seal_cookie(state: &AppState, openid: &str) -> String {
    let sealed = state.vault.seal(COOKIE_CONTEXT, &format!("{}:{openid}", now_ms() + WX_COOKIE_MS));
    URL_SAFE_NO_PAD.encode(sealed)
}

/// The openid this browser was authorised as, if the sealed cookie is there, intact and not expired.
pub fn cookie_openid(state: &AppState, headers: &HeaderMap) -> Option<String> {
    let raw = URL_SAFE_NO_PAD.decode(auth::cookie(headers, WX_COOKIE)?).ok()?;
    let plain = state.vault.open(COOKIE_CONTEXT, &raw).ok()?;
    let (expires, openid) = plain.split_once(':')?;
    (expires.parse::<i64>().ok()? > now_ms() && !openid.is_empty()).then(|| openid.to_string())
}

/// Sends the browser to WeChat's authorize page with a fresh single-use state tied to its pre-session cookie.
pub async fn authorise(
    state: &AppState,
    headers: &HeaderMap,
    school_code: Option<&str>,
    attempt: i64,
) -> AppResult<Response> {
    let Some(wx) = &state.wechat else { return Err(AppError::NotFound) };
    let pre = auth::cookie(headers, PRE_COOKIE).unwrap_or_else(auth::random_token);
    let st = gradphoto_wechat::random_alnum(32);
    state
        .db
        .create_oauth_state(&auth::token_hash(&st), &auth::token_hash(&pre), school_code, attempt, now_ms() + STATE_MS)
        .await?;
    let url =
        oauth::authorize_url(&wx.config.open_base, &wx.config.appid, &wx.url("/wechat/oauth"), oauth::SCOPE_BASE, &st);
    let cookie = auth::set_cookie(PRE_COOKIE, &pre, 3600, state.config.cookie_secure);
    Ok(([(header::SET_COOKIE, cookie)], Redirect::to(&url)).into_response())
}

#[derive(Deserialize, schemars::JsonSchema)]
pub struct CallbackQuery {
    code: Option<String>,
    state: Option<String>,
}

fn expired_link() -> AppError {
    AppError::BadRequest(
        "wechat.state",
        Message::new(
            "登录链接已失效，请从公众号菜单重新进入",
            "this sign-in link has expired; open the service again from the official account's menu",
        ),
    )
}

/// The authorisation's return: `?code=…&state=…` (or no code when the user declined).
pub async fn oauth_callback(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<CallbackQuery>,
) -> AppResult<Response> {
    let Some(wx) = &state.wechat else { return Err(AppError::NotFound) };
    let (Some(st), Some(pre)) = (q.state.as_deref(), auth::cookie(&headers, PRE_COOKIE)) else {
        return Err(expired_link());
    };
    // Single use, and only in the browser that started it: a state replayed or carried to another browser fails.
    let Some(started) = state.db.take_oauth_state(&auth::token_hash(st), &auth::token_hash(&pre)).await? else {
        return Err(expired_link());
    };
    let school = started.school_code.clone();
    let Some(code) = q.code.as_deref().filter(|c| !c.is_empty()) else {
        return Err(AppError::BadRequest(
            "wechat.declined",
            Message::new(
                "未获得微信授权，无法登录。请重新进入并允许授权。",
                "WeChat did not authorise the sign-in; open the service again and allow it",
            ),
        ));
    };
    let token = match wx.mp.oauth_exchange(code).await {
        Ok(t) => t,
        // A code used already or expired (a reload, a back button): one fresh authorisation, never a loop.
        Err(WechatError::Api(e)) if e.is_code_error() && started.attempt < 2 => {
            tracing::info!(errcode = e.errcode, "web authorisation code refused; authorising once more");
            return authorise(&state, &headers, school.as_deref(), started.attempt + 1).await;
        }
        Err(e) => {
            tracing::warn!(error = %e, "web authorisation failed");
            return Err(AppError::Upstream(
                "wechat.oauth",
                Message::new("微信授权失败，请稍后从公众号菜单重新进入", "WeChat sign-in failed; try again later"),
            ));
        }
    };
    if token.is_snapshotuser == Some(1) {
        return Err(AppError::BadRequest(
            "wechat.snapshot",
            Message::new(
                "请先关注公众号，再从菜单进入办理",
                "follow the official account first, then open the service from its menu",
            ),
        ));
    }
    let wx_cookie = auth::set_cookie(
        WX_COOKIE,
        &seal_cookie(&state, &token.openid),
        WX_COOKIE_MS / 1000,
        state.config.cookie_secure,
    );
    // A WeChat user already bound to a student is signed in at once: the binding is the identity (P4).
    if let Some(student) = state.db.student_by_openid(&openid_hash(&state, &token.openid)).await? {
        state.db.audit(&format!("student:{}", student.id), "login.wechat", Some(student.school_id), "").await?;
        let (session, _csrf) = auth::start_session(&state, "student", student.id.0).await?;
        let to = if student.password_changed { "/me" } else { "/me/password" };
        return Ok((
            axum::response::AppendHeaders([(header::SET_COOKIE, wx_cookie), (header::SET_COOKIE, session)]),
            Redirect::to(to),
        )
            .into_response());
    }
    let to = match &school {
        Some(code) => format!("/s/{code}/login"),
        None => "/".to_string(),
    };
    Ok(([(header::SET_COOKIE, wx_cookie)], Redirect::to(&to)).into_response())
}

/// After the password: binds the account to this WeChat user, or says why not.
pub async fn bind(state: &AppState, student: &Student, openid: &str) -> AppResult<Result<(), Message>> {
    let school = state.db.school(student.school_id).await?;
    let cipher = state.vault.seal(OPENID_CONTEXT, openid);
    let actor = format!("student:{}", student.id);
    match state.db.bind_wechat(student.id, &openid_hash(state, openid), &cipher).await? {
        BindOutcome::Bound => {
            state.db.audit(&actor, "binding.wechat", Some(school.id), "").await?;
            Ok(Ok(()))
        }
        BindOutcome::StudentBoundElsewhere => {
            state.db.audit(&actor, "login.other_wechat", Some(school.id), "").await?;
            Ok(Err(Message::new(
                format!(
                    "此账号已绑定另一个微信号。如更换了微信号，请联系{}的照片采集管理员在管理后台解除绑定。",
                    school.name
                ),
                format!(
                    "this account is bound to another WeChat user; ask the photo administrator of {} to release it",
                    school.name
                ),
            )))
        }
        BindOutcome::OpenidBoundElsewhere(_) => {
            state.db.audit(&actor, "login.wechat_taken", Some(school.id), "").await?;
            Ok(Err(Message::new(
                "此微信号已绑定其他学生的账号，一个微信号只能绑定一名学生。如有疑问请联系学校管理员。",
                "this WeChat user is bound to another student's account; one WeChat user binds one student",
            )))
        }
    }
}

// ---------------------------------------------------------------------------------------------------------------
// The server token, shared by every node through the database
// ---------------------------------------------------------------------------------------------------------------

/// The stored token while it has more than a minute left; else a normal-mode `stable_token` (which returns the
/// same token to every node asking).
pub async fn server_token(state: &AppState, wx: &WeChat) -> Result<String, WechatError> {
    let now = now_ms();
    if let Ok(Some(t)) = state.db.wechat_token(&wx.config.appid).await
        && t.expires_at - token::RENEW_MARGIN_MS > now
    {
        return Ok(t.access_token);
    }
    let t = wx.mp.stable_token(false).await?;
    let _ = state.db.save_wechat_token(&wx.config.appid, &t.access_token, now + t.expires_in * 1000).await;
    Ok(t.access_token)
}

/// After WeChat refused `failed` (40001/42001): a force refresh if this node wins the claim and the platform's
/// limits allow (20 a day, 30 s apart); else the token another node stored meanwhile.
pub async fn refreshed_token(state: &AppState, wx: &WeChat, failed: &str) -> Result<String, WechatError> {
    let now = now_ms();
    let appid = &wx.config.appid;
    let claimed = state
        .db
        .claim_force_refresh(appid, failed, now, token::beijing_day(now), token::FORCE_PER_DAY, token::FORCE_MIN_GAP_MS)
        .await
        .unwrap_or(false);
    if claimed {
        let t = wx.mp.stable_token(true).await?;
        let _ = state.db.save_wechat_token(appid, &t.access_token, now + t.expires_in * 1000).await;
        return Ok(t.access_token);
    }
    match state.db.wechat_token(appid).await {
        Ok(Some(t)) if t.access_token != failed => Ok(t.access_token),
        _ => Err(WechatError::Api(ApiError::new(45011, "force refresh not allowed now; retry later"))),
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Template messages: the outbox's WeChat channel
// ---------------------------------------------------------------------------------------------------------------

fn template_for<'a>(wx: &'a WeChat, kind: &str) -> Option<&'a TemplateConfig> {
    let t = &wx.config.templates;
    match kind {
        "submitted" => t.submitted.as_ref(),
        "approved" => t.approved.as_ref(),
        "rejected" => t.rejected.as_ref(),
        "exported" => t.exported.as_ref(),
        _ => None,
    }
}

fn status_words(kind: &str) -> &'static str {
    match kind {
        "submitted" => "待审核",
        "approved" => "已通过",
        "rejected" => "未通过",
        "exported" => "已上报",
        _ => "已更新",
    }
}

/// The rule ids of a rejection, in words (the reviewer's reasons as the student reads them).
pub fn reasons_in_words(payload: &serde_json::Value) -> String {
    let words: Vec<&str> = payload["reasons"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|r| r.as_str())
                .map(|id| gradphoto_core::Rule::from_id(id).map_or("其他", |r| r.title().0))
                .collect()
        })
        .unwrap_or_default();
    if words.is_empty() { "无".to_string() } else { words.join("、") }
}

/// Builds the template message for an outbox row, or None when the event has no template configured.
pub async fn message_for(
    state: &AppState,
    wx: &WeChat,
    item: &OutboxItem,
    openid: &str,
) -> Result<Option<TemplateMessage>, String> {
    let Some(t) = template_for(wx, &item.kind) else { return Ok(None) };
    let payload: serde_json::Value = serde_json::from_str(&item.payload).unwrap_or_default();
    let student = item.student_id.ok_or("a WeChat message without a student")?;
    let student = state.db.student(student).await.map_err(|e| e.to_string())?;
    let school = state.db.school(student.school_id).await.map_err(|e| e.to_string())?;
    let at = payload["at"].as_i64().unwrap_or_else(now_ms);
    let mut data = std::collections::BTreeMap::new();
    for (key, field) in &t.keys {
        let value = match field.as_str() {
            "school" => school.name.clone(),
            "student_no" => student.student_no.clone(),
            "name" => student.name.clone(),
            "photo_type" => payload["photo_type"].as_str().unwrap_or("学历证书照片").to_string(),
            "status" => status_words(&item.kind).to_string(),
            "reasons" => reasons_in_words(&payload),
            "note" => payload["note"].as_str().filter(|n| !n.is_empty()).unwrap_or("无").to_string(),
            "time" => crate::views::datetime(Some(at)),
            other => return Err(format!("template field {other:?} is unknown")),
        };
        data.insert(key.clone(), Value { value: fit(key, &value) });
    }
    Ok(Some(TemplateMessage {
        touser: openid.to_string(),
        template_id: t.id.clone(),
        url: Some(wx.url("/me")),
        data,
        // The outbox id: a retry after a lost answer is the same message to WeChat, not a second one.
        client_msg_id: Some(format!("gp-outbox-{}", item.id)),
    }))
}

/// Delivers one WeChat outbox row.
pub async fn deliver(state: &AppState, item: &OutboxItem) -> Delivery {
    let Some(wx) = &state.wechat else { return Delivery::Skipped };
    let Some(student) = item.student_id else { return Delivery::Dead("a WeChat message without a student".into()) };
    let cipher = match state.db.wechat_openid_cipher(student).await {
        Ok(Some(c)) => c,
        // Released since the message was queued: the in-site copy is all there is.
        Ok(None) => return Delivery::Skipped,
        Err(e) => return Delivery::Retry(e.to_string()),
    };
    let Ok(openid) = state.vault.open(OPENID_CONTEXT, &cipher) else {
        return Delivery::Dead("the stored openid does not open with this key".into());
    };
    let msg = match message_for(state, wx, item, &openid).await {
        Ok(Some(m)) => m,
        Ok(None) => return Delivery::Skipped,
        Err(e) => return Delivery::Dead(e),
    };
    let mut token = match server_token(state, wx).await {
        Ok(t) => t,
        Err(e) => return Delivery::Retry(format!("server token: {e}")),
    };
    for round in 0..2 {
        match wx.mp.send_template(&token, &msg).await {
            Ok(_) => return Delivery::Done,
            Err(WechatError::Api(e)) if e.is_token_error() && round == 0 => {
                match refreshed_token(state, wx, &token).await {
                    Ok(t) => token = t,
                    Err(e2) => return Delivery::Retry(format!("{e}; refresh: {e2}")),
                }
            }
            Err(WechatError::Api(e)) if e.is_rate_limit() || e.is_token_error() => {
                return Delivery::Retry(e.to_string());
            }
            // 43004 (not following), 40003 (invalid openid), 40037 (template), 47003 (argument): retrying cannot help.
            Err(WechatError::Api(e)) => return Delivery::Dead(e.to_string()),
            Err(WechatError::Template { key, why }) => return Delivery::Dead(format!("template field {key}: {why}")),
            Err(e) => return Delivery::Retry(e.to_string()),
        }
    }
    Delivery::Retry("the server token was refused twice".into())
}

// ---------------------------------------------------------------------------------------------------------------
// WeChat Pay
// ---------------------------------------------------------------------------------------------------------------

fn pay_client(state: &AppState) -> AppResult<(&WeChat, &PayClient)> {
    let wx = state.wechat.as_deref().ok_or(AppError::NotFound)?;
    let pay = wx.pay.as_ref().ok_or(AppError::NotFound)?;
    Ok((wx, pay))
}

fn pay_failed(e: &WechatError) -> AppError {
    tracing::warn!(error = %e, "WeChat Pay call failed");
    AppError::Upstream(
        "wechat.pay",
        Message::new("微信支付暂时不可用，请稍后再试", "WeChat Pay is not available now; try again later"),
    )
}

/// `POST /me/pay/wechat`: the JSAPI parameters for the page's `getBrandWCPayRequest`, from an order this student
/// already has (a second tap, a reload) or a new one. The order row is written before WeChat Pay hears of it, so
/// a crash in between leaves an order that reconciliation can ask about.
pub async fn pay_start(State(state): State<AppState>, headers: HeaderMap, s: StudentSession) -> AppResult<Response> {
    let (wx, pay) = pay_client(&state)?;
    let school = state.db.school(s.student.school_id).await?;
    if school.fee_cents <= 0 || s.student.paid {
        return Err(AppError::Conflict("pay.nothing_due", Message::new("无需缴费", "nothing to pay")));
    }
    let openid = match (cookie_openid(&state, &headers), state.db.wechat_openid_cipher(s.student.id).await?) {
        (Some(o), Some(c)) if state.vault.open(OPENID_CONTEXT, &c).is_ok_and(|b| b == o) => o,
        _ => {
            return Err(AppError::BadRequest(
                "pay.wechat_only",
                Message::new("请在已绑定的微信中打开本页面支付", "open this page in the bound WeChat to pay"),
            ));
        }
    };
    let now = now_ms();
    let prepay = match state.db.open_order(s.student.id, school.fee_cents, now).await? {
        Some(Payment { prepay_id: Some(p), .. }) => p,
        _ => {
            let no = format!("GP{}{}", s.student.id.0, gradphoto_wechat::random_alnum(12));
            state.db.create_order(s.student.id, school.fee_cents, "wechat", &no).await?;
            let order = JsapiOrder {
                appid: wx.config.appid.clone(),
                mchid: pay.mchid.clone(),
                description: fit("thing", &format!("{} 学历照片采集费", school.name)),
                out_trade_no: no.clone(),
                time_expire: None,
                attach: None,
                notify_url: wx.url("/wechat/pay/notify"),
                amount: Amount { total: school.fee_cents, currency: "CNY".into() },
                payer: Payer { openid },
            };
            let p = pay.create_jsapi(&order).await.map_err(|e| pay_failed(&e))?;
            state.db.set_prepay(&no, &p.prepay_id, now + PREPAY_MS).await?;
            state.db.audit(&format!("student:{}", s.student.id), "payment.order", Some(school.id), &no).await?;
            p.prepay_id
        }
    };
    let params = JsapiParams::new(&wx.config.appid, &prepay, &pay.key);
    Ok(axum::Json(crate::answers::WechatOrder { jsapi: params, amount_fen: school.fee_cents }).into_response())
}

/// Applies what WeChat Pay says of an order (from a notification or a query). Returns whether it became paid now.
async fn apply_transaction(
    state: &AppState,
    pay: &PayClient,
    t: &Transaction,
    source: &str,
) -> Result<Confirm, PayRefusal> {
    if t.appid != pay.appid || t.mchid != pay.mchid {
        return Err(PayRefusal::Foreign);
    }
    match t.trade_state.as_str() {
        "SUCCESS" => {
            let total = t.amount.as_ref().map_or(-1, |a| a.total);
            let txid = t.transaction_id.clone().unwrap_or_default();
            let outcome = state
                .db
                .confirm_payment(&t.out_trade_no, &txid, total, &crate::student::SUBMITTED)
                .await
                .map_err(|e| PayRefusal::Internal(e.to_string()))?;
            if let Confirm::Paid(student) = &outcome {
                let school = state.db.student(*student).await.ok().map(|s| s.school_id);
                let _ = state.db.audit(source, "payment.wechat", school, &t.out_trade_no).await;
                state.outbox_wake.notify_one();
            }
            if matches!(outcome, Confirm::WrongAmount) {
                tracing::error!(order = %t.out_trade_no, "WeChat Pay reported an amount that is not the order's");
                let school = match state.db.payment_by_trade_no(&t.out_trade_no).await {
                    Ok(Some(p)) => state.db.student(p.student_id).await.ok().map(|s| s.school_id),
                    _ => None,
                };
                let detail = format!("{} total {total}", t.out_trade_no);
                let _ = state.db.audit(source, "payment.wrong_amount", school, &detail).await;
            }
            Ok(outcome)
        }
        "CLOSED" | "REVOKED" | "PAYERROR" => {
            state.db.close_order(&t.out_trade_no).await.map_err(|e| PayRefusal::Internal(e.to_string()))?;
            Ok(Confirm::AlreadyDone)
        }
        _ => Ok(Confirm::AlreadyDone),
    }
}

enum PayRefusal {
    Foreign,
    Internal(String),
}

fn notify_answer(status: StatusCode, message: &str) -> Response {
    if status.is_success() {
        return StatusCode::NO_CONTENT.into_response();
    }
    (status, axum::Json(crate::answers::NotifyRefused { code: "FAIL", message: message.to_string() })).into_response()
}

/// `POST /wechat/pay/notify`: WeChat Pay's notification. Verified (signature over the raw body, timestamp window)
/// and decrypted before anything is believed; idempotent across duplicates and any order of arrival; a bad
/// signature, an unknown order or a wrong amount is refused and marks nothing paid.
pub async fn pay_notify(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    let Ok((_, pay)) = pay_client(&state) else { return StatusCode::NOT_FOUND.into_response() };
    let h = |n: &str| headers.get(n).and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
    let n = match pay.verify_notification(
        &h("wechatpay-serial"),
        &h("wechatpay-signature"),
        &h("wechatpay-timestamp"),
        &h("wechatpay-nonce"),
        &body,
    ) {
        Ok(n) => n,
        Err(e) => {
            tracing::warn!(error = %e, "payment notification refused");
            return notify_answer(StatusCode::UNAUTHORIZED, "签名验证失败");
        }
    };
    let plain = match n.decrypt(&pay.apiv3) {
        Ok(p) => p,
        Err(e) => {
            tracing::warn!(error = %e, "payment notification does not decrypt");
            return notify_answer(StatusCode::BAD_REQUEST, "解密失败");
        }
    };
    let (status, outcome, order) = match n.event_type.as_str() {
        "TRANSACTION.SUCCESS" => {
            let Ok(t) = serde_json::from_slice::<Transaction>(&plain) else {
                return notify_answer(StatusCode::BAD_REQUEST, "报文格式错误");
            };
            let order = t.out_trade_no.clone();
            match apply_transaction(&state, pay, &t, "wechatpay:notify").await {
                Ok(Confirm::Paid(_)) => (StatusCode::NO_CONTENT, "paid", order),
                Ok(Confirm::AlreadyDone) => (StatusCode::NO_CONTENT, "already", order),
                Ok(Confirm::UnknownOrder) => (StatusCode::BAD_REQUEST, "unknown_order", order),
                Ok(Confirm::WrongAmount) => (StatusCode::BAD_REQUEST, "wrong_amount", order),
                Err(PayRefusal::Foreign) => (StatusCode::BAD_REQUEST, "foreign", order),
                Err(PayRefusal::Internal(e)) => {
                    tracing::error!(detail = %e, "payment notification not applied");
                    // WeChat Pay retries: nothing is lost by refusing now.
                    return notify_answer(StatusCode::INTERNAL_SERVER_ERROR, "稍后重试");
                }
            }
        }
        t if t.starts_with("REFUND.") => {
            let Ok(r) = serde_json::from_slice::<gradphoto_wechat::pay::Refund>(&plain) else {
                return notify_answer(StatusCode::BAD_REQUEST, "报文格式错误");
            };
            let order = r.out_trade_no.clone().unwrap_or_default();
            if r.status == "SUCCESS" {
                match state.db.finish_refund(&r.out_refund_no).await {
                    Ok(_) => (StatusCode::NO_CONTENT, "refunded", order),
                    Err(e) => {
                        tracing::error!(detail = %e, "refund notification not applied");
                        return notify_answer(StatusCode::INTERNAL_SERVER_ERROR, "稍后重试");
                    }
                }
            } else {
                (StatusCode::NO_CONTENT, "refund_other", order)
            }
        }
        _ => (StatusCode::NO_CONTENT, "ignored", String::new()),
    };
    let _ = state
        .db
        .record_payment_event(&n.id, Some(&order).filter(|o| !o.is_empty()).map(|s| s.as_str()), &n.event_type, outcome)
        .await;
    notify_answer(status, outcome)
}

/// Asks WeChat Pay about one order and applies the answer.
async fn reconcile_order(state: &AppState, pay: &PayClient, p: &Payment, source: &str) -> Result<bool, String> {
    let Some(no) = &p.out_trade_no else { return Ok(false) };
    match pay.query(no).await {
        Ok(t) => match apply_transaction(state, pay, &t, source).await {
            Ok(Confirm::Paid(_)) => Ok(true),
            Ok(_) => Ok(false),
            Err(PayRefusal::Foreign) => Err("an order of another merchant".into()),
            Err(PayRefusal::Internal(e)) => Err(e),
        },
        Err(WechatError::Pay { status: 404, .. }) => {
            // Never reached WeChat Pay (a crash between our row and the call): nothing can pay it.
            if p.created_at < now_ms() - PREPAY_MS {
                state.db.close_order(no).await.map_err(|e| e.to_string())?;
            }
            Ok(false)
        }
        Err(e) => Err(e.to_string()),
    }
}

/// The student's own orders, asked about now (the page polls this after paying: the notification may lag).
pub async fn sync_student(state: &AppState, student: StudentId) -> bool {
    let Ok((_, pay)) = pay_client(state) else { return false };
    let Ok(payments) = state.db.payments_of_student(student).await else { return false };
    let mut paid = false;
    for p in payments.iter().filter(|p| p.status == PayStatus::Created) {
        paid |= reconcile_order(state, pay, p, "wechatpay:query").await.unwrap_or(false);
    }
    paid
}

#[derive(Debug, Default, serde::Serialize, schemars::JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct Reconciled {
    pub asked: usize,
    pub paid: usize,
    pub failed: usize,
}

/// Orders still unpaid, at least `min_age_ms` and at most seven days old, asked about: the job every few
/// minutes (orders a minute old, whose notification is overdue), and an admin's button for one school (all).
pub async fn reconcile(state: &AppState, school: Option<SchoolId>, min_age_ms: i64) -> Reconciled {
    let mut r = Reconciled::default();
    let Ok((_, pay)) = pay_client(state) else { return r };
    let now = now_ms();
    let Ok(orders) = state.db.unpaid_orders(now - min_age_ms + 1, now - 7 * 86_400_000, 500).await else { return r };
    for p in orders {
        if let Some(school) = school
            && state.db.student(p.student_id).await.map(|s| s.school_id).ok() != Some(school)
        {
            continue;
        }
        r.asked += 1;
        match reconcile_order(state, pay, &p, "wechatpay:reconcile").await {
            Ok(true) => r.paid += 1,
            Ok(false) => {}
            Err(e) => {
                r.failed += 1;
                tracing::warn!(payment = p.id.0, error = %e, "reconciliation: order query failed");
            }
        }
    }
    r
}

/// `POST /admin/schools/{school}/payments/reconcile`.
pub async fn reconcile_school(
    State(state): State<AppState>,
    s: StaffSession,
    UrlPath(school): UrlPath<i64>,
) -> AppResult<Response> {
    let school = SchoolId(school);
    s.require_admin(school)?;
    pay_client(&state)?;
    let r = reconcile(&state, Some(school), 0).await;
    state
        .db
        .audit(&s.actor(), "payment.reconcile", Some(school), &format!("asked {} paid {}", r.asked, r.paid))
        .await?;
    Ok(done(&format!("/admin/schools/{school}"), crate::answers::Reconciled { ok: true, reconciled: r }))
}

/// `POST /admin/schools/{school}/payments/{payment}/refund`: the whole fee back to the payer. The student's fee
/// counts as unpaid once WeChat Pay confirms the refund.
pub async fn refund(
    State(state): State<AppState>,
    s: StaffSession,
    UrlPath((school, payment)): UrlPath<(i64, i64)>,
) -> AppResult<Response> {
    let school = SchoolId(school);
    s.require_admin(school)?;
    let (wx, pay) = pay_client(&state)?;
    let p = state.db.payment(PaymentId(payment)).await?;
    if state.db.student(p.student_id).await?.school_id != school {
        return Err(AppError::NotFound);
    }
    let (Some(no), PayStatus::Paid) = (p.out_trade_no.clone(), p.status) else {
        return Err(AppError::Conflict(
            "refund.state",
            Message::new("只能退款已支付的微信订单", "only a paid WeChat order can be refunded"),
        ));
    };
    let refund_no = format!("RF{}{}", p.id.0, gradphoto_wechat::random_alnum(12));
    state.db.start_refund(p.id, &refund_no).await?;
    state.db.audit(&s.actor(), "payment.refund", Some(school), &format!("payment:{} {refund_no}", p.id)).await?;
    let req = RefundRequest {
        transaction_id: p.transaction_id.clone(),
        out_trade_no: Some(no),
        out_refund_no: refund_no.clone(),
        reason: Some("照片采集费退款".into()),
        notify_url: Some(wx.url("/wechat/pay/notify")),
        amount: RefundAmount { refund: p.amount_cents, total: p.amount_cents, currency: "CNY".into() },
    };
    let r = pay.refund(&req).await.map_err(|e| pay_failed(&e))?;
    if r.status == "SUCCESS" {
        state.db.finish_refund(&refund_no).await?;
    }
    Ok(done(&format!("/admin/schools/{school}"), crate::answers::Refunded { ok: true, refund_no, status: r.status }))
}

/// `POST /admin/schools/{school}/outbox/{id}/resend`: a dead letter goes out again.
pub async fn resend(
    State(state): State<AppState>,
    s: StaffSession,
    UrlPath((school, id)): UrlPath<(i64, i64)>,
) -> AppResult<Response> {
    let school = SchoolId(school);
    s.require_admin(school)?;
    state.db.outbox_resend(gradphoto_store::OutboxId(id), school).await?;
    state.db.audit(&s.actor(), "outbox.resend", Some(school), &format!("outbox:{id}")).await?;
    state.outbox_wake.notify_one();
    Ok(done(&format!("/admin/schools/{school}"), crate::answers::DONE))
}

/// Whether this student page should go through WeChat's authorisation first (WeChat, configured, and no openid
/// yet in this browser).
pub fn must_authorise(state: &AppState, headers: &HeaderMap) -> bool {
    active(state, headers) && cookie_openid(state, headers).is_none()
}

/// For JSON clients that reach a WeChat-only step without the openid.
pub fn authorisation_required() -> AppError {
    AppError::BadRequest(
        "wechat.authorise",
        Message::new(
            "请从公众号菜单进入以完成微信授权",
            "open the service from the official account's menu to sign in",
        ),
    )
}
