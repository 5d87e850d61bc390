//! Webhooks end to end: a real service on SQLite and a real receiver on 127.0.0.1 that records every request and
//! answers from a script. Signatures are checked here with `hmac` directly, not with the service's code. Retries
//! are made due by moving the row's `next_attempt_at` in the database, never by waiting out the backoff; the waits
//! below only poll for what the service's own worker does at once.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::common::*;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use gradphoto_store::db::Role;
use gradphoto_store::{OutboxId, SchoolId};
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

#[derive(Debug, Clone)]
struct Received {
    headers: HashMap<String, String>,
    body: String,
}

impl Received {
    fn delivery(&self) -> i64 {
        self.headers["x-gradphoto-delivery"].parse().expect("a numeric delivery id")
    }
}

/// A school's system: records what it is sent and answers the scripted statuses in turn, then 200.
#[derive(Clone, Default)]
struct Receiver {
    seen: Arc<Mutex<Vec<Received>>>,
    script: Arc<Mutex<VecDeque<u16>>>,
    /// When set, each answer waits for a permit: a receiver that hangs until the test lets it answer.
    gate: Option<Arc<tokio::sync::Semaphore>>,
}

impl Receiver {
    fn seen(&self) -> Vec<Received> {
        self.seen.lock().unwrap().clone()
    }

    async fn wait_for(&self, n: usize) -> Vec<Received> {
        until(&format!("{n} requests at the receiver"), async || Some(self.seen()).filter(|s| s.len() >= n)).await
    }
}

async fn receive(State(r): State<Receiver>, headers: HeaderMap, body: String) -> StatusCode {
    let headers = headers.iter().map(|(k, v)| (k.as_str().to_string(), v.to_str().unwrap_or("").to_string())).collect();
    r.seen.lock().unwrap().push(Received { headers, body });
    if let Some(gate) = &r.gate {
        gate.acquire().await.unwrap().forget();
    }
    let status = r.script.lock().unwrap().pop_front().unwrap_or(200);
    StatusCode::from_u16(status).unwrap()
}

async fn start_receiver(script: &[u16]) -> (String, Receiver) {
    serve_receiver(Receiver { script: Arc::new(Mutex::new(script.iter().copied().collect())), ..Receiver::default() })
        .await
}

async fn serve_receiver(r: Receiver) -> (String, Receiver) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let app = axum::Router::new().route("/hook", axum::routing::post(receive)).with_state(r.clone());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, r)
}

/// Polls `f` until it gives a value; what it waits for is the worker's next step, which comes at once.
async fn until<T>(what: &str, mut f: impl AsyncFnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(start.elapsed() < Duration::from_secs(60), "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn start() -> TestServer {
    start_with(crate::common::config()).await
}

async fn start_with(mut config: gradphoto_web::Config) -> TestServer {
    config.webhooks.allow_loopback_http = true;
    let server = TestServer::start_with(config).await;
    server.staff("root", Role::SuperAdmin, None).await;
    server
}

async fn signed_in(server: &TestServer, user: &str) -> Client {
    let mut c = server.client();
    assert_eq!(c.login("/staff/login", user, &format!("{user}-password")).await.0, 200, "{user}");
    c
}

/// The receiver's side: the signature verifies with `secret` (HMAC-SHA256 over `{timestamp}.{body}`, hex), the
/// headers agree with the body. Returns the body.
fn verify(secret: &str, r: &Received) -> serde_json::Value {
    assert_eq!(r.headers["content-type"], "application/json");
    let timestamp = &r.headers["x-gradphoto-timestamp"];
    assert!(signs(secret, r), "the signature verifies with the secret: {r:?}");
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
    assert!((now - timestamp.parse::<i64>().unwrap()).abs() < 600, "a current timestamp in seconds: {timestamp}");
    let body: serde_json::Value = serde_json::from_str(&r.body).unwrap();
    assert_eq!(body["id"].as_str(), Some(r.headers["x-gradphoto-delivery"].as_str()));
    assert_eq!(body["type"].as_str(), Some(r.headers["x-gradphoto-event"].as_str()));
    assert!(body["created_at"].as_i64().unwrap() > 1_000_000_000_000, "milliseconds");
    body
}

fn signs(secret: &str, r: &Received) -> bool {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(format!("{}.{}", r.headers["x-gradphoto-timestamp"], r.body).as_bytes());
    let expected = format!("v1={:x}", mac.finalize().into_bytes());
    r.headers["x-gradphoto-signature"] == expected
}

/// A webhook row of the outbox, as the database holds it.
#[derive(Debug, sqlx::FromRow)]
struct Row {
    id: i64,
    school_id: i64,
    kind: String,
    attempts: i64,
    delivered_at: Option<i64>,
    dead_at: Option<i64>,
}

impl Row {
    fn delivered(&self) -> bool {
        self.delivered_at.is_some()
    }

    fn dead(&self) -> bool {
        self.dead_at.is_some()
    }
}

/// The webhook rows of the outbox, oldest first, read from the database file.
async fn webhook_rows(server: &TestServer) -> Vec<Row> {
    let pool = sqlx::SqlitePool::connect(&format!("sqlite:{}", server.dir.path().join("gradphoto.db").display()))
        .await
        .unwrap();
    let rows = sqlx::query_as(
        "SELECT id, school_id, kind, attempts, delivered_at, dead_at FROM outbox WHERE channel = 'webhook' \
         ORDER BY id",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    pool.close().await;
    rows
}

/// Moves a row's next attempt to now, as the end of its backoff would, and wakes the worker.
async fn make_due(server: &TestServer, id: i64) {
    let pool = sqlx::SqlitePool::connect(&format!("sqlite:{}", server.dir.path().join("gradphoto.db").display()))
        .await
        .unwrap();
    sqlx::query("UPDATE outbox SET next_attempt_at = 0 WHERE id = ?").bind(id).execute(&pool).await.unwrap();
    pool.close().await;
    server.state.outbox_wake.notify_one();
}

async fn register(admin: &Client, school: SchoolId, url: &str) -> String {
    let r = admin.post(&format!("/admin/schools/{school}/webhook"), &[("url", url)]).await;
    assert_eq!(r.status(), 200);
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(v["webhook"]["url"], url);
    let secret = v["webhook"]["secret"].as_str().unwrap().to_string();
    assert!(secret.starts_with("whsec_") && secret.len() >= 6 + 43, "{secret}");
    secret
}

/// Downloads the export whole (the event is queued once the archive is written) and returns its bytes.
async fn export(admin: &Client, school: SchoolId) -> Vec<u8> {
    let r = admin.get(&format!("/admin/schools/{school}/export.zip")).await;
    assert_eq!(r.status(), 200);
    r.bytes().await.unwrap().to_vec()
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn decisions_and_exports_reach_the_school_signed_once_each_with_the_secret_shown_once() {
    let (url, receiver) = start_receiver(&[]).await;
    let server = start().await;
    let root = signed_in(&server, "root").await;
    let school = school(&server, &root, "wh", "0").await;
    let admin = signed_in(&server, "wh-admin").await;
    admin.upload(&format!("/admin/schools/{school}/roster"), "roster", "r.csv", roster_csv(1, 2).into_bytes()).await;
    server.staff("wh-rev", Role::Reviewer, Some(school)).await;
    let reviewer = signed_in(&server, "wh-rev").await;

    // https only (plain HTTP to this machine is allowed by this configuration); a reviewer may not register.
    let r = admin.post(&format!("/admin/schools/{school}/webhook"), &[("url", "http://hooks.example.edu.cn/gp")]).await;
    assert_eq!(r.status(), 400);
    assert_eq!(r.json::<serde_json::Value>().await.unwrap()["error"]["code"], "webhook.url");
    let r = reviewer.post(&format!("/admin/schools/{school}/webhook"), &[("url", url.as_str())]).await;
    assert_eq!(r.status(), 403);

    // Registered, then registered again: a new secret; the first no longer signs.
    let first = register(&admin, school, &url).await;
    let secret = register(&admin, school, &url).await;
    assert_ne!(first, secret, "registering again rotates the secret");

    // The secret is in that answer only: not on the school page (JSON or HTML), not in the audit log, not in the
    // database in the clear — the row holds it sealed, and the vault opens it.
    let page = admin.json(&format!("/admin/schools/{school}")).await;
    assert_eq!(page["webhook"]["url"], url.as_str());
    assert!(!page.to_string().contains(&secret) && !page.to_string().contains("whsec_"), "{page}");
    let html = admin.get_page(&format!("/admin/schools/{school}")).await.text().await.unwrap();
    // (The page escapes the URL's slashes: look for its host and port.)
    let host = url.trim_start_matches("http://").split('/').next().unwrap();
    assert!(html.contains(host), "the page shows the URL");
    assert!(!html.contains(&secret) && !html.contains("whsec_"), "the page shows no secret");
    let audit = server.state.db.audit_log(Some(school), 50).await.unwrap();
    let actions: Vec<&str> = audit.iter().map(|a| a.action.as_str()).collect();
    assert!(actions.contains(&"webhook.register") && actions.contains(&"webhook.rotate"), "{actions:?}");
    assert!(audit.iter().all(|a| !a.detail.contains("whsec_")));
    let row = server.state.db.webhook(school).await.unwrap().unwrap();
    assert!(!contains(&row.secret_cipher, secret.as_bytes()));
    let context = gradphoto_web::webhooks::secret_context(school);
    assert_eq!(server.state.vault.open(&context, &row.secret_cipher).unwrap(), secret);
    for file in ["gradphoto.db", "gradphoto.db-wal"] {
        if let Ok(bytes) = std::fs::read(server.dir.path().join(file)) {
            assert!(!contains(&bytes, secret.as_bytes()), "the secret in the clear in {file}");
        }
    }

    // Two students submit; one is approved, one rejected; the admin downloads the export.
    let mut subs = Vec::new();
    for (i, original) in approvable_originals().iter().take(2).enumerate() {
        let mut student = server.client();
        let id = id_number(i as u32 + 1);
        student.login("/s/wh/login", &format!("S{:05}", i + 1), &id[id.len() - 6..]).await;
        let t = student.json("/me").await["types"][0]["id"].as_i64().unwrap();
        let r = student.upload(&format!("/me/photos/{t}"), "photo", "p.jpg", original.1.clone()).await;
        assert_eq!(r.status(), 200);
        let photo = r.json::<serde_json::Value>().await.unwrap()["photo"].as_i64().unwrap().to_string();
        let r = student.post(&format!("/me/photos/{t}/submit"), &[("photo", &photo)]).await;
        assert_eq!(r.status(), 200);
        subs.push((r.json::<serde_json::Value>().await.unwrap()["submission"].as_i64().unwrap(), photo));
    }
    let r = reviewer.post(&format!("/review/{}/approve", subs[0].0), &[("photo", &subs[0].1)]).await;
    assert_eq!(r.status(), 200);
    let reject = [
        ("photo", subs[1].1.as_str()),
        ("reason", "background.color"),
        ("reason", "accessory.glasses"),
        ("note", "请摘掉眼镜"),
    ];
    let r = reviewer.post(&format!("/review/{}/reject", subs[1].0), &reject).await;
    assert_eq!(r.status(), 200);
    let zip = export(&admin, school).await;

    // Exactly those three events, each delivered once, in order, signed with the current secret only.
    let rows = until("three delivered events", async || {
        Some(webhook_rows(&server).await).filter(|r| r.len() == 3 && r.iter().all(Row::delivered))
    })
    .await;
    let kinds: Vec<&str> = rows.iter().map(|r| r.kind.as_str()).collect();
    assert_eq!(kinds, ["submission.approved", "submission.rejected", "export.created"]);
    assert!(rows.iter().all(|r| r.school_id == school.0 && r.attempts == 1 && !r.dead()));
    let seen = receiver.seen();
    assert_eq!(seen.iter().map(Received::delivery).collect::<Vec<_>>(), rows.iter().map(|r| r.id).collect::<Vec<_>>());
    let bodies: Vec<serde_json::Value> = seen.iter().map(|r| verify(&secret, r)).collect();
    assert!(seen.iter().all(|r| !signs(&first, r)), "the replaced secret signs nothing");
    for b in &bodies {
        assert_eq!(b["school"], "wh");
    }
    let (approved, rejected, exported) = (&bodies[0]["data"], &bodies[1]["data"], &bodies[2]["data"]);
    assert_eq!((approved["submission"].as_i64(), approved["student_no"].as_str()), (Some(subs[0].0), Some("S00001")));
    assert_eq!(approved["photo_type"], "degree");
    assert_eq!((rejected["submission"].as_i64(), rejected["student_no"].as_str()), (Some(subs[1].0), Some("S00002")));
    assert_eq!(rejected["reasons"], serde_json::json!(["background.color", "accessory.glasses"]));
    assert_eq!(rejected["note"], "请摘掉眼镜");
    assert_eq!(exported["photos"], 1);
    assert_eq!(exported["sha256"].as_str(), Some(format!("{:x}", Sha256::digest(&zip)).as_str()));
    // No personal data beyond the student number: no names, no id numbers.
    for r in &seen {
        for private in ["学生1", "学生2", &id_number(1), &id_number(2)] {
            assert!(!r.body.contains(private), "{private} in {}", r.body);
        }
    }
    let page = admin.json(&format!("/admin/schools/{school}")).await;
    assert!(page["webhook"]["last_delivered_at"].as_i64().is_some() && page["webhook"]["last_error"].is_null());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_are_retried_with_the_same_delivery_id_and_a_refusal_is_a_dead_letter_an_admin_resends() {
    // The first attempt fails (500), its retry passes; the next event is refused (410) until resent.
    let (url, receiver) = start_receiver(&[500, 200, 410]).await;
    let server = start().await;
    let root = signed_in(&server, "root").await;
    let other = school(&server, &root, "ot", "0").await;
    let school = school(&server, &root, "rt", "0").await;
    let admin = signed_in(&server, "rt-admin").await;
    let other_admin = signed_in(&server, "ot-admin").await;

    // Another school's admin can neither register nor remove this school's webhook, nor resend its events.
    let r = other_admin.post(&format!("/admin/schools/{school}/webhook"), &[("url", url.as_str())]).await;
    assert_eq!(r.status(), 403);
    let secret = register(&admin, school, &url).await;
    let r = other_admin.post(&format!("/admin/schools/{school}/webhook/delete"), &[]).await;
    assert_eq!(r.status(), 403);
    assert!(server.state.db.webhook(school).await.unwrap().is_some());
    let r = root.post("/admin/schools/999999/webhook", &[("url", url.as_str())]).await;
    assert_eq!(r.status(), 404);

    // 500: kept, and retried once due with the same delivery id and the same body.
    export(&admin, school).await;
    let first = receiver.wait_for(1).await[0].clone();
    let id = first.delivery();
    until("the failure recorded", async || {
        let rows = webhook_rows(&server).await;
        rows.iter().any(|r| r.id == id && r.attempts == 1 && !r.delivered() && !r.dead()).then_some(())
    })
    .await;
    let page = admin.json(&format!("/admin/schools/{school}")).await;
    assert_eq!(page["webhook"]["last_error"], "HTTP 500");
    assert!(page["dead_letters"].as_array().unwrap().is_empty(), "a 500 is retried, not given up");
    make_due(&server, id).await;
    let again = receiver.wait_for(2).await[1].clone();
    assert_eq!(again.delivery(), id, "a retry is the same delivery");
    assert_eq!(again.body, first.body);
    verify(&secret, &first);
    verify(&secret, &again);
    until("the retry delivered", async || {
        webhook_rows(&server).await.iter().any(|r| r.id == id && r.delivered()).then_some(())
    })
    .await;

    // 410: a dead letter at once, listed for the admin, resent by them, then delivered with the same id.
    export(&admin, school).await;
    let gone = receiver.wait_for(3).await[2].delivery();
    assert_ne!(gone, id, "each event its own delivery id");
    let dead = until("the dead letter", async || {
        let page = admin.json(&format!("/admin/schools/{school}")).await;
        page["dead_letters"].as_array().filter(|d| !d.is_empty()).cloned()
    })
    .await;
    assert_eq!((dead[0]["id"].as_i64(), dead[0]["channel"].as_str()), (Some(gone), Some("webhook")));
    assert_eq!((dead[0]["kind"].as_str(), dead[0]["last_error"].as_str()), (Some("export.created"), Some("HTTP 410")));
    assert!(dead[0]["student_no"].is_null());
    assert_eq!(receiver.seen().len(), 3, "a refusal is not retried");
    let r = other_admin.post(&format!("/admin/schools/{school}/outbox/{gone}/resend"), &[]).await;
    assert_eq!(r.status(), 403);
    let r = admin.post(&format!("/admin/schools/{school}/outbox/{gone}/resend"), &[]).await;
    assert_eq!(r.status(), 200);
    let resent = receiver.wait_for(4).await[3].clone();
    assert_eq!(resent.delivery(), gone);
    verify(&secret, &resent);
    until("the resent event delivered", async || {
        webhook_rows(&server).await.iter().any(|r| r.id == gone && r.delivered() && !r.dead()).then_some(())
    })
    .await;
    assert!(admin.json(&format!("/admin/schools/{school}")).await["dead_letters"].as_array().unwrap().is_empty());
    let item = server.state.db.outbox_item(OutboxId(gone)).await.unwrap();
    assert_eq!((item.school_id, item.student_id), (Some(school), None));

    // A school without a webhook gets no rows; nor does this one once its webhook is removed.
    export(&other_admin, other).await;
    let r = admin.post(&format!("/admin/schools/{school}/webhook/delete"), &[]).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<serde_json::Value>().await.unwrap()["removed"], true);
    assert!(admin.json(&format!("/admin/schools/{school}")).await["webhook"].is_null());
    export(&admin, school).await;
    let rows = webhook_rows(&server).await;
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert!(
        rows.iter().all(|r| r.school_id == school.0 && r.delivered() && !r.dead()),
        "nothing lost, nothing pending: {rows:?}"
    );
    assert_eq!(receiver.seen().len(), 4);
    let audit = server.state.db.audit_log(Some(school), 50).await.unwrap();
    assert!(audit.iter().any(|a| a.action == "webhook.delete"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_school_receiver_that_hangs_holds_up_no_students_message() {
    // The receiver takes every request and answers none until the test lets it; the service waits a minute for it.
    let gate = Arc::new(tokio::sync::Semaphore::new(0));
    let (url, receiver) = serve_receiver(Receiver { gate: Some(gate.clone()), ..Receiver::default() }).await;
    let mut config = crate::common::config();
    config.webhooks.timeout_secs = 60;
    let server = start_with(config).await;
    let root = signed_in(&server, "root").await;
    let school = school(&server, &root, "wz", "0").await;
    let admin = signed_in(&server, "wz-admin").await;
    admin.upload(&format!("/admin/schools/{school}/roster"), "roster", "r.csv", roster_csv(1, 2).into_bytes()).await;
    register(&admin, school, &url).await;
    let mut students = Vec::new();
    for (i, original) in approvable_originals().iter().take(2).enumerate() {
        let mut student = server.client();
        let id = id_number(i as u32 + 1);
        student.login("/s/wz/login", &format!("S{:05}", i + 1), &id[id.len() - 6..]).await;
        let t = student.json("/me").await["types"][0]["id"].as_i64().unwrap();
        let r = student.upload(&format!("/me/photos/{t}"), "photo", "p.jpg", original.1.clone()).await;
        let photo = r.json::<serde_json::Value>().await.unwrap()["photo"].as_i64().unwrap().to_string();
        students.push((student, t, photo));
    }
    // The first student is approved: the school's event goes out, and hangs at the receiver.
    let (first, t, photo) = &students[0];
    let r = first.post(&format!("/me/photos/{t}/submit"), &[("photo", photo)]).await;
    let submission = r.json::<serde_json::Value>().await.unwrap()["submission"].as_i64().unwrap();
    let r = admin.post(&format!("/review/{submission}/approve"), &[("photo", photo)]).await;
    assert_eq!(r.status(), 200);
    receiver.wait_for(1).await;
    // Meanwhile the second student submits: their message arrives while the school's receiver still hangs.
    let (second, t, photo) = &students[1];
    let r = second.post(&format!("/me/photos/{t}/submit"), &[("photo", photo)]).await;
    assert_eq!(r.status(), 200);
    await_notice(second, |n| n["title"].as_str().is_some_and(|t| t.contains("提交"))).await;
    let rows = webhook_rows(&server).await;
    assert!(rows.len() == 1 && !rows[0].delivered(), "the event still in flight: {rows:?}");
    // Let the receiver answer: the event is delivered, once.
    gate.add_permits(1);
    until("the event delivered", async || webhook_rows(&server).await.first().filter(|r| r.delivered()).map(|_| ()))
        .await;
    assert_eq!(receiver.seen().len(), 1);
}
