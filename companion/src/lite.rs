//! relsim-lite's files: a model folder holds `config.json` (a [`LiteConfig`]) and
//! `model.safetensors`. Inference, training and distillation all read and write it here.

use std::path::Path;

use anyhow::Context;
use burn::tensor::backend::Backend;
use relsim_shared::image::lite::{LiteConfig, RelsimLite};

use crate::files::write_atomically;

/// Writes a lite model as `dir/config.json` and `dir/model.safetensors`.
pub fn export_lite<B: Backend>(dir: &Path, config: &LiteConfig, model: &RelsimLite<B>) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    write_atomically(&dir.join("config.json"), &serde_json::to_vec_pretty(config)?)?;
    write_atomically(&dir.join("model.safetensors"), &model.to_safetensors()?)
}

/// Loads a lite model written by `export_lite`.
pub fn load_lite<B: Backend>(dir: &Path, device: &B::Device) -> anyhow::Result<(LiteConfig, RelsimLite<B>)> {
    let config_path = dir.join("config.json");
    let text = std::fs::read(&config_path).with_context(|| format!("reading {}", config_path.display()))?;
    let config: LiteConfig = serde_json::from_slice(&text).with_context(|| format!("parsing {}", config_path.display()))?;
    let weights_path = dir.join("model.safetensors");
    let bytes = std::fs::read(&weights_path).with_context(|| format!("reading {}", weights_path.display()))?;
    let file = relsim_shared::weights::TensorFile::parse(weights_path.display().to_string(), &bytes)?;
    let model = RelsimLite::from_weights(&config, &file, device)?;
    Ok((config, model))
}
