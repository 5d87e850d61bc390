//! A corpus of malformed files, each built from a real JPEG with one known fault, and the error codes a reader
//! may answer with. Used by the tests (every case must be an `error` verdict, never a panic) and as fuzz seeds.

use crate::exif::ExifSpec;
use crate::{JpegSpec, encode, marker_segment, portrait, resize};

/// One malformed file.
#[derive(Debug, Clone)]
pub struct Case {
    pub label: String,
    pub bytes: Vec<u8>,
    /// The error codes that are a right answer for this fault.
    pub codes: &'static [&'static str],
}

/// A segment found by walking the markers of a well-formed file.
#[derive(Debug, Clone, Copy)]
pub struct Seg {
    pub marker: u8,
    pub offset: usize,
    /// Bytes up to the next marker (entropy data included for SOS).
    pub len: usize,
}

/// Walks the markers of a well-formed JPEG (no checks: the input is ours).
pub fn segments(jpeg: &[u8]) -> Vec<Seg> {
    let mut out = vec![Seg { marker: 0xD8, offset: 0, len: 2 }];
    let mut pos = 2;
    while pos + 4 <= jpeg.len() {
        let marker = jpeg[pos + 1];
        if marker == 0xD9 {
            out.push(Seg { marker, offset: pos, len: 2 });
            break;
        }
        let mut end = pos + 2 + usize::from(u16::from_be_bytes([jpeg[pos + 2], jpeg[pos + 3]]));
        if marker == 0xDA {
            while end + 1 < jpeg.len() && (jpeg[end] != 0xFF || matches!(jpeg[end + 1], 0x00 | 0xD0..=0xD7)) {
                end += 1;
            }
        }
        out.push(Seg { marker, offset: pos, len: end - pos });
        pos = end;
    }
    out
}

const TRUNCATED: &[&str] = &["jpeg.truncated"];
const STRUCTURE: &[&str] = &[
    "jpeg.truncated",
    "jpeg.bad_marker",
    "jpeg.bad_length",
    "jpeg.bad_segment",
    "jpeg.no_frame",
    "jpeg.no_scan",
    "jpeg.multiple_frames",
    "decode.failed",
    "decode.corrupt_data",
];

/// The two real files the corpus is cut from: a baseline file with EXIF and a comment, and a progressive one.
pub fn sources() -> Vec<(&'static str, Vec<u8>)> {
    let img = resize(&portrait("grace_hopper.jpg"), 96, 128);
    let baseline = encode(
        &img,
        &JpegSpec {
            quality: 85,
            exif: Some(ExifSpec::camera().build()),
            comments: vec![b"made by gradphoto-testkit".to_vec()],
            ..JpegSpec::default()
        },
    );
    let progressive = encode(&img, &JpegSpec { encoder: crate::Encoder::Mozjpeg, ..JpegSpec::default() });
    vec![("baseline", baseline), ("progressive", progressive)]
}

fn with(bytes: &[u8], f: impl FnOnce(&mut Vec<u8>)) -> Vec<u8> {
    let mut b = bytes.to_vec();
    f(&mut b);
    b
}

/// Builds the corpus: more than 300 files.
pub fn corpus() -> Vec<Case> {
    let mut cases = Vec::new();
    let mut push = |label: String, bytes: Vec<u8>, codes: &'static [&'static str]| {
        cases.push(Case { label, bytes, codes });
    };
    for (name, src) in sources() {
        let segs = segments(&src);
        let eoi = src.len() - 2;
        // Truncated at every segment boundary, inside every header, and at points through the image data.
        for s in &segs[1..] {
            for cut in [s.offset, s.offset + 1, s.offset + 3, s.offset + s.len / 2] {
                if cut > 0 && cut < src.len() {
                    push(format!("{name}: truncated at {cut} (in 0x{:02X})", s.marker), src[..cut].to_vec(), TRUNCATED);
                }
            }
        }
        for k in 1..10 {
            let cut = eoi * k / 10;
            push(format!("{name}: truncated at {k}0%"), src[..cut].to_vec(), TRUNCATED);
        }
        push(format!("{name}: last byte missing"), src[..src.len() - 1].to_vec(), TRUNCATED);
        for s in segs.iter().filter(|s| !matches!(s.marker, 0xD8 | 0xD9)) {
            let o = s.offset;
            let m = s.marker;
            // Corrupt markers.
            for bad in [0x00u8, 0xD0, 0xD8, 0xD3] {
                push(
                    format!("{name}: marker 0x{m:02X} at {o} → 0x{bad:02X}"),
                    with(&src, |b| b[o + 1] = bad),
                    STRUCTURE,
                );
            }
            push(format!("{name}: 0xFF of 0x{m:02X} at {o} cleared"), with(&src, |b| b[o] = 0x00), STRUCTURE);
            // Zero, one and oversized lengths.
            for len in [0u16, 1] {
                push(
                    format!("{name}: length {len} for 0x{m:02X} at {o}"),
                    with(&src, |b| b[o + 2..o + 4].copy_from_slice(&len.to_be_bytes())),
                    &["jpeg.bad_length"],
                );
            }
            for len in [0xFFFFu16, 0xFFFE] {
                push(
                    format!("{name}: length {len} for 0x{m:02X} at {o}"),
                    with(&src, |b| b[o + 2..o + 4].copy_from_slice(&len.to_be_bytes())),
                    STRUCTURE,
                );
            }
            let declared = u16::from_be_bytes([src[o + 2], src[o + 3]]);
            for delta in [1i32, -1, 7] {
                let len = (i32::from(declared) + delta).clamp(2, 0xFFFF) as u16;
                push(
                    format!("{name}: length {declared}{delta:+} for 0x{m:02X} at {o}"),
                    with(&src, |b| b[o + 2..o + 4].copy_from_slice(&len.to_be_bytes())),
                    STRUCTURE,
                );
            }
        }
        // The frame header: absurd sizes, bad components, precision.
        let sof = segs.iter().find(|s| matches!(s.marker, 0xC0 | 0xC2)).expect("frame").offset;
        let dims: [(u16, u16, &'static [&'static str]); 6] = [
            (65535, 65535, &["limits.pixels"]),
            (0, 128, &["limits.pixels"]),
            (96, 0, &["limits.pixels"]),
            (40000, 40000, &["limits.pixels"]),
            (65535, 1000, &["limits.pixels"]),
            (9000, 9000, &["limits.pixels"]),
        ];
        for (w, h, codes) in dims {
            push(
                format!("{name}: frame declares {w}×{h}"),
                with(&src, |b| {
                    b[sof + 5..sof + 7].copy_from_slice(&h.to_be_bytes());
                    b[sof + 7..sof + 9].copy_from_slice(&w.to_be_bytes());
                }),
                codes,
            );
        }
        for (w, h) in [(97u16, 128u16), (96, 129), (200, 300), (8, 8), (1, 1)] {
            push(
                format!("{name}: frame declares {w}×{h}, data is 96×128"),
                with(&src, |b| {
                    b[sof + 5..sof + 7].copy_from_slice(&h.to_be_bytes());
                    b[sof + 7..sof + 9].copy_from_slice(&w.to_be_bytes());
                }),
                &["decode.corrupt_data", "decode.failed"],
            );
        }
        push(
            format!("{name}: 12-bit precision"),
            with(&src, |b| b[sof + 4] = 12),
            &["jpeg.unsupported", "decode.failed"],
        );
        push(format!("{name}: precision 7"), with(&src, |b| b[sof + 4] = 7), &["jpeg.bad_segment"]);
        push(format!("{name}: 2 components"), with(&src, |b| b[sof + 9] = 2), &["jpeg.bad_segment"]);
        push(format!("{name}: sampling 0"), with(&src, |b| b[sof + 11] = 0x00), &["jpeg.bad_segment"]);
        push(format!("{name}: sampling 5×5"), with(&src, |b| b[sof + 11] = 0x55), &["jpeg.bad_segment"]);
        push(format!("{name}: table slot 9"), with(&src, |b| b[sof + 12] = 9), &["jpeg.bad_segment"]);
        push(
            format!("{name}: duplicate component id"),
            with(&src, |b| b[sof + 13] = b[sof + 10]),
            &["jpeg.bad_segment"],
        );
        push(format!("{name}: arithmetic coding"), with(&src, |b| b[sof + 1] = 0xC9), &["jpeg.unsupported"]);
        push(format!("{name}: lossless"), with(&src, |b| b[sof + 1] = 0xC3), &["jpeg.unsupported", "jpeg.bad_segment"]);
        // Tables.
        if let Some(dqt) = segs.iter().find(|s| s.marker == 0xDB) {
            let o = dqt.offset;
            push(format!("{name}: quantisation step 0"), with(&src, |b| b[o + 5] = 0), &["jpeg.bad_segment"]);
            push(format!("{name}: quantisation slot 7"), with(&src, |b| b[o + 4] = 0x07), &["jpeg.bad_segment"]);
            push(format!("{name}: quantisation precision 3"), with(&src, |b| b[o + 4] = 0x30), &["jpeg.bad_segment"]);
        }
        if let Some(dht) = segs.iter().find(|s| s.marker == 0xC4) {
            let o = dht.offset;
            push(
                format!("{name}: Huffman counts over 256"),
                with(&src, |b| b[o + 5..o + 21].fill(0xFF)),
                &["jpeg.bad_segment"],
            );
            push(format!("{name}: Huffman class 3"), with(&src, |b| b[o + 4] = 0x30), &["jpeg.bad_segment"]);
        }
        let sos = segs.iter().find(|s| s.marker == 0xDA).expect("scan");
        push(format!("{name}: scan names component 9"), with(&src, |b| b[sos.offset + 5] = 9), &["jpeg.bad_segment"]);
        push(format!("{name}: scan component count 0"), with(&src, |b| b[sos.offset + 4] = 0), &["jpeg.bad_segment"]);
        // Whole segments removed or repeated.
        let remove = |b: &[u8], s: &Seg| [&b[..s.offset], &b[s.offset + s.len..]].concat();
        push(
            format!("{name}: frame header removed"),
            remove(&src, &segs[segs.iter().position(|s| s.offset == sof).unwrap()]),
            &["jpeg.no_frame"],
        );
        let scans: Vec<&Seg> = segs.iter().filter(|s| s.marker == 0xDA).collect();
        let no_scans = scans.iter().rev().fold(src.clone(), |b, s| remove(&b, s));
        push(format!("{name}: all scans removed"), no_scans, &["jpeg.no_scan"]);
        let sof_seg = segs.iter().find(|s| s.offset == sof).unwrap();
        let twice = [&src[..sof_seg.offset + sof_seg.len], &src[sof_seg.offset..]].concat();
        push(format!("{name}: frame header twice"), twice, &["jpeg.multiple_frames"]);
        // An end-of-image marker inside the image data: the rest of the picture is missing.
        for k in [1, 3, 5] {
            let at = sos.offset + sos.len * k / 6;
            push(
                format!("{name}: EOI inserted at {at}"),
                [&src[..at], &[0xFF, 0xD9], &src[at..]].concat(),
                &["decode.corrupt_data", "jpeg.bad_marker"],
            );
        }
        push(
            format!("{name}: SOI inside image"),
            [&src[..sof], &[0xFF, 0xD8], &src[sof..]].concat(),
            &["jpeg.bad_marker"],
        );
    }
    // EXIF offset loops and pointers out of range, in an otherwise good file.
    let img = resize(&portrait("grace_hopper.jpg"), 64, 80);
    let good = encode(&img, &JpegSpec::default());
    for (label, tiff) in hostile_exif() {
        let mut payload = b"Exif\0\0".to_vec();
        payload.extend_from_slice(&tiff);
        let bytes = crate::insert_after_app0(&good, &[marker_segment(0xE1, &payload)]);
        cases.push(Case { label: format!("EXIF: {label}"), bytes, codes: &["exif.malformed"] });
    }
    // Not JPEG at all, named .jpg.
    let mut png = Vec::new();
    image::DynamicImage::ImageRgb8(img.clone())
        .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
        .expect("png");
    let others: Vec<(&str, Vec<u8>, &'static [&'static str])> = vec![
        ("PNG renamed .jpg", png, &["input.not_jpeg"]),
        (
            "GIF renamed .jpg",
            b"GIF89a\x01\0\x01\0\x80\0\0\0\0\0\xff\xff\xff!\xf9\x04\x01\0\0\0\0,\0\0\0\0\x01\0\x01\0\0\x02\x02D\x01\0;"
                .to_vec(),
            &["input.not_jpeg"],
        ),
        ("HEIC renamed .jpg", [&b"\0\0\0\x18ftypheic\0\0\0\0mif1heic"[..], &[0u8; 64]].concat(), &["input.not_jpeg"]),
        ("WebP renamed .jpg", [&b"RIFF\x24\0\0\0WEBPVP8 "[..], &[0u8; 32]].concat(), &["input.not_jpeg"]),
        ("BMP renamed .jpg", [&b"BM"[..], &[0u8; 60]].concat(), &["input.not_jpeg"]),
        ("PDF renamed .jpg", b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n".to_vec(), &["input.not_jpeg"]),
        ("text renamed .jpg", "这不是照片 this is not a photo\n".as_bytes().to_vec(), &["input.not_jpeg"]),
        ("HTML renamed .jpg", b"<!doctype html><title>x</title>".to_vec(), &["input.not_jpeg"]),
        ("empty file", Vec::new(), &["input.empty"]),
        ("one byte", vec![0xFF], &["input.not_jpeg"]),
        ("SOI only", vec![0xFF, 0xD8], &["jpeg.truncated"]),
        ("SOI EOI", vec![0xFF, 0xD8, 0xFF, 0xD9], &["jpeg.no_frame"]),
        ("zeros", vec![0; 4096], &["input.not_jpeg"]),
        ("SOI then zeros", [&[0xFFu8, 0xD8][..], &[0u8; 100]].concat(), &["jpeg.bad_marker"]),
        ("SOI then fill bytes", [&[0xFFu8, 0xD8][..], &[0xFFu8; 100]].concat(), &["jpeg.truncated"]),
    ];
    for (label, bytes, codes) in others {
        cases.push(Case { label: label.to_string(), bytes, codes });
    }
    cases
}

/// TIFF blocks with loops and out-of-range offsets.
fn hostile_exif() -> Vec<(&'static str, Vec<u8>)> {
    let good = ExifSpec::camera().build();
    let le32 = |v: u32| v.to_le_bytes();
    // IFD0 sits at offset 8; its entry count is 2 bytes, entries 12 bytes each, then the next-IFD offset.
    let entries = usize::from(u16::from_le_bytes([good[8], good[9]]));
    let next_at = 10 + entries * 12;
    let exif_ptr_at = (0..entries)
        .map(|i| 10 + i * 12)
        .find(|&e| u16::from_le_bytes([good[e], good[e + 1]]) == 0x8769)
        .expect("exif pointer")
        + 8;
    vec![
        ("next IFD points to itself", with(&good, |b| b[next_at..next_at + 4].copy_from_slice(&le32(8)))),
        ("Exif IFD points back to IFD0", with(&good, |b| b[exif_ptr_at..exif_ptr_at + 4].copy_from_slice(&le32(8)))),
        (
            "Exif IFD beyond the block",
            with(&good, |b| b[exif_ptr_at..exif_ptr_at + 4].copy_from_slice(&le32(0x7FFF_FFF0))),
        ),
        ("IFD0 beyond the block", with(&good, |b| b[4..8].copy_from_slice(&le32(60_000)))),
        ("IFD0 offset into the header", with(&good, |b| b[4..8].copy_from_slice(&le32(2)))),
        ("bad byte-order mark", with(&good, |b| b[0..2].copy_from_slice(b"XX"))),
        ("bad TIFF magic", with(&good, |b| b[2] = 0x2B)),
        ("cut in the middle of IFD0", good[..20].to_vec()),
        ("entry count 65535", with(&good, |b| b[8..10].copy_from_slice(&0xFFFFu16.to_le_bytes()))),
    ]
}
