//! gradphoto-web: the collection service. Students upload and get the check report at once, reviewers decide,
//! admins import rosters, follow progress and export. Built on [`gradphoto_core`] (the standard) and
//! [`gradphoto_store`] (metadata and files); CPU-heavy work runs on the blocking pool.

pub mod admin;
pub mod answers;
pub mod auth;
pub mod backup;
pub mod checks;
pub mod config;
pub mod error;
pub mod forms;
pub mod fresh;
pub mod linger;
pub mod pay;
pub mod photos;
pub mod public;
pub mod review;
pub mod roster_file;
pub mod routes;
pub mod secrets;
pub mod state;
pub mod student;
pub mod tokens;
pub mod uploads;
pub mod views;
pub mod webhooks;
pub mod wechat;
pub mod worker;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::{MethodRouter, get, post};
use gradphoto_core::measure::face::models::FaceModels;
use gradphoto_core::seal::AesGcmSealer;
use gradphoto_store::db::{NewSchool, Role, StudentUpsert};
use gradphoto_store::{BlobStore, Db, LocalStore, S3Store};

pub use config::Config;
use state::{AppState, Inner};

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Config(#[from] config::ConfigError),
    #[error(transparent)]
    Secrets(#[from] secrets::SecretsError),
    #[error("database: {0}")]
    Db(#[from] gradphoto_store::DbError),
    #[error("file store: {0}")]
    Store(#[from] gradphoto_store::BlobError),
    #[error("recovery after restart: {0}")]
    Recover(#[from] gradphoto_store::recover::RecoverError),
    #[error("face models: {0}")]
    Models(String),
    #[error("seal keys: {0}")]
    Seal(String),
    #[error("WeChat: {0}")]
    Wechat(String),
    #[error("webhooks: {0}")]
    Webhooks(String),
    #[error("{0}: {1}")]
    Io(String, std::io::Error),
}

/// Opens (creating on first start) everything the service needs in `data`.
pub async fn open(data: &Path, config: Config) -> Result<AppState, StartError> {
    std::fs::create_dir_all(data).map_err(|e| StartError::Io(data.display().to_string(), e))?;
    let (secrets, _created) = secrets::Secrets::load_or_create(data)?;
    let db = Db::connect(&config.database_url(data)).await?;
    let store: Arc<dyn BlobStore> = match &config.s3 {
        Some(s3) => Arc::new(S3Store::open(s3)?),
        None => Arc::new(LocalStore::open(config.store_dir(data)).await?),
    };
    let grace_ms = config.recovery_grace_ms(db.backend() == gradphoto_store::db::Backend::Postgres);
    let recovery = gradphoto_store::recover::recover(&db, store.as_ref(), grace_ms).await?;
    let found = recovery.published + recovery.discarded + recovery.orphans_removed + recovery.young_left;
    if found > 0 || !recovery.missing.is_empty() {
        tracing::warn!(
            published = recovery.published,
            discarded = recovery.discarded,
            orphans = recovery.orphans_removed,
            young_left = recovery.young_left,
            missing = recovery.missing.len(),
            "recovered unfinished writes"
        );
    }
    let models_dir = config.models_dir(data);
    let models = tokio::task::spawn_blocking(move || -> Result<FaceModels, String> {
        let m = gradphoto_models::ensure_bytes(&models_dir, |m| tracing::info!("{m}")).map_err(|e| e.to_string())?;
        FaceModels::load(&m.face_detector, &m.face_landmarker, &m.person_segmenter).map_err(|e| e.to_string())
    })
    .await
    .map_err(|e| StartError::Models(e.to_string()))?
    .map_err(StartError::Models)?;
    let seal_spec = config.seal_keys.clone().unwrap_or_else(|| secrets.seal_keys.clone());
    let sealer = AesGcmSealer::from_spec(seal_spec.trim()).map_err(|e| StartError::Seal(e.to_string()))?;
    let workers = config.check_workers();
    let uploads = uploads::Committer::start(db.clone());
    let node = config.node();
    match db.release_claims(&node).await {
        Ok(0) => {}
        Ok(n) => tracing::warn!(node = %node, claims = n, "took back the claims this node held when it stopped"),
        Err(e) => tracing::warn!(error = %e, "releasing this node's earlier claims failed; their leases will end"),
    }
    let wechat = match &config.wechat {
        Some(w) => Some(Arc::new(wechat::WeChat::open(w, data).map_err(StartError::Wechat)?)),
        None => None,
    };
    let webhook_http = webhooks::client(&config.webhooks).map_err(StartError::Webhooks)?;
    Ok(AppState(Arc::new(Inner {
        vault: secrets.vault(),
        db,
        store,
        sealer: Arc::new(sealer),
        models: Arc::new(models),
        views: views::Views::new(),
        node,
        // Approvals normalise on this node even when it runs no checks.
        cpu: Arc::new(tokio::sync::Semaphore::new(workers.max(1))),
        check_pool: photos::CheckPool::new(workers),
        uploads,
        payments: Arc::new(pay::Offline),
        outbox_wake: tokio::sync::Notify::new(),
        check_wake: tokio::sync::Notify::new(),
        // Waiters filter by photo id; one that falls behind reads its row again, so the capacity is not critical.
        checked: tokio::sync::broadcast::channel(1024).0,
        upload_bodies: Arc::new(tokio::sync::Semaphore::new(config.upload_bodies.max(1))),
        fresh: fresh::FreshOriginals::new(if config.check_workers() > 0 { fresh::KEEP_BYTES } else { 0 }),
        wechat,
        webhook_http,
        config,
    })))
}

fn handler(method: &str, path: &str) -> MethodRouter<AppState> {
    match (method, path) {
        ("GET", "/") => get(public::home),
        ("GET", "/healthz") => get(public::healthz),
        ("GET", "/api/openapi.json") => get(|| async { axum::Json(routes::openapi()) }),
        ("GET", "/s/{code}/login") => get(public::school_login_page),
        ("POST", "/s/{code}/login") => post(public::school_login),
        ("GET", "/staff/login") => get(public::staff_login_page),
        ("POST", "/staff/login") => post(public::staff_login),
        ("POST", "/logout") => post(public::logout),
        ("GET", "/me") => get(student::home),
        ("GET", "/me/password") => get(student::password_page),
        ("POST", "/me/password") => post(student::change_password),
        ("GET", "/me/photos/{type}") => get(student::photo_page),
        ("POST", "/me/photos/{type}") => post(student::upload),
        ("POST", "/me/photos/{type}/submit") => post(student::submit),
        ("GET", "/me/photos/{type}/check") => get(student::check_status),
        ("GET", "/me/photo/{photo}/{file}") => get(student::photo_image),
        ("GET", "/me/submissions/{submission}/registered.jpg") => get(student::registered_image),
        ("GET", "/me/pay") => get(student::pay_page),
        ("GET", "/review") => get(review::queue),
        ("GET", "/review/{submission}") => get(review::item),
        ("GET", "/review/{submission}/{file}") => get(review::image),
        ("POST", "/review/{submission}/approve") => post(review::approve),
        ("POST", "/review/{submission}/reject") => post(review::reject),
        ("GET", "/admin") => get(admin::index),
        ("POST", "/admin/schools") => post(admin::create_school),
        ("GET", "/admin/schools/{school}") => get(admin::school_page),
        ("POST", "/admin/schools/{school}/settings") => post(admin::settings),
        ("POST", "/admin/schools/{school}/types") => post(admin::add_type),
        ("POST", "/admin/schools/{school}/roster") => post(admin::import_roster),
        ("POST", "/admin/schools/{school}/staff") => post(admin::add_staff),
        ("POST", "/admin/schools/{school}/students/{student}/paid") => post(admin::mark_paid),
        ("POST", "/admin/schools/{school}/students/{student}/unbind") => post(admin::unbind),
        ("GET", "/admin/schools/{school}/export.zip") => get(admin::export),
        ("POST", "/admin/schools/{school}/payments/reconcile") => post(wechat::reconcile_school),
        ("POST", "/admin/schools/{school}/payments/{payment}/refund") => post(wechat::refund),
        ("POST", "/admin/schools/{school}/outbox/{id}/resend") => post(wechat::resend),
        ("POST", "/admin/schools/{school}/tokens") => post(tokens::create),
        ("POST", "/admin/schools/{school}/tokens/{token}/revoke") => post(tokens::revoke),
        ("GET", "/wechat/oauth") => get(wechat::oauth_callback),
        ("POST", "/wechat/pay/notify") => post(wechat::pay_notify),
        ("POST", "/me/pay/wechat") => post(wechat::pay_start),
        ("POST", "/admin/schools/{school}/webhook") => post(webhooks::register),
        ("POST", "/admin/schools/{school}/webhook/delete") => post(webhooks::delete),
        // The table and this match are one list in two halves; a route in one only is a bug found at start-up.
        other => panic!("no handler for {other:?}"),
    }
}

const CSS: &str = include_str!("../static/app.css");
const REVIEW_JS: &str = include_str!("../static/review.js");
const APP_JS: &str = include_str!("../static/app.js");
const REQUIREMENTS_SVG: &str = include_str!("../static/requirements.svg");
const EXAMPLES_SVG: &str = include_str!("../static/examples.svg");

async fn static_file(axum::extract::Path(name): axum::extract::Path<String>) -> axum::response::Response {
    let (body, kind) = match name.as_str() {
        "app.css" => (CSS, "text/css; charset=utf-8"),
        "review.js" => (REVIEW_JS, "text/javascript; charset=utf-8"),
        "app.js" => (APP_JS, "text/javascript; charset=utf-8"),
        "requirements.svg" => (REQUIREMENTS_SVG, "image/svg+xml"),
        "examples.svg" => (EXAMPLES_SVG, "image/svg+xml"),
        _ => return axum::http::StatusCode::NOT_FOUND.into_response(),
    };
    ([(header::CONTENT_TYPE, kind), (header::CACHE_CONTROL, "public, max-age=3600")], body).into_response()
}

pub fn router(state: AppState) -> Router {
    let mut app: Router<AppState> = Router::new();
    let mut seen: Vec<&str> = Vec::new();
    for r in routes::ROUTES {
        if seen.contains(&r.path) {
            continue;
        }
        seen.push(r.path);
        let mut m: MethodRouter<AppState> = MethodRouter::new();
        for same in routes::ROUTES.iter().filter(|x| x.path == r.path) {
            m = m.merge(handler(same.method, same.path));
        }
        app = app.route(r.path, m);
    }
    // Uploads are capped while streaming by the handlers; this is the outer bound of any body (multipart framing
    // included).
    let limit = state.config.max_upload.max(state.config.max_roster) + 1024 * 1024;
    app.route("/static/{name}", get(static_file))
        .layer(axum::middleware::from_fn_with_state(state.clone(), auth::csrf_guard))
        // Before the CSRF guard, which lets a request it resolved pass; inside `negotiate`, so its refusals are JSON.
        .layer(axum::middleware::from_fn_with_state(state.clone(), tokens::bearer))
        .layer(axum::middleware::from_fn(error::negotiate))
        .layer(DefaultBodyLimit::max(limit))
        .layer(axum::middleware::from_fn(security_headers))
        .layer(axum::middleware::from_fn(move |req, next| linger::linger(limit, req, next)))
        .layer(axum::middleware::from_fn(access_log))
        .with_state(state)
}

/// One line per request: method, path (never the query, which may carry a token), status, time. Paths hold
/// row ids and school codes only; names, id numbers and student numbers travel in bodies, which are not logged.
async fn access_log(req: axum::extract::Request, next: axum::middleware::Next) -> axum::response::Response {
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let started = std::time::Instant::now();
    let res = next.run(req).await;
    let ms = started.elapsed().as_secs_f64() * 1000.0;
    tracing::info!(%method, %path, status = res.status().as_u16(), ms = format!("{ms:.1}"), "request");
    res
}

async fn security_headers(req: axum::extract::Request, next: axum::middleware::Next) -> axum::response::Response {
    let mut res = next.run(req).await;
    let h = res.headers_mut();
    h.insert(header::X_CONTENT_TYPE_OPTIONS, header::HeaderValue::from_static("nosniff"));
    h.insert(header::X_FRAME_OPTIONS, header::HeaderValue::from_static("DENY"));
    h.insert(header::REFERRER_POLICY, header::HeaderValue::from_static("same-origin"));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        header::HeaderValue::from_static(
            "default-src 'self'; img-src 'self' data:; style-src 'self'; frame-ancestors 'none'",
        ),
    );
    res
}

/// Serves until the process is stopped, with the outbox worker and the check workers beside it: two per check
/// thread, so that while one checks, the other writes its last result and fetches its next photo — the check
/// threads never wait for the database or the store.
pub async fn serve(state: AppState, listener: tokio::net::TcpListener) -> std::io::Result<()> {
    tokio::spawn(worker::run(state.clone()));
    for _ in 0..2 * state.config.check_workers() {
        tokio::spawn(checks::run(state.clone()));
    }
    let app = router(state).into_make_service_with_connect_info::<SocketAddr>();
    axum::serve(listener, app).with_graceful_shutdown(shutdown_signal()).await
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        if let Ok(mut s) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            s.recv().await;
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
}

/// Creates a staff account (the first super-admin comes from `gradphoto admin create`).
pub async fn create_staff(
    db: &Db,
    username: &str,
    password: &str,
    role: Role,
    school: Option<gradphoto_store::SchoolId>,
) -> Result<gradphoto_store::StaffId, String> {
    if password.chars().count() < 8 {
        return Err("the password needs 8 or more characters".into());
    }
    let hash = auth::hash_password(password.to_string()).await.map_err(|e| format!("{e:?}"))?;
    db.create_staff(username, role, school, &hash).await.map_err(|e| match e {
        gradphoto_store::DbError::Conflict => format!("the user {username} exists already"),
        other => other.to_string(),
    })
}

/// Demo data, only with `gradphoto serve --demo`: one school, a reviewer, an admin and three students whose
/// numbers are made up (valid check digits, birth dates in 2000), so that every page can be tried.
pub async fn seed_demo(state: &AppState) -> Result<Vec<String>, String> {
    let db = &state.db;
    if db.school_by_code("demo").await.is_ok() {
        return Ok(vec!["demo data present already".into()]);
    }
    let region = db.upsert_region("北京市", "北京市").await.map_err(|e| e.to_string())?;
    let school = db
        .create_school(&NewSchool {
            region_id: region,
            code: "demo".into(),
            name: "示范大学 Demo University".into(),
            fee_cents: 0,
            opens_at: None,
            closes_at: None,
            backgrounds: "light_blue".into(),
        })
        .await
        .map_err(|e| e.to_string())?;
    create_staff(db, "demo-admin", "demo-admin-pass", Role::SchoolAdmin, Some(school)).await?;
    create_staff(db, "demo-reviewer", "demo-reviewer-pass", Role::Reviewer, Some(school)).await?;
    let mut lines = vec![
        "demo school: /s/demo/login".to_string(),
        "staff: demo-admin / demo-admin-pass, demo-reviewer / demo-reviewer-pass at /staff/login".to_string(),
    ];
    let mut rows = Vec::new();
    for (i, base) in ["11010520000101001", "11010520000202002", "11010520000303003"].iter().enumerate() {
        let number = with_check_digit(base);
        let no = format!("2026{:04}", i + 1);
        lines.push(format!("student {no}: first password {}", &number[number.len() - 6..]));
        rows.push(StudentUpsert {
            student_no: no,
            name: format!("学生{}", i + 1),
            id_kind: "mainland".into(),
            id_cipher: state.vault.seal(&public::id_context(school, "mainland"), &number),
            id_hash: state.vault.lookup_hash(&number),
            college: Some("示范学院".into()),
            degree_level: Some("本科".into()),
        });
    }
    db.import_students(school, &rows).await.map_err(|e| e.to_string())?;
    Ok(lines)
}

/// GB 11643 check digit appended to 17 digits.
pub fn with_check_digit(first17: &str) -> String {
    const W: [u32; 17] = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
    let sum: u32 = first17.chars().zip(W).map(|(c, w)| c.to_digit(10).unwrap_or(0) * w).sum();
    let check = b"10X98765432"[(sum % 11) as usize] as char;
    format!("{first17}{check}")
}

/// The default data folder, as the command line's.
pub fn default_data_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("GRADPHOTO_DATA") {
        return PathBuf::from(d);
    }
    if let Some(d) = std::env::var_os("XDG_DATA_HOME") {
        return PathBuf::from(d).join("gradphoto");
    }
    std::env::var_os("HOME")
        .map_or_else(|| PathBuf::from(".gradphoto"), |h| PathBuf::from(h).join(".local/share/gradphoto"))
}
