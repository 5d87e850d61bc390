//! The rules about the person, judged on [`PersonMeasurements`]. Every number a message gives is in pixels of the
//! 480 × 640 rendering (or degrees, or CIEDE2000), so a student reads "your eyes sit at 186 px, they must be
//! 200–300".

use serde_json::{Value, json};

use super::profile::{Bound, Rules};
use super::report::{Finding, Severity};
use super::rule::Rule;
use crate::measure::color::{delta_e2000, lab};
use crate::measure::person::PersonMeasurements;
use crate::message::Message;

fn finding(rule: Rule, severity: Severity, measured: Value, limit: Value, message: Message) -> Finding {
    Finding { rule, severity, measured, limit, message }
}

fn limit_json(b: &Bound) -> Value {
    json!([b.min, b.max])
}

fn range_text(b: &Bound, unit: &str) -> (String, String) {
    match (b.min, b.max) {
        (Some(lo), Some(hi)) => (format!("{lo}–{hi}{unit}"), format!("{lo}–{hi}{unit}")),
        (Some(lo), None) => (format!("不小于 {lo}{unit}"), format!("at least {lo}{unit}")),
        (None, Some(hi)) => (format!("不大于 {hi}{unit}"), format!("at most {hi}{unit}")),
        (None, None) => (String::new(), String::new()),
    }
}

/// A measure against a bound, with what to say either way.
fn judged(rule: Rule, b: &Bound, v: f64, measured: Value, pass: Message, fail: Message) -> Finding {
    let ok = b.holds(v);
    finding(rule, if ok { Severity::Pass } else { b.severity }, measured, limit_json(b), if ok { pass } else { fail })
}

/// A measured number against a bound, with the sentence both ways.
fn bounded(rule: Rule, b: &Bound, v: f64, measured: Value, what: (&str, &str), unit: &str) -> Finding {
    let (rz, re) = range_text(b, unit);
    let shown = if v.abs() >= 10.0 { format!("{v:.0}") } else { format!("{v:.2}") };
    let pass = Message::new(
        format!("{} {shown}{unit}，符合 {rz}。", what.0),
        format!("{} {shown}{unit}, within {re}.", what.1),
    );
    let fail = Message::new(
        format!("{} {shown}{unit}，应为 {rz}。", what.0),
        format!("{} {shown}{unit}; it must be {re}.", what.1),
    );
    judged(rule, b, v, measured, pass, fail)
}

fn no_face_message() -> Message {
    Message::new("未能找到人脸，无法测量。", "No face was found, so this could not be measured.")
}

/// Evaluates the person rules of a profile. Without a face, each geometry rule says so rather than passing.
pub fn judge(p: &PersonMeasurements, rules: &Rules) -> Vec<Finding> {
    let mut out = Vec::new();
    if let Some(r) = &rules.face_count {
        let n = p.faces;
        let (ok, message) = match n {
            1 => (true, Message::new("照片中有一个人。", "One person in the photo.")),
            0 => (false, Message::new("照片中未找到人脸。", "No face found in the photo.")),
            _ => (
                false,
                Message::new(
                    format!("照片中有 {n} 张人脸，只能有本人一人。"),
                    format!("{n} faces in the photo; only the graduate may appear."),
                ),
            ),
        };
        out.push(finding(Rule::FaceCount, if ok { Severity::Pass } else { r.severity }, json!(n), json!(1), message));
    }
    let unmeasured =
        |rule: Rule, severity: Severity| finding(rule, severity, Value::Null, Value::Null, no_face_message());
    if let Some(r) = &rules.croppable {
        out.push(match (&p.crop, &p.no_crop) {
            (Some(c), _) => finding(
                Rule::GeometryCroppable,
                Severity::Pass,
                json!({"left": c.left, "top": c.top, "width": c.width}),
                json!([480, 640]),
                Message::new(
                    "可以从原图裁剪出符合标准构图的 480×640 注册照。",
                    "A 480×640 registered photo with the standard's framing can be cropped from this original.",
                ),
            ),
            (None, Some(e)) => {
                let [top, bottom, left, right] = e.missing.map(|v| v.round());
                let (zh, en) = if e.needs_upscale {
                    (
                        "原图像素不足：人脸需要放大才能达到标准大小，请使用更高分辨率的原图。".to_string(),
                        "Too few pixels: the face would have to be enlarged; use a higher-resolution original.".to_string(),
                    )
                } else {
                    (
                        format!("构图过紧，无法裁剪：上方缺 {top} 像素，下方缺 {bottom}，左侧缺 {left}，右侧缺 {right}（按 480×640 计）。头部上方和两侧须留出背景。"),
                        format!("Framed too tight to crop: missing {top} px above, {bottom} below, {left} left, {right} right (in 480×640 terms). Leave background above and beside the head."),
                    )
                };
                finding(Rule::GeometryCroppable, r.severity, json!({"missing": e.missing, "needs_upscale": e.needs_upscale}), json!([480, 640]), Message::new(zh, en))
            }
            (None, None) => unmeasured(Rule::GeometryCroppable, r.severity),
        });
    }
    let f = p.framing.as_ref();
    if let Some(r) = &rules.centered {
        out.push(match f {
            Some(f) => {
                let off = f64::from(f.face_center_x - 240.0);
                let mut x = bounded(
                    Rule::GeometryCentered,
                    r,
                    off.abs(),
                    json!(f.face_center_x),
                    ("脸部中心偏离中线", "Face centre off the middle by"),
                    " px",
                );
                x.limit = json!([240.0 - r.max.unwrap_or(0.0), 240.0 + r.max.unwrap_or(0.0)]);
                x
            }
            None => unmeasured(Rule::GeometryCentered, r.severity),
        });
    }
    if let Some(r) = &rules.hair_top {
        out.push(match f {
            Some(f) => bounded(
                Rule::GeometryHairTop,
                r,
                f64::from(f.hair_top),
                json!(f.hair_top),
                ("头顶距上边", "Top of hair from the top edge:"),
                " px",
            ),
            None => unmeasured(Rule::GeometryHairTop, r.severity),
        });
    }
    if let Some(r) = &rules.eye_line {
        out.push(match f {
            Some(f) => {
                let [a, b] = f.eye_line.map(f64::from);
                let worst = if r.holds(a) { b } else { a };
                let mut x = bounded(
                    Rule::GeometryEyeLine,
                    r,
                    worst,
                    json!(f.eye_line),
                    ("眼睛距上边", "Eyes from the top edge:"),
                    " px",
                );
                if r.holds(a) && r.holds(b) {
                    x.message = Message::new(
                        format!("双眼距上边 {a:.0} 和 {b:.0} 像素，符合 200–300。"),
                        format!("Eyes at {a:.0} and {b:.0} px from the top edge, within 200–300."),
                    );
                }
                x
            }
            None => unmeasured(Rule::GeometryEyeLine, r.severity),
        });
    }
    if let Some(r) = &rules.face_width {
        out.push(match f {
            Some(f) => bounded(
                Rule::GeometryFaceWidth,
                r,
                f64::from(f.face_width),
                json!(f.face_width),
                ("脸部宽度", "Face width"),
                " px",
            ),
            None => unmeasured(Rule::GeometryFaceWidth, r.severity),
        });
    }
    for (bound, rule, what, get) in [
        (
            &rules.roll,
            Rule::GeometryRoll,
            ("头部倾斜", "Head tilt"),
            (|p: &crate::measure::person::Pose| p.roll) as fn(&_) -> f32,
        ),
        (&rules.yaw, Rule::GeometryYaw, ("头部左右转动", "Head turned sideways by"), |p| p.yaw),
        (&rules.pitch, Rule::GeometryPitch, ("头部俯仰", "Head tipped up or down by"), |p| p.pitch),
    ] {
        if let Some(r) = bound {
            out.push(match &p.pose {
                Some(pose) => {
                    let v = get(pose);
                    bounded(rule, r, f64::from(v.abs()), json!(v), what, "°")
                }
                None => unmeasured(rule, r.severity),
            });
        }
    }
    if let Some(r) = &rules.margins {
        out.push(match p.edge_contact {
            Some([l, rr]) => {
                let worst = f64::from(l.max(rr));
                judged(
                    Rule::GeometryMargins,
                    r,
                    worst,
                    json!([l, rr]),
                    Message::new("头部两侧留有背景。", "There is background on both sides of the head."),
                    Message::new(
                        "人像触及左右边缘，两侧须留出背景。",
                        "The person touches the side edges; leave background on both sides.",
                    ),
                )
            }
            None => unmeasured(Rule::GeometryMargins, r.severity),
        });
    }
    let bg = p.background.as_ref();
    if let Some(r) = &rules.background_color {
        out.push(match bg {
            Some(bg) => {
                let nearest = r
                    .allowed
                    .iter()
                    .map(|c| (*c, delta_e2000(bg.mean_lab, lab(c.rgb()))))
                    .min_by(|a, b| a.1.total_cmp(&b.1));
                let allowed_zh = r.allowed.iter().map(|c| c.name().0).collect::<Vec<_>>().join("、");
                let allowed_en = r.allowed.iter().map(|c| c.name().1).collect::<Vec<_>>().join(", ");
                let [cr, cg, cb] = bg.mean_rgb.map(|v| v.round());
                match nearest {
                    Some((c, d)) => {
                        let ok = f64::from(d) <= r.max_delta_e;
                        finding(
                            Rule::BackgroundColor,
                            if ok { Severity::Pass } else { r.severity },
                            json!({"rgb": [cr, cg, cb], "nearest": c, "delta_e": d}),
                            json!({"allowed": r.allowed, "max_delta_e": r.max_delta_e}),
                            if ok {
                                Message::new(format!("背景颜色 RGB({cr},{cg},{cb})，接近{}（色差 {d:.1}）。", c.name().0), format!("Background RGB({cr},{cg},{cb}), close to {} (ΔE {d:.1}).", c.name().1))
                            } else {
                                Message::new(format!("背景颜色 RGB({cr},{cg},{cb})，与{}相差 {d:.1}（上限 {}），须为{allowed_zh}。", c.name().0, r.max_delta_e), format!("Background RGB({cr},{cg},{cb}) is ΔE {d:.1} from {} (limit {}); it must be {allowed_en}.", c.name().1, r.max_delta_e))
                            },
                        )
                    }
                    None => unmeasured(Rule::BackgroundColor, r.severity),
                }
            }
            None => finding(Rule::BackgroundColor, r.severity, Value::Null, Value::Null, Message::new("未能找到足够的背景区域来测量颜色。", "Too little background was found to measure its colour.")),
        });
    }
    if let Some(r) = &rules.background_uniform {
        out.push(match bg {
            Some(bg) => {
                let worst = f64::from(bg.spread.max(bg.gradient));
                judged(
                    Rule::BackgroundUniform,
                    r,
                    worst,
                    json!({"spread": bg.spread, "gradient": bg.gradient}),
                    Message::new(
                        format!("背景均匀（色差离散 {:.1}，渐变 {:.1}）。", bg.spread, bg.gradient),
                        format!("Uniform background (spread ΔE {:.1}, gradient ΔE {:.1}).", bg.spread, bg.gradient),
                    ),
                    Message::new(
                        format!("背景不均匀或有渐变（色差离散 {:.1}，渐变 {:.1}）。", bg.spread, bg.gradient),
                        format!(
                            "The background is uneven or graded (spread ΔE {:.1}, gradient ΔE {:.1}).",
                            bg.spread, bg.gradient
                        ),
                    ),
                )
            }
            None => unmeasured(Rule::BackgroundUniform, r.severity),
        });
    }
    if let Some(r) = &rules.background_clean {
        out.push(match bg {
            Some(bg) => {
                let pct = f64::from(bg.foreign) * 100.0;
                judged(
                    Rule::BackgroundClean,
                    r,
                    f64::from(bg.foreign),
                    json!(bg.foreign),
                    Message::new("背景中没有阴影或其他物体。", "No shadows or objects in the background."),
                    Message::new(
                        format!("背景中有 {pct:.1}% 的区域颜色异常（阴影、物体或他人）。"),
                        format!("{pct:.1}% of the background differs (shadows, objects or other people)."),
                    ),
                )
            }
            None => unmeasured(Rule::BackgroundClean, r.severity),
        });
    }
    let ex = p.expression.as_ref();
    if let Some(r) = &rules.eyes_open {
        out.push(match ex {
            Some(e) => {
                let worst = f64::from(e.eye_open[0].min(e.eye_open[1]));
                judged(
                    Rule::ExpressionEyesOpen,
                    r,
                    worst,
                    json!(e.eye_open),
                    Message::new("双眼自然睁开。", "Both eyes open."),
                    Message::new(
                        "眼睛未完全睁开，请双眼自然睁开平视。",
                        "An eye is not fully open; keep both eyes naturally open.",
                    ),
                )
            }
            None => unmeasured(Rule::ExpressionEyesOpen, r.severity),
        });
    }
    if let Some(r) = &rules.mouth_closed {
        out.push(match ex {
            Some(e) => judged(
                Rule::ExpressionMouthClosed,
                r,
                f64::from(e.mouth_gap),
                json!(e.mouth_gap),
                Message::new("嘴唇自然闭合。", "Lips closed."),
                Message::new(
                    "嘴唇张开或露出牙齿，请自然闭合嘴唇。",
                    "The mouth is open or shows teeth; close the lips naturally.",
                ),
            ),
            None => unmeasured(Rule::ExpressionMouthClosed, r.severity),
        });
    }
    if let Some(r) = &rules.neutral {
        out.push(match ex {
            Some(e) => {
                let over = [
                    (f64::from(e.corner_lift), r.max_corner_lift),
                    (f64::from(e.mouth_width), r.max_mouth_width),
                    (f64::from(e.brow_raise), r.max_brow_raise),
                ]
                .map(|(v, max)| v > max);
                let ok = !over.iter().any(|&o| o);
                let (lift, width, brow) = (e.corner_lift, e.mouth_width, e.brow_raise);
                let what = || {
                    let mut zh = Vec::new();
                    let mut en = Vec::new();
                    if over[0] || over[1] {
                        zh.push("嘴角上扬（微笑）");
                        en.push("the mouth corners lifted (a smile)");
                    }
                    if over[2] {
                        zh.push("眉毛上扬");
                        en.push("the eyebrows raised");
                    }
                    (zh.join("、"), en.join(" and "))
                };
                finding(
                    Rule::ExpressionNeutral,
                    if ok { Severity::Pass } else { r.severity },
                    json!({"corner_lift": lift, "mouth_width": width, "brow_raise": brow}),
                    json!({"max_corner_lift": r.max_corner_lift, "max_mouth_width": r.max_mouth_width, "max_brow_raise": r.max_brow_raise}),
                    if ok {
                        Message::new(
                            format!("表情自然（嘴角 {lift:.2}，嘴宽 {width:.2}，眉高 {brow:.2}）。"),
                            format!("Natural expression (corner lift {lift:.2}, mouth width {width:.2}, brow height {brow:.2})."),
                        )
                    } else {
                        let (zh, en) = what();
                        Message::new(
                            format!("表情可能不自然：{zh}（嘴角 {lift:.2}，嘴宽 {width:.2}，眉高 {brow:.2}），请保持自然表情。"),
                            format!("The expression may not be natural: {en} (corner lift {lift:.2}, mouth width {width:.2}, brow height {brow:.2}); keep a natural face."),
                        )
                    },
                )
            }
            None => unmeasured(Rule::ExpressionNeutral, r.severity),
        });
    }
    let occ = p.occlusion.as_ref();
    if let Some(r) = &rules.eyebrows {
        out.push(match occ {
            Some(o) => {
                let [a, b] = o.brows_covered;
                judged(
                    Rule::OcclusionEyebrows,
                    r,
                    f64::from(a.max(b)),
                    json!({"covered": o.brows_covered, "separation": o.references.separation}),
                    Message::new(
                        format!("眉毛露出（眉上方被遮挡的比例 {:.0}%）。", a.max(b) * 100.0),
                        format!("Eyebrows visible ({:.0}% of the forehead just above them is covered).", a.max(b) * 100.0),
                    ),
                    Message::new(
                        format!("眉毛可能被头发遮挡（眉上方 {:.0}% 不是皮肤），请露出眉毛。", a.max(b) * 100.0),
                        format!("Hair may cover the eyebrows ({:.0}% just above them is not skin); keep the eyebrows clear.", a.max(b) * 100.0),
                    ),
                )
            }
            None => unmeasured(Rule::OcclusionEyebrows, r.severity),
        });
    }
    if let Some(r) = &rules.eyes_visible {
        out.push(match occ {
            Some(o) => {
                let [a, b] = o.eye_contrast;
                bounded(
                    Rule::OcclusionEyes,
                    r,
                    f64::from(a.min(b)),
                    json!(o.eye_contrast),
                    (
                        "眼部明暗对比（虹膜与眼白，相对肤色亮度）",
                        "Contrast inside the eye (iris against sclera, over the skin's lightness)",
                    ),
                    "",
                )
            }
            None => unmeasured(Rule::OcclusionEyes, r.severity),
        });
    }
    if let Some(r) = &rules.ears {
        out.push(match occ {
            Some(o) => {
                let separable = o.references.hair.is_some()
                    && o.references.separation >= crate::measure::occlusion::MIN_SEPARATION;
                let decided = separable && o.ears_skin.iter().all(Option::is_some);
                let measured =
                    json!({"skin": o.ears_skin, "separation": o.references.separation, "decided": decided});
                let limit = json!({"min": r.min});
                match o.ears_skin {
                    [Some(a), Some(b)] if separable => {
                        let worst = a.min(b);
                        let ok = f64::from(worst) >= r.min;
                        finding(
                            Rule::OcclusionEars,
                            if ok { Severity::Pass } else { r.severity },
                            measured,
                            limit,
                            if ok {
                                Message::new(
                                    format!("双耳露出（耳部皮肤比例 {:.0}% 和 {:.0}%）。", a * 100.0, b * 100.0),
                                    format!("Both ears visible ({:.0}% and {:.0}% skin at ear height).", a * 100.0, b * 100.0),
                                )
                            } else {
                                Message::new(
                                    format!("耳朵可能被头发遮挡（耳部皮肤比例 {:.0}% 和 {:.0}%），请露出双耳。", a * 100.0, b * 100.0),
                                    format!("Hair may cover an ear ({:.0}% and {:.0}% skin at ear height); keep both ears visible.", a * 100.0, b * 100.0),
                                )
                            },
                        )
                    }
                    // Hair the colour of skin, or no person beside the face: the pixels cannot say; a person looks.
                    _ => finding(
                        Rule::OcclusionEars,
                        r.undecided,
                        measured,
                        limit,
                        Message::new(
                            "无法可靠判断双耳是否露出（发色与肤色相近或耳部区域不足），由审核人员查看。",
                            "Whether both ears show cannot be decided reliably (hair close to skin colour, or too little beside the face); a reviewer looks.",
                        ),
                    ),
                }
            }
            None => unmeasured(Rule::OcclusionEars, r.severity),
        });
    }
    if let Some(r) = &rules.not_rephotographed {
        out.push(match &p.periodicity {
            Some(q) => judged(
                Rule::AuthenticityNotRephotographed,
                r,
                f64::from(q.score),
                json!({"score": q.score, "patches": q.patches}),
                Message::new(
                    format!("未发现屏幕或印刷网纹（周期峰值 {:.1}）。", q.score),
                    format!("No screen or print pattern (periodic peak {:.1}).", q.score),
                ),
                Message::new(
                    format!("画面有规则网纹（周期峰值 {:.1}），可能是翻拍屏幕或打印件，由审核人员查看。", q.score),
                    format!("A regular fine pattern runs over the picture (periodic peak {:.1}): possibly a photo of a screen or a print; a reviewer looks.", q.score),
                ),
            ),
            // A face but no patch to read (a picture under 64 px a side): a person looks.
            None if p.occlusion.is_some() => finding(
                Rule::AuthenticityNotRephotographed,
                Severity::Review,
                Value::Null,
                Value::Null,
                Message::new(
                    "画面太小，未能检测屏幕或印刷网纹，由审核人员查看。",
                    "Too small to look for a screen or print pattern; a reviewer looks.",
                ),
            ),
            None => unmeasured(Rule::AuthenticityNotRephotographed, r.severity),
        });
    }
    let light = p.light.as_ref();
    for (bound, rule, what, get) in [
        (
            &rules.exposure,
            Rule::LightingExposure,
            ("面部亮度 L*", "Face lightness L*"),
            (|l: &crate::measure::person::FaceLight| l.lightness) as fn(&_) -> f32,
        ),
        (&rules.highlights, Rule::LightingHighlights, ("面部过曝比例", "Share of clipped face pixels"), |l| {
            l.clipped
        }),
        (
            &rules.balance,
            Rule::LightingBalance,
            ("左右脸亮度差 ΔL*", "Left–right face lightness difference ΔL*"),
            |l| l.balance.abs(),
        ),
    ] {
        if let Some(r) = bound {
            out.push(match light {
                Some(l) => bounded(rule, r, f64::from(get(l)), json!(get(l)), what, ""),
                None => unmeasured(rule, r.severity),
            });
        }
    }
    if let Some(r) = &rules.color_cast {
        let cast = p.background.as_ref().zip(rules.background_color.as_ref()).and_then(|(bg, bc)| {
            bc.allowed
                .iter()
                .map(|c| {
                    let reference = lab(c.rgb());
                    (bg.mean_lab[1] - reference[1]).hypot(bg.mean_lab[2] - reference[2])
                })
                .reduce(f32::min)
        });
        out.push(match cast {
            Some(v) => bounded(
                Rule::LightingColorCast,
                r,
                f64::from(v),
                json!(v),
                ("背景色偏（a*b* 距离）", "Background colour cast (a*b* distance)"),
                "",
            ),
            None => unmeasured(Rule::LightingColorCast, r.severity),
        });
    }
    if let Some(r) = &rules.red_eye {
        out.push(match &p.eyes {
            Some(e) => judged(
                Rule::LightingRedEye,
                r,
                f64::from(e.red),
                json!(e.red),
                Message::new("没有红眼。", "No red eye."),
                Message::new("瞳孔呈红色（红眼），请重新拍摄。", "The pupils are red (red eye); retake the photo."),
            ),
            None => unmeasured(Rule::LightingRedEye, r.severity),
        });
    }
    if let Some(r) = &rules.glasses {
        out.push(match &p.eyes {
            Some(e) => judged(
                Rule::AccessoryGlasses,
                r,
                f64::from(e.glare),
                json!(e.glare),
                Message::new(
                    "眼部没有反光；是否佩戴有色眼镜由审核人员查看。",
                    "No glare around the eyes; tinted lenses are left to the reviewer.",
                ),
                Message::new(
                    "眼部有强烈反光，可能是眼镜反光，请审核。",
                    "Strong glare around the eyes, probably reflections on spectacles; a person should check.",
                ),
            ),
            None => unmeasured(Rule::AccessoryGlasses, r.severity),
        });
    }
    if let Some(r) = &rules.clothing {
        out.push(match &p.clothing {
            Some(c) => {
                let blue = r.no_blue && c.chroma > 15.0 && (200.0..300.0).contains(&c.hue);
                let ok = f64::from(c.delta_e) >= r.min && !blue;
                let message = if blue {
                    Message::new(
                        "上衣为蓝色，须穿非蓝色有领上衣。",
                        "The top is blue; wear a collared top that is not blue.",
                    )
                } else if ok {
                    Message::new(
                        format!("服装与背景区分明显（色差 {:.0}）。", c.delta_e),
                        format!("Clothing stands out from the background (ΔE {:.0}).", c.delta_e),
                    )
                } else {
                    Message::new(
                        format!("服装颜色与背景太接近（色差 {:.0}）。", c.delta_e),
                        format!("The clothing is too close to the background colour (ΔE {:.0}).", c.delta_e),
                    )
                };
                finding(
                    Rule::ClothingContrast,
                    if ok { Severity::Pass } else { r.severity },
                    json!({"delta_e": c.delta_e, "hue": c.hue, "chroma": c.chroma}),
                    json!({"min_delta_e": r.min, "no_blue": r.no_blue}),
                    message,
                )
            }
            None => finding(
                Rule::ClothingContrast,
                // Too little clothing in the picture to measure: a person looks, nobody is turned away for it.
                Severity::Review,
                Value::Null,
                Value::Null,
                Message::new(
                    "照片中服装区域太少，未能测量，由审核人员查看。",
                    "Too little clothing in the picture to measure; a reviewer looks.",
                ),
            ),
        });
    }
    if let Some(r) = &rules.no_additions {
        let ok = r.holds(f64::from(p.frame_width));
        out.push(finding(
            Rule::ContentNoAdditions,
            if ok { Severity::Pass } else { r.severity },
            json!(p.frame_width),
            limit_json(r),
            if ok {
                Message::new("没有添加边框。", "No frame added.")
            } else {
                Message::new(
                    format!("照片四周有宽 {:.0} 像素的边框，不得添加边框。", p.frame_width),
                    format!("A {:.0}-pixel frame runs round the picture; no frames may be added.", p.frame_width),
                )
            },
        ));
    }
    for (rule, section, zh, en) in [
        (
            Rule::AccessoryHeadwear,
            &rules.headwear,
            "是否免冠（宗教、医疗需要的覆盖物不得遮挡脸部）由审核人员查看，机器未测量。",
            "Headwear (religious or medical coverings must leave the face clear) is for the reviewer: not measured by machine.",
        ),
        (
            Rule::AccessoryJewelry,
            &rules.jewelry,
            "是否佩戴耳环、项链等饰品由审核人员查看，机器未测量。",
            "Earrings, necklaces and other jewellery are for the reviewer: not measured by machine.",
        ),
        (
            Rule::AuthenticityNoRetouch,
            &rules.no_retouch,
            "是否修图、美颜由审核人员查看；机器只检查文件中的编辑软件记录（见 provenance.software）。",
            "Retouching and beauty filters are for the reviewer; the machine only reads the editing software the file names (see provenance.software).",
        ),
    ] {
        if let Some(r) = section {
            out.push(finding(rule, r.severity, Value::Null, Value::Null, Message::new(zh, en)));
        }
    }
    if let Some(r) = &rules.sharpness {
        out.push(match p.sharpness {
            Some(s) => bounded(
                Rule::QualitySharpness,
                r,
                f64::from(s),
                json!(s),
                ("面部清晰度（拉普拉斯方差）", "Face sharpness (Laplacian variance)"),
                "",
            ),
            None => unmeasured(Rule::QualitySharpness, r.severity),
        });
    }
    out
}
