//! A small TIFF/EXIF writer, so test files carry exactly the metadata a case needs.

/// The EXIF fields a test sets. Strings are written as ASCII.
#[derive(Debug, Clone, Default)]
pub struct ExifSpec {
    pub make: Option<String>,
    pub model: Option<String>,
    pub software: Option<String>,
    pub datetime_original: Option<String>,
    pub orientation: Option<u16>,
    /// (x, y, unit): unit 2 = inch, 3 = centimetre.
    pub resolution: Option<(u32, u32, u16)>,
}

impl ExifSpec {
    /// A studio camera: Canon EOS R6, 300 dpi, taken 2026-06-01.
    pub fn camera() -> ExifSpec {
        ExifSpec {
            make: Some("Canon".into()),
            model: Some("Canon EOS R6".into()),
            software: Some("Firmware Version 1.8.1".into()),
            datetime_original: Some("2026:06:01 10:30:00".into()),
            orientation: Some(1),
            resolution: Some((300, 300, 2)),
        }
    }

    /// The TIFF block (little-endian) holding these fields: IFD0 and, for the capture date, the Exif IFD.
    pub fn build(&self) -> Vec<u8> {
        // (tag, type, count, value bytes)
        let mut ifd0: Vec<(u16, u16, u32, Vec<u8>)> = Vec::new();
        let ascii = |s: &String| {
            let mut b = s.as_bytes().to_vec();
            b.push(0);
            b
        };
        if let Some(s) = &self.make {
            ifd0.push((0x010F, 2, s.len() as u32 + 1, ascii(s)));
        }
        if let Some(s) = &self.model {
            ifd0.push((0x0110, 2, s.len() as u32 + 1, ascii(s)));
        }
        if let Some(o) = self.orientation {
            ifd0.push((0x0112, 3, 1, o.to_le_bytes().to_vec()));
        }
        if let Some((x, y, unit)) = self.resolution {
            let r = |v: u32| [v.to_le_bytes(), 1u32.to_le_bytes()].concat();
            ifd0.push((0x011A, 5, 1, r(x)));
            ifd0.push((0x011B, 5, 1, r(y)));
            ifd0.push((0x0128, 3, 1, unit.to_le_bytes().to_vec()));
        }
        if let Some(s) = &self.software {
            ifd0.push((0x0131, 2, s.len() as u32 + 1, ascii(s)));
        }
        let exif_ifd: Vec<(u16, u16, u32, Vec<u8>)> =
            self.datetime_original.iter().map(|s| (0x9003, 2, s.len() as u32 + 1, ascii(s))).collect();
        if !exif_ifd.is_empty() {
            ifd0.push((0x8769, 4, 1, vec![0; 4])); // patched below
        }

        let mut out = b"II*\0".to_vec();
        out.extend_from_slice(&8u32.to_le_bytes());
        let pointer_at = write_ifd(&mut out, &ifd0, 0x8769);
        if let Some(at) = pointer_at {
            let here = out.len() as u32;
            out[at..at + 4].copy_from_slice(&here.to_le_bytes());
            write_ifd(&mut out, &exif_ifd, 0);
        }
        out
    }
}

/// Writes an IFD at the end of `out` with its out-of-line values after it. Returns where the value of `patch_tag`
/// was written, so a pointer can be filled in later.
fn write_ifd(out: &mut Vec<u8>, entries: &[(u16, u16, u32, Vec<u8>)], patch_tag: u16) -> Option<usize> {
    let start = out.len();
    let data_start = start + 2 + entries.len() * 12 + 4;
    let mut data = Vec::new();
    let mut patch = None;
    out.extend_from_slice(&(entries.len() as u16).to_le_bytes());
    for (tag, ty, count, value) in entries {
        out.extend_from_slice(&tag.to_le_bytes());
        out.extend_from_slice(&ty.to_le_bytes());
        out.extend_from_slice(&count.to_le_bytes());
        if *tag == patch_tag && patch_tag != 0 {
            patch = Some(out.len());
        }
        if value.len() <= 4 {
            let mut v = value.clone();
            v.resize(4, 0);
            out.extend_from_slice(&v);
        } else {
            let off = (data_start + data.len()) as u32;
            out.extend_from_slice(&off.to_le_bytes());
            data.extend_from_slice(value);
            if data.len() % 2 == 1 {
                data.push(0);
            }
        }
    }
    out.extend_from_slice(&0u32.to_le_bytes());
    out.extend_from_slice(&data);
    patch
}
