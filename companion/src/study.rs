//! The human A/B study of the paper: for query images, each method's top hit; people choose which
//! of two hits shares the query's idea (or call it a tie), and the report gives win/tie/loss rates
//! per pair of methods with 95% confidence intervals.
//!
//! A study is a folder: `study.json` (the trials), `images/` (copies of every image shown, so the
//! study travels and the server serves nothing else) and `answers.log`, an append-only log of
//! checksummed frames like the library index (an answer acknowledged is on disk; a crash loses at
//! most a torn last frame, dropped at the next open).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use anyhow::Context;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rayon::prelude::*;
use relsim_shared::protocol::{StudyAnswer, StudyChoice};
use serde::{Deserialize, Serialize};

use crate::encoders::EncoderOptions;
use crate::files::{content_hash, write_atomically};

/// The study file's format name.
pub const FORMAT: &str = "relsim-study/1";
/// The trials.
pub const STUDY_FILE: &str = "study.json";
/// The answers.
pub const ANSWERS_FILE: &str = "answers.log";
/// z for a two-sided 95% interval.
const Z95: f64 = 1.959_963_984_540_054;

/// One method's image in a trial.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shown {
    pub method: String,
    /// Content hash (a key of [`Study::images`]).
    pub image: String,
}

/// One question to people: which of `left` and `right` shares the idea of `query`?
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Trial {
    pub id: usize,
    pub query: String,
    pub left: Shown,
    pub right: Shown,
}

/// A query and every method's top hit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueryHits {
    pub query: String,
    /// Method → its top hit.
    pub hits: BTreeMap<String, String>,
}

/// What `study make` writes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Study {
    pub format: String,
    pub methods: Vec<String>,
    /// Content hash → file name under `images/`.
    pub images: BTreeMap<String, String>,
    pub queries: Vec<QueryHits>,
    /// Trials in the order people see them (method pairs whose top hits differ; sides random).
    pub trials: Vec<Trial>,
}

/// What `study make` needs.
pub struct MakeOptions<'a> {
    /// The queries, the pool and the methods.
    pub hits: HitOptions<'a>,
    /// The study folder to write.
    pub out: &'a Path,
}

/// The image files under `dir`, in path order.
fn image_files(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    anyhow::ensure!(dir.is_dir(), "{} does not exist or is not a folder", dir.display());
    let mut out = Vec::new();
    for entry in walkdir::WalkDir::new(dir).sort_by_file_name() {
        let entry = entry.with_context(|| format!("reading {}", dir.display()))?;
        if entry.file_type().is_file() && crate::library::is_image_file(entry.path()) {
            out.push(entry.into_path());
        }
    }
    Ok(out)
}

/// What [`top_hits`] needs.
pub struct HitOptions<'a> {
    /// A folder of images (searched recursively): the queries and the pool they search.
    pub data: &'a Path,
    pub methods: &'a [String],
    pub queries: usize,
    pub seed: u64,
    pub encoders: &'a EncoderOptions,
    /// Told each method's name and the images it is about to embed (the slow part).
    pub on_method: &'a dyn Fn(&str, usize),
}

/// Query images drawn from a folder, and each method's top hit among the others.
pub struct TopHits {
    /// The methods, trimmed, in the order given.
    pub methods: Vec<String>,
    pub queries: Vec<QueryHits>,
    /// Content hash → the first file with that content, for every query and hit.
    pub files: BTreeMap<String, PathBuf>,
    /// The draws' generator, moved on past the queries' draw (a study goes on drawing sides).
    pub rng: rand_chacha::ChaCha8Rng,
}

/// Picks `queries` images of the folder at random and finds each method's top hit among the
/// others (the same content never counts as a hit). Only regular files inside the folder are
/// read: symbolic links are not followed.
pub fn top_hits(options: &HitOptions) -> anyhow::Result<TopHits> {
    let methods: Vec<String> = options.methods.iter().map(|m| m.trim().to_string()).filter(|m| !m.is_empty()).collect();
    anyhow::ensure!(!methods.is_empty(), "name at least one method (--methods a,b)");
    anyhow::ensure!(methods.iter().collect::<BTreeSet<_>>().len() == methods.len(), "--methods names a method twice");
    anyhow::ensure!(options.queries >= 1, "--queries must be at least 1");
    let files = image_files(options.data)?;
    // Decoded once, by content (copies of one image are one image).
    let decoded: Vec<(String, PathBuf, image::RgbImage)> = files
        .par_iter()
        .filter_map(|path| {
            let bytes = std::fs::read(path).ok()?;
            match relsim_shared::image::preprocess::decode_rgb(&bytes, &path.display().to_string()) {
                Ok(image) => Some((content_hash(&bytes), path.clone(), image)),
                Err(e) => {
                    tracing::warn!("skipping {e}");
                    None
                }
            }
        })
        .collect();
    let mut seen = BTreeSet::new();
    // The distinct images, their content hashes and first paths side by side (decoded once, held once).
    let mut hashes = Vec::new();
    let mut paths = Vec::new();
    let mut images: Vec<image::RgbImage> = Vec::new();
    for (hash, path, image) in decoded.into_iter().filter(|(h, _, _)| seen.insert(h.clone())) {
        hashes.push(hash);
        paths.push(path);
        images.push(image);
    }
    anyhow::ensure!(images.len() > options.queries, "{} holds {} distinct images: {} queries need more (each query searches the others)", options.data.display(), images.len(), options.queries);
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(options.seed);
    let mut order: Vec<usize> = (0..images.len()).collect();
    order.shuffle(&mut rng);
    let picked = &order[..options.queries];

    let mut hits: Vec<BTreeMap<String, String>> = vec![BTreeMap::new(); picked.len()];
    let mut used = BTreeSet::new();
    for method in &methods {
        (options.on_method)(method, images.len());
        let encoder = crate::encoders::by_name(method, options.encoders)?;
        let vectors = encoder.embed_batch(&images).with_context(|| format!("embedding {} images with `{method}`", images.len()))?;
        for (q, &row) in picked.iter().enumerate() {
            let best = (0..images.len())
                .filter(|&other| other != row)
                .max_by(|&a, &b| relsim_shared::vectors::dot(&vectors[row], &vectors[a]).total_cmp(&relsim_shared::vectors::dot(&vectors[row], &vectors[b])))
                .expect("the pool holds more than the query");
            hits[q].insert(method.clone(), hashes[best].clone());
            used.extend([row, best]);
        }
    }
    let queries: Vec<QueryHits> = picked.iter().zip(hits).map(|(&row, hits)| QueryHits { query: hashes[row].clone(), hits }).collect();
    let files = used.into_iter().map(|row| (hashes[row].clone(), paths[row].clone())).collect();
    Ok(TopHits { methods, queries, files, rng })
}

impl Study {
    /// Picks `queries` images of the folder at random, finds each method's top hit among the
    /// others (the same content never counts as a hit), and writes the study folder.
    pub fn make(options: &MakeOptions) -> anyhow::Result<Study> {
        let methods = options.hits.methods;
        anyhow::ensure!(methods.iter().filter(|m| !m.trim().is_empty()).count() >= 2, "a study compares at least two methods (--methods a,b), got {}", methods.len());
        anyhow::ensure!(!options.out.join(STUDY_FILE).exists(), "{} already holds a study: choose another --out (its answers stay as they are)", options.out.display());
        let TopHits { methods, queries, files, mut rng } = top_hits(&options.hits)?;

        let mut trials = Vec::new();
        for q in &queries {
            for (i, a) in methods.iter().enumerate() {
                for b in &methods[i + 1..] {
                    let (ha, hb) = (&q.hits[a], &q.hits[b]);
                    if ha == hb {
                        continue;
                    }
                    let (sa, sb) = (Shown { method: a.clone(), image: ha.clone() }, Shown { method: b.clone(), image: hb.clone() });
                    let (left, right) = if rng.random::<bool>() { (sa, sb) } else { (sb, sa) };
                    trials.push(Trial { id: 0, query: q.query.clone(), left, right });
                }
            }
        }
        trials.shuffle(&mut rng);
        for (id, t) in trials.iter_mut().enumerate() {
            t.id = id;
        }

        // Copy every image shown, named by its content.
        let dir = options.out.join("images");
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let mut names = BTreeMap::new();
        for (hash, path) in &files {
            let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("img").to_ascii_lowercase();
            let name = format!("{hash}.{ext}");
            std::fs::copy(path, dir.join(&name)).with_context(|| format!("copying {} into {}", path.display(), dir.display()))?;
            names.insert(hash.clone(), name);
        }
        let study = Study { format: FORMAT.into(), methods, images: names, queries, trials };
        write_atomically(&options.out.join(STUDY_FILE), &serde_json::to_vec_pretty(&study)?)?;
        Ok(study)
    }

    /// Reads `dir/study.json`.
    pub fn open(dir: &Path) -> anyhow::Result<Study> {
        let path = dir.join(STUDY_FILE);
        let bytes = std::fs::read(&path).with_context(|| format!("reading {} (make a study with `relsim study make`)", path.display()))?;
        let study: Study = serde_json::from_slice(&bytes).with_context(|| format!("{} is not a study", path.display()))?;
        anyhow::ensure!(study.format == FORMAT, "{}: format `{}`, this build reads `{FORMAT}`", path.display(), study.format);
        for t in &study.trials {
            for image in [&t.query, &t.left.image, &t.right.image] {
                anyhow::ensure!(study.images.contains_key(image), "{}: trial {} shows image {image}, which the study lacks", path.display(), t.id);
            }
        }
        Ok(study)
    }

    /// The file of image `hash` inside the study folder `dir`.
    pub fn image_path(&self, dir: &Path, hash: &str) -> Option<PathBuf> {
        self.images.get(hash).map(|name| dir.join("images").join(name))
    }
}

/// The answers: each made durable before it is acknowledged.
pub type AnswerLog = crate::files::FrameLog<StudyAnswer>;

/// A proportion with its 95% Wilson score interval.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Rate {
    pub rate: f64,
    pub low: f64,
    pub high: f64,
}

/// `k` of `n` with its 95% Wilson interval (sound for small `n` and rates near 0 or 1).
pub fn wilson(k: usize, n: usize) -> Rate {
    if n == 0 {
        return Rate { rate: f64::NAN, low: 0.0, high: 1.0 };
    }
    let (n, p) = (n as f64, k as f64 / n as f64);
    let z2 = Z95 * Z95;
    let centre = (p + z2 / (2.0 * n)) / (1.0 + z2 / n);
    let half = Z95 * (p * (1.0 - p) / n + z2 / (4.0 * n * n)).sqrt() / (1.0 + z2 / n);
    Rate { rate: p, low: (centre - half).max(0.0), high: (centre + half).min(1.0) }
}

/// One pair of methods in the report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PairReport {
    pub a: String,
    pub b: String,
    /// Answers to this pair's trials.
    pub answers: usize,
    pub a_wins: usize,
    pub ties: usize,
    pub b_wins: usize,
    pub a_win_rate: Rate,
    pub tie_rate: Rate,
    pub b_win_rate: Rate,
    /// Queries where both methods found the same image (no trial asked; not in the rates).
    pub same_hit: usize,
}

/// Win/tie/loss per pair of methods, in the order the study names them.
pub fn report(study: &Study, answers: &[StudyAnswer]) -> Vec<PairReport> {
    let trials: BTreeMap<usize, &Trial> = study.trials.iter().map(|t| (t.id, t)).collect();
    let mut out = Vec::new();
    for (i, a) in study.methods.iter().enumerate() {
        for b in &study.methods[i + 1..] {
            let (mut a_wins, mut ties, mut b_wins) = (0, 0, 0);
            for answer in answers {
                let Some(t) = trials.get(&answer.trial) else { continue };
                let methods = [&t.left.method, &t.right.method];
                if !(methods.contains(&a) && methods.contains(&b)) {
                    continue;
                }
                let chosen = match answer.choice {
                    StudyChoice::Tie => {
                        ties += 1;
                        continue;
                    }
                    StudyChoice::Left => &t.left.method,
                    StudyChoice::Right => &t.right.method,
                };
                if chosen == a {
                    a_wins += 1;
                } else {
                    b_wins += 1;
                }
            }
            let n = a_wins + ties + b_wins;
            let same_hit = study.queries.iter().filter(|q| q.hits.get(a) == q.hits.get(b)).count();
            out.push(PairReport {
                a: a.clone(),
                b: b.clone(),
                answers: n,
                a_wins,
                ties,
                b_wins,
                a_win_rate: wilson(a_wins, n),
                tie_rate: wilson(ties, n),
                b_win_rate: wilson(b_wins, n),
                same_hit,
            });
        }
    }
    out
}

/// The report as a table.
pub fn report_table(pairs: &[PairReport]) -> String {
    let rate = |r: &Rate| if r.rate.is_nan() { "—".to_string() } else { format!("{:.3} [{:.3}, {:.3}]", r.rate, r.low, r.high) };
    let mut out = format!("{:<34} {:>7}  {:<22} {:<22} {:<22} {:>8}\n", "A vs B", "answers", "A wins [95% CI]", "ties [95% CI]", "B wins [95% CI]", "same hit");
    for p in pairs {
        out.push_str(&format!("{:<34} {:>7}  {:<22} {:<22} {:<22} {:>8}\n", format!("{} vs {}", p.a, p.b), p.answers, rate(&p.a_win_rate), rate(&p.tie_rate), rate(&p.b_win_rate), p.same_hit));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wilson_intervals_match_the_formula_s_known_values() {
        // Reference values: statsmodels' proportion_confint(k, n, method="wilson").
        let r = wilson(7, 10);
        assert!((r.low - 0.396_778).abs() < 1e-5 && (r.high - 0.892_209).abs() < 1e-5, "{r:?}");
        let r = wilson(0, 20);
        assert!(r.low.abs() < 1e-12 && (r.high - 0.161_125).abs() < 1e-5, "{r:?}");
        let r = wilson(20, 20);
        assert!((r.low - 0.838_875).abs() < 1e-5 && (r.high - 1.0).abs() < 1e-12, "{r:?}");
        assert!(wilson(0, 0).rate.is_nan());
    }

    #[test]
    fn answers_count_for_the_method_chosen_whatever_its_side() {
        let shown = |m: &str, i: &str| Shown { method: m.into(), image: i.into() };
        let mut images = BTreeMap::new();
        for h in ["q", "x", "y", "z"] {
            images.insert(h.to_string(), format!("{h}.png"));
        }
        let hits = |a: &str, b: &str, c: &str| QueryHits { query: "q".into(), hits: [("a", a), ("b", b), ("c", c)].iter().map(|(m, h)| (m.to_string(), h.to_string())).collect() };
        let study = Study {
            format: FORMAT.into(),
            methods: vec!["a".into(), "b".into(), "c".into()],
            images,
            queries: vec![hits("x", "y", "y"), hits("x", "x", "z")],
            trials: vec![
                Trial { id: 0, query: "q".into(), left: shown("a", "x"), right: shown("b", "y") },
                Trial { id: 1, query: "q".into(), left: shown("b", "y"), right: shown("a", "x") },
                Trial { id: 2, query: "q".into(), left: shown("c", "z"), right: shown("a", "x") },
            ],
        };
        let answer = |trial, choice| StudyAnswer { trial, choice, session: "s".into() };
        let answers = [answer(0, StudyChoice::Left), answer(1, StudyChoice::Right), answer(1, StudyChoice::Left), answer(0, StudyChoice::Tie), answer(2, StudyChoice::Left), answer(9, StudyChoice::Left)];
        let r = report(&study, &answers);
        let ab = &r[0];
        assert_eq!((ab.a.as_str(), ab.b.as_str(), ab.answers, ab.a_wins, ab.ties, ab.b_wins, ab.same_hit), ("a", "b", 4, 2, 1, 1, 1));
        assert_eq!(ab.a_win_rate, wilson(2, 4));
        let ac = &r[1];
        assert_eq!((ac.answers, ac.a_wins, ac.b_wins, ac.same_hit), (1, 0, 1, 0));
        let bc = &r[2];
        assert_eq!((bc.answers, bc.same_hit), (0, 1));
        let table = report_table(&r);
        assert!(table.contains("a vs b") && table.contains("0.500 [") && table.contains("—"), "{table}");
    }
}
