//! Benchmarks: MiniLM throughput (`relsim bench text`), indexing and image encoders (`relsim
//! bench images`), Qwen loading and speed, search, scenes.

use std::path::Path;
use std::time::Instant;

use anyhow::Context;

use crate::backend::BackendKind;
use crate::stats::percentile;

/// The built-in corpora of `relsim bench text`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TextCorpus {
    /// The 61 MiniLM parity inputs: short captions to 256-token texts.
    Parity,
    /// The scene captions: 10-30 tokens, like the caption bank.
    Captions,
}

impl TextCorpus {
    /// The corpus' sentences.
    pub fn sentences(self) -> anyhow::Result<Vec<String>> {
        match self {
            TextCorpus::Parity => parity_sentences(&crate::paths::default_text_corpus()),
            TextCorpus::Captions => Ok(crate::explain::scene_captions()),
        }
    }
}

/// The texts of a MiniLM parity fixture (reference.json): short captions to 256-token texts.
fn parity_sentences(path: &Path) -> anyhow::Result<Vec<String>> {
    Ok(relsim_shared::text::minilm::read_reference(path)?.into_iter().map(|c| c.text).collect())
}

/// A user's corpus: a JSON array of strings.
pub fn sentences_file(path: &Path) -> anyhow::Result<Vec<String>> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let sentences: Vec<String> = serde_json::from_slice(&bytes).with_context(|| format!("{}: expected a JSON array of strings", path.display()))?;
    anyhow::ensure!(!sentences.is_empty(), "{}: no sentences", path.display());
    Ok(sentences)
}

/// The rate `pass` reports: one untimed pass, then the median of `passes` timed ones.
fn median_rate(passes: usize, mut pass: impl FnMut() -> anyhow::Result<f64>) -> anyhow::Result<f64> {
    pass()?;
    let mut rates = (0..passes.max(1)).map(|_| pass()).collect::<anyhow::Result<Vec<f64>>>()?;
    Ok(percentile(&mut rates, 0.5))
}

/// Sentences per second of `embed` over all of `sentences` in batches of `batch` (see
/// [`median_rate`]).
fn sentences_per_s(embed: &mut dyn FnMut(&[&str]) -> anyhow::Result<()>, sentences: &[String], batch: usize, passes: usize) -> anyhow::Result<f64> {
    let texts: Vec<&str> = sentences.iter().map(String::as_str).collect();
    median_rate(passes, || {
        let start = Instant::now();
        for chunk in texts.chunks(batch) {
            embed(chunk)?;
        }
        Ok(texts.len() as f64 / start.elapsed().as_secs_f64())
    })
}

/// What `relsim bench text` measured.
#[derive(Debug, serde::Serialize)]
pub struct TextBench {
    pub encoder: String,
    pub sentences: usize,
    pub batch1_sentences_per_s: f64,
    pub batch32_sentences_per_s: f64,
    pub peak_rss_bytes: u64,
}

/// MiniLM sentences/s at batch 1 and 32 over `sentences` (median of `passes` passes).
pub fn bench_text(minilm_dir: &Path, sentences: &[String], backend: BackendKind, passes: usize) -> anyhow::Result<TextBench> {
    let model = crate::encoders::load_minilm(minilm_dir, backend)?;
    let mut embed = |texts: &[&str]| -> anyhow::Result<()> {
        model.embed(texts)?;
        Ok(())
    };
    let batch1 = sentences_per_s(&mut embed, sentences, 1, passes)?;
    let batch32 = sentences_per_s(&mut embed, sentences, 32, passes)?;
    Ok(TextBench {
        encoder: format!("relsim MiniLM ({backend:?})"),
        sentences: sentences.len(),
        batch1_sentences_per_s: batch1,
        batch32_sentences_per_s: batch32,
        peak_rss_bytes: peak_rss_bytes()?,
    })
}

/// What `relsim bench images` measured.
#[derive(Debug, serde::Serialize)]
pub struct ImageBench {
    /// The relational model's id (as the index names it) and backend.
    pub encoder: String,
    pub images: usize,
    /// Indexing into a fresh data folder: read, hash, decode, embed, attribute descriptors,
    /// thumbnails, durable writes.
    pub index_images_per_s: f64,
    /// The bare encoder on decoded images, one at a time and 32 at a time.
    pub batch1_images_per_s: f64,
    pub batch32_images_per_s: f64,
    pub peak_rss_bytes: u64,
}

/// Images/s of indexing `folder` with `model` and of the bare encoder at batch 1 and 32: one
/// untimed pass each, then the median of `passes`.
pub fn bench_images(folder: &Path, model: &str, options: &crate::encoders::EncoderOptions, passes: usize) -> anyhow::Result<ImageBench> {
    use crate::library::{is_image_file, Indexer};
    let scratch = std::env::temp_dir().join(format!("relsim-bench-images-{}", std::process::id()));
    let cancel = std::sync::atomic::AtomicBool::new(false);
    let result = (|| -> anyhow::Result<ImageBench> {
        let mut images = 0;
        let index_rate = median_rate(passes, || {
            let _ = std::fs::remove_dir_all(&scratch);
            let (roots, encoder, mut store) = crate::library::open(&[folder.to_path_buf()], &scratch, model, options)?;
            let thumbnails = scratch.join("thumbnails");
            let started = Instant::now();
            let p = Indexer { roots: &roots, encoder: encoder.as_ref(), thumbnails: &thumbnails, cancel: &cancel }.run(&mut store, &mut |_, _| {})?;
            images = p.embedded;
            Ok(p.embedded as f64 / started.elapsed().as_secs_f64())
        })?;
        anyhow::ensure!(images > 0, "{}: no images to index", folder.display());

        let decoded: Vec<image::RgbImage> = walkdir::WalkDir::new(folder)
            .sort_by_file_name()
            .into_iter()
            .filter_map(Result::ok)
            .filter(|e| e.file_type().is_file() && is_image_file(e.path()))
            .filter_map(|e| std::fs::read(e.path()).ok().and_then(|bytes| relsim_shared::image::preprocess::decode_rgb(&bytes, &e.path().display().to_string()).ok()))
            .collect();
        let encoder = crate::encoders::by_name(model, options)?;
        let rate = |batch: usize| {
            median_rate(passes, || {
                let started = Instant::now();
                for chunk in decoded.chunks(batch) {
                    encoder.embed_batch(chunk)?;
                }
                Ok(decoded.len() as f64 / started.elapsed().as_secs_f64())
            })
        };
        Ok(ImageBench {
            encoder: format!("{} ({})", crate::encoders::model_id(model, options)?, options.backend.name()),
            images,
            index_images_per_s: index_rate,
            batch1_images_per_s: rate(1)?,
            batch32_images_per_s: rate(32)?,
            peak_rss_bytes: peak_rss_bytes()?,
        })
    })();
    let _ = std::fs::remove_dir_all(&scratch);
    result
}

fn synthetic_config(layers: usize, blocks: usize) -> serde_json::Value {
    serde_json::json!({
        "architectures": ["Qwen2_5_VLForConditionalGeneration"], "model_type": "qwen2_5_vl",
        "hidden_size": 3584, "intermediate_size": 18944, "num_hidden_layers": layers,
        "num_attention_heads": 28, "num_key_value_heads": 4, "rms_norm_eps": 1e-6, "rope_theta": 1000000.0,
        "rope_scaling": {"type": "mrope", "mrope_section": [16, 24, 24]}, "vocab_size": 152064,
        "tie_word_embeddings": true, "image_token_id": 151655, "vision_start_token_id": 151652, "vision_end_token_id": 151653,
        "vision_config": {"depth": blocks, "hidden_size": 1280, "intermediate_size": 3420, "num_heads": 16, "in_chans": 3,
            "out_hidden_size": 3584, "patch_size": 14, "spatial_merge_size": 2, "temporal_patch_size": 2,
            "window_size": 112, "fullatt_block_indexes": [7, 15, 23, 31]}
    })
}

/// Every tensor of the synthetic checkpoint in the hub layout: (key, shape).
fn synthetic_tensors(layers: usize, blocks: usize) -> Vec<(String, Vec<usize>)> {
    let (h, i, kv, v) = (3584, 18944, 512, 152064);
    let (c, ci) = (1280, 3420);
    let mut t: Vec<(String, Vec<usize>)> = vec![("model.embed_tokens.weight".into(), vec![v, h]), ("model.norm.weight".into(), vec![h])];
    for l in 0..layers {
        let p = format!("model.layers.{l}");
        for (name, shape) in [
            ("input_layernorm.weight", vec![h]), ("post_attention_layernorm.weight", vec![h]),
            ("self_attn.q_proj.weight", vec![h, h]), ("self_attn.q_proj.bias", vec![h]),
            ("self_attn.k_proj.weight", vec![kv, h]), ("self_attn.k_proj.bias", vec![kv]),
            ("self_attn.v_proj.weight", vec![kv, h]), ("self_attn.v_proj.bias", vec![kv]),
            ("self_attn.o_proj.weight", vec![h, h]), ("mlp.gate_proj.weight", vec![i, h]),
            ("mlp.up_proj.weight", vec![i, h]), ("mlp.down_proj.weight", vec![h, i]),
        ] {
            t.push((format!("{p}.{name}"), shape));
        }
    }
    t.push(("visual.patch_embed.proj.weight".into(), vec![c, 3, 2, 14, 14]));
    for b in 0..blocks {
        let p = format!("visual.blocks.{b}");
        for (name, shape) in [
            ("norm1.weight", vec![c]), ("norm2.weight", vec![c]), ("attn.qkv.weight", vec![3 * c, c]), ("attn.qkv.bias", vec![3 * c]),
            ("attn.proj.weight", vec![c, c]), ("attn.proj.bias", vec![c]), ("mlp.gate_proj.weight", vec![ci, c]),
            ("mlp.gate_proj.bias", vec![ci]), ("mlp.up_proj.weight", vec![ci, c]), ("mlp.up_proj.bias", vec![ci]),
            ("mlp.down_proj.weight", vec![c, ci]), ("mlp.down_proj.bias", vec![c]),
        ] {
            t.push((format!("{p}.{name}"), shape));
        }
    }
    for (name, shape) in [
        ("merger.ln_q.weight", vec![c]), ("merger.mlp.0.weight", vec![4 * c, 4 * c]), ("merger.mlp.0.bias", vec![4 * c]),
        ("merger.mlp.2.weight", vec![h, 4 * c]), ("merger.mlp.2.bias", vec![h]),
    ] {
        t.push((format!("visual.{name}"), shape));
    }
    t
}

/// A tensor of the synthetic checkpoint whose bytes are made when the writer asks for them, so a
/// 16 GB checkpoint is written holding one tensor at a time.
struct SyntheticTensor {
    shape: Vec<usize>,
    dtype: safetensors::Dtype,
    seed: u64,
    /// Norm gains sit near 1, everything else near 0.
    offset: f32,
}

impl safetensors::View for &SyntheticTensor {
    fn dtype(&self) -> safetensors::Dtype {
        self.dtype
    }
    fn shape(&self) -> &[usize] {
        &self.shape
    }
    fn data(&self) -> std::borrow::Cow<'_, [u8]> {
        let len: usize = self.shape.iter().product();
        // A cheap hash of (tensor, index): small values without a pattern the layers could align to.
        let value = |j: usize| {
            let h = (j as u64 ^ self.seed).wrapping_mul(0x9E37_79B9_7F4A_7C15);
            self.offset + (((h >> 40) % 97) as f32 - 48.0) * 1e-3
        };
        let bytes = match self.dtype {
            safetensors::Dtype::BF16 => (0..len).flat_map(|j| half::bf16::from_f32(value(j)).to_le_bytes()).collect(),
            _ => (0..len).flat_map(|j| value(j).to_le_bytes()).collect(),
        };
        std::borrow::Cow::Owned(bytes)
    }
    fn data_len(&self) -> usize {
        self.shape.iter().product::<usize>() * self.dtype.bitsize() / 8
    }
}

/// Writes the synthetic checkpoint (`dtype` F32 or BF16; shards of at most ~4 GB and an index,
/// as the hub has them) into `dir`; returns its weight bytes.
fn write_synthetic(dir: &Path, layers: usize, blocks: usize, dtype: safetensors::Dtype) -> anyhow::Result<u64> {
    const SHARD_BYTES: usize = 4_000_000_000;
    std::fs::create_dir_all(dir)?;
    std::fs::write(dir.join("config.json"), synthetic_config(layers, blocks).to_string())?;
    let tensors: Vec<(String, SyntheticTensor)> = synthetic_tensors(layers, blocks)
        .into_iter()
        .enumerate()
        .map(|(i, (key, shape))| {
            let offset = if key.contains("norm") || key.contains("ln_q") { 1.0 } else { 0.0 };
            (key, SyntheticTensor { shape, dtype, seed: (i as u64 + 1) << 32, offset })
        })
        .collect();
    let mut shards: Vec<Vec<&(String, SyntheticTensor)>> = vec![Vec::new()];
    let mut filled = 0;
    for tensor in &tensors {
        let bytes = safetensors::View::data_len(&&tensor.1);
        if filled > 0 && filled + bytes > SHARD_BYTES {
            shards.push(Vec::new());
            filled = 0;
        }
        filled += bytes;
        shards.last_mut().expect("one shard at least").push(tensor);
    }
    let mut weight_map = serde_json::Map::new();
    let mut total = 0u64;
    for (n, shard) in shards.iter().enumerate() {
        let file = format!("model-{:05}-of-{:05}.safetensors", n + 1, shards.len());
        safetensors::serialize_to_file(shard.iter().map(|(k, t)| (k.as_str(), t)), None, &dir.join(&file))
            .with_context(|| format!("writing {}", dir.join(&file).display()))?;
        for (k, t) in shard {
            total += safetensors::View::data_len(&t) as u64;
            weight_map.insert(k.clone(), file.clone().into());
        }
    }
    std::fs::write(dir.join("model.safetensors.index.json"), serde_json::json!({ "metadata": {"total_size": total}, "weight_map": weight_map }).to_string())?;
    Ok(total)
}

fn peak_rss_bytes() -> anyhow::Result<u64> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).context("no VmHWM in /proc/self/status")?;
    let kb: u64 = line.split_whitespace().nth(1).context("VmHWM")?.parse()?;
    Ok(kb * 1024)
}

/// The 448x448 input of the Qwen benchmarks: a synthetic 640x480 picture under train
/// preprocessing (the square relsim was trained on).
fn synthetic_pixels() -> anyhow::Result<relsim_shared::image::preprocess::PixelValues> {
    use relsim_shared::image::preprocess::{preprocess, PreprocessMode, QwenImageConfig};
    let image = image::RgbImage::from_fn(640, 480, |x, y| image::Rgb([(x % 256) as u8, (y % 256) as u8, ((x + y) % 256) as u8]));
    Ok(preprocess(&image, PreprocessMode::Train, &QwenImageConfig::default(), "synthetic")?)
}

/// Loads the checkpoint in `dir` on the CPU (this process does nothing else) and prints peak RSS
/// as JSON. With `embed`, the weights stay bf16 as stored (burn-flex) and one 448x448 image goes
/// through both towers (a random projection; the prompt from `embed`'s tokenizer).
pub fn probe_load(dir: &Path, embed: Option<&Path>) -> anyhow::Result<()> {
    use relsim_shared::weights::Weights;
    let precision = if embed.is_some() { crate::backend::Precision::Bf16 } else { crate::backend::Precision::F32 };
    crate::backend::with_float_backend!(BackendKind::Ndarray, precision, |device: B| {
        let start = Instant::now();
        let (config, vision, language) = crate::qwen::relsim::load_base::<B>(dir, &device)?;
        let seconds = start.elapsed().as_secs_f64();
        let loaded_rss = peak_rss_bytes()?;
        let mut report = serde_json::json!({ "peak_rss_bytes": loaded_rss, "seconds": seconds });
        if let Some(tokenizer) = embed {
            let prompt = crate::qwen::prompt::Prompt::load(tokenizer)?;
            let projection = crate::qwen::relsim::RandomWeights.linear("projection", config.text.hidden_size, 384, true, &device)?;
            let pixels = synthetic_pixels()?;
            let plans = crate::qwen::relsim::GridPlans::default();
            let towers = crate::qwen::relsim::Towers { config: &config, prompt: &prompt, vision: &vision, language: &language, projection: &projection, plans: &plans };
            let embed_start = Instant::now();
            let embedding = towers.embed_group(&[&pixels], None, &device).into_data().convert::<f32>().into_vec::<f32>().map_err(|e| anyhow::anyhow!("{e:?}"))?;
            let embed_seconds = embed_start.elapsed().as_secs_f64();
            anyhow::ensure!(embedding.iter().all(|v| v.is_finite()), "non-finite embedding");
            report = serde_json::json!({ "peak_rss_bytes": peak_rss_bytes()?, "loaded_rss_bytes": loaded_rss, "seconds": seconds,
                "seconds_per_image": embed_seconds, "patches": pixels.rows });
        }
        println!("{report}");
        Ok(())
    })
}

/// Writes a synthetic checkpoint in the real layout (7B widths; `full`: all 28 layers and 32
/// blocks in bf16, ~16 GB, else a few layers in f32), loads it in a fresh process and reports
/// peak memory against the weights' size; `full` also embeds one image on the CPU in bf16.
pub fn bench_load(dir: &Path, layers: usize, blocks: usize, full: Option<&Path>) -> anyhow::Result<()> {
    let (layers, blocks, dtype) = match full {
        Some(_) => (28, 32, safetensors::Dtype::BF16),
        None => (layers, blocks, safetensors::Dtype::F32),
    };
    let start = Instant::now();
    let total = write_synthetic(dir, layers, blocks, dtype)?;
    println!(
        "synthetic checkpoint: {} ({:.2} GB of {dtype:?} weights, {layers} layers, {blocks} vision blocks, hub layout), written in {:.0} s",
        dir.display(),
        total as f64 / 1e9,
        start.elapsed().as_secs_f64()
    );
    let mut probe = std::process::Command::new(std::env::current_exe()?);
    probe.args(["bench", "load", "--probe"]).arg(dir);
    if let Some(tokenizer) = full {
        probe.arg("--tokenizer").arg(tokenizer).arg("--full");
    }
    let out = probe.output().context("starting the loading probe")?;
    if !out.status.success() {
        anyhow::bail!("the loading probe failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).context("reading the probe's report")?;
    let peak = report["peak_rss_bytes"].as_u64().unwrap_or(0);
    let bar = if full.is_some() { 1.25 } else { 1.3 };
    println!(
        "load: {:.1} s, peak RSS {:.2} GB = {:.3} x the weights' size (bar: {bar})",
        report["seconds"].as_f64().unwrap_or(0.0),
        peak as f64 / 1e9,
        peak as f64 / total as f64
    );
    if full.is_some() {
        println!(
            "embed: {:.1} s per 448x448 image ({} patches) on the CPU in bf16; RSS after loading {:.2} GB",
            report["seconds_per_image"].as_f64().unwrap_or(0.0),
            report["patches"],
            report["loaded_rss_bytes"].as_u64().unwrap_or(0) as f64 / 1e9
        );
    }
    Ok(())
}

/// The records of `split` of the scene set in `data` and their images, decoded in parallel.
fn split_images(data: &Path, split: crate::scenes::Split) -> anyhow::Result<(Vec<crate::scenes::Record>, Vec<image::RgbImage>)> {
    use rayon::prelude::*;
    let records = crate::scenes::generate::read_records(data, Some(split))?;
    let images = records
        .par_iter()
        .map(|r| {
            let path = data.join("images").join(format!("{}.png", r.image_hash));
            let bytes = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
            Ok(relsim_shared::image::preprocess::decode_rgb(&bytes, &path.display().to_string())?)
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    Ok((records, images))
}

/// `relsim bench relational`: each encoder's retrieval metrics on one split of a scene set,
/// as a table on stdout and a JSON report at `json`.
pub fn bench_relational(data: &Path, split: crate::scenes::Split, encoders: &[String], options: &crate::encoders::EncoderOptions, json: &Path) -> anyhow::Result<()> {
    let (records, images) = split_images(data, split)?;
    anyhow::ensure!(records.len() >= 2, "{} has {} {} images; the benchmark needs at least 2", data.display(), records.len(), split.name());
    let relations: std::collections::BTreeSet<&str> = records.iter().map(|r| r.relation.as_str()).collect();
    let mut rows = Vec::new();
    let mut report = Vec::new();
    for name in encoders {
        let encoder = crate::encoders::by_name(name, options)?;
        let started = Instant::now();
        let embeddings = encoder.embed_batch(&images).with_context(|| format!("embedding with `{name}`"))?;
        let seconds = started.elapsed().as_secs_f64();
        let metrics = crate::scenes::bench::evaluate(&embeddings, &records);
        report.push(serde_json::json!({ "encoder": name, "metrics": metrics, "embed_seconds": seconds }));
        rows.push((name.clone(), metrics));
    }
    println!("relational retrieval: {} split of {}, {} images, {} relations", split.name(), data.display(), records.len(), relations.len());
    print!("{}", crate::scenes::bench::table(&rows));
    print!("{}", crate::scenes::bench::breakdown_table(&rows));
    let doc = serde_json::json!({ "data": data.display().to_string(), "split": split.name(), "images": records.len(), "relations": relations.len(), "results": report });
    crate::files::write_atomically(json, &serde_json::to_vec_pretty(&doc)?)?;
    println!("report: {}", json.display());
    Ok(())
}

/// `relsim bench compose`: composite queries (image + another idea's caption) on a two-idea
/// split, per encoder, beside the image alone and the caption alone; table and JSON report.
pub fn bench_compose(data: &Path, split: crate::scenes::Split, encoders: &[String], options: &crate::encoders::EncoderOptions, minilm_dir: &Path, json: &Path) -> anyhow::Result<()> {
    let (records, images) = split_images(data, split)?;
    anyhow::ensure!(
        records.iter().any(|r| r.second_relation.is_some()),
        "{} has no two-idea scenes in its {} split: make it with `relsim scenes generate --multi`",
        data.display(),
        split.name()
    );
    let minilm = crate::encoders::load_minilm(minilm_dir, options.backend)?;
    let families = crate::scenes::generate::Families::Pairs.relations();
    let texts: Vec<&str> = families.iter().map(|r| r.evaluation_caption()).collect();
    let captions = families.iter().map(|r| r.name().to_string()).zip(minilm.embed(&texts)?).collect();
    println!("composite queries: {} split of {}, {} images; image + another idea's evaluation-only caption (weights 1, 1)", split.name(), data.display(), records.len());
    println!(
        "{:<12} {:>8} | {:>27} | {:>27} | {:>23} | {:>19}",
        "", "", "best hit shows added idea", "shows arrangement + idea", "added idea in top 10", "own idea in top 10"
    );
    println!(
        "{:<12} {:>8} | {:>8} {:>8} {:>9} | {:>8} {:>8} {:>9} | {:>7} {:>7} {:>7} | {:>6} {:>6} {:>5}",
        "encoder", "queries", "image", "+idea", "caption", "image", "+idea", "caption", "image", "+idea", "gain", "image", "-own", "drop"
    );
    let mut report = Vec::new();
    for name in encoders {
        let encoder = crate::encoders::by_name(name, options)?;
        let embeddings = encoder.embed_batch(&images).with_context(|| format!("embedding with `{name}`"))?;
        let m = crate::scenes::bench::evaluate_compose(&embeddings, &records, &captions).with_context(|| format!("encoder `{name}`"))?;
        println!(
            "{:<12} {:>8} | {:>8.3} {:>8.3} {:>9.3} | {:>8.3} {:>8.3} {:>9.3} | {:>7.3} {:>7.3} {:>+7.3} | {:>6.3} {:>6.3} {:>+5.2}",
            name,
            m.queries,
            m.named_p1_image,
            m.named_p1_composed,
            m.named_p1_caption,
            m.both_p1_image,
            m.both_p1_composed,
            m.both_p1_caption,
            m.added_top10_image,
            m.added_top10_composed,
            m.added_top10_composed - m.added_top10_image,
            m.own_top10_image,
            m.own_top10_without,
            m.own_top10_without - m.own_top10_image
        );
        report.push(serde_json::json!({ "encoder": name, "metrics": m }));
    }
    let doc = serde_json::json!({ "data": data.display().to_string(), "split": split.name(), "images": records.len(), "results": report });
    crate::files::write_atomically(json, &serde_json::to_vec_pretty(&doc)?)?;
    println!("report: {}", json.display());
    Ok(())
}

/// `relsim bench scenes`: generation speed, scenes written as PNG files per second, on all
/// cores beside one core (the baseline), and rendering alone on one core, per family too.
pub fn bench_scenes(count: usize, set: &crate::scenes::generate::SceneSet) -> anyhow::Result<()> {
    use crate::scenes::generate::{generate, render};
    let dir = std::env::temp_dir().join(format!("relsim-bench-scenes-{}", std::process::id()));
    let run = |threads: usize| -> anyhow::Result<f64> {
        let _ = std::fs::remove_dir_all(&dir);
        let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build()?;
        let started = Instant::now();
        pool.install(|| generate(&dir, count, set, &|| ()))?;
        Ok(count as f64 / started.elapsed().as_secs_f64())
    };
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let one = run(1)?;
    let all = run(cores)?;
    let _ = std::fs::remove_dir_all(&dir);
    let kinds = set.families.kinds();
    let mut per_family = vec![0.0f64; kinds];
    let started = Instant::now();
    for index in 0..count {
        let (spec, mut rng) = set.spec(index);
        let drawn = Instant::now();
        std::hint::black_box(render(&spec, &mut rng, set.size));
        per_family[index % kinds] += drawn.elapsed().as_secs_f64();
    }
    let render_only = count as f64 / started.elapsed().as_secs_f64();
    let size = set.size;
    println!(
        "scene generation, {count} scenes of {size}x{size} ({} families, real objects in {:.0}% where the idea allows), written as PNG:",
        set.families.name(),
        set.objects * 100.0
    );
    println!("  {cores} threads: {all:8.1} images/s  ({:.2}x the 1-thread baseline)", all / one);
    println!("  1 thread:  {one:8.1} images/s");
    println!("  rendering only, 1 thread: {render_only:8.1} images/s");
    let per_scene = count as f64 / kinds as f64;
    let mut slowest: Vec<(f64, String)> = per_family.iter().enumerate().map(|(k, t)| (per_scene / t.max(1e-9), set.families.label(k))).collect();
    slowest.sort_by(|a, b| a.0.total_cmp(&b.0));
    let list: Vec<String> = slowest.iter().take(3).map(|(rate, name)| format!("{name} {rate:.0}/s")).collect();
    println!("  slowest families to render, 1 thread: {}", list.join(", "));
    Ok(())
}

/// `relsim bench qwen-speed`: images/s of the relsim encoder at a given model shape, random weights.
pub struct QwenSpeed {
    pub backend: BackendKind,
    pub precision: crate::backend::Precision,
    pub layers: usize,
    pub blocks: usize,
    pub batches: Vec<usize>,
    pub seconds: f64,
    pub tokenizer: std::path::PathBuf,
    /// A config.json to time instead of the 7B shape.
    pub config: Option<std::path::PathBuf>,
}

/// Times the encoder (vision tower, decoder, projection; pixels uploaded and embeddings read back
/// each call; preprocessing excluded, as in the transformers script beside it) at each batch size.
pub fn bench_qwen_speed(spec: &QwenSpeed) -> anyhow::Result<()> {
    let config = match &spec.config {
        Some(path) => crate::qwen::config::QwenConfig::read(path)?,
        None => crate::qwen::config::QwenConfig::from_json(&synthetic_config(spec.layers, spec.blocks).to_string(), "the Qwen2.5-VL-7B shape")?,
    };
    let pixels = synthetic_pixels()?;
    crate::backend::with_float_backend!(spec.backend, spec.precision, |device: B| {
        let start = Instant::now();
        let encoder = crate::qwen::relsim::RelsimEncoder::<B>::random(config, &spec.tokenizer, 16, &device)?;
        println!(
            "qwen-speed: {} decoder layers, {} vision blocks, {:?} {:?}, 448x448 images ({} patches), model built in {:.1} s",
            spec.layers, spec.blocks, spec.backend, spec.precision, pixels.rows, start.elapsed().as_secs_f64()
        );
        for &batch in &spec.batches {
            let inputs = vec![pixels.clone(); batch];
            // The first call compiles and tunes kernels on a GPU backend (the cost a user waits
            // for once per shape); the second shows what is left once they are cached.
            let [first, second] = [0, 1].map(|_| {
                let t = Instant::now();
                encoder.embed_pixels(&inputs).map(|_| t.elapsed().as_secs_f64())
            });
            let (first, second) = (first?, second?);
            let warm = first + second;
            let mut times = Vec::new();
            let start = Instant::now();
            while times.len() < 3 || start.elapsed().as_secs_f64() < spec.seconds {
                let t = Instant::now();
                let out = encoder.embed_pixels(&inputs)?;
                anyhow::ensure!(out.iter().all(|v| v.iter().all(|x| x.is_finite())), "non-finite embedding");
                times.push(t.elapsed().as_secs_f64());
            }
            times.sort_by(f64::total_cmp);
            let median = times[times.len() / 2];
            println!(
                "{}",
                serde_json::json!({"engine": "relsim (burn)", "backend": format!("{:?}", spec.backend).to_lowercase(),
                    "precision": format!("{:?}", spec.precision).to_lowercase(), "batch": batch, "calls": times.len(),
                    "median_s": median, "images_per_s": batch as f64 / median, "warmup_s": warm,
                    "first_s": first, "second_s": second})
            );
        }
        Ok(())
    })
}

/// `relsim bench generate`: Qwen2.5-VL text generation with random weights, greedy, one chat of
/// one 448x448 image and a question: the prompt's time and decoded tokens/s.
pub struct GenerateSpeed {
    pub backend: BackendKind,
    /// The model's config.json (e.g. tests/bench/generate_mid.json).
    pub config: std::path::PathBuf,
    pub tokenizer: std::path::PathBuf,
    /// New tokens per run (no stop token ends it early).
    pub tokens: usize,
    /// Timed runs after one untimed one (the median is reported).
    pub runs: usize,
}

/// Times prefill and decoding (one untimed run, then the median of `runs`), and prints one JSON line.
pub fn bench_generate(spec: &GenerateSpeed) -> anyhow::Result<()> {
    use crate::qwen::chat::ChatMessage;
    use crate::qwen::generate::{GenerateOptions, Generator, Sampling};
    anyhow::ensure!(spec.tokens >= 2 && spec.runs >= 1, "at least 2 tokens and 1 run");
    let config = crate::qwen::config::QwenConfig::read(&spec.config)?;
    let image = image::RgbImage::from_fn(448, 448, |x, y| image::Rgb([(x % 256) as u8, (y % 256) as u8, ((x + y) % 256) as u8]));
    crate::backend::with_backend!(spec.backend, |device: B| {
        let generator = Generator::<B>::random(config, &spec.tokenizer, &device)?;
        let chat = [ChatMessage::user_with_images(vec![image], "Describe the relational logic of this image.")];
        let prompt = generator.prepare(&chat)?;
        let options = GenerateOptions { max_new_tokens: spec.tokens, sampling: Sampling::Greedy, stop_tokens: Some(Vec::new()), repetition_penalty: 1.0 };
        let mut runs = Vec::new();
        for run in 0..=spec.runs {
            let start = Instant::now();
            let mut first = None;
            let out = generator.generate(&prompt, &options, |_| {
                first.get_or_insert_with(|| start.elapsed().as_secs_f64());
                true
            })?;
            anyhow::ensure!(out.tokens.len() == spec.tokens, "generation ended early");
            let total = start.elapsed().as_secs_f64();
            let prefill = first.unwrap_or(total);
            if run > 0 {
                runs.push((prefill, (spec.tokens - 1) as f64 / (total - prefill)));
            }
        }
        let median = |mut v: Vec<f64>| {
            v.sort_by(f64::total_cmp);
            v[v.len() / 2]
        };
        println!(
            "{}",
            serde_json::json!({"engine": "relsim (burn)", "backend": format!("{:?}", spec.backend).to_lowercase(),
                "config": spec.config.display().to_string(), "prompt_tokens": prompt.input_ids.len(), "new_tokens": spec.tokens,
                "runs": spec.runs, "prefill_s": median(runs.iter().map(|r| r.0).collect()),
                "decode_tokens_per_s": median(runs.iter().map(|r| r.1).collect())})
        );
        Ok(())
    })
}

/// `relsim bench search`: exact top-k over many vectors, int8 scan with exact re-ranking
/// (codes in memory, f32 originals memory-mapped) beside a plain in-memory f32 scan.
pub fn bench_search(count: usize, dim: usize, queries: usize, k: usize, dir: &Path) -> anyhow::Result<()> {
    use rand::{Rng, SeedableRng};
    use rayon::prelude::*;
    use relsim_shared::vectors::{dot, exact_top_k, l2_normalize, top_k, Int8Rows};
    use std::io::Write;

    anyhow::ensure!(count > 0 && dim > 0 && queries > 0 && k > 0, "counts must be positive");
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let file = dir.join(format!("vectors-{count}x{dim}.f32"));
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
    // Clustered like real embeddings (many near-ties at the top), not uniform noise.
    let centres: Vec<Vec<f32>> = (0..1000).map(|_| (0..dim).map(|_| rng.random_range(-1.0f32..1.0)).collect()).collect();
    let row = |rng: &mut rand_chacha::ChaCha8Rng| -> Vec<f32> {
        let c = &centres[rng.random_range(0..centres.len())];
        let mut v: Vec<f32> = c.iter().map(|x| x + rng.random_range(-0.6f32..0.6)).collect();
        l2_normalize(&mut v);
        v
    };
    let started = Instant::now();
    let mut rows = Int8Rows::with_capacity(dim, count);
    {
        let mut out = std::io::BufWriter::new(std::fs::File::create(&file).with_context(|| format!("creating {}", file.display()))?);
        for _ in 0..count {
            let v = row(&mut rng);
            rows.push(&v);
            for x in &v {
                out.write_all(&x.to_le_bytes())?;
            }
        }
        out.flush()?;
    }
    eprintln!("{count} x {dim} vectors written and quantised in {:.1} s", started.elapsed().as_secs_f64());
    // The f32 originals stay on disk: the few rows re-scored per query are read with pread
    // (a memory map would pull whole neighbourhoods of pages into the process).
    let originals = std::fs::File::open(&file).with_context(|| format!("opening {}", file.display()))?;
    let original = |i: usize| -> Vec<f32> {
        use std::os::unix::fs::FileExt;
        let mut bytes = vec![0u8; dim * 4];
        originals.read_exact_at(&mut bytes, (i * dim * 4) as u64).expect("reading a row back from the vector file");
        bytes.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect()
    };
    let query_vectors: Vec<Vec<f32>> = (0..queries).map(|_| row(&mut rng)).collect();
    let threads = rayon::current_num_threads();
    let chunk = count.div_ceil(threads * 4);
    let mut ours = Vec::new();
    let mut ours_results = Vec::new();
    let mut rescored = Vec::new();
    let (mut lo, mut hi) = (vec![0f32; count], vec![0f32; count]);
    for q in &query_vectors {
        let t = Instant::now();
        let quantised = rows.query(q);
        lo.par_chunks_mut(chunk).zip(hi.par_chunks_mut(chunk)).enumerate().for_each(|(c, (lo, hi))| rows.bounds(&quantised, c * chunk, lo, hi));
        let (best, scored) = exact_top_k(&lo, &hi, k, |i| dot(q, &original(i)));
        ours.push(t.elapsed().as_secs_f64() * 1e3);
        ours_results.push(best);
        rescored.push(scored as f64);
    }
    let peak_ours = peak_rss_bytes()?;
    drop(originals);

    // The baseline: every vector as f32 in memory, scanned in full.
    let t = Instant::now();
    let bytes = std::fs::read(&file).with_context(|| format!("reading {}", file.display()))?;
    let all: Vec<f32> = bytes.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect();
    drop(bytes);
    eprintln!("baseline loaded in {:.1} s", t.elapsed().as_secs_f64());
    let mut plain = Vec::new();
    let mut scores = vec![0f32; count];
    let mut mismatches = 0;
    for (q, expected) in query_vectors.iter().zip(&ours_results) {
        let t = Instant::now();
        scores.par_chunks_mut(chunk).enumerate().for_each(|(c, out)| {
            for (i, s) in out.iter_mut().enumerate() {
                let r = c * chunk + i;
                *s = dot(q, &all[r * dim..(r + 1) * dim]);
            }
        });
        let best = top_k(&scores, k);
        plain.push(t.elapsed().as_secs_f64() * 1e3);
        if best.iter().map(|b| b.0).collect::<Vec<_>>() != expected.iter().map(|b| b.0).collect::<Vec<_>>() {
            mismatches += 1;
        }
    }
    let peak_all = peak_rss_bytes()?;
    let (o50, o99) = (percentile(&mut ours, 0.5), percentile(&mut ours, 0.99));
    let (p50, p99) = (percentile(&mut plain, 0.5), percentile(&mut plain, 0.99));
    let mb = |b: u64| b as f64 / (1 << 20) as f64;
    println!("exact top-{k} over {count} x {dim} vectors, {queries} queries, {threads} threads");
    println!("{:<34} {:>9} {:>9} {:>14}", "", "p50 ms", "p99 ms", "peak RSS MiB");
    println!("{:<34} {:>9.1} {:>9.1} {:>14.0}", "int8 scan + exact re-rank (ours)", o50, o99, mb(peak_ours));
    println!("{:<34} {:>9.1} {:>9.1} {:>14.0}", "plain f32 scan (in memory)", p50, p99, mb(peak_all));
    println!(
        "ours / plain p50: {:.2}; rows re-scored exactly per query: median {:.0}; top-{k} lists differing from the f32 scan: {mismatches} of {queries}",
        o50 / p50,
        percentile(&mut rescored, 0.5)
    );
    println!(
        "{}",
        serde_json::json!({ "vectors": count, "dim": dim, "k": k, "queries": queries,
            "ours": { "p50_ms": o50, "p99_ms": o99, "peak_rss_mib": mb(peak_ours), "index_mib": mb(rows.bytes() as u64) },
            "plain_f32": { "p50_ms": p50, "p99_ms": p99, "peak_rss_mib": mb(peak_all) },
            "mismatches": mismatches })
    );
    let _ = std::fs::remove_file(&file);
    Ok(())
}

