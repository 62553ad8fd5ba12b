//! all-MiniLM-L6-v2, the sentence encoder of relsim's text side.
//!
//! WordPiece tokens → BERT embeddings → encoder layers → attention-masked mean pooling → L2
//! normalisation, as sentence-transformers computes it. Generic over the burn backend so the same
//! code runs natively and in the browser.

use burn::module::Module;
use burn::nn::{Embedding, LayerNorm, Linear};
use burn::tensor::activation::gelu;
use burn::tensor::{backend::Backend, Int, Tensor, TensorData};
use serde::Deserialize;
use tokenizers::{Tokenizer, TruncationDirection, TruncationParams, TruncationStrategy};

use crate::attention::scaled_dot_product;
use crate::error::{ModelError, Result};
use crate::weights::{TensorFile, Weights};

/// File names of a sentence-transformers model folder, relative to the folder.
pub const CONFIG_FILE: &str = "config.json";
/// The Hugging Face tokenizer definition.
pub const TOKENIZER_FILE: &str = "tokenizer.json";
/// The BERT weights.
pub const WEIGHTS_FILE: &str = "model.safetensors";
/// The pooling module's configuration.
pub const POOLING_FILE: &str = "1_Pooling/config.json";
/// Optional: sentence-transformers' own settings (`max_seq_length`).
pub const SENTENCE_CONFIG_FILE: &str = "sentence_bert_config.json";
/// Every file the encoder needs, in the order they are loaded.
pub const REQUIRED_FILES: [&str; 4] = [CONFIG_FILE, TOKENIZER_FILE, WEIGHTS_FILE, POOLING_FILE];

/// sentence-transformers' limit for all-MiniLM-L6-v2 when `sentence_bert_config.json` is absent.
pub const DEFAULT_MAX_SEQ_LENGTH: usize = 256;

/// The BERT hyper-parameters read from `config.json`.
#[derive(Debug, Clone, Deserialize)]
pub struct BertConfig {
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub intermediate_size: usize,
    pub max_position_embeddings: usize,
    pub type_vocab_size: usize,
    pub layer_norm_eps: f64,
    #[serde(default = "default_act")]
    pub hidden_act: String,
}

fn default_act() -> String {
    "gelu".into()
}

/// The pooling settings read from `1_Pooling/config.json`.
#[derive(Debug, Clone, Deserialize)]
pub struct PoolingConfig {
    pub word_embedding_dimension: usize,
    #[serde(default)]
    pub pooling_mode_mean_tokens: bool,
    #[serde(default)]
    pub pooling_mode_cls_token: bool,
    #[serde(default)]
    pub pooling_mode_max_tokens: bool,
    #[serde(default)]
    pub pooling_mode_mean_sqrt_len_tokens: bool,
}

#[derive(Debug, Clone, Deserialize)]
struct SentenceConfig {
    max_seq_length: usize,
}

/// The raw contents of a model folder's files, however they were obtained (disk, fetch, cache).
pub struct MiniLmFiles<'a> {
    pub config: &'a [u8],
    pub tokenizer: &'a [u8],
    pub weights: &'a [u8],
    pub pooling: &'a [u8],
    pub sentence_config: Option<&'a [u8]>,
}

fn parse_json<T: for<'de> Deserialize<'de>>(file: &str, bytes: &[u8]) -> Result<T> {
    serde_json::from_slice(bytes).map_err(|e| ModelError::Invalid { file: file.into(), reason: e.to_string() })
}

/// Token embeddings, position embeddings and token-type embeddings, summed and normalised.
#[derive(Module, Debug)]
pub struct BertEmbeddings<B: Backend> {
    pub word_embeddings: Embedding<B>,
    pub position_embeddings: Embedding<B>,
    pub token_type_embeddings: Embedding<B>,
    pub layer_norm: LayerNorm<B>,
}

impl<B: Backend> BertEmbeddings<B> {
    /// `input_ids` `[batch, seq]` → `[batch, seq, hidden]`.
    pub fn forward(&self, input_ids: Tensor<B, 2, Int>) -> Tensor<B, 3> {
        let [batch, seq] = input_ids.dims();
        let device = input_ids.device();
        let positions = Tensor::<B, 1, Int>::arange(0..seq as i64, &device).unsqueeze::<2>().repeat_dim(0, batch);
        // sentence-transformers passes no token types: all segment 0.
        let token_types = Tensor::<B, 2, Int>::zeros([batch, seq], &device);
        let x = self.word_embeddings.forward(input_ids)
            + self.position_embeddings.forward(positions)
            + self.token_type_embeddings.forward(token_types);
        self.layer_norm.forward(x)
    }
}

/// Multi-head self-attention with its output projection, residual and layer norm.
#[derive(Module, Debug)]
pub struct BertAttention<B: Backend> {
    pub query: Linear<B>,
    pub key: Linear<B>,
    pub value: Linear<B>,
    pub output: Linear<B>,
    pub output_norm: LayerNorm<B>,
    pub num_heads: usize,
}

impl<B: Backend> BertAttention<B> {
    /// `x` `[batch, seq, hidden]`, `mask_bias` `[batch, 1, 1, seq]` (0 or a large negative number).
    pub fn forward(&self, x: Tensor<B, 3>, mask_bias: Tensor<B, 4>) -> Tensor<B, 3> {
        let [batch, seq, hidden] = x.dims();
        let head_dim = hidden / self.num_heads;
        let heads = |t: Tensor<B, 3>| t.reshape([batch, seq, self.num_heads, head_dim]).swap_dims(1, 2);
        let q = heads(self.query.forward(x.clone()));
        let k = heads(self.key.forward(x.clone()));
        let v = heads(self.value.forward(x.clone()));
        let context = scaled_dot_product(q, k, v, Some(mask_bias)).swap_dims(1, 2).reshape([batch, seq, hidden]);
        self.output_norm.forward(x + self.output.forward(context))
    }
}

/// One encoder layer: attention, then the GELU feed-forward block with residual and norm.
#[derive(Module, Debug)]
pub struct BertLayer<B: Backend> {
    pub attention: BertAttention<B>,
    pub intermediate: Linear<B>,
    pub output: Linear<B>,
    pub output_norm: LayerNorm<B>,
}

impl<B: Backend> BertLayer<B> {
    /// `[batch, seq, hidden]` → `[batch, seq, hidden]`.
    pub fn forward(&self, x: Tensor<B, 3>, mask_bias: Tensor<B, 4>) -> Tensor<B, 3> {
        let x = self.attention.forward(x, mask_bias);
        let h = gelu(self.intermediate.forward(x.clone()));
        self.output_norm.forward(x + self.output.forward(h))
    }
}

/// The BERT encoder: embeddings and a stack of layers.
#[derive(Module, Debug)]
pub struct BertModel<B: Backend> {
    pub embeddings: BertEmbeddings<B>,
    pub layers: Vec<BertLayer<B>>,
}

impl<B: Backend> BertModel<B> {
    /// Builds the model from a safetensors file in the Hugging Face `BertModel` key layout.
    pub fn from_weights(config: &BertConfig, weights: &TensorFile<'_>, device: &B::Device) -> Result<Self> {
        let (d, eps) = (config.hidden_size, config.layer_norm_eps);
        if config.num_attention_heads == 0 || d % config.num_attention_heads != 0 {
            return Err(ModelError::Invalid {
                file: CONFIG_FILE.into(),
                reason: format!("hidden_size {d} is not a multiple of num_attention_heads {}", config.num_attention_heads),
            });
        }
        // Checkpoints saved from BertForX carry a `bert.` prefix; sentence-transformers' do not.
        let root = if weights.contains("bert.embeddings.word_embeddings.weight") { "bert." } else { "" };
        let embeddings = BertEmbeddings {
            word_embeddings: weights.embedding(&format!("{root}embeddings.word_embeddings.weight"), config.vocab_size, d, device)?,
            position_embeddings: weights.embedding(
                &format!("{root}embeddings.position_embeddings.weight"),
                config.max_position_embeddings,
                d,
                device,
            )?,
            token_type_embeddings: weights.embedding(
                &format!("{root}embeddings.token_type_embeddings.weight"),
                config.type_vocab_size,
                d,
                device,
            )?,
            layer_norm: weights.layer_norm(&format!("{root}embeddings.LayerNorm"), d, eps, device)?,
        };
        let layers = (0..config.num_hidden_layers)
            .map(|i| {
                let p = format!("{root}encoder.layer.{i}");
                Ok(BertLayer {
                    attention: BertAttention {
                        query: weights.linear(&format!("{p}.attention.self.query"), d, d, true, device)?,
                        key: weights.linear(&format!("{p}.attention.self.key"), d, d, true, device)?,
                        value: weights.linear(&format!("{p}.attention.self.value"), d, d, true, device)?,
                        output: weights.linear(&format!("{p}.attention.output.dense"), d, d, true, device)?,
                        output_norm: weights.layer_norm(&format!("{p}.attention.output.LayerNorm"), d, eps, device)?,
                        num_heads: config.num_attention_heads,
                    },
                    intermediate: weights.linear(&format!("{p}.intermediate.dense"), d, config.intermediate_size, true, device)?,
                    output: weights.linear(&format!("{p}.output.dense"), config.intermediate_size, d, true, device)?,
                    output_norm: weights.layer_norm(&format!("{p}.output.LayerNorm"), d, eps, device)?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self { embeddings, layers })
    }

    /// Token states `[batch, seq, hidden]` for `input_ids` with `attention_mask` (1 = token, 0 = pad).
    pub fn forward(&self, input_ids: Tensor<B, 2, Int>, attention_mask: Tensor<B, 2>) -> Tensor<B, 3> {
        let [batch, seq] = attention_mask.dims();
        // Padding gets a bias so negative that its softmax weight is exactly zero in f32, which
        // keeps a sentence's embedding independent of what else is in its batch.
        let mask_bias = (attention_mask.neg() + 1.0).mul_scalar(-1e9).reshape([batch, 1, 1, seq]);
        let mut x = self.embeddings.forward(input_ids);
        for layer in &self.layers {
            x = layer.forward(x, mask_bias.clone());
        }
        x
    }
}

/// Token ids of a padded batch, ready for the model.
#[derive(Debug, Clone, PartialEq)]
pub struct TokenBatch {
    /// Row-major `[batch, seq]` token ids, padded with the pad id.
    pub ids: Vec<i64>,
    /// Row-major `[batch, seq]`: 1 for a real token, 0 for padding.
    pub mask: Vec<f32>,
    pub batch: usize,
    pub seq: usize,
}

/// The sentence encoder: tokenizer, BERT, mean pooling and L2 normalisation.
#[derive(Debug)]
pub struct MiniLm<B: Backend> {
    model: BertModel<B>,
    tokenizer: Tokenizer,
    pad_id: u32,
    dim: usize,
    device: B::Device,
}

impl<B: Backend> MiniLm<B> {
    /// Builds the encoder from the contents of a sentence-transformers folder.
    pub fn from_files(files: MiniLmFiles<'_>, device: &B::Device) -> Result<Self> {
        let config: BertConfig = parse_json(CONFIG_FILE, files.config)?;
        let pooling: PoolingConfig = parse_json(POOLING_FILE, files.pooling)?;
        if !pooling.pooling_mode_mean_tokens
            || pooling.pooling_mode_cls_token
            || pooling.pooling_mode_max_tokens
            || pooling.pooling_mode_mean_sqrt_len_tokens
        {
            return Err(ModelError::Invalid { file: POOLING_FILE.into(), reason: "only mean pooling is supported".into() });
        }
        if pooling.word_embedding_dimension != config.hidden_size {
            return Err(ModelError::Invalid {
                file: POOLING_FILE.into(),
                reason: format!(
                    "word_embedding_dimension {} differs from hidden_size {} in {CONFIG_FILE}",
                    pooling.word_embedding_dimension, config.hidden_size
                ),
            });
        }
        if config.hidden_act != "gelu" {
            return Err(ModelError::Invalid {
                file: CONFIG_FILE.into(),
                reason: format!("hidden_act `{}` is not supported (only gelu)", config.hidden_act),
            });
        }
        let max_seq_length = match files.sentence_config {
            Some(bytes) => parse_json::<SentenceConfig>(SENTENCE_CONFIG_FILE, bytes)?.max_seq_length,
            None => DEFAULT_MAX_SEQ_LENGTH,
        }
        .min(config.max_position_embeddings);

        let mut tokenizer = Tokenizer::from_bytes(files.tokenizer)
            .map_err(|e| ModelError::Invalid { file: TOKENIZER_FILE.into(), reason: e.to_string() })?;
        // tokenizer.json carries its own truncation (128) and fixed padding; sentence-transformers
        // overrides both: truncate at max_seq_length (special tokens included), pad to the longest.
        tokenizer
            .with_truncation(Some(TruncationParams {
                max_length: max_seq_length,
                strategy: TruncationStrategy::LongestFirst,
                stride: 0,
                direction: TruncationDirection::Right,
            }))
            .map_err(|e| ModelError::Invalid { file: TOKENIZER_FILE.into(), reason: e.to_string() })?;
        tokenizer.with_padding(None);
        let pad_id = tokenizer.token_to_id("[PAD]").unwrap_or(0);

        let weights = TensorFile::parse(WEIGHTS_FILE, files.weights)?;
        let model = BertModel::from_weights(&config, &weights, device)?;
        Ok(Self { model, tokenizer, pad_id, dim: config.hidden_size, device: device.clone() })
    }

    /// Reads a sentence-transformers folder from disk.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn from_dir(dir: &std::path::Path, device: &B::Device) -> Result<Self> {
        let read = |name: &str| {
            let path = dir.join(name);
            std::fs::read(&path).map_err(|e| ModelError::Io { file: path.display().to_string(), reason: e.to_string() })
        };
        let (config, tokenizer, weights, pooling) =
            (read(CONFIG_FILE)?, read(TOKENIZER_FILE)?, read(WEIGHTS_FILE)?, read(POOLING_FILE)?);
        let sentence_config = read(SENTENCE_CONFIG_FILE).ok();
        Self::from_files(
            MiniLmFiles {
                config: &config,
                tokenizer: &tokenizer,
                weights: &weights,
                pooling: &pooling,
                sentence_config: sentence_config.as_deref(),
            },
            device,
        )
        .map_err(|e| match e {
            // Name the folder too, so the user knows which copy of the model is broken.
            ModelError::Invalid { file, reason } => ModelError::Invalid { file: dir.join(file).display().to_string(), reason },
            ModelError::MissingTensor { file, key } => {
                ModelError::MissingTensor { file: dir.join(file).display().to_string(), key }
            }
            ModelError::Shape { file, key, expected, found } => {
                ModelError::Shape { file: dir.join(file).display().to_string(), key, expected, found }
            }
            other => other,
        })
    }

    /// Embedding width (384 for all-MiniLM-L6-v2).
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// Tokenises `texts` and pads them to the longest, as sentence-transformers does.
    pub fn tokenize(&self, texts: &[&str]) -> Result<TokenBatch> {
        // sentence-transformers strips surrounding whitespace before tokenising.
        let inputs: Vec<&str> = texts.iter().map(|t| t.trim()).collect();
        let encodings =
            self.tokenizer.encode_batch(inputs, true).map_err(|e| ModelError::Tokenizer(e.to_string()))?;
        let seq = encodings.iter().map(|e| e.get_ids().len()).max().unwrap_or(0);
        let mut ids = Vec::with_capacity(texts.len() * seq);
        let mut mask = Vec::with_capacity(texts.len() * seq);
        for enc in &encodings {
            let n = enc.get_ids().len();
            ids.extend(enc.get_ids().iter().map(|&id| id as i64));
            ids.extend(std::iter::repeat_n(self.pad_id as i64, seq - n));
            mask.extend(std::iter::repeat_n(1.0, n));
            mask.extend(std::iter::repeat_n(0.0, seq - n));
        }
        Ok(TokenBatch { ids, mask, batch: texts.len(), seq })
    }

    /// Sentence embeddings `[batch, dim]`, unit length, for a tokenised batch.
    pub fn forward(&self, tokens: &TokenBatch) -> Tensor<B, 2> {
        let shape = [tokens.batch, tokens.seq];
        let ids = Tensor::<B, 2, Int>::from_data(TensorData::new(tokens.ids.clone(), shape), &self.device);
        let mask = Tensor::<B, 2>::from_data(TensorData::new(tokens.mask.clone(), shape), &self.device);
        let states = self.model.forward(ids, mask.clone());
        let pooled = mean_pool(states, mask);
        l2_normalize(pooled)
    }

    /// Embeds `texts` into a `[texts.len(), dim]` tensor on the model's device.
    pub fn embed(&self, texts: &[&str]) -> Result<Tensor<B, 2>> {
        if texts.is_empty() {
            return Ok(Tensor::zeros([0, self.dim], &self.device));
        }
        Ok(self.forward(&self.tokenize(texts)?))
    }

    /// Embeds `texts` and reads the vectors back (blocking; use the async form in the browser).
    #[cfg(not(target_arch = "wasm32"))]
    pub fn embed_vecs(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>> {
        if texts.is_empty() {
            return Ok(Vec::new());
        }
        rows(self.embed(texts)?.into_data(), self.dim)
    }

    /// Embeds `texts` and reads the vectors back without blocking (needed on WebGPU).
    pub async fn embed_vecs_async(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>> {
        if texts.is_empty() {
            return Ok(Vec::new());
        }
        let data = self.embed(texts)?.into_data_async().await.map_err(|e| ModelError::Device(format!("{e:?}")))?;
        rows(data, self.dim)
    }
}

fn rows(data: TensorData, dim: usize) -> Result<Vec<Vec<f32>>> {
    let flat = data.into_vec::<f32>().map_err(|e| ModelError::Device(format!("{e:?}")))?;
    Ok(flat.chunks(dim).map(<[f32]>::to_vec).collect())
}

/// Mean of the token states where `mask` is 1: `[batch, seq, d]` → `[batch, d]`.
pub fn mean_pool<B: Backend>(states: Tensor<B, 3>, mask: Tensor<B, 2>) -> Tensor<B, 2> {
    let [batch, seq, d] = states.dims();
    let mask = mask.reshape([batch, seq, 1]);
    let summed = (states * mask.clone()).sum_dim(1).reshape([batch, d]);
    // sentence-transformers clamps the token count at 1e-9.
    let counts = mask.sum_dim(1).reshape([batch, 1]).clamp_min(1e-9);
    summed / counts
}

/// Scales each row to unit L2 norm (rows of zeros stay zero, as in `F.normalize`).
pub fn l2_normalize<B: Backend>(x: Tensor<B, 2>) -> Tensor<B, 2> {
    let norms = x.clone().powi_scalar(2).sum_dim(1).sqrt().clamp_min(1e-12);
    x / norms
}
