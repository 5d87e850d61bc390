//! `gradphoto admin backup --to DIR`: a copy of a data folder that is itself a data folder — the database as one
//! consistent snapshot, the files its rows name, the key file and the settings — taken while the service runs.
//! Restoring is starting the service on that folder (`gradphoto serve --data DIR`); start-up recovery then checks
//! that every row's file is there. For PostgreSQL the database is dumped with `pg_dump`; see docs/deployment.md.

use std::path::Path;

use gradphoto_store::backup::{Copied, copy_files, snapshot_sqlite};
use gradphoto_store::{BlobStore, Db, LocalStore, S3Store};
use serde::Serialize;

use crate::config::Config;

#[derive(Debug, Serialize)]
pub struct BackupReport {
    pub database: String,
    pub files: Copied,
    /// Settings of the source that point outside the data folder and so still point there from the copy.
    pub warnings: Vec<String>,
}

pub async fn backup(data: &Path, config: &Config, to: &Path) -> Result<BackupReport, String> {
    if to.exists() && std::fs::read_dir(to).map_err(|e| e.to_string())?.next().is_some() {
        return Err(format!("{} is not empty", to.display()));
    }
    std::fs::create_dir_all(to).map_err(|e| format!("{}: {e}", to.display()))?;
    let db = Db::connect(&config.database_url(data)).await.map_err(|e| e.to_string())?;
    let db_copy = to.join("gradphoto.db");
    snapshot_sqlite(&db, &db_copy).await.map_err(|e| e.to_string())?;
    db.close().await;
    let snapshot = Db::connect(&format!("sqlite:{}", db_copy.display())).await.map_err(|e| e.to_string())?;
    let from: Box<dyn BlobStore> = match &config.s3 {
        Some(s3) => Box::new(S3Store::open(s3).map_err(|e| e.to_string())?),
        None => Box::new(LocalStore::open(config.store_dir(data)).await.map_err(|e| e.to_string())?),
    };
    let dest = LocalStore::open(to.join("store")).await.map_err(|e| e.to_string())?;
    let files = copy_files(&snapshot, from.as_ref(), &dest).await.map_err(|e| e.to_string())?;
    snapshot.close().await;
    for name in ["keys.toml", "config.toml"] {
        let src = data.join(name);
        if src.exists() {
            std::fs::copy(&src, to.join(name)).map_err(|e| format!("{}: {e}", src.display()))?;
        }
    }
    let mut warnings = Vec::new();
    if config.s3.is_some() {
        warnings.push("config.toml names an S3 bucket: remove [s3] from the copy to use its own store/".into());
    }
    if config.store_dir.is_some() || config.database_url.is_some() {
        warnings.push("config.toml names a database or store outside the folder: remove them from the copy".into());
    }
    Ok(BackupReport { database: db_copy.display().to_string(), files, warnings })
}
