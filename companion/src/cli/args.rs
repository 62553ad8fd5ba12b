//! Command-line spellings of the lower floors' plain types: the option groups several
//! subcommands share, and the names of enum values. Nothing below the CLI knows clap.

use std::path::PathBuf;

use clap::builder::{PossibleValue, PossibleValuesParser, TypedValueParser};
use relsim_shared::image::preprocess::{ImageBackend, PreprocessMode};

use crate::backend::{BackendKind, Precision};
use crate::bench::TextCorpus;
use crate::encoders::EncoderOptions;
use crate::paths;
use crate::scenes::generate::Families;
use crate::scenes::Split;
use crate::train::answers::AnswerTask;
use crate::train::{Augment, Positives, Preset};

/// The command line's names for the values of a plain enum: (name, value, help).
pub type Choices<T> = &'static [(&'static str, T, &'static str)];

/// Parses one of `choices` by name; `--help` lists the names with their help.
pub fn one_of<T: Copy + Send + Sync + 'static>(choices: Choices<T>) -> impl TypedValueParser<Value = T> {
    PossibleValuesParser::new(choices.iter().map(|(name, _, help)| PossibleValue::new(*name).help(*help)))
        .map(move |name| choices.iter().find(|(n, _, _)| *n == name).map(|(_, value, _)| *value).expect("clap accepts only listed names"))
}

/// A backend, or `None`: the best one this machine has ([`crate::backend::auto`]). Not spelled
/// `Option`, so that clap takes it as one value rather than an optional flag.
pub type BackendChoice = Option<BackendKind>;

/// `--backend`.
pub const BACKENDS: Choices<BackendChoice> = &[
    ("auto", None, "CUDA if built in and a device is found, else wgpu if built in and a GPU adapter is found, else the CPU"),
    ("ndarray", Some(BackendKind::Ndarray), "CPU (burn-ndarray); always available"),
    ("flex", Some(BackendKind::Flex), "CPU through burn-flex (SIMD kernels, gemm): faster inference than ndarray; always available"),
    ("wgpu", Some(BackendKind::Wgpu), "wgpu: Vulkan, Metal or DX12 (built in with `--features wgpu`)"),
    ("cuda", Some(BackendKind::Cuda), "NVIDIA CUDA (built in with `--features cuda`; needs the driver at run time)"),
];

/// `--precision`.
pub const PRECISIONS: Choices<Precision> = &[
    ("f32", Precision::F32, "32-bit floats (every backend)"),
    ("f16", Precision::F16, "IEEE half precision (CUDA, or the CPU through burn-flex)"),
    ("bf16", Precision::Bf16, "bfloat16, as the published Qwen2.5-VL weights are stored (CUDA, or the CPU through burn-flex)"),
];

/// `--preprocess`.
pub const PREPROCESSING: Choices<PreprocessMode> = &[
    ("native", PreprocessMode::Native, "at the image's own size through smart_resize, resized with Pillow first (qwen_vl_utils), as the official scorer does"),
    ("processor", PreprocessMode::Processor, "the image handed to the processor as it is, which resizes it with its backend's filter (how vLLM and `processor(images=...)` run it)"),
    ("train", PreprocessMode::Train, "centre square resized to 448x448 (Lanczos), as the official training does"),
];

/// `--image-backend`.
pub const IMAGE_BACKENDS: Choices<ImageBackend> = &[
    ("torchvision", ImageBackend::Torchvision, "transformers' default Qwen2VLImageProcessor (what AutoProcessor gives the official code): torch's antialiased bicubic, normalisation fused in f32"),
    ("pil", ImageBackend::Pil, "transformers' Qwen2VLImageProcessorPil (backend=\"pil\", formerly use_fast=False): Pillow's bicubic"),
];

/// `relsim bench text --corpus`.
pub const TEXT_CORPORA: Choices<TextCorpus> = &[
    ("parity", TextCorpus::Parity, "the 61 MiniLM parity inputs, up to 256 tokens"),
    ("captions", TextCorpus::Captions, "the scene captions, 10-30 tokens, like the caption bank"),
];

/// `--split`.
pub const SPLITS: Choices<Split> = &[("train", Split::Train, ""), ("val", Split::Val, ""), ("test", Split::Test, "")];

/// `relsim scenes --families`.
pub const FAMILIES: Choices<Families> = &[
    ("classic", Families::Classic, "the first 14 families, their scenes exactly as before"),
    ("all", Families::All, "all 30 families, those about structure too"),
    ("pairs", Families::Pairs, "two ideas per scene: an arrangement with a change along it (as --multi)"),
    ("all+pairs", Families::AllAndPairs, "all 30 families and the 13 pairs, one of each per block (training data)"),
];

/// `relsim train --positives`.
pub const POSITIVES: Choices<Positives> = &[
    ("caption", Positives::Caption, "images whose captions are the same text"),
    ("relation", Positives::Relation, "images of the same relation, whichever paraphrase captions them"),
];

/// `relsim train --augment`.
pub const AUGMENTS: Choices<Augment> = &[
    ("none", Augment::None, "images as generated"),
    ("channels", Augment::Channels, "each image's RGB channels in one of the 6 orders, drawn per image"),
];

/// `relsim train --preset`.
pub const PRESETS: Choices<TrainPreset> = &[
    ("lite", TrainPreset::Encoder(Preset::Lite), "relsim-lite, the built-in default image encoder"),
    ("tiny", TrainPreset::Encoder(Preset::Tiny), "a toy model for tests: seconds per run"),
    ("qwen-tiny", TrainPreset::Encoder(Preset::QwenTiny), "the Qwen relsim encoder's adapter (needs --base): 100 steps of 16 images"),
    ("captioner", TrainPreset::Answers(AnswerTask::Caption), "the single-image anonymous captioner: LoRA on --base, next-token loss on captions (--data: a jsonl of file and caption, as relsim caption writes)"),
    ("filter", TrainPreset::Answers(AnswerTask::Filter), "the relational-interest filter: LoRA on --base, cross-entropy of the Yes/No answer (--data: a jsonl of file and label)"),
];

/// What `relsim train --preset` trains: an image encoder on scenes, or Qwen's answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrainPreset {
    Encoder(Preset),
    Answers(AnswerTask),
}

/// Where a model-backed encoder finds its files, and how it runs.
#[derive(Debug, Clone, clap::Args)]
pub struct EncoderArgs {
    /// For `lite`: the relsim-lite folder (config.json, model.safetensors).
    #[arg(long, env = "RELSIM_LITE_DIR", default_value_os_t = paths::default_lite_dir())]
    pub lite: PathBuf,
    /// For `qwen`: the Qwen2.5-VL folder.
    #[arg(long, env = "RELSIM_QWEN_BASE")]
    pub base: Option<PathBuf>,
    /// For `qwen`: the relsim adapter folder.
    #[arg(long, env = "RELSIM_QWEN_ADAPTER")]
    pub adapter: Option<PathBuf>,
    /// For `qwen`: tokenizer file, if not BASE/tokenizer.json.
    #[arg(long)]
    pub tokenizer: Option<PathBuf>,
    /// For `qwen`: native (own size), processor (own size, the processor's resize) or train
    /// (448x448 centre square) preprocessing.
    #[arg(long, value_parser = one_of(PREPROCESSING), default_value = "native")]
    pub preprocess: PreprocessMode,
    /// For `qwen`: whose image processor arithmetic to reproduce.
    #[arg(long, value_parser = one_of(IMAGE_BACKENDS), default_value = "torchvision")]
    pub image_backend: ImageBackend,
    /// Compute backend for model-backed encoders.
    #[arg(long, value_parser = one_of(BACKENDS), default_value = "auto")]
    pub backend: BackendChoice,
    /// For `qwen`: float type of weights and activations on the device (f16/bf16: CUDA or the CPU).
    #[arg(long, value_parser = one_of(PRECISIONS), default_value = "f32")]
    pub precision: Precision,
}

impl From<EncoderArgs> for EncoderOptions {
    fn from(a: EncoderArgs) -> Self {
        let backend = crate::backend::resolve(a.backend);
        EncoderOptions { lite: a.lite, base: a.base, adapter: a.adapter, tokenizer: a.tokenizer, preprocess: a.preprocess, image_backend: a.image_backend, backend, precision: a.precision }
    }
}

/// Which index a library uses: where it is kept and the relational model that fills it
/// (`relsim serve` and `relsim index`).
#[derive(Debug, Clone, clap::Args)]
pub struct IndexArgs {
    /// Where the index, thumbnails and your captions are kept.
    #[arg(long, env = "RELSIM_DATA_DIR", default_value_os_t = paths::default_data_dir())]
    pub data_dir: PathBuf,
    /// The relational image encoder: lite (built in) or qwen (needs --base and --adapter).
    #[arg(long, default_value = "lite")]
    pub model: String,
    #[command(flatten)]
    pub encoder: EncoderArgs,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every value of each enum has exactly one name, so none is unreachable from the command line.
    fn covers<T: Copy + PartialEq + std::fmt::Debug>(choices: Choices<T>, all: &[T]) {
        for value in all {
            assert_eq!(choices.iter().filter(|c| c.1 == *value).count(), 1, "{value:?}");
        }
        assert_eq!(choices.len(), all.len());
    }

    #[test]
    fn every_enum_value_has_one_name() {
        covers(BACKENDS, &[None, Some(BackendKind::Ndarray), Some(BackendKind::Flex), Some(BackendKind::Wgpu), Some(BackendKind::Cuda)]);
        covers(PRECISIONS, &[Precision::F32, Precision::F16, Precision::Bf16]);
        covers(PREPROCESSING, &[PreprocessMode::Native, PreprocessMode::Processor, PreprocessMode::Train]);
        covers(IMAGE_BACKENDS, &[ImageBackend::Torchvision, ImageBackend::Pil]);
        covers(SPLITS, &[Split::Train, Split::Val, Split::Test]);
        covers(TEXT_CORPORA, &[TextCorpus::Parity, TextCorpus::Captions]);
        covers(POSITIVES, &[Positives::Caption, Positives::Relation]);
        covers(AUGMENTS, &[Augment::None, Augment::Channels]);
        covers(PRESETS, &[TrainPreset::Encoder(Preset::Lite), TrainPreset::Encoder(Preset::Tiny), TrainPreset::Encoder(Preset::QwenTiny), TrainPreset::Answers(AnswerTask::Caption), TrainPreset::Answers(AnswerTask::Filter)]);
    }

    #[test]
    fn names_match_the_files_serde_writes() {
        // train.json and data.jsonl spell these values as the command line does.
        for (name, value, _) in SPLITS {
            assert_eq!(serde_json::to_value(value).unwrap(), *name);
        }
        for (name, value, _) in PREPROCESSING {
            assert_eq!(serde_json::to_value(value).unwrap(), *name);
        }
        for (name, value, _) in AUGMENTS {
            assert_eq!(serde_json::to_value(value).unwrap(), *name);
        }
        for (name, value, _) in POSITIVES {
            assert_eq!(serde_json::to_value(value).unwrap(), *name);
        }
    }

    #[test]
    fn defaults_and_shared_groups_parse_into_the_plain_options() {
        use clap::{CommandFactory, Parser};
        use super::super::{Cli, Command};
        // Every default value goes through its parser.
        Cli::command().debug_assert();
        let Command::Index { libraries, index } = Cli::try_parse_from(["relsim", "index", "--library", "pics"]).unwrap().command else { panic!("index") };
        assert_eq!(libraries, [PathBuf::from("pics")]);
        assert_eq!(index.model, "lite");
        assert_eq!(index.encoder.backend, None, "the backend is picked at run time by default");
        let options = EncoderOptions::from(index.encoder);
        assert_eq!((options.preprocess, options.precision), (PreprocessMode::Native, Precision::F32));
        let parsed = Cli::try_parse_from(["relsim", "serve", "--model", "qwen", "--preprocess", "train", "--backend", "wgpu", "--precision", "bf16"]).unwrap();
        let Command::Serve { libraries, index, .. } = parsed.command else { panic!("serve") };
        assert!(libraries.is_empty(), "serve may start without folders");
        let options = EncoderOptions::from(index.encoder);
        assert_eq!((index.model.as_str(), options.preprocess, options.backend, options.precision), ("qwen", PreprocessMode::Train, BackendKind::Wgpu, Precision::Bf16));
        assert!(Cli::try_parse_from(["relsim", "index"]).is_err(), "index needs a folder");
        let error = Cli::try_parse_from(["relsim", "eval", "--checkpoint", "c", "--data", "d", "--split", "dev"]).unwrap_err().to_string();
        assert!(error.contains("train, val, test"), "{error}");
    }
}

/// The Qwen2.5-VL a generating command runs (`relsim caption`, `relsim filter`).
#[derive(Debug, clap::Args)]
pub struct GeneratorArgs {
    /// The Qwen2.5-VL folder (Qwen2.5-VL-7B-Instruct for relsim's captions and filter).
    #[arg(long, env = "RELSIM_QWEN_BASE")]
    pub base: PathBuf,
    /// A LoRA adapter of the language model (a captioner, a filter).
    #[arg(long)]
    pub adapter: Option<PathBuf>,
    /// Tokenizer file, if not BASE/tokenizer.json.
    #[arg(long)]
    pub tokenizer: Option<PathBuf>,
    /// Whose image processor arithmetic to reproduce.
    #[arg(long, value_parser = one_of(IMAGE_BACKENDS), default_value = "torchvision")]
    pub image_backend: ImageBackend,
    /// Compute backend.
    #[arg(long, value_parser = one_of(BACKENDS), default_value = "auto")]
    pub backend: BackendChoice,
}

impl GeneratorArgs {
    /// The files to load.
    pub fn files(&self) -> crate::qwen::generate::GeneratorFiles {
        crate::qwen::generate::GeneratorFiles { base: self.base.clone(), adapter: self.adapter.clone(), tokenizer: self.tokenizer.clone(), image_config: None }
    }

    /// The generator on `device`: the base folder's processor settings, with the chosen arithmetic.
    pub fn load<B: burn::tensor::backend::Backend>(&self, device: &B::Device) -> anyhow::Result<crate::qwen::generate::Generator<B>> {
        let mut generator = crate::qwen::generate::Generator::<B>::load(&self.files(), device)?;
        generator.image_config.backend = self.image_backend;
        Ok(generator)
    }
}

/// The chat model `relsim serve` answers `/v1/chat/completions` with.
#[derive(Debug, clap::Args)]
pub struct ChatArgs {
    /// A Qwen2.5-VL folder: answer OpenAI-style `/v1/chat/completions` with it (for `relsim
    /// judge`, captioning and filtering on this machine; token-guarded like the rest).
    #[arg(long, env = "RELSIM_CHAT_BASE")]
    pub chat_base: Option<PathBuf>,
    /// A LoRA adapter of the chat model's language model.
    #[arg(long, requires = "chat_base")]
    pub chat_adapter: Option<PathBuf>,
    /// The chat model's tokenizer file, if not CHAT_BASE/tokenizer.json.
    #[arg(long, requires = "chat_base")]
    pub chat_tokenizer: Option<PathBuf>,
    /// The name `/v1/models` lists (requests may name any model; this one answers).
    #[arg(long, default_value = "relsim-qwen")]
    pub chat_name: String,
    /// The chat model's compute backend.
    #[arg(long, value_parser = one_of(BACKENDS), default_value = "auto")]
    pub chat_backend: BackendChoice,
}

impl ChatArgs {
    /// The server's chat settings, when a model was named.
    pub fn config(&self) -> Option<crate::server::chat::ChatConfig> {
        let base = self.chat_base.clone()?;
        Some(crate::server::chat::ChatConfig {
            files: crate::qwen::generate::GeneratorFiles { base, adapter: self.chat_adapter.clone(), tokenizer: self.chat_tokenizer.clone(), image_config: None },
            image_backend: ImageBackend::Torchvision,
            backend: crate::backend::resolve(self.chat_backend),
            name: self.chat_name.clone(),
        })
    }
}
