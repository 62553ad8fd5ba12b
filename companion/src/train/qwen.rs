//! The relsim recipe for the Qwen2.5-VL relsim encoder: LoRA on the language model's q_proj and
//! v_proj (fresh, as PEFT initialises it), the `<|query|>` embedding row and the projection to 384
//! learn; the vision tower and every base weight stay frozen. The result is a PEFT adapter folder
//! that `relsim embed-image --adapter` and HF peft both load.

use std::path::{Path, PathBuf};

use anyhow::Context;
use burn::module::{AutodiffModule, Module, Param};
use burn::nn::{DropoutConfig, Embedding, Initializer, Linear, LinearConfig};
use burn::tensor::{backend::Backend, Tensor};
use relsim_shared::image::preprocess::{self, ImageBackend, PixelValues, PreprocessMode, QwenImageConfig};
use relsim_shared::weights::Weights;
use safetensors::Dtype;
use serde::{Deserialize, Serialize};

use super::data::{Batch, SceneSplit};
use super::infonce::Temperature;
use super::{Inner, Train, Trainee};
use crate::qwen::config::QwenConfig;
use crate::qwen::language::{LanguageModel, Lora};
use crate::qwen::prompt::Prompt;
use crate::qwen::relsim::{BaseFolder, GridPlans, Towers, PROJECTION_SAFETENSORS};
use crate::qwen::vision::VisionTower;
use crate::files::write_atomically;

/// PEFT's key prefix for the language model in a Qwen2.5-VL adapter (transformers >= 4.52 naming).
const PEFT_PREFIX: &str = "base_model.model.model.language_model.";
/// The relational embedding size (MiniLM's).
const OUT_DIM: usize = 384;
/// Images per forward pass in validation.
const VALIDATION_BATCH: usize = 16;

/// What to train: the base model and the LoRA settings (relsim's: r 16, alpha 32, dropout 0.05).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QwenSpec {
    /// The Qwen2.5-VL folder (config.json, safetensors).
    pub base: PathBuf,
    /// Tokenizer file; default `base/tokenizer.json`.
    pub tokenizer: Option<PathBuf>,
    pub rank: usize,
    pub alpha: f64,
    pub dropout: f64,
    /// How training images are fitted: relsim's 448x448 centre square, or their own size.
    pub preprocess: PreprocessMode,
    /// Which image processor's arithmetic (runs saved before it existed used PIL's).
    #[serde(default = "pil_backend")]
    pub image_backend: ImageBackend,
}

fn pil_backend() -> ImageBackend {
    ImageBackend::Pil
}

impl QwenSpec {
    /// relsim's LoRA settings for `base`.
    pub fn relsim(base: PathBuf, tokenizer: Option<PathBuf>) -> Self {
        QwenSpec { base, tokenizer, rank: 16, alpha: 32.0, dropout: 0.05, preprocess: PreprocessMode::Train, image_backend: ImageBackend::default() }
    }
}

/// The trained part of the encoder (the base weights inside `language` are frozen).
#[derive(Module, Debug)]
pub struct QwenTrainee<B: Backend> {
    /// The decoder with trainable LoRA factors on q_proj and v_proj.
    pub language: LanguageModel<B>,
    /// The input embedding of `<|query|>`, `[1, hidden]`.
    pub query_row: Param<Tensor<B, 2>>,
    pub projection: Linear<B>,
    pub temperature: Temperature<B>,
}

/// What the Qwen trainee needs and does not learn.
pub struct QwenContext {
    pub spec: QwenSpec,
    pub config: QwenConfig,
    pub prompt: Prompt,
    pub vision: VisionTower<Train>,
    pub image_config: QwenImageConfig,
    /// The dtype of the base embedding table, kept for the adapter's copy of it.
    pub embed_dtype: Dtype,
}

/// A fresh LoRA pair as PEFT initialises it: A kaiming-uniform (a = √5, i.e. U(±1/√in)), B zero.
pub(crate) fn fresh_lora(d_in: usize, rank: usize, d_out: usize, spec: &QwenSpec, device: &burn::backend::flex::FlexDevice) -> Lora<Train> {
    let bound = 1.0 / (d_in as f64).sqrt();
    Lora {
        a: LinearConfig::new(d_in, rank).with_bias(false).with_initializer(Initializer::Uniform { min: -bound, max: bound }).init(device),
        b: LinearConfig::new(rank, d_out).with_bias(false).with_initializer(Initializer::Zeros).init(device),
        scale: (spec.alpha / spec.rank as f64) as f32,
        dropout: DropoutConfig::new(spec.dropout).init(),
    }
}

/// Loads the frozen base and builds the trainable parts.
pub fn init(spec: &QwenSpec, device: &burn::backend::flex::FlexDevice) -> anyhow::Result<(QwenContext, QwenTrainee<Train>)> {
    let BaseFolder { config_path, config, weights, layout, prompt, mut image_config } = BaseFolder::open(&spec.base, spec.tokenizer.as_deref(), None)?;
    image_config.backend = spec.image_backend;
    let t = &config.text;
    let rows = prompt.len();
    anyhow::ensure!(t.vocab_size >= rows, "{}: the vocabulary ({}) is smaller than the tokenizer with <|query|> ({rows})", config_path.display(), t.vocab_size);
    // relsim resizes the table to the tokenizer (151,666 rows); the `<|query|>` row starts at
    // the mean of the others (transformers' mean resizing, without its random spread).
    let table_key = format!("{}embed_tokens.weight", layout.language);
    let embed_dtype = weights.view(&table_key).map(|(v, _)| v.dtype()).unwrap_or(Dtype::F32);
    let table: Tensor<Train, 2> = weights.tensor(&table_key, [t.vocab_size, t.hidden_size], device)?.narrow(0, 0, rows);
    let query_id = prompt.query_token_id as usize;
    let others = table.clone().narrow(0, 0, query_id);
    let query_row = others.mean_dim(0).detach();
    let embed = Embedding { weight: Param::from_tensor(table) };
    let vision = VisionTower::<Train>::from_weights(&config.vision, &weights, layout.vision, device)?.no_grad();
    let mut language = LanguageModel::<Train>::from_weights(t, &weights, layout.language, embed, Vec::new(), device)?.no_grad();
    let kv = t.num_key_value_heads * t.head_dim();
    for layer in &mut language.layers {
        layer.self_attn.q_proj.lora = Some(fresh_lora(t.hidden_size, spec.rank, t.hidden_size, spec, device));
        layer.self_attn.v_proj.lora = Some(fresh_lora(t.hidden_size, spec.rank, kv, spec, device));
    }
    let trainee = QwenTrainee {
        language,
        query_row: Param::from_tensor(query_row),
        // nn.Linear's default initialisation (burn's default is the same kaiming-uniform).
        projection: LinearConfig::new(t.hidden_size, OUT_DIM).init(device),
        temperature: Temperature::new(device),
    };
    let context = QwenContext { spec: spec.clone(), config, prompt, vision, image_config, embed_dtype };
    Ok((context, trainee))
}

/// The images of `batch`, preprocessed as the spec says.
fn pixels(context: &QwenContext, batch: &Batch) -> anyhow::Result<Vec<PixelValues>> {
    let mode = context.spec.preprocess;
    batch.images.iter().zip(&batch.names).map(|(image, name)| Ok(preprocess::preprocess(image, mode, &context.image_config, name)?)).collect()
}

impl<B: Backend> QwenTrainee<B> {
    /// Unit embeddings of prepared images of one grid, through `vision` and this trainee.
    fn embed_pixels(&self, context: &QwenContext, vision: &VisionTower<B>, pixels: &[PixelValues]) -> Tensor<B, 2> {
        // A fresh plan per call: the trainer's language model changes every step.
        let plans = GridPlans::default();
        let towers = Towers { config: &context.config, prompt: &context.prompt, vision, language: &self.language, projection: &self.projection, plans: &plans };
        let refs: Vec<&PixelValues> = pixels.iter().collect();
        towers.embed_group(&refs, Some(self.query_row.val()), &self.query_row.device())
    }
}

impl Trainee for QwenTrainee<Train> {
    type Context = QwenContext;

    fn embed(&self, context: &QwenContext, batch: &Batch) -> anyhow::Result<Tensor<Train, 2>> {
        let pixels = pixels(context, batch)?;
        anyhow::ensure!(
            pixels.iter().all(|p| p.grid_thw == pixels[0].grid_thw),
            "a training batch must share one patch grid: use --preprocess train or scenes of one size"
        );
        Ok(self.embed_pixels(context, &context.vision, &pixels))
    }

    fn temperature(&self) -> &Temperature<Train> {
        &self.temperature
    }

    fn validate(&self, context: &QwenContext, split: &SceneSplit) -> anyhow::Result<f64> {
        let (model, vision): (QwenTrainee<Inner>, VisionTower<Inner>) = (self.valid(), context.vision.valid());
        let mut embeddings = Vec::with_capacity(split.images.len());
        let all: Vec<usize> = (0..split.images.len()).collect();
        for chunk in all.chunks(VALIDATION_BATCH) {
            let batch = split.batch(chunk, super::Augment::None, 0, 0);
            let out = model.embed_pixels(context, &vision, &pixels(context, &batch)?);
            let dim = out.dims()[1];
            let values = out.into_data().convert::<f32>().into_vec::<f32>().map_err(|e| anyhow::anyhow!("reading embeddings: {e:?}"))?;
            embeddings.extend(values.chunks(dim).map(<[f32]>::to_vec));
        }
        Ok(crate::scenes::bench::evaluate(&embeddings, &split.records).p_at_1)
    }

    fn export(&self, context: &QwenContext, dir: &Path) -> anyhow::Result<()> {
        export_adapter(&self.valid(), context, dir)
    }
}

/// Values of a tensor as f32, with its shape.
fn values<B: Backend, const D: usize>(t: Tensor<B, D>) -> (Vec<usize>, Vec<f32>) {
    let shape = t.dims().to_vec();
    (shape, t.into_data().convert::<f32>().into_vec::<f32>().expect("float tensor"))
}

/// Little-endian bytes of `values` in `dtype` (F32, F16 or BF16).
fn encode(values: &[f32], dtype: Dtype) -> Vec<u8> {
    match dtype {
        Dtype::BF16 => values.iter().flat_map(|v| half::bf16::from_f32(*v).to_le_bytes()).collect(),
        Dtype::F16 => values.iter().flat_map(|v| half::f16::from_f32(*v).to_le_bytes()).collect(),
        _ => values.iter().flat_map(|v| v.to_le_bytes()).collect(),
    }
}

/// Serialises named tensors `(key, shape, dtype, bytes)` as safetensors.
pub(crate) fn safetensors_bytes(tensors: &[(String, Vec<usize>, Dtype, Vec<u8>)]) -> anyhow::Result<Vec<u8>> {
    let views = tensors
        .iter()
        .map(|(k, shape, dtype, bytes)| Ok((k.clone(), safetensors::tensor::TensorView::new(*dtype, shape.clone(), bytes)?)))
        .collect::<Result<Vec<_>, safetensors::SafeTensorError>>()?;
    Ok(safetensors::serialize(views, None)?)
}

/// PEFT's `adapter_config.json` for LoRA on the language model's q_proj and v_proj.
pub(crate) fn adapter_config(spec: &QwenSpec) -> serde_json::Value {
    serde_json::json!({
        "peft_type": "LORA",
        "task_type": "CAUSAL_LM",
        "base_model_name_or_path": spec.base.display().to_string(),
        "r": spec.rank,
        "lora_alpha": spec.alpha,
        "lora_dropout": spec.dropout,
        "target_modules": ["q_proj", "v_proj"],
        "bias": "none",
        "fan_in_fan_out": false,
        "inference_mode": true,
        "init_lora_weights": true,
        "use_rslora": false,
        "use_dora": false,
        "modules_to_save": null,
        "layers_to_transform": null,
        "layers_pattern": null,
        "rank_pattern": {},
        "alpha_pattern": {},
    })
}

/// Every layer's LoRA A/B of q_proj and v_proj under PEFT's key names, as f32 safetensors entries.
pub(crate) fn lora_tensors<B: Backend>(language: &LanguageModel<B>) -> anyhow::Result<Vec<(String, Vec<usize>, Dtype, Vec<u8>)>> {
    let mut tensors = Vec::new();
    for (i, layer) in language.layers.iter().enumerate() {
        for (name, lora) in [("q_proj", &layer.self_attn.q_proj.lora), ("v_proj", &layer.self_attn.v_proj.lora)] {
            let lora = lora.as_ref().context("a trained layer without LoRA")?;
            let key = format!("{PEFT_PREFIX}layers.{i}.self_attn.{name}");
            // burn keeps Linear weights as [in, out]; PEFT as [out, in].
            for (part, weight) in [("lora_A", lora.a.weight.val().transpose()), ("lora_B", lora.b.weight.val().transpose())] {
                let (shape, data) = values(weight);
                tensors.push((format!("{key}.{part}.weight"), shape, Dtype::F32, encode(&data, Dtype::F32)));
            }
        }
    }
    Ok(tensors)
}

/// Writes the adapter folder: `adapter_config.json` (PEFT's LoRA config), `adapter_model.safetensors`
/// (LoRA A/B of every layer's q_proj and v_proj under PEFT's key names, and the resized
/// `embed_tokens` holding the learned `<|query|>` row, in the base table's dtype) and
/// `projection.safetensors`.
pub fn export_adapter(model: &QwenTrainee<Inner>, context: &QwenContext, dir: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let spec = &context.spec;
    write_atomically(&dir.join("adapter_config.json"), &serde_json::to_vec_pretty(&adapter_config(spec))?)?;

    let mut tensors = lora_tensors(&model.language)?;
    let mut push = |key: String, (shape, data): (Vec<usize>, Vec<f32>), dtype: Dtype| tensors.push((key, shape, dtype, encode(&data, dtype)));
    let table = model.language.embed_tokens.weight.val();
    let [rows, hidden] = table.dims();
    let q = context.prompt.query_token_id as usize;
    let table = table.slice_assign([q..q + 1, 0..hidden], model.query_row.val());
    debug_assert_eq!(rows, context.prompt.len());
    push(format!("{PEFT_PREFIX}embed_tokens.weight"), values(table), context.embed_dtype);
    write_atomically(&dir.join("adapter_model.safetensors"), &safetensors_bytes(&tensors)?)?;

    let projection = vec![
        ("projection.weight".to_string(), values(model.projection.weight.val().transpose())),
        ("projection.bias".to_string(), values(model.projection.bias.as_ref().context("projection without bias")?.val())),
    ];
    let projection: Vec<_> = projection.into_iter().map(|(k, (shape, data))| (k, shape, Dtype::F32, encode(&data, Dtype::F32))).collect();
    write_atomically(&dir.join(PROJECTION_SAFETENSORS), &safetensors_bytes(&projection)?)
}

/// Where a Qwen adapter for `relsim eval` is: an adapter folder, a qwen run folder (its exported
/// adapter, else its newest checkpoint) or one of its checkpoints (exported on the fly into
/// `CHECKPOINT/adapter`). Returns the base folder, the adapter folder and the tokenizer, or None
/// when `path` holds no Qwen adapter or run.
pub fn adapter_for(path: &Path) -> anyhow::Result<Option<(PathBuf, PathBuf, Option<PathBuf>)>> {
    if path.join("adapter_config.json").exists() {
        let text = std::fs::read(path.join("adapter_config.json")).with_context(|| format!("reading {}", path.join("adapter_config.json").display()))?;
        let config: serde_json::Value = serde_json::from_slice(&text).with_context(|| format!("parsing {}", path.join("adapter_config.json").display()))?;
        let base = config["base_model_name_or_path"].as_str().with_context(|| format!("{}: no base_model_name_or_path", path.display()))?;
        return Ok(Some((PathBuf::from(base), path.to_path_buf(), None)));
    }
    let (run, checkpoint) = if path.join("state.json").exists() {
        (path.parent().and_then(Path::parent).map(Path::to_path_buf), Some(path.to_path_buf()))
    } else {
        (Some(path.to_path_buf()), None)
    };
    let Some(run) = run.map(super::RunDir) else { return Ok(None) };
    let Ok(text) = std::fs::read(run.options()) else { return Ok(None) };
    let options: super::TrainOptions = serde_json::from_slice(&text).with_context(|| format!("parsing {}", run.options().display()))?;
    let Some(spec) = options.qwen else { return Ok(None) };
    let checkpoint = match checkpoint {
        Some(dir) => dir,
        None if run.model().join("adapter_config.json").exists() => return Ok(Some((spec.base.clone(), run.model(), spec.tokenizer.clone()))),
        None => run.latest_checkpoint().map(|(_, dir)| dir).with_context(|| format!("{} holds neither an adapter nor a checkpoint", run.0.display()))?,
    };
    let device = Default::default();
    let (context, trainee) = init(&spec, &device)?;
    let trainee = trainee
        .load_file(checkpoint.join("model"), &burn::record::BinFileRecorder::<burn::record::FullPrecisionSettings>::new(), &device)
        .with_context(|| format!("loading the checkpoint in {}", checkpoint.display()))?;
    let adapter = checkpoint.join("adapter");
    export_adapter(&trainee.valid(), &context, &adapter)?;
    Ok(Some((spec.base, adapter, spec.tokenizer)))
}
