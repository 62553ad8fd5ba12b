//! `relsim distill`: a student image encoder small enough for the browser, trained to put images
//! where the teacher (relsim-lite with its six colour views, or the Qwen relsim encoder) puts
//! them. The browser then embeds a query image with the student and compares it with the
//! library's index vectors, which the teacher made.
//!
//! Loss per batch: `1 - cos(student, teacher)` averaged, plus `contrastive` times the in-batch
//! InfoNCE of student rows against teacher rows (each image's own teacher vector is its positive),
//! so images stay apart from each other and not only near their targets.

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;

use anyhow::Context;
use burn::module::AutodiffModule;
use burn::nn::loss::CrossEntropyLossConfig;
use burn::optim::{AdamWConfig, GradientsParams, Optimizer};
use burn::tensor::backend::Backend;
use burn::tensor::{Int, Tensor, TensorData};
use relsim_shared::image::lite::{pixel_batch, LiteConfig, RelsimLite};
use relsim_shared::protocol::TeacherInfo;
use relsim_shared::vectors::dot;
use serde::{Deserialize, Serialize};

use crate::encoders::{self, EncoderOptions, ImageEncoder, LiteEncoder};
use crate::files::write_atomically;
use crate::scenes::generate::Split;
use crate::train::data::{batch_indices, SceneSplit};
use crate::lite::export_lite;
use crate::train::{Augment, Inner, Train};

/// Everything that defines a distillation run.
#[derive(Debug, Clone)]
pub struct DistillOptions {
    pub data: PathBuf,
    /// `lite` or `qwen`.
    pub teacher: String,
    pub encoder: EncoderOptions,
    /// The student's shape; `None`: the teacher lite's shape, started from its weights.
    pub student: Option<LiteConfig>,
    pub steps: usize,
    pub batch_size: usize,
    pub learning_rate: f64,
    /// Weight of the in-batch contrastive term.
    pub contrastive: f32,
    /// Temperature of the contrastive term.
    pub temperature: f32,
    pub seed: u64,
}

/// How close the student came, on the test split: queries embedded by the student, searched
/// among the teacher's vectors of the other test images (what the browser does).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DistillReport {
    pub test_images: usize,
    /// Mean fraction of the teacher's top 10 that the student's query also finds.
    pub overlap_at_10: f64,
    /// Relational P@1, teacher query against teacher vectors.
    pub teacher_p_at_1: f64,
    /// Relational P@1, student query against teacher vectors.
    pub student_p_at_1: f64,
    /// Mean cosine of student and teacher embeddings of the same image.
    pub mean_cosine: f64,
    pub steps: usize,
}

/// What the caller hears while it runs.
pub trait DistillObserver {
    fn teacher(&mut self, _done: usize, _total: usize) {}
    fn step(&mut self, _step: usize, _steps: usize, _loss: f32) {}
}

impl DistillObserver for () {}

/// Teacher vectors of a split, cached in `out` by teacher id and split (the teacher is the slow part).
fn teacher_vectors(teacher: &dyn ImageEncoder, info: &TeacherInfo, split: &SceneSplit, name: &str, out: &Path, observer: &mut dyn DistillObserver) -> anyhow::Result<Vec<Vec<f32>>> {
    let cache = out.join(format!("teacher-{}-{name}.json", info.model_id));
    if let Ok(bytes) = std::fs::read(&cache) {
        if let Ok(vectors) = serde_json::from_slice::<Vec<Vec<f32>>>(&bytes) {
            if vectors.len() == split.images.len() {
                return Ok(vectors);
            }
        }
    }
    let mut vectors = Vec::with_capacity(split.images.len());
    for chunk in split.images.chunks(256) {
        vectors.extend(teacher.embed_batch(chunk)?);
        observer.teacher(vectors.len(), split.images.len());
    }
    write_atomically(&cache, &serde_json::to_vec(&vectors)?)?;
    Ok(vectors)
}

/// Unit student embeddings of `images` (already at the student's input size).
pub fn student_vectors(student: &RelsimLite<Inner>, config: &LiteConfig, images: &[image::RgbImage]) -> anyhow::Result<Vec<Vec<f32>>> {
    let encoder = LiteEncoder { model: student.clone(), size: config.image_size, device: Default::default(), colour_views: false };
    encoder.embed_batch(images)
}

/// Compares student queries with teacher queries over the teacher's vectors of `records`.
pub fn compare(student: &[Vec<f32>], teacher: &[Vec<f32>], relations: &[usize]) -> (f64, f64, f64, f64) {
    let n = teacher.len();
    let ranked = |query: &[f32], exclude: usize| -> Vec<usize> {
        let scores: Vec<f32> = (0..n).map(|j| if j == exclude { f32::NEG_INFINITY } else { dot(query, &teacher[j]) }).collect();
        relsim_shared::vectors::top_k(&scores, 10.min(n.saturating_sub(1))).into_iter().map(|(j, _)| j).collect()
    };
    let (mut overlap, mut teacher_hits, mut student_hits, mut cosine) = (0.0, 0usize, 0usize, 0.0);
    for i in 0..n {
        let by_teacher = ranked(&teacher[i], i);
        let by_student = ranked(&student[i], i);
        overlap += by_student.iter().filter(|j| by_teacher.contains(j)).count() as f64 / by_teacher.len().max(1) as f64;
        teacher_hits += usize::from(by_teacher.first().is_some_and(|&j| relations[j] == relations[i]));
        student_hits += usize::from(by_student.first().is_some_and(|&j| relations[j] == relations[i]));
        cosine += dot(&student[i], &teacher[i]) as f64;
    }
    let n = n.max(1) as f64;
    (overlap / n, teacher_hits as f64 / n, student_hits as f64 / n, cosine / n)
}

fn rows<B: Backend>(vectors: &[&Vec<f32>], device: &B::Device) -> Tensor<B, 2> {
    let dim = vectors[0].len();
    Tensor::from_data(TensorData::new(vectors.iter().flat_map(|v| v.iter().copied()).collect::<Vec<f32>>(), [vectors.len(), dim]), device)
}

/// Trains the student and writes it to `out/model` (config.json, model.safetensors,
/// teacher.json) with `out/report.json`. Ctrl-C stops early and still writes what was learnt.
pub fn distill(options: &DistillOptions, out: &Path, observer: &mut dyn DistillObserver) -> anyhow::Result<DistillReport> {
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let device = burn::backend::flex::FlexDevice;
    Train::seed(&device, options.seed);
    let info = TeacherInfo { model: options.teacher.clone(), model_id: encoders::model_id(&options.teacher, &options.encoder)? };
    let teacher = encoders::by_name(&options.teacher, &options.encoder)?;
    // The student: the given shape from scratch, or the teacher lite's shape and weights with
    // one colour view (six times less work per query).
    let (config, mut student) = match (&options.student, options.teacher.as_str()) {
        (Some(config), _) => {
            // A fresh student's vectors must live in the teacher's space: its size is the teacher's.
            let probe = teacher.embed_batch(&[image::RgbImage::new(32, 32)])?;
            let config = config.clone().with_out_dim(probe[0].len());
            config.validate("the student options")?;
            let student = config.init::<Train>(&device);
            (config, student)
        }
        (None, "lite") => {
            let (mut config, model) = crate::lite::load_lite::<Train>(&options.encoder.lite, &device)?;
            config.colour_views = false;
            (config, model)
        }
        (None, other) => anyhow::bail!("a student for `{other}` needs its shape (e.g. --hidden, --layers): there are no weights to start from"),
    };
    let size = Some(config.image_size as u32);
    let train = SceneSplit::load(&options.data, Split::Train, size)?;
    let test = SceneSplit::load(&options.data, Split::Test, size)?;
    let train_targets = teacher_vectors(teacher.as_ref(), &info, &train, "train", out, observer)?;
    let test_targets = teacher_vectors(teacher.as_ref(), &info, &test, "test", out, observer)?;
    anyhow::ensure!(
        train_targets[0].len() == config.out_dim,
        "the teacher's vectors have {} values and the student's {}: set the student's out_dim to match",
        train_targets[0].len(),
        config.out_dim
    );

    let mut optimizer = AdamWConfig::new().with_weight_decay(0.01).init::<Train, RelsimLite<Train>>();
    let cross_entropy = CrossEntropyLossConfig::new().init::<Train>(&device);
    let interrupted = crate::train::interrupt_flag();
    let mut step = 0;
    while step < options.steps && !interrupted.load(Ordering::SeqCst) {
        // Warm-up over the first 5%, then cosine decay to 5% of the peak.
        let warm = (options.steps / 20).max(1);
        let lr = if step < warm {
            options.learning_rate * (step + 1) as f64 / warm as f64
        } else {
            let t = (step - warm) as f64 / (options.steps - warm).max(1) as f64;
            options.learning_rate * (0.05 + 0.95 * 0.5 * (1.0 + (std::f64::consts::PI * t).cos()))
        };
        let indices = batch_indices(options.seed, step, options.batch_size, train.images.len());
        let batch = train.batch(&indices, Augment::None, options.seed, step);
        let s = student.forward(pixel_batch::<Train>(&batch.lite_pixels(config.image_size), config.image_size, &device));
        let t = rows::<Train>(&indices.iter().map(|&i| &train_targets[i]).collect::<Vec<_>>(), &device);
        let n = indices.len();
        let align = (s.clone() * t.clone()).sum_dim(1).mean().neg().add_scalar(1.0);
        let logits = s.matmul(t.transpose()).div_scalar(options.temperature);
        let targets = Tensor::<Train, 1, Int>::from_data(TensorData::new((0..n as i64).collect::<Vec<_>>(), [n]), &device);
        let loss = align + cross_entropy.forward(logits, targets).mul_scalar(options.contrastive);
        let value = loss.clone().into_data().convert::<f32>().into_vec::<f32>().map_err(|e| anyhow::anyhow!("{e:?}"))?[0];
        let grads = GradientsParams::from_grads(loss.backward(), &student);
        student = optimizer.step(lr, student, grads);
        step += 1;
        observer.step(step, options.steps, value);
    }

    let student = student.valid();
    let dir = out.join("model");
    export_lite(&dir, &config, &student)?;
    write_atomically(&dir.join("teacher.json"), &serde_json::to_vec_pretty(&info)?)?;
    let predicted = student_vectors(&student, &config, &test.images)?;
    let (overlap_at_10, teacher_p_at_1, student_p_at_1, mean_cosine) = compare(&predicted, &test_targets, &test.relation_ids);
    let report = DistillReport { test_images: test.images.len(), overlap_at_10, teacher_p_at_1, student_p_at_1, mean_cosine, steps: step };
    write_atomically(&out.join("report.json"), &serde_json::to_vec_pretty(&report)?)?;
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn comparison_counts_overlap_and_precision() {
        // Four images, two relations; the teacher pairs 0-1 and 2-3.
        let teacher = vec![vec![1.0, 0.0], vec![0.9, 0.1], vec![0.0, 1.0], vec![0.1, 0.9]];
        let relations = [0, 0, 1, 1];
        let (overlap, t, s, cos) = compare(&teacher, &teacher, &relations);
        assert_eq!((overlap, t, s), (1.0, 1.0, 1.0));
        assert!((cos - teacher.iter().map(|v| dot(v, v) as f64).sum::<f64>() / 4.0).abs() < 1e-9);
        // A student that swaps the two relations' directions finds the other relation first.
        let swapped: Vec<Vec<f32>> = teacher.iter().map(|v| vec![v[1], v[0]]).collect();
        let (_, t, s, _) = compare(&swapped, &teacher, &relations);
        assert_eq!((t, s), (1.0, 0.0));
    }
}
