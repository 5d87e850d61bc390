//! Every route, once: the router is built from this table and `/api/openapi.json` describes it, so the API
//! description cannot drift from what is served. Each page's action is also an API call: send
//! `Accept: application/json` and the same route answers JSON (with the CSRF token in `x-csrf-token`).

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
}

macro_rules! routes {
    ($($method:literal $path:literal $access:ident $body:expr, $summary:literal;)*) => {
        pub const ROUTES: &[Route] = &[$(Route {
            method: $method, path: $path, access: Access::$access, summary: $summary, body: $body,
        },)*];
    };
}

routes! {
    "GET" "/" Anyone None, "Regions and the schools of one (`?region=`)";
    "GET" "/healthz" Anyone None, "Liveness and database check";
    "GET" "/api/openapi.json" Anyone None, "This description";
    "GET" "/s/{code}/login" Anyone None, "Student sign-in page; sets the pre-session CSRF cookie";
    "POST" "/s/{code}/login" Anyone Some("form"), "Student sign-in: username (student number), password";
    "GET" "/staff/login" Anyone None, "Staff sign-in page";
    "POST" "/staff/login" Anyone Some("form"), "Staff sign-in: username, password";
    "POST" "/logout" Anyone Some("form"), "Sign out";
    "GET" "/me" Student None, "The student's photo types, statuses, messages and the requirements";
    "GET" "/me/password" Student None, "Password page";
    "POST" "/me/password" Student Some("form"), "Change the password: current, new";
    "GET" "/me/photos/{type}" Student None, "A photo type: the latest photo's check report, status, reasons";
    "POST" "/me/photos/{type}" Student Some("multipart"), "Upload (field `photo`): the file rules' report and the place in the check queue at once; `Prefer: wait=N` waits up to N s for the full report";
    "GET" "/me/photos/{type}/check" Student None, "Whether the latest photo is still being checked, and its place; `?wait=N` answers when the check ends";
    "POST" "/me/photos/{type}/submit" Student Some("form"), "Submit the photo (`photo` id) for review";
    "GET" "/me/photo/{photo}/{file}" Student None, "The student's own picture: original.jpg or annotated.jpg";
    "GET" "/me/submissions/{submission}/registered.jpg" Student None, "The registered file once approved";
    "GET" "/me/pay" Student None, "The fee and how to pay it";
    "GET" "/review" Staff None, "The review queue of a school (`?school=` for super-admins)";
    "GET" "/review/{submission}" Staff None, "One submission with its report; opens it for review";
    "GET" "/review/{submission}/{file}" Staff None, "original.jpg, annotated.jpg or registered.jpg";
    "POST" "/review/{submission}/approve" Staff Some("form"), "Approve: normalise, seal, store the registered file";
    "POST" "/review/{submission}/reject" Staff Some("form"), "Reject with `reason` rule ids (repeatable) and a `note`";
    "GET" "/admin" Admin None, "Schools visible to this admin";
    "POST" "/admin/schools" SuperAdmin Some("form"), "Create a school (and its first admin)";
    "GET" "/admin/schools/{school}" Admin None, "Progress, staff, students, audit log";
    "POST" "/admin/schools/{school}/settings" Admin Some("form"), "Name, fee (yuan), collection window (opens, closes: YYYY-MM-DD), allowed backgrounds";
    "POST" "/admin/schools/{school}/types" Admin Some("form"), "Add a photo type: code, name_zh, name_en";
    "POST" "/admin/schools/{school}/roster" Admin Some("multipart"), "Import a roster (field `roster`, CSV or XLSX)";
    "POST" "/admin/schools/{school}/staff" Admin Some("form"), "Add a reviewer or school admin";
    "POST" "/admin/schools/{school}/students/{student}/paid" Admin Some("form"), "Record an offline payment";
    "POST" "/admin/schools/{school}/students/{student}/unbind" Admin Some("form"), "Release the device binding";
    "GET" "/admin/schools/{school}/export.zip" Admin None, "Approved registered photos as ZIP + manifest.csv";
    "POST" "/admin/schools/{school}/payments/reconcile" Admin Some("form"), "Ask WeChat Pay about this school's unpaid orders now";
    "POST" "/admin/schools/{school}/payments/{payment}/refund" Admin Some("form"), "Refund a paid WeChat Pay order in full";
    "POST" "/admin/schools/{school}/outbox/{id}/resend" Admin Some("form"), "Send a dead-letter message again";
    "GET" "/wechat/oauth" Anyone None, "WeChat web-authorisation callback (`code`, `state`): binds or signs in the WeChat user";
    "POST" "/wechat/pay/notify" Anyone Some("wechatpay"), "WeChat Pay notification (signed `Wechatpay-*` headers, AEAD_AES_256_GCM resource); answers 204, or 4xx/5xx `{code: FAIL, message}`";
    "POST" "/me/pay/wechat" Student Some("form"), "Create or reuse a WeChat Pay JSAPI order: the `getBrandWCPayRequest` parameters";
    "POST" "/admin/schools/{school}/webhook" Admin Some("form"), "Register or replace the school's webhook (`url`, https): answers `{webhook: {url, secret}}`, the signing secret shown this once";
    "POST" "/admin/schools/{school}/webhook/delete" Admin Some("form"), "Remove the school's webhook; events still queued for it are dropped";
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
        let security = match r.access {
            Access::Anyone => serde_json::json!([]),
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
                p.push(serde_json::json!({ "name": "x-csrf-token", "in": "header", "required": true, "schema": { "type": "string" } }));
            }
        }
        let entry = paths.entry(r.path.to_string()).or_insert_with(|| serde_json::json!({}));
        entry[r.method.to_ascii_lowercase()] = op;
    }
    serde_json::json!({
        "openapi": "3.1.0",
        "info": { "title": "gradphoto", "version": env!("CARGO_PKG_VERSION"),
            "description": "Degree-certificate photo collection. Sign in with a form POST; the `gp_session` cookie and the returned `csrf` token authorise later calls." },
        "components": { "schemas": generator.take_definitions(true), "securitySchemes": {
            "session": { "type": "apiKey", "in": "cookie", "name": "gp_session" },
            "wechatpaySignature": { "type": "apiKey", "in": "header", "name": "Wechatpay-Signature",
                "description": "SHA256withRSA by WeChat Pay over `timestamp\\nnonce\\nbody\\n`" } } },
        "paths": paths
    })
}
