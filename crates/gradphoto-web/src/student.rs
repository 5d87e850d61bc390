//! The student's pages: home with requirements and status, password, upload with the check report at once,
//! submit, fee, and their own pictures. Every handler starts from [`StudentSession`]: a student sees only their
//! own data, and ids in paths are checked to be theirs.

use std::sync::Arc;

use axum::extract::{Form, Multipart, Path, State};
use axum::response::{IntoResponse, Redirect, Response};
use gradphoto_core::{Message, Report};
use gradphoto_store::db::{BlobMeta, NewPhoto, Notice, Photo, PhotoType, Status, Student};
use gradphoto_store::{BlobKey, PhotoId, PhotoTypeId, SubmissionId, now_ms};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::answers::{Me, MeType, PhotoState};
use crate::auth::{self, StudentSession};
use crate::error::{AppError, AppResult, done, wants_json};
use crate::photos::{self, status_text, verdict_str, verdict_text};
use crate::state::AppState;
use crate::views::{merge, private_jpeg};

fn ctx(s: &StudentSession) -> serde_json::Value {
    json!({ "who": s.student.name, "role": "student", "csrf": s.csrf, "student": {
        "name": s.student.name, "student_no": s.student.student_no, "college": s.student.college } })
}

async fn own_type(state: &AppState, student: &Student, id: PhotoTypeId) -> AppResult<PhotoType> {
    state.db.photo_types(student.school_id).await?.into_iter().find(|t| t.id == id).ok_or(AppError::NotFound)
}

/// The status word of a photo type for this student.
fn type_status(photo: Option<&Photo>, submission: Option<&gradphoto_store::db::Submission>) -> &'static str {
    match (submission, photo) {
        (Some(s), _) => s.status.as_str(),
        (None, Some(_)) => "draft",
        (None, None) => "none",
    }
}

pub async fn home(State(state): State<AppState>, s: StudentSession) -> AppResult<Response> {
    if !s.student.password_changed && !wants_json() {
        return Ok(Redirect::to("/me/password").into_response());
    }
    let school = state.db.school(s.student.school_id).await?;
    let submissions = state.db.submissions_of(s.student.id).await?;
    let mut types = Vec::new();
    for t in state.db.photo_types(school.id).await? {
        let photo = state.db.latest_photo(s.student.id, t.id).await?;
        let sub = submissions.iter().find(|x| x.photo_type_id == t.id);
        let status = type_status(photo.as_ref(), sub);
        let (zh, en) = status_text(status);
        types.push(MeType {
            id: t.id,
            code: t.code,
            name_zh: t.name_zh,
            name_en: t.name_en,
            status,
            status_zh: zh,
            status_en: en,
            submission: sub.cloned(),
        });
    }
    let notifications = state.db.notifications(s.student.id, 20).await?;
    let fee_due = school.fee_cents > 0 && !s.student.paid;
    let me = Me { school_open: school.is_open(now_ms()), school, types, notifications, fee_due, paid: s.student.paid };
    if wants_json() {
        return Ok(axum::Json(me).into_response());
    }
    Ok(state
        .views
        .render("student.html", merge(ctx(&s), serde_json::to_value(me).map_err(AppError::internal)?))?
        .into_response())
}

pub async fn password_page(State(state): State<AppState>, s: StudentSession) -> AppResult<Response> {
    let first = !s.student.password_changed;
    Ok(state.views.render("password.html", merge(ctx(&s), json!({ "first": first })))?.into_response())
}

#[derive(Deserialize, schemars::JsonSchema)]
pub struct PasswordForm {
    current: String,
    new: String,
}

pub async fn change_password(
    State(state): State<AppState>,
    s: StudentSession,
    Form(f): Form<PasswordForm>,
) -> AppResult<Response> {
    let current_ok = if s.student.password_changed {
        auth::verify_password(f.current.clone(), s.student.password_hash.clone()).await
    } else {
        crate::public::initial_password_of(&state, &s.student).is_some_and(|p| auth::same(&p, f.current.trim()))
    };
    let error = if !current_ok {
        Some(Message::new("当前密码不正确", "the current password is wrong"))
    } else if f.new.chars().count() < 8 {
        Some(Message::new("新密码至少 8 位", "the new password needs 8 or more characters"))
    } else if crate::public::initial_password_of(&state, &s.student).is_some_and(|p| p == f.new) {
        Some(Message::new("新密码不能与初始密码相同", "the new password must differ from the first one"))
    } else {
        None
    };
    if let Some(error) = error {
        if wants_json() {
            return Err(AppError::BadRequest("auth.password", error));
        }
        let page = state.views.render("password.html", merge(ctx(&s), json!({ "error": error })))?;
        return Ok((axum::http::StatusCode::BAD_REQUEST, page).into_response());
    }
    let hash = auth::hash_password(f.new).await?;
    state.db.set_student_password(s.student.id, &hash).await?;
    state.db.audit(&format!("student:{}", s.student.id), "password.changed", Some(s.student.school_id), "").await?;
    Ok(done("/me", crate::answers::DONE))
}

pub async fn photo_page(
    State(state): State<AppState>,
    s: StudentSession,
    Path(type_id): Path<i64>,
) -> AppResult<Response> {
    let t = own_type(&state, &s.student, PhotoTypeId(type_id)).await?;
    let school = state.db.school(s.student.school_id).await?;
    let photo = state.db.latest_photo(s.student.id, t.id).await?;
    let submission = state.db.submissions_of(s.student.id).await?.into_iter().find(|x| x.photo_type_id == t.id);
    let report: Option<Report> = photo.as_ref().and_then(|p| serde_json::from_str(&p.report).ok());
    let status = type_status(photo.as_ref(), submission.as_ref());
    let open = school.is_open(now_ms());
    let checking = photo.as_ref().is_some_and(Photo::checking);
    let place = match &photo {
        Some(p) if checking => state.db.check_place(p.id).await?.max(1),
        _ => 0,
    };
    let can_upload = open && submission.as_ref().is_none_or(|x| x.status.replaceable());
    // Submit is offered for a photo not yet submitted (a new one, or after a rejection), never for an unreadable file.
    let can_submit = open
        && !checking
        && photo.as_ref().is_some_and(|p| {
            p.verdict != "error" && submission.as_ref().is_none_or(|x| x.photo_id != p.id && x.status.replaceable())
        });
    if wants_json() {
        let answer =
            PhotoState { photo_type: t, status, photo, report, submission, can_upload, can_submit, checking, place };
        return Ok(axum::Json(answer).into_response());
    }
    let (findings, problems) = report.as_ref().map(|r| photos::findings(r, true)).unwrap_or_default();
    let verdict = report.as_ref().map(|r| verdict_text(r.verdict)).unwrap_or(("", ""));
    let reasons: Vec<serde_json::Value> = submission
        .as_ref()
        .map(|x| {
            x.reasons
                .split(',')
                .filter(|r| !r.is_empty())
                .map(|id| {
                    let (zh, en) = gradphoto_core::Rule::from_id(id).map_or(("其他", "other"), |r| r.title());
                    json!({ "id": id, "zh": zh, "en": en })
                })
                .collect()
        })
        .unwrap_or_default();
    let (zh, en) = status_text(status);
    let manual = report.as_ref().map(photos::reviewer_only_titles).unwrap_or_default().join("、");
    let registered = submission.as_ref().is_some_and(|x| x.registered_key.is_some());
    let data = json!({ "photo_type": t, "photo": photo, "report": report, "submission": submission,
        "status": status, "status_zh": zh, "status_en": en, "findings": findings, "problems": problems,
        "verdict_zh": verdict.0, "verdict_en": verdict.1, "reasons": reasons, "can_upload": can_upload,
        "can_submit": can_submit, "registered": registered, "manual": manual, "checking": checking, "place": place,
        "max_upload_mb": state.config.max_upload / (1024 * 1024) });
    Ok(state.views.render("photo.html", merge(ctx(&s), data))?.into_response())
}

/// Reads one file field, refusing more than `max` bytes as the body streams in.
/// Reads the file field `name`, at most `max` bytes. `headers` give the body's length, which sizes the buffer once
/// (growing it by doubling copied a 2 MB photo about twice over and churned the allocator).
pub async fn read_file_field(
    multipart: &mut Multipart,
    headers: &axum::http::HeaderMap,
    name: &str,
    max: usize,
) -> AppResult<Vec<u8>> {
    let expected = headers
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(0)
        .min(max);
    let too_large = || {
        AppError::TooLarge(Message::new(
            format!("文件超过 {} MB，请上传原图或较小的文件", max / (1024 * 1024)),
            format!("the file is larger than {} MB", max / (1024 * 1024)),
        ))
    };
    let broken = |e: axum::extract::multipart::MultipartError| {
        if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
            too_large()
        } else {
            AppError::BadRequest(
                "upload.incomplete",
                Message::new("上传中断，请重试", "the upload was cut short; try again"),
            )
        }
    };
    while let Some(mut field) = multipart.next_field().await.map_err(broken)? {
        if field.name() != Some(name) {
            continue;
        }
        let mut buf = Vec::with_capacity(expected);
        while let Some(chunk) = field.chunk().await.map_err(broken)? {
            if buf.len() + chunk.len() > max {
                return Err(too_large());
            }
            buf.extend_from_slice(&chunk);
        }
        return Ok(buf);
    }
    Err(AppError::BadRequest("upload.missing", Message::new("请选择要上传的文件", "choose a file to upload")))
}

/// The answer to an upload (`POST /me/photos/{type}`).
#[derive(Debug, Serialize, schemars::JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct UploadAnswer {
    pub photo: i64,
    /// The file rules' report at once (the full report with `Prefer: wait=N` once its check has ended); null only if
    /// a stored report cannot be read.
    pub report: Option<Report>,
    /// Whether the full check is still queued or running.
    pub checking: bool,
    /// The photo's place in the check queue (1 = next), 0 when checked.
    pub place: i64,
}

/// Whether the latest photo's check has ended (`GET /me/photos/{type}/check`).
#[derive(Debug, Serialize, schemars::JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct CheckAnswer {
    pub photo: i64,
    pub checking: bool,
    /// The place in the check queue (1 = next), 0 when checked.
    pub place: i64,
}

pub async fn upload(
    State(state): State<AppState>,
    headers: axum::http::HeaderMap,
    s: StudentSession,
    Path(type_id): Path<i64>,
    mut multipart: Multipart,
) -> AppResult<Response> {
    let t = own_type(&state, &s.student, PhotoTypeId(type_id)).await?;
    let school = state.db.school(s.student.school_id).await?;
    if !school.is_open(now_ms()) {
        return Err(closed());
    }
    let submission = state.db.submissions_of(s.student.id).await?.into_iter().find(|x| x.photo_type_id == t.id);
    if submission.as_ref().is_some_and(|x| !x.status.replaceable()) {
        return Err(AppError::Conflict(
            "upload.locked",
            Message::new("照片已在审核或已通过，不能更换", "the photo is in review or approved and cannot be replaced"),
        ));
    }
    // Only so many uploads are taken in at once — read, judged by the file rules, stored and answered; the rest
    // wait here, before their first byte is read. Work in progress stays small, so each upload taken in is
    // answered quickly instead of all of a burst's answers waiting behind each other (and pages behind them all).
    let taking_in = state.upload_bodies.acquire().await.map_err(AppError::internal)?;
    let bytes = read_file_field(&mut multipart, &headers, "photo", state.config.max_upload).await?;
    let read_at = std::time::Instant::now();
    if bytes.is_empty() {
        return Err(AppError::BadRequest("upload.empty", Message::new("文件是空的", "the file is empty")));
    }
    if !photos::looks_like_jpeg(&bytes) {
        return Err(AppError::BadRequest(
            "upload.not_jpeg",
            Message::new(
                "这不是 JPEG 照片。请上传相机或手机拍摄的 JPG 原图（不要截图，不要 HEIC/PNG）。",
                "this is not a JPEG photo; upload the camera's JPG original (no screenshots, HEIC or PNG)",
            ),
        ));
    }
    let bytes = Arc::new(bytes);
    let file = photos::check_file(&state, bytes.clone(), &school).await?;
    let file_ms = read_at.elapsed().as_secs_f64() * 1e3;
    let mut steps = vec![("file", file_ms)];
    let photo = store_upload(&state, &s.student, t.id, &bytes, &file, &mut steps).await?;
    let stored_ms = read_at.elapsed().as_secs_f64() * 1e3;
    // A file whose container cannot be read is finished: the full check could only say the same.
    let queued = file.report.error.is_none();
    let mut place = 0;
    if queued {
        state.check_wake.notify_one();
        place = state.db.check_place(photo).await?;
    }
    let answered_ms = read_at.elapsed().as_secs_f64() * 1e3;
    drop(taking_in);
    if !wants_json() {
        return Ok(Redirect::to(&format!("/me/photos/{}", t.id)).into_response());
    }
    // `Prefer: wait=N` (RFC 7240): the caller would rather have the full report, waiting up to N seconds for it.
    let wait = prefer_wait(&headers);
    if queued && let Some(w) = wait {
        if crate::checks::wait_checked(&state, photo, w).await == crate::checks::Waited::Checked {
            let p = state.db.photo(photo).await?;
            let report: Option<Report> = serde_json::from_str(&p.report).ok();
            let mut res =
                axum::Json(UploadAnswer { photo: photo.0, report, checking: false, place: 0 }).into_response();
            res.headers_mut().insert("preference-applied", axum::http::HeaderValue::from_static("wait"));
            return Ok(res);
        }
        place = state.db.check_place(photo).await?;
    }
    let answer = UploadAnswer { photo: photo.0, report: Some(file.report), checking: queued && place > 0, place };
    let mut res = axum::Json(answer).into_response();
    // How long the answer took after the body's last byte was read, for the load benchmark and the browser's
    // developer tools (no personal data).
    steps.push(("place", answered_ms - stored_ms));
    let mut timing = format!("answer;dur={answered_ms:.1}");
    for (name, ms) in &steps {
        timing.push_str(&format!(", {name};dur={ms:.1}"));
    }
    if let Ok(v) = axum::http::HeaderValue::from_str(&timing) {
        res.headers_mut().insert("server-timing", v);
    }
    Ok(res)
}

/// The seconds of `Prefer: wait=N`, at most a minute.
fn prefer_wait(headers: &axum::http::HeaderMap) -> Option<std::time::Duration> {
    headers.get_all("prefer").iter().filter_map(|v| v.to_str().ok()).flat_map(|v| v.split(',')).find_map(|p| {
        let secs: u64 = p.trim().strip_prefix("wait=")?.trim().parse().ok()?;
        Some(std::time::Duration::from_secs(secs.min(60)))
    })
}

#[derive(Deserialize, schemars::JsonSchema)]
pub struct CheckQuery {
    /// Seconds to wait for the check to end (at most 25: under the usual proxy and WeChat timeouts).
    wait: Option<u64>,
}

/// Whether the latest photo of a type is still being checked, and its place in the queue; with `?wait=N`, answers
/// as soon as the check ends (or after N seconds). The photo page calls it to show the report without a reload.
pub async fn check_status(
    State(state): State<AppState>,
    s: StudentSession,
    Path(type_id): Path<i64>,
    axum::extract::Query(q): axum::extract::Query<CheckQuery>,
) -> AppResult<Response> {
    let t = own_type(&state, &s.student, PhotoTypeId(type_id)).await?;
    let photo = state.db.latest_photo(s.student.id, t.id).await?.ok_or(AppError::NotFound)?;
    let mut place = if photo.checking() { state.db.check_place(photo.id).await?.max(1) } else { 0 };
    if place > 0
        && let Some(w) = q.wait.filter(|w| *w > 0)
    {
        place = match crate::checks::wait_checked(&state, photo.id, std::time::Duration::from_secs(w.min(25))).await {
            crate::checks::Waited::Queued(n) => n,
            // Checked, or replaced by a newer upload: either way the page shows what is there now.
            _ => 0,
        };
    }
    Ok(axum::Json(CheckAnswer { photo: photo.id.0, checking: place > 0, place }).into_response())
}

fn closed() -> AppError {
    AppError::Conflict(
        "school.closed",
        Message::new("当前不在学校的采集时间内", "collection is closed at this school now"),
    )
}

/// Stages the files, commits the row, then publishes: a crash anywhere leaves either no trace or a whole photo.
async fn store_upload(
    state: &AppState,
    student: &Student,
    photo_type: PhotoTypeId,
    bytes: &Arc<Vec<u8>>,
    file: &photos::FileChecked,
    timing: &mut Vec<(&'static str, f64)>,
) -> AppResult<PhotoId> {
    let mut clock = std::time::Instant::now();
    let mut lap = |name: &'static str| {
        timing.push((name, clock.elapsed().as_secs_f64() * 1e3));
        clock = std::time::Instant::now();
    };
    let original =
        BlobMeta { key: BlobKey::new("original"), bytes: bytes.len() as i64, sha256: file.original_sha256.clone() };
    state.store.stage(&original.key, bytes).await?;
    lap("stage");
    // Before the commit, so that a worker of this node woken by its own timer finds it too; one never taken (the
    // commit fails, or another node checks it) goes stale in `fresh`.
    if file.report.error.is_none() {
        state.fresh.keep(&original.key, bytes.clone());
    }
    let report = serde_json::to_string(&file.report).map_err(AppError::internal)?;
    let finished = file.report.error.is_some();
    let new = NewPhoto {
        student: student.id,
        photo_type,
        original: original.clone(),
        annotated: None,
        verdict: if finished { verdict_str(file.report.verdict) } else { photos::CHECKING }.to_string(),
        failing: photos::failing(&file.report),
        report,
        checked: finished,
    };
    let uploaded = match state.uploads.record(new).await {
        Ok(u) => u,
        Err(e) => {
            let _ = state.store.discard(&original.key).await;
            return Err(e.into());
        }
    };
    lap("commit");
    state.store.publish(&original.key).await?;
    lap("publish");
    for k in &uploaded.replaced {
        // A failure here leaves an unnamed file that start-up recovery removes.
        let _ = state.store.delete(k).await;
    }
    // Two uploads at once from one student: the later one's commit may have replaced this photo before it was
    // published above; its files are then nobody's, and go now rather than at the next start.
    if let Err(gradphoto_store::DbError::NotFound) = state.db.photo(uploaded.photo).await {
        let _ = state.store.delete(&original.key).await;
    }
    Ok(uploaded.photo)
}

#[derive(Deserialize, schemars::JsonSchema)]
pub struct SubmitForm {
    photo: i64,
}

/// The notice a submission entering the review queue sends (on submit, or when the fee it waited for is paid).
pub(crate) const SUBMITTED: Notice<'static> = Notice {
    kind: "submitted",
    title: "照片已提交审核",
    body: "您的学历照片已提交，等待审核。Your photo is waiting for review.",
    payload: r#"{"kind":"submitted"}"#,
};

pub async fn submit(
    State(state): State<AppState>,
    s: StudentSession,
    Path(type_id): Path<i64>,
    Form(f): Form<SubmitForm>,
) -> AppResult<Response> {
    let t = own_type(&state, &s.student, PhotoTypeId(type_id)).await?;
    let school = state.db.school(s.student.school_id).await?;
    if !school.is_open(now_ms()) {
        return Err(closed());
    }
    let photo = state.db.photo(PhotoId(f.photo)).await?;
    if photo.student_id != s.student.id || photo.photo_type_id != t.id {
        return Err(AppError::NotFound);
    }
    if photo.checking() {
        return Err(AppError::Conflict(
            "submit.checking",
            Message::new("照片还在检测中，请稍候再提交", "the photo is still being checked; submit when it is done"),
        ));
    }
    if photo.verdict == "error" {
        return Err(AppError::BadRequest(
            "submit.unreadable",
            Message::new("无法读取的文件不能提交", "a file that cannot be read cannot be submitted"),
        ));
    }
    let paid = school.fee_cents == 0 || s.student.paid;
    let id = state.db.submit(&photo, paid, &SUBMITTED).await?;
    state
        .db
        .audit(&format!("student:{}", s.student.id), "submit", Some(school.id), &format!("submission:{id}"))
        .await?;
    let to = if paid { format!("/me/photos/{}", t.id) } else { "/me/pay".to_string() };
    let status = if paid { Status::Submitted } else { Status::Unpaid };
    Ok(done(&to, crate::answers::Submitted { submission: id, status }))
}

#[derive(Deserialize, schemars::JsonSchema)]
pub struct PayQuery {
    /// Ask WeChat Pay about this student's open orders now (the page polls with it after paying).
    sync: Option<String>,
}

pub async fn pay_page(
    State(state): State<AppState>,
    headers: axum::http::HeaderMap,
    s: StudentSession,
    axum::extract::Query(q): axum::extract::Query<PayQuery>,
) -> AppResult<Response> {
    let school = state.db.school(s.student.school_id).await?;
    let mut paid = s.student.paid || school.fee_cents == 0;
    if q.sync.as_deref().is_some_and(|v| v == "1" || v == "true") && !paid {
        paid = crate::wechat::sync_student(&state, s.student.id).await;
    }
    let start = state.payments.start(&school.name, school.fee_cents);
    // WeChat Pay where it can work: inside WeChat with `[wechat.pay]` configured (the order needs the openid).
    let wechat_pay = state.wechat.as_ref().is_some_and(|w| w.pay.is_some()) && crate::wechat::in_wechat(&headers);
    let provider = if wechat_pay { "wechat" } else { state.payments.id() };
    let answer = crate::answers::PayState {
        paid,
        fee_cents: school.fee_cents,
        school,
        instructions: start.instructions,
        redirect: start.redirect,
        provider: provider.to_string(),
        wechat_pay,
        cashier: state.wechat.as_ref().and_then(|w| w.config.cashier_url.clone()),
    };
    if wants_json() {
        return Ok(axum::Json(answer).into_response());
    }
    let data = serde_json::to_value(answer).map_err(AppError::internal)?;
    Ok(state.views.render("pay.html", merge(ctx(&s), data))?.into_response())
}

pub async fn photo_image(
    State(state): State<AppState>,
    s: StudentSession,
    Path((photo_id, which)): Path<(i64, String)>,
) -> AppResult<Response> {
    let photo = state.db.photo(PhotoId(photo_id)).await?;
    if photo.student_id != s.student.id {
        return Err(AppError::NotFound);
    }
    let key = match which.as_str() {
        "annotated.jpg" => photo.annotated_key.ok_or(AppError::NotFound)?,
        "original.jpg" => photo.original_key,
        _ => return Err(AppError::NotFound),
    };
    Ok(private_jpeg(state.store.get(&key).await?))
}

pub async fn registered_image(
    State(state): State<AppState>,
    s: StudentSession,
    Path(id): Path<i64>,
) -> AppResult<Response> {
    let sub = state.db.submission(SubmissionId(id)).await?;
    if sub.student_id != s.student.id {
        return Err(AppError::NotFound);
    }
    let key = sub.registered_key.ok_or(AppError::NotFound)?;
    Ok(private_jpeg(state.store.get(&key).await?))
}
