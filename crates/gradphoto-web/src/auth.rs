//! Who is asking: sessions (a random token in an HttpOnly cookie, stored hashed), passwords (argon2id, hashed
//! off the async threads), lockout after repeated failures, a per-address rate limit, CSRF tokens, and the
//! extractors that give handlers a signed-in student or staff member — or refuse. A request with an API token
//! (`crate::tokens`) is given to handlers as a staff member too: the token decides, never a cookie beside it.

use std::net::IpAddr;

use argon2::Argon2;
use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use axum::extract::{FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use gradphoto_core::Message;
use gradphoto_store::db::{Role, Staff, Student};
use gradphoto_store::{ApiTokenId, SchoolId, StaffId, StudentId, now_ms};
use rand::RngCore;
use sha2::{Digest, Sha256};

use crate::error::{AppError, AppResult};
use crate::state::AppState;
use crate::tokens::{self, Machine};

pub const SESSION_COOKIE: &str = "gp_session";
/// The token forms carry before there is a session (login), matched against this cookie (double submit).
pub const PRE_COOKIE: &str = "gp_pre";
/// A random id of the browser, for binding a student's account to the first device that signs in.
pub const DEVICE_COOKIE: &str = "gp_device";
pub const CSRF_HEADER: &str = "x-csrf-token";

pub fn random_token() -> String {
    let mut b = [0u8; 32];
    rand::rng().fill_bytes(&mut b);
    URL_SAFE_NO_PAD.encode(b)
}

pub fn token_hash(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

pub fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers.get_all(header::COOKIE).iter().filter_map(|v| v.to_str().ok()).flat_map(|v| v.split(';')).find_map(|c| {
        let (k, v) = c.trim().split_once('=')?;
        (k == name && !v.is_empty()).then(|| v.to_string())
    })
}

pub fn set_cookie(name: &str, value: &str, max_age_s: i64, secure: bool) -> String {
    format!(
        "{name}={value}; Path=/; HttpOnly; SameSite=Lax; Max-Age={max_age_s}{}",
        if secure { "; Secure" } else { "" }
    )
}

pub async fn hash_password(password: String) -> AppResult<String> {
    tokio::task::spawn_blocking(move || {
        let salt = SaltString::generate(&mut OsRng);
        Argon2::default().hash_password(password.as_bytes(), &salt).map(|h| h.to_string())
    })
    .await
    .map_err(AppError::internal)?
    .map_err(AppError::internal)
}

pub async fn verify_password(password: String, hash: String) -> bool {
    tokio::task::spawn_blocking(move || {
        PasswordHash::new(&hash).is_ok_and(|h| Argon2::default().verify_password(password.as_bytes(), &h).is_ok())
    })
    .await
    .unwrap_or(false)
}

/// Constant-time equality, for tokens and derived passwords.
pub fn same(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The client's address: the connection's, or behind a proxy (`behind_proxy`) the last `X-Forwarded-For` entry,
/// the one our own proxy appended (earlier entries are the client's to forge).
pub fn client_ip(state: &AppState, headers: &HeaderMap, connection: IpAddr) -> IpAddr {
    if !state.config.behind_proxy {
        return connection;
    }
    forwarded_client(headers).unwrap_or(connection)
}

fn forwarded_client(headers: &HeaderMap) -> Option<IpAddr> {
    // The last header line strictly: an unreadable one must not make an earlier, forgeable line count.
    let last = headers.get_all("x-forwarded-for").iter().next_back()?.to_str().ok()?;
    last.rsplit(',').next()?.trim().parse().ok()
}

/// Counts a sign-in attempt from `ip` and says whether it is within `per_minute`. Counted in the database (under a
/// keyed hash of the address, never the address itself), so that every node of a service limits alike.
pub async fn allow_attempt(state: &AppState, ip: IpAddr, per_minute: u32) -> AppResult<bool> {
    let key = state.vault.keyed(b"login-ip", ip.to_string().as_bytes());
    Ok(state.db.count_attempt(&key, 60_000).await? <= i64::from(per_minute))
}

pub fn too_many() -> AppError {
    AppError::TooMany(Message::new("尝试过于频繁，请一分钟后再试", "too many attempts; try again in a minute"))
}

pub fn locked() -> AppError {
    AppError::TooMany(Message::new(
        "连续登录失败次数过多，账号已锁定 15 分钟",
        "too many failed sign-ins: the account is locked for 15 minutes",
    ))
}

/// Who holds the session.
#[derive(Debug, Clone)]
pub enum Viewer {
    Student(Box<Student>),
    Staff(Box<Staff>),
}

#[derive(Debug, Clone)]
pub struct Session {
    pub viewer: Viewer,
    /// Empty for a token, which needs none.
    pub csrf: String,
    /// The API token acting, when a program rather than a person calls.
    pub token: Option<ApiTokenId>,
}

/// The session as loaded by [`csrf_guard`] for this request, so that the handler's extractor does not read the same
/// rows again.
#[derive(Clone)]
struct Loaded(Option<Session>);

/// The request's session: the API token's, else the one the CSRF guard already loaded, else from the database.
async fn session_of(state: &AppState, parts: &Parts) -> AppResult<Option<Session>> {
    if let Some(m) = parts.extensions.get::<Machine>() {
        return Ok(Some(Session {
            viewer: Viewer::Staff(Box::new(m.staff())),
            csrf: String::new(),
            token: Some(m.0.id),
        }));
    }
    // `tokens::bearer` resolves every bearer request before a handler runs; one it has not resolved must not fall
    // back to a cookie that came with it.
    if tokens::bearer_of(&parts.headers).is_some() {
        return Err(tokens::invalid());
    }
    match parts.extensions.get::<Loaded>() {
        Some(Loaded(s)) => Ok(s.clone()),
        None => load_session(state, &parts.headers).await,
    }
}

async fn load_session(state: &AppState, headers: &HeaderMap) -> AppResult<Option<Session>> {
    let Some(token) = cookie(headers, SESSION_COOKIE) else { return Ok(None) };
    let Some(s) = state.db.session(&token_hash(&token)).await? else { return Ok(None) };
    let viewer = match s.subject_kind.as_str() {
        "student" => match state.db.student(StudentId(s.subject_id)).await {
            Ok(st) => Viewer::Student(Box::new(st)),
            Err(gradphoto_store::DbError::NotFound) => return Ok(None),
            Err(e) => return Err(e.into()),
        },
        _ => match state.db.staff(StaffId(s.subject_id)).await {
            Ok(st) => Viewer::Staff(Box::new(st)),
            Err(gradphoto_store::DbError::NotFound) => return Ok(None),
            Err(e) => return Err(e.into()),
        },
    };
    Ok(Some(Session { viewer, csrf: s.csrf, token: None }))
}

/// A signed-in student.
pub struct StudentSession {
    pub student: Student,
    pub csrf: String,
}

/// A signed-in staff member, or an API token acting as its school's admin (`crate::tokens::Machine::staff`).
pub struct StaffSession {
    pub staff: Staff,
    pub csrf: String,
    pub token: Option<ApiTokenId>,
}

impl StaffSession {
    /// Whether this staff member may act on `school`'s data.
    pub fn can_see(&self, school: SchoolId) -> bool {
        self.staff.role == Role::SuperAdmin || self.staff.school_id == Some(school)
    }

    pub fn require_school(&self, school: SchoolId) -> AppResult<()> {
        if self.can_see(school) { Ok(()) } else { Err(AppError::Forbidden) }
    }

    pub fn require_admin(&self, school: SchoolId) -> AppResult<()> {
        self.require_school(school)?;
        if matches!(self.staff.role, Role::SuperAdmin | Role::SchoolAdmin) { Ok(()) } else { Err(AppError::Forbidden) }
    }

    pub fn require_super(&self) -> AppResult<()> {
        if self.staff.role == Role::SuperAdmin { Ok(()) } else { Err(AppError::Forbidden) }
    }

    /// Who the audit log names: the person, or the token (not the admin who made it).
    pub fn actor(&self) -> String {
        match self.token {
            Some(t) => format!("token:{t}"),
            None => format!("staff:{}", self.staff.id),
        }
    }
}

/// The session of any kind, or none.
pub struct MaybeSession(pub Option<Session>);

impl FromRequestParts<AppState> for MaybeSession {
    type Rejection = AppError;
    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> AppResult<Self> {
        Ok(MaybeSession(session_of(state, parts).await?))
    }
}

impl FromRequestParts<AppState> for StudentSession {
    type Rejection = AppError;
    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> AppResult<Self> {
        match session_of(state, parts).await? {
            Some(Session { viewer: Viewer::Student(student), csrf, .. }) => {
                Ok(StudentSession { student: *student, csrf })
            }
            Some(_) => Err(AppError::Forbidden),
            None => Err(AppError::SignIn("/".into())),
        }
    }
}

impl FromRequestParts<AppState> for StaffSession {
    type Rejection = AppError;
    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> AppResult<Self> {
        match session_of(state, parts).await? {
            Some(Session { viewer: Viewer::Staff(staff), csrf, token }) => {
                Ok(StaffSession { staff: *staff, csrf, token })
            }
            Some(_) => Err(AppError::Forbidden),
            None => Err(AppError::SignIn("/staff/login".into())),
        }
    }
}

/// Starts a session and returns its cookie and CSRF token.
pub async fn start_session(state: &AppState, kind: &str, subject: i64) -> AppResult<(String, String)> {
    let token = random_token();
    let csrf = random_token();
    let minutes = state.config.session_minutes;
    state.db.create_session(&token_hash(&token), kind, subject, &csrf, now_ms() + minutes * 60_000).await?;
    Ok((set_cookie(SESSION_COOKIE, &token, minutes * 60, state.config.cookie_secure), csrf))
}

fn query_param(query: Option<&str>, name: &str) -> Option<String> {
    query?.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=')?;
        (k == name).then(|| v.to_string())
    })
}

/// Refuses state-changing requests without the right CSRF token: the session's, or for a request without a
/// session (signing in) the `gp_pre` cookie's. The token may come in the `x-csrf-token` header, a `csrf` query
/// parameter (multipart forms), or a `csrf` field of a urlencoded form (read here, within a small limit).
pub async fn csrf_guard(state: axum::extract::State<AppState>, req: Request, next: Next) -> Response {
    // WeChat Pay's notification carries no cookie: it is authenticated by its signature in the handler. A request
    // with an API token (resolved by `tokens::bearer`, which runs first) needs none either: a browser cannot attach
    // an `Authorization` header to a cross-site request, and the cookie beside it is not used.
    if matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS)
        || req.uri().path() == "/wechat/pay/notify"
        || req.extensions().get::<Machine>().is_some()
    {
        return next.run(req).await;
    }
    // Signing in takes the pre-session token even over a live session (a second sign-in from the same browser).
    let is_login = req.uri().path().ends_with("/login");
    let session = match load_session(&state, req.headers()).await {
        Ok(s) => s,
        Err(e) => return e.into_response(),
    };
    let expected = match &session {
        Some(s) if !is_login => Some(s.csrf.clone()),
        _ => cookie(req.headers(), PRE_COOKIE),
    };
    let mut req = req;
    req.extensions_mut().insert(Loaded(session));
    let Some(expected) = expected else { return csrf_refused() };
    let mut given = req
        .headers()
        .get(CSRF_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
        .or_else(|| query_param(req.uri().query(), "csrf"));
    let is_form = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    let req = if given.is_none() && is_form {
        let (parts, body) = req.into_parts();
        let Ok(bytes) = axum::body::to_bytes(body, 1024 * 1024).await else { return csrf_refused() };
        given = url_form_field(&bytes, "csrf");
        Request::from_parts(parts, axum::body::Body::from(bytes))
    } else {
        req
    };
    match given {
        Some(g) if same(&g, &expected) => next.run(req).await,
        _ => csrf_refused(),
    }
}

fn url_form_field(body: &[u8], name: &str) -> Option<String> {
    let text = std::str::from_utf8(body).ok()?;
    text.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=')?;
        (k == name).then(|| v.replace("%2D", "-").replace("%5F", "_"))
    })
}

fn csrf_refused() -> Response {
    AppError::BadRequest(
        "auth.csrf",
        Message::new("页面已过期，请刷新后重试", "the page has expired; reload it and try again"),
    )
    .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_proxy_appended_address_is_the_client() {
        let mut h = HeaderMap::new();
        assert_eq!(forwarded_client(&h), None);
        h.append("x-forwarded-for", "6.6.6.6, 10.1.2.3".parse().unwrap());
        assert_eq!(forwarded_client(&h), Some("10.1.2.3".parse().unwrap()), "the first entry is the client's to forge");
        h.append("x-forwarded-for", "2001:db8::7".parse().unwrap());
        assert_eq!(forwarded_client(&h), Some("2001:db8::7".parse().unwrap()));
        let mut bad = HeaderMap::new();
        bad.append("x-forwarded-for", "not-an-ip".parse().unwrap());
        assert_eq!(forwarded_client(&bad), None);
    }
}
