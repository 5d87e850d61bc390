//! A real server on a random loopback port with a fresh data folder (SQLite by default; PostgreSQL when
//! `GRADPHOTO_TEST_POSTGRES` names a server, a fresh database per server), and an HTTP client that signs in and
//! carries cookies and the CSRF token as a browser would.
#![allow(dead_code)]

pub mod conformance;
pub mod wechat;

pub use conformance::violations;

use std::sync::{Arc, OnceLock};

use gradphoto_store::db::Role;
use gradphoto_testkit::exif::ExifSpec;
use gradphoto_testkit::{JpegSpec, encode};
use gradphoto_web::state::AppState;
use reqwest::cookie::{CookieStore, Jar};

pub struct TestServer {
    pub base: String,
    pub state: AppState,
    pub dir: tempfile::TempDir,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

pub fn config() -> gradphoto_web::Config {
    gradphoto_web::Config {
        cookie_secure: false,
        models_dir: Some(gradphoto_testkit::models_data_dir()),
        ..Default::default()
    }
}

/// A fresh PostgreSQL database on the server named by `GRADPHOTO_TEST_POSTGRES` (e.g.
/// `postgres://postgres@127.0.0.1:5433`), or None to use SQLite.
pub async fn postgres_database() -> Option<String> {
    use sqlx::Connection;
    let base = std::env::var("GRADPHOTO_TEST_POSTGRES").ok().filter(|s| !s.is_empty())?;
    let name = format!("gp_test_{}", &gradphoto_web::auth::random_token().to_lowercase().replace(['-', '_'], "")[..16]);
    let mut admin =
        sqlx::PgConnection::connect(&format!("{base}/postgres")).await.expect("connect to the test PostgreSQL");
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut admin)
        .await
        .expect("create database");
    Some(format!("{base}/{name}"))
}

/// A fresh bucket on the server named by `GRADPHOTO_TEST_S3`.
pub async fn s3_bucket() -> gradphoto_store::S3Config {
    let endpoint = std::env::var("GRADPHOTO_TEST_S3")
        .expect("GRADPHOTO_TEST_S3 is not set: run scripts/test.sh (it starts a private S3-compatible server)");
    let bucket =
        format!("gp-web-{}", &gradphoto_web::auth::random_token().to_lowercase().replace(['-', '_'], "")[..12]);
    let r = reqwest::Client::new().put(format!("{endpoint}/{bucket}")).send().await.unwrap();
    assert!(r.status().is_success(), "create bucket: {}", r.status());
    gradphoto_store::S3Config {
        endpoint,
        bucket,
        region: "us-east-1".into(),
        access_key_id: None,
        secret_access_key: None,
    }
}

impl TestServer {
    pub async fn start() -> TestServer {
        Self::start_with(config()).await
    }

    /// Starts as a site at scale runs: PostgreSQL (`GRADPHOTO_TEST_POSTGRES`) and an S3-compatible bucket
    /// (`GRADPHOTO_TEST_S3`), both started by `scripts/test.sh`.
    pub async fn start_postgres_s3() -> TestServer {
        let mut c = config();
        c.database_url = Some(postgres_database().await.expect(
            "GRADPHOTO_TEST_POSTGRES is not set: run scripts/test.sh (it starts a private PostgreSQL) or name a server",
        ));
        c.s3 = Some(s3_bucket().await);
        Self::start_with(c).await
    }

    pub async fn start_with(config: gradphoto_web::Config) -> TestServer {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        Self::start_at(listener, config).await
    }

    /// Serves on a listener bound beforehand, for a configuration that must name the service's own address
    /// (WeChat's callback and notification URLs).
    pub async fn start_at(listener: tokio::net::TcpListener, config: gradphoto_web::Config) -> TestServer {
        Self::start_in(tempfile::tempdir().unwrap(), listener, config).await
    }

    /// Serves the data folder `dir` (a restored backup, say).
    pub async fn start_in(
        dir: tempfile::TempDir,
        listener: tokio::net::TcpListener,
        config: gradphoto_web::Config,
    ) -> TestServer {
        let state = gradphoto_web::open(dir.path(), config).await.expect("service opens");
        let base = format!("http://{}", listener.local_addr().unwrap());
        let s = state.clone();
        let task = tokio::spawn(async move {
            let _ = gradphoto_web::serve(s, listener).await;
        });
        TestServer { base, state, dir, task }
    }

    pub fn client(&self) -> Client {
        Client::new(&self.base)
    }

    pub async fn staff(&self, user: &str, role: Role, school: Option<gradphoto_store::SchoolId>) {
        gradphoto_web::create_staff(&self.state.db, user, &format!("{user}-password"), role, school).await.unwrap();
    }
}

pub struct Client {
    pub http: reqwest::Client,
    jar: Arc<Jar>,
    pub base: String,
    pub csrf: String,
    /// An API token, sent as `Authorization: Bearer` instead of a session's CSRF token (see [`Client::with_token`]).
    pub bearer: Option<String>,
}

impl Client {
    pub fn new(base: &str) -> Client {
        Self::with_agent(base, concat!("gradphoto-tests/", env!("CARGO_PKG_VERSION")))
    }

    /// A browser with its own cookies and the given user agent (WeChat's in-app browser says `MicroMessenger`).
    pub fn with_agent(base: &str, user_agent: &str) -> Client {
        let jar = Arc::new(Jar::default());
        let http = reqwest::Client::builder()
            .cookie_provider(jar.clone())
            .user_agent(user_agent)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        Client { http, jar, base: base.to_string(), csrf: String::new(), bearer: None }
    }

    /// A program calling with an API token: no cookie store at all, no CSRF token, `Authorization: Bearer` on every
    /// request.
    pub fn with_token(base: &str, secret: &str) -> Client {
        let http = reqwest::Client::builder()
            .user_agent(concat!("gradphoto-tests-machine/", env!("CARGO_PKG_VERSION")))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        Client {
            http,
            jar: Arc::new(Jar::default()),
            base: base.to_string(),
            csrf: String::new(),
            bearer: Some(secret.to_string()),
        }
    }

    /// The request's credential besides cookies: the bearer token, else (for a state-changing request) the CSRF token.
    fn credential(&self, req: reqwest::RequestBuilder, changes_state: bool) -> reqwest::RequestBuilder {
        match &self.bearer {
            Some(token) => req.bearer_auth(token),
            None if changes_state => req.header("x-csrf-token", &self.csrf),
            None => req,
        }
    }

    pub fn cookie(&self, name: &str) -> Option<String> {
        let url = self.base.parse().unwrap();
        let header = self.jar.cookies(&url)?;
        header.to_str().ok()?.split("; ").find_map(|c| c.strip_prefix(&format!("{name}=")).map(str::to_string))
    }

    /// Opens a sign-in page (which sets the pre-session token) and signs in; keeps the session's CSRF token.
    /// Returns the status and the JSON body.
    pub async fn login(&mut self, page: &str, user: &str, password: &str) -> (u16, serde_json::Value) {
        let r = self.http.get(format!("{}{page}", self.base)).send().await.unwrap();
        assert_eq!(r.status(), 200, "sign-in page {page}");
        let pre = self.cookie("gp_pre").expect("the sign-in page sets gp_pre");
        let r = self
            .http
            .post(format!("{}{page}", self.base))
            .header("accept", "application/json")
            .form(&[("username", user), ("password", password), ("csrf", pre.as_str())])
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        let body: serde_json::Value = r.json().await.unwrap_or(serde_json::Value::Null);
        if status == 200 {
            self.csrf = body["csrf"].as_str().unwrap().to_string();
        }
        (status, body)
    }

    pub async fn get(&self, path: &str) -> Answer {
        let req = self.http.get(format!("{}{path}", self.base)).header("accept", "application/json");
        Answer::checked("GET", path, self.credential(req, false).send().await.unwrap()).await
    }

    pub async fn get_page(&self, path: &str) -> Answer {
        let req = self.http.get(format!("{}{path}", self.base)).header("accept", "text/html");
        Answer::checked("GET", path, self.credential(req, false).send().await.unwrap()).await
    }

    pub async fn json(&self, path: &str) -> serde_json::Value {
        let r = self.get(path).await;
        assert_eq!(r.status(), 200, "GET {path}");
        r.json().await.unwrap()
    }

    pub async fn post(&self, path: &str, form: &[(&str, &str)]) -> Answer {
        let req = self.http.post(format!("{}{path}", self.base)).header("accept", "application/json");
        Answer::checked("POST", path, self.credential(req, true).form(form).send().await.unwrap()).await
    }

    /// Uploads a file. A photo upload waits for its full check (`Prefer: wait`), as most tests want the report;
    /// `upload_queued` does not.
    pub async fn upload(&self, path: &str, field: &str, name: &str, bytes: Vec<u8>) -> Answer {
        self.upload_with(path, field, name, bytes, Some("wait=60")).await
    }

    /// Uploads a photo and takes the immediate answer: the file rules and the place in the check queue.
    pub async fn upload_queued(&self, path: &str, name: &str, bytes: Vec<u8>) -> Answer {
        self.upload_with(path, "photo", name, bytes, None).await
    }

    async fn upload_with(&self, path: &str, field: &str, name: &str, bytes: Vec<u8>, prefer: Option<&str>) -> Answer {
        let part = reqwest::multipart::Part::bytes(bytes).file_name(name.to_string());
        let form = reqwest::multipart::Form::new().part(field.to_string(), part);
        let req = self.http.post(format!("{}{path}", self.base)).header("accept", "application/json");
        let mut req = self.credential(req, true);
        if let Some(p) = prefer {
            req = req.header("prefer", p);
        }
        Answer::checked("POST", path, req.multipart(form).send().await.unwrap()).await
    }
}

/// An answer read whole and checked against the published description before the test sees it: the route, its
/// status and its content type must be documented, and a JSON body must validate against the route's schema (which
/// forbids undocumented fields). Every request a test makes through [`Client`] is checked so.
pub struct Answer {
    status: reqwest::StatusCode,
    headers: reqwest::header::HeaderMap,
    body: bytes::Bytes,
}

impl Answer {
    async fn checked(method: &str, path: &str, r: reqwest::Response) -> Answer {
        let status = r.status();
        let headers = r.headers().clone();
        let body = r.bytes().await.unwrap();
        let answer = Answer { status, headers, body };
        let problems = answer.violations(method, path);
        assert!(
            problems.is_empty(),
            "{method} {path} answered outside /api/openapi.json:\n{}\n{}",
            problems.join("\n"),
            String::from_utf8_lossy(&answer.body[..answer.body.len().min(2000)])
        );
        answer
    }

    fn violations(&self, method: &str, path: &str) -> Vec<String> {
        let media = self.headers.get("content-type").and_then(|v| v.to_str().ok());
        violations(method, path, self.status.as_u16(), media, &self.body)
    }

    pub fn status(&self) -> reqwest::StatusCode {
        self.status
    }

    pub fn headers(&self) -> &reqwest::header::HeaderMap {
        &self.headers
    }

    pub async fn json<T: serde::de::DeserializeOwned>(self) -> serde_json::Result<T> {
        serde_json::from_slice(&self.body)
    }

    pub async fn text(self) -> Result<String, std::string::FromUtf8Error> {
        String::from_utf8(self.body.to_vec())
    }

    pub async fn bytes(self) -> Result<bytes::Bytes, std::convert::Infallible> {
        Ok(self.body)
    }
}

/// Waits (up to 20 s) until the service's own outbox worker has delivered a notification `want` accepts, and returns
/// the student's `/me` then. Tests do not deliver themselves: the worker claims rows with a lease, so a test's own
/// delivery pass may find the row held and return before the worker has written it.
pub async fn await_notice(c: &Client, want: impl Fn(&serde_json::Value) -> bool) -> serde_json::Value {
    let start = std::time::Instant::now();
    loop {
        let me = c.json("/me").await;
        if me["notifications"].as_array().is_some_and(|n| n.iter().any(&want)) {
            return me;
        }
        assert!(start.elapsed() < std::time::Duration::from_secs(20), "no such notice delivered: {me}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// GB 11643 numbers with valid check digits, one per serial.
pub fn id_number(serial: u32) -> String {
    gradphoto_web::with_check_digit(&format!("11010519900101{:03}", serial % 1000))
}

/// Studio originals (1500 × 2000, face 520 px wide) of the portraits labelled with lips closed and head upright:
/// photos a reviewer approves and normalisation can crop. Built once per test binary.
pub fn approvable_originals() -> &'static [(String, Vec<u8>)] {
    static CELL: OnceLock<Vec<(String, Vec<u8>)>> = OnceLock::new();
    CELL.get_or_init(|| {
        let models = gradphoto_eval::face_models(&gradphoto_testkit::models_data_dir()).expect("models");
        let portraits = gradphoto_testkit::shared_dir().join("testdata/portraits");
        gradphoto_eval::sources(&models, &portraits)
            .iter()
            .filter(|src| src.mouth_closed == Some(true) && !src.head_tilted)
            .map(|src| {
                let img = gradphoto_eval::studio_original(src, 1500, 2000, 520.0);
                let spec = JpegSpec { quality: 92, exif: Some(ExifSpec::camera().build()), ..Default::default() };
                (src.name.clone(), encode(&gradphoto_eval::to_image(&img), &spec))
            })
            .collect()
    })
}

/// A school `code` with the given fee and an admin `<code>-admin`, made through the API by a super-admin.
pub async fn school(server: &TestServer, superadmin: &Client, code: &str, fee: &str) -> gradphoto_store::SchoolId {
    let r = superadmin
        .post(
            "/admin/schools",
            &[
                ("province", "北京市"),
                ("city", "北京市"),
                ("code", code),
                ("name", &format!("{code} 大学")),
                ("fee", fee),
                ("admin_username", &format!("{code}-admin")),
                ("admin_password", &format!("{code}-admin-password")),
            ],
        )
        .await;
    assert_eq!(r.status(), 200, "create school: {}", r.text().await.unwrap());
    let _ = server;
    let v: serde_json::Value = r.json().await.unwrap();
    gradphoto_store::SchoolId(v["school"].as_i64().unwrap())
}

/// Makes an API token of `school` through an admin's session: its id and its secret (answered this once).
pub async fn api_token(
    admin: &Client,
    school: gradphoto_store::SchoolId,
    name: &str,
    scopes: &[&str],
) -> (i64, String) {
    let mut form = vec![("name", name)];
    form.extend(scopes.iter().map(|s| ("scope", *s)));
    let r = admin.post(&format!("/admin/schools/{school}/tokens"), &form).await;
    assert_eq!(r.status(), 200, "make a token");
    let v: serde_json::Value = r.json().await.unwrap();
    (v["token"]["id"].as_i64().unwrap(), v["token"]["secret"].as_str().unwrap().to_string())
}

/// A roster CSV of `n` students numbered from `first`.
pub fn roster_csv(first: u32, n: u32) -> String {
    let mut s = String::from("学号,姓名,证件类型,证件号码,学院,学历层次\n");
    for i in first..first + n {
        s.push_str(&format!("S{i:05},学生{i},居民身份证,{},计算机学院,本科\n", id_number(i)));
    }
    s
}
