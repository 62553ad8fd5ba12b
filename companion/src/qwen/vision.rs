//! The Qwen2.5-VL vision tower: patch embedding, window/full attention blocks with 2-D rotary
//! positions, and the patch merger that turns 2×2 patches into one language-model token.

use burn::module::{Module, Param};
use burn::nn::{Linear, RmsNorm};
use relsim_shared::activation::gelu;
use burn::tensor::module::attention;
use burn::tensor::{backend::Backend, Bool, Int, Tensor, TensorData};
use relsim_shared::weights::{linear_weight, Weights};

use super::config::VisionConfig;
use super::language::SwiGlu;
use super::rope;

const NORM_EPS: f64 = 1e-6;
const ROPE_THETA: f64 = 10_000.0;

/// Self-attention with a fused qkv projection.
#[derive(Module, Debug)]
pub struct VisionAttention<B: Backend> {
    pub qkv: Linear<B>,
    pub proj: Linear<B>,
    pub num_heads: usize,
}

impl<B: Backend> VisionAttention<B> {
    /// `x` `[batch, N, C]` in window order; `cos`/`sin` `[N, head_dim]`; `windows`: attend only
    /// within each window (None: every patch attends to every patch of its image).
    pub fn forward(&self, x: Tensor<B, 3>, cos: &Tensor<B, 2>, sin: &Tensor<B, 2>, windows: Option<&Windows<B>>) -> Tensor<B, 3> {
        let [b, n, c] = x.dims();
        let hd = c / self.num_heads;
        let qkv = self.qkv.forward(x).reshape([b, n, 3, self.num_heads, hd]);
        let part = |i: usize| qkv.clone().narrow(2, i, 1).reshape([b, n, self.num_heads, hd]).swap_dims(1, 2);
        let (cos4, sin4) = (cos.clone().unsqueeze::<4>(), sin.clone().unsqueeze::<4>());
        let q = rope::apply(part(0), cos4.clone(), sin4.clone());
        let k = rope::apply(part(1), cos4, sin4);
        let v = part(2);
        let out = match windows {
            None => attention(q, k, v, None, None, Default::default()),
            Some(w) => w.join(attention(w.split(q), w.split(k), w.split(v), w.padding_mask(b, self.num_heads), None, Default::default()), b),
        };
        self.proj.forward(out.swap_dims(1, 2).reshape([b, n, c]))
    }
}

/// Window attention as a batch of windows: the tokens (already in window order, each window
/// contiguous) are cut into `count` windows of `len` slots, so attention costs `count · len²`
/// rather than `N²` and needs no `N × N` mask. Edge windows of a grid that is not a multiple of
/// the window are padded; the padding is masked as keys and dropped afterwards.
pub struct Windows<B: Backend> {
    count: usize,
    len: usize,
    /// `[count · len]` token index of each slot, `N` (a zero row) for padding, `[N]` the slot
    /// of each token, and `[count, 1, 1, len]` true at padding; None when every window is full
    /// (a reshape does it).
    padding: Option<(Tensor<B, 1, Int>, Tensor<B, 1, Int>, Tensor<B, 4, Bool>)>,
}

impl<B: Backend> Windows<B> {
    /// The windows of `sizes` tokens each, in order.
    fn new(sizes: &[usize], device: &B::Device) -> Self {
        let (count, len) = (sizes.len(), sizes.iter().copied().max().unwrap_or(1));
        let n: usize = sizes.iter().sum();
        if sizes.iter().all(|&s| s == len) {
            return Self { count, len, padding: None };
        }
        let (mut gather, mut scatter, mut mask) = (vec![n as i64; count * len], vec![0i64; n], vec![false; count * len]);
        let mut token = 0;
        for (w, &size) in sizes.iter().enumerate() {
            for slot in 0..len {
                if slot < size {
                    gather[w * len + slot] = token as i64;
                    scatter[token] = (w * len + slot) as i64;
                    token += 1;
                } else {
                    mask[w * len + slot] = true;
                }
            }
        }
        let index = |v: Vec<i64>| Tensor::<B, 1, Int>::from_data(TensorData::new(v.clone(), [v.len()]), device);
        let mask = Tensor::<B, 4, Bool>::from_data(TensorData::new(mask, [count, 1, 1, len]), device);
        Self { count, len, padding: Some((index(gather), index(scatter), mask)) }
    }

    /// `[b, heads, N, d]` → `[b · count, heads, len, d]`.
    fn split(&self, t: Tensor<B, 4>) -> Tensor<B, 4> {
        let [b, h, _, d] = t.dims();
        let t = match &self.padding {
            None => t,
            Some((gather, _, _)) => Tensor::cat(vec![t.clone(), Tensor::zeros([b, h, 1, d], &t.device())], 2).select(2, gather.clone()),
        };
        t.reshape([b, h, self.count, self.len, d]).swap_dims(1, 2).reshape([b * self.count, h, self.len, d])
    }

    /// The inverse of `split`: `[b · count, heads, len, d]` → `[b, heads, N, d]`.
    fn join(&self, t: Tensor<B, 4>, b: usize) -> Tensor<B, 4> {
        let [_, h, _, d] = t.dims();
        let t = t.reshape([b, self.count, h, self.len, d]).swap_dims(1, 2).reshape([b, h, self.count * self.len, d]);
        match &self.padding {
            None => t,
            Some((_, scatter, _)) => t.select(2, scatter.clone()),
        }
    }

    /// The key mask `[b · count, heads, len, len]` of the padding (true: masked), if any.
    fn padding_mask(&self, b: usize, heads: usize) -> Option<Tensor<B, 4, Bool>> {
        self.padding.as_ref().map(|(_, _, mask)| mask.clone().repeat_dim(0, b).expand([b * self.count, heads, self.len, self.len]))
    }
}

/// One pre-norm transformer block.
#[derive(Module, Debug)]
pub struct VisionBlock<B: Backend> {
    pub norm1: RmsNorm<B>,
    pub attn: VisionAttention<B>,
    pub norm2: RmsNorm<B>,
    pub mlp: SwiGlu<B>,
}

/// RMSNorm, then an MLP over each group of merge² neighbouring patches.
#[derive(Module, Debug)]
pub struct PatchMerger<B: Backend> {
    pub ln_q: RmsNorm<B>,
    pub fc1: Linear<B>,
    pub fc2: Linear<B>,
    pub group: usize,
}

impl<B: Backend> PatchMerger<B> {
    /// `[batch, N, C]` (groups contiguous) → `[batch, N / group, out]`.
    pub fn forward(&self, x: Tensor<B, 3>) -> Tensor<B, 3> {
        let [b, n, c] = x.dims();
        let x = self.ln_q.forward(x).reshape([b, n / self.group, c * self.group]);
        self.fc2.forward(gelu(self.fc1.forward(x)))
    }
}

/// What the tower computes for a batch of images of one grid, in natural patch order.
pub struct VisionOutput<B: Backend> {
    /// Block outputs before the merger `[batch, patches, hidden]`.
    pub patch_states: Tensor<B, 3>,
    /// Merged image features `[batch, patches / merge², out_hidden]`, one per `<|image_pad|>` token.
    pub merged: Tensor<B, 3>,
}

/// Everything a forward pass over one patch grid derives from the grid alone: the window order
/// and its inverses, the rotary tables and the window layout.
pub struct VisionPlan<B: Backend> {
    grid: (usize, usize),
    to_windows: Tensor<B, 1, Int>,
    from_windows: Tensor<B, 1, Int>,
    merged_from_windows: Tensor<B, 1, Int>,
    cos: Tensor<B, 2>,
    sin: Tensor<B, 2>,
    windows: Windows<B>,
}

/// The vision tower.
#[derive(Module, Debug)]
pub struct VisionTower<B: Backend> {
    /// The Conv3d patch embedding as a linear map over the flattened patch (no bias).
    pub patch_embed: Linear<B>,
    pub blocks: Vec<VisionBlock<B>>,
    pub merger: PatchMerger<B>,
    pub merge: usize,
    /// Window side in merged tokens (window_size / merge / patch).
    pub window: usize,
    pub fullatt_blocks: Vec<usize>,
    pub num_heads: usize,
}

impl<B: Backend> VisionTower<B> {
    /// Builds the tower from `{prefix}patch_embed…`, `{prefix}blocks.N…`, `{prefix}merger…`.
    pub fn from_weights(config: &VisionConfig, w: &impl Weights, prefix: &str, device: &B::Device) -> relsim_shared::Result<Self> {
        let c = config.hidden_size;
        let patch_len = config.in_chans * config.temporal_patch_size * config.patch_size * config.patch_size;
        let conv_shape = [c, config.in_chans, config.temporal_patch_size, config.patch_size, config.patch_size];
        let conv = w.read_f32(&format!("{prefix}patch_embed.proj.weight"), &conv_shape)?;
        let patch_embed = Linear {
            weight: Param::from_tensor(linear_weight(&conv, c, patch_len, device)),
            bias: None,
        };
        let blocks = (0..config.depth)
            .map(|i| {
                let p = format!("{prefix}blocks.{i}");
                Ok(VisionBlock {
                    norm1: w.rms_norm(&format!("{p}.norm1"), c, NORM_EPS, device)?,
                    attn: VisionAttention {
                        qkv: w.linear(&format!("{p}.attn.qkv"), c, 3 * c, true, device)?,
                        proj: w.linear(&format!("{p}.attn.proj"), c, c, true, device)?,
                        num_heads: config.num_heads,
                    },
                    norm2: w.rms_norm(&format!("{p}.norm2"), c, NORM_EPS, device)?,
                    mlp: SwiGlu {
                        gate_proj: w.linear(&format!("{p}.mlp.gate_proj"), c, config.intermediate_size, true, device)?,
                        up_proj: w.linear(&format!("{p}.mlp.up_proj"), c, config.intermediate_size, true, device)?,
                        down_proj: w.linear(&format!("{p}.mlp.down_proj"), config.intermediate_size, c, true, device)?,
                    },
                })
            })
            .collect::<relsim_shared::Result<Vec<_>>>()?;
        let group = config.spatial_merge_size * config.spatial_merge_size;
        let merger = PatchMerger {
            ln_q: w.rms_norm(&format!("{prefix}merger.ln_q"), c, NORM_EPS, device)?,
            fc1: w.linear(&format!("{prefix}merger.mlp.0"), c * group, c * group, true, device)?,
            fc2: w.linear(&format!("{prefix}merger.mlp.2"), c * group, config.out_hidden_size, true, device)?,
            group,
        };
        Ok(Self {
            patch_embed,
            blocks,
            merger,
            merge: config.spatial_merge_size,
            window: (config.window_size / config.spatial_merge_size / config.patch_size).max(1),
            fullatt_blocks: config.fullatt_block_indexes.clone(),
            num_heads: config.num_heads,
        })
    }

    /// What the forward pass derives from the patch grid `(h, w)` alone: made once per grid.
    pub fn plan(&self, grid: (usize, usize), device: &B::Device) -> VisionPlan<B> {
        let (gh, gw) = grid;
        let (mh, mw) = (gh / self.merge, gw / self.merge);
        let group = self.merge * self.merge;
        let n = gh * gw;

        // Patch rows come block by block; recover each row's (row, column) for the rotary table.
        let positions: Vec<(usize, usize)> = (0..n)
            .map(|r| {
                let (m, k) = (r / group, r % group);
                ((m / mw) * self.merge + k / self.merge, (m % mw) * self.merge + k % self.merge)
            })
            .collect();

        // Window order: windows of `window`² merged tokens, row-major, each window row-major.
        let mut order = Vec::with_capacity(mh * mw);
        let mut sizes = Vec::new();
        for wy in 0..mh.div_ceil(self.window) {
            for wx in 0..mw.div_ceil(self.window) {
                let before = order.len();
                for y in wy * self.window..((wy + 1) * self.window).min(mh) {
                    for x in wx * self.window..((wx + 1) * self.window).min(mw) {
                        order.push(y * mw + x);
                    }
                }
                sizes.push((order.len() - before) * group);
            }
        }
        let patch_order: Vec<i64> = order.iter().flat_map(|&m| (0..group).map(move |k| (m * group + k) as i64)).collect();
        let mut inverse = vec![0i64; n];
        for (i, &p) in patch_order.iter().enumerate() {
            inverse[p as usize] = i as i64;
        }
        let mut merged_inverse = vec![0i64; order.len()];
        for (i, &m) in order.iter().enumerate() {
            merged_inverse[m] = i as i64;
        }
        let index = |v: Vec<i64>| Tensor::<B, 1, Int>::from_data(TensorData::new(v.clone(), [v.len()]), device);

        let hd = self.patch_embed.weight.dims()[1] / self.num_heads;
        let ordered_positions: Vec<(usize, usize)> = patch_order.iter().map(|&p| positions[p as usize]).collect();
        let (cos, sin) = rope::vision_tables::<B>(&ordered_positions, hd, ROPE_THETA, device);
        VisionPlan {
            grid,
            to_windows: index(patch_order),
            from_windows: index(inverse),
            merged_from_windows: index(merged_inverse),
            cos,
            sin,
            windows: Windows::new(&sizes, device),
        }
    }

    /// Runs images that share one patch grid: `pixels` `[batch, h·w, patch_len]` in the
    /// processor's row order, with the grid's `plan`. Images never attend to each other.
    pub fn forward(&self, pixels: Tensor<B, 3>, plan: &VisionPlan<B>) -> VisionOutput<B> {
        debug_assert_eq!(pixels.dims()[1], plan.grid.0 * plan.grid.1, "the plan is for another grid");
        let mut x = self.patch_embed.forward(pixels).select(1, plan.to_windows.clone());
        for (i, block) in self.blocks.iter().enumerate() {
            let windows = (!self.fullatt_blocks.contains(&i)).then_some(&plan.windows);
            x = x.clone() + block.attn.forward(block.norm1.forward(x.clone()), &plan.cos, &plan.sin, windows);
            x = x.clone() + block.mlp.forward(block.norm2.forward(x));
        }
        let merged = self.merger.forward(x.clone()).select(1, plan.merged_from_windows.clone());
        VisionOutput { patch_states: x.select(1, plan.from_windows.clone()), merged }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::NdArray;
    use burn::tensor::Distribution;
    use relsim_shared::attention::scaled_dot_product;

    type B = NdArray<f32>;

    /// Ragged windows (3, 5 and 2 tokens) as one padded batch give what an N×N window mask gives.
    #[test]
    fn batched_windows_match_dense_masked_attention() {
        let device = Default::default();
        let sizes = [3usize, 5, 2];
        let n: usize = sizes.iter().sum();
        let windows = Windows::<B>::new(&sizes, &device);
        let [q, k, v] = [0, 1, 2].map(|_| Tensor::<B, 4>::random([2, 3, n, 4], Distribution::Normal(0.0, 1.0), &device));
        let batched = windows.join(attention(windows.split(q.clone()), windows.split(k.clone()), windows.split(v.clone()), windows.padding_mask(2, 3), None, Default::default()), 2);
        let window_of: Vec<usize> = sizes.iter().enumerate().flat_map(|(w, &s)| std::iter::repeat_n(w, s)).collect();
        let mask: Vec<f32> = (0..n * n).map(|i| if window_of[i / n] == window_of[i % n] { 0.0 } else { f32::NEG_INFINITY }).collect();
        let dense = scaled_dot_product(q, k, v, Some(Tensor::<B, 2>::from_data(TensorData::new(mask, [n, n]), &device).unsqueeze::<4>()));
        let diff = (batched - dense).abs().max().into_scalar();
        assert!(diff < 1e-6, "max difference {diff}");
        // Full windows need no padding at all.
        assert!(Windows::<B>::new(&[4, 4], &device).padding.is_none());
    }
}
