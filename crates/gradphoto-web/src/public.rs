//! Pages anyone may open: choosing a school, signing in and out, and the health check.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, Form, Path, Query, State};
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Redirect, Response};
use gradphoto_core::Message;
use gradphoto_core::roster::{self, IdKind};
use gradphoto_store::{RegionId, now_ms};
use serde::Deserialize;
use serde_json::json;

use crate::auth::{self, DEVICE_COOKIE, MaybeSession, PRE_COOKIE, Viewer};
use crate::error::{AppError, AppResult, wants_json};
use crate::state::AppState;
use crate::wechat;

#[derive(Deserialize, schemars::JsonSchema)]
pub struct HomeQuery {
    region: Option<i64>,
}

pub async fn home(
    State(state): State<AppState>,
    headers: HeaderMap,
    MaybeSession(s): MaybeSession,
    Query(q): Query<HomeQuery>,
) -> AppResult<Response> {
    if let Some(s) = &s {
        return Ok(Redirect::to(match &s.viewer {
            Viewer::Student(_) => "/me",
            Viewer::Staff(_) => "/review",
        })
        .into_response());
    }
    // Inside WeChat the official account's menu opens here: authorise first, so that a bound student is signed in
    // at once and a new one binds at sign-in.
    if wechat::must_authorise(&state, &headers) && !wants_json() {
        return wechat::authorise(&state, &headers, None, 1).await;
    }
    let regions = state.db.regions().await?;
    let schools = match q.region {
        Some(r) => state.db.schools(Some(RegionId(r))).await?,
        None => Vec::new(),
    };
    if wants_json() {
        return Ok(axum::Json(crate::answers::Home { regions, schools }).into_response());
    }
    Ok(state
        .views
        .render("home.html", json!({ "regions": regions, "schools": schools, "region": q.region }))?
        .into_response())
}

/// A login page: sets the pre-session CSRF cookie its form will carry back.
fn login_page(
    state: &AppState,
    headers: &HeaderMap,
    ctx: serde_json::Value,
    status: axum::http::StatusCode,
) -> AppResult<Response> {
    let token = auth::cookie(headers, PRE_COOKIE).unwrap_or_else(auth::random_token);
    let mut ctx = ctx;
    ctx["csrf"] = json!(token);
    let page = state.views.render("login.html", ctx)?;
    let secure = state.config.cookie_secure;
    let cookie = auth::set_cookie(PRE_COOKIE, &token, 3600, secure);
    // The device id is given before the sign-in, so that a sign-in cut after the binding's commit (the answer never
    // arrived) can be repeated from the same browser instead of finding the account bound to a cookie it never got.
    let device = auth::cookie(headers, DEVICE_COOKIE).unwrap_or_else(auth::random_token);
    let device = auth::set_cookie(DEVICE_COOKIE, &device, 400 * 86_400, secure);
    Ok((status, axum::response::AppendHeaders([(header::SET_COOKIE, cookie), (header::SET_COOKIE, device)]), page)
        .into_response())
}

pub async fn school_login_page(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(code): Path<String>,
) -> AppResult<Response> {
    let school = state.db.school_by_code(&code).await?;
    if wechat::must_authorise(&state, &headers) && !wants_json() {
        return wechat::authorise(&state, &headers, Some(&school.code), 1).await;
    }
    let action = format!("/s/{}/login", school.code);
    login_page(&state, &headers, json!({ "school": school, "action": action }), axum::http::StatusCode::OK)
}

pub async fn staff_login_page(State(state): State<AppState>, headers: HeaderMap) -> AppResult<Response> {
    login_page(&state, &headers, json!({ "action": "/staff/login" }), axum::http::StatusCode::OK)
}

#[derive(Deserialize, schemars::JsonSchema)]
pub struct LoginForm {
    username: String,
    password: String,
}

fn bad_login() -> Message {
    Message::new("账号或密码错误", "wrong user name or password")
}

/// The student's initial password (P3), derived from the stored id number.
pub fn initial_password_of(state: &AppState, student: &gradphoto_store::db::Student) -> Option<String> {
    let kind: IdKind = serde_json::from_value(json!(student.id_kind)).ok()?;
    let number = state.vault.open(&id_context(student.school_id, &student.id_kind), &student.id_cipher).ok()?;
    let id = roster::validate(kind, &number).ok()?;
    Some(roster::initial_password(&id))
}

/// The associated data of an id number's ciphertext: it opens only in its school and kind.
pub fn id_context(school: gradphoto_store::SchoolId, kind: &str) -> String {
    format!("{school}:{kind}")
}

fn login_failed(state: &AppState, headers: &HeaderMap, ctx: serde_json::Value, error: Message) -> AppResult<Response> {
    if wants_json() {
        return Err(AppError::BadRequest("auth.failed", error));
    }
    let mut ctx = ctx;
    ctx["error"] = json!(error);
    login_page(state, headers, ctx, axum::http::StatusCode::UNAUTHORIZED)
}

pub async fn school_login(
    State(state): State<AppState>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path(code): Path<String>,
    Form(form): Form<LoginForm>,
) -> AppResult<Response> {
    if !auth::allow_attempt(&state, auth::client_ip(&state, &headers, addr.ip()), state.config.login_rate_per_minute)
        .await?
    {
        return Err(auth::too_many());
    }
    let school = state.db.school_by_code(&code).await?;
    let ctx = json!({ "school": school, "action": format!("/s/{}/login", school.code) });
    // In WeChat the account binds to the authorised WeChat user, so the sign-in needs the openid first.
    let wechat_user = match wechat::active(&state, &headers) {
        true => Some(wechat::cookie_openid(&state, &headers).ok_or_else(wechat::authorisation_required)?),
        false => None,
    };
    let Some(student) = state.db.student_by_no(school.id, form.username.trim()).await? else {
        // Same work as a real attempt, so timing does not tell which student numbers exist.
        let _ = auth::verify_password(form.password.clone(), DUMMY_HASH.to_string()).await;
        return login_failed(&state, &headers, ctx, bad_login());
    };
    if student.locked_until > now_ms() {
        return Err(auth::locked());
    }
    let ok = if student.password_changed {
        auth::verify_password(form.password.clone(), student.password_hash.clone()).await
    } else {
        initial_password_of(&state, &student).is_some_and(|p| auth::same(&p, form.password.trim()))
    };
    let cfg = &state.config;
    state.db.student_login_result(student.id, ok, cfg.lockout_failures, cfg.lockout_minutes * 60_000).await?;
    if !ok {
        state.db.audit(&format!("student:{}", student.id), "login.failed", Some(school.id), "").await?;
        return login_failed(&state, &headers, ctx, bad_login());
    }
    // Inside WeChat the account binds to the WeChat user (P4); elsewhere to the first browser that signs in.
    // Either way another one is refused until an admin releases the binding.
    let device = auth::cookie(&headers, DEVICE_COOKIE).unwrap_or_else(auth::random_token);
    let device_hash = state.vault.keyed(b"device", device.as_bytes());
    if let Some(openid) = &wechat_user {
        if let Err(refusal) = wechat::bind(&state, &student, openid).await? {
            return login_failed(&state, &headers, ctx, refusal);
        }
    } else if !state.db.bind_device(student.id, "browser", &device_hash).await? {
        state.db.audit(&format!("student:{}", student.id), "login.other_device", Some(school.id), "").await?;
        return login_failed(
            &state,
            &headers,
            ctx,
            Message::new(
                "此账号已绑定其他设备。如更换了手机，请联系学校管理员解除绑定。",
                "this account is bound to another device; ask your school's admin to release it",
            ),
        );
    }
    state.db.audit(&format!("student:{}", student.id), "login", Some(school.id), "").await?;
    let (session_cookie, csrf) = auth::start_session(&state, "student", student.id.0).await?;
    let device_cookie = auth::set_cookie(DEVICE_COOKIE, &device, 400 * 86_400, cfg.cookie_secure);
    let to = if student.password_changed { "/me" } else { "/me/password" };
    let body = if wants_json() {
        let answer = crate::answers::StudentSignedIn { csrf, must_change_password: !student.password_changed };
        axum::Json(answer).into_response()
    } else {
        Redirect::to(to).into_response()
    };
    Ok((
        axum::response::AppendHeaders([(header::SET_COOKIE, session_cookie), (header::SET_COOKIE, device_cookie)]),
        body,
    )
        .into_response())
}

/// An argon2id hash of a random password, verified against when the account does not exist.
const DUMMY_HASH: &str =
    "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$5cVbc8yPmBvfQPm8sFgjOMYpYA6LYvGL3Mh6TP1Cu1Y";

pub async fn staff_login(
    State(state): State<AppState>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Form(form): Form<LoginForm>,
) -> AppResult<Response> {
    if !auth::allow_attempt(&state, auth::client_ip(&state, &headers, addr.ip()), state.config.login_rate_per_minute)
        .await?
    {
        return Err(auth::too_many());
    }
    let ctx = json!({ "action": "/staff/login" });
    let Some(staff) = state.db.staff_by_username(form.username.trim()).await? else {
        let _ = auth::verify_password(form.password.clone(), DUMMY_HASH.to_string()).await;
        return login_failed(&state, &headers, ctx, bad_login());
    };
    if staff.locked_until > now_ms() {
        return Err(auth::locked());
    }
    let ok = auth::verify_password(form.password.clone(), staff.password_hash.clone()).await;
    let cfg = &state.config;
    state.db.staff_login_result(staff.id, ok, cfg.lockout_failures, cfg.lockout_minutes * 60_000).await?;
    let actor = format!("staff:{}", staff.id);
    if !ok {
        state.db.audit(&actor, "login.failed", staff.school_id, "").await?;
        return login_failed(&state, &headers, ctx, bad_login());
    }
    state.db.audit(&actor, "login", staff.school_id, "").await?;
    let (session_cookie, csrf) = auth::start_session(&state, "staff", staff.id.0).await?;
    let to = if staff.role == gradphoto_store::db::Role::Reviewer { "/review" } else { "/admin" };
    let body = if wants_json() {
        axum::Json(crate::answers::StaffSignedIn { csrf, role: staff.role }).into_response()
    } else {
        Redirect::to(to).into_response()
    };
    Ok(([(header::SET_COOKIE, session_cookie)], body).into_response())
}

pub async fn logout(State(state): State<AppState>, headers: HeaderMap) -> AppResult<Response> {
    if let Some(token) = auth::cookie(&headers, auth::SESSION_COOKIE) {
        state.db.delete_session(&auth::token_hash(&token)).await?;
    }
    let clear = auth::set_cookie(auth::SESSION_COOKIE, "gone", 0, state.config.cookie_secure);
    Ok(([(header::SET_COOKIE, clear)], crate::error::done("/", crate::answers::DONE)).into_response())
}

pub async fn healthz(State(state): State<AppState>) -> AppResult<Response> {
    state.db.ping().await?;
    Ok(axum::Json(crate::answers::Health { status: "ok" }).into_response())
}
