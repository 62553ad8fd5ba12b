//! The Qwen2 language model with M-RoPE, and LoRA on the attention projections.

use burn::module::Module;
use burn::nn::{Dropout, Embedding, Linear, RmsNorm};
use burn::tensor::activation::silu;
use burn::tensor::module::attention;
use burn::tensor::ops::AttentionModuleOptions;
use burn::tensor::{backend::Backend, Bool, Int, Tensor, TensorData};
use relsim_shared::weights::Weights;

use super::config::TextConfig;
use super::rope;

/// A low-rank update `scale · B(A dropout(x))` added to a frozen projection (dropout acts only
/// while training, i.e. on an autodiff backend).
#[derive(Module, Debug)]
pub struct Lora<B: Backend> {
    pub a: Linear<B>,
    pub b: Linear<B>,
    pub scale: f32,
    pub dropout: Dropout,
}

/// A linear projection with an optional LoRA update, as PEFT computes it (unmerged).
#[derive(Module, Debug)]
pub struct LoraLinear<B: Backend> {
    pub base: Linear<B>,
    pub lora: Option<Lora<B>>,
}

impl<B: Backend> LoraLinear<B> {
    /// `W x + b + scale · B(A dropout(x))`.
    pub fn forward<const D: usize>(&self, x: Tensor<B, D>) -> Tensor<B, D> {
        let base = self.base.forward(x.clone());
        match &self.lora {
            Some(l) => base + l.b.forward(l.a.forward(l.dropout.forward(x))).mul_scalar(l.scale),
            None => base,
        }
    }
}

impl<B: Backend> LoraLinear<B> {
    /// The same map with the LoRA update folded into the weight, `W + scale·A·B` (burn keeps
    /// weights as `[in, out]`): one matmul per call instead of three, for inference. Training
    /// keeps the factors apart.
    pub fn merged(self) -> Self {
        match self.lora {
            None => self,
            Some(l) => {
                let delta = l.a.weight.val().matmul(l.b.weight.val()).mul_scalar(l.scale);
                LoraLinear { base: Linear { weight: self.base.weight.map(|w| w + delta), bias: self.base.bias }, lora: None }
            }
        }
    }
}

/// Grouped-query self-attention with M-RoPE.
#[derive(Module, Debug)]
pub struct Attention<B: Backend> {
    pub q_proj: LoraLinear<B>,
    pub k_proj: Linear<B>,
    pub v_proj: LoraLinear<B>,
    pub o_proj: Linear<B>,
    pub num_heads: usize,
    pub num_kv_heads: usize,
}

impl<B: Backend> Attention<B> {
    /// `x` `[batch, S, H]` with the sequence's `plan` (rotary tables).
    pub fn forward(&self, x: Tensor<B, 3>, plan: &DecoderPlan<B>) -> Tensor<B, 3> {
        let (q, k, v) = self.project(x, plan);
        self.attend(q, k, v, true)
    }

    /// As [`forward`](Self::forward) for the next tokens of a sequence whose earlier keys and
    /// values `cache` holds (`plan`: the new tokens' rotary tables); appends theirs to it.
    pub fn forward_cached(&self, x: Tensor<B, 3>, plan: &DecoderPlan<B>, cache: &mut LayerCache<B>) -> Tensor<B, 3> {
        let (q, k, v) = self.project(x, plan);
        let (k, v) = match cache.keys.take().zip(cache.values.take()) {
            Some((past_k, past_v)) => (Tensor::cat(vec![past_k, k], 2), Tensor::cat(vec![past_v, v], 2)),
            None => (k, v),
        };
        cache.keys = Some(k.clone());
        cache.values = Some(v.clone());
        let [_, _, new, _] = q.dims();
        let total = k.dims()[2];
        if new == total || new == 1 {
            // A whole prompt is plainly causal; one new token sees every key.
            self.attend(q, k, v, new > 1)
        } else {
            self.attend_masked(q, k, v, total - new)
        }
    }

    /// Queries, keys and values `[batch, heads, S, head_dim]`, rotated (K and V at their own head count).
    fn project(&self, x: Tensor<B, 3>, plan: &DecoderPlan<B>) -> (Tensor<B, 4>, Tensor<B, 4>, Tensor<B, 4>) {
        let [b, s, h] = x.dims();
        let hd = h / self.num_heads;
        let heads = |t: Tensor<B, 3>, n: usize| t.reshape([b, s, n, hd]).swap_dims(1, 2);
        let (cos4, sin4) = (plan.cos.clone().unsqueeze::<4>(), plan.sin.clone().unsqueeze::<4>());
        let q = rope::apply(heads(self.q_proj.forward(x.clone()), self.num_heads), cos4.clone(), sin4.clone());
        let k = rope::apply(heads(self.k_proj.forward(x.clone()), self.num_kv_heads), cos4, sin4);
        let v = heads(self.v_proj.forward(x), self.num_kv_heads);
        (q, k, v)
    }

    /// Key/value head j serves query heads j·rep .. j·rep + rep. burn's attention op (flash
    /// where the backend has one, causal without a mask tensor) wants one K/V head per query
    /// head; K and V are a 1/rep sliver of the activations, so widening them costs little.
    fn widen(&self, t: Tensor<B, 4>) -> Tensor<B, 4> {
        let rep = self.num_heads / self.num_kv_heads;
        let [b, _, s, hd] = t.dims();
        match rep {
            1 => t,
            _ => t.unsqueeze_dim::<5>(2).expand([b, self.num_kv_heads, rep, s, hd]).reshape([b, self.num_heads, s, hd]),
        }
    }

    /// Attention over all keys (causal: query i sees keys up to i), heads merged, out-projected.
    fn attend(&self, q: Tensor<B, 4>, k: Tensor<B, 4>, v: Tensor<B, 4>, causal: bool) -> Tensor<B, 3> {
        let [b, _, s, hd] = q.dims();
        let options = AttentionModuleOptions { is_causal: causal, ..Default::default() };
        let out = attention(q, self.widen(k), self.widen(v), None, None, options);
        self.o_proj.forward(out.swap_dims(1, 2).reshape([b, s, self.num_heads * hd]))
    }

    /// New queries after `past` cached keys: query i sees keys up to `past + i`. An explicit
    /// mask, as backends' causal flags differ on where a non-square causal mask is anchored.
    fn attend_masked(&self, q: Tensor<B, 4>, k: Tensor<B, 4>, v: Tensor<B, 4>, past: usize) -> Tensor<B, 3> {
        let [b, _, s, hd] = q.dims();
        let total = past + s;
        let device = q.device();
        let future: Vec<bool> = (0..s).flat_map(|i| (0..total).map(move |j| j > past + i)).collect();
        let mask = Tensor::<B, 2, Bool>::from_data(TensorData::new(future, [s, total]), &device)
            .unsqueeze::<4>()
            .expand([b, self.num_heads, s, total]);
        let out = attention(q, self.widen(k), self.widen(v), Some(mask), None, AttentionModuleOptions::default());
        self.o_proj.forward(out.swap_dims(1, 2).reshape([b, s, self.num_heads * hd]))
    }
}

/// One layer's keys and values of the tokens seen so far `[batch, kv_heads, S, head_dim]`.
pub struct LayerCache<B: Backend> {
    keys: Option<Tensor<B, 4>>,
    values: Option<Tensor<B, 4>>,
}

/// The decoder's key/value cache: what generation keeps so that each new token costs one
/// token's work, not the whole sequence's.
pub struct KvCache<B: Backend> {
    layers: Vec<LayerCache<B>>,
}

impl<B: Backend> KvCache<B> {
    /// An empty cache for `layers` decoder layers.
    pub fn new(layers: usize) -> Self {
        Self { layers: (0..layers).map(|_| LayerCache { keys: None, values: None }).collect() }
    }

    /// Tokens held.
    pub fn len(&self) -> usize {
        self.layers.first().and_then(|l| l.keys.as_ref()).map_or(0, |k| k.dims()[2])
    }

    /// True before the first token.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// What the decoder derives from the position ids alone (one per prompt shape, made once):
/// the M-RoPE tables `[S, head_dim]`.
pub struct DecoderPlan<B: Backend> {
    cos: Tensor<B, 2>,
    sin: Tensor<B, 2>,
}

/// SwiGLU feed-forward: `down(silu(gate x) * up x)` (biases in the vision tower, none in the LM).
#[derive(Module, Debug)]
pub struct SwiGlu<B: Backend> {
    pub gate_proj: Linear<B>,
    pub up_proj: Linear<B>,
    pub down_proj: Linear<B>,
}

impl<B: Backend> SwiGlu<B> {
    /// `[…, C]` → `[…, C]`.
    pub fn forward<const D: usize>(&self, x: Tensor<B, D>) -> Tensor<B, D> {
        self.down_proj.forward(silu(self.gate_proj.forward(x.clone())) * self.up_proj.forward(x))
    }
}

/// One decoder layer.
#[derive(Module, Debug)]
pub struct DecoderLayer<B: Backend> {
    pub input_layernorm: RmsNorm<B>,
    pub self_attn: Attention<B>,
    pub post_attention_layernorm: RmsNorm<B>,
    pub mlp: SwiGlu<B>,
}

/// LoRA factors for one layer's q_proj and v_proj, as loaded from an adapter.
pub struct LayerLora<B: Backend> {
    pub q: Option<Lora<B>>,
    pub v: Option<Lora<B>>,
}

/// The decoder: token embeddings, layers, final norm (the LM head is never needed).
#[derive(Module, Debug)]
pub struct LanguageModel<B: Backend> {
    pub embed_tokens: Embedding<B>,
    pub layers: Vec<DecoderLayer<B>>,
    pub norm: RmsNorm<B>,
    pub head_dim: usize,
    pub rope_theta: f64,
    pub mrope_section: [usize; 3],
}

impl<B: Backend> LanguageModel<B> {
    /// Builds the decoder from `{prefix}layers.N…` and `{prefix}norm`, with `embed_tokens` given
    /// (the base's rows or the adapter's resized table) and one LoRA entry per layer.
    pub fn from_weights(
        config: &TextConfig,
        w: &impl Weights,
        prefix: &str,
        embed_tokens: Embedding<B>,
        mut lora: Vec<LayerLora<B>>,
        device: &B::Device,
    ) -> relsim_shared::Result<Self> {
        let (h, eps) = (config.hidden_size, config.rms_norm_eps);
        let kv = config.num_key_value_heads * config.head_dim();
        lora.resize_with(config.num_hidden_layers, || LayerLora { q: None, v: None });
        let layers = lora
            .into_iter()
            .enumerate()
            .map(|(i, lora)| {
                let p = format!("{prefix}layers.{i}");
                Ok(DecoderLayer {
                    input_layernorm: w.rms_norm(&format!("{p}.input_layernorm"), h, eps, device)?,
                    self_attn: Attention {
                        q_proj: LoraLinear { base: w.linear(&format!("{p}.self_attn.q_proj"), h, h, true, device)?, lora: lora.q },
                        k_proj: w.linear(&format!("{p}.self_attn.k_proj"), h, kv, true, device)?,
                        v_proj: LoraLinear { base: w.linear(&format!("{p}.self_attn.v_proj"), h, kv, true, device)?, lora: lora.v },
                        o_proj: w.linear(&format!("{p}.self_attn.o_proj"), h, h, false, device)?,
                        num_heads: config.num_attention_heads,
                        num_kv_heads: config.num_key_value_heads,
                    },
                    post_attention_layernorm: w.rms_norm(&format!("{p}.post_attention_layernorm"), h, eps, device)?,
                    mlp: SwiGlu {
                        gate_proj: w.linear(&format!("{p}.mlp.gate_proj"), h, config.intermediate_size, false, device)?,
                        up_proj: w.linear(&format!("{p}.mlp.up_proj"), h, config.intermediate_size, false, device)?,
                        down_proj: w.linear(&format!("{p}.mlp.down_proj"), config.intermediate_size, h, false, device)?,
                    },
                })
            })
            .collect::<relsim_shared::Result<Vec<_>>>()?;
        Ok(Self {
            embed_tokens,
            layers,
            norm: w.rms_norm(&format!("{prefix}norm"), h, eps, device)?,
            head_dim: config.head_dim(),
            rope_theta: config.rope_theta,
            mrope_section: config.mrope_section,
        })
    }

    /// The model with every layer's LoRA folded into its q/v weights (see [`LoraLinear::merged`]).
    pub fn merge_lora(mut self) -> Self {
        self.layers = std::mem::take(&mut self.layers)
            .into_iter()
            .map(|mut layer| {
                layer.self_attn.q_proj = layer.self_attn.q_proj.merged();
                layer.self_attn.v_proj = layer.self_attn.v_proj.merged();
                layer
            })
            .collect();
        self
    }

    /// Token embeddings `[1, S, H]`, the `<|image_pad|>` run starting at `start` replaced by
    /// the image features, in order.
    pub fn embed(&self, input_ids: &[u32], image: Option<(Tensor<B, 2>, usize)>) -> Tensor<B, 3> {
        self.embed_images(input_ids, image.into_iter().collect())
    }

    /// Token embeddings `[1, S, H]` with each image's `<|image_pad|>` run (features `[n, H]`,
    /// first position) replaced by its features.
    pub fn embed_images(&self, input_ids: &[u32], images: Vec<(Tensor<B, 2>, usize)>) -> Tensor<B, 3> {
        let device = self.embed_tokens.weight.device();
        let ids: Vec<i64> = input_ids.iter().map(|&i| i64::from(i)).collect();
        let ids = Tensor::<B, 2, Int>::from_data(TensorData::new(ids, [1, input_ids.len()]), &device);
        let mut x = self.embed_tokens.forward(ids).squeeze_dim::<2>(0);
        for (features, start) in images {
            let [n, h] = features.dims();
            x = x.slice_assign([start..start + n, 0..h], features);
        }
        x.unsqueeze::<3>()
    }

    /// The rotary tables of a sequence at M-RoPE `position_ids`.
    pub fn plan(&self, position_ids: &[Vec<i64>; 3], device: &B::Device) -> DecoderPlan<B> {
        let (cos, sin) = rope::mrope_tables::<B>(position_ids, self.head_dim, self.rope_theta, self.mrope_section, device);
        DecoderPlan { cos, sin }
    }

    /// Final hidden states `[batch, S, H]` (after the last RMSNorm) for `embeds` at M-RoPE `position_ids`.
    pub fn forward(&self, embeds: Tensor<B, 3>, position_ids: &[Vec<i64>; 3]) -> Tensor<B, 3> {
        let plan = self.plan(position_ids, &embeds.device());
        self.forward_planned(embeds, &plan)
    }

    /// Final hidden states `[batch, S, H]` of the next tokens `embeds` (their tables in `plan`),
    /// attending to what `cache` holds and adding theirs to it.
    pub fn forward_cached(&self, embeds: Tensor<B, 3>, plan: &DecoderPlan<B>, cache: &mut KvCache<B>) -> Tensor<B, 3> {
        let mut x = embeds;
        for (layer, layer_cache) in self.layers.iter().zip(&mut cache.layers) {
            let attn = layer.self_attn.forward_cached(layer.input_layernorm.forward(x.clone()), plan, layer_cache);
            x = x + attn;
            x = x.clone() + layer.mlp.forward(layer.post_attention_layernorm.forward(x));
        }
        self.norm.forward(x)
    }

    /// As [`forward`](Self::forward), with the sequence's plan made beforehand.
    pub fn forward_planned(&self, embeds: Tensor<B, 3>, plan: &DecoderPlan<B>) -> Tensor<B, 3> {
        let mut x = embeds;
        for layer in &self.layers {
            let attn = layer.self_attn.forward(layer.input_layernorm.forward(x.clone()), plan);
            x = x + attn;
            x = x.clone() + layer.mlp.forward(layer.post_attention_layernorm.forward(x));
        }
        self.norm.forward(x)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::NdArray;
    use burn::nn::{DropoutConfig, LinearConfig};
    use burn::tensor::Distribution;

    type B = NdArray<f32>;

    #[test]
    fn a_merged_lora_projection_computes_what_the_factors_compute() {
        let device = Default::default();
        let linear = |i: usize, o: usize, bias: bool| LinearConfig::new(i, o).with_bias(bias).init::<B>(&device);
        let lora = Lora { a: linear(8, 2, false), b: linear(2, 6, false), scale: 2.0, dropout: DropoutConfig::new(0.0).init() };
        let unmerged = LoraLinear { base: linear(8, 6, true), lora: Some(lora) };
        let x = Tensor::<B, 3>::random([2, 5, 8], Distribution::Normal(0.0, 1.0), &device);
        let expected = unmerged.forward(x.clone());
        let merged = unmerged.merged();
        assert!(merged.lora.is_none());
        let diff = (merged.forward(x) - expected).abs().max().into_scalar();
        assert!(diff < 1e-5, "max difference {diff}");
    }
}
