//! The Qwen2.5-VL vision tower: patch embedding, window/full attention blocks with 2-D rotary
//! positions, and the patch merger that turns 2×2 patches into one language-model token.

use burn::module::{Module, Param};
use burn::nn::{Linear, RmsNorm};
use burn::tensor::activation::gelu;
use burn::tensor::{backend::Backend, Int, Tensor, TensorData};
use relsim_shared::attention::scaled_dot_product;
use relsim_shared::weights::Weights;

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
    /// `x` `[batch, N, C]`; `cos`/`sin` `[N, head_dim]`; `mask` `[N, N]` additive (None = all attend).
    pub fn forward(&self, x: Tensor<B, 3>, cos: &Tensor<B, 2>, sin: &Tensor<B, 2>, mask: Option<&Tensor<B, 2>>) -> Tensor<B, 3> {
        let [b, n, c] = x.dims();
        let hd = c / self.num_heads;
        let qkv = self.qkv.forward(x).reshape([b, n, 3, self.num_heads, hd]);
        let part = |i: usize| qkv.clone().narrow(2, i, 1).reshape([b, n, self.num_heads, hd]).swap_dims(1, 2);
        let (cos4, sin4) = (cos.clone().unsqueeze::<4>(), sin.clone().unsqueeze::<4>());
        let q = rope::apply(part(0), cos4.clone(), sin4.clone());
        let k = rope::apply(part(1), cos4, sin4);
        let v = part(2);
        let mask = mask.map(|m| m.clone().unsqueeze::<4>());
        let out = scaled_dot_product(q, k, v, mask).swap_dims(1, 2).reshape([b, n, c]);
        self.proj.forward(out)
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
            weight: Param::from_tensor(Tensor::<B, 2>::from_data(TensorData::new(conv, [c, patch_len]), device).transpose()),
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

    /// Runs images that share one patch grid: `pixels` `[batch, h·w, patch_len]` in the
    /// processor's row order, `grid` (h, w) in patches. Images never attend to each other.
    pub fn forward(&self, pixels: Tensor<B, 3>, grid: (usize, usize)) -> VisionOutput<B> {
        let device = pixels.device();
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
        let mut window_of = Vec::with_capacity(mh * mw);
        for wy in 0..mh.div_ceil(self.window) {
            for wx in 0..mw.div_ceil(self.window) {
                for y in wy * self.window..((wy + 1) * self.window).min(mh) {
                    for x in wx * self.window..((wx + 1) * self.window).min(mw) {
                        order.push(y * mw + x);
                        window_of.push(wy * mw.div_ceil(self.window) + wx);
                    }
                }
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
        let index = |v: Vec<i64>| Tensor::<B, 1, Int>::from_data(TensorData::new(v.clone(), [v.len()]), &device);

        let hd = self.patch_embed.weight.dims()[1] / self.num_heads;
        let ordered_positions: Vec<(usize, usize)> = patch_order.iter().map(|&p| positions[p as usize]).collect();
        let (cos, sin) = rope::vision_tables::<B>(&ordered_positions, hd, ROPE_THETA, &device);

        // Window attention: a patch attends only to patches of its own window.
        let mut mask = vec![0f32; n * n];
        for i in 0..n {
            for j in 0..n {
                if window_of[i / group] != window_of[j / group] {
                    mask[i * n + j] = f32::NEG_INFINITY;
                }
            }
        }
        let window_mask = Tensor::<B, 2>::from_data(TensorData::new(mask, [n, n]), &device);

        let mut x = self.patch_embed.forward(pixels).select(1, index(patch_order));
        for (i, block) in self.blocks.iter().enumerate() {
            let mask = if self.fullatt_blocks.contains(&i) { None } else { Some(&window_mask) };
            x = x.clone() + block.attn.forward(block.norm1.forward(x.clone()), &cos, &sin, mask);
            x = x.clone() + block.mlp.forward(block.norm2.forward(x));
        }
        let merged = self.merger.forward(x.clone()).select(1, index(merged_inverse));
        VisionOutput { patch_states: x.select(1, index(inverse)), merged }
    }
}
