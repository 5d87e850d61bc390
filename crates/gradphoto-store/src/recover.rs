//! Start-up recovery of the two-step writes: after a crash, files staged for a committed row are published,
//! staged files without a row are discarded, and published files no row names (a replaced photo whose deletion was
//! cut short) are removed. Runs before the service accepts requests.

use std::collections::HashSet;

use serde::Serialize;

use crate::blob::{BlobError, BlobKey, BlobStore};
use crate::db::{Db, DbError};

#[derive(Debug, Default, Clone, Serialize)]
pub struct Recovery {
    pub published: usize,
    pub discarded: usize,
    pub orphans_removed: usize,
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

pub async fn recover(db: &Db, store: &dyn BlobStore) -> Result<Recovery, RecoverError> {
    let named: HashSet<BlobKey> = db.blob_keys().await?.into_iter().collect();
    let mut r = Recovery::default();
    for key in store.staged().await? {
        if named.contains(&key) {
            store.publish(&key).await?;
            r.published += 1;
        } else {
            store.discard(&key).await?;
            r.discarded += 1;
        }
    }
    let published: HashSet<BlobKey> = store.published().await?.into_iter().collect();
    for key in published.difference(&named) {
        store.delete(key).await?;
        r.orphans_removed += 1;
    }
    r.missing = named.difference(&published).map(|k| k.to_string()).collect();
    r.missing.sort();
    Ok(r)
}
