//! The registered framing: where a 480 × 640 rendering of the image puts the hair top, the eyes and the face, and
//! the 3:4 crop that puts them nearest the middle of their ranges (S 四.2). Shared by the checker
//! (`geometry.croppable`) and normalisation.

use serde::Serialize;

pub const RENDER_W: f32 = 480.0;
pub const RENDER_H: f32 = 640.0;

/// The standard's ranges in the rendering, and the targets a crop aims at (their middles).
pub const HAIR_TOP: (f32, f32) = (50.0, 110.0);
pub const EYE_LINE: (f32, f32) = (200.0, 300.0);
pub const FACE_WIDTH: (f32, f32) = (180.0, 300.0);

/// The face's landmarks that decide the framing, in pixels of the analysed image.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Anchors {
    /// Top of the hair (from the person mask).
    pub hair_top_y: f32,
    /// Eye centres as seen in the picture: image-left eye, image-right eye.
    pub eyes: [[f32; 2]; 2],
    /// Cheek to cheek.
    pub cheeks: [[f32; 2]; 2],
}

impl Anchors {
    pub fn face_width(&self) -> f32 {
        let [a, b] = self.cheeks;
        ((b[0] - a[0]).powi(2) + (b[1] - a[1]).powi(2)).sqrt()
    }

    pub fn face_center_x(&self) -> f32 {
        (self.cheeks[0][0] + self.cheeks[1][0]) / 2.0
    }

    pub fn eye_y(&self) -> f32 {
        (self.eyes[0][1] + self.eyes[1][1]) / 2.0
    }
}

/// A 3:4 crop of the analysed image: left, top and width (height is 4/3 of it), in analysed-image pixels.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Crop {
    pub left: f32,
    pub top: f32,
    pub width: f32,
}

impl Crop {
    pub fn height(&self) -> f32 {
        self.width * RENDER_H / RENDER_W
    }

    /// Rendering pixels per analysed pixel.
    pub fn scale(&self) -> f32 {
        RENDER_W / self.width
    }

    pub fn render_x(&self, x: f32) -> f32 {
        (x - self.left) * self.scale()
    }

    pub fn render_y(&self, y: f32) -> f32 {
        (y - self.top) * self.scale()
    }

    /// The whole image, when it is 3:4 (a registered file).
    pub fn whole(width: u32, height: u32) -> Crop {
        let w = (width as f32).min(height as f32 * RENDER_W / RENDER_H);
        Crop { left: (width as f32 - w) / 2.0, top: 0.0, width: w }
    }
}

/// The measures the geometry rules judge, in pixels of the 480 × 640 rendering.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Framing {
    pub hair_top: f32,
    /// Image-left eye, image-right eye.
    pub eye_line: [f32; 2],
    pub face_width: f32,
    pub face_center_x: f32,
}

pub fn framing(a: &Anchors, crop: &Crop) -> Framing {
    Framing {
        hair_top: crop.render_y(a.hair_top_y),
        eye_line: [crop.render_y(a.eyes[0][1]), crop.render_y(a.eyes[1][1])],
        face_width: a.face_width() * crop.scale(),
        face_center_x: crop.render_x(a.face_center_x()),
    }
}

/// Why no crop fits, in the rendering's pixels: what is missing and where.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NoCrop {
    /// Pixels of the rendering missing above, below, left or right, for the best crop of the right scale.
    pub missing: [f32; 4],
    /// The face would have to be scaled up (the original has too few pixels for a 480-pixel-wide crop).
    pub needs_upscale: bool,
}

/// The crop that puts the eye line, hair top and face width nearest the middle of their ranges and centres the
/// face, lying wholly inside the image and at least `min_width` analysed pixels wide (no upscaling).
pub fn best_crop(a: &Anchors, image_w: f32, image_h: f32, min_width: f32) -> Result<Crop, NoCrop> {
    let finite = [a.hair_top_y, a.eyes[0][0], a.eyes[0][1], a.eyes[1][0], a.eyes[1][1], a.cheeks[0][0], a.cheeks[1][0]]
        .iter()
        .all(|v| v.is_finite());
    if !finite || !min_width.is_finite() || min_width <= 0.0 {
        return Err(NoCrop { missing: [f32::NAN; 4], needs_upscale: false });
    }
    let fw = a.face_width().max(1.0);
    // Scale: face width to the middle of its range, eased so that the hair top and eye line fit too.
    let target_fw = (FACE_WIDTH.0 + FACE_WIDTH.1) / 2.0;
    let mut scale = target_fw / fw;
    // The vertical span from hair top to eyes must fit between the ranges: scale down if it is too tall.
    let span = (a.eye_y() - a.hair_top_y).max(1.0);
    let max_span_scale = (EYE_LINE.1 - HAIR_TOP.0) / span;
    let min_span_scale = (EYE_LINE.0 - HAIR_TOP.1) / span;
    scale = scale.clamp(min_span_scale.min(max_span_scale), max_span_scale).clamp(FACE_WIDTH.0 / fw, FACE_WIDTH.1 / fw);
    let needs_upscale = RENDER_W / scale < min_width;
    if needs_upscale {
        scale = RENDER_W / min_width;
    }
    let width = RENDER_W / scale;
    // Vertical placement: the hair top and eye line as near the middle of their ranges as both allow.
    let hair_target = (HAIR_TOP.0 + HAIR_TOP.1) / 2.0;
    let eye_target = (EYE_LINE.0 + EYE_LINE.1) / 2.0;
    let top_from_hair = a.hair_top_y - hair_target / scale;
    let top_from_eyes = a.eye_y() - eye_target / scale;
    // Then kept inside both ranges (2 px in from their ends, for the measuring noise) when the two overlap.
    let lo = (a.eye_y() - (EYE_LINE.1 - 2.0) / scale).max(a.hair_top_y - (HAIR_TOP.1 - 2.0) / scale);
    let hi = (a.eye_y() - (EYE_LINE.0 + 2.0) / scale).min(a.hair_top_y - (HAIR_TOP.0 + 2.0) / scale);
    let ideal = (top_from_hair + top_from_eyes) / 2.0;
    let top = if lo <= hi { ideal.clamp(lo, hi) } else { ideal };
    let left = a.face_center_x() - width / 2.0;
    let crop = Crop { left, top, width };
    let height = crop.height();
    let missing = [
        (-top * scale).max(0.0),
        ((top + height - image_h) * scale).max(0.0),
        (-left * scale).max(0.0),
        ((left + width - image_w) * scale).max(0.0),
    ];
    if needs_upscale || missing.iter().any(|&m| m > 0.5) {
        return Err(NoCrop { missing, needs_upscale });
    }
    Ok(crop)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn anchors(cx: f32, eye_y: f32, hair: f32, fw: f32) -> Anchors {
        Anchors {
            hair_top_y: hair,
            eyes: [[cx - fw / 4.0, eye_y], [cx + fw / 4.0, eye_y]],
            cheeks: [[cx - fw / 2.0, eye_y + 10.0], [cx + fw / 2.0, eye_y + 10.0]],
        }
    }

    #[test]
    fn a_registered_image_renders_one_to_one() {
        let a = anchors(240.0, 250.0, 80.0, 240.0);
        let f = framing(&a, &Crop::whole(480, 640));
        assert_eq!((f.hair_top, f.eye_line, f.face_width, f.face_center_x), (80.0, [250.0, 250.0], 240.0, 240.0));
        // A 960 × 1280 image renders at half scale.
        let f = framing(&anchors(480.0, 500.0, 160.0, 480.0), &Crop::whole(960, 1280));
        assert_eq!((f.hair_top, f.eye_line[0], f.face_width), (80.0, 250.0, 240.0));
    }

    #[test]
    fn the_best_crop_lands_everything_in_range() {
        // A studio original analysed at 750 × 1000: face 200 px wide, eyes at 420, hair at 250.
        let a = anchors(380.0, 420.0, 250.0, 200.0);
        let crop = best_crop(&a, 750.0, 1000.0, 120.0).unwrap();
        let f = framing(&a, &crop);
        assert!((HAIR_TOP.0..=HAIR_TOP.1).contains(&f.hair_top), "{f:?}");
        assert!((EYE_LINE.0..=EYE_LINE.1).contains(&f.eye_line[0]), "{f:?}");
        assert!((FACE_WIDTH.0..=FACE_WIDTH.1).contains(&f.face_width), "{f:?}");
        assert!((f.face_center_x - 240.0).abs() < 0.01);
    }

    #[test]
    fn framed_too_tight_says_how_much_is_missing() {
        // The head fills the frame: the crop would need rows above the image.
        let a = anchors(240.0, 150.0, 5.0, 300.0);
        let err = best_crop(&a, 480.0, 640.0, 100.0).unwrap_err();
        assert!(err.missing[0] > 10.0, "{err:?}");
        // Too few pixels: a 480-wide crop would need upscaling.
        let a = anchors(150.0, 160.0, 60.0, 100.0);
        let err = best_crop(&a, 300.0, 400.0, 300.0).unwrap_err();
        assert!(err.needs_upscale);
    }
}
