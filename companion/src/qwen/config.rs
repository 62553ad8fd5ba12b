//! The Qwen2.5-VL configuration, from a hub `config.json` (flat, transformers 4) or the nested
//! transformers 5 form (`text_config`, `rope_parameters`).

use anyhow::{bail, Context};
use serde::Deserialize;
use serde_json::Value;

/// The language model's hyper-parameters.
#[derive(Debug, Clone, PartialEq)]
pub struct TextConfig {
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub num_key_value_heads: usize,
    pub rms_norm_eps: f64,
    pub rope_theta: f64,
    /// M-RoPE split of head_dim/2 frequencies into (temporal, height, width).
    pub mrope_section: [usize; 3],
    pub vocab_size: usize,
    pub tie_word_embeddings: bool,
}

impl TextConfig {
    /// Width of one attention head.
    pub fn head_dim(&self) -> usize {
        self.hidden_size / self.num_attention_heads
    }
}

/// The vision tower's hyper-parameters.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(try_from = "VisionConfigJson")]
pub struct VisionConfig {
    pub depth: usize,
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub num_heads: usize,
    pub in_chans: usize,
    pub out_hidden_size: usize,
    pub patch_size: usize,
    pub spatial_merge_size: usize,
    pub temporal_patch_size: usize,
    pub window_size: usize,
    pub fullatt_block_indexes: Vec<usize>,
}

/// `vision_config` as written: the hub's files say `in_chans`, transformers 5 says
/// `in_channels` and, re-saving a hub config, writes both. Other keys are ignored.
#[derive(Deserialize)]
struct VisionConfigJson {
    depth: usize,
    hidden_size: usize,
    intermediate_size: usize,
    num_heads: usize,
    in_chans: Option<usize>,
    in_channels: Option<usize>,
    out_hidden_size: usize,
    patch_size: usize,
    spatial_merge_size: usize,
    temporal_patch_size: usize,
    window_size: usize,
    fullatt_block_indexes: Vec<usize>,
}

impl TryFrom<VisionConfigJson> for VisionConfig {
    type Error = String;

    fn try_from(v: VisionConfigJson) -> Result<Self, String> {
        let in_chans = match (v.in_chans, v.in_channels) {
            (Some(a), Some(b)) if a != b => return Err(format!("`in_chans` {a} and `in_channels` {b} disagree")),
            (a, b) => a.or(b).unwrap_or(3),
        };
        Ok(VisionConfig {
            depth: v.depth,
            hidden_size: v.hidden_size,
            intermediate_size: v.intermediate_size,
            num_heads: v.num_heads,
            in_chans,
            out_hidden_size: v.out_hidden_size,
            patch_size: v.patch_size,
            spatial_merge_size: v.spatial_merge_size,
            temporal_patch_size: v.temporal_patch_size,
            window_size: v.window_size,
            fullatt_block_indexes: v.fullatt_block_indexes,
        })
    }
}

/// Special token ids the model needs.
#[derive(Debug, Clone, PartialEq)]
pub struct TokenIds {
    pub image_token_id: u32,
    pub vision_start_token_id: u32,
    pub vision_end_token_id: u32,
}

/// The whole model configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct QwenConfig {
    pub text: TextConfig,
    pub vision: VisionConfig,
    pub tokens: TokenIds,
}

fn field<T: for<'de> Deserialize<'de>>(v: &Value, key: &str) -> anyhow::Result<T> {
    let value = v.get(key).with_context(|| format!("missing `{key}`"))?;
    serde_json::from_value(value.clone()).with_context(|| format!("`{key}` has the wrong type"))
}

impl QwenConfig {
    /// Reads and parses the Qwen2.5-VL `config.json` at `path`.
    pub fn read(path: &std::path::Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        Self::from_json(&text, &path.display().to_string())
    }

    /// Parses a Qwen2.5-VL `config.json`; `file` names it in errors.
    pub fn from_json(text: &str, file: &str) -> anyhow::Result<Self> {
        Self::parse(text).with_context(|| format!("{file} is not a Qwen2.5-VL config"))
    }

    fn parse(text: &str) -> anyhow::Result<Self> {
        let root: Value = serde_json::from_str(text)?;
        let model_type = root.get("model_type").and_then(Value::as_str).unwrap_or("");
        if !model_type.starts_with("qwen2_5_vl") {
            bail!("model_type is `{model_type}`, expected qwen2_5_vl");
        }
        let text_root = root.get("text_config").unwrap_or(&root);
        let rope = text_root.get("rope_parameters").or_else(|| text_root.get("rope_scaling")).or_else(|| root.get("rope_scaling"));
        let mrope: Vec<usize> = rope.map(|r| field(r, "mrope_section")).transpose()?.context("missing `mrope_section`")?;
        let rope_theta = text_root
            .get("rope_theta")
            .or_else(|| rope.and_then(|r| r.get("rope_theta")))
            .and_then(Value::as_f64)
            .unwrap_or(1_000_000.0);
        let text = TextConfig {
            hidden_size: field(text_root, "hidden_size")?,
            intermediate_size: field(text_root, "intermediate_size")?,
            num_hidden_layers: field(text_root, "num_hidden_layers")?,
            num_attention_heads: field(text_root, "num_attention_heads")?,
            num_key_value_heads: field(text_root, "num_key_value_heads")?,
            rms_norm_eps: field(text_root, "rms_norm_eps")?,
            rope_theta,
            mrope_section: mrope.try_into().map_err(|m: Vec<usize>| anyhow::anyhow!("mrope_section {m:?} must have 3 parts"))?,
            vocab_size: field(text_root, "vocab_size")?,
            tie_word_embeddings: text_root
                .get("tie_word_embeddings")
                .or_else(|| root.get("tie_word_embeddings"))
                .and_then(Value::as_bool)
                .unwrap_or(false),
        };
        if text.num_attention_heads == 0 || text.hidden_size % text.num_attention_heads != 0 {
            bail!("hidden_size {} is not a multiple of num_attention_heads {}", text.hidden_size, text.num_attention_heads);
        }
        if text.num_key_value_heads == 0 || text.num_attention_heads % text.num_key_value_heads != 0 {
            bail!("num_attention_heads {} is not a multiple of num_key_value_heads {}", text.num_attention_heads, text.num_key_value_heads);
        }
        if text.mrope_section.iter().sum::<usize>() * 2 != text.head_dim() {
            bail!("mrope_section {:?} must sum to head_dim/2 = {}", text.mrope_section, text.head_dim() / 2);
        }
        let vision: VisionConfig = field(&root, "vision_config")?;
        if vision.num_heads == 0 || vision.hidden_size % vision.num_heads != 0 {
            bail!("vision hidden_size {} is not a multiple of num_heads {}", vision.hidden_size, vision.num_heads);
        }
        if vision.out_hidden_size != text.hidden_size {
            bail!("vision out_hidden_size {} differs from the language model's hidden_size {}", vision.out_hidden_size, text.hidden_size);
        }
        let id = |key: &str, default: u32| root.get(key).and_then(Value::as_u64).map(|v| v as u32).unwrap_or(default);
        let tokens = TokenIds {
            image_token_id: id("image_token_id", 151_655),
            vision_start_token_id: id("vision_start_token_id", 151_652),
            vision_end_token_id: id("vision_end_token_id", 151_653),
        };
        Ok(Self { text, vision, tokens })
    }
}
