//! Checking an upload and turning reports into what pages show. The file rules answer the upload at once; the full
//! check and the drawing of the annotated picture run later on the check threads (`CheckPool`; `crate::checks`
//! queues them), one per core, so a burst waits its turn rather than slowing every check down.

use std::sync::Arc;

use gradphoto_core::annotate::annotated_jpeg;
use gradphoto_core::judge::profile::BackgroundColor;
use gradphoto_core::{CheckOptions, Message, Profile, Report, Rule, Severity, Verdict};
use gradphoto_store::blob::sha256_hex;
use gradphoto_store::db::School;
use serde::Serialize;

use crate::error::{AppError, AppResult};
use crate::state::AppState;

/// The upload profile with the school's allowed background colours.
pub fn upload_profile(school: &School) -> Profile {
    let mut profile = Profile::upload();
    let allowed: Vec<BackgroundColor> = school
        .backgrounds
        .split(',')
        .filter_map(|c| serde_json::from_value(serde_json::json!(c.trim())).ok())
        .collect();
    if let Some(rule) = profile.rules.background_color.as_mut()
        && !allowed.is_empty()
    {
        rule.allowed = allowed;
    }
    profile
}

pub struct CheckedUpload {
    pub report: Report,
    /// The annotated picture as JPEG and its SHA-256, when the pixels could be decoded.
    pub annotated: Option<(Vec<u8>, String)>,
}

/// What the upload's answer says before the full check: the file rules, read from the container and metadata.
pub struct FileChecked {
    pub report: Report,
    /// SHA-256 of the original. Hashed here, on the blocking pool: 2 MB of hashing on an async worker would hold up
    /// the pages it serves.
    pub original_sha256: String,
}

fn check_options(state: &AppState) -> CheckOptions {
    CheckOptions { models: Some(state.models.clone()), ..CheckOptions::default() }
}

/// The file rules alone (no pixel decoded: a few milliseconds), for the upload's immediate answer. Not bound by
/// the cores' permits: it must not wait behind a burst's full checks.
pub async fn check_file(state: &AppState, bytes: Arc<Vec<u8>>, school: &School) -> AppResult<FileChecked> {
    let profile = upload_profile(school);
    let options = check_options(state);
    tokio::task::spawn_blocking(move || FileChecked {
        report: gradphoto_core::check::check_file("upload.jpg", &bytes, &profile, &options),
        original_sha256: sha256_hex(&bytes),
    })
    .await
    .map_err(AppError::internal)
}

/// Runs the full check of an upload and draws its annotated picture.
pub async fn check_upload(state: &AppState, bytes: Arc<Vec<u8>>, school: &School) -> AppResult<CheckedUpload> {
    let profile = upload_profile(school);
    let options = check_options(state);
    let permit = state.cpu.clone().acquire_owned().await.map_err(AppError::internal)?;
    state
        .check_pool
        .run(move || {
            // The permit lives as long as the work: a caller dropped mid-check must not free a core that its check
            // still occupies.
            let _permit = permit;
            let checked = gradphoto_core::check("upload.jpg", &bytes, &profile, &options);
            let annotated = annotated_jpeg(&checked).map(|a| {
                let sha = sha256_hex(&a);
                (a, sha)
            });
            CheckedUpload { report: checked.report, annotated }
        })
        .await
}

type Job = Box<dyn FnOnce() + Send>;

/// The threads that run full checks, at a lower CPU priority than the async workers that answer pages and
/// uploads: when both want the cores, a status page or an upload's answer goes first and the checks take what is
/// left — the same total work, in the order a waiting person notices least.
pub struct CheckPool {
    jobs: std::sync::mpsc::Sender<Job>,
}

impl CheckPool {
    pub fn new(threads: usize) -> CheckPool {
        let (jobs, queue) = std::sync::mpsc::channel::<Job>();
        let queue = Arc::new(std::sync::Mutex::new(queue));
        for i in 0..threads.max(1) {
            let queue = queue.clone();
            let spawned = std::thread::Builder::new().name(format!("check-{i}")).spawn(move || {
                lower_priority();
                loop {
                    let job = match queue.lock() {
                        Ok(q) => match q.recv() {
                            Ok(job) => job,
                            Err(_) => return,
                        },
                        Err(_) => return,
                    };
                    // A panic in a check loses that check (its caller sees an error and the lease retries it), not
                    // the thread.
                    let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(job));
                }
            });
            if let Err(e) = spawned {
                tracing::error!(error = %e, "could not start a check thread");
            }
        }
        CheckPool { jobs }
    }

    /// Runs `f` on a check thread.
    pub async fn run<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> AppResult<T> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.jobs
            .send(Box::new(move || {
                let _ = tx.send(f());
            }))
            .map_err(|_| AppError::internal("the check threads are gone"))?;
        rx.await.map_err(|_| AppError::internal("a check failed inside"))
    }
}

/// SCHED_BATCH at nice ≈ 9 (Linux weighs it about 1/8 of a page-serving thread at nice 0). Lowering a thread's
/// priority needs no privilege; where the system refuses, checks run at normal priority.
fn lower_priority() {
    use thread_priority::{NormalThreadSchedulePolicy, ThreadPriority, ThreadPriorityValue, ThreadSchedulePolicy};
    let Ok(value) = ThreadPriorityValue::try_from(23u8) else { return };
    #[cfg(unix)]
    let set = thread_priority::unix::set_thread_priority_and_policy(
        thread_priority::unix::thread_native_id(),
        ThreadPriority::Crossplatform(value),
        ThreadSchedulePolicy::Normal(NormalThreadSchedulePolicy::Batch),
    );
    #[cfg(not(unix))]
    let set = thread_priority::set_current_thread_priority(ThreadPriority::Crossplatform(value));
    if let Err(e) = set {
        tracing::warn!(error = ?e, "checks run at normal priority: lowering it was refused");
    }
}

/// Rule ids that rejected or asked for a fix, for the progress charts.
pub fn failing(report: &Report) -> String {
    let ids: Vec<&str> = report
        .findings
        .iter()
        .filter(|f| matches!(f.severity, Severity::Reject | Severity::Fixable))
        .map(|f| f.rule.id())
        .collect();
    ids.join(",")
}

/// The verdict of a photo whose full check is queued: the file rules alone do not decide it.
pub const CHECKING: &str = "checking";

pub fn verdict_str(v: Verdict) -> &'static str {
    match v {
        Verdict::Pass => "pass",
        Verdict::Fixable => "fixable",
        Verdict::Review => "review",
        Verdict::Reject => "reject",
        Verdict::Error => "error",
    }
}

pub fn verdict_text(v: Verdict) -> (&'static str, &'static str) {
    match v {
        Verdict::Pass => ("检测通过", "passes every check"),
        Verdict::Fixable => {
            ("基本合格：尺寸、裁剪等将由系统自动处理", "fine: size and framing are fixed automatically")
        }
        Verdict::Review => ("未发现不合格项，部分项目由审核员确认", "nothing fails; a reviewer confirms some points"),
        Verdict::Reject => {
            ("不符合标准，请按提示重新拍摄或上传", "does not meet the standard; retake or upload another")
        }
        Verdict::Error => ("无法读取此文件，请上传 JPEG 照片", "this file cannot be read; upload a JPEG photo"),
    }
}

/// A finding as pages show it.
#[derive(Serialize)]
pub struct FindingView {
    pub rule: &'static str,
    pub title_zh: &'static str,
    pub title_en: &'static str,
    pub severity: Severity,
    pub message: Message,
}

/// Every finding, and those that are not a pass, worst first. Fixable findings are not shown to students as
/// problems: normalisation repairs them (file size, crop, seal) without their doing anything.
pub fn findings(report: &Report, for_student: bool) -> (Vec<FindingView>, Vec<FindingView>) {
    let view = |f: &gradphoto_core::Finding| FindingView {
        rule: f.rule.id(),
        title_zh: f.rule.title().0,
        title_en: f.rule.title().1,
        severity: f.severity,
        message: f.message.clone(),
    };
    let all: Vec<FindingView> = report.findings.iter().map(view).collect();
    let mut problems: Vec<&gradphoto_core::Finding> = report
        .findings
        .iter()
        .filter(|f| {
            f.severity != Severity::Pass && !(for_student && (f.severity == Severity::Fixable || reviewer_only(f)))
        })
        .collect();
    problems.sort_by_key(|f| std::cmp::Reverse(f.severity));
    let mut problems: Vec<FindingView> = problems.into_iter().map(view).collect();
    if let Some(e) = &report.error {
        problems.insert(
            0,
            FindingView {
                rule: "format.jpeg",
                title_zh: Rule::FormatJpeg.title().0,
                title_en: Rule::FormatJpeg.title().1,
                severity: Severity::Reject,
                message: e.message.clone(),
            },
        );
    }
    (all, problems)
}

/// A clause no machine measures (headwear, jewellery, retouching): always `review`, shown to students as a note
/// rather than as a problem with their photo.
pub fn reviewer_only(f: &gradphoto_core::Finding) -> bool {
    f.severity == Severity::Review && f.measured.is_null()
}

/// The titles of the reviewer-only clauses of a report, for the student's note.
pub fn reviewer_only_titles(report: &Report) -> Vec<&'static str> {
    report.findings.iter().filter(|f| reviewer_only(f)).map(|f| f.rule.title().0).collect()
}

/// The reasons a reviewer can give: every rule of the standard, by id.
#[derive(Serialize)]
pub struct ReasonView {
    pub id: &'static str,
    pub zh: &'static str,
    pub en: &'static str,
    pub flagged: bool,
}

pub fn reasons(report: Option<&Report>) -> Vec<ReasonView> {
    Rule::ALL
        .iter()
        .map(|r| ReasonView {
            id: r.id(),
            zh: r.title().0,
            en: r.title().1,
            flagged: report
                .is_some_and(|rep| rep.findings.iter().any(|f| f.rule == *r && f.severity == Severity::Reject)),
        })
        .collect()
}

/// Status of one photo type for a student, as words.
pub fn status_text(status: &str) -> (&'static str, &'static str) {
    match status {
        "none" => ("未上传", "not uploaded"),
        "draft" => ("未提交", "not submitted"),
        "unpaid" => ("待缴费", "fee unpaid"),
        "submitted" => ("待审核", "waiting for review"),
        "in_review" => ("审核中", "in review"),
        "approved" => ("已通过", "approved"),
        "rejected" => ("未通过", "not approved"),
        "exported" => ("已上报", "sent to the registry"),
        _ => ("", ""),
    }
}

/// Sniffs the upload: the bytes must start as a JPEG (SOI then a marker), whatever its name or type claims.
pub fn looks_like_jpeg(bytes: &[u8]) -> bool {
    bytes.len() >= 3 && bytes[0] == 0xFF && bytes[1] == 0xD8 && bytes[2] == 0xFF
}
