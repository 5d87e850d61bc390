//! Backups of a running service. The metadata first, as one consistent snapshot (SQLite's `VACUUM INTO`, taken
//! while the service writes); then every file that snapshot names, copied through the [`BlobStore`] trait, so the
//! source may be the local folder or an S3 bucket. Files are immutable once published, so a file copied after the
//! snapshot is the one the snapshot's row means; a file deleted in between (a photo replaced meanwhile) is reported.
//! PostgreSQL is backed up with its own tools (`pg_dump`), and the files with [`copy_files`].

use std::path::Path;

use serde::Serialize;

use crate::blob::{BlobError, BlobKey, BlobStore};
use crate::db::{Backend, Db, DbError};

#[derive(Debug, Default, Clone, Serialize)]
pub struct Copied {
    pub files: usize,
    pub bytes: u64,
    /// Rows of the snapshot whose file was gone when copied (replaced since), by key.
    pub missing: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error(transparent)]
    Db(#[from] DbError),
    #[error(transparent)]
    Blob(#[from] BlobError),
    #[error("{0}")]
    Unsupported(&'static str),
    #[error("{0}: {1}")]
    Io(String, std::io::Error),
}

/// Writes a consistent copy of a SQLite database to `to` (which must not exist).
pub async fn snapshot_sqlite(db: &Db, to: &Path) -> Result<(), BackupError> {
    if db.backend() != Backend::Sqlite {
        return Err(BackupError::Unsupported("the database is PostgreSQL: back it up with pg_dump"));
    }
    if to.exists() {
        return Err(BackupError::Io(to.display().to_string(), std::io::ErrorKind::AlreadyExists.into()));
    }
    db.vacuum_into(to).await?;
    Ok(())
}

/// Copies every file the rows of `snapshot` name from `from` into `to` (staged, then published, as the service
/// writes them).
pub async fn copy_files(snapshot: &Db, from: &dyn BlobStore, to: &dyn BlobStore) -> Result<Copied, BackupError> {
    let mut c = Copied::default();
    for key in snapshot.blob_keys().await? {
        match from.get(&key).await {
            Ok(bytes) => {
                to.stage(&key, &bytes).await?;
                to.publish(&key).await?;
                c.files += 1;
                c.bytes += bytes.len() as u64;
            }
            Err(BlobError::NotFound) => c.missing.push(BlobKey::to_string(&key)),
            Err(e) => return Err(e.into()),
        }
    }
    Ok(c)
}
