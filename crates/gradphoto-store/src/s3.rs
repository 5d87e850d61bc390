//! The byte store on an S3-compatible service (AWS S3, MinIO, SeaweedFS, Ceph, OSS/COS gateways), for sites that
//! run several service instances or keep photos off the application server. Same two steps as on disk: objects go
//! under `staging/` first and are copied to `objects/` after the metadata commit (S3 has no rename), then the
//! staged copy is deleted; recovery lists both prefixes.

use async_trait::async_trait;
use futures::TryStreamExt;
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use serde::Deserialize;

use crate::blob::{BlobError, BlobKey, BlobStore, Listed};

/// Where the bucket is. Credentials may be left out for a service that needs none (a test server).
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct S3Config {
    /// e.g. `http://127.0.0.1:8333` or `https://s3.cn-north-1.amazonaws.com.cn`.
    pub endpoint: String,
    pub bucket: String,
    #[serde(default = "default_region")]
    pub region: String,
    #[serde(default)]
    pub access_key_id: Option<String>,
    #[serde(default)]
    pub secret_access_key: Option<String>,
}

impl std::fmt::Debug for S3Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the secret.
        f.debug_struct("S3Config").field("endpoint", &self.endpoint).field("bucket", &self.bucket).finish()
    }
}

fn default_region() -> String {
    "us-east-1".into()
}

#[derive(Debug)]
pub struct S3Store {
    s3: AmazonS3,
}

fn io(e: object_store::Error) -> BlobError {
    match e {
        object_store::Error::NotFound { .. } => BlobError::NotFound,
        other => BlobError::Io(std::io::Error::other(other.to_string())),
    }
}

fn staged_path(key: &BlobKey) -> Path {
    Path::from(format!("staging/{key}"))
}

fn object_path(key: &BlobKey) -> Path {
    Path::from(format!("objects/{key}"))
}

impl S3Store {
    pub fn open(c: &S3Config) -> Result<S3Store, BlobError> {
        let mut b = AmazonS3Builder::new()
            .with_endpoint(&c.endpoint)
            .with_bucket_name(&c.bucket)
            .with_region(&c.region)
            .with_allow_http(c.endpoint.starts_with("http://"));
        match (&c.access_key_id, &c.secret_access_key) {
            (Some(id), Some(secret)) => b = b.with_access_key_id(id).with_secret_access_key(secret),
            _ => b = b.with_skip_signature(true),
        }
        Ok(S3Store { s3: b.build().map_err(io)? })
    }

    async fn keys(&self, prefix: &str) -> Result<Vec<Listed>, BlobError> {
        let prefix = Path::from(prefix);
        let metas: Vec<object_store::ObjectMeta> = self.s3.list(Some(&prefix)).try_collect().await.map_err(io)?;
        let mut keys: Vec<Listed> = metas
            .iter()
            .filter_map(|m| {
                let key = BlobKey::parse(m.location.filename()?).ok()?;
                // The server's clock: a copy (publish) gets a fresh time, which is what recovery's grace needs.
                Some(Listed { key, modified_ms: m.last_modified.timestamp_millis() })
            })
            .collect();
        keys.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(keys)
    }
}

async fn ignore_missing(r: object_store::Result<()>) -> Result<(), BlobError> {
    match r {
        Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
        Err(e) => Err(io(e)),
    }
}

#[async_trait]
impl BlobStore for S3Store {
    async fn stage(&self, key: &BlobKey, bytes: &[u8]) -> Result<(), BlobError> {
        // A PUT is atomic: the object is whole or absent.
        self.s3.put(&staged_path(key), PutPayload::from(bytes.to_vec())).await.map_err(io)?;
        Ok(())
    }

    async fn publish(&self, key: &BlobKey) -> Result<(), BlobError> {
        match self.s3.copy(&staged_path(key), &object_path(key)).await {
            Ok(()) => ignore_missing(self.s3.delete(&staged_path(key)).await).await,
            // Published already (recovery repeating a publish that completed before a crash).
            Err(object_store::Error::NotFound { .. }) => {
                self.s3.head(&object_path(key)).await.map_err(io)?;
                Ok(())
            }
            Err(e) => Err(io(e)),
        }
    }

    async fn discard(&self, key: &BlobKey) -> Result<(), BlobError> {
        ignore_missing(self.s3.delete(&staged_path(key)).await).await
    }

    async fn get(&self, key: &BlobKey) -> Result<Vec<u8>, BlobError> {
        // Published, or still staged (its row committed, the publish not yet done) — or published between the two
        // looks (publish copies, then deletes the staged copy), so a miss in both places looks once more.
        let r = match self.s3.get(&object_path(key)).await {
            Err(object_store::Error::NotFound { .. }) => match self.s3.get(&staged_path(key)).await {
                Err(object_store::Error::NotFound { .. }) => self.s3.get(&object_path(key)).await,
                other => other,
            },
            other => other,
        };
        Ok(r.map_err(io)?.bytes().await.map_err(io)?.to_vec())
    }

    async fn put(&self, key: &BlobKey, bytes: &[u8]) -> Result<(), BlobError> {
        self.s3.put(&object_path(key), PutPayload::from(bytes.to_vec())).await.map_err(io)?;
        Ok(())
    }

    async fn delete(&self, key: &BlobKey) -> Result<(), BlobError> {
        ignore_missing(self.s3.delete(&object_path(key)).await).await
    }

    async fn staged(&self) -> Result<Vec<Listed>, BlobError> {
        self.keys("staging").await
    }

    async fn published(&self) -> Result<Vec<Listed>, BlobError> {
        self.keys("objects").await
    }
}
