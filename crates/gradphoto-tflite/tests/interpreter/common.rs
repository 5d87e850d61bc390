//! Writes small TFLite models with the flatbuffers runtime's table builder, field by field as in
//! schema.fbs (no flatc here), so tests can run one op on hand-made tensors.

#![allow(dead_code)] // Each test file uses a different part.

use flatbuffers::{FlatBufferBuilder, WIPOffset};

pub mod op {
    pub const ADD: i32 = 0;
    pub const AVERAGE_POOL_2D: i32 = 1;
    pub const CONCATENATION: i32 = 2;
    pub const CONV_2D: i32 = 3;
    pub const DEPTHWISE_CONV_2D: i32 = 4;
    pub const DEQUANTIZE: i32 = 6;
    pub const LOGISTIC: i32 = 14;
    pub const MAX_POOL_2D: i32 = 17;
    pub const MUL: i32 = 18;
    pub const RELU: i32 = 19;
    pub const RELU_N1_TO_1: i32 = 20;
    pub const RELU6: i32 = 21;
    pub const RESHAPE: i32 = 22;
    pub const RESIZE_BILINEAR: i32 = 23;
    pub const CUSTOM: i32 = 32;
    pub const PAD: i32 = 34;
    pub const PRELU: i32 = 54;
    pub const HARD_SWISH: i32 = 117;
    pub const TANH: i32 = 28;
}

/// `BuiltinOptions` union tags.
pub mod opt {
    pub const CONV_2D: u8 = 1;
    pub const DEPTHWISE_CONV_2D: u8 = 2;
    pub const POOL_2D: u8 = 5;
    pub const CONCATENATION: u8 = 10;
    pub const ADD: u8 = 11;
    pub const RESIZE_BILINEAR: u8 = 15;
    pub const RESHAPE: u8 = 17;
    pub const MUL: u8 = 21;
}

pub const SAME: u8 = 0;
pub const VALID: u8 = 1;
pub const RELU: u8 = 1;
pub const RELU6: u8 = 3;

#[derive(Clone, Debug)]
pub enum V {
    I32(i32),
    U8(u8),
    Bool(bool),
    Ints(Vec<i32>),
}

struct Tensor {
    shape: Vec<i32>,
    ty: i8,
    buffer: u32,
    name: String,
}

struct Op {
    code: usize,
    inputs: Vec<i32>,
    outputs: Vec<i32>,
    opt_type: u8,
    opts: Vec<(usize, V)>,
    custom: Option<Vec<u8>>,
}

#[derive(Default)]
pub struct Graph {
    tensors: Vec<Tensor>,
    buffers: Vec<Vec<u8>>,
    codes: Vec<(i32, Option<String>)>,
    ops: Vec<Op>,
    inputs: Vec<i32>,
    outputs: Vec<i32>,
    /// Write only `deprecated_builtin_code` (as schema versions before 2.4 did).
    pub old_opcodes: bool,
}

impl Graph {
    pub fn new() -> Self {
        // Buffer 0 is the empty buffer by convention.
        Graph { buffers: vec![Vec::new()], ..Default::default() }
    }

    fn add(&mut self, shape: &[usize], ty: i8, data: Vec<u8>) -> i32 {
        let buffer = if data.is_empty() {
            0
        } else {
            self.buffers.push(data);
            (self.buffers.len() - 1) as u32
        };
        let name = format!("t{}", self.tensors.len());
        self.tensors.push(Tensor { shape: shape.iter().map(|&d| d as i32).collect(), ty, buffer, name });
        (self.tensors.len() - 1) as i32
    }

    pub fn input(&mut self, shape: &[usize]) -> i32 {
        let t = self.add(shape, 0, Vec::new());
        self.inputs.push(t);
        t
    }

    pub fn tensor(&mut self, shape: &[usize]) -> i32 {
        self.add(shape, 0, Vec::new())
    }

    pub fn output(&mut self, t: i32) {
        self.outputs.push(t);
    }

    pub fn f32s(&mut self, shape: &[usize], data: &[f32]) -> i32 {
        assert_eq!(shape.iter().product::<usize>(), data.len());
        self.add(shape, 0, data.iter().flat_map(|v| v.to_le_bytes()).collect())
    }

    pub fn f16s(&mut self, shape: &[usize], bits: &[u16]) -> i32 {
        self.add(shape, 1, bits.iter().flat_map(|v| v.to_le_bytes()).collect())
    }

    pub fn i32s(&mut self, shape: &[usize], data: &[i32]) -> i32 {
        self.add(shape, 2, data.iter().flat_map(|v| v.to_le_bytes()).collect())
    }

    fn code(&mut self, builtin: i32, custom: Option<&str>) -> usize {
        let key = (builtin, custom.map(str::to_string));
        match self.codes.iter().position(|c| *c == key) {
            Some(i) => i,
            None => {
                self.codes.push(key);
                self.codes.len() - 1
            }
        }
    }

    pub fn op(&mut self, builtin: i32, inputs: &[i32], outputs: &[i32], opt_type: u8, opts: &[(usize, V)]) {
        let code = self.code(builtin, None);
        self.ops.push(Op {
            code,
            inputs: inputs.to_vec(),
            outputs: outputs.to_vec(),
            opt_type,
            opts: opts.to_vec(),
            custom: None,
        });
    }

    pub fn custom(&mut self, name: &str, inputs: &[i32], outputs: &[i32], options: &[u8]) {
        let code = self.code(op::CUSTOM, Some(name));
        self.ops.push(Op {
            code,
            inputs: inputs.to_vec(),
            outputs: outputs.to_vec(),
            opt_type: 0,
            opts: Vec::new(),
            custom: Some(options.to_vec()),
        });
    }

    pub fn build(&self) -> Vec<u8> {
        let mut b = FlatBufferBuilder::new();
        // Field slot of field `i` in a vtable.
        let f = |i: usize| (4 + 2 * i) as u16;

        let codes: Vec<_> = self
            .codes
            .iter()
            .map(|(code, custom)| {
                let custom = custom.as_ref().map(|c| b.create_string(c));
                let t = b.start_table();
                b.push_slot_always::<i8>(f(0), (*code).min(127) as i8);
                if let Some(c) = custom {
                    b.push_slot_always(f(1), c);
                }
                b.push_slot_always::<i32>(f(2), 1);
                if !self.old_opcodes {
                    b.push_slot_always::<i32>(f(3), *code);
                }
                b.end_table(t)
            })
            .collect();
        let codes = b.create_vector(&codes);

        let tensors: Vec<_> = self
            .tensors
            .iter()
            .map(|t| {
                let shape = b.create_vector(&t.shape);
                let name = b.create_string(&t.name);
                let s = b.start_table();
                b.push_slot_always(f(0), shape);
                b.push_slot_always::<i8>(f(1), t.ty);
                b.push_slot_always::<u32>(f(2), t.buffer);
                b.push_slot_always(f(3), name);
                b.end_table(s)
            })
            .collect();
        let tensors = b.create_vector(&tensors);

        let ops: Vec<_> = self
            .ops
            .iter()
            .map(|o| {
                let inputs = b.create_vector(&o.inputs);
                let outputs = b.create_vector(&o.outputs);
                let custom = o.custom.as_ref().map(|c| b.create_vector(c));
                let options = if o.opt_type != 0 {
                    let vecs: Vec<_> = o
                        .opts
                        .iter()
                        .map(|(_, v)| match v {
                            V::Ints(xs) => Some(b.create_vector(xs)),
                            _ => None,
                        })
                        .collect();
                    let s = b.start_table();
                    for ((i, v), vec) in o.opts.iter().zip(vecs) {
                        match v {
                            V::I32(x) => b.push_slot_always::<i32>(f(*i), *x),
                            V::U8(x) => b.push_slot_always::<u8>(f(*i), *x),
                            V::Bool(x) => b.push_slot_always::<bool>(f(*i), *x),
                            V::Ints(_) => b.push_slot_always(f(*i), vec.unwrap()),
                        }
                    }
                    Some(b.end_table(s))
                } else {
                    None
                };
                let s = b.start_table();
                b.push_slot_always::<u32>(f(0), o.code as u32);
                b.push_slot_always(f(1), inputs);
                b.push_slot_always(f(2), outputs);
                if let Some(opts) = options {
                    b.push_slot_always::<u8>(f(3), o.opt_type);
                    b.push_slot_always(f(4), opts);
                }
                if let Some(c) = custom {
                    b.push_slot_always(f(5), c);
                }
                b.end_table(s)
            })
            .collect();
        let ops = b.create_vector(&ops);

        let inputs = b.create_vector(&self.inputs);
        let outputs = b.create_vector(&self.outputs);
        let name = b.create_string("main");
        let sg = b.start_table();
        b.push_slot_always(f(0), tensors);
        b.push_slot_always(f(1), inputs);
        b.push_slot_always(f(2), outputs);
        b.push_slot_always(f(3), ops);
        b.push_slot_always(f(4), name);
        let sg = b.end_table(sg);
        let subgraphs = b.create_vector(&[sg]);

        let buffers: Vec<WIPOffset<_>> = self
            .buffers
            .iter()
            .map(|d| {
                let data = (!d.is_empty()).then(|| b.create_vector(d));
                let s = b.start_table();
                if let Some(d) = data {
                    b.push_slot_always(f(0), d);
                }
                b.end_table(s)
            })
            .collect();
        let buffers = b.create_vector(&buffers);
        let desc = b.create_string("gradphoto-tflite test model");

        let m = b.start_table();
        b.push_slot_always::<u32>(f(0), 3);
        b.push_slot_always(f(1), codes);
        b.push_slot_always(f(2), subgraphs);
        b.push_slot_always(f(3), desc);
        b.push_slot_always(f(4), buffers);
        let m = b.end_table(m);
        b.finish(m, Some("TFL3"));
        b.finished_data().to_vec()
    }
}

/// Conv2DOptions / DepthwiseConv2DOptions / Pool2DOptions fields.
pub fn conv_opts(padding: u8, stride: i32, act: u8) -> Vec<(usize, V)> {
    vec![(0, V::U8(padding)), (1, V::I32(stride)), (2, V::I32(stride)), (3, V::U8(act))]
}

pub fn assert_close(got: &[f32], want: &[f32]) {
    assert_eq!(got.len(), want.len(), "length: got {got:?}, want {want:?}");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(
            (g - w).abs() <= 1e-5 * w.abs().max(1.0),
            "element {i}: got {g}, want {w}\n got {got:?}\nwant {want:?}"
        );
    }
}

/// Builds, loads and runs a one-input model.
pub fn run(g: &Graph, input: &[f32]) -> Vec<Vec<f32>> {
    let model = gradphoto_tflite::Model::from_bytes(&g.build()).expect("test model loads");
    model.run(&[input]).expect("test model runs")
}

/// 0, 1, 2, ... as f32.
pub fn iota(n: usize, start: f32) -> Vec<f32> {
    (0..n).map(|i| start + i as f32).collect()
}
