//! `relsim train`: the run's settings from a preset and the flags, with a progress bar.

use std::path::PathBuf;

use anyhow::Context;
use relsim_shared::image::preprocess::{ImageBackend, PreprocessMode};

use super::args::{one_of, TrainPreset, AUGMENTS, IMAGE_BACKENDS, POSITIVES, PREPROCESSING, PRESETS};
use super::progress_bar;
use crate::paths;
use crate::train::answers::{train_answers, AnswerTask, AnswerTrainOptions};
use crate::train::qwen::QwenSpec;
use crate::train::{train, Augment, Positives, Preset, RunDir, StepMetrics, TrainEnd, TrainObserver};

/// Training settings: a preset, and overrides of its numbers.
#[derive(Debug, clap::Args)]
pub struct TrainArgs {
    /// lite: relsim-lite on the scenes train split (this machine, under an hour); tiny: a toy
    /// model for tests; qwen-tiny: the Qwen relsim encoder's LoRA, query row and projection on
    /// the model in --base (100 steps; meant for tiny test configs); captioner and filter: LoRA
    /// on --base answering with captions or Yes/No.
    #[arg(long, value_parser = one_of(PRESETS), default_value = "lite")]
    pub preset: TrainPreset,
    /// A folder written by `relsim scenes generate`; for captioner and filter, a jsonl of
    /// labelled images.
    #[arg(long)]
    pub data: PathBuf,
    /// The run folder: options, metrics.jsonl, checkpoints/, and the final model/.
    #[arg(long)]
    pub out: PathBuf,
    /// Optimiser steps.
    #[arg(long)]
    pub steps: Option<usize>,
    /// Images per micro-batch.
    #[arg(long)]
    pub batch_size: Option<usize>,
    /// Micro-batches per optimiser step (gradient accumulation).
    #[arg(long)]
    pub accumulation: Option<usize>,
    /// Peak learning rate.
    #[arg(long)]
    pub learning_rate: Option<f64>,
    /// Save a checkpoint every N steps.
    #[arg(long)]
    pub checkpoint_every: Option<usize>,
    /// Validate (relational P@1 on val) every N steps; 0 turns it off.
    #[arg(long)]
    pub validate_every: Option<usize>,
    /// Seed of the initial weights and the batch order.
    #[arg(long)]
    pub seed: Option<u64>,
    /// For qwen presets: the Qwen2.5-VL folder whose adapter is trained.
    #[arg(long)]
    pub base: Option<PathBuf>,
    /// For qwen presets: tokenizer file, if not BASE/tokenizer.json.
    #[arg(long)]
    pub tokenizer: Option<PathBuf>,
    /// For qwen presets: train (448x448 centre square, as relsim trains) or native (own size).
    #[arg(long, value_parser = one_of(PREPROCESSING))]
    pub preprocess: Option<PreprocessMode>,
    /// For qwen presets: whose image processor arithmetic to reproduce (torchvision: transformers'
    /// default, as the official training gets it; pil: the PIL processor).
    #[arg(long, value_parser = one_of(IMAGE_BACKENDS))]
    pub image_backend: Option<ImageBackend>,
    /// Which images of a batch are positives of each other: those of one relation (the
    /// paraphrases of an idea are one idea) or only those with the very same caption text.
    #[arg(long, value_parser = one_of(POSITIVES))]
    pub positives: Option<Positives>,
    /// Label-preserving changes to training images: channels (RGB channels in a random order
    /// per image; the lite presets' choice) or none.
    #[arg(long, value_parser = one_of(AUGMENTS))]
    pub augment: Option<Augment>,
    /// Weight of the pull toward each relation's mean caption vector (0: InfoNCE only).
    #[arg(long)]
    pub centroid_weight: Option<f32>,
    /// Start from this exported relsim-lite model (e.g. assets/relsim-lite) instead of random
    /// weights: fine-tune it on --data.
    #[arg(long)]
    pub init: Option<PathBuf>,
    /// Also copy the final model (config.json, model.safetensors) here.
    #[arg(long)]
    pub export: Option<PathBuf>,
    /// End the run once this many of its steps are done (the learning-rate schedule still spans
    /// --steps): a checkpoint is saved, and with --export the checkpoint's model is exported.
    /// Running again without it resumes the run.
    #[arg(long)]
    pub stop_at: Option<usize>,
    /// The sentence-transformers folder of all-MiniLM-L6-v2 (caption embeddings).
    #[arg(long, env = "RELSIM_MINILM_DIR", default_value_os_t = paths::default_minilm_dir())]
    pub minilm_dir: PathBuf,
}

/// Progress bar with loss, in-batch accuracy, temperature and images/s.
struct Bar(indicatif::ProgressBar);

impl TrainObserver for Bar {
    fn started(&mut self, first_step: usize, steps: usize) {
        self.0.set_length(steps as u64);
        self.0.set_position(first_step as u64);
    }

    fn step(&mut self, m: &StepMetrics) {
        self.0.set_position(m.step as u64);
        let val = m.val_p_at_1.map(|p| format!(" val P@1 {p:.3}")).unwrap_or_default();
        self.0.set_message(format!("loss {:.4} acc {:.3} T {:.4} {:.0} img/s{val}", m.loss, m.accuracy, m.temperature, m.images_per_second));
        if m.val_p_at_1.is_some() {
            tracing::info!("step {}: loss {:.4}, accuracy {:.3}{val}", m.step, m.loss, m.accuracy);
        }
    }
}

/// `relsim train`.
pub fn run_train(args: TrainArgs) -> anyhow::Result<()> {
    let preset = match args.preset {
        TrainPreset::Encoder(preset) => preset,
        TrainPreset::Answers(task) => return run_answers(task, args),
    };
    let mut options = preset.options(&args.data);
    if let Some(v) = args.steps {
        options.steps = v;
    }
    if let Some(v) = args.batch_size {
        options.batch_size = v;
    }
    if let Some(v) = args.accumulation {
        options.accumulation = v;
    }
    if let Some(v) = args.learning_rate {
        options.learning_rate = v;
    }
    if let Some(v) = args.checkpoint_every {
        options.checkpoint_every = v;
    }
    if let Some(v) = args.validate_every {
        options.validate_every = v;
    }
    if let Some(v) = args.seed {
        options.seed = v;
    }
    if let Some(v) = args.positives {
        options.positives = v;
    }
    if let Some(v) = args.augment {
        options.augment = v;
    }
    if let Some(dir) = args.init {
        anyhow::ensure!(preset != Preset::QwenTiny, "--init starts relsim-lite; the qwen presets start from --base");
        options.init = Some(dir);
    }
    if let Some(v) = args.centroid_weight {
        anyhow::ensure!(v.is_finite() && v >= 0.0, "--centroid-weight must be a number >= 0, not {v}");
        options.centroid_weight = v;
    }
    match (preset, &args.base) {
        (Preset::QwenTiny, Some(base)) => {
            let mut spec = QwenSpec::relsim(base.clone(), args.tokenizer.clone());
            if let Some(p) = args.preprocess {
                spec.preprocess = p;
            }
            if let Some(b) = args.image_backend {
                spec.image_backend = b;
            }
            options.qwen = Some(spec);
        }
        (Preset::QwenTiny, None) => anyhow::bail!("--preset qwen-tiny trains an adapter for a base model: give --base DIR"),
        (_, Some(_)) => anyhow::bail!("--base is for the qwen presets (--preset qwen-tiny)"),
        _ => {}
    }
    anyhow::ensure!(options.batch_size >= 2, "--batch-size must be at least 2 (in-batch negatives)");
    let bar = progress_bar(options.steps as u64, "training");
    let mut observer = Bar(bar.clone());
    let end = train(&options, &args.out, &args.minilm_dir, args.stop_at, &mut observer)?;
    bar.finish_and_clear();
    let run = RunDir(args.out.clone());
    match (end, args.export) {
        (TrainEnd::Interrupted(step), Some(export)) if Some(step) == args.stop_at && options.qwen.is_none() => {
            let (_, dir) = run.latest_checkpoint().with_context(|| format!("{} holds no checkpoint", run.0.display()))?;
            let (config, model) = crate::train::load_checkpoint(&dir)?;
            crate::lite::export_lite(&export, &config, &model)?;
            eprintln!("stopped at step {step} as asked; its model is exported to {}", export.display());
        }
        (TrainEnd::Interrupted(step), _) => eprintln!("stopped at step {step}; a checkpoint is saved — run the same command to resume"),
        (TrainEnd::Finished, export) => {
            let model = run.model();
            eprintln!("done: {}", model.display());
            if let Some(export) = export {
                std::fs::create_dir_all(&export).with_context(|| format!("creating {}", export.display()))?;
                for entry in std::fs::read_dir(&model).with_context(|| format!("reading {}", model.display()))? {
                    let file = entry?.file_name();
                    std::fs::copy(model.join(&file), export.join(&file)).with_context(|| format!("copying {} to {}", model.join(&file).display(), export.display()))?;
                }
                eprintln!("exported to {}", export.display());
            }
        }
    }
    Ok(())
}


/// `relsim train --preset captioner|filter`.
fn run_answers(task: AnswerTask, args: TrainArgs) -> anyhow::Result<()> {
    let name = if task == AnswerTask::Caption { "captioner" } else { "filter" };
    let base = args.base.clone().with_context(|| format!("--preset {name} trains LoRA on a Qwen2.5-VL model: give --base DIR"))?;
    for (flag, given) in [("--accumulation", args.accumulation.is_some()), ("--validate-every", args.validate_every.is_some()), ("--positives", args.positives.is_some()), ("--augment", args.augment.is_some()), ("--centroid-weight", args.centroid_weight.is_some()), ("--init", args.init.is_some())] {
        anyhow::ensure!(!given, "{flag} is for the encoder presets, not --preset {name}");
    }
    let mut spec = QwenSpec::relsim(base, args.tokenizer.clone());
    // relsim squashes every image to 448x448; `train` fits it in that square.
    spec.preprocess = args.preprocess.unwrap_or(PreprocessMode::Train);
    if let Some(b) = args.image_backend {
        spec.image_backend = b;
    }
    let mut options = AnswerTrainOptions::relsim(task, args.data.clone(), spec, args.steps.unwrap_or(500));
    if let Some(v) = args.batch_size {
        options.batch_size = v;
    }
    if let Some(v) = args.learning_rate {
        options.learning_rate = v;
    }
    if let Some(v) = args.checkpoint_every {
        options.checkpoint_every = v;
    }
    if let Some(v) = args.seed {
        options.seed = v;
    }
    let bar = progress_bar(options.steps as u64, "training");
    let end = train_answers(&options, &args.out, args.stop_at, &mut Bar(bar.clone()))?;
    bar.finish_and_clear();
    match end {
        TrainEnd::Interrupted(step) => eprintln!("stopped at step {step}; a checkpoint is saved — run the same command to resume"),
        TrainEnd::Finished => {
            let model = RunDir(args.out.clone()).model();
            eprintln!("done: the adapter is in {} (relsim {} --adapter {})", model.display(), if task == AnswerTask::Caption { "caption" } else { "filter" }, model.display());
            if let Some(export) = args.export {
                std::fs::create_dir_all(&export).with_context(|| format!("creating {}", export.display()))?;
                for file in ["adapter_config.json", "adapter_model.safetensors"] {
                    std::fs::copy(model.join(file), export.join(file)).with_context(|| format!("copying {file} to {}", export.display()))?;
                }
            }
        }
    }
    Ok(())
}
