//! The official account's side: web authorisation, the stable server token, template messages. Errors are HTTP
//! 200 with `{errcode, errmsg}`, the message carrying the live servers' `, rid: …` suffix.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use gradphoto_wechat::oauth::{OauthToken, SCOPE_BASE, valid_state};
use gradphoto_wechat::template::{TemplateMessage, check};
use gradphoto_wechat::token::{AccessToken, FORCE_MIN_GAP_MS, FORCE_PER_DAY, StableTokenRequest, beijing_day};
use serde_json::{Value, json};

use crate::{Api, Code, SentMessage, Shared, Token, util};

const SCOPE_USERINFO: &str = "snsapi_userinfo";
const COOKIE: &str = "fakewx_uid";
/// WeChat renews a stable token this long before it expires, so `expires_in` stays at least 300.
const RENEW_EARLY_MS: i64 = 300_000;
/// `client_msg_id` de-duplicates for this long.
const DEDUP_MS: i64 = 600_000;

/// WeChat's texts for the codes the fake answers or tests inject.
fn errmsg(code: i64) -> &'static str {
    match code {
        -1 => "system error",
        40001 => "invalid credential, access_token is invalid or not latest",
        40002 => "invalid grant_type",
        40003 => "invalid openid",
        40013 => "invalid appid",
        40029 => "invalid code",
        40037 => "invalid template_id",
        40125 => "invalid appsecret",
        40163 => "code been used",
        40243 => "AppSecret已被冻结，请登录MP解冻后再次调用。",
        41001 => "access_token missing",
        41002 => "appid missing",
        41004 => "appsecret missing",
        41008 => "missing code",
        42001 => "access_token expired",
        43004 => "require subscribe",
        45009 => "reach max api daily quota limit",
        45011 => "api minute-quota reach limit mustslower retry next minute",
        45047 => "out of response count limit",
        47001 => "data format error",
        48001 => "api unauthorized",
        _ => "injected error",
    }
}

fn err(code: i64, msg: &str) -> Json<Value> {
    Json(json!({"errcode": code, "errmsg": format!("{msg}, rid: {}", util::rid())}))
}

fn err_code(code: i64) -> Json<Value> {
    err(code, errmsg(code))
}

/// The authorize page's error, as WeChat shows it: an HTML page, not a redirect.
fn authorize_error(code: Option<u32>, text: &str) -> Response {
    let head = code.map(|c| format!("{c} ")).unwrap_or_default();
    let body = format!(
        "<!doctype html><html lang=\"zh-CN\"><head><meta charset=\"utf-8\"><title>微信网页授权</title></head>\
         <body><h2>{}</h2><p>{}</p></body></html>",
        util::html_escape(&format!("{head}参数错误")),
        util::html_escape(&format!("{head}{text}"))
    );
    (StatusCode::BAD_REQUEST, [(header::CONTENT_TYPE, "text/html; charset=utf-8")], body).into_response()
}

/// The `MMWEBID/<digits>` token of WeChat's in-app browser.
fn mmwebid(headers: &HeaderMap) -> Option<String> {
    let ua = headers.get(header::USER_AGENT)?.to_str().ok()?;
    let rest = &ua[ua.find("MMWEBID/")? + "MMWEBID/".len()..];
    let id: String = rest.chars().take_while(char::is_ascii_digit).collect();
    (!id.is_empty()).then_some(id)
}

fn cookie_uid(headers: &HeaderMap) -> Option<String> {
    headers.get_all(header::COOKIE).iter().filter_map(|v| v.to_str().ok()).flat_map(|v| v.split(';')).find_map(|c| {
        let v = c.trim().strip_prefix(COOKIE)?.strip_prefix('=')?;
        (!v.is_empty() && v.len() <= 64 && v.bytes().all(|b| b.is_ascii_alphanumeric())).then(|| v.to_string())
    })
}

/// `GET /connect/oauth2/authorize`: 302 back to `redirect_uri` with `code` and `state` (only `state` when the
/// user refuses).
pub(crate) async fn authorize(State(s): State<Arc<Shared>>, headers: HeaderMap, RawQuery(q): RawQuery) -> Response {
    let p = util::params(q.as_deref());
    let get = |k: &str| p.get(k).map(String::as_str).unwrap_or("");
    let (appid, redirect, response_type, scope) =
        (get("appid"), get("redirect_uri"), get("response_type"), get("scope"));
    if appid.is_empty() {
        return authorize_error(Some(10012), "appid 不能为空");
    }
    if redirect.is_empty() {
        return authorize_error(Some(10011), "redirect_uri 不能为空");
    }
    if scope.is_empty() {
        return authorize_error(Some(10010), "scope 不能为空");
    }
    if appid != s.config.appid {
        return authorize_error(Some(10003), "redirect_uri 域名与后台配置不一致（appid 无效）");
    }
    if response_type != "code" {
        return authorize_error(None, "response_type 必须为 code");
    }
    if scope != SCOPE_BASE && scope != SCOPE_USERINFO {
        return authorize_error(Some(10005), "此公众号并没有这些 scope 的权限");
    }
    let state = get("state");
    if !state.is_empty() && !valid_state(state) {
        return authorize_error(None, "state 参数错误：只能是字母和数字，最长 128 字节");
    }
    let mut back = match url::Url::parse(redirect) {
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => u,
        _ => return authorize_error(Some(10003), "redirect_uri 参数错误"),
    };

    // Who is asking: WeChat knows its user; the fake reads the in-app browser's MMWEBID, or a cookie of its own.
    let mut set_cookie = None;
    let user = match mmwebid(&headers) {
        Some(id) => id,
        None => match cookie_uid(&headers) {
            Some(uid) => uid,
            None => {
                let uid = format!("u{}", gradphoto_wechat::random_alnum(20));
                set_cookie = Some(format!("{COOKIE}={uid}; Path=/; HttpOnly; SameSite=Lax; Max-Age=31536000"));
                uid
            }
        },
    };
    let openid = s.openid_of(&user);
    let extra = {
        let mut st = s.lock();
        st.known_openids.insert(openid.clone());
        if st.refused.contains(&openid) {
            format!("state={state}")
        } else {
            let code = gradphoto_wechat::random_alnum(32);
            let issued_ms = s.now_ms();
            st.codes.insert(code.clone(), Code { openid, scope: scope.to_string(), issued_ms, used: false });
            format!("code={code}&state={state}")
        }
    };
    let query = match back.query() {
        Some(q) if !q.is_empty() => format!("{q}&{extra}"),
        _ => extra,
    };
    back.set_query(Some(&query));
    let Ok(location) = HeaderValue::from_str(back.as_str()) else {
        return authorize_error(Some(10003), "redirect_uri 参数错误");
    };
    let mut r = (StatusCode::FOUND, [(header::LOCATION, location)]).into_response();
    if let Some(c) = set_cookie.and_then(|c| HeaderValue::from_str(&c).ok()) {
        r.headers_mut().insert(header::SET_COOKIE, c);
    }
    r
}

/// `GET /sns/oauth2/access_token`: a code, once and within its lifetime, for the openid.
pub(crate) async fn oauth_exchange(State(s): State<Arc<Shared>>, RawQuery(q): RawQuery) -> Json<Value> {
    let p = util::params(q.as_deref());
    let get = |k: &str| p.get(k).map(String::as_str).unwrap_or("");
    let now = s.now_ms();
    let lifetime_ms = i64::try_from(s.config.code_lifetime.as_millis()).unwrap_or(i64::MAX);
    let mut st = s.lock();
    st.exchange_calls += 1;
    if let Some(code) = take_failure(&mut st.fail, Api::OauthExchange) {
        return err_code(code);
    }
    if get("appid").is_empty() {
        return err_code(41002);
    }
    if get("appid") != s.config.appid {
        return err_code(40013);
    }
    if get("secret").is_empty() {
        return err_code(41004);
    }
    if get("secret") != s.config.secret {
        return err_code(40125);
    }
    if get("grant_type") != "authorization_code" {
        return err_code(40002);
    }
    if get("code").is_empty() {
        return err_code(41008);
    }
    let Some(code) = st.codes.get_mut(get("code")) else {
        return err_code(40029);
    };
    if now.saturating_sub(code.issued_ms) > lifetime_ms {
        return err_code(40029);
    }
    if code.used {
        return err_code(40163);
    }
    code.used = true;
    let (openid, scope) = (code.openid.clone(), code.scope.clone());
    let is_snapshotuser = st.snapshot.contains(&openid).then_some(1);
    let answer = OauthToken {
        access_token: gradphoto_wechat::random_alnum(96),
        expires_in: 7200,
        refresh_token: gradphoto_wechat::random_alnum(96),
        openid,
        scope,
        is_snapshotuser,
        unionid: None,
    };
    Json(serde_json::to_value(answer).unwrap_or_default())
}

pub(crate) fn take_failure(fail: &mut std::collections::HashMap<Api, (i64, u32)>, api: Api) -> Option<i64> {
    let (code, times) = fail.get_mut(&api)?;
    if *times == 0 {
        return None;
    }
    *times -= 1;
    Some(*code)
}

/// `POST /cgi-bin/stable_token`.
pub(crate) async fn stable_token(State(s): State<Arc<Shared>>, body: Bytes) -> Json<Value> {
    let v: Option<Value> = serde_json::from_slice(&body).ok().filter(Value::is_object);
    let force = v.as_ref().and_then(|v| v.get("force_refresh")).and_then(Value::as_bool).unwrap_or(false);
    let now = s.now_ms();
    let mut st = s.lock();
    if force {
        st.token_calls.forced += 1;
    } else {
        st.token_calls.normal += 1;
    }
    if let Some(code) = take_failure(&mut st.fail, Api::StableToken) {
        return err_code(code);
    }
    let Some(v) = v else { return err_code(47001) };
    let field = |k: &str| v.get(k).and_then(Value::as_str).unwrap_or("");
    if field("appid").is_empty() {
        return err_code(41002);
    }
    if field("secret").is_empty() {
        return err_code(41004);
    }
    let Ok(req) = serde_json::from_value::<StableTokenRequest>(v) else { return err_code(47001) };
    if req.grant_type != "client_credential" {
        return err_code(40002);
    }
    if req.appid != s.config.appid {
        return err_code(40013);
    }
    if req.secret != s.config.secret {
        return err_code(40125);
    }
    let lifetime_ms = s.config.token_lifetime_s.saturating_mul(1000).max(1000);
    let renew_early = if lifetime_ms > RENEW_EARLY_MS { RENEW_EARLY_MS } else { 0 };
    if req.force_refresh {
        let today = beijing_day(now);
        if st.forces.iter().filter(|&&t| beijing_day(t) == today).count()
            >= usize::try_from(FORCE_PER_DAY).unwrap_or(20)
        {
            return err_code(45009);
        }
        if st.forces.last().is_some_and(|&t| now - t < FORCE_MIN_GAP_MS) {
            return err_code(45011);
        }
        st.forces.push(now);
        // The stricter reading: a force refresh invalidates the old token at once.
        if let Some(old) = st.current_token.take()
            && let Some(t) = st.tokens.get_mut(&old)
        {
            t.revoked = true;
        }
    } else if let Some(cur) = st.current_token.as_ref().and_then(|c| st.tokens.get(c).map(|t| (c, t)))
        && !cur.1.revoked
        && !cur.1.expired
        && now < cur.1.expires_ms - renew_early
    {
        let answer = AccessToken { access_token: cur.0.clone(), expires_in: (cur.1.expires_ms - now) / 1000 };
        return Json(serde_json::to_value(answer).unwrap_or_default());
    }
    // A new token; an old one renewed early keeps working until it expires.
    let token = format!("{}_{}", 80 + st.tokens.len() % 20, gradphoto_wechat::random_alnum(133));
    st.tokens.insert(token.clone(), Token { expires_ms: now + lifetime_ms, revoked: false, expired: false });
    st.current_token = Some(token.clone());
    Json(serde_json::to_value(AccessToken { access_token: token, expires_in: lifetime_ms / 1000 }).unwrap_or_default())
}

/// `POST /cgi-bin/message/template/send?access_token=`.
pub(crate) async fn template_send(State(s): State<Arc<Shared>>, RawQuery(q): RawQuery, body: Bytes) -> Json<Value> {
    let p = util::params(q.as_deref());
    let now = s.now_ms();
    let mut st = s.lock();
    if let Some(code) = take_failure(&mut st.fail, Api::TemplateSend) {
        return err_code(code);
    }
    let Some(token) = p.get("access_token").filter(|t| !t.is_empty()) else { return err_code(41001) };
    match st.tokens.get(token) {
        None => return err_code(40001),
        Some(t) if t.revoked => return err_code(40001),
        Some(t) if t.expired || now >= t.expires_ms => return err_code(42001),
        Some(_) => {}
    }
    let Ok(msg) = serde_json::from_slice::<TemplateMessage>(&body) else { return err_code(47001) };
    if msg.touser.is_empty() || !st.known_openids.contains(&msg.touser) {
        return err_code(40003);
    }
    if msg.template_id.is_empty()
        || (!s.config.template_ids.is_empty() && !s.config.template_ids.contains(&msg.template_id))
    {
        return err_code(40037);
    }
    for (k, v) in &msg.data {
        if check(k, &v.value).is_err() {
            return err(47003, &format!("argument invalid! data.{k}.value invalid"));
        }
    }
    // WeChat's de-duplication: the same (openid, client_msg_id) within 10 minutes is the first send again.
    st.dedup.retain(|_, (_, at)| now - *at < DEDUP_MS);
    let dedup_key = msg.client_msg_id.clone().filter(|c| !c.is_empty()).map(|c| (msg.touser.clone(), c));
    if let Some(k) = &dedup_key
        && let Some((msgid, _)) = st.dedup.get(k)
    {
        return Json(json!({"errcode": 0, "errmsg": "ok", "msgid": msgid}));
    }
    st.next_msgid += 1;
    let msgid = st.next_msgid;
    if let Some(k) = dedup_key {
        st.dedup.insert(k, (msgid, now));
    }
    st.messages.push(SentMessage {
        touser: msg.touser,
        template_id: msg.template_id,
        data: msg.data.into_iter().map(|(k, v)| (k, v.value)).collect(),
        url: msg.url,
        client_msg_id: msg.client_msg_id,
        msgid,
    });
    Json(json!({"errcode": 0, "errmsg": "ok", "msgid": msgid}))
}
