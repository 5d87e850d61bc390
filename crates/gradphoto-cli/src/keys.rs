//! Seal keys for the command line, never logged. In order: `--key-file F`, the `GRADPHOTO_SEAL_KEY` variable,
//! `seal_keys` in the data folder's `config.toml`, then the ring the service made in `keys.toml`. Each holds `BASE64` (32 bytes) or `id:BASE64[,id:BASE64…]`, the
//! first key sealing and all of them opening (rotation by key id).

use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, bail};
use gradphoto_core::seal::{AesGcmSealer, Sealer};

/// The seal ring of the service's `keys.toml` (its other keys are the service's).
#[derive(Debug, Default, serde::Deserialize)]
#[serde(default)]
struct KeyFile {
    /// The key ring, as in GRADPHOTO_SEAL_KEY.
    seal_keys: Option<String>,
}

fn from_config(data: &Path) -> anyhow::Result<Option<String>> {
    // The whole config.toml is checked (a misspelt setting is an error, not a silent default).
    let config = gradphoto_web::Config::load(data)?;
    if let Some(k) = config.seal_keys.filter(|k| !k.trim().is_empty()) {
        return Ok(Some(k));
    }
    let path = data.join("keys.toml");
    let Ok(text) = std::fs::read_to_string(&path) else { return Ok(None) };
    let keys: KeyFile = toml::from_str(&text).with_context(|| format!("reading {}", path.display()))?;
    Ok(keys.seal_keys.filter(|k| !k.trim().is_empty()))
}

fn spec(key_file: Option<&Path>, data: &Path) -> anyhow::Result<Option<String>> {
    if let Some(path) = key_file {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading the key file {}", path.display()))?;
        return Ok(Some(text));
    }
    if let Ok(v) = std::env::var("GRADPHOTO_SEAL_KEY")
        && !v.trim().is_empty()
    {
        return Ok(Some(v));
    }
    from_config(data)
}

/// The key ring, or a clear stop before any work is done.
pub fn load(key_file: Option<&Path>, data: &Path) -> anyhow::Result<Arc<dyn Sealer>> {
    let Some(spec) = spec(key_file, data)? else {
        bail!(
            "no seal key: pass --key-file, set GRADPHOTO_SEAL_KEY, or put seal_keys in {} (32 bytes in base64, or id:base64[,id:base64…] to rotate)",
            data.join("config.toml").display()
        );
    };
    Ok(Arc::new(AesGcmSealer::from_spec(spec.trim()).context("the seal key is not usable")?))
}

/// The key ring when one is configured, for checks that can use it but do not need it.
pub fn optional(data: &Path) -> Option<Arc<dyn Sealer>> {
    load(None, data).ok()
}
