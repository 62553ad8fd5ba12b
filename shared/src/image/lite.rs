//! relsim-lite: a small vision transformer trained with the relsim recipe. As relsim appends
//! `<|query|>` after the image tokens of Qwen2.5-VL, relsim-lite appends a learnable query token
//! to its patch tokens; the transformer's output at that token, projected to 384 and
//! L2-normalised, is the relational embedding (in MiniLM's caption space).

use burn::config::Config;
use burn::module::{Module, Param};
use burn::nn::{Initializer, LayerNorm, LayerNormConfig, Linear, LinearConfig};
use burn::tensor::{backend::Backend, Tensor, TensorData};
use image::imageops::{self, FilterType};
use image::RgbImage;

use crate::attention::{packed_self_attention, scaled_dot_product};
use crate::error::{ModelError, Result};
use crate::linear::{linear, linear_gelu, linear_residual};
use crate::text::minilm::l2_normalize;
use crate::weights::Weights;

/// The six orders of the RGB channels.
pub const COLOUR_ORDERS: [[usize; 3]; 6] = [[0, 1, 2], [0, 2, 1], [1, 0, 2], [1, 2, 0], [2, 0, 1], [2, 1, 0]];

/// The shape of a relsim-lite model (stored as `config.json` beside its weights).
#[derive(Config, Debug, PartialEq)]
pub struct LiteConfig {
    /// Input side in pixels (images are resized to a square).
    #[config(default = 112)]
    pub image_size: usize,
    /// Patch side in pixels.
    #[config(default = 14)]
    pub patch_size: usize,
    /// Width of the transformer.
    #[config(default = 128)]
    pub hidden: usize,
    /// Transformer blocks.
    #[config(default = 4)]
    pub layers: usize,
    /// Attention heads.
    #[config(default = 4)]
    pub heads: usize,
    /// MLP width as a multiple of `hidden`.
    #[config(default = 2)]
    pub mlp_ratio: usize,
    /// Embedding size (MiniLM's).
    #[config(default = 384)]
    pub out_dim: usize,
    /// Embed each image as the mean over its six RGB channel orders (see
    /// [`RelsimLite::forward_colour_views`]): set on models trained with channel-order
    /// augmentation, whose idea of an image should not depend on its palette.
    #[config(default = false)]
    pub colour_views: bool,
}

impl LiteConfig {
    /// Patches per image.
    pub fn patches(&self) -> usize {
        (self.image_size / self.patch_size).pow(2)
    }

    /// Values per patch (RGB).
    pub fn patch_values(&self) -> usize {
        3 * self.patch_size * self.patch_size
    }

    /// Checks that the numbers fit together.
    pub fn validate(&self, name: &str) -> Result<()> {
        let bad = |reason: String| Err(ModelError::Invalid { file: name.to_string(), reason });
        if self.patch_size == 0 || self.image_size % self.patch_size != 0 {
            return bad(format!("image_size {} is not a multiple of patch_size {}", self.image_size, self.patch_size));
        }
        if self.heads == 0 || self.hidden % self.heads != 0 {
            return bad(format!("hidden {} is not a multiple of heads {}", self.hidden, self.heads));
        }
        Ok(())
    }

    /// A model with random weights (the start of training).
    pub fn init<B: Backend>(&self, device: &B::Device) -> RelsimLite<B> {
        let d = self.hidden;
        let small = Initializer::Normal { mean: 0.0, std: 0.02 };
        RelsimLite {
            patch_embed: LinearConfig::new(self.patch_values(), d).init(device),
            pos_embed: small.init([1, self.patches(), d], device),
            query_token: small.init([1, 1, d], device),
            blocks: (0..self.layers)
                .map(|_| LiteBlock {
                    norm1: LayerNormConfig::new(d).init(device),
                    qkv: LinearConfig::new(d, 3 * d).init(device),
                    proj: LinearConfig::new(d, d).init(device),
                    norm2: LayerNormConfig::new(d).init(device),
                    fc1: LinearConfig::new(d, d * self.mlp_ratio).init(device),
                    fc2: LinearConfig::new(d * self.mlp_ratio, d).init(device),
                    heads: self.heads,
                })
                .collect(),
            norm: LayerNormConfig::new(d).init(device),
            head: LinearConfig::new(d, self.out_dim).init(device),
            patch_size: self.patch_size,
        }
    }
}

/// A pre-norm transformer block: attention then MLP, each added to the residual stream.
#[derive(Module, Debug)]
pub struct LiteBlock<B: Backend> {
    pub norm1: LayerNorm<B>,
    pub qkv: Linear<B>,
    pub proj: Linear<B>,
    pub norm2: LayerNorm<B>,
    pub fc1: Linear<B>,
    pub fc2: Linear<B>,
    pub heads: usize,
}

impl<B: Backend> LiteBlock<B> {
    /// `[batch, tokens, hidden]` → same.
    pub fn forward(&self, x: Tensor<B, 3>) -> Tensor<B, 3> {
        let [batch, tokens, hidden] = x.dims();
        let head_dim = hidden / self.heads;
        // Every image's tokens as rows of one matrix: the linear layers see one product each,
        // and attention takes each image's rows as one sentence.
        let x = x.reshape([batch * tokens, hidden]);
        let qkv = linear(&self.qkv, self.norm1.forward(x.clone()));
        let images: Vec<(usize, usize)> = (0..batch).map(|b| (b * tokens, tokens)).collect();
        let context = packed_self_attention(&qkv, self.heads, &images).unwrap_or_else(|| {
            // [batch·tokens, 3·hidden] → [batch, 3·heads, tokens, head_dim]: q, k and v are head slices.
            let qkv = qkv.reshape([batch, tokens, 3 * self.heads, head_dim]).swap_dims(1, 2);
            let part = |i: usize| qkv.clone().narrow(1, i * self.heads, self.heads);
            scaled_dot_product(part(0), part(1), part(2), None).swap_dims(1, 2).reshape([batch * tokens, hidden])
        });
        let x = linear_residual(&self.proj, context, x);
        let h = linear_gelu(&self.fc1, self.norm2.forward(x.clone()));
        linear_residual(&self.fc2, h, x).reshape([batch, tokens, hidden])
    }
}

/// The relsim-lite image encoder.
#[derive(Module, Debug)]
pub struct RelsimLite<B: Backend> {
    /// Linear map of each flattened RGB patch to the transformer width.
    pub patch_embed: Linear<B>,
    /// Learned position of each patch, `[1, patches, hidden]`.
    pub pos_embed: Param<Tensor<B, 3>>,
    /// The learnable query token appended after the patches, `[1, 1, hidden]`.
    pub query_token: Param<Tensor<B, 3>>,
    pub blocks: Vec<LiteBlock<B>>,
    pub norm: LayerNorm<B>,
    /// Projection of the query token's output to the caption space.
    pub head: Linear<B>,
    pub patch_size: usize,
}

impl<B: Backend> RelsimLite<B> {
    /// `[batch, 3, size, size]` pixels (see [`pixels`]) → `[batch, out_dim]` unit vectors.
    pub fn forward(&self, images: Tensor<B, 4>) -> Tensor<B, 2> {
        self.encode(self.patch_embed.forward(self.patchify(images)))
    }

    /// `[batch, 3, size, size]` → `[batch, patches, 3·p·p]`: each patch's values channel by
    /// channel, patches in reading order.
    fn patchify(&self, images: Tensor<B, 4>) -> Tensor<B, 3> {
        let [batch, channels, size, _] = images.dims();
        let p = self.patch_size;
        let side = size / p;
        images
            .reshape([batch, channels, side, p, side, p])
            .permute([0, 2, 4, 1, 3, 5])
            .reshape([batch, side * side, channels * p * p])
    }

    /// The transformer over embedded patches `[batch, patches, hidden]` (position embeddings not
    /// yet added) → `[batch, out_dim]` unit vectors.
    fn encode(&self, patches: Tensor<B, 3>) -> Tensor<B, 2> {
        let x = patches + self.pos_embed.val();
        let [batch, _, hidden] = x.dims();
        let query = self.query_token.val().expand([batch, 1, hidden]);
        let mut x = Tensor::cat(vec![x, query], 1);
        for block in &self.blocks {
            x = block.forward(x);
        }
        let tokens = x.dims()[1];
        let at_query = self.norm.forward(x.narrow(1, tokens - 1, 1)).reshape([batch, hidden]);
        l2_normalize(self.head.forward(at_query))
    }

    /// Like [`RelsimLite::forward`], but each embedding is the normalised mean over the six
    /// orders of the RGB channels: invariant to swapping them, as channel-order augmentation
    /// taught the model to be.
    pub fn forward_colour_views(&self, images: Tensor<B, 4>) -> Tensor<B, 2> {
        let [batch, _, _, _] = images.dims();
        let patches = self.patchify(images);
        // A view's channel order permutes each patch's values by channel blocks; the patch
        // embedding of the view is the original patches times the embedding weight with its input
        // rows permuted the other way. Six small weights instead of six copies of the pixels.
        let weight = self.patch_embed.weight.val();
        let block = weight.dims()[0] / 3;
        let views: Vec<Tensor<B, 3>> = COLOUR_ORDERS
            .iter()
            .map(|order| {
                // The view's channel c is the image's channel order[c]: its rows multiply that one.
                let mut rows_of = [0; 3];
                for (c, &source) in order.iter().enumerate() {
                    rows_of[source] = c;
                }
                let permuted = Tensor::cat(rows_of.iter().map(|&c| weight.clone().narrow(0, c * block, block)).collect(), 0);
                let embedded = patches.clone().matmul(permuted.unsqueeze::<3>());
                match &self.patch_embed.bias {
                    Some(bias) => embedded + bias.val().unsqueeze::<3>(),
                    None => embedded,
                }
            })
            .collect();
        let all = self.encode(Tensor::cat(views, 0));
        let dim = all.dims()[1];
        l2_normalize(all.reshape([COLOUR_ORDERS.len(), batch, dim]).mean_dim(0).reshape([batch, dim]))
    }

    /// Loads a model saved by [`RelsimLite::named_tensors`] (PyTorch conventions: Linear
    /// weights `[out, in]`).
    pub fn from_weights(config: &LiteConfig, weights: &impl Weights, device: &B::Device) -> Result<Self> {
        config.validate(&weights.describe())?;
        let d = config.hidden;
        let ln = |k: &str| weights.layer_norm::<B>(k, d, 1e-5, device);
        let blocks = (0..config.layers)
            .map(|i| {
                let k = |name: &str| format!("blocks.{i}.{name}");
                Ok(LiteBlock {
                    norm1: ln(&k("norm1"))?,
                    qkv: weights.linear(&k("qkv"), d, 3 * d, true, device)?,
                    proj: weights.linear(&k("proj"), d, d, true, device)?,
                    norm2: ln(&k("norm2"))?,
                    fc1: weights.linear(&k("fc1"), d, d * config.mlp_ratio, true, device)?,
                    fc2: weights.linear(&k("fc2"), d * config.mlp_ratio, d, true, device)?,
                    heads: config.heads,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(RelsimLite {
            patch_embed: weights.linear("patch_embed", config.patch_values(), d, true, device)?,
            pos_embed: Param::from_tensor(weights.tensor("pos_embed", [1, config.patches(), d], device)?),
            query_token: Param::from_tensor(weights.tensor("query_token", [1, 1, d], device)?),
            blocks,
            norm: ln("norm")?,
            head: weights.linear("head", d, config.out_dim, true, device)?,
            patch_size: config.patch_size,
        })
    }

    /// Every weight by name with its shape and values, in the layout `from_weights` reads.
    pub fn named_tensors(&self) -> Vec<(String, Vec<usize>, Vec<f32>)> {
        fn entry<B: Backend, const D: usize>(name: String, t: Tensor<B, D>) -> (String, Vec<usize>, Vec<f32>) {
            let shape = t.dims().to_vec();
            (name, shape, t.into_data().convert::<f32>().into_vec::<f32>().expect("f32 data"))
        }
        let mut out = Vec::new();
        let mut linear = |name: &str, l: &Linear<B>| {
            // Back to PyTorch's [out, in].
            out.push(entry(format!("{name}.weight"), l.weight.val().transpose()));
            if let Some(b) = &l.bias {
                out.push(entry(format!("{name}.bias"), b.val()));
            }
        };
        linear("patch_embed", &self.patch_embed);
        for (i, b) in self.blocks.iter().enumerate() {
            linear(&format!("blocks.{i}.qkv"), &b.qkv);
            linear(&format!("blocks.{i}.proj"), &b.proj);
            linear(&format!("blocks.{i}.fc1"), &b.fc1);
            linear(&format!("blocks.{i}.fc2"), &b.fc2);
        }
        linear("head", &self.head);
        let mut norm = |name: &str, n: &LayerNorm<B>| {
            out.push(entry(format!("{name}.weight"), n.gamma.val()));
            if let Some(b) = &n.beta {
                out.push(entry(format!("{name}.bias"), b.val()));
            }
        };
        for (i, b) in self.blocks.iter().enumerate() {
            norm(&format!("blocks.{i}.norm1"), &b.norm1);
            norm(&format!("blocks.{i}.norm2"), &b.norm2);
        }
        norm("norm", &self.norm);
        out.push(entry("pos_embed".into(), self.pos_embed.val()));
        out.push(entry("query_token".into(), self.query_token.val()));
        out
    }

    /// The weights as a safetensors file (f32).
    pub fn to_safetensors(&self) -> Result<Vec<u8>> {
        let tensors = self.named_tensors();
        let bytes: Vec<(String, Vec<usize>, Vec<u8>)> =
            tensors.into_iter().map(|(n, s, v)| (n, s, v.iter().flat_map(|x| x.to_le_bytes()).collect())).collect();
        let views: Vec<(String, safetensors::tensor::TensorView<'_>)> = bytes
            .iter()
            .map(|(n, s, b)| Ok((n.clone(), safetensors::tensor::TensorView::new(safetensors::Dtype::F32, s.clone(), b).map_err(|e| ModelError::Invalid { file: n.clone(), reason: e.to_string() })?)))
            .collect::<Result<_>>()?;
        safetensors::serialize(views, None).map_err(|e| ModelError::Invalid { file: "relsim-lite weights".into(), reason: e.to_string() })
    }
}

/// An image as the model reads it: resized to `size` x `size` (triangle filter), channels
/// first, scaled to [-1, 1].
pub fn pixels(image: &RgbImage, size: usize) -> Vec<f32> {
    let small = if image.width() as usize == size && image.height() as usize == size {
        image.clone()
    } else {
        imageops::resize(image, size as u32, size as u32, FilterType::Triangle)
    };
    let plane = size * size;
    let mut out = vec![0f32; 3 * plane];
    for (i, p) in small.pixels().enumerate() {
        for c in 0..3 {
            out[c * plane + i] = f32::from(p.0[c]) / 127.5 - 1.0;
        }
    }
    out
}

/// A batch of [`pixels`] as a `[batch, 3, size, size]` tensor.
pub fn pixel_batch<B: Backend>(images: &[Vec<f32>], size: usize, device: &B::Device) -> Tensor<B, 4> {
    let values: Vec<f32> = images.iter().flat_map(|v| v.iter().copied()).collect();
    Tensor::from_data(TensorData::new(values, [images.len(), 3, size, size]), device)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::weights::TensorFile;
    use burn::backend::NdArray;

    type B = NdArray<f32>;

    /// A small random model and a batch of three 16x16 images for it.
    fn tiny() -> (LiteConfig, RelsimLite<B>, Tensor<B, 4>) {
        let device = Default::default();
        let config = LiteConfig::new().with_image_size(16).with_patch_size(4).with_hidden(16).with_layers(2).with_heads(2);
        let model = config.init::<B>(&device);
        let images: Vec<Vec<f32>> = (0..3).map(|i| (0..3 * 16 * 16).map(|j| ((i * 31 + j * 7) % 17) as f32 / 8.5 - 1.0).collect()).collect();
        (config, model, pixel_batch::<B>(&images, 16, &device))
    }

    #[test]
    fn weights_round_trip_through_safetensors() {
        let device = Default::default();
        let (config, model, batch) = tiny();
        let before = model.forward(batch.clone()).into_data().into_vec::<f32>().unwrap();
        let bytes = model.to_safetensors().unwrap();
        let file = TensorFile::parse("lite.safetensors", &bytes).unwrap();
        let loaded = RelsimLite::<B>::from_weights(&config, &file, &device).unwrap();
        let after = loaded.forward(batch).into_data().into_vec::<f32>().unwrap();
        assert_eq!(before, after);
        assert_eq!(before.len(), 3 * 384);
        for row in before.chunks(384) {
            assert!((row.iter().map(|x| x * x).sum::<f32>() - 1.0).abs() < 1e-5);
        }
        // A wrong config is an error naming the key and both shapes.
        let wrong = LiteConfig { hidden: 32, heads: 2, ..config };
        let err = RelsimLite::<B>::from_weights(&wrong, &file, &device).unwrap_err().to_string();
        assert!(err.contains("lite.safetensors") && err.contains("norm1.weight") && err.contains("expected [32]"), "{err}");
    }

    #[test]
    fn colour_views_are_the_mean_over_the_six_channel_orders() {
        let device = Default::default();
        let (_, model, batch) = tiny();
        // The definition: each view's pixels with their channels reordered, embedded, averaged.
        let mut sum = Tensor::<B, 2>::zeros([3, 384], &device);
        for order in COLOUR_ORDERS {
            let index = Tensor::<B, 1, burn::tensor::Int>::from_data(TensorData::new(order.iter().map(|&c| c as i64).collect::<Vec<_>>(), [3]), &device);
            sum = sum + model.forward(batch.clone().select(1, index));
        }
        let want = l2_normalize(sum);
        let diff = (model.forward_colour_views(batch.clone()) - want).abs().max().into_scalar();
        assert!(diff < 1e-5, "{diff}");
        // Not the plain forward pass: the views do change the embedding.
        let plain = (model.forward_colour_views(batch.clone()) - model.forward(batch)).abs().max().into_scalar();
        assert!(plain > 1e-3, "{plain}");
    }
}
