//! Decode: from bytes to what the file declares (container, metadata, tables) and to upright RGB pixels.

pub mod container;
pub mod error;
pub mod metadata;
pub mod pixels;
pub mod quality;

pub use container::Container;
pub use error::ReadError;
pub use metadata::Metadata;
pub use pixels::{RgbImage, Scale};
pub use quality::QualityEstimate;
