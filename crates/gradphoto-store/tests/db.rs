//! The repository on both backends, with the same expectations: SQLite in a temp file, PostgreSQL on the server
//! `scripts/test.sh` starts (`GRADPHOTO_TEST_POSTGRES`), a fresh database per test.

use gradphoto_store::blob::{BlobKey, BlobStore, LocalStore, sha256_hex};
use gradphoto_store::db::{Backend, BlobMeta, NewPhoto, NewSchool, Role, Status, StudentUpsert};
use gradphoto_store::recover::recover;
use gradphoto_store::{Db, DbError, SchoolId, Vault};

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
    };
    let first = db.record_upload(&up("a")).await.unwrap();
    let second = db.record_upload(&up("b")).await.unwrap();
    assert_eq!(second.replaced.len(), 2, "the first draft's two files are released");
    assert!(first.replaced.is_empty());
    let photo = db.photo(second.photo).await.unwrap();
    let sub = db.submit(&photo, false).await.unwrap();
    assert_eq!(db.submit(&photo, false).await.unwrap(), sub);
    assert_eq!(db.submission(sub).await.unwrap().status, Status::Unpaid);
    assert!(db.queue(school, 10).await.unwrap().is_empty(), "unpaid submissions wait");
    db.mark_paid(s1.id, "offline", "ref", 2000).await.unwrap();
    assert_eq!(db.submission(sub).await.unwrap().status, Status::Submitted);
    assert_eq!(db.queue(school, 10).await.unwrap().len(), 1);

    // Decisions: only once, only on the photo reviewed; each queues one notice.
    db.open_for_review(sub, staff).await.unwrap();
    assert!(matches!(
        db.approve(sub, first.photo, staff, &blob("registered", b"r0"), ("t", "b")).await,
        Err(DbError::State)
    ));
    db.reject(sub, photo.id, staff, "background.color", "", ("驳回", "原因")).await.unwrap();
    assert!(matches!(db.reject(sub, photo.id, staff, "x", "", ("t", "b")).await, Err(DbError::State)));
    // A rejected photo comes back only as a new upload.
    assert!(matches!(db.submit(&photo, true).await, Err(DbError::State)));
    let third = db.photo(db.record_upload(&up("c")).await.unwrap().photo).await.unwrap();
    assert_eq!(db.submit(&third, true).await.unwrap(), sub);
    let registered = blob("registered", b"r");
    db.approve(sub, third.id, staff, &registered, ("通过", "好")).await.unwrap();
    // Approved is final: the same photo again changes nothing, another photo is refused.
    assert_eq!(db.submit(&third, true).await.unwrap(), sub);
    assert_eq!(db.submission(sub).await.unwrap().status, Status::Approved);
    let fourth = db.photo(db.record_upload(&up("d")).await.unwrap().photo).await.unwrap();
    assert!(matches!(db.submit(&fourth, true).await, Err(DbError::State)));
    assert_eq!(db.exportable(school, None, false).await.unwrap().len(), 1);
    assert_eq!(db.exportable(school, Some("数学学院"), false).await.unwrap().len(), 1);
    assert_eq!(db.exportable(school, Some("物理学院"), false).await.unwrap().len(), 0);
    db.mark_exported(&[sub], ("上报", "已上报")).await.unwrap();
    assert_eq!(db.submission(sub).await.unwrap().status, Status::Exported);
    assert!(db.exportable(school, None, false).await.unwrap().is_empty());
    assert_eq!(db.exportable(school, None, true).await.unwrap().len(), 1);

    // The outbox: three notices; a failed delivery is retried later; the in-site channel is idempotent.
    let due = db.due_outbox(10).await.unwrap();
    assert_eq!(due.len(), 3);
    db.outbox_failed(due[0].id, "down", gradphoto_store::now_ms() + 60_000).await.unwrap();
    for item in &due[1..] {
        db.notify_in_site(item).await.unwrap();
        db.notify_in_site(item).await.unwrap();
        db.outbox_delivered(item.id).await.unwrap();
    }
    assert_eq!(db.due_outbox(10).await.unwrap().len(), 0);
    assert_eq!(db.outbox_pending().await.unwrap(), 1);
    assert_eq!(db.notifications(s1.id, 10).await.unwrap().len(), 2);

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
    };
    db.record_upload(&photo).await.unwrap();
    // Staged, never committed (crash before the commit).
    let lost = BlobKey::new("original");
    store.stage(&lost, b"lost").await.unwrap();
    // Published, no row (a replaced draft whose deletion was cut short).
    let orphan = BlobKey::new("annotated");
    store.stage(&orphan, b"orphan").await.unwrap();
    store.publish(&orphan).await.unwrap();
    let r = recover(&db, &store).await.unwrap();
    assert_eq!((r.published, r.discarded, r.orphans_removed, r.missing.len()), (1, 1, 1, 0));
    assert_eq!(store.published().await.unwrap(), vec![committed.key.clone()]);
    assert!(store.staged().await.unwrap().is_empty());
    // A second pass finds nothing to do; a file deleted behind our back is reported, not hidden.
    store.delete(&committed.key).await.unwrap();
    let r = recover(&db, &store).await.unwrap();
    assert_eq!(r.missing, vec![committed.key.to_string()]);
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
