//! Seal keys for the command line: `--key-file F` or the `GRADPHOTO_SEAL_KEY` variable, never logged.

use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, bail};
use gradphoto_core::seal::{AesGcmSealer, Sealer};

/// The key ring, or a clear stop before any work is done.
pub fn load(key_file: Option<&Path>) -> anyhow::Result<Arc<dyn Sealer>> {
    let spec = match key_file {
        Some(path) => {
            std::fs::read_to_string(path).with_context(|| format!("reading the key file {}", path.display()))?
        }
        None => match std::env::var("GRADPHOTO_SEAL_KEY") {
            Ok(v) if !v.trim().is_empty() => v,
            _ => bail!(
                "no seal key: set GRADPHOTO_SEAL_KEY or pass --key-file (32 bytes in base64, or id:base64[,id:base64…] to rotate)"
            ),
        },
    };
    Ok(Arc::new(AesGcmSealer::from_spec(spec.trim()).context("the seal key is not usable")?))
}

/// The key ring when one is configured, for checks that can use it but do not need it.
pub fn optional() -> Option<Arc<dyn Sealer>> {
    std::env::var("GRADPHOTO_SEAL_KEY").ok().filter(|v| !v.trim().is_empty()).and_then(|_| load(None).ok())
}
