//! Anonymous captions, the relsim way: a vision-language model looks at a group of images that
//! share one idea (or at one image) and writes one caption of that idea, with `{placeholders}`
//! where the images differ. A caption that has no placeholder, or names a concrete object or a
//! colour, is rejected and asked for again. The result is the relsim dataset's jsonl
//! (`image_hash`, `caption`), one row per image.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};

use anyhow::Context;
use burn::tensor::backend::Backend;
use image::RgbImage;
use relsim_shared::image::preprocess::decode_rgb;
use serde::{Deserialize, Serialize};

use crate::files::{content_hash, write_atomically};
use crate::qwen::chat::ChatMessage;
use crate::qwen::generate::{GenerateOptions, Generator, Sampling};

/// What the model is asked for a group: our words for the intent of relsim's group prompt
/// (find the logic the images share, one reusable caption, placeholders where they differ).
pub const GROUP_PROMPT: &str = "These images were chosen because they share one idea: the same logic, layout, structure or creative concept, shown with different things. Work out that shared idea, then write one short caption that describes it, so that it fits every image here and any other image built on the same idea. Wherever the images differ (objects, subjects, colours, materials, words), write a placeholder in curly braces instead of the concrete word, for example {Object}, {Subject}, {Color}, or {Stage 1} and {Stage 2}. Reply with the caption alone.";

/// What the model is asked for a single image (the captioner trained on group captions).
pub const SINGLE_PROMPT: &str = "This image is built on an idea: a logic, layout, structure or creative concept that other images could share with different content. Work out that idea and write one short caption of it that would fit any image built the same way. Wherever the content could change, write a placeholder in curly braces, for example {Object}, {Subject} or {Color}, never the concrete thing itself. Reply with the caption alone.";

/// Why a caption was not kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rejection {
    Empty,
    /// No `{placeholder}`: the caption is not anonymous.
    NoPlaceholder,
    /// A `{` without its `}` (or the reverse).
    UnbalancedBraces,
    /// Names a concrete thing outside the braces.
    Object(String),
    /// Names a colour outside the braces.
    Colour(String),
}

impl Rejection {
    /// A short name for counting.
    pub fn kind(&self) -> &'static str {
        match self {
            Rejection::Empty => "empty",
            Rejection::NoPlaceholder => "no placeholder",
            Rejection::UnbalancedBraces => "unbalanced braces",
            Rejection::Object(_) => "names an object",
            Rejection::Colour(_) => "names a colour",
        }
    }
}

impl std::fmt::Display for Rejection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Rejection::Object(word) => write!(f, "names an object (`{word}`) outside the placeholders"),
            Rejection::Colour(word) => write!(f, "names a colour (`{word}`) outside the placeholders"),
            other => f.write_str(other.kind()),
        }
    }
}

/// The anonymity check: word lists of concrete things and colours (shipped in
/// `assets/anonymity/`, one word a line, `#` comments).
pub struct Anonymity {
    objects: HashSet<String>,
    colours: HashSet<String>,
}

fn word_list(text: &str) -> HashSet<String> {
    text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')).map(str::to_lowercase).collect()
}

impl Default for Anonymity {
    fn default() -> Self {
        Self::shipped()
    }
}

impl Anonymity {
    /// The project's lists.
    pub fn shipped() -> Self {
        Self {
            objects: word_list(include_str!("../../assets/anonymity/objects.txt")),
            colours: word_list(include_str!("../../assets/anonymity/colours.txt")),
        }
    }

    /// The lists in `objects` and `colours` (files in the shipped format).
    pub fn from_files(objects: &Path, colours: &Path) -> anyhow::Result<Self> {
        let read = |p: &Path| std::fs::read_to_string(p).with_context(|| format!("reading the word list {}", p.display()));
        Ok(Self { objects: word_list(&read(objects)?), colours: word_list(&read(colours)?) })
    }

    /// The forms a word of the lists may take in a caption: itself and its plural.
    fn lookup<'a>(list: &'a HashSet<String>, word: &str) -> Option<&'a String> {
        let singular = [
            Some(word.to_string()),
            word.strip_suffix("ies").map(|s| format!("{s}y")),
            word.strip_suffix("es").map(str::to_string),
            word.strip_suffix('s').map(str::to_string),
            word.strip_suffix("ves").map(|s| format!("{s}f")),
        ];
        singular.into_iter().flatten().find_map(|w| list.get(&w))
    }

    /// Ok when `caption` has a placeholder and names no object or colour outside braces.
    pub fn check(&self, caption: &str) -> Result<(), Rejection> {
        if caption.trim().is_empty() {
            return Err(Rejection::Empty);
        }
        let mut outside = String::new();
        let (mut depth, mut placeholders, mut current) = (0usize, 0usize, String::new());
        for ch in caption.chars() {
            match ch {
                '{' => {
                    depth += 1;
                    current.clear();
                    outside.push(' ');
                }
                '}' if depth == 0 => return Err(Rejection::UnbalancedBraces),
                '}' => {
                    depth -= 1;
                    if !current.trim().is_empty() {
                        placeholders += 1;
                    }
                }
                c if depth > 0 => current.push(c),
                c => outside.push(c),
            }
        }
        if depth > 0 {
            return Err(Rejection::UnbalancedBraces);
        }
        for word in outside.split(|c: char| !c.is_alphabetic()).filter(|w| !w.is_empty()) {
            let word = word.to_lowercase();
            if let Some(w) = Self::lookup(&self.colours, &word) {
                return Err(Rejection::Colour(w.clone()));
            }
            if let Some(w) = Self::lookup(&self.objects, &word) {
                return Err(Rejection::Object(w.clone()));
            }
        }
        if placeholders == 0 {
            return Err(Rejection::NoPlaceholder);
        }
        Ok(())
    }
}

/// A model's answer made tidy: trimmed, one line, without the quotes relsim's captioner was
/// trained to put around it.
pub fn tidy(answer: &str) -> String {
    let one_line = answer.split_whitespace().collect::<Vec<_>>().join(" ");
    let mut s = one_line.as_str();
    for (open, close) in [('"', '"'), ('“', '”'), ('\'', '\'')] {
        if s.len() >= 2 && s.starts_with(open) && s.ends_with(close) {
            s = &s[open.len_utf8()..s.len() - close.len_utf8()];
        }
    }
    s.trim().to_string()
}

/// Writes captions: a vision-language model, or anything else that answers a prompt about images.
pub trait Captioner {
    /// One answer to `prompt` about `images`; `attempt` counts from 0 (a sampled captioner
    /// draws a different answer each time).
    fn caption(&mut self, images: &[RgbImage], prompt: &str, attempt: usize) -> anyhow::Result<String>;
}

/// Qwen2.5-VL as the captioner: the images then the prompt in one user turn, sampled.
pub struct QwenCaptioner<'a, B: Backend> {
    pub generator: &'a Generator<B>,
    /// How to generate; a sampled one's seed moves on with each attempt.
    pub options: GenerateOptions,
}

impl<B: Backend> Captioner for QwenCaptioner<'_, B> {
    fn caption(&mut self, images: &[RgbImage], prompt: &str, attempt: usize) -> anyhow::Result<String> {
        let chat = [ChatMessage::user_with_images(images.to_vec(), prompt)];
        let prepared = self.generator.prepare(&chat)?;
        let mut options = self.options.clone();
        if let Sampling::Sample { seed, .. } = &mut options.sampling {
            *seed = seed.wrapping_add(attempt as u64);
        }
        Ok(self.generator.generate(&prepared, &options, |_| true)?.text)
    }
}

/// What is captioned at once.
#[derive(Debug, Clone, PartialEq)]
pub enum Unit {
    /// Images that share one idea: one caption for all of them.
    Group(Vec<PathBuf>),
    /// One image, its own caption.
    Single(PathBuf),
}

impl Unit {
    fn files(&self) -> &[PathBuf] {
        match self {
            Unit::Group(files) => files,
            Unit::Single(file) => std::slice::from_ref(file),
        }
    }
}

/// One line of a groups file: `{"images": ["a.png", "b.png"]}` (paths relative to the file).
#[derive(Deserialize)]
struct GroupLine {
    images: Vec<PathBuf>,
}

/// The groups of a jsonl file, one group a line.
pub fn read_groups(path: &Path) -> anyhow::Result<Vec<Unit>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let dir = path.parent().unwrap_or(Path::new("."));
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, line)| {
            let group: GroupLine = serde_json::from_str(line).with_context(|| format!("{} line {}: expected {{\"images\": [...]}}", path.display(), i + 1))?;
            anyhow::ensure!(!group.images.is_empty(), "{} line {}: a group without images", path.display(), i + 1);
            Ok(Unit::Group(group.images.into_iter().map(|p| dir.join(p)).collect()))
        })
        .collect()
}

/// One row of the output: the relsim dataset's fields, and where the image came from.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct CaptionRow {
    pub image_hash: String,
    pub caption: String,
    pub file: String,
    /// The group's number in the input (a single image is a group of one).
    pub group: usize,
}

/// What a captioning run did.
#[derive(Debug, Default, Serialize)]
pub struct CaptionReport {
    pub units: usize,
    /// Units with an accepted caption.
    pub captioned: usize,
    /// Rows written (one per image of a captioned unit).
    pub rows: usize,
    /// Answers rejected, in all.
    pub rejected: usize,
    /// Rejections by reason.
    pub reasons: BTreeMap<String, usize>,
    /// Units without an acceptable caption after every attempt: their first file and last rejection.
    pub failed: Vec<(String, String)>,
    /// True when the caller stopped the run early.
    pub cancelled: bool,
}

/// Captions `units` with `captioner` (the group prompt for groups, the single prompt for single
/// images), up to `1 + retries` answers each until one passes `anonymity`, and writes the
/// rows to `out` (jsonl, atomically; on cancellation, what was done). `progress(done, total)`
/// may stop the run by returning false.
pub fn caption_units(
    units: &[Unit],
    captioner: &mut dyn Captioner,
    anonymity: &Anonymity,
    retries: usize,
    out: &Path,
    progress: &mut dyn FnMut(usize, usize) -> bool,
) -> anyhow::Result<CaptionReport> {
    let mut report = CaptionReport { units: units.len(), ..Default::default() };
    let mut rows = Vec::new();
    for (index, unit) in units.iter().enumerate() {
        if !progress(index, units.len()) {
            report.cancelled = true;
            break;
        }
        let mut images = Vec::new();
        let mut hashes = Vec::new();
        for file in unit.files() {
            let bytes = std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
            images.push(decode_rgb(&bytes, &file.display().to_string())?);
            hashes.push(content_hash(&bytes));
        }
        let prompt = if matches!(unit, Unit::Group(_)) { GROUP_PROMPT } else { SINGLE_PROMPT };
        let mut last = None;
        for attempt in 0..=retries {
            let caption = tidy(&captioner.caption(&images, prompt, attempt)?);
            match anonymity.check(&caption) {
                Ok(()) => {
                    for (file, hash) in unit.files().iter().zip(&hashes) {
                        rows.push(CaptionRow { image_hash: hash.clone(), caption: caption.clone(), file: file.display().to_string(), group: index });
                    }
                    report.captioned += 1;
                    last = None;
                    break;
                }
                Err(why) => {
                    report.rejected += 1;
                    *report.reasons.entry(why.kind().to_string()).or_default() += 1;
                    tracing::debug!("{}: rejected {caption:?}: {why}", unit.files()[0].display());
                    last = Some(why);
                }
            }
        }
        if let Some(why) = last {
            report.failed.push((unit.files()[0].display().to_string(), why.to_string()));
        }
    }
    if !report.cancelled {
        progress(units.len(), units.len());
    }
    report.rows = rows.len();
    let mut text = String::new();
    for row in &rows {
        text.push_str(&serde_json::to_string(row)?);
        text.push('\n');
    }
    write_atomically(out, text.as_bytes())?;
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn anonymous_captions_pass_and_concrete_ones_are_told_why_not() {
        let a = Anonymity::shipped();
        assert_eq!(a.check("The growth stages of {Subject}, from {Stage 1} to {Stage 4}."), Ok(()));
        assert_eq!(a.check("One {Object} stands out among many identical ones."), Ok(()));
        assert_eq!(a.check("Apples grow on trees."), Err(Rejection::Object("apple".into())));
        assert_eq!(a.check("A {Object} painted red."), Err(Rejection::Colour("red".into())));
        assert_eq!(a.check("Three butterflies in a row of {Object}."), Err(Rejection::Object("butterfly".into())));
        assert_eq!(a.check("Leaves of {Plant} in a spiral."), Err(Rejection::Object("leaf".into())), "-ves plurals");
        assert_eq!(a.check("Things arranged from small to large."), Err(Rejection::NoPlaceholder));
        assert_eq!(a.check("A {Object arranged"), Err(Rejection::UnbalancedBraces));
        assert_eq!(a.check("A } b"), Err(Rejection::UnbalancedBraces));
        assert_eq!(a.check("{}"), Err(Rejection::NoPlaceholder), "an empty placeholder is none");
        assert_eq!(a.check("  "), Err(Rejection::Empty));
        // Inside braces anything goes: the placeholder names what varies.
        assert_eq!(a.check("{Red apple} beside {Green apple}, the same size."), Ok(()));
    }

    #[test]
    fn answers_are_tidied() {
        assert_eq!(tidy("  \"This image shows {Subject}\n growing.\"  "), "This image shows {Subject} growing.");
        assert_eq!(tidy("“{A} then {B}”"), "{A} then {B}");
    }

    /// Answers from a script, one per call.
    struct Scripted(Vec<&'static str>, Vec<(usize, usize, String)>);

    impl Captioner for Scripted {
        fn caption(&mut self, images: &[RgbImage], prompt: &str, attempt: usize) -> anyhow::Result<String> {
            self.1.push((images.len(), attempt, prompt.to_string()));
            Ok(self.0.remove(0).to_string())
        }
    }

    #[test]
    fn a_run_retries_rejected_answers_and_writes_one_row_per_image() {
        let dir = std::env::temp_dir().join(format!("relsim-captions-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = |name: &str, shade: u8| {
            let path = dir.join(name);
            RgbImage::from_pixel(4, 4, image::Rgb([shade, 0, 0])).save(&path).unwrap();
            path
        };
        let (a, b, c) = (file("a.png", 10), file("b.png", 20), file("c.png", 30));
        let units = [Unit::Group(vec![a.clone(), b.clone()]), Unit::Single(c.clone())];
        let mut model = Scripted(vec!["A red {Object}.", "\"{Subject} in stages.\"", "a cat", "dogs", "no braces"], Vec::new());
        let out = dir.join("captions.jsonl");
        let mut calls = Vec::new();
        let report = caption_units(&units, &mut model, &Anonymity::shipped(), 2, &out, &mut |done, total| {
            calls.push((done, total));
            true
        })
        .unwrap();
        assert_eq!((report.units, report.captioned, report.rows, report.rejected), (2, 1, 2, 4));
        assert_eq!(report.reasons["names a colour"], 1);
        assert_eq!(report.reasons["names an object"], 2);
        assert_eq!(report.failed.len(), 1);
        assert!(report.failed[0].0.ends_with("c.png") && report.failed[0].1.contains("placeholder"), "{:?}", report.failed);
        // The group saw both images and the group prompt, twice; the single image its own prompt, three times.
        let seen: Vec<(usize, usize, bool)> = model.1.iter().map(|(n, attempt, p)| (*n, *attempt, p == GROUP_PROMPT)).collect();
        assert_eq!(seen, vec![(2, 0, true), (2, 1, true), (1, 0, false), (1, 1, false), (1, 2, false)]);
        let rows: Vec<CaptionRow> = std::fs::read_to_string(&out).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        assert_eq!(rows.len(), 2);
        assert!(rows.iter().all(|r| r.caption == "{Subject} in stages." && r.group == 0));
        assert_eq!(rows[0].image_hash, content_hash(&std::fs::read(&a).unwrap()));
        assert_ne!(rows[0].image_hash, rows[1].image_hash);
        assert_eq!(calls, vec![(0, 2), (1, 2), (2, 2)]);

        // Stopped before the second unit: the first unit's rows are written.
        let mut model = Scripted(vec!["{X} and {Y}"], Vec::new());
        let report = caption_units(&units, &mut model, &Anonymity::shipped(), 0, &out, &mut |done, _| done < 1).unwrap();
        assert!(report.cancelled);
        assert_eq!(std::fs::read_to_string(&out).unwrap().lines().count(), 2);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
