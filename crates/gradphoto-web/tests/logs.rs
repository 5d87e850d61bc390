//! No personal data in logs: the whole walk runs with every log line captured (debug level), and none holds an id
//! number, a name or a student number.

mod common;

use std::io::Write;
use std::sync::{Arc, Mutex};

use common::*;
use gradphoto_store::db::Role;

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_logs_hold_no_personal_data() {
    let captured = Captured::default();
    let writer = captured.clone();
    tracing_subscriber::fmt()
        .with_max_level(tracing::Level::DEBUG)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .init();

    let server = TestServer::start().await;
    server.staff("root", Role::SuperAdmin, None).await;
    let mut root = server.client();
    root.login("/staff/login", "root", "root-password").await;
    let school = school(&server, &root, "logs", "0").await;
    root.upload(&format!("/admin/schools/{school}/roster"), "roster", "r.csv", roster_csv(1, 2).into_bytes()).await;
    let mut student = server.client();
    let id = id_number(1);
    student.login("/s/logs/login", "S00001", &id[id.len() - 6..]).await;
    // A failed sign-in and a bad roster row are the likeliest places for a careless log line.
    server.client().login("/s/logs/login", "S00002", "000000").await;
    let bad = "学号,姓名,证件号码\nS00009,坏行学生,110105199001019999\n";
    root.upload(&format!("/admin/schools/{school}/roster"), "roster", "bad.csv", bad.as_bytes().to_vec()).await;
    let type_id = student.json("/me").await["types"][0]["id"].as_i64().unwrap();
    let r =
        student.upload(&format!("/me/photos/{type_id}"), "photo", "p.jpg", approvable_originals()[0].1.clone()).await;
    let photo = r.json::<serde_json::Value>().await.unwrap()["photo"].as_i64().unwrap();
    let sub = student.post(&format!("/me/photos/{type_id}/submit"), &[("photo", &photo.to_string())]).await;
    let sub = sub.json::<serde_json::Value>().await.unwrap()["submission"].as_i64().unwrap();
    root.post(&format!("/review/{sub}/approve"), &[("photo", &photo.to_string())]).await;
    root.get(&format!("/admin/schools/{school}/export.zip")).await.bytes().await.unwrap();

    let logs = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    assert!(logs.contains("/me/photos/"), "the access log is captured: {logs}");
    for secret in
        [id.as_str(), &id[id.len() - 6..], "S00001", "S00002", "学生1", "学生2", "坏行学生", "110105199001019999"]
    {
        assert!(!logs.contains(secret), "{secret} appears in the logs");
    }
}
