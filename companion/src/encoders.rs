//! Image encoders by name: every encoder the benchmarks and the library can use plugs in here.

use std::path::{Path, PathBuf};

use anyhow::Context;

use image::RgbImage;
use rayon::prelude::*;
use relsim_shared::image::attribute;
use relsim_shared::image::preprocess::{ImageBackend, PreprocessMode};
use relsim_shared::text::minilm::MiniLm;

use crate::backend::{with_backend, with_float_backend, BackendKind, Precision};
use crate::qwen::relsim::{EncoderFiles, RelsimEncoder};

/// Turns images into L2-normalised vectors whose cosine says how similar they are.
pub trait ImageEncoder: Send {
    /// Embeds a batch of images, one vector each.
    fn embed_batch(&self, images: &[RgbImage]) -> anyhow::Result<Vec<Vec<f32>>>;
}

/// Turns sentences into L2-normalised vectors (MiniLM), whatever backend it runs on.
pub trait SentenceEncoder: Send {
    /// Embeds a batch of sentences, one vector each, in order.
    fn embed(&self, texts: &[&str]) -> anyhow::Result<Vec<Vec<f32>>>;
}

impl<B: burn::tensor::backend::Backend> SentenceEncoder for MiniLm<B> {
    fn embed(&self, texts: &[&str]) -> anyhow::Result<Vec<Vec<f32>>> {
        Ok(self.embed_vecs(texts)?)
    }
}

/// all-MiniLM-L6-v2 from the sentence-transformers folder `dir`, on `backend`.
pub fn load_minilm(dir: &Path, backend: BackendKind) -> anyhow::Result<Box<dyn SentenceEncoder>> {
    with_backend!(backend, |device: B| {
        let model = MiniLm::<B>::from_dir(dir, &device).with_context(|| format!("loading MiniLM from {}", dir.display()))?;
        Ok(Box::new(model) as Box<dyn SentenceEncoder>)
    })
}

/// The attribute baselines: descriptors of appearance, no learning.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttributeBaseline {
    /// 32x32 RGB pixels.
    Pixels,
    /// A joint RGB colour histogram.
    ColourHistogram,
    /// HOG-style edge orientations.
    Hog,
}

impl ImageEncoder for AttributeBaseline {
    fn embed_batch(&self, images: &[RgbImage]) -> anyhow::Result<Vec<Vec<f32>>> {
        let f = match self {
            AttributeBaseline::Pixels => attribute::raw_pixels,
            AttributeBaseline::ColourHistogram => attribute::colour_histogram,
            AttributeBaseline::Hog => attribute::edge_orientations,
        };
        Ok(images.par_iter().map(f).collect())
    }
}

/// The names of the built-in attribute baselines, in report order.
pub const BASELINES: [&str; 3] = ["pixels", "colour-histogram", "hog"];

/// Where a model-backed encoder finds its files, and how it runs.
#[derive(Debug, Clone)]
pub struct EncoderOptions {
    /// For `lite`: the relsim-lite folder (config.json, model.safetensors).
    pub lite: PathBuf,
    /// For `qwen`: the Qwen2.5-VL folder.
    pub base: Option<PathBuf>,
    /// For `qwen`: the relsim adapter folder.
    pub adapter: Option<PathBuf>,
    /// For `qwen`: tokenizer file, if not BASE/tokenizer.json.
    pub tokenizer: Option<PathBuf>,
    /// For `qwen`: native (own size) or train (448x448 centre square) preprocessing.
    pub preprocess: PreprocessMode,
    /// For `qwen`: whose image processor arithmetic to reproduce.
    pub image_backend: ImageBackend,
    /// Compute backend for model-backed encoders.
    pub backend: BackendKind,
    /// For `qwen`: float type of weights and activations on the device (f16/bf16 on CUDA).
    pub precision: Precision,
}

impl EncoderOptions {
    /// relsim-lite from `dir` on the CPU: what a command without encoder flags uses.
    pub fn lite(dir: PathBuf) -> Self {
        EncoderOptions {
            lite: dir,
            base: None,
            adapter: None,
            tokenizer: None,
            preprocess: PreprocessMode::Native,
            image_backend: ImageBackend::default(),
            backend: BackendKind::Flex,
            precision: Precision::F32,
        }
    }

    /// The Qwen relsim encoder of `base` with `adapter`, at each image's own size on the CPU.
    pub fn qwen(base: PathBuf, adapter: PathBuf, tokenizer: Option<PathBuf>) -> Self {
        EncoderOptions { base: Some(base), adapter: Some(adapter), tokenizer, ..Self::lite(crate::paths::default_lite_dir()) }
    }
}

/// Images per forward pass of the Qwen encoder (those of one patch grid run together).
const QWEN_BATCH: usize = 16;

/// The relsim Qwen2.5-VL encoder behind the common interface.
struct QwenEncoder<B: burn::tensor::backend::Backend> {
    encoder: RelsimEncoder<B>,
    mode: PreprocessMode,
}

impl<B: burn::tensor::backend::Backend> ImageEncoder for QwenEncoder<B> {
    fn embed_batch(&self, images: &[RgbImage]) -> anyhow::Result<Vec<Vec<f32>>> {
        let mut out = Vec::with_capacity(images.len());
        for (c, chunk) in images.chunks(QWEN_BATCH).enumerate() {
            let names: Vec<String> = (0..chunk.len()).map(|i| format!("image {}", c * QWEN_BATCH + i)).collect();
            out.extend(self.encoder.embed_images(chunk, self.mode, &names)?);
        }
        Ok(out)
    }
}

/// relsim-lite behind the common interface.
pub struct LiteEncoder<B: burn::tensor::backend::Backend> {
    pub model: relsim_shared::image::lite::RelsimLite<B>,
    pub size: usize,
    pub device: B::Device,
    /// Average over the six RGB channel orders (the model's config says so).
    pub colour_views: bool,
}

impl<B: burn::tensor::backend::Backend> LiteEncoder<B> {
    /// Loads the model in `dir` (config.json, model.safetensors).
    pub fn load(dir: &std::path::Path, device: &B::Device) -> anyhow::Result<Self> {
        let (config, model) = crate::lite::load_lite::<B>(dir, device)?;
        Ok(LiteEncoder { model, size: config.image_size, device: device.clone(), colour_views: config.colour_views })
    }
}

impl<B: burn::tensor::backend::Backend> ImageEncoder for LiteEncoder<B> {
    fn embed_batch(&self, images: &[RgbImage]) -> anyhow::Result<Vec<Vec<f32>>> {
        use relsim_shared::image::lite::{pixel_batch, pixels};
        let mut out = Vec::with_capacity(images.len());
        for chunk in images.chunks(64) {
            let batch: Vec<Vec<f32>> = chunk.par_iter().map(|image| pixels(image, self.size)).collect();
            let pixels = pixel_batch::<B>(&batch, self.size, &self.device);
            let embedded = if self.colour_views { self.model.forward_colour_views(pixels) } else { self.model.forward(pixels) };
            let dim = embedded.dims()[1];
            let values = embedded.into_data().convert::<f32>().into_vec::<f32>().map_err(|e| anyhow::anyhow!("reading embeddings: {e:?}"))?;
            out.extend(values.chunks(dim).map(<[f32]>::to_vec));
        }
        Ok(out)
    }
}

/// Names the relational model whose vectors an index holds: vectors of different weights are
/// not comparable, so the index of another model is not reused.
pub fn model_id(name: &str, options: &EncoderOptions) -> anyhow::Result<String> {
    use sha2::{Digest, Sha256};
    let digest = |paths: &[std::path::PathBuf]| -> anyhow::Result<String> {
        let mut h = Sha256::new();
        for path in paths {
            let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
            h.update(&bytes);
        }
        Ok(h.finalize().iter().take(8).map(|b| format!("{b:02x}")).collect())
    };
    match name {
        "lite" => Ok(format!("lite-{}", digest(&[options.lite.join("config.json"), options.lite.join("model.safetensors")])?)),
        "qwen" => {
            let (Some(base), Some(adapter)) = (&options.base, &options.adapter) else {
                anyhow::bail!("encoder `qwen` needs --base and --adapter (or RELSIM_QWEN_BASE and RELSIM_QWEN_ADAPTER)");
            };
            // The base's config stands for its weights (hashing 16 GB at every start is too slow).
            let mut files = vec![base.join("config.json"), adapter.join("adapter_model.safetensors")];
            files.extend([adapter.join("projection.safetensors"), adapter.join("projection_and_config.pt")].into_iter().filter(|p| p.is_file()));
            // Preprocessing moves the vectors too: an index made one way is not reused another.
            Ok(format!("qwen-{}-{:?}-{:?}", digest(&files)?, options.preprocess, options.image_backend).to_lowercase())
        }
        other => anyhow::bail!("`{other}` is not a relational encoder: use lite or qwen"),
    }
}

/// Every encoder name `by_name` knows.
pub fn known_names() -> Vec<&'static str> {
    let mut names = BASELINES.to_vec();
    names.extend(["lite", "qwen"]);
    names
}

/// The encoder called `name` (see `known_names`).
pub fn by_name(name: &str, options: &EncoderOptions) -> anyhow::Result<Box<dyn ImageEncoder>> {
    Ok(match name {
        "pixels" => Box::new(AttributeBaseline::Pixels),
        "colour-histogram" | "color-histogram" => Box::new(AttributeBaseline::ColourHistogram),
        "hog" => Box::new(AttributeBaseline::Hog),
        "lite" => with_backend!(options.backend, |device: B| Box::new(LiteEncoder::<B>::load(&options.lite, &device)?) as Box<dyn ImageEncoder>),
        "qwen" => {
            let (Some(base), Some(adapter)) = (&options.base, &options.adapter) else {
                anyhow::bail!("encoder `qwen` needs --base and --adapter (or RELSIM_QWEN_BASE and RELSIM_QWEN_ADAPTER)");
            };
            let files = EncoderFiles { base: base.clone(), adapter: adapter.clone(), tokenizer: options.tokenizer.clone(), image_config: None };
            let mode = options.preprocess;
            with_float_backend!(options.backend, options.precision, |device: B| {
                let mut encoder = RelsimEncoder::load(&files, &device)?;
                encoder.image_config.backend = options.image_backend;
                Box::new(QwenEncoder::<B> { encoder, mode }) as Box<dyn ImageEncoder>
            })
        }
        other => anyhow::bail!("unknown encoder `{other}`; known: {}", known_names().join(", ")),
    })
}
