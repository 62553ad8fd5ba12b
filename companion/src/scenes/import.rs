//! Your own captioned images as a training set: the jsonl `relsim caption` writes (`file`,
//! `caption`, `group`) becomes a folder the relsim trainer reads like a scene set
//! (`images/<hash>.png` and `data.jsonl` in the relsim dataset format). Each caption group is one
//! idea (its `relation`); whole ideas go to the validation and test splits, so those measure
//! retrieval by ideas the model never trained on.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::{Deserialize, Serialize};

use super::generate::{Attributes, Record, Split};
use crate::files::{content_hash, write_atomically};

/// One row of the captions jsonl (other fields, such as `image_hash`, are ignored: the hash is
/// taken from the file).
#[derive(Debug, Deserialize)]
struct CaptionLine {
    #[serde(alias = "image")]
    file: PathBuf,
    caption: String,
    /// The group the caption was written for; rows without one are each their own idea, named
    /// by their caption.
    group: Option<serde_json::Value>,
}

/// What an import wrote.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ImportReport {
    pub images: usize,
    pub ideas: usize,
    pub train: usize,
    pub val: usize,
    pub test: usize,
}

/// The split of each idea: ideas ordered by a hash of their images, a tenth (at least one, when
/// there are three or more ideas) to test, a tenth to validation, the rest to training.
fn split_ideas(ideas: &BTreeMap<String, Vec<String>>) -> BTreeMap<String, Split> {
    let mut order: Vec<(String, &String)> = ideas.iter().map(|(idea, hashes)| (content_hash(hashes.join(",").as_bytes()), idea)).collect();
    order.sort();
    let n = order.len();
    let held = if n >= 3 { n.div_ceil(10) } else { 0 };
    order
        .into_iter()
        .enumerate()
        .map(|(i, (_, idea))| {
            let split = if i < held {
                Split::Test
            } else if i < 2 * held {
                Split::Val
            } else {
                Split::Train
            };
            (idea.clone(), split)
        })
        .collect()
}

/// Reads `captions` (paths relative to its folder) and writes the training folder `out`.
pub fn import_captions(captions: &Path, out: &Path) -> anyhow::Result<ImportReport> {
    let text = std::fs::read_to_string(captions).with_context(|| format!("reading {}", captions.display()))?;
    let dir = captions.parent().unwrap_or(Path::new("."));
    anyhow::ensure!(!out.join("data.jsonl").exists(), "{} already holds a data set: choose another --out", out.display());
    let images_dir = out.join("images");
    std::fs::create_dir_all(&images_dir).with_context(|| format!("creating {}", images_dir.display()))?;
    // hash → (caption, idea); the first row of an image wins.
    let mut rows: BTreeMap<String, (String, String)> = BTreeMap::new();
    let mut order = Vec::new();
    for (i, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        let at = || format!("{} line {}", captions.display(), i + 1);
        let row: CaptionLine = serde_json::from_str(line).with_context(|| format!("{}: expected {{\"file\": ..., \"caption\": ...}}", at()))?;
        anyhow::ensure!(!row.caption.trim().is_empty(), "{}: an empty caption", at());
        let file = dir.join(&row.file);
        let bytes = std::fs::read(&file).with_context(|| format!("{}: reading {}", at(), file.display()))?;
        let image = relsim_shared::image::preprocess::decode_rgb(&bytes, &file.display().to_string())?;
        let hash = content_hash(&bytes);
        let idea = match row.group {
            Some(group) => format!("group {}", group.as_str().map(str::to_string).unwrap_or_else(|| group.to_string())),
            None => row.caption.trim().to_string(),
        };
        if rows.contains_key(&hash) {
            continue;
        }
        let target = images_dir.join(format!("{hash}.png"));
        image.save(&target).with_context(|| format!("writing {}", target.display()))?;
        rows.insert(hash.clone(), (row.caption.trim().to_string(), idea));
        order.push(hash);
    }
    anyhow::ensure!(!order.is_empty(), "{} holds no captioned images", captions.display());
    let mut ideas: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for hash in &order {
        ideas.entry(rows[hash].1.clone()).or_default().push(hash.clone());
    }
    let splits = split_ideas(&ideas);
    let mut lines = String::new();
    let mut report = ImportReport { images: order.len(), ideas: ideas.len(), train: 0, val: 0, test: 0 };
    for hash in &order {
        let (caption, idea) = &rows[hash];
        let split = splits[idea];
        match split {
            Split::Train => report.train += 1,
            Split::Val => report.val += 1,
            Split::Test => report.test += 1,
        }
        let record = Record { image_hash: hash.clone(), caption: caption.clone(), relation: idea.clone(), second_relation: None, split, attributes: Attributes::default() };
        lines.push_str(&serde_json::to_string(&record)?);
        lines.push('\n');
    }
    write_atomically(&out.join("data.jsonl"), lines.as_bytes())?;
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenes::generate::read_records;

    #[test]
    fn caption_groups_become_ideas_split_whole() {
        let dir = tempfile::tempdir().unwrap();
        let mut jsonl = String::new();
        for g in 0..12 {
            for k in 0..2 {
                let image = image::RgbImage::from_pixel(8 + k, 8, image::Rgb([g as u8 * 20, k as u8 * 100, 7]));
                let name = format!("g{g}_{k}.png");
                image.save(dir.path().join(&name)).unwrap();
                jsonl.push_str(&serde_json::json!({ "file": name, "caption": format!("idea {g} of {{subject}}"), "group": g, "image_hash": "ignored" }).to_string());
                jsonl.push('\n');
            }
        }
        // A copy of an image already listed counts once.
        jsonl.push_str(&serde_json::json!({ "file": "g0_0.png", "caption": "again", "group": 0 }).to_string());
        let captions = dir.path().join("captions.jsonl");
        std::fs::write(&captions, jsonl).unwrap();
        let out = dir.path().join("data");
        let report = import_captions(&captions, &out).unwrap();
        assert_eq!(report, ImportReport { images: 24, ideas: 12, train: 16, val: 4, test: 4 }, "two ideas of two images each held out for val and for test");
        let records = read_records(&out, None).unwrap();
        assert_eq!(records.len(), 24);
        for pair in records.chunks(2) {
            assert_eq!((pair[0].relation.as_str(), pair[0].split), (pair[1].relation.as_str(), pair[1].split), "an idea stays in one split");
            assert!(out.join("images").join(format!("{}.png", pair[0].image_hash)).is_file());
        }
        assert_eq!(records[0].relation, "group 0");
        assert!(import_captions(&captions, &out).unwrap_err().to_string().contains("already holds"));
    }
}
