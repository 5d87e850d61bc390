//! `<data>/keys.toml`: the keys the service makes on first start — the id-number encryption and lookup keys and
//! the seal key ring — written once with owner-only permissions. Losing this file loses the id numbers: back it
//! up apart from the database.

use std::path::Path;

use gradphoto_store::Vault;
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
    pub id_key: String,
    pub lookup_key: String,
    pub seal_keys: String,
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
                Vault::from_base64(&s.id_key, &s.lookup_key).map_err(|e| SecretsError::Parse(name, e.to_string()))?;
                Ok((s, false))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let s = Secrets {
                    id_key: Vault::generate_key(),
                    lookup_key: Vault::generate_key(),
                    seal_keys: format!("k1:{}", Vault::generate_key()),
                };
                let text = format!(
                    "# gradphoto keys, made on first start. Keep secret; back up apart from the database.\n{}",
                    toml::to_string(&s).map_err(|e| SecretsError::Parse(name.clone(), e.to_string()))?
                );
                write_private(&path, text.as_bytes()).map_err(|e| SecretsError::Io(name, e))?;
                Ok((s, true))
            }
            Err(e) => Err(SecretsError::Io(name, e)),
        }
    }

    pub fn vault(&self) -> Vault {
        // Checked when loaded or made.
        Vault::from_base64(&self.id_key, &self.lookup_key).expect("keys checked at load")
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
