//! The check queue. An upload is answered with the file rules' verdict and its place in the queue as soon as its
//! row is committed; the full check (faces, framing, background, the annotated picture) runs here, on whichever
//! node claims it first, oldest upload first (`Db::claim_check`). Each node runs a check thread per core (two
//! workers feed each, see `crate::serve`), so a burst is checked at the speed of all the cores of all the nodes, in
//! arrival order, while pages keep answering.
//!
//! A claim is a lease: a node that dies mid-check leaves the photo to another node when the lease ends. Finishing
//! is idempotent (`Db::complete_check` writes only over a queued row), so a check finished twice is written once.
//! Pages that wait for a result (`wait_checked`) are woken by this node's workers at once, and look again every
//! second for checks that other nodes finish.

use std::sync::Arc;
use std::time::Duration;

use gradphoto_core::Message;
use gradphoto_core::judge::report::{Report, ReportError};
use gradphoto_store::db::{BlobMeta, CheckResult, Photo};
use gradphoto_store::{BlobKey, PhotoId};

use crate::photos;
use crate::state::AppState;

/// How long a claimed check is this node's: far longer than a check takes (~50 ms of CPU; minutes of queue are
/// not counted, the claim is taken when the work starts), short enough that a dead node's check waits little.
pub const LEASE_MS: i64 = 30_000;

/// A photo claimed this many times without being finished has taken its checker down each time: it is given up
/// with an error report (a reviewer can still look at it) instead of taking down node after node.
const MAX_CLAIMS: i64 = 3;

/// How often an idle worker looks for checks queued by other nodes (its own node wakes it at once).
const IDLE_LOOK: Duration = Duration::from_secs(2);

/// How often a waiting page looks for a result that another node wrote.
const WAIT_LOOK: Duration = Duration::from_secs(1);

/// One check worker: claims, checks, writes, wakes the waiters; forever.
pub async fn run(state: AppState) {
    loop {
        match state.db.claim_check(&state.node, LEASE_MS).await {
            Ok(Some(photo)) => check_one(&state, photo).await,
            Ok(None) => {
                let _ = tokio::time::timeout(IDLE_LOOK, state.check_wake.notified()).await;
            }
            Err(e) => {
                tracing::warn!(error = %e, "claiming a check failed");
                tokio::time::sleep(IDLE_LOOK).await;
            }
        }
    }
}

async fn check_one(state: &AppState, photo: Photo) {
    let outcome = if photo.check_claims > MAX_CLAIMS {
        tracing::error!(photo = photo.id.0, claims = photo.check_claims, "check given up after repeated claims");
        give_up(state, &photo).await
    } else {
        full_check(state, &photo).await
    };
    match outcome {
        // The waiters are told even when nothing was written (the photo was replaced, or finished elsewhere):
        // they read the row again either way.
        Ok(()) => {
            let _ = state.checked.send(photo.id);
        }
        // The store or database failed: the lease runs out and a worker (maybe on another node) tries again.
        Err(e) => tracing::warn!(photo = photo.id.0, error = %e, "check failed; retried when its lease ends"),
    }
}

/// Checks the photo and writes the result. The annotated picture is derived: it is written straight to its place
/// before the row names it (`BlobStore::put`), and deleted if the row is not written.
async fn full_check(state: &AppState, photo: &Photo) -> Result<(), String> {
    let original = match state.fresh.take(&photo.original_key) {
        Some(b) => b,
        None => match state.store.get(&photo.original_key).await {
            Ok(b) => Arc::new(b),
            // Replaced meanwhile: its row and files are gone, nothing to check.
            Err(gradphoto_store::BlobError::NotFound) if state.db.photo(photo.id).await.is_err() => return Ok(()),
            Err(e) => return Err(e.to_string()),
        },
    };
    let student = state.db.student(photo.student_id).await.map_err(|e| e.to_string())?;
    let school = state.db.school(student.school_id).await.map_err(|e| e.to_string())?;
    let checked = photos::check_upload(state, original, &school).await.map_err(|e| format!("{e:?}"))?;
    let annotated = match &checked.annotated {
        Some((bytes, sha)) => {
            let meta = BlobMeta { key: BlobKey::new("annotated"), bytes: bytes.len() as i64, sha256: sha.clone() };
            state.store.put(&meta.key, bytes).await.map_err(|e| e.to_string())?;
            Some(meta)
        }
        None => None,
    };
    let result = result_of(&checked.report, annotated.clone())?;
    let written = match state.db.complete_check(photo.id, &result).await {
        Ok(w) => w,
        Err(e) => {
            if let Some(a) = &annotated {
                let _ = state.store.delete(&a.key).await;
            }
            return Err(e.to_string());
        }
    };
    if !written && let Some(a) = &annotated {
        let _ = state.store.delete(&a.key).await;
    }
    Ok(())
}

/// Writes the file rules the photo was answered with and an error saying the picture could not be analysed.
async fn give_up(state: &AppState, photo: &Photo) -> Result<(), String> {
    let mut report: Report = serde_json::from_str(&photo.report).map_err(|e| e.to_string())?;
    report.error = Some(ReportError {
        code: "analysis.failed".into(),
        message: Message::new("照片无法分析，请换一张重新上传", "the photo could not be analysed; upload another"),
    });
    report.settle();
    state.db.complete_check(photo.id, &result_of(&report, None)?).await.map_err(|e| e.to_string())?;
    Ok(())
}

/// The row's fields for a finished report.
fn result_of(report: &Report, annotated: Option<BlobMeta>) -> Result<CheckResult, String> {
    Ok(CheckResult {
        annotated,
        verdict: photos::verdict_str(report.verdict).to_string(),
        failing: photos::failing(report),
        report: serde_json::to_string(report).map_err(|e| e.to_string())?,
    })
}

/// What a page waiting for a check learns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Waited {
    /// The full report is in the row.
    Checked,
    /// Still queued or running when the wait ended: its place in the queue (1 = next or running).
    Queued(i64),
    /// The photo was replaced by a newer upload.
    Gone,
}

/// Waits up to `max` for the photo's check to end.
pub async fn wait_checked(state: &AppState, photo: PhotoId, max: Duration) -> Waited {
    let deadline = tokio::time::Instant::now() + max;
    // Subscribed before the first look, so a result written between the look and the wait is not missed.
    let mut done = state.checked.subscribe();
    loop {
        match state.db.photo(photo).await {
            Ok(p) if !p.checking() => return Waited::Checked,
            Ok(_) => {}
            Err(_) => return Waited::Gone,
        }
        let now = tokio::time::Instant::now();
        if now >= deadline {
            return Waited::Queued(state.db.check_place(photo).await.unwrap_or(0).max(1));
        }
        let until = deadline.min(now + WAIT_LOOK);
        // Woken when this node finishes this photo (or lags behind the channel); otherwise look again at `until`.
        let _ = tokio::time::timeout_at(until, async {
            loop {
                match done.recv().await {
                    Ok(id) if id == photo => return,
                    Ok(_) => continue,
                    Err(_) => return,
                }
            }
        })
        .await;
    }
}
