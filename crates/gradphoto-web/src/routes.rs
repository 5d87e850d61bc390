//! Every route, once: the router is built from this table and `/api/openapi.json` describes it, so the API
//! description cannot drift from what is served. Each page's action is also an API call: send
//! `Accept: application/json` and the same route answers JSON (with the CSRF token in `x-csrf-token`). The scope
//! column (`[Roster]`, …; `[]` for none) names the API token scope that lets a school's own systems call a route with
//! `Authorization: Bearer` (`crate::tokens`); a route without one is closed to tokens.

pub use crate::tokens::Scope;

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
}

/// The JSON answer of a route whose answer is typed, as a schema of `generator` (a `$ref` into
/// `components.schemas`). The types are the ones the handlers serialise, so the schema follows the code.
fn answer_schema(r: &Route, generator: &mut schemars::SchemaGenerator) -> Option<schemars::Schema> {
    match (r.method, r.path) {
        ("POST", "/me/photos/{type}") => Some(generator.subschema_for::<crate::student::UploadAnswer>()),
        ("GET", "/me/photos/{type}/check") => Some(generator.subschema_for::<crate::student::CheckAnswer>()),
        _ => None,
    }
}

/// The OpenAPI 3.1 description of [`ROUTES`].
pub fn openapi() -> serde_json::Value {
    let mut generator = schemars::generate::SchemaSettings::draft2020_12()
        .with(|s| s.definitions_path = "/components/schemas".into())
        .into_generator();
    let error = serde_json::json!({ "application/json": {
        "schema": generator.subschema_for::<crate::error::ErrorBody>() } });
    let mut paths = serde_json::Map::new();
    for r in ROUTES {
        let params: Vec<serde_json::Value> = r
            .path
            .split('/')
            .filter_map(|seg| seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
            .map(|name| serde_json::json!({ "name": name, "in": "path", "required": true, "schema": { "type": "string" } }))
            .collect();
        let security = match (r.access, r.scope) {
            (Access::Anyone, _) => serde_json::json!([]),
            (_, Some(scope)) => serde_json::json!([{ "session": [] }, { "bearer": [scope.id()] }]),
            _ => serde_json::json!([{ "session": [] }]),
        };
        let mut op = serde_json::json!({
            "summary": r.summary,
            "parameters": params,
            "security": security,
            "x-access": format!("{:?}", r.access),
            "responses": {
                "200": { "description": "JSON with `Accept: application/json`, else a page or a 303 redirect" },
                "400": { "description": "the request is not acceptable: `error.code` says why", "content": error },
                "401": { "description": "not signed in", "content": error },
                "403": { "description": "another school's or another student's data", "content": error },
                "404": { "description": "not found", "content": error },
                "409": { "description": "the state does not allow it now (locked, already decided, still checking)", "content": error }
            }
        });
        if let Some(scope) = r.scope {
            op["x-token-scope"] = serde_json::json!(scope.id());
            op["responses"]["401"]["description"] =
                serde_json::json!("not signed in, or the API token is unknown or revoked (`token.invalid`)");
            op["responses"]["403"]["description"] = serde_json::json!(
                "another school's or another student's data, or an API token without this route's scope (`token.scope`)"
            );
            op["responses"]["429"] = serde_json::json!({ "description":
                "this API token's rate is exhausted (`token_rate_per_minute`): try again after `Retry-After` seconds",
                "headers": { "Retry-After": { "schema": { "type": "integer" } } }, "content": error });
        }
        if let Some(schema) = answer_schema(r, &mut generator) {
            op["responses"]["200"]["content"] = serde_json::json!({ "application/json": { "schema": schema } });
        }
        if let Some(body) = r.body {
            let media = match body {
                "multipart" => "multipart/form-data",
                "wechatpay" => "application/json",
                _ => "application/x-www-form-urlencoded",
            };
            op["requestBody"] = serde_json::json!({ "content": { media: { "schema": { "type": "object" } } } });
            if body == "wechatpay" {
                // Authenticated by WeChat Pay's signature, not by a session: no CSRF token.
                op["security"] = serde_json::json!([{ "wechatpaySignature": [] }]);
            }
            let params = op["parameters"].as_array_mut();
            if body == "wechatpay" {
                if let Some(p) = params {
                    for h in ["Wechatpay-Serial", "Wechatpay-Signature", "Wechatpay-Timestamp", "Wechatpay-Nonce"] {
                        p.push(serde_json::json!({ "name": h, "in": "header", "required": true, "schema": { "type": "string" } }));
                    }
                }
            } else if let Some(p) = params {
                p.push(match r.scope {
                    // A bearer token is not sent by browsers on their own, so a call with one needs no CSRF token.
                    Some(_) => serde_json::json!({ "name": "x-csrf-token", "in": "header", "required": false,
                        "description": "The session's CSRF token: required with the `gp_session` cookie, not with a bearer token",
                        "schema": { "type": "string" } }),
                    None => serde_json::json!({ "name": "x-csrf-token", "in": "header", "required": true, "schema": { "type": "string" } }),
                });
            }
        }
        let entry = paths.entry(r.path.to_string()).or_insert_with(|| serde_json::json!({}));
        entry[r.method.to_ascii_lowercase()] = op;
    }
    serde_json::json!({
        "openapi": "3.1.0",
        "info": { "title": "gradphoto", "version": env!("CARGO_PKG_VERSION"),
            "description": "Degree-certificate photo collection. Sign in with a form POST; the `gp_session` cookie and the returned `csrf` token authorise later calls. A school's own systems call with `Authorization: Bearer <API token>` instead (made by a school admin, shown once): no cookie and no CSRF token, only the routes of the token's scopes (`x-token-scope`), as its school's admin." },
        "components": { "schemas": generator.take_definitions(true), "securitySchemes": {
            "session": { "type": "apiKey", "in": "cookie", "name": "gp_session" },
            "bearer": { "type": "http", "scheme": "bearer",
                "description": "An API token of one school (`gpt_…`); its scopes (roster, progress, export, review) name the routes it may call" },
            "wechatpaySignature": { "type": "apiKey", "in": "header", "name": "Wechatpay-Signature",
                "description": "SHA256withRSA by WeChat Pay over `timestamp\\nnonce\\nbody\\n`" } } },
        "paths": paths
    })
}
