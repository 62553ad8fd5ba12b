//! `relsim filter`: the relational-interest filter over images or a folder.

use std::path::PathBuf;
use std::sync::atomic::Ordering;

use super::args::GeneratorArgs;
use super::{cancel_on_ctrl_c, progress_bar};
use crate::interest::filter_images;

/// The arguments of `relsim filter`.
#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("input").required(true).args(["images", "library"])))]
pub struct FilterArgs {
    #[command(flatten)]
    pub model: GeneratorArgs,
    /// Images to score.
    pub images: Vec<PathBuf>,
    /// A folder whose images (recursively) are scored.
    #[arg(long)]
    pub library: Option<PathBuf>,
    /// Images whose P("Yes") reaches this are kept.
    #[arg(long, default_value_t = 0.5)]
    pub threshold: f32,
    /// Where scores.jsonl and kept.txt are written.
    #[arg(long, default_value = "interest")]
    pub out: PathBuf,
}

/// Runs `relsim filter`.
pub fn run_filter(args: FilterArgs) -> anyhow::Result<()> {
    let mut files = args.images.clone();
    if let Some(dir) = &args.library {
        anyhow::ensure!(dir.is_dir(), "{} is not a folder", dir.display());
        let mut found: Vec<PathBuf> = walkdir::WalkDir::new(dir)
            .into_iter()
            .filter_map(Result::ok)
            .map(|e| e.into_path())
            .filter(|p| p.is_file() && crate::library::is_image_file(p))
            .collect();
        found.sort();
        files.extend(found);
    }
    anyhow::ensure!(!files.is_empty(), "no images to score");
    anyhow::ensure!((0.0..=1.0).contains(&args.threshold), "--threshold is a probability (0 to 1)");
    let cancel = cancel_on_ctrl_c();
    let scores = crate::backend::with_backend!(crate::backend::resolve(args.model.backend), |device: B| {
        let generator = args.model.load::<B>(&device)?;
        let bar = progress_bar(files.len() as u64, "scoring");
        let scores = filter_images(&generator, &files, args.threshold, &args.out, &mut |done, _| {
            bar.set_position(done as u64);
            !cancel.load(Ordering::SeqCst)
        })?;
        bar.finish_and_clear();
        anyhow::Ok(scores)
    })?;
    let kept = scores.iter().filter(|s| s.kept).count();
    println!(
        "{kept} of {} images kept (P(Yes) >= {}); scores in {}, kept paths in {}{}",
        scores.len(),
        args.threshold,
        args.out.join("scores.jsonl").display(),
        args.out.join("kept.txt").display(),
        if scores.len() < files.len() { format!("; stopped after {} of {}", scores.len(), files.len()) } else { String::new() }
    );
    Ok(())
}
