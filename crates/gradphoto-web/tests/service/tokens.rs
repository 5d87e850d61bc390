//! API tokens against a real server: a school's own system runs the whole process with a token and no cookie at
//! all (roster, progress, review, export); and the token's secret is answered once and stored nowhere, revoking
//! works at once, the rate limit answers 429 with `Retry-After`, every use leaves one audit row, and a bearer request
//! needs no CSRF token, sets no cookie and outranks a cookie that comes with it.

use std::io::Read;

use crate::common::*;
use gradphoto_store::SchoolId;
use gradphoto_store::db::Role;
use serde_json::Value;

/// The audit rows of `token` that record its uses (`METHOD /route/{pattern}`), oldest first.
async fn uses(server: &TestServer, school: SchoolId, token: i64) -> Vec<String> {
    let actor = format!("token:{token}");
    let mut rows: Vec<String> = server
        .state
        .db
        .audit_log(Some(school), 1000)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.actor == actor && e.action.contains(" /"))
        .map(|e| e.action)
        .collect();
    rows.reverse();
    rows
}

fn sets_no_cookie(r: &Answer) {
    no_cookie_in(r.headers());
}

fn no_cookie_in(headers: &reqwest::header::HeaderMap) {
    assert!(headers.get("set-cookie").is_none(), "a token call set a cookie: {headers:?}");
}

async fn connect(url: &str) -> sqlx::SqliteConnection {
    use sqlx::Connection;
    sqlx::SqliteConnection::connect(url).await.unwrap()
}

async fn session_count(url: &str) -> i64 {
    let mut db = connect(url).await;
    sqlx::query_as::<_, (i64,)>("SELECT COUNT(*) FROM sessions").fetch_one(&mut db).await.unwrap().0
}

/// A super-admin, a school `code` (no fee) and its admin signed in.
async fn school_and_admin(server: &TestServer, code: &str) -> (SchoolId, Client) {
    server.staff("root", Role::SuperAdmin, None).await;
    let mut root = server.client();
    assert_eq!(root.login("/staff/login", "root", "root-password").await.0, 200);
    let school = school(server, &root, code, "0").await;
    let mut admin = server.client();
    assert_eq!(admin.login("/staff/login", &format!("{code}-admin"), &format!("{code}-admin-password")).await.0, 200);
    (school, admin)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_school_system_runs_roster_review_and_export_with_a_token_alone() {
    let server = TestServer::start().await;
    let (school, admin) = school_and_admin(&server, "tok").await;
    let (token_id, secret) = api_token(&admin, school, "教务系统", &["roster", "progress", "export", "review"]).await;
    let t = Client::with_token(&server.base, &secret);

    // The roster, pushed by the school's system.
    let r =
        t.upload(&format!("/admin/schools/{school}/roster"), "roster", "r.csv", roster_csv(1, 2).into_bytes()).await;
    assert_eq!(r.status(), 200);
    sets_no_cookie(&r);
    let import: Value = r.json().await.unwrap();
    assert_eq!(import["import"]["created"], 2, "{import}");

    // Progress: the one school it sees, and its counts.
    let schools = t.json("/admin").await;
    let ids: Vec<i64> = schools["schools"].as_array().unwrap().iter().map(|s| s["id"].as_i64().unwrap()).collect();
    assert_eq!(ids, [school.0]);
    let page = t.json(&format!("/admin/schools/{school}")).await;
    assert_eq!(page["progress"]["students"], 2, "{page}");

    // Two students sign in, upload and submit as always.
    let (mut submissions, mut students) = (Vec::new(), Vec::new());
    for serial in [1, 2] {
        let mut c = server.client();
        let id = id_number(serial);
        assert_eq!(c.login("/s/tok/login", &format!("S{serial:05}"), &id[id.len() - 6..]).await.0, 200);
        let ty = c.json("/me").await["types"][0]["id"].as_i64().unwrap();
        let originals = approvable_originals();
        let (name, bytes) = &originals[(serial as usize - 1) % originals.len()];
        let r = c.upload(&format!("/me/photos/{ty}"), "photo", name, bytes.clone()).await;
        assert_eq!(r.status(), 200);
        let photo = r.json::<Value>().await.unwrap()["photo"].as_i64().unwrap();
        let r = c.post(&format!("/me/photos/{ty}/submit"), &[("photo", &photo.to_string())]).await;
        assert_eq!(r.status(), 200);
        submissions.push(r.json::<Value>().await.unwrap()["submission"].as_i64().unwrap());
        students.push(c);
    }

    // Reviewed by the token: the queue, each submission with its photo, one approved and one rejected by rule id.
    let queue = t.json("/review").await;
    let queued: Vec<i64> =
        queue["items"].as_array().unwrap().iter().map(|i| i["submission"]["id"].as_i64().unwrap()).collect();
    assert_eq!(queued, submissions, "{queue}");
    let mut photos = Vec::new();
    for s in &submissions {
        let item = t.json(&format!("/review/{s}")).await;
        photos.push(item["item"]["submission"]["photo_id"].as_i64().unwrap().to_string());
    }
    let r = t.get(&format!("/review/{}/original.jpg", submissions[0])).await;
    assert_eq!((r.status().as_u16(), r.headers()["content-type"].to_str().unwrap()), (200, "image/jpeg"));
    let r = t.post(&format!("/review/{}/approve", submissions[0]), &[("photo", &photos[0])]).await;
    assert_eq!(r.status(), 200);
    sets_no_cookie(&r);
    assert_eq!(r.json::<Value>().await.unwrap()["status"], "approved");
    let r = t
        .post(
            &format!("/review/{}/reject", submissions[1]),
            &[("photo", &photos[1]), ("reason", "background.color"), ("note", "请换浅蓝色背景")],
        )
        .await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().await.unwrap()["status"], "rejected");
    let rejected = server.state.db.submission(gradphoto_store::SubmissionId(submissions[1])).await.unwrap();
    assert_eq!(rejected.reasons, "background.color");

    // The export holds the approved student's registered file under the id number, and not the rejected one.
    let r = t.get(&format!("/admin/schools/{school}/export.zip")).await;
    assert_eq!(r.status(), 200);
    let mut zip = zip::ZipArchive::new(std::io::Cursor::new(r.bytes().await.unwrap().to_vec())).unwrap();
    let mut names: Vec<String> = zip.file_names().map(|n| n.unwrap().to_string()).collect();
    names.sort();
    assert_eq!(names, [format!("{}.jpg", id_number(1)), "manifest.csv".to_string()]);
    let mut jpeg = Vec::new();
    zip.by_name(&format!("{}.jpg", id_number(1))).unwrap().read_to_end(&mut jpeg).unwrap();
    let r = students[0].get(&format!("/me/submissions/{}/registered.jpg", submissions[0])).await;
    assert_eq!(r.status(), 200);
    assert_eq!(jpeg, r.bytes().await.unwrap().to_vec(), "the registered file, as the student gets it");

    // One audit row per call, in order, under the token's name; the decisions themselves are the token's too.
    let calls = [
        "POST /admin/schools/{school}/roster",
        "GET /admin",
        "GET /admin/schools/{school}",
        "GET /review",
        "GET /review/{submission}",
        "GET /review/{submission}",
        "GET /review/{submission}/{file}",
        "POST /review/{submission}/approve",
        "POST /review/{submission}/reject",
        "GET /admin/schools/{school}/export.zip",
    ];
    assert_eq!(uses(&server, school, token_id).await, calls);
    let log = server.state.db.audit_log(Some(school), 1000).await.unwrap();
    for action in ["roster.import", "approve", "reject", "export"] {
        assert!(
            log.iter().any(|e| e.actor == format!("token:{token_id}") && e.action == action),
            "{action} is recorded as the token's"
        );
    }
    assert!(log.iter().all(|e| !e.detail.contains(&id_number(1)) && !e.detail.contains("学生")), "no personal data");
    let page = admin.json(&format!("/admin/schools/{school}")).await;
    assert!(page["tokens"][0]["last_used_at"].as_i64().is_some(), "{page}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_secret_is_shown_once_stored_hashed_revocable_rate_limited_and_needs_no_csrf() {
    let limit = 5;
    let server = TestServer::start_with(gradphoto_web::Config { token_rate_per_minute: limit, ..config() }).await;
    let (school, admin) = school_and_admin(&server, "sec").await;

    // Answered once in JSON: exactly id, name, scopes (in their order), secret.
    let r = admin
        .post(
            &format!("/admin/schools/{school}/tokens"),
            &[("name", "registrar"), ("scope", "review"), ("scope", "progress")],
        )
        .await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["cache-control"], "no-store");
    let made: Value = r.json().await.unwrap();
    let token = made["token"].as_object().unwrap();
    let mut keys: Vec<&str> = token.keys().map(String::as_str).collect();
    keys.sort();
    assert_eq!(keys, ["id", "name", "scopes", "secret"]);
    assert_eq!(made["token"]["scopes"], serde_json::json!(["progress", "review"]));
    let secret = made["token"]["secret"].as_str().unwrap().to_string();
    assert!(secret.starts_with("gpt_") && secret.len() == 4 + 43, "gpt_ + 32 bytes base64url: {secret}");
    let token_id = made["token"]["id"].as_i64().unwrap();

    // And once on the page, when made from the form.
    let r = admin
        .http
        .post(format!("{}/admin/schools/{school}/tokens", server.base))
        .header("accept", "text/html")
        .form(&[("name", "page-made"), ("scope", "export"), ("csrf", admin.csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!((r.status().as_u16(), r.headers()["cache-control"].to_str().unwrap()), (200, "no-store"));
    let page = r.text().await.unwrap();
    let page_secret = page.split("<code>").find_map(|p| p.strip_prefix("gpt_")).unwrap().split('<').next().unwrap();
    let page_secret = format!("gpt_{page_secret}");
    assert_eq!(page_secret.len(), secret.len(), "the page shows the new secret");

    // Never again: not in the school page (JSON or HTML), nor in the database (only its SHA-256 is).
    let listed = admin.json(&format!("/admin/schools/{school}")).await;
    let html = admin.get_page(&format!("/admin/schools/{school}")).await.text().await.unwrap();
    for s in [&secret, &page_secret] {
        assert!(!listed.to_string().contains(s.as_str()) && !html.contains(s.as_str()), "a secret shown twice");
    }
    let tokens = listed["tokens"].as_array().unwrap();
    assert_eq!(tokens.len(), 2);
    for t in tokens {
        assert!(t.get("secret").is_none() && t.get("token_hash").is_none(), "{t}");
        assert!(t["name"].is_string() && t["scopes"].is_array() && t["created_at"].is_i64(), "{t}");
    }
    assert!(html.contains("registrar") && html.contains("page-made"), "the page lists the tokens");
    let db_url = server.state.config.database_url(server.dir.path());
    let mut db = connect(&db_url).await;
    let row: (Vec<u8>, String) = sqlx::query_as("SELECT token_hash, scopes FROM api_tokens WHERE id = $1")
        .bind(token_id)
        .fetch_one(&mut db)
        .await
        .unwrap();
    assert_eq!(row, (gradphoto_web::auth::token_hash(&secret), "progress,review".to_string()));
    for file in ["gradphoto.db", "gradphoto.db-wal"] {
        let bytes = std::fs::read(server.dir.path().join(file)).unwrap_or_default();
        for s in [&secret, &page_secret] {
            assert!(!bytes.windows(s.len()).any(|w| w == s.as_bytes()), "the secret is stored in {file}");
        }
    }

    // A bearer call: no CSRF token, no cookie set, no session made — and JSON without asking for it.
    let before = session_count(&db_url).await;
    let (_, roster_secret) = api_token(&admin, school, "roster", &["roster"]).await;
    let machine = Client::with_token(&server.base, &roster_secret);
    let part = reqwest::multipart::Part::bytes(roster_csv(1, 1).into_bytes()).file_name("r.csv");
    let r = machine
        .http
        .post(format!("{}/admin/schools/{school}/roster", server.base))
        .bearer_auth(&roster_secret)
        .multipart(reqwest::multipart::Form::new().part("roster", part))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "no x-csrf-token needed");
    no_cookie_in(r.headers());
    assert!(r.headers()["content-type"].to_str().unwrap().starts_with("application/json"));
    assert_eq!(session_count(&db_url).await, before, "no session made");

    // Out of scope: 403 token.scope, even where its school's admin may go.
    let t = Client::with_token(&server.base, &secret);
    let r = t.get(&format!("/admin/schools/{school}/export.zip")).await;
    assert_eq!(r.status(), 403);
    assert_eq!(r.json::<Value>().await.unwrap()["error"]["code"], "token.scope");
    let r = t.post(&format!("/admin/schools/{school}/tokens"), &[("name", "x"), ("scope", "review")]).await;
    assert_eq!(r.status(), 403, "a token never makes tokens");
    let r = t.get("/healthz").await;
    assert_eq!(r.status(), 403, "routes without a scope are closed to tokens");

    // The bearer decides over a cookie that comes with it: the admin's own session cookie does not let a request
    // through that the token may not make, and needs no CSRF token only because the token is used.
    let with_cookie = |path: &str, bearer: &str| {
        admin
            .http
            .post(format!("{}{path}", server.base))
            .header("accept", "application/json")
            .bearer_auth(bearer)
            .form(&[("name", "x")])
    };
    let r = with_cookie(&format!("/admin/schools/{school}/settings"), &secret).send().await.unwrap();
    assert_eq!(r.status(), 403);
    assert_eq!(r.json::<Value>().await.unwrap()["error"]["code"], "token.scope");
    let r = with_cookie(&format!("/admin/schools/{school}/settings"), "gpt_not-a-token").send().await.unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(r.headers()["www-authenticate"], "Bearer error=\"invalid_token\"");
    assert_eq!(r.json::<Value>().await.unwrap()["error"]["code"], "token.invalid");
    assert_eq!(server.state.db.school(school).await.unwrap().name, "sec 大学", "nothing changed");

    // Refused calls are recorded as uses too, with why.
    let refused = uses(&server, school, token_id).await;
    assert_eq!(refused.len(), 4, "{refused:?}");

    // The rate, of a fresh token: `limit` calls in the window, then 429 with Retry-After and the error body, each
    // other token unaffected; a call over the rate is not recorded as a use.
    let (rated_id, rated_secret) = api_token(&admin, school, "rated", &["progress"]).await;
    let rated = Client::with_token(&server.base, &rated_secret);
    for i in 0..limit {
        assert_eq!(rated.get("/admin").await.status(), 200, "call {i}");
    }
    let r = rated.get("/admin").await;
    assert_eq!(r.status(), 429);
    let wait: i64 = r.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=60).contains(&wait), "{wait}");
    assert_eq!(r.json::<Value>().await.unwrap()["error"]["code"], "auth.rate_limited");
    assert_eq!(uses(&server, school, rated_id).await.len(), limit as usize);

    // Revoked: 401 at once, on every route, for its next call.
    let (revoked_id, revoked_secret) = api_token(&admin, school, "to revoke", &["progress"]).await;
    let r2 = Client::with_token(&server.base, &revoked_secret);
    assert_eq!(r2.get("/admin").await.status(), 200);
    let r = admin.post(&format!("/admin/schools/{school}/tokens/{revoked_id}/revoke"), &[]).await;
    assert_eq!(r.status(), 200);
    let answer = r.text().await.unwrap();
    assert!(!answer.contains(&revoked_secret) && answer.contains("revoked_at"), "{answer}");
    let r = r2.get("/admin").await;
    assert_eq!(r.status(), 401);
    assert_eq!(r.json::<Value>().await.unwrap()["error"]["code"], "token.invalid");
    let listed = admin.json(&format!("/admin/schools/{school}")).await;
    let entry = listed["tokens"].as_array().unwrap().iter().find(|t| t["id"] == revoked_id).unwrap().clone();
    assert!(entry["revoked_at"].as_i64().is_some(), "{entry}");
    // Made and revoked are in the audit log, without the name an admin typed.
    let log = server.state.db.audit_log(Some(school), 1000).await.unwrap();
    let made = log.iter().filter(|e| e.action == "token.create").count();
    let revoked = log.iter().filter(|e| e.action == "token.revoke").collect::<Vec<_>>();
    assert_eq!((made, revoked.len()), (5, 1));
    assert_eq!(revoked[0].detail, format!("token:{revoked_id}"));
    assert!(log.iter().all(|e| !e.detail.contains("registrar") && !e.detail.contains("to revoke")));

    // The description says so.
    let doc = admin.json("/api/openapi.json").await;
    assert_eq!(doc["components"]["securitySchemes"]["bearer"]["scheme"], "bearer");
    let approve = &doc["paths"]["/review/{submission}/approve"]["post"];
    assert_eq!(approve["security"], serde_json::json!([{ "session": [] }, { "bearer": ["review"] }]));
    let csrf = approve["parameters"].as_array().unwrap().iter().find(|p| p["name"] == "x-csrf-token").unwrap();
    assert_eq!(csrf["required"], false);
    let settings = &doc["paths"]["/admin/schools/{school}/settings"]["post"];
    assert_eq!(settings["security"], serde_json::json!([{ "session": [] }]));
}
