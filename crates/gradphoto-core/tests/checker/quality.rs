//! The quality estimate on files written at known qualities by real encoders.

use gradphoto_core::Limits;
use gradphoto_core::decode::{container, quality};
use gradphoto_testkit::{Encoder, JpegSpec, Subsampling, encode, portrait, resize};

fn estimate(jpeg: &[u8]) -> quality::QualityEstimate {
    let c = container::read(jpeg, &Limits::DEFAULT).expect("valid file");
    quality::estimate(c.luma_table().expect("luma"), c.chroma_table())
}

const QUALITIES: [u8; 14] = [1, 5, 10, 24, 25, 40, 50, 59, 60, 61, 75, 85, 95, 100];

#[test]
fn libjpeg_tables_give_the_exact_quality_in_420_and_444() {
    let img = resize(&portrait("chris_pratt_ccby.jpeg"), 120, 160);
    for sub in [Subsampling::S420, Subsampling::S444] {
        for q in QUALITIES {
            let jpeg = encode(
                &img,
                &JpegSpec { quality: q, encoder: Encoder::Libjpeg, subsampling: sub, ..Default::default() },
            );
            let est = estimate(&jpeg);
            assert_eq!((est.quality, est.exact), (q, true), "libjpeg q={q} {sub:?}: {est:?}");
        }
    }
}

#[test]
fn the_image_crate_encoder_gives_the_exact_quality() {
    let img = resize(&portrait("grace_hopper.jpg"), 120, 160);
    for q in QUALITIES {
        let jpeg = encode(&img, &JpegSpec { quality: q, encoder: Encoder::ImageRs, ..Default::default() });
        let est = estimate(&jpeg);
        assert_eq!((est.quality, est.exact), (q, true), "image-rs q={q}: {est:?}");
    }
}

#[test]
fn mozjpeg_tables_give_a_near_ijg_quality_that_rises_with_its_setting() {
    let img = resize(&portrait("grace_hopper.jpg"), 120, 160);
    let mut last = 0;
    for q in [30u8, 50, 60, 70, 80, 90, 95] {
        let jpeg = encode(&img, &JpegSpec { quality: q, encoder: Encoder::Mozjpeg, ..Default::default() });
        let est = estimate(&jpeg);
        assert!(!est.exact, "mozjpeg uses its own tables: {est:?}");
        assert!(est.deviation > 0.0 && est.deviation < 0.6, "q={q}: {est:?}");
        assert!(est.quality >= last, "q={q}: {est:?} after {last}");
        assert!(est.quality.abs_diff(q) <= 15, "q={q}: nearest IJG quality {} is far", est.quality);
        last = est.quality;
    }
}

#[test]
fn camera_tables_in_the_shared_photos_are_estimated_not_exact() {
    // Photoshop and camera tables: an IJG-equivalent with a deviation, never an exact match claimed.
    let bytes = gradphoto_testkit::testdata_bytes("portraits/obama_podium_2009.jpg");
    let est = estimate(&bytes);
    assert!(!est.exact && est.deviation > 0.0, "{est:?}");
    assert!((80..=100).contains(&est.quality), "{est:?}");
}
