//! What every request handler shares.

use std::sync::Arc;

use gradphoto_core::measure::face::models::FaceModels;
use gradphoto_core::seal::Sealer;
use gradphoto_store::{BlobStore, Db, Vault};

use crate::config::Config;
use crate::pay::PaymentProvider;
use crate::views::Views;

#[derive(Clone)]
pub struct AppState(pub Arc<Inner>);

pub struct Inner {
    pub config: Config,
    pub db: Db,
    pub store: Arc<dyn BlobStore>,
    pub vault: Vault,
    pub sealer: Arc<dyn Sealer>,
    pub models: Arc<FaceModels>,
    pub views: Views,
    /// This node's name in its claims (`Config::node`).
    pub node: String,
    /// Bounds the CPU-heavy work (checks, normalisation) to the cores, so a burst queues instead of thrashing.
    pub cpu: Arc<tokio::sync::Semaphore>,
    /// The threads the full checks run on, below the pages' priority.
    pub check_pool: crate::photos::CheckPool,
    /// Commits uploads in groups (`crate::uploads`).
    pub uploads: crate::uploads::Committer,
    pub payments: Arc<dyn PaymentProvider>,
    /// Wakes the outbox worker when a decision queued a message.
    pub outbox_wake: tokio::sync::Notify,
    /// Wakes this node's check workers when an upload queued a check.
    pub check_wake: tokio::sync::Notify,
    /// Each photo whose check this node's workers finished, for the pages waiting on it.
    pub checked: tokio::sync::broadcast::Sender<gradphoto_store::PhotoId>,
    /// Bounds the uploads taken in at once, from the first byte read to the answer (`Config::upload_bodies`).
    pub upload_bodies: Arc<tokio::sync::Semaphore>,
    /// Originals just taken in, for this node's own checks (`crate::fresh`).
    pub fresh: crate::fresh::FreshOriginals,
    /// The official account and WeChat Pay, when `[wechat]` is configured.
    pub wechat: Option<Arc<crate::wechat::WeChat>>,
    /// The client webhook deliveries go through (`crate::webhooks::client`).
    pub webhook_http: gradphoto_wechat::reqwest::Client,
}

impl std::ops::Deref for AppState {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}
