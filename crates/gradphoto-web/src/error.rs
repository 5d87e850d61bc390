//! Errors as people see them: a page in Chinese (English beneath) for browsers, `{code, message}` JSON for API
//! clients. Which one is decided per request by [`negotiate`], which records whether the client asked for JSON.

use axum::extract::Request;
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use gradphoto_core::Message;

tokio::task_local! {
    static WANTS_JSON: bool;
}

/// Whether the current request asked for JSON (an `Accept: application/json` header, an `/api/` path, or a bearer
/// token without `Accept: text/html`).
pub fn wants_json() -> bool {
    WANTS_JSON.try_with(|j| *j).unwrap_or(false)
}

pub fn asks_for_json(headers: &HeaderMap, path: &str) -> bool {
    let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok());
    path.starts_with("/api/")
        || accept.is_some_and(|v| v.contains("application/json") && !v.contains("text/html"))
        // A program calling with a token reads JSON unless it asks for a page.
        || (crate::tokens::bearer_of(headers).is_some() && !accept.is_some_and(|v| v.contains("text/html")))
}

pub async fn negotiate(req: Request, next: Next) -> Response {
    let json = asks_for_json(req.headers(), req.uri().path());
    WANTS_JSON.scope(json, next.run(req)).await
}

#[derive(Debug)]
pub enum AppError {
    /// Not signed in: pages go to the login, the API answers 401.
    SignIn(String),
    /// A credential that does not work (an unknown or revoked API token): 401 with this code, for pages too, as a
    /// program, not a person, holds it.
    Unauthorized(&'static str, Message),
    Forbidden,
    /// Not allowed, for a stated reason (a token without the route's scope): 403 with this code.
    Refused(&'static str, Message),
    NotFound,
    BadRequest(&'static str, Message),
    Conflict(&'static str, Message),
    TooLarge(Message),
    TooMany(Message),
    /// A service we depend on (WeChat) failed or refused: try again later.
    Upstream(&'static str, Message),
    Internal(String),
}

impl AppError {
    pub fn internal(e: impl std::fmt::Display) -> AppError {
        AppError::Internal(e.to_string())
    }

    fn parts(&self) -> (StatusCode, &'static str, Message) {
        match self {
            AppError::SignIn(_) => {
                (StatusCode::UNAUTHORIZED, "auth.required", Message::new("请先登录", "please sign in"))
            }
            AppError::Unauthorized(c, m) => (StatusCode::UNAUTHORIZED, c, m.clone()),
            AppError::Forbidden => (StatusCode::FORBIDDEN, "auth.forbidden", Message::new("无权访问", "not allowed")),
            AppError::Refused(c, m) => (StatusCode::FORBIDDEN, c, m.clone()),
            AppError::NotFound => (StatusCode::NOT_FOUND, "not_found", Message::new("未找到", "not found")),
            AppError::BadRequest(c, m) => (StatusCode::BAD_REQUEST, c, m.clone()),
            AppError::Conflict(c, m) => (StatusCode::CONFLICT, c, m.clone()),
            AppError::TooLarge(m) => (StatusCode::PAYLOAD_TOO_LARGE, "upload.too_large", m.clone()),
            AppError::TooMany(m) => (StatusCode::TOO_MANY_REQUESTS, "auth.rate_limited", m.clone()),
            AppError::Upstream(c, m) => (StatusCode::BAD_GATEWAY, c, m.clone()),
            AppError::Internal(_) => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                Message::new("服务器内部错误，请稍后再试", "server error, please try again"),
            ),
        }
    }
}

impl From<gradphoto_store::DbError> for AppError {
    fn from(e: gradphoto_store::DbError) -> Self {
        match e {
            gradphoto_store::DbError::NotFound => AppError::NotFound,
            gradphoto_store::DbError::Conflict => {
                AppError::Conflict("conflict", Message::new("已存在", "already exists"))
            }
            gradphoto_store::DbError::State => AppError::Conflict(
                "state",
                Message::new("当前状态不允许此操作，请刷新页面", "not allowed in the current state; reload the page"),
            ),
            other => AppError::Internal(other.to_string()),
        }
    }
}

impl From<gradphoto_store::BlobError> for AppError {
    fn from(e: gradphoto_store::BlobError) -> Self {
        match e {
            gradphoto_store::BlobError::NotFound => AppError::NotFound,
            other => AppError::Internal(other.to_string()),
        }
    }
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// The body of every error answer.
#[derive(Debug, serde::Serialize, schemars::JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, serde::Serialize, schemars::JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct ErrorDetail {
    /// A stable code: `upload.locked`, `auth.password`, … or a rule id.
    pub code: String,
    pub message: gradphoto_core::Message,
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        if let AppError::Internal(detail) = &self {
            // The detail is for operators; it never contains request bodies or personal data.
            tracing::error!(%detail, "request failed");
        }
        let (status, code, message) = self.parts();
        if wants_json() {
            let body = ErrorBody { error: ErrorDetail { code: code.to_string(), message: message.clone() } };
            return (status, axum::Json(body)).into_response();
        }
        if let AppError::SignIn(to) = &self {
            return Redirect::to(to).into_response();
        }
        let html = format!(
            "<!doctype html><html lang=zh-CN><meta charset=utf-8><meta name=viewport content=\"width=device-width,initial-scale=1\">\
             <link rel=stylesheet href=/static/app.css><title>{zh}</title><main class=card><h1>{zh}</h1><p class=en>{en}</p>\
             <p><a href=\"javascript:history.back()\">返回 Back</a> · <a href=/>首页 Home</a></p></main>",
            zh = escape(&message.zh),
            en = escape(&message.en)
        );
        (status, [(header::CONTENT_TYPE, "text/html; charset=utf-8")], html).into_response()
    }
}

pub type AppResult<T> = Result<T, AppError>;

/// The answer to an action: JSON for API clients, a redirect (303, so a reload does not repeat the POST) for pages.
pub fn done(redirect: &str, json: impl serde::Serialize) -> Response {
    if wants_json() { axum::Json(json).into_response() } else { Redirect::to(redirect).into_response() }
}
