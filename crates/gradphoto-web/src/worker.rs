//! Delivers the outbox: each queued message goes through its channel — the student's inbox on the site, for a
//! student bound to WeChat a template message, and for a school with a webhook its events (`crate::webhooks`). A failure is retried with backoff (1 min, 2, 4 … up to an hour);
//! after `max_attempts`, or at once when retrying cannot help (the user unfollowed, a refused template), the row
//! becomes a dead letter that an admin sees and can resend. Delivery is at least once, so channels are idempotent
//! per message: the in-site channel keys its rows by the outbox id, the WeChat channel sends the outbox id as
//! `client_msg_id`, the webhook channel as the delivery id receivers de-duplicate on.
//!
//! Every node runs this loop: rows are claimed with a lease (`Db::claim_outbox`), so two nodes never deliver one
//! row at once, and a node that dies leaves rows that another takes when the lease ends. The same loop runs the
//! WeChat Pay reconciliation every few minutes.

use std::time::Duration;

use gradphoto_store::db::OutboxItem;
use gradphoto_store::now_ms;

use crate::state::AppState;

/// What one delivery came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delivery {
    Done,
    /// Nothing to send on this channel (no template for the event, the binding released since): done.
    Skipped,
    /// Failed in a way that may pass: try again after the backoff.
    Retry(String),
    /// Failed in a way that will not pass by waiting.
    Dead(String),
}

/// Where a message goes.
#[async_trait::async_trait]
pub trait Channel: Send + Sync {
    async fn deliver(&self, state: &AppState, item: &OutboxItem) -> Delivery;
}

/// The student's inbox on the site.
pub struct InSite;

#[async_trait::async_trait]
impl Channel for InSite {
    async fn deliver(&self, state: &AppState, item: &OutboxItem) -> Delivery {
        if item.student_id.is_none() {
            return Delivery::Dead("an in-site message without a student".into());
        }
        match state.db.notify_in_site(item).await {
            Ok(()) => Delivery::Done,
            Err(e) => Delivery::Retry(e.to_string()),
        }
    }
}

/// Every channel, chosen by the row's `channel`.
pub struct Channels;

#[async_trait::async_trait]
impl Channel for Channels {
    async fn deliver(&self, state: &AppState, item: &OutboxItem) -> Delivery {
        match item.channel.as_str() {
            "site" => InSite.deliver(state, item).await,
            "wechat" => crate::wechat::deliver(state, item).await,
            "webhook" => crate::webhooks::deliver(state, item).await,
            other => Delivery::Dead(format!("unknown channel {other:?}")),
        }
    }
}

pub fn backoff_ms(attempts: i64) -> i64 {
    60_000i64.saturating_mul(1 << attempts.clamp(0, 6)).min(3_600_000)
}

fn max_attempts(state: &AppState) -> i64 {
    state.wechat.as_ref().map_or(8, |w| w.config.max_attempts.max(1))
}

/// How long a claimed row is this node's: longer than a delivery can take (WeChat's calls time out in 10 s), short
/// enough that a node's death delays its messages by minutes, not hours.
pub const LEASE_MS: i64 = 5 * 60_000;

/// Claims what is due (rows no other node holds) and delivers the students' messages through `channel`; returns how
/// many of those were delivered. A school's webhook events go on in the background, through their own channel.
pub async fn deliver_due(state: &AppState, channel: &dyn Channel) -> usize {
    let claimed = tokio::time::Instant::now();
    let Ok(items) = state.db.claim_outbox(&state.node, 100, LEASE_MS).await else { return 0 };
    // A school's receiver is outside our control and may hang up to its timeout on every event: its events are
    // delivered in a task of their own, in order, so that a slow school holds up neither the students' messages nor
    // other schools. Each stops when half the lease is gone and leaves the rest to a later claim, so that no row is
    // sent after its lease could have passed to another node.
    let (events, messages): (Vec<_>, Vec<_>) = items.into_iter().partition(|i| i.channel == "webhook");
    let mut schools: std::collections::BTreeMap<_, Vec<OutboxItem>> = std::collections::BTreeMap::new();
    for e in events {
        schools.entry(e.school_id).or_default().push(e);
    }
    let until = claimed + Duration::from_millis(u64::try_from(LEASE_MS / 2).unwrap_or(0));
    for (_, events) in schools {
        let state = state.clone();
        tokio::spawn(async move {
            for item in events {
                if tokio::time::Instant::now() >= until {
                    break;
                }
                deliver_one(&state, &Channels, &item).await;
            }
        });
    }
    let mut delivered = 0;
    for item in messages {
        delivered += usize::from(deliver_one(state, channel, &item).await);
    }
    delivered
}

/// Delivers one claimed row and records how it went; true when it was delivered.
async fn deliver_one(state: &AppState, channel: &dyn Channel, item: &OutboxItem) -> bool {
    match channel.deliver(state, item).await {
        Delivery::Done | Delivery::Skipped => state.db.outbox_delivered(item.id).await.is_ok(),
        Delivery::Retry(e) if item.attempts + 1 < max_attempts(state) => {
            tracing::warn!(outbox = item.id.0, attempts = item.attempts + 1, channel = %item.channel, "delivery failed, will retry");
            let _ = state.db.outbox_failed(item.id, &e, Some(now_ms() + backoff_ms(item.attempts))).await;
            false
        }
        Delivery::Retry(e) | Delivery::Dead(e) => {
            tracing::error!(outbox = item.id.0, attempts = item.attempts + 1, channel = %item.channel, "delivery failed for good: dead letter");
            let _ = state.db.outbox_failed(item.id, &e, None).await;
            false
        }
    }
}

/// How often unpaid WeChat Pay orders are asked about.
const RECONCILE_EVERY: Duration = Duration::from_secs(300);

pub async fn run(state: AppState) {
    let mut last_reconcile = tokio::time::Instant::now();
    loop {
        deliver_due(&state, &Channels).await;
        // Every node looks every period; the one that claims the job's lease runs it.
        let lease = i64::try_from(RECONCILE_EVERY.as_millis()).unwrap_or(i64::MAX);
        if last_reconcile.elapsed() >= RECONCILE_EVERY {
            last_reconcile = tokio::time::Instant::now();
            if state.db.claim_job("reconcile-and-purge", &state.node, lease - 1_000).await.unwrap_or(false) {
                let r = crate::wechat::reconcile(&state, None, 60_000).await;
                if r.asked > 0 {
                    tracing::info!(asked = r.asked, paid = r.paid, failed = r.failed, "payment reconciliation");
                }
                let _ = state.db.purge_oauth_states().await;
                let _ = state.db.purge_attempts(3_600_000).await;
            }
        }
        // Woken at once by a decision, and every few seconds for retries that came due.
        let _ = tokio::time::timeout(Duration::from_secs(5), state.outbox_wake.notified()).await;
    }
}
