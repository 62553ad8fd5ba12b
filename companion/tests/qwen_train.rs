//! The relsim recipe on the Qwen encoder (`relsim train --preset qwen-tiny`) with the tiny random
//! config tiny_a: the loss falls over 100 steps on 64 scene images, the adapter folder has PEFT's
//! layout and loads back, and a committed adapter trained this way gives, through our loader,
//! the embeddings HF peft gives (tests/fixtures/qwen/check_trained_adapter.py wrote them).

use std::path::{Path, PathBuf};
use std::process::Command;

use burn::backend::ndarray::{NdArray, NdArrayDevice};
use relsim_companion::qwen::relsim::{EncoderFiles, RelsimEncoder};
use relsim_shared::image::preprocess::{decode_rgb, PreprocessMode};
use relsim_shared::vectors::max_abs_diff;
use safetensors::SafeTensors;

fn relsim() -> Command {
    Command::new(env!("CARGO_BIN_EXE_relsim"))
}

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/qwen")
}

fn tokenizer() -> PathBuf {
    fixtures().join("tokenizer/tokenizer.json.gz")
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("relsim-qwen-train-test-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn mean(values: &[f64]) -> f64 {
    values.iter().sum::<f64>() / values.len() as f64
}

fn f32s(t: safetensors::tensor::TensorView<'_>) -> Vec<f32> {
    t.data().chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect()
}

#[test]
fn qwen_tiny_training_lowers_the_loss_and_writes_a_peft_adapter() {
    // 92 scenes: 64 train, 14 val, 14 test; 64x64 at their own size (4x4 patches) keep a
    // debug-build test to a minute.
    let data = temp_dir("scenes");
    let status = relsim().args(["scenes", "generate", "--families", "classic", "--objects", "0", "--count", "92", "--size", "64", "--seed", "7", "--out"]).arg(&data).status().unwrap();
    assert!(status.success());
    let run = temp_dir("run");
    let out = relsim()
        .args(["train", "--preset", "qwen-tiny", "--data"])
        .arg(&data)
        .arg("--out")
        .arg(&run)
        .arg("--base")
        .arg(fixtures().join("tiny_a"))
        .arg("--tokenizer")
        .arg(tokenizer())
        .args(["--preprocess", "native"])
        .output()
        .unwrap();
    assert!(out.status.success(), "relsim train failed: {}", String::from_utf8_lossy(&out.stderr));

    let losses: Vec<f64> = std::fs::read_to_string(run.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["loss"].as_f64().unwrap())
        .collect();
    assert_eq!(losses.len(), 100);
    let (first, last) = (mean(&losses[..10]), mean(&losses[90..]));
    eprintln!("qwen-tiny loss: first 10 steps {first:.3}, last 10 {last:.3}");
    assert!(last < first - 0.1, "the loss did not fall: {first:.3} -> {last:.3}");

    // The adapter: PEFT's config and key names, the resized table, the projection.
    let adapter = run.join("model");
    let config: serde_json::Value = serde_json::from_slice(&std::fs::read(adapter.join("adapter_config.json")).unwrap()).unwrap();
    assert_eq!((config["peft_type"].as_str(), config["r"].as_u64(), config["lora_alpha"].as_f64()), (Some("LORA"), Some(16), Some(32.0)));
    assert_eq!(config["lora_dropout"].as_f64(), Some(0.05));
    assert_eq!(config["target_modules"], serde_json::json!(["q_proj", "v_proj"]));
    let bytes = std::fs::read(adapter.join("adapter_model.safetensors")).unwrap();
    let tensors = SafeTensors::deserialize(&bytes).unwrap();
    let prefix = "base_model.model.model.language_model.";
    for layer in 0..2 {
        for module in ["q_proj", "v_proj"] {
            let a = tensors.tensor(&format!("{prefix}layers.{layer}.self_attn.{module}.lora_A.weight")).unwrap();
            let b = tensors.tensor(&format!("{prefix}layers.{layer}.self_attn.{module}.lora_B.weight")).unwrap();
            assert_eq!((a.shape(), b.shape()), (&[16, 8][..], &[8, 16][..]));
            assert!(f32s(b).iter().any(|v| *v != 0.0), "lora_B of layer {layer} {module} never left PEFT's zeros");
        }
    }
    assert_eq!(tensors.tensor(&format!("{prefix}embed_tokens.weight")).unwrap().shape(), &[151666, 8]);
    assert_eq!(tensors.names().len(), 2 * 2 * 2 + 1);

    // It loads as an adapter and embeds.
    let image = fixtures().join("images/blocks_196x140.png");
    let mut cmd = relsim();
    cmd.args(["embed-image", "--base"]).arg(fixtures().join("tiny_a")).arg("--adapter").arg(&adapter).arg("--tokenizer").arg(tokenizer());
    let out = cmd.arg(&image).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let line: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(line["embedding"].as_array().unwrap().len(), 384);

    // `relsim eval` reads the run (its adapter) and a step checkpoint (exported on the fly).
    for checkpoint in [run.clone(), run.join("checkpoints/step-0000050")] {
        let out = relsim().args(["eval", "--checkpoint"]).arg(&checkpoint).arg("--data").arg(&data).output().unwrap();
        assert!(out.status.success(), "eval of {}: {}", checkpoint.display(), String::from_utf8_lossy(&out.stderr));
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(stdout.contains("relsim-qwen") && stdout.contains("\"p_at_1\""), "{stdout}");
    }
    let _ = std::fs::remove_dir_all(&data);
    let _ = std::fs::remove_dir_all(&run);
}

#[test]
fn a_committed_trained_adapter_gives_the_embeddings_peft_gives() {
    let adapter: &Path = &fixtures().join("trained_tiny_a");
    let files = EncoderFiles { base: fixtures().join("tiny_a"), adapter: adapter.to_path_buf(), tokenizer: Some(tokenizer()), image_config: None };
    let encoder = RelsimEncoder::<NdArray<f32>>::load(&files, &NdArrayDevice::Cpu).unwrap();
    let bytes = std::fs::read(adapter.join("reference.safetensors")).unwrap();
    let reference = SafeTensors::deserialize(&bytes).unwrap();
    let images: Vec<String> = {
        let (_, meta) = SafeTensors::read_metadata(&bytes).unwrap();
        serde_json::from_str(&meta.metadata().as_ref().unwrap()["images"]).unwrap()
    };
    assert_eq!(images.len(), 4);
    for (i, name) in images.iter().enumerate() {
        let img = decode_rgb(&std::fs::read(fixtures().join("images").join(name)).unwrap(), name).unwrap();
        let ours = encoder.embed(&img, PreprocessMode::Native, name).unwrap();
        let diff = max_abs_diff(&ours, &f32s(reference.tensor(&format!("img{i}.embedding")).unwrap()));
        eprintln!("{name}: max |ours - peft| {diff:e}");
        assert!(diff <= 1e-4, "{name}: embeddings differ from peft's by {diff}");
    }
}
