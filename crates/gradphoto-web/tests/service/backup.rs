//! Backup and restore of the one-node setup (SQLite and the local store): `gradphoto admin backup` taken while
//! students upload, then a service started on the copy — every row's file there and intact, the approved photo's
//! registered file the same bytes, students able to sign in and go on.

use crate::common::*;
use gradphoto_store::blob::sha256_hex;
use gradphoto_store::db::Role;
use gradphoto_store::{BlobStore, LocalStore};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_taken_under_load_restores_to_a_working_service() {
    let server = TestServer::start().await;
    server.staff("root", Role::SuperAdmin, None).await;
    server.staff("rev", Role::Reviewer, None).await;
    let mut root = server.client();
    assert_eq!(root.login("/staff/login", "root", "root-password").await.0, 200);
    let school = school(&server, &root, "bak", "0").await;
    let r =
        root.upload(&format!("/admin/schools/{school}/roster"), "roster", "r.csv", roster_csv(1, 3).into_bytes()).await;
    assert_eq!(r.status(), 200);
    let password = |i: u32| {
        let id = id_number(i);
        id[id.len() - 6..].to_string()
    };
    // Student 1: approved, with a registered file. Student 2: a draft.
    let mut s1 = server.client();
    assert_eq!(s1.login("/s/bak/login", "S00001", &password(1)).await.0, 200);
    let t = s1.json("/me").await["types"][0]["id"].as_i64().unwrap();
    let originals = approvable_originals();
    let r = s1.upload(&format!("/me/photos/{t}"), "photo", "a.jpg", originals[0].1.clone()).await;
    let photo = r.json::<serde_json::Value>().await.unwrap()["photo"].as_i64().unwrap().to_string();
    let r = s1.post(&format!("/me/photos/{t}/submit"), &[("photo", photo.as_str())]).await;
    let sub = r.json::<serde_json::Value>().await.unwrap()["submission"].as_i64().unwrap();
    let r = root.post(&format!("/review/{sub}/approve"), &[("photo", photo.as_str())]).await;
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    let registered = s1.get(&format!("/me/submissions/{sub}/registered.jpg")).await.bytes().await.unwrap();
    let mut s2 = server.client();
    assert_eq!(s2.login("/s/bak/login", "S00002", &password(2)).await.0, 200);
    let r = s2.upload(&format!("/me/photos/{t}"), "photo", "b.jpg", originals[1 % originals.len()].1.clone()).await;
    assert_eq!(r.status(), 200);

    // The backup, while student 3 uploads (and replaces) photos.
    let copy = tempfile::tempdir().unwrap();
    let to = copy.path().to_path_buf();
    let mut s3 = server.client();
    assert_eq!(s3.login("/s/bak/login", "S00003", &password(3)).await.0, 200);
    let uploads = async {
        for i in 0..3 {
            let bytes = originals[i % originals.len()].1.clone();
            assert_eq!(s3.upload(&format!("/me/photos/{t}"), "photo", "c.jpg", bytes).await.status(), 200);
        }
    };
    let config = crate::common::config();
    let (report, ()) = tokio::join!(gradphoto_web::backup::backup(server.dir.path(), &config, &to), uploads);
    let report = report.unwrap();
    assert!(report.files.files >= 4, "{report:?}");
    assert!(report.warnings.is_empty(), "{report:?}");
    assert!(to.join("keys.toml").exists() && to.join("gradphoto.db").exists());
    assert!(gradphoto_web::backup::backup(server.dir.path(), &config, &to).await.is_err(), "never over a backup");

    // Every row of the copy has its file, and the file is the one the row's hash names.
    let db = gradphoto_store::Db::connect(&format!("sqlite:{}", to.join("gradphoto.db").display())).await.unwrap();
    let store = LocalStore::open(to.join("store")).await.unwrap();
    let rec = gradphoto_store::recover::recover(&db, &store, 0).await.unwrap();
    // A photo student 3 replaced between the snapshot and the copy is the only file that may be missing.
    assert_eq!(rec.missing, report.files.missing, "{rec:?}");
    for key in db.blob_keys().await.unwrap() {
        if let Ok(bytes) = store.get(&key).await {
            let meta = db.blob_meta(&key).await.unwrap();
            assert_eq!(sha256_hex(&bytes), meta.sha256, "{key}");
        }
    }
    db.close().await;

    // Restored: a service on the copy.
    drop(server);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let restored = TestServer::start_in(copy, listener, crate::common::config()).await;
    // The same browsers (their device binding is in the copy too), pointed at the restored service.
    s1.base = restored.base.clone();
    let (status, body) = s1.login("/s/bak/login", "S00001", &password(1)).await;
    assert_eq!(status, 200, "the id numbers open with the copied keys: {body}");
    let me = s1.json("/me").await;
    assert_eq!(me["types"][0]["status"], "approved");
    let again = s1.get(&format!("/me/submissions/{sub}/registered.jpg")).await.bytes().await.unwrap();
    assert_eq!(again, registered, "the registered file is the same bytes");
    s2.base = restored.base.clone();
    assert_eq!(s2.login("/s/bak/login", "S00002", &password(2)).await.0, 200);
    let stranger = restored.client().login("/s/bak/login", "S00002", &password(2)).await.0;
    assert_eq!(stranger, 400, "another device is still refused: the bindings came along");
    let page = s2.json(&format!("/me/photos/{t}")).await;
    let draft = page["photo"]["id"].as_i64().unwrap();
    assert_eq!(s2.get(&format!("/me/photo/{draft}/original.jpg")).await.status(), 200);
    let r = s2.post(&format!("/me/photos/{t}/submit"), &[("photo", &draft.to_string())]).await;
    assert_eq!(r.status(), 200, "the restored service goes on");
}

/// PostgreSQL's own dump tool, from the server the test script installed (the same major version as the server).
fn pg_tool(name: &str) -> std::path::PathBuf {
    let mut found: Vec<std::path::PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|d| d.filter_map(Result::ok).map(|e| e.path().join("bin").join(name)).filter(|p| p.exists()).collect())
        .unwrap_or_default();
    found.sort();
    found.pop().unwrap_or_else(|| panic!("{name} is missing: scripts/test.sh installs postgresql"))
}

/// The several-node setup as docs/deployment.md says to back it up: `pg_dump` first, then the bucket's files the dump
/// names copied to another bucket; `pg_restore` into an empty database; a service on the restored pair works.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_and_s3_restore_from_pg_dump_and_a_bucket_copy() {
    let server = TestServer::start_postgres_s3().await;
    server.staff("root", Role::SuperAdmin, None).await;
    let mut root = server.client();
    assert_eq!(root.login("/staff/login", "root", "root-password").await.0, 200);
    let school = school(&server, &root, "pgb", "0").await;
    let r =
        root.upload(&format!("/admin/schools/{school}/roster"), "roster", "r.csv", roster_csv(1, 1).into_bytes()).await;
    assert_eq!(r.status(), 200);
    let id = id_number(1);
    let mut s1 = server.client();
    assert_eq!(s1.login("/s/pgb/login", "S00001", &id[id.len() - 6..]).await.0, 200);
    let t = s1.json("/me").await["types"][0]["id"].as_i64().unwrap();
    let r = s1.upload(&format!("/me/photos/{t}"), "photo", "a.jpg", approvable_originals()[0].1.clone()).await;
    let photo = r.json::<serde_json::Value>().await.unwrap()["photo"].as_i64().unwrap().to_string();
    let r = s1.post(&format!("/me/photos/{t}/submit"), &[("photo", photo.as_str())]).await;
    let sub = r.json::<serde_json::Value>().await.unwrap()["submission"].as_i64().unwrap();
    assert_eq!(root.post(&format!("/review/{sub}/approve"), &[("photo", photo.as_str())]).await.status(), 200);
    let registered = s1.get(&format!("/me/submissions/{sub}/registered.jpg")).await.bytes().await.unwrap();

    // The backup: the database dumped, then the files its rows name copied to another bucket.
    let source_url = server.state.config.database_url.clone().unwrap();
    let dump = tempfile::tempdir().unwrap();
    let file = dump.path().join("gradphoto.dump");
    let out = std::process::Command::new(pg_tool("pg_dump"))
        .args(["-Fc", "-d", &source_url, "-f"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(out.status.success(), "pg_dump: {}", String::from_utf8_lossy(&out.stderr));
    let target_url = postgres_database().await.unwrap();
    let out = std::process::Command::new(pg_tool("pg_restore"))
        .args(["--no-owner", "-d", &target_url])
        .arg(&file)
        .output()
        .unwrap();
    assert!(out.status.success(), "pg_restore: {}", String::from_utf8_lossy(&out.stderr));
    let restored_db = gradphoto_store::Db::connect(&target_url).await.unwrap();
    let target_bucket = s3_bucket().await;
    let from = gradphoto_store::S3Store::open(server.state.config.s3.as_ref().unwrap()).unwrap();
    let to = gradphoto_store::S3Store::open(&target_bucket).unwrap();
    let copied = gradphoto_store::backup::copy_files(&restored_db, &from, &to).await.unwrap();
    assert!(copied.files >= 3 && copied.missing.is_empty(), "{copied:?}");
    restored_db.close().await;

    // Restore: a service on the restored database and bucket, with the same keys.toml.
    let data = tempfile::tempdir().unwrap();
    std::fs::copy(server.dir.path().join("keys.toml"), data.path().join("keys.toml")).unwrap();
    drop(server);
    let mut config = crate::common::config();
    config.database_url = Some(target_url);
    config.s3 = Some(target_bucket);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let restored = TestServer::start_in(data, listener, config).await;
    s1.base = restored.base.clone();
    assert_eq!(s1.login("/s/pgb/login", "S00001", &id[id.len() - 6..]).await.0, 200);
    assert_eq!(s1.json("/me").await["types"][0]["status"], "approved");
    let again = s1.get(&format!("/me/submissions/{sub}/registered.jpg")).await.bytes().await.unwrap();
    assert_eq!(again, registered);
}
