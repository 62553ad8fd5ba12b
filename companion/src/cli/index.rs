//! `relsim index`: a library's index brought up to date from the command line.

use std::path::{Path, PathBuf};
use super::{cancel_on_ctrl_c, progress_bar};
use crate::encoders::EncoderOptions;
use crate::library::{self, Indexer};

/// `relsim index`: brings the index of `libraries` up to date, with a progress bar; Ctrl-C stops
/// after the current batch and keeps everything finished.
pub fn index_folders(libraries: &[PathBuf], data_dir: &Path, model: &str, options: &EncoderOptions) -> anyhow::Result<()> {
    let (roots, encoder, mut store) = library::open(libraries, data_dir, model, options)?;
    let cancel = cancel_on_ctrl_c();
    let bar = progress_bar(0, "indexing");
    let thumbnails = data_dir.join("thumbnails");
    let indexer = Indexer { roots: &roots, encoder: encoder.as_ref(), thumbnails: &thumbnails, cancel: &cancel };
    let p = indexer.run(&mut store, &mut |p, _| {
        bar.set_length(p.to_read as u64);
        bar.set_position(p.read as u64);
        bar.set_message(format!("{}: {} embedded, {} reused, {} failed", p.phase, p.embedded, p.reused, p.failed));
    })?;
    bar.finish_and_clear();
    let images = store.images.len();
    // One line of JSON for scripts and tests, then a sentence for people.
    println!("{}", serde_json::to_string(&serde_json::json!({ "progress": p, "images": images, "files": store.files.len(), "index": store.path() }))?);
    eprintln!(
        "{}: {} files ({} unchanged), {} embedded, {} reused, {} unreadable, {} removed; {} images in {}",
        p.phase, p.found, p.unchanged, p.embedded, p.reused, p.failed, p.removed, images, store.path().display()
    );
    Ok(())
}
