//! Small statistics shared by the benchmarks and the load test.

/// The `p`-quantile (0..=1) of `values` by the nearest rank; sorts them. NaN when empty.
pub fn percentile(values: &mut [f64], p: f64) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    values.sort_by(f64::total_cmp);
    values[((values.len() - 1) as f64 * p).round() as usize]
}

/// A mean with its 95% confidence interval.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct MeanCi {
    pub mean: f64,
    pub low: f64,
    pub high: f64,
    pub n: usize,
}

/// The mean of `values` and its two-sided 95% Student-t interval (NaN mean and an infinite
/// interval when empty; a point when there is one value, whose spread is unknown, so infinite).
pub fn mean_ci95(values: &[f64]) -> MeanCi {
    let n = values.len();
    if n == 0 {
        return MeanCi { mean: f64::NAN, low: f64::NEG_INFINITY, high: f64::INFINITY, n };
    }
    let mean = values.iter().sum::<f64>() / n as f64;
    if n == 1 {
        return MeanCi { mean, low: f64::NEG_INFINITY, high: f64::INFINITY, n };
    }
    let variance = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1) as f64;
    let half = t975(n - 1) * (variance / n as f64).sqrt();
    MeanCi { mean, low: mean - half, high: mean + half, n }
}

/// The 0.975 quantile of Student's t with `df` degrees of freedom: tabled up to 30, then the
/// Cornish-Fisher expansion around the normal quantile (error below 1e-4 from 30 on).
pub fn t975(df: usize) -> f64 {
    const TABLE: [f64; 30] = [
        12.706_205, 4.302_653, 3.182_446, 2.776_445, 2.570_582, 2.446_912, 2.364_624, 2.306_004, 2.262_157, 2.228_139, 2.200_985, 2.178_813, 2.160_369, 2.144_787, 2.131_450,
        2.119_905, 2.109_816, 2.100_922, 2.093_024, 2.085_963, 2.079_614, 2.073_873, 2.068_658, 2.063_899, 2.059_539, 2.055_529, 2.051_831, 2.048_407, 2.045_230, 2.042_272,
    ];
    assert!(df >= 1, "Student's t needs at least one degree of freedom");
    if df <= TABLE.len() {
        return TABLE[df - 1];
    }
    let z: f64 = 1.959_963_984_540_054;
    let d = df as f64;
    z + (z.powi(3) + z) / (4.0 * d) + (5.0 * z.powi(5) + 16.0 * z.powi(3) + 3.0 * z) / (96.0 * d * d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn t_quantiles_meet_the_tables_and_the_normal() {
        // Values from R's qt(0.975, df).
        assert!((t975(1) - 12.7062).abs() < 1e-4);
        assert!((t975(30) - 2.0423).abs() < 1e-4);
        assert!((t975(40) - 2.021_075).abs() < 1e-4, "{}", t975(40));
        assert!((t975(120) - 1.979_930).abs() < 1e-4, "{}", t975(120));
        assert!((t975(100_000) - 1.959_99).abs() < 1e-4);
    }

    #[test]
    fn a_mean_interval_widens_with_spread_and_narrows_with_count() {
        let ci = mean_ci95(&[4.0, 6.0]);
        // mean 5, sd sqrt(2), se 1, t(1) 12.706.
        assert_eq!(ci.mean, 5.0);
        assert!((ci.high - 5.0 - 12.706_205).abs() < 1e-6 && (5.0 - ci.low - 12.706_205).abs() < 1e-6, "{ci:?}");
        let many: Vec<f64> = (0..100).map(|i| if i % 2 == 0 { 4.0 } else { 6.0 }).collect();
        let narrow = mean_ci95(&many);
        assert!(narrow.high - narrow.low < 0.5 && narrow.low < 5.0 && narrow.high > 5.0, "{narrow:?}");
        assert_eq!(mean_ci95(&[7.0, 7.0, 7.0]), MeanCi { mean: 7.0, low: 7.0, high: 7.0, n: 3 });
        assert!(mean_ci95(&[]).mean.is_nan() && mean_ci95(&[3.0]).high.is_infinite());
    }
}
