//! Any bytes through the container reader, the metadata, the judge and the analysis decode: no panic, no hang.
#![no_main]

use std::sync::LazyLock;

use gradphoto_core::{CheckOptions, Limits, Profile, check};
use libfuzzer_sys::fuzz_target;

static PROFILE: LazyLock<Profile> = LazyLock::new(Profile::registered);
static OPTIONS: LazyLock<CheckOptions> = LazyLock::new(|| CheckOptions {
    // Small frames keep each run fast; the pixel limit is still checked from the header.
    limits: Limits { max_pixels: 4_000_000, ..Limits::DEFAULT },
    ..CheckOptions::default()
});

fuzz_target!(|data: &[u8]| {
    let _ = check("fuzz.jpg", data, &PROFILE, &OPTIONS);
});
