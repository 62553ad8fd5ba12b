//! Text generation with Qwen2.5-VL: a chat of text and images in, tokens out, one at a time
//! through the decoder's key/value cache; greedy or sampled (temperature, top-p, seed), ending
//! at a stop token or a length limit. What captioning, the interest filter and the local
//! `/v1/chat/completions` run on.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use burn::module::Module;
use burn::tensor::{backend::Backend, Tensor, TensorData};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use relsim_shared::image::preprocess::{self, PixelValues, PreprocessMode, QwenImageConfig};
use relsim_shared::weights::Weights;
use tokenizers::Tokenizer;

use super::adapter::{load_adapter, Adapter};
use super::chat::{self, ChatMessage};
use super::config::QwenConfig;
use super::language::{KvCache, LanguageModel};
use super::prompt::load_tokenizer;
use super::relsim::{base_embedding, BaseFolder, RandomWeights};
use super::rope;
use super::vision::VisionTower;

/// Where to find a generator's files.
#[derive(Debug, Clone)]
pub struct GeneratorFiles {
    /// The Qwen2.5-VL folder (config.json, safetensors, tokenizer, preprocessor config).
    pub base: PathBuf,
    /// A PEFT LoRA adapter of the language model (a captioner, a filter), if any.
    pub adapter: Option<PathBuf>,
    /// Tokenizer file; default `base/tokenizer.json`.
    pub tokenizer: Option<PathBuf>,
    /// Image processor settings; default `base/preprocessor_config.json` or the Qwen defaults.
    pub image_config: Option<QwenImageConfig>,
}

/// How the next token is chosen.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Sampling {
    /// The most likely token (the first of equals).
    Greedy,
    /// Drawn from the distribution at `temperature`, cut to the smallest set of most likely
    /// tokens whose probability reaches `top_p`, with a generator seeded by `seed`.
    Sample { temperature: f32, top_p: f32, seed: u64 },
}

/// What to generate.
#[derive(Debug, Clone)]
pub struct GenerateOptions {
    pub max_new_tokens: usize,
    pub sampling: Sampling,
    /// Tokens that end the answer (kept as its last token); `None`: the model's.
    pub stop_tokens: Option<Vec<u32>>,
    /// Above 1, tokens already in the prompt or the answer are made less likely (transformers'
    /// `repetition_penalty`: a positive logit divided by it, a negative one multiplied).
    pub repetition_penalty: f32,
}

impl Default for GenerateOptions {
    fn default() -> Self {
        Self { max_new_tokens: 128, sampling: Sampling::Greedy, stop_tokens: None, repetition_penalty: 1.0 }
    }
}

/// Why generation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Finish {
    /// A stop token came.
    Stop,
    /// `max_new_tokens` were made.
    Length,
    /// The caller asked to stop.
    Cancelled,
}

/// A generated answer.
#[derive(Debug, Clone)]
pub struct Generation {
    /// The new token ids (a stop token included).
    pub tokens: Vec<u32>,
    /// Their text without special tokens.
    pub text: String,
    pub finish: Finish,
    pub prompt_tokens: usize,
}

/// A chat made ready for the model: token ids with each image's pad run widened to its token
/// count, the images' patches, where each run starts, and the M-RoPE positions.
pub struct PreparedChat {
    pub input_ids: Vec<u32>,
    pub images: Vec<PixelValues>,
    pub image_starts: Vec<usize>,
    pub position_ids: [Vec<i64>; 3],
}

/// A sequence in progress: the decoder's cache and where the next token sits.
pub struct Session<B: Backend> {
    cache: KvCache<B>,
    next_position: i64,
}

impl<B: Backend> Session<B> {
    /// Tokens the cache holds (prompt and generated).
    pub fn len(&self) -> usize {
        self.cache.len()
    }

    /// True before the prompt.
    pub fn is_empty(&self) -> bool {
        self.cache.is_empty()
    }
}

/// Qwen2.5-VL with its language-model head, ready to answer chats.
pub struct Generator<B: Backend> {
    pub config: QwenConfig,
    vision: VisionTower<B>,
    language: LanguageModel<B>,
    /// The LM head as `[hidden, vocab]`.
    head: Tensor<B, 2>,
    pub tokenizer: Tokenizer,
    pub image_config: QwenImageConfig,
    /// `<|im_end|>` and `<|endoftext|>`, and the ids `generation_config.json` names.
    pub stop_tokens: Vec<u32>,
    /// How images are fitted before patching.
    pub image_mode: PreprocessMode,
    device: B::Device,
}

/// The default stop tokens: the end of a turn and of a text, as Qwen's generation config says.
fn default_stop_tokens(tokenizer: &Tokenizer, base: &Path) -> Vec<u32> {
    let mut stops: Vec<u32> = ["<|im_end|>", "<|endoftext|>"].iter().filter_map(|t| tokenizer.token_to_id(t)).collect();
    if let Ok(text) = std::fs::read_to_string(base.join("generation_config.json")) {
        if let Ok(value) = serde_json::from_str::<serde_json::Value>(&text) {
            match &value["eos_token_id"] {
                serde_json::Value::Number(n) => stops.extend(n.as_u64().map(|n| n as u32)),
                serde_json::Value::Array(ids) => stops.extend(ids.iter().filter_map(|n| n.as_u64()).map(|n| n as u32)),
                _ => {}
            }
        }
    }
    stops.sort_unstable();
    stops.dedup();
    stops
}

impl<B: Backend> Generator<B> {
    /// Loads the base model (with its LM head: `lm_head.weight`, or the token embeddings when
    /// tied) and, if given, an adapter whose LoRA is folded into q/v.
    pub fn load(files: &GeneratorFiles, device: &B::Device) -> anyhow::Result<Self> {
        let base = &files.base;
        // BaseFolder's prompt adds <|query|>; generation reads the tokenizer as it is.
        let tokenizer_path = files.tokenizer.clone().unwrap_or_else(|| base.join("tokenizer.json"));
        let tokenizer = load_tokenizer(&tokenizer_path)?;
        let BaseFolder { config_path, config, weights, layout, image_config, .. } =
            BaseFolder::open(base, files.tokenizer.as_deref(), files.image_config.clone())?;
        let text = &config.text;
        let adapter = match &files.adapter {
            Some(dir) => load_adapter::<B>(dir, base, text, None, device)?,
            None => Adapter { lora: Vec::new(), embed_tokens: None, lm_head: None },
        };
        let embed_tokens = match adapter.embed_tokens {
            Some(embed) => embed,
            None => base_embedding(&config_path, text, &weights, &layout, text.vocab_size, device)?,
        };
        let rows = embed_tokens.weight.dims()[0];
        let head = match adapter.lm_head {
            Some(head) => head.weight.val(),
            None if text.tie_word_embeddings => embed_tokens.weight.val().transpose(),
            None => {
                let key = if weights.contains("lm_head.weight") { "lm_head" } else { "model.lm_head" };
                weights
                    .linear::<B>(key, text.hidden_size, rows, false, device)
                    .with_context(|| format!("{}: the LM head (`lm_head.weight`, {rows} x {}), needed to generate text", base.display(), text.hidden_size))?
                    .weight
                    .val()
            }
        };
        let vision = VisionTower::from_weights(&config.vision, &weights, layout.vision, device)?;
        let language = LanguageModel::from_weights(text, &weights, layout.language, embed_tokens, adapter.lora, device)?.merge_lora();
        let stop_tokens = default_stop_tokens(&tokenizer, base);
        Ok(Self { config, vision, language, head, tokenizer, image_config, stop_tokens, image_mode: PreprocessMode::Native, device: device.clone() })
    }

    /// The model of `config` with random weights and the tokenizer at `tokenizer`: what
    /// `relsim bench generate` times.
    pub fn random(config: QwenConfig, tokenizer: &Path, device: &B::Device) -> anyhow::Result<Self> {
        let tokenizer = load_tokenizer(tokenizer)?;
        let w = RandomWeights;
        let t = &config.text;
        let embed = w.embedding("embed_tokens", t.vocab_size, t.hidden_size, device)?;
        let head = w.linear::<B>("lm_head", t.hidden_size, t.vocab_size, false, device)?.weight.val();
        let vision = VisionTower::from_weights(&config.vision, &w, "visual.", device)?;
        let language = LanguageModel::from_weights(t, &w, "model.", embed, Vec::new(), device)?;
        let stop_tokens = default_stop_tokens(&tokenizer, Path::new(""));
        Ok(Self {
            config,
            vision,
            language,
            head,
            tokenizer,
            image_config: QwenImageConfig::default(),
            stop_tokens,
            image_mode: PreprocessMode::Native,
            device: device.clone(),
        })
    }

    /// Renders `messages` with the chat template (and the assistant's opening), tokenizes it and
    /// prepares its images.
    pub fn prepare(&self, messages: &[ChatMessage]) -> anyhow::Result<PreparedChat> {
        let (text, images) = chat::render(messages, true);
        let ids = self.tokenizer.encode(text, false).map_err(|e| anyhow::anyhow!("tokenizing the chat: {e}"))?.get_ids().to_vec();
        let pad = self.config.tokens.image_token_id;
        let pads = ids.iter().filter(|&&t| t == pad).count();
        if pads != images.len() {
            bail!("the chat's text holds {} image placeholder token(s) of its own; remove `{}` from it", pads - images.len(), chat::IMAGE_PAD);
        }
        let pixels = images
            .iter()
            .enumerate()
            .map(|(i, image)| preprocess::preprocess(image, self.image_mode, &self.image_config, &format!("image {}", i + 1)))
            .collect::<Result<Vec<_>, _>>()?;
        let merge = self.config.vision.spatial_merge_size;
        let grids: Vec<(usize, usize)> = pixels.iter().map(|p| (p.grid_thw[1] / merge, p.grid_thw[2] / merge)).collect();
        let mut input_ids = Vec::with_capacity(ids.len() + grids.iter().map(|(h, w)| h * w).sum::<usize>());
        let mut image_starts = Vec::new();
        let mut next_image = grids.iter();
        for id in ids {
            match (id == pad).then(|| next_image.next()).flatten() {
                Some(&(h, w)) => {
                    image_starts.push(input_ids.len());
                    input_ids.extend(std::iter::repeat_n(pad, h * w));
                }
                None => input_ids.push(id),
            }
        }
        let position_ids = rope::position_ids(&input_ids, pad, &grids);
        Ok(PreparedChat { input_ids, images: pixels, image_starts, position_ids })
    }

    /// The prompt's token embeddings `[1, S, H]` with its images' features in place.
    fn embed_prompt(&self, prompt: &PreparedChat, extra: &[u32]) -> Tensor<B, 3> {
        self.embed_through(&self.language, prompt, extra)
    }

    /// [`Self::embed_prompt`] with the token embeddings of `language` (a trainee's copy).
    fn embed_through(&self, language: &LanguageModel<B>, prompt: &PreparedChat, extra: &[u32]) -> Tensor<B, 3> {
        let features = prompt
            .images
            .iter()
            .zip(&prompt.image_starts)
            .map(|(pixels, &start)| {
                let values = Tensor::<B, 3>::from_data(TensorData::new(pixels.values.clone(), [1, pixels.rows, pixels.patch_dim]), &self.device);
                let plan = self.vision.plan((pixels.grid_thw[1], pixels.grid_thw[2]), &self.device);
                (self.vision.forward(values, &plan).merged.squeeze_dim::<2>(0), start)
            })
            .collect();
        let ids: Vec<u32> = prompt.input_ids.iter().chain(extra).copied().collect();
        language.embed_images(&ids, features)
    }

    /// The decoder (a trainer copies it and adds LoRA to the copy).
    pub fn language(&self) -> &LanguageModel<B> {
        &self.language
    }

    /// The model with nothing tracked for gradients: the frozen base a trainer runs around its
    /// trainee's LoRA.
    pub fn frozen(mut self) -> Self {
        self.vision = self.vision.no_grad();
        self.language = self.language.no_grad();
        self.head = self.head.detach();
        self
    }

    /// Logits `[A, vocab]` for each token of `answer` after the prompt and the answer's tokens
    /// before it (teacher forcing, one pass), through `language`: the model's own decoder or a
    /// trainee's copy with LoRA.
    pub fn answer_logits(&self, language: &LanguageModel<B>, prompt: &PreparedChat, answer: &[u32]) -> anyhow::Result<Tensor<B, 2>> {
        if answer.is_empty() {
            bail!("an empty answer has nothing to score");
        }
        let embeds = self.embed_through(language, prompt, answer);
        let mut positions = prompt.position_ids.clone();
        let next = rope::next_position(&prompt.position_ids);
        for axis in &mut positions {
            axis.extend((0..answer.len() as i64).map(|k| next + k));
        }
        let hidden = language.forward(embeds, &positions);
        let [_, s, h] = hidden.dims();
        // The token at i is predicted from the position before it.
        Ok(hidden.narrow(1, s - answer.len() - 1, answer.len()).reshape([answer.len(), h]).matmul(self.head.clone()))
    }

    /// The next-token logits after the last of `hidden` `[1, S, H]`.
    fn logits(&self, hidden: Tensor<B, 3>) -> anyhow::Result<Vec<f32>> {
        let [_, s, h] = hidden.dims();
        let last = hidden.narrow(1, s - 1, 1).reshape([1, h]);
        last.matmul(self.head.clone()).into_data().convert::<f32>().into_vec::<f32>().map_err(|e| anyhow::anyhow!("reading logits: {e:?}"))
    }

    /// Runs the prompt through the model: the first token's logits and the session to go on with.
    pub fn prefill(&self, prompt: &PreparedChat) -> anyhow::Result<(Vec<f32>, Session<B>)> {
        let embeds = self.embed_prompt(prompt, &[]);
        let plan = self.language.plan(&prompt.position_ids, &self.device);
        let mut cache = KvCache::new(self.config.text.num_hidden_layers);
        let hidden = self.language.forward_cached(embeds, &plan, &mut cache);
        Ok((self.logits(hidden)?, Session { cache, next_position: rope::next_position(&prompt.position_ids) }))
    }

    /// Feeds `token` to the session: the logits of the token after it.
    pub fn step(&self, session: &mut Session<B>, token: u32) -> anyhow::Result<Vec<f32>> {
        self.extend(session, &[token])
    }

    /// Feeds `tokens` (text) to the session at once: the logits of the token after the last.
    pub fn extend(&self, session: &mut Session<B>, tokens: &[u32]) -> anyhow::Result<Vec<f32>> {
        if tokens.is_empty() {
            bail!("nothing to feed the model");
        }
        let embeds = self.language.embed_images(tokens, Vec::new());
        let positions: Vec<i64> = (0..tokens.len() as i64).map(|k| session.next_position + k).collect();
        let plan = self.language.plan(&[positions.clone(), positions.clone(), positions], &self.device);
        session.next_position += tokens.len() as i64;
        let hidden = self.language.forward_cached(embeds, &plan, &mut session.cache);
        self.logits(hidden)
    }

    /// The logits after `prompt` and `generated`, computed over the whole sequence without a
    /// cache: what the cached path must agree with.
    pub fn logits_uncached(&self, prompt: &PreparedChat, generated: &[u32]) -> anyhow::Result<Vec<f32>> {
        let embeds = self.embed_prompt(prompt, generated);
        let mut positions = prompt.position_ids.clone();
        let next = rope::next_position(&prompt.position_ids);
        for axis in &mut positions {
            axis.extend((0..generated.len() as i64).map(|k| next + k));
        }
        self.logits(self.language.forward(embeds, &positions))
    }

    /// Generates an answer to `prompt`; `on_token` sees each new token as it comes and may end
    /// generation by returning false.
    pub fn generate(&self, prompt: &PreparedChat, options: &GenerateOptions, mut on_token: impl FnMut(u32) -> bool) -> anyhow::Result<Generation> {
        let stops = options.stop_tokens.as_deref().unwrap_or(&self.stop_tokens);
        let mut sampler = Sampler::new(options.sampling);
        let mut tokens = Vec::new();
        let mut finish = Finish::Length;
        if options.max_new_tokens > 0 {
            let (mut logits, mut session) = self.prefill(prompt)?;
            let mut seen = vec![false; logits.len()];
            let penalise = options.repetition_penalty != 1.0;
            if penalise {
                prompt.input_ids.iter().for_each(|&t| seen[t as usize] = true);
            }
            loop {
                if penalise {
                    penalise_repeats(&mut logits, &seen, options.repetition_penalty);
                }
                let token = sampler.choose(&logits);
                if let Some(s) = seen.get_mut(token as usize) {
                    *s = true;
                }
                tokens.push(token);
                if !on_token(token) {
                    finish = Finish::Cancelled;
                    break;
                }
                if stops.contains(&token) {
                    finish = Finish::Stop;
                    break;
                }
                if tokens.len() == options.max_new_tokens {
                    break;
                }
                logits = self.step(&mut session, token)?;
            }
        }
        Ok(Generation { text: self.decode(&tokens), tokens, finish, prompt_tokens: prompt.input_ids.len() })
    }

    /// The text of `tokens` without special tokens (ids past the tokenizer's vocabulary, which
    /// only an untrained model picks, are left out).
    pub fn decode(&self, tokens: &[u32]) -> String {
        let known = self.tokenizer.get_vocab_size(true) as u32;
        let ids: Vec<u32> = tokens.iter().copied().filter(|&t| t < known).collect();
        self.tokenizer.decode(&ids, true).unwrap_or_default()
    }
}

/// A generator with its backend erased, for holders that cannot be generic (the server).
pub trait ChatModel: Send {
    /// Answers `messages`; `on_token` sees the answer's tokens so far after each new one and may
    /// end it by returning false.
    fn answer(&self, messages: &[ChatMessage], options: &GenerateOptions, on_token: &mut dyn FnMut(&[u32]) -> bool) -> anyhow::Result<Generation>;

    /// The text of `tokens` without special tokens.
    fn text(&self, tokens: &[u32]) -> String;
}

impl<B: Backend> ChatModel for Generator<B>
where
    Generator<B>: Send,
{
    fn answer(&self, messages: &[ChatMessage], options: &GenerateOptions, on_token: &mut dyn FnMut(&[u32]) -> bool) -> anyhow::Result<Generation> {
        let prompt = self.prepare(messages)?;
        let mut tokens = Vec::new();
        self.generate(&prompt, options, |token| {
            tokens.push(token);
            on_token(&tokens)
        })
    }

    fn text(&self, tokens: &[u32]) -> String {
        self.decode(tokens)
    }
}

/// Loads a generator on the compute backend `backend`, reproducing `image_backend`'s image
/// arithmetic, behind [`ChatModel`].
pub fn load_chat_model(files: &GeneratorFiles, image_backend: preprocess::ImageBackend, backend: crate::backend::BackendKind) -> anyhow::Result<Box<dyn ChatModel>> {
    crate::backend::with_backend!(backend, |device: B| {
        let mut generator = Generator::<B>::load(files, &device)?;
        generator.image_config.backend = image_backend;
        Ok(Box::new(generator) as Box<dyn ChatModel>)
    })
}

/// Picks tokens from logits.
pub struct Sampler {
    sampling: Sampling,
    rng: ChaCha8Rng,
}

impl Sampler {
    /// A sampler; a sampled one starts from its seed.
    pub fn new(sampling: Sampling) -> Self {
        let seed = match sampling {
            Sampling::Sample { seed, .. } => seed,
            Sampling::Greedy => 0,
        };
        Self { sampling, rng: ChaCha8Rng::seed_from_u64(seed) }
    }

    /// The next token.
    pub fn choose(&mut self, logits: &[f32]) -> u32 {
        match self.sampling {
            Sampling::Sample { temperature, top_p, .. } if temperature > 0.0 => {
                let (ids, weights) = nucleus(logits, temperature, top_p);
                let mut r = self.rng.random::<f64>() * weights.iter().sum::<f64>();
                for (id, w) in ids.iter().zip(&weights) {
                    r -= w;
                    if r < 0.0 {
                        return *id;
                    }
                }
                *ids.last().expect("the nucleus holds at least one token")
            }
            _ => argmax(logits),
        }
    }
}

/// transformers' repetition penalty: the logits of tokens `seen` are pushed down by `penalty`.
fn penalise_repeats(logits: &mut [f32], seen: &[bool], penalty: f32) {
    for (logit, _) in logits.iter_mut().zip(seen).filter(|(_, &s)| s) {
        *logit = if *logit < 0.0 { *logit * penalty } else { *logit / penalty };
    }
}

/// The first index of the largest value.
pub fn argmax(values: &[f32]) -> u32 {
    let mut best = 0;
    for (i, &v) in values.iter().enumerate() {
        if v > values[best] {
            best = i;
        }
    }
    best as u32
}

/// The most likely tokens at `temperature` whose probability together first reaches `top_p`
/// (at least one), with their unnormalised probabilities, most likely first.
pub fn nucleus(logits: &[f32], temperature: f32, top_p: f32) -> (Vec<u32>, Vec<f64>) {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let scaled: Vec<f64> = logits.iter().map(|&l| (f64::from(l - max) / f64::from(temperature)).exp()).collect();
    let total: f64 = scaled.iter().sum();
    let mut order: Vec<u32> = (0..logits.len() as u32).collect();
    order.sort_unstable_by(|&a, &b| scaled[b as usize].total_cmp(&scaled[a as usize]).then(a.cmp(&b)));
    let (mut ids, mut weights, mut mass) = (Vec::new(), Vec::new(), 0.0);
    for id in order {
        let p = scaled[id as usize];
        ids.push(id);
        weights.push(p);
        mass += p / total;
        if mass >= f64::from(top_p) {
            break;
        }
    }
    (ids, weights)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_nucleus_is_the_smallest_set_reaching_top_p() {
        // Probabilities 0.5, 0.3, 0.2 at temperature 1.
        let logits = [0.5f32.ln(), 0.3f32.ln(), 0.2f32.ln()];
        assert_eq!(nucleus(&logits, 1.0, 0.5).0, vec![0]);
        assert_eq!(nucleus(&logits, 1.0, 0.7).0, vec![0, 1]);
        assert_eq!(nucleus(&logits, 1.0, 0.81).0, vec![0, 1, 2]);
        assert_eq!(nucleus(&logits, 1.0, 0.0).0, vec![0], "at least one token");
        assert_eq!(argmax(&[1.0, 3.0, 3.0, 2.0]), 1, "the first of equals");
    }

    #[test]
    fn sampling_follows_the_distribution_and_its_seed() {
        let logits = [0.5f32.ln(), 0.3f32.ln(), 0.2f32.ln()];
        let draw = |seed| {
            let mut s = Sampler::new(Sampling::Sample { temperature: 1.0, top_p: 1.0, seed });
            (0..20_000).map(|_| s.choose(&logits)).collect::<Vec<_>>()
        };
        let a = draw(7);
        assert_eq!(a, draw(7), "one seed, one sequence");
        assert_ne!(a, draw(8));
        for (token, p) in [(0, 0.5), (1, 0.3), (2, 0.2)] {
            let share = a.iter().filter(|&&t| t == token).count() as f64 / a.len() as f64;
            assert!((share - p).abs() < 0.015, "token {token}: {share} vs {p}");
        }
        // A low temperature is nearly greedy; top-p keeps only the nucleus.
        let mut cold = Sampler::new(Sampling::Sample { temperature: 0.05, top_p: 1.0, seed: 1 });
        assert!((0..1000).all(|_| cold.choose(&logits) == 0));
        let mut narrow = Sampler::new(Sampling::Sample { temperature: 1.0, top_p: 0.7, seed: 1 });
        assert!((0..1000).all(|_| narrow.choose(&logits) != 2));
    }
}
