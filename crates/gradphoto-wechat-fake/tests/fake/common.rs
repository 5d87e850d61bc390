//! Shared by the test binaries: one key set per binary (RSA key generation is slow), and a bounded wait.

#![allow(dead_code)]

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use gradphoto_wechat::MerchantKey;
use gradphoto_wechat_fake::FakeConfig;

/// A configuration with fresh identities but the binary's shared keys, and the merchant's private key.
pub fn config() -> (FakeConfig, MerchantKey) {
    static KEYS: OnceLock<(FakeConfig, MerchantKey)> = OnceLock::new();
    let (c, k) = KEYS.get_or_init(FakeConfig::generate);
    (c.clone(), k.clone())
}

/// Polls `f` until it gives a value, for at most 10 s.
pub async fn wait_for<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(start.elapsed() < Duration::from_secs(10), "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// A client that shows redirects instead of following them.
pub fn http() -> reqwest::Client {
    reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap()
}
