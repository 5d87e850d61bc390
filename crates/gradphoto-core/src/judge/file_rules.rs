//! The rules the file itself decides: format, size, density, colour depth, quality, seal, provenance, mirroring.
//! Each turns a measurement into a finding; none reads pixels.

use serde_json::{Value, json};

use super::devices::{self, DeviceKind};
use super::profile::Rules;
use super::report::{Finding, Severity};
use super::rule::Rule;
use crate::decode::container::FrameKind;
use crate::decode::pixels::orientation_mirrors;
use crate::measure::FileMeasurements;
use crate::message::Message;
use crate::seal::SealState;

/// What a judge needs to know beyond the file.
#[derive(Debug, Clone, Copy, Default)]
pub struct JudgeContext {
    /// Today, as days since 1970-01-01, for `provenance.recency`; without it recency is not judged.
    pub today: Option<i64>,
}

fn finding(rule: Rule, severity: Severity, measured: Value, limit: Value, message: Message) -> Finding {
    Finding { rule, severity, measured, limit, message }
}

fn pick(ok: bool, bad: Severity) -> Severity {
    if ok { Severity::Pass } else { bad }
}

/// Human-readable size: "35.2 KB", "1.40 MB" (binary units, as the profiles read the documents).
fn size_text(bytes: u64) -> String {
    let b = bytes as f64;
    if bytes >= 1024 * 1024 { format!("{:.2} MB", b / 1048576.0) } else { format!("{:.1} KB", b / 1024.0) }
}

/// `format.embedded_id` once the seal has been opened with the configured keys. The identity itself is never put
/// in the report: it is the student's personal data.
pub fn embedded_id_verified(
    opened: &Result<(crate::seal::Identity, String), crate::seal::SealError>,
    rule: &super::profile::EmbeddedIdRule,
) -> Finding {
    use crate::seal::SealError;
    let (severity, measured, message) = match opened {
        Ok((_, key)) => (
            Severity::Pass,
            "verified",
            Message::new(
                format!("注释段中的加密学籍信息已用密钥 {key} 解密核对。"),
                format!("The sealed identity was decrypted and checked with key {key}."),
            ),
        ),
        Err(SealError::Absent) => (
            rule.absent,
            "absent",
            Message::new("注释段中没有加密的学籍信息。", "No encrypted identity in the comment segment."),
        ),
        Err(SealError::Tampered) => (
            Severity::Reject,
            "tampered",
            Message::new(
                "加密学籍信息与文件不符：封存后图像或元数据被改动过。",
                "The sealed identity does not match the file: pixels or metadata were changed after sealing.",
            ),
        ),
        Err(SealError::UnknownKey(key)) => (
            rule.unverified,
            "unknown_key",
            Message::new(
                format!("加密学籍信息使用了未配置的密钥 {key}，无法核对。"),
                format!("The seal uses key {key}, which is not configured; it could not be checked."),
            ),
        ),
        Err(e) => (
            rule.malformed,
            "malformed",
            Message::new("注释段中的加密信息格式错误。", format!("The sealed identity is malformed: {e}.")),
        ),
    };
    finding(Rule::FormatEmbeddedId, severity, json!(measured), json!("verified"), message)
}

/// Evaluates every file rule that `rules` names, in the order of STANDARD.md.
pub fn judge(m: &FileMeasurements, rules: &Rules, ctx: &JudgeContext) -> Vec<Finding> {
    let mut out = Vec::new();
    if let Some(r) = &rules.jpeg {
        let process = match m.process {
            FrameKind::Baseline => ("基线", "baseline"),
            FrameKind::ExtendedSequential => ("扩展顺序", "extended sequential"),
            FrameKind::Progressive => ("渐进式", "progressive"),
            FrameKind::Lossless => ("无损", "lossless"),
        };
        let ext_ok = m.extension.as_ref().is_none_or(|e| r.extensions.contains(e));
        let wanted = r.extensions.iter().map(|e| format!(".{e}")).collect::<Vec<_>>().join(" / ");
        let message = match &m.extension {
            Some(e) if !ext_ok => Message::new(
                format!("文件内容是 JPEG，但扩展名为 .{e}，应为 {wanted}。"),
                format!("The content is JPEG but the extension is .{e}; it should be {wanted}."),
            ),
            _ => Message::new(
                format!("是有效的 JPEG 文件（{}编码）。", process.0),
                format!("A valid JPEG file ({} coding).", process.1),
            ),
        };
        out.push(finding(
            Rule::FormatJpeg,
            pick(ext_ok, r.wrong_extension),
            json!({"extension": m.extension, "process": m.process}),
            json!({"extensions": r.extensions}),
            message,
        ));
    }
    if let Some(r) = &rules.file_size {
        let ok = (r.min..=r.max).contains(&m.file_bytes);
        let (lo, hi, got) = (size_text(r.min), size_text(r.max), size_text(m.file_bytes));
        out.push(finding(
            Rule::FormatFileSize,
            pick(ok, r.outside),
            json!(m.file_bytes),
            json!([r.min, r.max]),
            if ok {
                Message::new(
                    format!("文件大小 {got}，在 {lo}–{hi} 之间。"),
                    format!("File size {got}, within {lo}–{hi}."),
                )
            } else {
                Message::new(
                    format!("文件大小 {got}，应在 {lo}–{hi} 之间。"),
                    format!("File size {got}; it must be {lo}–{hi}."),
                )
            },
        ));
    }
    if let Some(r) = &rules.dimensions {
        let (w, h) = (m.upright_width, m.upright_height);
        let (rw, rh) = (r.width, r.height);
        // Smaller than the size in either direction cannot be repaired: normalisation never upscales.
        let big_enough = w >= rw && h >= rh;
        let severity = if r.exact {
            if w == rw && h == rh {
                Severity::Pass
            } else if big_enough {
                r.other
            } else {
                r.too_small
            }
        } else if !big_enough {
            r.too_small
        } else if r.portrait && w > h {
            r.other
        } else {
            Severity::Pass
        };
        let how = if r.exact { ("须为", "must be exactly") } else { ("至少", "must be at least") };
        out.push(finding(
            Rule::FormatDimensions,
            severity,
            json!([w, h]),
            json!([rw, rh]),
            if severity == Severity::Pass {
                Message::new(format!("尺寸 {w}×{h} 像素，符合要求。"), format!("{w}×{h} pixels, as required."))
            } else if !big_enough {
                Message::new(
                    format!("尺寸 {w}×{h} 像素，{} {rw}×{rh}（宽×高），不能放大补足。", how.0),
                    format!("{w}×{h} pixels; it {} {rw}×{rh} (w×h) and cannot be upscaled.", how.1),
                )
            } else if r.portrait && w > h {
                Message::new(
                    format!("尺寸 {w}×{h} 像素，是横幅照片；将按竖幅 3:4 裁剪。"),
                    format!("{w}×{h} pixels, landscape; it will be cropped to portrait 3:4."),
                )
            } else {
                Message::new(
                    format!("尺寸 {w}×{h} 像素，须为 {rw}×{rh}；规范化时将裁剪缩放。"),
                    format!("{w}×{h} pixels; it must be {rw}×{rh}. Normalisation will crop and scale it."),
                )
            },
        ));
    }
    if let Some(r) = &rules.density {
        let dpi = r.dpi;
        let (severity, measured, message) = match m.density {
            Some(d) => {
                let ok = (d.x_dpi - dpi).abs() <= r.tolerance && (d.y_dpi - dpi).abs() <= r.tolerance;
                let (x, y) = (d.x_dpi.round(), d.y_dpi.round());
                let msg = if ok {
                    Message::new(format!("分辨率 {x}×{y} dpi。"), format!("Density {x}×{y} dpi."))
                } else {
                    Message::new(
                        format!("分辨率 {x}×{y} dpi，应为 {dpi} dpi。"),
                        format!("Density {x}×{y} dpi; it should be {dpi} dpi."),
                    )
                };
                (pick(ok, r.severity), json!([d.x_dpi, d.y_dpi]), msg)
            }
            None => (
                r.severity,
                Value::Null,
                Message::new(
                    format!("文件未记录分辨率，应为 {dpi} dpi。"),
                    format!("The file records no density; it should be {dpi} dpi."),
                ),
            ),
        };
        out.push(finding(Rule::FormatDensity, severity, measured, json!(dpi), message));
    }
    if let Some(r) = &rules.color_depth {
        let bits = u32::from(m.components) * u32::from(m.precision);
        let ok = m.components == 3 && m.precision == 8 && matches!(m.color_space, "ycbcr" | "rgb");
        let message = if ok {
            Message::new("24 位真彩色。", "24-bit true colour.")
        } else if m.components == 1 {
            Message::new("黑白（灰度）图像，须为 24 位彩色。", "A greyscale image; it must be 24-bit colour.")
        } else if m.components == 4 {
            Message::new(
                "CMYK 印刷色彩模式，须为 24 位 RGB 彩色。",
                "A CMYK (print) image; it must be 24-bit RGB colour.",
            )
        } else {
            Message::new(
                format!("每通道 {} 位，须为每通道 8 位的 24 位彩色。", m.precision),
                format!("{} bits per channel; it must be 24-bit colour, 8 bits per channel.", m.precision),
            )
        };
        out.push(finding(Rule::FormatColorDepth, pick(ok, r.severity), json!(bits), json!(24), message));
    }
    if let Some(r) = &rules.quality
        && let Some(q) = m.quality
    {
        let ok = q.quality >= r.min;
        let how = if q.exact {
            ("", String::new())
        } else {
            ("（估计值）", format!(" (nearest IJG equivalent, tables {:.0}% apart)", q.deviation * 100.0))
        };
        out.push(finding(
            Rule::FormatQuality,
            pick(ok, r.severity),
            json!(q.quality),
            json!(r.min),
            if ok {
                Message::new(
                    format!("压缩品质 {}{}，不低于 {}。", q.quality, how.0, r.min),
                    format!("Quality {}{}, not below {}.", q.quality, how.1, r.min),
                )
            } else {
                Message::new(
                    format!("压缩品质 {}{}，低于 {}。", q.quality, how.0, r.min),
                    format!("Quality {}{}, below {}.", q.quality, how.1, r.min),
                )
            },
        ));
    }
    if let Some(r) = &rules.embedded_id {
        let (severity, measured, message) = match &m.seal {
            SealState::Absent => (
                r.absent,
                json!("absent"),
                Message::new("注释段中没有加密的学籍信息。", "No encrypted identity in the comment segment."),
            ),
            SealState::Malformed { reason } => (
                r.malformed,
                json!("malformed"),
                Message::new(
                    "注释段中的加密信息格式错误。",
                    format!("The sealed identity in the comment segment is malformed: {reason}."),
                ),
            ),
            SealState::Present { key_id, .. } => (
                r.unverified,
                json!("present"),
                Message::new(
                    format!("注释段含加密学籍信息（密钥 {key_id}），未配置密钥，未解密核对。"),
                    format!("A sealed identity is present (key {key_id}); no key configured, so it was not verified."),
                ),
            ),
        };
        out.push(finding(Rule::FormatEmbeddedId, severity, measured, json!("present"), message));
    }
    if let Some(r) = &rules.camera {
        let meta = &m.metadata;
        let kind = devices::classify(meta.make.as_deref(), meta.model.as_deref());
        let device = [meta.make.as_deref(), meta.model.as_deref()].into_iter().flatten().collect::<Vec<_>>().join(" ");
        let (severity, message) = match (meta.make.is_some() || meta.model.is_some(), kind) {
            (false, _) => (
                r.missing,
                Message::new(
                    "文件中没有拍摄设备信息（EXIF），无法确认为相馆数码相机拍摄的原图。",
                    "The file names no camera (no EXIF make or model): it cannot be confirmed as a studio original.",
                ),
            ),
            (true, DeviceKind::Camera) => (
                Severity::Pass,
                Message::new(format!("由数码相机拍摄：{device}。"), format!("Taken with a camera: {device}.")),
            ),
            (true, DeviceKind::Phone) => (
                r.phone,
                Message::new(
                    format!("由手机拍摄（{device}），须为相馆数码相机拍摄。"),
                    format!("Taken with a phone ({device}); it must be taken by a studio with a digital camera."),
                ),
            ),
            (true, DeviceKind::Unknown) => (
                r.unknown,
                Message::new(
                    format!("拍摄设备 {device} 未能识别为相机或手机，需人工确认。"),
                    format!("Device {device} is neither a known camera nor a known phone; a person should check."),
                ),
            ),
        };
        out.push(finding(
            Rule::ProvenanceCamera,
            severity,
            json!({"make": meta.make, "model": meta.model, "kind": kind}),
            json!("camera"),
            message,
        ));
    }
    if let Some(r) = &rules.software {
        let meta = &m.metadata;
        let named = [meta.software.as_deref(), meta.creator_tool.as_deref()]
            .into_iter()
            .flatten()
            .find_map(|s| devices::editing_software(s).map(|_| s));
        let (severity, message) = match (named, m.photoshop_irb) {
            (Some(program), _) => (
                r.severity,
                Message::new(
                    format!("文件经过编辑软件处理：{program}，需人工确认未修图、未美颜。"),
                    format!("The file was processed by {program}; a person should check it is not retouched."),
                ),
            ),
            (None, true) => (
                r.severity,
                Message::new(
                    "文件含 Photoshop 资源块，曾经 Adobe 软件保存，需人工确认未修图。",
                    "The file carries a Photoshop resource block (saved by Adobe software); a person should check.",
                ),
            ),
            (None, false) => (
                Severity::Pass,
                Message::new("元数据中未发现编辑或美颜软件。", "No editing or beauty software named in the metadata."),
            ),
        };
        out.push(finding(
            Rule::ProvenanceSoftware,
            severity,
            json!({"software": meta.software, "creator_tool": meta.creator_tool, "photoshop_irb": m.photoshop_irb}),
            Value::Null,
            message,
        ));
    }
    if let Some(r) = &rules.recency
        && let Some(today) = ctx.today
    {
        let age = m.captured_days.map(|d| today - d);
        let max = i64::from(r.max_age_days);
        let date = m.metadata.captured.as_deref().and_then(|c| c.get(..10)).unwrap_or("").replace(':', "-");
        let (severity, message) = match age {
            None => (
                Severity::Pass,
                Message::new("文件未记录拍摄日期，无从判断。", "The file records no capture date; nothing to judge."),
            ),
            Some(a) if a < -1 => (
                r.severity,
                Message::new(
                    format!("拍摄日期 {date} 晚于今天，相机时钟可能有误。"),
                    format!("Capture date {date} is in the future; the camera clock may be wrong."),
                ),
            ),
            Some(a) if a > max => (
                r.severity,
                Message::new(
                    format!("拍摄于 {date}，距今 {a} 天，超过 {max} 天，须为近期照片。"),
                    format!("Taken on {date}, {a} days ago, more than {max}; the photo must be recent."),
                ),
            ),
            Some(a) => (
                Severity::Pass,
                Message::new(format!("拍摄于 {date}（{a} 天前）。"), format!("Taken on {date} ({a} days ago).")),
            ),
        };
        out.push(finding(Rule::ProvenanceRecency, severity, json!(age), json!(max), message));
    }
    if let Some(r) = &rules.no_mirror {
        let o = m.metadata.orientation.unwrap_or(1);
        let mirrored = orientation_mirrors(o);
        out.push(finding(
            Rule::AuthenticityNoMirror,
            pick(!mirrored, r.severity),
            json!(o),
            json!([1, 3, 6, 8]),
            if mirrored {
                Message::new(
                    format!("EXIF 方向标记为 {o}，图像被镜像显示，禁止镜像。"),
                    format!("EXIF orientation {o} mirrors the image; mirrored images are not allowed."),
                )
            } else {
                Message::new("图像未被镜像。", "The image is not mirrored.")
            },
        ));
    }
    out
}
