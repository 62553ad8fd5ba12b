//! Training Qwen2.5-VL to answer: the single-image anonymous captioner (each image of a group
//! with its group's caption; next-token cross-entropy over the caption and the turn's end, as
//! relsim trains it) and the relational-interest filter (cross-entropy of the first answer
//! token, "Yes" or "No"). LoRA on the language model's q_proj and v_proj (relsim's r 16, α 32,
//! dropout 0.05) learns; the rest stays frozen. The trainer's optimiser, schedule, accumulation,
//! checkpoints, resume, Ctrl-C and metrics are those of [`super::train`]; the result is a PEFT
//! adapter folder that `relsim caption --adapter`, `relsim filter --adapter` and HF peft load.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::time::Instant;

use anyhow::Context;
use burn::module::{AutodiffModule, Module};
use burn::nn::loss::CrossEntropyLossConfig;
use burn::optim::{AdamWConfig, GradientsAccumulator, GradientsParams, Optimizer};
use burn::grad_clipping::GradientClippingConfig;
use burn::record::{BinFileRecorder, FullPrecisionSettings, Recorder};
use burn::tensor::{backend::Backend, Int, Tensor, TensorData};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use serde::{Deserialize, Serialize};

use super::qwen::{adapter_config, fresh_lora, lora_tensors, safetensors_bytes, QwenSpec};
use super::{interrupt_flag, save_checkpoint, truncate_metrics, warmup_cosine, Inner, RunDir, StepMetrics, Train, TrainEnd, TrainObserver};
use crate::files::write_atomically;
use crate::qwen::chat::ChatMessage;
use crate::qwen::generate::{Generator, GeneratorFiles};
use crate::qwen::language::LanguageModel;

/// What the model learns to answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AnswerTask {
    /// An image's anonymous caption (rows: `file`, `caption`).
    Caption,
    /// "Yes" or "No" to the relational-interest question (rows: `file`, `label`).
    Filter,
}

impl AnswerTask {
    /// The question asked with the image.
    pub fn prompt(self) -> &'static str {
        match self {
            AnswerTask::Caption => crate::captions::SINGLE_PROMPT,
            AnswerTask::Filter => crate::interest::FILTER_PROMPT,
        }
    }
}

/// Everything that defines an answer-training run; saved as `OUT/train.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AnswerTrainOptions {
    pub task: AnswerTask,
    /// The labelled jsonl (paths in it relative to its folder).
    pub data: PathBuf,
    /// The base model and the LoRA settings.
    pub spec: QwenSpec,
    /// Optimiser steps.
    pub steps: usize,
    /// Examples per optimiser step (each its own forward pass; gradients accumulated).
    pub batch_size: usize,
    pub learning_rate: f64,
    pub warmup_steps: usize,
    pub final_lr_fraction: f64,
    pub weight_decay: f32,
    pub clip_norm: f32,
    pub checkpoint_every: usize,
    pub seed: u64,
}

impl AnswerTrainOptions {
    /// relsim's captioner recipe (lr 2e-4, 50 warm-up steps, batch 32) for `steps` steps.
    pub fn relsim(task: AnswerTask, data: PathBuf, spec: QwenSpec, steps: usize) -> Self {
        AnswerTrainOptions { task, data, spec, steps, batch_size: 32, learning_rate: 2e-4, warmup_steps: 50.min(steps / 10), final_lr_fraction: 0.0, weight_decay: 0.0, clip_norm: 1.0, checkpoint_every: 100, seed: 42 }
    }
}

/// One labelled image.
#[derive(Debug, Clone, PartialEq)]
pub struct Example {
    pub file: PathBuf,
    /// The caption, or "Yes"/"No".
    pub answer: String,
}

/// A row of the jsonl: the image (`file`, or `image`) and its caption or label.
#[derive(Debug, Deserialize)]
struct Row {
    #[serde(alias = "image")]
    file: Option<PathBuf>,
    caption: Option<String>,
    label: Option<serde_json::Value>,
}

/// The examples of `path`: for captions, rows as `relsim caption` writes them (`file`,
/// `caption`); for the filter, `file` and `label` (true/false, 1/0 or "Yes"/"No").
pub fn read_examples(path: &Path, task: AnswerTask) -> anyhow::Result<Vec<Example>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        let at = || format!("{} line {}", path.display(), i + 1);
        let row: Row = serde_json::from_str(line).with_context(at)?;
        let file = dir.join(row.file.with_context(|| format!("{}: no `file`", at()))?);
        let answer = match task {
            AnswerTask::Caption => row.caption.filter(|c| !c.trim().is_empty()).with_context(|| format!("{}: no `caption`", at()))?.trim().to_string(),
            AnswerTask::Filter => {
                let yes = match row.label.with_context(|| format!("{}: no `label`", at()))? {
                    serde_json::Value::Bool(b) => b,
                    serde_json::Value::Number(n) if n.as_f64() == Some(1.0) || n.as_f64() == Some(0.0) => n.as_f64() == Some(1.0),
                    serde_json::Value::String(s) if s.eq_ignore_ascii_case("yes") || s.eq_ignore_ascii_case("no") => s.eq_ignore_ascii_case("yes"),
                    other => anyhow::bail!("{}: `label` must be true/false, 1/0 or \"Yes\"/\"No\", not {other}", at()),
                };
                if yes { "Yes" } else { "No" }.to_string()
            }
        };
        out.push(Example { file, answer });
    }
    anyhow::ensure!(!out.is_empty(), "{} holds no examples", path.display());
    Ok(out)
}

/// The trained part: the decoder with LoRA on q_proj and v_proj (its base weights frozen).
#[derive(Module, Debug)]
pub struct AnswerTrainee<B: Backend> {
    pub language: LanguageModel<B>,
}

/// What the trainee needs and does not learn: the frozen model around it.
pub struct AnswerContext {
    pub options: AnswerTrainOptions,
    pub generator: Generator<Train>,
}

/// Loads the frozen base and adds fresh LoRA to a copy of its decoder.
pub fn init(options: &AnswerTrainOptions) -> anyhow::Result<(AnswerContext, AnswerTrainee<Train>)> {
    let device = burn::backend::flex::FlexDevice;
    let spec = &options.spec;
    let files = GeneratorFiles { base: spec.base.clone(), adapter: None, tokenizer: spec.tokenizer.clone(), image_config: None };
    let mut generator = Generator::<Train>::load(&files, &device)?.frozen();
    generator.image_config.backend = spec.image_backend;
    generator.image_mode = spec.preprocess;
    let t = &generator.config.text;
    let kv = t.num_key_value_heads * t.head_dim();
    let mut language = generator.language().clone();
    for layer in &mut language.layers {
        layer.self_attn.q_proj.lora = Some(fresh_lora(t.hidden_size, spec.rank, t.hidden_size, spec, &device));
        layer.self_attn.v_proj.lora = Some(fresh_lora(t.hidden_size, spec.rank, kv, spec, &device));
    }
    Ok((AnswerContext { options: options.clone(), generator }, AnswerTrainee { language }))
}

/// The answer's token ids: a caption and the turn's end (`<|im_end|>` and the newline after
/// it, as relsim's captioner learns to stop), or the one token "Yes"/"No".
pub fn answer_tokens<B: Backend>(generator: &Generator<B>, task: AnswerTask, answer: &str) -> anyhow::Result<Vec<u32>> {
    let tokenizer = &generator.tokenizer;
    match task {
        AnswerTask::Caption => {
            let text = format!("{answer}<|im_end|>\n");
            Ok(tokenizer.encode(text, false).map_err(|e| anyhow::anyhow!("tokenizing a caption: {e}"))?.get_ids().to_vec())
        }
        AnswerTask::Filter => Ok(vec![tokenizer.token_to_id(answer).with_context(|| format!("the tokenizer has no `{answer}` token"))?]),
    }
}

/// The cross-entropy of `example`'s answer under `language`, and how many answer tokens the
/// model ranks first.
pub fn example_loss<B: Backend>(generator: &Generator<B>, language: &LanguageModel<B>, task: AnswerTask, example: &Example) -> anyhow::Result<(Tensor<B, 1>, f32)> {
    let bytes = std::fs::read(&example.file).with_context(|| format!("reading {}", example.file.display()))?;
    let image = relsim_shared::image::preprocess::decode_rgb(&bytes, &example.file.display().to_string())?;
    let prompt = generator.prepare(&[ChatMessage::user_with_images(vec![image], task.prompt())])?;
    let answer = answer_tokens(generator, task, &example.answer)?;
    let logits = generator.answer_logits(language, &prompt, &answer)?;
    let device = logits.device();
    let targets = Tensor::<B, 1, Int>::from_data(TensorData::new(answer.iter().map(|&t| i64::from(t)).collect::<Vec<_>>(), [answer.len()]), &device);
    let hits = logits.clone().argmax(1).reshape([answer.len()]).equal(targets.clone()).int().sum().into_data().convert::<f32>().to_vec::<f32>().map_err(|e| anyhow::anyhow!("{e:?}"))?[0];
    let loss = CrossEntropyLossConfig::new().init(&device).forward(logits, targets);
    Ok((loss, hits / answer.len() as f32))
}

/// Writes the adapter folder: PEFT's `adapter_config.json` and `adapter_model.safetensors`.
pub fn export(language: &LanguageModel<Inner>, spec: &QwenSpec, dir: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    write_atomically(&dir.join("adapter_config.json"), &serde_json::to_vec_pretty(&adapter_config(spec))?)?;
    write_atomically(&dir.join("adapter_model.safetensors"), &safetensors_bytes(&lora_tensors(language)?)?)
}

/// Trains, resuming from the newest checkpoint in `out`; `stop_at` ends the call after that
/// many steps in total (a checkpoint is saved), as Ctrl-C would. The adapter goes to `OUT/model`.
pub fn train_answers(options: &AnswerTrainOptions, out: &Path, stop_at: Option<usize>, observer: &mut dyn TrainObserver) -> anyhow::Result<TrainEnd> {
    anyhow::ensure!(options.steps >= 1 && options.batch_size >= 1, "steps and batch size must be at least 1");
    let run = RunDir(out.to_path_buf());
    std::fs::create_dir_all(&run.0).with_context(|| format!("creating {}", run.0.display()))?;
    if let Ok(saved) = std::fs::read(run.options()) {
        let saved: AnswerTrainOptions = serde_json::from_slice(&saved).with_context(|| format!("{} is not an answer-training run", run.options().display()))?;
        anyhow::ensure!(&saved == options, "{} holds a run with other options; use another --out or the same options to resume", run.0.display());
    } else {
        write_atomically(&run.options(), &serde_json::to_vec_pretty(options)?)?;
    }
    let examples = read_examples(&options.data, options.task)?;
    let device = burn::backend::flex::FlexDevice;
    Train::seed(&device, options.seed);
    let (context, mut model) = init(options)?;
    let mut optimizer = AdamWConfig::new().with_weight_decay(options.weight_decay).with_grad_clipping(Some(GradientClippingConfig::Norm(options.clip_norm))).init::<Train, AnswerTrainee<Train>>();
    let recorder = BinFileRecorder::<FullPrecisionSettings>::new();
    let mut step = 0;
    if let Some((saved_step, dir)) = run.latest_checkpoint() {
        model = model.load_file(dir.join("model"), &recorder, &device).with_context(|| format!("loading {}", dir.display()))?;
        optimizer = optimizer.load_record(recorder.load(dir.join("optimizer"), &device).with_context(|| format!("loading {}", dir.display()))?);
        step = saved_step;
        truncate_metrics(&run.metrics(), step)?;
    } else {
        let _ = std::fs::remove_file(run.metrics());
    }
    let interrupted = interrupt_flag();
    let mut log = std::fs::OpenOptions::new().create(true).append(true).open(run.metrics()).with_context(|| format!("opening {}", run.metrics().display()))?;
    observer.started(step, options.steps);
    while step < options.steps {
        if interrupted.load(Ordering::SeqCst) || stop_at.is_some_and(|s| step >= s) {
            save_checkpoint(&run, step, &model, &optimizer, &recorder)?;
            return Ok(TrainEnd::Interrupted(step));
        }
        let started = Instant::now();
        let lr = warmup_cosine(options.learning_rate, options.warmup_steps, options.steps, options.final_lr_fraction, step);
        let mut accumulator = GradientsAccumulator::<AnswerTrainee<Train>>::new();
        let (mut loss_sum, mut accuracy_sum) = (0f32, 0f32);
        for &i in &draw(options.seed, step, options.batch_size, examples.len()) {
            let (loss, accuracy) = example_loss(&context.generator, &model.language, options.task, &examples[i])?;
            let loss = loss / options.batch_size as f32;
            loss_sum += loss.clone().into_data().convert::<f32>().to_vec::<f32>().map_err(|e| anyhow::anyhow!("{e:?}"))?[0];
            accuracy_sum += accuracy / options.batch_size as f32;
            accumulator.accumulate(&model, GradientsParams::from_grads(loss.backward(), &model));
        }
        model = optimizer.step(lr, model, accumulator.grads());
        step += 1;
        let metrics = StepMetrics {
            step,
            loss: loss_sum,
            accuracy: accuracy_sum,
            // Plain cross-entropy: the softmax at temperature 1.
            temperature: 1.0,
            learning_rate: lr,
            images_per_second: options.batch_size as f32 / started.elapsed().as_secs_f32(),
            val_p_at_1: None,
        };
        serde_json::to_writer(&mut log, &metrics)?;
        writeln!(log)?;
        observer.step(&metrics);
        if step % options.checkpoint_every.max(1) == 0 || step == options.steps {
            save_checkpoint(&run, step, &model, &optimizer, &recorder)?;
        }
    }
    export(&model.valid().language, &options.spec, &run.model())?;
    Ok(TrainEnd::Finished)
}

/// The examples of one step: a seeded shuffle of all of them per epoch, taken in order.
fn draw(seed: u64, step: usize, batch: usize, count: usize) -> Vec<usize> {
    (step * batch..(step + 1) * batch)
        .map(|k| {
            let (epoch, at) = (k / count, k % count);
            let mut order: Vec<usize> = (0..count).collect();
            order.shuffle(&mut rand_chacha::ChaCha8Rng::seed_from_u64(seed ^ (epoch as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15)));
            order[at]
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_epoch_shows_every_example_once() {
        let seen: Vec<usize> = (0..3).flat_map(|step| draw(7, step, 4, 6)).collect();
        let mut first: Vec<usize> = seen[..6].to_vec();
        first.sort();
        assert_eq!(first, (0..6).collect::<Vec<_>>());
        assert_eq!(draw(7, 1, 4, 6), draw(7, 1, 4, 6), "seeded");
    }

    #[test]
    fn examples_read_captions_and_labels() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("d.jsonl");
        std::fs::write(&path, "{\"file\": \"a.png\", \"caption\": \" growth of {subject} \", \"image_hash\": \"x\"}\n\n{\"image\": \"b.png\", \"caption\": \"c\"}\n").unwrap();
        let rows = read_examples(&path, AnswerTask::Caption).unwrap();
        assert_eq!(rows, [Example { file: dir.path().join("a.png"), answer: "growth of {subject}".into() }, Example { file: dir.path().join("b.png"), answer: "c".into() }]);
        std::fs::write(&path, "{\"file\": \"a.png\", \"label\": true}\n{\"file\": \"b.png\", \"label\": 0}\n{\"file\": \"c.png\", \"label\": \"yes\"}\n").unwrap();
        let answers: Vec<String> = read_examples(&path, AnswerTask::Filter).unwrap().into_iter().map(|e| e.answer).collect();
        assert_eq!(answers, ["Yes", "No", "Yes"]);
        std::fs::write(&path, "{\"file\": \"a.png\", \"label\": \"maybe\"}\n").unwrap();
        let error = read_examples(&path, AnswerTask::Filter).unwrap_err().to_string();
        assert!(error.contains("line 1") && error.contains("label"), "{error}");
        std::fs::write(&path, "{\"file\": \"a.png\"}\n").unwrap();
        assert!(read_examples(&path, AnswerTask::Caption).unwrap_err().to_string().contains("no `caption`"));
    }
}
