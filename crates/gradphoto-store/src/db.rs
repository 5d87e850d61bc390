//! The metadata repository. One set of queries for SQLite and PostgreSQL through sqlx's `Any` driver: `$n`
//! placeholders, BIGINT everywhere, times as Unix milliseconds, flags as 0/1. Migrations are files under
//! `migrations/<backend>/`, embedded at build time and run at start.

use std::collections::HashMap;
use std::sync::Arc;

use serde::Serialize;
use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::migrate::Migrator;
use sqlx::{Any, AnyPool, AssertSqlSafe, Row, Transaction};

use crate::blob::BlobKey;
use crate::ids::*;
use crate::now_ms;

static SQLITE: Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES: Migrator = sqlx::migrate!("./migrations/postgres");

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("database: {0}")]
    Sql(#[from] sqlx::Error),
    #[error("database migration: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("unsupported database address (use sqlite:PATH or postgres://…)")]
    Url,
    #[error("already exists")]
    Conflict,
    #[error("not found")]
    NotFound,
    #[error("not allowed in the current state")]
    State,
}

pub type Result<T> = std::result::Result<T, DbError>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

#[derive(Debug, Clone)]
pub struct Db {
    pool: AnyPool,
    backend: Backend,
    /// SQLite allows one writer: transactions that read before they write are serialised here rather than failing
    /// with "database is locked" when two upgrade at once.
    writer: Option<Arc<tokio::sync::Mutex<()>>>,
}

/// A transaction, holding the SQLite writer lock for its lifetime.
pub struct Tx<'a> {
    tx: Transaction<'static, Any>,
    backend: Backend,
    _guard: Option<tokio::sync::MutexGuard<'a, ()>>,
}

impl Tx<'_> {
    pub async fn commit(self) -> Result<()> {
        self.tx.commit().await?;
        Ok(())
    }
}

fn is_unique_violation(e: &sqlx::Error) -> bool {
    e.as_database_error().is_some_and(|d| d.is_unique_violation())
}

// ---------------------------------------------------------------------------------------------------------------
// Rows
// ---------------------------------------------------------------------------------------------------------------

#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Region {
    pub id: RegionId,
    pub province: String,
    pub city: String,
}

#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct School {
    pub id: SchoolId,
    pub region_id: RegionId,
    pub code: String,
    pub name: String,
    pub fee_cents: i64,
    pub opens_at: Option<i64>,
    pub closes_at: Option<i64>,
    /// Allowed background colours (`light_blue`, `white`, `light_grey`), comma-separated; the standard says light blue.
    pub backgrounds: String,
}

impl School {
    /// Whether uploads and submissions are open at `now`.
    pub fn is_open(&self, now: i64) -> bool {
        self.opens_at.is_none_or(|t| now >= t) && self.closes_at.is_none_or(|t| now < t)
    }
}

#[derive(Debug, Clone)]
pub struct NewSchool {
    pub region_id: RegionId,
    pub code: String,
    pub name: String,
    pub fee_cents: i64,
    pub opens_at: Option<i64>,
    pub closes_at: Option<i64>,
    pub backgrounds: String,
}

#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct PhotoType {
    pub id: PhotoTypeId,
    pub school_id: SchoolId,
    pub code: String,
    pub name_zh: String,
    pub name_en: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
pub enum Role {
    SuperAdmin,
    SchoolAdmin,
    Reviewer,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::SuperAdmin => "super_admin",
            Role::SchoolAdmin => "school_admin",
            Role::Reviewer => "reviewer",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        [Role::SuperAdmin, Role::SchoolAdmin, Role::Reviewer].into_iter().find(|r| r.as_str() == s)
    }
}

#[derive(Debug, Clone)]
pub struct Staff {
    pub id: StaffId,
    pub username: String,
    pub role: Role,
    pub school_id: Option<SchoolId>,
    pub password_hash: String,
    pub failed_logins: i64,
    pub locked_until: i64,
}

/// What the vault seals: students' id numbers, WeChat bindings' openids and schools' webhook secrets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SealedKind {
    IdNumber,
    Openid,
    WebhookSecret,
}

/// A value the vault sealed, as stored: its row, and for id numbers the school and kind that are its context (for
/// webhook secrets the school, which is also the row).
#[derive(Debug, Clone)]
pub struct SealedValue {
    pub row: i64,
    pub school_id: Option<SchoolId>,
    pub kind: String,
    pub cipher: Vec<u8>,
}

#[derive(Debug, Clone)]
pub struct Student {
    pub id: StudentId,
    pub school_id: SchoolId,
    pub student_no: String,
    pub name: String,
    pub id_kind: String,
    pub id_cipher: Vec<u8>,
    pub college: Option<String>,
    pub degree_level: Option<String>,
    pub password_hash: String,
    pub password_changed: bool,
    pub paid: bool,
    pub failed_logins: i64,
    pub locked_until: i64,
}

/// One roster row, with the number already sealed and hashed.
#[derive(Debug, Clone)]
pub struct StudentUpsert {
    pub student_no: String,
    pub name: String,
    pub id_kind: String,
    pub id_cipher: Vec<u8>,
    pub id_hash: Vec<u8>,
    pub college: Option<String>,
    pub degree_level: Option<String>,
}

/// A student already on the roster: id, id hash, name, college, degree level, id kind.
type Known = (i64, Vec<u8>, String, Option<String>, Option<String>, String);

#[derive(Debug, Clone, Copy, Default, Serialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct ImportCounts {
    pub created: usize,
    pub updated: usize,
    pub unchanged: usize,
}

#[derive(Debug, Clone)]
pub struct Session {
    pub subject_kind: String,
    pub subject_id: i64,
    pub csrf: String,
    pub expires_at: i64,
}

/// A file about to be committed with its row.
#[derive(Debug, Clone)]
pub struct BlobMeta {
    pub key: BlobKey,
    pub bytes: i64,
    pub sha256: String,
}

#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Photo {
    pub id: PhotoId,
    pub student_id: StudentId,
    pub photo_type_id: PhotoTypeId,
    #[serde(skip)]
    pub original_key: BlobKey,
    #[serde(skip)]
    pub annotated_key: Option<BlobKey>,
    pub verdict: String,
    pub failing: String,
    #[serde(skip)]
    pub report: String,
    pub uploaded_at: i64,
    /// When the full check ended; `None` while it is queued or running (the report holds the file rules only).
    pub checked_at: Option<i64>,
    /// How many times a check worker claimed this photo.
    #[serde(skip)]
    pub check_claims: i64,
    /// When the last claim's lease ends (0: never claimed); the claim was taken a lease's length before.
    #[serde(skip)]
    pub check_lease_until: i64,
}

impl Photo {
    /// True while the full check is queued or running.
    pub fn checking(&self) -> bool {
        self.checked_at.is_none()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Submitted, waiting for the fee.
    Unpaid,
    Submitted,
    InReview,
    Approved,
    Rejected,
    Exported,
}

impl Status {
    pub const ALL: [Status; 6] =
        [Status::Unpaid, Status::Submitted, Status::InReview, Status::Approved, Status::Rejected, Status::Exported];

    pub fn as_str(self) -> &'static str {
        match self {
            Status::Unpaid => "unpaid",
            Status::Submitted => "submitted",
            Status::InReview => "in_review",
            Status::Approved => "approved",
            Status::Rejected => "rejected",
            Status::Exported => "exported",
        }
    }

    pub fn parse(s: &str) -> Option<Status> {
        Status::ALL.into_iter().find(|x| x.as_str() == s)
    }

    /// Whether the student may still replace the photo of this submission.
    pub fn replaceable(self) -> bool {
        matches!(self, Status::Unpaid | Status::Submitted | Status::Rejected)
    }
}

#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Submission {
    pub id: SubmissionId,
    pub student_id: StudentId,
    pub photo_type_id: PhotoTypeId,
    pub photo_id: PhotoId,
    pub status: Status,
    pub submitted_at: i64,
    pub decided_at: Option<i64>,
    pub reviewer_id: Option<StaffId>,
    /// Rule ids, comma-separated.
    pub reasons: String,
    pub note: String,
    #[serde(skip)]
    pub registered_key: Option<BlobKey>,
    pub exported_at: Option<i64>,
}

/// A queue entry: the submission with who it is from.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct QueueItem {
    pub submission: Submission,
    pub student_no: String,
    pub name: String,
    pub college: Option<String>,
    pub school_id: SchoolId,
}

/// What the export writes for one student.
#[derive(Debug, Clone)]
pub struct ExportItem {
    pub submission_id: SubmissionId,
    pub student_id: StudentId,
    pub school_id: SchoolId,
    pub student_no: String,
    pub name: String,
    pub id_kind: String,
    pub id_cipher: Vec<u8>,
    pub college: Option<String>,
    pub degree_level: Option<String>,
    pub registered_key: BlobKey,
}

#[derive(Debug, Clone, Serialize)]
pub struct OutboxItem {
    pub id: OutboxId,
    /// The student a message is for (channels `site`, `wechat`); none for a school's row.
    pub student_id: Option<StudentId>,
    /// The school an event is for (channel `webhook`); none for a student's row.
    pub school_id: Option<SchoolId>,
    pub channel: String,
    /// submitted, approved, rejected, exported (`notice` for rows older than kinds); for a webhook the event type
    /// (`submission.approved`, …).
    pub kind: String,
    pub title: String,
    pub body: String,
    /// JSON chosen by the web layer, for channels that render their own message (WeChat templates).
    pub payload: String,
    pub attempts: i64,
    pub created_at: i64,
}

/// A message to a student about their submission, queued in the transaction of the change it reports.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Notice<'a> {
    /// submitted, approved, rejected or exported.
    pub kind: &'a str,
    pub title: &'a str,
    pub body: &'a str,
    /// JSON text.
    pub payload: &'a str,
}

/// An event for a school's webhook, queued in the transaction of the change it reports, and only when the school
/// has a webhook then.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Event<'a> {
    pub school: SchoolId,
    /// The event type: `submission.approved`, `submission.rejected`, `export.created`.
    pub kind: &'a str,
    /// JSON text chosen by the web layer: what is delivered, except the delivery id (the outbox id, known once
    /// queued).
    pub payload: &'a str,
}

/// A message delivery gave up on, for the admin to see and resend.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct DeadLetter {
    pub id: OutboxId,
    /// None for a school's row (a webhook event).
    pub student_id: Option<StudentId>,
    pub student_no: Option<String>,
    pub channel: String,
    pub kind: String,
    pub title: String,
    pub attempts: i64,
    pub last_error: Option<String>,
    pub dead_at: i64,
}

/// A school's webhook: where its events go and how the last deliveries went.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Webhook {
    pub school_id: SchoolId,
    pub url: String,
    /// The signing secret, sealed: kept out of any JSON this struct is written to.
    #[serde(skip)]
    pub secret_cipher: Vec<u8>,
    pub created_at: i64,
    pub last_delivered_at: Option<i64>,
    pub last_error: Option<String>,
    pub last_error_at: Option<i64>,
}

#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Notification {
    pub title: String,
    pub body: String,
    pub created_at: i64,
}

#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct AuditEntry {
    pub at: i64,
    pub actor: String,
    pub action: String,
    pub school_id: Option<SchoolId>,
    pub detail: String,
}

/// What binding a WeChat openid to a student did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BindOutcome {
    /// Bound now, or already bound to this same openid.
    Bound,
    /// The student is bound to another openid.
    StudentBoundElsewhere,
    /// The openid is bound to this other student.
    OpenidBoundElsewhere(StudentId),
}

#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Binding {
    pub channel: String,
    pub bound_at: i64,
}

/// What an OAuth `state` was issued with.
#[derive(Debug, Clone, Serialize)]
pub struct OauthState {
    pub school_code: Option<String>,
    pub attempt: i64,
}

/// The official account's server access token, shared by every node.
#[derive(Debug, Clone, Serialize)]
pub struct WechatToken {
    /// A credential: kept out of any JSON this struct is written to.
    #[serde(skip)]
    pub access_token: String,
    pub expires_at: i64,
    pub fetched_at: i64,
    /// The day (the caller's numbering) `force_count` counts forced refreshes of.
    pub force_day: i64,
    pub force_count: i64,
    pub last_force_at: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
pub enum PayStatus {
    /// Ordered, not (yet) paid.
    Created,
    Paid,
    Refunding,
    Refunded,
    /// Closed unpaid (expired or given up).
    Closed,
}

impl PayStatus {
    pub const ALL: [PayStatus; 5] =
        [PayStatus::Created, PayStatus::Paid, PayStatus::Refunding, PayStatus::Refunded, PayStatus::Closed];

    pub fn as_str(self) -> &'static str {
        match self {
            PayStatus::Created => "created",
            PayStatus::Paid => "paid",
            PayStatus::Refunding => "refunding",
            PayStatus::Refunded => "refunded",
            PayStatus::Closed => "closed",
        }
    }

    pub fn parse(s: &str) -> Option<PayStatus> {
        PayStatus::ALL.into_iter().find(|x| x.as_str() == s)
    }
}

/// A payment: an offline one marked by staff, or a WeChat Pay order. Amounts in fen.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Payment {
    pub id: PaymentId,
    pub student_id: StudentId,
    pub amount_cents: i64,
    pub provider: String,
    pub status: PayStatus,
    pub reference: String,
    pub out_trade_no: Option<String>,
    pub prepay_id: Option<String>,
    pub prepay_expires_at: Option<i64>,
    pub transaction_id: Option<String>,
    pub refund_no: Option<String>,
    pub created_at: i64,
    pub paid_at: Option<i64>,
    pub refunded_at: Option<i64>,
}

/// What a payment confirmation (a notification or a query) did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Confirm {
    /// This call marked the order paid, for this student.
    Paid(StudentId),
    /// Paid (or refunded) before: nothing changed.
    AlreadyDone,
    UnknownOrder,
    /// The amount differs from the order's: nothing changed.
    WrongAmount,
}

/// Counts for the progress page.
#[derive(Debug, Clone, Default, Serialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Progress {
    pub students: i64,
    /// Students who have not submitted.
    pub not_submitted: i64,
    pub by_status: Vec<(String, i64)>,
    /// Per college: students, then counts by status.
    pub by_college: Vec<CollegeProgress>,
    /// Failing rule id → photos of current submissions that the checker flagged for it.
    pub by_rule: Vec<(String, i64)>,
}

#[derive(Debug, Clone, Default, Serialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct CollegeProgress {
    pub college: String,
    pub students: i64,
    pub approved: i64,
    pub submitted: i64,
}

/// A school's machine credential. The secret is never stored: the row holds its SHA-256 only, and this struct not
/// even that, so that listing tokens cannot leak what finds them.
#[derive(Debug, Clone, Serialize)]
pub struct ApiToken {
    pub id: ApiTokenId,
    pub school_id: SchoolId,
    pub name: String,
    /// Scope ids, comma-separated (the web layer's `Scope`).
    pub scopes: String,
    pub created_by: StaffId,
    pub created_at: i64,
    pub revoked_at: Option<i64>,
    pub last_used_at: Option<i64>,
}

/// Uses counted in the current window of a rate limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    /// This use included.
    pub count: i64,
    pub started_at: i64,
}

// ---------------------------------------------------------------------------------------------------------------
// Row mapping
// ---------------------------------------------------------------------------------------------------------------

fn opt_key(s: Option<String>) -> Option<BlobKey> {
    s.and_then(|s| BlobKey::parse(&s).ok())
}

fn key(s: String) -> Result<BlobKey> {
    BlobKey::parse(&s).map_err(|_| DbError::NotFound)
}

fn school_row(r: &AnyRow) -> Result<School> {
    Ok(School {
        id: SchoolId(r.try_get("id")?),
        region_id: RegionId(r.try_get("region_id")?),
        code: r.try_get("code")?,
        name: r.try_get("name")?,
        fee_cents: r.try_get("fee_cents")?,
        opens_at: r.try_get("opens_at")?,
        closes_at: r.try_get("closes_at")?,
        backgrounds: r.try_get("backgrounds")?,
    })
}

fn staff_row(r: &AnyRow) -> Result<Staff> {
    let role: String = r.try_get("role")?;
    Ok(Staff {
        id: StaffId(r.try_get("id")?),
        username: r.try_get("username")?,
        role: Role::parse(&role).ok_or(DbError::NotFound)?,
        school_id: r.try_get::<Option<i64>, _>("school_id")?.map(SchoolId),
        password_hash: r.try_get("password_hash")?,
        failed_logins: r.try_get("failed_logins")?,
        locked_until: r.try_get("locked_until")?,
    })
}

fn student_row(r: &AnyRow) -> Result<Student> {
    Ok(Student {
        id: StudentId(r.try_get("id")?),
        school_id: SchoolId(r.try_get("school_id")?),
        student_no: r.try_get("student_no")?,
        name: r.try_get("name")?,
        id_kind: r.try_get("id_kind")?,
        id_cipher: r.try_get("id_cipher")?,
        college: r.try_get("college")?,
        degree_level: r.try_get("degree_level")?,
        password_hash: r.try_get("password_hash")?,
        password_changed: r.try_get::<i64, _>("password_changed")? != 0,
        paid: r.try_get::<i64, _>("paid")? != 0,
        failed_logins: r.try_get("failed_logins")?,
        locked_until: r.try_get("locked_until")?,
    })
}

fn photo_row(r: &AnyRow) -> Result<Photo> {
    Ok(Photo {
        id: PhotoId(r.try_get("id")?),
        student_id: StudentId(r.try_get("student_id")?),
        photo_type_id: PhotoTypeId(r.try_get("photo_type_id")?),
        original_key: key(r.try_get("original_key")?)?,
        annotated_key: opt_key(r.try_get("annotated_key")?),
        verdict: r.try_get("verdict")?,
        failing: r.try_get("failing")?,
        report: r.try_get("report")?,
        uploaded_at: r.try_get("uploaded_at")?,
        checked_at: r.try_get("checked_at")?,
        check_claims: r.try_get("check_claims")?,
        check_lease_until: r.try_get("check_lease_until")?,
    })
}

const API_TOKEN_COLUMNS: &str = "id, school_id, name, scopes, created_by, created_at, revoked_at, last_used_at";

fn api_token_row(r: &AnyRow) -> Result<ApiToken> {
    Ok(ApiToken {
        id: ApiTokenId(r.try_get("id")?),
        school_id: SchoolId(r.try_get("school_id")?),
        name: r.try_get("name")?,
        scopes: r.try_get("scopes")?,
        created_by: StaffId(r.try_get("created_by")?),
        created_at: r.try_get("created_at")?,
        revoked_at: r.try_get("revoked_at")?,
        last_used_at: r.try_get("last_used_at")?,
    })
}

const SUBMISSION_COLUMNS: &str = "s.id, s.student_id, s.photo_type_id, s.photo_id, s.status, s.submitted_at, \
     s.decided_at, s.reviewer_id, s.reasons, s.note, s.registered_key, s.exported_at";

fn submission_row(r: &AnyRow) -> Result<Submission> {
    let status: String = r.try_get("status")?;
    Ok(Submission {
        id: SubmissionId(r.try_get("id")?),
        student_id: StudentId(r.try_get("student_id")?),
        photo_type_id: PhotoTypeId(r.try_get("photo_type_id")?),
        photo_id: PhotoId(r.try_get("photo_id")?),
        status: Status::parse(&status).ok_or(DbError::NotFound)?,
        submitted_at: r.try_get("submitted_at")?,
        decided_at: r.try_get("decided_at")?,
        reviewer_id: r.try_get::<Option<i64>, _>("reviewer_id")?.map(StaffId),
        reasons: r.try_get("reasons")?,
        note: r.try_get("note")?,
        registered_key: opt_key(r.try_get("registered_key")?),
        exported_at: r.try_get("exported_at")?,
    })
}

fn outbox_row(r: &AnyRow) -> Result<OutboxItem> {
    Ok(OutboxItem {
        id: OutboxId(r.try_get("id")?),
        student_id: r.try_get::<Option<i64>, _>("student_id")?.map(StudentId),
        school_id: r.try_get::<Option<i64>, _>("school_id")?.map(SchoolId),
        channel: r.try_get("channel")?,
        kind: r.try_get("kind")?,
        title: r.try_get("title")?,
        body: r.try_get("body")?,
        payload: r.try_get("payload")?,
        attempts: r.try_get("attempts")?,
        created_at: r.try_get("created_at")?,
    })
}

const OUTBOX_COLUMNS: &str = "id, student_id, school_id, channel, kind, title, body, payload, attempts, created_at";

const PAYMENT_COLUMNS: &str = "p.id, p.student_id, p.amount_cents, p.provider, p.status, p.reference, \
     p.out_trade_no, p.prepay_id, p.prepay_expires_at, p.transaction_id, p.refund_no, p.created_at, p.paid_at, \
     p.refunded_at";

fn payment_row(r: &AnyRow) -> Result<Payment> {
    let status: String = r.try_get("status")?;
    Ok(Payment {
        id: PaymentId(r.try_get("id")?),
        student_id: StudentId(r.try_get("student_id")?),
        amount_cents: r.try_get("amount_cents")?,
        provider: r.try_get("provider")?,
        status: PayStatus::parse(&status).ok_or(DbError::NotFound)?,
        reference: r.try_get("reference")?,
        out_trade_no: r.try_get("out_trade_no")?,
        prepay_id: r.try_get("prepay_id")?,
        prepay_expires_at: r.try_get("prepay_expires_at")?,
        transaction_id: r.try_get("transaction_id")?,
        refund_no: r.try_get("refund_no")?,
        created_at: r.try_get("created_at")?,
        paid_at: r.try_get("paid_at")?,
        refunded_at: r.try_get("refunded_at")?,
    })
}

// ---------------------------------------------------------------------------------------------------------------
// Connection
// ---------------------------------------------------------------------------------------------------------------

impl Db {
    /// Connects and runs the migrations. `sqlite:PATH` creates the file if absent; `postgres://…` needs the
    /// database to exist.
    pub async fn connect(url: &str) -> Result<Db> {
        sqlx::any::install_default_drivers();
        let backend = if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Backend::Postgres
        } else {
            return Err(DbError::Url);
        };
        let pool = match backend {
            Backend::Sqlite => {
                let url = if url.contains('?') { url.to_string() } else { format!("{url}?mode=rwc") };
                // Readers do not block each other in WAL mode: enough connections that a page's short query does not
                // queue behind a burst's.
                AnyPoolOptions::new()
                    .max_connections(24)
                    // An in-process database does not drop connections: the ping sqlx sends before handing one out
                    // doubled the round trips to SQLite's threads (5 % of the service's CPU under a burst).
                    .test_before_acquire(false)
                    .after_connect(|conn, _| {
                        Box::pin(async move {
                            // WAL lets pages read while a submission commits; FULL makes each commit durable.
                            sqlx::raw_sql(
                                "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON; \
                                 PRAGMA busy_timeout = 10000;",
                            )
                            .execute(conn)
                            .await?;
                            Ok(())
                        })
                    })
                    .connect(&url)
                    .await?
            }
            Backend::Postgres => AnyPoolOptions::new().max_connections(16).connect(url).await?,
        };
        match backend {
            Backend::Sqlite => SQLITE.run(&pool).await?,
            Backend::Postgres => POSTGRES.run(&pool).await?,
        }
        let writer = (backend == Backend::Sqlite).then(|| Arc::new(tokio::sync::Mutex::new(())));
        Ok(Db { pool, backend, writer })
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }

    pub async fn begin(&self) -> Result<Tx<'_>> {
        let guard = match &self.writer {
            Some(m) => Some(m.lock().await),
            None => None,
        };
        // SQLite: take the write lock at BEGIN, where the busy timeout waits for other writers. A deferred
        // transaction that reads first (submit, roster import) fails at once with "database is locked" when it
        // upgrades while a write outside the mutex (an audit row, a session) is running or has committed since.
        let tx = match self.backend {
            Backend::Sqlite => self.pool.begin_with("BEGIN IMMEDIATE").await?,
            Backend::Postgres => self.pool.begin().await?,
        };
        Ok(Tx { tx, backend: self.backend, _guard: guard })
    }

    /// SQLite only: a consistent copy of the whole database into a new file, taken while others write.
    pub async fn vacuum_into(&self, path: &std::path::Path) -> Result<()> {
        let path = path.to_str().ok_or(DbError::Url)?.replace('\'', "''");
        sqlx::query(AssertSqlSafe(format!("VACUUM INTO '{path}'"))).execute(&self.pool).await?;
        Ok(())
    }

    pub async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Regions, schools, photo types
// ---------------------------------------------------------------------------------------------------------------

impl Db {
    pub async fn upsert_region(&self, province: &str, city: &str) -> Result<RegionId> {
        let row = sqlx::query(
            "INSERT INTO regions (province, city) VALUES ($1, $2) \
             ON CONFLICT (province, city) DO UPDATE SET province = excluded.province RETURNING id",
        )
        .bind(province)
        .bind(city)
        .fetch_one(&self.pool)
        .await?;
        Ok(RegionId(row.try_get("id")?))
    }

    pub async fn regions(&self) -> Result<Vec<Region>> {
        let rows =
            sqlx::query("SELECT id, province, city FROM regions ORDER BY province, city").fetch_all(&self.pool).await?;
        rows.iter()
            .map(|r| {
                Ok(Region {
                    id: RegionId(r.try_get("id")?),
                    province: r.try_get("province")?,
                    city: r.try_get("city")?,
                })
            })
            .collect()
    }

    /// A new school with its first photo type, 学历图片（毕业照）.
    pub async fn create_school(&self, s: &NewSchool) -> Result<SchoolId> {
        let mut tx = self.begin().await?;
        let row = sqlx::query(
            "INSERT INTO schools (region_id, code, name, fee_cents, opens_at, closes_at, backgrounds, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id",
        )
        .bind(s.region_id.0)
        .bind(&s.code)
        .bind(&s.name)
        .bind(s.fee_cents)
        .bind(s.opens_at)
        .bind(s.closes_at)
        .bind(&s.backgrounds)
        .bind(now_ms())
        .fetch_one(&mut *tx.tx)
        .await
        .map_err(|e| if is_unique_violation(&e) { DbError::Conflict } else { e.into() })?;
        let id = SchoolId(row.try_get("id")?);
        sqlx::query(
            "INSERT INTO photo_types (school_id, code, name_zh, name_en, position) VALUES ($1, 'degree', $2, $3, 0)",
        )
        .bind(id.0)
        .bind("学历图片（毕业照）")
        .bind("degree-certificate photo")
        .execute(&mut *tx.tx)
        .await?;
        tx.commit().await?;
        Ok(id)
    }

    pub async fn update_school(&self, id: SchoolId, s: &NewSchool) -> Result<()> {
        let done = sqlx::query(
            "UPDATE schools SET name = $1, fee_cents = $2, opens_at = $3, closes_at = $4, backgrounds = $5 WHERE id = $6",
        )
        .bind(&s.name)
        .bind(s.fee_cents)
        .bind(s.opens_at)
        .bind(s.closes_at)
        .bind(&s.backgrounds)
        .bind(id.0)
        .execute(&self.pool)
        .await?;
        if done.rows_affected() == 0 { Err(DbError::NotFound) } else { Ok(()) }
    }

    pub async fn school(&self, id: SchoolId) -> Result<School> {
        let r = sqlx::query("SELECT * FROM schools WHERE id = $1").bind(id.0).fetch_optional(&self.pool).await?;
        school_row(&r.ok_or(DbError::NotFound)?)
    }

    pub async fn school_by_code(&self, code: &str) -> Result<School> {
        let r = sqlx::query("SELECT * FROM schools WHERE code = $1").bind(code).fetch_optional(&self.pool).await?;
        school_row(&r.ok_or(DbError::NotFound)?)
    }

    pub async fn schools(&self, region: Option<RegionId>) -> Result<Vec<School>> {
        let rows = match region {
            Some(r) => {
                sqlx::query("SELECT * FROM schools WHERE region_id = $1 ORDER BY name")
                    .bind(r.0)
                    .fetch_all(&self.pool)
                    .await?
            }
            None => sqlx::query("SELECT * FROM schools ORDER BY name").fetch_all(&self.pool).await?,
        };
        rows.iter().map(school_row).collect()
    }

    pub async fn add_photo_type(&self, school: SchoolId, code: &str, zh: &str, en: &str) -> Result<PhotoTypeId> {
        let row = sqlx::query(
            "INSERT INTO photo_types (school_id, code, name_zh, name_en, position) VALUES ($1, $2, $3, $4, \
             (SELECT COUNT(*) FROM photo_types WHERE school_id = $1)) RETURNING id",
        )
        .bind(school.0)
        .bind(code)
        .bind(zh)
        .bind(en)
        .fetch_one(&self.pool)
        .await
        .map_err(|e| if is_unique_violation(&e) { DbError::Conflict } else { e.into() })?;
        Ok(PhotoTypeId(row.try_get("id")?))
    }

    pub async fn photo_types(&self, school: SchoolId) -> Result<Vec<PhotoType>> {
        let rows = sqlx::query("SELECT * FROM photo_types WHERE school_id = $1 ORDER BY position, id")
            .bind(school.0)
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| {
                Ok(PhotoType {
                    id: PhotoTypeId(r.try_get("id")?),
                    school_id: SchoolId(r.try_get("school_id")?),
                    code: r.try_get("code")?,
                    name_zh: r.try_get("name_zh")?,
                    name_en: r.try_get("name_en")?,
                })
            })
            .collect()
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Staff and students
// ---------------------------------------------------------------------------------------------------------------

impl Db {
    pub async fn create_staff(
        &self,
        username: &str,
        role: Role,
        school: Option<SchoolId>,
        password_hash: &str,
    ) -> Result<StaffId> {
        let row = sqlx::query(
            "INSERT INTO staff (username, role, school_id, password_hash, created_at) VALUES ($1, $2, $3, $4, $5) \
             RETURNING id",
        )
        .bind(username)
        .bind(role.as_str())
        .bind(school.map(|s| s.0))
        .bind(password_hash)
        .bind(now_ms())
        .fetch_one(&self.pool)
        .await
        .map_err(|e| if is_unique_violation(&e) { DbError::Conflict } else { e.into() })?;
        Ok(StaffId(row.try_get("id")?))
    }

    pub async fn staff_by_username(&self, username: &str) -> Result<Option<Staff>> {
        let r =
            sqlx::query("SELECT * FROM staff WHERE username = $1").bind(username).fetch_optional(&self.pool).await?;
        r.as_ref().map(staff_row).transpose()
    }

    pub async fn staff(&self, id: StaffId) -> Result<Staff> {
        let r = sqlx::query("SELECT * FROM staff WHERE id = $1").bind(id.0).fetch_optional(&self.pool).await?;
        staff_row(&r.ok_or(DbError::NotFound)?)
    }

    pub async fn staff_of_school(&self, school: SchoolId) -> Result<Vec<Staff>> {
        let rows = sqlx::query("SELECT * FROM staff WHERE school_id = $1 ORDER BY username")
            .bind(school.0)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(staff_row).collect()
    }

    pub async fn count_staff(&self) -> Result<i64> {
        Ok(sqlx::query("SELECT COUNT(*) AS n FROM staff").fetch_one(&self.pool).await?.try_get("n")?)
    }

    /// Records a login attempt: success clears the failures, failure counts one and locks at `lock_after`.
    pub async fn staff_login_result(&self, id: StaffId, ok: bool, lock_after: i64, lock_ms: i64) -> Result<()> {
        login_result(&self.pool, "staff", id.0, ok, lock_after, lock_ms).await
    }

    pub async fn student_login_result(&self, id: StudentId, ok: bool, lock_after: i64, lock_ms: i64) -> Result<()> {
        login_result(&self.pool, "students", id.0, ok, lock_after, lock_ms).await
    }

    pub async fn set_staff_password(&self, id: StaffId, hash: &str) -> Result<()> {
        sqlx::query("UPDATE staff SET password_hash = $1 WHERE id = $2")
            .bind(hash)
            .bind(id.0)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub async fn student(&self, id: StudentId) -> Result<Student> {
        let r = sqlx::query("SELECT * FROM students WHERE id = $1").bind(id.0).fetch_optional(&self.pool).await?;
        student_row(&r.ok_or(DbError::NotFound)?)
    }

    pub async fn student_by_no(&self, school: SchoolId, student_no: &str) -> Result<Option<Student>> {
        let r = sqlx::query("SELECT * FROM students WHERE school_id = $1 AND student_no = $2")
            .bind(school.0)
            .bind(student_no)
            .fetch_optional(&self.pool)
            .await?;
        r.as_ref().map(student_row).transpose()
    }

    pub async fn student_by_id_hash(&self, school: SchoolId, hash: &[u8]) -> Result<Option<Student>> {
        let r = sqlx::query("SELECT * FROM students WHERE school_id = $1 AND id_hash = $2")
            .bind(school.0)
            .bind(hash.to_vec())
            .fetch_optional(&self.pool)
            .await?;
        r.as_ref().map(student_row).transpose()
    }

    pub async fn students(&self, school: SchoolId, limit: i64, offset: i64) -> Result<Vec<Student>> {
        let rows = sqlx::query("SELECT * FROM students WHERE school_id = $1 ORDER BY student_no LIMIT $2 OFFSET $3")
            .bind(school.0)
            .bind(limit)
            .bind(offset)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(student_row).collect()
    }

    pub async fn set_student_password(&self, id: StudentId, hash: &str) -> Result<()> {
        sqlx::query("UPDATE students SET password_hash = $1, password_changed = 1, updated_at = $2 WHERE id = $3")
            .bind(hash)
            .bind(now_ms())
            .bind(id.0)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Imports roster rows in one transaction: new students are created, known ones (same student number)
    /// updated in place, never duplicated. No password is stored until a student chooses one: the initial password
    /// is derived from the id number at login (it has 10⁶ values at most, so a hash of it would protect nothing),
    /// and a corrected id number changes it with no further step.
    pub async fn import_students(&self, school: SchoolId, rows: &[StudentUpsert]) -> Result<ImportCounts> {
        let mut counts = ImportCounts::default();
        let mut tx = self.begin().await?;
        // Imports of one school run one after the other: the second must see the students the first created, or
        // both insert them and the later one fails on the unique student number. (SQLite's BEGIN IMMEDIATE and the
        // writer lock already serialise them.)
        if self.backend == Backend::Postgres {
            sqlx::query("SELECT id FROM schools WHERE id = $1 FOR UPDATE").bind(school.0).execute(&mut *tx.tx).await?;
        }
        let now = now_ms();
        let existing: HashMap<String, Known> = sqlx::query(
            "SELECT id, student_no, id_hash, name, college, degree_level, id_kind FROM students WHERE school_id = $1",
        )
        .bind(school.0)
        .fetch_all(&mut *tx.tx)
        .await?
        .iter()
        .map(|r| -> Result<_> {
            Ok((
                r.try_get::<String, _>("student_no")?,
                (
                    r.try_get("id")?,
                    r.try_get("id_hash")?,
                    r.try_get("name")?,
                    r.try_get("college")?,
                    r.try_get("degree_level")?,
                    r.try_get("id_kind")?,
                ),
            ))
        })
        .collect::<Result<_>>()?;
        for row in rows {
            match existing.get(&row.student_no) {
                None => {
                    sqlx::query(
                        "INSERT INTO students (school_id, student_no, name, id_kind, id_cipher, id_hash, college, \
                         degree_level, password_hash, created_at, updated_at) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, '', $9, $9)",
                    )
                    .bind(school.0)
                    .bind(&row.student_no)
                    .bind(&row.name)
                    .bind(&row.id_kind)
                    .bind(row.id_cipher.clone())
                    .bind(row.id_hash.clone())
                    .bind(&row.college)
                    .bind(&row.degree_level)
                    .bind(now)
                    .execute(&mut *tx.tx)
                    .await?;
                    counts.created += 1;
                }
                Some((id, hash, name, college, degree, kind)) => {
                    let id_changed = *hash != row.id_hash || *kind != row.id_kind;
                    if !id_changed && *name == row.name && *college == row.college && *degree == row.degree_level {
                        counts.unchanged += 1;
                        continue;
                    }
                    sqlx::query(
                        "UPDATE students SET name = $1, college = $2, degree_level = $3, updated_at = $4 WHERE id = $5",
                    )
                    .bind(&row.name)
                    .bind(&row.college)
                    .bind(&row.degree_level)
                    .bind(now)
                    .bind(id)
                    .execute(&mut *tx.tx)
                    .await?;
                    if id_changed {
                        sqlx::query("UPDATE students SET id_kind = $1, id_cipher = $2, id_hash = $3 WHERE id = $4")
                            .bind(&row.id_kind)
                            .bind(row.id_cipher.clone())
                            .bind(row.id_hash.clone())
                            .bind(id)
                            .execute(&mut *tx.tx)
                            .await?;
                    }
                    counts.updated += 1;
                }
            }
        }
        tx.commit().await?;
        Ok(counts)
    }

    /// The device a student's account is bound to on `channel`; binds `subject` when none is yet. Returns whether
    /// `subject` is the bound one.
    pub async fn bind_device(&self, student: StudentId, channel: &str, subject_hash: &[u8]) -> Result<bool> {
        sqlx::query(
            "INSERT INTO bindings (student_id, channel, subject_hash, bound_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (student_id, channel) DO NOTHING",
        )
        .bind(student.0)
        .bind(channel)
        .bind(subject_hash.to_vec())
        .bind(now_ms())
        .execute(&self.pool)
        .await?;
        let bound: Vec<u8> = sqlx::query("SELECT subject_hash FROM bindings WHERE student_id = $1 AND channel = $2")
            .bind(student.0)
            .bind(channel)
            .fetch_one(&self.pool)
            .await?
            .try_get("subject_hash")?;
        Ok(bound == subject_hash)
    }

    /// Releases the student's bindings on `channel`, or on every channel with `None`; returns how many.
    pub async fn unbind_device(&self, student: StudentId, channel: Option<&str>) -> Result<u64> {
        let done = match channel {
            Some(c) => {
                sqlx::query("DELETE FROM bindings WHERE student_id = $1 AND channel = $2")
                    .bind(student.0)
                    .bind(c)
                    .execute(&self.pool)
                    .await?
            }
            None => {
                sqlx::query("DELETE FROM bindings WHERE student_id = $1").bind(student.0).execute(&self.pool).await?
            }
        };
        Ok(done.rows_affected())
    }

    /// Records a payment made outside the site (cash, a transfer) and releases the submissions that waited for it,
    /// each with `notice`.
    pub async fn mark_paid(
        &self,
        student: StudentId,
        provider: &str,
        reference: &str,
        amount: i64,
        notice: &Notice<'_>,
    ) -> Result<()> {
        let mut tx = self.begin().await?;
        let now = now_ms();
        sqlx::query(
            "INSERT INTO payments (student_id, amount_cents, provider, status, reference, created_at, paid_at) \
             VALUES ($1, $2, $3, 'paid', $4, $5, $5)",
        )
        .bind(student.0)
        .bind(amount)
        .bind(provider)
        .bind(reference)
        .bind(now)
        .execute(&mut *tx.tx)
        .await?;
        sqlx::query("UPDATE students SET paid = 1, updated_at = $1 WHERE id = $2")
            .bind(now)
            .bind(student.0)
            .execute(&mut *tx.tx)
            .await?;
        release_unpaid(&mut tx, student, notice).await?;
        tx.commit().await
    }
}

async fn login_result(pool: &AnyPool, table: &str, id: i64, ok: bool, lock_after: i64, lock_ms: i64) -> Result<()> {
    let now = now_ms();
    if ok {
        let sql = format!("UPDATE {table} SET failed_logins = 0, locked_until = 0 WHERE id = $1");
        sqlx::query(AssertSqlSafe(sql.as_str())).bind(id).execute(pool).await?;
    } else {
        // One statement, so that concurrent failures each count.
        let sql = format!(
            "UPDATE {table} SET failed_logins = failed_logins + 1, \
             locked_until = CASE WHEN failed_logins + 1 >= $1 THEN $2 ELSE locked_until END WHERE id = $3"
        );
        sqlx::query(AssertSqlSafe(sql.as_str())).bind(lock_after).bind(now + lock_ms).bind(id).execute(pool).await?;
        let sql = format!("UPDATE {table} SET failed_logins = 0 WHERE id = $1 AND failed_logins >= $2");
        sqlx::query(AssertSqlSafe(sql.as_str())).bind(id).bind(lock_after).execute(pool).await?;
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------------------------
// Sessions
// ---------------------------------------------------------------------------------------------------------------

impl Db {
    pub async fn create_session(
        &self,
        token_hash: &[u8],
        kind: &str,
        subject: i64,
        csrf: &str,
        expires_at: i64,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO sessions (token_hash, subject_kind, subject_id, csrf, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(token_hash.to_vec())
        .bind(kind)
        .bind(subject)
        .bind(csrf)
        .bind(now_ms())
        .bind(expires_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn session(&self, token_hash: &[u8]) -> Result<Option<Session>> {
        let r = sqlx::query("SELECT * FROM sessions WHERE token_hash = $1 AND expires_at > $2")
            .bind(token_hash.to_vec())
            .bind(now_ms())
            .fetch_optional(&self.pool)
            .await?;
        r.map(|r| {
            Ok(Session {
                subject_kind: r.try_get("subject_kind")?,
                subject_id: r.try_get("subject_id")?,
                csrf: r.try_get("csrf")?,
                expires_at: r.try_get("expires_at")?,
            })
        })
        .transpose()
    }

    pub async fn delete_session(&self, token_hash: &[u8]) -> Result<()> {
        sqlx::query("DELETE FROM sessions WHERE token_hash = $1").bind(token_hash.to_vec()).execute(&self.pool).await?;
        Ok(())
    }

    pub async fn delete_sessions_of(&self, kind: &str, subject: i64) -> Result<()> {
        sqlx::query("DELETE FROM sessions WHERE subject_kind = $1 AND subject_id = $2")
            .bind(kind)
            .bind(subject)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub async fn purge_sessions(&self) -> Result<u64> {
        Ok(sqlx::query("DELETE FROM sessions WHERE expires_at <= $1")
            .bind(now_ms())
            .execute(&self.pool)
            .await?
            .rows_affected())
    }
}

// ---------------------------------------------------------------------------------------------------------------
// API tokens
// ---------------------------------------------------------------------------------------------------------------

impl Db {
    /// Stores a new token of `school` under the hash of its secret.
    pub async fn create_api_token(
        &self,
        school: SchoolId,
        name: &str,
        scopes: &str,
        token_hash: &[u8],
        created_by: StaffId,
    ) -> Result<ApiTokenId> {
        let row = sqlx::query(
            "INSERT INTO api_tokens (school_id, name, scopes, token_hash, created_by, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
        )
        .bind(school.0)
        .bind(name)
        .bind(scopes)
        .bind(token_hash.to_vec())
        .bind(created_by.0)
        .bind(now_ms())
        .fetch_one(&self.pool)
        .await
        .map_err(|e| if is_unique_violation(&e) { DbError::Conflict } else { e.into() })?;
        Ok(ApiTokenId(row.try_get("id")?))
    }

    /// The token whose secret hashes to `token_hash`, revoked or not.
    pub async fn api_token_by_hash(&self, token_hash: &[u8]) -> Result<Option<ApiToken>> {
        let r = sqlx::query(AssertSqlSafe(format!("SELECT {API_TOKEN_COLUMNS} FROM api_tokens WHERE token_hash = $1")))
            .bind(token_hash.to_vec())
            .fetch_optional(&self.pool)
            .await?;
        r.as_ref().map(api_token_row).transpose()
    }

    /// A school's tokens, newest first, revoked ones included.
    pub async fn api_tokens(&self, school: SchoolId) -> Result<Vec<ApiToken>> {
        let rows = sqlx::query(AssertSqlSafe(format!(
            "SELECT {API_TOKEN_COLUMNS} FROM api_tokens WHERE school_id = $1 ORDER BY id DESC"
        )))
        .bind(school.0)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(api_token_row).collect()
    }

    /// Revokes token `id` of `school` (NotFound if it is another school's); revoking again keeps the first time.
    pub async fn revoke_api_token(&self, id: ApiTokenId, school: SchoolId) -> Result<ApiToken> {
        let r = sqlx::query(AssertSqlSafe(format!(
            "UPDATE api_tokens SET revoked_at = COALESCE(revoked_at, $1) WHERE id = $2 AND school_id = $3 \
             RETURNING {API_TOKEN_COLUMNS}"
        )))
        .bind(now_ms())
        .bind(id.0)
        .bind(school.0)
        .fetch_optional(&self.pool)
        .await?;
        api_token_row(&r.ok_or(DbError::NotFound)?)
    }

    /// Notes a use of token `id` now.
    pub async fn api_token_used(&self, id: ApiTokenId) -> Result<()> {
        sqlx::query("UPDATE api_tokens SET last_used_at = $1 WHERE id = $2")
            .bind(now_ms())
            .bind(id.0)
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Photos and submissions
// ---------------------------------------------------------------------------------------------------------------

async fn insert_blob(tx: &mut Tx<'_>, kind: &str, b: &BlobMeta) -> Result<()> {
    sqlx::query("INSERT INTO blobs (key, kind, bytes, sha256, created_at) VALUES ($1, $2, $3, $4, $5)")
        .bind(b.key.as_str())
        .bind(kind)
        .bind(b.bytes)
        .bind(&b.sha256)
        .bind(now_ms())
        .execute(&mut *tx.tx)
        .await?;
    Ok(())
}

async fn delete_blob_rows(tx: &mut Tx<'_>, keys: &[BlobKey]) -> Result<()> {
    for k in keys {
        sqlx::query("DELETE FROM blobs WHERE key = $1").bind(k.as_str()).execute(&mut *tx.tx).await?;
    }
    Ok(())
}

/// The outcome of an upload's commit: the new photo and the files of the drafts it replaced, now unnamed.
#[derive(Debug)]
pub struct Uploaded {
    pub photo: PhotoId,
    pub replaced: Vec<BlobKey>,
}

#[derive(Debug, Clone)]
pub struct NewPhoto {
    pub student: StudentId,
    pub photo_type: PhotoTypeId,
    pub original: BlobMeta,
    pub annotated: Option<BlobMeta>,
    pub verdict: String,
    pub failing: String,
    pub report: String,
    /// False: the report holds the file rules only and the full check is queued (`Db::claim_check`).
    pub checked: bool,
}

/// What a finished check writes over the queued photo's row.
#[derive(Debug, Clone)]
pub struct CheckResult {
    pub annotated: Option<BlobMeta>,
    pub verdict: String,
    pub failing: String,
    pub report: String,
}

/// One upload's rows: the blob, the photo, and the removal of the drafts it replaces.
async fn insert_upload(tx: &mut Tx<'_>, p: &NewPhoto) -> Result<Uploaded> {
    // Two uploads of one student at once (a double tap) on PostgreSQL: without this lock each inserts, each looks
    // for the other's draft before either commits, and both stay. Locked, the later one waits, sees the earlier
    // committed, and replaces it: the last upload wins. (SQLite's single writer serialises them already.)
    if tx.backend == Backend::Postgres {
        sqlx::query("SELECT id FROM students WHERE id = $1 FOR UPDATE").bind(p.student.0).execute(&mut *tx.tx).await?;
    }
    insert_blob(tx, "original", &p.original).await?;
    if let Some(a) = &p.annotated {
        insert_blob(tx, "annotated", a).await?;
    }
    let row = sqlx::query(
        "INSERT INTO photos (student_id, photo_type_id, original_key, annotated_key, verdict, failing, report, \
         uploaded_at, checked_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING id",
    )
    .bind(p.student.0)
    .bind(p.photo_type.0)
    .bind(p.original.key.as_str())
    .bind(p.annotated.as_ref().map(|a| a.key.as_str().to_string()))
    .bind(&p.verdict)
    .bind(&p.failing)
    .bind(&p.report)
    .bind(now_ms())
    .bind(p.checked.then(now_ms))
    .fetch_one(&mut *tx.tx)
    .await?;
    let photo = PhotoId(row.try_get("id")?);
    let old = sqlx::query(
        "SELECT id, original_key, annotated_key FROM photos WHERE student_id = $1 AND photo_type_id = $2 \
         AND id <> $3 AND id NOT IN (SELECT photo_id FROM submissions WHERE student_id = $1)",
    )
    .bind(p.student.0)
    .bind(p.photo_type.0)
    .bind(photo.0)
    .fetch_all(&mut *tx.tx)
    .await?;
    let mut replaced = Vec::new();
    for r in &old {
        let id: i64 = r.try_get("id")?;
        sqlx::query("DELETE FROM photos WHERE id = $1").bind(id).execute(&mut *tx.tx).await?;
        replaced.push(key(r.try_get("original_key")?)?);
        replaced.extend(opt_key(r.try_get("annotated_key")?));
    }
    delete_blob_rows(tx, &replaced).await?;
    Ok(Uploaded { photo, replaced })
}

impl Db {
    /// Records an upload; earlier photos of the same student and type that no submission names are removed (a
    /// student keeps one draft per type: sensitive pictures are not hoarded).
    pub async fn record_upload(&self, p: &NewPhoto) -> Result<Uploaded> {
        let mut tx = self.begin().await?;
        let uploaded = insert_upload(&mut tx, p).await?;
        tx.commit().await?;
        Ok(uploaded)
    }

    /// Records several uploads in one transaction: one commit (one flush to disk) for a burst of students instead
    /// of one each. All or nothing: on an error the caller records them one by one to find the one that failed.
    pub async fn record_uploads(&self, batch: &[NewPhoto]) -> Result<Vec<Uploaded>> {
        let mut tx = self.begin().await?;
        let mut done = Vec::with_capacity(batch.len());
        for p in batch {
            done.push(insert_upload(&mut tx, p).await?);
        }
        tx.commit().await?;
        Ok(done)
    }

    /// Claims the oldest queued check no live lease holds, for `owner` until `lease_ms` from now (PostgreSQL's
    /// `FOR UPDATE SKIP LOCKED`, SQLite's single writer): checks run in arrival order on every node, and a node
    /// that dies leaves its claims to expire.
    pub async fn claim_check(&self, owner: &str, lease_ms: i64) -> Result<Option<Photo>> {
        let now = now_ms();
        let lock = match self.backend {
            Backend::Postgres => " FOR UPDATE SKIP LOCKED",
            Backend::Sqlite => "",
        };
        let sql = format!(
            "UPDATE photos SET check_lease_until = $1, check_owner = $2, check_claims = check_claims + 1 \
             WHERE id = (SELECT id FROM photos WHERE checked_at IS NULL AND check_lease_until <= $3 \
             ORDER BY id LIMIT 1{lock}) RETURNING *"
        );
        let mut tx = self.begin().await?;
        let row = sqlx::query(AssertSqlSafe(sql))
            .bind(now + lease_ms)
            .bind(owner)
            .bind(now)
            .fetch_optional(&mut *tx.tx)
            .await?;
        tx.commit().await?;
        row.as_ref().map(photo_row).transpose()
    }

    /// Writes a finished check over its queued photo. False, with nothing written, when the photo is gone
    /// (replaced meanwhile) or was finished already (by another node after this one's lease ran out): the
    /// caller then discards its annotated file.
    pub async fn complete_check(&self, photo: PhotoId, r: &CheckResult) -> Result<bool> {
        let mut tx = self.begin().await?;
        if let Some(a) = &r.annotated {
            insert_blob(&mut tx, "annotated", a).await?;
        }
        let done = sqlx::query(
            "UPDATE photos SET annotated_key = $1, verdict = $2, failing = $3, report = $4, checked_at = $5 \
             WHERE id = $6 AND checked_at IS NULL",
        )
        .bind(r.annotated.as_ref().map(|a| a.key.as_str().to_string()))
        .bind(&r.verdict)
        .bind(&r.failing)
        .bind(&r.report)
        .bind(now_ms())
        .bind(photo.0)
        .execute(&mut *tx.tx)
        .await?;
        if done.rows_affected() == 0 {
            return Ok(false);
        }
        tx.commit().await?;
        Ok(true)
    }

    /// The photo's place in the check queue: 1 when it is next (or running), 0 when checked or gone.
    pub async fn check_place(&self, photo: PhotoId) -> Result<i64> {
        let r = sqlx::query(
            "SELECT COUNT(*) AS n FROM photos WHERE checked_at IS NULL AND id <= $1 \
             AND EXISTS (SELECT 1 FROM photos WHERE id = $1 AND checked_at IS NULL)",
        )
        .bind(photo.0)
        .fetch_one(&self.pool)
        .await?;
        Ok(r.try_get("n")?)
    }

    /// Checks queued or running, on every node.
    pub async fn checks_pending(&self) -> Result<i64> {
        let r = sqlx::query("SELECT COUNT(*) AS n FROM photos WHERE checked_at IS NULL").fetch_one(&self.pool).await?;
        Ok(r.try_get("n")?)
    }

    pub async fn photo(&self, id: PhotoId) -> Result<Photo> {
        let r = sqlx::query("SELECT * FROM photos WHERE id = $1").bind(id.0).fetch_optional(&self.pool).await?;
        photo_row(&r.ok_or(DbError::NotFound)?)
    }

    pub async fn latest_photo(&self, student: StudentId, photo_type: PhotoTypeId) -> Result<Option<Photo>> {
        let r =
            sqlx::query("SELECT * FROM photos WHERE student_id = $1 AND photo_type_id = $2 ORDER BY id DESC LIMIT 1")
                .bind(student.0)
                .bind(photo_type.0)
                .fetch_optional(&self.pool)
                .await?;
        r.as_ref().map(photo_row).transpose()
    }

    /// Submits `photo` for review. Idempotent: submitting the photo already submitted changes nothing, so a double
    /// click makes one submission. A submission past review (approved, exported) or being reviewed is not replaced.
    /// `notice` is queued when the submission enters the review queue (not while it waits for the fee, nor for a
    /// repeated submit that changes nothing).
    pub async fn submit(&self, photo: &Photo, paid: bool, notice: &Notice<'_>) -> Result<SubmissionId> {
        match self.try_submit(photo, paid, notice).await {
            // Two first submits at once on PostgreSQL: both saw no row, one insert lost the race (its notice rolled
            // back with it). The second try sees the winner's row (SQLite serialises writers, so it never gets here).
            Err(DbError::Sql(e)) if is_unique_violation(&e) => self.try_submit(photo, paid, notice).await,
            other => other,
        }
    }

    async fn try_submit(&self, photo: &Photo, paid: bool, notice: &Notice<'_>) -> Result<SubmissionId> {
        let mut tx = self.begin().await?;
        let status = if paid { Status::Submitted } else { Status::Unpaid };
        let existing = sqlx::query(AssertSqlSafe(format!(
            "SELECT {SUBMISSION_COLUMNS} FROM submissions s WHERE s.student_id = $1 AND s.photo_type_id = $2"
        )))
        .bind(photo.student_id.0)
        .bind(photo.photo_type_id.0)
        .fetch_optional(&mut *tx.tx)
        .await?;
        let id = match existing.as_ref().map(submission_row).transpose()? {
            Some(s) if s.photo_id == photo.id && s.status != Status::Rejected => return Ok(s.id),
            // A rejected photo comes back only as a new upload; an approved one is final.
            Some(s) if s.photo_id == photo.id || !s.status.replaceable() => return Err(DbError::State),
            Some(s) => {
                sqlx::query(
                    "UPDATE submissions SET photo_id = $1, status = $2, submitted_at = $3, decided_at = NULL, \
                     reviewer_id = NULL, reasons = '', note = '' WHERE id = $4",
                )
                .bind(photo.id.0)
                .bind(status.as_str())
                .bind(now_ms())
                .bind(s.id.0)
                .execute(&mut *tx.tx)
                .await?;
                // The photo it named is no longer anyone's: the next upload's clean-up removes it with its files.
                s.id
            }
            None => {
                let r = sqlx::query(
                    "INSERT INTO submissions (student_id, photo_type_id, photo_id, status, submitted_at) \
                     VALUES ($1, $2, $3, $4, $5) RETURNING id",
                )
                .bind(photo.student_id.0)
                .bind(photo.photo_type_id.0)
                .bind(photo.id.0)
                .bind(status.as_str())
                .bind(now_ms())
                .fetch_one(&mut *tx.tx)
                .await?;
                SubmissionId(r.try_get("id")?)
            }
        };
        if paid {
            enqueue(&mut tx, id, notice).await?;
        }
        tx.commit().await?;
        Ok(id)
    }

    pub async fn submission(&self, id: SubmissionId) -> Result<Submission> {
        let r = sqlx::query(AssertSqlSafe(format!("SELECT {SUBMISSION_COLUMNS} FROM submissions s WHERE s.id = $1")))
            .bind(id.0)
            .fetch_optional(&self.pool)
            .await?;
        submission_row(&r.ok_or(DbError::NotFound)?)
    }

    pub async fn submissions_of(&self, student: StudentId) -> Result<Vec<Submission>> {
        let rows = sqlx::query(AssertSqlSafe(format!(
            "SELECT {SUBMISSION_COLUMNS} FROM submissions s WHERE s.student_id = $1 ORDER BY s.photo_type_id"
        )))
        .bind(student.0)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(submission_row).collect()
    }

    /// The review queue of a school in submit order: waiting ones and those a reviewer has opened.
    pub async fn queue(&self, school: SchoolId, limit: i64) -> Result<Vec<QueueItem>> {
        let rows = sqlx::query(AssertSqlSafe(format!(
            "SELECT {SUBMISSION_COLUMNS}, st.student_no, st.name, st.college, st.school_id FROM submissions s \
             JOIN students st ON st.id = s.student_id WHERE st.school_id = $1 \
             AND s.status IN ('submitted', 'in_review') ORDER BY s.submitted_at, s.id LIMIT $2"
        )))
        .bind(school.0)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(QueueItem {
                    submission: submission_row(r)?,
                    student_no: r.try_get("student_no")?,
                    name: r.try_get("name")?,
                    college: r.try_get("college")?,
                    school_id: SchoolId(r.try_get("school_id")?),
                })
            })
            .collect()
    }

    /// The school a submission belongs to, for authorisation.
    pub async fn submission_school(&self, id: SubmissionId) -> Result<SchoolId> {
        let r = sqlx::query(
            "SELECT st.school_id FROM submissions s JOIN students st ON st.id = s.student_id WHERE s.id = $1",
        )
        .bind(id.0)
        .fetch_optional(&self.pool)
        .await?;
        Ok(SchoolId(r.ok_or(DbError::NotFound)?.try_get("school_id")?))
    }

    /// Marks a waiting submission as opened by `reviewer`.
    pub async fn open_for_review(&self, id: SubmissionId, reviewer: StaffId) -> Result<()> {
        sqlx::query(
            "UPDATE submissions SET status = 'in_review', reviewer_id = $1 WHERE id = $2 AND status = 'submitted'",
        )
        .bind(reviewer.0)
        .bind(id.0)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Approves the submission of `photo` (not a photo that replaced it meanwhile), with the registered file, and
    /// queues the student's notice and the school's `event`, in one transaction.
    pub async fn approve(
        &self,
        id: SubmissionId,
        photo: PhotoId,
        reviewer: StaffId,
        registered: &BlobMeta,
        notice: &Notice<'_>,
        event: Option<&Event<'_>>,
    ) -> Result<()> {
        let mut tx = self.begin().await?;
        insert_blob(&mut tx, "registered", registered).await?;
        let done = sqlx::query(
            "UPDATE submissions SET status = 'approved', decided_at = $1, reviewer_id = $2, registered_key = $3, \
             reasons = '', note = '' WHERE id = $4 AND photo_id = $5 AND status IN ('submitted', 'in_review')",
        )
        .bind(now_ms())
        .bind(reviewer.0)
        .bind(registered.key.as_str())
        .bind(id.0)
        .bind(photo.0)
        .execute(&mut *tx.tx)
        .await?;
        if done.rows_affected() == 0 {
            return Err(DbError::State);
        }
        enqueue(&mut tx, id, notice).await?;
        enqueue_event(&mut tx, event).await?;
        tx.commit().await
    }

    /// Rejects the submission of `photo` with rule-id `reasons` and a `note`, and queues the student's notice and the
    /// school's `event`, in one transaction.
    // The decision's parts, each a column or a row of this one transaction: a struct for its only caller would just
    // rename them.
    #[allow(clippy::too_many_arguments)]
    pub async fn reject(
        &self,
        id: SubmissionId,
        photo: PhotoId,
        reviewer: StaffId,
        reasons: &str,
        note: &str,
        notice: &Notice<'_>,
        event: Option<&Event<'_>>,
    ) -> Result<()> {
        let mut tx = self.begin().await?;
        let done = sqlx::query(
            "UPDATE submissions SET status = 'rejected', decided_at = $1, reviewer_id = $2, reasons = $3, note = $4 \
             WHERE id = $5 AND photo_id = $6 AND status IN ('submitted', 'in_review')",
        )
        .bind(now_ms())
        .bind(reviewer.0)
        .bind(reasons)
        .bind(note)
        .bind(id.0)
        .bind(photo.0)
        .execute(&mut *tx.tx)
        .await?;
        if done.rows_affected() == 0 {
            return Err(DbError::State);
        }
        enqueue(&mut tx, id, notice).await?;
        enqueue_event(&mut tx, event).await?;
        tx.commit().await
    }

    /// Approved (and, with `again`, already exported) submissions of a school, optionally one college's.
    pub async fn exportable(&self, school: SchoolId, college: Option<&str>, again: bool) -> Result<Vec<ExportItem>> {
        let statuses = if again { "('approved', 'exported')" } else { "('approved')" };
        let rows = sqlx::query(AssertSqlSafe(format!(
            "SELECT s.id, s.student_id, s.registered_key, st.school_id, st.student_no, st.name, st.id_kind, \
             st.id_cipher, st.college, st.degree_level FROM submissions s JOIN students st ON st.id = s.student_id \
             JOIN photo_types t ON t.id = s.photo_type_id \
             WHERE st.school_id = $1 AND s.status IN {statuses} AND t.code = 'degree' \
             AND ($2 = '' OR st.college = $2) AND s.registered_key IS NOT NULL ORDER BY st.student_no"
        )))
        .bind(school.0)
        .bind(college.unwrap_or(""))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(ExportItem {
                    submission_id: SubmissionId(r.try_get("id")?),
                    student_id: StudentId(r.try_get("student_id")?),
                    school_id: SchoolId(r.try_get("school_id")?),
                    student_no: r.try_get("student_no")?,
                    name: r.try_get("name")?,
                    id_kind: r.try_get("id_kind")?,
                    id_cipher: r.try_get("id_cipher")?,
                    college: r.try_get("college")?,
                    degree_level: r.try_get("degree_level")?,
                    registered_key: key(r.try_get("registered_key")?)?,
                })
            })
            .collect()
    }

    /// Marks exported and tells each student, and the school (`event`), once the archive has been written whole.
    pub async fn mark_exported(
        &self,
        ids: &[SubmissionId],
        notice: &Notice<'_>,
        event: Option<&Event<'_>>,
    ) -> Result<()> {
        let mut tx = self.begin().await?;
        let now = now_ms();
        for id in ids {
            let done = sqlx::query(
                "UPDATE submissions SET status = 'exported', exported_at = $1 WHERE id = $2 AND status = 'approved'",
            )
            .bind(now)
            .bind(id.0)
            .execute(&mut *tx.tx)
            .await?;
            if done.rows_affected() > 0 {
                enqueue(&mut tx, *id, notice).await?;
            }
        }
        enqueue_event(&mut tx, event).await?;
        tx.commit().await
    }
}

/// Queues `event` for its school's webhook, if the school has one: the row is written, or not, by the same
/// statement that looks, so a webhook removed meanwhile gets nothing.
async fn enqueue_event(tx: &mut Tx<'_>, event: Option<&Event<'_>>) -> Result<()> {
    let Some(event) = event else { return Ok(()) };
    sqlx::query(
        "INSERT INTO outbox (school_id, channel, kind, title, body, payload, next_attempt_at, created_at) \
         SELECT school_id, 'webhook', $1, $1, '', $2, $3, $3 FROM webhooks WHERE school_id = $4",
    )
    .bind(event.kind)
    .bind(event.payload)
    .bind(now_ms())
    .bind(event.school.0)
    .execute(&mut *tx.tx)
    .await?;
    Ok(())
}

/// Queues `notice` for the student of `submission`: always in the site's inbox, and on WeChat too when the student
/// has bound an openid.
async fn enqueue(tx: &mut Tx<'_>, submission: SubmissionId, notice: &Notice<'_>) -> Result<()> {
    let now = now_ms();
    sqlx::query(
        "INSERT INTO outbox (student_id, channel, kind, title, body, payload, next_attempt_at, created_at) \
         SELECT student_id, 'site', $1, $2, $3, $4, $5, $5 FROM submissions WHERE id = $6",
    )
    .bind(notice.kind)
    .bind(notice.title)
    .bind(notice.body)
    .bind(notice.payload)
    .bind(now)
    .bind(submission.0)
    .execute(&mut *tx.tx)
    .await?;
    sqlx::query(
        "INSERT INTO outbox (student_id, channel, kind, title, body, payload, next_attempt_at, created_at) \
         SELECT s.student_id, 'wechat', $1, $2, $3, $4, $5, $5 FROM submissions s \
         JOIN bindings b ON b.student_id = s.student_id AND b.channel = 'wechat' WHERE s.id = $6",
    )
    .bind(notice.kind)
    .bind(notice.title)
    .bind(notice.body)
    .bind(notice.payload)
    .bind(now)
    .bind(submission.0)
    .execute(&mut *tx.tx)
    .await?;
    Ok(())
}

/// Moves the student's submissions that waited for the fee into the review queue (in the order they were
/// submitted: submitted_at is kept) and queues `notice` for each.
async fn release_unpaid(tx: &mut Tx<'_>, student: StudentId, notice: &Notice<'_>) -> Result<()> {
    let released = sqlx::query(
        "UPDATE submissions SET status = 'submitted' WHERE student_id = $1 AND status = 'unpaid' RETURNING id",
    )
    .bind(student.0)
    .fetch_all(&mut *tx.tx)
    .await?;
    for r in &released {
        enqueue(tx, SubmissionId(r.try_get("id")?), notice).await?;
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------------------------
// Outbox and notifications
// ---------------------------------------------------------------------------------------------------------------

impl Db {
    pub async fn due_outbox(&self, limit: i64) -> Result<Vec<OutboxItem>> {
        let rows = sqlx::query(AssertSqlSafe(format!(
            "SELECT {OUTBOX_COLUMNS} FROM outbox \
             WHERE delivered_at IS NULL AND dead_at IS NULL AND next_attempt_at <= $1 ORDER BY id LIMIT $2"
        )))
        .bind(now_ms())
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(outbox_row).collect()
    }

    /// Claims up to `limit` due rows for `owner` for `lease_ms`: rows another node holds are skipped (PostgreSQL's
    /// `FOR UPDATE SKIP LOCKED`, SQLite's single writer), and a lease left by a node that died expires. Delivery
    /// is then at least once per lease, so channels stay idempotent per row.
    pub async fn claim_outbox(&self, owner: &str, limit: i64, lease_ms: i64) -> Result<Vec<OutboxItem>> {
        let now = now_ms();
        let lock = match self.backend {
            Backend::Postgres => " FOR UPDATE SKIP LOCKED",
            Backend::Sqlite => "",
        };
        let sql = format!(
            "UPDATE outbox SET lease_until = $1, lease_owner = $2 WHERE id IN (SELECT id FROM outbox \
             WHERE delivered_at IS NULL AND dead_at IS NULL AND next_attempt_at <= $3 AND lease_until <= $3 \
             ORDER BY id LIMIT $4{lock}) RETURNING {OUTBOX_COLUMNS}"
        );
        let mut tx = self.begin().await?;
        let rows = sqlx::query(AssertSqlSafe(sql))
            .bind(now + lease_ms)
            .bind(owner)
            .bind(now)
            .bind(limit)
            .fetch_all(&mut *tx.tx)
            .await?;
        tx.commit().await?;
        let mut items = rows.iter().map(outbox_row).collect::<Result<Vec<_>>>()?;
        // RETURNING gives no order; delivery goes oldest first.
        items.sort_by_key(|i| i.id);
        Ok(items)
    }

    /// Releases every claim `owner` holds (outbox rows, checks, periodic jobs): called by a node as it starts, since
    /// whatever a node of its name had claimed was left by a process that is no longer running. Returns how many.
    pub async fn release_claims(&self, owner: &str) -> Result<u64> {
        let mut tx = self.begin().await?;
        let mut n = 0;
        for sql in [
            "UPDATE outbox SET lease_until = 0, lease_owner = NULL WHERE lease_owner = $1 AND delivered_at IS NULL",
            "UPDATE photos SET check_lease_until = 0, check_owner = NULL WHERE check_owner = $1 AND checked_at IS NULL",
            "UPDATE job_leases SET lease_until = 0 WHERE owner = $1",
        ] {
            n += sqlx::query(sql).bind(owner).execute(&mut *tx.tx).await?.rows_affected();
        }
        tx.commit().await?;
        Ok(n)
    }

    /// Counts one attempt under `key` in a window of `window_ms` and returns the attempts in the current window:
    /// one statement, so concurrent attempts on any node each count.
    pub async fn count_attempt(&self, key: &[u8], window_ms: i64) -> Result<i64> {
        Ok(self.count_use(key, window_ms).await?.count)
    }

    /// [`Db::count_attempt`] with the start of the current window, for telling a client when to come back.
    pub async fn count_use(&self, key: &[u8], window_ms: i64) -> Result<Window> {
        let now = now_ms();
        let r = sqlx::query(
            "INSERT INTO rate_windows (key, window_start, count) VALUES ($1, $2, 1) ON CONFLICT (key) DO UPDATE SET \
             count = CASE WHEN rate_windows.window_start <= $3 THEN 1 ELSE rate_windows.count + 1 END, \
             window_start = CASE WHEN rate_windows.window_start <= $3 THEN $2 ELSE rate_windows.window_start END \
             RETURNING count, window_start",
        )
        .bind(key.to_vec())
        .bind(now)
        .bind(now - window_ms)
        .fetch_one(&self.pool)
        .await?;
        Ok(Window { count: r.try_get("count")?, started_at: r.try_get("window_start")? })
    }

    /// Claims the periodic job `name` for `owner` until `lease_ms` from now, if no other node holds it: true when
    /// this node should run it now.
    pub async fn claim_job(&self, name: &str, owner: &str, lease_ms: i64) -> Result<bool> {
        let now = now_ms();
        let done = sqlx::query(
            "INSERT INTO job_leases (name, owner, lease_until) VALUES ($1, $2, $3) ON CONFLICT (name) DO UPDATE \
             SET owner = $2, lease_until = $3 WHERE job_leases.lease_until <= $4",
        )
        .bind(name)
        .bind(owner)
        .bind(now + lease_ms)
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Forgets attempt windows older than `older_than_ms`.
    pub async fn purge_attempts(&self, older_than_ms: i64) -> Result<u64> {
        Ok(sqlx::query("DELETE FROM rate_windows WHERE window_start < $1")
            .bind(now_ms() - older_than_ms)
            .execute(&self.pool)
            .await?
            .rows_affected())
    }

    pub async fn outbox_item(&self, id: OutboxId) -> Result<OutboxItem> {
        let r = sqlx::query(AssertSqlSafe(format!("SELECT {OUTBOX_COLUMNS} FROM outbox WHERE id = $1")))
            .bind(id.0)
            .fetch_optional(&self.pool)
            .await?;
        outbox_row(&r.ok_or(DbError::NotFound)?)
    }

    /// A student's undelivered rows on every channel (dead letters included), oldest first.
    pub async fn outbox_of_student(&self, student: StudentId) -> Result<Vec<OutboxItem>> {
        let rows = sqlx::query(AssertSqlSafe(format!(
            "SELECT {OUTBOX_COLUMNS} FROM outbox WHERE student_id = $1 AND delivered_at IS NULL ORDER BY id"
        )))
        .bind(student.0)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(outbox_row).collect()
    }

    pub async fn outbox_delivered(&self, id: OutboxId) -> Result<()> {
        sqlx::query("UPDATE outbox SET delivered_at = $1, attempts = attempts + 1, lease_until = 0 WHERE id = $2")
            .bind(now_ms())
            .bind(id.0)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// A failed delivery: tried again at `retry_at`, or with `None` given up (a dead letter, kept for an admin to
    /// see and resend).
    pub async fn outbox_failed(&self, id: OutboxId, error: &str, retry_at: Option<i64>) -> Result<()> {
        match retry_at {
            Some(at) => {
                sqlx::query(
                    "UPDATE outbox SET attempts = attempts + 1, last_error = $1, next_attempt_at = $2, lease_until = 0 \
                     WHERE id = $3",
                )
                .bind(error)
                .bind(at)
                .bind(id.0)
                .execute(&self.pool)
                .await?
            }
            None => {
                sqlx::query(
                    "UPDATE outbox SET attempts = attempts + 1, last_error = $1, dead_at = $2, lease_until = 0 WHERE id = $3",
                )
                    .bind(error)
                    .bind(now_ms())
                    .bind(id.0)
                    .execute(&self.pool)
                    .await?
            }
        };
        Ok(())
    }

    /// Messages given up on, of `school`'s students and of the school itself (webhook events), newest first.
    pub async fn dead_letters(&self, school: SchoolId, limit: i64) -> Result<Vec<DeadLetter>> {
        let rows = sqlx::query(
            "SELECT o.id, o.student_id, st.student_no, o.channel, o.kind, o.title, o.attempts, o.last_error, \
             o.dead_at FROM outbox o LEFT JOIN students st ON st.id = o.student_id \
             WHERE (st.school_id = $1 OR o.school_id = $1) AND o.dead_at IS NOT NULL AND o.delivered_at IS NULL \
             ORDER BY o.dead_at DESC, o.id DESC LIMIT $2",
        )
        .bind(school.0)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(DeadLetter {
                    id: OutboxId(r.try_get("id")?),
                    student_id: r.try_get::<Option<i64>, _>("student_id")?.map(StudentId),
                    student_no: r.try_get("student_no")?,
                    channel: r.try_get("channel")?,
                    kind: r.try_get("kind")?,
                    title: r.try_get("title")?,
                    attempts: r.try_get("attempts")?,
                    last_error: r.try_get("last_error")?,
                    dead_at: r.try_get("dead_at")?,
                })
            })
            .collect()
    }

    /// Puts a dead letter of `school` back in the queue, due now with a fresh count of attempts; the last error is
    /// kept until the next attempt replaces it.
    pub async fn outbox_resend(&self, id: OutboxId, school: SchoolId) -> Result<()> {
        let done = sqlx::query(
            "UPDATE outbox SET dead_at = NULL, attempts = 0, next_attempt_at = $1, lease_until = 0 WHERE id = $2 \
             AND dead_at IS NOT NULL AND delivered_at IS NULL \
             AND (school_id = $3 OR student_id IN (SELECT id FROM students WHERE school_id = $3))",
        )
        .bind(now_ms())
        .bind(id.0)
        .bind(school.0)
        .execute(&self.pool)
        .await?;
        if done.rows_affected() > 0 {
            return Ok(());
        }
        // Not another school's row (NotFound), but one that is no dead letter (delivered, or still being tried).
        let ours = sqlx::query(
            "SELECT 1 AS one FROM outbox o LEFT JOIN students s ON s.id = o.student_id \
             WHERE o.id = $1 AND (s.school_id = $2 OR o.school_id = $2)",
        )
        .bind(id.0)
        .bind(school.0)
        .fetch_optional(&self.pool)
        .await?;
        Err(if ours.is_some() { DbError::State } else { DbError::NotFound })
    }

    /// A student's rows on every channel, delivered or not, oldest first.
    pub async fn outbox_all_of_student(&self, student: StudentId) -> Result<Vec<OutboxItem>> {
        let rows = sqlx::query(AssertSqlSafe(format!(
            "SELECT {OUTBOX_COLUMNS} FROM outbox WHERE student_id = $1 ORDER BY id"
        )))
        .bind(student.0)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(outbox_row).collect()
    }

    /// Messages still to deliver (dead letters are not: nothing will try them unless resent).
    pub async fn outbox_pending(&self) -> Result<i64> {
        Ok(sqlx::query("SELECT COUNT(*) AS n FROM outbox WHERE delivered_at IS NULL AND dead_at IS NULL")
            .fetch_one(&self.pool)
            .await?
            .try_get("n")?)
    }

    /// The in-site channel: a notification row, once per outbox item however often delivery is retried.
    pub async fn notify_in_site(&self, item: &OutboxItem) -> Result<()> {
        let Some(student) = item.student_id else { return Err(DbError::State) };
        sqlx::query(
            "INSERT INTO notifications (student_id, outbox_id, title, body, created_at) VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (outbox_id) DO NOTHING",
        )
        .bind(student.0)
        .bind(item.id.0)
        .bind(&item.title)
        .bind(&item.body)
        .bind(now_ms())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn notifications(&self, student: StudentId, limit: i64) -> Result<Vec<Notification>> {
        let rows = sqlx::query(
            "SELECT title, body, created_at FROM notifications WHERE student_id = $1 ORDER BY id DESC LIMIT $2",
        )
        .bind(student.0)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(Notification {
                    title: r.try_get("title")?,
                    body: r.try_get("body")?,
                    created_at: r.try_get("created_at")?,
                })
            })
            .collect()
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Webhooks
// ---------------------------------------------------------------------------------------------------------------

fn webhook_row(r: &AnyRow) -> Result<Webhook> {
    Ok(Webhook {
        school_id: SchoolId(r.try_get("school_id")?),
        url: r.try_get("url")?,
        secret_cipher: r.try_get("secret_cipher")?,
        created_at: r.try_get("created_at")?,
        last_delivered_at: r.try_get("last_delivered_at")?,
        last_error: r.try_get("last_error")?,
        last_error_at: r.try_get("last_error_at")?,
    })
}

impl Db {
    /// Registers `school`'s webhook, or replaces its URL and sealed secret: a new registration, so what the last
    /// deliveries did is forgotten. Events queued before are delivered to the URL and with the secret of the time
    /// they are sent.
    pub async fn set_webhook(&self, school: SchoolId, url: &str, secret_cipher: &[u8]) -> Result<()> {
        sqlx::query(
            "INSERT INTO webhooks (school_id, url, secret_cipher, created_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (school_id) DO UPDATE SET url = $2, secret_cipher = $3, created_at = $4, \
             last_delivered_at = NULL, last_error = NULL, last_error_at = NULL",
        )
        .bind(school.0)
        .bind(url)
        .bind(secret_cipher.to_vec())
        .bind(now_ms())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn webhook(&self, school: SchoolId) -> Result<Option<Webhook>> {
        let r = sqlx::query("SELECT * FROM webhooks WHERE school_id = $1")
            .bind(school.0)
            .fetch_optional(&self.pool)
            .await?;
        r.as_ref().map(webhook_row).transpose()
    }

    /// Removes `school`'s webhook; events still queued for it are then dropped when their turn comes. Returns
    /// whether there was one.
    pub async fn delete_webhook(&self, school: SchoolId) -> Result<bool> {
        let done = sqlx::query("DELETE FROM webhooks WHERE school_id = $1").bind(school.0).execute(&self.pool).await?;
        Ok(done.rows_affected() > 0)
    }

    /// Notes a delivery the receiver accepted.
    pub async fn webhook_delivered(&self, school: SchoolId) -> Result<()> {
        sqlx::query("UPDATE webhooks SET last_delivered_at = $1 WHERE school_id = $2")
            .bind(now_ms())
            .bind(school.0)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Notes a failed delivery (the outbox row keeps its own error for the retry or the dead letter).
    pub async fn webhook_failed(&self, school: SchoolId, error: &str) -> Result<()> {
        sqlx::query("UPDATE webhooks SET last_error = $1, last_error_at = $2 WHERE school_id = $3")
            .bind(error)
            .bind(now_ms())
            .bind(school.0)
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Progress and audit
// ---------------------------------------------------------------------------------------------------------------

impl Db {
    pub async fn progress(&self, school: SchoolId) -> Result<Progress> {
        let mut p = Progress {
            students: sqlx::query("SELECT COUNT(*) AS n FROM students WHERE school_id = $1")
                .bind(school.0)
                .fetch_one(&self.pool)
                .await?
                .try_get("n")?,
            ..Progress::default()
        };
        let rows = sqlx::query(
            "SELECT s.status, COUNT(*) AS n FROM submissions s JOIN students st ON st.id = s.student_id \
             JOIN photo_types t ON t.id = s.photo_type_id WHERE st.school_id = $1 AND t.code = 'degree' \
             GROUP BY s.status",
        )
        .bind(school.0)
        .fetch_all(&self.pool)
        .await?;
        let mut submitted = 0;
        for status in Status::ALL {
            let n = rows
                .iter()
                .find(|r| r.try_get::<String, _>("status").is_ok_and(|s| s == status.as_str()))
                .map_or(Ok(0), |r| r.try_get::<i64, _>("n"))?;
            submitted += n;
            p.by_status.push((status.as_str().to_string(), n));
        }
        p.not_submitted = p.students - submitted;
        let rows = sqlx::query(
            "SELECT COALESCE(st.college, '') AS college, COUNT(*) AS n, \
             COUNT(CASE WHEN s.status IN ('approved', 'exported') THEN 1 END) AS approved, \
             COUNT(s.id) AS submitted \
             FROM students st LEFT JOIN submissions s ON s.student_id = st.id AND s.photo_type_id IN \
             (SELECT id FROM photo_types WHERE school_id = $1 AND code = 'degree') \
             WHERE st.school_id = $1 GROUP BY COALESCE(st.college, '') ORDER BY college",
        )
        .bind(school.0)
        .fetch_all(&self.pool)
        .await?;
        for r in &rows {
            p.by_college.push(CollegeProgress {
                college: r.try_get("college")?,
                students: r.try_get("n")?,
                approved: r.try_get("approved")?,
                submitted: r.try_get("submitted")?,
            });
        }
        // Failing rules of the latest photo of each student (submitted or not): what students struggle with.
        let rows = sqlx::query(
            "SELECT p.failing FROM photos p JOIN students st ON st.id = p.student_id WHERE st.school_id = $1 \
             AND p.failing <> '' AND p.id IN (SELECT MAX(id) FROM photos GROUP BY student_id, photo_type_id)",
        )
        .bind(school.0)
        .fetch_all(&self.pool)
        .await?;
        let mut by_rule: HashMap<String, i64> = HashMap::new();
        for r in &rows {
            let failing: String = r.try_get("failing")?;
            for id in failing.split(',').filter(|s| !s.is_empty()) {
                *by_rule.entry(id.to_string()).or_default() += 1;
            }
        }
        let mut by_rule: Vec<_> = by_rule.into_iter().collect();
        by_rule.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        p.by_rule = by_rule;
        Ok(p)
    }

    /// Writes one audit entry. `detail` must hold no personal data (ids and counts, not names or numbers).
    pub async fn audit(&self, actor: &str, action: &str, school: Option<SchoolId>, detail: &str) -> Result<()> {
        sqlx::query("INSERT INTO audit (at, actor, action, school_id, detail) VALUES ($1, $2, $3, $4, $5)")
            .bind(now_ms())
            .bind(actor)
            .bind(action)
            .bind(school.map(|s| s.0))
            .bind(detail)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub async fn audit_log(&self, school: Option<SchoolId>, limit: i64) -> Result<Vec<AuditEntry>> {
        let rows = match school {
            Some(s) => {
                sqlx::query("SELECT * FROM audit WHERE school_id = $1 ORDER BY id DESC LIMIT $2")
                    .bind(s.0)
                    .bind(limit)
                    .fetch_all(&self.pool)
                    .await?
            }
            None => {
                sqlx::query("SELECT * FROM audit ORDER BY id DESC LIMIT $1").bind(limit).fetch_all(&self.pool).await?
            }
        };
        rows.iter()
            .map(|r| {
                Ok(AuditEntry {
                    at: r.try_get("at")?,
                    actor: r.try_get("actor")?,
                    action: r.try_get("action")?,
                    school_id: r.try_get::<Option<i64>, _>("school_id")?.map(SchoolId),
                    detail: r.try_get("detail")?,
                })
            })
            .collect()
    }

    /// Every key the metadata names, for recovery and consistency checks.
    /// A file's row: size and hash, to check a copy against.
    pub async fn blob_meta(&self, key: &BlobKey) -> Result<BlobMeta> {
        let r = sqlx::query("SELECT key, bytes, sha256 FROM blobs WHERE key = $1")
            .bind(key.as_str())
            .fetch_optional(&self.pool)
            .await?
            .ok_or(DbError::NotFound)?;
        Ok(BlobMeta { key: self::key(r.try_get("key")?)?, bytes: r.try_get("bytes")?, sha256: r.try_get("sha256")? })
    }

    pub async fn blob_keys(&self) -> Result<Vec<BlobKey>> {
        let rows = sqlx::query("SELECT key FROM blobs ORDER BY key").fetch_all(&self.pool).await?;
        rows.iter().map(|r| key(r.try_get("key")?)).collect()
    }

    /// Keys that rows of photos and submissions name but the blobs table lacks (should be none).
    pub async fn dangling_references(&self) -> Result<i64> {
        Ok(sqlx::query(
            "SELECT (SELECT COUNT(*) FROM photos WHERE original_key NOT IN (SELECT key FROM blobs)) + \
             (SELECT COUNT(*) FROM photos WHERE annotated_key IS NOT NULL AND annotated_key NOT IN (SELECT key FROM blobs)) + \
             (SELECT COUNT(*) FROM submissions WHERE registered_key IS NOT NULL AND registered_key NOT IN (SELECT key FROM blobs)) AS n",
        )
        .fetch_one(&self.pool)
        .await?
        .try_get("n")?)
    }
}

// ---------------------------------------------------------------------------------------------------------------
// WeChat: openid bindings, OAuth states, the server token
// ---------------------------------------------------------------------------------------------------------------

impl Db {
    /// Binds the openid (found by its keyed hash, kept sealed for sending) to `student`: one openid per student and
    /// one student per openid. The unique indexes decide two binds at once, not a read before the insert.
    pub async fn bind_wechat(
        &self,
        student: StudentId,
        openid_hash: &[u8],
        openid_cipher: &[u8],
    ) -> Result<BindOutcome> {
        // The holder of the openid can unbind between the failed insert and the look-up: then try again.
        for _ in 0..3 {
            let inserted = sqlx::query(
                "INSERT INTO bindings (student_id, channel, subject_hash, subject_cipher, bound_at) \
                 VALUES ($1, 'wechat', $2, $3, $4) ON CONFLICT (student_id, channel) DO NOTHING",
            )
            .bind(student.0)
            .bind(openid_hash.to_vec())
            .bind(openid_cipher.to_vec())
            .bind(now_ms())
            .execute(&self.pool)
            .await;
            match inserted {
                Ok(done) if done.rows_affected() > 0 => return Ok(BindOutcome::Bound),
                Ok(_) => {
                    let bound =
                        sqlx::query("SELECT subject_hash FROM bindings WHERE student_id = $1 AND channel = 'wechat'")
                            .bind(student.0)
                            .fetch_optional(&self.pool)
                            .await?;
                    match bound {
                        Some(r) if r.try_get::<Vec<u8>, _>("subject_hash")? == openid_hash => {
                            return Ok(BindOutcome::Bound);
                        }
                        Some(_) => return Ok(BindOutcome::StudentBoundElsewhere),
                        // Unbound meanwhile.
                        None => continue,
                    }
                }
                Err(e) if is_unique_violation(&e) => {
                    let holder =
                        sqlx::query("SELECT student_id FROM bindings WHERE channel = 'wechat' AND subject_hash = $1")
                            .bind(openid_hash.to_vec())
                            .fetch_optional(&self.pool)
                            .await?;
                    match holder {
                        Some(r) => {
                            let holder = StudentId(r.try_get("student_id")?);
                            return Ok(if holder == student {
                                BindOutcome::Bound
                            } else {
                                BindOutcome::OpenidBoundElsewhere(holder)
                            });
                        }
                        None => continue,
                    }
                }
                Err(e) => return Err(e.into()),
            }
        }
        Err(DbError::Conflict)
    }

    pub async fn student_by_openid(&self, openid_hash: &[u8]) -> Result<Option<Student>> {
        let r = sqlx::query(
            "SELECT st.* FROM students st JOIN bindings b ON b.student_id = st.id \
             WHERE b.channel = 'wechat' AND b.subject_hash = $1",
        )
        .bind(openid_hash.to_vec())
        .fetch_optional(&self.pool)
        .await?;
        r.as_ref().map(student_row).transpose()
    }

    /// A page of the values of `kind` after row `after`, for re-sealing under a new key.
    pub async fn sealed_values(&self, kind: SealedKind, after: i64, limit: i64) -> Result<Vec<SealedValue>> {
        let sql = match kind {
            SealedKind::IdNumber => {
                "SELECT id, school_id, id_kind, id_cipher AS cipher FROM students WHERE id > $1 ORDER BY id LIMIT $2"
            }
            SealedKind::Openid => {
                "SELECT id, subject_cipher AS cipher FROM bindings WHERE channel = 'wechat' \
                 AND subject_cipher IS NOT NULL AND id > $1 ORDER BY id LIMIT $2"
            }
            SealedKind::WebhookSecret => {
                "SELECT school_id AS id, school_id, secret_cipher AS cipher FROM webhooks WHERE school_id > $1 \
                 ORDER BY school_id LIMIT $2"
            }
        };
        let rows = sqlx::query(sql).bind(after).bind(limit).fetch_all(&self.pool).await?;
        rows.iter()
            .map(|r| {
                let id_number = kind == SealedKind::IdNumber;
                Ok(SealedValue {
                    row: r.try_get("id")?,
                    school_id: match kind {
                        SealedKind::IdNumber | SealedKind::WebhookSecret => Some(SchoolId(r.try_get("school_id")?)),
                        SealedKind::Openid => None,
                    },
                    kind: if id_number { r.try_get("id_kind")? } else { String::new() },
                    cipher: r.try_get("cipher")?,
                })
            })
            .collect()
    }

    /// Replaces a sealed value if it is still `old` (a roster import or a new binding meanwhile wins). Returns
    /// whether it was replaced.
    pub async fn reseal(&self, kind: SealedKind, row: i64, old: &[u8], new: &[u8]) -> Result<bool> {
        let sql = match kind {
            SealedKind::IdNumber => "UPDATE students SET id_cipher = $1 WHERE id = $2 AND id_cipher = $3",
            SealedKind::Openid => "UPDATE bindings SET subject_cipher = $1 WHERE id = $2 AND subject_cipher = $3",
            SealedKind::WebhookSecret => {
                "UPDATE webhooks SET secret_cipher = $1 WHERE school_id = $2 AND secret_cipher = $3"
            }
        };
        let r = sqlx::query(sql).bind(new.to_vec()).bind(row).bind(old.to_vec()).execute(&self.pool).await?;
        Ok(r.rows_affected() == 1)
    }

    /// The sealed openid the student is bound to, for sending them messages.
    pub async fn wechat_openid_cipher(&self, student: StudentId) -> Result<Option<Vec<u8>>> {
        let r = sqlx::query("SELECT subject_cipher FROM bindings WHERE student_id = $1 AND channel = 'wechat'")
            .bind(student.0)
            .fetch_optional(&self.pool)
            .await?;
        Ok(r.map(|r| r.try_get::<Option<Vec<u8>>, _>("subject_cipher")).transpose()?.flatten())
    }

    pub async fn bindings_of(&self, student: StudentId) -> Result<Vec<Binding>> {
        let rows = sqlx::query("SELECT channel, bound_at FROM bindings WHERE student_id = $1 ORDER BY channel")
            .bind(student.0)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(|r| Ok(Binding { channel: r.try_get("channel")?, bound_at: r.try_get("bound_at")? })).collect()
    }

    /// Records an OAuth `state` (hashed) issued to the browser holding `pre_hash`'s pre-image.
    pub async fn create_oauth_state(
        &self,
        state_hash: &[u8],
        pre_hash: &[u8],
        school_code: Option<&str>,
        attempt: i64,
        expires_at: i64,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO oauth_states (state_hash, pre_hash, school_code, attempt, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(state_hash.to_vec())
        .bind(pre_hash.to_vec())
        .bind(school_code.map(str::to_string))
        .bind(attempt)
        .bind(now_ms())
        .bind(expires_at)
        .execute(&self.pool)
        .await
        .map_err(|e| if is_unique_violation(&e) { DbError::Conflict } else { e.into() })?;
        Ok(())
    }

    /// Uses up a state: one conditional update, so of two callbacks with the same state only one gets it. A used,
    /// expired or unknown state, or one presented by another browser, gives `None`.
    pub async fn take_oauth_state(&self, state_hash: &[u8], pre_hash: &[u8]) -> Result<Option<OauthState>> {
        let now = now_ms();
        let done = sqlx::query(
            "UPDATE oauth_states SET used_at = $1 WHERE state_hash = $2 AND pre_hash = $3 AND used_at IS NULL \
             AND expires_at > $1",
        )
        .bind(now)
        .bind(state_hash.to_vec())
        .bind(pre_hash.to_vec())
        .execute(&self.pool)
        .await?;
        if done.rows_affected() == 0 {
            return Ok(None);
        }
        let r = sqlx::query("SELECT school_code, attempt FROM oauth_states WHERE state_hash = $1")
            .bind(state_hash.to_vec())
            .fetch_optional(&self.pool)
            .await?;
        r.map(|r| Ok(OauthState { school_code: r.try_get("school_code")?, attempt: r.try_get("attempt")? })).transpose()
    }

    /// Removes states expired more than a day ago (kept that long to tell a replay from a stranger).
    pub async fn purge_oauth_states(&self) -> Result<u64> {
        Ok(sqlx::query("DELETE FROM oauth_states WHERE expires_at < $1")
            .bind(now_ms() - 86_400_000)
            .execute(&self.pool)
            .await?
            .rows_affected())
    }

    pub async fn wechat_token(&self, appid: &str) -> Result<Option<WechatToken>> {
        let r =
            sqlx::query("SELECT * FROM wechat_tokens WHERE appid = $1").bind(appid).fetch_optional(&self.pool).await?;
        r.map(|r| {
            Ok(WechatToken {
                access_token: r.try_get("access_token")?,
                expires_at: r.try_get("expires_at")?,
                fetched_at: r.try_get("fetched_at")?,
                force_day: r.try_get("force_day")?,
                force_count: r.try_get("force_count")?,
                last_force_at: r.try_get("last_force_at")?,
            })
        })
        .transpose()
    }

    /// Stores a freshly fetched token; the forced-refresh counters stay, as WeChat's daily cap does.
    pub async fn save_wechat_token(&self, appid: &str, token: &str, expires_at: i64) -> Result<()> {
        sqlx::query(
            "INSERT INTO wechat_tokens (appid, access_token, expires_at, fetched_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (appid) DO UPDATE SET access_token = excluded.access_token, \
             expires_at = excluded.expires_at, fetched_at = excluded.fetched_at",
        )
        .bind(appid)
        .bind(token)
        .bind(expires_at)
        .bind(now_ms())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Whether this caller may refresh the token before it expires, after WeChat refused `failed_token`. One
    /// conditional update, so of the nodes that saw the same token fail only one refreshes; none does if the
    /// token changed meanwhile (another node refreshed), if the last forced refresh was under `min_gap_ms` ago, or
    /// if `max_per_day` were used on `day`.
    pub async fn claim_force_refresh(
        &self,
        appid: &str,
        failed_token: &str,
        now: i64,
        day: i64,
        max_per_day: i64,
        min_gap_ms: i64,
    ) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE wechat_tokens SET force_count = CASE WHEN force_day = $1 THEN force_count + 1 ELSE 1 END, \
             force_day = $1, last_force_at = $2 \
             WHERE appid = $3 AND access_token = $4 AND last_force_at <= $5 \
             AND (force_day <> $1 OR force_count < $6)",
        )
        .bind(day)
        .bind(now)
        .bind(appid)
        .bind(failed_token)
        .bind(now.saturating_sub(min_gap_ms))
        .bind(max_per_day)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() > 0)
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Payments
// ---------------------------------------------------------------------------------------------------------------

impl Db {
    /// A new WeChat Pay order, not yet paid; `out_trade_no` is ours and unique.
    pub async fn create_order(
        &self,
        student: StudentId,
        amount_cents: i64,
        provider: &str,
        out_trade_no: &str,
    ) -> Result<PaymentId> {
        let now = now_ms();
        let r = sqlx::query(
            "INSERT INTO payments (student_id, amount_cents, provider, status, reference, out_trade_no, created_at, \
             updated_at) VALUES ($1, $2, $3, 'created', $4, $4, $5, $5) RETURNING id",
        )
        .bind(student.0)
        .bind(amount_cents)
        .bind(provider)
        .bind(out_trade_no)
        .bind(now)
        .fetch_one(&self.pool)
        .await
        .map_err(|e| if is_unique_violation(&e) { DbError::Conflict } else { e.into() })?;
        Ok(PaymentId(r.try_get("id")?))
    }

    pub async fn set_prepay(&self, out_trade_no: &str, prepay_id: &str, expires_at: i64) -> Result<()> {
        let done = sqlx::query(
            "UPDATE payments SET prepay_id = $1, prepay_expires_at = $2, updated_at = $3 WHERE out_trade_no = $4",
        )
        .bind(prepay_id)
        .bind(expires_at)
        .bind(now_ms())
        .bind(out_trade_no)
        .execute(&self.pool)
        .await?;
        if done.rows_affected() == 0 { Err(DbError::NotFound) } else { Ok(()) }
    }

    /// An unpaid order of this amount whose prepay can still be used: paying twice for one fee starts here.
    pub async fn open_order(&self, student: StudentId, amount_cents: i64, now: i64) -> Result<Option<Payment>> {
        let r = sqlx::query(AssertSqlSafe(format!(
            "SELECT {PAYMENT_COLUMNS} FROM payments p WHERE p.student_id = $1 AND p.amount_cents = $2 \
             AND p.status = 'created' AND p.out_trade_no IS NOT NULL AND p.prepay_id IS NOT NULL \
             AND p.prepay_expires_at > $3 ORDER BY p.id DESC LIMIT 1"
        )))
        .bind(student.0)
        .bind(amount_cents)
        .bind(now)
        .fetch_optional(&self.pool)
        .await?;
        r.as_ref().map(payment_row).transpose()
    }

    pub async fn payment_by_trade_no(&self, out_trade_no: &str) -> Result<Option<Payment>> {
        let r =
            sqlx::query(AssertSqlSafe(format!("SELECT {PAYMENT_COLUMNS} FROM payments p WHERE p.out_trade_no = $1")))
                .bind(out_trade_no)
                .fetch_optional(&self.pool)
                .await?;
        r.as_ref().map(payment_row).transpose()
    }

    pub async fn payment(&self, id: PaymentId) -> Result<Payment> {
        let r = sqlx::query(AssertSqlSafe(format!("SELECT {PAYMENT_COLUMNS} FROM payments p WHERE p.id = $1")))
            .bind(id.0)
            .fetch_optional(&self.pool)
            .await?;
        payment_row(&r.ok_or(DbError::NotFound)?)
    }

    /// Newest first.
    pub async fn payments_of_student(&self, student: StudentId) -> Result<Vec<Payment>> {
        let rows = sqlx::query(AssertSqlSafe(format!(
            "SELECT {PAYMENT_COLUMNS} FROM payments p WHERE p.student_id = $1 ORDER BY p.id DESC"
        )))
        .bind(student.0)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(payment_row).collect()
    }

    /// Newest first.
    pub async fn payments_of_school(&self, school: SchoolId, limit: i64) -> Result<Vec<Payment>> {
        let rows = sqlx::query(AssertSqlSafe(format!(
            "SELECT {PAYMENT_COLUMNS} FROM payments p JOIN students st ON st.id = p.student_id \
             WHERE st.school_id = $1 ORDER BY p.id DESC LIMIT $2"
        )))
        .bind(school.0)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(payment_row).collect()
    }

    /// Marks an order paid as WeChat Pay reports it, with everything that follows (the student paid, the
    /// submissions that waited released, each with `notice`), in one transaction. Notifications are resent and a
    /// query may confirm the same order: the status condition lets exactly one call do the work.
    pub async fn confirm_payment(
        &self,
        out_trade_no: &str,
        transaction_id: &str,
        amount_total: i64,
        notice: &Notice<'_>,
    ) -> Result<Confirm> {
        let mut tx = self.begin().await?;
        let order = sqlx::query("SELECT id, student_id, amount_cents FROM payments WHERE out_trade_no = $1")
            .bind(out_trade_no)
            .fetch_optional(&mut *tx.tx)
            .await?;
        let Some(order) = order else { return Ok(Confirm::UnknownOrder) };
        let (id, student): (i64, StudentId) = (order.try_get("id")?, StudentId(order.try_get("student_id")?));
        if order.try_get::<i64, _>("amount_cents")? != amount_total {
            return Ok(Confirm::WrongAmount);
        }
        let now = now_ms();
        // 'closed' too: an order closed as expired can still have been paid at the last moment, and WeChat's word
        // that it was paid wins.
        let done = sqlx::query(
            "UPDATE payments SET status = 'paid', paid_at = $1, transaction_id = $2, updated_at = $1 \
             WHERE id = $3 AND status IN ('created', 'closed')",
        )
        .bind(now)
        .bind(transaction_id)
        .bind(id)
        .execute(&mut *tx.tx)
        .await?;
        if done.rows_affected() == 0 {
            return Ok(Confirm::AlreadyDone);
        }
        sqlx::query("UPDATE students SET paid = 1, updated_at = $1 WHERE id = $2")
            .bind(now)
            .bind(student.0)
            .execute(&mut *tx.tx)
            .await?;
        release_unpaid(&mut tx, student, notice).await?;
        tx.commit().await?;
        Ok(Confirm::Paid(student))
    }

    /// Records a WeChat Pay notification id; `false` when it was seen before (a resend, to acknowledge only).
    pub async fn record_payment_event(
        &self,
        event_id: &str,
        out_trade_no: Option<&str>,
        event_type: &str,
        outcome: &str,
    ) -> Result<bool> {
        let done = sqlx::query(
            "INSERT INTO payment_events (event_id, out_trade_no, event_type, outcome, received_at) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (event_id) DO NOTHING",
        )
        .bind(event_id)
        .bind(out_trade_no.map(str::to_string))
        .bind(event_type)
        .bind(outcome)
        .bind(now_ms())
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() > 0)
    }

    /// Unpaid WeChat Pay orders created in (`created_after`, `created_before`), oldest first, to ask WeChat about
    /// (a notification can be lost).
    pub async fn unpaid_orders(&self, created_before: i64, created_after: i64, limit: i64) -> Result<Vec<Payment>> {
        let rows = sqlx::query(AssertSqlSafe(format!(
            "SELECT {PAYMENT_COLUMNS} FROM payments p WHERE p.status = 'created' AND p.out_trade_no IS NOT NULL \
             AND p.created_at < $1 AND p.created_at > $2 ORDER BY p.id LIMIT $3"
        )))
        .bind(created_before)
        .bind(created_after)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(payment_row).collect()
    }

    /// Closes an unpaid order; one paid meanwhile is left as it is.
    pub async fn close_order(&self, out_trade_no: &str) -> Result<()> {
        sqlx::query(
            "UPDATE payments SET status = 'closed', updated_at = $1 WHERE out_trade_no = $2 AND status = 'created'",
        )
        .bind(now_ms())
        .bind(out_trade_no)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Starts refunding a paid payment under our `refund_no`; anything but a paid payment is `DbError::State`.
    pub async fn start_refund(&self, id: PaymentId, refund_no: &str) -> Result<()> {
        let done = sqlx::query(
            "UPDATE payments SET status = 'refunding', refund_no = $1, updated_at = $2 WHERE id = $3 AND status = 'paid'",
        )
        .bind(refund_no)
        .bind(now_ms())
        .bind(id.0)
        .execute(&self.pool)
        .await
        .map_err(|e| if is_unique_violation(&e) { DbError::Conflict } else { DbError::from(e) })?;
        if done.rows_affected() == 0 { Err(DbError::State) } else { Ok(()) }
    }

    /// Completes a refund WeChat Pay reports done: the student owes the fee again unless another payment of theirs
    /// stands. Returns whether this call changed anything (a second report changes nothing).
    pub async fn finish_refund(&self, refund_no: &str) -> Result<bool> {
        let mut tx = self.begin().await?;
        let now = now_ms();
        let refunded = sqlx::query(
            "UPDATE payments SET status = 'refunded', refunded_at = $1, updated_at = $1 \
             WHERE refund_no = $2 AND status = 'refunding' RETURNING student_id",
        )
        .bind(now)
        .bind(refund_no)
        .fetch_optional(&mut *tx.tx)
        .await?;
        let Some(r) = refunded else { return Ok(false) };
        let student: i64 = r.try_get("student_id")?;
        sqlx::query(
            "UPDATE students SET paid = 0, updated_at = $1 WHERE id = $2 \
             AND NOT EXISTS (SELECT 1 FROM payments WHERE student_id = $2 AND status = 'paid')",
        )
        .bind(now)
        .bind(student)
        .execute(&mut *tx.tx)
        .await?;
        tx.commit().await?;
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn api_tokens_are_found_by_hash_listed_without_it_and_revoked_once() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::connect(&format!("sqlite:{}", dir.path().join("t.db").display())).await.unwrap();
        let region = db.upsert_region("北京市", "北京市").await.unwrap();
        let new = |code: &str| NewSchool {
            region_id: region,
            code: code.into(),
            name: code.into(),
            fee_cents: 0,
            opens_at: None,
            closes_at: None,
            backgrounds: "light_blue".into(),
        };
        let (a, b) = (db.create_school(&new("a")).await.unwrap(), db.create_school(&new("b")).await.unwrap());
        let admin = db.create_staff("admin", Role::SchoolAdmin, Some(a), "x").await.unwrap();
        let id = db.create_api_token(a, "registrar", "roster,export", b"hash-1", admin).await.unwrap();
        assert!(matches!(db.create_api_token(a, "again", "roster", b"hash-1", admin).await, Err(DbError::Conflict)));

        let t = db.api_token_by_hash(b"hash-1").await.unwrap().unwrap();
        assert_eq!((t.id, t.school_id, t.scopes.as_str(), t.created_by), (id, a, "roster,export", admin));
        assert_eq!((t.revoked_at, t.last_used_at), (None, None));
        assert!(db.api_token_by_hash(b"hash-2").await.unwrap().is_none());
        db.api_token_used(id).await.unwrap();
        assert!(db.api_tokens(a).await.unwrap()[0].last_used_at.is_some());
        assert!(db.api_tokens(b).await.unwrap().is_empty());

        assert!(matches!(db.revoke_api_token(id, b).await, Err(DbError::NotFound)), "another school's token");
        let first = db.revoke_api_token(id, a).await.unwrap().revoked_at.unwrap();
        let again = db.revoke_api_token(id, a).await.unwrap().revoked_at.unwrap();
        assert_eq!(first, again, "revoking again keeps the first time");
        assert_eq!(db.api_token_by_hash(b"hash-1").await.unwrap().unwrap().revoked_at, Some(first));

        // The rate window counts uses and says when it started.
        let w1 = db.count_use(b"k", 60_000).await.unwrap();
        let w2 = db.count_use(b"k", 60_000).await.unwrap();
        assert_eq!((w1.count, w2.count, w2.started_at), (1, 2, w1.started_at));
    }
}
