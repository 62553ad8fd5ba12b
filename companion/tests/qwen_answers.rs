//! Training Qwen2.5-VL to answer (`relsim train --preset captioner|filter`) on the tiny
//! fixture: the loss falls, the trained model says what it was taught, and the PEFT adapter it
//! exports, folded into the generator at load, gives the trainee's own logits.

use std::path::{Path, PathBuf};

use burn::backend::Flex;
use burn::module::{AutodiffModule, Module};
use relsim_companion::qwen::chat::ChatMessage;
use relsim_companion::qwen::generate::{Generator, GeneratorFiles};
use relsim_companion::train::answers::{answer_tokens, init, train_answers, AnswerTask, AnswerTrainOptions};
use relsim_companion::train::qwen::QwenSpec;
use relsim_companion::train::{StepMetrics, TrainEnd};
use relsim_shared::image::preprocess::{decode_rgb, PreprocessMode};
use relsim_shared::vectors::max_abs_diff;

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/qwen")
}

fn tokenizer() -> PathBuf {
    fixtures().join("tokenizer/tokenizer.json.gz")
}

const IMAGES: [&str; 2] = ["gradient_56x84.png", "blocks_196x140.png"];

/// A jsonl naming the fixture images with `rows` (one JSON object each, `file` added).
fn data(dir: &Path, rows: [serde_json::Value; 2]) -> PathBuf {
    let path = dir.join("data.jsonl");
    let lines: Vec<String> = IMAGES
        .iter()
        .zip(rows)
        .map(|(image, mut row)| {
            row["file"] = fixtures().join("images").join(image).display().to_string().into();
            row.to_string()
        })
        .collect();
    std::fs::write(&path, lines.join("\n")).unwrap();
    path
}

fn options(task: AnswerTask, data: PathBuf, steps: usize) -> AnswerTrainOptions {
    let mut spec = QwenSpec::relsim(fixtures().join("tiny_b"), Some(tokenizer()));
    spec.preprocess = PreprocessMode::Native;
    AnswerTrainOptions { batch_size: 2, learning_rate: 2e-2, warmup_steps: 2, checkpoint_every: 1000, ..AnswerTrainOptions::relsim(task, data, spec, steps) }
}

fn losses(out: &Path) -> Vec<f32> {
    std::fs::read_to_string(out.join("metrics.jsonl")).unwrap().lines().map(|l| serde_json::from_str::<StepMetrics>(l).unwrap().loss).collect()
}

fn generator(adapter: Option<PathBuf>) -> Generator<Flex> {
    let files = GeneratorFiles { base: fixtures().join("tiny_b"), adapter, tokenizer: Some(tokenizer()), image_config: None };
    Generator::load(&files, &Default::default()).unwrap()
}

fn image(name: &str) -> image::RgbImage {
    decode_rgb(&std::fs::read(fixtures().join("images").join(name)).unwrap(), name).unwrap()
}

/// Mean cross-entropy of `answer` under logits `[A, vocab]` (row-major).
fn cross_entropy(logits: &[f32], answer: &[u32]) -> f32 {
    let vocab = logits.len() / answer.len();
    let total: f64 = logits
        .chunks(vocab)
        .zip(answer)
        .map(|(row, &t)| -f64::from(relsim_companion::interest::probability(row, t)).ln())
        .sum();
    (total / answer.len() as f64) as f32
}

/// P("Yes") and P("No") as the filter's first answer token.
fn yes_no(generator: &Generator<Flex>, name: &str) -> (f32, f32) {
    let prompt = generator.prepare(&[ChatMessage::user_with_images(vec![image(name)], AnswerTask::Filter.prompt())]).unwrap();
    let (logits, _) = generator.prefill(&prompt).unwrap();
    let p = |word: &str| relsim_companion::interest::probability(&logits, generator.tokenizer.token_to_id(word).unwrap());
    (p("Yes"), p("No"))
}

#[test]
fn the_captioner_learns_its_captions_and_its_adapter_gives_the_trainees_logits() {
    let dir = tempfile::tempdir().unwrap();
    let captions = ["growth stages of {subject}", "one {object} stands out"];
    let data = data(dir.path(), captions.map(|c| serde_json::json!({ "caption": c })));
    let out = dir.path().join("run");
    let opts = options(AnswerTask::Caption, data, 40);
    assert_eq!(train_answers(&opts, &out, None, &mut ()).unwrap(), TrainEnd::Finished);
    let losses = losses(&out);
    assert_eq!(losses.len(), 40);
    let (first, last) = (losses[0], losses[losses.len() - 1]);
    assert!(last < first * 0.5, "the loss should fall: {first} -> {last} ({losses:?})");

    // The exported adapter, folded into q/v at load, gives the trainee's logits (LoRA apart).
    let adapted = generator(Some(out.join("model")));
    let base = generator(None);
    let (_, trainee) = init(&opts).unwrap();
    let checkpoint = std::fs::read_dir(out.join("checkpoints")).unwrap().map(|e| e.unwrap().path()).max().unwrap();
    let trainee = trainee.load_file(checkpoint.join("model"), &burn::record::BinFileRecorder::<burn::record::FullPrecisionSettings>::new(), &Default::default()).unwrap().valid();
    for (name, caption) in IMAGES.iter().zip(captions) {
        let prompt = adapted.prepare(&[ChatMessage::user_with_images(vec![image(name)], AnswerTask::Caption.prompt())]).unwrap();
        let answer = answer_tokens(&adapted, AnswerTask::Caption, caption).unwrap();
        let values = |t: burn::tensor::Tensor<Flex, 2>| t.into_data().convert::<f32>().to_vec::<f32>().unwrap();
        let merged = values(adapted.answer_logits(adapted.language(), &prompt, &answer).unwrap());
        let separate = values(base.answer_logits(&trainee.language, &prompt, &answer).unwrap());
        let diff = max_abs_diff(&merged, &separate);
        assert!(diff <= 1e-4, "{name}: merged vs trainee logits differ by {diff}");
        // Through the inference path, the taught caption is far likelier than before training
        // (the tiny model, 16 wide with a 151k-token tied head, cannot make it the greedy answer).
        let before = cross_entropy(&values(base.answer_logits(base.language(), &prompt, &answer).unwrap()), &answer);
        let after = cross_entropy(&merged, &answer);
        assert!(after < before * 0.5, "{name}: cross-entropy {before} before, {after} after");
    }
    let config: serde_json::Value = serde_json::from_slice(&std::fs::read(out.join("model/adapter_config.json")).unwrap()).unwrap();
    assert_eq!((config["task_type"].as_str(), config["r"].as_u64(), config["lora_alpha"].as_f64()), (Some("CAUSAL_LM"), Some(16), Some(32.0)));
}

#[test]
fn the_filter_learns_yes_and_no_and_a_stopped_run_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let data = data(dir.path(), [serde_json::json!({ "label": true }), serde_json::json!({ "label": "No" })]);
    let out = dir.path().join("run");
    let opts = options(AnswerTask::Filter, data, 20);
    assert_eq!(train_answers(&opts, &out, Some(8), &mut ()).unwrap(), TrainEnd::Interrupted(8));
    assert!(!out.join("model").exists(), "no adapter before the run ends");
    assert_eq!(train_answers(&opts, &out, None, &mut ()).unwrap(), TrainEnd::Finished);
    let losses = losses(&out);
    assert_eq!(losses.len(), 20, "the resumed run goes on from step 8: {losses:?}");
    let mut other = opts.clone();
    other.learning_rate = 1.0;
    assert!(train_answers(&other, &out, None, &mut ()).unwrap_err().to_string().contains("other options"));

    // The trained filter answers each image as taught: Yes above No for the first, No above Yes
    // for the second (the untrained model put them the same way round for both).
    let filter = generator(Some(out.join("model")));
    let (taught_yes, taught_no) = (yes_no(&filter, IMAGES[0]), yes_no(&filter, IMAGES[1]));
    assert!(taught_yes.0 > taught_yes.1 && taught_no.1 > taught_no.0, "P(Yes), P(No): taught yes {taught_yes:?}, taught no {taught_no:?}");
    let untrained = generator(None);
    let before = (yes_no(&untrained, IMAGES[0]), yes_no(&untrained, IMAGES[1]));
    assert_eq!(before.0 .0 > before.0 .1, before.1 .0 > before.1 .1, "the base model already told them apart: {before:?}");
}

/// The captioner adapter `relsim train --preset captioner` wrote, loaded by HF peft
/// (trained_captioner_tiny_b/reference.json, made by make_trained_captioner.py) and by our
/// generator: the same answer tokens, their log-probabilities within 1e-4, the same top-8.
#[test]
fn a_trained_captioner_adapter_means_the_same_to_peft_and_to_us() {
    let dir = fixtures().join("trained_captioner_tiny_b");
    let reference: serde_json::Value = serde_json::from_slice(&std::fs::read(dir.join("reference.json")).unwrap()).unwrap();
    assert_eq!(reference["prompt"].as_str(), Some(AnswerTask::Caption.prompt()), "the script's prompt is ours");
    let image_config = relsim_shared::image::preprocess::QwenImageConfig {
        min_pixels: reference["min_pixels"].as_u64().unwrap() as usize,
        max_pixels: reference["max_pixels"].as_u64().unwrap() as usize,
        backend: relsim_shared::image::preprocess::ImageBackend::Pil,
        ..Default::default()
    };
    let files = GeneratorFiles { base: fixtures().join("tiny_b"), adapter: Some(dir), tokenizer: Some(tokenizer()), image_config: Some(image_config) };
    let captioner = Generator::<Flex>::load(&files, &Default::default()).unwrap();
    for case in reference["cases"].as_array().unwrap() {
        let name = case["image"].as_str().unwrap();
        let image = decode_rgb(&std::fs::read(fixtures().join(name)).unwrap(), name).unwrap();
        let prompt = captioner.prepare(&[ChatMessage::user_with_images(vec![image], AnswerTask::Caption.prompt())]).unwrap();
        let answer = answer_tokens(&captioner, AnswerTask::Caption, case["caption"].as_str().unwrap()).unwrap();
        let expected: Vec<u32> = case["answer_ids"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap() as u32).collect();
        assert_eq!(answer, expected, "{name}: answer tokens");
        let logits = captioner.answer_logits(captioner.language(), &prompt, &answer).unwrap().into_data().convert::<f32>().to_vec::<f32>().unwrap();
        let vocab = logits.len() / answer.len();
        for (i, (row, &token)) in logits.chunks(vocab).zip(&answer).enumerate() {
            let ours = relsim_companion::interest::probability(row, token).ln();
            let theirs = case["log_probs"][i].as_f64().unwrap() as f32;
            assert!((ours - theirs).abs() <= 1e-4, "{name} token {i}: log-prob {ours} vs peft {theirs}");
            let top = &case["top"][i];
            for (id, value) in top["ids"].as_array().unwrap().iter().zip(top["values"].as_array().unwrap()) {
                let (id, value) = (id.as_u64().unwrap() as usize, value.as_f64().unwrap() as f32);
                assert!((row[id] - value).abs() <= 1e-4, "{name} token {i}: logit of {id} {} vs peft {value}", row[id]);
            }
        }
    }
}
