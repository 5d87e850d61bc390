//! Which device made a photo and which program touched it, from the lists in `profiles/devices.toml`.

use std::sync::OnceLock;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DeviceKind {
    Camera,
    Phone,
    Unknown,
}

#[derive(Debug, Deserialize)]
struct SharedMaker {
    make: String,
    phone_models: Vec<String>,
    camera_models: Vec<String>,
}

#[derive(Debug, Deserialize)]
struct Devices {
    phone_makers: Vec<String>,
    camera_makers: Vec<String>,
    shared_makers: Vec<SharedMaker>,
    phone_model_words: Vec<String>,
    editing_software: Vec<String>,
}

fn devices() -> &'static Devices {
    static DEVICES: OnceLock<Devices> = OnceLock::new();
    DEVICES.get_or_init(|| {
        let mut d: Devices = toml::from_str(include_str!("../../profiles/devices.toml")).expect("built-in list");
        d.editing_software.iter_mut().for_each(|s| *s = s.to_lowercase());
        d
    })
}

/// Classifies a device from EXIF Make and Model.
pub fn classify(make: Option<&str>, model: Option<&str>) -> DeviceKind {
    let d = devices();
    let make = make.map(|m| m.trim().to_lowercase()).unwrap_or_default();
    let model = model.map(|m| m.trim().to_lowercase()).unwrap_or_default();
    if let Some(shared) = d.shared_makers.iter().find(|s| s.make == make) {
        if shared.phone_models.iter().any(|p| model.starts_with(p.as_str())) {
            return DeviceKind::Phone;
        }
        if shared.camera_models.iter().any(|p| model.starts_with(p.as_str())) {
            return DeviceKind::Camera;
        }
        return DeviceKind::Unknown;
    }
    if d.phone_makers.contains(&make) || d.phone_model_words.iter().any(|w| model.contains(w.as_str())) {
        return DeviceKind::Phone;
    }
    if d.camera_makers.contains(&make) {
        return DeviceKind::Camera;
    }
    DeviceKind::Unknown
}

/// The editing or beauty program named in `software`, if any.
pub fn editing_software(software: &str) -> Option<&'static str> {
    let s = software.to_lowercase();
    devices().editing_software.iter().find(|p| s.contains(p.as_str())).map(String::as_str)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn makers_and_models() {
        assert_eq!(classify(Some("Canon"), Some("Canon EOS R6")), DeviceKind::Camera);
        assert_eq!(classify(Some("NIKON CORPORATION"), Some("NIKON D850")), DeviceKind::Camera);
        assert_eq!(classify(Some("Apple"), Some("iPhone 15 Pro")), DeviceKind::Phone);
        assert_eq!(classify(Some("HUAWEI"), Some("ALN-AL00")), DeviceKind::Phone);
        assert_eq!(classify(Some("samsung"), Some("SM-S9180")), DeviceKind::Phone);
        assert_eq!(classify(Some("SAMSUNG"), Some("NX500")), DeviceKind::Camera);
        assert_eq!(classify(Some("SONY"), Some("ILCE-7M4")), DeviceKind::Camera);
        assert_eq!(classify(Some("Sony"), Some("XQ-DQ72")), DeviceKind::Phone);
        assert_eq!(classify(None, Some("iPhone 12")), DeviceKind::Phone);
        assert_eq!(classify(Some("Acme Imaging"), Some("X1")), DeviceKind::Unknown);
        assert_eq!(classify(None, None), DeviceKind::Unknown);
    }

    #[test]
    fn editing_programs() {
        assert_eq!(editing_software("Adobe Photoshop 25.0 (Windows)"), Some("photoshop"));
        assert_eq!(editing_software("美图秀秀"), Some("美图"));
        assert_eq!(editing_software("Ver.1.00"), None);
        assert_eq!(editing_software("Canon EOS R6 Firmware Version 1.8.1"), None);
    }
}
