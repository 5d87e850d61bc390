//! Normalise: from an approved original to the registered file. It only crops, scales, re-encodes and writes
//! metadata (S 一.2 forbids mirroring, rotating and retouching): the 3:4 crop that puts the eye line, hair top and
//! face width mid-range and centres the face, never upscaled, scaled with Lanczos3, encoded at the highest quality
//! ≥ 60 whose file fits 20–40 KB, 300 dpi, no EXIF, the identity sealed in COM — then checked with the
//! `registered` profile, and refused loudly if it does not pass.

use std::sync::Arc;

use fast_image_resize::{FilterType, PixelType, ResizeAlg, ResizeOptions, Resizer, images::Image};

use crate::check::{CheckOptions, check};
use crate::decode::{ReadError, RgbImage, Scale, pixels};
use crate::judge::{Profile, Report, Rule, Severity, Verdict};
use crate::measure::face::geometry::{Crop, Framing, NoCrop, RENDER_H, RENDER_W};
use crate::measure::face::models::{FaceModels, ModelError};
use crate::measure::person::FramingMode;
use crate::seal::{Identity, SealError, Sealer, seal_jpeg};

/// Bounds of the registered file (S 四.1).
#[derive(Debug, Clone, Copy)]
pub struct FixOptions {
    pub min_quality: u8,
    pub max_bytes: usize,
    pub min_bytes: usize,
    /// Decode at the smallest DCT scale that keeps at least this many pixels across the crop (2 × 480, so that
    /// Lanczos3 does the last step of the reduction).
    pub min_source_width: f32,
}

impl Default for FixOptions {
    fn default() -> Self {
        FixOptions { min_quality: 60, max_bytes: 40 * 1024, min_bytes: 20 * 1024, min_source_width: 960.0 }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum FixError {
    #[error("cannot read the original: {0}")]
    Read(#[from] ReadError),
    #[error("the face models failed: {0}")]
    Models(#[from] ModelError),
    #[error("no single face found in the original ({0} faces)")]
    Faces(usize),
    #[error("no 3:4 crop of the original meets the standard's framing: {0:?}")]
    NotCroppable(NoCrop),
    #[error("cannot scale: {0}")]
    Resize(String),
    #[error("cannot encode: {0}")]
    Encode(String),
    #[error("cannot seal: {0}")]
    Seal(#[from] SealError),
    #[error("the registered file fails its own check ({})", failing(.0))]
    SelfCheck(Box<Report>),
}

fn failing(r: &Report) -> String {
    let bad = r.findings.iter().filter(|f| matches!(f.severity, Severity::Reject | Severity::Fixable));
    bad.map(|f| f.rule.id()).collect::<Vec<_>>().join(", ")
}

/// The registered file and how it was made.
#[derive(Debug, Clone)]
pub struct Fixed {
    pub jpeg: Vec<u8>,
    /// The IJG-equivalent quality the checker estimates from the file's tables.
    pub quality: u8,
    /// The (fractional) quality the tables were scaled to.
    pub setting: f32,
    /// The crop, in pixels of the upright original.
    pub crop: Crop,
    /// Where the crop puts the hair top, eye line and face, as measured on the original.
    pub aimed: Framing,
    /// The `registered` check of the output: no reject and no fixable finding; `review` findings are carried for
    /// the record (a file size outside 20–40 KB is one when even quality 60 is too large).
    pub report: Report,
}

/// Encodes 480 × 640 RGB with the IJG (Annex K) tables scaled to `quality` — fractional qualities allowed, so the
/// size budget is met closely — optimised Huffman tables, 4:2:0, JFIF 300 × 300 dpi, and nothing else: no EXIF, so
/// no GPS, serial or date leaks. The checker estimates the file's quality from these tables as the nearest IJG one.
pub fn encode(img: &RgbImage, quality: f32) -> Result<Vec<u8>, FixError> {
    compress(img, quality, true)
}

/// A picture that is only looked at (the annotated one): as [`encode`], but with the standard's example Huffman
/// tables instead of optimised ones, so one pass over the picture instead of two (a quarter of its encoding
/// time, for a somewhat larger file: 40–50 KB at 480 × 640).
pub fn encode_view(img: &RgbImage, quality: f32) -> Result<Vec<u8>, FixError> {
    compress(img, quality, false)
}

fn compress(img: &RgbImage, quality: f32, optimise: bool) -> Result<Vec<u8>, FixError> {
    let quality = quality.clamp(1.0, 100.0);
    let result = std::panic::catch_unwind(|| -> std::io::Result<Vec<u8>> {
        let mut c = mozjpeg::Compress::new(mozjpeg::ColorSpace::JCS_RGB);
        c.set_fastest_defaults();
        c.set_size(img.width as usize, img.height as usize);
        c.set_luma_qtable(&mozjpeg::qtable::AnnexK_Luma.scaled(quality, quality));
        c.set_chroma_qtable(&mozjpeg::qtable::AnnexK_Chroma.scaled(quality, quality));
        c.set_optimize_coding(optimise);
        c.set_chroma_sampling_pixel_sizes((2, 2), (2, 2));
        c.set_pixel_density(mozjpeg::PixelDensity { unit: mozjpeg::PixelDensityUnit::Inches, x: 300, y: 300 });
        let mut s = c.start_compress(Vec::new())?;
        s.write_scanlines(&img.pixels)?;
        s.finish()
    });
    match result {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(FixError::Encode(e.to_string())),
        Err(_) => Err(FixError::Encode("the encoder stopped on an error".into())),
    }
}

/// Crops `crop` out of `img` and scales it to 480 × 640 with Lanczos3.
pub fn render(img: &RgbImage, crop: &Crop) -> Result<RgbImage, FixError> {
    let src = Image::from_vec_u8(img.width, img.height, img.pixels.clone(), PixelType::U8x3)
        .map_err(|e| FixError::Resize(e.to_string()))?;
    let mut dst = Image::new(RENDER_W as u32, RENDER_H as u32, PixelType::U8x3);
    let options = ResizeOptions::new().resize_alg(ResizeAlg::Convolution(FilterType::Lanczos3)).crop(
        f64::from(crop.left),
        f64::from(crop.top),
        f64::from(crop.width),
        f64::from(crop.height()),
    );
    Resizer::new().resize(&src, &mut dst, &options).map_err(|e| FixError::Resize(e.to_string()))?;
    Ok(RgbImage { width: RENDER_W as u32, height: RENDER_H as u32, pixels: dst.into_vec() })
}

/// Seals an encoded file (the seal's bytes count towards the file size).
pub type SealStep<'a> = &'a dyn Fn(&[u8]) -> Result<Vec<u8>, FixError>;

/// The highest quality from `min_quality` up (to a twentieth of a step) whose finished file fits `max_bytes`: a
/// bisection, since file size grows with quality. When even the minimum is too large, the minimum.
pub fn encode_within_budget(
    img: &RgbImage,
    options: &FixOptions,
    finish: SealStep<'_>,
) -> Result<(f32, Vec<u8>), FixError> {
    let attempt = |q: f32| -> Result<Vec<u8>, FixError> { finish(&encode(img, q)?) };
    let min = f32::from(options.min_quality);
    let mut best = (min, attempt(min)?);
    if best.1.len() > options.max_bytes {
        return Ok(best);
    }
    let top = attempt(100.0)?;
    if top.len() <= options.max_bytes {
        return Ok((100.0, top));
    }
    let (mut lo, mut hi) = (min, 100.0f32);
    while hi - lo > 0.05 {
        let mid = (lo + hi) / 2.0;
        let file = attempt(mid)?;
        if file.len() <= options.max_bytes {
            best = (mid, file);
            lo = mid;
        } else {
            hi = mid;
        }
    }
    Ok(best)
}

/// What `fix` renders before it encodes: the crop in pixels of the upright original, the DCT scale it was decoded
/// at, and the lossless 480 × 640 rendering.
#[derive(Debug, Clone)]
pub struct Prepared {
    pub crop: Crop,
    /// Where the crop puts the hair top, eye line and face, as measured on the original.
    pub aimed: Framing,
    pub source_scale: Scale,
    pub rendered: RgbImage,
}

/// Finds the face and the crop on the analysis decode, decodes again at the smallest scale that keeps
/// `min_source_width` pixels across the crop, and renders the crop at 480 × 640 with Lanczos3.
pub fn prepare(
    data: &[u8],
    models: &FaceModels,
    check_options: &CheckOptions,
    options: &FixOptions,
) -> Result<Prepared, FixError> {
    let inspection = crate::measure::inspect("original.jpg", data, &check_options.limits)?;
    let frame = &inspection.container.frame;
    let orientation = inspection.measurements.metadata.orientation.unwrap_or(1);
    let upright_w = inspection.measurements.upright_width as f32;
    let scale = Scale::for_analysis(frame.width, frame.height, check_options.analysis_min_long_side);
    let analysis = pixels::upright(pixels::decode(data, &inspection.container, scale)?, orientation);
    let to_original = upright_w / analysis.width as f32;
    let (outputs, m) = models.analyse_framed(&analysis, FramingMode::BestCrop { min_width: 480.0 / to_original })?;
    if outputs.detections.len() != 1 {
        return Err(FixError::Faces(outputs.detections.len()));
    }
    let (crop, aimed) = match (m.crop, m.framing, m.no_crop) {
        (Some(c), Some(f), _) => {
            (Crop { left: c.left * to_original, top: c.top * to_original, width: c.width * to_original }, f)
        }
        (_, _, Some(e)) => return Err(FixError::NotCroppable(e)),
        _ => return Err(FixError::Faces(outputs.detections.len())),
    };
    let source_scale = Scale::ALL
        .into_iter()
        .rev()
        .find(|s| crop.width / s.denominator() as f32 >= options.min_source_width)
        .unwrap_or(Scale::Full);
    let source = if source_scale == scale {
        analysis
    } else {
        pixels::upright(pixels::decode(data, &inspection.container, source_scale)?, orientation)
    };
    let f = source.width as f32 / upright_w;
    let rendered = render(&source, &Crop { left: crop.left * f, top: crop.top * f, width: crop.width * f })?;
    Ok(Prepared { crop, aimed, source_scale, rendered })
}

/// Turns an approved original into the registered file for `identity`.
pub fn fix(
    data: &[u8],
    models: &Arc<FaceModels>,
    sealer: &Arc<dyn Sealer>,
    identity: &Identity,
    check_options: &CheckOptions,
    options: &FixOptions,
) -> Result<Fixed, FixError> {
    let Prepared { crop, aimed, rendered, .. } = prepare(data, models, check_options, options)?;
    let seal = |jpeg: &[u8]| -> Result<Vec<u8>, FixError> { Ok(seal_jpeg(jpeg, sealer.as_ref(), identity)?) };
    let (setting, jpeg) = encode_within_budget(&rendered, options, &seal)?;
    let registered = Profile::registered();
    let own = CheckOptions { models: Some(models.clone()), sealer: Some(sealer.clone()), ..check_options.clone() };
    let mut report = check(&format!("{}.jpg", identity.id_number), &jpeg, &registered, &own).report;
    // Outside 20–40 KB even at the budget's ends (S: "generally"): a person looks; normalisation cannot do better.
    let size = jpeg.len();
    if (size > options.max_bytes && setting <= f32::from(options.min_quality)) || size < options.min_bytes {
        if let Some(f) = report.findings.iter_mut().find(|f| f.rule == Rule::FormatFileSize) {
            f.severity = Severity::Review;
        }
        report.settle();
    }
    // A reviewer approved the original, so `review` findings (pose, light, a person's judgement) stand as they are;
    // what may not remain is a reject, or a `fixable` finding, which would mean normalisation did not do its job.
    let acceptable = report.findings.iter().all(|f| matches!(f.severity, Severity::Pass | Severity::Review));
    if report.verdict == Verdict::Error || !acceptable {
        return Err(FixError::SelfCheck(Box::new(report)));
    }
    let quality = report
        .finding(Rule::FormatQuality)
        .and_then(|f| f.measured.as_u64())
        .and_then(|q| u8::try_from(q).ok())
        .unwrap_or(setting.floor() as u8);
    Ok(Fixed { jpeg, quality, setting, crop, aimed, report })
}
