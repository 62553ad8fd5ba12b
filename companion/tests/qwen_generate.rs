//! Qwen2.5-VL generation against transformers' `generate` on the tiny fixtures
//! (tests/fixtures/qwen/generate.json, made by make_generate.py): the chat template's token ids,
//! greedy tokens and stop tokens exactly, for prompts of text only and of one to four images;
//! the cached decoder against the whole sequence recomputed (1e-4).

use std::path::PathBuf;

use burn::backend::ndarray::{NdArray, NdArrayDevice};
use relsim_companion::qwen::chat::{ChatMessage, Content, Role};
use relsim_companion::qwen::generate::{Finish, GenerateOptions, Generator, GeneratorFiles, PreparedChat, Sampling};
use relsim_shared::image::preprocess::{decode_rgb, ImageBackend, QwenImageConfig};
use relsim_shared::vectors::max_abs_diff;
use serde_json::Value;

type B = NdArray<f32>;

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/qwen")
}

fn json(name: &str) -> Value {
    serde_json::from_slice(&std::fs::read(fixtures().join(name)).unwrap()).unwrap()
}

fn files(name: &str, base: PathBuf) -> GeneratorFiles {
    let c = &json("manifest.json")["configs"][name];
    GeneratorFiles {
        adapter: (name == "tiny_b").then(|| fixtures().join(name).join("adapter")),
        base,
        tokenizer: Some(fixtures().join("tokenizer/tokenizer.json.gz")),
        image_config: Some(QwenImageConfig {
            min_pixels: c["min_pixels"].as_u64().unwrap() as usize,
            max_pixels: c["max_pixels"].as_u64().unwrap() as usize,
            backend: ImageBackend::Pil,
            ..Default::default()
        }),
    }
}

fn generator(name: &str) -> Generator<B> {
    Generator::load(&files(name, fixtures().join(name)), &NdArrayDevice::Cpu).unwrap()
}

/// The fixture's chat (images are paths under the fixtures folder).
fn messages(case: &Value) -> Vec<ChatMessage> {
    case["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| ChatMessage {
            role: Role::parse(m["role"].as_str().unwrap()).unwrap(),
            content: m["content"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| match c["type"].as_str().unwrap() {
                    "image" => {
                        let file = c["image"].as_str().unwrap();
                        Content::Image(decode_rgb(&std::fs::read(fixtures().join(file)).unwrap(), file).unwrap())
                    }
                    _ => Content::Text(c["text"].as_str().unwrap().to_string()),
                })
                .collect(),
        })
        .collect()
}

fn ids(v: &Value) -> Vec<u32> {
    v.as_array().unwrap().iter().map(|t| t.as_u64().unwrap() as u32).collect()
}

fn greedy(max_new_tokens: usize, stops: Vec<u32>) -> GenerateOptions {
    GenerateOptions { max_new_tokens, sampling: Sampling::Greedy, stop_tokens: Some(stops), repetition_penalty: 1.0 }
}

#[test]
fn greedy_tokens_and_stops_match_transformers_generate() {
    let reference = json("generate.json");
    let max_new = reference["max_new_tokens"].as_u64().unwrap() as usize;
    let eos = ids(&reference["eos"]);
    let penalty = reference["repetition_penalty"].as_f64().unwrap() as f32;
    for (name, config) in reference["configs"].as_object().unwrap() {
        let generator = generator(name);
        let cases = config["cases"].as_array().unwrap();
        assert!(cases.len() >= 8);
        let mut image_counts = Vec::new();
        let mut worst_logit = 0f32;
        for (i, case) in cases.iter().enumerate() {
            let chat = messages(case);
            let prompt = generator.prepare(&chat).unwrap();
            image_counts.push(prompt.images.len());
            assert_eq!(prompt.input_ids, ids(&case["input_ids"]), "{name} case {i}: the chat template's token ids");
            let out = generator.generate(&prompt, &greedy(max_new, eos.clone()), |_| true).unwrap();
            assert_eq!(out.tokens, ids(&case["greedy"]), "{name} case {i}: greedy tokens");
            assert_eq!(out.finish, Finish::Length);
            assert_eq!(out.prompt_tokens, prompt.input_ids.len());

            // The first step's largest logits, as transformers computed them.
            let (logits, _) = generator.prefill(&prompt).unwrap();
            let top = &case["first_top"];
            let ours: Vec<f32> = ids(&top["ids"]).iter().map(|&t| logits[t as usize]).collect();
            let theirs: Vec<f32> = top["values"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap() as f32).collect();
            worst_logit = worst_logit.max(max_abs_diff(&ours, &theirs));

            // With a repetition penalty (the tiny models otherwise repeat one token).
            let options = GenerateOptions { repetition_penalty: penalty, ..greedy(max_new, eos.clone()) };
            let penalised = generator.generate(&prompt, &options, |_| true).unwrap();
            assert_eq!(penalised.tokens, ids(&case["penalised"]), "{name} case {i}: greedy tokens, repetition penalty {penalty}");

            // An extra stop token ends generation there, kept as the last token.
            let stop = case["stop_token"].as_u64().unwrap() as u32;
            let options = GenerateOptions { repetition_penalty: penalty, ..greedy(max_new, [eos.clone(), vec![stop]].concat()) };
            let stopped = generator.generate(&prompt, &options, |_| true).unwrap();
            assert_eq!(stopped.tokens, ids(&case["stopped"]), "{name} case {i}: stopping at {stop}");
            assert_eq!(stopped.finish, Finish::Stop);
        }
        for n in 0..=4 {
            assert!(image_counts.contains(&n), "{name}: a prompt with {n} images");
        }
        assert!(worst_logit < 1e-3, "{name}: first-step logits differ from transformers' by {worst_logit}");
        eprintln!("{name}: {} prompts, greedy ids identical; first-step top-32 logits within {worst_logit:.2e}", cases.len());
    }
}

/// Logits of `prompt` followed by `generated`, cached path: prefill, then `chunks` fed in turn.
fn cached_logits(generator: &Generator<B>, prompt: &PreparedChat, chunks: &[&[u32]]) -> Vec<Vec<f32>> {
    let (first, mut session) = generator.prefill(prompt).unwrap();
    let mut out = vec![first];
    for chunk in chunks {
        out.push(generator.extend(&mut session, chunk).unwrap());
    }
    assert_eq!(session.len(), prompt.input_ids.len() + chunks.iter().map(|c| c.len()).sum::<usize>());
    out
}

#[test]
fn the_cached_decoder_gives_the_logits_of_the_whole_sequence() {
    let reference = json("generate.json");
    for name in ["tiny_a", "tiny_b"] {
        let generator = generator(name);
        // Two images and text (case 4), and text only (case 0).
        for case in [4, 0] {
            let case = &reference["configs"][name]["cases"][case];
            let prompt = generator.prepare(&messages(case)).unwrap();
            let tokens = ids(&case["penalised"]);
            // One token at a time, then three at once (a masked chunk after the cache).
            let chunks: Vec<&[u32]> = vec![&tokens[0..1], &tokens[1..2], &tokens[2..5], &tokens[5..6]];
            let cached = cached_logits(&generator, &prompt, &chunks);
            let mut fed = 0;
            let mut worst = 0f32;
            for (k, logits) in cached.iter().enumerate() {
                let full = generator.logits_uncached(&prompt, &tokens[..fed]).unwrap();
                worst = worst.max(max_abs_diff(logits, &full));
                fed += chunks.get(k).map_or(0, |c| c.len());
            }
            assert!(worst <= 1e-4, "{name}: cached and uncached logits differ by {worst}");
        }
    }
}

#[test]
fn sampling_is_seeded_and_a_cold_temperature_is_greedy() {
    let reference = json("generate.json");
    let generator = generator("tiny_b");
    let case = &reference["configs"]["tiny_b"]["cases"][2];
    let prompt = generator.prepare(&messages(case)).unwrap();
    let sample = |temperature, top_p, seed| {
        let options = GenerateOptions { max_new_tokens: 12, sampling: Sampling::Sample { temperature, top_p, seed }, ..greedy(12, vec![]) };
        generator.generate(&prompt, &options, |_| true).unwrap().tokens
    };
    assert_eq!(sample(1.0, 1.0, 3), sample(1.0, 1.0, 3));
    assert_ne!(sample(1.0, 1.0, 3), sample(1.0, 1.0, 4), "another seed, another answer");
    assert_eq!(sample(1e-4, 1.0, 3), ids(&case["greedy"]));
    assert_eq!(sample(1.0, 1e-6, 5), ids(&case["greedy"]), "a top-p this small keeps the best token only");
    // The caller may stop generation.
    let mut seen = 0;
    let out = generator.generate(&prompt, &greedy(12, vec![]), |_| {
        seen += 1;
        seen < 3
    });
    let out = out.unwrap();
    assert_eq!((out.tokens.len(), out.finish), (3, Finish::Cancelled));
}

#[test]
fn an_untied_head_is_read_from_lm_head_and_a_missing_one_is_named() {
    let scratch = std::env::temp_dir().join(format!("relsim-untied-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&scratch);
    std::fs::create_dir_all(&scratch).unwrap();
    let tiny = fixtures().join("tiny_a");
    let mut config = json("tiny_a/config.json");
    config["tie_word_embeddings"] = Value::Bool(false);
    std::fs::write(scratch.join("config.json"), serde_json::to_vec(&config).unwrap()).unwrap();
    std::fs::copy(tiny.join("model.safetensors"), scratch.join("model.safetensors")).unwrap();
    let load = || Generator::<B>::load(&files("tiny_a", scratch.clone()), &NdArrayDevice::Cpu);
    let err = format!("{:#}", load().err().expect("no lm_head.weight"));
    assert!(err.contains("lm_head.weight"), "{err}");

    // The same checkpoint with the embedding table saved again as `lm_head.weight`: the same answers.
    let bytes = std::fs::read(tiny.join("model.safetensors")).unwrap();
    let file = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let mut tensors: Vec<(String, safetensors::tensor::TensorView<'_>)> = file.tensors();
    let embed = file.tensor("model.embed_tokens.weight").unwrap();
    tensors.push(("lm_head.weight".to_string(), embed));
    safetensors::serialize_to_file(tensors, None, &scratch.join("model.safetensors")).unwrap();
    let untied = load().unwrap();
    let tied = generator("tiny_a");
    let case = &json("generate.json")["configs"]["tiny_a"]["cases"][4];
    let prompt = tied.prepare(&messages(case)).unwrap();
    let options = greedy(12, vec![]);
    assert_eq!(untied.generate(&prompt, &options, |_| true).unwrap().tokens, ids(&case["greedy"]));
    let _ = std::fs::remove_dir_all(&scratch);
}

#[test]
fn the_interest_filter_scores_as_transformers_does() {
    let reference = json("generate.json");
    for name in ["tiny_a", "tiny_b"] {
        let filter = &reference["configs"][name]["filter"];
        assert_eq!(filter["prompt"].as_str().unwrap(), relsim_companion::interest::FILTER_PROMPT, "make_generate.py asks another question");
        let generator = generator(name);
        assert_eq!(generator.tokenizer.token_to_id(relsim_companion::interest::YES), filter["yes_id"].as_u64().map(|v| v as u32));
        for score in filter["scores"].as_array().unwrap() {
            let file = score["image"].as_str().unwrap();
            let image = decode_rgb(&std::fs::read(fixtures().join(file)).unwrap(), file).unwrap();
            let ours = relsim_companion::interest::p_yes(&generator, image).unwrap();
            let theirs = score["p_yes"].as_f64().unwrap();
            assert!((f64::from(ours).ln() - theirs.ln()).abs() < 1e-3, "{name} {file}: P(Yes) {ours} vs {theirs}");
        }
    }
}
