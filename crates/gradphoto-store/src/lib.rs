//! gradphoto-store: where the service keeps things. Two separate seams, as the data is separate:
//! - [`db::Db`], the metadata repository: schools, rosters, accounts, photos' reports, submissions, the outbox and
//!   the audit log, on SQLite (default, embedded) or PostgreSQL (for scale), one set of queries for both;
//! - [`blob::BlobStore`], the byte store: originals, annotated pictures and registered files, staged first and made
//!   visible only after the metadata that names them is committed ([`blob::LocalStore`] on disk).
//!
//! Identity-document numbers never reach either in the clear: [`vault::Vault`] encrypts them and gives the keyed
//! hash they are found by.

pub mod backup;
pub mod blob;
pub mod db;
pub mod ids;
pub mod recover;
pub mod s3;
pub mod vault;

pub use blob::{BlobError, BlobKey, BlobStore, LocalStore};
pub use db::{Db, DbError};
pub use ids::*;
pub use s3::{S3Config, S3Store};
pub use vault::{Vault, VaultError};

/// Now, in Unix milliseconds: every time in the database is one of these.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}
