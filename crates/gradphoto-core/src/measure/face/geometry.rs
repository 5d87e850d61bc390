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

/// How far inside their ranges a crop keeps the hair top and eye line: at least `EDGE` px, and `ROOM` px where the
/// person's proportions allow.
const EDGE: f32 = 2.0;
const ROOM: f32 = 10.0;

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
    // The vertical span from hair top to eyes must fit between the ranges, `EDGE` in from their ends: scale down
    // if it is too tall (else no placement keeps both in range, and the hair top would land outside its own).
    let span = (a.eye_y() - a.hair_top_y).max(1.0);
    let max_span_scale = (EYE_LINE.1 - HAIR_TOP.0 - 2.0 * EDGE) / span;
    let min_span_scale = (EYE_LINE.0 - HAIR_TOP.1 + 2.0 * EDGE) / span;
    scale = scale.clamp(min_span_scale.min(max_span_scale), max_span_scale).clamp(FACE_WIDTH.0 / fw, FACE_WIDTH.1 / fw);
    let needs_upscale = RENDER_W / scale < min_width;
    if needs_upscale {
        scale = RENDER_W / min_width;
    }
    let width = RENDER_W / scale;
    let height = width * RENDER_H / RENDER_W;
    // Vertical placement: the hair top and eye line as near the middle of their ranges as both allow.
    let hair_target = (HAIR_TOP.0 + HAIR_TOP.1) / 2.0;
    let eye_target = (EYE_LINE.0 + EYE_LINE.1) / 2.0;
    let top_from_hair = a.hair_top_y - hair_target / scale;
    let top_from_eyes = a.eye_y() - eye_target / scale;
    let ideal = (top_from_hair + top_from_eyes) / 2.0;
    // The tops that keep both inside their ranges, `m` px in from their ends.
    let window = |m: f32| {
        let lo = (a.eye_y() - (EYE_LINE.1 - m) / scale).max(a.hair_top_y - (HAIR_TOP.1 - m) / scale);
        let hi = (a.eye_y() - (EYE_LINE.0 + m) / scale).min(a.hair_top_y - (HAIR_TOP.0 + m) / scale);
        // A hundredth of a pixel's rounding allowed: at the largest room, lo and hi meet.
        (lo <= hi + 0.01 / scale).then_some((lo, hi.max(lo)))
    };
    // Kept `ROOM` px inside both where the person's proportions leave that much (the hair top of a file is
    // measured a pixel or two off the original's, and the middles of the two ranges are further apart than most
    // people's hair and eyes), else as far inside as they allow; then moved into the picture if it sticks out
    // and `EDGE` allows.
    let span_r = span * scale;
    let room = ROOM.min((EYE_LINE.1 - HAIR_TOP.0 - span_r) / 2.0).min((span_r - EYE_LINE.0 + HAIR_TOP.1) / 2.0);
    let top = match (window(room.max(EDGE)), window(EDGE)) {
        (Some((lo, hi)), Some((lo2, hi2))) if image_h >= height => {
            ideal.clamp(lo, hi).clamp(0.0, image_h - height).clamp(lo2, hi2)
        }
        (Some((lo, hi)), _) => ideal.clamp(lo, hi),
        _ => ideal,
    };
    let left = a.face_center_x() - width / 2.0;
    let crop = Crop { left, top, width };
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

    fn in_range(f: &Framing, margin: f32) -> bool {
        let inside = |v: f32, r: (f32, f32)| v >= r.0 + margin - 0.01 && v <= r.1 - margin + 0.01;
        inside(f.hair_top, HAIR_TOP) && inside(f.eye_line[0], EYE_LINE) && inside(f.face_width, FACE_WIDTH)
    }

    #[test]
    fn hair_far_above_the_eyes_still_lands_in_range() {
        // Hair to eyes from 0.7 to 1.2 face widths (a cap, a bun): both in range, 2 px in at least; where the
        // proportions leave room, 10 px in.
        for ratio in [0.7f32, 0.9, 0.99, 1.02, 1.03, 1.04, 1.06, 1.1, 1.2] {
            let a = anchors(1000.0, 1200.0, 1200.0 - 400.0 * ratio, 400.0);
            let crop = best_crop(&a, 2000.0, 3000.0, 480.0).unwrap();
            let f = framing(&a, &crop);
            assert!(in_range(&f, 2.0), "{ratio}: {f:?}");
            let room = (250.0 - (f.eye_line[0] - f.hair_top)) / 2.0;
            assert!(in_range(&f, room.min(10.0)), "{ratio}: {f:?}");
        }
    }

    #[test]
    fn a_crop_that_sticks_out_moves_in_where_the_ranges_allow() {
        // Hair 0.99 face widths above the eyes: the crop prefers both 6.2 px in (hair 56.2, eyes 293.8), but the
        // picture's top is 3 px short of that; 2 px in, it fits.
        let a = anchors(1000.0, 1000.0, 1000.0 - 396.0, 400.0);
        let free = best_crop(&a, 2000.0, 3000.0, 480.0).unwrap();
        assert!((framing(&a, &free).hair_top - 56.2).abs() < 0.01, "{:?}", framing(&a, &free));
        let short = free.top + 3.0 / free.scale();
        let mut b = a;
        b.hair_top_y -= short;
        b.eyes.iter_mut().chain(b.cheeks.iter_mut()).for_each(|p| p[1] -= short);
        let crop = best_crop(&b, 2000.0, 3000.0, 480.0).unwrap();
        assert!(crop.top.abs() < 0.01, "{crop:?}");
        let f = framing(&b, &crop);
        assert!(in_range(&f, 2.0) && (f.hair_top - 53.2).abs() < 0.01, "{f:?}");
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
