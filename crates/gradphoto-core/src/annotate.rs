//! The annotated picture a student sees: the 480 × 640 rendering with the standard's guide lines (hair top 50/110,
//! eyes 200/300), the face-width bracket (180/300 around the face centre), the eye centres, the measured hair top, the
//! background mask's outline, and what fails drawn in red where it applies.

use fast_image_resize::images::{CroppedImageMut, Image, ImageRef};
use fast_image_resize::{FilterType, PixelType, ResizeAlg, ResizeOptions, Resizer};

use crate::check::Checked;
use crate::decode::RgbImage;
use crate::judge::{Report, Rule, Severity};
use crate::measure::face::geometry::{Crop, RENDER_H, RENDER_W};
use crate::measure::face::pyramid::Pyramid;
use crate::measure::face::segment::Mask;
use crate::measure::person::PersonMeasurements;

const GUIDE: [u8; 3] = [0, 170, 255];
const GOOD: [u8; 3] = [40, 200, 80];
const BAD: [u8; 3] = [230, 30, 30];
const MASK: [u8; 3] = [255, 200, 0];

struct Canvas {
    img: RgbImage,
}

impl Canvas {
    fn put(&mut self, x: i32, y: i32, c: [u8; 3]) {
        if x < 0 || y < 0 || x >= self.img.width as i32 || y >= self.img.height as i32 {
            return;
        }
        let i = (y as usize * self.img.width as usize + x as usize) * 3;
        self.img.pixels[i..i + 3].copy_from_slice(&c);
    }

    fn hline(&mut self, y: f32, x0: f32, x1: f32, c: [u8; 3], dashed: bool) {
        let y = y.round() as i32;
        for x in x0.round() as i32..=x1.round() as i32 {
            if !dashed || (x / 6) % 2 == 0 {
                self.put(x, y, c);
                self.put(x, y + 1, c);
            }
        }
    }

    fn vline(&mut self, x: f32, y0: f32, y1: f32, c: [u8; 3]) {
        let x = x.round() as i32;
        for y in y0.round() as i32..=y1.round() as i32 {
            self.put(x, y, c);
            self.put(x + 1, y, c);
        }
    }

    fn cross(&mut self, x: f32, y: f32, c: [u8; 3]) {
        for d in -6..=6 {
            self.put(x.round() as i32 + d, y.round() as i32, c);
            self.put(x.round() as i32, y.round() as i32 + d, c);
        }
    }

    /// Digits, '.', '-' and a few letters in a 3 × 5 font, scaled ×2: numbers need no font file.
    fn text(&mut self, x: f32, y: f32, s: &str, c: [u8; 3]) {
        let mut cx = x.round() as i32;
        for ch in s.chars() {
            let glyph: [u8; 5] = match ch {
                '0' => [7, 5, 5, 5, 7],
                '1' => [2, 6, 2, 2, 7],
                '2' => [7, 1, 7, 4, 7],
                '3' => [7, 1, 7, 1, 7],
                '4' => [5, 5, 7, 1, 1],
                '5' => [7, 4, 7, 1, 7],
                '6' => [7, 4, 7, 5, 7],
                '7' => [7, 1, 1, 1, 1],
                '8' => [7, 5, 7, 5, 7],
                '9' => [7, 5, 7, 1, 7],
                '-' => [0, 0, 7, 0, 0],
                '.' => [0, 0, 0, 0, 2],
                '/' => [1, 1, 2, 4, 4],
                _ => [0; 5],
            };
            for (row, bits) in glyph.iter().enumerate() {
                for col in 0..3 {
                    if bits & (4 >> col) != 0 {
                        for (dx, dy) in [(0, 0), (1, 0), (0, 1), (1, 1)] {
                            self.put(cx + col * 2 + dx, y.round() as i32 + row as i32 * 2 + dy, c);
                        }
                    }
                }
            }
            cx += 8;
        }
    }
}

/// The annotated picture of a check as the pages show it: drawn, and encoded as a JPEG of quality 85. None when
/// nothing could be decoded (or encoded).
pub fn annotated_jpeg(checked: &Checked) -> Option<Vec<u8>> {
    let img = checked.image.as_ref()?;
    let picture = annotate(img, checked.person.as_ref(), checked.mask.as_ref(), &checked.report);
    crate::normalise::encode_view(&picture, 85.0).ok()
}

/// The crop of `img` at `w × h`, dark grey where it reaches past the photo (the missing pixels of
/// `geometry.croppable`). The part on the photo goes through the SIMD resizer (bilinear, its support widened
/// when shrinking): at 480 × 640 a third of the time of the pyramid's bilinear sampling.
fn render(img: &RgbImage, crop: &Crop, w: usize, h: usize) -> RgbImage {
    let inv = 1.0 / crop.scale();
    let mut out = RgbImage { width: w as u32, height: h as u32, pixels: vec![64; w * h * 3] };
    // The output pixels whose footprint lies wholly on the photo: [first, end) along one axis.
    let span = |origin: f32, size: u32, n: usize| -> (usize, usize) {
        let first = (-origin / inv).ceil().clamp(0.0, n as f32) as usize;
        let end = ((size as f32 - origin) / inv).floor().clamp(first as f32, n as f32) as usize;
        (first, end)
    };
    let ((i0, i1), (j0, j1)) = (span(crop.left, img.width, w), span(crop.top, img.height, h));
    if i1 == i0 || j1 == j0 {
        return out;
    }
    let (left, top) = (f64::from(crop.left + i0 as f32 * inv).max(0.0), f64::from(crop.top + j0 as f32 * inv).max(0.0));
    let width = ((i1 - i0) as f64 * f64::from(inv)).min(f64::from(img.width) - left);
    let height = ((j1 - j0) as f64 * f64::from(inv)).min(f64::from(img.height) - top);
    let options =
        ResizeOptions::new().resize_alg(ResizeAlg::Convolution(FilterType::Bilinear)).crop(left, top, width, height);
    let resized = (|| -> Option<()> {
        let src = ImageRef::new(img.width, img.height, &img.pixels, PixelType::U8x3).ok()?;
        let mut dst = Image::from_slice_u8(w as u32, h as u32, &mut out.pixels, PixelType::U8x3).ok()?;
        let mut part = CroppedImageMut::new(&mut dst, i0 as u32, j0 as u32, (i1 - i0) as u32, (j1 - j0) as u32).ok()?;
        Resizer::new().resize(&src, &mut part, &options).ok()
    })();
    if resized.is_none() {
        // Not expected (sizes and buffers agree by construction); the pyramid's sampling draws the same crop.
        Pyramid::for_step(img, inv).resample((crop.left, crop.top), (inv, inv), (w, h), |y, first, values| {
            let row = &mut out.pixels[(y * w + first) * 3..][..values.len()];
            for (o, v) in row.iter_mut().zip(values) {
                // Bilinear between bytes stays within 0–255: adding a half and truncating rounds.
                *o = (v + 0.5) as u8;
            }
        });
    }
    out
}

fn failing(report: &Report, rule: Rule) -> bool {
    report.finding(rule).is_some_and(|f| f.severity != Severity::Pass)
}

/// Renders the crop of `img` at 480 × 640 and draws the measures on it. Without a crop (no face, or an original
/// too tight to crop) the whole image is shown, fitted into the frame.
pub fn annotate(img: &RgbImage, person: Option<&PersonMeasurements>, mask: Option<&Mask>, report: &Report) -> RgbImage {
    let crop = person.and_then(|p| p.crop).unwrap_or_else(|| Crop::whole(img.width, img.height));
    let (w, h) = (RENDER_W as usize, RENDER_H as usize);
    let inv = 1.0 / crop.scale();
    let out = render(img, &crop, w, h);
    let mut c = Canvas { img: out };
    // The mask's outline: where the person probability crosses 0.5 between neighbouring rendering pixels.
    // The outline turns red when the background fails (colour, evenness, cleanliness, margins).
    let background_bad = [Rule::BackgroundColor, Rule::BackgroundUniform, Rule::BackgroundClean, Rule::GeometryMargins]
        .iter()
        .any(|&r| failing(report, r));
    let outline = if background_bad { BAD } else { MASK };
    if let Some(mask) = mask {
        // The mask read once on a grid of every second rendering pixel, then compared with its neighbours.
        let (gw, gh) = (w.div_ceil(2), h.div_ceil(2));
        let grid: Vec<bool> = (0..gh)
            .flat_map(|gy| (0..gw).map(move |gx| (2 * gx, 2 * gy)))
            .map(|(x, y)| mask.is_person(crop.left + x as f32 * inv, crop.top + y as f32 * inv))
            .collect();
        let at = |x: usize, y: usize| grid[(y / 2) * gw + x / 2];
        for y in (0..h - 2).step_by(2) {
            for x in (0..w - 2).step_by(2) {
                let here = at(x, y);
                if here != at(x + 2, y) || here != at(x, y + 2) {
                    c.put(x as i32, y as i32, outline);
                    c.put(x as i32 + 1, y as i32, outline);
                }
            }
        }
    }
    // The standard's bands.
    for y in [50.0, 110.0, 200.0, 300.0] {
        c.hline(y, 0.0, RENDER_W - 1.0, GUIDE, true);
        c.text(4.0, y - 12.0, &format!("{y:.0}"), GUIDE);
    }
    c.vline(240.0, 0.0, 12.0, GUIDE);
    c.vline(240.0, RENDER_H - 12.0, RENDER_H - 1.0, GUIDE);
    let Some(f) = person.and_then(|p| p.framing) else { return c.img };
    let color = |bad: bool| if bad { BAD } else { GOOD };
    // Hair top.
    let hair_bad = failing(report, Rule::GeometryHairTop);
    c.hline(f.hair_top, 140.0, 340.0, color(hair_bad), false);
    c.text(346.0, f.hair_top - 5.0, &format!("{:.0}", f.hair_top), color(hair_bad));
    // Eye centres.
    let eyes_bad = failing(report, Rule::GeometryEyeLine);
    if let Some(a) = person.and_then(|p| p.anchors) {
        for (i, e) in a.eyes.iter().enumerate() {
            let (x, y) = (crop.render_x(e[0]), crop.render_y(e[1]));
            c.cross(x, y, color(eyes_bad));
            let label = format!("{:.0}", f.eye_line[i]);
            c.text(if i == 0 { x - 40.0 } else { x + 10.0 }, y - 14.0, &label, color(eyes_bad));
        }
    }
    // Face width: the measured span, and the 180 and 300 limits around the face centre.
    let width_bad = failing(report, Rule::GeometryFaceWidth);
    let y = (f.eye_line[0] + f.eye_line[1]) / 2.0 + 60.0;
    let (x0, x1) = (f.face_center_x - f.face_width / 2.0, f.face_center_x + f.face_width / 2.0);
    c.hline(y, x0, x1, color(width_bad), false);
    c.vline(x0, y - 10.0, y + 10.0, color(width_bad));
    c.vline(x1, y - 10.0, y + 10.0, color(width_bad));
    for lim in [90.0, 150.0] {
        c.vline(f.face_center_x - lim, y - 4.0, y + 4.0, GUIDE);
        c.vline(f.face_center_x + lim, y - 4.0, y + 4.0, GUIDE);
    }
    c.text(f.face_center_x - 12.0, y + 14.0, &format!("{:.0}", f.face_width), color(width_bad));
    // Centring: the face's centre line, red when off.
    // Rules about the face itself (expression, light, focus, eyes): a red frame round the face when any fails.
    let face_rules = [
        Rule::ExpressionEyesOpen,
        Rule::ExpressionMouthClosed,
        Rule::LightingExposure,
        Rule::LightingHighlights,
        Rule::LightingBalance,
        Rule::LightingRedEye,
        Rule::AccessoryGlasses,
        Rule::QualitySharpness,
        Rule::GeometryRoll,
        Rule::GeometryYaw,
        Rule::GeometryPitch,
    ];
    if face_rules.iter().any(|&r| failing(report, r)) {
        let (x0, x1) = (f.face_center_x - f.face_width * 0.6, f.face_center_x + f.face_width * 0.6);
        let (y0, y1) =
            (f.hair_top.max(2.0), ((f.eye_line[0] + f.eye_line[1]) / 2.0 + f.face_width * 0.95).min(RENDER_H - 3.0));
        c.hline(y0, x0, x1, BAD, true);
        c.hline(y1, x0, x1, BAD, true);
        c.vline(x0, y0, y1, BAD);
        c.vline(x1, y0, y1, BAD);
    }
    let centre_bad = failing(report, Rule::GeometryCentered);
    c.vline(f.face_center_x, f.hair_top, f.hair_top + 30.0, color(centre_bad));
    c.img
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rendering_shows_the_crop_and_grey_past_the_photo() {
        // A smooth ramp (red along x, green along y), so that any sampling lands within a level or two.
        let (sw, sh) = (600u32, 500u32);
        let img = RgbImage {
            width: sw,
            height: sh,
            pixels: (0..sh)
                .flat_map(|y| (0..sw).flat_map(move |x| [(x * 255 / sw) as u8, (y * 255 / sh) as u8, 90]))
                .collect(),
        };
        // 1.25 source pixels per rendering pixel; reaching 100 px past the left edge and 50 past the top.
        let crop = Crop { left: -100.0, top: -50.0, width: 600.0 };
        let (w, h) = (RENDER_W as usize, RENDER_H as usize);
        let out = render(&img, &crop, w, h);
        assert_eq!((out.width, out.height), (RENDER_W as u32, RENDER_H as u32));
        let inv = 1.0 / crop.scale();
        // Left of, above and below the photo.
        for (x, y) in [(0u32, 0u32), (70, 300), (200, 30), (479, 639)] {
            assert_eq!(out.pixel(x, y), [64, 64, 64], "{x},{y}: past the photo");
        }
        for (x, y) in [(100u32, 100u32), (300, 200), (479, 300), (200, 400), (81, 41)] {
            let (sx, sy) = (crop.left + (x as f32 + 0.5) * inv, crop.top + (y as f32 + 0.5) * inv);
            let want = [sx * 255.0 / sw as f32, sy * 255.0 / sh as f32, 90.0];
            let p = out.pixel(x, y);
            for k in 0..3 {
                assert!((f32::from(p[k]) - want[k]).abs() <= 2.0, "{x},{y}: {p:?} against {want:?}");
            }
        }
    }
}
