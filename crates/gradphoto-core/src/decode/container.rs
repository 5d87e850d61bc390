//! The JPEG container, read by us and bounded: every segment with its offset, the frame header, the metadata
//! segments and the quantisation tables. Nothing here decodes pixels, so it costs microseconds.

use serde::Serialize;

use super::error::ReadError;
use crate::limits::Limits;

/// One marker segment as found in the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Segment {
    /// The marker byte that follows 0xFF (0xD8 SOI, 0xE0 APP0, 0xDA SOS …).
    pub marker: u8,
    /// Offset of the 0xFF that starts the marker.
    pub offset: usize,
    /// Bytes of the segment, marker included; for SOS the entropy-coded data that follows is included.
    pub length: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FrameKind {
    Baseline,
    ExtendedSequential,
    Progressive,
    Lossless,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct FrameComponent {
    pub id: u8,
    pub h: u8,
    pub v: u8,
    /// Quantisation table slot this component uses.
    pub tq: u8,
}

/// The frame header (SOFn).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Frame {
    pub marker: u8,
    pub kind: FrameKind,
    pub arithmetic: bool,
    pub hierarchical: bool,
    pub precision: u8,
    pub width: u32,
    pub height: u32,
    pub components: Vec<FrameComponent>,
}

impl Frame {
    /// Chroma subsampling in the J:a:b notation people know, when it is one of the common ones.
    pub fn subsampling(&self) -> &'static str {
        match self.components.as_slice() {
            [_] => "4:0:0",
            [y, cb, cr] if cb.h == cr.h && cb.v == cr.v && cb.h == 1 && cb.v == 1 => match (y.h, y.v) {
                (1, 1) => "4:4:4",
                (2, 1) => "4:2:2",
                (2, 2) => "4:2:0",
                (1, 2) => "4:4:0",
                (4, 1) => "4:1:1",
                _ => "other",
            },
            _ => "other",
        }
    }
}

/// JFIF APP0 header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Jfif {
    pub version: (u8, u8),
    /// 0 = aspect ratio only, 1 = dots per inch, 2 = dots per centimetre.
    pub units: u8,
    pub x_density: u16,
    pub y_density: u16,
}

/// A quantisation table in natural (row-major) order, as libjpeg's `jpeg_add_quant_table` takes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct QuantTable {
    pub slot: u8,
    pub precision16: bool,
    #[serde(skip)]
    pub values: [u16; 64],
}

/// Everything the container says, borrowing payloads from the file bytes.
#[derive(Debug, Clone)]
pub struct Container<'a> {
    pub segments: Vec<Segment>,
    pub frame: Frame,
    /// The tables in force for each frame component when the first scan starts, in component order.
    pub component_tables: Vec<QuantTable>,
    pub jfif: Option<Jfif>,
    /// The TIFF structure of the first EXIF APP1 segment.
    pub exif: Option<&'a [u8]>,
    /// The packet of the first XMP APP1 segment.
    pub xmp: Option<&'a [u8]>,
    /// A Photoshop image-resource block (APP13) is present: the file went through Adobe software.
    pub photoshop_irb: bool,
    /// Adobe APP14 transform flag, when present (0 = none/CMYK, 1 = YCbCr, 2 = YCCK).
    pub adobe_transform: Option<u8>,
    pub icc_profile: bool,
    /// Payloads of the COM segments, in file order.
    pub comments: Vec<&'a [u8]>,
    pub scans: u32,
    /// Offset just past the EOI marker.
    pub end_of_image: usize,
    /// Bytes after EOI (phones append depth maps and second images; editors sometimes leave junk).
    pub trailing_bytes: usize,
}

impl Container<'_> {
    /// The luminance table (that of the first component), the one quality estimates rest on.
    pub fn luma_table(&self) -> Option<&QuantTable> {
        self.component_tables.first()
    }

    /// The table of the second component, when the image has colour.
    pub fn chroma_table(&self) -> Option<&QuantTable> {
        self.component_tables.get(1)
    }
}

/// The JPEG zig-zag order: `ZIGZAG[k]` is the natural index of the k-th coefficient in the file.
pub const ZIGZAG: [usize; 64] = [
    0, 1, 8, 16, 9, 2, 3, 10, 17, 24, 32, 25, 18, 11, 4, 5, 12, 19, 26, 33, 40, 48, 41, 34, 27, 20, 13, 6, 7, 14, 21,
    28, 35, 42, 49, 56, 57, 50, 43, 36, 29, 22, 15, 23, 30, 37, 44, 51, 58, 59, 52, 45, 38, 31, 39, 46, 53, 60, 61, 54,
    47, 55, 62, 63,
];

/// Names what a non-JPEG file most likely is, from its first bytes, so the message can say "a PNG renamed .jpg".
pub fn sniff(data: &[u8]) -> &'static str {
    let starts = |p: &[u8]| data.starts_with(p);
    if starts(b"\x89PNG\r\n\x1a\n") {
        "PNG"
    } else if starts(b"GIF87a") || starts(b"GIF89a") {
        "GIF"
    } else if data.len() >= 12 && &data[4..8] == b"ftyp" {
        match &data[8..12] {
            b"heic" | b"heix" | b"hevc" | b"heim" | b"heis" | b"mif1" | b"msf1" => "HEIC",
            b"avif" | b"avis" => "AVIF",
            _ => "ISO media (MP4/HEIF)",
        }
    } else if starts(b"RIFF") && data.len() >= 12 && &data[8..12] == b"WEBP" {
        "WebP"
    } else if starts(b"BM") {
        "BMP"
    } else if starts(b"II*\0") || starts(b"MM\0*") {
        "TIFF"
    } else if starts(b"%PDF") {
        "PDF"
    } else if starts(b"PK\x03\x04") {
        "ZIP"
    } else if starts(b"\xFF\x0A") || starts(b"\0\0\0\x0CJXL ") {
        "JPEG XL"
    } else if !data.is_empty() && data.iter().take(512).all(|&b| b == b'\t' || b == b'\n' || b == b'\r' || b >= 0x20) {
        "text"
    } else {
        "unknown data"
    }
}

struct Reader<'a, 'l> {
    data: &'a [u8],
    limits: &'l Limits,
    metadata_bytes: u64,
}

/// Reads the container of `data`. Checks [`Limits`] as it goes; the frame size is checked the moment the SOF is read.
pub fn read<'a>(data: &'a [u8], limits: &Limits) -> Result<Container<'a>, ReadError> {
    if data.is_empty() {
        return Err(ReadError::Empty);
    }
    if data.len() as u64 > limits.max_file_bytes {
        return Err(ReadError::TooLarge { size: data.len() as u64, limit: limits.max_file_bytes });
    }
    if !data.starts_with(&[0xFF, 0xD8]) {
        return Err(ReadError::NotJpeg { kind: sniff(data) });
    }
    Reader { data, limits, metadata_bytes: 0 }.run()
}

impl<'a> Reader<'a, '_> {
    fn run(mut self) -> Result<Container<'a>, ReadError> {
        let data = self.data;
        let mut segments = vec![Segment { marker: 0xD8, offset: 0, length: 2 }];
        let mut frame: Option<Frame> = None;
        let mut tables: [Option<QuantTable>; 4] = [None; 4];
        let mut component_tables = Vec::new();
        let mut jfif = None;
        let mut exif = None;
        let mut xmp = None;
        let mut photoshop_irb = false;
        let mut adobe_transform = None;
        let mut icc_profile = false;
        let mut comments = Vec::new();
        let mut scans = 0u32;
        let mut pos = 2usize;

        loop {
            let start = pos;
            if pos >= data.len() {
                return Err(ReadError::Truncated { offset: pos, what: "no end-of-image marker" });
            }
            if data[pos] != 0xFF {
                return Err(ReadError::BadMarker { offset: pos, marker: data[pos] });
            }
            // Any number of 0xFF fill bytes may precede a marker.
            while pos < data.len() && data[pos] == 0xFF {
                pos += 1;
            }
            let Some(&marker) = data.get(pos) else {
                return Err(ReadError::Truncated { offset: pos, what: "marker cut off" });
            };
            pos += 1;
            match marker {
                0xD9 => {
                    segments.push(Segment { marker, offset: start, length: pos - start });
                    let Some(frame) = frame else { return Err(ReadError::NoFrame) };
                    if scans == 0 {
                        return Err(ReadError::NoScan);
                    }
                    return Ok(Container {
                        segments,
                        frame,
                        component_tables,
                        jfif,
                        exif,
                        xmp,
                        photoshop_irb,
                        adobe_transform,
                        icc_profile,
                        comments,
                        scans,
                        end_of_image: pos,
                        trailing_bytes: data.len() - pos,
                    });
                }
                0x01 => {
                    // TEM: standalone, no payload.
                    segments.push(Segment { marker, offset: start, length: pos - start });
                    self.count(&segments)?;
                    continue;
                }
                0x00 | 0xD0..=0xD8 => return Err(ReadError::BadMarker { offset: start, marker }),
                _ => {}
            }
            if pos + 2 > data.len() {
                return Err(ReadError::Truncated { offset: pos, what: "segment length cut off" });
            }
            let length = usize::from(u16::from_be_bytes([data[pos], data[pos + 1]]));
            if length < 2 {
                return Err(ReadError::BadLength { offset: start, marker, length });
            }
            if pos + length > data.len() {
                return Err(ReadError::Truncated { offset: start, what: "segment runs past the end of the file" });
            }
            let payload = &data[pos + 2..pos + length];
            let mut end = pos + length;
            let bad = |what| ReadError::BadSegment { offset: start, marker, what };

            match marker {
                0xC4 => check_dht(payload).map_err(bad)?,
                0xCC => {} // DAC: arithmetic conditioning, only meaningful with an arithmetic SOF.
                0xC0..=0xCF => {
                    if frame.is_some() {
                        return Err(ReadError::MultipleFrames);
                    }
                    let f = parse_sof(marker, payload).map_err(bad)?;
                    let pixels = u64::from(f.width) * u64::from(f.height);
                    if f.width == 0 || f.height == 0 || pixels > self.limits.max_pixels {
                        return Err(ReadError::Dimensions {
                            width: f.width,
                            height: f.height,
                            limit: self.limits.max_pixels,
                        });
                    }
                    frame = Some(f);
                }
                0xDB => parse_dqt(payload, &mut tables).map_err(bad)?,
                0xDD if payload.len() != 2 => return Err(bad("restart interval must be 2 bytes")),
                0xDA => {
                    let Some(f) = frame.as_ref() else { return Err(ReadError::NoFrame) };
                    check_sos(payload, f).map_err(bad)?;
                    if scans == 0 {
                        for c in &f.components {
                            match tables[usize::from(c.tq)] {
                                Some(t) => component_tables.push(t),
                                None => return Err(bad("scan uses a quantisation table never defined")),
                            }
                        }
                    }
                    scans += 1;
                    if scans > self.limits.max_scans {
                        return Err(ReadError::TooMany { what: "scans", limit: u64::from(self.limits.max_scans) });
                    }
                    end = entropy_end(data, end)?;
                }
                0xE0..=0xEF | 0xFE => {
                    self.metadata_bytes += payload.len() as u64;
                    if self.metadata_bytes > self.limits.max_metadata_bytes {
                        return Err(ReadError::TooMany {
                            what: "metadata bytes",
                            limit: self.limits.max_metadata_bytes,
                        });
                    }
                    match marker {
                        0xE0 if payload.starts_with(b"JFIF\0") && jfif.is_none() => {
                            if payload.len() < 12 {
                                return Err(bad("JFIF header too short"));
                            }
                            jfif = Some(Jfif {
                                version: (payload[5], payload[6]),
                                units: payload[7],
                                x_density: u16::from_be_bytes([payload[8], payload[9]]),
                                y_density: u16::from_be_bytes([payload[10], payload[11]]),
                            });
                        }
                        0xE1 if payload.starts_with(b"Exif\0") && payload.len() >= 6 && exif.is_none() => {
                            exif = Some(&payload[6..]);
                        }
                        0xE1 if payload.starts_with(b"http://ns.adobe.com/xap/1.0/\0") && xmp.is_none() => {
                            xmp = Some(&payload[29..]);
                        }
                        0xE2 if payload.starts_with(b"ICC_PROFILE\0") => icc_profile = true,
                        0xED if payload.starts_with(b"Photoshop 3.0\0") => photoshop_irb = true,
                        0xEE if payload.starts_with(b"Adobe") && payload.len() >= 12 => {
                            adobe_transform = Some(payload[11]);
                        }
                        0xFE => comments.push(payload),
                        _ => {}
                    }
                }
                _ => {} // DNL, DHP, EXP, JPGn: carried, not interpreted.
            }
            segments.push(Segment { marker, offset: start, length: end - start });
            self.count(&segments)?;
            pos = end;
        }
    }

    fn count(&self, segments: &[Segment]) -> Result<(), ReadError> {
        if segments.len() as u64 > u64::from(self.limits.max_segments) {
            return Err(ReadError::TooMany { what: "segments", limit: u64::from(self.limits.max_segments) });
        }
        Ok(())
    }
}

/// Finds where the entropy-coded data that starts at `from` ends: at the first marker that is neither
/// a stuffed zero (FF 00) nor a restart marker (FF D0–D7). Fill bytes (FF FF) belong to the next marker.
fn entropy_end(data: &[u8], from: usize) -> Result<usize, ReadError> {
    let mut pos = from;
    loop {
        let Some(i) = memchr::memchr(0xFF, &data[pos..]) else {
            return Err(ReadError::Truncated { offset: data.len(), what: "image data without end marker" });
        };
        let ff = pos + i;
        let Some(&next) = data.get(ff + 1) else {
            return Err(ReadError::Truncated { offset: data.len(), what: "image data without end marker" });
        };
        match next {
            0x00 | 0xD0..=0xD7 => pos = ff + 2,
            _ => return Ok(ff),
        }
    }
}

fn parse_sof(marker: u8, p: &[u8]) -> Result<Frame, &'static str> {
    if p.len() < 6 {
        return Err("frame header too short");
    }
    let n = usize::from(p[5]);
    if p.len() != 6 + 3 * n {
        return Err("frame header length does not match its component count");
    }
    if !matches!(n, 1 | 3 | 4) {
        return Err("component count must be 1, 3 or 4");
    }
    let kind = match marker & 0x03 {
        0 if marker == 0xC0 => FrameKind::Baseline,
        0 | 1 => FrameKind::ExtendedSequential,
        2 => FrameKind::Progressive,
        _ => FrameKind::Lossless,
    };
    let precision = p[0];
    if !matches!(precision, 8 | 12 | 16) && kind != FrameKind::Lossless {
        return Err("sample precision must be 8 or 12 bits");
    }
    let mut components = Vec::with_capacity(n);
    for c in p[6..].chunks_exact(3) {
        let (h, v, tq) = (c[1] >> 4, c[1] & 0x0F, c[2]);
        if !(1..=4).contains(&h) || !(1..=4).contains(&v) {
            return Err("sampling factor outside 1–4");
        }
        if tq > 3 {
            return Err("quantisation table slot outside 0–3");
        }
        if components.iter().any(|o: &FrameComponent| o.id == c[0]) {
            return Err("two components share an id");
        }
        components.push(FrameComponent { id: c[0], h, v, tq });
    }
    Ok(Frame {
        marker,
        kind,
        arithmetic: marker >= 0xC8,
        hierarchical: matches!(marker & 0x07, 5..=7),
        precision,
        height: u32::from(u16::from_be_bytes([p[1], p[2]])),
        width: u32::from(u16::from_be_bytes([p[3], p[4]])),
        components,
    })
}

fn parse_dqt(mut p: &[u8], tables: &mut [Option<QuantTable>; 4]) -> Result<(), &'static str> {
    if p.is_empty() {
        return Err("empty quantisation segment");
    }
    while let Some((&pq_tq, rest)) = p.split_first() {
        let (precision16, slot) = (pq_tq >> 4, pq_tq & 0x0F);
        if precision16 > 1 || slot > 3 {
            return Err("quantisation table precision or slot out of range");
        }
        let size = if precision16 == 1 { 128 } else { 64 };
        if rest.len() < size {
            return Err("quantisation table cut short");
        }
        let mut values = [0u16; 64];
        for (k, &natural) in ZIGZAG.iter().enumerate() {
            values[natural] =
                if precision16 == 1 { u16::from_be_bytes([rest[2 * k], rest[2 * k + 1]]) } else { u16::from(rest[k]) };
        }
        if values.contains(&0) {
            return Err("quantisation step of zero");
        }
        tables[usize::from(slot)] = Some(QuantTable { slot, precision16: precision16 == 1, values });
        p = &rest[size..];
    }
    Ok(())
}

fn check_dht(mut p: &[u8]) -> Result<(), &'static str> {
    if p.is_empty() {
        return Err("empty Huffman segment");
    }
    while !p.is_empty() {
        if p.len() < 17 {
            return Err("Huffman table header cut short");
        }
        let (class, slot) = (p[0] >> 4, p[0] & 0x0F);
        if class > 1 || slot > 3 {
            return Err("Huffman table class or slot out of range");
        }
        let count: usize = p[1..17].iter().map(|&c| usize::from(c)).sum();
        if count > 256 {
            return Err("Huffman table has more than 256 codes");
        }
        if p.len() < 17 + count {
            return Err("Huffman table cut short");
        }
        p = &p[17 + count..];
    }
    Ok(())
}

fn check_sos(p: &[u8], frame: &Frame) -> Result<(), &'static str> {
    let Some(&n) = p.first() else { return Err("empty scan header") };
    let n = usize::from(n);
    if !(1..=4).contains(&n) || p.len() != 1 + 2 * n + 3 {
        return Err("scan header length does not match its component count");
    }
    for c in p[1..1 + 2 * n].chunks_exact(2) {
        if !frame.components.iter().any(|f| f.id == c[0]) {
            return Err("scan names a component the frame does not have");
        }
    }
    Ok(())
}
