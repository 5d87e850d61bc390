//! Admins: schools (super-admin), and for a school its progress, roster import, staff, fees, device bindings,
//! the export of approved registered photos, its webhook (`crate::webhooks`), and the audit log. A school admin
//! sees only their own school.

use std::io::Write;

use axum::body::Body;
use axum::extract::{Form, Multipart, Path, Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Redirect, Response};
use gradphoto_core::{Message, Rule};
use gradphoto_store::db::{Event, NewSchool, Notice, Role, StudentUpsert};
use gradphoto_store::{SchoolId, StudentId};
use serde::Deserialize;
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::answers::{RosterImport, RosterLineError, SchoolState, SchoolSummary, Schools};
use crate::auth::{self, StaffSession};
use crate::error::{AppError, AppResult, done, wants_json};
use crate::review::staff_ctx;
use crate::state::AppState;
use crate::views::merge;

pub async fn index(State(state): State<AppState>, s: StaffSession) -> AppResult<Response> {
    match (s.staff.role, s.staff.school_id) {
        (Role::SuperAdmin, _) => {}
        (Role::SchoolAdmin, Some(own)) if !wants_json() => {
            return Ok(Redirect::to(&format!("/admin/schools/{own}")).into_response());
        }
        (Role::SchoolAdmin, Some(_)) => {}
        _ => return Err(AppError::Forbidden),
    }
    let regions = state.db.regions().await?;
    let schools: Vec<SchoolSummary> = state
        .db
        .schools(None)
        .await?
        .into_iter()
        .filter(|x| s.can_see(x.id))
        .map(|x| {
            let region = regions.iter().find(|r| r.id == x.region_id).map(|r| format!("{} {}", r.province, r.city));
            SchoolSummary { id: x.id, code: x.code, name: x.name, fee_cents: x.fee_cents, region }
        })
        .collect();
    let answer = Schools { schools };
    if wants_json() {
        return Ok(axum::Json(answer).into_response());
    }
    let data = serde_json::to_value(answer).map_err(AppError::internal)?;
    Ok(state.views.render("admin.html", merge(staff_ctx(&s), data))?.into_response())
}

#[derive(Deserialize, schemars::JsonSchema)]
pub struct NewSchoolForm {
    province: String,
    city: String,
    code: String,
    name: String,
    #[serde(default)]
    fee: String,
    #[serde(default)]
    admin_username: String,
    #[serde(default)]
    admin_password: String,
}

fn invalid(zh: &str, en: &str) -> AppError {
    AppError::BadRequest("form.invalid", Message::new(zh, en))
}

/// "12.5" yuan → 1250 cents.
fn parse_fee(text: &str) -> Option<i64> {
    let t = text.trim();
    if t.is_empty() {
        return Some(0);
    }
    let (whole, frac) = t.split_once('.').unwrap_or((t, ""));
    if frac.len() > 2 || !whole.bytes().all(|b| b.is_ascii_digit()) || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let yuan: i64 = if whole.is_empty() { 0 } else { whole.parse().ok()? };
    let cents: i64 = if frac.is_empty() { 0 } else { format!("{frac:0<2}").parse().ok()? };
    yuan.checked_mul(100)?.checked_add(cents).filter(|c| *c <= 10_000_000)
}

pub async fn create_school(
    State(state): State<AppState>,
    s: StaffSession,
    Form(f): Form<NewSchoolForm>,
) -> AppResult<Response> {
    s.require_super()?;
    let code = f.code.trim();
    if code.len() < 2 || code.len() > 32 || !code.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') {
        return Err(invalid("学校代码为 2–32 位字母、数字、- 或 _", "a school code is 2–32 letters, digits, - or _"));
    }
    if f.name.trim().is_empty() || f.province.trim().is_empty() || f.city.trim().is_empty() {
        return Err(invalid("请填写省、市和学校名称", "fill in province, city and name"));
    }
    let fee = parse_fee(&f.fee).ok_or_else(|| invalid("费用格式不正确", "the fee is not a number of yuan"))?;
    let region = state.db.upsert_region(f.province.trim(), f.city.trim()).await?;
    let new = NewSchool {
        region_id: region,
        code: code.to_string(),
        name: f.name.trim().to_string(),
        fee_cents: fee,
        opens_at: None,
        closes_at: None,
        backgrounds: "light_blue".into(),
    };
    let id = state.db.create_school(&new).await?;
    if !f.admin_username.trim().is_empty() {
        if f.admin_password.chars().count() < 8 {
            return Err(invalid("管理员密码至少 8 位", "the admin password needs 8 or more characters"));
        }
        let hash = auth::hash_password(f.admin_password).await?;
        state.db.create_staff(f.admin_username.trim(), Role::SchoolAdmin, Some(id), &hash).await?;
    }
    state.db.audit(&s.actor(), "school.create", Some(id), &format!("code:{code}")).await?;
    Ok(done(&format!("/admin/schools/{id}"), crate::answers::SchoolCreated { school: id }))
}

#[derive(Deserialize, schemars::JsonSchema)]
pub struct SchoolQuery {
    q: Option<String>,
}

fn pct(n: i64, of: i64) -> i64 {
    if of <= 0 { 0 } else { (n * 100 / of).clamp(0, 100) }
}

pub async fn school_page(
    State(state): State<AppState>,
    s: StaffSession,
    Path(id): Path<i64>,
    Query(q): Query<SchoolQuery>,
) -> AppResult<Response> {
    let id = SchoolId(id);
    s.require_admin(id)?;
    render_school(&state, &s, id, Shown { q: q.q, ..Default::default() }).await
}

/// What the school page shows besides the school: a search, an import's result, a token just made (its secret, this
/// once).
#[derive(Default)]
pub struct Shown {
    pub q: Option<String>,
    pub import: Option<RosterImport>,
    pub new_token: Option<crate::answers::NewToken>,
    /// A line of news at the top (a webhook's secret, this once).
    pub message: Option<String>,
}

pub async fn render_school(state: &AppState, s: &StaffSession, id: SchoolId, shown: Shown) -> AppResult<Response> {
    let Shown { q, import, new_token, message } = shown;
    let q = q.as_deref();
    let school = state.db.school(id).await?;
    let progress = state.db.progress(id).await?;
    let tokens: Vec<crate::answers::TokenView> =
        state.db.api_tokens(id).await?.iter().map(crate::tokens::view).collect();
    // Where events go and how the last deliveries went; the secret is never shown again (`Webhook` leaves it out).
    let webhook = state.db.webhook(id).await?;
    if wants_json() {
        let dead = state.db.dead_letters(id, 50).await?;
        let payments = state.db.payments_of_school(id, 50).await?;
        let answer = SchoolState { school, progress, import, dead_letters: dead, payments, tokens, webhook };
        return Ok(axum::Json(answer).into_response());
    }
    let total = progress.students.max(1);
    let statuses: Vec<serde_json::Value> = progress
        .by_status
        .iter()
        .map(|(st, n)| {
            let (zh, en) = crate::photos::status_text(st);
            json!({ "id": st, "zh": zh, "en": en, "n": n, "pct": pct(*n, total) })
        })
        .collect();
    let most = progress.by_rule.first().map_or(1, |r| r.1);
    let rules: Vec<serde_json::Value> = progress
        .by_rule
        .iter()
        .map(|(r, n)| {
            let zh = Rule::from_id(r).map_or("", |x| x.title().0);
            json!({ "id": r, "zh": zh, "n": n, "pct": pct(*n, most) })
        })
        .collect();
    let found = match q.map(str::trim).filter(|q| !q.is_empty()) {
        Some(no) => state.db.student_by_no(id, no).await?.into_iter().collect::<Vec<_>>(),
        None => state.db.students(id, 50, 0).await?,
    };
    let mut rows = Vec::with_capacity(found.len());
    for st in &found {
        let bound: Vec<String> = state.db.bindings_of(st.id).await?.into_iter().map(|b| b.channel).collect();
        rows.push(json!({ "id": st.id, "student_no": st.student_no, "name": st.name, "college": st.college,
            "paid": st.paid, "wechat": bound.iter().any(|c| c == "wechat"), "browser": bound.iter().any(|c| c == "browser") }));
    }
    let found = rows;
    // WeChat: messages that could not be delivered, and the WeChat Pay orders with their state.
    let dead = state.db.dead_letters(id, 50).await?;
    let mut payments = Vec::new();
    if state.wechat.as_ref().is_some_and(|w| w.pay.is_some()) {
        for p in state.db.payments_of_school(id, 50).await? {
            let no = state.db.student(p.student_id).await.map(|st| st.student_no).unwrap_or_default();
            payments
                .push(json!({ "payment": p, "student_no": no, "status": format!("{:?}", p.status).to_lowercase() }));
        }
    }
    let staff: Vec<serde_json::Value> =
        state.db.staff_of_school(id).await?.iter().map(|x| json!({ "username": x.username, "role": x.role })).collect();
    let audit = state.db.audit_log(Some(id), 50).await?;
    let types = state.db.photo_types(id).await?;
    // The window's days as the date inputs show them (the closing day is the last day open).
    let opens = school.opens_at.map(|t| crate::views::datetime(Some(t))[..10].to_string());
    let closes = school.closes_at.map(|t| crate::views::datetime(Some(t - 1))[..10].to_string());
    let data = json!({ "types": types, "opens": opens, "closes": closes, "school": school, "progress": progress, "statuses": statuses, "rules": rules,
        "not_submitted_pct": pct(progress.not_submitted, total), "found": found, "q": q, "staff": staff,
        "audit": audit, "import": import, "message": message, "dead": dead, "payments": payments,
        "tokens": tokens, "new_token": new_token, "scopes": scope_choices(),
        "wechat_pay": state.wechat.as_ref().is_some_and(|w| w.pay.is_some()), "webhook": webhook });
    Ok(state.views.render("school.html", merge(staff_ctx(s), data))?.into_response())
}

/// The scopes as the token form offers them.
fn scope_choices() -> Vec<serde_json::Value> {
    crate::tokens::Scope::ALL.iter().map(|s| json!({ "id": s.id(), "title": s.title() })).collect()
}

pub async fn import_roster(
    State(state): State<AppState>,
    s: StaffSession,
    Path(id): Path<i64>,
    headers: axum::http::HeaderMap,
    mut multipart: Multipart,
) -> AppResult<Response> {
    let id = SchoolId(id);
    s.require_admin(id)?;
    let bytes = crate::student::read_file_field(&mut multipart, &headers, "roster", state.config.max_roster).await?;
    let parsed =
        tokio::task::spawn_blocking(move || crate::roster_file::parse(&bytes)).await.map_err(AppError::internal)?;
    let roster = parsed.map_err(|e| AppError::BadRequest(e.code, e.message))?;
    let vault = state.vault.clone();
    let rows: Vec<StudentUpsert> = roster
        .rows
        .iter()
        .map(|r| {
            let kind =
                serde_json::to_value(r.id_kind).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default();
            StudentUpsert {
                student_no: r.student_no.clone(),
                name: r.name.clone(),
                id_cipher: vault.seal(&crate::public::id_context(id, &kind), r.id_number.as_str()),
                id_hash: vault.lookup_hash(r.id_number.as_str()),
                id_kind: kind,
                college: r.college.clone(),
                degree_level: r.degree_level.clone(),
            }
        })
        .collect();
    let counts = state.db.import_students(id, &rows).await?;
    let errors: Vec<RosterLineError> = roster
        .errors
        .iter()
        .map(|e| RosterLineError { line: e.line, code: e.code.to_string(), message: e.message.clone() })
        .collect();
    state
        .db
        .audit(
            &s.actor(),
            "roster.import",
            Some(id),
            &format!(
                "created:{} updated:{} unchanged:{} errors:{}",
                counts.created,
                counts.updated,
                counts.unchanged,
                errors.len()
            ),
        )
        .await?;
    let import = RosterImport {
        created: counts.created,
        updated: counts.updated,
        unchanged: counts.unchanged,
        errors,
        encoding: roster.encoding,
    };
    render_school(&state, &s, id, Shown { import: Some(import), ..Default::default() }).await
}

/// The settings form: every field optional, so an API client may send only what changes.
#[derive(Deserialize, Default, schemars::JsonSchema)]
#[serde(default)]
pub struct SettingsForm {
    name: Option<String>,
    fee: Option<String>,
    /// `YYYY-MM-DD` (Beijing time, from 00:00), or empty for no limit.
    opens: Option<String>,
    /// `YYYY-MM-DD` (Beijing time, until 24:00 of that day), or empty for no limit.
    closes: Option<String>,
    /// `light_blue`, `white`, `light_grey`, comma-separated.
    backgrounds: Option<String>,
}

/// Beijing midnight of `YYYY-MM-DD` in Unix milliseconds.
fn beijing_day(text: &str) -> Option<i64> {
    let mut parts = text.trim().splitn(3, '-');
    let (y, m, d): (i64, i64, i64) =
        (parts.next()?.parse().ok()?, parts.next()?.parse().ok()?, parts.next()?.parse().ok()?);
    if !(2000..=2100).contains(&y) || !(1..=12).contains(&m) || !(1..=31).contains(&d) {
        return None;
    }
    // Days from the civil date (H. Hinnant's algorithm), the inverse of views::datetime.
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some((days * 86_400 - 8 * 3600) * 1000)
}

pub async fn settings(
    State(state): State<AppState>,
    s: StaffSession,
    Path(id): Path<i64>,
    Form(f): Form<SettingsForm>,
) -> AppResult<Response> {
    let id = SchoolId(id);
    s.require_admin(id)?;
    let school = state.db.school(id).await?;
    let day = |v: &Option<String>, current: Option<i64>, end: bool| -> AppResult<Option<i64>> {
        match v.as_deref().map(str::trim) {
            None => Ok(current),
            Some("") => Ok(None),
            Some(t) => beijing_day(t)
                .map(|ms| Some(if end { ms + 86_400_000 } else { ms }))
                .ok_or_else(|| invalid("日期格式应为 YYYY-MM-DD", "dates are YYYY-MM-DD")),
        }
    };
    let backgrounds = match f.backgrounds.as_deref().map(str::trim) {
        None | Some("") => school.backgrounds.clone(),
        Some(list) => {
            let known = ["light_blue", "white", "light_grey"];
            if !list.split(',').all(|c| known.contains(&c.trim())) {
                return Err(invalid(
                    "背景颜色只能是 light_blue、white、light_grey",
                    "backgrounds: light_blue, white, light_grey",
                ));
            }
            list.split(',').map(str::trim).collect::<Vec<_>>().join(",")
        }
    };
    let fee = match f.fee.as_deref() {
        None => school.fee_cents,
        Some(t) => parse_fee(t).ok_or_else(|| invalid("费用格式不正确", "the fee is not a number of yuan"))?,
    };
    let update = NewSchool {
        region_id: school.region_id,
        code: school.code.clone(),
        name: f.name.map(|n| n.trim().to_string()).filter(|n| !n.is_empty()).unwrap_or(school.name.clone()),
        fee_cents: fee,
        opens_at: day(&f.opens, school.opens_at, false)?,
        closes_at: day(&f.closes, school.closes_at, true)?,
        backgrounds,
    };
    state.db.update_school(id, &update).await?;
    state.db.audit(&s.actor(), "school.settings", Some(id), "").await?;
    Ok(done(&format!("/admin/schools/{id}"), crate::answers::DONE))
}

#[derive(Deserialize, Default, schemars::JsonSchema)]
#[serde(default)]
pub struct TypeForm {
    code: String,
    name_zh: String,
    name_en: String,
}

pub async fn add_type(
    State(state): State<AppState>,
    s: StaffSession,
    Path(id): Path<i64>,
    Form(f): Form<TypeForm>,
) -> AppResult<Response> {
    let id = SchoolId(id);
    s.require_admin(id)?;
    let code = f.code.trim();
    if code.is_empty()
        || code.len() > 32
        || !code.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        || f.name_zh.trim().is_empty()
    {
        return Err(invalid("请填写照片类型代码和中文名称", "a photo type needs a code and a Chinese name"));
    }
    let t = state.db.add_photo_type(id, code, f.name_zh.trim(), f.name_en.trim()).await?;
    state.db.audit(&s.actor(), "photo_type.create", Some(id), &format!("type:{t}")).await?;
    Ok(done(&format!("/admin/schools/{id}"), crate::answers::TypeAdded { photo_type: t }))
}

#[derive(Deserialize, schemars::JsonSchema)]
pub struct StaffForm {
    username: String,
    password: String,
    role: String,
}

pub async fn add_staff(
    State(state): State<AppState>,
    s: StaffSession,
    Path(id): Path<i64>,
    Form(f): Form<StaffForm>,
) -> AppResult<Response> {
    let id = SchoolId(id);
    s.require_admin(id)?;
    let role = match Role::parse(&f.role) {
        Some(r @ (Role::Reviewer | Role::SchoolAdmin)) => r,
        _ => return Err(invalid("角色无效", "invalid role")),
    };
    if f.username.trim().is_empty() || f.password.chars().count() < 8 {
        return Err(invalid("用户名不能为空，密码至少 8 位", "a user name and a password of 8 or more characters"));
    }
    let hash = auth::hash_password(f.password).await?;
    let staff = state.db.create_staff(f.username.trim(), role, Some(id), &hash).await?;
    state.db.audit(&s.actor(), "staff.create", Some(id), &format!("staff:{staff} role:{}", role.as_str())).await?;
    Ok(done(&format!("/admin/schools/{id}"), crate::answers::StaffAdded { staff }))
}

async fn own_student(
    state: &AppState,
    s: &StaffSession,
    school: i64,
    student: i64,
) -> AppResult<(SchoolId, StudentId)> {
    let school = SchoolId(school);
    s.require_admin(school)?;
    let st = state.db.student(StudentId(student)).await?;
    if st.school_id != school {
        return Err(AppError::NotFound);
    }
    Ok((school, st.id))
}

pub async fn mark_paid(
    State(state): State<AppState>,
    s: StaffSession,
    Path((school, student)): Path<(i64, i64)>,
) -> AppResult<Response> {
    let (school, student) = own_student(&state, &s, school, student).await?;
    let fee = state.db.school(school).await?.fee_cents;
    let reference = format!("marked by staff:{}", s.staff.id);
    state.db.mark_paid(student, "offline", &reference, fee, &crate::student::SUBMITTED).await?;
    state.db.audit(&s.actor(), "payment.offline", Some(school), &format!("student:{student}")).await?;
    Ok(done(&format!("/admin/schools/{school}"), crate::answers::DONE))
}

#[derive(Deserialize, schemars::JsonSchema)]
pub struct UnbindQuery {
    /// `wechat` or `browser`; none releases every binding.
    channel: Option<String>,
}

pub async fn unbind(
    State(state): State<AppState>,
    s: StaffSession,
    Path((school, student)): Path<(i64, i64)>,
    Query(q): Query<UnbindQuery>,
) -> AppResult<Response> {
    let (school, student) = own_student(&state, &s, school, student).await?;
    let channel = match q.channel.as_deref() {
        None | Some("") => None,
        Some(c @ ("wechat" | "browser")) => Some(c),
        Some(_) => return Err(invalid("未知的绑定类型", "unknown binding channel")),
    };
    let released = state.db.unbind_device(student, channel).await?;
    state.db.delete_sessions_of("student", student.0).await?;
    let detail = format!("student:{student} channel:{} released:{released}", channel.unwrap_or("all"));
    state.db.audit(&s.actor(), "binding.release", Some(school), &detail).await?;
    Ok(done(&format!("/admin/schools/{school}"), crate::answers::DONE))
}

#[derive(Deserialize, schemars::JsonSchema)]
pub struct ExportQuery {
    college: Option<String>,
    /// Include photos exported before (a repeat delivery).
    #[serde(default)]
    again: bool,
}

/// Sends chunks of the archive to the response as they are written, and hashes them on the way (the webhook's
/// `export.created` names the archive by its SHA-256).
struct ChannelWriter {
    tx: tokio::sync::mpsc::Sender<Result<Vec<u8>, std::io::Error>>,
    buf: Vec<u8>,
    sha256: Sha256,
}

impl Write for ChannelWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.sha256.update(data);
        self.buf.extend_from_slice(data);
        if self.buf.len() >= 256 * 1024 {
            self.flush()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = std::mem::take(&mut self.buf);
        self.tx
            .blocking_send(Ok(chunk))
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::BrokenPipe, "the client went away"))
    }
}

/// The approved registered photos of a school (or one college) as a ZIP streamed while it is written:
/// `<ID number>.jpg` each, and `manifest.csv`. The submissions are marked exported only once the archive was
/// written whole; a download cut short changes nothing.
pub async fn export(
    State(state): State<AppState>,
    s: StaffSession,
    Path(id): Path<i64>,
    Query(q): Query<ExportQuery>,
) -> AppResult<Response> {
    let id = SchoolId(id);
    s.require_admin(id)?;
    let school = state.db.school(id).await?;
    let college = q.college.filter(|c| !c.is_empty());
    let items = state.db.exportable(id, college.as_deref(), q.again).await?;
    state
        .db
        .audit(&s.actor(), "export", Some(id), &format!("photos:{} college:{}", items.len(), college.is_some()))
        .await?;
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    let worker_state = state.clone();
    let runtime = tokio::runtime::Handle::current();
    let school_code = school.code.clone();
    tokio::task::spawn_blocking(move || {
        let state = worker_state;
        let mut writer = ChannelWriter { tx: tx.clone(), buf: Vec::new(), sha256: Sha256::new() };
        let result = (|| -> Result<Vec<gradphoto_store::SubmissionId>, String> {
            let mut zip = zip::ZipWriter::new_stream(&mut writer);
            let stored = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
            let mut manifest = csv::Writer::from_writer(vec![0xEF, 0xBB, 0xBF]);
            manifest
                .write_record(["证件号码", "学号", "姓名", "证件类型", "学院", "学历层次", "文件", "sha256"])
                .map_err(|e| e.to_string())?;
            let mut done = Vec::new();
            for item in &items {
                let context = crate::public::id_context(item.school_id, &item.id_kind);
                let number = state.vault.open(&context, &item.id_cipher).map_err(|e| e.to_string())?;
                let bytes = runtime.block_on(state.store.get(&item.registered_key)).map_err(|e| e.to_string())?;
                let name = format!("{number}.jpg");
                // JPEGs do not compress further: stored, not deflated.
                zip.start_file(name.as_str(), stored).map_err(|e| e.to_string())?;
                zip.write_all(&bytes).map_err(|e| e.to_string())?;
                manifest
                    .write_record([
                        number.as_str(),
                        &item.student_no,
                        &item.name,
                        &item.id_kind,
                        item.college.as_deref().unwrap_or(""),
                        item.degree_level.as_deref().unwrap_or(""),
                        &name,
                        &gradphoto_store::blob::sha256_hex(&bytes),
                    ])
                    .map_err(|e| e.to_string())?;
                done.push(item.submission_id);
            }
            let manifest = manifest.into_inner().map_err(|e| e.to_string())?;
            zip.start_file("manifest.csv", zip::write::SimpleFileOptions::default()).map_err(|e| e.to_string())?;
            zip.write_all(&manifest).map_err(|e| e.to_string())?;
            zip.finish().map_err(|e| e.to_string())?;
            Ok(done)
        })();
        match result.and_then(|ids| writer.flush().map(|()| ids).map_err(|e| e.to_string())) {
            Ok(ids) => {
                let notice = Notice {
                    kind: "exported",
                    title: "照片已上报",
                    body: "您的注册照片已提交学籍学历注册。Your photo was sent to the registry.",
                    payload: r#"{"kind":"exported"}"#,
                };
                let sha256 = format!("{:x}", writer.sha256.finalize());
                let data = json!({ "photos": ids.len(), "sha256": sha256, "college": college, "again": q.again });
                let payload = crate::webhooks::payload(&school_code, crate::webhooks::EXPORTED, data);
                let event = Event { school: id, kind: crate::webhooks::EXPORTED, payload: &payload };
                if runtime.block_on(state.db.mark_exported(&ids, &notice, Some(&event))).is_ok() {
                    state.outbox_wake.notify_one();
                }
            }
            Err(e) => {
                tracing::warn!(school = id.0, "export stopped: {e}");
                let _ = tx.blocking_send(Err(std::io::Error::other("export stopped")));
            }
        }
    });
    let stream = futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|item| (item, rx)) });
    let file = format!("attachment; filename=\"{}-photos.zip\"", school.code);
    Ok((
        [(header::CONTENT_TYPE, "application/zip".to_string()), (header::CONTENT_DISPOSITION, file)],
        Body::from_stream(stream),
    )
        .into_response())
}

#[cfg(test)]
mod tests {
    #[test]
    fn beijing_days_and_fees() {
        // 2026-06-30 00:00 Beijing = 2026-06-29 16:00 UTC.
        assert_eq!(super::beijing_day("2026-06-30"), Some(1_782_748_800_000));
        assert_eq!(crate::views::datetime(super::beijing_day("2000-02-29")), "2000-02-29 00:00");
        assert_eq!(super::beijing_day("2026-13-01"), None);
        assert_eq!(super::parse_fee("25.5"), Some(2550));
        assert_eq!(super::parse_fee(""), Some(0));
        assert_eq!(super::parse_fee("1.234"), None);
        assert_eq!(super::parse_fee("-1"), None);
    }
}
