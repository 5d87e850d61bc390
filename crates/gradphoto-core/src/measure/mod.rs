//! Measure: the facts a judge reads, taken from the decoded file. Each is a number or a name, never a verdict.

pub mod color;
pub mod face;
pub mod occlusion;
pub mod person;
pub mod recapture;

use serde::Serialize;

use crate::calendar;
use crate::decode::container::{self, Container, FrameKind};
use crate::decode::{Metadata, QualityEstimate, ReadError, metadata, quality};
use crate::limits::Limits;
use crate::seal::{self, SealState};

/// Where a density came from.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Density {
    pub x_dpi: f64,
    pub y_dpi: f64,
    /// "jfif" or "exif".
    pub source: &'static str,
}

/// What the file itself tells, before any pixel is decoded.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FileMeasurements {
    pub file_bytes: u64,
    /// Lower-case extension of the file name, when it has one.
    pub extension: Option<String>,
    /// Stored frame size.
    pub width: u32,
    pub height: u32,
    /// Size once EXIF orientation is applied.
    pub upright_width: u32,
    pub upright_height: u32,
    pub process: FrameKind,
    pub arithmetic: bool,
    pub precision: u8,
    pub components: u8,
    pub color_space: &'static str,
    pub subsampling: &'static str,
    pub density: Option<Density>,
    pub quality: Option<QualityEstimate>,
    pub metadata: Metadata,
    /// Days since 1970-01-01 of the capture date, when the metadata carries a valid one.
    pub captured_days: Option<i64>,
    pub seal: SealState,
    pub comment_segments: usize,
    pub segments: usize,
    pub scans: u32,
    pub icc_profile: bool,
    pub photoshop_irb: bool,
    pub trailing_bytes: usize,
}

/// The container and the measurements of one file: everything the file rules need.
#[derive(Debug, Clone)]
pub struct Inspection<'a> {
    pub container: Container<'a>,
    pub measurements: FileMeasurements,
}

/// Reads the container and the metadata of `data` and measures them. `name` gives the extension only.
pub fn inspect<'a>(name: &str, data: &'a [u8], limits: &Limits) -> Result<Inspection<'a>, ReadError> {
    let container = container::read(data, limits)?;
    let metadata = metadata::read(&container, limits)?;
    let frame = &container.frame;
    let orientation = metadata.orientation.unwrap_or(1);
    let (upright_width, upright_height) =
        if (5..=8).contains(&orientation) { (frame.height, frame.width) } else { (frame.width, frame.height) };
    let color_space = match (frame.components.len(), container.adobe_transform) {
        (1, _) => "grey",
        (3, Some(0)) => "rgb",
        (3, _) => "ycbcr",
        (4, Some(2)) => "ycck",
        _ => "cmyk",
    };
    let density = match container.jfif {
        Some(j) if j.units == 1 => {
            Some(Density { x_dpi: f64::from(j.x_density), y_dpi: f64::from(j.y_density), source: "jfif" })
        }
        Some(j) if j.units == 2 => {
            Some(Density { x_dpi: f64::from(j.x_density) * 2.54, y_dpi: f64::from(j.y_density) * 2.54, source: "jfif" })
        }
        _ => metadata.density_dpi.map(|(x, y)| Density { x_dpi: x, y_dpi: y, source: "exif" }),
    };
    let quality = container.luma_table().map(|l| quality::estimate(l, container.chroma_table()));
    let extension = std::path::Path::new(name).extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase);
    let measurements = FileMeasurements {
        file_bytes: data.len() as u64,
        extension,
        width: frame.width,
        height: frame.height,
        upright_width,
        upright_height,
        process: frame.kind,
        arithmetic: frame.arithmetic,
        precision: frame.precision,
        components: frame.components.len() as u8,
        color_space,
        subsampling: frame.subsampling(),
        density,
        quality,
        captured_days: metadata.captured.as_deref().and_then(calendar::exif_days),
        metadata,
        seal: seal::find(&container.comments),
        comment_segments: container.comments.len(),
        segments: container.segments.len(),
        scans: container.scans,
        icc_profile: container.icc_profile,
        photoshop_irb: container.photoshop_irb,
        trailing_bytes: container.trailing_bytes,
    };
    Ok(Inspection { container, measurements })
}
