//! `<data>/keys.toml`: the keys the service makes on first start — the id-number encryption and lookup keys and
//! the seal key ring — written once with owner-only permissions. Losing this file loses the id numbers: back it
//! up apart from the database.

use std::path::Path;

use gradphoto_store::db::SealedKind;
use gradphoto_store::{Db, Vault};
use serde::{Deserialize, Serialize};

#[derive(Debug, thiserror::Error)]
pub enum SecretsError {
    #[error("reading or writing {0}: {1}")]
    Io(String, std::io::Error),
    #[error("{0} is damaged: {1}")]
    Parse(String, String),
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Secrets {
    /// Seals id numbers, openids and webhook secrets.
    pub id_key: String,
    pub lookup_key: String,
    pub seal_keys: String,
    /// Id keys before a rotation: they open what they sealed until `gradphoto admin id-key retire`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub previous_id_keys: Vec<String>,
}

impl std::fmt::Debug for Secrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secrets(…)")
    }
}

impl Secrets {
    /// Reads the key file, creating it on first start.
    pub fn load_or_create(data: &Path) -> Result<(Secrets, bool), SecretsError> {
        let path = data.join("keys.toml");
        let name = path.display().to_string();
        match std::fs::read_to_string(&path) {
            Ok(text) => {
                let s: Secrets = toml::from_str(&text).map_err(|e| SecretsError::Parse(name.clone(), e.to_string()))?;
                Vault::from_base64(&s.id_key, &s.lookup_key)
                    .and_then(|v| v.with_previous(&s.previous_id_keys))
                    .map_err(|e| SecretsError::Parse(name, e.to_string()))?;
                Ok((s, false))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let s = Secrets {
                    id_key: Vault::generate_key(),
                    lookup_key: Vault::generate_key(),
                    seal_keys: format!("k1:{}", Vault::generate_key()),
                    previous_id_keys: Vec::new(),
                };
                write_private(&path, s.text(&name)?.as_bytes()).map_err(|e| SecretsError::Io(name, e))?;
                Ok((s, true))
            }
            Err(e) => Err(SecretsError::Io(name, e)),
        }
    }

    pub fn vault(&self) -> Vault {
        // Checked when loaded or made.
        Vault::from_base64(&self.id_key, &self.lookup_key)
            .and_then(|v| v.with_previous(&self.previous_id_keys))
            .expect("keys checked at load")
    }

    /// A new id key seals from now on; the current one joins the previous keys, which still open.
    pub fn rotate_id_key(&mut self) {
        let old = std::mem::replace(&mut self.id_key, Vault::generate_key());
        self.previous_id_keys.insert(0, old);
    }

    /// Replaces `keys.toml` in one step (a new file renamed over it), so a crash leaves the old or the new file.
    pub fn save(&self, data: &Path) -> Result<(), SecretsError> {
        let path = data.join("keys.toml");
        let name = path.display().to_string();
        let next = data.join("keys.toml.next");
        let _ = std::fs::remove_file(&next);
        write_private(&next, self.text(&name)?.as_bytes()).map_err(|e| SecretsError::Io(name.clone(), e))?;
        std::fs::rename(&next, &path).map_err(|e| SecretsError::Io(name, e))
    }

    fn text(&self, name: &str) -> Result<String, SecretsError> {
        Ok(format!(
            "# gradphoto keys, made on first start. Keep secret; back up apart from the database.\n{}",
            toml::to_string(self).map_err(|e| SecretsError::Parse(name.to_string(), e.to_string()))?
        ))
    }
}

fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut f = options.open(path)?;
    f.write_all(bytes)?;
    f.sync_all()
}

/// What a pass over the sealed rows found (and, when writing, did).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Resealed {
    /// Rows already sealed with the current key.
    pub current: u64,
    /// Rows sealed with a previous key: re-sealed with the current one when writing.
    pub previous: u64,
    /// Rows no key opens (damaged, or sealed with a key no longer in the file): left as they are.
    pub unopenable: u64,
}

/// Re-seals every id number (students), openid (WeChat bindings) and webhook secret (schools) that a previous id key
/// sealed with the current key, a page at a time; with `write` false it only counts. A row changed meanwhile (a roster import) keeps its
/// new value, which the running service sealed with the current key already.
pub async fn reseal(db: &Db, vault: &Vault, write: bool) -> Result<Resealed, gradphoto_store::DbError> {
    const PAGE: i64 = 500;
    let mut found = Resealed::default();
    for kind in [SealedKind::IdNumber, SealedKind::Openid, SealedKind::WebhookSecret] {
        let mut after = 0;
        loop {
            let page = db.sealed_values(kind, after, PAGE).await?;
            let Some(last) = page.last() else { break };
            after = last.row;
            for v in &page {
                let context = match (kind, v.school_id) {
                    (SealedKind::IdNumber, Some(school)) => crate::public::id_context(school, &v.kind),
                    (SealedKind::WebhookSecret, Some(school)) => crate::webhooks::secret_context(school),
                    _ => crate::wechat::OPENID_CONTEXT.to_string(),
                };
                if vault.opens_with_current(&context, &v.cipher) {
                    found.current += 1;
                    continue;
                }
                let Ok(plain) = vault.open(&context, &v.cipher) else {
                    found.unopenable += 1;
                    continue;
                };
                found.previous += 1;
                if write {
                    db.reseal(kind, v.row, &v.cipher, &vault.seal(&context, &plain)).await?;
                }
            }
        }
    }
    Ok(found)
}
