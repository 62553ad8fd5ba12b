//! The relsim encoder: image → Qwen2.5-VL → last hidden state at `<|query|>` → projection → L2.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use anyhow::{bail, Context};
use burn::module::Param;
use burn::nn::{DropoutConfig, Embedding, Linear};
use burn::tensor::{backend::Backend, Tensor, TensorData};
use image::RgbImage;
use relsim_shared::image::preprocess::{self, PixelValues, PreprocessMode, QwenImageConfig};
use relsim_shared::text::minilm::l2_normalize;
use relsim_shared::weights::{linear_weight, Weights};

use super::config::QwenConfig;
use super::adapter::{load_adapter, Adapter};
use super::language::{DecoderPlan, LanguageModel, LayerLora, Lora};
use super::prompt::Prompt;
use super::rope;
use super::vision::{VisionPlan, VisionTower};
use crate::weights::MappedWeights;

/// Key prefixes of the two checkpoint layouts.
pub(crate) struct Layout {
    pub vision: &'static str,
    pub language: &'static str,
}

/// The hub layout (`visual.*`, `model.layers.*`) or the newer one (`model.visual.*`, `model.language_model.*`).
pub(crate) fn detect_layout(weights: &MappedWeights) -> anyhow::Result<Layout> {
    if weights.contains("model.language_model.embed_tokens.weight") {
        Ok(Layout { vision: "model.visual.", language: "model.language_model." })
    } else if weights.contains("model.embed_tokens.weight") {
        Ok(Layout { vision: "visual.", language: "model." })
    } else {
        bail!("{}: neither `model.embed_tokens.weight` nor `model.language_model.embed_tokens.weight`: not a Qwen2.5-VL checkpoint", weights.describe())
    }
}

/// The base checkpoint's token embeddings cut (or checked to reach) to `rows`, as
/// `resize_token_embeddings` does when an adapter carries no table of its own.
pub(crate) fn base_embedding<B: Backend>(
    config_path: &Path,
    text: &super::config::TextConfig,
    weights: &MappedWeights,
    layout: &Layout,
    rows: usize,
    device: &B::Device,
) -> anyhow::Result<Embedding<B>> {
    if text.vocab_size < rows {
        bail!("{}: the base vocabulary ({}) is smaller than the tokenizer ({rows}) and the adapter carries no embed_tokens", config_path.display(), text.vocab_size);
    }
    let table: Tensor<B, 2> = weights.tensor(&format!("{}embed_tokens.weight", layout.language), [text.vocab_size, text.hidden_size], device)?;
    Ok(Embedding { weight: Param::from_tensor(table.narrow(0, 0, rows)) })
}

/// Loads the base model's towers without an adapter (embedding rows as in the checkpoint):
/// what the loading benchmark measures.
pub fn load_base<B: Backend>(base: &Path, device: &B::Device) -> anyhow::Result<(QwenConfig, VisionTower<B>, LanguageModel<B>)> {
    let config = QwenConfig::read(&base.join("config.json"))?;
    let weights = MappedWeights::open_dir(base)?;
    let layout = detect_layout(&weights)?;
    let t = &config.text;
    let embed = weights.embedding(&format!("{}embed_tokens.weight", layout.language), t.vocab_size, t.hidden_size, device)?;
    let vision = VisionTower::from_weights(&config.vision, &weights, layout.vision, device)?;
    let language = LanguageModel::from_weights(t, &weights, layout.language, embed, Vec::new(), device)?;
    Ok((config, vision, language))
}

/// Everything the encoder computes for one image; tests compare each stage.
pub struct Trace<B: Backend> {
    pub input_ids: Vec<u32>,
    pub pixels: PixelValues,
    pub position_ids: [Vec<i64>; 3],
    pub query_index: usize,
    pub patch_states: Tensor<B, 2>,
    pub image_features: Tensor<B, 2>,
    pub query_hidden: Tensor<B, 1>,
    pub embedding: Tensor<B, 1>,
}

/// Where to find the encoder's files.
#[derive(Debug, Clone)]
pub struct EncoderFiles {
    /// The Qwen2.5-VL folder (config.json, safetensors, tokenizer, preprocessor config).
    pub base: PathBuf,
    /// The relsim adapter folder (adapter_config.json, adapter_model.safetensors, projection_and_config.pt).
    pub adapter: PathBuf,
    /// Tokenizer file; default `base/tokenizer.json`.
    pub tokenizer: Option<PathBuf>,
    /// Image processor settings; default `base/preprocessor_config.json` or the Qwen defaults.
    pub image_config: Option<QwenImageConfig>,
}

/// The relsim image encoder.
pub struct RelsimEncoder<B: Backend> {
    pub config: QwenConfig,
    pub vision: VisionTower<B>,
    pub language: LanguageModel<B>,
    pub projection: Linear<B>,
    pub prompt: Prompt,
    pub image_config: QwenImageConfig,
    plans: GridPlans<B>,
    device: B::Device,
}

/// The projection file of an adapter written by `relsim train` (relsim's own trainer writes
/// `projection_and_config.pt`), with `projection.weight` `[out, hidden]` and `projection.bias`.
pub const PROJECTION_SAFETENSORS: &str = "projection.safetensors";

/// Reads the projection `Linear(hidden → out)` of the adapter in `dir`: `projection_and_config.pt`
/// (relsim's torch pickle) or, failing that, `projection.safetensors`.
fn load_projection<B: Backend>(dir: &Path, hidden: usize, device: &B::Device) -> anyhow::Result<Linear<B>> {
    let path = dir.join("projection_and_config.pt");
    if !path.exists() && dir.join(PROJECTION_SAFETENSORS).exists() {
        let path = dir.join(PROJECTION_SAFETENSORS);
        let bytes = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
        let file = relsim_shared::weights::TensorFile::parse(path.display().to_string(), &bytes)?;
        let (view, _) = file.view("projection.weight").with_context(|| format!("{}: no `projection.weight`", path.display()))?;
        let out = view.shape()[0];
        return Ok(file.linear("projection", hidden, out, true, device)?);
    }
    let path = path.as_path();
    let reader = burn_store::pytorch::PytorchReader::with_top_level_key(path, "projection")
        .map_err(|e| anyhow::anyhow!("{}: cannot read the `projection` entry: {e}", path.display()))?;
    let read = |key: &str| -> anyhow::Result<(Vec<f32>, Vec<usize>)> {
        let snapshot = reader.get(key).with_context(|| format!("{}: `projection` has no `{key}`", path.display()))?;
        let data = snapshot.to_data().map_err(|e| anyhow::anyhow!("{}: reading projection.{key}: {e:?}", path.display()))?;
        let shape = data.shape.to_vec();
        let values = data.convert::<f32>().into_vec::<f32>().map_err(|e| anyhow::anyhow!("{}: projection.{key}: {e:?}", path.display()))?;
        Ok((values, shape))
    };
    let (weight, wshape) = read("weight")?;
    let (bias, bshape) = read("bias")?;
    if wshape.len() != 2 || wshape[1] != hidden || bshape != [wshape[0]] {
        bail!("{}: projection weight {wshape:?} / bias {bshape:?} do not fit hidden size {hidden}", path.display());
    }
    let out = wshape[0];
    Ok(Linear {
        weight: Param::from_tensor(linear_weight(&weight, out, hidden, device)),
        bias: Some(Param::from_tensor(Tensor::from_data(TensorData::new(bias, [out]), device))),
    })
}

/// The prompt for an image of `grid_thw` patches: token ids, where its `<|image_pad|>` run
/// starts, where `<|query|>` is, and the M-RoPE position ids.
pub fn prompt_tokens(config: &QwenConfig, prompt: &Prompt, grid_thw: [usize; 3]) -> (Vec<u32>, usize, usize, [Vec<i64>; 3]) {
    let merge = config.vision.spatial_merge_size;
    let merged_grid = (grid_thw[1] / merge, grid_thw[2] / merge);
    let (input_ids, image_start, query_index) = prompt.input_ids(config.tokens.image_token_id, merged_grid.0 * merged_grid.1);
    let position_ids = rope::position_ids(&input_ids, config.tokens.image_token_id, &[merged_grid]);
    (input_ids, image_start, query_index, position_ids)
}

/// The parts of the encoder an image passes through, borrowed: the trainer holds the trainable
/// ones (language model with LoRA, projection) apart from the frozen ones.
pub struct Towers<'a, B: Backend> {
    pub config: &'a QwenConfig,
    pub prompt: &'a Prompt,
    pub vision: &'a VisionTower<B>,
    pub language: &'a LanguageModel<B>,
    pub projection: &'a Linear<B>,
    /// Where plans of grids seen before are kept.
    pub plans: &'a GridPlans<B>,
}

/// What embedding images of one patch grid needs besides their pixels, made once per grid: the
/// prompt (token ids, where the image and `<|query|>` sit, its token embeddings) and both
/// towers' plans. Nothing of it is computed or uploaded again for the next image of that grid.
pub struct GridPlan<B: Backend> {
    image_start: usize,
    query_index: usize,
    /// The prompt's token embeddings `[1, S, H]`; each image's features replace its pad rows.
    token_embeds: Tensor<B, 3>,
    vision: VisionPlan<B>,
    decoder: DecoderPlan<B>,
}

/// Plans by patch grid (`[t, h, w]`).
pub struct GridPlans<B: Backend>(Mutex<HashMap<[usize; 3], Arc<GridPlan<B>>>>);

impl<B: Backend> Default for GridPlans<B> {
    fn default() -> Self {
        GridPlans(Mutex::new(HashMap::new()))
    }
}

impl<B: Backend> Towers<'_, B> {
    /// The plan of `grid`, made on first use.
    fn plan(&self, grid: [usize; 3], device: &B::Device) -> Arc<GridPlan<B>> {
        let mut plans = self.plans.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        plans
            .entry(grid)
            .or_insert_with(|| {
                let (input_ids, image_start, query_index, position_ids) = prompt_tokens(self.config, self.prompt, grid);
                Arc::new(GridPlan {
                    image_start,
                    query_index,
                    token_embeds: self.language.embed(&input_ids, None),
                    vision: self.vision.plan((grid[1], grid[2]), device),
                    decoder: self.language.plan(&position_ids, device),
                })
            })
            .clone()
    }

    /// Unit embeddings `[n, out]` of images that share one patch grid, as one batch;
    /// `query_row` `[1, hidden]`, when given, replaces the `<|query|>` token's input embedding
    /// (the row the trainer learns).
    pub fn embed_group(&self, pixels: &[&PixelValues], query_row: Option<Tensor<B, 2>>, device: &B::Device) -> Tensor<B, 2> {
        let grid = pixels[0].grid_thw;
        debug_assert!(pixels.iter().all(|p| p.grid_thw == grid), "one patch grid per group");
        let (n, rows, patch_dim) = (pixels.len(), pixels[0].rows, pixels[0].patch_dim);
        let values: Vec<f32> = pixels.iter().flat_map(|p| p.values.iter().copied()).collect();
        let batch = Tensor::<B, 3>::from_data(TensorData::new(values, [n, rows, patch_dim]), device);
        let plan = self.plan(grid, device);
        let features = self.vision.forward(batch, &plan.vision).merged;
        let [_, m, h] = features.dims();
        let (start, query_index) = (plan.image_start, plan.query_index);
        let mut embeds = plan.token_embeds.clone().repeat_dim(0, n).slice_assign([0..n, start..start + m, 0..h], features);
        if let Some(row) = query_row {
            embeds = embeds.slice_assign([0..n, query_index..query_index + 1, 0..h], row.unsqueeze::<3>().expand([n, 1, h]));
        }
        let hidden = self.language.forward_planned(embeds, &plan.decoder);
        let query_hidden = hidden.narrow(1, query_index, 1).reshape([n, h]);
        l2_normalize(self.projection.forward(query_hidden))
    }
}

/// A Qwen2.5-VL folder opened: its config, memory-mapped weights and their layout, the prompt
/// (tokenizer with `<|query|>`) and the image processor settings.
pub(crate) struct BaseFolder {
    pub config_path: PathBuf,
    pub config: QwenConfig,
    pub weights: MappedWeights,
    pub layout: Layout,
    pub prompt: Prompt,
    pub image_config: QwenImageConfig,
}

impl BaseFolder {
    /// Opens `base`; the tokenizer is `tokenizer` or `base/tokenizer.json`, the image settings
    /// `image_config`, else `base/preprocessor_config.json`, else Qwen's defaults.
    pub fn open(base: &Path, tokenizer: Option<&Path>, image_config: Option<QwenImageConfig>) -> anyhow::Result<Self> {
        let config_path = base.join("config.json");
        let config = QwenConfig::read(&config_path)?;
        let weights = MappedWeights::open_dir(base)?;
        let layout = detect_layout(&weights)?;
        let prompt = Prompt::load(&tokenizer.map(Path::to_path_buf).unwrap_or_else(|| base.join("tokenizer.json")))?;
        let processor_path = base.join("preprocessor_config.json");
        let image_config = match (image_config, std::fs::read(&processor_path)) {
            (Some(given), _) => given,
            (None, Ok(bytes)) => QwenImageConfig::from_json(&bytes).with_context(|| format!("parsing {}", processor_path.display()))?,
            (None, Err(_)) => QwenImageConfig::default(),
        };
        Ok(Self { config_path, config, weights, layout, prompt, image_config })
    }
}

/// Random stand-in weights of any shape, drawn on the device: for speed measurements of a
/// model size whose checkpoint we do not have. Norm scales are ones, everything else N(0, 0.02).
pub struct RandomWeights;

impl Weights for RandomWeights {
    fn view(&self, _key: &str) -> Option<(safetensors::tensor::TensorView<'_>, String)> {
        None
    }

    fn describe(&self) -> String {
        "random weights".to_string()
    }

    fn read_f32(&self, _key: &str, expected: &[usize]) -> relsim_shared::Result<Vec<f32>> {
        // Small host-side tensors only (the patch embedding): a cheap deterministic pattern.
        let len: usize = expected.iter().product();
        Ok((0..len).map(|j| ((j * 7919 % 1009) as f32 / 1009.0 - 0.5) * 0.04).collect())
    }

    fn tensor<B2: Backend, const D: usize>(&self, key: &str, expected: [usize; D], device: &B2::Device) -> relsim_shared::Result<Tensor<B2, D>> {
        Ok(if D == 1 && key.ends_with(".weight") {
            Tensor::ones(expected, device)
        } else {
            Tensor::random(expected, burn::tensor::Distribution::Normal(0.0, 0.02), device)
        })
    }
}

impl<B: Backend> RelsimEncoder<B> {
    /// The encoder for `config` with random weights (base, rank-`rank` LoRA on q/v, projection to
    /// 384) and the prompt of `tokenizer`: what `relsim bench qwen-speed` times.
    pub fn random(config: QwenConfig, tokenizer: &Path, rank: usize, device: &B::Device) -> anyhow::Result<Self> {
        let prompt = Prompt::load(tokenizer)?;
        let w = RandomWeights;
        let t = &config.text;
        let kv = t.num_key_value_heads * t.head_dim();
        let lora = (0..t.num_hidden_layers)
            .map(|i| {
                let one = |out: usize| -> anyhow::Result<Lora<B>> {
                    let key = format!("lora.{i}");
                    Ok(Lora {
                        a: w.linear(&key, t.hidden_size, rank, false, device)?,
                        b: w.linear(&key, rank, out, false, device)?,
                        scale: 2.0,
                        dropout: DropoutConfig::new(0.0).init(),
                    })
                };
                Ok(LayerLora { q: Some(one(t.hidden_size)?), v: Some(one(kv)?) })
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        let embed = w.embedding("embed_tokens", prompt.len(), t.hidden_size, device)?;
        let vision = VisionTower::from_weights(&config.vision, &w, "visual.", device)?;
        let language = LanguageModel::from_weights(t, &w, "model.", embed, lora, device)?.merge_lora();
        let projection = w.linear("projection", t.hidden_size, 384, true, device)?;
        Ok(Self { config, vision, language, projection, prompt, image_config: QwenImageConfig::default(), plans: GridPlans::default(), device: device.clone() })
    }

    /// Loads the base model, applies the adapter and reads the projection.
    pub fn load(files: &EncoderFiles, device: &B::Device) -> anyhow::Result<Self> {
        let base = &files.base;
        let BaseFolder { config_path, config, weights, layout, prompt, image_config } =
            BaseFolder::open(base, files.tokenizer.as_deref(), files.image_config.clone())?;

        // The adapter: LoRA factors, maybe the resized embedding table, and the projection.
        let adapter = &files.adapter;
        let text = &config.text;
        let rows = prompt.len();
        let Adapter { lora, embed_tokens: adapter_embed, .. } = load_adapter::<B>(adapter, base, text, Some(rows), device)?;

        // PEFT saves the embedding resized to the tokenizer with <|query|>; without it, the
        // base table is cut (or must already reach) to that length, as resize_token_embeddings does.
        let embed_tokens = match adapter_embed {
            Some(embed) => embed,
            None => base_embedding(&config_path, text, &weights, &layout, rows, device)?,
        };

        let vision = VisionTower::from_weights(&config.vision, &weights, layout.vision, device)?;
        // Inference never needs the factors apart: fold them into q/v once, here.
        let language = LanguageModel::from_weights(text, &weights, layout.language, embed_tokens, lora, device)?.merge_lora();
        let projection = load_projection(adapter, text.hidden_size, device)?;
        Ok(Self { config, vision, language, projection, prompt, image_config, plans: GridPlans::default(), device: device.clone() })
    }

    /// Runs one decoded image through every stage.
    pub fn trace(&self, image: &RgbImage, mode: PreprocessMode, name: &str) -> anyhow::Result<Trace<B>> {
        let pixels = preprocess::preprocess(image, mode, &self.image_config, name)?;
        Ok(self.trace_pixels(pixels))
    }

    /// Runs prepared pixel values through the model.
    pub fn trace_pixels(&self, pixels: PixelValues) -> Trace<B> {
        let [_, gh, gw] = pixels.grid_thw;
        let (input_ids, image_start, query_index, position_ids) = self.tokens(pixels.grid_thw);
        let pixel_tensor = Tensor::<B, 3>::from_data(TensorData::new(pixels.values.clone(), [1, pixels.rows, pixels.patch_dim]), &self.device);
        let vision = self.vision.forward(pixel_tensor, &self.vision.plan((gh, gw), &self.device));
        let image_features = vision.merged.squeeze_dim::<2>(0);
        let embeds = self.language.embed(&input_ids, Some((image_features.clone(), image_start)));
        let hidden = self.language.forward(embeds, &position_ids);
        let h = hidden.dims()[2];
        let query_hidden = hidden.narrow(1, query_index, 1).reshape([1, h]);
        let embedding = l2_normalize(self.projection.forward(query_hidden.clone()));
        let out = embedding.dims()[1];
        Trace {
            input_ids,
            pixels,
            position_ids,
            query_index,
            patch_states: vision.patch_states.squeeze_dim::<2>(0),
            image_features,
            query_hidden: query_hidden.reshape([h]),
            embedding: embedding.reshape([out]),
        }
    }

    /// The prompt for an image of `grid_thw` patches: token ids, where its `<|image_pad|>` run
    /// starts, where `<|query|>` is, and the M-RoPE position ids.
    fn tokens(&self, grid_thw: [usize; 3]) -> (Vec<u32>, usize, usize, [Vec<i64>; 3]) {
        prompt_tokens(&self.config, &self.prompt, grid_thw)
    }

    /// The relsim embeddings of prepared images, in order. Images of one patch grid share a
    /// prompt length, so each such group runs through both towers as one batch.
    pub fn embed_pixels(&self, pixels: &[PixelValues]) -> anyhow::Result<Vec<Vec<f32>>> {
        let mut out = vec![Vec::new(); pixels.len()];
        let mut grids: Vec<[usize; 3]> = pixels.iter().map(|p| p.grid_thw).collect();
        grids.sort_unstable();
        grids.dedup();
        for grid in grids {
            let members: Vec<usize> = (0..pixels.len()).filter(|&i| pixels[i].grid_thw == grid).collect();
            let group: Vec<&PixelValues> = members.iter().map(|&i| &pixels[i]).collect();
            let towers = Towers {
                config: &self.config,
                prompt: &self.prompt,
                vision: &self.vision,
                language: &self.language,
                projection: &self.projection,
                plans: &self.plans,
            };
            let embedding = towers.embed_group(&group, None, &self.device);
            let dim = embedding.dims()[1];
            let values = embedding.into_data().convert::<f32>().into_vec::<f32>().map_err(|e| anyhow::anyhow!("reading embeddings: {e:?}"))?;
            for (&i, row) in members.iter().zip(values.chunks(dim)) {
                out[i] = row.to_vec();
            }
        }
        Ok(out)
    }

    /// The relsim embeddings of decoded images (`names` for error messages), batched as
    /// `embed_pixels` does.
    pub fn embed_images(&self, images: &[RgbImage], mode: PreprocessMode, names: &[String]) -> anyhow::Result<Vec<Vec<f32>>> {
        let pixels = images
            .iter()
            .zip(names)
            .map(|(image, name)| preprocess::preprocess(image, mode, &self.image_config, name))
            .collect::<Result<Vec<_>, _>>()?;
        self.embed_pixels(&pixels)
    }

    /// The relsim embedding of one image (unit length).
    pub fn embed(&self, image: &RgbImage, mode: PreprocessMode, name: &str) -> anyhow::Result<Vec<f32>> {
        let mut one = self.embed_images(std::slice::from_ref(image), mode, &[name.to_string()])?;
        Ok(one.remove(0))
    }
}
