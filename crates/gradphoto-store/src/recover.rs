//! Start-up recovery of the two-step writes: after a crash, files staged for a committed row are published,
//! staged files without a row are discarded, and published files no row names (a replaced photo whose deletion was
//! cut short) are removed. Runs before the service accepts requests.
//!
//! With several nodes on one database and one bucket, the others keep writing while a node starts: a file they
//! staged but whose row is not committed yet looks exactly like a crash's leftover, and so does a file they
//! published after this node read the rows. So unnamed files are removed only when older than a grace period
//! (`grace_ms`, well above the seconds between a stage and its commit, and above clock skew between nodes and the
//! store); younger ones are left for a later start-up and counted. The rows are read *before* the store is listed,
//! so a file whose row is committed after that read is young when listed and left alone. Publishing a named file
//! is safe at any age: publishing is idempotent, and a row, once committed, wants its file published.

use std::collections::HashSet;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::Serialize;

use crate::blob::{BlobError, BlobKey, BlobStore};
use crate::db::{Db, DbError};

#[derive(Debug, Default, Clone, Serialize)]
pub struct Recovery {
    pub published: usize,
    pub discarded: usize,
    pub orphans_removed: usize,
    /// Unnamed files (staged or published) younger than the grace period: perhaps another node's write in flight.
    pub young_left: usize,
    /// Rows whose file is in neither place: data lost outside our control (disk, operator); reported, not hidden.
    pub missing: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum RecoverError {
    #[error(transparent)]
    Db(#[from] DbError),
    #[error(transparent)]
    Blob(#[from] BlobError),
}

/// Recovers the store against the rows; unnamed files younger than `grace_ms` are left alone (0 or less: none
/// are, for a single node or when every node is stopped).
pub async fn recover(db: &Db, store: &dyn BlobStore, grace_ms: i64) -> Result<Recovery, RecoverError> {
    // First the rows, then the listings: see the module's note on ordering.
    let named: HashSet<BlobKey> = db.blob_keys().await?.into_iter().collect();
    let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64);
    let young = |modified_ms: i64| grace_ms > 0 && now.saturating_sub(modified_ms) < grace_ms;
    let mut r = Recovery::default();
    for l in store.staged().await? {
        if named.contains(&l.key) {
            store.publish(&l.key).await?;
            r.published += 1;
        } else if young(l.modified_ms) {
            r.young_left += 1;
        } else {
            store.discard(&l.key).await?;
            r.discarded += 1;
        }
    }
    let mut published = HashSet::new();
    for l in store.published().await? {
        if named.contains(&l.key) {
            published.insert(l.key);
        } else if young(l.modified_ms) {
            r.young_left += 1;
        } else {
            store.delete(&l.key).await?;
            r.orphans_removed += 1;
        }
    }
    r.missing = named.difference(&published).map(|k| k.to_string()).collect();
    r.missing.sort();
    Ok(r)
}
