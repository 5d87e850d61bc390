//! Why a file could not be read. Each variant has a stable code shared with the report and the tests.

use crate::message::Message;

/// A file that cannot be read as a JPEG we can judge. A rule that fails is not an error: it is a finding.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReadError {
    #[error("the file is empty")]
    Empty,
    #[error("the file is {size} bytes, more than the limit of {limit}")]
    TooLarge { size: u64, limit: u64 },
    #[error("not a JPEG file: it looks like {kind}")]
    NotJpeg { kind: &'static str },
    #[error("the file ends early: {what} at offset {offset}")]
    Truncated { offset: usize, what: &'static str },
    #[error("invalid marker 0x{marker:02X} at offset {offset}")]
    BadMarker { offset: usize, marker: u8 },
    #[error("segment 0x{marker:02X} at offset {offset} has invalid length {length}")]
    BadLength { offset: usize, marker: u8, length: usize },
    #[error("malformed segment 0x{marker:02X} at offset {offset}: {what}")]
    BadSegment { offset: usize, marker: u8, what: &'static str },
    #[error("no frame header (SOF) before the image data")]
    NoFrame,
    #[error("more than one frame header (SOF)")]
    MultipleFrames,
    #[error("no image data (SOS)")]
    NoScan,
    #[error("unsupported JPEG process: {what}")]
    Unsupported { what: &'static str },
    #[error("declared image {width}×{height} is outside the limits ({limit} pixels)")]
    Dimensions { width: u32, height: u32, limit: u64 },
    #[error("more than {limit} {what}")]
    TooMany { what: &'static str, limit: u64 },
    #[error("malformed EXIF block: {detail}")]
    Exif { detail: String },
    #[error("the decoder refused the image data: {detail}")]
    Decode { detail: String },
    #[error("the image data is corrupt ({warnings} decoder warnings)")]
    CorruptData { warnings: u32 },
    #[error("colour space {what} cannot be analysed")]
    UnsupportedColor { what: &'static str },
}

impl ReadError {
    /// The stable code, as it appears in reports, exports and tests.
    pub fn code(&self) -> &'static str {
        match self {
            ReadError::Empty => "input.empty",
            ReadError::TooLarge { .. } => "limits.file_bytes",
            ReadError::NotJpeg { .. } => "input.not_jpeg",
            ReadError::Truncated { .. } => "jpeg.truncated",
            ReadError::BadMarker { .. } => "jpeg.bad_marker",
            ReadError::BadLength { .. } => "jpeg.bad_length",
            ReadError::BadSegment { .. } => "jpeg.bad_segment",
            ReadError::NoFrame => "jpeg.no_frame",
            ReadError::MultipleFrames => "jpeg.multiple_frames",
            ReadError::NoScan => "jpeg.no_scan",
            ReadError::Unsupported { .. } => "jpeg.unsupported",
            ReadError::Dimensions { .. } => "limits.pixels",
            ReadError::TooMany { .. } => "limits.segments",
            ReadError::Exif { .. } => "exif.malformed",
            ReadError::Decode { .. } => "decode.failed",
            ReadError::CorruptData { .. } => "decode.corrupt_data",
            ReadError::UnsupportedColor { .. } => "decode.unsupported_color",
        }
    }

    /// What the person who sent the file should read.
    pub fn message(&self) -> Message {
        let zh = match self {
            ReadError::Empty => "文件为空。".to_string(),
            ReadError::TooLarge { size, limit } => {
                format!("文件大小 {size} 字节，超过上限 {limit} 字节。")
            }
            ReadError::NotJpeg { kind } => {
                format!("不是 JPEG 文件（看起来是 {kind}），请上传相机拍摄的 JPG 原图。")
            }
            ReadError::Truncated { offset, .. } => {
                format!("文件不完整，在第 {offset} 字节处提前结束，请重新上传。")
            }
            ReadError::BadMarker { offset, .. } => format!("JPEG 结构损坏（第 {offset} 字节处标记无效）。"),
            ReadError::BadLength { offset, .. } => format!("JPEG 结构损坏（第 {offset} 字节处段长度无效）。"),
            ReadError::BadSegment { offset, .. } => format!("JPEG 结构损坏（第 {offset} 字节处的段内容无效）。"),
            ReadError::NoFrame => "JPEG 结构损坏：缺少帧头（SOF）。".to_string(),
            ReadError::MultipleFrames => "JPEG 结构异常：包含多个帧头。".to_string(),
            ReadError::NoScan => "JPEG 文件中没有图像数据。".to_string(),
            ReadError::Unsupported { .. } => "不支持的 JPEG 编码方式（无损、算术编码或分层编码）。".to_string(),
            ReadError::Dimensions { width, height, .. } => {
                format!("图像尺寸 {width}×{height} 超出允许范围。")
            }
            ReadError::TooMany { .. } => "JPEG 文件包含的段过多。".to_string(),
            ReadError::Exif { .. } => "EXIF 信息损坏，无法读取。".to_string(),
            ReadError::Decode { .. } => "图像数据无法解码。".to_string(),
            ReadError::CorruptData { .. } => "图像数据已损坏。".to_string(),
            ReadError::UnsupportedColor { .. } => "不支持的颜色模式（如 CMYK），请上传 RGB 彩色照片。".to_string(),
        };
        Message { zh, en: self.to_string() }
    }
}
