//! The labelled set and the calibration. Every photo in it is built from `../shared/testdata/portraits/` so that
//! its truth is known by construction: a compliant 480 × 640 rendering (background made light blue through the
//! person mask, the crop chosen to put the eyes, hair top and face width mid-range), and controlled violations —
//! the crop shifted or scaled a known number of pixels out of range, the background recoloured or graded, the
//! exposure, blur, balance and tilt changed, a second face pasted in, no face at all. Expression truth (mouth
//! closed) comes from labels given by a person to each source photo.

pub mod alterations;
pub mod build;
pub mod evaluate;

pub use build::{Case, Source, build_cases, sources, studio_original, studio_original_with_eyes_at};
pub use evaluate::{Calibration, Evaluation, calibrate, evaluate};

use std::io::Write;
use std::path::Path;

use gradphoto_core::decode::RgbImage;
use gradphoto_core::measure::face::models::FaceModels;

/// The face models from a data folder (fetched with pip, pinned, on first use), loaded.
pub fn face_models(data_dir: &Path) -> Result<FaceModels, Box<dyn std::error::Error + Send + Sync>> {
    // A closed stderr must not stop the fetch.
    let m = gradphoto_models::ensure_bytes(data_dir, |m| {
        let _ = writeln!(std::io::stderr(), "{m}");
    })?;
    Ok(FaceModels::load(&m.face_detector, &m.face_landmarker, &m.person_segmenter)?)
}

/// Our RGB image as the `image` crate's, to encode or save it.
pub fn to_image(img: &RgbImage) -> image::RgbImage {
    image::RgbImage::from_raw(img.width, img.height, img.pixels.clone()).expect("width × height × 3 bytes")
}
