//! all-MiniLM-L6-v2, the sentence encoder of relsim's text side.
//!
//! WordPiece tokens → BERT embeddings → encoder layers → attention-masked mean pooling → L2
//! normalisation, as sentence-transformers computes it. Generic over the burn backend so the same
//! code runs natively and in the browser.

use burn::module::{Module, Param};
use burn::nn::{Embedding, LayerNorm, Linear};
use burn::tensor::{backend::Backend, Int, Tensor, TensorData};
use serde::Deserialize;
use tokenizers::{Tokenizer, TruncationDirection, TruncationParams, TruncationStrategy};

use crate::attention::{packed_self_attention, scaled_dot_product};
use crate::error::{ModelError, Result};
use crate::linear::{linear, linear_gelu, linear_residual};
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

/// One input of the MiniLM parity fixture (`tests/fixtures/minilm/reference.json`, written by
/// sentence-transformers): the text, its token ids and its embedding.
#[derive(Debug, Clone, Deserialize)]
pub struct ReferenceCase {
    pub text: String,
    pub input_ids: Vec<i64>,
    pub embedding: Vec<f32>,
}

/// Reads the cases of a MiniLM parity fixture.
pub fn read_reference(path: &std::path::Path) -> Result<Vec<ReferenceCase>> {
    #[derive(Deserialize)]
    struct Reference {
        cases: Vec<ReferenceCase>,
    }
    let file = path.display().to_string();
    let bytes = std::fs::read(path).map_err(|e| ModelError::Io { file: file.clone(), reason: e.to_string() })?;
    let reference: Reference = serde_json::from_slice(&bytes).map_err(|e| ModelError::Invalid { file, reason: e.to_string() })?;
    Ok(reference.cases)
}

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
    /// Packed `input_ids` and their `positions` within each sentence, both `[tokens]` →
    /// `[tokens, hidden]`.
    pub fn forward(&self, input_ids: Tensor<B, 1, Int>, positions: Tensor<B, 1, Int>) -> Tensor<B, 2> {
        let [tokens] = input_ids.dims();
        let hidden = self.layer_norm.gamma.dims()[0];
        let lookup = |table: &Embedding<B>, ids: Tensor<B, 1, Int>| table.forward(ids.unsqueeze::<2>()).reshape([tokens, hidden]);
        // sentence-transformers passes no token types: every token is segment 0, one shared row.
        let segment = self.token_type_embeddings.weight.val().narrow(0, 0, 1);
        let x = lookup(&self.word_embeddings, input_ids) + lookup(&self.position_embeddings, positions) + segment;
        self.layer_norm.forward(x)
    }
}

/// Sentences of one length, stored one after the other in a packed token tensor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LengthGroup {
    /// Index of the group's first token in the packed tensor.
    pub offset: usize,
    /// How many sentences.
    pub sentences: usize,
    /// Tokens per sentence.
    pub length: usize,
}

impl LengthGroup {
    fn tokens(&self) -> usize {
        self.sentences * self.length
    }

    /// This group's rows of a packed `[tokens, width]` tensor.
    fn rows<B: Backend>(&self, packed: &Tensor<B, 2>) -> Tensor<B, 2> {
        packed.clone().narrow(0, self.offset, self.tokens())
    }
}

/// Multi-head self-attention with its output projection, residual and layer norm.
///
/// The checkpoint's query, key and value projections are joined into one `[hidden, 3·hidden]`
/// linear at load: one matmul instead of three, on every backend.
#[derive(Module, Debug)]
pub struct BertAttention<B: Backend> {
    pub query_key_value: Linear<B>,
    pub output: Linear<B>,
    pub output_norm: LayerNorm<B>,
    pub num_heads: usize,
}

impl<B: Backend> BertAttention<B> {
    /// `x` packed `[tokens, hidden]`; each sentence attends only to itself, so no token is
    /// padding and no mask is needed.
    pub fn forward(&self, x: Tensor<B, 2>, groups: &[LengthGroup]) -> Tensor<B, 2> {
        let [_, hidden] = x.dims();
        let heads = self.num_heads;
        let head_dim = hidden / heads;
        let qkv = linear(&self.query_key_value, x.clone());
        let sentences: Vec<(usize, usize)> =
            groups.iter().flat_map(|g| (0..g.sentences).map(move |s| (g.offset + s * g.length, g.length))).collect();
        let contexts = packed_self_attention(&qkv, heads, &sentences).unwrap_or_else(|| {
            let contexts = groups
                .iter()
                .map(|group| {
                    let [n, len] = [group.sentences, group.length];
                    // [n·len, 3·hidden] → [n, 3·heads, len, head_dim]: q, k and v are head slices.
                    let parts = group.rows(&qkv).reshape([n, len, 3 * heads, head_dim]).swap_dims(1, 2);
                    let part = |i: usize| parts.clone().narrow(1, i * heads, heads);
                    let context = scaled_dot_product(part(0), part(1), part(2), None);
                    context.swap_dims(1, 2).reshape([n * len, hidden])
                })
                .collect();
            stack_rows(contexts)
        });
        self.output_norm.forward(linear_residual(&self.output, contexts, x))
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
    /// Packed `[tokens, hidden]` → `[tokens, hidden]`.
    pub fn forward(&self, x: Tensor<B, 2>, groups: &[LengthGroup]) -> Tensor<B, 2> {
        let x = self.attention.forward(x, groups);
        let h = linear_gelu(&self.intermediate, x.clone());
        self.output_norm.forward(linear_residual(&self.output, h, x))
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
                let projection = |name: &str| weights.linear(&format!("{p}.attention.self.{name}"), d, d, true, device);
                Ok(BertLayer {
                    attention: BertAttention {
                        query_key_value: join_linears([projection("query")?, projection("key")?, projection("value")?]),
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

    /// Token states `[tokens, hidden]` of packed sentences: `input_ids` and `positions` `[tokens]`,
    /// laid out group by group as `groups` says.
    pub fn forward(&self, input_ids: Tensor<B, 1, Int>, positions: Tensor<B, 1, Int>, groups: &[LengthGroup]) -> Tensor<B, 2> {
        let mut x = self.embeddings.forward(input_ids, positions);
        for layer in &self.layers {
            x = layer.forward(x, groups);
        }
        x
    }
}

/// Linears with the same input, side by side: one matmul computes all their outputs.
fn join_linears<B: Backend, const N: usize>(parts: [Linear<B>; N]) -> Linear<B> {
    let weights = parts.iter().map(|l| l.weight.val()).collect();
    let biases: Option<Vec<_>> = parts.iter().map(|l| l.bias.as_ref().map(|b| b.val())).collect();
    Linear { weight: Param::from_tensor(Tensor::cat(weights, 1)), bias: biases.map(|b| Param::from_tensor(Tensor::cat(b, 0))) }
}

/// Token ids of a batch, packed without padding.
#[derive(Debug, Clone, PartialEq)]
pub struct TokenBatch {
    /// Every sentence's token ids, in input order, one sentence after the other.
    pub ids: Vec<i64>,
    /// Each sentence's token count, in input order.
    pub lengths: Vec<usize>,
}

impl TokenBatch {
    /// The model's input: sentences reordered so that equal lengths sit together (packed ids,
    /// positions, the groups, and for each input sentence its row in the grouped order).
    fn grouped(&self) -> (Vec<i64>, Vec<i64>, Vec<LengthGroup>, Vec<i64>) {
        let mut starts = Vec::with_capacity(self.lengths.len());
        let mut start = 0;
        for &len in &self.lengths {
            starts.push(start);
            start += len;
        }
        let mut order: Vec<usize> = (0..self.lengths.len()).collect();
        order.sort_by_key(|&i| self.lengths[i]);
        let (mut ids, mut positions, mut groups) = (Vec::with_capacity(start), Vec::with_capacity(start), Vec::<LengthGroup>::new());
        let mut row_of = vec![0i64; order.len()];
        for (row, &i) in order.iter().enumerate() {
            let len = self.lengths[i];
            row_of[i] = row as i64;
            match groups.last_mut() {
                Some(group) if group.length == len => group.sentences += 1,
                _ => groups.push(LengthGroup { offset: ids.len(), sentences: 1, length: len }),
            }
            ids.extend_from_slice(&self.ids[starts[i]..starts[i] + len]);
            positions.extend(0..len as i64);
        }
        (ids, positions, groups, row_of)
    }
}

/// The sentence encoder: tokenizer, BERT, mean pooling and L2 normalisation.
#[derive(Debug)]
pub struct MiniLm<B: Backend> {
    model: BertModel<B>,
    tokenizer: Tokenizer,
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

        let weights = TensorFile::parse(WEIGHTS_FILE, files.weights)?;
        let model = BertModel::from_weights(&config, &weights, device)?;
        Ok(Self { model, tokenizer, dim: config.hidden_size, device: device.clone() })
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

    /// Tokenises `texts` as sentence-transformers does (but packed: no padding).
    pub fn tokenize(&self, texts: &[&str]) -> Result<TokenBatch> {
        // sentence-transformers strips surrounding whitespace before tokenising.
        let inputs: Vec<&str> = texts.iter().map(|t| t.trim()).collect();
        let encodings =
            self.tokenizer.encode_batch(inputs, true).map_err(|e| ModelError::Tokenizer(e.to_string()))?;
        let ids = encodings.iter().flat_map(|e| e.get_ids().iter().map(|&id| id as i64)).collect();
        let lengths = encodings.iter().map(|e| e.get_ids().len()).collect();
        Ok(TokenBatch { ids, lengths })
    }

    /// Sentence embeddings `[batch, dim]`, unit length, for a tokenised batch.
    ///
    /// Sentences of equal length run as one attention batch and every linear layer sees only
    /// real tokens: a sentence's embedding does not depend on what else is in its batch, and no
    /// work is spent on padding.
    pub fn forward(&self, tokens: &TokenBatch) -> Tensor<B, 2> {
        let (ids, positions, groups, row_of) = tokens.grouped();
        let packed = |values: Vec<i64>| {
            let n = values.len();
            Tensor::<B, 1, Int>::from_data(TensorData::new(values, [n]), &self.device)
        };
        let states = self.model.forward(packed(ids), packed(positions), &groups);
        let pooled: Vec<Tensor<B, 2>> = groups
            .iter()
            // sentence-transformers' attention-masked mean: here every row of a group is a token.
            .map(|g| g.rows(&states).reshape([g.sentences, g.length, self.dim]).mean_dim(1).reshape([g.sentences, self.dim]))
            .collect();
        let pooled = stack_rows(pooled);
        let pooled = if row_of.iter().enumerate().all(|(i, &r)| r == i as i64) { pooled } else { pooled.select(0, packed(row_of)) };
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

/// `parts` stacked along rows; a single part is returned as it is, without a copy.
fn stack_rows<B: Backend>(mut parts: Vec<Tensor<B, 2>>) -> Tensor<B, 2> {
    match parts.len() {
        1 => parts.remove(0),
        _ => Tensor::cat(parts, 0),
    }
}

/// Scales each row to unit L2 norm (rows of zeros stay zero, as in `F.normalize`).
pub fn l2_normalize<B: Backend>(x: Tensor<B, 2>) -> Tensor<B, 2> {
    let norms = x.clone().powi_scalar(2).sum_dim(1).sqrt().clamp_min(1e-12);
    x / norms
}
