//! Answers against the published description (`/api/openapi.json`, as `gradphoto_web::routes::openapi` makes
//! it): the checks every integration test's answers go through, here and in the CLI crate's process tests.

use std::sync::OnceLock;

/// What is wrong with an answer by the published description: the path must be served by a documented route, the
/// status and content type documented for it, and a JSON body must validate against the route's schema (which
/// forbids undocumented fields). Empty when it conforms.
pub fn violations(method: &str, path: &str, status: u16, content_type: Option<&str>, body: &[u8]) -> Vec<String> {
    let path = path.split('?').next().unwrap_or(path);
    if path.starts_with("/static/") {
        return Vec::new();
    }
    let Some(route) = route_of(method, path) else {
        return vec![format!("{method} {path} is no documented route")];
    };
    let documented = &description()["paths"][route][method.to_ascii_lowercase()]["responses"][status.to_string()];
    if !documented.is_object() {
        return vec![format!("{method} {route}: status {status} is not documented")];
    }
    let Some(media) = content_type.map(|v| v.split(';').next().unwrap_or(v).trim()).filter(|_| !body.is_empty()) else {
        return Vec::new();
    };
    let Some(spec) = documented["content"].get(media) else {
        return vec![format!("{method} {route} {status}: content type {media} is not documented")];
    };
    if media != "application/json" {
        return Vec::new();
    }
    let Ok(body) = serde_json::from_slice::<serde_json::Value>(body) else {
        return vec![format!("{method} {route} {status}: the body is not JSON")];
    };
    validate(&spec["schema"], &body).into_iter().map(|e| format!("{method} {route} {status}: {e}")).collect()
}

/// The description the service publishes (`/api/openapi.json` serves exactly this; tests/service/api.rs checks that).
fn description() -> &'static serde_json::Value {
    static DOC: OnceLock<serde_json::Value> = OnceLock::new();
    DOC.get_or_init(gradphoto_web::routes::openapi)
}

/// The route template a concrete path is served by.
fn route_of(method: &str, path: &str) -> Option<&'static str> {
    let segments: Vec<&str> = path.split('/').collect();
    gradphoto_web::routes::ROUTES.iter().filter(|r| r.method == method).map(|r| r.path).find(|t| {
        let ts: Vec<&str> = t.split('/').collect();
        ts.len() == segments.len()
            && ts.iter().zip(&segments).all(|(t, s)| (t.starts_with('{') && !s.is_empty()) || t == s)
    })
}

/// Errors of `body` against `schema`, a schema of the description (its `$ref`s point into `components`).
fn validate(schema: &serde_json::Value, body: &serde_json::Value) -> Vec<String> {
    let doc = description();
    let root = serde_json::json!({ "allOf": [schema], "components": doc["components"] });
    let validator = jsonschema::draft202012::new(&root).expect("the published schema is valid JSON Schema 2020-12");
    validator.iter_errors(body).map(|e| format!("{e} at {}", e.instance_path())).collect()
}
