//! MiniLM against sentence-transformers: token ids, embeddings at batch 1 and 16 on both CPU
//! backends (ndarray, and burn-flex with its vectorised GELU), batch independence, and the
//! errors a broken model folder gives.
//!
//! Needs the real weights in `models/all-MiniLM-L6-v2` (`cargo xtask setup`) or `RELSIM_MINILM_DIR`.

use std::path::PathBuf;
use std::sync::OnceLock;

use burn::backend::ndarray::{NdArray, NdArrayDevice};
use relsim_shared::text::minilm::{read_reference, MiniLm, MiniLmFiles, ReferenceCase};
use relsim_shared::vectors::max_abs_diff;
use relsim_shared::ModelError;

type B = NdArray<f32>;

fn model_dir() -> PathBuf {
    std::env::var_os("RELSIM_MINILM_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../models/all-MiniLM-L6-v2"))
}

fn reference() -> &'static [ReferenceCase] {
    static R: OnceLock<Vec<ReferenceCase>> = OnceLock::new();
    R.get_or_init(|| read_reference(&PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/minilm/reference.json")).expect("reference.json"))
}

fn model() -> &'static MiniLm<B> {
    static M: OnceLock<MiniLm<B>> = OnceLock::new();
    M.get_or_init(|| {
        MiniLm::from_dir(&model_dir(), &NdArrayDevice::Cpu)
            .unwrap_or_else(|e| panic!("{e}\nthe MiniLM weights are fetched by `cargo xtask setup`"))
    })
}

const TOLERANCE: f32 = 2e-5;

#[test]
fn reference_has_the_promised_coverage() {
    let cases = reference();
    assert!(cases.len() >= 60, "{} cases", cases.len());
    assert!(cases.iter().any(|c| c.text.is_empty()));
    assert!(cases.iter().filter(|c| c.input_ids.len() == 256).count() >= 2, "two inputs must hit the 256-token limit");
}

#[test]
fn token_ids_match_sentence_transformers() {
    for case in reference() {
        let tokens = model().tokenize(&[case.text.as_str()]).unwrap();
        assert_eq!(tokens.ids, case.input_ids, "token ids of {:?}", case.text);
    }
}

fn flex_model() -> &'static MiniLm<burn::backend::Flex> {
    static M: OnceLock<MiniLm<burn::backend::Flex>> = OnceLock::new();
    M.get_or_init(|| MiniLm::from_dir(&model_dir(), &Default::default()).unwrap())
}

fn check_batches(batch_size: usize, embed: &dyn Fn(&[&str]) -> Vec<Vec<f32>>) {
    let cases = reference();
    let mut worst = 0.0f32;
    for chunk in cases.chunks(batch_size) {
        let texts: Vec<&str> = chunk.iter().map(|c| c.text.as_str()).collect();
        let got = embed(&texts);
        assert_eq!(got.len(), chunk.len());
        for (case, vector) in chunk.iter().zip(&got) {
            assert_eq!(vector.len(), 384);
            let diff = max_abs_diff(vector, &case.embedding);
            assert!(diff <= TOLERANCE, "batch {batch_size}: {:?} differs by {diff}", case.text);
            worst = worst.max(diff);
        }
    }
    eprintln!("batch {batch_size}: worst component difference {worst:e} over {} inputs", cases.len());
}

#[test]
fn embeddings_match_sentence_transformers_at_batch_1() {
    check_batches(1, &|texts| model().embed_vecs(texts).unwrap());
}

#[test]
fn embeddings_match_sentence_transformers_at_batch_16() {
    check_batches(16, &|texts| model().embed_vecs(texts).unwrap());
}

#[test]
fn flex_embeddings_match_sentence_transformers_at_batch_1_and_16() {
    check_batches(1, &|texts| flex_model().embed_vecs(texts).unwrap());
    check_batches(16, &|texts| flex_model().embed_vecs(texts).unwrap());
}

#[test]
fn a_sentence_does_not_depend_on_its_batch() {
    let cases = reference();
    let long = cases.iter().find(|c| c.input_ids.len() == 256).unwrap().text.as_str();
    let alone = model().embed_vecs(&["A cat sits on the mat."]).unwrap().remove(0);
    let batched = model().embed_vecs(&[long, "A cat sits on the mat.", "", long]).unwrap();
    let diff = max_abs_diff(&alone, &batched[1]);
    assert!(diff < 1e-6, "the same sentence differs by {diff} when batched with 256-token inputs");
    assert!(max_abs_diff(&batched[0], &batched[3]) < 1e-6);
}

#[test]
fn embeddings_have_unit_length() {
    for vector in model().embed_vecs(&["unit", "", "🚀"]).unwrap() {
        let norm: f32 = vector.iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-5, "norm {norm}");
    }
    assert!(model().embed_vecs(&[]).unwrap().is_empty());
}

// --- errors: each names the file or key at fault ---

struct Folder {
    config: Vec<u8>,
    tokenizer: Vec<u8>,
    weights: Vec<u8>,
    pooling: Vec<u8>,
}

fn folder() -> Folder {
    let dir = model_dir();
    let read = |n: &str| std::fs::read(dir.join(n)).unwrap();
    Folder {
        config: read("config.json"),
        tokenizer: read("tokenizer.json"),
        weights: read("model.safetensors"),
        pooling: read("1_Pooling/config.json"),
    }
}

fn load(f: &Folder) -> Result<MiniLm<B>, ModelError> {
    MiniLm::from_files(
        MiniLmFiles { config: &f.config, tokenizer: &f.tokenizer, weights: &f.weights, pooling: &f.pooling, sentence_config: None },
        &NdArrayDevice::Cpu,
    )
}

/// Rewrites the weights file with `edit` applied to its (key, shape, f32 values) list.
fn rewrite_weights(weights: &[u8], edit: impl Fn(&mut Vec<(String, Vec<usize>, Vec<u8>)>)) -> Vec<u8> {
    let parsed = safetensors::SafeTensors::deserialize(weights).unwrap();
    let mut tensors: Vec<(String, Vec<usize>, Vec<u8>)> = parsed
        .tensors()
        .into_iter()
        .filter(|(_, v)| v.dtype() == safetensors::Dtype::F32)
        .map(|(k, v)| (k, v.shape().to_vec(), v.data().to_vec()))
        .collect();
    edit(&mut tensors);
    let views: Vec<(String, safetensors::tensor::TensorView<'_>)> = tensors
        .iter()
        .map(|(k, s, d)| (k.clone(), safetensors::tensor::TensorView::new(safetensors::Dtype::F32, s.clone(), d).unwrap()))
        .collect();
    safetensors::serialize(views, None).unwrap()
}

#[test]
fn a_missing_file_is_named() {
    let dir = std::env::temp_dir().join(format!("relsim-minilm-missing-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("1_Pooling")).unwrap();
    for name in ["config.json", "tokenizer.json", "1_Pooling/config.json"] {
        std::fs::copy(model_dir().join(name), dir.join(name)).unwrap();
    }
    let err = MiniLm::<B>::from_dir(&dir, &NdArrayDevice::Cpu).unwrap_err().to_string();
    std::fs::remove_dir_all(&dir).unwrap();
    assert!(err.contains("model.safetensors"), "{err}");
}

#[test]
fn corrupt_files_are_named() {
    let good = folder();
    let mut f = folder();
    f.weights.truncate(f.weights.len() / 2);
    let err = load(&f).unwrap_err().to_string();
    assert!(err.contains("model.safetensors"), "{err}");

    let mut f = folder();
    f.config = b"{ not json".to_vec();
    let err = load(&f).unwrap_err().to_string();
    assert!(err.contains("config.json"), "{err}");

    let mut f = folder();
    f.tokenizer = good.tokenizer[..100].to_vec();
    let err = load(&f).unwrap_err().to_string();
    assert!(err.contains("tokenizer.json"), "{err}");

    let mut f = folder();
    f.pooling = br#"{"word_embedding_dimension": 384, "pooling_mode_cls_token": true}"#.to_vec();
    let err = load(&f).unwrap_err().to_string();
    assert!(err.contains("1_Pooling/config.json") && err.contains("mean pooling"), "{err}");
}

#[test]
fn a_missing_tensor_is_named() {
    let mut f = folder();
    f.weights = rewrite_weights(&f.weights, |t| t.retain(|(k, _, _)| k != "encoder.layer.3.attention.self.key.weight"));
    let err = load(&f).unwrap_err().to_string();
    assert!(err.contains("model.safetensors") && err.contains("encoder.layer.3.attention.self.key.weight"), "{err}");
}

#[test]
fn a_wrong_shape_names_the_key_and_both_shapes() {
    let mut f = folder();
    f.weights = rewrite_weights(&f.weights, |t| {
        let entry = t.iter_mut().find(|(k, _, _)| k == "encoder.layer.0.intermediate.dense.weight").unwrap();
        entry.1 = vec![384, 1536];
    });
    let err = load(&f).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, ModelError::Shape { .. }), "{msg}");
    assert!(msg.contains("encoder.layer.0.intermediate.dense.weight") && msg.contains("[384, 1536]") && msg.contains("[1536, 384]"), "{msg}");
}
