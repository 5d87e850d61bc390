//! Many nodes, one service (issue 12): three `gradphoto serve` processes on loopback ports share one PostgreSQL
//! database and one S3 bucket. Students' uploads and submits and a reviewer's approvals go round-robin over the
//! three; node 2 is SIGKILLed after a fixed number of acknowledged approvals, the load goes on over nodes 1 and 3,
//! and node 2 starts again under its name. Then: every acknowledged upload is there with its bytes, every approval
//! made exactly one sealed registered file, every message was delivered once, and after the nodes stop and one
//! sweeps with no grace, the bucket's files are exactly the rows. Needs `scripts/test.sh` (PostgreSQL and S3).
// Each client signs in from its own loopback address (127.0.1.x), which Linux routes and other systems may not.
#![cfg(target_os = "linux")]

use std::collections::{BTreeMap, HashSet};
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::support::{Photos, answer, id_number, photos, roster_csv, student_no};
use gradphoto_core::seal::{AesGcmSealer, verify_jpeg};
use gradphoto_store::blob::sha256_hex;
use gradphoto_store::{BlobKey, BlobStore, Db, S3Config, S3Store};
use reqwest::cookie::{CookieStore, Jar};
use serde_json::Value;

const STUDENTS: usize = 24;
const SCHOOL: &str = "nodes";
/// Node 2 (index 1) is killed once this many approvals have been acknowledged: a point in the load, not a time.
const KILL_AFTER_APPROVALS: usize = 4;
const KILLED: usize = 1;

struct Node {
    n: usize,
    data: PathBuf,
    logs: PathBuf,
    port: u16,
    child: Option<Child>,
    starts: usize,
}

/// Variables of the caller's environment a node must not take up: its config.toml and the test decide.
const VARS: [&str; 5] = [
    "GRADPHOTO_DATABASE_URL",
    "GRADPHOTO_STORE",
    "GRADPHOTO_LISTEN",
    "GRADPHOTO_RECOVERY_GRACE_SECS",
    "GRADPHOTO_BOOTSTRAP_ADMIN",
];

impl Node {
    fn new(root: &Path, n: usize, config: &str) -> Node {
        let data = root.join(format!("node-{n}"));
        std::fs::create_dir_all(&data).unwrap();
        std::fs::write(data.join("config.toml"), config).unwrap();
        // A port free now; the same one after a restart, as behind a proxy.
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        Node { n, data, logs: root.join("logs"), port, child: None, starts: 0 }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.logs.join(format!("node-{}-{}.log", self.n, self.starts))).unwrap_or_default()
    }

    /// Starts `gradphoto serve` under its stable node name and waits until it answers `/healthz`.
    async fn start(&mut self, env: &[(&str, &str)]) {
        self.starts += 1;
        let log = std::fs::File::create(self.logs.join(format!("node-{}-{}.log", self.n, self.starts))).unwrap();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_gradphoto"));
        cmd.arg("--data")
            .arg(&self.data)
            .args(["serve", "--listen", &format!("127.0.0.1:{}", self.port)])
            // The same name after a restart: the node takes back at once what its killed predecessor had claimed.
            .env("GRADPHOTO_NODE", format!("node-{}", self.n))
            .env("GRADPHOTO_MODELS", gradphoto_testkit::models_data_dir())
            .env("GRADPHOTO_COOKIE_SECURE", "false")
            .env("GRADPHOTO_LOG", "warn")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log);
        for v in VARS {
            cmd.env_remove(v);
        }
        cmd.envs(env.iter().copied());
        self.child = Some(cmd.spawn().expect("gradphoto serve starts"));
        let http = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(r) = http.get(format!("http://127.0.0.1:{}/healthz", self.port)).send().await
                && r.status() == 200
            {
                return;
            }
            if let Some(status) = self.child.as_mut().and_then(|c| c.try_wait().unwrap()) {
                panic!("node {} exited ({status}) while starting:\n{}", self.n, self.log());
            }
            assert!(Instant::now() < deadline, "node {} did not start:\n{}", self.n, self.log());
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// SIGKILL: no shutdown code runs.
    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The nodes' log files; their ends are printed when the test fails (dropped after the nodes, before the folder).
struct Logs(PathBuf);

impl Logs {
    fn read(&self) -> Vec<(String, String)> {
        let mut files: Vec<_> = std::fs::read_dir(&self.0).into_iter().flatten().flatten().map(|e| e.path()).collect();
        files.sort();
        files.iter().map(|f| (f.display().to_string(), std::fs::read_to_string(f).unwrap_or_default())).collect()
    }

    /// Warnings and errors, besides the accounts of start-up recovery and of claims taken back.
    fn complaints(&self) -> Vec<String> {
        let expected = |l: &str| l.contains("recovered unfinished writes") || l.contains("took back the claims");
        let complaint = |l: &&str| (l.contains(" WARN ") || l.contains(" ERROR ")) && !expected(l);
        let files = self.read();
        files.iter().flat_map(|(f, text)| text.lines().filter(complaint).map(move |l| format!("{f}: {l}"))).collect()
    }
}

impl Drop for Logs {
    fn drop(&mut self) {
        if std::thread::panicking() {
            for (f, text) in self.read() {
                let lines: Vec<&str> = text.lines().collect();
                eprintln!("--- {f} (last 60 lines)\n{}", lines[lines.len().saturating_sub(60)..].join("\n"));
            }
        }
    }
}

/// A name nothing else uses: the clock and this process.
fn unique() -> String {
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos() % 1_000_000_000_000;
    format!("{}{nanos}", std::process::id())
}

async fn postgres_database() -> String {
    use sqlx::Connection;
    let base = std::env::var("GRADPHOTO_TEST_POSTGRES").ok().filter(|s| !s.is_empty()).expect(
        "GRADPHOTO_TEST_POSTGRES is not set: run scripts/test.sh (it starts a private PostgreSQL) or name a server",
    );
    let name = format!("gp_nodes_{}", unique());
    let mut admin = sqlx::PgConnection::connect(&format!("{base}/postgres")).await.expect("connect to PostgreSQL");
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}"))).execute(&mut admin).await.unwrap();
    format!("{base}/{name}")
}

async fn s3_bucket() -> S3Config {
    let endpoint = std::env::var("GRADPHOTO_TEST_S3")
        .expect("GRADPHOTO_TEST_S3 is not set: run scripts/test.sh (it starts a private S3-compatible server)");
    let bucket = format!("gp-nodes-{}", unique());
    let r = reqwest::Client::new().put(format!("{endpoint}/{bucket}")).send().await.unwrap();
    assert!(r.status().is_success(), "create bucket: {}", r.status());
    S3Config { endpoint, bucket, region: "us-east-1".into(), access_key_id: None, secret_access_key: None }
}

const UPLOAD: usize = 0;
const SUBMIT: usize = 1;
const APPROVE: usize = 2;
const OTHER: usize = 3;
const KINDS: [&str; 4] = ["uploads", "submits", "approves", "other"];

#[derive(Default, Clone, Copy)]
struct Tally {
    ok: [usize; 4],
    refused: [usize; 4],
    /// Connection errors on the killed node, each then sent to the next node.
    on_killed: [usize; 4],
}

#[derive(Default)]
struct Cluster {
    bases: Vec<String>,
    next: AtomicUsize,
    /// From just before node 2's kill until it answers again: failures there are expected.
    down: AtomicBool,
    tally: Mutex<Tally>,
    /// Answers no request should get: 5xx, other 4xx than 409, a connection error on a live node.
    unexpected: Mutex<Vec<String>>,
}

/// Status and JSON body, or None when the request failed in a way no request should.
type Reply = Option<(u16, Value)>;

impl Cluster {
    /// Sends to the next node in turn; a request the killed node fails goes to the next node.
    async fn send(&self, kind: usize, make: impl Fn(&str) -> reqwest::RequestBuilder) -> Reply {
        let mut node = self.next.fetch_add(1, SeqCst) % self.bases.len();
        loop {
            let r = answer(make(&self.bases[node])).await;
            let mut t = self.tally.lock().unwrap();
            match r {
                Err(_) if node == KILLED && self.down.load(SeqCst) => {
                    t.on_killed[kind] += 1;
                    node = (node + 1) % self.bases.len();
                }
                Err(e) => {
                    self.unexpected.lock().unwrap().push(format!("{} on node {}: {e}", KINDS[kind], node + 1));
                    return None;
                }
                Ok((status, body)) => {
                    match status {
                        200 => t.ok[kind] += 1,
                        409 => t.refused[kind] += 1,
                        _ => self.unexpected.lock().unwrap().push(format!("{} {status}: {body}", KINDS[kind])),
                    }
                    return Some((status, body));
                }
            }
        }
    }
}

/// A browser: one cookie jar and CSRF token for every node (cookies are per host, not per port).
#[derive(Clone)]
struct Client {
    http: reqwest::Client,
    jar: Arc<Jar>,
    csrf: String,
}

impl Client {
    fn new(source: Ipv4Addr) -> Client {
        let jar = Arc::new(Jar::default());
        let http = reqwest::Client::builder()
            .cookie_provider(jar.clone())
            .redirect(reqwest::redirect::Policy::none())
            // Its own address, as phones have: the per-address sign-in limit is not what this test is about.
            .local_address(IpAddr::V4(source))
            // No kept-alive connections: none to node 2 goes stale across its kill and restart.
            .pool_max_idle_per_host(0)
            .timeout(Duration::from_secs(90))
            .build()
            .unwrap();
        Client { http, jar, csrf: String::new() }
    }

    fn cookie(&self, base: &str, name: &str) -> Option<String> {
        let header = self.jar.cookies(&base.parse().unwrap())?;
        header.to_str().ok()?.split("; ").find_map(|c| c.strip_prefix(&format!("{name}=")).map(str::to_string))
    }

    /// The sign-in page from one node, the sign-in itself on the next.
    async fn login(&mut self, cl: &Cluster, page: &str, user: &str, password: &str) {
        let (status, _) = cl.send(OTHER, |b| self.http.get(format!("{b}{page}"))).await.unwrap();
        assert_eq!(status, 200, "sign-in page {page}");
        let pre = self.cookie(&cl.bases[0], "gp_pre").expect("the sign-in page sets gp_pre");
        let form = [("username", user), ("password", password), ("csrf", pre.as_str())];
        let post = |b: &str| self.http.post(format!("{b}{page}")).header("accept", "application/json").form(&form);
        let (status, body) = cl.send(OTHER, post).await.unwrap();
        assert_eq!(status, 200, "sign in {user}: {body}");
        self.csrf = body["csrf"].as_str().unwrap().to_string();
    }

    async fn get(&self, cl: &Cluster, kind: usize, path: &str) -> Reply {
        cl.send(kind, |b| self.http.get(format!("{b}{path}")).header("accept", "application/json")).await
    }

    async fn post(&self, cl: &Cluster, kind: usize, path: &str, form: &[(&str, &str)]) -> Reply {
        let post = |b: &str| {
            let r = self.http.post(format!("{b}{path}")).header("accept", "application/json");
            r.header("x-csrf-token", &self.csrf).form(form)
        };
        cl.send(kind, post).await
    }

    /// With `wait`, the answer carries the full report (`Prefer: wait=60`); without, the file rules' report.
    async fn upload(&self, cl: &Cluster, path: &str, field: &str, bytes: &[u8], wait: bool) -> Reply {
        let post = |b: &str| {
            let part = reqwest::multipart::Part::bytes(bytes.to_vec()).file_name("IMG_0001.JPG");
            let form = reqwest::multipart::Form::new().part(field.to_string(), part);
            let r = self.http.post(format!("{b}{path}")).header("accept", "application/json");
            let r = r.header("x-csrf-token", &self.csrf).multipart(form);
            if wait { r.header("prefer", "wait=60") } else { r }
        };
        cl.send(UPLOAD, post).await
    }
}

/// One request, or two at once (a double tap or click), each to its own node.
async fn once_or_twice<F: Future<Output = Reply>>(twice: bool, send: impl Fn() -> F) -> Vec<Reply> {
    if twice {
        let (a, b) = tokio::join!(send(), send());
        vec![a, b]
    } else {
        vec![send().await]
    }
}

/// `field` of every answer 200.
fn ok_ids(answers: &[Reply], field: &str) -> Vec<i64> {
    answers.iter().flatten().filter(|a| a.0 == 200).filter_map(|a| a.1[field].as_i64()).collect()
}

/// Writes the service acknowledged with 200.
#[derive(Default)]
struct Ledger {
    /// Student and the photos of each tap (one upload, or two at once) answered 200.
    uploads: Vec<(usize, Vec<i64>)>,
    /// Student → submission.
    submissions: BTreeMap<usize, i64>,
    /// Submission → (student, photo).
    approved: BTreeMap<i64, (usize, i64)>,
}

struct Load {
    cl: Arc<Cluster>,
    type_id: i64,
    photos: Photos,
    ledger: Mutex<Ledger>,
    finished: AtomicUsize,
    double_submits: AtomicUsize,
    double_approves: AtomicUsize,
}

impl Load {
    fn fault(&self, what: String) {
        self.cl.unexpected.lock().unwrap().push(what);
    }

    fn approvals(&self) -> usize {
        self.ledger.lock().unwrap().approved.len()
    }

    /// Waits for `n` acknowledged approvals: points of the load, not moments.
    async fn wait_approvals(&self, n: usize) -> bool {
        let deadline = Instant::now() + Duration::from_secs(90);
        while self.approvals() < n {
            if Instant::now() > deadline {
                self.fault(format!("{} approvals after 90 s, waiting for {n}", self.approvals()));
                return false;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        true
    }

    /// Long-polls until the student's latest photo is checked; returns its id.
    async fn wait_checked(&self, c: &Client) -> Option<i64> {
        let path = format!("/me/photos/{}/check?wait=20", self.type_id);
        let deadline = Instant::now() + Duration::from_secs(90);
        while Instant::now() < deadline {
            match c.get(&self.cl, OTHER, &path).await {
                Some((200, v)) if v["checking"] == false => return v["photo"].as_i64(),
                Some((200, _)) => {}
                _ => return None,
            }
        }
        self.fault("a photo still checking after 90 s".into());
        None
    }
}

/// One student: perhaps a first try, an original (every fifth student taps twice), submit (every third with a
/// double click), then wait for the decision; a rejection sends the student round again.
async fn student(load: Arc<Load>, i: usize, c: Client) {
    // Students come in waves as approvals go on, so that uploads and checks are running when node 2 is killed.
    if !load.wait_approvals(i / 4).await {
        return;
    }
    let (cl, t) = (&*load.cl, load.type_id);
    let (upload, submit) = (format!("/me/photos/{t}"), format!("/me/photos/{t}/submit"));
    for round in 0..3 {
        if round == 0 && i.is_multiple_of(3) {
            let answer = c.upload(cl, &upload, "photo", &load.photos.junk, false).await;
            load.ledger.lock().unwrap().uploads.push((i, ok_ids(&[answer], "photo")));
        }
        let original = &load.photos.originals[(i + round) % load.photos.originals.len()];
        // Half wait for the full report in the answer, half poll for it as the photo page does.
        let wait = i.is_multiple_of(2);
        let answers = once_or_twice(i.is_multiple_of(5), || c.upload(cl, &upload, "photo", original, wait)).await;
        load.ledger.lock().unwrap().uploads.push((i, ok_ids(&answers, "photo")));
        if answers.iter().any(|a| a.as_ref().is_none_or(|a| a.0 != 200)) {
            return;
        }
        // The photo the page shows, as a student submits it: of two uploads at once, the one committed last is
        // kept, and on PostgreSQL that need not be the one with the higher id.
        let Some(photo) = load.wait_checked(&c).await else { return };
        let p = photo.to_string();
        let form = [("photo", p.as_str())];
        let mut submitted = None;
        // A photo another node is still checking is refused (409): wait for the check, then submit again.
        for _ in 0..5 {
            if load.wait_checked(&c).await.is_none() {
                return;
            }
            let answers = once_or_twice(i % 3 == 1, || c.post(cl, SUBMIT, &submit, &form)).await;
            let ids = ok_ids(&answers, "submission");
            if ids.len() == 2 {
                assert_eq!(ids[0], ids[1], "a double submit makes one submission");
                load.double_submits.fetch_add(1, SeqCst);
            }
            if let Some(&s) = ids.first() {
                submitted = Some(s);
                break;
            }
        }
        let Some(submission) = submitted else { return load.fault(format!("{} could not submit", student_no(i))) };
        load.ledger.lock().unwrap().submissions.insert(i, submission);
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let Some((200, me)) = c.get(cl, OTHER, "/me").await else { return };
            match me["types"][0]["status"].as_str() {
                Some("approved") => return,
                Some("rejected") => break,
                _ if Instant::now() > deadline => return load.fault(format!("{} never decided", student_no(i))),
                _ => tokio::time::sleep(Duration::from_millis(400)).await,
            }
        }
    }
}

/// The reviewer: approves the queue's first item, every fourth one twice at once (on two nodes); rejects what
/// normalisation cannot crop.
async fn review(load: Arc<Load>, c: Client) {
    let cl = &*load.cl;
    let mut n = 0;
    while load.finished.load(SeqCst) < STUDENTS {
        let Some((200, q)) = c.get(cl, OTHER, "/review").await else { return };
        let Some(item) = q["items"].as_array().and_then(|a| a.first()).cloned() else {
            tokio::time::sleep(Duration::from_millis(150)).await;
            continue;
        };
        n += 1;
        let id = item["submission"]["id"].as_i64().unwrap();
        let p = item["submission"]["photo_id"].as_i64().unwrap().to_string();
        let who = item["student_no"].as_str().unwrap().trim_start_matches('S').parse::<usize>().unwrap() - 1;
        let (path, form) = (format!("/review/{id}/approve"), [("photo", p.as_str())]);
        let answers = once_or_twice(n % 4 == 0, || c.post(cl, APPROVE, &path, &form)).await;
        load.double_approves.fetch_add(answers.len() - 1, SeqCst);
        match answers.iter().flatten().filter(|a| a.0 == 200).count() {
            0 => {}
            1 => {
                load.ledger.lock().unwrap().approved.insert(id, (who, p.parse().unwrap()));
            }
            _ => load.fault(format!("submission {id} approved twice")),
        }
        if answers.iter().flatten().any(|a| a.1["error"]["code"] == "approve.normalise") {
            let form = [("photo", p.as_str()), ("reason", "background.color")];
            c.post(cl, OTHER, &format!("/review/{id}/reject"), &form).await;
        }
    }
}

/// Through the nodes in turn: a school, its roster and a reviewer; every student signed in. Returns the reviewer,
/// the students and the photo type.
async fn set_up(cl: &Cluster) -> (Client, Vec<Client>, i64) {
    let mut root = Client::new(Ipv4Addr::new(127, 0, 0, 2));
    root.login(cl, "/staff/login", "root", "root-password").await;
    let school_form = [
        ("province", "北京市"),
        ("city", "北京市"),
        ("code", SCHOOL),
        ("name", "多节点大学"),
        ("fee", "0"),
        ("admin_username", "nodes-admin"),
        ("admin_password", "nodes-admin-password"),
    ];
    let (status, v) = root.post(cl, OTHER, "/admin/schools", &school_form).await.unwrap();
    assert_eq!(status, 200, "{v}");
    let school = v["school"].as_i64().unwrap();
    let mut admin = Client::new(Ipv4Addr::new(127, 0, 0, 3));
    admin.login(cl, "/staff/login", "nodes-admin", "nodes-admin-password").await;
    let roster = roster_csv(STUDENTS).into_bytes();
    let (status, v) =
        admin.upload(cl, &format!("/admin/schools/{school}/roster"), "roster", &roster, false).await.unwrap();
    assert_eq!((status, v["import"]["created"].as_u64()), (200, Some(STUDENTS as u64)), "{v}");
    let form = [("username", "nodes-reviewer"), ("password", "nodes-reviewer-password"), ("role", "reviewer")];
    let (status, v) = admin.post(cl, OTHER, &format!("/admin/schools/{school}/staff"), &form).await.unwrap();
    assert_eq!(status, 200, "{v}");
    let mut reviewer = Client::new(Ipv4Addr::new(127, 0, 0, 4));
    reviewer.login(cl, "/staff/login", "nodes-reviewer", "nodes-reviewer-password").await;
    let mut students = Vec::new();
    for i in 0..STUDENTS {
        let mut c = Client::new(Ipv4Addr::new(127, 0, 1, i as u8 + 1));
        let id = id_number(i);
        c.login(cl, &format!("/s/{SCHOOL}/login"), &student_no(i), &id[id.len() - 6..]).await;
        students.push(c);
    }
    // What the load rests on: one jar holds the session for every node (cookies are per host, not per port), and
    // a session made on one node is good on every node.
    for base in &cl.bases {
        assert!(students[0].cookie(base, gradphoto_web::auth::SESSION_COOKIE).is_some(), "cookie for {base}");
        let r = students[0].http.get(format!("{base}/me")).header("accept", "application/json").send().await.unwrap();
        assert_eq!(r.status(), 200, "the session on {base}");
    }
    let (_, me) = students[0].get(cl, OTHER, "/me").await.unwrap();
    (reviewer, students, me["types"][0]["id"].as_i64().unwrap())
}

async fn scalar(pool: &sqlx::PgPool, sql: &'static str) -> i64 {
    sqlx::query_scalar::<_, i64>(sql).fetch_one(pool).await.unwrap()
}

fn keys(listed: &[gradphoto_store::blob::Listed]) -> HashSet<String> {
    listed.iter().map(|l| l.key.to_string()).collect()
}

/// `field=<number>` in a log line.
fn log_field(line: &str, name: &str) -> usize {
    let at = line.find(&format!("{name}=")).map_or(line.len(), |p| p + name.len() + 1);
    line[at..].chars().take_while(char::is_ascii_digit).collect::<String>().parse().unwrap_or(0)
}

/// Polls `count` until it is 0, for at most a minute.
async fn until_zero(what: &str, count: impl AsyncFn() -> i64) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while count().await > 0 {
        assert!(Instant::now() < deadline, "{what} after 60 s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The database and the bucket, quiet (nothing checking, nothing undelivered), against every invariant; panics on
/// the first one broken. Returns the blob rows' keys.
async fn check_consistent(
    (url, pool): (&str, &sqlx::PgPool),
    store: &S3Store,
    sealer: &AesGcmSealer,
    ledger: &Ledger,
) -> HashSet<String> {
    let approved = scalar(pool, "SELECT COUNT(*) FROM submissions WHERE status = 'approved'").await;
    assert_eq!(approved, STUDENTS as i64, "every student approved");
    assert_eq!(ledger.approved.len() as i64, approved, "every approval acknowledged once");
    let checks = [
        ("photos still checking", "SELECT COUNT(*) FROM photos WHERE checked_at IS NULL"),
        (
            "messages undelivered or dead",
            "SELECT COUNT(*) FROM outbox WHERE delivered_at IS NULL OR dead_at IS NOT NULL",
        ),
        (
            "site messages not in an inbox",
            "SELECT COUNT(*) FROM outbox o WHERE o.channel = 'site' \
             AND NOT EXISTS (SELECT 1 FROM notifications n WHERE n.outbox_id = o.id)",
        ),
        (
            "inbox rows besides the site messages",
            "SELECT (SELECT COUNT(*) FROM notifications) - (SELECT COUNT(*) FROM outbox WHERE channel = 'site')",
        ),
        (
            "approvals without exactly one message",
            "SELECT COUNT(*) FROM submissions s WHERE s.status = 'approved' AND (SELECT COUNT(*) FROM outbox o \
             WHERE o.kind = 'approved' AND (o.payload::json->>'submission')::bigint = s.id) <> 1",
        ),
        // Normalised and sealed once per approval: no second registered file from a double approve or a retry.
        (
            "registered files besides one per approval",
            "SELECT (SELECT COUNT(*) FROM blobs WHERE kind = 'registered') - (SELECT COUNT(*) FROM submissions \
             WHERE status = 'approved' AND registered_key IS NOT NULL)",
        ),
    ];
    for (what, sql) in checks {
        assert_eq!(scalar(pool, sql).await, 0, "{what}");
    }
    let db = Db::connect(url).await.unwrap();
    assert_eq!(db.dangling_references().await.unwrap(), 0, "rows naming keys without a blob row");
    db.close().await;

    // Before any sweep: every row's file is there (staged-but-named counts: reads fall back to staging) and holds
    // the bytes its row recorded.
    let blobs: Vec<(String, i64, String)> =
        sqlx::query_as("SELECT key, bytes, sha256 FROM blobs").fetch_all(pool).await.unwrap();
    let present: HashSet<String> = &keys(&store.staged().await.unwrap()) | &keys(&store.published().await.unwrap());
    for (key, bytes, sha) in &blobs {
        assert!(present.contains(key), "{key} has a row and no file");
        let file = store.get(&BlobKey::parse(key).unwrap()).await.unwrap();
        assert_eq!((file.len() as i64, &sha256_hex(&file)), (*bytes, sha), "{key} is damaged");
    }
    // Every acknowledged upload is there, or was replaced: by the other upload of its tap, or by a later photo.
    let photos: Vec<(i64, String)> = sqlx::query_as(
        "SELECT p.id, st.student_no FROM photos p JOIN students st ON st.id = p.student_id \
         JOIN blobs b ON b.key = p.original_key",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    for (i, tap) in ledger.uploads.iter().filter(|u| !u.1.is_empty()) {
        let no = student_no(*i);
        let kept = photos.iter().any(|p| tap.contains(&p.0) && p.1 == no);
        let replaced = photos.iter().any(|p| p.0 > *tap.iter().max().unwrap() && p.1 == no);
        assert!(kept || replaced, "acknowledged photos {tap:?} of {no} lost");
    }
    let submissions: Vec<(i64, i64, String, String, Option<String>)> = sqlx::query_as(
        "SELECT s.id, s.photo_id, s.status, st.student_no, s.registered_key FROM submissions s \
         JOIN students st ON st.id = s.student_id",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    let of = |no: &str| submissions.iter().find(|s| s.3 == no).unwrap_or_else(|| panic!("{no}: submission lost"));
    for (&i, &submission) in &ledger.submissions {
        assert_eq!(of(&student_no(i)).0, submission, "{}: acknowledged submission", student_no(i));
    }
    // Every acknowledged approval stands, with a registered file sealed for its student.
    for (&submission, &(i, photo)) in &ledger.approved {
        let s = of(&student_no(i));
        assert_eq!((s.0, s.1, s.2.as_str()), (submission, photo, "approved"), "approval of {submission}");
        let file = store.get(&BlobKey::parse(s.4.as_ref().unwrap()).unwrap()).await.unwrap();
        let (identity, _) = verify_jpeg(&file, sealer).unwrap_or_else(|e| panic!("submission {submission}: {e}"));
        assert_eq!(
            (identity.id_number, identity.student_no, identity.school),
            (id_number(i), student_no(i), SCHOOL.into())
        );
    }
    blobs.into_iter().map(|b| b.0).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_one_service_and_a_node_killed_under_load() {
    let started = Instant::now();
    let photos = tokio::task::spawn_blocking(photos);
    let (database_url, s3) = (postgres_database().await, s3_bucket().await);
    let root_dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(root_dir.path().join("logs")).unwrap();
    let logs = Logs(root_dir.path().join("logs"));
    let config = format!(
        "database_url = {database_url:?}\n[s3]\nendpoint = {:?}\nbucket = {:?}\nregion = \"us-east-1\"\n",
        s3.endpoint, s3.bucket
    );
    let mut nodes: Vec<Node> = (1..=3).map(|n| Node::new(root_dir.path(), n, &config)).collect();
    nodes[0].start(&[("GRADPHOTO_BOOTSTRAP_ADMIN", "root:root-password")]).await;
    // Every node seals and encrypts with the same keys.
    for n in &nodes[1..] {
        std::fs::copy(nodes[0].data.join("keys.toml"), n.data.join("keys.toml")).unwrap();
    }
    let (a, b) = nodes.split_at_mut(2);
    tokio::join!(a[1].start(&[]), b[0].start(&[]));
    let bases = nodes.iter().map(|n| format!("http://127.0.0.1:{}", n.port)).collect();
    let cl = Arc::new(Cluster { bases, ..Default::default() });
    let (reviewer, students, type_id) = set_up(&cl).await;
    let secrets = gradphoto_web::secrets::Secrets::load_or_create(&nodes[0].data).unwrap().0;
    let sealer = AesGcmSealer::from_spec(secrets.seal_keys.trim()).unwrap();
    let pool = sqlx::postgres::PgPoolOptions::new().max_connections(4).connect(&database_url).await.unwrap();
    let store = S3Store::open(&s3).unwrap();
    let load = Arc::new(Load {
        cl: cl.clone(),
        type_id,
        photos: photos.await.unwrap(),
        ledger: Mutex::new(Ledger::default()),
        finished: AtomicUsize::new(0),
        double_submits: AtomicUsize::new(0),
        double_approves: AtomicUsize::new(0),
    });
    eprintln!("set-up: 3 nodes, {STUDENTS} students signed in, {:.1} s", started.elapsed().as_secs_f64());

    let load_started = Instant::now();
    let mut tasks: Vec<_> = (students.into_iter().enumerate())
        .map(|(i, c)| {
            let load = load.clone();
            tokio::spawn(async move {
                student(load.clone(), i, c).await;
                load.finished.fetch_add(1, SeqCst);
            })
        })
        .collect();
    tasks.push(tokio::spawn(review(load.clone(), reviewer)));

    // Node 2 goes down at a fixed point of the load: after so many approvals, at the first look that finds it has
    // just claimed a check (or after 10 s), so that the kill most likely cuts a check short.
    assert!(load.wait_approvals(KILL_AFTER_APPROVALS).await, "{:?}", cl.unexpected.lock());
    let fresh = "SELECT COUNT(*) FROM photos WHERE check_owner = 'node-2' AND checked_at IS NULL \
                 AND check_lease_until > $1";
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        let just_claimed = gradphoto_store::now_ms() + gradphoto_web::checks::LEASE_MS - 50;
        if sqlx::query_scalar::<_, i64>(fresh).bind(just_claimed).fetch_one(&pool).await.unwrap() > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    cl.down.store(true, SeqCst);
    let killed_at = Instant::now();
    nodes[KILLED].kill();
    // The load goes on over nodes 1 and 3 for a few approvals before node 2 comes back.
    assert!(load.wait_approvals(KILL_AFTER_APPROVALS + 3).await, "{:?}", cl.unexpected.lock());
    // What node 2 left claimed, read once whatever it sent before it died has landed.
    let (outbox, checks) = (
        "SELECT id FROM outbox WHERE lease_owner = 'node-2' AND delivered_at IS NULL AND dead_at IS NULL",
        "SELECT id FROM photos WHERE check_owner = 'node-2' AND checked_at IS NULL",
    );
    let ids = async |sql| sqlx::query_scalar::<_, i64>(sql).fetch_all(&pool).await.unwrap();
    let (claimed_outbox, claimed_checks) = (ids(outbox).await, ids(checks).await);
    let down_for = killed_at.elapsed();
    nodes[KILLED].start(&[]).await;
    cl.down.store(false, SeqCst);
    let log = nodes[KILLED].log();
    let taken_back = log.lines().find(|l| l.contains("took back the claims")).map_or(0, |l| log_field(l, "claims"));
    // How long node 2's claims waited after the kill until some node finished them.
    let open = "SELECT (SELECT COUNT(*) FROM outbox WHERE id = ANY($1) AND delivered_at IS NULL) + \
                (SELECT COUNT(*) FROM photos WHERE id = ANY($2) AND checked_at IS NULL)";
    let q = async || sqlx::query_scalar(open).bind(&claimed_outbox).bind(&claimed_checks).fetch_one(&pool).await;
    until_zero("node 2's claims open", async || q().await.unwrap()).await;
    let claims_waited = killed_at.elapsed();

    for t in tasks {
        tokio::time::timeout(Duration::from_secs(180), t).await.expect("the load ends").expect("no load task failed");
    }
    let load_time = load_started.elapsed();
    let unexpected = cl.unexpected.lock().unwrap().clone();
    assert!(unexpected.is_empty(), "answers no request should get: {unexpected:#?}");
    // Quiet: every check done and every message delivered, on whichever node.
    let pending = "SELECT (SELECT COUNT(*) FROM photos WHERE checked_at IS NULL) + \
                   (SELECT COUNT(*) FROM outbox WHERE delivered_at IS NULL AND dead_at IS NULL)";
    until_zero("checks or messages pending", async || scalar(&pool, pending).await).await;
    let ledger = std::mem::take(&mut *load.ledger.lock().unwrap());
    let named = check_consistent((&database_url, &pool), &store, &sealer, &ledger).await;
    // Each student's drafts go with the next upload; every student is approved, so any draft left is one of two
    // uploads at once that both were kept (neither saw the other's row before the student's row was locked).
    let drafts_left: Vec<String> = sqlx::query_scalar(
        "SELECT st.student_no FROM photos p JOIN students st ON st.id = p.student_id \
         WHERE NOT EXISTS (SELECT 1 FROM submissions s WHERE s.photo_id = p.id) ORDER BY 1",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert!(drafts_left.is_empty(), "drafts kept beside approved photos: {drafts_left:?}");

    // Every node stops; one starts with no grace and sweeps what the kill left. Then the files are the rows.
    for n in &mut nodes {
        n.kill();
    }
    nodes[0].start(&[("GRADPHOTO_RECOVERY_GRACE_SECS", "0")]).await;
    let sweep = nodes[0].log().lines().find(|l| l.contains("recovered unfinished writes")).unwrap_or("").to_string();
    nodes[0].kill();
    assert_eq!(log_field(&sweep, "missing"), 0, "{sweep}");
    let staged = store.staged().await.unwrap();
    assert!(staged.is_empty(), "staged after the sweep: {staged:?}");
    assert_eq!(keys(&store.published().await.unwrap()), named, "published files = blob rows");
    pool.close().await;

    let t = *cl.tally.lock().unwrap();
    let complaints = logs.complaints();
    let per_kind = |c: [usize; 4]| KINDS.iter().zip(c).map(|(k, n)| format!("{n} {k}")).collect::<Vec<_>>().join(", ");
    eprintln!(
        "nodes: {STUDENTS} students over 3 nodes, load {:.1} s; acknowledged {}; 409 {}; failed on the killed node \
         (sent on) {}; {} double submits, {} double approves; node 2 killed after {KILL_AFTER_APPROVALS} approvals, \
         down {:.1} s, its claims ({} messages, {} checks; {taken_back} taken back at restart) done {:.1} s after \
         the kill; {} blob rows = files; sweep: {}; drafts left beside approved photos: {drafts_left:?}; warnings in the nodes' logs: {}; {:.1} s in all",
        load_time.as_secs_f64(),
        per_kind(t.ok),
        per_kind(t.refused),
        per_kind(t.on_killed),
        load.double_submits.load(SeqCst),
        load.double_approves.load(SeqCst),
        down_for.as_secs_f64(),
        claimed_outbox.len(),
        claimed_checks.len(),
        claims_waited.as_secs_f64(),
        named.len(),
        sweep.split("writes").nth(1).map_or("nothing left", str::trim),
        complaints.len(),
        started.elapsed().as_secs_f64()
    );
    for c in &complaints {
        eprintln!("  {c}");
    }
}
