//! Reviewers: a school's queue in submit order, one photo at a time with the original, the annotated picture and
//! the automatic findings; approve (normalise, seal, store the registered file) or reject with rule-coded reasons.
//! Every decision queues the student's notice, and the school's webhook event, in the same transaction.

use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use gradphoto_core::normalise::{self, FixError, FixOptions};
use gradphoto_core::seal::Identity;
use gradphoto_core::{CheckOptions, Message, Report, Rule};
use gradphoto_store::blob::sha256_hex;
use gradphoto_store::db::{BlobMeta, Event, Notice, Role, Status};
use gradphoto_store::{BlobKey, PhotoId, PhotoTypeId, SchoolId, SubmissionId};
use serde::Deserialize;
use serde_json::json;

use crate::auth::StaffSession;
use crate::error::{AppError, AppResult, done, wants_json};
use crate::photos::{self, verdict_text};
use crate::state::AppState;
use crate::views::{merge, private_jpeg};

pub fn staff_ctx(s: &StaffSession) -> serde_json::Value {
    json!({ "who": s.staff.username, "role": s.staff.role, "csrf": s.csrf })
}

#[derive(Deserialize, schemars::JsonSchema)]
pub struct QueueQuery {
    school: Option<i64>,
}

/// The school a staff member works on: their own, or for a super-admin the one asked for (else the first).
async fn working_school(state: &AppState, s: &StaffSession, asked: Option<i64>) -> AppResult<SchoolId> {
    match (s.staff.role, s.staff.school_id, asked) {
        (Role::SuperAdmin, _, Some(id)) => Ok(SchoolId(id)),
        (Role::SuperAdmin, _, None) => state.db.schools(None).await?.first().map(|x| x.id).ok_or(AppError::NotFound),
        (_, Some(own), Some(id)) if own.0 != id => Err(AppError::Forbidden),
        (_, Some(own), _) => Ok(own),
        (_, None, _) => Err(AppError::Forbidden),
    }
}

pub async fn queue(State(state): State<AppState>, s: StaffSession, Query(q): Query<QueueQuery>) -> AppResult<Response> {
    let school_id = working_school(&state, &s, q.school).await?;
    s.require_school(school_id)?;
    let school = state.db.school(school_id).await?;
    let items = state.db.queue(school_id, 200).await?;
    if wants_json() {
        return Ok(axum::Json(crate::answers::Queue { school, items }).into_response());
    }
    let schools = if s.staff.role == Role::SuperAdmin { state.db.schools(None).await? } else { Vec::new() };
    let data = json!({ "school": school, "items": items, "schools": schools });
    Ok(state.views.render("queue.html", merge(staff_ctx(&s), data))?.into_response())
}

/// The submission, after checking it belongs to a school this staff member may see.
async fn visible_item(state: &AppState, s: &StaffSession, id: i64) -> AppResult<gradphoto_store::db::QueueItem> {
    let id = SubmissionId(id);
    let school = state.db.submission_school(id).await?;
    s.require_school(school)?;
    let sub = state.db.submission(id).await?;
    let student = state.db.student(sub.student_id).await?;
    Ok(gradphoto_store::db::QueueItem {
        submission: sub,
        student_no: student.student_no,
        name: student.name,
        college: student.college,
        school_id: student.school_id,
    })
}

pub async fn item(State(state): State<AppState>, s: StaffSession, Path(id): Path<i64>) -> AppResult<Response> {
    let mut item = visible_item(&state, &s, id).await?;
    state.db.open_for_review(item.submission.id, s.staff.id).await?;
    item.submission = state.db.submission(item.submission.id).await?;
    let photo = state.db.photo(item.submission.photo_id).await?;
    let report: Option<Report> = serde_json::from_str(&photo.report).ok();
    if wants_json() {
        return Ok(axum::Json(crate::answers::ReviewItem { item, photo, report }).into_response());
    }
    render_item(&state, &s, &item, report.as_ref(), None)
}

fn render_item(
    state: &AppState,
    s: &StaffSession,
    item: &gradphoto_store::db::QueueItem,
    report: Option<&Report>,
    error: Option<Message>,
) -> AppResult<Response> {
    let (_, problems) = report.map(|r| photos::findings(r, false)).unwrap_or_default();
    let verdict = report.map(|r| verdict_text(r.verdict)).unwrap_or(("", ""));
    let data = json!({ "item": item, "report": report, "problems": problems, "verdict_zh": verdict.0,
        "reasons": photos::reasons(report), "error": error });
    let status = if data["error"].is_null() { axum::http::StatusCode::OK } else { axum::http::StatusCode::CONFLICT };
    Ok((status, state.views.render("review.html", merge(staff_ctx(s), data))?).into_response())
}

pub async fn image(
    State(state): State<AppState>,
    s: StaffSession,
    Path((id, which)): Path<(i64, String)>,
) -> AppResult<Response> {
    let item = visible_item(&state, &s, id).await?;
    let photo = state.db.photo(item.submission.photo_id).await?;
    let key = match which.as_str() {
        "original.jpg" => photo.original_key,
        "annotated.jpg" => photo.annotated_key.ok_or(AppError::NotFound)?,
        "registered.jpg" => item.submission.registered_key.ok_or(AppError::NotFound)?,
        _ => return Err(AppError::NotFound),
    };
    Ok(private_jpeg(state.store.get(&key).await?))
}

#[derive(Deserialize, schemars::JsonSchema)]
pub struct Decision {
    /// The photo the reviewer saw: a decision on a photo since replaced is refused.
    photo: i64,
    /// Rule ids, repeatable (`reason=geometry.hair_top&reason=pose.frontal`); rejections need one at least.
    #[serde(default)]
    #[schemars(with = "Vec<gradphoto_core::Rule>")]
    reason: Vec<String>,
    /// Free text to the student, at most 500 characters kept.
    #[serde(default)]
    note: String,
}

pub async fn approve(
    State(state): State<AppState>,
    s: StaffSession,
    Path(id): Path<i64>,
    form: axum::extract::RawForm,
) -> AppResult<Response> {
    let d: Decision = parse_form(&form.0)?;
    let item = visible_item(&state, &s, id).await?;
    if item.submission.photo_id != PhotoId(d.photo)
        || !matches!(item.submission.status.as_str(), "submitted" | "in_review")
    {
        return Err(gradphoto_store::DbError::State.into());
    }
    let photo = state.db.photo(item.submission.photo_id).await?;
    let student = state.db.student(item.submission.student_id).await?;
    let school = state.db.school(student.school_id).await?;
    let photo_type = photo_type_code(&state, school.id, item.submission.photo_type_id).await?;
    let context = crate::public::id_context(student.school_id, &student.id_kind);
    let id_number = state.vault.open(&context, &student.id_cipher).map_err(AppError::internal)?;
    let identity = Identity { id_number, student_no: student.student_no.clone(), school: school.code.clone() };
    let original = state.store.get(&photo.original_key).await?;
    let (models, sealer) = (state.models.clone(), state.sealer.clone());
    let fixed = {
        let _permit = state.cpu.acquire().await.map_err(AppError::internal)?;
        tokio::task::spawn_blocking(move || {
            normalise::fix(&original, &models, &sealer, &identity, &CheckOptions::default(), &FixOptions::default())
        })
        .await
        .map_err(AppError::internal)?
    };
    let fixed = match fixed {
        Ok(f) => f,
        Err(e) => {
            let message = fix_failure(&e);
            if wants_json() {
                return Err(AppError::Conflict("approve.normalise", message));
            }
            let report: Option<Report> = serde_json::from_str(&photo.report).ok();
            return render_item(&state, &s, &item, report.as_ref(), Some(message));
        }
    };
    let registered =
        BlobMeta { key: BlobKey::new("registered"), bytes: fixed.jpeg.len() as i64, sha256: sha256_hex(&fixed.jpeg) };
    state.store.stage(&registered.key, &fixed.jpeg).await?;
    let payload = json!({ "kind": "approved", "submission": item.submission.id,
        "at": gradphoto_store::now_ms() })
    .to_string();
    let notice = Notice {
        kind: "approved",
        title: "照片审核通过",
        body: "您的学历照片已审核通过，已生成注册照片。Your photo was approved.",
        payload: &payload,
    };
    let data = json!({ "submission": item.submission.id, "student_no": student.student_no,
        "photo_type": photo_type });
    let event_payload = crate::webhooks::payload(&school.code, crate::webhooks::APPROVED, data);
    let event = Event { school: school.id, kind: crate::webhooks::APPROVED, payload: &event_payload };
    let approved = state.db.approve(item.submission.id, photo.id, s.staff.id, &registered, &notice, Some(&event));
    if let Err(e) = approved.await {
        let _ = state.store.discard(&registered.key).await;
        return Err(e.into());
    }
    state.store.publish(&registered.key).await?;
    state.outbox_wake.notify_one();
    state.db.audit(&s.actor(), "approve", Some(school.id), &format!("submission:{}", item.submission.id)).await?;
    Ok(done(
        &format!("/review?school={}", school.id),
        crate::answers::Decided {
            ok: true,
            status: Status::Approved,
            quality: Some(fixed.quality),
            bytes: Some(fixed.jpeg.len()),
        },
    ))
}

/// The code of a photo type (`degree`, …), for the webhook events: a school's systems know its types by code.
async fn photo_type_code(state: &AppState, school: SchoolId, id: PhotoTypeId) -> AppResult<String> {
    let types = state.db.photo_types(school).await?;
    Ok(types.into_iter().find(|t| t.id == id).map(|t| t.code).unwrap_or_default())
}

fn fix_failure(e: &FixError) -> Message {
    let hint = match e {
        FixError::NotCroppable(_) => "geometry.croppable",
        FixError::Faces(_) => "face.count",
        FixError::SelfCheck(_) => "registered file fails its own check",
        _ => "",
    };
    Message::new(
        format!("无法由此原图生成注册照片（{hint}）：请驳回并说明原因。{e}"),
        format!("cannot make the registered file from this original ({hint}): reject it with a reason. {e}"),
    )
}

fn parse_form(body: &[u8]) -> AppResult<Decision> {
    let bad = || AppError::BadRequest("form.invalid", Message::new("表单无效", "invalid form"));
    let mut photo = None;
    let mut reason = Vec::new();
    let mut note = String::new();
    for (k, v) in crate::forms::pairs(body)? {
        match k.as_str() {
            "photo" => photo = v.parse().ok(),
            "reason" => reason.push(v),
            "note" => note = v,
            _ => {}
        }
    }
    Ok(Decision { photo: photo.ok_or_else(bad)?, reason, note })
}

pub async fn reject(
    State(state): State<AppState>,
    s: StaffSession,
    Path(id): Path<i64>,
    form: axum::extract::RawForm,
) -> AppResult<Response> {
    let d = parse_form(&form.0)?;
    let reasons: Vec<&str> = d.reason.iter().filter_map(|r| Rule::from_id(r)).map(|r| r.id()).collect();
    if reasons.is_empty() {
        return Err(AppError::BadRequest(
            "reject.reason",
            Message::new("驳回需至少选择一条原因", "choose at least one reason to reject"),
        ));
    }
    let item = visible_item(&state, &s, id).await?;
    let note: String = d.note.chars().take(500).collect();
    let titles: Vec<&str> = reasons.iter().filter_map(|r| Rule::from_id(r)).map(|r| r.title().0).collect();
    let body = format!(
        "原因：{}。{}请重新上传照片。Your photo was not approved; please upload a new one.",
        titles.join("、"),
        if note.is_empty() { String::new() } else { format!("审核意见：{note}。") }
    );
    let payload = json!({ "kind": "rejected", "submission": item.submission.id, "reasons": reasons, "note": note,
        "at": gradphoto_store::now_ms() })
    .to_string();
    let notice = Notice { kind: "rejected", title: "照片审核未通过", body: &body, payload: &payload };
    let school = state.db.school(item.school_id).await?;
    let photo_type = photo_type_code(&state, school.id, item.submission.photo_type_id).await?;
    let data = json!({ "submission": item.submission.id, "student_no": item.student_no, "photo_type": photo_type,
        "reasons": reasons, "note": note });
    let event_payload = crate::webhooks::payload(&school.code, crate::webhooks::REJECTED, data);
    let event = Event { school: school.id, kind: crate::webhooks::REJECTED, payload: &event_payload };
    state
        .db
        .reject(item.submission.id, PhotoId(d.photo), s.staff.id, &reasons.join(","), &note, &notice, Some(&event))
        .await?;
    state.outbox_wake.notify_one();
    state
        .db
        .audit(
            &s.actor(),
            "reject",
            Some(item.school_id),
            &format!("submission:{} reasons:{}", item.submission.id, reasons.join(",")),
        )
        .await?;
    Ok(done(
        &format!("/review?school={}", item.school_id),
        crate::answers::Decided { ok: true, status: Status::Rejected, quality: None, bytes: None },
    ))
}
