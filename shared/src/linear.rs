//! Linear layers, with a kernel for a few rows on the browser's CPU path.
//!
//! A search query is one sentence: each of MiniLM's linear layers multiplies ~10 token rows by a
//! weight of up to 384 x 1536. Profiled in Chromium, gemm's wasm microkernel took ~80% of such a
//! query: it is built for large products. For a few rows what counts is streaming the weight:
//! it is packed once into 16-column panels (each `[k, 16]` contiguous, so the reads are
//! sequential) and each 2-row x 16-column tile of sums stays in SIMD registers. Measured in
//! Chromium on 13 rows: 45-47 GFLOP/s, against 33 for the same tiles reading the unpacked weight
//! and 28 for 4-row x 8-column tiles on it. Natively
//! gemm's AVX-512 kernels stay faster, and every other backend keeps burn's matmul, so the kernel
//! is used only in wasm; the packed copy of each weight lives as long as the weight does.

use burn::nn::Linear;
use burn::tensor::{backend::Backend, Tensor};

/// `layer` applied to `x` `[rows, d_in]`.
pub fn linear<B: Backend>(layer: &Linear<B>, x: Tensor<B, 2>) -> Tensor<B, 2> {
    #[cfg(feature = "wgsl")]
    if let Some(y) = crate::wgsl::linear(layer, &x, crate::wgsl::Epilogue::None, None) {
        return y;
    }
    #[cfg(all(feature = "flex", target_arch = "wasm32"))]
    if let Some(y) = flex::few_rows(layer, &x) {
        return y;
    }
    layer.forward(x)
}

/// `gelu(layer(x))` (BERT's exact GELU), in one pass where the backend has a kernel for it.
pub fn linear_gelu<B: Backend>(layer: &Linear<B>, x: Tensor<B, 2>) -> Tensor<B, 2> {
    #[cfg(feature = "wgsl")]
    if let Some(y) = crate::wgsl::linear(layer, &x, crate::wgsl::Epilogue::Gelu, None) {
        return y;
    }
    crate::activation::gelu(linear(layer, x))
}

/// `layer(x) + residual`, in one pass where the backend has a kernel for it.
pub fn linear_residual<B: Backend>(layer: &Linear<B>, x: Tensor<B, 2>, residual: Tensor<B, 2>) -> Tensor<B, 2> {
    #[cfg(feature = "wgsl")]
    if let Some(y) = crate::wgsl::linear(layer, &x, crate::wgsl::Epilogue::Residual, Some(&residual)) {
        return y;
    }
    linear(layer, x) + residual
}

/// Most rows the few-row kernel takes (it was measured up to 32: 55 GFLOP/s); larger products
/// are left to gemm's blocking.
pub const MAX_FEW_ROWS: usize = 64;

/// Columns of one panel and tile: four 4-lane SIMD registers per row.
pub const PANEL: usize = 16;

/// A `[k, n]` weight as `n / 16` column panels, each `[k, 16]` row-major.
#[derive(Debug, Clone, PartialEq)]
pub struct PackedWeight {
    k: usize,
    n: usize,
    panels: Vec<f32>,
}

impl PackedWeight {
    /// Packs row-major `w` `[k, n]`; None unless `n` is a multiple of 16.
    pub fn new(w: &[f32], k: usize, n: usize) -> Option<Self> {
        if !n.is_multiple_of(PANEL) || w.len() != k * n {
            return None;
        }
        let mut panels = Vec::with_capacity(k * n);
        for j in (0..n).step_by(PANEL) {
            for row in w.chunks_exact(n) {
                panels.extend_from_slice(&row[j..j + PANEL]);
            }
        }
        Some(Self { k, n, panels })
    }

    /// `x · w (+ bias)` for row-major `x` `[m, k]`: `[m, n]`.
    pub fn matmul(&self, x: &[f32], m: usize, bias: Option<&[f32]>) -> Vec<f32> {
        let (k, n) = (self.k, self.n);
        assert!(x.len() == m * k, "PackedWeight::matmul: x is not [{m}, {k}]");
        assert!(bias.is_none_or(|b| b.len() == n), "PackedWeight::matmul: bias is not [{n}]");
        // Rows in pairs, interleaved per k so that a tile step reads one pair; an odd last row
        // runs alone (a zero row would waste a twelfth of the work at 13 rows).
        let pairs: Vec<Vec<[f32; 2]>> =
            x.chunks_exact(2 * k).map(|two| (0..k).map(|i| [two[i], two[k + i]]).collect()).collect();
        let last: Option<Vec<[f32; 1]>> = (m % 2 == 1).then(|| x[(m - 1) * k..].iter().map(|&v| [v]).collect());
        let mut out = vec![0f32; m * n];
        for (p, panel) in self.panels.chunks_exact(k * PANEL).enumerate() {
            let j = p * PANEL;
            let start: [f32; PANEL] = match bias {
                Some(b) => b[j..j + PANEL].try_into().expect("16 columns"),
                None => [0.0; PANEL],
            };
            let mut store = |row: usize, sums: &[f32; PANEL]| out[row * n + j..row * n + j + PANEL].copy_from_slice(sums);
            for (i, xs) in pairs.iter().enumerate() {
                let sums = tile(xs, panel, start);
                store(2 * i, &sums[0]);
                store(2 * i + 1, &sums[1]);
            }
            if let Some(xs) = &last {
                store(m - 1, &tile(xs, panel, start)[0]);
            }
        }
        out
    }
}

/// Sums of `R` rows (`xs[i]` holds their i-th values) against one `[k, 16]` panel.
#[inline(always)]
fn tile<const R: usize>(xs: &[[f32; R]], panel: &[f32], start: [f32; PANEL]) -> [[f32; PANEL]; R] {
    let mut acc = [start; R];
    for (xk, wv) in xs.iter().zip(panel.chunks_exact(PANEL)) {
        let wv: &[f32; PANEL] = wv.try_into().expect("16 columns");
        for (sums, &xv) in acc.iter_mut().zip(xk) {
            for (s, &wc) in sums.iter_mut().zip(wv) {
                *s += xv * wc;
            }
        }
    }
    acc
}

// Natively only the tests use it (gemm is faster there).
#[cfg(all(feature = "flex", any(target_arch = "wasm32", test)))]
pub(crate) mod flex {
    use std::any::Any;
    use std::cell::RefCell;
    use std::collections::HashMap;
    use std::rc::Rc;
    use std::sync::{Arc, Weak};

    use burn::nn::Linear;
    use burn::tensor::{backend::Backend, DType, Tensor, TensorData, TensorPrimitive};
    use burn_flex::FlexTensor;

    use super::PackedWeight;

    /// Where a weight's values are: its storage, first element and shape.
    type WeightKey = (usize, usize, usize, usize);

    /// A weight's packed copy, with a weak reference that keeps the weight's address from being
    /// reused while the entry exists (dead entries are swept).
    type Entry = (Weak<dyn Any + Send + Sync>, Rc<PackedWeight>);

    thread_local! {
        /// Packed copies of the weights seen so far.
        static PACKED: RefCell<HashMap<WeightKey, Entry>> = RefCell::default();
    }

    /// The f32 flex tensor behind `t`, if that is what `B` stores.
    pub(crate) fn flex_f32<B: Backend, const D: usize>(t: Tensor<B, D>) -> Option<FlexTensor> {
        let TensorPrimitive::Float(primitive) = t.into_primitive() else { return None };
        let any: Box<dyn Any> = Box::new(primitive);
        any.downcast::<FlexTensor>().ok().map(|t| *t).filter(|t| t.dtype() == DType::F32)
    }

    /// The packed copy of `w` `[k, n]`, made on first use.
    fn packed(w: &FlexTensor, k: usize, n: usize) -> Option<Rc<PackedWeight>> {
        let (start, _) = w.layout().contiguous_offsets()?;
        let storage = w.data_arc();
        let key = (Arc::as_ptr(&storage) as *const u8 as usize, start, k, n);
        if let Some(found) = PACKED.with_borrow(|cache| cache.get(&key).filter(|(alive, _)| alive.strong_count() > 0).map(|(_, p)| p.clone())) {
            return Some(found);
        }
        let weight = Rc::new(PackedWeight::new(w.as_slice::<f32>()?, k, n)?);
        let alive: Arc<dyn Any + Send + Sync> = storage;
        PACKED.with_borrow_mut(|cache| {
            cache.retain(|_, (alive, _)| alive.strong_count() > 0);
            cache.insert(key, (Arc::downgrade(&alive), weight.clone()));
        });
        Some(weight)
    }

    /// `layer(x)` by the few-row kernel when `x` and the weights are contiguous f32 flex tensors
    /// and `x` has at most [`super::MAX_FEW_ROWS`] rows; None otherwise.
    pub(crate) fn few_rows<B: Backend>(layer: &Linear<B>, x: &Tensor<B, 2>) -> Option<Tensor<B, 2>> {
        let [m, k] = x.dims();
        let [_, n] = layer.weight.dims();
        if m == 0 || m > super::MAX_FEW_ROWS || !n.is_multiple_of(super::PANEL) {
            return None;
        }
        let device = x.device();
        let weight = packed(&flex_f32(layer.weight.val())?, k, n)?;
        let x = flex_f32(x.clone())?;
        let bias = match &layer.bias {
            Some(b) => Some(flex_f32(b.val())?),
            None => None,
        };
        let bias = match &bias {
            Some(b) => Some(b.as_slice::<f32>()?),
            None => None,
        };
        let out = weight.matmul(x.as_slice::<f32>()?, m, bias);
        Some(Tensor::from_data(TensorData::new(out, [m, n]), &device))
    }

    /// How many packed weights are cached (for the tests).
    #[cfg(test)]
    pub(crate) fn cached() -> usize {
        PACKED.with_borrow(|cache| cache.values().filter(|(alive, _)| alive.strong_count() > 0).count())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive(x: &[f32], w: &[f32], bias: Option<&[f32]>, m: usize, k: usize, n: usize) -> Vec<f64> {
        let mut out = vec![0f64; m * n];
        for r in 0..m {
            for c in 0..n {
                let dot: f64 = (0..k).map(|i| x[r * k + i] as f64 * w[i * n + c] as f64).sum();
                out[r * n + c] = dot + bias.map_or(0.0, |b| b[c] as f64);
            }
        }
        out
    }

    fn values(len: usize, seed: u32) -> Vec<f32> {
        (0..len as u32).map(|i| ((i.wrapping_mul(2_654_435_761) ^ seed) % 2001) as f32 / 1000.0 - 1.0).collect()
    }

    #[test]
    fn matches_a_plain_matmul_for_every_row_count() {
        let (k, n) = (96, 48);
        let w = values(k * n, 7);
        let bias = values(n, 3);
        for m in 1..=9 {
            let x = values(m * k, m as u32);
            for b in [None, Some(bias.as_slice())] {
                let got = PackedWeight::new(&w, k, n).expect("48 columns").matmul(&x, m, b);
                let want = naive(&x, &w, b, m, k, n);
                let worst = got.iter().zip(&want).map(|(g, w)| (*g as f64 - w).abs()).fold(0.0, f64::max);
                assert!(worst < 1e-4, "m {m}, bias {}: worst {worst}", b.is_some());
            }
        }
    }

    #[cfg(feature = "flex")]
    #[test]
    fn flex_linear_takes_the_kernel_and_agrees_with_burn() {
        use burn::backend::Flex;
        use burn::nn::LinearConfig;
        use burn::tensor::Distribution;
        let device = Default::default();
        let layer = LinearConfig::new(48, 64).init::<Flex>(&device);
        for rows in [1, 5, 13] {
            let x = Tensor::<Flex, 2>::random([rows, 48], Distribution::Normal(0.0, 1.0), &device);
            let got = flex::few_rows(&layer, &x).expect("a contiguous f32 flex input takes the kernel");
            let diff = (got - layer.forward(x)).abs().max().into_scalar();
            assert!(diff < 1e-5, "{rows} rows: {diff}");
        }
        // Too many rows, or a column count off the tile: burn's matmul.
        let tall = Tensor::<Flex, 2>::zeros([MAX_FEW_ROWS + 1, 48], &device);
        assert!(flex::few_rows(&layer, &tall).is_none());
        let odd = LinearConfig::new(48, 24).init::<Flex>(&device);
        assert!(flex::few_rows(&odd, &Tensor::<Flex, 2>::zeros([2, 48], &device)).is_none());
        // One packed copy per weight, dropped from the cache with the weight.
        assert_eq!(flex::cached(), 1);
        drop(layer);
        assert_eq!(flex::cached(), 0);
    }
}
