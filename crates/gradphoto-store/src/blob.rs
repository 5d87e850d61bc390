//! The byte store. A file is written in two steps: [`BlobStore::stage`] puts it where nobody reads it, the caller
//! commits the metadata that names it, then [`BlobStore::publish`] makes it visible. A crash between the two leaves a
//! staged file that [`crate::recover`] publishes (its row exists) or removes (it does not): nothing orphaned, nothing
//! missing.

use std::path::{Path, PathBuf};

use async_trait::async_trait;
use rand::RngCore;
use sha2::{Digest, Sha256};

#[derive(Debug, thiserror::Error)]
pub enum BlobError {
    #[error("no such file in the store")]
    NotFound,
    #[error("not a store key")]
    BadKey,
    #[error("the store failed: {0}")]
    Io(#[from] std::io::Error),
}

/// `<kind>-<32 hex>`; kinds are lowercase words. Random, so a key reveals nothing about its student.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BlobKey(String);

impl BlobKey {
    pub fn new(kind: &str) -> BlobKey {
        let mut r = [0u8; 16];
        rand::rng().fill_bytes(&mut r);
        let hex: String = r.iter().map(|b| format!("{b:02x}")).collect();
        BlobKey(format!("{kind}-{hex}"))
    }

    pub fn parse(s: &str) -> Result<BlobKey, BlobError> {
        let (kind, hex) = s.split_once('-').ok_or(BlobError::BadKey)?;
        let kind_ok = !kind.is_empty() && kind.len() <= 16 && kind.bytes().all(|b| b.is_ascii_lowercase());
        let hex_ok = hex.len() == 32 && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
        if kind_ok && hex_ok { Ok(BlobKey(s.to_string())) } else { Err(BlobError::BadKey) }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn kind(&self) -> &str {
        self.0.split_once('-').map_or("", |(k, _)| k)
    }
}

impl std::fmt::Display for BlobKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// A key found by listing the store, with its file's last-modified time (ms since the Unix epoch): recovery leaves
/// young files alone, since another live node may be between writing one and committing its row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    pub key: BlobKey,
    pub modified_ms: i64,
}

/// SHA-256 in hex, kept with each blob's row so a damaged file is noticed.
pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

#[async_trait]
pub trait BlobStore: Send + Sync + std::fmt::Debug {
    /// Writes the bytes where readers do not look; complete or absent after a crash.
    async fn stage(&self, key: &BlobKey, bytes: &[u8]) -> Result<(), BlobError>;
    /// Makes a staged file visible. Publishing an already published key is a success (recovery may repeat it).
    async fn publish(&self, key: &BlobKey) -> Result<(), BlobError>;
    /// Removes a staged file that will not be published.
    async fn discard(&self, key: &BlobKey) -> Result<(), BlobError>;
    /// The bytes of a published file (or of a staged one whose row is committed but not yet published).
    async fn get(&self, key: &BlobKey) -> Result<Vec<u8>, BlobError>;
    /// Writes a file straight to where readers look, for a file derived from others (the annotated picture) whose
    /// row is committed after: a crash before the row leaves an unnamed published file, which recovery removes
    /// once it is older than the grace — one write instead of stage, publish (on S3: put, copy, delete).
    async fn put(&self, key: &BlobKey, bytes: &[u8]) -> Result<(), BlobError>;
    /// Removes a published file; absent is a success.
    async fn delete(&self, key: &BlobKey) -> Result<(), BlobError>;
    /// Keys staged and not yet published or discarded, sorted by key.
    async fn staged(&self) -> Result<Vec<Listed>, BlobError>;
    /// Keys published, sorted by key.
    async fn published(&self) -> Result<Vec<Listed>, BlobError>;
}

/// Files under one folder: `staging/<key>` and `objects/<2 hex>/<key>`.
#[derive(Debug, Clone)]
pub struct LocalStore {
    root: PathBuf,
}

const PART: &str = ".part";

impl LocalStore {
    pub async fn open(root: impl Into<PathBuf>) -> Result<LocalStore, BlobError> {
        let root = root.into();
        tokio::fs::create_dir_all(root.join("staging")).await?;
        tokio::fs::create_dir_all(root.join("objects")).await?;
        Ok(LocalStore { root })
    }

    fn staged_path(&self, key: &BlobKey) -> PathBuf {
        self.root.join("staging").join(key.as_str())
    }

    fn object_dir(&self, key: &BlobKey) -> PathBuf {
        let hex = key.as_str().rsplit('-').next().unwrap_or("00");
        self.root.join("objects").join(&hex[..2])
    }

    fn object_path(&self, key: &BlobKey) -> PathBuf {
        self.object_dir(key).join(key.as_str())
    }
}

/// Writes `path` whole: a `.part` file, flushed to disk, renamed.
async fn write_durable(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let part = path.with_extension(PART.trim_start_matches('.'));
    let file = {
        use tokio::io::AsyncWriteExt;
        let mut f = tokio::fs::File::create(&part).await?;
        f.write_all(bytes).await?;
        f.sync_all().await?;
        f
    };
    drop(file);
    tokio::fs::rename(&part, path).await
}

async fn sync_dir(dir: &Path) {
    // Directory fsync makes the rename durable; some file systems refuse it, which is not an error for us.
    if let Ok(f) = tokio::fs::File::open(dir).await {
        let _ = f.sync_all().await;
    }
}

#[async_trait]
impl BlobStore for LocalStore {
    async fn stage(&self, key: &BlobKey, bytes: &[u8]) -> Result<(), BlobError> {
        let path = self.staged_path(key);
        write_durable(&path, bytes).await?;
        sync_dir(&self.root.join("staging")).await;
        Ok(())
    }

    async fn publish(&self, key: &BlobKey) -> Result<(), BlobError> {
        let from = self.staged_path(key);
        let (dir, to) = (self.object_dir(key), self.object_path(key));
        tokio::fs::create_dir_all(&dir).await?;
        match tokio::fs::rename(&from, &to).await {
            Ok(()) => {
                sync_dir(&dir).await;
                Ok(())
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                if tokio::fs::try_exists(&to).await? {
                    Ok(())
                } else {
                    Err(BlobError::NotFound)
                }
            }
            Err(e) => Err(e.into()),
        }
    }

    async fn discard(&self, key: &BlobKey) -> Result<(), BlobError> {
        remove_if_present(&self.staged_path(key)).await
    }

    async fn get(&self, key: &BlobKey) -> Result<Vec<u8>, BlobError> {
        // Published, or still staged (its row committed, the publish not yet done) — or published between those
        // two looks (renamed from staging), so a miss in both places looks once more where it is now.
        for path in [self.object_path(key), self.staged_path(key), self.object_path(key)] {
            if let Some(bytes) = read_if_present(&path).await? {
                return Ok(bytes);
            }
        }
        Err(BlobError::NotFound)
    }

    async fn put(&self, key: &BlobKey, bytes: &[u8]) -> Result<(), BlobError> {
        let dir = self.object_dir(key);
        tokio::fs::create_dir_all(&dir).await?;
        write_durable(&self.object_path(key), bytes).await?;
        sync_dir(&dir).await;
        Ok(())
    }

    async fn delete(&self, key: &BlobKey) -> Result<(), BlobError> {
        remove_if_present(&self.object_path(key)).await
    }

    async fn staged(&self) -> Result<Vec<Listed>, BlobError> {
        let mut keys = Vec::new();
        let mut dir = tokio::fs::read_dir(self.root.join("staging")).await?;
        while let Some(entry) = dir.next_entry().await? {
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if name.ends_with(PART) {
                // A write cut short by a crash: never complete, never named by a row.
                let _ = tokio::fs::remove_file(entry.path()).await;
                continue;
            }
            if let Ok(key) = BlobKey::parse(&name)
                && let Some(modified_ms) = modified_ms(&entry.path()).await?
            {
                keys.push(Listed { key, modified_ms });
            }
        }
        keys.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(keys)
    }

    async fn published(&self) -> Result<Vec<Listed>, BlobError> {
        let mut keys = Vec::new();
        let mut shards = tokio::fs::read_dir(self.root.join("objects")).await?;
        while let Some(shard) = shards.next_entry().await? {
            if !shard.file_type().await?.is_dir() {
                continue;
            }
            let mut dir = tokio::fs::read_dir(shard.path()).await?;
            while let Some(entry) = dir.next_entry().await? {
                if let Ok(key) = BlobKey::parse(&entry.file_name().to_string_lossy())
                    && let Some(modified_ms) = modified_ms(&entry.path()).await?
                {
                    keys.push(Listed { key, modified_ms });
                }
            }
        }
        keys.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(keys)
    }
}

/// A file's mtime in ms since the Unix epoch (negative before it); `None` when the file went since its directory was
/// read (published, discarded or deleted meanwhile).
async fn modified_ms(path: &Path) -> Result<Option<i64>, BlobError> {
    let t = match tokio::fs::metadata(path).await {
        Ok(m) => m.modified()?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    Ok(Some(match t.duration_since(std::time::UNIX_EPOCH) {
        Ok(d) => d.as_millis() as i64,
        Err(e) => -(e.duration().as_millis() as i64),
    }))
}

async fn read_if_present(path: &Path) -> Result<Option<Vec<u8>>, BlobError> {
    match tokio::fs::read(path).await {
        Ok(b) => Ok(Some(b)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e.into()),
    }
}

async fn remove_if_present(path: &Path) -> Result<(), BlobError> {
    match tokio::fs::remove_file(path).await {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn stage_publish_get_delete() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalStore::open(dir.path()).await.unwrap();
        let key = BlobKey::new("original");
        store.stage(&key, b"jpeg").await.unwrap();
        let staged = store.staged().await.unwrap();
        assert_eq!(staged.iter().map(|l| &l.key).collect::<Vec<_>>(), vec![&key]);
        let age = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64
            - staged[0].modified_ms;
        assert!((-5_000..60_000).contains(&age), "the listed time is the file's: {age} ms old");
        assert!(store.published().await.unwrap().is_empty());
        assert_eq!(store.get(&key).await.unwrap(), b"jpeg", "a committed row may be read before publishing");
        store.publish(&key).await.unwrap();
        store.publish(&key).await.unwrap();
        assert!(store.staged().await.unwrap().is_empty());
        assert_eq!(store.published().await.unwrap().iter().map(|l| &l.key).collect::<Vec<_>>(), vec![&key]);
        store.delete(&key).await.unwrap();
        assert!(matches!(store.get(&key).await, Err(BlobError::NotFound)));
        store.delete(&key).await.unwrap();
    }

    #[test]
    fn keys_are_checked() {
        let k = BlobKey::new("registered");
        assert_eq!(BlobKey::parse(k.as_str()).unwrap(), k);
        assert_eq!(k.kind(), "registered");
        for bad in ["../etc-00000000000000000000000000000000", "x-123", "Original-00000000000000000000000000000000", ""]
        {
            assert!(BlobKey::parse(bad).is_err(), "{bad}");
        }
    }
}
