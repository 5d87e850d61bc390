//! Profiles as data: which rules apply, with which thresholds and severities. The two of STANDARD.md are built in
//! (from `profiles/*.toml`); a site may load its own from a TOML file of the same shape.

use serde::Deserialize;

use super::report::Severity;
use crate::message::Message;

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    pub name: String,
    pub title: Message,
    /// How the file relates to the registered rendering: it is the rendering (`whole`), or an original from
    /// which the best 3:4 crop is taken (`crop`).
    #[serde(default)]
    pub framing: ProfileFraming,
    pub rules: Rules,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProfileFraming {
    #[default]
    Whole,
    Crop,
}

/// The rules of a profile, keyed by rule id; a rule left out is not part of the profile.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rules {
    #[serde(rename = "format.jpeg")]
    pub jpeg: Option<JpegRule>,
    #[serde(rename = "format.file_size")]
    pub file_size: Option<FileSizeRule>,
    #[serde(rename = "format.dimensions")]
    pub dimensions: Option<DimensionsRule>,
    #[serde(rename = "format.density")]
    pub density: Option<DensityRule>,
    #[serde(rename = "format.color_depth")]
    pub color_depth: Option<SeverityRule>,
    #[serde(rename = "format.quality")]
    pub quality: Option<QualityRule>,
    #[serde(rename = "format.embedded_id")]
    pub embedded_id: Option<EmbeddedIdRule>,
    #[serde(rename = "provenance.camera")]
    pub camera: Option<CameraRule>,
    #[serde(rename = "provenance.software")]
    pub software: Option<SeverityRule>,
    #[serde(rename = "provenance.recency")]
    pub recency: Option<RecencyRule>,
    #[serde(rename = "authenticity.no_mirror")]
    pub no_mirror: Option<SeverityRule>,
    #[serde(rename = "face.count")]
    pub face_count: Option<SeverityRule>,
    #[serde(rename = "geometry.croppable")]
    pub croppable: Option<SeverityRule>,
    #[serde(rename = "geometry.hair_top")]
    pub hair_top: Option<Bound>,
    #[serde(rename = "geometry.eye_line")]
    pub eye_line: Option<Bound>,
    #[serde(rename = "geometry.face_width")]
    pub face_width: Option<Bound>,
    /// Largest distance of the face centre from x = 240, in pixels.
    #[serde(rename = "geometry.centered")]
    pub centered: Option<Bound>,
    /// Largest tilt, in degrees.
    #[serde(rename = "geometry.roll")]
    pub roll: Option<Bound>,
    #[serde(rename = "geometry.yaw")]
    pub yaw: Option<Bound>,
    #[serde(rename = "geometry.pitch")]
    pub pitch: Option<Bound>,
    /// Largest share of a side edge, above the chin, that the person may touch.
    #[serde(rename = "geometry.margins")]
    pub margins: Option<Bound>,
    #[serde(rename = "background.color")]
    pub background_color: Option<BackgroundColorRule>,
    /// Spread (90th percentile ΔE from the mean) and gradient (ΔE between sides), each at most `max`.
    #[serde(rename = "background.uniform")]
    pub background_uniform: Option<Bound>,
    /// Share of background that differs from its mean by more than 12 ΔE.
    #[serde(rename = "background.clean")]
    pub background_clean: Option<Bound>,
    /// Lid gap over eye width, for each eye.
    #[serde(rename = "expression.eyes_open")]
    pub eyes_open: Option<Bound>,
    /// Inner-lip gap over mouth width.
    #[serde(rename = "expression.mouth_closed")]
    pub mouth_closed: Option<Bound>,
    /// Mean L* of the facial skin.
    #[serde(rename = "lighting.exposure")]
    pub exposure: Option<Bound>,
    /// Share of facial skin samples with a clipped channel.
    #[serde(rename = "lighting.highlights")]
    pub highlights: Option<Bound>,
    /// Difference of L* between the cheeks.
    #[serde(rename = "lighting.balance")]
    pub balance: Option<Bound>,
    /// Variance of the Laplacian over the face at a 240-pixel face width.
    #[serde(rename = "quality.sharpness")]
    pub sharpness: Option<Bound>,
    /// a*b* distance between the background and its reference colour (lightness left out).
    #[serde(rename = "lighting.color_cast")]
    pub color_cast: Option<Bound>,
    /// Share of pupil samples that are strongly red.
    #[serde(rename = "lighting.red_eye")]
    pub red_eye: Option<Bound>,
    /// Share of clipped-white samples around the eyes (reflections on spectacles).
    #[serde(rename = "accessory.glasses")]
    pub glasses: Option<Bound>,
    /// CIEDE2000 between clothing and background, at least `min`; `no_blue` refuses blue clothing (G).
    #[serde(rename = "clothing.contrast")]
    pub clothing: Option<ClothingRule>,
    /// Width of an added frame, in analysed pixels.
    #[serde(rename = "content.no_additions")]
    pub no_additions: Option<Bound>,
    /// Share of the forehead strip just above an eyebrow that does not look like skin, at most `max`.
    #[serde(rename = "occlusion.eyebrows")]
    pub eyebrows: Option<Bound>,
    /// L* spread (90th − 10th percentile) inside each eye opening over the skin's L*, at least `min`.
    #[serde(rename = "occlusion.eyes")]
    pub eyes_visible: Option<Bound>,
    /// Share of the person beside the face contour at ear height that looks like skin, each side at least `min`.
    #[serde(rename = "occlusion.ears")]
    pub ears: Option<EarsRule>,
    /// Mouth-corner lift, mouth width and brow raise, each at most its limit.
    #[serde(rename = "expression.neutral")]
    pub neutral: Option<NeutralRule>,
    /// Strongest single frequency over the typical one in background and skin patches, at most `max`.
    #[serde(rename = "authenticity.not_rephotographed")]
    pub not_rephotographed: Option<Bound>,
    /// Clauses no measure decides: a reviewer looks, and the report says so.
    #[serde(rename = "accessory.headwear")]
    pub headwear: Option<SeverityRule>,
    #[serde(rename = "accessory.jewelry")]
    pub jewelry: Option<SeverityRule>,
    #[serde(rename = "authenticity.no_retouch")]
    pub no_retouch: Option<SeverityRule>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EarsRule {
    pub min: f64,
    pub severity: Severity,
    /// When colour cannot tell hair from skin, or too little person lies beside the face to judge.
    pub undecided: Severity,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NeutralRule {
    /// Mouth corners above the middle of the lips, over the mouth width.
    pub max_corner_lift: f64,
    /// Mouth width over face width.
    pub max_mouth_width: f64,
    /// Eye centre to mid-brow over face width.
    pub max_brow_raise: f64,
    pub severity: Severity,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClothingRule {
    pub min: f64,
    pub no_blue: bool,
    pub severity: Severity,
}

/// A measure that must lie within `min`–`max` (either may be left out).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Bound {
    pub min: Option<f64>,
    pub max: Option<f64>,
    pub severity: Severity,
}

impl Bound {
    pub fn holds(&self, v: f64) -> bool {
        self.min.is_none_or(|m| v >= m) && self.max.is_none_or(|m| v <= m)
    }
}

/// The background colours S 二.1 names, by their reference values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BackgroundColor {
    LightBlue,
    White,
    LightGrey,
}

impl BackgroundColor {
    pub fn rgb(self) -> [f32; 3] {
        match self {
            BackgroundColor::LightBlue => [100.0, 197.0, 255.0],
            BackgroundColor::White => [255.0, 255.0, 255.0],
            BackgroundColor::LightGrey => [240.0, 240.0, 240.0],
        }
    }

    pub fn name(self) -> (&'static str, &'static str) {
        match self {
            BackgroundColor::LightBlue => ("浅蓝色", "light blue"),
            BackgroundColor::White => ("白色", "white"),
            BackgroundColor::LightGrey => ("浅灰色", "light grey"),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackgroundColorRule {
    pub allowed: Vec<BackgroundColor>,
    /// Largest CIEDE2000 from the nearest allowed colour.
    pub max_delta_e: f64,
    pub severity: Severity,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JpegRule {
    pub extensions: Vec<String>,
    pub wrong_extension: Severity,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileSizeRule {
    pub min: u64,
    pub max: u64,
    pub outside: Severity,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DimensionsRule {
    pub width: u32,
    pub height: u32,
    /// Exactly this size (registered) or at least this size (upload).
    pub exact: bool,
    pub portrait: bool,
    /// Severity when smaller than the size in either direction.
    pub too_small: Severity,
    /// Severity when large enough but not as asked (larger than exact, or landscape).
    pub other: Severity,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DensityRule {
    pub dpi: f64,
    /// Accepted difference in dpi: 118 dots/cm, the nearest JFIF value, is 299.7 dpi.
    pub tolerance: f64,
    pub severity: Severity,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeverityRule {
    pub severity: Severity,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QualityRule {
    pub min: u8,
    pub severity: Severity,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmbeddedIdRule {
    pub absent: Severity,
    pub malformed: Severity,
    /// A well-formed seal that was not decrypted (no key configured).
    pub unverified: Severity,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CameraRule {
    pub phone: Severity,
    pub missing: Severity,
    pub unknown: Severity,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecencyRule {
    pub max_age_days: u32,
    pub severity: Severity,
}

#[derive(Debug, thiserror::Error)]
#[error("invalid profile: {0}")]
pub struct ProfileError(#[from] toml::de::Error);

impl Profile {
    /// Whether any rule needs the face models.
    pub fn needs_faces(&self) -> bool {
        let r = &self.rules;
        r.face_count.is_some()
            || r.croppable.is_some()
            || r.hair_top.is_some()
            || r.eye_line.is_some()
            || r.face_width.is_some()
            || r.centered.is_some()
            || r.roll.is_some()
            || r.yaw.is_some()
            || r.pitch.is_some()
            || r.margins.is_some()
            || r.background_color.is_some()
            || r.background_uniform.is_some()
            || r.background_clean.is_some()
            || r.eyes_open.is_some()
            || r.mouth_closed.is_some()
            || r.exposure.is_some()
            || r.highlights.is_some()
            || r.balance.is_some()
            || r.sharpness.is_some()
            || r.color_cast.is_some()
            || r.red_eye.is_some()
            || r.glasses.is_some()
            || r.clothing.is_some()
            || r.no_additions.is_some()
            || r.eyebrows.is_some()
            || r.eyes_visible.is_some()
            || r.ears.is_some()
            || r.neutral.is_some()
            || r.not_rephotographed.is_some()
    }

    pub fn from_toml(text: &str) -> Result<Profile, ProfileError> {
        Ok(toml::from_str(text)?)
    }

    /// The uploaded original (N, G).
    pub fn upload() -> Profile {
        // Parsed once: the service asks for it at every upload and check, and parsing was 3 % of its request CPU.
        static UPLOAD: std::sync::OnceLock<Profile> = std::sync::OnceLock::new();
        UPLOAD
            .get_or_init(|| {
                Self::from_toml(include_str!("../../profiles/upload.toml")).expect("built-in profile is valid")
            })
            .clone()
    }

    /// The registered photo (S).
    pub fn registered() -> Profile {
        static REGISTERED: std::sync::OnceLock<Profile> = std::sync::OnceLock::new();
        REGISTERED
            .get_or_init(|| {
                Self::from_toml(include_str!("../../profiles/registered.toml")).expect("built-in profile is valid")
            })
            .clone()
    }

    /// A built-in profile by name.
    pub fn builtin(name: &str) -> Option<Profile> {
        match name {
            "upload" => Some(Self::upload()),
            "registered" => Some(Self::registered()),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_profiles_load_with_the_standards_numbers() {
        let up = Profile::upload();
        assert_eq!(up.name, "upload");
        let size = up.rules.file_size.as_ref().unwrap();
        assert_eq!((size.min, size.max), (100 * 1024, 2 * 1024 * 1024));
        assert!(up.rules.embedded_id.is_none());
        let reg = Profile::registered();
        let dims = reg.rules.dimensions.as_ref().unwrap();
        assert!(dims.exact && dims.width == 480 && dims.height == 640);
        assert_eq!(reg.rules.quality.as_ref().unwrap().min, 60);
        assert!(reg.rules.camera.is_none());
        assert!(Profile::builtin("nope").is_none());
        // The face's details are heuristics: a reviewer decides in both profiles, never a silent pass.
        for p in [&up, &reg] {
            let r = &p.rules;
            assert_eq!(r.ears.as_ref().unwrap().undecided, Severity::Review);
            assert_eq!(r.neutral.as_ref().unwrap().severity, Severity::Review);
            assert!(r.eyebrows.is_some() && r.eyes_visible.is_some() && r.not_rephotographed.is_some());
        }
    }

    #[test]
    fn unknown_rule_names_are_refused() {
        let text = "name='x'\ntitle={zh='x',en='x'}\n[rules.\"format.jpg\"]\nseverity='reject'\n";
        assert!(Profile::from_toml(text).is_err());
    }
}
