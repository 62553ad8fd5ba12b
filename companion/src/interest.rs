//! The relational-interest filter: relsim keeps, out of a large photo collection, the images that
//! carry a reusable logic, by asking a (LoRA-tuned) Qwen2.5-VL a yes/no question. We score each
//! image by the probability the model gives "Yes" as its first answer token, and keep those at or
//! above a threshold.

use std::path::{Path, PathBuf};

use anyhow::Context;
use burn::tensor::backend::Backend;
use relsim_shared::image::preprocess::decode_rgb;
use serde::{Deserialize, Serialize};

use crate::files::{content_hash, write_atomically};
use crate::qwen::chat::ChatMessage;
use crate::qwen::generate::Generator;

/// The question: our words for the intent of relsim's filter prompt (an expert on visual
/// creativity judges whether the image is interesting, answering only Yes or No), sharpened to
/// the relational sense the annotators were asked about.
pub const FILTER_PROMPT: &str = "You are an expert in visual creativity. Does this image show an interesting idea that another image could reuse with different content: a logic, structure, pattern, transformation or visual analogy, rather than only a subject? Answer with Yes or No only.";

/// The answer token whose probability is the score.
pub const YES: &str = "Yes";

/// One image's score.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct InterestScore {
    pub file: String,
    pub image_hash: String,
    /// P("Yes") as the first answer token.
    pub p_yes: f32,
    pub kept: bool,
}

/// Softmax probability of `token` among `logits`.
pub fn probability(logits: &[f32], token: u32) -> f32 {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let total: f64 = logits.iter().map(|&l| f64::from(l - max).exp()).sum();
    (f64::from(logits[token as usize] - max).exp() / total) as f32
}

/// P("Yes") for one image: the image then [`FILTER_PROMPT`], one forward pass.
pub fn p_yes<B: Backend>(generator: &Generator<B>, image: image::RgbImage) -> anyhow::Result<f32> {
    let yes = generator.tokenizer.token_to_id(YES).context("the tokenizer has no `Yes` token")?;
    let prompt = generator.prepare(&[ChatMessage::user_with_images(vec![image], FILTER_PROMPT)])?;
    let (logits, _) = generator.prefill(&prompt)?;
    Ok(probability(&logits, yes))
}

/// Scores `files` and writes `out/scores.jsonl` (every image) and `out/kept.txt` (the paths at
/// or above `threshold`), atomically. `progress(done, total)` may stop the run by returning false.
pub fn filter_images<B: Backend>(
    generator: &Generator<B>,
    files: &[PathBuf],
    threshold: f32,
    out: &Path,
    progress: &mut dyn FnMut(usize, usize) -> bool,
) -> anyhow::Result<Vec<InterestScore>> {
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let mut scores = Vec::new();
    for (i, file) in files.iter().enumerate() {
        if !progress(i, files.len()) {
            break;
        }
        let bytes = std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
        let image = decode_rgb(&bytes, &file.display().to_string())?;
        let p = p_yes(generator, image)?;
        scores.push(InterestScore { file: file.display().to_string(), image_hash: content_hash(&bytes), p_yes: p, kept: p >= threshold });
    }
    let mut lines = String::new();
    for s in &scores {
        lines.push_str(&serde_json::to_string(s)?);
        lines.push('\n');
    }
    write_atomically(&out.join("scores.jsonl"), lines.as_bytes())?;
    let kept: String = scores.iter().filter(|s| s.kept).map(|s| format!("{}\n", s.file)).collect();
    write_atomically(&out.join("kept.txt"), kept.as_bytes())?;
    Ok(scores)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probability_is_a_softmax_entry() {
        let logits = [1.0f32, 2.0, 3.0];
        let total: f32 = logits.iter().map(|l| l.exp()).sum();
        for t in 0..3 {
            assert!((probability(&logits, t) - logits[t as usize].exp() / total).abs() < 1e-6);
        }
        // Large logits do not overflow.
        assert!((probability(&[1000.0, 1000.0], 0) - 0.5).abs() < 1e-6);
    }
}
