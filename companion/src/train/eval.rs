//! `relsim eval`: relational retrieval metrics of a trained model on a scene split.

use std::path::Path;

use relsim_shared::image::preprocess::ImageBackend;

use crate::encoders::{EncoderOptions, ImageEncoder, LiteEncoder};
use crate::scenes::bench::{breakdown_table, evaluate, table, text_to_image_precision};
use crate::scenes::generate::Split;
use crate::scenes::Relation;

use super::data::{caption_embeddings, SceneSplit};

/// `relsim eval`: image→image relational retrieval and caption→image P@10 on a split.
pub fn run_eval(checkpoint: &Path, data: &Path, split: Split, minilm_dir: &Path, image_backend: ImageBackend) -> anyhow::Result<()> {
    let dir = checkpoint;
    let (name, set, embeddings) = match super::qwen::adapter_for(checkpoint)? {
        Some((base, adapter, tokenizer)) => {
            // The Qwen encoder scores images at their own size, as the official scorer does.
            let set = SceneSplit::load(data, split, None)?;
            let options = EncoderOptions { image_backend, ..EncoderOptions::qwen(base, adapter, tokenizer) };
            let embeddings = crate::encoders::by_name("qwen", &options)?.embed_batch(&set.images)?;
            ("relsim-qwen", set, embeddings)
        }
        None => {
            let (config, model) = super::load_any(checkpoint)?;
            let size = config.image_size;
            let set = SceneSplit::load(data, split, Some(size as u32))?;
            let encoder = LiteEncoder { model, size, device: Default::default(), colour_views: config.colour_views };
            let embeddings = encoder.embed_batch(&set.images)?;
            ("relsim-lite", set, embeddings)
        }
    };
    let metrics = evaluate(&embeddings, &set.records);
    // Captions of the families the set shows: a family it lacks has no right answer.
    let shown: Vec<Relation> = Relation::ALL.into_iter().filter(|r| set.records.iter().any(|rec| rec.relation == r.name())).collect();
    let training: Vec<(String, String)> = shown.iter().flat_map(|r| r.training_captions().iter().map(move |c| (c.to_string(), r.name().to_string()))).collect();
    let held_out: Vec<(String, String)> = shown.iter().map(|r| (r.evaluation_caption().to_string(), r.name().to_string())).collect();
    let texts: Vec<String> = training.iter().chain(&held_out).map(|(c, _)| c.clone()).collect();
    let vectors = caption_embeddings(&texts, minilm_dir, &data.join("caption-embeddings.json"))?;
    let pair = |list: &[(String, String)], offset: usize| -> Vec<(Vec<f32>, String)> { list.iter().enumerate().map(|(i, (_, r))| (vectors[offset + i].clone(), r.clone())).collect() };
    let p10_train = text_to_image_precision(&pair(&training, 0), &embeddings, &set.records, 10);
    let p10_held_out = text_to_image_precision(&pair(&held_out, training.len()), &embeddings, &set.records, 10);
    println!("{name} ({}) on the {} split of {}: {} images", dir.display(), split.name(), data.display(), set.records.len());
    print!("{}", table(&[(name.to_string(), metrics.clone())]));
    print!("{}", breakdown_table(&[(name.to_string(), metrics.clone())]));
    println!("caption→image P@10: training paraphrases {p10_train:.3}, held-out paraphrases {p10_held_out:.3}");
    let report = serde_json::json!({
        "model": dir.display().to_string(), "split": split.name(), "images": set.records.len(),
        "metrics": metrics, "caption_to_image_p_at_10": { "training": p10_train, "held_out": p10_held_out },
    });
    println!("{}", serde_json::to_string(&report)?);
    Ok(())
}
