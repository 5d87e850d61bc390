//! What each route answers in JSON (`Accept: application/json`): the types the handlers build and serialise, and
//! from which `/api/openapi.json` derives its schemas (`routes::answer_schema`), so the description cannot drift
//! from what is served. Pages render the same values through their templates. Every answer forbids fields it does
//! not name, so a field added to the code without its type fails the conformance tests.

use gradphoto_core::{Message, Report};
use gradphoto_store::db::{
    DeadLetter, Notification, Payment, Photo, PhotoType, Progress, QueueItem, Region, Role, School, Status, Submission,
    Webhook,
};
use gradphoto_store::{ApiTokenId, PhotoTypeId, SchoolId, StaffId, SubmissionId};
use schemars::JsonSchema;
use serde::Serialize;

use crate::tokens::Scope;

/// An action that changed something and has nothing more to tell.
#[derive(Debug, Serialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct Done {
    /// Always true.
    pub ok: bool,
}

pub const DONE: Done = Done { ok: true };

/// `GET /healthz`.
#[derive(Debug, Serialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct Health {
    /// `ok` once the database answered.
    pub status: &'static str,
}

/// `GET /`: the regions, and the schools of the one asked for (`?region=`).
#[derive(Debug, Serialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct Home {
    pub regions: Vec<Region>,
    pub schools: Vec<School>,
}

/// A student signed in (`POST /s/{code}/login`).
#[derive(Debug, Serialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct StudentSignedIn {
    /// Send as `x-csrf-token` with every later POST of this session.
    pub csrf: String,
    /// The initial password (from the id number) is still in use: change it first (`POST /me/password`).
    pub must_change_password: bool,
}

/// Staff signed in (`POST /staff/login`).
#[derive(Debug, Serialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct StaffSignedIn {
    /// Send as `x-csrf-token` with every later POST of this session.
    pub csrf: String,
    pub role: Role,
}

/// `GET /me`: the student's school, photo types with their state, and messages.
#[derive(Debug, Serialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct Me {
    pub school: School,
    /// Whether uploads and submissions are open now (the school's collection window).
    pub school_open: bool,
    pub types: Vec<MeType>,
    /// The latest messages, newest first.
    pub notifications: Vec<Notification>,
    /// A fee is charged and not yet paid.
    pub fee_due: bool,
    pub paid: bool,
}

/// One photo type of `GET /me`.
#[derive(Debug, Serialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct MeType {
    pub id: PhotoTypeId,
    pub code: String,
    pub name_zh: String,
    pub name_en: String,
    /// `none` (nothing uploaded), `draft` (uploaded, not submitted), or the submission's status.
    pub status: &'static str,
    pub status_zh: &'static str,
    pub status_en: &'static str,
    pub submission: Option<Submission>,
}

/// `GET /me/photos/{type}`: the latest photo of a type, its report and what the student may do next.
#[derive(Debug, Serialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct PhotoState {
    pub photo_type: PhotoType,
    /// As in [`MeType::status`].
    pub status: &'static str,
    pub photo: Option<Photo>,
    pub report: Option<Report>,
    pub submission: Option<Submission>,
    pub can_upload: bool,
    pub can_submit: bool,
    /// The full check is still running or queued.
    pub checking: bool,
    /// The place in the check queue while checking (1 = next or running), else 0.
    pub place: i64,
}

/// `POST /me/photos/{type}/submit`.
#[derive(Debug, Serialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct Submitted {
    pub submission: SubmissionId,
    /// `submitted`, or `unpaid` when the fee is still due.
    pub status: Status,
}

/// `GET /me/pay`: the fee and how to pay it.
#[derive(Debug, Serialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct PayState {
    pub school: School,
    pub paid: bool,
    /// The fee in fen (0.01 yuan).
    pub fee_cents: i64,
    pub instructions: Message,
    /// The payment page to send the student to, for providers that have one.
    pub redirect: Option<String>,
    /// The provider that will take the payment (`wechat` inside WeChat with WeChat Pay configured).
    pub provider: String,
    /// Whether `POST /me/pay/wechat` can be used from here.
    pub wechat_pay: bool,
    /// A page of the school's own cashier, where configured.
    pub cashier: Option<String>,
}

/// `POST /me/pay/wechat`: what the page passes to `getBrandWCPayRequest`.
#[derive(Debug, Serialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct WechatOrder {
    pub jsapi: gradphoto_wechat::pay::JsapiParams,
    pub amount_fen: i64,
}

/// `GET /review`: a school's submissions waiting for a decision, in submit order.
#[derive(Debug, Serialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct Queue {
    pub school: School,
    pub items: Vec<QueueItem>,
}

/// `GET /review/{submission}`: one submission with its photo and check report.
#[derive(Debug, Serialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct ReviewItem {
    pub item: QueueItem,
    pub photo: Photo,
    pub report: Option<Report>,
}

/// `POST /review/{submission}/approve` and `/reject`.
#[derive(Debug, Serialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct Decided {
    pub ok: bool,
    pub status: Status,
    /// The registered file's JPEG quality (approvals only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub quality: Option<u8>,
    /// The registered file's size in bytes (approvals only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bytes: Option<usize>,
}

/// `GET /admin`: the schools this admin may see.
#[derive(Debug, Serialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct Schools {
    pub schools: Vec<SchoolSummary>,
}

#[derive(Debug, Serialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct SchoolSummary {
    pub id: SchoolId,
    pub code: String,
    pub name: String,
    pub fee_cents: i64,
    /// `province city`.
    pub region: Option<String>,
}

/// `POST /admin/schools`.
#[derive(Debug, Serialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct SchoolCreated {
    pub school: SchoolId,
}

/// `GET /admin/schools/{school}` (and the answer to a roster import): progress and what needs an admin.
#[derive(Debug, Serialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct SchoolState {
    pub school: School,
    pub progress: Progress,
    /// The result of the roster import this answers, else null.
    pub import: Option<RosterImport>,
    /// Messages that could not be delivered (newest 50).
    pub dead_letters: Vec<DeadLetter>,
    /// WeChat Pay orders (newest 50).
    pub payments: Vec<Payment>,
    /// The school's API tokens (never their secrets).
    pub tokens: Vec<TokenView>,
    /// Where the school's events go, and how the last deliveries went (never the secret).
    pub webhook: Option<Webhook>,
}

/// `POST /admin/schools/{school}/webhook`.
#[derive(Debug, Serialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct WebhookRegistered {
    pub webhook: NewWebhook,
}

#[derive(Debug, Serialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct NewWebhook {
    pub url: String,
    /// The HMAC-SHA256 signing secret (`x-gradphoto-signature`): shown this once (docs/webhooks.md).
    pub secret: String,
}

/// `POST /admin/schools/{school}/webhook/delete`.
#[derive(Debug, Serialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct WebhookDeleted {
    pub ok: bool,
    /// Whether there was one to remove.
    pub removed: bool,
}

/// An API token as lists show it: never its secret (which is not kept) or its hash.
#[derive(Debug, Clone, Serialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct TokenView {
    pub id: ApiTokenId,
    pub name: String,
    pub scopes: Vec<Scope>,
    pub created_at: i64,
    /// The admin who made it.
    pub created_by: StaffId,
    pub last_used_at: Option<i64>,
    pub revoked_at: Option<i64>,
}

/// A token just made, with its secret: the only answer that holds it.
#[derive(Debug, Clone, Serialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct NewToken {
    pub id: ApiTokenId,
    pub name: String,
    pub scopes: Vec<Scope>,
    /// Send as `Authorization: Bearer <secret>`; shown this once, kept only as its SHA-256.
    pub secret: String,
}

/// `POST /admin/schools/{school}/tokens`.
#[derive(Debug, Serialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct TokenCreated {
    pub token: NewToken,
}

/// `POST /admin/schools/{school}/tokens/{token}/revoke`.
#[derive(Debug, Serialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct TokenRevoked {
    pub token: TokenView,
}

/// What a roster import did.
#[derive(Debug, Clone, Serialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct RosterImport {
    pub created: usize,
    pub updated: usize,
    pub unchanged: usize,
    /// Lines not imported, with why.
    pub errors: Vec<RosterLineError>,
    /// The text encoding a CSV was read in.
    pub encoding: gradphoto_core::roster::Encoding,
}

#[derive(Debug, Clone, Serialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct RosterLineError {
    /// 1-based, the header being line 1.
    pub line: usize,
    pub code: String,
    pub message: Message,
}

/// `POST /admin/schools/{school}/types`.
#[derive(Debug, Serialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct TypeAdded {
    pub photo_type: PhotoTypeId,
}

/// `POST /admin/schools/{school}/staff`.
#[derive(Debug, Serialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct StaffAdded {
    pub staff: StaffId,
}

/// `POST /admin/schools/{school}/payments/reconcile`.
#[derive(Debug, Serialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct Reconciled {
    pub ok: bool,
    pub reconciled: crate::wechat::Reconciled,
}

/// `POST /admin/schools/{school}/payments/{payment}/refund`.
#[derive(Debug, Serialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct Refunded {
    pub ok: bool,
    pub refund_no: String,
    /// WeChat Pay's refund status (`SUCCESS`, `PROCESSING`, …).
    pub status: String,
}

/// What `POST /wechat/pay/notify` answers WeChat Pay when it refuses a notification (WeChat's own shape).
#[derive(Debug, Serialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct NotifyRefused {
    /// Always `FAIL`.
    pub code: &'static str,
    pub message: String,
}
