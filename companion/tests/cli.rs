//! The `relsim` binary as a user runs it: help, embed-text output, errors, and `serve`.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Command, Stdio};

fn relsim() -> Command {
    Command::new(env!("CARGO_BIN_EXE_relsim"))
}

fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn reference_embedding(text: &str) -> Vec<f32> {
    let path = workspace().join("tests/fixtures/minilm/reference.json");
    let reference: serde_json::Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    let case = reference["cases"].as_array().unwrap().iter().find(|c| c["text"] == text).unwrap();
    serde_json::from_value(case["embedding"].clone()).unwrap()
}

#[test]
fn every_subcommand_has_help() {
    for args in [
        &["--help"][..],
        &["embed-text", "--help"],
        &["embed-image", "--help"],
        &["score", "--help"],
        &["serve", "--help"],
        &["index", "--help"],
        &["bench", "search", "--help"],
        &["bench", "serve", "--help"],
        &["bench", "--help"],
        &["bench", "text", "--help"],
        &["bench", "relational", "--help"],
        &["bench", "scenes", "--help"],
        &["scenes", "generate", "--help"],
        &["scenes", "sheet", "--help"],
        &["train", "--help"],
        &["eval", "--help"],
        &["caption", "--help"],
        &["filter", "--help"],
        &["judge", "--help"],
        &["bench", "generate", "--help"],
    ] {
        let out = relsim().args(args).output().unwrap();
        assert!(out.status.success(), "relsim {args:?} failed");
        let text = String::from_utf8(out.stdout).unwrap();
        assert!(text.contains("Usage:"), "relsim {args:?}: {text}");
    }
}

/// `relsim bench text` on a user's corpus: one JSON line with the rates and the peak memory; the
/// built-in corpora can be printed for other encoders; a file that is not an array of strings is
/// named in the error.
#[test]
fn bench_text_times_a_users_sentences() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("mine.json");
    std::fs::write(&file, r#"["a red apple among green ones", "one cup filling up", "stages of a plant"]"#).unwrap();
    let out = relsim().args(["bench", "text", "--backend", "ndarray", "--passes", "1", "--json", "--sentences"]).arg(&file).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let line: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(line["sentences"], 3);
    for key in ["batch1_sentences_per_s", "batch32_sentences_per_s", "peak_rss_bytes"] {
        assert!(line[key].as_f64().is_some_and(|v| v > 0.0), "{key}: {line}");
    }
    let out = relsim().args(["bench", "text", "--print-sentences", "--corpus", "captions"]).output().unwrap();
    let captions: Vec<String> = serde_json::from_slice(&out.stdout).unwrap();
    assert!(captions.len() >= 30 && captions.iter().all(|c| c.split_whitespace().count() <= 30), "{captions:?}");
    std::fs::write(&file, r#"{"not": "a list"}"#).unwrap();
    let out = relsim().args(["bench", "text", "--sentences"]).arg(&file).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && stderr.contains("mine.json") && stderr.contains("JSON array of strings"), "{stderr}");
}

/// MiniLM on burn-flex, the faster CPU backend: every parity input within 2e-5 of
/// sentence-transformers, as on ndarray.
#[test]
fn embed_text_on_flex_matches_sentence_transformers() {
    let path = workspace().join("tests/fixtures/minilm/reference.json");
    let reference: serde_json::Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    let texts: Vec<&str> = reference["cases"].as_array().unwrap().iter().map(|c| c["text"].as_str().unwrap()).collect();
    let out = relsim().args(["embed-text", "--backend", "flex", "--batch-size", "16"]).args(&texts).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8(out.stdout).unwrap();
    let mut worst = 0f32;
    for (line, text) in stdout.lines().zip(&texts) {
        let vector: Vec<f32> = serde_json::from_str(line).unwrap();
        worst = worst.max(relsim_shared::vectors::max_abs_diff(&vector, &reference_embedding(text)));
    }
    assert_eq!(stdout.lines().count(), texts.len());
    assert!(worst <= 2e-5, "flex: {worst}");
}

#[test]
fn embed_text_prints_one_json_array_per_input() {
    let texts = ["A cat sits on the mat.", "growth stages of {subject} from left to right", "😀"];
    let out = relsim().arg("embed-text").args(texts).arg("--batch-size").arg("2").output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), texts.len());
    for (line, text) in lines.iter().zip(texts) {
        let vector: Vec<f32> = serde_json::from_str(line).unwrap();
        assert_eq!(vector.len(), 384);
        let diff = relsim_shared::vectors::max_abs_diff(&vector, &reference_embedding(text));
        assert!(diff <= 2e-5, "{text:?}: {diff}");
    }
}

#[test]
fn a_missing_model_folder_is_a_clear_error_not_a_panic() {
    let out = relsim().args(["embed-text", "hello", "--minilm-dir", "/nonexistent/minilm"]).output().unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(stderr.contains("/nonexistent/minilm/config.json"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");

    let out = relsim().args(["serve", "--port", "0", "--minilm-dir", "/nonexistent/minilm"]).output().unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(stderr.contains("/nonexistent/minilm") && stderr.contains("cargo xtask setup"), "{stderr}");
}

fn get(addr: &str, path: &str, token: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).unwrap();
    write!(stream, "GET {path} HTTP/1.1\r\nHost: {addr}\r\nX-Relsim-Token: {token}\r\nConnection: close\r\n\r\n").unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).unwrap();
    let text = String::from_utf8_lossy(&response).into_owned();
    let status = text.split_whitespace().nth(1).unwrap().parse().unwrap();
    (status, text)
}

#[test]
fn serve_binds_loopback_and_serves_the_page_and_the_model() {
    let data = tempfile::tempdir().unwrap();
    let mut child = relsim().args(["serve", "--port", "0", "--data-dir"]).arg(data.path()).stdout(Stdio::piped()).stderr(Stdio::null()).spawn().unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let url = line.trim().strip_prefix("relsim is serving on ").unwrap_or_else(|| panic!("{line}")).to_string();
    let (addr, token) = url.trim_start_matches("http://").split_once("/?token=").unwrap_or_else(|| panic!("{url}"));
    let (addr, token) = (addr.to_string(), token.to_string());
    let checks = || {
        assert!(addr.starts_with("127.0.0.1:"), "{addr}");
        assert_eq!(token.len(), 32, "{token}");
        let (status, body) = get(&addr, "/api/health", "");
        assert_eq!(status, 200, "{body}");
        let (status, body) = get(&addr, "/api/models/minilm", &token);
        assert_eq!(status, 200);
        for file in ["config.json", "tokenizer.json", "model.safetensors", "1_Pooling/config.json"] {
            assert!(body.contains(file), "{body}");
        }
        assert_eq!(get(&addr, "/api/models/minilm", "wrong").0, 401);
        let (status, body) = get(&addr, "/", &token);
        assert_eq!(status, 200);
        assert!(body.contains("/pkg/relsim_web.js"), "{body}");
        let (status, _) = get(&addr, "/models/minilm/1_Pooling/config.json", &token);
        assert_eq!(status, 200);
        let (status, _) = get(&addr, "/models/minilm/../../Cargo.toml", &token);
        assert_ne!(status, 200, "path traversal must not escape the model folder");
    };
    let result = std::panic::catch_unwind(checks);
    let _ = child.kill();
    let _ = child.wait();
    result.unwrap();
}

fn qwen_args(cmd: &mut Command) -> &mut Command {
    let q = workspace().join("tests/fixtures/qwen");
    cmd.arg("--base").arg(q.join("tiny_b")).arg("--adapter").arg(q.join("tiny_b/adapter"));
    cmd.arg("--tokenizer").arg(q.join("tokenizer/tokenizer.json.gz"))
}

#[test]
fn embed_image_prints_json_lines_and_a_batch_equals_single_images() {
    let q = workspace().join("tests/fixtures/qwen/images");
    let (a, b) = (q.join("gradient_56x84.png"), q.join("noise_101x75.png"));
    let run = |images: &[&PathBuf], mode: &str| -> Vec<serde_json::Value> {
        let mut cmd = relsim();
        cmd.arg("embed-image").args(["--preprocess", mode]);
        let out = qwen_args(&mut cmd).args(images).output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect()
    };
    let both = run(&[&a, &b], "native");
    assert_eq!(both.len(), 2);
    assert_eq!(both[0]["embedding"].as_array().unwrap().len(), 384);
    assert_eq!(both[0], run(&[&a], "native")[0]);
    assert_eq!(both[1], run(&[&b], "native")[0]);
    let train = run(&[&b], "train");
    assert_ne!(train[0]["embedding"], both[1]["embedding"], "train and native preprocessing must differ");

    // Train preprocessing gives both images one 448x448 grid: they run through the towers as
    // one batch, and must still give what each gives alone.
    let vector = |v: &serde_json::Value| -> Vec<f64> { v["embedding"].as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect() };
    let batched = run(&[&a, &b], "train");
    for (together, alone) in [(&batched[0], &run(&[&a], "train")[0]), (&batched[1], &train[0])] {
        let diff = vector(together).iter().zip(vector(alone)).map(|(x, y)| (x - y).abs()).fold(0.0, f64::max);
        assert!(diff <= 1e-5, "batched and single embeddings differ by {diff}");
    }
    assert_ne!(batched[0]["embedding"], batched[1]["embedding"], "two different images in one batch");
}

/// `--image-backend` reaches the encoder: with the processor resizing, each backend gives
/// transformers' embedding for that backend (make_backends.py) and not the other's; a wrong name
/// is refused with the choices; and the library's model id keeps the two indexes apart.
#[test]
fn image_backend_is_chosen_on_the_command_line() {
    let q = workspace().join("tests/fixtures/qwen");
    let image = q.join("images/blocks_196x140.png");
    let reference_bytes = std::fs::read(q.join("tiny_b/backends.safetensors")).unwrap();
    let reference = safetensors::SafeTensors::deserialize(&reference_bytes).unwrap();
    let expected = |backend: &str| -> Vec<f64> {
        let t = reference.tensor(&format!("{backend}.processor.blocks_196x140.embedding")).unwrap();
        t.data().chunks_exact(4).map(|b| f64::from(f32::from_le_bytes([b[0], b[1], b[2], b[3]]))).collect()
    };
    // tiny_b with the pixel limits its references were made with (its folder has no
    // preprocessor_config.json): the image is downscaled by the processor.
    let base = tempfile::tempdir().unwrap();
    for file in ["config.json", "model.safetensors"] {
        std::os::unix::fs::symlink(q.join("tiny_b").join(file), base.path().join(file)).unwrap();
    }
    std::fs::write(base.path().join("preprocessor_config.json"), r#"{"min_pixels": 6272, "max_pixels": 18816}"#).unwrap();
    let embed = |extra: &[&str]| {
        let mut cmd = relsim();
        cmd.arg("embed-image").args(["--preprocess", "processor"]).args(extra);
        cmd.arg("--base").arg(base.path()).arg("--adapter").arg(q.join("tiny_b/adapter"));
        cmd.arg("--tokenizer").arg(q.join("tokenizer/tokenizer.json.gz")).arg(&image).output().unwrap()
    };
    let vector = |out: &std::process::Output| -> Vec<f64> {
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let line: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        line["embedding"].as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect()
    };
    let diff = |a: &[f64], b: &[f64]| a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f64::max);
    let (default, pil) = (vector(&embed(&["--backend", "ndarray"])), vector(&embed(&["--backend", "ndarray", "--image-backend", "pil"])));
    let (tv_diff, pil_diff, crossed) = (diff(&default, &expected("torchvision")), diff(&pil, &expected("pil")), diff(&default, &expected("pil")));
    assert!(tv_diff <= 1e-4 && pil_diff <= 1e-4, "{tv_diff} {pil_diff}");
    assert!(crossed > 1e-4, "the default must be torchvision, not pil ({crossed})");
    // The other CPU backend (burn-flex) gives transformers' embedding too.
    let flex_diff = diff(&vector(&embed(&["--backend", "flex"])), &expected("torchvision"));
    assert!(flex_diff <= 1e-4, "flex: {flex_diff}");
    let out = embed(&["--image-backend", "opencv"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && stderr.contains("torchvision") && stderr.contains("pil"), "{stderr}");

    use relsim_companion::encoders::{model_id, EncoderOptions};
    use relsim_shared::image::preprocess::ImageBackend;
    let options = EncoderOptions::qwen(q.join("tiny_b"), q.join("tiny_b/adapter"), None);
    let tv = model_id("qwen", &options).unwrap();
    let pil = model_id("qwen", &EncoderOptions { image_backend: ImageBackend::Pil, ..options }).unwrap();
    assert!(tv.ends_with("-native-torchvision") && pil.ends_with("-native-pil"), "{tv} {pil}");
}

#[test]
fn half_precision_runs_on_the_cpu_and_is_refused_where_it_is_not_built() {
    let image = workspace().join("tests/fixtures/qwen/images/gradient_56x84.png");
    let embed = |extra: &[&str]| {
        let mut cmd = relsim();
        cmd.arg("embed-image").args(extra);
        qwen_args(&mut cmd).arg(&image).output().unwrap()
    };
    let vector = |out: &std::process::Output| -> Vec<f64> {
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let line: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        line["embedding"].as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect()
    };
    // On the CPU, bf16 runs on burn-flex: close to f32, not equal to it.
    let (full, half) = (vector(&embed(&["--backend", "ndarray"])), vector(&embed(&["--backend", "ndarray", "--precision", "bf16"])));
    let diff = full.iter().zip(&half).map(|(x, y)| (x - y).abs()).fold(0.0, f64::max);
    assert!(diff > 0.0 && diff < 5e-3, "bf16 vs f32 on the CPU: max difference {diff}");
    // wgpu has no half-precision build: a clear refusal, not a panic.
    let out = embed(&["--backend", "wgpu", "--precision", "bf16"]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("precision `bf16` is not available on backend `wgpu`"), "{stderr}");
}

#[test]
fn score_prints_the_cosine_of_two_images() {
    let q = workspace().join("tests/fixtures/qwen/images");
    let mut cmd = relsim();
    cmd.arg("score");
    let out = qwen_args(&mut cmd).arg(q.join("gradient_56x84.png")).arg(q.join("gradient_56x84.png")).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let same: f32 = String::from_utf8(out.stdout).unwrap().trim().parse().unwrap();
    assert!((same - 1.0).abs() < 1e-5, "{same}");
    let mut cmd = relsim();
    cmd.arg("score");
    let out = qwen_args(&mut cmd).arg(q.join("gradient_56x84.png")).arg(q.join("noise_101x75.png")).output().unwrap();
    let other: f32 = String::from_utf8(out.stdout).unwrap().trim().parse().unwrap();
    assert!(other < 0.9999 && other > -1.0001, "{other}");
}

/// `relsim caption` on the tiny checkpoint (whose answers are random tokens): every answer is
/// asked again and rejected by the anonymity check, the run says so, and the output file is
/// written (empty). Without an input it refuses.
#[test]
fn caption_runs_the_model_and_rejects_answers_that_are_not_anonymous() {
    let q = workspace().join("tests/fixtures/qwen/images");
    let out = std::env::temp_dir().join(format!("relsim-caption-{}.jsonl", std::process::id()));
    let run = qwen_args(relsim().arg("caption"))
        .arg("--group")
        .args([q.join("gradient_56x84.png"), q.join("tiny_30x20.png")])
        .args(["--retries", "2", "--max-new-tokens", "8", "--image-backend", "pil", "--backend", "ndarray", "--out"])
        .arg(&out)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(run.status.success(), "{stdout}{}", String::from_utf8_lossy(&run.stderr));
    assert!(stdout.contains("0 of 1 groups captioned, 0 rows") && stdout.contains("3 answers rejected"), "{stdout}");
    assert!(stdout.contains("no anonymous caption for") && stdout.contains("gradient_56x84.png"), "{stdout}");
    assert_eq!(std::fs::read_to_string(&out).unwrap(), "");
    let _ = std::fs::remove_file(&out);
    let none = qwen_args(relsim().arg("caption")).output().unwrap();
    assert!(!none.status.success());
    assert!(String::from_utf8_lossy(&none.stderr).contains("--group"), "{}", String::from_utf8_lossy(&none.stderr));
}

/// `relsim filter` on the tiny checkpoint (its P("Yes") equals transformers' in
/// qwen_generate.rs): scores.jsonl for every image of a folder, kept.txt for those at or above
/// the threshold.
#[test]
fn filter_scores_images_and_keeps_those_at_the_threshold() {
    let q = workspace().join("tests/fixtures/qwen/images");
    let out = std::env::temp_dir().join(format!("relsim-filter-{}", std::process::id()));
    let run = |threshold: &str| {
        let run = qwen_args(relsim().arg("filter"))
            .arg("--library")
            .arg(&q)
            .args(["--image-backend", "pil", "--backend", "ndarray", "--threshold", threshold, "--out"])
            .arg(&out)
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&run.stdout).to_string();
        assert!(run.status.success(), "{stdout}{}", String::from_utf8_lossy(&run.stderr));
        let scores: Vec<serde_json::Value> = std::fs::read_to_string(out.join("scores.jsonl")).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        let kept: Vec<String> = std::fs::read_to_string(out.join("kept.txt")).unwrap().lines().map(String::from).collect();
        (stdout, scores, kept)
    };
    let (stdout, scores, kept) = run("0");
    assert!(stdout.contains("4 of 4 images kept"), "{stdout}");
    assert_eq!((scores.len(), kept.len()), (4, 4));
    let p: Vec<f32> = scores.iter().map(|s| s["p_yes"].as_f64().unwrap() as f32).collect();
    assert!(p.iter().all(|&p| p > 0.0 && p < 1.0), "{p:?}");
    // At the highest score only the images that reach it are kept.
    let top = p.iter().copied().fold(0.0f32, f32::max);
    let (stdout, scores, kept) = run(&top.to_string());
    let reach: Vec<&str> = scores.iter().filter(|s| s["p_yes"].as_f64().unwrap() as f32 >= top).map(|s| s["file"].as_str().unwrap()).collect();
    assert!(!reach.is_empty() && reach.len() < 4, "{p:?}");
    assert_eq!(kept, reach);
    assert!(stdout.contains(&format!("{} of 4 images kept", reach.len())), "{stdout}");
    assert!(scores.iter().all(|s| s["kept"].as_bool().unwrap() == reach.contains(&s["file"].as_str().unwrap())));
    let bad = qwen_args(relsim().arg("filter")).arg(&q).args(["--threshold", "2"]).output().unwrap();
    assert!(!bad.status.success() && String::from_utf8_lossy(&bad.stderr).contains("probability"));
    let _ = std::fs::remove_dir_all(&out);
}

/// `relsim train --preset filter` on the tiny checkpoint: a labelled jsonl in, a PEFT adapter
/// out (what `relsim filter --adapter` loads); flags of the encoder presets are refused.
#[test]
fn train_preset_filter_writes_an_adapter_that_relsim_filter_loads() {
    let dir = tempfile::tempdir().unwrap();
    let q = workspace().join("tests/fixtures/qwen");
    let data = dir.path().join("labels.jsonl");
    let image = q.join("images/gradient_56x84.png");
    std::fs::write(&data, format!("{{\"file\": {:?}, \"label\": true}}\n{{\"file\": {:?}, \"label\": false}}\n", image, q.join("images/tiny_30x20.png"))).unwrap();
    let out = dir.path().join("run");
    let train = |extra: &[&str]| {
        relsim()
            .args(["train", "--preset", "filter", "--tokenizer"])
            .arg(q.join("tokenizer/tokenizer.json.gz"))
            .arg("--data")
            .arg(&data)
            .arg("--out")
            .arg(&out)
            .args(["--steps", "2", "--batch-size", "2", "--preprocess", "native"])
            .args(extra)
            .output()
            .unwrap()
    };
    let no_base = train(&[]);
    assert!(!no_base.status.success() && String::from_utf8_lossy(&no_base.stderr).contains("--base"), "{}", String::from_utf8_lossy(&no_base.stderr));
    let base = q.join("tiny_b");
    let wrong = train(&["--base", base.to_str().unwrap(), "--augment", "none"]);
    assert!(!wrong.status.success() && String::from_utf8_lossy(&wrong.stderr).contains("--augment is for the encoder presets"));
    let ok = train(&["--base", base.to_str().unwrap()]);
    assert!(ok.status.success(), "{}", String::from_utf8_lossy(&ok.stderr));
    for file in ["adapter_config.json", "adapter_model.safetensors"] {
        assert!(out.join("model").join(file).is_file(), "{file}");
    }
    let scores = dir.path().join("scores");
    let run = relsim()
        .arg("filter")
        .arg("--base")
        .arg(&base)
        .arg("--adapter")
        .arg(out.join("model"))
        .arg("--tokenizer")
        .arg(q.join("tokenizer/tokenizer.json.gz"))
        .arg("--out")
        .arg(&scores)
        .arg(&image)
        .output()
        .unwrap();
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    assert!(scores.join("scores.jsonl").is_file());
}
