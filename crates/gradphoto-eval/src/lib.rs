//! The labelled set and the calibration. Every photo in it is built from `../shared/testdata/portraits/` so that
//! its truth is known by construction: a compliant 480 × 640 rendering (background made light blue through the
//! person mask, the crop chosen to put the eyes, hair top and face width mid-range), and controlled violations —
//! the crop shifted or scaled a known number of pixels out of range, the background recoloured or graded, the
//! exposure, blur, balance and tilt changed, a second face pasted in, no face at all. Expression truth (mouth
//! closed) comes from labels given by a person to each source photo.

pub mod build;
pub mod evaluate;

pub use build::{Case, Source, build_cases, sources, studio_original};
pub use evaluate::{Calibration, Evaluation, calibrate, evaluate};
