//! What the kill tests share: the students' numbers, the roster, the photos they upload, and how an answer is
//! read and checked against the published API description.
#![allow(dead_code)] // each test binary uses its own part

#[path = "../../../gradphoto-web/tests/common/conformance.rs"]
pub mod conformance;

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

/// Status and JSON body (Null when not JSON), or the transport error when the connection fails at any point.
pub type Answer = Result<(u16, serde_json::Value), reqwest::Error>;

/// Sends the request and reads the whole answer; an answer that arrives is checked against `/api/openapi.json`
/// (route, status, content type, and a JSON body against its schema) and the test fails on any violation.
pub async fn answer(request: reqwest::RequestBuilder) -> Answer {
    let (client, request) = request.build_split();
    let request = request?;
    let (method, path) = (request.method().to_string(), request.url().path().to_string());
    let r = client.execute(request).await?;
    let status = r.status().as_u16();
    let media = r.headers().get("content-type").and_then(|v| v.to_str().ok()).map(str::to_string);
    let body = r.bytes().await?;
    let problems = conformance::violations(&method, &path, status, media.as_deref(), &body);
    assert!(problems.is_empty(), "{method} {path} answered outside /api/openapi.json: {problems:?}");
    Ok((status, serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null)))
}
