//! `relsim caption`: anonymous captions of image groups or single images with Qwen2.5-VL.

use std::path::PathBuf;
use std::sync::atomic::Ordering;

use relsim_shared::image::preprocess::PreprocessMode;

use super::args::{one_of, GeneratorArgs, PREPROCESSING};
use super::{cancel_on_ctrl_c, progress_bar};
use crate::captions::{caption_units, read_groups, Anonymity, QwenCaptioner, Unit};
use crate::qwen::generate::{GenerateOptions, Sampling};

/// The arguments of `relsim caption`.
#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("input").required(true).args(["group", "groups", "single"])))]
pub struct CaptionArgs {
    #[command(flatten)]
    pub model: GeneratorArgs,
    /// Images that share one idea: one caption for the group, written for each of them.
    #[arg(long, num_args = 1..)]
    pub group: Vec<PathBuf>,
    /// Groups, one a line: {"images": ["a.png", "b.png"]} (paths relative to the file).
    #[arg(long)]
    pub groups: Option<PathBuf>,
    /// Images captioned one at a time.
    #[arg(long, num_args = 1..)]
    pub single: Vec<PathBuf>,
    /// The jsonl to write (image_hash, caption, file, group).
    #[arg(long, default_value = "captions.jsonl")]
    pub out: PathBuf,
    /// Further answers asked for when one fails the anonymity check.
    #[arg(long, default_value_t = 3)]
    pub retries: usize,
    /// Sampling temperature (relsim's captioner: 0.7); 0 decodes greedily.
    #[arg(long, default_value_t = 0.7)]
    pub temperature: f32,
    /// Nucleus sampling's probability mass (relsim's captioner: 0.9).
    #[arg(long, default_value_t = 0.9)]
    pub top_p: f32,
    /// Seed of the sampler (each retry moves it on by one).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Longest caption in tokens.
    #[arg(long, default_value_t = 128)]
    pub max_new_tokens: usize,
    /// How images are fitted: native (own size), processor, or train (448x448 centre square).
    #[arg(long, value_parser = one_of(PREPROCESSING), default_value = "native")]
    pub preprocess: PreprocessMode,
}

/// Runs `relsim caption`.
pub fn run_caption(args: CaptionArgs) -> anyhow::Result<()> {
    let units: Vec<Unit> = if let Some(file) = &args.groups {
        read_groups(file)?
    } else if !args.group.is_empty() {
        vec![Unit::Group(args.group.clone())]
    } else {
        args.single.iter().cloned().map(Unit::Single).collect()
    };
    let sampling = if args.temperature > 0.0 {
        Sampling::Sample { temperature: args.temperature, top_p: args.top_p, seed: args.seed }
    } else {
        Sampling::Greedy
    };
    let options = GenerateOptions { max_new_tokens: args.max_new_tokens, sampling, stop_tokens: None, repetition_penalty: 1.0 };
    // Ctrl-C stops after the unit in hand; what was captioned is written.
    let cancel = cancel_on_ctrl_c();
    let report = crate::backend::with_backend!(crate::backend::resolve(args.model.backend), |device: B| {
        let mut generator = args.model.load::<B>(&device)?;
        generator.image_mode = args.preprocess;
        let mut captioner = QwenCaptioner { generator: &generator, options };
        let bar = progress_bar(units.len() as u64, "captioning");
        let report = caption_units(&units, &mut captioner, &Anonymity::shipped(), args.retries, &args.out, &mut |done, _| {
            bar.set_position(done as u64);
            !cancel.load(Ordering::SeqCst)
        })?;
        bar.finish_and_clear();
        anyhow::Ok(report)
    })?;
    let reasons: Vec<String> = report.reasons.iter().map(|(why, n)| format!("{n} {why}")).collect();
    println!(
        "{} of {} {} captioned, {} rows in {}; {} answers rejected by the anonymity check{}{}",
        report.captioned,
        report.units,
        if args.single.is_empty() { "groups" } else { "images" },
        report.rows,
        args.out.display(),
        report.rejected,
        if reasons.is_empty() { String::new() } else { format!(" ({})", reasons.join(", ")) },
        if report.cancelled { "; stopped early" } else { "" }
    );
    for (file, why) in &report.failed {
        println!("no anonymous caption for {file} (last answer: {why})");
    }
    Ok(())
}
