//! A small pure-Rust float32 TensorFlow-Lite interpreter for three MediaPipe models: the
//! short-range face detector (BlazeFace), FaceMesh and selfie segmentation.
//!
//! It reads the flatbuffer with bounds-checked accessors, folds fp16 DEQUANTIZE into f32
//! constants, validates every shape and fixes the execution plan at load, then runs NHWC f32
//! kernels on one thread: convolutions as im2col + sgemm, depthwise convolutions as direct loops.
//! Supported: CONV_2D, DEPTHWISE_CONV_2D, MAX_POOL_2D, AVERAGE_POOL_2D, ADD, MUL, PRELU, RELU,
//! RELU6, RELU_N1_TO_1, LOGISTIC, HARD_SWISH, PAD, RESHAPE, CONCATENATION, RESIZE_BILINEAR,
//! DEQUANTIZE (of constants) and MediaPipe's custom Convolution2DTransposeBias. (MediaPipe's
//! iris_landmark.tflite needs nothing more and runs too; the sparse full-range detector needs
//! DENSIFY and DEPTH_TO_SPACE and is refused with `Error::Unsupported`.)
//!
//! ```no_run
//! let bytes = std::fs::read("face_detection_short_range.tflite")?;
//! let model = gradphoto_tflite::Model::from_bytes(&bytes)?;
//! let input = vec![0.0f32; 128 * 128 * 3]; // NHWC, RGB in [-1, 1]
//! let outputs = model.run(&[&input])?; // regressors [1, 896, 16], classificators [1, 896, 1]
//! assert_eq!(outputs[0].len(), 896 * 16);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod depthwise;
mod direct;
mod fb;
mod gemm;
mod kernels;
mod plan;
mod schema;

use std::sync::Mutex;

use plan::{Loc, Plan};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The bytes are not a well-formed TFLite model (truncated, bad offsets, inconsistent shapes).
    #[error("malformed model: {0}")]
    Malformed(String),
    /// Well-formed, but uses something this interpreter does not implement.
    #[error("unsupported model: {0}")]
    Unsupported(String),
    /// `run` was given a different number of inputs than the model has.
    #[error("expected {expected} inputs, got {got}")]
    InputCount { expected: usize, got: usize },
    /// An input slice's length is not the element count of the model's declared input shape.
    #[error("input {index}: expected {expected} floats, got {got}")]
    InputLength { index: usize, expected: usize, got: usize },
}

/// A parsed and prepared model. `run` may be called from several threads at once.
pub struct Model {
    plan: Plan,
    /// Reusable per-run buffers: a run takes one (or makes one) and puts it back, so repeated runs
    /// do not pay for fresh pages.
    arenas: Mutex<Vec<Arena>>,
}

struct Arena {
    slots: Vec<Vec<f32>>,
    scratch: Vec<f32>,
}

impl std::fmt::Debug for Model {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Model")
            .field("inputs", &self.input_shapes())
            .field("outputs", &self.output_shapes())
            .field("steps", &self.plan.steps.len())
            .finish()
    }
}

impl Model {
    /// Parses and prepares a `.tflite` file's bytes (the flatbuffer; anything appended after it,
    /// such as MediaPipe's metadata archive, is ignored).
    pub fn from_bytes(bytes: &[u8]) -> Result<Model, Error> {
        Ok(Model { plan: plan::build(bytes)?, arenas: Mutex::new(Vec::new()) })
    }

    /// Declared shape of each input, in the model's input order (NHWC for images).
    pub fn input_shapes(&self) -> Vec<Vec<usize>> {
        self.plan.inputs.iter().map(|io| io.shape.clone()).collect()
    }

    /// Declared shape of each output, in the model's output order.
    pub fn output_shapes(&self) -> Vec<Vec<usize>> {
        self.plan.outputs.iter().map(|io| io.shape.clone()).collect()
    }

    /// Tensor name of each output (e.g. "regressors", "classificators" for the detector).
    pub fn output_names(&self) -> Vec<String> {
        self.plan.outputs.iter().map(|io| io.name.clone()).collect()
    }

    /// Inputs in the model's input order, each row-major NHWC f32 of the declared shape; outputs in output order.
    pub fn run(&self, inputs: &[&[f32]]) -> Result<Vec<Vec<f32>>, Error> {
        self.run_timed(inputs, None)
    }

    /// Like `run`, also returning each step's description and wall time (for tuning kernels).
    #[doc(hidden)]
    pub fn profile(&self, inputs: &[&[f32]]) -> Result<Vec<(String, std::time::Duration)>, Error> {
        let mut times = Vec::new();
        self.run_timed(inputs, Some(&mut times))?;
        Ok(times)
    }

    fn run_timed(
        &self,
        inputs: &[&[f32]],
        mut times: Option<&mut Vec<(String, std::time::Duration)>>,
    ) -> Result<Vec<Vec<f32>>, Error> {
        let plan = &self.plan;
        if inputs.len() != plan.inputs.len() {
            return Err(Error::InputCount { expected: plan.inputs.len(), got: inputs.len() });
        }
        for (index, (io, x)) in plan.inputs.iter().zip(inputs).enumerate() {
            if x.len() != io.len {
                return Err(Error::InputLength { index, expected: io.len, got: x.len() });
            }
        }
        let taken = self.arenas.lock().unwrap_or_else(|e| e.into_inner()).pop();
        let mut arena = taken.unwrap_or_else(|| Arena {
            slots: plan.slot_sizes.iter().map(|&n| vec![0.0; n]).collect(),
            scratch: vec![0.0; plan.scratch_len],
        });
        let Arena { slots, scratch } = &mut arena;
        for step in &plan.steps {
            let mut out = std::mem::take(&mut slots[step.output]);
            {
                let view = |&(loc, len): &(Loc, usize)| -> &[f32] {
                    let data: &[f32] = match loc {
                        Loc::Input(i) => inputs[i],
                        Loc::Const(c) => &plan.consts[c],
                        Loc::Slot(s) => &slots[s],
                    };
                    &data[..len]
                };
                let ins: Vec<&[f32]> = step.inputs.iter().map(view).collect();
                let start = times.is_some().then(std::time::Instant::now);
                step.kernel.run(&ins, &mut out[..step.out_len], scratch);
                if let (Some(times), Some(start)) = (times.as_deref_mut(), start) {
                    times.push((step.kernel.describe(), start.elapsed()));
                }
            }
            slots[step.output] = out;
        }
        let outputs = plan
            .outputs
            .iter()
            .map(|io| {
                let data: &[f32] = match io.loc {
                    Loc::Input(i) => inputs[i],
                    Loc::Const(c) => &plan.consts[c],
                    Loc::Slot(s) => &slots[s],
                };
                data[..io.len].to_vec()
            })
            .collect();
        self.arenas.lock().unwrap_or_else(|e| e.into_inner()).push(arena);
        Ok(outputs)
    }
}
