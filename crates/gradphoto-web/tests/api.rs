//! The published description (`/api/openapi.json`) against real answers: the typed answers and the error shape
//! are generated from the types the handlers serialise, and answers are checked against them (issue 14's
//! conformance helper, `common::conforms`).

mod common;

use common::*;
use gradphoto_store::db::Role;
use serde_json::{Value, json};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upload_check_and_error_answers_conform_to_the_description() {
    let server = TestServer::start().await;
    server.staff("root", Role::SuperAdmin, None).await;
    let mut root = server.client();
    root.login("/staff/login", "root", "root-password").await;
    let school = school(&server, &root, "api", "0").await;
    root.upload(&format!("/admin/schools/{school}/roster"), "roster", "r.csv", roster_csv(1, 1).into_bytes()).await;
    let mut student = server.client();
    let id = id_number(1);
    student.login("/s/api/login", "S00001", &id[id.len() - 6..]).await;
    let t = student.json("/me").await["types"][0]["id"].as_i64().unwrap();

    // The description names its schemas, and the rule ids are an enum.
    let doc = student.json("/api/openapi.json").await;
    let schemas = &doc["components"]["schemas"];
    for name in ["UploadAnswer", "CheckAnswer", "Report", "Finding", "Rule", "ErrorBody", "Message"] {
        assert!(schemas[name].is_object(), "components.schemas.{name}: {schemas:#}");
    }
    let rules: Vec<&str> = schemas["Rule"]["enum"].as_array().unwrap().iter().filter_map(Value::as_str).collect();
    assert!(rules.contains(&"geometry.hair_top") && rules.len() == gradphoto_core::Rule::ALL.len(), "{rules:?}");

    // An upload answered with its full report (every measured finding), then its check's state.
    let (name, bytes) = &approvable_originals()[0];
    let r = student.upload(&format!("/me/photos/{t}"), "photo", name, bytes.clone()).await;
    assert_eq!(r.status(), 200);
    let upload: Value = r.json().await.unwrap();
    assert!(upload["report"]["findings"].as_array().is_some_and(|f| f.len() > 10), "{upload}");
    conforms(&student, "POST", "/me/photos/{type}", 200, &upload).await;
    let check = student.json(&format!("/me/photos/{t}/check")).await;
    conforms(&student, "GET", "/me/photos/{type}/check", 200, &check).await;

    // Errors: another type's photo page (404) and a file that is not a JPEG (400).
    let r = student.get(&format!("/me/photos/{}", t + 1000)).await;
    assert_eq!(r.status(), 404);
    conforms(&student, "GET", "/me/photos/{type}", 404, &r.json().await.unwrap()).await;
    let r = student.upload(&format!("/me/photos/{t}"), "photo", "a.png", b"\x89PNG\r\n\x1a\n".to_vec()).await;
    assert_eq!(r.status(), 400);
    let error: Value = r.json().await.unwrap();
    assert_eq!(error["error"]["code"], "upload.not_jpeg");
    conforms(&student, "POST", "/me/photos/{type}", 400, &error).await;

    // The helper is not a rubber stamp: an undocumented field, a wrong type, a missing field and an undocumented
    // status are each caught.
    let mut extra = upload.clone();
    extra["secret"] = json!(1);
    let mut wrong = check.clone();
    wrong["place"] = json!("first");
    let mut missing = error.clone();
    missing["error"].as_object_mut().unwrap().remove("message");
    let mut bad_rule = upload.clone();
    bad_rule["report"]["findings"][0]["rule"] = json!("geometry.nonsense");
    for (route, status, body) in [
        ("/me/photos/{type}", 200, &extra),
        ("/me/photos/{type}/check", 200, &wrong),
        ("/me/photos/{type}", 400, &missing),
        ("/me/photos/{type}", 200, &bad_rule),
        ("/me/photos/{type}", 418, &error),
    ] {
        let method = if route.ends_with("check") { "GET" } else { "POST" };
        assert!(!violations(&student, method, route, status, body).await.is_empty(), "{route} {status}: {body}");
    }
}
