//! Rule ids: the stable names of STANDARD.md, shared by the report, the UI, reviewers' reasons, exports and tests.

use serde::{Deserialize, Serialize};

macro_rules! rules {
    ($($variant:ident = $id:literal, $zh:literal, $en:literal;)*) => {
        /// One clause of the standard that a check can measure.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        pub enum Rule {
            $(#[serde(rename = $id)] $variant,)*
        }

        impl Rule {
            /// Every rule of STANDARD.md, in its order.
            pub const ALL: &'static [Rule] = &[$(Rule::$variant,)*];

            /// The dotted id, as in STANDARD.md.
            pub const fn id(self) -> &'static str {
                match self { $(Rule::$variant => $id,)* }
            }

            /// A short title for summaries and reviewers' reason lists: (Chinese, English).
            pub const fn title(self) -> (&'static str, &'static str) {
                match self { $(Rule::$variant => ($zh, $en),)* }
            }

            pub fn from_id(id: &str) -> Option<Rule> {
                match id { $($id => Some(Rule::$variant),)* _ => None }
            }
        }
    };
}

rules! {
    FormatJpeg = "format.jpeg", "JPEG 格式", "JPEG format";
    FormatFileSize = "format.file_size", "文件大小", "file size";
    FormatDimensions = "format.dimensions", "像素尺寸", "pixel dimensions";
    FormatDensity = "format.density", "分辨率 (dpi)", "density (dpi)";
    FormatColorDepth = "format.color_depth", "24 位真彩色", "24-bit colour";
    FormatQuality = "format.quality", "压缩品质", "compression quality";
    FormatEmbeddedId = "format.embedded_id", "注释段加密学籍信息", "identity sealed in COM";
    ContentNoAdditions = "content.no_additions", "无边框文字等附加内容", "no borders or added content";
    ProvenanceCamera = "provenance.camera", "拍摄设备", "camera";
    ProvenanceSoftware = "provenance.software", "编辑软件", "editing software";
    ProvenanceRecency = "provenance.recency", "近期拍摄", "taken recently";
    BackgroundColor = "background.color", "背景颜色", "background colour";
    BackgroundUniform = "background.uniform", "背景均匀", "uniform background";
    BackgroundClean = "background.clean", "背景干净", "clean background";
    ClothingContrast = "clothing.contrast", "服装与背景区分", "clothing contrast";
    FaceCount = "face.count", "单人", "one person";
    GeometryCentered = "geometry.centered", "人像居中", "centred";
    GeometryHairTop = "geometry.hair_top", "头顶位置", "top of hair";
    GeometryEyeLine = "geometry.eye_line", "眼睛位置", "eye line";
    GeometryFaceWidth = "geometry.face_width", "脸部宽度", "face width";
    GeometryRoll = "geometry.roll", "头部端正", "head upright";
    GeometryYaw = "geometry.yaw", "正面（左右）", "frontal (yaw)";
    GeometryPitch = "geometry.pitch", "正面（俯仰）", "frontal (pitch)";
    GeometryMargins = "geometry.margins", "四周留白", "margins";
    GeometryCroppable = "geometry.croppable", "可裁剪为标准构图", "croppable to the standard framing";
    ExpressionEyesOpen = "expression.eyes_open", "双眼睁开", "eyes open";
    ExpressionMouthClosed = "expression.mouth_closed", "嘴唇闭合", "mouth closed";
    ExpressionNeutral = "expression.neutral", "表情自然", "natural expression";
    OcclusionEyebrows = "occlusion.eyebrows", "露出眉毛", "eyebrows visible";
    OcclusionEyes = "occlusion.eyes", "眼睛无遮挡", "eyes unobstructed";
    OcclusionEars = "occlusion.ears", "露出双耳", "ears visible";
    AccessoryGlasses = "accessory.glasses", "眼镜", "glasses";
    AccessoryHeadwear = "accessory.headwear", "免冠", "no headwear";
    AccessoryJewelry = "accessory.jewelry", "饰品", "no jewellery";
    LightingExposure = "lighting.exposure", "曝光", "exposure";
    LightingHighlights = "lighting.highlights", "高光", "highlights";
    LightingBalance = "lighting.balance", "光线均匀", "even light";
    LightingColorCast = "lighting.color_cast", "偏色", "colour cast";
    LightingRedEye = "lighting.red_eye", "红眼", "red eye";
    QualitySharpness = "quality.sharpness", "清晰度", "sharpness";
    AuthenticityNoMirror = "authenticity.no_mirror", "未镜像", "not mirrored";
    AuthenticityNoRetouch = "authenticity.no_retouch", "未修图", "not retouched";
    AuthenticityNotRephotographed = "authenticity.not_rephotographed", "非翻拍", "not re-photographed";
}

impl std::fmt::Display for Rule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.id())
    }
}

impl Rule {
    /// Where the rule comes from in STANDARD.md: the clauses of the standard (S) for the registered file, and of
    /// the notice (N) and the guide (G) for the uploaded original.
    pub const fn clause(self) -> &'static str {
        match self {
            Rule::FormatJpeg => "S: 四.1, 四.3; 一.4 | upload: N(6), G",
            Rule::FormatFileSize => "S: 四.1, 四.3; 一.4 | upload: N(6), G",
            Rule::FormatDimensions => "S: 四.1, 四.3; 一.4 | upload: G",
            Rule::FormatDensity => "S: 四.1, 四.3; 一.4 | upload: G",
            Rule::FormatColorDepth => "S: 四.1, 四.3; 一.4",
            Rule::FormatQuality => "S: 四.1, 四.3; 一.4",
            Rule::FormatEmbeddedId => "S: 四.1, 四.3; 一.4",
            Rule::ContentNoAdditions => "S: 四.1, 四.3; 一.4",
            Rule::ProvenanceCamera => "upload: N(5), G 注意事项二",
            Rule::ProvenanceSoftware => "upload: N(5), N(6)",
            Rule::ProvenanceRecency => "S: 一.2; N(5)",
            Rule::BackgroundColor => "S: 二.1 | upload: N(6), G",
            Rule::BackgroundUniform => "S: 二.1",
            Rule::BackgroundClean => "S: 二.1",
            Rule::ClothingContrast => "S: 二.2–二.5, 一.1–一.2; N(7) | upload: G",
            Rule::FaceCount => "S: 四.2, 二.2",
            Rule::GeometryCentered => "S: 四.2, 二.2",
            Rule::GeometryHairTop => "S: 四.2, 二.2",
            Rule::GeometryEyeLine => "S: 四.2, 二.2",
            Rule::GeometryFaceWidth => "S: 四.2, 二.2",
            Rule::GeometryRoll => "S: 四.2, 二.2",
            Rule::GeometryYaw => "S: 四.2, 二.2",
            Rule::GeometryPitch => "S: 四.2, 二.2",
            Rule::GeometryMargins => "S: 四.2, 二.2",
            Rule::GeometryCroppable => "S: 四.2, 二.2, asked of the original",
            Rule::ExpressionEyesOpen => "S: 二.2–二.5, 一.1–一.2; N(7)",
            Rule::ExpressionMouthClosed => "S: 二.2–二.5, 一.1–一.2; N(7)",
            Rule::ExpressionNeutral => "S: 二.2–二.5, 一.1–一.2; N(7)",
            Rule::OcclusionEyebrows => "S: 二.2–二.5, 一.1–一.2; N(7)",
            Rule::OcclusionEyes => "S: 二.2–二.5, 一.1–一.2; N(7)",
            Rule::OcclusionEars => "S: 二.2–二.5, 一.1–一.2; N(7)",
            Rule::AccessoryGlasses => "S: 二.2–二.5, 一.1–一.2; N(7)",
            Rule::AccessoryHeadwear => "S: 二.2–二.5, 一.1–一.2; N(7)",
            Rule::AccessoryJewelry => "S: 二.2–二.5, 一.1–一.2; N(7)",
            Rule::LightingExposure => "S: 三, 一.3; G 注意事项二; N(7)",
            Rule::LightingHighlights => "S: 三, 一.3; G 注意事项二; N(7)",
            Rule::LightingBalance => "S: 三, 一.3; G 注意事项二; N(7)",
            Rule::LightingColorCast => "S: 三, 一.3; G 注意事项二; N(7)",
            Rule::LightingRedEye => "S: 三, 一.3; G 注意事项二; N(7)",
            Rule::QualitySharpness => "S: 三, 一.3; G 注意事项二; N(7)",
            Rule::AuthenticityNoMirror => "S: 一.2; N(5)",
            Rule::AuthenticityNoRetouch => "S: 一.2; N(5)",
            Rule::AuthenticityNotRephotographed => "S: 一.2; N(5)",
        }
    }
}

/// The rule ids as a string enum, each with its title and clause (the ids of STANDARD.md).
#[cfg(feature = "schema")]
impl schemars::JsonSchema for Rule {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Rule".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        let ids: Vec<&str> = Rule::ALL.iter().map(|r| r.id()).collect();
        let titles: Vec<String> =
            Rule::ALL.iter().map(|r| format!("{} / {} ({})", r.title().0, r.title().1, r.clause())).collect();
        schemars::json_schema!({
            "type": "string",
            "description": "A clause of the standard (STANDARD.md): the id shared by reports, reviewers' reasons and exports.",
            "enum": ids,
            "x-enum-descriptions": titles,
            "x-enum-clauses": Rule::ALL.iter().map(|r| r.clause()).collect::<Vec<_>>(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_rule_names_its_clause() {
        for &rule in Rule::ALL {
            assert!(rule.clause().starts_with("S: ") || rule.clause().starts_with("upload: "), "{rule}");
        }
    }

    #[test]
    fn ids_round_trip_and_match_the_standard() {
        let standard = include_str!("../../../../../shared/spec/STANDARD.md");
        for &rule in Rule::ALL {
            assert_eq!(Rule::from_id(rule.id()), Some(rule));
            assert!(standard.contains(&format!("`{}`", rule.id())), "{} is not in STANDARD.md", rule.id());
            let json = serde_json::to_string(&rule).unwrap();
            assert_eq!(json, format!("\"{}\"", rule.id()));
        }
    }
}
