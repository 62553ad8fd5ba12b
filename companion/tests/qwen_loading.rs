//! Loading the relsim encoder: the tokenizer with `<|query|>`, sharded checkpoints, and the
//! errors for a missing shard, a shape mismatch, a foreign adapter and an undecodable image.

use std::path::{Path, PathBuf};

use burn::backend::ndarray::{NdArray, NdArrayDevice};
use relsim_companion::qwen::config::QwenConfig;
use relsim_companion::qwen::prompt::{Prompt, EXPECTED_QUERY_ID};
use relsim_companion::qwen::relsim::{EncoderFiles, RelsimEncoder};
use relsim_shared::image::preprocess::PreprocessMode;
use safetensors::SafeTensors;

type B = NdArray<f32>;

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/qwen")
}

fn files(base: &Path, adapter: &Path) -> EncoderFiles {
    EncoderFiles {
        base: base.to_path_buf(),
        adapter: adapter.to_path_buf(),
        tokenizer: Some(fixtures().join("tokenizer/tokenizer.json.gz")),
        image_config: None,
    }
}

fn load(base: &Path, adapter: &Path) -> anyhow::Result<RelsimEncoder<B>> {
    RelsimEncoder::load(&files(base, adapter), &NdArrayDevice::Cpu)
}

/// A scratch copy of a fixture folder, removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn copy_of(name: &str, tag: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("relsim-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        for entry in std::fs::read_dir(fixtures().join(name)).unwrap().flatten() {
            if entry.path().is_file() {
                std::fs::copy(entry.path(), dir.join(entry.file_name())).unwrap();
            }
        }
        Self(dir)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Splits `dir/model.safetensors` into two shards with an index, as the hub stores big models.
fn shard(dir: &Path) {
    let bytes = std::fs::read(dir.join("model.safetensors")).unwrap();
    let tensors = SafeTensors::deserialize(&bytes).unwrap();
    let mut names: Vec<String> = tensors.names().into_iter().map(String::from).collect();
    names.sort();
    let half = names.len() / 2;
    let mut weight_map = serde_json::Map::new();
    for (i, part) in [&names[..half], &names[half..]].into_iter().enumerate() {
        let file = format!("model-{:05}-of-00002.safetensors", i + 1);
        let views: Vec<(String, safetensors::tensor::TensorView<'_>)> =
            part.iter().map(|n| (n.clone(), tensors.tensor(n).unwrap())).collect();
        std::fs::write(dir.join(&file), safetensors::serialize(views, None).unwrap()).unwrap();
        for n in part {
            weight_map.insert(n.clone(), file.clone().into());
        }
    }
    let index = serde_json::json!({ "metadata": {}, "weight_map": weight_map });
    std::fs::write(dir.join("model.safetensors.index.json"), index.to_string()).unwrap();
    std::fs::remove_file(dir.join("model.safetensors")).unwrap();
}

#[test]
fn token_ids_match_the_hf_tokenizer_with_the_real_vocabulary() {
    let prompt = Prompt::load(&fixtures().join("tokenizer/tokenizer.json.gz")).unwrap();
    assert_eq!(prompt.query_token_id, EXPECTED_QUERY_ID);
    let reference: serde_json::Value =
        serde_json::from_slice(&std::fs::read(fixtures().join("tokens.json")).unwrap()).unwrap();
    let cases = reference["cases"].as_array().unwrap();
    assert!(cases.len() >= 20);
    for case in cases {
        let text = case["text"].as_str().unwrap();
        let expected: Vec<u32> = serde_json::from_value(case["ids"].clone()).unwrap();
        let got = prompt.tokenizer.encode(text, false).unwrap().get_ids().to_vec();
        assert_eq!(got, expected, "{text:?}");
    }
}

#[test]
fn a_sharded_checkpoint_gives_the_same_embedding() {
    let scratch = Scratch::copy_of("tiny_b", "sharded");
    shard(&scratch.0);
    let adapter = fixtures().join("tiny_b/adapter");
    let sharded = load(&scratch.0, &adapter).unwrap();
    let single = load(&fixtures().join("tiny_b"), &adapter).unwrap();
    let img = image::RgbImage::from_fn(70, 98, |x, y| image::Rgb([(x * 3) as u8, (y * 2) as u8, ((x + y) % 256) as u8]));
    let a = sharded.embed(&img, PreprocessMode::Native, "synthetic").unwrap();
    let b = single.embed(&img, PreprocessMode::Native, "synthetic").unwrap();
    assert_eq!(a, b);
}

/// A hub config that the current transformers loaded and saved again (`text_config`,
/// `rope_parameters`, both `in_chans` and `in_channels`, keys we do not use): the same model.
#[test]
fn a_config_resaved_by_transformers_5_reads_like_the_hub_file() {
    let read = |name: &str| {
        let path = fixtures().join(name);
        QwenConfig::from_json(&std::fs::read_to_string(&path).unwrap(), &path.display().to_string())
    };
    assert_eq!(read("resaved_5x/config.json").unwrap(), read("tiny_a/config.json").unwrap());
    // And a checkpoint carrying it embeds as before.
    let scratch = Scratch::copy_of("tiny_a", "resaved");
    std::fs::copy(fixtures().join("resaved_5x/config.json"), scratch.0.join("config.json")).unwrap();
    let adapter = fixtures().join("tiny_a/adapter");
    let img = image::RgbImage::from_fn(56, 84, |x, y| image::Rgb([(x * 4) as u8, (y * 3) as u8, ((x * y) % 256) as u8]));
    let resaved = load(&scratch.0, &adapter).unwrap().embed(&img, PreprocessMode::Native, "synthetic").unwrap();
    let hub = load(&fixtures().join("tiny_a"), &adapter).unwrap().embed(&img, PreprocessMode::Native, "synthetic").unwrap();
    assert_eq!(resaved, hub);
    // Two spellings that disagree are an error naming both.
    let text = std::fs::read_to_string(fixtures().join("resaved_5x/config.json")).unwrap().replace("\"in_chans\": 3", "\"in_chans\": 4");
    let err = format!("{:#}", QwenConfig::from_json(&text, "resaved").unwrap_err());
    assert!(err.contains("`in_chans` 4 and `in_channels` 3 disagree"), "{err}");
}

#[test]
fn a_missing_shard_is_named() {
    let scratch = Scratch::copy_of("tiny_b", "missing-shard");
    shard(&scratch.0);
    std::fs::remove_file(scratch.0.join("model-00002-of-00002.safetensors")).unwrap();
    let err = format!("{:#}", load(&scratch.0, &fixtures().join("tiny_b/adapter")).err().unwrap());
    assert!(err.contains("model-00002-of-00002.safetensors") && err.contains("missing"), "{err}");
}

#[test]
fn a_config_weights_mismatch_names_the_key_and_both_shapes() {
    let scratch = Scratch::copy_of("tiny_b", "mismatch");
    let path = scratch.0.join("config.json");
    let mut config: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    config["vision_config"]["intermediate_size"] = 44.into();
    std::fs::write(&path, config.to_string()).unwrap();
    let err = format!("{:#}", load(&scratch.0, &fixtures().join("tiny_b/adapter")).err().unwrap());
    assert!(err.contains("model.visual.blocks.0.mlp.gate_proj.weight"), "{err}");
    assert!(err.contains("[44, 24]") && err.contains("[40, 24]"), "{err}");
}

#[test]
fn an_adapter_for_another_base_model_is_refused() {
    let err = format!("{:#}", load(&fixtures().join("tiny_b"), &fixtures().join("tiny_a/adapter")).err().unwrap());
    assert!(err.contains("another base model"), "{err}");
}

#[test]
fn an_undecodable_image_is_named() {
    let dir = std::env::temp_dir().join(format!("relsim-badimage-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let bad = dir.join("holiday.jpg");
    std::fs::write(&bad, b"\xff\xd8\xff\xe0 this is not really a jpeg").unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_relsim"))
        .args(["embed-image", "--base"])
        .arg(fixtures().join("tiny_b"))
        .arg("--adapter")
        .arg(fixtures().join("tiny_b/adapter"))
        .arg("--tokenizer")
        .arg(fixtures().join("tokenizer/tokenizer.json.gz"))
        .arg(&bad)
        .output()
        .unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("holiday.jpg") && !stderr.contains("panicked"), "{stderr}");
}
