//! "Why" a result matches: the anonymous captions of a caption bank (the scene captions and the
//! user's own) that fit both the query and the result in the shared MiniLM space.

use std::path::{Path, PathBuf};

use anyhow::Context;
use relsim_shared::protocol::Why;
use relsim_shared::vectors::dot;

use crate::scenes::Relation;

/// Captions a user may add: longer ones are not captions.
pub const MAX_CAPTION_CHARS: usize = 300;
/// At most this many user captions are kept.
pub const MAX_USER_CAPTIONS: usize = 10_000;

/// Embeds captions (the server's MiniLM).
pub type EmbedCaptions<'a> = &'a dyn Fn(&[String]) -> anyhow::Result<Vec<Vec<f32>>>;

/// The caption bank with each caption's MiniLM embedding.
pub struct CaptionBank {
    texts: Vec<String>,
    vectors: Vec<Vec<f32>>,
    user: Vec<String>,
    file: PathBuf,
}

/// The built-in captions: every scene relation's paraphrases.
pub fn scene_captions() -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for relation in Relation::ALL {
        for caption in relation.training_captions().iter().copied().chain([relation.evaluation_caption()]) {
            if !out.iter().any(|c| c == caption) {
                out.push(caption.to_string());
            }
        }
    }
    out
}

impl CaptionBank {
    /// The scene captions and the user's captions saved in `file` (a JSON list), embedded by `embed`.
    pub fn load(file: &Path, embed: EmbedCaptions) -> anyhow::Result<Self> {
        let user: Vec<String> = match std::fs::read(file) {
            Ok(bytes) => serde_json::from_slice(&bytes).with_context(|| format!("parsing {}", file.display()))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(e).with_context(|| format!("reading {}", file.display())),
        };
        let mut texts = scene_captions();
        for caption in &user {
            if !texts.contains(caption) {
                texts.push(caption.clone());
            }
        }
        let vectors = embed(&texts)?;
        Ok(CaptionBank { texts, vectors, user, file: file.to_path_buf() })
    }

    /// Every caption, built-in first.
    pub fn texts(&self) -> &[String] {
        &self.texts
    }

    /// The user's captions.
    pub fn user(&self) -> &[String] {
        &self.user
    }

    /// Adds a user caption (embedded as `vector`) and saves the user list atomically.
    /// Returns false when the bank already holds it.
    pub fn add(&mut self, caption: &str, vector: Vec<f32>) -> anyhow::Result<bool> {
        let caption = caption.trim();
        anyhow::ensure!(!caption.is_empty(), "the caption is empty");
        anyhow::ensure!(caption.chars().count() <= MAX_CAPTION_CHARS, "a caption has at most {MAX_CAPTION_CHARS} characters");
        if self.texts.iter().any(|c| c == caption) {
            return Ok(false);
        }
        anyhow::ensure!(self.user.len() < MAX_USER_CAPTIONS, "the caption bank is full ({MAX_USER_CAPTIONS} user captions)");
        let mut user = self.user.clone();
        user.push(caption.to_string());
        crate::files::write_atomically(&self.file, &serde_json::to_vec_pretty(&user)?)?;
        self.user = user;
        self.texts.push(caption.to_string());
        self.vectors.push(vector);
        Ok(true)
    }

    /// The `n` captions that fit both `query` and `result` best: ranked by the smaller of the
    /// two cosines, so a caption must suit both, not just one.
    pub fn why(&self, query: &[f32], result: &[f32], n: usize) -> Vec<Why> {
        let mut scored: Vec<Why> = self
            .texts
            .iter()
            .zip(&self.vectors)
            .filter(|(_, v)| v.len() == query.len() && v.len() == result.len())
            .map(|(caption, v)| Why { caption: caption.clone(), query: dot(query, v), result: dot(result, v) })
            .collect();
        scored.sort_by(|a, b| b.query.min(b.result).total_cmp(&a.query.min(a.result)));
        scored.truncate(n);
        scored
    }

    /// Captions containing every word of `prefix` (case-insensitive), shortest first: suggestions while typing.
    pub fn suggest(&self, prefix: &str, n: usize) -> Vec<String> {
        let words: Vec<String> = prefix.split_whitespace().map(str::to_lowercase).collect();
        let mut hits: Vec<&String> = self.texts.iter().filter(|c| {
            let c = c.to_lowercase();
            words.iter().all(|w| c.contains(w.as_str()))
        }).collect();
        hits.sort_by_key(|c| c.len());
        hits.into_iter().take(n).cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fake_embed(texts: &[String]) -> anyhow::Result<Vec<Vec<f32>>> {
        // Orthogonal one-hot vectors: caption i lies along axis i.
        let n = texts.len() + 8;
        Ok((0..texts.len()).map(|i| (0..n).map(|j| f32::from(u8::from(i == j))).collect()).collect())
    }

    #[test]
    fn why_ranks_captions_that_fit_both_sides_and_user_captions_persist() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("captions.json");
        let mut bank = CaptionBank::load(&file, &fake_embed).unwrap();
        let n = bank.texts().len() + 8;
        let axis = |i: usize, w: f32| -> Vec<f32> { (0..n).map(|j| if i == j { w } else { 0.0 }).collect() };
        let mix = |parts: &[(usize, f32)]| -> Vec<f32> { (0..n).map(|j| parts.iter().filter(|(i, _)| *i == j).map(|(_, w)| *w).sum()).collect() };
        // Caption 0 suits the query only, caption 1 both moderately, caption 2 the result only.
        let query = mix(&[(0, 0.9), (1, 0.4), (3, 0.1)]);
        let result = mix(&[(2, 0.9), (1, 0.4), (3, 0.2)]);
        let why = bank.why(&query, &result, 3);
        assert_eq!(why[0].caption, bank.texts()[1]);
        assert_eq!(why[1].caption, bank.texts()[3]);
        assert!((why[0].query - 0.4).abs() < 1e-6 && (why[0].result - 0.4).abs() < 1e-6);
        assert_eq!(why.len(), 3);

        let count = bank.texts().len();
        assert!(bank.add("  a chain of {object}s, each holding the next  ", axis(count, 1.0)).unwrap());
        assert!(!bank.add("a chain of {object}s, each holding the next", axis(count, 1.0)).unwrap());
        assert!(bank.add("", axis(0, 1.0)).is_err());
        assert!(bank.add(&"x".repeat(MAX_CAPTION_CHARS + 1), axis(0, 1.0)).is_err());
        let again = CaptionBank::load(&file, &fake_embed).unwrap();
        assert_eq!(again.user(), ["a chain of {object}s, each holding the next".to_string()]);
        assert_eq!(again.texts().len(), count + 1);
        assert!(again.suggest("CHAIN hold", 5)[0].starts_with("a chain"));
    }
}
