//! The outbox worker against a channel that is down, then up: the message is kept, retried after the backoff,
//! delivered once. A service that is opened but not served, so no background worker races the test.

use gradphoto_store::blob::{BlobKey, sha256_hex};
use gradphoto_store::db::{BlobMeta, NewPhoto, NewSchool, Notice, OutboxItem, Role, StudentUpsert};
use gradphoto_web::state::AppState;
use gradphoto_web::worker::{Channel, Delivery, InSite, backoff_ms, deliver_due};

struct Down;

#[async_trait::async_trait]
impl Channel for Down {
    async fn deliver(&self, _: &AppState, _: &OutboxItem) -> Delivery {
        Delivery::Retry("channel down".into())
    }
}

#[tokio::test]
async fn a_failed_delivery_is_kept_and_retried_after_the_backoff() {
    let dir = tempfile::tempdir().unwrap();
    let state = gradphoto_web::open(dir.path(), crate::common::config()).await.unwrap();
    let db = &state.db;
    let region = db.upsert_region("p", "c").await.unwrap();
    let school = db
        .create_school(&NewSchool {
            region_id: region,
            code: "o".into(),
            name: "o".into(),
            fee_cents: 0,
            opens_at: None,
            closes_at: None,
            backgrounds: "light_blue".into(),
        })
        .await
        .unwrap();
    let row = StudentUpsert {
        student_no: "1".into(),
        name: "n".into(),
        id_kind: "mainland".into(),
        id_cipher: state.vault.seal("c", "1"),
        id_hash: state.vault.lookup_hash("1"),
        college: None,
        degree_level: None,
    };
    db.import_students(school, &[row]).await.unwrap();
    let student = db.student_by_no(school, "1").await.unwrap().unwrap();
    let t = db.photo_types(school).await.unwrap()[0].id;
    let meta = BlobMeta { key: BlobKey::new("original"), bytes: 1, sha256: sha256_hex(b"x") };
    let up = NewPhoto {
        student: student.id,
        photo_type: t,
        original: meta,
        annotated: None,
        verdict: "pass".into(),
        failing: String::new(),
        report: "{}".into(),
        checked: true,
    };
    let photo = db.photo(db.record_upload(&up).await.unwrap().photo).await.unwrap();
    let notice = |kind, title| Notice { kind, title, body: "原因", payload: "{}" };
    let sub = db.submit(&photo, true, &notice("submitted", "已提交")).await.unwrap();
    // The submit's own notice goes first; the rejection's is the one that meets the channel that is down.
    assert_eq!(deliver_due(&state, &InSite).await, 1);
    let reviewer = db.create_staff("r", Role::Reviewer, Some(school), "h").await.unwrap();
    db.reject(sub, photo.id, reviewer, "background.color", "", &notice("rejected", "驳回"), None).await.unwrap();

    assert_eq!(deliver_due(&state, &Down).await, 0);
    assert_eq!(db.outbox_pending().await.unwrap(), 1, "kept");
    assert!(db.due_outbox(10).await.unwrap().is_empty(), "not retried at once");
    assert_eq!(db.notifications(student.id, 10).await.unwrap().len(), 1);
    assert_eq!((backoff_ms(0), backoff_ms(3), backoff_ms(40)), (60_000, 480_000, 3_600_000));
    // Due again (as after the backoff): the channel is up, the message arrives once.
    db.outbox_failed(gradphoto_store::OutboxId(2), "down", Some(0)).await.unwrap();
    assert_eq!(deliver_due(&state, &InSite).await, 1);
    assert_eq!(deliver_due(&state, &InSite).await, 0);
    let n = db.notifications(student.id, 10).await.unwrap();
    assert_eq!((n.len(), n[0].title.as_str()), (2, "驳回"));
}
