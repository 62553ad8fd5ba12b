//! Rotary position embeddings: 2-D for the vision tower, M-RoPE (t, h, w) for the language model,
//! and the position ids Qwen2.5-VL gives a prompt holding an image.

use burn::tensor::{backend::Backend, Tensor, TensorData};

/// `1 / theta^(2i/dim)` for i in 0..dim/2, in f32 as transformers computes it.
fn inv_freq(dim: usize, theta: f64) -> Vec<f32> {
    (0..dim / 2).map(|i| 1.0 / (theta as f32).powf((2 * i) as f32 / dim as f32)).collect()
}

/// cos and sin tables `[rows, head_dim]` from per-row angles of length head_dim/2 (duplicated).
fn tables<B: Backend>(angles: Vec<Vec<f32>>, head_dim: usize, device: &B::Device) -> (Tensor<B, 2>, Tensor<B, 2>) {
    let rows = angles.len();
    let (mut cos, mut sin) = (Vec::with_capacity(rows * head_dim), Vec::with_capacity(rows * head_dim));
    for row in &angles {
        for _ in 0..2 {
            cos.extend(row.iter().map(|a| a.cos()));
            sin.extend(row.iter().map(|a| a.sin()));
        }
    }
    (
        Tensor::from_data(TensorData::new(cos, [rows, head_dim]), device),
        Tensor::from_data(TensorData::new(sin, [rows, head_dim]), device),
    )
}

/// Vision rotary tables for patches at `positions` (row, column), head width `head_dim`:
/// the first half of the frequencies rotate with the row, the second with the column.
pub fn vision_tables<B: Backend>(positions: &[(usize, usize)], head_dim: usize, theta: f64, device: &B::Device) -> (Tensor<B, 2>, Tensor<B, 2>) {
    let freqs = inv_freq(head_dim / 2, theta);
    let angles = positions
        .iter()
        .map(|&(h, w)| freqs.iter().map(|f| h as f32 * f).chain(freqs.iter().map(|f| w as f32 * f)).collect())
        .collect();
    tables(angles, head_dim, device)
}

/// M-RoPE tables for `position_ids` (3 rows: t, h, w): frequency i follows the component whose
/// `mrope_section` holds it.
pub fn mrope_tables<B: Backend>(
    position_ids: &[Vec<i64>; 3],
    head_dim: usize,
    theta: f64,
    mrope_section: [usize; 3],
    device: &B::Device,
) -> (Tensor<B, 2>, Tensor<B, 2>) {
    let freqs = inv_freq(head_dim, theta);
    let component: Vec<usize> =
        (0..3).flat_map(|c| std::iter::repeat_n(c, mrope_section[c])).collect();
    let angles = (0..position_ids[0].len())
        .map(|s| freqs.iter().enumerate().map(|(i, f)| position_ids[component[i]][s] as f32 * f).collect())
        .collect();
    tables(angles, head_dim, device)
}

/// `x * cos + rotate_half(x) * sin` over the last dimension; `cos`/`sin` broadcast from `[S, D]`.
pub fn apply<B: Backend>(x: Tensor<B, 4>, cos: Tensor<B, 4>, sin: Tensor<B, 4>) -> Tensor<B, 4> {
    let d = x.dims()[3];
    let first = x.clone().narrow(3, 0, d / 2);
    let second = x.clone().narrow(3, d / 2, d / 2);
    let rotated = Tensor::cat(vec![second.neg(), first], 3);
    x * cos + rotated * sin
}

/// Qwen2.5-VL position ids `[3][seq]` for `input_ids` holding runs of `image_token_id`, the k-th
/// run being an image of `merged_grids[k]` (h, w) merged patches: text counts up on all three
/// axes; image tokens take (start, start + row, start + column); text after an image continues
/// from start + max(h, w).
pub fn position_ids(input_ids: &[u32], image_token_id: u32, merged_grids: &[(usize, usize)]) -> [Vec<i64>; 3] {
    let mut ids: [Vec<i64>; 3] = Default::default();
    let mut grids = merged_grids.iter();
    let mut next = 0i64;
    let mut i = 0;
    while i < input_ids.len() {
        let grid = if input_ids[i] == image_token_id { grids.next() } else { None };
        if let Some(&(gh, gw)) = grid {
            let start = next;
            for k in 0..gh * gw {
                ids[0].push(start);
                ids[1].push(start + (k / gw) as i64);
                ids[2].push(start + (k % gw) as i64);
            }
            i += gh * gw;
            next = start + gh.max(gw) as i64;
        } else {
            for axis in &mut ids {
                axis.push(next);
            }
            next += 1;
            i += 1;
        }
    }
    ids
}

/// The position after the last of `position_ids`: where generated text continues (all three axes).
pub fn next_position(position_ids: &[Vec<i64>; 3]) -> i64 {
    position_ids.iter().flatten().max().map_or(0, |m| m + 1)
}
