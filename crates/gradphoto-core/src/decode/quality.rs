//! The compression quality, estimated from the quantisation tables in the file.
//!
//! S 四.1 asks for a "compression quality factor not below 60". The only common scale is the IJG one
//! (libjpeg, libjpeg-turbo, Pillow, ImageMagick): quality q scales the Annex K tables by
//! `5000/q` (q < 50) or `200 − 2q` (q ≥ 50). A file written by such an encoder is recognised exactly; any other
//! table set (mozjpeg's defaults, camera and Photoshop tables) gets the IJG quality whose tables are nearest,
//! with how far they are.

use serde::Serialize;

use super::container::QuantTable;

/// ITU-T T.81 Annex K luminance table, natural order.
pub const ANNEX_K_LUMA: [u16; 64] = [
    16, 11, 10, 16, 24, 40, 51, 61, 12, 12, 14, 19, 26, 58, 60, 55, 14, 13, 16, 24, 40, 57, 69, 56, 14, 17, 22, 29, 51,
    87, 80, 62, 18, 22, 37, 56, 68, 109, 103, 77, 24, 35, 55, 64, 81, 104, 113, 92, 49, 64, 78, 87, 103, 121, 120, 101,
    72, 92, 95, 98, 112, 100, 103, 99,
];

/// ITU-T T.81 Annex K chrominance table, natural order.
pub const ANNEX_K_CHROMA: [u16; 64] = [
    17, 18, 24, 47, 99, 99, 99, 99, 18, 21, 26, 66, 99, 99, 99, 99, 24, 26, 56, 99, 99, 99, 99, 99, 47, 66, 99, 99, 99,
    99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99,
    99, 99, 99, 99, 99, 99,
];

#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct QualityEstimate {
    /// The IJG-equivalent quality, 1–100.
    pub quality: u8,
    /// The tables are exactly those an IJG encoder writes at this quality.
    pub exact: bool,
    /// How far the file's tables are from the IJG tables at `quality`: the geometric mean of
    /// max(t, t') / min(t, t') − 1 over the coefficients. 0 when exact; mozjpeg's defaults sit near 0.2.
    pub deviation: f64,
}

/// The table an IJG encoder writes for `base` at `quality` (libjpeg's `jpeg_add_quant_table` with force_baseline
/// when `baseline`).
pub fn ijg_table(base: &[u16; 64], quality: u8, baseline: bool) -> [u16; 64] {
    let q = u32::from(quality.clamp(1, 100));
    let scale = if q < 50 { 5000 / q } else { 200 - 2 * q };
    let max = if baseline { 255 } else { 32767 };
    base.map(|b| ((u32::from(b) * scale + 50) / 100).clamp(1, max) as u16)
}

/// Estimates quality from the luminance table and, when the image has colour, the chrominance table.
pub fn estimate(luma: &QuantTable, chroma: Option<&QuantTable>) -> QualityEstimate {
    let mut best = QualityEstimate { quality: 1, exact: false, deviation: f64::INFINITY };
    // Highest quality first, so that of two qualities giving the same tables the higher is reported.
    for q in (1..=100u8).rev() {
        let baseline = !luma.precision16;
        let want_luma = ijg_table(&ANNEX_K_LUMA, q, baseline);
        let mut log_sum = log_distance(&luma.values, &want_luma);
        let mut n = 64.0;
        let mut exact = luma.values == want_luma;
        if let Some(c) = chroma {
            let want_chroma = ijg_table(&ANNEX_K_CHROMA, q, !c.precision16);
            // Chroma counts half: encoders vary it more freely, and the eye judges quality by luminance.
            log_sum += 0.5 * log_distance(&c.values, &want_chroma);
            n += 32.0;
            exact &= c.values == want_chroma;
        }
        let deviation = if exact { 0.0 } else { (log_sum / n).exp() - 1.0 };
        if exact {
            return QualityEstimate { quality: q, exact: true, deviation: 0.0 };
        }
        if deviation < best.deviation {
            best = QualityEstimate { quality: q, exact: false, deviation };
        }
    }
    best
}

fn log_distance(got: &[u16; 64], want: &[u16; 64]) -> f64 {
    got.iter().zip(want).map(|(&g, &w)| (f64::from(g.max(1)) / f64::from(w.max(1))).ln().abs()).sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(values: [u16; 64]) -> QuantTable {
        QuantTable { slot: 0, precision16: false, values }
    }

    #[test]
    fn every_ijg_quality_is_recognised_exactly() {
        for q in 1..=100 {
            let est =
                estimate(&table(ijg_table(&ANNEX_K_LUMA, q, true)), Some(&table(ijg_table(&ANNEX_K_CHROMA, q, true))));
            // Tables at q = 1 and 2 differ only by clamping at 255; all other qualities are unique.
            assert_eq!(est.quality, q, "q={q}");
            assert!(est.exact);
        }
    }

    #[test]
    fn scaled_tables_give_the_nearest_quality_and_a_deviation() {
        let mut t = ijg_table(&ANNEX_K_LUMA, 80, true);
        for v in t.iter_mut().step_by(3) {
            *v += 1;
        }
        let est = estimate(&table(t), None);
        assert!(!est.exact);
        assert!((78..=81).contains(&est.quality), "{est:?}");
        assert!(est.deviation > 0.0 && est.deviation < 0.2, "{est:?}");
    }
}
