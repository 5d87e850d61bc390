//! The few tables of the TFLite schema (schema.fbs, version 3) this interpreter reads, written by hand.
//!
//! Field numbers are the declaration order in schema.fbs; a union takes two slots (type, then value).

use crate::Error;
use crate::fb::Table;

/// `BuiltinOperator` codes we execute or fold.
pub(crate) mod op {
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
}

/// `TensorType` values we accept.
pub(crate) mod ttype {
    pub const FLOAT32: i8 = 0;
    pub const FLOAT16: i8 = 1;
    pub const INT32: i8 = 2;
    pub const INT64: i8 = 4;
}

pub(crate) struct OperatorCode {
    /// max(deprecated_builtin_code, builtin_code): old writers fill only the first, new ones
    /// put 127 (PLACEHOLDER_FOR_GREATER_OP_CODES) there and the real code in the second.
    pub builtin: i32,
    pub custom: Option<String>,
}

pub(crate) struct Tensor {
    pub shape: Vec<i32>,
    pub ttype: i8,
    pub buffer: u32,
    pub name: String,
}

pub(crate) struct Operator<'a> {
    pub opcode_index: u32,
    pub inputs: Vec<i32>,
    pub outputs: Vec<i32>,
    pub options_type: u8,
    pub options: Option<Table<'a>>,
    pub custom_options: Option<&'a [u8]>,
}

pub(crate) struct ModelFile<'a> {
    pub codes: Vec<OperatorCode>,
    pub tensors: Vec<Tensor>,
    pub inputs: Vec<i32>,
    pub outputs: Vec<i32>,
    pub operators: Vec<Operator<'a>>,
    /// Raw bytes of each buffer (empty when the buffer holds no constant data).
    pub buffers: Vec<&'a [u8]>,
}

fn bad(what: &str) -> Error {
    Error::Malformed(what.to_string())
}

pub(crate) fn parse(bytes: &[u8]) -> Result<ModelFile<'_>, Error> {
    if bytes.len() < 8 {
        return Err(bad("file too short"));
    }
    let model = Table::root(bytes)?;
    let version = model.u32(0, 0)?;
    if version != 3 {
        return Err(Error::Unsupported(format!("schema version {version}, expected 3")));
    }
    let codes = model
        .tables(1)?
        .iter()
        .map(|t| {
            let deprecated = t.i8(0, 0)? as i32;
            let builtin = t.i32(3, 0)?;
            Ok(OperatorCode { builtin: deprecated.max(builtin), custom: t.string(1)? })
        })
        .collect::<Result<Vec<_>, Error>>()?;

    let subgraphs = model.tables(2)?;
    let sg = match subgraphs.as_slice() {
        [sg] => *sg,
        [] => return Err(bad("no subgraph")),
        _ => return Err(Error::Unsupported("more than one subgraph".into())),
    };

    let buffers = model
        .tables(4)?
        .iter()
        .map(|b| {
            // Models over 2 GB keep data outside the flatbuffer at (offset, size) from the file start.
            let offset = b.u64(1, 0)?;
            if offset > 1 {
                let size = b.u64(2, 0)?;
                let start = usize::try_from(offset).map_err(|_| bad("buffer offset"))?;
                let end = usize::try_from(size).ok().and_then(|s| start.checked_add(s));
                return end.and_then(|e| bytes.get(start..e)).ok_or_else(|| bad("buffer past end of file"));
            }
            Ok(b.bytes(0)?.unwrap_or(&[]))
        })
        .collect::<Result<Vec<_>, Error>>()?;

    let tensors = sg
        .tables(0)?
        .iter()
        .map(|t| {
            Ok(Tensor {
                shape: t.i32_vec(0)?,
                ttype: t.i8(1, 0)?,
                buffer: t.u32(2, 0)?,
                name: t.string(3)?.unwrap_or_default(),
            })
        })
        .collect::<Result<Vec<_>, Error>>()?;

    let operators = sg
        .tables(3)?
        .iter()
        .map(|o| {
            Ok(Operator {
                opcode_index: o.u32(0, 0)?,
                inputs: o.i32_vec(1)?,
                outputs: o.i32_vec(2)?,
                options_type: o.u8(3, 0)?,
                options: o.table(4)?,
                custom_options: o.bytes(5)?,
            })
        })
        .collect::<Result<Vec<_>, Error>>()?;

    Ok(ModelFile { codes, tensors, inputs: sg.i32_vec(1)?, outputs: sg.i32_vec(2)?, operators, buffers })
}

/// `BuiltinOptions` union tags for the option tables we read.
pub(crate) mod opt {
    pub const CONV_2D: u8 = 1;
    pub const DEPTHWISE_CONV_2D: u8 = 2;
    pub const POOL_2D: u8 = 5;
    pub const CONCATENATION: u8 = 10;
    pub const ADD: u8 = 11;
    pub const RESIZE_BILINEAR: u8 = 15;
    pub const RESHAPE: u8 = 17;
    pub const MUL: u8 = 21;
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Padding {
    Same,
    Valid,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Activation {
    None,
    Relu,
    ReluN1To1,
    Relu6,
}

fn padding(v: u8) -> Result<Padding, Error> {
    match v {
        0 => Ok(Padding::Same),
        1 => Ok(Padding::Valid),
        _ => Err(bad("unknown padding")),
    }
}

pub(crate) fn activation(v: u8) -> Result<Activation, Error> {
    match v {
        0 => Ok(Activation::None),
        1 => Ok(Activation::Relu),
        2 => Ok(Activation::ReluN1To1),
        3 => Ok(Activation::Relu6),
        _ => Err(Error::Unsupported(format!("fused activation {v}"))),
    }
}

/// Stride, dilation and padding shared by CONV_2D, DEPTHWISE_CONV_2D and the pools.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Window {
    pub padding: Padding,
    pub stride_w: usize,
    pub stride_h: usize,
    pub dilation_w: usize,
    pub dilation_h: usize,
}

fn positive(v: i32, what: &str) -> Result<usize, Error> {
    if (1..=1 << 16).contains(&v) { Ok(v as usize) } else { Err(Error::Malformed(format!("{what} = {v}"))) }
}

/// Returns the option table if present with the expected union tag; an absent table means all defaults.
fn options<'a>(o: &Operator<'a>, tag: u8) -> Result<Option<Table<'a>>, Error> {
    match o.options {
        Some(t) if o.options_type == tag => Ok(Some(t)),
        Some(_) => Err(bad("builtin options of the wrong type")),
        None => Ok(None),
    }
}

pub(crate) struct ConvOptions {
    pub window: Window,
    pub activation: Activation,
    /// DEPTHWISE_CONV_2D only.
    pub depth_multiplier: usize,
}

pub(crate) fn conv_options(o: &Operator<'_>) -> Result<ConvOptions, Error> {
    let t = options(o, opt::CONV_2D)?.ok_or_else(|| bad("CONV_2D without options"))?;
    Ok(ConvOptions {
        window: Window {
            padding: padding(t.u8(0, 0)?)?,
            stride_w: positive(t.i32(1, 0)?, "stride_w")?,
            stride_h: positive(t.i32(2, 0)?, "stride_h")?,
            dilation_w: positive(t.i32(4, 1)?, "dilation_w")?,
            dilation_h: positive(t.i32(5, 1)?, "dilation_h")?,
        },
        activation: activation(t.u8(3, 0)?)?,
        depth_multiplier: 1,
    })
}

pub(crate) fn depthwise_options(o: &Operator<'_>) -> Result<ConvOptions, Error> {
    let t = options(o, opt::DEPTHWISE_CONV_2D)?.ok_or_else(|| bad("DEPTHWISE_CONV_2D without options"))?;
    Ok(ConvOptions {
        window: Window {
            padding: padding(t.u8(0, 0)?)?,
            stride_w: positive(t.i32(1, 0)?, "stride_w")?,
            stride_h: positive(t.i32(2, 0)?, "stride_h")?,
            dilation_w: positive(t.i32(5, 1)?, "dilation_w")?,
            dilation_h: positive(t.i32(6, 1)?, "dilation_h")?,
        },
        activation: activation(t.u8(4, 0)?)?,
        // 0 appears in some converted models; TFLite then derives it from the shapes.
        depth_multiplier: t.i32(3, 0)?.max(0) as usize,
    })
}

pub(crate) struct PoolOptions {
    pub window: Window,
    pub filter_w: usize,
    pub filter_h: usize,
    pub activation: Activation,
}

pub(crate) fn pool_options(o: &Operator<'_>) -> Result<PoolOptions, Error> {
    let t = options(o, opt::POOL_2D)?.ok_or_else(|| bad("pool without options"))?;
    Ok(PoolOptions {
        window: Window {
            padding: padding(t.u8(0, 0)?)?,
            stride_w: positive(t.i32(1, 0)?, "stride_w")?,
            stride_h: positive(t.i32(2, 0)?, "stride_h")?,
            dilation_w: 1,
            dilation_h: 1,
        },
        filter_w: positive(t.i32(3, 0)?, "filter_width")?,
        filter_h: positive(t.i32(4, 0)?, "filter_height")?,
        activation: activation(t.u8(5, 0)?)?,
    })
}

/// Fused activation of ADD or MUL (field 0 in both tables).
pub(crate) fn arith_activation(o: &Operator<'_>, tag: u8) -> Result<Activation, Error> {
    match options(o, tag)? {
        Some(t) => activation(t.u8(0, 0)?),
        None => Ok(Activation::None),
    }
}

pub(crate) fn concat_options(o: &Operator<'_>) -> Result<(i32, Activation), Error> {
    match options(o, opt::CONCATENATION)? {
        Some(t) => Ok((t.i32(0, 0)?, activation(t.u8(1, 0)?)?)),
        None => Ok((0, Activation::None)),
    }
}

/// ReshapeOptions.new_shape (empty when absent; the second input or the output shape then rules).
pub(crate) fn reshape_new_shape(o: &Operator<'_>) -> Result<Vec<i32>, Error> {
    match options(o, opt::RESHAPE)? {
        Some(t) => t.i32_vec(0),
        None => Ok(Vec::new()),
    }
}

/// (align_corners, half_pixel_centers)
pub(crate) fn resize_options(o: &Operator<'_>) -> Result<(bool, bool), Error> {
    match options(o, opt::RESIZE_BILINEAR)? {
        Some(t) => Ok((t.bool(2)?, t.bool(3)?)),
        None => Ok((false, false)),
    }
}

/// MediaPipe's Convolution2DTransposeBias keeps a raw C `TfLiteTransposeConvParams`
/// { TfLitePadding padding (1 = SAME, 2 = VALID); int stride_width; int stride_height } as custom options.
pub(crate) fn transpose_conv_options(o: &Operator<'_>) -> Result<(Padding, usize, usize), Error> {
    let b = o.custom_options.ok_or_else(|| bad("Convolution2DTransposeBias without options"))?;
    let pad = crate::fb::read_i32(b, 0)?;
    let sw = crate::fb::read_i32(b, 4)?;
    let sh = crate::fb::read_i32(b, 8)?;
    let padding = match pad {
        1 => Padding::Same,
        2 => Padding::Valid,
        _ => return Err(bad("Convolution2DTransposeBias padding")),
    };
    Ok((padding, positive(sw, "stride_width")?, positive(sh, "stride_height")?))
}
