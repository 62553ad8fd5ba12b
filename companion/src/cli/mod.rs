//! Command-line interface: one subcommand per job. The top floor: clap types live here and are
//! turned into the lower floors' plain option structs before any work starts.

mod args;
mod caption;
mod interest;
mod judge;
mod distill;
mod index;
mod train;

use std::io::Write;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use relsim_shared::image::preprocess::{decode_rgb, ImageBackend};

use crate::backend::BackendKind;
use crate::encoders::{EncoderOptions, BASELINES};
use crate::paths;
use crate::scenes::generate::{Families, SceneSet};
use crate::scenes::Split;
use args::{one_of, BackendChoice, EncoderArgs, IndexArgs, BACKENDS, FAMILIES, PRECISIONS, SPLITS};
use distill::DistillArgs;
use train::TrainArgs;

/// relsim: relational visual similarity, on your own machine.
#[derive(Debug, Parser)]
#[command(name = "relsim", version, about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Embed sentences with all-MiniLM-L6-v2; prints one JSON array of floats per input.
    EmbedText {
        /// The sentences to embed.
        #[arg(required = true)]
        texts: Vec<String>,
        /// The sentence-transformers folder of all-MiniLM-L6-v2.
        #[arg(long, env = "RELSIM_MINILM_DIR", default_value_os_t = paths::default_minilm_dir())]
        minilm_dir: PathBuf,
        /// Compute backend.
        #[arg(long, value_parser = one_of(BACKENDS), default_value = "auto")]
        backend: BackendChoice,
        /// Sentences per forward pass.
        #[arg(long, default_value_t = 32)]
        batch_size: usize,
    },
    /// Embed images; prints one JSON line per image. With --base and --adapter the relsim
    /// encoder (Qwen2.5-VL + relsim adapter), else the built-in relsim-lite.
    EmbedImage {
        #[command(flatten)]
        model: EncoderArgs,
        /// The images.
        #[arg(required = true)]
        images: Vec<PathBuf>,
    },
    /// The relsim similarity (cosine of the two embeddings) of two images (encoder as in embed-image).
    Score {
        #[command(flatten)]
        model: EncoderArgs,
        /// First image.
        first: PathBuf,
        /// Second image.
        second: PathBuf,
    },
    /// Relational scenes: procedural images that each show one relation, with ground truth.
    Scenes {
        #[command(subcommand)]
        which: ScenesCommand,
    },
    /// Train an image encoder with the relsim recipe on a scene set (resumes a run in OUT).
    Train(TrainArgs),
    /// Train a student image encoder for the browser to reproduce a teacher's embeddings
    /// (the library's index vectors), then compare them on the test split.
    Distill(DistillArgs),
    /// Relational retrieval metrics (image→image and caption→image) of a trained model.
    Eval {
        /// A model folder (config.json, model.safetensors), a run folder or one of its checkpoints.
        #[arg(long)]
        checkpoint: PathBuf,
        /// A folder written by `relsim scenes generate`.
        #[arg(long)]
        data: PathBuf,
        /// The split to evaluate on.
        #[arg(long, value_parser = one_of(SPLITS), default_value = "test")]
        split: Split,
        /// The sentence-transformers folder of all-MiniLM-L6-v2 (for caption→image retrieval).
        #[arg(long, env = "RELSIM_MINILM_DIR", default_value_os_t = paths::default_minilm_dir())]
        minilm_dir: PathBuf,
        /// For a Qwen adapter: whose image processor arithmetic to reproduce.
        #[arg(long, value_parser = one_of(args::IMAGE_BACKENDS), default_value = "torchvision")]
        image_backend: ImageBackend,
    },
    /// Benchmarks (numbers, not tests).
    Bench {
        #[command(subcommand)]
        which: BenchCommand,
    },
    /// Serve the browser app and the search API over your image folders on this machine.
    Serve {
        /// Image folders to index and search (repeat the flag), recursively.
        #[arg(long = "library")]
        libraries: Vec<PathBuf>,
        /// Port (0 picks a free one).
        #[arg(long, default_value_t = 8737)]
        port: u16,
        /// Listen on this address instead of 127.0.0.1 (other machines could then reach the
        /// server; it prints a warning).
        #[arg(long)]
        listen: Option<IpAddr>,
        #[command(flatten)]
        index: IndexArgs,
        /// Do not index the folders at start (the browser or the API can start it).
        #[arg(long)]
        no_index: bool,
        /// The sentence-transformers folder of all-MiniLM-L6-v2, served to the browser.
        #[arg(long, env = "RELSIM_MINILM_DIR", default_value_os_t = paths::default_minilm_dir())]
        minilm_dir: PathBuf,
        /// Static files (index.html, styles).
        #[arg(long, default_value_os_t = paths::default_public_dir())]
        public_dir: PathBuf,
        /// The wasm bundle built by `cargo xtask build-web`.
        #[arg(long, default_value_os_t = paths::default_pkg_dir())]
        pkg_dir: PathBuf,
        /// The student the browser answers image queries with (`relsim distill`); served only
        /// when it was distilled from this library's model.
        #[arg(long, env = "RELSIM_STUDENT_DIR", default_value_os_t = paths::default_student_dir())]
        student: PathBuf,
        /// Also run the A/B study in this folder (`relsim study make`): the page's Study view
        /// asks it, and the answers are stored in the folder.
        #[arg(long)]
        study: Option<PathBuf>,
        #[command(flatten)]
        chat: args::ChatArgs,
    },
    /// Anonymous captions (relsim's dataset jsonl) of image groups or single images with Qwen2.5-VL.
    Caption(caption::CaptionArgs),
    /// The relational-interest filter: each image's P("Yes") to a yes/no question, and the images kept.
    Filter(interest::FilterArgs),
    /// The LLM-judge evaluation: each method's top hits rated 0-10 for shared relational logic by
    /// a chat model behind an OpenAI-compatible endpoint; mean scores with 95% intervals.
    Judge(judge::JudgeArgs),
    /// The human A/B study: make one (queries and each method's top hit), then report the answers.
    Study {
        #[command(subcommand)]
        which: StudyCommand,
    },
    /// Index image folders (incremental, resumable; Ctrl-C keeps what is done) without serving.
    Index {
        /// Image folders (repeat the flag), recursively.
        #[arg(long = "library", required = true)]
        libraries: Vec<PathBuf>,
        #[command(flatten)]
        index: IndexArgs,
    },
}

/// Loads the encoder the options name (Qwen when --base or --adapter is given, else
/// relsim-lite) and embeds each image in turn, handing each vector to `each`.
fn embed_images(options: &EncoderOptions, images: &[PathBuf], each: &mut dyn FnMut(&std::path::Path, Vec<f32>) -> anyhow::Result<()>) -> anyhow::Result<()> {
    let name = if options.base.is_some() || options.adapter.is_some() { "qwen" } else { "lite" };
    let encoder = crate::encoders::by_name(name, options)?;
    for path in images {
        let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        let image = decode_rgb(&bytes, &path.display().to_string())?;
        let vector = encoder.embed_batch(std::slice::from_ref(&image))?.pop().with_context(|| format!("the encoder returned no vector for {}", path.display()))?;
        each(path, vector)?;
    }
    Ok(())
}

/// The study subcommands.
#[derive(Debug, Subcommand)]
pub enum StudyCommand {
    /// Pick query images at random and each method's top hit among the other images, and write
    /// the study folder (trials with sides drawn at random, copies of every image shown).
    Make {
        /// Methods to compare, comma-separated: encoder names (lite, colour-histogram, qwen, ...).
        #[arg(long, value_delimiter = ',', required = true)]
        methods: Vec<String>,
        /// Query images to draw.
        #[arg(long, default_value_t = 50)]
        queries: usize,
        /// A folder of images (recursively): the queries and the pool they search.
        #[arg(long)]
        data: PathBuf,
        /// The study folder to write.
        #[arg(long)]
        out: PathBuf,
        /// Seed of the draws (queries, sides, order).
        #[arg(long, default_value_t = 0)]
        seed: u64,
        #[command(flatten)]
        options: EncoderArgs,
    },
    /// Win/tie/loss rates per pair of methods with 95% confidence intervals (Wilson), as a table;
    /// the JSON goes to STUDY/report.json (and stdout with --json).
    Report {
        /// The study folder.
        study: PathBuf,
        /// Print the JSON instead of the table.
        #[arg(long)]
        json: bool,
    },
}

/// The scene subcommands.
#[derive(Debug, Subcommand)]
pub enum ScenesCommand {
    /// Write N scenes: OUT/images/<hash>.png, OUT/data.jsonl (relsim format plus relation,
    /// attributes, split) and OUT/captions.json. The same seed gives byte-identical files.
    Generate {
        /// Output folder (created if missing).
        #[arg(long)]
        out: PathBuf,
        /// Number of scenes (they cycle through the families; 1 block in 10 is test, 1 val).
        #[arg(long, default_value_t = 3000)]
        count: usize,
        /// Random seed.
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Image side in pixels.
        #[arg(long, default_value_t = crate::scenes::generate::DEFAULT_SIZE)]
        size: u32,
        /// Fraction of the scenes that draw real objects (colour emoji) instead of shapes,
        /// where the idea allows; needs Noto Color Emoji (installed by `cargo xtask setup`).
        #[arg(long, default_value_t = 0.6)]
        objects: f64,
        /// Which relation families the scenes cycle through.
        #[arg(long, value_parser = one_of(FAMILIES), default_value = "all")]
        families: Families,
        /// Scenes that carry two ideas at once: an arrangement (ring, trail, spiral, nesting)
        /// with a change along it (growing, colour shift, turning, alternating); both are
        /// recorded in the row (`relation`, `second_relation`). Same as `--families pairs`.
        #[arg(long, conflicts_with = "families")]
        multi: bool,
    },
    /// Turn your captioned images (the jsonl `relsim caption` writes: file, caption, group) into a
    /// training set like a scene set: OUT/images/<hash>.png and OUT/data.jsonl, each caption
    /// group one idea, whole ideas held out for validation and test.
    Import {
        /// The captions jsonl (paths relative to its folder).
        #[arg(long)]
        captions: PathBuf,
        /// Output folder (created; must not hold a data set).
        #[arg(long)]
        out: PathBuf,
    },
    /// Write a contact sheet PNG: one row per relation, labelled, a few scenes each.
    Sheet {
        /// The PNG to write.
        #[arg(long)]
        out: PathBuf,
        /// Random seed (the same as `generate` shows the same scenes).
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Scenes per relation.
        #[arg(long, default_value_t = 8)]
        per_relation: usize,
        /// Which split's appearances to show.
        #[arg(long, value_parser = one_of(SPLITS), default_value = "train")]
        split: Split,
        /// Side of each scene in pixels.
        #[arg(long, default_value_t = 128)]
        cell: u32,
        /// Fraction of the scenes that draw real objects, as for `generate`.
        #[arg(long, default_value_t = 0.6)]
        objects: f64,
        /// Which relation families to show, one row each.
        #[arg(long, value_parser = one_of(FAMILIES), default_value = "all")]
        families: Families,
    },
}

/// The benchmarks.
#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// A bounded load test on loopback: many clients, a mix of API calls, p50/p99 and errors.
    Serve {
        /// Concurrent clients.
        #[arg(long, default_value_t = 100)]
        clients: usize,
        /// How long they send requests.
        #[arg(long, default_value_t = 60.0)]
        seconds: f64,
        /// Scenes in the library served.
        #[arg(long, default_value_t = 200)]
        images: usize,
        /// The sentence-transformers folder of all-MiniLM-L6-v2.
        #[arg(long, env = "RELSIM_MINILM_DIR", default_value_os_t = paths::default_minilm_dir())]
        minilm_dir: PathBuf,
        #[command(flatten)]
        encoder: EncoderArgs,
    },
    /// Exact top-k search over many vectors: p50/p99 latency and peak memory, int8 index with
    /// exact re-ranking beside a plain f32 scan.
    Search {
        /// Vectors in the index.
        #[arg(long, default_value_t = 1_000_000)]
        vectors: usize,
        /// Their dimension.
        #[arg(long, default_value_t = 384)]
        dim: usize,
        /// Queries timed.
        #[arg(long, default_value_t = 50)]
        queries: usize,
        /// Results per query.
        #[arg(long, default_value_t = 10)]
        k: usize,
        /// Scratch folder for the f32 vector file.
        #[arg(long, default_value_os_t = std::env::temp_dir().join("relsim-bench-search"))]
        dir: PathBuf,
    },
    /// Relational retrieval on a scene split: P@1, P@5, mAP and the attribute-trap rate.
    Relational {
        /// A folder written by `relsim scenes generate`.
        #[arg(long)]
        data: PathBuf,
        /// The split to search within.
        #[arg(long, value_parser = one_of(SPLITS), default_value = "test")]
        split: Split,
        /// Encoders by name (repeat the flag); default: the attribute baselines.
        #[arg(long = "encoder")]
        encoders: Vec<String>,
        /// Where to write the JSON report (default: DATA/bench-relational-SPLIT.json).
        #[arg(long)]
        json: Option<PathBuf>,
        #[command(flatten)]
        options: EncoderArgs,
    },
    /// Composite queries on a two-idea scene split (`scenes generate --multi`): with another
    /// idea's caption added to an image query, how often the best hit shows that idea.
    Compose {
        /// A folder written by `relsim scenes generate --multi`.
        #[arg(long)]
        data: PathBuf,
        /// The split to search within.
        #[arg(long, value_parser = one_of(SPLITS), default_value = "test")]
        split: Split,
        /// Encoders whose vectors share MiniLM's caption space (repeat the flag); default: lite.
        #[arg(long = "encoder")]
        encoders: Vec<String>,
        /// The sentence-transformers folder of all-MiniLM-L6-v2 (the captions' encoder).
        #[arg(long, env = "RELSIM_MINILM_DIR", default_value_os_t = paths::default_minilm_dir())]
        minilm_dir: PathBuf,
        /// Where to write the JSON report (default: DATA/bench-compose-SPLIT.json).
        #[arg(long)]
        json: Option<PathBuf>,
        #[command(flatten)]
        options: EncoderArgs,
    },
    /// Scene generation speed (images/s, PNGs written) on all cores beside one core.
    Scenes {
        /// Scenes per run.
        #[arg(long, default_value_t = 2000)]
        count: usize,
        /// Image side in pixels.
        #[arg(long, default_value_t = crate::scenes::generate::DEFAULT_SIZE)]
        size: u32,
        /// Fraction of the scenes that draw real objects where the idea allows.
        #[arg(long, default_value_t = 1.0)]
        objects: f64,
        /// Which relation families the scenes cycle through.
        #[arg(long, value_parser = one_of(FAMILIES), default_value = "all")]
        families: Families,
    },
    /// Peak memory while loading a synthetic Qwen2.5-VL checkpoint (7B widths, >= 2 GB, real layout).
    Load {
        /// Where the synthetic checkpoint is written (it is removed afterwards).
        #[arg(long, default_value_os_t = std::env::temp_dir().join("relsim-synthetic-qwen"))]
        dir: PathBuf,
        /// Decoder layers (each ~0.93 GB in f32).
        #[arg(long, default_value_t = 1)]
        layers: usize,
        /// Vision blocks (each ~79 MB in f32).
        #[arg(long, default_value_t = 2)]
        blocks: usize,
        /// The whole 7B shape in bf16 (28 layers, 32 blocks, ~16 GB), loaded and kept in bf16 on
        /// the CPU, and one 448x448 image embedded: peak RSS and seconds per image.
        #[arg(long)]
        full: bool,
        /// With --full: the tokenizer whose prompt the image is embedded with.
        #[arg(long, default_value_os_t = paths::default_qwen_tokenizer())]
        tokenizer: PathBuf,
        /// Internal: load DIR and report peak memory (run in a fresh process by the benchmark).
        #[arg(long, hide = true)]
        probe: Option<PathBuf>,
    },
    /// Qwen2.5-VL text generation, random weights: prompt time and decoded tokens/s (one JSON line).
    Generate {
        /// Compute backend.
        #[arg(long, value_parser = one_of(BACKENDS), default_value = "auto")]
        backend: BackendChoice,
        /// The model's config.json (tests/bench/generate_tiny.json, tests/bench/generate_mid.json).
        #[arg(long)]
        config: PathBuf,
        /// Tokenizer file.
        #[arg(long, default_value_os_t = paths::default_qwen_tokenizer())]
        tokenizer: PathBuf,
        /// New tokens per run.
        #[arg(long, default_value_t = 32)]
        tokens: usize,
        /// Timed runs (after one untimed).
        #[arg(long, default_value_t = 3)]
        runs: usize,
    },
    /// Images/s of the Qwen2.5-VL relsim encoder at the 7B shape (random weights, 448x448 images), per batch size.
    QwenSpeed {
        /// Compute backend.
        #[arg(long, value_parser = one_of(BACKENDS), default_value = "auto")]
        backend: BackendChoice,
        /// Float type on the device.
        #[arg(long, value_parser = one_of(PRECISIONS), default_value = "f32")]
        precision: crate::backend::Precision,
        /// Decoder layers (the 7B has 28).
        #[arg(long, default_value_t = 28)]
        layers: usize,
        /// Vision blocks (the 7B has 32).
        #[arg(long, default_value_t = 32)]
        blocks: usize,
        /// Batch sizes to time.
        #[arg(long = "batch", default_values_t = [1, 16])]
        batches: Vec<usize>,
        /// Seconds of timed calls per batch size (at least 3 calls).
        #[arg(long, default_value_t = 10.0)]
        seconds: f64,
        /// Tokenizer file (for the prompt).
        #[arg(long, default_value_os_t = paths::default_qwen_tokenizer())]
        tokenizer: PathBuf,
        /// A Qwen2.5-VL config.json to time instead of the 7B shape (--layers/--blocks ignored),
        /// e.g. tests/gpu/lavapipe_config.json, narrow enough for a software Vulkan driver.
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Indexing a folder (read, decode, embed, attribute descriptors, thumbnails) and the bare
    /// image encoder at batch 1 and 32, in images/s (one untimed pass, then the median of
    /// --passes); peak memory.
    Images {
        /// The image folder (e.g. the demo library, `relsim scenes generate`).
        #[arg(long)]
        folder: PathBuf,
        /// The relational model: `lite`, `qwen` or an attribute baseline.
        #[arg(long, default_value = "lite")]
        model: String,
        #[command(flatten)]
        encoder: EncoderArgs,
        /// Timed passes per measurement (the median is reported).
        #[arg(long, default_value_t = 3)]
        passes: usize,
        /// Print one JSON line instead of a sentence.
        #[arg(long)]
        json: bool,
    },
    /// MiniLM sentences/s at batch 1 and 32 (one untimed pass, then the median of --passes)
    /// on your sentences or a built-in corpus; peak memory.
    Text {
        /// The sentence-transformers folder of all-MiniLM-L6-v2.
        #[arg(long, env = "RELSIM_MINILM_DIR", default_value_os_t = paths::default_minilm_dir())]
        minilm_dir: PathBuf,
        /// Your corpus: a JSON array of strings (instead of --corpus).
        #[arg(long)]
        sentences: Option<PathBuf>,
        /// A built-in corpus.
        #[arg(long, value_parser = one_of(args::TEXT_CORPORA), default_value = "parity")]
        corpus: crate::bench::TextCorpus,
        /// Print the corpus as a JSON array and stop (to time other encoders on the same sentences).
        #[arg(long)]
        print_sentences: bool,
        /// Compute backend.
        #[arg(long, value_parser = one_of(BACKENDS), default_value = "auto")]
        backend: BackendChoice,
        /// Timed passes over the corpus per batch size (the median is reported).
        #[arg(long, default_value_t = 5)]
        passes: usize,
        /// One JSON line instead of text.
        #[arg(long)]
        json: bool,
    },
}

/// Runs the parsed command.
pub fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::EmbedText { texts, minilm_dir, backend, batch_size } => {
            embed_text(&texts, &minilm_dir, crate::backend::resolve(backend), batch_size.max(1))
        }
        Command::EmbedImage { model, images } => {
            let model = model.into();
            let mut out = std::io::stdout().lock();
            embed_images(&model, &images, &mut |path, embedding| {
                serde_json::to_writer(&mut out, &serde_json::json!({ "image": path.display().to_string(), "embedding": embedding }))?;
                writeln!(out)?;
                Ok(())
            })
        }
        Command::Score { model, first, second } => {
            let model = model.into();
            let mut vectors = Vec::new();
            embed_images(&model, &[first, second], &mut |_, v| {
                vectors.push(v);
                Ok(())
            })?;
            println!("{:.6}", relsim_shared::vectors::cosine(&vectors[0], &vectors[1]));
            Ok(())
        }
        Command::Bench { which: BenchCommand::Load { dir, layers, blocks, full, tokenizer, probe } } => match probe {
            Some(probe_dir) => crate::bench::probe_load(&probe_dir, full.then_some(tokenizer.as_path())),
            None => {
                let result = crate::bench::bench_load(&dir, layers, blocks, full.then_some(tokenizer.as_path()));
                let _ = std::fs::remove_dir_all(&dir);
                result
            }
        },
        Command::Bench { which: BenchCommand::Images { folder, model, encoder, passes, json } } => {
            let result = crate::bench::bench_images(&folder, &model, &encoder.into(), passes)?;
            if json {
                println!("{}", serde_json::to_string(&result)?);
            } else {
                println!(
                    "{}: {} images: indexing {:.1} images/s; encoder batch 1 {:.1} images/s, batch 32 {:.1} images/s; peak RSS {:.0} MB",
                    result.encoder,
                    result.images,
                    result.index_images_per_s,
                    result.batch1_images_per_s,
                    result.batch32_images_per_s,
                    result.peak_rss_bytes as f64 / 1e6
                );
            }
            Ok(())
        }
        Command::Bench { which: BenchCommand::Text { minilm_dir, sentences, corpus, print_sentences, backend, passes, json } } => {
            let sentences = match &sentences {
                Some(file) => crate::bench::sentences_file(file)?,
                None => corpus.sentences()?,
            };
            if print_sentences {
                println!("{}", serde_json::to_string(&sentences)?);
                return Ok(());
            }
            let result = crate::bench::bench_text(&minilm_dir, &sentences, crate::backend::resolve(backend), passes)?;
            if json {
                println!("{}", serde_json::to_string(&result)?);
            } else {
                println!(
                    "{}: {} sentences: batch 1 {:.1} sentences/s, batch 32 {:.1} sentences/s, peak RSS {:.0} MB",
                    result.encoder,
                    result.sentences,
                    result.batch1_sentences_per_s,
                    result.batch32_sentences_per_s,
                    result.peak_rss_bytes as f64 / 1e6
                );
            }
            Ok(())
        }
        Command::Scenes { which: ScenesCommand::Generate { out, count, seed, size, objects, families, multi } } => {
            let families = if multi { Families::Pairs } else { families };
            let bar = progress_bar(count as u64, "scenes");
            let started = std::time::Instant::now();
            let set = SceneSet { seed, families, objects, size };
            let records = crate::scenes::generate::generate(&out, count, &set, &|| bar.inc(1))?;
            bar.finish_and_clear();
            let per_split = |s: Split| records.iter().filter(|r| r.split == s).count();
            eprintln!(
                "wrote {} scenes to {} in {:.1} s (train {}, val {}, test {})",
                records.len(),
                out.display(),
                started.elapsed().as_secs_f64(),
                per_split(Split::Train),
                per_split(Split::Val),
                per_split(Split::Test)
            );
            Ok(())
        }
        Command::Scenes { which: ScenesCommand::Import { captions, out } } => {
            let r = crate::scenes::import::import_captions(&captions, &out)?;
            println!("{} images, {} ideas: {} train, {} val, {} test in {} (train with `relsim train --data {}`)", r.images, r.ideas, r.train, r.val, r.test, out.display(), out.display());
            Ok(())
        }
        Command::Scenes { which: ScenesCommand::Sheet { out, seed, per_relation, split, cell, objects, families } } => {
            anyhow::ensure!(cell >= 32, "--cell {cell} is too small: scenes need at least 32 pixels");
            anyhow::ensure!((0.0..=1.0).contains(&objects), "--objects {objects} is not a fraction between 0 and 1");
            if objects > 0.0 {
                crate::scenes::objects::Glyphs::shared()?;
            }
            let sheet = crate::scenes::generate::contact_sheet(&SceneSet { seed, families, objects, size: cell }, per_relation.max(1), split);
            sheet.save(&out).with_context(|| format!("writing {}", out.display()))?;
            eprintln!("wrote {} ({}x{})", out.display(), sheet.width(), sheet.height());
            Ok(())
        }
        Command::Bench { which: BenchCommand::Relational { data, split, encoders, json, options } } => {
            let encoders = if encoders.is_empty() { BASELINES.iter().map(|s| s.to_string()).collect() } else { encoders };
            let json = json.unwrap_or_else(|| data.join(format!("bench-relational-{}.json", split.name())));
            crate::bench::bench_relational(&data, split, &encoders, &options.into(), &json)
        }
        Command::Bench { which: BenchCommand::Compose { data, split, encoders, minilm_dir, json, options } } => {
            let encoders = if encoders.is_empty() { vec!["lite".to_string()] } else { encoders };
            let json = json.unwrap_or_else(|| data.join(format!("bench-compose-{}.json", split.name())));
            crate::bench::bench_compose(&data, split, &encoders, &options.into(), &minilm_dir, &json)
        }
        Command::Bench { which: BenchCommand::Generate { backend, config, tokenizer, tokens, runs } } => {
            crate::bench::bench_generate(&crate::bench::GenerateSpeed { backend: crate::backend::resolve(backend), config, tokenizer, tokens, runs })
        }
        Command::Bench { which: BenchCommand::QwenSpeed { backend, precision, layers, blocks, batches, seconds, tokenizer, config } } => {
            crate::bench::bench_qwen_speed(&crate::bench::QwenSpeed { backend: crate::backend::resolve(backend), precision, layers, blocks, batches, seconds, tokenizer, config })
        }
        Command::Bench { which: BenchCommand::Serve { clients, seconds, images, minilm_dir, encoder } } => {
            crate::server::loadtest::run(crate::server::loadtest::LoadTest { clients, seconds, images, minilm_dir, encoder: encoder.into() })
        }
        Command::Bench { which: BenchCommand::Search { vectors, dim, queries, k, dir } } => crate::bench::bench_search(vectors, dim, queries, k, &dir),
        Command::Bench { which: BenchCommand::Scenes { count, size, objects, families } } => crate::bench::bench_scenes(count, &SceneSet { seed: 1, families, objects, size }),
        Command::Train(args) => train::run_train(args),
        Command::Caption(args) => caption::run_caption(args),
        Command::Filter(args) => interest::run_filter(args),
        Command::Judge(args) => judge::run_judge(args),
        Command::Distill(args) => distill::run_distill(args),
        Command::Eval { checkpoint, data, split, minilm_dir, image_backend } => crate::train::eval::run_eval(&checkpoint, &data, split, &minilm_dir, image_backend),
        Command::Study { which: StudyCommand::Make { methods, queries, data, out, seed, options } } => {
            let options: EncoderOptions = options.into();
            let on_method = |method: &str, images: usize| eprintln!("embedding {images} images with {method}…");
            let study = crate::study::Study::make(&crate::study::MakeOptions { hits: crate::study::HitOptions { data: &data, methods: &methods, queries, seed, encoders: &options, on_method: &on_method }, out: &out })?;
            println!("study in {}: {} queries, {} trials ({} images); run it with `relsim serve --study {}`", out.display(), study.queries.len(), study.trials.len(), study.images.len(), out.display());
            Ok(())
        }
        Command::Study { which: StudyCommand::Report { study, json } } => {
            let answers = crate::study::AnswerLog::open(&study.join(crate::study::ANSWERS_FILE))?.records;
            let made = crate::study::Study::open(&study)?;
            let pairs = crate::study::report(&made, &answers);
            let doc = serde_json::json!({ "study": study.display().to_string(), "answers": answers.len(), "pairs": pairs });
            crate::files::write_atomically(&study.join("report.json"), &serde_json::to_vec_pretty(&doc)?)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&doc)?);
            } else {
                println!("A/B study {}: {} answers to {} trials", study.display(), answers.len(), made.trials.len());
                print!("{}", crate::study::report_table(&pairs));
                println!("report: {}", study.join("report.json").display());
            }
            Ok(())
        }
        Command::Serve { libraries, port, listen, index, no_index, minilm_dir, public_dir, pkg_dir, student, study, chat } => {
            let addr = SocketAddr::new(listen.unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST)), port);
            let config = crate::server::ServerConfig {
                addr,
                minilm_dir,
                public_dir,
                pkg_dir,
                libraries,
                data_dir: index.data_dir,
                model: index.model,
                encoder: index.encoder.into(),
                index_on_start: !no_index,
                student_dir: student,
                study,
                chat: chat.config(),
            };
            tokio::runtime::Runtime::new().context("starting the async runtime")?.block_on(crate::server::serve(config))
        }
        Command::Index { libraries, index: i } => index::index_folders(&libraries, &i.data_dir, &i.model, &i.encoder.into()),
    }
}

/// A flag that Ctrl-C raises: long jobs stop after the piece in hand and keep what is done.
/// Without a handler (one already installed), Ctrl-C simply ends the process.
fn cancel_on_ctrl_c() -> std::sync::Arc<std::sync::atomic::AtomicBool> {
    let cancel = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = cancel.clone();
    let _ = ctrlc::set_handler(move || flag.store(true, std::sync::atomic::Ordering::SeqCst));
    cancel
}

/// A progress bar on stderr (hidden when stderr is not a terminal).
fn progress_bar(len: u64, what: &str) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::new(len);
    let style = indicatif::ProgressStyle::with_template("{msg} {bar:40} {pos}/{len} ({per_sec}, eta {eta})")
        .expect("a valid progress template");
    bar.set_style(style);
    bar.set_message(what.to_string());
    bar
}

fn embed_text(texts: &[String], minilm_dir: &std::path::Path, backend: BackendKind, batch_size: usize) -> anyhow::Result<()> {
    let model = crate::encoders::load_minilm(minilm_dir, backend)?;
    let mut out = std::io::stdout().lock();
    for chunk in texts.chunks(batch_size) {
        let refs: Vec<&str> = chunk.iter().map(String::as_str).collect();
        for vector in model.embed(&refs)? {
            serde_json::to_writer(&mut out, &vector)?;
            writeln!(out)?;
        }
    }
    Ok(())
}
