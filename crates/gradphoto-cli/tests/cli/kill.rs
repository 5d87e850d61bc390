//! "Nothing lost": the real `gradphoto serve` under load — thirty students uploading studio originals (some
//! tapping twice) and submitting (some with a double click), a reviewer approving — is killed with SIGKILL at five
//! different moments and restarted on the same data folder each time. After every restart the data must be whole:
//! every file a row names is published and intact, nothing is left staged, no published file lacks a row, approved
//! submissions carry registered files whose seal verifies, every write the server acknowledged is still there, and
//! the API goes on working (an interrupted student uploads and submits again; a double submit makes one submission).
// Each client signs in from its own loopback address (127.0.1.x), which Linux routes and other systems may not.
#![cfg(target_os = "linux")]

use std::collections::{BTreeMap, HashSet};
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::support::{Answer, Photos, answer, id_number, photos, roster_csv, student_no};
use gradphoto_core::seal::{AesGcmSealer, verify_jpeg};
use gradphoto_store::blob::sha256_hex;
use gradphoto_store::{BlobStore, Db, LocalStore};
use reqwest::cookie::{CookieStore, Jar};
use serde_json::Value;

const STUDENTS: usize = 30;
/// Students outside the load, one per round: the API step after a restart uses round r's when every student of
/// the load is already approved (the load can get that far before a late kill).
const RESERVE: usize = MOMENTS.len();
const SCHOOL: &str = "kill";

// ---------------------------------------------------------------------------------------------------------------
// The server as a child process
// ---------------------------------------------------------------------------------------------------------------

struct Server {
    data: PathBuf,
    logs: PathBuf,
    port: u16,
    child: Option<Child>,
    starts: usize,
}

impl Server {
    fn new(root: &Path) -> Server {
        // A port free now; the same one after every restart, so that clients keep their cookies and addresses.
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        Server { data: root.join("data"), logs: root.to_path_buf(), port, child: None, starts: 0 }
    }

    fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn log(&self, start: usize) -> String {
        std::fs::read_to_string(self.logs.join(format!("server-{start}.log"))).unwrap_or_default()
    }

    /// Starts `gradphoto serve` and waits until it answers `/healthz`.
    async fn start(&mut self) {
        self.starts += 1;
        let log = std::fs::File::create(self.logs.join(format!("server-{}.log", self.starts))).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_gradphoto"))
            .arg("--data")
            .arg(&self.data)
            .args(["serve", "--listen", &format!("127.0.0.1:{}", self.port)])
            .env("GRADPHOTO_BOOTSTRAP_ADMIN", "root:root-password")
            .env("GRADPHOTO_MODELS", gradphoto_testkit::models_data_dir())
            .env("GRADPHOTO_COOKIE_SECURE", "false")
            // Warnings carry recovery's summary; errors carry any request that failed inside.
            .env("GRADPHOTO_LOG", "warn")
            .env("NO_COLOR", "1")
            // The data folder alone decides where things go, whatever the caller's environment says.
            .env_remove("GRADPHOTO_DATABASE_URL")
            .env_remove("GRADPHOTO_STORE")
            .env_remove("GRADPHOTO_LISTEN")
            .env_remove("GRADPHOTO_MAX_UPLOAD")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("gradphoto serve starts");
        self.child = Some(child);
        let http = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(r) = http.get(format!("{}/healthz", self.base())).send().await
                && r.status() == 200
            {
                return;
            }
            if let Some(status) = self.child.as_mut().and_then(|c| c.try_wait().unwrap()) {
                panic!("the server exited ({status}) while starting:\n{}", self.log(self.starts));
            }
            assert!(Instant::now() < deadline, "the server did not start:\n{}", self.log(self.starts));
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// SIGKILL: no shutdown code runs, as when the power goes.
    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

// ---------------------------------------------------------------------------------------------------------------
// A client as a browser: cookies, the CSRF token, its own address
// ---------------------------------------------------------------------------------------------------------------

#[derive(Clone)]
struct Client {
    http: reqwest::Client,
    jar: Arc<Jar>,
    base: String,
    source: Ipv4Addr,
    csrf: String,
}

impl Client {
    fn new(base: &str, source: Ipv4Addr) -> Client {
        let jar = Arc::new(Jar::default());
        let mut c = Client { http: reqwest::Client::new(), jar, base: base.into(), source, csrf: String::new() };
        c.reconnect();
        c
    }

    /// A fresh connection pool with the same cookies: a browser's connections die with the server, its cookies stay.
    fn reconnect(&mut self) {
        self.http = reqwest::Client::builder()
            .cookie_provider(self.jar.clone())
            .redirect(reqwest::redirect::Policy::none())
            // Each client comes from its own loopback address, as phones do: the per-address sign-in limit (30 a
            // minute) is not what this test is about.
            .local_address(IpAddr::V4(self.source))
            .timeout(Duration::from_secs(60))
            .build()
            .unwrap();
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    fn cookie(&self, name: &str) -> Option<String> {
        let header = self.jar.cookies(&self.base.parse().unwrap())?;
        header.to_str().ok()?.split("; ").find_map(|c| c.strip_prefix(&format!("{name}=")).map(str::to_string))
    }

    /// Opens the sign-in page (which sets the pre-session token), signs in and keeps the session's CSRF token.
    async fn login(&mut self, page: &str, user: &str, password: &str) {
        let r = self.http.get(self.url(page)).send().await.unwrap();
        assert_eq!(r.status(), 200, "sign-in page {page}");
        let pre = self.cookie("gp_pre").expect("the sign-in page sets gp_pre");
        let form = [("username", user), ("password", password), ("csrf", pre.as_str())];
        let sent = self.http.post(self.url(page)).header("accept", "application/json").form(&form);
        let (status, body) = answer(sent).await.unwrap();
        assert_eq!(status, 200, "sign in {user}: {body}");
        self.csrf = body["csrf"].as_str().unwrap().to_string();
    }

    async fn get(&self, path: &str) -> Answer {
        answer(self.http.get(self.url(path)).header("accept", "application/json")).await
    }

    async fn bytes(&self, path: &str) -> reqwest::Result<(u16, Vec<u8>)> {
        let r = self.http.get(self.url(path)).send().await?;
        Ok((r.status().as_u16(), r.bytes().await?.to_vec()))
    }

    async fn post(&self, path: &str, form: &[(&str, &str)]) -> Answer {
        let r = self.http.post(self.url(path)).header("accept", "application/json").header("x-csrf-token", &self.csrf);
        answer(r.form(form)).await
    }

    async fn upload(&self, path: &str, field: &str, bytes: Vec<u8>) -> Answer {
        let part = reqwest::multipart::Part::bytes(bytes).file_name("IMG_0001.JPG");
        let form = reqwest::multipart::Form::new().part(field.to_string(), part);
        // The full report, as the test checks it: wait for the check queue.
        let r = self.http.post(self.url(path)).header("accept", "application/json").header("x-csrf-token", &self.csrf);
        answer(r.header("prefer", "wait=60").multipart(form)).await
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Data: the roster and the photos
// ---------------------------------------------------------------------------------------------------------------

fn student_index(no: &str) -> usize {
    no.trim_start_matches('S').parse::<usize>().unwrap() - 1
}

// ---------------------------------------------------------------------------------------------------------------
// The load, and what it was told
// ---------------------------------------------------------------------------------------------------------------

const UPLOAD: usize = 0;
const SUBMIT: usize = 1;
const APPROVE: usize = 2;
const OTHER: usize = 3;
const KINDS: [&str; 4] = ["uploads", "submits", "approves", "other"];

/// Writes the server acknowledged: after any kill they must still be there.
#[derive(Default, Clone)]
struct Ledger {
    /// Student → the last photo whose upload was answered 200.
    photo: BTreeMap<usize, i64>,
    /// Student → the last submission answered 200, and its photo.
    submission: BTreeMap<usize, (i64, i64)>,
    /// Submission → student and photo of an approval answered 200.
    approved: BTreeMap<i64, (usize, i64)>,
}

#[derive(Default, Clone, Copy)]
struct Tally {
    ok: [usize; 4],
    /// 409: expected refusals (photo locked in review, decision on a replaced photo).
    refused: [usize; 4],
    /// Transport errors: the connection failed or was cut.
    failed: [usize; 4],
}

struct Load {
    stop: AtomicBool,
    type_id: i64,
    photos: Arc<Photos>,
    in_flight: [AtomicUsize; 4],
    uploading: Vec<AtomicBool>,
    tally: Mutex<Tally>,
    /// Answers no request should get (5xx, or any failure while the server was up).
    unexpected: Mutex<Vec<String>>,
    double_submits: AtomicUsize,
    /// Approvals refused because normalisation could not crop the original (then rejected).
    not_croppable: AtomicUsize,
    ledger: Arc<Mutex<Ledger>>,
}

impl Load {
    async fn call(&self, kind: usize, request: impl Future<Output = Answer>) -> Option<(u16, Value)> {
        self.in_flight[kind].fetch_add(1, SeqCst);
        let r = request.await;
        self.in_flight[kind].fetch_sub(1, SeqCst);
        let mut t = self.tally.lock().unwrap();
        match r {
            Err(e) => {
                t.failed[kind] += 1;
                // Before the kill, the server is up: a failed connection then is a fault.
                if !self.stop.load(SeqCst) {
                    self.unexpected.lock().unwrap().push(format!("{}: {e}", KINDS[kind]));
                }
                None
            }
            Ok((status, body)) => {
                match status {
                    200 => t.ok[kind] += 1,
                    409 => t.refused[kind] += 1,
                    _ => self.unexpected.lock().unwrap().push(format!("{} {status}: {body}", KINDS[kind])),
                }
                Some((status, body))
            }
        }
    }
}

/// One student: upload, submit (every third time with a double click), again, until the round stops.
async fn student(load: Arc<Load>, i: usize, c: Client) {
    let upload_path = format!("/me/photos/{}", load.type_id);
    let submit_path = format!("/me/photos/{}/submit", load.type_id);
    let mut n = i;
    while !load.stop.load(SeqCst) {
        n += 1;
        let junk = n.is_multiple_of(3);
        let bytes = if junk { &load.photos.junk } else { &load.photos.originals[n % load.photos.originals.len()] };
        load.uploading[i].store(true, SeqCst);
        // Every fifth student taps twice: two uploads at once, the later replacing the earlier.
        let answers = if i.is_multiple_of(5) {
            let (a, b) = tokio::join!(
                load.call(UPLOAD, c.upload(&upload_path, "photo", bytes.clone())),
                load.call(UPLOAD, c.upload(&upload_path, "photo", bytes.clone()))
            );
            vec![a, b]
        } else {
            vec![load.call(UPLOAD, c.upload(&upload_path, "photo", bytes.clone())).await]
        };
        load.uploading[i].store(false, SeqCst);
        if answers.iter().any(Option::is_none) {
            return;
        }
        let Some(photo) =
            answers.iter().flatten().filter(|(s, _)| *s == 200).filter_map(|(_, v)| v["photo"].as_i64()).max()
        else {
            // Locked while in review or once approved: wait for the reviewer.
            tokio::time::sleep(Duration::from_millis(300)).await;
            continue;
        };
        load.ledger.lock().unwrap().photo.insert(i, photo);
        if junk {
            continue;
        }
        let p = photo.to_string();
        let form = [("photo", p.as_str())];
        let answers = if n % 3 == 1 {
            let (a, b) = tokio::join!(
                load.call(SUBMIT, c.post(&submit_path, &form)),
                load.call(SUBMIT, c.post(&submit_path, &form))
            );
            vec![a, b]
        } else {
            vec![load.call(SUBMIT, c.post(&submit_path, &form)).await]
        };
        let ids: Vec<i64> = answers
            .iter()
            .flatten()
            .filter(|(s, _)| *s == 200)
            .map(|(_, v)| v["submission"].as_i64().unwrap())
            .collect();
        if ids.len() == 2 {
            assert_eq!(ids[0], ids[1], "a double submit makes one submission");
            load.double_submits.fetch_add(1, SeqCst);
        }
        if let Some(&s) = ids.first() {
            load.ledger.lock().unwrap().submission.insert(i, (s, photo));
        }
        if answers.iter().any(Option::is_none) {
            return;
        }
    }
}

/// The reviewer: the oldest item of the queue, sometimes opened first, approved; rejected if it cannot be made into
/// a registered file.
async fn review(load: Arc<Load>, c: Client) {
    let mut n = 0;
    while !load.stop.load(SeqCst) {
        n += 1;
        let Some((status, q)) = load.call(OTHER, c.get("/review")).await else { return };
        let first = q["items"].as_array().and_then(|a| a.first()).cloned();
        let Some(item) = first.filter(|_| status == 200) else {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        let id = item["submission"]["id"].as_i64().unwrap();
        let photo = item["submission"]["photo_id"].as_i64().unwrap();
        let who = student_index(item["student_no"].as_str().unwrap());
        if n % 2 == 0 && load.call(OTHER, c.get(&format!("/review/{id}"))).await.is_none() {
            return;
        }
        let p = photo.to_string();
        let Some((status, v)) = load.call(APPROVE, c.post(&format!("/review/{id}/approve"), &[("photo", &p)])).await
        else {
            return;
        };
        if status == 200 {
            load.ledger.lock().unwrap().approved.insert(id, (who, photo));
        } else if v["error"]["code"] == "approve.normalise" {
            load.not_croppable.fetch_add(1, SeqCst);
            let form = [("photo", p.as_str()), ("reason", "background.color")];
            if load.call(OTHER, c.post(&format!("/review/{id}/reject"), &form)).await.is_none() {
                return;
            }
        }
    }
}

/// When each round's kill comes: what the load is doing, at least so many ms into it, plus up to so many ms of
/// jitter, and whether to wait first for an approval to be running.
const MOMENTS: [(&str, u64, u64, bool); 5] = [
    ("as the first uploads are stored", 100, 400, false),
    ("in the first burst", 1000, 1000, false),
    ("while an approval runs", 1000, 1000, true),
    ("in steady load", 2500, 2500, false),
    ("after longer load", 5000, 2000, false),
];

/// Milliseconds of jitter from the clock: each run kills at other moments.
fn jitter(max_ms: u64) -> u64 {
    u64::from(SystemTime::now().duration_since(UNIX_EPOCH).unwrap().subsec_nanos()) % max_ms
}

// ---------------------------------------------------------------------------------------------------------------
// Checks
// ---------------------------------------------------------------------------------------------------------------

fn db_url(data: &Path) -> String {
    format!("sqlite:{}", data.join("gradphoto.db").display())
}

fn object_path(store: &Path, key: &str) -> PathBuf {
    let hex = key.rsplit('-').next().unwrap();
    store.join("objects").join(&hex[..2]).join(key)
}

fn staging_entries(data: &Path) -> Vec<String> {
    let dir = std::fs::read_dir(data.join("store/staging")).unwrap();
    dir.map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect()
}

async fn named_keys(data: &Path) -> HashSet<String> {
    let db = Db::connect(&db_url(data)).await.unwrap();
    let keys = db.blob_keys().await.unwrap().iter().map(|k| k.to_string()).collect();
    db.close().await;
    keys
}

async fn published_keys(data: &Path) -> HashSet<String> {
    let store = LocalStore::open(data.join("store")).await.unwrap();
    store.published().await.unwrap().iter().map(|l| l.key.to_string()).collect()
}

/// What a kill left on disk, read before the restart (the server is dead).
#[derive(Default, Debug, PartialEq)]
struct Leftover {
    /// Staged files whose row was committed: recovery must publish them.
    staged_named: usize,
    /// Staged files without a row: recovery must discard them.
    staged_unnamed: usize,
    /// Half-written staged files (`.part`).
    partial: usize,
    /// Published files no row names (replaced drafts whose removal was cut short).
    unnamed_published: usize,
}

async fn leftover(data: &Path) -> Leftover {
    let named = named_keys(data).await;
    let published = published_keys(data).await;
    let mut l = Leftover::default();
    let mut staged = HashSet::new();
    for name in staging_entries(data) {
        if name.ends_with(".part") {
            l.partial += 1;
        } else if named.contains(&name) {
            l.staged_named += 1;
        } else {
            l.staged_unnamed += 1;
        }
        staged.insert(name);
    }
    l.unnamed_published = published.difference(&named).count();
    let missing: Vec<&String> = named.iter().filter(|k| !published.contains(*k) && !staged.contains(*k)).collect();
    assert!(missing.is_empty(), "rows whose file is nowhere, even before recovery: {missing:?}");
    l
}

/// `field=<number>` in a log line.
fn log_field(line: &str, name: &str) -> usize {
    let at = line.find(&format!("{name}=")).map_or(line.len(), |p| p + name.len() + 1);
    line[at..].chars().take_while(char::is_ascii_digit).collect::<String>().parse().unwrap_or(0)
}

async fn scalar(pool: &sqlx::SqlitePool, sql: &'static str) -> i64 {
    sqlx::query_scalar::<_, i64>(sql).fetch_one(pool).await.unwrap()
}

/// Waits until the restarted server has finished the checks the kill left queued. A check writes its annotated
/// picture to its place before the row names it, so while one runs the folder is legitimately "unnamed" for a
/// moment: the invariants are read only once the queue is empty (nothing else writes files without load).
async fn checks_drained(data: &Path) {
    let db = Db::connect(&db_url(data)).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let pending = db.checks_pending().await.unwrap();
        if pending == 0 {
            break;
        }
        assert!(Instant::now() < deadline, "{pending} checks still queued two minutes after the restart");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    db.close().await;
}

/// The whole data folder, against every invariant; panics on the first one broken. Returns a line of counts.
async fn check_consistent(data: &Path, sealer: &AesGcmSealer, ledger: &Ledger) -> String {
    let staging = staging_entries(data);
    assert!(staging.is_empty(), "left in staging after recovery: {staging:?}");
    let named = named_keys(data).await;
    let published = published_keys(data).await;
    let unpublished: Vec<_> = named.difference(&published).collect();
    let unnamed: Vec<_> = published.difference(&named).collect();
    assert!(unpublished.is_empty(), "rows whose file is not published: {unpublished:?}");
    assert!(unnamed.is_empty(), "published files no row names: {unnamed:?}");
    let db = Db::connect(&db_url(data)).await.unwrap();
    assert_eq!(db.dangling_references().await.unwrap(), 0, "photo or submission rows naming keys without a blob row");
    db.close().await;

    let pool = sqlx::SqlitePool::connect(&db_url(data)).await.unwrap();
    let store = data.join("store");
    // Every file holds the bytes its row recorded.
    let blobs: Vec<(String, i64, String)> =
        sqlx::query_as("SELECT key, bytes, sha256 FROM blobs").fetch_all(&pool).await.unwrap();
    for (key, bytes, sha) in &blobs {
        let file = std::fs::read(object_path(&store, key)).unwrap();
        assert_eq!((file.len() as i64, &sha256_hex(&file)), (*bytes, sha), "{key} is damaged");
    }
    // Every file a photo or submission row names is there (implied by the two checks above; said outright).
    let named_files: Vec<(String, Option<String>)> = sqlx::query_as(
        "SELECT original_key, annotated_key FROM photos UNION ALL \
         SELECT registered_key, NULL FROM submissions WHERE registered_key IS NOT NULL",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    for key in named_files.iter().flat_map(|(a, b)| [Some(a), b.as_ref()]).flatten() {
        assert!(object_path(&store, key).is_file(), "{key} is named but absent");
    }
    let checks = [
        (
            "blob rows that no photo or submission names",
            "SELECT COUNT(*) FROM blobs b WHERE NOT EXISTS (SELECT 1 FROM photos p WHERE p.original_key = b.key \
             OR p.annotated_key = b.key) AND NOT EXISTS (SELECT 1 FROM submissions s WHERE s.registered_key = b.key)",
        ),
        (
            "submissions whose photo is gone",
            "SELECT COUNT(*) FROM submissions WHERE photo_id NOT IN (SELECT id FROM photos)",
        ),
        (
            "approved without a registered file, or a registered file without approval",
            "SELECT COUNT(*) FROM submissions \
             WHERE (status IN ('approved', 'exported')) <> (registered_key IS NOT NULL)",
        ),
        (
            "students with two submissions of one type",
            "SELECT COUNT(*) FROM (SELECT student_id FROM submissions GROUP BY student_id, photo_type_id \
             HAVING COUNT(*) > 1)",
        ),
    ];
    for (what, sql) in checks {
        assert_eq!(scalar(&pool, sql).await, 0, "{what}");
    }
    // Every approved submission's registered file carries its student's sealed identity.
    let approved: Vec<(i64, String, String)> = sqlx::query_as(
        "SELECT s.id, s.registered_key, st.student_no FROM submissions s JOIN students st ON st.id = s.student_id \
         WHERE s.status IN ('approved', 'exported')",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    for (id, key, no) in &approved {
        let file = std::fs::read(object_path(&store, key)).unwrap();
        let (identity, _) = verify_jpeg(&file, sealer).unwrap_or_else(|e| panic!("submission {id}: {e}"));
        assert_eq!(identity.id_number, id_number(student_index(no)), "submission {id}");
        assert_eq!((identity.student_no.as_str(), identity.school.as_str()), (no.as_str(), SCHOOL));
    }
    // Nothing acknowledged is lost. A later upload may replace an acknowledged draft (its answer lost in the kill),
    // and a later submit may name a later photo: hence "at least".
    for (&i, &photo) in &ledger.photo {
        let newest: Option<i64> = sqlx::query_scalar(
            "SELECT MAX(p.id) FROM photos p JOIN students st ON st.id = p.student_id WHERE st.student_no = ?",
        )
        .bind(student_no(i))
        .fetch_one(&pool)
        .await
        .unwrap();
        assert!(newest >= Some(photo), "{}: acknowledged photo {photo} lost (newest {newest:?})", student_no(i));
    }
    for (&i, &(submission, photo)) in &ledger.submission {
        let row: Option<(i64, i64)> = sqlx::query_as(
            "SELECT s.id, s.photo_id FROM submissions s JOIN students st ON st.id = s.student_id \
             WHERE st.student_no = ?",
        )
        .bind(student_no(i))
        .fetch_optional(&pool)
        .await
        .unwrap();
        let (id, now) = row.unwrap_or_else(|| panic!("{}: acknowledged submission lost", student_no(i)));
        assert!(
            id == submission && now >= photo,
            "{}: submission {submission} of {photo} is now {id} of {now}",
            student_no(i)
        );
    }
    for (&submission, &(i, photo)) in &ledger.approved {
        let row: (i64, String, String) = sqlx::query_as(
            "SELECT s.photo_id, s.status, st.student_no FROM submissions s JOIN students st ON st.id = s.student_id \
             WHERE s.id = ?",
        )
        .bind(submission)
        .fetch_one(&pool)
        .await
        .unwrap();
        assert_eq!(row, (photo, "approved".to_string(), student_no(i)), "acknowledged approval of {submission}");
    }
    let photos = scalar(&pool, "SELECT COUNT(*) FROM photos").await;
    let submitted = scalar(&pool, "SELECT COUNT(*) FROM submissions").await;
    pool.close().await;
    format!(
        "{} files, {photos} photos, {submitted} submissions ({} approved, each seal verified)",
        blobs.len(),
        approved.len()
    )
}

// ---------------------------------------------------------------------------------------------------------------
// The test
// ---------------------------------------------------------------------------------------------------------------

/// After a restart, through the API: a student whose upload the kill cut (or any who may upload) uploads, gets the
/// same bytes back, double-submits into one submission; with `approve`, the reviewer approves it and the student
/// downloads a registered file that verifies.
async fn api_after_restart(
    students: &[Client],
    reviewer: &Client,
    interrupted: &[usize],
    round: usize,
    ctx: (i64, &Photos, &AesGcmSealer),
    ledger: &Mutex<Ledger>,
    approve: bool,
) -> String {
    let (type_id, photos, sealer) = ctx;
    let mut chosen = None;
    // A different student each round, where the kill allows.
    let cut = interrupted.iter().cycle().skip(round).take(interrupted.len()).copied();
    for i in cut.chain(0..STUDENTS).chain([STUDENTS + round]) {
        let (status, me) = students[i].get("/me").await.unwrap();
        assert_eq!(status, 200, "{me}");
        if matches!(me["types"][0]["status"].as_str(), Some("none" | "draft" | "submitted" | "rejected")) {
            chosen = Some(i);
            break;
        }
    }
    let i = chosen.expect("a student who may upload");
    let c = &students[i];
    let original = photos.originals[i % photos.originals.len()].clone();
    let (status, v) = c.upload(&format!("/me/photos/{type_id}"), "photo", original.clone()).await.unwrap();
    assert_eq!(status, 200, "upload after restart: {v}");
    let photo = v["photo"].as_i64().unwrap();
    ledger.lock().unwrap().photo.insert(i, photo);
    assert_eq!(c.bytes(&format!("/me/photo/{photo}/original.jpg")).await.unwrap(), (200, original));
    let p = photo.to_string();
    let path = format!("/me/photos/{type_id}/submit");
    let form = [("photo", p.as_str())];
    let (a, b) = tokio::join!(c.post(&path, &form), c.post(&path, &form));
    let ((sa, a), (sb, b)) = (a.unwrap(), b.unwrap());
    assert_eq!((sa, sb), (200, 200), "{a} {b}");
    assert_eq!(a["submission"], b["submission"], "a double submit makes one submission");
    let submission = a["submission"].as_i64().unwrap();
    ledger.lock().unwrap().submission.insert(i, (submission, photo));
    let (_, me) = c.get("/me").await.unwrap();
    assert_eq!(me["types"][0]["status"], "submitted", "{me}");
    assert_eq!(me["types"][0]["submission"]["id"], submission, "{me}");
    let mut done = format!(
        "{} ({}) uploaded and submitted again",
        student_no(i),
        if interrupted.contains(&i) { "upload cut by the kill" } else { "no upload was cut" }
    );
    if approve {
        let (status, v) = reviewer.post(&format!("/review/{submission}/approve"), &[("photo", &p)]).await.unwrap();
        assert_eq!(status, 200, "approve after restart: {v}");
        ledger.lock().unwrap().approved.insert(submission, (i, photo));
        let (status, registered) = c.bytes(&format!("/me/submissions/{submission}/registered.jpg")).await.unwrap();
        assert_eq!(status, 200);
        let (identity, _) = verify_jpeg(&registered, sealer).expect("sealed");
        assert_eq!(identity.id_number, id_number(i));
        done.push_str(", approved, registered file verified");
    }
    done
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_lost_when_the_server_is_killed() {
    let started = Instant::now();
    // The photos take seconds to build: meanwhile the server starts and the school is set up.
    let photos = tokio::task::spawn_blocking(photos);
    let root_dir = tempfile::tempdir().unwrap();
    let mut server = Server::new(root_dir.path());
    server.start().await;
    let base = server.base();

    let mut root = Client::new(&base, Ipv4Addr::new(127, 0, 0, 2));
    root.login("/staff/login", "root", "root-password").await;
    let school_form = [
        ("province", "北京市"),
        ("city", "北京市"),
        ("code", SCHOOL),
        ("name", "断电大学"),
        ("fee", "0"),
        ("admin_username", "kill-admin"),
        ("admin_password", "kill-admin-password"),
    ];
    let (status, v) = root.post("/admin/schools", &school_form).await.unwrap();
    assert_eq!(status, 200, "{v}");
    let school = v["school"].as_i64().unwrap();
    let mut admin = Client::new(&base, Ipv4Addr::new(127, 0, 0, 3));
    admin.login("/staff/login", "kill-admin", "kill-admin-password").await;
    let (status, v) = admin
        .upload(&format!("/admin/schools/{school}/roster"), "roster", roster_csv(STUDENTS + RESERVE).into_bytes())
        .await
        .unwrap();
    assert_eq!((status, v["import"]["created"].as_u64()), (200, Some((STUDENTS + RESERVE) as u64)), "{v}");
    let reviewer_form = [("username", "kill-reviewer"), ("password", "kill-reviewer-password"), ("role", "reviewer")];
    let (status, v) = admin.post(&format!("/admin/schools/{school}/staff"), &reviewer_form).await.unwrap();
    assert_eq!(status, 200, "{v}");
    let mut reviewer = Client::new(&base, Ipv4Addr::new(127, 0, 0, 4));
    reviewer.login("/staff/login", "kill-reviewer", "kill-reviewer-password").await;
    let mut students = Vec::new();
    for i in 0..STUDENTS + RESERVE {
        let mut c = Client::new(&base, Ipv4Addr::new(127, 0, 1, i as u8 + 1));
        let id = id_number(i);
        c.login(&format!("/s/{SCHOOL}/login"), &student_no(i), &id[id.len() - 6..]).await;
        students.push(c);
    }
    let (_, me) = students[0].get("/me").await.unwrap();
    let type_id = me["types"][0]["id"].as_i64().unwrap();
    let photos = Arc::new(photos.await.unwrap());
    let secrets = gradphoto_web::secrets::Secrets::load_or_create(&server.data).unwrap().0;
    let sealer = AesGcmSealer::from_spec(secrets.seal_keys.trim()).unwrap();
    eprintln!("set-up: {STUDENTS} students signed in, {:.1} s", started.elapsed().as_secs_f64());

    let ledger = Arc::new(Mutex::new(Ledger::default()));
    let mut totals = Tally::default();
    let mut left_total = Leftover::default();
    for (round, &(moment, at_least, jitter_ms, in_approval)) in MOMENTS.iter().enumerate() {
        let load = Arc::new(Load {
            stop: AtomicBool::new(false),
            type_id,
            photos: photos.clone(),
            in_flight: Default::default(),
            uploading: (0..STUDENTS).map(|_| AtomicBool::new(false)).collect(),
            tally: Mutex::new(Tally::default()),
            unexpected: Mutex::new(Vec::new()),
            double_submits: AtomicUsize::new(0),
            not_croppable: AtomicUsize::new(0),
            ledger: ledger.clone(),
        });
        let mut tasks: Vec<_> = students[..STUDENTS]
            .iter()
            .enumerate()
            .map(|(i, c)| tokio::spawn(student(load.clone(), i, c.clone())))
            .collect();
        tasks.push(tokio::spawn(review(load.clone(), reviewer.clone())));

        let t0 = Instant::now();
        tokio::time::sleep(Duration::from_millis(at_least)).await;
        if in_approval {
            let deadline = t0 + Duration::from_secs(10);
            while load.in_flight[APPROVE].load(SeqCst) == 0 && Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
        tokio::time::sleep(Duration::from_millis(jitter(jitter_ms))).await;
        load.stop.store(true, SeqCst);
        let in_flight: Vec<usize> = load.in_flight.iter().map(|n| n.load(SeqCst)).collect();
        let interrupted: Vec<usize> = (0..STUDENTS).filter(|&i| load.uploading[i].load(SeqCst)).collect();
        let after = t0.elapsed();
        server.kill();
        for t in tasks {
            tokio::time::timeout(Duration::from_secs(60), t)
                .await
                .expect("the load stops")
                .expect("no load task failed");
        }
        let tally = *load.tally.lock().unwrap();
        let unexpected = load.unexpected.lock().unwrap().clone();
        let errors: Vec<String> =
            server.log(server.starts).lines().filter(|l| l.contains("ERROR")).map(str::to_string).collect();
        assert!(
            unexpected.is_empty(),
            "round {}: answers no request should get: {unexpected:#?}\nserver errors: {errors:#?}",
            round + 1
        );

        let left = leftover(&server.data).await;
        server.start().await;
        // Recovery's own account must match what was on disk.
        let log = server.log(server.starts);
        let line = log.lines().find(|l| l.contains("recovered unfinished writes")).unwrap_or("");
        let recovered = Leftover {
            staged_named: log_field(line, "published"),
            staged_unnamed: log_field(line, "discarded"),
            partial: left.partial,
            unnamed_published: log_field(line, "orphans"),
        };
        assert_eq!(recovered, left, "recovery's account: {line}");
        assert_eq!(log_field(line, "missing"), 0, "{line}");
        for c in students.iter_mut().chain([&mut reviewer]) {
            c.reconnect();
        }
        checks_drained(&server.data).await;
        let snapshot = ledger.lock().unwrap().clone();
        let state = check_consistent(&server.data, &sealer, &snapshot).await;
        let api = api_after_restart(
            &students,
            &reviewer,
            &interrupted,
            round,
            (type_id, &photos, &sealer),
            &ledger,
            round + 1 == MOMENTS.len(),
        )
        .await;

        let per_kind =
            |counts: &[usize]| KINDS.iter().zip(counts).map(|(k, n)| format!("{n} {k}")).collect::<Vec<_>>().join(", ");
        eprintln!("round {}: killed {moment}, {:.2} s into the load", round + 1, after.as_secs_f64());
        eprintln!("  in flight at the kill: {}", per_kind(&in_flight));
        eprintln!(
            "  students whose upload was cut: {}",
            interrupted.iter().map(|&i| student_no(i)).collect::<Vec<_>>().join(" ")
        );
        eprintln!("  failed with connection errors: {}", per_kind(&tally.failed));
        eprintln!("  answered 200 before the kill: {}; 409: {}", per_kind(&tally.ok), per_kind(&tally.refused));
        eprintln!(
            "  double submits answered twice with one submission: {}; approvals refused by normalisation: {}",
            load.double_submits.load(SeqCst),
            load.not_croppable.load(SeqCst)
        );
        eprintln!("  on disk after the kill: {left:?}");
        eprintln!("  after restart: {state}");
        eprintln!("  API after restart: {api}");
        left_total.staged_named += left.staged_named;
        left_total.staged_unnamed += left.staged_unnamed;
        left_total.partial += left.partial;
        left_total.unnamed_published += left.unnamed_published;
        for k in 0..KINDS.len() {
            totals.ok[k] += tally.ok[k];
            totals.refused[k] += tally.refused[k];
            totals.failed[k] += tally.failed[k];
        }
    }
    // Stopped while idle, without recovery's help: the running server itself left nothing half-done.
    checks_drained(&server.data).await;
    server.kill();
    assert_eq!(leftover(&server.data).await, Leftover::default(), "after normal operation");
    let snapshot = ledger.lock().unwrap().clone();
    eprintln!(
        "total: {} uploads, {} submits, {} approvals answered 200; cut by the kills: {}; left on disk by the kills \
         (all recovered): {left_total:?}; {} acknowledged approvals kept; {:.1} s",
        totals.ok[UPLOAD],
        totals.ok[SUBMIT],
        totals.ok[APPROVE],
        KINDS.iter().zip(totals.failed).map(|(k, n)| format!("{n} {k}")).collect::<Vec<_>>().join(", "),
        snapshot.approved.len(),
        started.elapsed().as_secs_f64()
    );
}
