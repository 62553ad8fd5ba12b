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
