//! API tokens: machine credentials of one school, so that its own systems can push rosters, pull progress and
//! exports and decide reviews without a person signing in. A call carries `Authorization: Bearer <secret>`;
//! [`bearer`] resolves it before the handlers run, into a machine actor with the school-admin role of exactly the
//! token's school, and lets it call only the routes whose scope ([`crate::routes::Route::scope`]) the token holds.
//! The secret is shown once when the token is made and stored as its SHA-256 only, like a session's.

use axum::extract::{MatchedPath, Path, RawForm, Request, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use gradphoto_core::Message;
use gradphoto_store::db::{ApiToken, Role, Staff};
use gradphoto_store::{ApiTokenId, SchoolId, now_ms};
use serde::Serialize;

use crate::answers::{NewToken, TokenCreated, TokenRevoked, TokenView};
use crate::auth::{self, StaffSession};
use crate::error::{AppError, AppResult, done, wants_json};
use crate::routes::ROUTES;
use crate::state::AppState;

/// What a token may do. The ids are stable: they are stored with each token and sent by clients.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    /// Import the roster.
    Roster,
    /// Read the schools, a school's progress, students and audit log.
    Progress,
    /// Download the export of approved registered photos.
    Export,
    /// Read the review queue and the photos, approve and reject.
    Review,
}

impl Scope {
    pub const ALL: [Scope; 4] = [Scope::Roster, Scope::Progress, Scope::Export, Scope::Review];

    pub fn id(self) -> &'static str {
        match self {
            Scope::Roster => "roster",
            Scope::Progress => "progress",
            Scope::Export => "export",
            Scope::Review => "review",
        }
    }

    pub fn parse(s: &str) -> Option<Scope> {
        Scope::ALL.into_iter().find(|x| x.id() == s)
    }

    /// The scope as the admin page names it.
    pub fn title(self) -> Message {
        match self {
            Scope::Roster => Message::new("导入名单", "import the roster"),
            Scope::Progress => Message::new("查看进度", "read progress"),
            Scope::Export => Message::new("导出照片", "export photos"),
            Scope::Review => Message::new("审核照片", "review photos"),
        }
    }
}

/// The scopes stored for a token (`roster,export`); ids this build does not know are dropped, not granted.
pub fn scopes_of(token: &ApiToken) -> Vec<Scope> {
    token.scopes.split(',').filter_map(Scope::parse).collect()
}

/// The prefix of every secret, so that a leaked one is recognisable (secret scanners, logs).
pub const SECRET_PREFIX: &str = "gpt_";

/// The token this request presents, if its `Authorization` header uses the Bearer scheme.
pub fn bearer_of(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// The token of this request, resolved and allowed by [`bearer`].
#[derive(Debug, Clone)]
pub struct Machine(pub ApiToken);

impl Machine {
    /// The token as a staff member: the school admin of its own school and of no other. Its staff id is that of the
    /// admin who made the token, who answers for it: decisions need a staff row as their reviewer of record, while the
    /// audit log names the token itself ([`Machine::actor`]).
    pub fn staff(&self) -> Staff {
        Staff {
            id: self.0.created_by,
            username: self.actor(),
            role: Role::SchoolAdmin,
            school_id: Some(self.0.school_id),
            password_hash: String::new(),
            failed_logins: 0,
            locked_until: 0,
        }
    }

    pub fn actor(&self) -> String {
        format!("token:{}", self.0.id)
    }
}

pub fn invalid() -> AppError {
    AppError::Unauthorized(
        "token.invalid",
        Message::new("API 令牌无效或已被撤销", "the API token is unknown or has been revoked"),
    )
}

fn out_of_scope() -> AppError {
    AppError::Refused(
        "token.scope",
        Message::new("此 API 令牌无权调用该接口", "this API token's scopes do not include this route"),
    )
}

/// Resolves a bearer token before the CSRF guard and the handlers: an unknown token is a 401; a known one (revoked
/// or not) counts against its rate first, so that even a flood of refused calls writes nothing past it (429 with
/// `Retry-After`); then a revoked token is a 401 and a route its scopes do not cover a 403. Every request within the
/// rate leaves one audit row under the token's name (the route, the path's ids, and why it was refused if it was),
/// written before the handler runs, so that no call goes unrecorded. A request without a bearer token passes
/// untouched.
pub async fn bearer(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    let Some(secret) = bearer_of(req.headers()) else { return next.run(req).await };
    let token = match state.db.api_token_by_hash(&auth::token_hash(secret)).await {
        Ok(Some(t)) => t,
        Ok(None) => return unauthorized(),
        Err(e) => return AppError::from(e).into_response(),
    };
    // The scope of the route as the router matched it, from the same table the router was built from.
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .and_then(|p| ROUTES.iter().find(|r| r.method == req.method().as_str() && r.path == p.as_str()));
    match within_rate(&state, &token).await {
        Ok(None) => {}
        Ok(Some(retry_after_s)) => return too_many(retry_after_s),
        Err(e) => return e.into_response(),
    }
    let refusal = if token.revoked_at.is_some() {
        Some(("revoked", unauthorized()))
    } else if !route.and_then(|r| r.scope).is_some_and(|s| scopes_of(&token).contains(&s)) {
        Some(("scope", out_of_scope().into_response()))
    } else {
        None
    };
    let machine = Machine(token);
    let action = format!("{} {}", req.method(), route.map_or("(no route)", |r| r.path));
    // The path holds row ids and school codes only (as in the access log); the query, which may not, is left out.
    let mut detail = format!("path:{}", req.uri().path());
    if let Some((why, _)) = &refusal {
        detail.push_str(&format!(" refused:{why}"));
    }
    if let Err(e) = state.db.audit(&machine.actor(), &action, Some(machine.0.school_id), &detail).await {
        return AppError::from(e).into_response();
    }
    if let Some((_, res)) = refusal {
        return res;
    }
    if let Err(e) = state.db.api_token_used(machine.0.id).await {
        return AppError::from(e).into_response();
    }
    req.extensions_mut().insert(machine);
    let mut res = next.run(req).await;
    // A token call never starts a session or sets a cookie (none of its routes does; this keeps it so).
    res.headers_mut().remove(header::SET_COOKIE);
    res
}

fn unauthorized() -> Response {
    let mut res = invalid().into_response();
    res.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer error=\"invalid_token\""));
    res
}

/// Counts this request against the token's rate (`Config::token_rate_per_minute`) in a window of a minute, kept in
/// the database like the sign-in limit so that every node limits alike. Over it: the seconds until the window ends.
async fn within_rate(state: &AppState, token: &ApiToken) -> AppResult<Option<i64>> {
    const WINDOW_MS: i64 = 60_000;
    let key = state.vault.keyed(b"api-token-rate", token.id.to_string().as_bytes());
    let window = state.db.count_use(&key, WINDOW_MS).await?;
    if window.count <= i64::from(state.config.token_rate_per_minute) {
        return Ok(None);
    }
    let left_ms = (window.started_at + WINDOW_MS - now_ms()).clamp(0, WINDOW_MS);
    Ok(Some(((left_ms + 999) / 1000).max(1)))
}

fn too_many(retry_after_s: i64) -> Response {
    let mut res = AppError::TooMany(Message::new(
        format!("此 API 令牌的请求过于频繁，请 {retry_after_s} 秒后再试"),
        format!("too many requests with this API token; try again in {retry_after_s} s"),
    ))
    .into_response();
    res.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(retry_after_s));
    res
}

/// A token as lists show it: never its secret or hash (the row does not hold the one, the struct not the other).
pub fn view(t: &ApiToken) -> TokenView {
    TokenView {
        id: t.id,
        name: t.name.clone(),
        scopes: scopes_of(t),
        created_at: t.created_at,
        created_by: t.created_by,
        last_used_at: t.last_used_at,
        revoked_at: t.revoked_at,
    }
}

fn invalid_form(zh: &str, en: &str) -> AppError {
    AppError::BadRequest("form.invalid", Message::new(zh, en))
}

/// Tokens are managed by people: a token never manages tokens (the route table gives these routes no scope; this
/// holds even if it did).
fn require_person(s: &StaffSession, school: SchoolId) -> AppResult<()> {
    s.require_admin(school)?;
    if s.token.is_some() { Err(AppError::Forbidden) } else { Ok(()) }
}

/// Makes a token of the school from a form of `name` and `scope` (repeatable). The answer holds the secret this once:
/// `{"token": {id, name, scopes, secret}}`, or the school page showing it.
pub async fn create(
    State(state): State<AppState>,
    s: StaffSession,
    Path(school): Path<i64>,
    RawForm(body): RawForm,
) -> AppResult<Response> {
    let school = SchoolId(school);
    require_person(&s, school)?;
    let mut name = String::new();
    let mut scopes = Vec::new();
    for (k, v) in crate::forms::pairs(&body)? {
        match k.as_str() {
            "name" => name = v.trim().to_string(),
            "scope" => match Scope::parse(v.trim()) {
                Some(scope) => scopes.push(scope),
                None => {
                    return Err(invalid_form("未知的权限范围", "unknown scope: roster, progress, export or review"));
                }
            },
            _ => {}
        }
    }
    if name.is_empty() || name.chars().count() > 64 {
        return Err(invalid_form("请填写令牌名称（最多 64 个字符）", "a token needs a name of up to 64 characters"));
    }
    scopes.sort();
    scopes.dedup();
    if scopes.is_empty() {
        return Err(invalid_form("请至少选择一个权限范围", "choose at least one scope"));
    }
    let ids: Vec<&str> = scopes.iter().map(|s| s.id()).collect();
    let secret = format!("{SECRET_PREFIX}{}", auth::random_token());
    let id = state.db.create_api_token(school, &name, &ids.join(","), &auth::token_hash(&secret), s.staff.id).await?;
    // The name is the admin's free text: it stays out of the audit detail.
    state.db.audit(&s.actor(), "token.create", Some(school), &format!("token:{id} scopes:{}", ids.join(","))).await?;
    let created = NewToken { id, name, scopes, secret };
    let mut res = if wants_json() {
        axum::Json(TokenCreated { token: created }).into_response()
    } else {
        crate::admin::render_school(
            &state,
            &s,
            school,
            crate::admin::Shown { new_token: Some(created), ..Default::default() },
        )
        .await?
    };
    // The one answer that holds the secret: kept by no cache.
    res.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(res)
}

/// Revokes a token of the school at once; revoking it again changes nothing.
pub async fn revoke(
    State(state): State<AppState>,
    s: StaffSession,
    Path((school, token)): Path<(i64, i64)>,
) -> AppResult<Response> {
    let school = SchoolId(school);
    require_person(&s, school)?;
    let t = state.db.revoke_api_token(ApiTokenId(token), school).await?;
    state.db.audit(&s.actor(), "token.revoke", Some(school), &format!("token:{}", t.id)).await?;
    Ok(done(&format!("/admin/schools/{school}#tokens"), TokenRevoked { token: view(&t) }))
}
