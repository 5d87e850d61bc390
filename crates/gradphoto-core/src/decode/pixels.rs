//! Pixels for analysis: decoded by libjpeg-turbo (through mozjpeg), scaled in the DCT domain when the original is
//! large, turned upright by the EXIF orientation, always 8-bit RGB.

use std::cell::Cell;
use std::os::raw::c_int;
use std::panic::{AssertUnwindSafe, catch_unwind};

use mozjpeg_sys::{jpeg_common_struct, jpeg_error_mgr};
use serde::Serialize;

use super::container::{Container, FrameKind};
use super::error::ReadError;

/// An 8-bit RGB image, rows top to bottom, 3 bytes a pixel.
#[derive(Clone, PartialEq, Eq)]
pub struct RgbImage {
    pub width: u32,
    pub height: u32,
    pub pixels: Vec<u8>,
}

impl std::fmt::Debug for RgbImage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "RgbImage({}×{})", self.width, self.height)
    }
}

impl RgbImage {
    pub fn pixel(&self, x: u32, y: u32) -> [u8; 3] {
        let i = (y as usize * self.width as usize + x as usize) * 3;
        [self.pixels[i], self.pixels[i + 1], self.pixels[i + 2]]
    }
}

/// DCT-domain scaling: libjpeg computes a reduced inverse DCT instead of decoding at full size and shrinking.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Scale {
    Full,
    Half,
    Quarter,
    Eighth,
}

impl Scale {
    pub const ALL: [Scale; 4] = [Scale::Full, Scale::Half, Scale::Quarter, Scale::Eighth];

    pub fn denominator(self) -> u32 {
        match self {
            Scale::Full => 1,
            Scale::Half => 2,
            Scale::Quarter => 4,
            Scale::Eighth => 8,
        }
    }

    /// The smallest scale whose long side is still at least `min_long_side` (or full size when the image is
    /// already smaller). A 4000 × 3000 original with `min_long_side` 800 is analysed at 1000 × 750.
    pub fn for_analysis(width: u32, height: u32, min_long_side: u32) -> Scale {
        let long = width.max(height);
        Scale::ALL.into_iter().rev().find(|s| long.div_ceil(s.denominator()) >= min_long_side).unwrap_or(Scale::Full)
    }
}

thread_local! {
    static WARNINGS: Cell<u32> = const { Cell::new(0) };
}

// libjpeg reports corrupt entropy data as warnings and carries on with grey blocks; we count them, since
// a photo with grey blocks is not the photo that was taken.
extern "C-unwind" fn count_warning(_cinfo: &mut jpeg_common_struct, level: c_int) {
    if level < 0 {
        WARNINGS.with(|w| w.set(w.get().saturating_add(1)));
    }
}

extern "C-unwind" fn ignore(_cinfo: &mut jpeg_common_struct) {}

// libjpeg must not return from error_exit; unwinding without the panic hook is how the mozjpeg crate does it.
extern "C-unwind" fn fail(_cinfo: &mut jpeg_common_struct) {
    std::panic::resume_unwind(Box::new("libjpeg refused the data"));
}

fn error_manager() -> jpeg_error_mgr {
    jpeg_error_mgr {
        error_exit: Some(fail),
        emit_message: Some(count_warning),
        output_message: Some(ignore),
        format_message: None,
        reset_error_mgr: Some(ignore),
        msg_code: 0,
        msg_parm: Default::default(),
        trace_level: 0,
        num_warnings: 0,
        jpeg_message_table: std::ptr::null(),
        last_jpeg_message: 0,
        addon_message_table: std::ptr::null(),
        first_addon_message: 0,
        last_addon_message: 0,
    }
}

/// Decodes the stored pixels at `scale`, not yet turned upright. The container must come from the same bytes:
/// its checks (limits, frame kind, components) are what make handing the data to libjpeg safe.
pub fn decode(data: &[u8], container: &Container<'_>, scale: Scale) -> Result<RgbImage, ReadError> {
    let frame = &container.frame;
    if frame.kind == FrameKind::Lossless || frame.arithmetic || frame.hierarchical {
        return Err(ReadError::Unsupported { what: "lossless, arithmetic or hierarchical JPEG" });
    }
    if frame.precision != 8 {
        return Err(ReadError::Unsupported { what: "12-bit samples" });
    }
    if frame.components.len() == 4 {
        return Err(ReadError::UnsupportedColor { what: "CMYK" });
    }
    let grey = frame.components.len() == 1;
    // Only what libjpeg needs to decode: the container already holds the metadata.
    let data = &data[..container.end_of_image];
    WARNINGS.with(|w| w.set(0));
    let outcome = catch_unwind(AssertUnwindSafe(|| -> std::io::Result<(usize, usize, Vec<u8>)> {
        let mut d = mozjpeg::Decompress::with_err(error_manager()).from_mem(data)?;
        d.scale((8 / scale.denominator()) as u8);
        let mut started = if grey { d.grayscale()? } else { d.rgb()? };
        let (w, h) = (started.width(), started.height());
        let pixels: Vec<u8> = started.read_scanlines()?;
        started.finish()?;
        Ok((w, h, pixels))
    }));
    let warnings = WARNINGS.with(Cell::get);
    let (w, h, pixels) = match outcome {
        Ok(Ok(v)) => v,
        Ok(Err(e)) => return Err(ReadError::Decode { detail: e.to_string() }),
        Err(_) => return Err(ReadError::Decode { detail: "libjpeg stopped on an error".into() }),
    };
    if warnings > 0 {
        return Err(ReadError::CorruptData { warnings });
    }
    let pixels = if grey { pixels.iter().flat_map(|&v| [v, v, v]).collect() } else { pixels };
    if pixels.len() != w * h * 3 {
        return Err(ReadError::Decode { detail: "the decoder returned fewer rows than the frame declares".into() });
    }
    Ok(RgbImage { width: w as u32, height: h as u32, pixels })
}

/// Whether EXIF orientation `o` mirrors the image (2, 4, 5, 7): S 一.2 forbids mirrored images.
pub fn orientation_mirrors(o: u16) -> bool {
    matches!(o, 2 | 4 | 5 | 7)
}

/// Applies EXIF orientation `o` so that the image is as the camera saw it upright. Unknown values leave it as is.
pub fn upright(img: RgbImage, o: u16) -> RgbImage {
    if !(2..=8).contains(&o) {
        return img;
    }
    let (w, h) = (img.width as usize, img.height as usize);
    let transposed = o >= 5;
    let (ow, oh) = if transposed { (h, w) } else { (w, h) };
    // Where output pixel (x, y) comes from in the stored image, as sx = x0 + xx·x + xy·y and sy likewise.
    let (l, b) = (w as isize - 1, h as isize - 1);
    let ((sx0, sxx, sxy), (sy0, syx, syy)) = match o {
        2 => ((l, -1, 0), (0, 0, 1)),
        3 => ((l, -1, 0), (b, 0, -1)),
        4 => ((0, 1, 0), (b, 0, -1)),
        5 => ((0, 0, 1), (0, 1, 0)),
        6 => ((0, 0, 1), (b, -1, 0)),
        7 => ((l, 0, -1), (b, -1, 0)),
        _ => ((l, 0, -1), (0, 1, 0)),
    };
    // The same as byte offsets: one add per pixel, no per-pixel case.
    let wi = w as isize;
    let (start, step_x, step_y) = (3 * (sy0 * wi + sx0), 3 * (syx * wi + sxx), 3 * (syy * wi + sxy));
    let mut out = vec![0u8; img.pixels.len()];
    let src = &img.pixels;
    // In tiles: a quarter turn reads the stored image down its columns, and over whole rows every read was a
    // cache miss (5.7 ms for a 12 MP original's 750 × 1000 analysis image). A tile's source rows stay in cache.
    const TILE: usize = 32;
    for ty in (0..oh).step_by(TILE) {
        for tx in (0..ow).step_by(TILE) {
            let tw = TILE.min(ow - tx);
            for y in ty..(ty + TILE).min(oh) {
                let mut si = start + step_x * tx as isize + step_y * y as isize;
                let row = &mut out[(y * ow + tx) * 3..][..tw * 3];
                for d in row.chunks_exact_mut(3) {
                    // Within the image by construction: every (x, y) maps to a stored pixel.
                    let i = si as usize;
                    d.copy_from_slice(&src[i..i + 3]);
                    si += step_x;
                }
            }
        }
    }
    RgbImage { width: ow as u32, height: oh as u32, pixels: out }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn analysis_scale_keeps_about_a_thousand_pixels() {
        assert_eq!(Scale::for_analysis(4000, 3000, 800), Scale::Quarter);
        assert_eq!(Scale::for_analysis(3000, 4000, 800), Scale::Quarter);
        assert_eq!(Scale::for_analysis(3000, 2000, 800), Scale::Half);
        assert_eq!(Scale::for_analysis(480, 640, 800), Scale::Full);
        assert_eq!(Scale::for_analysis(8000, 6000, 800), Scale::Eighth);
    }

    /// A 2×3 image whose pixels are numbered, to follow where each lands.
    fn numbered() -> RgbImage {
        RgbImage { width: 2, height: 3, pixels: (0..6u8).flat_map(|i| [i, 0, 0]).collect() }
    }

    fn reds(img: &RgbImage) -> Vec<u8> {
        img.pixels.chunks(3).map(|p| p[0]).collect()
    }

    #[test]
    fn orientations_match_the_exif_definition() {
        // Stored:  0 1 / 2 3 / 4 5
        assert_eq!(reds(&upright(numbered(), 1)), [0, 1, 2, 3, 4, 5]);
        assert_eq!(reds(&upright(numbered(), 2)), [1, 0, 3, 2, 5, 4]);
        assert_eq!(reds(&upright(numbered(), 3)), [5, 4, 3, 2, 1, 0]);
        assert_eq!(reds(&upright(numbered(), 4)), [4, 5, 2, 3, 0, 1]);
        assert_eq!(reds(&upright(numbered(), 5)), [0, 2, 4, 1, 3, 5]);
        // 6: the stored image is rotated 90° clockwise to be seen upright.
        assert_eq!(reds(&upright(numbered(), 6)), [4, 2, 0, 5, 3, 1]);
        assert_eq!(reds(&upright(numbered(), 7)), [5, 3, 1, 4, 2, 0]);
        assert_eq!(reds(&upright(numbered(), 8)), [1, 3, 5, 0, 2, 4]);
        let r = upright(numbered(), 6);
        assert_eq!((r.width, r.height), (3, 2));
    }

    #[test]
    fn orientations_over_several_tiles_match_pixel_by_pixel() {
        // Wider and taller than a tile, and not a multiple of it.
        let (w, h) = (70usize, 45usize);
        let img = RgbImage {
            width: w as u32,
            height: h as u32,
            pixels: (0..w * h).flat_map(|i| [(i % 251) as u8, (i / 251) as u8, (i % 7) as u8]).collect(),
        };
        for o in 2..=8u16 {
            let r = upright(img.clone(), o);
            let (ow, oh) = if o >= 5 { (h, w) } else { (w, h) };
            assert_eq!((r.width as usize, r.height as usize), (ow, oh));
            for y in 0..oh {
                for x in 0..ow {
                    let (sx, sy) = match o {
                        2 => (w - 1 - x, y),
                        3 => (w - 1 - x, h - 1 - y),
                        4 => (x, h - 1 - y),
                        5 => (y, x),
                        6 => (y, h - 1 - x),
                        7 => (w - 1 - y, h - 1 - x),
                        _ => (w - 1 - y, x),
                    };
                    assert_eq!(
                        r.pixel(x as u32, y as u32),
                        img.pixel(sx as u32, sy as u32),
                        "orientation {o} at {x},{y}"
                    );
                }
            }
        }
    }
}
