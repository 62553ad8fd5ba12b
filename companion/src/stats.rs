//! Small statistics shared by the benchmarks and the load test.

/// The `p`-quantile (0..=1) of `values` by the nearest rank; sorts them. NaN when empty.
pub fn percentile(values: &mut [f64], p: f64) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    values.sort_by(f64::total_cmp);
    values[((values.len() - 1) as f64 * p).round() as usize]
}
