//! The metadata a judge needs from EXIF (through the kamadak-exif crate) and XMP: who made the camera, which
//! software touched the file, when it was taken, how it is to be turned, what density it claims.

use serde::Serialize;

use super::container::Container;
use super::error::ReadError;
use crate::limits::Limits;

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Metadata {
    /// An EXIF block was present.
    pub exif: bool,
    pub make: Option<String>,
    pub model: Option<String>,
    pub software: Option<String>,
    /// `xmp:CreatorTool`, where editors record themselves.
    pub creator_tool: Option<String>,
    /// DateTimeOriginal, or DateTime when the original time is missing, as written: "YYYY:MM:DD HH:MM:SS".
    pub captured: Option<String>,
    /// EXIF Orientation 1–8, when present.
    pub orientation: Option<u16>,
    /// EXIF resolution in dots per inch, when present with a known unit.
    pub density_dpi: Option<(f64, f64)>,
}

/// Longest text value kept from metadata; the rest is cut, since it only ever names a device or a program.
const MAX_TEXT: usize = 128;

pub fn read(container: &Container<'_>, limits: &Limits) -> Result<Metadata, ReadError> {
    let mut meta = Metadata { creator_tool: container.xmp.and_then(xmp_creator_tool), ..Metadata::default() };
    let Some(tiff) = container.exif else { return Ok(meta) };
    if tiff.len() > limits.max_exif_bytes as usize {
        return Err(ReadError::TooMany { what: "EXIF bytes", limit: u64::from(limits.max_exif_bytes) });
    }
    let exif = exif::Reader::new().read_raw(tiff.to_vec()).map_err(|e| ReadError::Exif { detail: e.to_string() })?;
    use exif::{In, Tag};
    let text = |tag: Tag| -> Option<String> {
        let field = exif.get_field(tag, In::PRIMARY)?;
        match &field.value {
            exif::Value::Ascii(parts) => clean_text(parts.first()?),
            _ => None,
        }
    };
    let uint = |tag: Tag| exif.get_field(tag, In::PRIMARY).and_then(|f| f.value.get_uint(0));
    let rational = |tag: Tag| -> Option<f64> {
        match &exif.get_field(tag, In::PRIMARY)?.value {
            exif::Value::Rational(v) if v.first()?.denom != 0 => Some(v[0].to_f64()),
            _ => None,
        }
    };
    meta.exif = true;
    meta.make = text(Tag::Make);
    meta.model = text(Tag::Model);
    meta.software = text(Tag::Software);
    meta.captured = text(Tag::DateTimeOriginal).or_else(|| text(Tag::DateTime));
    meta.orientation = uint(Tag::Orientation).and_then(|o| u16::try_from(o).ok());
    let per_inch = match uint(Tag::ResolutionUnit).unwrap_or(2) {
        2 => Some(1.0),
        3 => Some(2.54),
        _ => None,
    };
    if let (Some(f), Some(x), Some(y)) = (per_inch, rational(Tag::XResolution), rational(Tag::YResolution)) {
        meta.density_dpi = Some((x * f, y * f));
    }
    Ok(meta)
}

fn clean_text(raw: &[u8]) -> Option<String> {
    let s = String::from_utf8_lossy(raw);
    let s = s.trim_matches(|c: char| c == '\0' || c.is_whitespace());
    if s.is_empty() {
        return None;
    }
    Some(s.chars().take(MAX_TEXT).collect())
}

/// `xmp:CreatorTool`, written either as an attribute or as an element.
fn xmp_creator_tool(xmp: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(xmp);
    let key = "CreatorTool";
    let at = text.find(key)? + key.len();
    let rest = text[at..].trim_start();
    let value = if let Some(r) = rest.strip_prefix('=') {
        let r = r.trim_start();
        let quote = r.chars().next().filter(|c| *c == '"' || *c == '\'')?;
        let r = &r[1..];
        &r[..r.find(quote)?]
    } else {
        let r = rest.strip_prefix('>')?;
        &r[..r.find('<')?]
    };
    clean_text(value.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn creator_tool_as_attribute_or_element() {
        let a = br#"<rdf:Description xmp:CreatorTool="Adobe Photoshop 25.0 (Windows)" xmp:Rating="0">"#;
        assert_eq!(xmp_creator_tool(a).as_deref(), Some("Adobe Photoshop 25.0 (Windows)"));
        let e = b"<xmp:CreatorTool>Meitu</xmp:CreatorTool>";
        assert_eq!(xmp_creator_tool(e).as_deref(), Some("Meitu"));
        assert_eq!(xmp_creator_tool(b"<x:xmpmeta/>"), None);
        assert_eq!(xmp_creator_tool(b"CreatorTool=\"unterminated"), None);
    }
}
