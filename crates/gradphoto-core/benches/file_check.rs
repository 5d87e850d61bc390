//! Issue 3's speed bars, as ratios measured in one run on one core:
//! - the file rules alone on a 2 MB 12-megapixel original cost at most 2% of a full decode of the same file;
//! - the 1/4-scale analysis decode costs at most 40% of the full decode.
//!
//! Run: `cargo bench -p gradphoto-core --bench file_check`

use std::hint::black_box;
use std::time::{Duration, Instant};

use gradphoto_core::decode::{Scale, container, pixels};
use gradphoto_core::{CheckOptions, Limits, Profile, check, check_file};
use gradphoto_testkit::{JpegSpec, RgbImage, add_noise, crop_to, encode, exif::ExifSpec, portrait};

/// Median wall time of `f` over `runs` runs, after one warm-up.
fn median(runs: usize, mut f: impl FnMut()) -> Duration {
    f();
    let mut times: Vec<Duration> = (0..runs)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed()
        })
        .collect();
    times.sort();
    times[runs / 2]
}

/// Encodes `img` with camera EXIF at the quality that brings the file nearest 2 MB.
fn nearest_2mb(img: &RgbImage) -> Vec<u8> {
    let exif = ExifSpec::camera().build();
    let target = 2_000_000usize;
    let (mut lo, mut hi) = (30u8, 98u8);
    let mut best = Vec::new();
    while lo <= hi {
        let q = (lo + hi) / 2;
        let jpeg = encode(img, &JpegSpec { quality: q, exif: Some(exif.clone()), ..Default::default() });
        let size = jpeg.len();
        if best.is_empty() || size.abs_diff(target) < best.len().abs_diff(target) {
            best = jpeg;
        }
        if size > target { hi = q - 1 } else { lo = q + 1 }
    }
    best
}

/// A 3000 × 4000 original of real photographic texture: the shared photos at their own scale, tiled.
fn mosaic_12mp() -> RgbImage {
    let mut out = RgbImage::new(3000, 4000);
    let names = gradphoto_testkit::portrait_names();
    let tiles: Vec<RgbImage> = names.iter().map(|n| portrait(n)).filter(|t| t.width() >= 400).collect();
    let (mut x, mut y, mut row_h, mut i) = (0u32, 0u32, 0u32, 0usize);
    while y < 4000 {
        let t = &tiles[i % tiles.len()];
        i += 1;
        let w = t.width().min(3000 - x);
        let h = t.height().min(4000 - y);
        image::imageops::replace(&mut out, &image::imageops::crop_imm(t, 0, 0, w, h).to_image(), x.into(), y.into());
        row_h = row_h.max(h);
        x += w;
        if x >= 3000 {
            x = 0;
            y += row_h;
            row_h = 0;
        }
    }
    out
}

/// A 3000 × 4000 studio-like portrait: a shared portrait scaled up with even luminance grain everywhere, the
/// worst case for the entropy decoder at a given size (many small coefficients in every block).
fn grain_12mp() -> RgbImage {
    let mut img = crop_to(&portrait("alex_lacamoire_grey_bg.jpg"), 3000, 4000);
    add_noise(&mut img, 4, 42);
    img
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn main() {
    let profile = Profile::upload();
    let options = CheckOptions::default();
    for (name, img) in [("mosaic of real photos", mosaic_12mp()), ("upscaled portrait with grain", grain_12mp())] {
        let data = nearest_2mb(&img);
        let c = container::read(&data, &Limits::DEFAULT).expect("valid original");
        let q = gradphoto_core::decode::quality::estimate(c.luma_table().unwrap(), c.chroma_table());
        println!(
            "\n== {name}: {}×{}, {} bytes, quality {}, {}",
            c.frame.width,
            c.frame.height,
            data.len(),
            q.quality,
            c.frame.subsampling()
        );
        let rules = median(301, || {
            black_box(check_file("a.jpg", black_box(&data), &profile, &options));
        });
        let full = median(15, || {
            black_box(pixels::decode(black_box(&data), &c, Scale::Full).unwrap());
        });
        let mut scaled = Vec::new();
        for scale in [Scale::Half, Scale::Quarter, Scale::Eighth] {
            scaled.push(median(15, || {
                black_box(pixels::decode(black_box(&data), &c, scale).unwrap());
            }));
        }
        let whole = median(15, || {
            black_box(check("a.jpg", black_box(&data), &profile, &options));
        });
        println!("file rules alone (container, EXIF, tables, judge): {:.3} ms", ms(rules));
        println!("full decode:       {:.1} ms", ms(full));
        println!("1/2-scale decode:  {:.1} ms", ms(scaled[0]));
        println!("1/4-scale decode:  {:.1} ms", ms(scaled[1]));
        println!("1/8-scale decode:  {:.1} ms (the floor: entropy decoding alone)", ms(scaled[2]));
        println!("whole check (1/4 decode, upright, file rules): {:.1} ms", ms(whole));
        let r_rules = rules.as_secs_f64() / full.as_secs_f64();
        let r_quarter = scaled[1].as_secs_f64() / full.as_secs_f64();
        println!(
            "ratio file rules / full decode: {:.2}% (bar: at most 2%) {}",
            r_rules * 100.0,
            verdict(r_rules <= 0.02)
        );
        println!(
            "ratio 1/4 decode / full decode: {:.1}% (bar: at most 40%) {}",
            r_quarter * 100.0,
            verdict(r_quarter <= 0.40)
        );
    }
}

fn verdict(ok: bool) -> &'static str {
    if ok { "PASS" } else { "FAIL" }
}
