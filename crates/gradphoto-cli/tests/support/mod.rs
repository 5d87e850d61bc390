//! What the kill tests share: the students' numbers, the roster, and the photos they upload.
#![allow(dead_code)] // each test binary uses its own part

use gradphoto_testkit::exif::ExifSpec;
use gradphoto_testkit::{JpegSpec, encode};

/// GB 11643 numbers with valid check digits; student `i` (from 0) has serial `i + 1`.
pub fn id_number(i: usize) -> String {
    gradphoto_web::with_check_digit(&format!("11010519900101{:03}", i + 1))
}

pub fn student_no(i: usize) -> String {
    format!("S{:05}", i + 1)
}

/// A roster of students 0 to `n - 1`.
pub fn roster_csv(n: usize) -> String {
    let mut s = String::from("学号,姓名,证件类型,证件号码,学院,学历层次\n");
    for i in 0..n {
        s.push_str(&format!("{},学生{i},居民身份证,{},计算机学院,本科\n", student_no(i), id_number(i)));
    }
    s
}

pub struct Photos {
    /// Studio originals (1500 × 2000) a reviewer approves and normalisation can crop.
    pub originals: Vec<Vec<u8>>,
    /// A small grey picture: checked fast, never approvable; a first try the student replaces.
    pub junk: Vec<u8>,
}

pub fn photos() -> Photos {
    let models = gradphoto_eval::face_models(&gradphoto_testkit::models_data_dir()).expect("models");
    let portraits = gradphoto_testkit::shared_dir().join("testdata/portraits");
    let spec = JpegSpec { quality: 92, exif: Some(ExifSpec::camera().build()), ..Default::default() };
    let originals: Vec<Vec<u8>> = gradphoto_eval::sources(&models, &portraits)
        .iter()
        .filter(|src| src.mouth_closed == Some(true) && !src.head_tilted)
        .take(3)
        .map(|src| encode(&gradphoto_eval::to_image(&gradphoto_eval::studio_original(src, 1500, 2000, 520.0)), &spec))
        .collect();
    assert!(originals.len() >= 2, "approvable portraits in the shared test data");
    let grey = image::RgbImage::from_pixel(480, 640, image::Rgb([180, 190, 200]));
    Photos { originals, junk: encode(&grey, &JpegSpec::default()) }
}
