//! Delivers the outbox: each queued message goes through its channel; a failure is retried with backoff
//! (1 min, 2, 4 … up to an hour). Delivery is at least once, so channels must be idempotent per message — the
//! in-site channel keys its rows by the outbox id.

use std::time::Duration;

use gradphoto_store::db::OutboxItem;
use gradphoto_store::now_ms;

use crate::state::AppState;

/// Where a message goes. WeChat template messages will be another implementation.
#[async_trait::async_trait]
pub trait Channel: Send + Sync {
    async fn deliver(&self, state: &AppState, item: &OutboxItem) -> Result<(), String>;
}

/// The student's inbox on the site.
pub struct InSite;

#[async_trait::async_trait]
impl Channel for InSite {
    async fn deliver(&self, state: &AppState, item: &OutboxItem) -> Result<(), String> {
        state.db.notify_in_site(item).await.map_err(|e| e.to_string())
    }
}

pub fn backoff_ms(attempts: i64) -> i64 {
    60_000i64.saturating_mul(1 << attempts.clamp(0, 6)).min(3_600_000)
}

/// Delivers what is due; returns how many were delivered.
pub async fn deliver_due(state: &AppState, channel: &dyn Channel) -> usize {
    let Ok(items) = state.db.due_outbox(100).await else { return 0 };
    let mut delivered = 0;
    for item in items {
        match channel.deliver(state, &item).await {
            Ok(()) => {
                if state.db.outbox_delivered(item.id).await.is_ok() {
                    delivered += 1;
                }
            }
            Err(e) => {
                tracing::warn!(outbox = item.id.0, attempts = item.attempts + 1, "delivery failed, will retry");
                let _ = state.db.outbox_failed(item.id, &e, now_ms() + backoff_ms(item.attempts)).await;
            }
        }
    }
    delivered
}

pub async fn run(state: AppState) {
    let channel = InSite;
    loop {
        deliver_due(&state, &channel).await;
        // Woken at once by a decision, and every few seconds for retries that came due.
        let _ = tokio::time::timeout(Duration::from_secs(5), state.outbox_wake.notified()).await;
    }
}
