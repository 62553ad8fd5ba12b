//! `relsim eval`: relational retrieval metrics of a trained model on a scene split.

use std::path::{Path, PathBuf};

use relsim_shared::image::preprocess::ImageBackend;

use crate::calibration::{cut_off, Calibration, TARGET_PRECISION};
use crate::encoders::{EncoderOptions, ImageEncoder, LiteEncoder};
use crate::scenes::bench::{best_hits, breakdown_table, caption_best_hits, evaluate, table, text_to_image_precision};
use crate::scenes::generate::Split;
use crate::scenes::Relation;

use super::data::{caption_embeddings, SceneSplit};

/// `relsim eval`: image→image relational retrieval and caption→image P@10 on a split, and the
/// model's "no good match" cut-offs from the validation split, written beside the model.
pub fn run_eval(checkpoint: &Path, data: &Path, split: Split, minilm_dir: &Path, image_backend: ImageBackend) -> anyhow::Result<()> {
    let dir = checkpoint;
    let (name, set, embeddings, model_dir) = embed_split(checkpoint, data, split, image_backend)?;
    let metrics = evaluate(&embeddings, &set.records);
    let captions = CaptionVectors::of(&set, data, minilm_dir)?;
    let p10_train = text_to_image_precision(&captions.training, &embeddings, &set.records, 10);
    let p10_held_out = text_to_image_precision(&captions.held_out, &embeddings, &set.records, 10);
    println!("{name} ({}) on the {} split of {}: {} images", dir.display(), split.name(), data.display(), set.records.len());
    print!("{}", table(&[(name.to_string(), metrics.clone())]));
    print!("{}", breakdown_table(&[(name.to_string(), metrics.clone())]));
    println!("caption→image P@10: training paraphrases {p10_train:.3}, held-out paraphrases {p10_held_out:.3}");

    // The cut-offs come from the validation split whatever split the metrics are on (already
    // embedded, captions too, when that is the split asked for).
    let (val, val_embeddings, val_captions) = if split == Split::Val {
        (set, embeddings, captions)
    } else {
        let (_, val, embeddings, _) = embed_split(checkpoint, data, Split::Val, image_backend)?;
        let captions = CaptionVectors::of(&val, data, minilm_dir)?;
        (val, embeddings, captions)
    };
    let calibration = calibrate(&val, &val_embeddings, &val_captions, data);
    match &calibration {
        Err(why) => println!("no no-good-match cut-offs: {why} (a model this weak marks nothing; none written)"),
        Ok(c) => {
            println!(
                "no-good-match cut-offs (validation split, {} image and {} caption queries, each with and without its idea in the library): image {:.4} (P@1 above it {:.3}), caption {:.4} ({:.3})",
                c.image_queries, c.text_queries, c.image, c.image_precision, c.text, c.text_precision
            );
            match &model_dir {
                Some(model_dir) => println!("wrote {}", c.write(model_dir)?.display()),
                None => println!("(not written: {} is a checkpoint, not a model folder; evaluate the exported model to store them)", dir.display()),
            }
        }
    }
    let calibration = calibration.ok();
    let report = serde_json::json!({
        "model": dir.display().to_string(), "split": split.name(), "images": metrics.queries,
        "metrics": metrics, "caption_to_image_p_at_10": { "training": p10_train, "held_out": p10_held_out },
        "calibration": calibration,
    });
    println!("{}", serde_json::to_string(&report)?);
    Ok(())
}

/// The model behind `checkpoint` run over `split` of `data`: its name, the split, the
/// embeddings, and the folder its calibration belongs in (None for a training checkpoint).
fn embed_split(checkpoint: &Path, data: &Path, split: Split, image_backend: ImageBackend) -> anyhow::Result<(&'static str, SceneSplit, Vec<Vec<f32>>, Option<PathBuf>)> {
    Ok(match super::qwen::adapter_for(checkpoint)? {
        Some((base, adapter, tokenizer)) => {
            // The Qwen encoder scores images at their own size, as the official scorer does.
            let set = SceneSplit::load(data, split, None)?;
            let options = EncoderOptions { image_backend, ..EncoderOptions::qwen(base, adapter.clone(), tokenizer) };
            let embeddings = crate::encoders::by_name("qwen", &options)?.embed_batch(&set.images)?;
            ("relsim-qwen", set, embeddings, Some(adapter))
        }
        None => {
            let (config, model) = super::load_any(checkpoint)?;
            let size = config.image_size;
            let set = SceneSplit::load(data, split, Some(size as u32))?;
            let encoder = LiteEncoder { model, size, device: Default::default(), colour_views: config.colour_views };
            let embeddings = encoder.embed_batch(&set.images)?;
            let model_dir = checkpoint.join("model.safetensors").exists().then(|| checkpoint.to_path_buf());
            ("relsim-lite", set, embeddings, model_dir)
        }
    })
}

/// The MiniLM vectors of the captions of the families a split shows, with the family each names.
struct CaptionVectors {
    training: Vec<(Vec<f32>, String)>,
    held_out: Vec<(Vec<f32>, String)>,
}

impl CaptionVectors {
    fn of(set: &SceneSplit, data: &Path, minilm_dir: &Path) -> anyhow::Result<Self> {
        // Captions of the families the set shows: a family it lacks has no right answer.
        let shown: Vec<Relation> = Relation::ALL.into_iter().filter(|r| set.records.iter().any(|rec| rec.relation == r.name())).collect();
        let (training, held_out): (Vec<(String, String)>, Vec<(String, String)>) = if shown.is_empty() {
            // An imported set (`relsim scenes import`): each idea's own captions; none held out.
            let own: std::collections::BTreeSet<(String, String)> = set.records.iter().map(|r| (r.caption.clone(), r.relation.clone())).collect();
            (own.into_iter().collect(), Vec::new())
        } else {
            (
                shown.iter().flat_map(|r| r.training_captions().iter().map(move |c| (c.to_string(), r.name().to_string()))).collect(),
                shown.iter().map(|r| (r.evaluation_caption().to_string(), r.name().to_string())).collect(),
            )
        };
        let texts: Vec<String> = training.iter().chain(&held_out).map(|(c, _)| c.clone()).collect();
        let vectors = caption_embeddings(&texts, minilm_dir, &data.join("caption-embeddings.json"))?;
        let pair = |list: &[(String, String)], offset: usize| -> Vec<(Vec<f32>, String)> { list.iter().enumerate().map(|(i, (_, r))| (vectors[offset + i].clone(), r.clone())).collect() };
        Ok(CaptionVectors { training: pair(&training, 0), held_out: pair(&held_out, training.len()) })
    }
}

/// The cut-offs of a model from its embeddings of a validation split, or why there are none.
fn calibrate(val: &SceneSplit, embeddings: &[Vec<f32>], captions: &CaptionVectors, data: &Path) -> Result<Calibration, String> {
    let images = best_hits(embeddings, &val.records);
    let all_captions: Vec<(Vec<f32>, String)> = captions.training.iter().chain(&captions.held_out).cloned().collect();
    let texts = caption_best_hits(&all_captions, embeddings, &val.records);
    let (image, image_precision) = cut_off(&images, TARGET_PRECISION).ok_or("no image cut-off reaches a precision of 0.5 on the validation split")?;
    let (text, text_precision) = cut_off(&texts, TARGET_PRECISION).ok_or("no caption cut-off reaches a precision of 0.5 on the validation split")?;
    Ok(Calibration {
        image,
        text,
        image_precision,
        text_precision,
        image_queries: images.len(),
        text_queries: texts.len(),
        data: data.display().to_string(),
        split: Split::Val.name().to_string(),
    })
}
