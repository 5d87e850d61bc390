//! Every route, once: the router is built from this table and `/api/openapi.json` describes it, so the API
//! description cannot drift from what is served. Each page's action is also an API call: send
//! `Accept: application/json` and the same route answers JSON (with the CSRF token in `x-csrf-token`). The scope
//! column (`[Roster]`, …; `[]` for none) names the API token scope that lets a school's own systems call a route with
//! `Authorization: Bearer` (`crate::tokens`); a route without one is closed to tokens.

pub use crate::tokens::Scope;

use schemars::{Schema, SchemaGenerator, json_schema};
use serde_json::{Value, json};

/// Who may call a route (before the per-school and own-data checks inside the handler).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    Anyone,
    Student,
    /// Reviewers, school admins and super-admins.
    Staff,
    /// School admins and super-admins.
    Admin,
    SuperAdmin,
}

#[derive(Debug, Clone, Copy)]
pub struct Route {
    pub method: &'static str,
    pub path: &'static str,
    pub access: Access,
    pub summary: &'static str,
    /// `form`, `multipart` or none.
    pub body: Option<&'static str>,
    /// The API token scope that opens this route to tokens (with the same role and school checks as the token's
    /// school admin); `None`: tokens may not call it.
    pub scope: Option<Scope>,
}

macro_rules! token_scope {
    () => {
        None
    };
    ($scope:ident) => {
        Some(Scope::$scope)
    };
}

macro_rules! routes {
    ($($method:literal $path:literal $access:ident [$($scope:ident)?] $body:expr, $summary:literal;)*) => {
        pub const ROUTES: &[Route] = &[$(Route {
            method: $method, path: $path, access: Access::$access, summary: $summary, body: $body,
            scope: token_scope!($($scope)?),
        },)*];
    };
}

routes! {
    "GET" "/" Anyone [] None, "Regions and the schools of one (`?region=`)";
    "GET" "/healthz" Anyone [] None, "Liveness and database check";
    "GET" "/api/openapi.json" Anyone [] None, "This description";
    "GET" "/s/{code}/login" Anyone [] None, "Student sign-in page; sets the pre-session CSRF cookie";
    "POST" "/s/{code}/login" Anyone [] Some("form"), "Student sign-in: username (student number), password";
    "GET" "/staff/login" Anyone [] None, "Staff sign-in page";
    "POST" "/staff/login" Anyone [] Some("form"), "Staff sign-in: username, password";
    "POST" "/logout" Anyone [] Some("form"), "Sign out";
    "GET" "/me" Student [] None, "The student's photo types, statuses, messages and the requirements";
    "GET" "/me/password" Student [] None, "Password page";
    "POST" "/me/password" Student [] Some("form"), "Change the password: current, new";
    "GET" "/me/photos/{type}" Student [] None, "A photo type: the latest photo's check report, status, reasons";
    "POST" "/me/photos/{type}" Student [] Some("multipart"), "Upload (field `photo`): the file rules' report and the place in the check queue at once; `Prefer: wait=N` waits up to N s for the full report";
    "GET" "/me/photos/{type}/check" Student [] None, "Whether the latest photo is still being checked, and its place; `?wait=N` answers when the check ends";
    "POST" "/me/photos/{type}/submit" Student [] Some("form"), "Submit the photo (`photo` id) for review";
    "GET" "/me/photo/{photo}/{file}" Student [] None, "The student's own picture: original.jpg or annotated.jpg";
    "GET" "/me/submissions/{submission}/registered.jpg" Student [] None, "The registered file once approved";
    "GET" "/me/pay" Student [] None, "The fee and how to pay it";
    "GET" "/review" Staff [Review] None, "The review queue of a school (`?school=` for super-admins)";
    "GET" "/review/{submission}" Staff [Review] None, "One submission with its report; opens it for review";
    "GET" "/review/{submission}/{file}" Staff [Review] None, "original.jpg, annotated.jpg or registered.jpg";
    "POST" "/review/{submission}/approve" Staff [Review] Some("form"), "Approve: normalise, seal, store the registered file";
    "POST" "/review/{submission}/reject" Staff [Review] Some("form"), "Reject with `reason` rule ids (repeatable) and a `note`";
    "GET" "/admin" Admin [Progress] None, "Schools visible to this admin";
    "POST" "/admin/schools" SuperAdmin [] Some("form"), "Create a school (and its first admin)";
    "GET" "/admin/schools/{school}" Admin [Progress] None, "Progress, staff, students, audit log";
    "POST" "/admin/schools/{school}/settings" Admin [] Some("form"), "Name, fee (yuan), collection window (opens, closes: YYYY-MM-DD), allowed backgrounds";
    "POST" "/admin/schools/{school}/types" Admin [] Some("form"), "Add a photo type: code, name_zh, name_en";
    "POST" "/admin/schools/{school}/roster" Admin [Roster] Some("multipart"), "Import a roster (field `roster`, CSV or XLSX)";
    "POST" "/admin/schools/{school}/staff" Admin [] Some("form"), "Add a reviewer or school admin";
    "POST" "/admin/schools/{school}/students/{student}/paid" Admin [] Some("form"), "Record an offline payment";
    "POST" "/admin/schools/{school}/students/{student}/unbind" Admin [] Some("form"), "Release the device binding";
    "GET" "/admin/schools/{school}/export.zip" Admin [Export] None, "Approved registered photos as ZIP + manifest.csv";
    "POST" "/admin/schools/{school}/payments/reconcile" Admin [] Some("form"), "Ask WeChat Pay about this school's unpaid orders now";
    "POST" "/admin/schools/{school}/payments/{payment}/refund" Admin [] Some("form"), "Refund a paid WeChat Pay order in full";
    "POST" "/admin/schools/{school}/outbox/{id}/resend" Admin [] Some("form"), "Send a dead-letter message again";
    "POST" "/admin/schools/{school}/tokens" Admin [] Some("form"), "Make an API token: `name`, `scope` (repeatable: roster, progress, export, review); the answer holds its secret, this once";
    "POST" "/admin/schools/{school}/tokens/{token}/revoke" Admin [] Some("form"), "Revoke an API token at once";
    "GET" "/wechat/oauth" Anyone [] None, "WeChat web-authorisation callback (`code`, `state`): binds or signs in the WeChat user";
    "POST" "/wechat/pay/notify" Anyone [] Some("wechatpay"), "WeChat Pay notification (signed `Wechatpay-*` headers, AEAD_AES_256_GCM resource); answers 204, or 4xx/5xx `{code: FAIL, message}`";
    "POST" "/me/pay/wechat" Student [] Some("form"), "Create or reuse a WeChat Pay JSAPI order: the `getBrandWCPayRequest` parameters";
    "POST" "/admin/schools/{school}/webhook" Admin [] Some("form"), "Register or replace the school's webhook (`url`, https): answers `{webhook: {url, secret}}`, the signing secret shown this once";
    "POST" "/admin/schools/{school}/webhook/delete" Admin [] Some("form"), "Remove the school's webhook; events still queued for it are dropped";
}

/// The JSON answer of a route, as a schema of `generator` (a `$ref` into `components.schemas`). The types are the
/// ones the handlers serialise (`crate::answers`), so the schema follows the code.
fn answer_schema(r: &Route, g: &mut SchemaGenerator) -> Option<Schema> {
    use crate::answers as a;
    Some(match (r.method, r.path) {
        ("GET", "/") => g.subschema_for::<a::Home>(),
        ("GET", "/healthz") => g.subschema_for::<a::Health>(),
        ("GET", "/api/openapi.json") => json_schema!({ "type": "object", "description": "OpenAPI 3.1" }),
        ("POST", "/s/{code}/login") => g.subschema_for::<a::StudentSignedIn>(),
        ("POST", "/staff/login") => g.subschema_for::<a::StaffSignedIn>(),
        ("GET", "/me") => g.subschema_for::<a::Me>(),
        ("GET", "/me/photos/{type}") => g.subschema_for::<a::PhotoState>(),
        ("POST", "/me/photos/{type}") => g.subschema_for::<crate::student::UploadAnswer>(),
        ("GET", "/me/photos/{type}/check") => g.subschema_for::<crate::student::CheckAnswer>(),
        ("POST", "/me/photos/{type}/submit") => g.subschema_for::<a::Submitted>(),
        ("GET", "/me/pay") => g.subschema_for::<a::PayState>(),
        ("POST", "/me/pay/wechat") => g.subschema_for::<a::WechatOrder>(),
        ("GET", "/review") => g.subschema_for::<a::Queue>(),
        ("GET", "/review/{submission}") => g.subschema_for::<a::ReviewItem>(),
        ("POST", "/review/{submission}/approve" | "/review/{submission}/reject") => g.subschema_for::<a::Decided>(),
        ("GET", "/admin") => g.subschema_for::<a::Schools>(),
        ("POST", "/admin/schools") => g.subschema_for::<a::SchoolCreated>(),
        ("GET", "/admin/schools/{school}") | ("POST", "/admin/schools/{school}/roster") => {
            g.subschema_for::<a::SchoolState>()
        }
        ("POST", "/admin/schools/{school}/types") => g.subschema_for::<a::TypeAdded>(),
        ("POST", "/admin/schools/{school}/staff") => g.subschema_for::<a::StaffAdded>(),
        ("POST", "/admin/schools/{school}/payments/reconcile") => g.subschema_for::<a::Reconciled>(),
        ("POST", "/admin/schools/{school}/payments/{payment}/refund") => g.subschema_for::<a::Refunded>(),
        ("POST", "/admin/schools/{school}/tokens") => g.subschema_for::<a::TokenCreated>(),
        ("POST", "/admin/schools/{school}/tokens/{token}/revoke") => g.subschema_for::<a::TokenRevoked>(),
        ("POST", "/admin/schools/{school}/webhook") => g.subschema_for::<a::WebhookRegistered>(),
        ("POST", "/admin/schools/{school}/webhook/delete") => g.subschema_for::<a::WebhookDeleted>(),
        ("POST", _) if r.body == Some("form") => g.subschema_for::<a::Done>(),
        _ => return None,
    })
}

/// The fields of a form body.
fn form_schema(r: &Route, g: &mut SchemaGenerator) -> Schema {
    match (r.method, r.path) {
        ("POST", "/s/{code}/login" | "/staff/login") => g.subschema_for::<crate::public::LoginForm>(),
        ("POST", "/me/password") => g.subschema_for::<crate::student::PasswordForm>(),
        ("POST", "/me/photos/{type}/submit") => g.subschema_for::<crate::student::SubmitForm>(),
        ("POST", "/review/{submission}/approve" | "/review/{submission}/reject") => {
            g.subschema_for::<crate::review::Decision>()
        }
        ("POST", "/admin/schools") => g.subschema_for::<crate::admin::NewSchoolForm>(),
        ("POST", "/admin/schools/{school}/settings") => g.subschema_for::<crate::admin::SettingsForm>(),
        ("POST", "/admin/schools/{school}/types") => g.subschema_for::<crate::admin::TypeForm>(),
        ("POST", "/admin/schools/{school}/staff") => g.subschema_for::<crate::admin::StaffForm>(),
        // Nothing but the CSRF token (which may also come as the `csrf` field).
        _ => json_schema!({ "type": "object" }),
    }
}

/// The query parameters of a route, from the struct its handler parses them into.
fn query_params(r: &Route) -> Vec<Value> {
    let schema = match (r.method, r.path) {
        ("GET", "/") => schemars::schema_for!(crate::public::HomeQuery),
        ("GET", "/review") => schemars::schema_for!(crate::review::QueueQuery),
        ("GET", "/me/photos/{type}/check") => schemars::schema_for!(crate::student::CheckQuery),
        ("GET", "/me/pay") => schemars::schema_for!(crate::student::PayQuery),
        ("GET", "/admin/schools/{school}") => schemars::schema_for!(crate::admin::SchoolQuery),
        ("GET", "/admin/schools/{school}/export.zip") => schemars::schema_for!(crate::admin::ExportQuery),
        ("POST", "/admin/schools/{school}/students/{student}/unbind") => {
            schemars::schema_for!(crate::admin::UnbindQuery)
        }
        ("GET", "/wechat/oauth") => schemars::schema_for!(crate::wechat::CallbackQuery),
        _ => return Vec::new(),
    };
    let required: Vec<&str> = schema
        .get("required")
        .and_then(Value::as_array)
        .map_or(Vec::new(), |r| r.iter().filter_map(Value::as_str).collect());
    let Some(props) = schema.get("properties").and_then(Value::as_object) else { return Vec::new() };
    props
        .iter()
        .map(|(name, s)| {
            let mut s = s.clone();
            let description = s.as_object_mut().and_then(|o| o.remove("description"));
            // An absent parameter is an omitted one, not a null: `["integer", "null"]` is `integer` here.
            if let Some(types) = s["type"].as_array() {
                let named: Vec<Value> = types.iter().filter(|t| *t != "null").cloned().collect();
                s["type"] = if named.len() == 1 { named[0].clone() } else { Value::Array(named) };
            }
            let mut p =
                json!({ "name": name, "in": "query", "required": required.contains(&name.as_str()), "schema": s });
            if let Some(d) = description {
                p["description"] = d;
            }
            p
        })
        .collect()
}

/// A path parameter: ids are integers, the rest named.
fn path_param(name: &str) -> Value {
    let schema = match name {
        "code" => json!({ "type": "string", "description": "the school's code" }),
        "file" => json!({ "type": "string", "enum": ["original.jpg", "annotated.jpg", "registered.jpg"] }),
        _ => json!({ "type": "integer", "format": "int64" }),
    };
    json!({ "name": name, "in": "path", "required": true, "schema": schema })
}

/// What a route's successful answer is, besides JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Served {
    /// JSON with `Accept: application/json`, else an HTML page.
    Page,
    /// An HTML page only (sign-in pages).
    PageOnly,
    /// JSON only.
    Json,
    /// JSON with `Accept: application/json`, else a 303 redirect to the page that shows the result.
    Action,
    Jpeg,
    Zip,
    /// A redirect only (the WeChat OAuth callback).
    Redirect,
    /// WeChat Pay's notification: 204, or its own `{code, message}` refusal.
    Notify,
}

fn served(r: &Route) -> Served {
    match (r.method, r.path) {
        (_, p) if p.ends_with(".jpg") || p.ends_with("{file}") => Served::Jpeg,
        (_, p) if p.ends_with(".zip") => Served::Zip,
        ("GET", "/s/{code}/login" | "/staff/login" | "/me/password") => Served::PageOnly,
        ("GET", "/healthz" | "/api/openapi.json" | "/me/photos/{type}/check") | ("POST", "/me/pay/wechat") => {
            Served::Json
        }
        ("GET", "/wechat/oauth") => Served::Redirect,
        ("POST", "/wechat/pay/notify") => Served::Notify,
        ("GET", _) => Served::Page,
        _ => Served::Action,
    }
}

/// The `responses` of an operation: every status it can answer with, and in which media types.
fn responses(r: &Route, g: &mut SchemaGenerator) -> Value {
    let html = json!({ "schema": { "type": "string" } });
    let error =
        json!({ "application/json": { "schema": g.subschema_for::<crate::error::ErrorBody>() }, "text/html": html });
    let answer = answer_schema(r, g).map(|s| json!({ "schema": s }));
    let mut out = serde_json::Map::new();
    let mut ok = serde_json::Map::new();
    let kind = served(r);
    if let Some(a) = &answer {
        ok.insert("application/json".into(), a.clone());
    }
    if matches!(kind, Served::Page | Served::PageOnly) {
        ok.insert("text/html".into(), html.clone());
    }
    match kind {
        Served::Jpeg => {
            ok.insert("image/jpeg".into(), json!({ "schema": { "type": "string", "contentMediaType": "image/jpeg" } }));
        }
        Served::Zip => {
            ok.insert(
                "application/zip".into(),
                json!({ "schema": { "type": "string", "contentMediaType": "application/zip" } }),
            );
        }
        _ => {}
    }
    if kind == Served::Notify {
        out.insert("204".into(), json!({ "description": "accepted (also for a duplicate)" }));
        let refused = json!({ "application/json": { "schema": g.subschema_for::<crate::answers::NotifyRefused>() } });
        for (code, why) in [
            ("400", "not a notification we can read"),
            ("401", "the signature does not verify"),
            ("500", "not recorded: WeChat Pay sends it again"),
        ] {
            out.insert(code.into(), json!({ "description": why, "content": refused }));
        }
        return Value::Object(out);
    }
    if !ok.is_empty() {
        out.insert("200".into(), json!({ "description": "the answer", "content": ok }));
    }
    // Pages and actions redirect browsers: a form's result, the sign-in page when not signed in, and inside
    // WeChat a sign-in page to WeChat's authorisation first.
    if matches!(kind, Served::Page | Served::PageOnly | Served::Action | Served::Redirect) || r.access != Access::Anyone
    {
        out.insert("303".into(), json!({ "description": "a redirect, for browsers (no body)" }));
    }
    let mut err = |code: &str, why: &str| {
        out.insert(code.into(), json!({ "description": why, "content": error }));
    };
    err("400", "the request is not acceptable: `error.code` says why");
    if r.access != Access::Anyone {
        err("401", "not signed in");
        err("403", "another school's or another student's data");
    } else {
        // `Authorization: Bearer` is read on every route: a token is refused where its scopes do not reach.
        err("401", "an unknown or revoked API token (`token.invalid`)");
        err("403", "an API token: tokens may call only the routes of their scopes (`token.scope`)");
    }
    err("404", "not found");
    if r.method == "POST" {
        err("409", "the state does not allow it now (locked, already decided, still checking)");
    }
    if r.body == Some("multipart") {
        err("413", "the file is larger than allowed");
    }
    if r.path.ends_with("/login") || r.body == Some("multipart") {
        err("429", "too many attempts from this address: wait a minute");
    }
    if r.path.contains("/pay") || r.path.contains("/wechat") || r.path.contains("/payments") {
        err("502", "WeChat or WeChat Pay failed or refused: try again later");
    }
    err("500", "server error: try again");
    Value::Object(out)
}

/// The OpenAPI 3.1 description of [`ROUTES`].
pub fn openapi() -> Value {
    let mut generator = schemars::generate::SchemaSettings::draft2020_12()
        .with(|s| s.definitions_path = "/components/schemas".into())
        .into_generator();
    let mut paths = serde_json::Map::new();
    for r in ROUTES {
        let mut params: Vec<Value> = r
            .path
            .split('/')
            .filter_map(|seg| seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
            .map(path_param)
            .collect();
        params.extend(query_params(r));
        let security = match (r.access, r.scope) {
            (Access::Anyone, _) => json!([]),
            (_, Some(scope)) => json!([{ "session": [] }, { "bearer": [scope.id()] }]),
            _ => json!([{ "session": [] }]),
        };
        let mut op = json!({
            "summary": r.summary,
            "security": security,
            "x-access": format!("{:?}", r.access),
            "responses": responses(r, &mut generator),
        });
        if let Some(scope) = r.scope {
            op["x-token-scope"] = json!(scope.id());
            op["responses"]["401"]["description"] =
                json!("not signed in, or the API token is unknown or revoked (`token.invalid`)");
            op["responses"]["403"]["description"] = json!(
                "another school's or another student's data, or an API token without this route's scope (`token.scope`)"
            );
            let error = op["responses"]["401"]["content"].clone();
            op["responses"]["429"] = json!({ "description":
                "too many attempts, or this API token's rate is exhausted (`token_rate_per_minute`): try again after `Retry-After` seconds",
                "headers": { "Retry-After": { "schema": { "type": "integer" } } }, "content": error });
        }
        match r.body {
            Some("wechatpay") => {
                // Authenticated by WeChat Pay's signature, not by a session: no CSRF token.
                op["security"] = json!([{ "wechatpaySignature": [] }]);
                op["requestBody"] = json!({ "required": true, "content": { "application/json": { "schema": {
                    "type": "object", "description": "WeChat Pay's notification: an AEAD_AES_256_GCM `resource`" } } } });
                for h in ["Wechatpay-Serial", "Wechatpay-Signature", "Wechatpay-Timestamp", "Wechatpay-Nonce"] {
                    params.push(json!({ "name": h, "in": "header", "required": true, "schema": { "type": "string" } }));
                }
            }
            Some(body) => {
                let (media, schema) = if body == "multipart" {
                    let field = if r.path.ends_with("/roster") { "roster" } else { "photo" };
                    let what = if field == "roster" {
                        "the roster: CSV (UTF-8, UTF-16 or GB18030) or XLSX"
                    } else {
                        "the photo: a JPEG"
                    };
                    let schema = json!({ "type": "object", "required": [field], "properties": { field: {
                        "type": "string", "contentMediaType": "application/octet-stream", "description": what } } });
                    ("multipart/form-data", schema)
                } else {
                    ("application/x-www-form-urlencoded", form_schema(r, &mut generator).to_value())
                };
                let mut content = json!({ "schema": schema });
                if r.path.ends_with("/approve") || r.path.ends_with("/reject") {
                    content["encoding"] = json!({ "reason": { "style": "form", "explode": true } });
                }
                op["requestBody"] = json!({ "required": true, "content": { media: content } });
                // The token of the session (from the sign-in answer); sign-in forms carry the `gp_pre` cookie's.
                // A bearer token is not sent by browsers on their own, so a call with one needs no CSRF token.
                params.push(json!({ "name": "x-csrf-token", "in": "header", "required": false, "schema": { "type": "string" },
                    "description": "the session's CSRF token (or a `csrf` field of a urlencoded form, or `?csrf=` with multipart): required with the `gp_session` cookie, not with a bearer token" }));
                if r.method == "POST" && r.path == "/me/photos/{type}" {
                    params.push(
                        json!({ "name": "Prefer", "in": "header", "required": false, "schema": { "type": "string" },
                        "description": "`wait=N`: wait up to N seconds for the full report" }),
                    );
                }
            }
            None => {}
        }
        op["parameters"] = Value::Array(params);
        let entry = paths.entry(r.path.to_string()).or_insert_with(|| json!({}));
        entry[r.method.to_ascii_lowercase()] = op;
    }
    json!({
        "openapi": "3.1.0",
        "info": { "title": "gradphoto", "version": env!("CARGO_PKG_VERSION"),
            "description": "Degree-certificate photo collection. Sign in with a form POST; the `gp_session` cookie and the returned `csrf` token authorise later calls. A school's own systems call with `Authorization: Bearer <API token>` instead (made by a school admin, shown once): no cookie and no CSRF token, only the routes of the token's scopes (`x-token-scope`), as its school's admin. Send `Accept: application/json` for JSON answers (Bearer calls get JSON by default)." },
        "components": { "schemas": generator.take_definitions(true), "securitySchemes": {
            "session": { "type": "apiKey", "in": "cookie", "name": "gp_session" },
            "bearer": { "type": "http", "scheme": "bearer",
                "description": "An API token of one school (`gpt_…`); its scopes (roster, progress, export, review) name the routes it may call" },
            "wechatpaySignature": { "type": "apiKey", "in": "header", "name": "Wechatpay-Signature",
                "description": "SHA256withRSA by WeChat Pay over `timestamp\\nnonce\\nbody\\n`" } } },
        "paths": paths
    })
}
