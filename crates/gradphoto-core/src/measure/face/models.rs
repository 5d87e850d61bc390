//! Running the three models on an analysed image. The model bytes are handed in (verified by the caller);
//! loading parses and prepares them once, and a loaded set is shared across threads.

use std::sync::atomic::{AtomicUsize, Ordering};

use gradphoto_tflite::Model;

use super::detect::{self, Detection};
use super::mesh::{self, Roi};
use super::pyramid::Pyramid;
use super::segment::{self, Mask};
use crate::decode::RgbImage;
use crate::measure::person::{self, FaceOutputs, FramingMode, PersonMeasurements};

#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("the {which} model cannot be loaded: {source}")]
    Load { which: &'static str, source: gradphoto_tflite::Error },
    #[error("the {which} model failed: {source}")]
    Run { which: &'static str, source: gradphoto_tflite::Error },
    #[error("the {which} model has unexpected outputs")]
    Outputs { which: &'static str },
}

pub struct FaceModels {
    detector: Model,
    landmarker: Model,
    segmenter: Model,
    /// The drift (see [`Roi::drift`]) above which the mesh is run a second time; see [`REFINE_ABOVE`].
    refine_above: f32,
    /// Meshes run once and twice, for the calibration of `refine_above` (`examples/mesh_passes`).
    passes: [AtomicUsize; 2],
}

/// The second FaceMesh pass may be skipped where the crop the first pass's landmarks ask for drifts from the
/// detector's by no more than this (the largest of: centre shift and side change as fractions of the side, turn
/// in radians): there the second pass sees nearly the same pixels. Measured on the labelled set (`cargo run -p
/// gradphoto-eval --example mesh_passes`, table in docs/development.md), it does not pay: below a drift of 0.02 no
/// mesh qualifies, and at 0.02, where 5 of 322 meshes skip it, the eye line already moves by up to 2.6 px and the
/// face width by 4.8 px against two passes (the accuracy bars allow 2 px of shift error); at 0.06, verdicts
/// change. The mesh is that sensitive to its crop, and the landmarks' own crop is what keeps the measures steady
/// as the framing moves. So two passes always (0), and the knob stays for the next models.
pub const REFINE_ABOVE: f32 = 0.0;

impl std::fmt::Debug for FaceModels {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FaceModels")
    }
}

/// The output whose element count is `n`, so that output order in the file does not matter.
fn output_of_len(outputs: &mut Vec<Vec<f32>>, n: usize) -> Option<Vec<f32>> {
    let i = outputs.iter().position(|o| o.len() == n)?;
    Some(outputs.swap_remove(i))
}

impl FaceModels {
    pub fn load(detector: &[u8], landmarker: &[u8], segmenter: &[u8]) -> Result<FaceModels, ModelError> {
        let load = |which, bytes| Model::from_bytes(bytes).map_err(|source| ModelError::Load { which, source });
        Ok(FaceModels {
            detector: load("face detector", detector)?,
            landmarker: load("face landmark", landmarker)?,
            segmenter: load("person segmentation", segmenter)?,
            refine_above: REFINE_ABOVE,
            passes: Default::default(),
        })
    }

    /// The same models with another drift threshold for the second mesh pass (0: always two passes).
    pub fn with_refine_above(mut self, drift: f32) -> FaceModels {
        self.refine_above = drift;
        self
    }

    /// How many meshes were run with one pass and with two since loading.
    pub fn mesh_passes(&self) -> [usize; 2] {
        [self.passes[0].load(Ordering::Relaxed), self.passes[1].load(Ordering::Relaxed)]
    }

    /// Faces in the image, best first, with score at least `min_score`.
    pub fn detect(&self, pyr: &Pyramid, min_score: f32) -> Result<Vec<Detection>, ModelError> {
        let which = "face detector";
        let (input, lb) = detect::input(pyr);
        let mut out = self.detector.run(&[&input]).map_err(|source| ModelError::Run { which, source })?;
        let regressors =
            output_of_len(&mut out, detect::ANCHORS * detect::VALUES).ok_or(ModelError::Outputs { which })?;
        let scores = output_of_len(&mut out, detect::ANCHORS).ok_or(ModelError::Outputs { which })?;
        Ok(detect::decode(&regressors, &scores, &lb, min_score))
    }

    /// The 468 landmarks of the face the detection found, and the model's face confidence. A second pass crops
    /// from the first pass's landmarks, as MediaPipe does between video frames: the detector's box jitters with
    /// the framing, the landmarks' box much less.
    pub fn landmarks(&self, pyr: &Pyramid, face: &Detection) -> Result<(Vec<[f32; 3]>, f32), ModelError> {
        let from_detection = Roi::from_detection(face);
        let (first, score) = self.mesh_pass(pyr, &from_detection)?;
        match Roi::from_landmarks(&first) {
            Some(roi) if roi.drift(&from_detection) > self.refine_above => {
                self.passes[1].fetch_add(1, Ordering::Relaxed);
                self.mesh_pass(pyr, &roi)
            }
            _ => {
                self.passes[0].fetch_add(1, Ordering::Relaxed);
                Ok((first, score))
            }
        }
    }

    fn mesh_pass(&self, pyr: &Pyramid, roi: &Roi) -> Result<(Vec<[f32; 3]>, f32), ModelError> {
        let which = "face landmark";
        let input = mesh::input(pyr, roi);
        let mut out = self.landmarker.run(&[&input]).map_err(|source| ModelError::Run { which, source })?;
        let raw = output_of_len(&mut out, mesh::POINTS * 3).ok_or(ModelError::Outputs { which })?;
        let presence = output_of_len(&mut out, 1).ok_or(ModelError::Outputs { which })?;
        let points = mesh::landmarks(&raw, roi).ok_or(ModelError::Outputs { which })?;
        let score = 1.0 / (1.0 + (-presence[0].clamp(-100.0, 100.0)).exp());
        Ok((points, score))
    }

    pub fn mask(&self, pyr: &Pyramid) -> Result<Mask, ModelError> {
        let img = pyr.base();
        self.mask_of(pyr, [0.0, 0.0, img.width as f32, img.height as f32])
    }

    /// The person mask of a region of the image (left, top, width, height), segmented as if it were the whole.
    pub fn mask_of(&self, pyr: &Pyramid, region: [f32; 4]) -> Result<Mask, ModelError> {
        let which = "person segmentation";
        let img = pyr.base();
        let input = segment::input_of(pyr, region);
        let mut out = self.segmenter.run(&[&input]).map_err(|source| ModelError::Run { which, source })?;
        let probs = output_of_len(&mut out, segment::INPUT * segment::INPUT).ok_or(ModelError::Outputs { which })?;
        Ok(Mask::of_region(probs, img.width, img.height, region))
    }

    /// All three on one image: every face (the largest first: the sitter, not a bystander), the mesh of the
    /// largest, the person mask.
    pub fn analyse(&self, img: &RgbImage) -> Result<FaceOutputs, ModelError> {
        self.analyse_pyramid(&Pyramid::new(img))
    }

    /// [`FaceModels::analyse`], then the measures of the person in `framing`. For an original, the crop the
    /// framing chooses is segmented again on its own and the person measured with that mask: the segmenter
    /// stretches whatever it is shown to 256 × 256, so on the whole of a tall original with a small head its mask
    /// is several times coarser at the hair than on the 480 × 640 file the crop becomes, and misses what that
    /// file's mask finds (a white cap on a light background: 20 px of the rendering). Seen framed as the file
    /// will be, the hair top the crop aims at is the one the file's own check measures.
    pub fn analyse_framed(
        &self,
        img: &RgbImage,
        framing: FramingMode,
    ) -> Result<(FaceOutputs, PersonMeasurements), ModelError> {
        let pyr = Pyramid::new(img);
        let mut out = self.analyse_pyramid(&pyr)?;
        let mut m = person::measure(img, &out, framing);
        if matches!(framing, FramingMode::BestCrop { .. })
            && let Some(c) = m.crop
        {
            // Within the picture: a crop may reach half a pixel of the rendering past its edge.
            let (left, top) = (c.left.max(0.0), c.top.max(0.0));
            let (w, h) = (img.width as f32 - left, img.height as f32 - top);
            out.framed_mask = Some(self.mask_of(&pyr, [left, top, c.width.min(w), c.height().min(h)])?);
            person::reframe(img, &out, framing, &mut m);
        }
        Ok((out, m))
    }

    fn analyse_pyramid(&self, pyr: &Pyramid) -> Result<FaceOutputs, ModelError> {
        let mut detections = self.detect(pyr, 0.5)?;
        detections.sort_by(|a, b| (b.bbox[2] * b.bbox[3]).total_cmp(&(a.bbox[2] * a.bbox[3])));
        let (landmarks, mesh_score) = match detections.first() {
            Some(face) => {
                let (points, score) = self.landmarks(pyr, face)?;
                (Some(points), score)
            }
            None => (None, 0.0),
        };
        let mask = Some(self.mask(pyr)?);
        Ok(FaceOutputs { detections, landmarks, mesh_score, mask, framed_mask: None })
    }
}
