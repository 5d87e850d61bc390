//! The check queue: an upload is answered with the file rules and its place at once, the full checks run in
//! arrival order, the page learns the result without a reload, and a photo that keeps killing its checker is given
//! up with an error report.

use std::time::Duration;

use crate::common::*;
use gradphoto_store::PhotoId;
use gradphoto_store::db::Role;
use serde_json::Value;

const STUDENTS: u32 = 4;

/// A school of `STUDENTS` signed-in students on a node that runs no checks itself (`check_workers = 0`), so the
/// queue holds still until the test starts a worker.
async fn setup() -> (TestServer, Vec<Client>, i64) {
    let mut config = config();
    config.check_workers = Some(0);
    let server = TestServer::start_with(config).await;
    server.staff("root", Role::SuperAdmin, None).await;
    let mut root = server.client();
    root.login("/staff/login", "root", "root-password").await;
    let school = school(&server, &root, "qq", "0").await;
    let csv = roster_csv(1, STUDENTS).into_bytes();
    root.upload(&format!("/admin/schools/{school}/roster"), "roster", "r.csv", csv).await;
    let mut students = Vec::new();
    for n in 1..=STUDENTS {
        let mut c = server.client();
        let id = id_number(n);
        c.login("/s/qq/login", &format!("S{n:05}"), &id[id.len() - 6..]).await;
        students.push(c);
    }
    let type_id = students[0].json("/me").await["types"][0]["id"].as_i64().unwrap();
    (server, students, type_id)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploads_are_answered_at_once_and_checked_in_arrival_order() {
    let (server, students, t) = setup().await;
    let originals = approvable_originals();
    let path = format!("/me/photos/{t}");

    // Each upload is answered before any check runs: the file rules' report, and its place behind the earlier ones.
    let mut photos = Vec::new();
    for (i, c) in students.iter().enumerate() {
        let r = c.upload_queued(&path, "IMG.JPG", originals[i % originals.len()].1.clone()).await;
        assert_eq!(r.status(), 200);
        assert!(r.headers().get("server-timing").is_some_and(|v| v.to_str().unwrap().starts_with("answer;dur=")));
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["checking"], true, "{v}");
        assert_eq!(v["place"], i as i64 + 1, "{v}");
        let rules: Vec<&str> =
            v["report"]["findings"].as_array().unwrap().iter().map(|f| f["rule"].as_str().unwrap()).collect();
        assert!(
            rules.contains(&"format.jpeg") && rules.contains(&"format.file_size"),
            "file rules answered: {rules:?}"
        );
        assert!(
            !rules.iter().any(|r| r.starts_with("face.") || r.starts_with("geometry.")),
            "no person rule before the full check: {rules:?}"
        );
        photos.push(v["photo"].as_i64().unwrap());
    }

    // The page says so, offers no submit yet, and a submit is refused until the check ends.
    let page = students[0].get_page(&path).await.text().await.unwrap();
    assert!(page.contains(r#"id="checking""#) && !page.contains(r#"id="result""#));
    assert!(page.contains(r#"id="place-ahead">0<"#), "first in the queue: nobody ahead");
    let last = students.last().unwrap();
    let v = last.json(&path).await;
    assert_eq!(
        (v["checking"].as_bool(), v["place"].as_i64(), v["can_submit"].as_bool()),
        (Some(true), Some(4), Some(false))
    );
    let r = last.post(&format!("{path}/submit"), &[("photo", &photos[3].to_string())]).await;
    assert_eq!(r.status(), 409);
    // A long poll with nothing running ends at its deadline, still queued.
    let v = last.json(&format!("{path}/check?wait=1")).await;
    assert_eq!((v["checking"].as_bool(), v["place"].as_i64()), (Some(true), Some(4)), "{v}");

    // The last student waits for the result as the page does; one worker then takes the queue in order.
    let waiting = {
        let url = format!("{}{path}/check?wait=20", last.base);
        let http = last.http.clone();
        tokio::spawn(async move { http.get(url).header("accept", "application/json").send().await.unwrap() })
    };
    let worker = tokio::spawn(gradphoto_web::checks::run(server.state.clone()));
    let v: Value = waiting.await.unwrap().json().await.unwrap();
    assert_eq!(v["checking"], false, "the long poll answers when the check ends: {v}");
    let mut finished = Vec::new();
    for id in &photos {
        let p = server.state.db.photo(PhotoId(*id)).await.unwrap();
        assert!(!p.checking() && p.annotated_key.is_some() && p.verdict != "checking", "{p:?}");
        assert_eq!(p.check_claims, 1, "claimed once");
        finished.push((p.checked_at.unwrap(), p.id.0));
    }
    let mut by_time = finished.clone();
    by_time.sort();
    assert_eq!(by_time, finished, "one worker finishes them in upload order");

    // The page now shows the full report, and the photo can be submitted.
    let page = last.get_page(&path).await.text().await.unwrap();
    assert!(page.contains(r#"id="result""#) && !page.contains(r#"id="checking""#));
    let v = last.json(&path).await;
    assert!(v["report"]["findings"].as_array().unwrap().iter().any(|f| f["rule"] == "face.count"), "{v}");
    assert_eq!(v["can_submit"], true);
    assert_eq!(last.post(&format!("{path}/submit"), &[("photo", &photos[3].to_string())]).await.status(), 200);
    worker.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_photo_that_keeps_killing_its_checker_is_given_up_with_an_error() {
    let (server, students, t) = setup().await;
    let r = students[0].upload_queued(&format!("/me/photos/{t}"), "a.jpg", approvable_originals()[0].1.clone()).await;
    let photo = PhotoId(r.json::<Value>().await.unwrap()["photo"].as_i64().unwrap());
    // Four claims whose leases ran out with nothing written: as if four checkers had died on it.
    for _ in 0..4 {
        let claimed = server.state.db.claim_check("dead-node", 0).await.unwrap().expect("claimable again");
        assert_eq!(claimed.id, photo);
    }
    let worker = tokio::spawn(gradphoto_web::checks::run(server.state.clone()));
    let start = std::time::Instant::now();
    let p = loop {
        let p = server.state.db.photo(photo).await.unwrap();
        if !p.checking() {
            break p;
        }
        assert!(start.elapsed() < Duration::from_secs(20), "given up in time");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    worker.abort();
    assert_eq!(p.verdict, "error");
    assert!(p.report.contains("analysis.failed") && p.annotated_key.is_none(), "{}", p.report);
    assert_eq!(p.check_claims, 5);
    // Nothing of it can be submitted; the student is told to upload another.
    let r = students[0].post(&format!("/me/photos/{t}/submit"), &[("photo", &photo.0.to_string())]).await;
    assert_eq!(r.status(), 400);
}
