//! Vector math on embeddings.

/// Cosine similarity of two vectors of the same length (0 when either is all zeros).
pub fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let (mut dot, mut na, mut nb) = (0.0f32, 0.0f32, 0.0f32);
    for (x, y) in a.iter().zip(b) {
        dot += x * y;
        na += x * x;
        nb += y * y;
    }
    let denom = (na * nb).sqrt();
    if denom == 0.0 {
        0.0
    } else {
        dot / denom
    }
}

/// Scales `v` to unit length in place; an all-zero vector stays zero.
pub fn l2_normalize(v: &mut [f32]) {
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm > 0.0 {
        v.iter_mut().for_each(|x| *x /= norm);
    }
}

/// The unit vector along `sum(weight * v)` over `parts` (vectors of one length): several ideas
/// as one query, a negative weight taking an idea away. None when the parts cancel out (the sum
/// is rounding noise next to the weights) or there are none.
pub fn weighted_sum(parts: &[(&[f32], f32)]) -> Option<Vec<f32>> {
    let (first, _) = parts.first()?;
    let mut sum = vec![0f32; first.len()];
    for (v, w) in parts {
        sum.iter_mut().zip(v.iter()).for_each(|(s, x)| *s += w * x);
    }
    let norm = dot(&sum, &sum).sqrt();
    let scale: f32 = parts.iter().map(|(_, w)| w.abs()).sum();
    if !(norm > 1e-4 * scale) {
        return None;
    }
    sum.iter_mut().for_each(|x| *x /= norm);
    Some(sum)
}

/// The standard deviation of `query`'s dot products with `rows`: how widely its scores spread
/// over a library. None for fewer than two rows or no spread at all.
pub fn score_spread(query: &[f32], rows: &[&[f32]]) -> Option<f32> {
    if rows.len() < 2 {
        return None;
    }
    let scores: Vec<f64> = rows.iter().map(|r| f64::from(dot(query, r))).collect();
    let mean = scores.iter().sum::<f64>() / scores.len() as f64;
    let spread = (scores.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / scores.len() as f64).sqrt() as f32;
    (spread > 1e-6).then_some(spread)
}

/// [`weighted_sum`] with each part's weight counted per unit of its score spread over `rows`
/// (a library's vectors): then each part moves the ranking as much as its weight says. An
/// image's scores over a library spread far wider than a caption's (images of one arrangement
/// are all alike to it), and would otherwise drown an idea added to it. A part whose scores do
/// not spread keeps its weight.
pub fn balanced_sum(parts: &[(&[f32], f32)], rows: &[&[f32]]) -> Option<Vec<f32>> {
    let scaled: Vec<(&[f32], f32)> = parts.iter().map(|&(v, w)| (v, score_spread(v, rows).map_or(w, |s| w / s))).collect();
    weighted_sum(&scaled)
}

/// The dot product of two vectors of the same length.
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// The largest absolute difference between two vectors, component by component.
pub fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

/// The `k` largest of `scores` as `(index, score)`, best first (ties: lower index first;
/// NaN never wins).
pub fn top_k(scores: &[f32], k: usize) -> Vec<(usize, f32)> {
    let k = k.min(scores.len());
    if k == 0 {
        return Vec::new();
    }
    let order = |a: &usize, b: &usize| {
        let (x, y) = (scores[*a], scores[*b]);
        let key = |v: f32| if v.is_nan() { f32::NEG_INFINITY } else { v };
        key(y).total_cmp(&key(x)).then(a.cmp(b))
    };
    let mut idx: Vec<usize> = (0..scores.len()).collect();
    if k < idx.len() {
        idx.select_nth_unstable_by(k - 1, order);
        idx.truncate(k);
    }
    idx.sort_unstable_by(order);
    idx.into_iter().map(|i| (i, scores[i])).collect()
}


/// Row vectors stored as int8 codes with one scale per row (a quarter of f32's memory), for
/// exact top-k search: an integer scan bounds every row's true score, and only rows whose
/// bound reaches the k-th best lower bound are re-scored exactly from the f32 originals.
#[derive(Debug, Clone, Default)]
pub struct Int8Rows {
    dim: usize,
    codes: Vec<i8>,
    /// Per row: the scale (code * scale approximates the value).
    scales: Vec<f32>,
    /// Per row: the L1 norm of the dequantised row (bounds the query's rounding error).
    l1: Vec<f32>,
}

/// A query rounded to integers, with what its error bound needs.
#[derive(Debug, Clone)]
pub struct Int8Query {
    codes: Vec<i16>,
    scale: f32,
    /// L1 norm of the f32 query.
    l1: f32,
}

fn quantize(v: &[f32]) -> (Vec<i8>, f32) {
    let max = v.iter().fold(0f32, |m, x| m.max(x.abs()));
    if max == 0.0 || !max.is_finite() {
        return (vec![0; v.len()], 0.0);
    }
    let scale = max / 127.0;
    (v.iter().map(|x| (x / scale).round().clamp(-127.0, 127.0) as i8).collect(), scale)
}

/// Integer dot product; the plain widening multiply-sum that LLVM turns into multiply-add
/// instructions (pmaddwd) when compiled for AVX2.
#[inline(always)]
fn dot_i8(a: &[i16], b: &[i8]) -> i32 {
    a.iter().zip(b).map(|(&x, &y)| i32::from(x) * i32::from(y)).sum()
}

impl Int8Rows {
    /// No rows of length `dim`.
    pub fn new(dim: usize) -> Self {
        Int8Rows { dim, ..Default::default() }
    }

    /// No rows, with room for `rows` of them (a growing buffer would briefly hold twice the codes).
    pub fn with_capacity(dim: usize, rows: usize) -> Self {
        Int8Rows { dim, codes: Vec::with_capacity(dim * rows), scales: Vec::with_capacity(rows), l1: Vec::with_capacity(rows) }
    }

    /// Rows stored.
    pub fn len(&self) -> usize {
        self.scales.len()
    }

    /// Whether no row is stored.
    pub fn is_empty(&self) -> bool {
        self.scales.is_empty()
    }

    /// Bytes held.
    pub fn bytes(&self) -> usize {
        self.codes.len() + 8 * self.scales.len()
    }

    /// Appends a row (of length `dim`).
    pub fn push(&mut self, row: &[f32]) {
        assert_eq!(row.len(), self.dim, "row length");
        let (codes, scale) = quantize(row);
        self.l1.push(codes.iter().map(|&c| f32::from(c).abs() * scale).sum());
        self.codes.extend(codes);
        self.scales.push(scale);
    }

    /// Rounds a query for [`Int8Rows::bounds`].
    pub fn query(&self, q: &[f32]) -> Int8Query {
        let (codes, scale) = quantize(q);
        Int8Query { codes: codes.into_iter().map(i16::from).collect(), scale, l1: q.iter().map(|x| x.abs()).sum() }
    }

    /// Lower and upper bounds of the exact dot product of the query with rows `start..start+lo.len()`.
    pub fn bounds(&self, q: &Int8Query, start: usize, lo: &mut [f32], hi: &mut [f32]) {
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU has AVX2, checked just above.
            unsafe { self.bounds_avx2(q, start, lo, hi) };
            return;
        }
        self.bounds_portable(q, start, lo, hi)
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    unsafe fn bounds_avx2(&self, q: &Int8Query, start: usize, lo: &mut [f32], hi: &mut [f32]) {
        self.bounds_portable(q, start, lo, hi)
    }

    #[inline(always)]
    fn bounds_portable(&self, q: &Int8Query, start: usize, lo: &mut [f32], hi: &mut [f32]) {
        let d = self.dim;
        for (i, (lo, hi)) in lo.iter_mut().zip(hi.iter_mut()).enumerate() {
            let row = start + i;
            let s = self.scales[row];
            let approx = dot_i8(&q.codes, &self.codes[row * d..(row + 1) * d]) as f32 * s * q.scale;
            // |q.x - approx| <= |q.(x - s*xq)| + |(q - sq*qq).(s*xq)| <= l1(q)*s/2 + sq/2*l1(s*xq),
            // widened a little for the float rounding of the terms themselves.
            let bound = (q.l1 * s + q.scale * self.l1[row]) * 0.5 * 1.0001 + 1e-6;
            *lo = approx - bound;
            *hi = approx + bound;
        }
    }
}

/// The exact top `k` given per-row bounds of the scores: rows whose upper bound falls below the
/// k-th largest lower bound cannot be among the best, the rest are scored by `exact`.
/// Returns `(row, exact score)`, best first, and how many rows were scored exactly.
pub fn exact_top_k(lo: &[f32], hi: &[f32], k: usize, mut exact: impl FnMut(usize) -> f32) -> (Vec<(usize, f32)>, usize) {
    let k = k.min(lo.len());
    if k == 0 {
        return (Vec::new(), 0);
    }
    let threshold = top_k(lo, k)[k - 1].1;
    let candidates: Vec<usize> = (0..hi.len()).filter(|&i| hi[i] >= threshold).collect();
    let scores: Vec<f32> = candidates.iter().map(|&i| exact(i)).collect();
    let best = top_k(&scores, k).into_iter().map(|(c, s)| (candidates[c], s)).collect();
    (best, candidates.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_balanced_sum_weighs_each_part_by_the_spread_of_its_scores() {
        // Over these rows the first part's scores spread 4 times wider than the second's: with
        // weights 1 and 1 the balanced sum leans 4:1 toward the second.
        let rows: Vec<Vec<f32>> = vec![vec![0.8, 0.0], vec![-0.8, 0.2], vec![0.0, -0.2]];
        let rows: Vec<&[f32]> = rows.iter().map(Vec::as_slice).collect();
        let (a, b) = ([1.0f32, 0.0], [0.0f32, 1.0]);
        let (sa, sb) = (score_spread(&a, &rows).unwrap(), score_spread(&b, &rows).unwrap());
        assert!((sa / sb - 4.0).abs() < 1e-5, "{sa} {sb}");
        let v = balanced_sum(&[(&a, 1.0), (&b, 1.0)], &rows).unwrap();
        assert!((v[1] / v[0] - 4.0).abs() < 1e-4, "{v:?}");
        // One part, or a library too small to spread, is the plain weighted sum.
        assert_eq!(balanced_sum(&[(&a, 2.0)], &rows), weighted_sum(&[(&a, 1.0)]));
        assert_eq!(balanced_sum(&[(&a, 1.0), (&b, 1.0)], &rows[..1]), weighted_sum(&[(&a, 1.0), (&b, 1.0)]));
        // A part that cancels itself still cancels.
        assert_eq!(balanced_sum(&[(&a, 1.0), (&a, -1.0)], &rows), None);
        assert_eq!(score_spread(&a, &[&[0.5, 0.0], &[0.5, 1.0]]), None, "equal scores do not spread");
    }

    #[test]
    fn weighted_sums_add_and_take_away_ideas() {
        let (x, y) = ([1.0f32, 0.0, 0.0], [0.0f32, 1.0, 0.0]);
        let both = weighted_sum(&[(&x, 1.0), (&y, 1.0)]).unwrap();
        let h = std::f32::consts::FRAC_1_SQRT_2;
        assert!(max_abs_diff(&both, &[h, h, 0.0]) < 1e-6, "{both:?}");
        let leaning = weighted_sum(&[(&x, 3.0), (&y, -1.0)]).unwrap();
        assert!(leaning[0] > 0.9 && leaning[1] < 0.0, "{leaning:?}");
        assert!((dot(&leaning, &leaning) - 1.0).abs() < 1e-6);
        assert_eq!(weighted_sum(&[(&x, 1.0), (&x, -1.0)]), None, "an idea minus itself is nothing");
        assert_eq!(weighted_sum(&[(&x, 0.0)]), None);
        assert_eq!(weighted_sum(&[]), None);
    }

    #[test]
    fn int8_search_finds_the_exact_top_k() {
        // Deterministic pseudo-random unit vectors, clustered so that near-ties are common.
        let mut state = 12345u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 11) as f32 / (1u64 << 53) as f32 - 0.5
        };
        let dim = 48;
        let centres: Vec<Vec<f32>> = (0..5).map(|_| (0..dim).map(|_| next()).collect()).collect();
        let rows: Vec<Vec<f32>> = (0..3000)
            .map(|i| {
                let mut v: Vec<f32> = centres[i % 5].iter().map(|c| c + 0.05 * next()).collect();
                l2_normalize(&mut v);
                v
            })
            .collect();
        let mut index = Int8Rows::new(dim);
        rows.iter().for_each(|r| index.push(r));
        for query in rows.iter().step_by(97) {
            let exact: Vec<f32> = rows.iter().map(|r| dot(query, r)).collect();
            let want = top_k(&exact, 10);
            let q = index.query(query);
            let (mut lo, mut hi) = (vec![0.0; rows.len()], vec![0.0; rows.len()]);
            index.bounds(&q, 0, &mut lo, &mut hi);
            for i in 0..rows.len() {
                assert!(lo[i] <= exact[i] && exact[i] <= hi[i], "row {i}: {} <= {} <= {}", lo[i], exact[i], hi[i]);
            }
            let (got, scored) = exact_top_k(&lo, &hi, 10, |i| dot(query, &rows[i]));
            assert_eq!(got, want);
            assert!(scored < rows.len());
        }
        let mut plain = [0.0f32; 16];
        plain[3] = 1.0;
        let mut small = Int8Rows::new(16);
        small.push(&plain);
        small.push(&[0.0; 16]);
        assert_eq!(small.len(), 2);
        assert_eq!(small.bytes(), 32 + 16);
    }

    #[test]
    fn top_k_is_the_k_best_in_order() {
        let scores = [0.1, 0.9, f32::NAN, 0.5, 0.9, -1.0];
        assert_eq!(top_k(&scores, 3), vec![(1, 0.9), (4, 0.9), (3, 0.5)]);
        assert_eq!(top_k(&scores, 0), vec![]);
        assert_eq!(top_k(&scores, 10).len(), 6);
        assert_eq!(top_k(&scores, 10)[4].0, 5);
    }

    #[test]
    fn cosine_of_parallel_orthogonal_and_zero_vectors() {
        assert!((cosine(&[1.0, 2.0], &[2.0, 4.0]) - 1.0).abs() < 1e-6);
        assert_eq!(cosine(&[1.0, 0.0], &[0.0, 3.0]), 0.0);
        assert_eq!(cosine(&[0.0, 0.0], &[1.0, 1.0]), 0.0);
        assert_eq!(max_abs_diff(&[1.0, -2.0], &[1.5, -2.25]), 0.5);
        let mut v = [3.0, 4.0];
        l2_normalize(&mut v);
        assert_eq!(v, [0.6, 0.8]);
        let mut zero = [0.0, 0.0];
        l2_normalize(&mut zero);
        assert_eq!(zero, [0.0, 0.0]);
        assert_eq!(dot(&[1.0, 2.0], &[3.0, 4.0]), 11.0);
    }
}
