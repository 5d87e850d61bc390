//! Where `fix` aims the framing and where the registered check measures it on the file: for studio originals
//! built from the shared portraits over sizes, face widths and headroom, the hair top, eye line and face width
//! `normalise::prepare` aims at (measured on the original) against the `registered` check of the 480 × 640 file
//! it renders, and the hair top's truth (the source's, carried through the original and the crop).
//!
//! `MIN_LONG` sets the analysis decode's least long side (the DCT scale the original is measured at; default
//! 800, a 12 MP original at 1/4): the summary gives how far the aimed framing lies from the constructed truth.
//!
//! Run: `SIZES=1800x2400 FACES=320,480 EYES=0.3,0.5 cargo run -p gradphoto-eval --example fix_framing [name filter]`

use std::sync::Arc;

use gradphoto_core::normalise::{self, FixOptions};
use gradphoto_core::{CheckOptions, Profile, check};
use gradphoto_testkit::{JpegSpec, encode};

fn list<T: std::str::FromStr>(var: &str, default: &str) -> Vec<T> {
    let text = std::env::var(var).unwrap_or_else(|_| default.to_string());
    text.split(',').map(|v| v.trim().parse().unwrap_or_else(|_| panic!("{var}: {v}"))).collect()
}

fn main() {
    let filter = std::env::args().nth(1).unwrap_or_default();
    let models = Arc::new(gradphoto_eval::face_models(&gradphoto_testkit::models_data_dir()).expect("models"));
    let portraits = gradphoto_testkit::shared_dir().join("testdata/portraits");
    let sources = gradphoto_eval::sources(&models, &portraits);
    let min_long: u32 = list("MIN_LONG", "800")[0];
    let fix = CheckOptions { analysis_min_long_side: min_long, ..Default::default() };
    let own = CheckOptions { models: Some(models.clone()), ..Default::default() };
    let sizes: Vec<(u32, u32)> = list::<String>("SIZES", "1800x2400")
        .iter()
        .map(|s| {
            let (w, h) = s.split_once('x').expect("W×H as 1800x2400");
            (w.parse().expect("width"), h.parse().expect("height"))
        })
        .collect();
    let faces: Vec<f32> = list("FACES", "320,400,480,560,640");
    let eyes: Vec<f32> = list("EYES", "0.3,0.4,0.5");
    println!(
        "source\tsize\tface\teyes\thair aimed\thair file\thair truth\teyes aimed\teyes file\twidth aimed\twidth file"
    );
    let mut worst = [0.0f32; 3];
    let mut off_truth = [0.0f32; 3];
    let (mut n, mut outside) = (0, 0);
    for src in sources.iter().filter(|s| s.name.contains(&filter)) {
        for &(w, h) in &sizes {
            for &face in &faces {
                for &e in &eyes {
                    let img = gradphoto_eval::studio_original_with_eyes_at(src, w, h, face, e);
                    let data = encode(&gradphoto_eval::to_image(&img), &JpegSpec { quality: 92, ..Default::default() });
                    let head = format!("{}\t{w}x{h}\t{face}\t{e}", src.name);
                    let prepared = match normalise::prepare(&data, &models, &fix, &FixOptions::default()) {
                        Ok(p) => p,
                        Err(err) => {
                            println!("{head}\t{err}");
                            continue;
                        }
                    };
                    let file = normalise::encode(&prepared.rendered, 85.0).expect("encode");
                    let Some(f) = check("r.jpg", &file, &Profile::registered(), &own).person.and_then(|p| p.framing)
                    else {
                        println!("{head}\tnothing measured on the file");
                        continue;
                    };
                    let a = prepared.aimed;
                    let k = src.anchors.face_width() / face;
                    let truth_y = (src.anchors.hair_top_y - (src.anchors.eye_y() - h as f32 * e * k)) / k;
                    let truth = (truth_y - prepared.crop.top) * 480.0 / prepared.crop.width;
                    let eye = |l: [f32; 2]| (l[0] + l[1]) / 2.0;
                    println!(
                        "{head}\t{:.1}\t{:.1}\t{truth:.1}\t{:.1}\t{:.1}\t{:.1}\t{:.1}",
                        a.hair_top,
                        f.hair_top,
                        eye(a.eye_line),
                        eye(f.eye_line),
                        a.face_width,
                        f.face_width
                    );
                    let to_file = 480.0 / prepared.crop.width;
                    let truths = [truth, (h as f32 * e - prepared.crop.top) * to_file, face * to_file];
                    let aimed = [a.hair_top, eye(a.eye_line), a.face_width];
                    (0..3).for_each(|i| off_truth[i] = off_truth[i].max((aimed[i] - truths[i]).abs()));
                    let off = [f.hair_top - a.hair_top, eye(f.eye_line) - eye(a.eye_line), f.face_width - a.face_width];
                    (0..3).for_each(|i| worst[i] = worst[i].max(off[i].abs()));
                    n += 1;
                    outside += usize::from(!(50.0..=110.0).contains(&f.hair_top));
                }
            }
        }
    }
    println!(
        "{n} files: file minus aimed at most {:.1} px (hair top), {:.1} px (eye line), {:.1} px (face width); \
         hair top outside 50–110 in {outside}",
        worst[0], worst[1], worst[2]
    );
    println!(
        "analysed with a long side of at least {min_long} px: aimed minus truth at most {:.1} px (hair top), {:.1} px \
         (eye line), {:.1} px (face width)",
        off_truth[0], off_truth[1], off_truth[2]
    );
}
