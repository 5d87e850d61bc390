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
        assert!(!contains_whole(&logs, secret), "{secret} appears in the logs");
    }
}

/// Whether `needle` occurs as a whole value: not inside a longer run of ASCII letters and digits (a Chinese name
/// next to other Chinese text still counts). The last six digits of
/// a generated id number (say `010010`) occur by chance inside timestamps (`…:10.010010Z`) and durations; a logged
/// value stands apart, between spaces, quotes, `=` or punctuation.
fn contains_whole(haystack: &str, needle: &str) -> bool {
    haystack.match_indices(needle).any(|(at, _)| {
        let before = haystack[..at].chars().next_back();
        let after = haystack[at + needle.len()..].chars().next();
        !before.is_some_and(|c| c.is_ascii_alphanumeric()) && !after.is_some_and(|c| c.is_ascii_alphanumeric())
    })
}

#[test]
fn whole_values_only() {
    assert!(!contains_whole("2026-12-06T21:20:10.010010Z INFO request", "010010"), "inside a timestamp");
    assert!(!contains_whole("ms=1.0100101", "010010"));
    assert!(contains_whole("password=010010 failed", "010010"));
    assert!(contains_whole("\"010010\"", "010010"));
    assert!(contains_whole("name: 学生1,", "学生1"));
    assert!(!contains_whole("学生10", "学生1"), "another name");
    assert!(contains_whole("姓名学生1", "学生1"), "Chinese around a name is no boundary to hide behind");
}
