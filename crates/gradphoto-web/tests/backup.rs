//! Backup and restore of the one-node setup (SQLite and the local store): `gradphoto admin backup` taken while
//! students upload, then a service started on the copy — every row's file there and intact, the approved photo's
//! registered file the same bytes, students able to sign in and go on.

mod common;

use common::*;
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
    let config = common::config();
    let (report, ()) = tokio::join!(gradphoto_web::backup::backup(server.dir.path(), &config, &to), uploads);
    let report = report.unwrap();
    assert!(report.files.files >= 4, "{report:?}");
    assert!(report.warnings.is_empty(), "{report:?}");
    assert!(to.join("keys.toml").exists() && to.join("gradphoto.db").exists());
    assert!(gradphoto_web::backup::backup(server.dir.path(), &config, &to).await.is_err(), "never over a backup");

    // Every row of the copy has its file, and the file is the one the row's hash names.
    let db = gradphoto_store::Db::connect(&format!("sqlite:{}", to.join("gradphoto.db").display())).await.unwrap();
    let store = LocalStore::open(to.join("store")).await.unwrap();
    let rec = gradphoto_store::recover::recover(&db, &store).await.unwrap();
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
    let restored = TestServer::start_in(copy, listener, common::config()).await;
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
