//! Test photos built at test time from `../shared/testdata` (never committed): re-encoded at known qualities,
//! densities, sizes and orientations, with camera-like EXIF, and a corpus of malformed files with known faults.

pub mod exif;
pub mod hostile;

use std::path::PathBuf;

pub use image::{ImageFormat, RgbImage};

/// `../shared` beside the checkout, or `GRADPHOTO_SHARED` when set.
pub fn shared_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("GRADPHOTO_SHARED") {
        return PathBuf::from(dir);
    }
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared");
    root.canonicalize().unwrap_or(root)
}

/// The data folder the tests and benchmarks share for the face models (fetched once per checkout with pip).
pub fn models_data_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/models-data")
}

/// File names of the single-face portraits in the shared test data, sorted.
pub fn portrait_names() -> Vec<String> {
    image_names(&shared_dir().join("testdata/portraits"))
}

/// File names of the images (JPEG, PNG) in a folder, sorted.
pub fn image_names(dir: &std::path::Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()))
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| {
            let n = n.to_ascii_lowercase();
            n.ends_with(".jpg") || n.ends_with(".jpeg") || n.ends_with(".png")
        })
        .collect();
    names.sort();
    names
}

/// A portrait from the shared test data, decoded to RGB.
pub fn portrait(name: &str) -> RgbImage {
    open(&shared_dir().join("testdata/portraits").join(name))
}

/// An image file decoded to RGB.
pub fn open(path: &std::path::Path) -> RgbImage {
    image::open(path).unwrap_or_else(|e| panic!("cannot open {}: {e}", path.display())).to_rgb8()
}

/// The raw bytes of a file in the shared test data, e.g. `portraits/grace_hopper.jpg`.
pub fn testdata_bytes(relative: &str) -> Vec<u8> {
    let path = shared_dir().join("testdata").join(relative);
    std::fs::read(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

/// Resizes with a Lanczos3 filter.
pub fn resize(img: &RgbImage, width: u32, height: u32) -> RgbImage {
    image::imageops::resize(img, width, height, image::imageops::FilterType::Lanczos3)
}

/// A centred crop of aspect `aw:ah` as large as fits, then resized to `width × height`.
pub fn crop_to(img: &RgbImage, width: u32, height: u32) -> RgbImage {
    let (w, h) = img.dimensions();
    let (cw, ch) = if u64::from(w) * u64::from(height) > u64::from(h) * u64::from(width) {
        ((u64::from(h) * u64::from(width) / u64::from(height)) as u32, h)
    } else {
        (w, (u64::from(w) * u64::from(height) / u64::from(width)) as u32)
    };
    let cropped = image::imageops::crop_imm(img, (w - cw) / 2, (h - ch) / 2, cw, ch).to_image();
    resize(&cropped, width, height)
}

/// Adds deterministic luminance grain of amplitude ±`amp`, like a camera's output after its chroma noise
/// reduction, so that a JPEG of it is camera-sized.
pub fn add_noise(img: &mut RgbImage, amp: u8, seed: u64) {
    let mut state = seed | 1;
    for px in img.pixels_mut() {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let n = (state % (2 * u64::from(amp) + 1)) as i32 - i32::from(amp);
        for v in px.0.iter_mut() {
            *v = (i32::from(*v) + n).clamp(0, 255) as u8;
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoder {
    /// libjpeg-turbo behaviour (mozjpeg with its "fastest" profile): the IJG Annex K tables scaled by quality.
    Libjpeg,
    /// mozjpeg defaults: its own tables, trellis quantisation, progressive.
    Mozjpeg,
    /// The pure-Rust encoder of the `image` crate (IJG tables).
    ImageRs,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Subsampling {
    S420,
    S444,
}

/// How to write a test JPEG.
#[derive(Debug, Clone)]
pub struct JpegSpec {
    pub quality: u8,
    pub encoder: Encoder,
    pub subsampling: Subsampling,
    /// JFIF density: (units, x, y); units 1 = dpi, 2 = dots/cm. None writes the encoder's default (no units).
    pub density: Option<(u8, u16, u16)>,
    /// A TIFF block to write as EXIF APP1 (see [`exif::ExifSpec`]).
    pub exif: Option<Vec<u8>>,
    pub comments: Vec<Vec<u8>>,
    pub grey: bool,
}

impl Default for JpegSpec {
    fn default() -> Self {
        JpegSpec {
            quality: 90,
            encoder: Encoder::Libjpeg,
            subsampling: Subsampling::S420,
            density: Some((1, 300, 300)),
            exif: None,
            comments: Vec::new(),
            grey: false,
        }
    }
}

/// Encodes `img` as `spec` says.
pub fn encode(img: &RgbImage, spec: &JpegSpec) -> Vec<u8> {
    match spec.encoder {
        Encoder::ImageRs => {
            let mut out = Vec::new();
            let enc = image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, spec.quality);
            img.write_with_encoder(enc).expect("in-memory encode");
            let with_density = match spec.density {
                Some((u, x, y)) => set_jfif_density(&out, u, x, y),
                None => out,
            };
            let mut segments = Vec::new();
            if let Some(e) = &spec.exif {
                segments.push(app1_exif(e));
            }
            for c in &spec.comments {
                segments.push(marker_segment(0xFE, c));
            }
            insert_after_app0(&with_density, &segments)
        }
        Encoder::Libjpeg | Encoder::Mozjpeg => encode_mozjpeg(img, spec),
    }
}

fn encode_mozjpeg(img: &RgbImage, spec: &JpegSpec) -> Vec<u8> {
    std::panic::catch_unwind(|| {
        let (cs, pixels): (mozjpeg::ColorSpace, Vec<u8>) = if spec.grey {
            let g = image::DynamicImage::ImageRgb8(img.clone()).to_luma8();
            (mozjpeg::ColorSpace::JCS_GRAYSCALE, g.into_raw())
        } else {
            (mozjpeg::ColorSpace::JCS_RGB, img.as_raw().clone())
        };
        let mut c = mozjpeg::Compress::new(cs);
        if spec.encoder == Encoder::Libjpeg {
            c.set_fastest_defaults();
        }
        c.set_size(img.width() as usize, img.height() as usize);
        c.set_quality(f32::from(spec.quality));
        if !spec.grey {
            match spec.subsampling {
                Subsampling::S420 => c.set_chroma_sampling_pixel_sizes((2, 2), (2, 2)),
                Subsampling::S444 => c.set_chroma_sampling_pixel_sizes((1, 1), (1, 1)),
            }
        }
        if let Some((u, x, y)) = spec.density {
            let unit = match u {
                1 => mozjpeg::PixelDensityUnit::Inches,
                2 => mozjpeg::PixelDensityUnit::Centimeters,
                _ => mozjpeg::PixelDensityUnit::PixelAspectRatio,
            };
            c.set_pixel_density(mozjpeg::PixelDensity { unit, x, y });
        }
        let mut s = c.start_compress(Vec::new()).expect("start");
        if let Some(e) = &spec.exif {
            let mut payload = b"Exif\0\0".to_vec();
            payload.extend_from_slice(e);
            s.write_marker(mozjpeg::Marker::APP(1), &payload);
        }
        for comment in &spec.comments {
            s.write_marker(mozjpeg::Marker::COM, comment);
        }
        s.write_scanlines(&pixels).expect("scanlines");
        s.finish().expect("finish")
    })
    .expect("mozjpeg encode")
}

/// A marker segment: FF, marker, big-endian length, payload.
pub fn marker_segment(marker: u8, payload: &[u8]) -> Vec<u8> {
    let len = u16::try_from(payload.len() + 2).expect("segment payload over 64 KiB");
    let mut s = vec![0xFF, marker];
    s.extend_from_slice(&len.to_be_bytes());
    s.extend_from_slice(payload);
    s
}

fn app1_exif(tiff: &[u8]) -> Vec<u8> {
    let mut payload = b"Exif\0\0".to_vec();
    payload.extend_from_slice(tiff);
    marker_segment(0xE1, &payload)
}

/// Inserts whole segments right after SOI and the APP0 that follows it, if any.
pub fn insert_after_app0(jpeg: &[u8], segments: &[Vec<u8>]) -> Vec<u8> {
    let mut at = 2;
    if jpeg.get(2..4) == Some(&[0xFF, 0xE0][..]) {
        at = 4 + usize::from(u16::from_be_bytes([jpeg[4], jpeg[5]]));
    }
    let mut out = jpeg[..at].to_vec();
    for s in segments {
        out.extend_from_slice(s);
    }
    out.extend_from_slice(&jpeg[at..]);
    out
}

/// Rewrites (or adds) the JFIF APP0 density.
pub fn set_jfif_density(jpeg: &[u8], units: u8, x: u16, y: u16) -> Vec<u8> {
    let mut app0 = b"JFIF\0\x01\x01".to_vec();
    app0.push(units);
    app0.extend_from_slice(&x.to_be_bytes());
    app0.extend_from_slice(&y.to_be_bytes());
    app0.extend_from_slice(&[0, 0]);
    let mut out = jpeg[..2].to_vec();
    out.extend_from_slice(&marker_segment(0xE0, &app0));
    let rest = if jpeg.get(2..4) == Some(&[0xFF, 0xE0][..]) {
        &jpeg[4 + usize::from(u16::from_be_bytes([jpeg[4], jpeg[5]]))..]
    } else {
        &jpeg[2..]
    };
    out.extend_from_slice(rest);
    out
}

/// A studio-like original: `img` cropped to 3:4 and scaled to `width × height`, grain added, written by the camera
/// at `quality` with camera EXIF (Canon, 300 dpi, taken `days_ago` before 2026-11-29).
pub fn camera_original(img: &RgbImage, width: u32, height: u32, quality: u8, grain: u8) -> Vec<u8> {
    let mut big = crop_to(img, width, height);
    if grain > 0 {
        add_noise(&mut big, grain, 0x5eed);
    }
    let spec = JpegSpec { quality, exif: Some(exif::ExifSpec::camera().build()), ..JpegSpec::default() };
    encode(&big, &spec)
}
