//! The `train` and `eval` subcommands.

use crate::train::{Augment, Positives};
use std::path::Path;

use anyhow::Context;
use relsim_shared::image::lite::LiteConfig;

use super::{train, RunDir, StepMetrics, TrainEnd, TrainObserver, TrainOptions};
use crate::cli::{progress_bar, TrainArgs};
use crate::scenes::generate::Split;
use crate::scenes::Relation;

/// Named starting points for `relsim train`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Preset {
    /// relsim-lite, the built-in default image encoder.
    Lite,
    /// A toy model for tests: seconds per run.
    Tiny,
    /// The Qwen relsim encoder's adapter (needs --base): 100 steps of 16 images.
    QwenTiny,
}

impl Preset {
    /// The options of this preset for the scene set in `data`.
    pub fn options(self, data: &Path) -> TrainOptions {
        match self {
            Preset::Lite => TrainOptions {
                data: data.to_path_buf(),
                model: LiteConfig::new(),
                steps: 5000,
                batch_size: 64,
                accumulation: 1,
                learning_rate: 1e-3,
                warmup_steps: 150,
                final_lr_fraction: 0.02,
                weight_decay: 0.05,
                clip_norm: 1.0,
                checkpoint_every: 100,
                validate_every: 500,
                seed: 0,
                positives: Positives::Relation,
                augment: Augment::Channels,
                qwen: None,
            },
            Preset::Tiny => TrainOptions {
                data: data.to_path_buf(),
                model: LiteConfig::new().with_image_size(16).with_patch_size(4).with_hidden(16).with_layers(2).with_heads(2),
                steps: 8,
                batch_size: 8,
                accumulation: 2,
                learning_rate: 3e-3,
                warmup_steps: 2,
                final_lr_fraction: 0.1,
                weight_decay: 0.05,
                clip_norm: 1.0,
                checkpoint_every: 2,
                validate_every: 4,
                seed: 0,
                positives: Positives::Relation,
                augment: Augment::Channels,
                qwen: None,
            },
            Preset::QwenTiny => TrainOptions {
                data: data.to_path_buf(),
                model: LiteConfig::new(),
                steps: 100,
                batch_size: 16,
                accumulation: 1,
                learning_rate: 2e-3,
                warmup_steps: 10,
                final_lr_fraction: 0.1,
                weight_decay: 0.0,
                clip_norm: 1.0,
                checkpoint_every: 50,
                // Tiny sets have too few val scenes per relation for P@1 to mean anything.
                validate_every: 0,
                seed: 0,
                positives: Positives::Relation,
                augment: Augment::None,
                qwen: None,
            },
        }
    }
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
    let mut options = args.preset.options(&args.data);
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
    match (args.preset, &args.base) {
        (Preset::QwenTiny, Some(base)) => {
            let mut spec = super::qwen::QwenSpec::relsim(base.clone(), args.tokenizer.clone());
            if let Some(p) = args.preprocess {
                spec.preprocess = p;
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
    match end {
        TrainEnd::Interrupted(step) => eprintln!("stopped at step {step}; a checkpoint is saved — run the same command to resume"),
        TrainEnd::Finished => {
            let model = RunDir(args.out.clone()).model();
            eprintln!("done: {}", model.display());
            if let Some(export) = args.export {
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

/// `relsim eval`: image→image relational retrieval and caption→image P@10 on a split.
pub fn run_eval(checkpoint: &Path, data: &Path, split: Split, minilm_dir: &Path) -> anyhow::Result<()> {
    let dir = checkpoint;
    let (name, set, embeddings) = match super::qwen::adapter_for(checkpoint)? {
        Some((base, adapter, tokenizer)) => {
            // The Qwen encoder scores images at their own size, as the official scorer does.
            let set = super::data::SceneSplit::load(data, split, None)?;
            let options = crate::encoders::EncoderOptions {
                lite: crate::paths::default_lite_dir(),
                base: Some(base),
                adapter: Some(adapter),
                tokenizer,
                preprocess: crate::cli::Preprocess::Native,
                backend: crate::backend::BackendKind::Ndarray,
                precision: crate::backend::Precision::F32,
            };
            let embeddings = crate::encoders::by_name("qwen", &options)?.embed_batch(&set.images)?;
            ("relsim-qwen", set, embeddings)
        }
        None => {
            let (config, model) = super::load_any(checkpoint)?;
            let size = config.image_size;
            let set = super::data::SceneSplit::load(data, split, Some(size as u32))?;
            let encoder = crate::encoders::LiteEncoder { model, size, device: Default::default(), colour_views: config.colour_views };
            let embeddings = crate::encoders::ImageEncoder::embed_batch(&encoder, &set.images)?;
            ("relsim-lite", set, embeddings)
        }
    };
    let metrics = crate::scenes::bench::evaluate(&embeddings, &set.records);
    let training: Vec<(String, String)> = Relation::ALL.iter().flat_map(|r| r.training_captions().iter().map(move |c| (c.to_string(), r.name().to_string()))).collect();
    let held_out: Vec<(String, String)> = Relation::ALL.iter().map(|r| (r.evaluation_caption().to_string(), r.name().to_string())).collect();
    let texts: Vec<String> = training.iter().chain(&held_out).map(|(c, _)| c.clone()).collect();
    let vectors = super::data::caption_embeddings(&texts, minilm_dir, &data.join("caption-embeddings.json"))?;
    let pair = |list: &[(String, String)], offset: usize| -> Vec<(Vec<f32>, String)> { list.iter().enumerate().map(|(i, (_, r))| (vectors[offset + i].clone(), r.clone())).collect() };
    let p10_train = crate::scenes::bench::text_to_image_precision(&pair(&training, 0), &embeddings, &set.records, 10);
    let p10_held_out = crate::scenes::bench::text_to_image_precision(&pair(&held_out, training.len()), &embeddings, &set.records, 10);
    println!("{name} ({}) on the {} split of {}: {} images", dir.display(), split.name(), data.display(), set.records.len());
    print!("{}", crate::scenes::bench::table(&[(name.to_string(), metrics.clone())]));
    println!("caption→image P@10: training paraphrases {p10_train:.3}, held-out paraphrases {p10_held_out:.3}");
    let report = serde_json::json!({
        "model": dir.display().to_string(), "split": split.name(), "images": set.records.len(),
        "metrics": metrics, "caption_to_image_p_at_10": { "training": p10_train, "held_out": p10_held_out },
    });
    println!("{}", serde_json::to_string(&report)?);
    Ok(())
}
