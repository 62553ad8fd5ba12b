//! A model's "no good match" cut-off: the relational score above which a best hit is right at
//! least half the time, computed by `relsim eval` on a scene set's validation split and stored
//! beside the model as `calibration.json`; the server marks results below it.

use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::{Deserialize, Serialize};

use crate::files::write_atomically;

/// The file beside a model's weights.
pub const FILE: &str = "calibration.json";

/// The precision the cut-off promises for a best hit above it.
pub const TARGET_PRECISION: f64 = 0.5;

/// A model's cut-offs, one per kind of query (caption vectors score lower than image vectors).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Calibration {
    /// Image queries: relational score at and above which the best hit shares the idea at least
    /// half the time.
    pub image: f32,
    /// Caption queries: the same for anonymous captions.
    pub text: f32,
    /// Precision@1 of the best hits at or above each cut-off, on the calibration queries.
    pub image_precision: f64,
    pub text_precision: f64,
    /// Calibration queries of each kind: every validation image (caption) asked twice, once
    /// with its idea in the library and once with that idea's images taken out.
    pub image_queries: usize,
    pub text_queries: usize,
    /// The scene set and split it was computed on.
    pub data: String,
    pub split: String,
}

/// What a query asks with, for choosing its cut-off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueryKind {
    Image,
    Text,
}

impl Calibration {
    /// The cut-off for a query of `kind`.
    pub fn threshold(&self, kind: QueryKind) -> f32 {
        match kind {
            QueryKind::Image => self.image,
            QueryKind::Text => self.text,
        }
    }

    /// Reads `dir/calibration.json`; None when the model was never calibrated.
    pub fn read(dir: &Path) -> anyhow::Result<Option<Calibration>> {
        let path = dir.join(FILE);
        match std::fs::read(&path) {
            Ok(bytes) => Ok(Some(serde_json::from_slice(&bytes).with_context(|| format!("parsing {}", path.display()))?)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
        }
    }

    /// Writes `dir/calibration.json` (atomically); returns its path.
    pub fn write(&self, dir: &Path) -> anyhow::Result<PathBuf> {
        let path = dir.join(FILE);
        write_atomically(&path, &serde_json::to_vec_pretty(self)?)?;
        Ok(path)
    }
}

/// The calibration stored with image encoder `name` (beside relsim-lite's weights or the Qwen
/// adapter); None for the baselines and for models never calibrated.
pub fn for_encoder(name: &str, options: &crate::encoders::EncoderOptions) -> anyhow::Result<Option<Calibration>> {
    let dir = match name {
        "lite" => Some(options.lite.clone()),
        "qwen" => options.adapter.clone(),
        _ => None,
    };
    dir.map_or(Ok(None), |dir| Calibration::read(&dir))
}

/// The lowest score `t` such that the best hits scoring at least `t` are right at least
/// `precision` of the time, with that share: walking down from the best-scoring hit, the last
/// place where the running precision still reaches the target. None when even the best-scoring
/// hit is wrong more often than that (no cut-off helps).
pub fn cut_off(best_hits: &[(f32, bool)], precision: f64) -> Option<(f32, f64)> {
    let mut sorted: Vec<(f32, bool)> = best_hits.iter().copied().filter(|(s, _)| s.is_finite()).collect();
    sorted.sort_by(|a, b| b.0.total_cmp(&a.0));
    let mut right = 0usize;
    let mut found = None;
    for (i, &(score, hit)) in sorted.iter().enumerate() {
        right += usize::from(hit);
        let share = right as f64 / (i + 1) as f64;
        // Ties move together: a cut-off cannot split equal scores.
        let last_of_tie = sorted.get(i + 1).is_none_or(|next| next.0 < score);
        if share >= precision && last_of_tie {
            found = Some((score, share));
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cut_off_is_the_lowest_score_that_keeps_half_the_best_hits_right() {
        // Running precision from the top: 1, 1, 2/3, 3/4, 3/5, 3/6 (= 0.5), 3/7.
        let hits = [(0.9, true), (0.8, true), (0.7, false), (0.6, true), (0.5, false), (0.4, false), (0.3, false)];
        assert_eq!(cut_off(&hits, 0.5), Some((0.4, 0.5)));
        assert_eq!(cut_off(&hits, 0.7), Some((0.6, 0.75)));
        assert_eq!(cut_off(&[(0.9, false), (0.1, false)], 0.5), None);
        // Equal scores are kept or dropped together.
        assert_eq!(cut_off(&[(0.9, true), (0.5, false), (0.5, false)], 0.5), Some((0.9, 1.0)));
    }

    #[test]
    fn a_missing_file_is_no_calibration_and_a_broken_one_names_itself() {
        let dir = std::env::temp_dir().join(format!("relsim-calibration-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        assert_eq!(Calibration::read(&dir).unwrap(), None);
        let c = Calibration { image: 0.6, text: 0.3, image_precision: 0.51, text_precision: 0.5, image_queries: 10, text_queries: 4, data: "d".into(), split: "val".into() };
        c.write(&dir).unwrap();
        assert_eq!(Calibration::read(&dir).unwrap(), Some(c.clone()));
        assert_eq!(c.threshold(QueryKind::Text), 0.3);
        std::fs::write(dir.join(FILE), b"{").unwrap();
        assert!(format!("{:#}", Calibration::read(&dir).unwrap_err()).contains(FILE));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
