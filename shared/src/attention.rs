//! Scaled dot-product attention, shared by every transformer here (MiniLM, the Qwen vision tower
//! and decoder).

use burn::tensor::activation::softmax;
use burn::tensor::{backend::Backend, Tensor};

/// `softmax(q kᵀ / √d + mask) v` over `[batch, heads, seq, d]`; `mask` is additive and broadcast
/// (e.g. `[batch, 1, 1, seq]` for padding, `[1, 1, seq, seq]` for causal or window masks).
pub fn scaled_dot_product<B: Backend>(q: Tensor<B, 4>, k: Tensor<B, 4>, v: Tensor<B, 4>, mask: Option<Tensor<B, 4>>) -> Tensor<B, 4> {
    let d = q.dims()[3];
    let mut scores = q.matmul(k.swap_dims(2, 3)).div_scalar((d as f32).sqrt());
    if let Some(mask) = mask {
        scores = scores + mask;
    }
    softmax(scores, 3).matmul(v)
}

/// Self-attention of packed sentences by a kernel of `B`'s own where it has one (the browser's
/// CPU and WebGPU paths), on `qkv` `[tokens, 3·hidden]` as [`packed_self_attention_rows`] takes
/// it; None where `B` has none, for the caller to take burn's ops.
#[allow(unused_variables)]
pub fn packed_self_attention<B: Backend>(qkv: &Tensor<B, 2>, heads: usize, sentences: &[(usize, usize)]) -> Option<Tensor<B, 2>> {
    #[cfg(all(feature = "flex", target_arch = "wasm32"))]
    if let Some(contexts) = flex::packed_self_attention(qkv, heads, sentences) {
        return Some(contexts);
    }
    #[cfg(feature = "wgsl")]
    if let Some(contexts) = crate::wgsl::packed_self_attention(qkv, heads, sentences) {
        return Some(contexts);
    }
    None
}

/// Self-attention of packed sentences, computed directly on the values: `qkv` `[tokens,
/// 3·hidden]` row-major (queries, keys and values side by side, each `heads` slices of
/// `hidden / heads`), `sentences` as (first token, length), each attending only to itself.
/// Returns the contexts `[tokens, hidden]`, heads side by side.
///
/// The browser's CPU path runs a query's dozen tokens through this instead of burn's ops: the
/// head reshapes, copies and tiny matmuls cost more there than the arithmetic.
pub fn packed_self_attention_rows(qkv: &[f32], hidden: usize, heads: usize, sentences: &[(usize, usize)]) -> Vec<f32> {
    let head_dim = hidden / heads;
    let scale = 1.0 / (head_dim as f32).sqrt();
    let tokens = qkv.len() / (3 * hidden);
    let mut out = vec![0f32; tokens * hidden];
    let mut probs = Vec::new();
    for &(first, len) in sentences {
        let row = |t: usize| &qkv[(first + t) * 3 * hidden..(first + t + 1) * 3 * hidden];
        for h in 0..heads {
            let part = |t: usize, which: usize| &row(t)[which * hidden + h * head_dim..][..head_dim];
            for i in 0..len {
                let q = part(i, 0);
                probs.clear();
                probs.extend((0..len).map(|j| q.iter().zip(part(j, 1)).map(|(a, b)| a * b).sum::<f32>() * scale));
                let max = probs.iter().copied().fold(f32::NEG_INFINITY, f32::max);
                let mut total = 0.0;
                for p in probs.iter_mut() {
                    *p = (*p - max).exp();
                    total += *p;
                }
                let context = &mut out[(first + i) * hidden + h * head_dim..][..head_dim];
                for (j, p) in probs.iter().enumerate() {
                    let weight = p / total;
                    for (c, v) in context.iter_mut().zip(part(j, 2)) {
                        *c += weight * v;
                    }
                }
            }
        }
    }
    out
}

// Natively only the tests use it (burn-flex's batched matmuls are faster there).
#[cfg(all(feature = "flex", any(target_arch = "wasm32", test)))]
pub(crate) mod flex {
    use burn::tensor::{backend::Backend, Tensor, TensorData};

    use crate::linear::flex::flex_f32;

    /// [`super::packed_self_attention_rows`] on a contiguous f32 flex `qkv`; None otherwise.
    pub(crate) fn packed_self_attention<B: Backend>(qkv: &Tensor<B, 2>, heads: usize, sentences: &[(usize, usize)]) -> Option<Tensor<B, 2>> {
        let [tokens, width] = qkv.dims();
        let hidden = width / 3;
        let values = flex_f32(qkv.clone())?;
        let out = super::packed_self_attention_rows(values.as_slice::<f32>()?, hidden, heads, sentences);
        Some(Tensor::from_data(TensorData::new(out, [tokens, hidden]), &qkv.device()))
    }
}

#[cfg(all(test, feature = "flex"))]
mod tests {
    use burn::backend::Flex;
    use burn::tensor::{Distribution, Tensor};

    #[test]
    fn packed_rows_match_burns_attention_per_sentence() {
        let device = Default::default();
        let (hidden, heads) = (24, 3);
        let sentences = [(0, 3), (3, 5), (8, 3)];
        let qkv = Tensor::<Flex, 2>::random([11, 3 * hidden], Distribution::Normal(0.0, 2.0), &device);
        let got = super::flex::packed_self_attention(&qkv, heads, &sentences).expect("a flex f32 tensor");
        for (first, len) in sentences {
            let parts = qkv.clone().narrow(0, first, len).reshape([1, len, 3 * heads, hidden / heads]).swap_dims(1, 2);
            let part = |i: usize| parts.clone().narrow(1, i * heads, heads);
            let want = super::scaled_dot_product(part(0), part(1), part(2), None).swap_dims(1, 2).reshape([len, hidden]);
            let diff = (got.clone().narrow(0, first, len) - want).abs().max().into_scalar();
            assert!(diff < 1e-5, "sentence at {first}: {diff}");
        }
    }
}
