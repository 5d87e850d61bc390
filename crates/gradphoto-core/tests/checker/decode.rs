//! The analysis decode: DCT-domain scaling of large originals, colour spaces it refuses, pixels it returns.

use gradphoto_core::decode::{Scale, container, pixels};
use gradphoto_core::{CheckOptions, Limits, Profile, Rule, Severity, Verdict, check};
use gradphoto_testkit::{JpegSpec, crop_to, encode, portrait};

#[test]
fn a_12_megapixel_original_is_analysed_at_about_1000_pixels() {
    let img = crop_to(&portrait("alex_lacamoire_grey_bg.jpg"), 3000, 4000);
    let data = encode(&img, &JpegSpec { quality: 85, ..Default::default() });
    let checked = check("big.jpg", &data, &Profile::upload(), &CheckOptions::default());
    let analysis = checked.image.expect("decoded");
    assert_eq!((analysis.width, analysis.height), (750, 1000));
    assert_eq!(checked.report.measurements["analysis_scale"], 4);
    // The reduced decode is the same picture: compare with a full decode shrunk by averaging 4×4 blocks.
    let c = container::read(&data, &Limits::DEFAULT).unwrap();
    let full = pixels::decode(&data, &c, Scale::Full).unwrap();
    let mut worst = 0i32;
    for (y, x) in [(100u32, 100u32), (500, 375), (900, 600), (250, 700)] {
        let mut sum = [0i32; 3];
        for dy in 0..4 {
            for dx in 0..4 {
                let p = full.pixel(x * 4 + dx, y * 4 + dy);
                (0..3).for_each(|k| sum[k] += i32::from(p[k]));
            }
        }
        let small = analysis.pixel(x, y);
        for k in 0..3 {
            worst = worst.max((sum[k] / 16 - i32::from(small[k])).abs());
        }
    }
    assert!(worst <= 12, "scaled decode differs from the full one by {worst}");
}

#[test]
fn scales_give_the_sizes_libjpeg_promises() {
    let img = crop_to(&portrait("grace_hopper.jpg"), 600, 800);
    let data = encode(&img, &JpegSpec::default());
    let c = container::read(&data, &Limits::DEFAULT).unwrap();
    for (scale, size) in
        [(Scale::Full, (600, 800)), (Scale::Half, (300, 400)), (Scale::Quarter, (150, 200)), (Scale::Eighth, (75, 100))]
    {
        let d = pixels::decode(&data, &c, scale).unwrap();
        assert_eq!((d.width, d.height), size, "{scale:?}");
        assert_eq!(d.pixels.len(), 600 * 800 * 3 / (scale.denominator() * scale.denominator()) as usize);
    }
}

#[test]
fn cmyk_is_refused_with_a_clear_code_and_a_colour_depth_finding() {
    // A CMYK JPEG as print workflows write it (Adobe APP14, no transform).
    let img = crop_to(&portrait("grace_hopper.jpg"), 120, 160);
    let cmyk: Vec<u8> = img.pixels().flat_map(|p| [255 - p[0], 255 - p[1], 255 - p[2], 0]).collect();
    let data = std::panic::catch_unwind(|| {
        let mut c = mozjpeg::Compress::new(mozjpeg::ColorSpace::JCS_CMYK);
        c.set_size(120, 160);
        c.set_quality(90.0);
        let mut s = c.start_compress(Vec::new()).unwrap();
        s.write_scanlines(&cmyk).unwrap();
        s.finish().unwrap()
    })
    .unwrap();
    let r = check("cmyk.jpg", &data, &Profile::registered(), &CheckOptions::default()).report;
    assert_eq!(r.verdict, Verdict::Error);
    assert_eq!(r.error.as_ref().unwrap().code, "decode.unsupported_color");
    let depth = r.finding(Rule::FormatColorDepth).expect("file rules still judged");
    assert_eq!(depth.severity, Severity::Reject);
    assert_eq!(depth.measured, 32);
    assert_eq!(r.measurements["color_space"], "cmyk");
}

#[test]
fn progressive_files_decode_like_baseline() {
    let img = crop_to(&portrait("chris_pratt_ccby.jpeg"), 480, 640);
    let base = encode(&img, &JpegSpec { quality: 95, ..Default::default() });
    let prog =
        encode(&img, &JpegSpec { quality: 95, encoder: gradphoto_testkit::Encoder::Mozjpeg, ..Default::default() });
    let cb = container::read(&base, &Limits::DEFAULT).unwrap();
    let cp = container::read(&prog, &Limits::DEFAULT).unwrap();
    assert!(cp.scans > 1, "mozjpeg writes progressive scans");
    let a = pixels::decode(&base, &cb, Scale::Full).unwrap();
    let b = pixels::decode(&prog, &cp, Scale::Full).unwrap();
    let mean_diff: f64 =
        a.pixels.iter().zip(&b.pixels).map(|(x, y)| f64::from(x.abs_diff(*y))).sum::<f64>() / a.pixels.len() as f64;
    assert!(mean_diff < 3.0, "{mean_diff}");
}
