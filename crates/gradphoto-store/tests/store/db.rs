//! The repository on both backends, with the same expectations: SQLite in a temp file, PostgreSQL on the server
//! `scripts/test.sh` starts (`GRADPHOTO_TEST_POSTGRES`), a fresh database per test.

use gradphoto_store::blob::{BlobKey, BlobStore, LocalStore, sha256_hex};
use gradphoto_store::db::{
    Backend, BindOutcome, BlobMeta, Confirm, Event, NewPhoto, NewSchool, Notice, PayStatus, Role, SealedKind, Status,
    StudentUpsert,
};
use gradphoto_store::recover::recover;
use gradphoto_store::{Db, DbError, SchoolId, StudentId, Vault};

async fn sqlite() -> (Db, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::connect(&format!("sqlite:{}", dir.path().join("t.db").display())).await.unwrap();
    assert_eq!(db.backend(), Backend::Sqlite);
    (db, dir)
}

async fn postgres() -> Db {
    use sqlx::Connection;
    let base = std::env::var("GRADPHOTO_TEST_POSTGRES")
        .expect("GRADPHOTO_TEST_POSTGRES is not set: run scripts/test.sh (it starts a private PostgreSQL)");
    let name = format!("gp_store_{}", BlobKey::new("x").as_str().trim_start_matches("x-"));
    let mut admin = sqlx::PgConnection::connect(&format!("{base}/postgres")).await.unwrap();
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}"))).execute(&mut admin).await.unwrap();
    let db = Db::connect(&format!("{base}/{name}")).await.unwrap();
    assert_eq!(db.backend(), Backend::Postgres);
    db
}

fn blob(kind: &str, bytes: &[u8]) -> BlobMeta {
    BlobMeta { key: BlobKey::new(kind), bytes: bytes.len() as i64, sha256: sha256_hex(bytes) }
}

/// A notice of `kind`, its title the kind too.
fn notice(kind: &str) -> Notice<'_> {
    Notice { kind, title: kind, body: "body", payload: "{}" }
}

/// A school in a region of its own, free of charge and always open.
async fn school(db: &Db, code: &str, name: &str) -> SchoolId {
    let region_id = db.upsert_region("上海市", "上海市").await.unwrap();
    db.create_school(&NewSchool {
        region_id,
        code: code.into(),
        name: name.into(),
        fee_cents: 0,
        opens_at: None,
        closes_at: None,
        backgrounds: "light_blue".into(),
    })
    .await
    .unwrap()
}

/// A roster row with its id number sealed and hashed by `vault`.
fn roster_row(vault: &Vault, student_no: &str, name: &str, id: &str) -> StudentUpsert {
    StudentUpsert {
        student_no: student_no.into(),
        name: name.into(),
        id_kind: "mainland".into(),
        id_cipher: vault.seal("ctx", id),
        id_hash: vault.lookup_hash(id),
        college: None,
        degree_level: None,
    }
}

async fn repository(db: Db) {
    let vault = Vault::from_base64(&Vault::generate_key(), &Vault::generate_key()).unwrap();
    // Regions and schools.
    let r = db.upsert_region("北京市", "北京市").await.unwrap();
    assert_eq!(db.upsert_region("北京市", "北京市").await.unwrap(), r, "a region is made once");
    let new = NewSchool {
        region_id: r,
        code: "pku".into(),
        name: "北京大学".into(),
        fee_cents: 2000,
        opens_at: None,
        closes_at: None,
        backgrounds: "light_blue".into(),
    };
    let school = db.create_school(&new).await.unwrap();
    assert!(matches!(db.create_school(&new).await, Err(DbError::Conflict)));
    let types = db.photo_types(school).await.unwrap();
    assert_eq!((types.len(), types[0].code.as_str()), (1, "degree"));

    // Roster: create, then update one and leave one, never duplicate.
    let row = |no: &str, name: &str, id: &str| StudentUpsert {
        college: Some("数学学院".into()),
        degree_level: Some("本科".into()),
        ..roster_row(&vault, no, name, id)
    };
    let c = db.import_students(school, &[row("1", "甲", "A1"), row("2", "乙", "A2")]).await.unwrap();
    assert_eq!((c.created, c.updated, c.unchanged), (2, 0, 0));
    let c = db.import_students(school, &[row("1", "甲", "A1"), row("2", "乙二", "A2")]).await.unwrap();
    assert_eq!((c.created, c.updated, c.unchanged), (0, 1, 1));
    let s1 = db.student_by_no(school, "1").await.unwrap().unwrap();
    assert_eq!(db.student_by_id_hash(school, &vault.lookup_hash("A1")).await.unwrap().unwrap().id, s1.id);
    assert_eq!(vault.open("ctx", &s1.id_cipher).unwrap(), "A1");

    // Lockout counting: the fifth failure locks and resets the count.
    let staff = db.create_staff("rev", Role::Reviewer, Some(school), "hash").await.unwrap();
    for _ in 0..5 {
        db.staff_login_result(staff, false, 5, 60_000).await.unwrap();
    }
    let st = db.staff(staff).await.unwrap();
    assert!(st.locked_until > gradphoto_store::now_ms());
    assert_eq!(st.failed_logins, 0);

    // Sessions expire.
    db.create_session(b"live", "student", s1.id.0, "c", gradphoto_store::now_ms() + 60_000).await.unwrap();
    db.create_session(b"dead", "student", s1.id.0, "c", gradphoto_store::now_ms() - 1).await.unwrap();
    assert!(db.session(b"live").await.unwrap().is_some());
    assert!(db.session(b"dead").await.unwrap().is_none());

    // Device binding: the first subject binds.
    assert!(db.bind_device(s1.id, "browser", b"phone").await.unwrap());
    assert!(db.bind_device(s1.id, "browser", b"phone").await.unwrap());
    assert!(!db.bind_device(s1.id, "browser", b"laptop").await.unwrap());

    // Uploads replace drafts; submissions are idempotent and wait for the fee.
    let up = |tag: &'static str| NewPhoto {
        student: s1.id,
        photo_type: types[0].id,
        original: blob("original", tag.as_bytes()),
        annotated: Some(blob("annotated", tag.as_bytes())),
        verdict: "pass".into(),
        failing: if tag == "b" { "background.color".into() } else { String::new() },
        report: "{}".into(),
        checked: true,
    };
    let first = db.record_upload(&up("a")).await.unwrap();
    let second = db.record_upload(&up("b")).await.unwrap();
    assert_eq!(second.replaced.len(), 2, "the first draft's two files are released");
    assert!(first.replaced.is_empty());
    let photo = db.photo(second.photo).await.unwrap();
    let sub = db.submit(&photo, false, &notice("submitted")).await.unwrap();
    assert_eq!(db.submit(&photo, false, &notice("submitted")).await.unwrap(), sub);
    assert_eq!(db.submission(sub).await.unwrap().status, Status::Unpaid);
    assert!(db.queue(school, 10).await.unwrap().is_empty(), "unpaid submissions wait");
    assert!(db.due_outbox(10).await.unwrap().is_empty(), "no notice while the submission waits for the fee");
    db.mark_paid(s1.id, "offline", "ref", 2000, &notice("submitted")).await.unwrap();
    assert_eq!(db.submission(sub).await.unwrap().status, Status::Submitted);
    assert_eq!(db.queue(school, 10).await.unwrap().len(), 1);

    // Decisions: only once, only on the photo reviewed; each queues one notice.
    db.open_for_review(sub, staff).await.unwrap();
    assert!(matches!(
        db.approve(sub, first.photo, staff, &blob("registered", b"r0"), &notice("approved"), None).await,
        Err(DbError::State)
    ));
    db.reject(sub, photo.id, staff, "background.color", "", &notice("rejected"), None).await.unwrap();
    assert!(matches!(db.reject(sub, photo.id, staff, "x", "", &notice("rejected"), None).await, Err(DbError::State)));
    // A rejected photo comes back only as a new upload.
    assert!(matches!(db.submit(&photo, true, &notice("submitted")).await, Err(DbError::State)));
    let third = db.photo(db.record_upload(&up("c")).await.unwrap().photo).await.unwrap();
    assert_eq!(db.submit(&third, true, &notice("submitted")).await.unwrap(), sub);
    let registered = blob("registered", b"r");
    db.approve(sub, third.id, staff, &registered, &notice("approved"), None).await.unwrap();
    // Approved is final: the same photo again changes nothing, another photo is refused.
    assert_eq!(db.submit(&third, true, &notice("submitted")).await.unwrap(), sub);
    assert_eq!(db.submission(sub).await.unwrap().status, Status::Approved);
    let fourth = db.photo(db.record_upload(&up("d")).await.unwrap().photo).await.unwrap();
    assert!(matches!(db.submit(&fourth, true, &notice("submitted")).await, Err(DbError::State)));
    assert_eq!(db.exportable(school, None, false).await.unwrap().len(), 1);
    assert_eq!(db.exportable(school, Some("数学学院"), false).await.unwrap().len(), 1);
    assert_eq!(db.exportable(school, Some("物理学院"), false).await.unwrap().len(), 0);
    db.mark_exported(&[sub], &notice("exported"), None).await.unwrap();
    assert_eq!(db.submission(sub).await.unwrap().status, Status::Exported);
    assert!(db.exportable(school, None, false).await.unwrap().is_empty());
    assert_eq!(db.exportable(school, None, true).await.unwrap().len(), 1);

    // The outbox: five notices (paid, rejected, submitted again, approved, exported; the repeated and refused
    // submits sent none); a failed delivery is retried later; the in-site channel is idempotent.
    let due = db.due_outbox(10).await.unwrap();
    let kinds: Vec<&str> = due.iter().map(|d| d.kind.as_str()).collect();
    assert_eq!(kinds, ["submitted", "rejected", "submitted", "approved", "exported"]);
    assert!(due.iter().all(|d| d.channel == "site"), "no WeChat binding, no WeChat message");
    db.outbox_failed(due[0].id, "down", Some(gradphoto_store::now_ms() + 60_000)).await.unwrap();
    for item in &due[1..] {
        db.notify_in_site(item).await.unwrap();
        db.notify_in_site(item).await.unwrap();
        db.outbox_delivered(item.id).await.unwrap();
    }
    assert_eq!(db.due_outbox(10).await.unwrap().len(), 0);
    assert_eq!(db.outbox_pending().await.unwrap(), 1);
    assert_eq!(db.notifications(s1.id, 10).await.unwrap().len(), 4);

    // Progress.
    let p = db.progress(school).await.unwrap();
    assert_eq!((p.students, p.not_submitted), (2, 1));
    assert!(p.by_status.contains(&("exported".to_string(), 1)));
    assert_eq!(p.by_college[0].students, 2);
    assert_eq!(db.dangling_references().await.unwrap(), 0);
    db.audit("staff:1", "export", Some(school), "photos:1").await.unwrap();
    assert_eq!(db.audit_log(Some(school), 5).await.unwrap()[0].action, "export");
}

#[tokio::test]
async fn repository_on_sqlite() {
    let (db, _dir) = sqlite().await;
    repository(db).await;
}

#[tokio::test]
async fn repository_on_postgres() {
    repository(postgres().await).await;
}

/// After a crash: staged files with a row are published, without one discarded; published files no row names
/// are removed; rows whose file is gone are reported.
#[tokio::test]
async fn recovery_publishes_discards_and_reports() {
    let (db, dir) = sqlite().await;
    let store = LocalStore::open(dir.path().join("store")).await.unwrap();
    let school = school(&db, "s", "s").await;
    let vault = Vault::from_base64(&Vault::generate_key(), &Vault::generate_key()).unwrap();
    let row = roster_row(&vault, "1", "n", "1");
    db.import_students(school, &[row]).await.unwrap();
    let student = db.student_by_no(school, "1").await.unwrap().unwrap();
    let t = db.photo_types(school).await.unwrap()[0].id;
    // Committed but not published (crash after the commit).
    let committed = blob("original", b"committed");
    store.stage(&committed.key, b"committed").await.unwrap();
    let photo = NewPhoto {
        student: student.id,
        photo_type: t,
        original: committed.clone(),
        annotated: None,
        verdict: "pass".into(),
        failing: String::new(),
        report: "{}".into(),
        checked: true,
    };
    db.record_upload(&photo).await.unwrap();
    // Staged, never committed (crash before the commit).
    let lost = BlobKey::new("original");
    store.stage(&lost, b"lost").await.unwrap();
    // Published, no row (a replaced draft whose deletion was cut short).
    let orphan = BlobKey::new("annotated");
    store.stage(&orphan, b"orphan").await.unwrap();
    store.publish(&orphan).await.unwrap();
    let r = recover(&db, &store, 0).await.unwrap();
    assert_eq!((r.published, r.discarded, r.orphans_removed, r.missing.len()), (1, 1, 1, 0));
    assert_eq!(
        store.published().await.unwrap().into_iter().map(|l| l.key).collect::<Vec<_>>(),
        vec![committed.key.clone()]
    );
    assert!(store.staged().await.unwrap().is_empty());
    // A second pass finds nothing to do; a file deleted behind our back is reported, not hidden.
    store.delete(&committed.key).await.unwrap();
    let r = recover(&db, &store, 0).await.unwrap();
    assert_eq!(r.missing, vec![committed.key.to_string()]);
}

/// Several nodes share the rows and the store: a node starting up leaves unnamed files younger than the grace alone
/// (another node may be about to commit the staged one, or may just have published the other), while a named
/// staged file is published at any age. With no grace (every node stopped) the unnamed files go.
async fn recovery_leaves_young_files(db: Db, store: &dyn BlobStore) {
    let school = school(&db, "g", "g").await;
    let vault = Vault::from_base64(&Vault::generate_key(), &Vault::generate_key()).unwrap();
    db.import_students(school, &[roster_row(&vault, "1", "n", "1")]).await.unwrap();
    let student = db.student_by_no(school, "1").await.unwrap().unwrap();
    let t = db.photo_types(school).await.unwrap()[0].id;
    let committed = blob("original", b"committed");
    store.stage(&committed.key, b"committed").await.unwrap();
    let photo = NewPhoto {
        student: student.id,
        photo_type: t,
        original: committed.clone(),
        annotated: None,
        verdict: "pass".into(),
        failing: String::new(),
        report: "{}".into(),
        checked: true,
    };
    db.record_upload(&photo).await.unwrap();
    let in_flight = BlobKey::new("original");
    store.stage(&in_flight, b"in flight").await.unwrap();
    let just_published = BlobKey::new("annotated");
    store.stage(&just_published, b"just published").await.unwrap();
    store.publish(&just_published).await.unwrap();
    let keys = |v: Vec<gradphoto_store::blob::Listed>| v.into_iter().map(|l| l.key).collect::<Vec<_>>();

    // An hour of grace: the fresh unnamed files are someone else's, the named one is published.
    let r = recover(&db, store, 3_600_000).await.unwrap();
    assert_eq!((r.published, r.discarded, r.orphans_removed, r.young_left, r.missing.len()), (1, 0, 0, 2, 0));
    assert_eq!(keys(store.staged().await.unwrap()), vec![in_flight.clone()]);
    let mut published = vec![committed.key.clone(), just_published.clone()];
    published.sort();
    assert_eq!(keys(store.published().await.unwrap()), published);

    // No grace: nothing can be in flight, so both go and the named file stays.
    let r = recover(&db, store, 0).await.unwrap();
    assert_eq!((r.published, r.discarded, r.orphans_removed, r.young_left, r.missing.len()), (0, 1, 1, 0, 0));
    assert!(store.staged().await.unwrap().is_empty());
    assert_eq!(keys(store.published().await.unwrap()), vec![committed.key.clone()]);
}

#[tokio::test]
async fn recovery_leaves_young_files_on_sqlite_and_disk() {
    let (db, dir) = sqlite().await;
    let store = LocalStore::open(dir.path().join("store")).await.unwrap();
    recovery_leaves_young_files(db, &store).await;
}

#[tokio::test]
async fn recovery_leaves_young_files_on_postgres_and_s3() {
    let endpoint = std::env::var("GRADPHOTO_TEST_S3")
        .expect("GRADPHOTO_TEST_S3 is not set: run scripts/test.sh (it starts a private S3-compatible server)");
    let bucket = format!("gp-{}", &BlobKey::new("t").as_str()[2..18]);
    // CreateBucket is a plain PUT on the bucket's path; the test server takes unsigned requests.
    let r = reqwest::Client::new().put(format!("{endpoint}/{bucket}")).send().await.unwrap();
    assert!(r.status().is_success(), "create bucket: {}", r.status());
    let store = gradphoto_store::S3Store::open(&gradphoto_store::S3Config {
        endpoint,
        bucket,
        region: "us-east-1".into(),
        access_key_id: None,
        secret_access_key: None,
    })
    .unwrap();
    recovery_leaves_young_files(postgres().await, &store).await;
}

/// Two admins (or one double-clicking) import the same roster at once: both succeed, every student exists once,
/// and between them the imports created each student once and found it unchanged once.
async fn concurrent_imports(db: Db) {
    let vault = Vault::from_base64(&Vault::generate_key(), &Vault::generate_key()).unwrap();
    let school = school(&db, "sjtu", "上海交通大学").await;
    let rows: Vec<StudentUpsert> = (0..60)
        .map(|i| roster_row(&vault, &format!("2026{i:04}"), &format!("学生{i}"), &format!("ID{i:04}")))
        .collect();
    for round in 0..3 {
        let (a, b) = tokio::join!(db.import_students(school, &rows), db.import_students(school, &rows));
        let (a, b) = (a.expect("first import"), b.expect("second import"));
        assert_eq!(a.created + b.created, if round == 0 { 60 } else { 0 }, "round {round}");
        assert_eq!(a.created + a.unchanged + b.created + b.unchanged, 120, "round {round}");
    }
    assert_eq!(db.students(school, 1000, 0).await.unwrap().len(), 60);
}

#[tokio::test]
async fn concurrent_imports_on_sqlite() {
    let (db, _dir) = sqlite().await;
    concurrent_imports(db).await;
}

#[tokio::test]
async fn concurrent_imports_on_postgres() {
    concurrent_imports(postgres().await).await;
}

/// The WeChat integration's storage: openid bindings, OAuth states, the shared token, outbox channels and dead
/// letters, WeChat Pay orders and refunds.
async fn wechat(db: Db) {
    let vault = Vault::from_base64(&Vault::generate_key(), &Vault::generate_key()).unwrap();
    let other = school(&db, "tju", "同济大学").await;
    let school = school(&db, "fdu", "复旦大学").await;
    let rows: Vec<StudentUpsert> =
        (1..=8).map(|i| roster_row(&vault, &i.to_string(), &format!("学生{i}"), &format!("ID{i}"))).collect();
    db.import_students(school, &rows).await.unwrap();
    db.import_students(other, &[roster_row(&vault, "1", "外校", "X1")]).await.unwrap();
    let mut s = Vec::new();
    for i in 1..=8 {
        s.push(db.student_by_no(school, &i.to_string()).await.unwrap().unwrap().id);
    }
    let t = db.photo_types(school).await.unwrap()[0].id;
    let now = gradphoto_store::now_ms();

    // Binding: one openid per student, one student per openid.
    assert_eq!(db.bind_wechat(s[0], b"h1", b"c1").await.unwrap(), BindOutcome::Bound);
    assert_eq!(db.bind_wechat(s[0], b"h1", b"c1").await.unwrap(), BindOutcome::Bound, "the same binding again");
    assert_eq!(db.bind_wechat(s[0], b"h2", b"c2").await.unwrap(), BindOutcome::StudentBoundElsewhere);
    assert_eq!(db.bind_wechat(s[1], b"h1", b"c1").await.unwrap(), BindOutcome::OpenidBoundElsewhere(s[0]));
    assert_eq!(db.student_by_openid(b"h1").await.unwrap().unwrap().id, s[0]);
    assert!(db.student_by_openid(b"h2").await.unwrap().is_none());
    assert_eq!(db.wechat_openid_cipher(s[0]).await.unwrap().as_deref(), Some(&b"c1"[..]));
    assert_eq!(db.wechat_openid_cipher(s[1]).await.unwrap(), None);
    assert!(db.bind_device(s[0], "browser", b"phone").await.unwrap());
    let channels = |b: Vec<gradphoto_store::db::Binding>| b.into_iter().map(|b| b.channel).collect::<Vec<_>>();
    assert_eq!(channels(db.bindings_of(s[0]).await.unwrap()), ["browser", "wechat"]);
    assert_eq!(db.unbind_device(s[0], Some("browser")).await.unwrap(), 1);
    assert_eq!(channels(db.bindings_of(s[0]).await.unwrap()), ["wechat"]);
    // Unbinding every channel, then binding again.
    assert_eq!(db.bind_wechat(s[7], b"h8", b"c8").await.unwrap(), BindOutcome::Bound);
    assert_eq!(db.unbind_device(s[7], None).await.unwrap(), 1);
    assert!(db.bindings_of(s[7]).await.unwrap().is_empty());
    assert_eq!(db.bind_wechat(s[1], b"h8", b"c8").await.unwrap(), BindOutcome::Bound, "a released openid binds anew");
    assert_eq!(db.unbind_device(s[1], Some("wechat")).await.unwrap(), 1);

    // Races: two openids for one student, one openid for two students; exactly one wins each.
    for round in 0..4 {
        let (a, b) = (format!("ra{round}"), format!("rb{round}"));
        let (x, y) = tokio::join!(db.bind_wechat(s[2], a.as_bytes(), b"c"), db.bind_wechat(s[2], b.as_bytes(), b"c"));
        let mut got = [x.unwrap(), y.unwrap()];
        got.sort_by_key(|o| *o != BindOutcome::Bound);
        assert_eq!(got, [BindOutcome::Bound, BindOutcome::StudentBoundElsewhere], "round {round}");
        let shared = format!("rs{round}");
        let (x, y) =
            tokio::join!(db.bind_wechat(s[3], shared.as_bytes(), b"c"), db.bind_wechat(s[4], shared.as_bytes(), b"c"));
        let (x, y) = (x.unwrap(), y.unwrap());
        let winner = db.student_by_openid(shared.as_bytes()).await.unwrap().unwrap().id;
        let loser = if winner == s[3] { s[4] } else { s[3] };
        let mut got = [x, y];
        got.sort_by_key(|o| *o != BindOutcome::Bound);
        assert_eq!(got, [BindOutcome::Bound, BindOutcome::OpenidBoundElsewhere(winner)], "round {round}");
        assert!(db.bindings_of(loser).await.unwrap().is_empty());
        for st in [s[2], s[3], s[4]] {
            db.unbind_device(st, None).await.unwrap();
        }
    }

    // OAuth states: single use, only with the browser's pre-image, only before they expire.
    db.create_oauth_state(b"st1", b"pre1", Some("fdu"), 2, now + 60_000).await.unwrap();
    assert!(db.take_oauth_state(b"st1", b"pre2").await.unwrap().is_none(), "another browser");
    let st = db.take_oauth_state(b"st1", b"pre1").await.unwrap().unwrap();
    assert_eq!((st.school_code.as_deref(), st.attempt), (Some("fdu"), 2));
    assert!(db.take_oauth_state(b"st1", b"pre1").await.unwrap().is_none(), "used");
    db.create_oauth_state(b"st2", b"pre", None, 1, now - 1).await.unwrap();
    assert!(db.take_oauth_state(b"st2", b"pre").await.unwrap().is_none(), "expired");
    assert!(db.take_oauth_state(b"st9", b"pre").await.unwrap().is_none(), "unknown");
    db.create_oauth_state(b"st3", b"pre", None, 1, now - 2 * 86_400_000).await.unwrap();
    assert_eq!(db.purge_oauth_states().await.unwrap(), 1, "only what expired over a day ago");

    // The server token: forced refreshes once per token, spaced, capped per day.
    assert!(db.wechat_token("app").await.unwrap().is_none());
    db.save_wechat_token("app", "t1", now + 7_200_000).await.unwrap();
    let tok = db.wechat_token("app").await.unwrap().unwrap();
    assert_eq!((tok.access_token.as_str(), tok.expires_at, tok.force_count), ("t1", now + 7_200_000, 0));
    let gap = 60_000;
    assert!(db.claim_force_refresh("app", "t1", now, 100, 2, gap).await.unwrap());
    assert!(!db.claim_force_refresh("app", "t1", now + 1, 100, 2, gap).await.unwrap(), "within the gap");
    assert!(!db.claim_force_refresh("app", "t0", now + gap, 100, 2, gap).await.unwrap(), "another token");
    assert!(!db.claim_force_refresh("other", "t1", now + gap, 100, 2, gap).await.unwrap(), "another appid");
    assert!(db.claim_force_refresh("app", "t1", now + gap, 100, 2, gap).await.unwrap());
    assert!(!db.claim_force_refresh("app", "t1", now + 2 * gap, 100, 2, gap).await.unwrap(), "the day's cap");
    assert!(db.claim_force_refresh("app", "t1", now + 3 * gap, 101, 2, gap).await.unwrap(), "a new day");
    db.save_wechat_token("app", "t2", now + 9_000_000).await.unwrap();
    let tok = db.wechat_token("app").await.unwrap().unwrap();
    assert_eq!((tok.access_token.as_str(), tok.force_day, tok.force_count), ("t2", 101, 1), "counters kept");
    assert!(!db.claim_force_refresh("app", "t1", now + 5 * gap, 101, 2, gap).await.unwrap(), "refreshed already");

    // The outbox: a WeChat-bound student's notice goes to both channels, an unbound one's to the site only.
    let photo = |student: StudentId, tag: &str| NewPhoto {
        student,
        photo_type: t,
        original: blob("original", tag.as_bytes()),
        annotated: None,
        verdict: "pass".into(),
        failing: String::new(),
        report: "{}".into(),
        checked: true,
    };
    let submitted =
        Notice { kind: "submitted", title: "已提交", body: "等待审核", payload: r#"{"kind":"submitted"}"# };
    for (st, tag) in [(s[0], "a"), (s[1], "b")] {
        let p = db.photo(db.record_upload(&photo(st, tag)).await.unwrap().photo).await.unwrap();
        db.submit(&p, true, &submitted).await.unwrap();
        db.submit(&p, true, &submitted).await.unwrap();
    }
    let due = db.due_outbox(100).await.unwrap();
    let of = |st: StudentId| {
        let mut c: Vec<_> = due.iter().filter(|d| d.student_id == Some(st)).map(|d| d.channel.clone()).collect();
        c.sort();
        c
    };
    assert_eq!(of(s[0]), ["site", "wechat"]);
    assert_eq!(of(s[1]), ["site"]);
    let wx = due.iter().find(|d| d.channel == "wechat").unwrap().clone();
    assert_eq!((wx.kind.as_str(), wx.title.as_str(), wx.payload.as_str()), ("submitted", "已提交", submitted.payload));

    // Dead letters: given up, shown to the student's school only, resent by it.
    db.outbox_failed(wx.id, "43004 not subscribed", None).await.unwrap();
    assert!(db.due_outbox(100).await.unwrap().iter().all(|d| d.id != wx.id), "a dead letter is not retried");
    assert_eq!(db.outbox_pending().await.unwrap(), 2);
    let dead = db.dead_letters(school, 10).await.unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!((dead[0].id, dead[0].student_no.as_deref(), dead[0].channel.as_str()), (wx.id, Some("1"), "wechat"));
    assert_eq!((dead[0].attempts, dead[0].last_error.as_deref()), (1, Some("43004 not subscribed")));
    assert!(dead[0].dead_at >= now);
    assert!(db.dead_letters(other, 10).await.unwrap().is_empty());
    assert!(matches!(db.outbox_resend(wx.id, other).await, Err(DbError::NotFound)), "another school's message");
    db.outbox_resend(wx.id, school).await.unwrap();
    assert!(matches!(db.outbox_resend(wx.id, school).await, Err(DbError::State)), "ours, but no longer dead");
    let item = db.outbox_item(wx.id).await.unwrap();
    assert_eq!((item.attempts, item.kind.as_str()), (0, "submitted"));
    assert!(db.due_outbox(100).await.unwrap().iter().any(|d| d.id == wx.id), "due again");
    assert!(db.dead_letters(school, 10).await.unwrap().is_empty());
    assert!(matches!(db.outbox_item(gradphoto_store::OutboxId(999_999)).await, Err(DbError::NotFound)));

    // Payments: an order, its prepay reused, confirmed once whatever WeChat resends.
    let waiting = db.photo(db.record_upload(&photo(s[5], "f")).await.unwrap().photo).await.unwrap();
    let sub = db.submit(&waiting, false, &submitted).await.unwrap();
    assert_eq!(db.submission(sub).await.unwrap().status, Status::Unpaid);
    let order = db.create_order(s[5], 2000, "wechat", "T1").await.unwrap();
    assert!(matches!(db.create_order(s[5], 2000, "wechat", "T1").await, Err(DbError::Conflict)));
    let p = db.payment(order).await.unwrap();
    assert_eq!((p.status, p.reference.as_str(), p.out_trade_no.as_deref()), (PayStatus::Created, "T1", Some("T1")));
    assert!(db.open_order(s[5], 2000, now).await.unwrap().is_none(), "no prepay yet");
    db.set_prepay("T1", "wx-prepay", now + 7_200_000).await.unwrap();
    assert!(matches!(db.set_prepay("T9", "x", now).await, Err(DbError::NotFound)));
    assert_eq!(db.open_order(s[5], 2000, now).await.unwrap().unwrap().id, order);
    assert!(db.open_order(s[5], 3000, now).await.unwrap().is_none(), "another amount");
    assert!(db.open_order(s[5], 2000, now + 7_200_001).await.unwrap().is_none(), "the prepay expired");
    assert_eq!(db.payment_by_trade_no("T1").await.unwrap().unwrap().prepay_id.as_deref(), Some("wx-prepay"));
    assert!(db.payment_by_trade_no("T9").await.unwrap().is_none());
    let later = gradphoto_store::now_ms() + 1;
    assert!(db.unpaid_orders(later, now - 60_000, 10).await.unwrap().iter().any(|p| p.id == order));
    assert!(db.unpaid_orders(now - 60_000, 0, 10).await.unwrap().is_empty());

    let paid_notice = Notice { kind: "submitted", title: "已提交", body: "等待审核", payload: "{}" };
    assert_eq!(db.confirm_payment("T1", "tx1", 1999, &paid_notice).await.unwrap(), Confirm::WrongAmount);
    assert_eq!(db.payment(order).await.unwrap().status, PayStatus::Created);
    assert!(!db.student(s[5]).await.unwrap().paid);
    assert_eq!(db.submission(sub).await.unwrap().status, Status::Unpaid);
    assert_eq!(db.confirm_payment("T9", "tx9", 2000, &paid_notice).await.unwrap(), Confirm::UnknownOrder);
    let db = &db;
    let notices_of = |st: StudentId| async move {
        db.due_outbox(1000).await.unwrap().into_iter().filter(|d| d.student_id == Some(st)).collect::<Vec<_>>()
    };
    assert!(notices_of(s[5]).await.is_empty(), "nothing while unpaid");
    assert_eq!(db.confirm_payment("T1", "tx1", 2000, &paid_notice).await.unwrap(), Confirm::Paid(s[5]));
    assert_eq!(db.confirm_payment("T1", "tx1", 2000, &paid_notice).await.unwrap(), Confirm::AlreadyDone);
    assert!(db.student(s[5]).await.unwrap().paid);
    assert_eq!(db.submission(sub).await.unwrap().status, Status::Submitted);
    let n = notices_of(s[5]).await;
    assert_eq!((n.len(), n[0].kind.as_str(), n[0].channel.as_str()), (1, "submitted", "site"), "one notice, once");
    let p = db.payment(order).await.unwrap();
    assert_eq!((p.status, p.transaction_id.as_deref()), (PayStatus::Paid, Some("tx1")));
    assert!(p.paid_at.is_some());
    assert!(db.unpaid_orders(later, now - 60_000, 10).await.unwrap().is_empty());

    // Two confirmations at once (a notification and a query): one does the work.
    let raced = db.create_order(s[6], 2000, "wechat", "T2").await.unwrap();
    let (x, y) = tokio::join!(
        db.confirm_payment("T2", "tx2", 2000, &paid_notice),
        db.confirm_payment("T2", "tx2", 2000, &paid_notice)
    );
    let mut got = [x.unwrap(), y.unwrap()];
    got.sort_by_key(|c| *c != Confirm::Paid(s[6]));
    assert_eq!(got, [Confirm::Paid(s[6]), Confirm::AlreadyDone]);

    // A closed order that WeChat says was paid after all is paid.
    let closed = db.create_order(s[7], 2000, "wechat", "T3").await.unwrap();
    db.close_order("T3").await.unwrap();
    assert_eq!(db.payment(closed).await.unwrap().status, PayStatus::Closed);
    assert_eq!(db.confirm_payment("T3", "tx3", 2000, &paid_notice).await.unwrap(), Confirm::Paid(s[7]));
    db.close_order("T3").await.unwrap();
    assert_eq!(db.payment(closed).await.unwrap().status, PayStatus::Paid, "a paid order is not closed");

    // Refunds: only of a paid payment; finished once; the student owes the fee again unless another payment stands.
    let unpaid = db.create_order(s[7], 2000, "wechat", "T4").await.unwrap();
    assert!(matches!(db.start_refund(unpaid, "R0").await, Err(DbError::State)));
    db.start_refund(order, "R1").await.unwrap();
    assert!(matches!(db.start_refund(order, "R1").await, Err(DbError::State)));
    assert_eq!(db.payment(order).await.unwrap().status, PayStatus::Refunding);
    assert!(db.finish_refund("R1").await.unwrap());
    assert!(!db.finish_refund("R1").await.unwrap(), "idempotent");
    assert!(!db.finish_refund("R9").await.unwrap());
    let p = db.payment(order).await.unwrap();
    assert_eq!((p.status, p.refund_no.as_deref()), (PayStatus::Refunded, Some("R1")));
    assert!(p.refunded_at.is_some());
    assert!(!db.student(s[5]).await.unwrap().paid);
    db.mark_paid(s[6], "offline", "cash", 2000, &paid_notice).await.unwrap();
    db.start_refund(raced, "R2").await.unwrap();
    assert!(db.finish_refund("R2").await.unwrap());
    assert!(db.student(s[6]).await.unwrap().paid, "the offline payment stands");
    assert_eq!(db.payments_of_student(s[6]).await.unwrap().len(), 2);
    let all = db.payments_of_school(school, 10).await.unwrap();
    assert_eq!(all.len(), 5);
    assert!(all.windows(2).all(|w| w[0].id.0 > w[1].id.0), "newest first");
    assert_eq!(db.payments_of_school(other, 10).await.unwrap().len(), 0);

    // Payment notifications: each id acted on once.
    assert!(db.record_payment_event("E1", Some("T1"), "TRANSACTION.SUCCESS", "paid").await.unwrap());
    assert!(!db.record_payment_event("E1", Some("T1"), "TRANSACTION.SUCCESS", "paid").await.unwrap());
    assert!(db.record_payment_event("E2", None, "REFUND.SUCCESS", "refunded").await.unwrap());
}

#[tokio::test]
async fn wechat_on_sqlite() {
    let (db, _dir) = sqlite().await;
    wechat(db).await;
}

#[tokio::test]
async fn wechat_on_postgres() {
    wechat(postgres().await).await;
}

/// Webhooks: one per school, rotated in place; events are queued with the decision only for a school that has one,
/// as school rows (no student) that the claim, the dead letters and the resend handle like the students' rows.
async fn webhooks(db: Db) {
    let vault = Vault::from_base64(&Vault::generate_key(), &Vault::generate_key()).unwrap();
    let quiet = school(&db, "nku", "南开大学").await;
    let school = school(&db, "sjtu", "上海交通大学").await;
    db.import_students(school, &[roster_row(&vault, "1", "甲", "W1"), roster_row(&vault, "2", "乙", "W2")])
        .await
        .unwrap();
    db.import_students(quiet, &[roster_row(&vault, "1", "丙", "Q1")]).await.unwrap();
    let staff = db.create_staff("w-rev", Role::Reviewer, Some(school), "hash").await.unwrap();

    assert!(db.webhook(school).await.unwrap().is_none());
    db.set_webhook(school, "https://a.example/hook", b"sealed-1").await.unwrap();
    db.webhook_failed(school, "HTTP 500").await.unwrap();
    db.set_webhook(school, "https://b.example/hook", b"sealed-2").await.unwrap();
    let w = db.webhook(school).await.unwrap().unwrap();
    assert_eq!((w.url.as_str(), w.secret_cipher.as_slice()), ("https://b.example/hook", &b"sealed-2"[..]));
    assert_eq!((w.last_error.as_deref(), w.last_delivered_at), (None, None), "a new registration starts afresh");
    assert!(!serde_json::to_string(&w).unwrap().contains("secret"), "the sealed secret is never serialised");
    let sealed = db.sealed_values(SealedKind::WebhookSecret, 0, 10).await.unwrap();
    assert_eq!((sealed.len(), sealed[0].row, sealed[0].school_id), (1, school.0, Some(school)));
    assert!(db.reseal(SealedKind::WebhookSecret, school.0, b"sealed-2", b"sealed-3").await.unwrap());
    assert!(!db.reseal(SealedKind::WebhookSecret, school.0, b"sealed-2", b"sealed-4").await.unwrap(), "changed");

    // A decision of each school: the one with a webhook gets an event row, the other none.
    let mut subs = Vec::new();
    for (sch, no) in [(school, "1"), (school, "2"), (quiet, "1")] {
        let st = db.student_by_no(sch, no).await.unwrap().unwrap();
        let photo_type = db.photo_types(sch).await.unwrap()[0].id;
        let up = NewPhoto {
            student: st.id,
            photo_type,
            original: blob("original", no.as_bytes()),
            annotated: None,
            verdict: "pass".into(),
            failing: String::new(),
            report: "{}".into(),
            checked: true,
        };
        let photo = db.photo(db.record_upload(&up).await.unwrap().photo).await.unwrap();
        subs.push((sch, db.submit(&photo, true, &notice("submitted")).await.unwrap(), photo.id));
    }
    for (sch, sub, photo) in &subs {
        let event = Event { school: *sch, kind: "submission.rejected", payload: r#"{"data":{}}"# };
        db.reject(*sub, *photo, staff, "background.color", "", &notice("rejected"), Some(&event)).await.unwrap();
    }
    let due = db.due_outbox(100).await.unwrap();
    let hooks: Vec<_> = due.iter().filter(|d| d.channel == "webhook").collect();
    assert_eq!(hooks.len(), 2, "two decisions of the school with a webhook, none of the other: {due:?}");
    assert!(hooks.iter().all(|h| h.school_id == Some(school) && h.student_id.is_none()));
    assert_eq!((hooks[0].kind.as_str(), hooks[0].payload.as_str()), ("submission.rejected", r#"{"data":{}}"#));
    assert!(due.iter().filter(|d| d.channel == "site").all(|d| d.student_id.is_some() && d.school_id.is_none()));

    // A school row is claimed, given up, listed for its school only and resent like any other.
    let claimed = db.claim_outbox("n1", 100, 60_000).await.unwrap();
    assert!(claimed.iter().any(|c| c.id == hooks[0].id));
    db.outbox_failed(hooks[0].id, "HTTP 410", None).await.unwrap();
    let dead = db.dead_letters(school, 10).await.unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!((dead[0].id, dead[0].student_id, dead[0].student_no.as_deref()), (hooks[0].id, None, None));
    assert!(db.dead_letters(quiet, 10).await.unwrap().is_empty());
    assert!(matches!(db.outbox_resend(hooks[0].id, quiet).await, Err(DbError::NotFound)), "another school's row");
    db.outbox_resend(hooks[0].id, school).await.unwrap();
    assert!(matches!(db.outbox_resend(hooks[0].id, school).await, Err(DbError::State)), "no longer dead");
    assert!(db.due_outbox(100).await.unwrap().iter().any(|d| d.id == hooks[0].id), "due again");
    assert!(matches!(db.notify_in_site(&db.outbox_item(hooks[0].id).await.unwrap()).await, Err(DbError::State)));

    // Deliveries are noted; a removed webhook gets no more events.
    db.webhook_delivered(school).await.unwrap();
    assert!(db.webhook(school).await.unwrap().unwrap().last_delivered_at.is_some());
    assert!(db.delete_webhook(school).await.unwrap());
    assert!(!db.delete_webhook(school).await.unwrap());
    let before = db.due_outbox(100).await.unwrap().len();
    let event = Event { school, kind: "export.created", payload: "{}" };
    db.mark_exported(&[], &notice("exported"), Some(&event)).await.unwrap();
    assert_eq!(db.due_outbox(100).await.unwrap().len(), before);
}

#[tokio::test]
async fn webhooks_on_sqlite() {
    let (db, _dir) = sqlite().await;
    webhooks(db).await;
}

#[tokio::test]
async fn webhooks_on_postgres() {
    webhooks(postgres().await).await;
}

/// Many nodes on one database: outbox rows are claimed by one node at a time (concurrent claims get disjoint rows),
/// a lease that ends lets another node take the row, a delivered row is never claimed again; sign-in attempts are
/// counted in the database per key and window.
async fn nodes(db: Db) {
    let vault = Vault::from_base64(&Vault::generate_key(), &Vault::generate_key()).unwrap();
    let school = school(&db, "zju", "浙江大学").await;
    let rows: Vec<StudentUpsert> =
        (1..=6).map(|i| roster_row(&vault, &i.to_string(), &format!("学生{i}"), &format!("ID{i}"))).collect();
    db.import_students(school, &rows).await.unwrap();
    let t = db.photo_types(school).await.unwrap()[0].id;
    for i in 1..=6 {
        let student = db.student_by_no(school, &i.to_string()).await.unwrap().unwrap().id;
        let up = NewPhoto {
            student,
            photo_type: t,
            original: blob("original", format!("photo {i}").as_bytes()),
            annotated: None,
            verdict: "pass".into(),
            failing: String::new(),
            report: "{}".into(),
            checked: true,
        };
        let photo = db.photo(db.record_upload(&up).await.unwrap().photo).await.unwrap();
        db.submit(&photo, true, &notice("submitted")).await.unwrap();
    }
    // Two nodes claim at once: disjoint, and together every due row.
    let (a, b) = tokio::join!(db.claim_outbox("node-a", 4, 60_000), db.claim_outbox("node-b", 4, 60_000));
    let (a, b) = (a.unwrap(), b.unwrap());
    let mut ids: Vec<i64> = a.iter().chain(&b).map(|i| i.id.0).collect();
    assert_eq!(ids.len(), 6, "{a:?} {b:?}");
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 6, "a row claimed by both nodes");
    assert!(a.len() <= 4 && b.len() <= 4);
    // Held rows are not claimed again while their lease runs.
    assert!(db.claim_outbox("node-c", 10, 60_000).await.unwrap().is_empty());
    // A node that dies: its lease ends (here: one of zero length) and another node takes the rows.
    let first = a.first().or(b.first()).unwrap().id;
    db.outbox_delivered(first).await.unwrap();
    let c = db.claim_outbox("node-c", 10, 0).await.unwrap();
    assert!(c.is_empty(), "leases of a minute still run");
    // Rows whose lease ended: a failure clears the lease, so the retry is claimable when due.
    let failed = b.first().or(a.get(1)).unwrap().id;
    db.outbox_failed(failed, "down", Some(gradphoto_store::now_ms() - 1)).await.unwrap();
    let again = db.claim_outbox("node-c", 10, 0).await.unwrap();
    assert_eq!(again.iter().map(|i| i.id).collect::<Vec<_>>(), vec![failed], "the retry, and not the delivered row");
    // node-c claimed it with a zero lease (as if it died at once): node-d takes it over.
    let taken = db.claim_outbox("node-d", 10, 60_000).await.unwrap();
    assert_eq!(taken.iter().map(|i| i.id).collect::<Vec<_>>(), vec![failed]);
    // node-d restarts under its name: it takes back its claim at once, and another node may take the row.
    assert!(db.claim_outbox("node-e", 10, 60_000).await.unwrap().is_empty());
    assert_eq!(db.release_claims("node-d").await.unwrap(), 1);
    assert_eq!(db.claim_outbox("node-e", 10, 60_000).await.unwrap().len(), 1);

    // Checks: queued photos are claimed oldest first, never by two nodes, and written once.
    let mut queued = Vec::new();
    for i in 1..=3 {
        let student = db.student_by_no(school, &i.to_string()).await.unwrap().unwrap().id;
        let up = NewPhoto {
            student,
            photo_type: t,
            original: blob("original", format!("queued {i}").as_bytes()),
            annotated: None,
            verdict: "checking".into(),
            failing: String::new(),
            report: "{}".into(),
            checked: false,
        };
        queued.push(db.record_upload(&up).await.unwrap().photo);
    }
    assert_eq!(db.checks_pending().await.unwrap(), 3);
    assert_eq!(db.check_place(queued[2]).await.unwrap(), 3);
    let (x, y) = tokio::join!(db.claim_check("node-a", 60_000), db.claim_check("node-b", 60_000));
    let (x, y) = (x.unwrap().unwrap().id, y.unwrap().unwrap().id);
    let holder_of_second = if x == queued[1] { "node-a" } else { "node-b" };
    let mut got = vec![x, y];
    got.sort();
    assert_eq!(got, queued[..2].to_vec(), "the two oldest, one each");
    let result = gradphoto_store::db::CheckResult {
        annotated: Some(blob("annotated", b"drawn")),
        verdict: "pass".into(),
        failing: String::new(),
        report: "{}".into(),
    };
    assert!(db.complete_check(queued[0], &result).await.unwrap());
    let twice = gradphoto_store::db::CheckResult { annotated: Some(blob("annotated", b"again")), ..result.clone() };
    assert!(!db.complete_check(queued[0], &twice).await.unwrap(), "a check finished twice is written once");
    assert_eq!(db.check_place(queued[0]).await.unwrap(), 0);
    assert_eq!(db.check_place(queued[2]).await.unwrap(), 2);
    // The node holding queued[1] dies; started again, it lets go, and the next claim takes it before queued[2].
    assert!(db.claim_check("node-c", 60_000).await.unwrap().unwrap().id == queued[2]);
    assert!(db.release_claims("node-c").await.unwrap() >= 1);
    assert!(db.release_claims(holder_of_second).await.unwrap() >= 1);
    assert_eq!(db.claim_check("node-c", 60_000).await.unwrap().unwrap().id, queued[1]);
    assert_eq!(db.claim_check("node-c", 60_000).await.unwrap().unwrap().id, queued[2]);
    assert!(db.claim_check("node-c", 60_000).await.unwrap().is_none());

    // Attempts: counted per key, in a window; a window that ended starts again at one.
    assert_eq!(db.count_attempt(b"ip-1", 60_000).await.unwrap(), 1);
    let (x, y) = tokio::join!(db.count_attempt(b"ip-1", 60_000), db.count_attempt(b"ip-1", 60_000));
    let mut got = [x.unwrap(), y.unwrap()];
    got.sort();
    assert_eq!(got, [2, 3], "concurrent attempts each count");
    assert_eq!(db.count_attempt(b"ip-2", 60_000).await.unwrap(), 1, "per key");
    assert_eq!(db.count_attempt(b"ip-1", 0).await.unwrap(), 1, "a window of zero has ended: counting restarts");
    assert_eq!(db.purge_attempts(-60_000).await.unwrap(), 2, "old windows are forgotten");

    // Periodic jobs: one node per period, another when the period is over.
    let (x, y) = tokio::join!(db.claim_job("reconcile", "node-a", 60_000), db.claim_job("reconcile", "node-b", 60_000));
    assert_eq!([x.unwrap(), y.unwrap()].iter().filter(|c| **c).count(), 1, "exactly one node runs the job");
    assert!(db.claim_job("purge", "node-b", 0).await.unwrap(), "another job is free");
    assert!(db.claim_job("purge", "node-a", 60_000).await.unwrap(), "a period that ended is claimed again");
    assert!(!db.claim_job("purge", "node-b", 60_000).await.unwrap());
}

#[tokio::test]
async fn nodes_on_sqlite() {
    let (db, _dir) = sqlite().await;
    nodes(db).await;
}

#[tokio::test]
async fn nodes_on_postgres() {
    nodes(postgres().await).await;
}
