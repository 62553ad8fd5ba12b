//! `relsim train`: the relsim recipe — pull image embeddings toward the frozen MiniLM embeddings
//! of anonymous captions (symmetric InfoNCE, in-batch negatives, learnable temperature), with
//! AdamW, linear warm-up then cosine decay, gradient clipping and accumulation, checkpoints that
//! resume the same run, Ctrl-C saving, JSON-lines metrics and validation on the val split.

pub mod data;
pub mod eval;
pub mod infonce;
pub mod answers;
pub mod preset;
pub mod qwen;

pub use preset::Preset;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use anyhow::Context;
use burn::backend::{Autodiff, Flex};
use burn::module::{AutodiffModule, Module};
use burn::optim::{AdamWConfig, GradientsAccumulator, GradientsParams, Optimizer};
use burn::grad_clipping::GradientClippingConfig;
use burn::record::{BinFileRecorder, FullPrecisionSettings, Recorder};
use burn::tensor::backend::Backend;
use burn::tensor::{Tensor, TensorData};
use relsim_shared::image::lite::{pixel_batch, LiteConfig, RelsimLite};
use serde::{Deserialize, Serialize};

use crate::files::write_atomically;
use crate::lite::{export_lite, load_lite};
use crate::scenes::generate::Split;
pub use data::Augment;
use data::{batch_indices, caption_embeddings, Batch, SceneSplit};
use infonce::{info_nce, Temperature};

pub(crate) type Inner = Flex;
pub(crate) type Train = Autodiff<Inner>;

/// Everything that defines a run; saved as `OUT/train.json` and checked on resume.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainOptions {
    /// The scene set (`relsim scenes generate`).
    pub data: PathBuf,
    pub model: LiteConfig,
    /// Optimiser steps.
    pub steps: usize,
    /// Images per micro-batch.
    pub batch_size: usize,
    /// Micro-batches per optimiser step.
    pub accumulation: usize,
    /// Peak learning rate.
    pub learning_rate: f64,
    pub warmup_steps: usize,
    /// Cosine decay ends at this fraction of the peak.
    pub final_lr_fraction: f64,
    pub weight_decay: f32,
    /// Gradient clipping: largest L2 norm of each parameter's gradient.
    pub clip_norm: f32,
    pub checkpoint_every: usize,
    /// Validation (relational P@1 on the val split) every this many steps; 0 turns it off.
    pub validate_every: usize,
    pub seed: u64,
    /// Which in-batch pairs count as positives (runs saved before this option used captions).
    #[serde(default)]
    pub positives: Positives,
    /// Label-preserving changes to training images (runs saved before this option had none).
    #[serde(default)]
    pub augment: Augment,
    /// Weight of a second term pulling each image toward the mean MiniLM vector of its
    /// relation's training captions (1 - cosine): InfoNCE alone only separates the captions of
    /// a batch, so an unseen paraphrase of an idea can land nearer another idea's images.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub centroid_weight: f32,
    /// Train the Qwen relsim encoder (LoRA, query row, projection) instead of relsim-lite.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub qwen: Option<qwen::QwenSpec>,
    /// Start relsim-lite from this exported model (config.json, model.safetensors) instead of
    /// the seed's random weights: fine-tuning on new data.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub init: Option<PathBuf>,
}

fn is_zero(v: &f32) -> bool {
    *v == 0.0
}

/// Which images of a batch are positives of each other in the contrastive loss.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Positives {
    /// Images whose captions are the same text.
    #[default]
    Caption,
    /// Images of the same relation, whichever paraphrase captions them: paraphrases of one idea
    /// are not negatives of each other.
    Relation,
}

impl TrainOptions {
    /// The learning rate at `step`: linear warm-up, then cosine decay.
    pub fn learning_rate_at(&self, step: usize) -> f64 {
        warmup_cosine(self.learning_rate, self.warmup_steps, self.steps, self.final_lr_fraction, step)
    }
}

/// The trainer's schedule: `peak` reached linearly over `warmup` steps, then a cosine down to
/// `peak * final_fraction` at `steps`.
pub fn warmup_cosine(peak: f64, warmup: usize, steps: usize, final_fraction: f64, step: usize) -> f64 {
    if step < warmup {
        return peak * (step + 1) as f64 / warmup as f64;
    }
    let span = (steps - warmup).max(1) as f64;
    let t = ((step - warmup) as f64 / span).min(1.0);
    let floor = peak * final_fraction;
    floor + (peak - floor) * 0.5 * (1.0 + (std::f64::consts::PI * t).cos())
}

/// The trained module: the image encoder and the temperature.
#[derive(Module, Debug)]
pub struct LiteTrainee<B: Backend> {
    pub encoder: RelsimLite<B>,
    pub temperature: Temperature<B>,
}

/// One line of `metrics.jsonl`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepMetrics {
    pub step: usize,
    pub loss: f32,
    pub accuracy: f32,
    pub temperature: f32,
    pub learning_rate: f64,
    pub images_per_second: f32,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub val_p_at_1: Option<f64>,
}

/// Where a run keeps its files.
pub struct RunDir(pub PathBuf);

impl RunDir {
    pub(crate) fn options(&self) -> PathBuf {
        self.0.join("train.json")
    }
    fn metrics(&self) -> PathBuf {
        self.0.join("metrics.jsonl")
    }
    fn checkpoints(&self) -> PathBuf {
        self.0.join("checkpoints")
    }
    /// The exported model: `config.json` and `model.safetensors`.
    pub fn model(&self) -> PathBuf {
        self.0.join("model")
    }

    /// The newest checkpoint and its step.
    pub(crate) fn latest_checkpoint(&self) -> Option<(usize, PathBuf)> {
        std::fs::read_dir(self.checkpoints())
            .ok()?
            .filter_map(|e| e.ok())
            .filter_map(|e| {
                let name = e.file_name().into_string().ok()?;
                let step = name.strip_prefix("step-")?.parse().ok()?;
                e.path().join("state.json").exists().then_some((step, e.path()))
            })
            .max_by_key(|(s, _)| *s)
    }
}

/// What the caller hears while training runs.
pub trait TrainObserver {
    fn started(&mut self, _first_step: usize, _steps: usize) {}
    fn step(&mut self, _metrics: &StepMetrics) {}
}

/// No reports.
impl TrainObserver for () {}

/// Set by Ctrl-C; the loop saves a checkpoint and stops at the next step boundary.
pub(crate) fn interrupt_flag() -> Arc<AtomicBool> {
    static FLAG: OnceLock<Arc<AtomicBool>> = OnceLock::new();
    FLAG.get_or_init(|| {
        let flag = Arc::new(AtomicBool::new(false));
        let f = flag.clone();
        // Without a handler (e.g. one already installed), Ctrl-C simply ends the process.
        let _ = ctrlc::set_handler(move || f.store(true, Ordering::SeqCst));
        flag
    })
    .clone()
}

/// How a call to `train` ended.
#[derive(Debug, PartialEq, Eq)]
pub enum TrainEnd {
    Finished,
    /// Stopped early (Ctrl-C or `stop_at`), with a checkpoint at this step.
    Interrupted(usize),
}

/// A model the relsim recipe trains: what the loop needs beyond the optimiser. `Context` holds
/// what the model needs but does not learn (sizes, frozen towers, the tokenizer).
pub trait Trainee: AutodiffModule<Train> {
    type Context;
    /// Unit image embeddings `[n, d]` of the images of `batch`.
    fn embed(&self, context: &Self::Context, batch: &Batch) -> anyhow::Result<Tensor<Train, 2>>;
    /// The learnable temperature.
    fn temperature(&self) -> &Temperature<Train>;
    /// Relational P@1 on `split`.
    fn validate(&self, context: &Self::Context, split: &SceneSplit) -> anyhow::Result<f64>;
    /// Writes the trained model (or adapter) into `dir`.
    fn export(&self, context: &Self::Context, dir: &Path) -> anyhow::Result<()>;
}

impl Trainee for LiteTrainee<Train> {
    type Context = LiteConfig;

    fn embed(&self, config: &LiteConfig, batch: &Batch) -> anyhow::Result<Tensor<Train, 2>> {
        let size = config.image_size;
        Ok(self.encoder.forward(pixel_batch::<Train>(&batch.lite_pixels(size), size, &Default::default())))
    }

    fn temperature(&self) -> &Temperature<Train> {
        &self.temperature
    }

    fn validate(&self, config: &LiteConfig, split: &SceneSplit) -> anyhow::Result<f64> {
        validate(self.encoder.valid(), split, config.image_size)
    }

    fn export(&self, config: &LiteConfig, dir: &Path) -> anyhow::Result<()> {
        export_lite(dir, config, &self.encoder.valid())
    }
}

/// Trains relsim-lite (or, with `options.qwen`, the Qwen relsim encoder's LoRA, query row and
/// projection), resuming from the newest checkpoint in `out` if there is one. `stop_at` ends the
/// call after that many steps in total (a checkpoint is saved), as an interruption would.
pub fn train(options: &TrainOptions, out: &Path, minilm_dir: &Path, stop_at: Option<usize>, observer: &mut dyn TrainObserver) -> anyhow::Result<TrainEnd> {
    let run = RunDir(out.to_path_buf());
    std::fs::create_dir_all(&run.0).with_context(|| format!("creating {}", run.0.display()))?;
    let device = burn::backend::flex::FlexDevice;
    if let Ok(saved) = std::fs::read(run.options()) {
        let saved: TrainOptions = serde_json::from_slice(&saved).with_context(|| format!("parsing {}", run.options().display()))?;
        anyhow::ensure!(
            &saved == options,
            "{} holds a run with other options; use another --out or the same options to resume",
            run.0.display()
        );
    } else {
        write_atomically(&run.options(), &serde_json::to_vec_pretty(options)?)?;
    }
    // Already at the step asked to stop at: nothing to load or train.
    if let (Some(stop), Some((step, _))) = (stop_at, run.latest_checkpoint()) {
        if step == stop {
            return Ok(TrainEnd::Interrupted(step));
        }
    }
    // Initial weights depend on the seed alone.
    Train::seed(&device, options.seed);
    match &options.qwen {
        None => {
            options.model.validate("the lite model options")?;
            let size = Some(options.model.image_size as u32);
            let encoder = match &options.init {
                None => options.model.init::<Train>(&device),
                Some(dir) => {
                    let (config, encoder) = crate::lite::load_lite::<Train>(dir, &device).with_context(|| format!("--init {}", dir.display()))?;
                    let mut shape = config.clone();
                    shape.colour_views = options.model.colour_views;
                    anyhow::ensure!(shape == options.model, "--init {}: its model shape ({config:?}) is not the preset's ({:?})", dir.display(), options.model);
                    encoder
                }
            };
            let model = LiteTrainee { encoder, temperature: Temperature::new(&device) };
            run_loop(options, &run, &exported_config(options), model, size, minilm_dir, stop_at, observer)
        }
        Some(spec) => {
            let (context, model) = qwen::init(spec, &device)?;
            run_loop(options, &run, &context, model, None, minilm_dir, stop_at, observer)
        }
    }
}

/// The training loop of the recipe, for any trainee.
#[allow(clippy::too_many_arguments)]
fn run_loop<T: Trainee>(
    options: &TrainOptions,
    run: &RunDir,
    context: &T::Context,
    mut model: T,
    image_size: Option<u32>,
    minilm_dir: &Path,
    stop_at: Option<usize>,
    observer: &mut dyn TrainObserver,
) -> anyhow::Result<TrainEnd> {
    let device = burn::backend::flex::FlexDevice;
    let train = SceneSplit::load(&options.data, Split::Train, image_size)?;
    let val = if options.validate_every > 0 { Some(SceneSplit::load(&options.data, Split::Val, image_size)?) } else { None };
    let cache = options.data.join("caption-embeddings.json");
    let caption_vectors = caption_embeddings(&train.captions, minilm_dir, &cache)?;
    let centroids = relation_centroids(&train, &caption_vectors);

    let mut optimizer = AdamWConfig::new()
        .with_weight_decay(options.weight_decay)
        .with_grad_clipping(Some(GradientClippingConfig::Norm(options.clip_norm)))
        .init::<Train, T>();
    let recorder = BinFileRecorder::<FullPrecisionSettings>::new();
    let mut step = 0;
    if let Some((saved_step, dir)) = run.latest_checkpoint() {
        model = model.load_file(dir.join("model"), &recorder, &device).with_context(|| format!("loading {}", dir.display()))?;
        let record = recorder.load(dir.join("optimizer"), &device).with_context(|| format!("loading {}", dir.display()))?;
        optimizer = optimizer.load_record(record);
        step = saved_step;
        truncate_metrics(&run.metrics(), step)?;
        tracing::info!("resuming {} at step {step}", run.0.display());
    } else {
        let _ = std::fs::remove_file(run.metrics());
    }

    let interrupted = interrupt_flag();
    let mut log = std::fs::OpenOptions::new().create(true).append(true).open(run.metrics()).with_context(|| format!("opening {}", run.metrics().display()))?;
    observer.started(step, options.steps);
    let accumulation = options.accumulation.max(1);
    while step < options.steps {
        if interrupted.load(Ordering::SeqCst) || stop_at.is_some_and(|s| step >= s) {
            save_checkpoint(run, step, &model, &optimizer, &recorder)?;
            return Ok(TrainEnd::Interrupted(step));
        }
        let started = Instant::now();
        let lr = options.learning_rate_at(step);
        let mut accumulator = GradientsAccumulator::<T>::new();
        let (mut loss_sum, mut accuracy_sum) = (0.0f32, 0.0f32);
        for micro in 0..accumulation {
            let draw = step * accumulation + micro;
            let indices = batch_indices(options.seed, draw, options.batch_size, train.images.len());
            let ids: Vec<usize> = indices.iter().map(|&i| train.caption_ids[i]).collect();
            let captions: Vec<f32> = ids.iter().flat_map(|&c| caption_vectors[c].iter().copied()).collect();
            let captions = Tensor::<Train, 2>::from_data(TensorData::new(captions, [ids.len(), caption_vectors[0].len()]), &device);
            let groups: Vec<usize> = match options.positives {
                Positives::Caption => ids,
                Positives::Relation => indices.iter().map(|&i| train.relation_ids[i]).collect(),
            };
            let images = model.embed(context, &train.batch(&indices, options.augment, options.seed, draw))?;
            let out = info_nce(images.clone(), captions, &groups, model.temperature());
            let mut loss = out.loss;
            if options.centroid_weight > 0.0 {
                let targets: Vec<f32> = indices.iter().flat_map(|&i| centroids[train.relation_ids[i]].iter().copied()).collect();
                let targets = Tensor::<Train, 2>::from_data(TensorData::new(targets, [indices.len(), caption_vectors[0].len()]), &device);
                // Both sides are unit vectors: the row sums of their product are cosines.
                let misalignment = (images * targets).sum_dim(1).neg().add_scalar(1.0).mean();
                loss = loss + misalignment * options.centroid_weight;
            }
            let loss = loss / accumulation as f32;
            loss_sum += loss.clone().into_data().convert::<f32>().into_vec::<f32>().expect("f32")[0];
            accuracy_sum += out.accuracy / accumulation as f32;
            let grads = GradientsParams::from_grads(loss.backward(), &model);
            accumulator.accumulate(&model, grads);
        }
        model = optimizer.step(lr, model, accumulator.grads());
        step += 1;
        let mut metrics = StepMetrics {
            step,
            loss: loss_sum,
            accuracy: accuracy_sum,
            temperature: model.temperature().value(),
            learning_rate: lr,
            images_per_second: (options.batch_size * accumulation) as f32 / started.elapsed().as_secs_f32(),
            val_p_at_1: None,
        };
        if let Some(val) = &val {
            if step % options.validate_every == 0 || step == options.steps {
                metrics.val_p_at_1 = Some(model.validate(context, val)?);
            }
        }
        serde_json::to_writer(&mut log, &metrics)?;
        writeln!(log)?;
        observer.step(&metrics);
        if step % options.checkpoint_every.max(1) == 0 || step == options.steps {
            save_checkpoint(run, step, &model, &optimizer, &recorder)?;
        }
    }
    model.export(context, &run.model())?;
    Ok(TrainEnd::Finished)
}

/// The unit mean of the caption vectors of each idea (indexed by [`crate::scenes::Record::idea_id`];
/// an idea the split lacks gets zeros).
fn relation_centroids(split: &SceneSplit, caption_vectors: &[Vec<f32>]) -> Vec<Vec<f32>> {
    let dim = caption_vectors[0].len();
    let known = crate::scenes::Relation::ALL.len() + crate::scenes::multi::PAIRS.len();
    let ideas = split.relation_ids.iter().map(|&id| id + 1).max().unwrap_or(0).max(known);
    let mut sums = vec![vec![0f32; dim]; ideas];
    let mut seen = std::collections::BTreeSet::new();
    for (&caption, &relation) in split.caption_ids.iter().zip(&split.relation_ids) {
        // Each distinct caption once, whatever its number of images.
        if seen.insert(caption) {
            sums[relation].iter_mut().zip(&caption_vectors[caption]).for_each(|(s, v)| *s += v);
        }
    }
    sums.iter_mut().for_each(|sum| relsim_shared::vectors::l2_normalize(sum));
    sums
}

/// Drops metric lines after `step` (they belong to the part of the run being replayed).
fn truncate_metrics(path: &Path, step: usize) -> anyhow::Result<()> {
    let Ok(text) = std::fs::read_to_string(path) else { return Ok(()) };
    let kept: String = text
        .lines()
        .filter(|l| serde_json::from_str::<StepMetrics>(l).is_ok_and(|m| m.step <= step))
        .map(|l| format!("{l}\n"))
        .collect();
    write_atomically(path, kept.as_bytes())
}

/// Saves model, optimiser state and step as `checkpoints/step-N`; keeps the newest two.
fn save_checkpoint<T: AutodiffModule<Train>>(run: &RunDir, step: usize, model: &T, optimizer: &impl Optimizer<T, Train>, recorder: &BinFileRecorder<FullPrecisionSettings>) -> anyhow::Result<()> {
    let dir = run.checkpoints().join(format!("step-{step:07}"));
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    model.clone().save_file(dir.join("model"), recorder).with_context(|| format!("saving {}", dir.display()))?;
    recorder.record(optimizer.to_record(), dir.join("optimizer")).with_context(|| format!("saving {}", dir.display()))?;
    // state.json last: a checkpoint without it is incomplete and ignored.
    write_atomically(&dir.join("state.json"), &serde_json::to_vec(&serde_json::json!({ "step": step }))?)?;
    let mut all: Vec<PathBuf> = std::fs::read_dir(run.checkpoints())?.filter_map(|e| e.ok().map(|e| e.path())).collect();
    all.sort();
    for old in all.iter().rev().skip(2) {
        let _ = std::fs::remove_dir_all(old);
    }
    Ok(())
}

/// The config a lite run's model is saved with: trained on channel-order augmentation, it
/// embeds with the six colour views.
fn exported_config(options: &TrainOptions) -> LiteConfig {
    let mut config = options.model.clone();
    config.colour_views = options.augment == Augment::Channels;
    config
}

/// Relational P@1 of `encoder` on a split.
pub fn validate(encoder: RelsimLite<Inner>, split: &SceneSplit, size: usize) -> anyhow::Result<f64> {
    // The plain forward pass: six colour views would make every validation six times slower.
    let encoder = crate::encoders::LiteEncoder { model: encoder, size, device: Default::default(), colour_views: false };
    let embeddings = crate::encoders::ImageEncoder::embed_batch(&encoder, &split.images)?;
    Ok(crate::scenes::bench::evaluate(&embeddings, &split.records).p_at_1)
}

/// The encoder saved in checkpoint folder `dir` (`RUN/checkpoints/step-N`), with its config
/// from the run's `train.json`.
pub fn load_checkpoint(dir: &Path) -> anyhow::Result<(LiteConfig, RelsimLite<Inner>)> {
    let run = dir.parent().and_then(Path::parent).with_context(|| format!("{} is not inside a run folder", dir.display()))?;
    let options_path = RunDir(run.to_path_buf()).options();
    let options: TrainOptions = serde_json::from_slice(&std::fs::read(&options_path).with_context(|| format!("reading {}", options_path.display()))?)
        .with_context(|| format!("parsing {}", options_path.display()))?;
    let device = Default::default();
    let trainee = LiteTrainee { encoder: options.model.init::<Inner>(&device), temperature: Temperature::new(&device) };
    let trainee = trainee
        .load_file(dir.join("model"), &BinFileRecorder::<FullPrecisionSettings>::new(), &device)
        .with_context(|| format!("loading the checkpoint in {}", dir.display()))?;
    Ok((exported_config(&options), trainee.encoder))
}

/// The encoder behind `path`: a model folder (config.json, model.safetensors), a run folder
/// (its final model, else its newest checkpoint) or a checkpoint folder.
pub fn load_any(path: &Path) -> anyhow::Result<(LiteConfig, RelsimLite<Inner>)> {
    if path.join("model.safetensors").exists() {
        return load_lite(path, &Default::default());
    }
    if path.join("state.json").exists() {
        return load_checkpoint(path);
    }
    let run = RunDir(path.to_path_buf());
    if run.model().join("model.safetensors").exists() {
        return load_lite(&run.model(), &Default::default());
    }
    match run.latest_checkpoint() {
        Some((_, dir)) => load_checkpoint(&dir),
        None => anyhow::bail!("{} holds no model: neither model.safetensors, a checkpoint, nor a run folder with one", path.display()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relation_centroids_are_unit_means_of_each_distinct_caption() {
        // Caption 0 shows up twice: counted once, else the centroid would lean toward it.
        let split = SceneSplit {
            records: Vec::new(),
            images: Vec::new(),
            caption_ids: vec![0, 0, 1, 2],
            captions: vec!["a".into(), "b".into(), "c".into()],
            relation_ids: vec![3, 3, 3, 5],
        };
        let vectors = vec![vec![1.0, 0.0], vec![0.0, 1.0], vec![0.6, 0.8]];
        let centroids = relation_centroids(&split, &vectors);
        assert_eq!(centroids.len(), crate::scenes::Relation::ALL.len() + crate::scenes::multi::PAIRS.len());
        let h = std::f32::consts::FRAC_1_SQRT_2;
        assert!((centroids[3][0] - h).abs() < 1e-6 && (centroids[3][1] - h).abs() < 1e-6, "{:?}", centroids[3]);
        assert_eq!(centroids[5], vec![0.6, 0.8]);
        assert_eq!(centroids[0], vec![0.0, 0.0], "a relation without captions has no pull");
    }

    #[test]
    fn learning_rate_warms_up_then_follows_a_cosine() {
        let mut o = Preset::Tiny.options(Path::new("."));
        o.steps = 110;
        o.warmup_steps = 10;
        o.learning_rate = 1.0;
        o.final_lr_fraction = 0.0;
        assert!((o.learning_rate_at(0) - 0.1).abs() < 1e-12);
        assert!((o.learning_rate_at(9) - 1.0).abs() < 1e-12);
        assert!((o.learning_rate_at(10) - 1.0).abs() < 1e-12);
        assert!((o.learning_rate_at(60) - 0.5).abs() < 1e-12, "half-way down the cosine");
        assert!(o.learning_rate_at(109) < 0.001);
    }
}
