//! Colour science for the background and light rules: sRGB → CIELAB (D65) and the CIEDE2000 colour difference.

use std::sync::LazyLock;

/// CIELAB L*, a*, b*.
pub type Lab = [f32; 3];

fn srgb_to_linear(c: f32) -> f32 {
    let c = c / 255.0;
    if c <= 0.04045 { c / 12.92 } else { ((c + 0.055) / 1.055).powf(2.4) }
}

pub fn lab(rgb: [f32; 3]) -> Lab {
    lab_of_linear(rgb.map(srgb_to_linear))
}

/// [`lab`] of 8-bit values, the linearisation looked up instead of computed (`powf` per channel): the same values,
/// for measures that read hundreds of whole pixels.
pub fn lab_u8(rgb: [u8; 3]) -> Lab {
    static LINEAR: LazyLock<[f32; 256]> = LazyLock::new(|| std::array::from_fn(|i| srgb_to_linear(i as f32)));
    lab_of_linear(rgb.map(|c| LINEAR[usize::from(c)]))
}

fn lab_of_linear([r, g, b]: [f32; 3]) -> Lab {
    // sRGB to XYZ, D65, normalised by the white point.
    let x = (0.412_456_4 * r + 0.357_576_1 * g + 0.180_437_5 * b) / 0.950_47;
    let y = 0.212_672_9 * r + 0.715_152_2 * g + 0.072_175 * b;
    let z = (0.019_333_9 * r + 0.119_192 * g + 0.950_304_1 * b) / 1.088_83;
    let f = |t: f32| if t > 216.0 / 24389.0 { t.cbrt() } else { (24389.0 / 27.0 * t + 16.0) / 116.0 };
    let (fx, fy, fz) = (f(x), f(y), f(z));
    [116.0 * fy - 16.0, 500.0 * (fx - fy), 200.0 * (fy - fz)]
}

/// CIEDE2000 ΔE between two Lab colours (kL = kC = kH = 1).
pub fn delta_e2000(a: Lab, b: Lab) -> f32 {
    let (l1, a1, b1) = (f64::from(a[0]), f64::from(a[1]), f64::from(a[2]));
    let (l2, a2, b2) = (f64::from(b[0]), f64::from(b[1]), f64::from(b[2]));
    let c1 = (a1 * a1 + b1 * b1).sqrt();
    let c2 = (a2 * a2 + b2 * b2).sqrt();
    let cm = (c1 + c2) / 2.0;
    let g = 0.5 * (1.0 - (cm.powi(7) / (cm.powi(7) + 25f64.powi(7))).sqrt());
    let (a1p, a2p) = ((1.0 + g) * a1, (1.0 + g) * a2);
    let (c1p, c2p) = ((a1p * a1p + b1 * b1).sqrt(), (a2p * a2p + b2 * b2).sqrt());
    let hue = |b: f64, a: f64| {
        if b == 0.0 && a == 0.0 {
            0.0
        } else {
            let h = b.atan2(a).to_degrees();
            if h < 0.0 { h + 360.0 } else { h }
        }
    };
    let (h1p, h2p) = (hue(b1, a1p), hue(b2, a2p));
    let dl = l2 - l1;
    let dc = c2p - c1p;
    let dh = if c1p * c2p == 0.0 {
        0.0
    } else if (h2p - h1p).abs() <= 180.0 {
        h2p - h1p
    } else if h2p - h1p > 180.0 {
        h2p - h1p - 360.0
    } else {
        h2p - h1p + 360.0
    };
    let dhh = 2.0 * (c1p * c2p).sqrt() * (dh.to_radians() / 2.0).sin();
    let lm = (l1 + l2) / 2.0;
    let cmp = (c1p + c2p) / 2.0;
    let hm = if c1p * c2p == 0.0 {
        h1p + h2p
    } else if (h1p - h2p).abs() <= 180.0 {
        (h1p + h2p) / 2.0
    } else if h1p + h2p < 360.0 {
        (h1p + h2p + 360.0) / 2.0
    } else {
        (h1p + h2p - 360.0) / 2.0
    };
    let t = 1.0 - 0.17 * (hm - 30.0).to_radians().cos()
        + 0.24 * (2.0 * hm).to_radians().cos()
        + 0.32 * (3.0 * hm + 6.0).to_radians().cos()
        - 0.20 * (4.0 * hm - 63.0).to_radians().cos();
    let d_theta = 30.0 * (-((hm - 275.0) / 25.0).powi(2)).exp();
    let rc = 2.0 * (cmp.powi(7) / (cmp.powi(7) + 25f64.powi(7))).sqrt();
    let sl = 1.0 + 0.015 * (lm - 50.0).powi(2) / (20.0 + (lm - 50.0).powi(2)).sqrt();
    let sc = 1.0 + 0.045 * cmp;
    let sh = 1.0 + 0.015 * cmp * t;
    let rt = -(2.0 * d_theta).to_radians().sin() * rc;
    let v = (dl / sl).powi(2) + (dc / sc).powi(2) + (dhh / sh).powi(2) + rt * (dc / sc) * (dhh / sh);
    v.max(0.0).sqrt() as f32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lab_of_known_colours() {
        let white = lab([255.0, 255.0, 255.0]);
        assert!((white[0] - 100.0).abs() < 0.01 && white[1].abs() < 0.01 && white[2].abs() < 0.01, "{white:?}");
        let blue = lab([100.0, 197.0, 255.0]);
        assert!((blue[0] - 76.4).abs() < 0.5 && blue[2] < -30.0, "{blue:?}");
    }

    #[test]
    fn lab_u8_is_lab_bit_for_bit() {
        for v in 0..=255u8 {
            let i = 255 - v;
            for rgb in [[v, v, v], [v, i, v / 2], [i, v / 3, v], [v, 0, 255]] {
                let whole = lab(rgb.map(f32::from));
                assert_eq!(lab_u8(rgb).map(f32::to_bits), whole.map(f32::to_bits), "{rgb:?}");
            }
        }
    }

    #[test]
    fn ciede2000_reference_pairs() {
        // Sharma, Wu and Dalal (2005), test data pairs 1, 7, 13, 25.
        let cases = [
            ([50.0, 2.6772, -79.7751], [50.0, 0.0, -82.7485], 2.0425),
            ([50.0, 0.0, 0.0], [50.0, -1.0, 2.0], 2.3669),
            ([50.0, 2.49, -0.001], [50.0, -2.49, 0.0011], 7.2195),
            ([60.2574, -34.0099, 36.2677], [60.4626, -34.1751, 39.4387], 1.2644),
        ];
        for (a, b, want) in cases {
            let got = delta_e2000(a, b);
            assert!((got - want).abs() < 1e-3, "{a:?} {b:?}: {got} vs {want}");
            assert!((delta_e2000(b, a) - want).abs() < 1e-3);
        }
        assert_eq!(delta_e2000([50.0, 10.0, 10.0], [50.0, 10.0, 10.0]), 0.0);
    }
}
