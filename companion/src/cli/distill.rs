//! `relsim distill`: the student's settings, with progress bars.

use std::path::PathBuf;

use relsim_shared::image::lite::LiteConfig;

use super::args::EncoderArgs;
use super::progress_bar;

/// The arguments of `relsim distill`.
#[derive(Debug, clap::Args)]
pub struct DistillArgs {
    /// The teacher: lite (relsim-lite with its colour views) or qwen (needs --base and --adapter).
    #[arg(long, default_value = "lite")]
    pub teacher: String,
    #[command(flatten)]
    pub encoder: EncoderArgs,
    /// A folder written by `relsim scenes generate`.
    #[arg(long)]
    pub data: PathBuf,
    /// Where the student (model/), the cached teacher vectors and report.json go.
    #[arg(long)]
    pub out: PathBuf,
    /// Optimiser steps.
    #[arg(long, default_value_t = 600)]
    pub steps: usize,
    /// Images per step.
    #[arg(long, default_value_t = 64)]
    pub batch_size: usize,
    /// Peak learning rate (a student started from the teacher needs little).
    #[arg(long, default_value_t = 2e-4)]
    pub learning_rate: f64,
    /// Weight of the in-batch contrastive term beside the cosine to the teacher.
    #[arg(long, default_value_t = 0.5)]
    pub contrastive: f32,
    /// Temperature of the contrastive term.
    #[arg(long, default_value_t = 0.05)]
    pub temperature: f32,
    /// Width of a student trained from scratch (default: the teacher lite's shape and weights).
    #[arg(long)]
    pub hidden: Option<usize>,
    /// Transformer blocks of a student trained from scratch.
    #[arg(long)]
    pub layers: Option<usize>,
    /// Seed of the batch order (and of fresh weights).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
}

/// `relsim distill`, with progress bars for the teacher vectors and the steps.
pub fn run_distill(args: DistillArgs) -> anyhow::Result<()> {
    let student = (args.hidden.is_some() || args.layers.is_some()).then(|| {
        let hidden = args.hidden.unwrap_or(128);
        LiteConfig::new().with_hidden(hidden).with_layers(args.layers.unwrap_or(4)).with_heads((hidden / 32).max(1))
    });
    let options = crate::distill::DistillOptions {
        data: args.data,
        teacher: args.teacher,
        encoder: args.encoder.into(),
        student,
        steps: args.steps,
        batch_size: args.batch_size,
        learning_rate: args.learning_rate,
        contrastive: args.contrastive,
        temperature: args.temperature,
        seed: args.seed,
    };
    struct Bars {
        teacher: Option<indicatif::ProgressBar>,
        steps: Option<indicatif::ProgressBar>,
    }
    impl crate::distill::DistillObserver for Bars {
        fn teacher(&mut self, done: usize, total: usize) {
            let bar = self.teacher.get_or_insert_with(|| progress_bar(total as u64, "teacher vectors"));
            if bar.length() != Some(total as u64) {
                bar.set_length(total as u64);
                bar.reset();
            }
            bar.set_position(done as u64);
        }
        fn step(&mut self, step: usize, steps: usize, loss: f32) {
            let bar = self.steps.get_or_insert_with(|| progress_bar(steps as u64, "distilling"));
            bar.set_position(step as u64);
            bar.set_message(format!("distilling (loss {loss:.4})"));
        }
    }
    let mut bars = Bars { teacher: None, steps: None };
    let report = crate::distill::distill(&options, &args.out, &mut bars)?;
    if let Some(bar) = bars.steps {
        bar.finish();
    }
    println!(
        "student in {}: {} steps; on {} test images top-10 overlap with the teacher {:.3}, relational P@1 {:.3} (teacher {:.3}), mean cosine {:.3}",
        args.out.join("model").display(),
        report.steps,
        report.test_images,
        report.overlap_at_10,
        report.student_p_at_1,
        report.teacher_p_at_1,
        report.mean_cosine
    );
    Ok(())
}

