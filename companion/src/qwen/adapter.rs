//! PEFT LoRA adapters of the language model (relsim's encoder, a captioner, a filter): the q/v
//! factors and, when the vocabulary was resized, the adapter's own embedding and LM head.

use std::path::Path;

use anyhow::{bail, Context};
use burn::nn::{DropoutConfig, Embedding, Linear};
use burn::tensor::backend::Backend;
use relsim_shared::weights::Weights;

use super::config::TextConfig;
use super::language::{LayerLora, Lora};
use crate::weights::MappedWeights;

/// The LoRA settings of `adapter_config.json`.
#[derive(Debug, serde::Deserialize)]
struct AdapterConfig {
    r: usize,
    lora_alpha: f64,
    #[serde(default)]
    use_rslora: bool,
    #[serde(default)]
    use_dora: bool,
    #[serde(default)]
    lora_dropout: f64,
}

/// An adapter read from its folder.
pub struct Adapter<B: Backend> {
    /// One entry per decoder layer.
    pub lora: Vec<LayerLora<B>>,
    /// The resized token embeddings PEFT saves with a grown (or shrunk) vocabulary.
    pub embed_tokens: Option<Embedding<B>>,
    /// The resized LM head, saved beside them when it is not tied.
    pub lm_head: Option<Linear<B>>,
}

/// Reads `adapter_config.json` and `adapter_model.safetensors` in `dir` for a language model of
/// `text`; `rows`, when given, is the vocabulary its embedding must have. `base` names the base
/// model in errors.
pub fn load_adapter<B: Backend>(dir: &Path, base: &Path, text: &TextConfig, rows: Option<usize>, device: &B::Device) -> anyhow::Result<Adapter<B>> {
    let config_path = dir.join("adapter_config.json");
    let config: AdapterConfig =
        serde_json::from_str(&std::fs::read_to_string(&config_path).with_context(|| format!("reading {}", config_path.display()))?)
            .with_context(|| format!("parsing {}", config_path.display()))?;
    if config.use_dora {
        bail!("{}: DoRA adapters are not supported", config_path.display());
    }
    let scale = if config.use_rslora { config.lora_alpha / (config.r as f64).sqrt() } else { config.lora_alpha / config.r as f64 } as f32;
    let file = dir.join("adapter_model.safetensors");
    let weights = MappedWeights::open(std::slice::from_ref(&file), file.display().to_string())?;
    let prefix = ["base_model.model.model.language_model.", "base_model.model.model."]
        .into_iter()
        .find(|p| weights.contains(&format!("{p}layers.0.self_attn.q_proj.lora_A.weight")) || weights.contains(&format!("{p}embed_tokens.weight")))
        .with_context(|| format!("{}: no LoRA weights for the language model under PEFT's key names", weights.describe()))?;
    let misfit = || format!("the adapter in {} does not fit the base model in {} (made for another base model?)", dir.display(), base.display());
    let kv = text.num_key_value_heads * text.head_dim();
    let lora = (0..text.num_hidden_layers)
        .map(|i| {
            let one = |module: &str, out: usize| -> anyhow::Result<Option<Lora<B>>> {
                let key = format!("{prefix}layers.{i}.self_attn.{module}");
                if !weights.contains(&format!("{key}.lora_A.weight")) {
                    return Ok(None);
                }
                Ok(Some(Lora {
                    a: weights.linear(&format!("{key}.lora_A"), text.hidden_size, config.r, false, device).with_context(misfit)?,
                    b: weights.linear(&format!("{key}.lora_B"), config.r, out, false, device).with_context(misfit)?,
                    scale,
                    dropout: DropoutConfig::new(config.lora_dropout).init(),
                }))
            };
            Ok(LayerLora { q: one("q_proj", text.hidden_size)?, v: one("v_proj", kv)? })
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    if lora.iter().all(|l| l.q.is_none() && l.v.is_none()) {
        bail!("{}: no q_proj/v_proj LoRA weights found", weights.describe());
    }
    let embed_key = format!("{prefix}embed_tokens.weight");
    let table_rows = |key: &str| rows.or_else(|| weights.view(key).map(|(v, _)| v.shape()[0]));
    let embed_tokens = match table_rows(&embed_key) {
        Some(n) if weights.contains(&embed_key) => Some(weights.embedding(&embed_key, n, text.hidden_size, device).with_context(misfit)?),
        _ => None,
    };
    let head_key = "base_model.model.lm_head.weight";
    let lm_head = match table_rows(head_key) {
        Some(n) if weights.contains(head_key) => Some(weights.linear("base_model.model.lm_head", text.hidden_size, n, false, device).with_context(misfit)?),
        _ => None,
    };
    Ok(Adapter { lora, embed_tokens, lm_head })
}
