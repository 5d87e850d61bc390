//! The whole process (P1–P10) through the JSON API of a real server: a super-admin creates a school, its admin
//! imports a roster, a student signs in, uploads, is checked at once and submits; a reviewer approves; the admin
//! exports; the student follows every step.

use std::io::Read;
use std::time::Instant;

use crate::common::*;
use gradphoto_core::seal::verify_jpeg;
use gradphoto_store::db::Role;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn student_reviewer_admin_end_to_end_on_sqlite() {
    walk(TestServer::start().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn student_reviewer_admin_end_to_end_on_postgres_and_s3() {
    let server = TestServer::start_postgres_s3().await;
    assert_eq!(server.state.db.backend(), gradphoto_store::db::Backend::Postgres);
    walk(server).await;
}

async fn walk(server: TestServer) {
    server.staff("root", Role::SuperAdmin, None).await;
    let mut root = server.client();
    assert_eq!(root.login("/staff/login", "root", "root-password").await.0, 200);
    let school = school(&server, &root, "pku", "0").await;

    // The roster, in GBK as Excel in China saves it, with one bad row reported by its line.
    let mut admin = server.client();
    assert_eq!(admin.login("/staff/login", "pku-admin", "pku-admin-password").await.0, 200);
    let mut csv = roster_csv(1, 3);
    csv.push_str("S99999,坏行,居民身份证,110105199001010000,计算机学院,本科\n");
    let (gbk, _, _) = encoding_rs::GBK.encode(&csv);
    let r = admin.upload(&format!("/admin/schools/{school}/roster"), "roster", "名单.csv", gbk.into_owned()).await;
    assert_eq!(r.status(), 200);
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(v["import"]["created"], 3, "{v}");
    assert_eq!(v["import"]["errors"][0]["line"], 5, "{v}");
    // A re-import with one name corrected updates, never duplicates.
    let again = roster_csv(1, 3).replace("学生2,", "学生二,");
    let r = admin.upload(&format!("/admin/schools/{school}/roster"), "roster", "r.csv", again.into_bytes()).await;
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!((v["import"]["created"].as_i64(), v["import"]["updated"].as_i64()), (Some(0), Some(1)), "{v}");
    assert_eq!(v["progress"]["students"], 3);

    // The student: initial password = last 6 of the id number, then a password of their own.
    let id = id_number(1);
    let mut student = server.client();
    let (status, body) = student.login("/s/pku/login", "S00001", &id[id.len() - 6..]).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["must_change_password"], true);
    let r = student.post("/me/password", &[("current", &id[id.len() - 6..]), ("new", "a-new-password")]).await;
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    let me = student.json("/me").await;
    let type_id = me["types"][0]["id"].as_i64().unwrap();
    assert_eq!(me["types"][0]["status"], "none");

    // Upload: the report comes back with the response.
    let (_, original) = &approvable_originals()[0];
    let started = Instant::now();
    let r = student.upload(&format!("/me/photos/{type_id}"), "photo", "IMG_0001.JPG", original.clone()).await;
    let took = started.elapsed();
    assert_eq!(r.status(), 200);
    let v: serde_json::Value = r.json().await.unwrap();
    let photo = v["photo"].as_i64().unwrap();
    assert!(v["report"]["findings"].as_array().unwrap().len() > 20, "{v}");
    assert_ne!(v["report"]["verdict"], "reject", "{}", v["report"]);
    eprintln!("upload to report: {took:?}");
    let r = student.get(&format!("/me/photo/{photo}/annotated.jpg")).await;
    assert_eq!(r.status(), 200);
    assert!(r.bytes().await.unwrap().starts_with(&[0xFF, 0xD8]));

    // A double submit makes one submission.
    let p = photo.to_string();
    let submit_path = format!("/me/photos/{type_id}/submit");
    let form = [("photo", p.as_str())];
    let (a, b) = tokio::join!(student.post(&submit_path, &form), student.post(&submit_path, &form));
    let (a, b): (serde_json::Value, serde_json::Value) = (a.json().await.unwrap(), b.json().await.unwrap());
    assert_eq!(a["submission"], b["submission"], "{a} {b}");
    let submission = a["submission"].as_i64().unwrap();
    assert_eq!(student.json("/me").await["types"][0]["status"], "submitted");

    // The reviewer: queue in submit order, approve.
    server.staff("pku-reviewer", Role::Reviewer, Some(school)).await;
    let mut reviewer = server.client();
    assert_eq!(reviewer.login("/staff/login", "pku-reviewer", "pku-reviewer-password").await.0, 200);
    let q = reviewer.json("/review").await;
    assert_eq!(q["items"].as_array().unwrap().len(), 1);
    let item = reviewer.json(&format!("/review/{submission}")).await;
    assert_eq!(item["item"]["submission"]["status"], "in_review");
    let r = reviewer.post(&format!("/review/{submission}/approve"), &[("photo", &p)]).await;
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(v["status"], "approved", "{v}");
    // Deciding twice is refused.
    let r =
        reviewer.post(&format!("/review/{submission}/reject"), &[("photo", &p), ("reason", "background.color")]).await;
    assert_eq!(r.status(), 409);

    // The student sees the result, a notice, and can download the registered file, sealed with their identity.
    let me = student.json("/me").await;
    assert_eq!(me["types"][0]["status"], "approved");
    let me = await_notice(&student, |n| n["title"] == "照片审核通过").await;
    assert_eq!(me["notifications"][0]["title"], "照片审核通过", "the newest notice: {me}");
    let r = student.get(&format!("/me/submissions/{submission}/registered.jpg")).await;
    assert_eq!(r.status(), 200);
    let registered = r.bytes().await.unwrap().to_vec();
    let (identity, _) = verify_jpeg(&registered, server.state.sealer.as_ref()).expect("sealed");
    assert_eq!(identity.id_number, id);
    assert_eq!(identity.school, "pku");

    // Export: a ZIP of <id number>.jpg and manifest.csv; the submission becomes exported.
    let r = admin.get(&format!("/admin/schools/{school}/export.zip")).await;
    assert_eq!(r.status(), 200);
    let zip_bytes = r.bytes().await.unwrap().to_vec();
    let mut zip = zip::ZipArchive::new(std::io::Cursor::new(zip_bytes)).unwrap();
    let mut names: Vec<String> = zip.file_names().map(|n| n.unwrap().to_string()).collect();
    names.sort();
    assert_eq!(names, vec![format!("{id}.jpg"), "manifest.csv".to_string()]);
    let mut file = Vec::new();
    zip.by_name(&format!("{id}.jpg")).unwrap().read_to_end(&mut file).unwrap();
    assert_eq!(file, registered);
    let mut manifest = String::new();
    zip.by_name("manifest.csv").unwrap().read_to_string(&mut manifest).unwrap();
    assert!(manifest.contains(&id) && manifest.contains("S00001"), "{manifest}");
    assert_eq!(student.json("/me").await["types"][0]["status"], "exported");
    // The next export has nothing new.
    let r = admin.get(&format!("/admin/schools/{school}/export.zip")).await;
    let mut zip = zip::ZipArchive::new(std::io::Cursor::new(r.bytes().await.unwrap().to_vec())).unwrap();
    assert_eq!(zip.len(), 1);
    let _ = zip.by_name("manifest.csv").unwrap();

    // The audit log has the logins, the decision and the exports, and no id number.
    let log = server.state.db.audit_log(Some(school), 100).await.unwrap();
    let actions: Vec<&str> = log.iter().map(|a| a.action.as_str()).collect();
    for a in ["login", "roster.import", "approve", "export", "submit"] {
        assert!(actions.contains(&a), "{a} missing from {actions:?}");
    }
    assert!(log.iter().all(|a| !a.detail.contains(&id)));
}
