//! `relsim filter`: the relational-interest filter over images or a folder.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use relsim_shared::image::preprocess::ImageBackend;

use super::args::{one_of, BackendChoice, BACKENDS, IMAGE_BACKENDS};
use super::progress_bar;
use crate::interest::filter_images;
use crate::qwen::generate::{Generator, GeneratorFiles};

/// The arguments of `relsim filter`.
#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("input").required(true).args(["images", "library"])))]
pub struct FilterArgs {
    /// The Qwen2.5-VL folder.
    #[arg(long, env = "RELSIM_QWEN_BASE")]
    pub base: PathBuf,
    /// The filter's LoRA adapter (relsim's is a LoRA-tuned Qwen2.5-VL-7B).
    #[arg(long)]
    pub adapter: Option<PathBuf>,
    /// Tokenizer file, if not BASE/tokenizer.json.
    #[arg(long)]
    pub tokenizer: Option<PathBuf>,
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
    /// Whose image processor arithmetic to reproduce.
    #[arg(long, value_parser = one_of(IMAGE_BACKENDS), default_value = "torchvision")]
    pub image_backend: ImageBackend,
    /// Compute backend.
    #[arg(long, value_parser = one_of(BACKENDS), default_value = "auto")]
    pub backend: BackendChoice,
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
    let cancel = Arc::new(AtomicBool::new(false));
    {
        let cancel = cancel.clone();
        let _ = ctrlc::set_handler(move || cancel.store(true, Ordering::SeqCst));
    }
    let files_in = GeneratorFiles {
        base: args.base.clone(),
        adapter: args.adapter.clone(),
        tokenizer: args.tokenizer.clone(),
        image_config: None,
    };
    let backend = crate::backend::resolve(args.backend);
    let scores = crate::backend::with_backend!(backend, |device: B| {
        let mut generator = Generator::<B>::load(&files_in, &device)?;
        // The base folder's processor settings, with the chosen arithmetic.
        generator.image_config.backend = args.image_backend;
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
