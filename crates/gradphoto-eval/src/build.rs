//! Building the labelled set.

use std::collections::BTreeMap;

use gradphoto_core::Rule;
use gradphoto_core::decode::RgbImage;
use gradphoto_core::measure::face::geometry::{self, Anchors, Crop, EYE_LINE, FACE_WIDTH, Framing, HAIR_TOP};
use gradphoto_core::measure::face::models::FaceModels;
use gradphoto_core::measure::face::pyramid::Pyramid;
use gradphoto_core::measure::face::segment::Mask;
use gradphoto_core::measure::person;

use crate::alterations;

pub const LIGHT_BLUE: [f32; 3] = [100.0, 197.0, 255.0];

/// Labels a person gave each source photo, for what cannot be constructed.
fn mouth_closed_label(name: &str) -> Option<bool> {
    match name {
        // Smiling or speaking with teeth showing.
        "alex_lacamoire_grey_bg.jpg"
        | "alex_lacamoire_grey_bg_wide.jpg"
        | "astronaut_eileen_collins.png"
        | "biden_official_vp.jpg"
        | "obama_podium_2009.jpg" => Some(false),
        "chris_pratt_ccby.jpeg" | "grace_hopper.jpg" | "obama_briefing_room.jpg" | "biden_full_length.jpg" => {
            Some(true)
        }
        _ => None,
    }
}

/// Labels a person gave after looking at the compliant rendering: a broad smile is not the natural expression
/// S 二.2 asks for; a faint closed-mouth smile and speaking are left without a label.
fn neutral_label(name: &str) -> Option<bool> {
    match name {
        "alex_lacamoire_grey_bg.jpg" | "alex_lacamoire_grey_bg_wide.jpg" | "biden_official_vp.jpg" => Some(false),
        "biden_full_length.jpg" | "grace_hopper.jpg" => Some(true),
        _ => None,
    }
}

/// Labels a person gave after looking at the compliant rendering at ear height: both ears show. Elsewhere no label:
/// curls over the ears (the wide Alex Lacamoire), a head turned enough to hide one ear (Obama at the podium), an
/// ear the painted background took with it where the person mask missed it (Biden full length, Chris Pratt), a cap
/// and hair (Grace Hopper).
fn ears_visible_label(name: &str) -> Option<bool> {
    match name {
        "alex_lacamoire_grey_bg.jpg" | "biden_official_vp.jpg" => Some(true),
        _ => None,
    }
}

/// Labels a person gave: the head is visibly tilted in the source photo (so no rendering of it is upright).
fn head_tilted_label(name: &str) -> bool {
    matches!(name, "obama_podium_2009.jpg" | "biden_full_length.jpg")
}

/// A source portrait, analysed once at its own resolution, background made light blue, padded with light blue
/// so that any crop of the labelled set lies inside it.
pub struct Source {
    pub name: String,
    pub image: RgbImage,
    pub anchors: Anchors,
    /// Person probability in the padded image.
    pub mask: Mask,
    pub mouth_closed: Option<bool>,
    pub head_tilted: bool,
    /// The source was enlarged to reach the rendering's scale: its sharpness is not a studio's.
    pub upscaled: bool,
    /// Whether the expression is neutral, where a person could tell.
    pub neutral: Option<bool>,
    /// Whether both ears show, where a person could tell.
    pub ears_visible: Option<bool>,
    /// The mesh of the truth analysis, in padded-image pixels.
    pub landmarks: Vec<[f32; 3]>,
    /// The crown's colour (median of the person above the forehead): the hair painted over brows, eyes and ears.
    pub hair_rgb: [f32; 3],
}

fn to_core(img: &image::RgbImage) -> RgbImage {
    RgbImage { width: img.width(), height: img.height(), pixels: img.as_raw().clone() }
}

fn mix(a: [f32; 3], b: [f32; 3], t: f32) -> [f32; 3] {
    [a[0] + (b[0] - a[0]) * t, a[1] + (b[1] - a[1]) * t, a[2] + (b[2] - a[2]) * t]
}

/// A pixel of a source (its background already painted light blue through the person probability `p`) with the
/// background painted `colour` instead: the light blue's share (1 − p) swapped for the new colour's. Painting over
/// the light blue would leave a light-blue fringe wherever the mask is soft (fine hair), which no real photo has.
fn repaint(c: [f32; 3], colour: [f32; 3], p: f32) -> [f32; 3] {
    let q = 1.0 - p;
    [
        c[0] + (colour[0] - LIGHT_BLUE[0]) * q,
        c[1] + (colour[1] - LIGHT_BLUE[1]) * q,
        c[2] + (colour[2] - LIGHT_BLUE[2]) * q,
    ]
}

/// The portraits whose face is found and at least 100 pixels wide (smaller ones are bad-input cases, not truth).
pub fn sources(models: &FaceModels, portraits: &std::path::Path) -> Vec<Source> {
    let mut out = Vec::new();
    for name in gradphoto_testkit::image_names(portraits) {
        let original = gradphoto_testkit::open(&portraits.join(&name));
        // Measure the source at the rendering's scale (face about 240 px wide), so that the truth carries the
        // models' precision at that scale and not at another.
        let Ok(first) = models.analyse(&to_core(&original)) else { continue };
        let (Some(l), Some(mask)) = (first.landmarks.as_deref(), first.mask.as_ref()) else { continue };
        let source_face = person::anchors(l, mask).face_width();
        // A face under 150 px would be enlarged more than 1.6 times: too soft to stand for a studio photo.
        if source_face < 150.0 {
            continue;
        }
        let k = 240.0 / source_face.max(1.0);
        let (w, h) = ((original.width() as f32 * k).round() as u32, (original.height() as f32 * k).round() as u32);
        let img = to_core(&gradphoto_testkit::resize(&original, w.max(1), h.max(1)));
        let Ok(found) = models.analyse(&img) else { continue };
        let Some(l) = found.landmarks.as_deref() else { continue };
        if found.detections.len() != 1 {
            continue;
        }
        let Some(mask) = found.mask.as_ref().and_then(|m| context_mask(models, &img, m)) else { continue };
        let mask = &mask;
        let upscaled = k > 1.05;
        // Paint the background light blue through the mask, then pad by half the long side all round.
        let recoloured: Vec<u8> = (0..img.height)
            .flat_map(|y| (0..img.width).map(move |x| (x, y)))
            .flat_map(|(x, y)| {
                let p = mask.at(x as f32, y as f32);
                mix(LIGHT_BLUE, img.pixel(x, y).map(f32::from), p).map(|v| v.round() as u8)
            })
            .collect();
        let rec = RgbImage { width: img.width, height: img.height, pixels: recoloured };
        // The truth is measured on the recoloured photo: the models see what the renderings will show.
        let first_anchors = person::anchors(l, mask);
        let again = models.analyse(&rec).ok();
        let (mut a, mesh) = match again.as_ref().and_then(|g| g.landmarks.as_deref().zip(g.mask.as_ref())) {
            // Kept only when it is the same face: on a tall photo the recoloured body can draw the detector away.
            Some((l2, m2))
                if {
                    let b = person::anchors(l2, m2);
                    (b.eye_y() - first_anchors.eye_y()).abs() < 10.0
                        && (b.face_center_x() - first_anchors.face_center_x()).abs() < 10.0
                } =>
            {
                (person::anchors(l2, m2), l2.to_vec())
            }
            _ => (first_anchors, l.to_vec()),
        };
        person::refine_hair_top(&rec, mask, 0.0, Some(LIGHT_BLUE), &mut a);
        let pad = img.width.max(img.height) / 2;
        let (w, h) = (img.width + 2 * pad, img.height + 2 * pad);
        let mut pixels = Vec::with_capacity((w * h * 3) as usize);
        let mut probs = Vec::with_capacity((w * h) as usize);
        for y in 0..h {
            for x in 0..w {
                let (sx, sy) = (x as f32 - pad as f32, y as f32 - pad as f32);
                let inside = sx >= 0.0 && sy >= 0.0 && sx < img.width as f32 && sy < img.height as f32;
                if inside {
                    probs.push(mask.at(sx, sy));
                    pixels.extend(rec.pixel(sx as u32, sy as u32));
                } else {
                    probs.push(0.0);
                    pixels.extend(LIGHT_BLUE.map(|v| v as u8));
                }
            }
        }
        let shift = |p: [f32; 2]| [p[0] + pad as f32, p[1] + pad as f32];
        let anchors = Anchors {
            hair_top_y: a.hair_top_y + pad as f32,
            eyes: [shift(a.eyes[0]), shift(a.eyes[1])],
            cheeks: [shift(a.cheeks[0]), shift(a.cheeks[1])],
        };
        let image = RgbImage { width: w, height: h, pixels };
        let hair_rgb = crate::alterations::crown_colour(&rec, &mesh, mask, a.hair_top_y);
        let landmarks = mesh.iter().map(|p| [p[0] + pad as f32, p[1] + pad as f32, p[2]]).collect();
        out.push(Source {
            neutral: neutral_label(&name),
            ears_visible: ears_visible_label(&name),
            landmarks,
            hair_rgb,
            mouth_closed: mouth_closed_label(&name),
            head_tilted: head_tilted_label(&name),
            upscaled,
            name,
            mask: Mask::with_grid(probs, w as usize, h as usize, w, h),
            image,
            anchors,
        });
        if let Some(src) = out.last_mut() {
            settle_landmarks(models, src);
        }
    }
    out
}

/// The truth's eye centres and cheeks as the models find them at the rendering's framing: the mean over six windows
/// round the compliant crop (face 240 px wide, offsets of up to 12 px across and 16 px down). Analysed whole, a photo shows the
/// face in other surroundings (a body below it, the photo's own edges near it) and the face mesh puts the cheeks a
/// few pixels elsewhere (2% of the face width on Biden full length); any single window carries the mesh's jitter.
fn settle_landmarks(models: &FaceModels, src: &mut Source) {
    let keep = |_: f32, _: f32, c: [f32; 3], _: f32| c;
    let mut sum = [[0.0f32; 2]; 4];
    let mut n = 0.0;
    for (dx, dy) in [(-12.0, -8.0), (12.0, -8.0), (0.0, 0.0), (-12.0, 8.0), (12.0, 8.0), (0.0, 16.0)] {
        let crop = crop_for(&src.anchors, 250.0 + dy, 240.0, 240.0 + dx);
        let Ok(found) = models.analyse(&render(src, &crop, &keep)) else { continue };
        let (Some(l), Some(m)) = (found.landmarks.as_deref(), found.mask.as_ref()) else { continue };
        if found.detections.len() != 1 {
            continue;
        }
        let b = person::anchors(l, m);
        for (s, p) in sum.iter_mut().zip([b.eyes[0], b.eyes[1], b.cheeks[0], b.cheeks[1]]) {
            s[0] += p[0] / crop.scale() + crop.left;
            s[1] += p[1] / crop.scale() + crop.top;
        }
        n += 1.0;
    }
    if n >= 4.0 {
        let [e0, e1, c0, c1] = sum.map(|s| [s[0] / n, s[1] / n]);
        src.anchors.eyes = [e0, e1];
        src.anchors.cheeks = [c0, c1];
    }
}

/// The person mask of a source, its top eighth segmented again with the source's top row repeated above it.
/// Where a photo is cropped close above the hair, the segmenter reads the top rows as the person's (it cannot see
/// what lies above them); painted through that mask, a band of the photo's own background would stay between the
/// light blue above and the hair, and the truth would take the band for hair. Below the top eighth the mask of the
/// photo as it is stays (the taller input segments the rest no better), blended over the eighth.
fn context_mask(models: &FaceModels, img: &RgbImage, whole: &Mask) -> Option<Mask> {
    let pt = img.height / 8;
    let row = &img.pixels[..(img.width * 3) as usize];
    let mut pixels = Vec::with_capacity(img.pixels.len() + row.len() * pt as usize);
    (0..pt).for_each(|_| pixels.extend_from_slice(row));
    pixels.extend_from_slice(&img.pixels);
    let padded = RgbImage { width: img.width, height: img.height + pt, pixels };
    let m = models.mask(&Pyramid::new(&padded)).ok()?;
    // Resampled onto a grid over the source alone, as fine as the segmenter's own.
    let (cols, rows) = (256usize, 256usize);
    let probs = (0..rows)
        .flat_map(|r| (0..cols).map(move |c| (c, r)))
        .map(|(c, r)| {
            let x = (c as f32 + 0.5) * img.width as f32 / cols as f32 - 0.5;
            let y = (r as f32 + 0.5) * img.height as f32 / rows as f32 - 0.5;
            let w = (1.0 - y / pt.max(1) as f32).clamp(0.0, 1.0);
            harden(m.at(x, y + pt as f32) * w + whole.at(x, y) * (1.0 - w))
        })
        .collect();
    Some(Mask::with_grid(probs, cols, rows, img.width, img.height))
}

/// The person probability made firmer (a smooth step from 0.4 to 0.9, so that what the segmenter is less than about
/// two-thirds sure of is painted over): painted through the soft probability, what the segmenter half saw of a
/// cluttered background (a flag's star, a lamp) stays as translucent patches round the hair, marks that belong
/// neither to the person nor to a plain background and that a rendering's own mask takes for hair or not by chance.
fn harden(p: f32) -> f32 {
    let t = ((p - 0.4) / 0.5).clamp(0.0, 1.0);
    t * t * (3.0 - 2.0 * t)
}

/// One photo of the labelled set.
#[derive(Debug, Clone)]
pub struct Case {
    pub name: String,
    pub source: String,
    /// What the variation is, e.g. "eyes 185 px", "background pink".
    pub variation: String,
    pub jpeg: Vec<u8>,
    /// Rules whose truth is known: true when the photo breaks the rule.
    pub truth: BTreeMap<Rule, bool>,
    /// The constructed framing, in rendering pixels, where the case has one.
    pub framing: Option<Framing>,
}

/// The crop that puts the eye line at `eye`, the face width at `width` and the face centre at `cx`.
fn crop_for(a: &Anchors, eye: f32, width: f32, cx: f32) -> Crop {
    let scale = width / a.face_width();
    let w = geometry::RENDER_W / scale;
    Crop { left: a.face_center_x() - cx / scale, top: a.eye_y() - eye / scale, width: w }
}

/// Renders a crop at 480 × 640, then lets `edit` change the pixels (x, y, rgb, person probability).
fn render(src: &Source, crop: &Crop, edit: &dyn Fn(f32, f32, [f32; 3], f32) -> [f32; 3]) -> RgbImage {
    let pyr = Pyramid::new(&src.image);
    let inv = 1.0 / crop.scale();
    let mut pixels = Vec::with_capacity(480 * 640 * 3);
    for y in 0..640 {
        for x in 0..480 {
            let sx = crop.left + (x as f32 + 0.5) * inv - 0.5;
            let sy = crop.top + (y as f32 + 0.5) * inv - 0.5;
            let c = pyr.sample(sx, sy, inv);
            let p = src.mask.at(sx, sy);
            pixels.extend(edit(x as f32, y as f32, c, p).map(|v| v.round().clamp(0.0, 255.0) as u8));
        }
    }
    RgbImage { width: 480, height: 640, pixels }
}

/// A studio-like original of `width × height` from a source: the face `face_width` pixels wide, centred, the eyes at
/// 40% of the height — the framing a photographer leaves room around.
pub fn studio_original(src: &Source, width: u32, height: u32, face_width: f32) -> RgbImage {
    studio_original_with_eyes_at(src, width, height, face_width, 0.4)
}

/// [`studio_original`] with the eyes at `eyes_at` of the height (from the top): less or more room above the head.
pub fn studio_original_with_eyes_at(src: &Source, width: u32, height: u32, face_width: f32, eyes_at: f32) -> RgbImage {
    let a = &src.anchors;
    let k = a.face_width() / face_width;
    let (left, top) = (a.face_center_x() - width as f32 / 2.0 * k, a.eye_y() - height as f32 * eyes_at * k);
    let pyr = Pyramid::new(&src.image);
    let mut pixels = Vec::with_capacity((width * height * 3) as usize);
    for y in 0..height {
        for x in 0..width {
            let c = pyr.sample(left + (x as f32 + 0.5) * k - 0.5, top + (y as f32 + 0.5) * k - 0.5, k);
            pixels.extend(c.map(|v| v.round().clamp(0.0, 255.0) as u8));
        }
    }
    RgbImage { width, height, pixels }
}

fn encode(img: &RgbImage) -> Vec<u8> {
    gradphoto_testkit::encode(&crate::to_image(img), &gradphoto_testkit::JpegSpec { quality: 92, ..Default::default() })
}

/// A constructed variation: its name, its pixels, and the truths it sets.
type Altered = (&'static str, RgbImage, &'static [(Rule, bool)]);

/// The truths of the face's details for a rendering that leaves them as shot: brows, eyes and ears as the person
/// labelled them, the expression as labelled, and no screen or print.
fn new_rule_truths(src: &Source) -> Vec<(Rule, bool)> {
    let mut out = vec![
        (Rule::OcclusionEyebrows, false),
        (Rule::OcclusionEyes, false),
        (Rule::AuthenticityNotRephotographed, false),
    ];
    if let Some(visible) = src.ears_visible {
        out.push((Rule::OcclusionEars, !visible));
    }
    if let Some(neutral) = src.neutral {
        out.push((Rule::ExpressionNeutral, !neutral));
    }
    out
}

fn geometry_truth(f: &Framing) -> BTreeMap<Rule, bool> {
    let out = |v: f32, r: (f32, f32)| v < r.0 || v > r.1;
    BTreeMap::from([
        (Rule::GeometryHairTop, out(f.hair_top, HAIR_TOP)),
        (Rule::GeometryEyeLine, out(f.eye_line[0], EYE_LINE) || out(f.eye_line[1], EYE_LINE)),
        (Rule::GeometryFaceWidth, out(f.face_width, FACE_WIDTH)),
        (Rule::GeometryCentered, (f.face_center_x - 240.0).abs() > 20.0),
    ])
}

/// The labelled set: for each source, the compliant rendering and its variations.
pub fn build_cases(sources: &[Source], no_face: &[(String, image::RgbImage)]) -> Vec<Case> {
    let mut cases = Vec::new();
    let keep = |_: f32, _: f32, c: [f32; 3], _: f32| c;
    for (si, src) in sources.iter().enumerate() {
        let a = &src.anchors;
        // The compliant framing: eyes at 250, face 240 wide, centred; the hair top falls where the person's
        // proportions put it, and is checked against its range like every other truth.
        let base = crop_for(a, 250.0, 240.0, 240.0);
        let mut push = |variation: String,
                        crop: Crop,
                        edit: &dyn Fn(f32, f32, [f32; 3], f32) -> [f32; 3],
                        extra: &[(Rule, Option<bool>)]| {
            let framing = geometry::framing(a, &crop);
            let mut truth = geometry_truth(&framing);
            truth.insert(Rule::FaceCount, false);
            truth.insert(Rule::BackgroundColor, false);
            truth.insert(Rule::BackgroundUniform, false);
            truth.insert(Rule::LightingExposure, false);
            if !src.upscaled {
                truth.insert(Rule::QualitySharpness, false);
            }
            truth.insert(Rule::GeometryRoll, src.head_tilted);
            truth.insert(Rule::LightingColorCast, false);
            truth.insert(Rule::ContentNoAdditions, false);
            truth.insert(Rule::AuthenticityNoMirror, false);
            truth.extend(new_rule_truths(src));
            // Clothing is judged only where enough of it is in the picture.
            if framing.eye_line[0] + 1.3 * framing.face_width < 640.0 {
                truth.insert(Rule::ClothingContrast, false);
            }
            if let Some(closed) = src.mouth_closed {
                truth.insert(Rule::ExpressionMouthClosed, !closed);
            }
            for &(r, v) in extra {
                match v {
                    Some(v) => truth.insert(r, v),
                    None => truth.remove(&r),
                };
            }
            let img = render(src, &crop, edit);
            cases.push(Case {
                name: format!("{} · {variation}", src.name),
                source: src.name.clone(),
                variation,
                jpeg: encode(&img),
                truth,
                framing: Some(framing),
            });
        };
        push("compliant".into(), base, &keep, &[]);
        // The crop moved so that one measure lands a known distance inside or outside its range.
        for eye in [185.0, 205.0, 295.0, 315.0] {
            push(format!("eyes at {eye} px"), crop_for(a, eye, 240.0, 240.0), &keep, &[]);
        }
        for width in [165.0, 185.0, 295.0, 315.0] {
            push(format!("face {width} px wide"), crop_for(a, 250.0, width, 240.0), &keep, &[]);
        }
        for shift in [-10.0f32, -5.0, 5.0, 10.0] {
            let mut c = base;
            c.top -= shift / c.scale();
            push(format!("shifted down {shift} px"), c, &keep, &[]);
        }
        for cx in [205.0, 275.0] {
            push(format!("face centre at x = {cx}"), crop_for(a, 250.0, 240.0, cx), &keep, &[]);
        }
        let hair = geometry::framing(a, &base).hair_top;
        for target in [35.0, 125.0] {
            let mut c = base;
            c.top += (hair - target) / c.scale();
            push(format!("hair top at {target} px"), c, &keep, &[]);
        }
        // The background, through the person mask.
        for (label, colour, bad) in [
            ("white", [255.0, 255.0, 255.0], false),
            ("light grey", [240.0, 240.0, 240.0], false),
            ("pink", [245.0, 170.0, 190.0], true),
            ("dark grey", [90.0, 90.0, 95.0], true),
            ("beige", [225.0, 205.0, 170.0], true),
        ] {
            let edit = move |_: f32, _: f32, c: [f32; 3], p: f32| repaint(c, colour, p);
            // The cast is read on the background: a wrong background colour says nothing about a cast.
            let cast = if bad { None } else { Some(false) };
            push(
                format!("background {label}"),
                base,
                &edit,
                &[(Rule::BackgroundColor, Some(bad)), (Rule::LightingColorCast, cast), (Rule::ClothingContrast, cast)],
            );
        }
        let graded = |_: f32, y: f32, c: [f32; 3], p: f32| {
            let bg = mix([150.0, 220.0, 255.0], [40.0, 120.0, 200.0], y / 640.0);
            repaint(c, bg, p)
        };
        push(
            "background graded".into(),
            base,
            &graded,
            &[(Rule::BackgroundUniform, Some(true)), (Rule::BackgroundColor, None), (Rule::LightingColorCast, None)],
        );
        // Light and focus.
        let dark = |_: f32, _: f32, c: [f32; 3], _: f32| c.map(|v| v * 0.4);
        push(
            "under-exposed ×0.4".into(),
            base,
            &dark,
            &[
                (Rule::LightingExposure, Some(true)),
                (Rule::BackgroundColor, Some(true)),
                (Rule::LightingColorCast, None),
            ],
        );
        let bright = |_: f32, _: f32, c: [f32; 3], _: f32| c.map(|v| v * 1.7);
        push(
            "over-exposed ×1.7".into(),
            base,
            &bright,
            &[
                (Rule::LightingExposure, Some(true)),
                (Rule::BackgroundColor, Some(true)),
                (Rule::LightingColorCast, None),
            ],
        );
        let side = |x: f32, _: f32, c: [f32; 3], p: f32| if x < 240.0 { mix(c, c.map(|v| v * 0.5), p) } else { c };
        push("left half in shadow".into(), base, &side, &[(Rule::LightingBalance, Some(true))]);
        push("evenly lit".into(), base, &keep, &[(Rule::LightingBalance, Some(false))]);
        // A colour cast over the whole picture.
        let warm = |_: f32, _: f32, c: [f32; 3], _: f32| [c[0] * 1.15, c[1], c[2] * 0.8];
        push(
            "warm colour cast".into(),
            base,
            &warm,
            &[(Rule::LightingColorCast, Some(true)), (Rule::BackgroundColor, None), (Rule::LightingExposure, None)],
        );
        // Red pupils: a disc of a fifth of the eye width painted red at each eye centre.
        let framing = geometry::framing(a, &base);
        let eye_w = a.face_width() * base.scale() * 0.2;
        let eyes =
            [(base.render_x(a.eyes[0][0]), framing.eye_line[0]), (base.render_x(a.eyes[1][0]), framing.eye_line[1])];
        let red = move |x: f32, y: f32, c: [f32; 3], _: f32| {
            let near = eyes.iter().any(|&(ex, ey)| (x - ex).hypot(y - ey) <= eye_w * 0.15);
            if near { [200.0, 30.0, 35.0] } else { c }
        };
        push("red eye".into(), base, &red, &[(Rule::LightingRedEye, Some(true))]);
        push("pupils as shot".into(), base, &keep, &[(Rule::LightingRedEye, Some(false))]);
        // Clothing painted the background colour, below the chin.
        let chin_y = framing.eye_line[0] + a.face_width() * base.scale() * 0.9;
        let hidden =
            move |_: f32, y: f32, c: [f32; 3], p: f32| if y > chin_y + 40.0 { mix(c, LIGHT_BLUE, p) } else { c };
        push("clothing like the background".into(), base, &hidden, &[(Rule::ClothingContrast, Some(true))]);
        // A frame added round the picture.
        let framed = |x: f32, y: f32, c: [f32; 3], _: f32| {
            if x < 12.0 || y < 12.0 || x >= 468.0 || y >= 628.0 { [20.0, 20.0, 20.0] } else { c }
        };
        // The frame is background to the mask: the background rules have no truth here.
        push(
            "black frame 12 px".into(),
            base,
            &framed,
            &[
                (Rule::ContentNoAdditions, Some(true)),
                (Rule::BackgroundColor, None),
                (Rule::BackgroundUniform, None),
                (Rule::LightingColorCast, None),
            ],
        );
        let blurred = blur(&render(src, &base, &keep), 3.0);
        let framing = geometry::framing(a, &base);
        let mut truth = geometry_truth(&framing);
        truth.insert(Rule::QualitySharpness, true);
        cases.push(Case {
            name: format!("{} · blurred σ=3", src.name),
            source: src.name.clone(),
            variation: "blurred σ=3".into(),
            jpeg: encode(&blurred),
            truth,
            framing: Some(framing),
        });
        // Hair, a rim, a smile, raised brows, a screen and a print: only the rules of the face's details carry a
        // truth (and face.count): painting the forehead or warping the mouth says nothing new about the others.
        let compliant = render(src, &base, &keep);
        let altered: [Altered; 8] = [
            (
                "fringe over the eyebrows",
                render(src, &base, &alterations::fringe(src, &base)),
                &[(Rule::OcclusionEyebrows, true)],
            ),
            (
                "hair over one eye",
                render(src, &base, &alterations::lock_over_eye(src, &base)),
                &[(Rule::OcclusionEyes, true), (Rule::OcclusionEyebrows, true)],
            ),
            (
                "thick rim over one eye",
                render(src, &base, &alterations::rim_over_eye(src, &base)),
                &[(Rule::OcclusionEyes, true)],
            ),
            (
                "hair over the ears",
                render(src, &base, &alterations::hair_over_ears(src, &base)),
                &[(Rule::OcclusionEars, true)],
            ),
            (
                "smile (corners warped up)",
                alterations::smile(src, &base, &compliant),
                &[(Rule::ExpressionNeutral, true)],
            ),
            (
                "raised eyebrows (warped)",
                alterations::raised_brows(src, &base, &compliant),
                &[(Rule::ExpressionNeutral, true)],
            ),
            ("photo of a screen", alterations::screen(&compliant), &[(Rule::AuthenticityNotRephotographed, true)]),
            (
                "photo of a halftone print",
                alterations::halftone(&compliant),
                &[(Rule::AuthenticityNotRephotographed, true)],
            ),
        ];
        for (variation, img, overrides) in altered {
            let mut truth: BTreeMap<Rule, bool> = new_rule_truths(src).into_iter().collect();
            truth.insert(Rule::FaceCount, false);
            truth.extend(overrides.iter().copied());
            cases.push(Case {
                name: format!("{} · {variation}", src.name),
                source: src.name.clone(),
                variation: variation.into(),
                jpeg: encode(&img),
                truth,
                framing: None,
            });
        }
        // Sensor noise, as a cheaper camera gives it: no rule should change its mind.
        let mut seed = 0x9e37_79b9_u32 ^ si as u32;
        let noisy: Vec<u8> = render(src, &base, &keep)
            .pixels
            .chunks(3)
            .flat_map(|p| {
                seed ^= seed << 13;
                seed ^= seed >> 17;
                seed ^= seed << 5;
                let n = (seed % 13) as f32 - 6.0;
                [p[0], p[1], p[2]].map(|v| (f32::from(v) + n).clamp(0.0, 255.0) as u8)
            })
            .collect();
        let noisy = RgbImage { width: 480, height: 640, pixels: noisy };
        let mut truth = geometry_truth(&framing);
        truth.insert(Rule::FaceCount, false);
        truth.insert(Rule::BackgroundColor, false);
        truth.insert(Rule::QualitySharpness, false);
        truth.extend(new_rule_truths(src));
        cases.push(Case {
            name: format!("{} · sensor noise ±6", src.name),
            source: src.name.clone(),
            variation: "sensor noise ±6".into(),
            jpeg: encode(&noisy),
            truth,
            framing: Some(framing),
        });
        // Mirrored by its EXIF orientation (2): the file says "show me flipped".
        let exif =
            gradphoto_testkit::exif::ExifSpec { orientation: Some(2), ..gradphoto_testkit::exif::ExifSpec::camera() };
        let plain = render(src, &base, &keep);
        let img = image::RgbImage::from_raw(480, 640, plain.pixels).expect("buffer size");
        let spec = gradphoto_testkit::JpegSpec { quality: 92, exif: Some(exif.build()), ..Default::default() };
        cases.push(Case {
            name: format!("{} · EXIF mirrored", src.name),
            source: src.name.clone(),
            variation: "EXIF mirrored".into(),
            jpeg: gradphoto_testkit::encode(&img, &spec),
            truth: BTreeMap::from([(Rule::AuthenticityNoMirror, true), (Rule::FaceCount, false)]),
            framing: None,
        });
        // Tilted: the whole rendering turned about its centre.
        for deg in [2.0f32, 10.0] {
            let img = rotate(&render(src, &base, &keep), deg);
            cases.push(Case {
                name: format!("{} · turned {deg}°", src.name),
                source: src.name.clone(),
                variation: format!("turned {deg}°"),
                jpeg: encode(&img),
                truth: BTreeMap::from([(Rule::GeometryRoll, src.head_tilted || deg > 5.0), (Rule::FaceCount, false)]),
                framing: None,
            });
        }
        // A second person: another source's face pasted small into the background corner.
        if let Some(other) = sources.get((si + 1) % sources.len()).filter(|_| sources.len() > 1) {
            let small = render(other, &crop_for(&other.anchors, 250.0, 240.0, 240.0), &keep);
            let mut img = render(src, &base, &keep);
            paste_scaled(&mut img, &small, 0.35, 8, 330);
            cases.push(Case {
                name: format!("{} · second face", src.name),
                source: src.name.clone(),
                variation: "second face".into(),
                jpeg: encode(&img),
                truth: BTreeMap::from([(Rule::FaceCount, true)]),
                framing: None,
            });
        }
    }
    for (name, img) in no_face {
        let img = gradphoto_testkit::crop_to(img, 480, 640);
        cases.push(Case {
            name: format!("{name} · no face"),
            source: name.clone(),
            variation: "no face".into(),
            jpeg: gradphoto_testkit::encode(&img, &gradphoto_testkit::JpegSpec { quality: 92, ..Default::default() }),
            truth: BTreeMap::from([(Rule::FaceCount, true)]),
            framing: None,
        });
    }
    cases
}

fn blur(img: &RgbImage, sigma: f32) -> RgbImage {
    let b = image::imageops::blur(&crate::to_image(img), sigma);
    RgbImage { width: img.width, height: img.height, pixels: b.into_raw() }
}

fn rotate(img: &RgbImage, deg: f32) -> RgbImage {
    let pyr = Pyramid::new(img);
    let (s, c) = deg.to_radians().sin_cos();
    let (cx, cy) = (img.width as f32 / 2.0, img.height as f32 / 2.0);
    let mut pixels = Vec::with_capacity(img.pixels.len());
    for y in 0..img.height {
        for x in 0..img.width {
            let (dx, dy) = (x as f32 + 0.5 - cx, y as f32 + 0.5 - cy);
            let (sx, sy) = (cx + dx * c + dy * s - 0.5, cy - dx * s + dy * c - 0.5);
            pixels.extend(pyr.sample(sx, sy, 1.0).map(|v| v.round() as u8));
        }
    }
    RgbImage { width: img.width, height: img.height, pixels }
}

fn paste_scaled(dst: &mut RgbImage, src: &RgbImage, scale: f32, left: u32, top: u32) {
    let pyr = Pyramid::new(src);
    let (w, h) = ((src.width as f32 * scale) as u32, (src.height as f32 * scale) as u32);
    for y in 0..h.min(dst.height.saturating_sub(top)) {
        for x in 0..w.min(dst.width.saturating_sub(left)) {
            let p = pyr.sample((x as f32 + 0.5) / scale - 0.5, (y as f32 + 0.5) / scale - 0.5, 1.0 / scale);
            let i = (((top + y) * dst.width + left + x) * 3) as usize;
            for (o, v) in dst.pixels[i..i + 3].iter_mut().zip(p) {
                *o = v.round() as u8;
            }
        }
    }
}
