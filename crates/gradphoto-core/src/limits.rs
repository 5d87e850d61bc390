//! The one set of bounds every input is held to before anything is allocated for it.

use serde::{Deserialize, Serialize};

/// Bounds checked before reading, parsing or decoding. The defaults suit studio originals of up to
/// 60 megapixels; a site can tighten them in its config.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Limits {
    /// Largest file accepted, in bytes. Default 20 MiB: a 60 MP camera JPEG at top quality is about 25 MB,
    /// a studio original at normal quality well under 20 MB.
    pub max_file_bytes: u64,
    /// Largest frame, width × height. Default 60 megapixels. Checked on the SOF header, before decoding.
    pub max_pixels: u64,
    /// Most marker segments in one file (APPn, DQT, DHT, SOS, COM …). Default 1 024; cameras write about 20,
    /// progressive encoders up to about 60.
    pub max_segments: u32,
    /// Most scans (SOS) in one file. Default 256: a progressive file has about 10; thousands of tiny scans are
    /// a known way to make a decoder spin.
    pub max_scans: u32,
    /// Largest EXIF block parsed, in bytes. Default 64 KiB, the most one APP1 segment can hold.
    pub max_exif_bytes: u32,
    /// Largest total of metadata segments (APPn and COM) kept, in bytes. Default 4 MiB.
    pub max_metadata_bytes: u64,
}

impl Limits {
    pub const DEFAULT: Limits = Limits {
        max_file_bytes: 20 * 1024 * 1024,
        max_pixels: 60_000_000,
        max_segments: 1024,
        max_scans: 256,
        max_exif_bytes: 65_535,
        max_metadata_bytes: 4 * 1024 * 1024,
    };
}

impl Default for Limits {
    fn default() -> Self {
        Self::DEFAULT
    }
}
