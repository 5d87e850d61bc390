//! The paths around the main walk: a rejection with reasons and a new upload, a fee paid offline, a closed
//! collection window, a photo replaced while a reviewer looks at the old one.

use crate::common::*;
use gradphoto_store::db::Role;

struct Setup {
    server: TestServer,
    school: gradphoto_store::SchoolId,
    student: Client,
    reviewer: Client,
    admin: Client,
    type_id: i64,
}

async fn setup(fee: &str) -> Setup {
    let server = TestServer::start().await;
    server.staff("root", Role::SuperAdmin, None).await;
    let mut root = server.client();
    root.login("/staff/login", "root", "root-password").await;
    let school = school(&server, &root, "dd", fee).await;
    let mut admin = server.client();
    admin.login("/staff/login", "dd-admin", "dd-admin-password").await;
    admin.upload(&format!("/admin/schools/{school}/roster"), "roster", "r.csv", roster_csv(1, 2).into_bytes()).await;
    server.staff("d-rev", Role::Reviewer, Some(school)).await;
    let mut reviewer = server.client();
    reviewer.login("/staff/login", "d-rev", "d-rev-password").await;
    let mut student = server.client();
    let id = id_number(1);
    student.login("/s/dd/login", "S00001", &id[id.len() - 6..]).await;
    let type_id = student.json("/me").await["types"][0]["id"].as_i64().unwrap();
    Setup { server, school, student, reviewer, admin, type_id }
}

async fn upload(s: &Setup, which: usize) -> i64 {
    let originals = approvable_originals();
    let bytes = originals[which % originals.len()].1.clone();
    let r = s.student.upload(&format!("/me/photos/{}", s.type_id), "photo", "p.jpg", bytes).await;
    assert_eq!(r.status(), 200);
    r.json::<serde_json::Value>().await.unwrap()["photo"].as_i64().unwrap()
}

async fn submit(s: &Setup, photo: i64) -> serde_json::Value {
    let r = s.student.post(&format!("/me/photos/{}/submit", s.type_id), &[("photo", &photo.to_string())]).await;
    assert_eq!(r.status(), 200);
    r.json().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rejection_names_its_rules_and_a_new_upload_goes_back_to_the_queue() {
    let s = setup("0").await;
    let photo = upload(&s, 0).await;
    let sub = submit(&s, photo).await["submission"].as_i64().unwrap();
    let p = photo.to_string();
    // No reason, or only unknown ones: refused.
    let r = s.reviewer.post(&format!("/review/{sub}/reject"), &[("photo", &p), ("reason", "not.a.rule")]).await;
    assert_eq!(r.status(), 400);
    let r = s
        .reviewer
        .post(
            &format!("/review/{sub}/reject"),
            &[("photo", &p), ("reason", "background.color"), ("reason", "accessory.glasses"), ("note", "请摘掉眼镜")],
        )
        .await;
    assert_eq!(r.status(), 200);
    let page = s.student.json(&format!("/me/photos/{}", s.type_id)).await;
    assert_eq!(page["status"], "rejected");
    assert_eq!(page["submission"]["reasons"], "background.color,accessory.glasses");
    assert_eq!(page["submission"]["note"], "请摘掉眼镜");
    assert_eq!(page["can_submit"], false, "the rejected photo cannot go back as it is");
    // The page in Chinese names the reasons.
    let html = s.student.get_page(&format!("/me/photos/{}", s.type_id)).await.text().await.unwrap();
    assert!(html.contains("背景颜色") && html.contains("请摘掉眼镜"), "{html}");
    let me = await_notice(&s.student, |n| n["body"].as_str().is_some_and(|b| b.contains("背景颜色"))).await;
    assert!(me["notifications"][0]["body"].as_str().unwrap().contains("背景颜色"), "the newest notice: {me}");

    let again = upload(&s, 1).await;
    assert_eq!(submit(&s, again).await["submission"].as_i64().unwrap(), sub, "one submission per type");
    let q = s.reviewer.json("/review").await;
    assert_eq!(q["items"][0]["submission"]["photo_id"], again);
    assert_eq!(q["items"][0]["submission"]["status"], "submitted");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_decision_on_a_photo_replaced_meanwhile_is_refused() {
    let s = setup("0").await;
    let first = upload(&s, 0).await;
    let sub = submit(&s, first).await["submission"].as_i64().unwrap();
    // The student replaces and resubmits before anyone opened it.
    let second = upload(&s, 1).await;
    submit(&s, second).await;
    let r = s.reviewer.post(&format!("/review/{sub}/approve"), &[("photo", &first.to_string())]).await;
    assert_eq!(r.status(), 409);
    // Once opened for review, the student can no longer replace it.
    s.reviewer.json(&format!("/review/{sub}")).await;
    let r = s
        .student
        .upload(&format!("/me/photos/{}", s.type_id), "photo", "p.jpg", approvable_originals()[0].1.clone())
        .await;
    assert_eq!(r.status(), 409);
    let r = s.reviewer.post(&format!("/review/{sub}/approve"), &[("photo", &second.to_string())]).await;
    assert_eq!(r.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unpaid_fee_holds_the_submission_until_an_admin_records_it() {
    let s = setup("25.50").await;
    let photo = upload(&s, 0).await;
    let v = submit(&s, photo).await;
    assert_eq!(v["status"], "unpaid");
    assert!(s.reviewer.json("/review").await["items"].as_array().unwrap().is_empty());
    let pay = s.student.json("/me/pay").await;
    assert_eq!(pay["paid"], false);
    assert!(pay["instructions"]["zh"].as_str().unwrap().contains("25.50"), "{pay}");
    let student = s.server.state.db.student_by_no(s.school, "S00001").await.unwrap().unwrap().id;
    let r = s.admin.post(&format!("/admin/schools/{}/students/{student}/paid", s.school), &[]).await;
    assert_eq!(r.status(), 200);
    assert_eq!(s.reviewer.json("/review").await["items"].as_array().unwrap().len(), 1);
    assert_eq!(s.student.json("/me/pay").await["paid"], true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outside_the_collection_window_uploads_and_submissions_wait() {
    let s = setup("0").await;
    let photo = upload(&s, 0).await;
    let mut school = s.server.state.db.school(s.school).await.unwrap();
    school.closes_at = Some(gradphoto_store::now_ms() - 1000);
    let update = gradphoto_store::db::NewSchool {
        region_id: school.region_id,
        code: school.code.clone(),
        name: school.name.clone(),
        fee_cents: school.fee_cents,
        opens_at: school.opens_at,
        closes_at: school.closes_at,
        backgrounds: school.backgrounds.clone(),
    };
    s.server.state.db.update_school(s.school, &update).await.unwrap();
    let r = s.student.post(&format!("/me/photos/{}/submit", s.type_id), &[("photo", &photo.to_string())]).await;
    assert_eq!(r.status(), 409);
    assert_eq!(r.json::<serde_json::Value>().await.unwrap()["error"]["code"], "school.closed");
    let r = s
        .student
        .upload(&format!("/me/photos/{}", s.type_id), "photo", "p.jpg", approvable_originals()[0].1.clone())
        .await;
    assert_eq!(r.status(), 409);
}
