//! The published description (`/api/openapi.json`) against real answers: the typed answers and the error shape
//! are generated from the types the handlers serialise. Every answer any test gets through `common::Client` is
//! checked against it (`common::Answer`); here, that the check is not a rubber stamp.

use crate::common::*;
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
    let at = rules.iter().position(|r| *r == "geometry.hair_top").unwrap();
    assert_eq!(schemas["Rule"]["x-enum-clauses"][at], "S: 四.2, 二.2", "each rule id with its clause");
    // Every route documents its answers, its path parameters with their types, and its request body.
    for (path, ops) in doc["paths"].as_object().unwrap() {
        for (method, op) in ops.as_object().unwrap() {
            let responses = op["responses"].as_object().unwrap();
            assert!(["200", "204", "303"].iter().any(|s| responses.contains_key(*s)), "{method} {path}: {op:#}");
            for p in op["parameters"].as_array().unwrap() {
                assert!(p["schema"]["type"].is_string(), "{method} {path}: {p}");
            }
            if method == "post" {
                assert!(op["requestBody"]["content"].is_object(), "{method} {path}: no request body");
            }
        }
    }

    // An upload answered with its full report (every measured finding), then its check's state.
    let (name, bytes) = &approvable_originals()[0];
    let r = student.upload(&format!("/me/photos/{t}"), "photo", name, bytes.clone()).await;
    assert_eq!(r.status(), 200);
    let upload: Value = r.json().await.unwrap();
    assert!(upload["report"]["findings"].as_array().is_some_and(|f| f.len() > 10), "{upload}");
    let check = student.json(&format!("/me/photos/{t}/check")).await;

    // Errors: another type's photo page (404) and a file that is not a JPEG (400).
    let r = student.get(&format!("/me/photos/{}", t + 1000)).await;
    assert_eq!(r.status(), 404);
    let r = student.upload(&format!("/me/photos/{t}"), "photo", "a.png", b"\x89PNG\r\n\x1a\n".to_vec()).await;
    assert_eq!(r.status(), 400);
    let error: Value = r.json().await.unwrap();
    assert_eq!(error["error"]["code"], "upload.not_jpeg");

    // The served description is the one the checks use.
    assert_eq!(doc, gradphoto_web::routes::openapi());

    // The check is not a rubber stamp: an undocumented field, a wrong type, a missing field, an unknown rule id,
    // an undocumented status, an undocumented content type and an unknown route are each caught; the real answers
    // pass.
    let mut extra = upload.clone();
    extra["secret"] = json!(1);
    let mut wrong = check.clone();
    wrong["place"] = json!("first");
    let mut missing = error.clone();
    missing["error"].as_object_mut().unwrap().remove("message");
    let mut bad_rule = upload.clone();
    bad_rule["report"]["findings"][0]["rule"] = json!("geometry.nonsense");
    let json = Some("application/json");
    let photo = format!("/me/photos/{t}");
    let check_path = format!("/me/photos/{t}/check");
    let text = |v: &Value| v.to_string().into_bytes();
    for (method, path, status, body) in
        [("POST", &photo, 200, &upload), ("GET", &check_path, 200, &check), ("POST", &photo, 400, &error)]
    {
        let v = violations(method, path, status, json, &text(body));
        assert!(v.is_empty(), "{method} {path} {status}: {v:?}");
    }
    for (method, path, status, media, body) in [
        ("POST", &photo, 200, json, &extra),
        ("GET", &check_path, 200, json, &wrong),
        ("POST", &photo, 400, json, &missing),
        ("POST", &photo, 200, json, &bad_rule),
        ("POST", &photo, 418, json, &error),
        ("POST", &photo, 200, Some("text/plain"), &upload),
        ("GET", &check_path, 200, Some("text/html"), &check),
        ("GET", &"/me/secrets".to_string(), 200, json, &check),
    ] {
        let v = violations(method, path, status, media, &text(body));
        assert!(!v.is_empty(), "{method} {path} {status} {media:?}: {body}");
    }
}
