//! The committed relsim-lite weights: small, the default image encoder, and relational on scenes
//! whose appearance training never showed (test split: held-out shape x palette combinations and
//! background style), from images and from anonymous captions.

use std::path::PathBuf;
use std::process::Command;

use relsim_companion::encoders::{by_name, EncoderOptions, ImageEncoder, BASELINES};
use relsim_companion::scenes::bench::{evaluate, evaluate_compose, text_to_image_precision, RetrievalMetrics};
use relsim_companion::scenes::generate::{sample_split, Families, Record, SceneSet, Split};
use relsim_companion::scenes::Relation;
use relsim_shared::text::minilm::MiniLm;
use relsim_shared::vectors::{balanced_sum, dot};

fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn lite_dir() -> PathBuf {
    workspace().join("assets/relsim-lite")
}

fn options() -> EncoderOptions {
    EncoderOptions::lite(lite_dir())
}

/// Test-split scenes of a seed no training run used, drawn in memory (no files).
fn test_scenes(seed: u64, blocks: usize) -> (Vec<image::RgbImage>, Vec<Record>) {
    sample_split(&SceneSet::classic(seed), blocks, Split::Test)
}

fn metrics(encoder: &dyn ImageEncoder, images: &[image::RgbImage], records: &[Record]) -> (RetrievalMetrics, Vec<Vec<f32>>) {
    let embeddings = encoder.embed_batch(images).unwrap();
    (evaluate(&embeddings, records), embeddings)
}

#[test]
fn the_weights_are_small_and_load() {
    let size = std::fs::metadata(lite_dir().join("model.safetensors")).unwrap().len();
    assert!(size <= 25 * 1024 * 1024, "relsim-lite is {size} bytes");
    let encoder = by_name("lite", &options()).unwrap();
    let v = encoder.embed_batch(&[image::RgbImage::from_pixel(40, 30, image::Rgb([200, 30, 30]))]).unwrap();
    assert_eq!(v[0].len(), 384);
    assert!((v[0].iter().map(|x| x * x).sum::<f32>() - 1.0).abs() < 1e-4);
}

#[test]
fn relsim_lite_retrieves_relations_across_held_out_appearance() {
    // 20 blocks of 10 → 2 test blocks per 10: 280 test scenes, 20 per relation.
    let (images, records) = test_scenes(101, 20);
    assert_eq!(records.len(), 280);
    let (lite, embeddings) = metrics(by_name("lite", &options()).unwrap().as_ref(), &images, &records);
    let baselines: Vec<RetrievalMetrics> = BASELINES.iter().map(|n| metrics(by_name(n, &options()).unwrap().as_ref(), &images, &records).0).collect();
    let best_p1 = baselines.iter().map(|m| m.p_at_1).fold(0.0, f64::max);
    // The best baseline is the one with the best P@1; its trap rate is the one to halve.
    let best = baselines.iter().max_by(|a, b| a.p_at_1.total_cmp(&b.p_at_1)).unwrap();
    eprintln!("relsim-lite P@1 {:.3} trap {:.3}; best baseline P@1 {best_p1:.3}, its trap {:.3}", lite.p_at_1, lite.attribute_trap_rate, best.attribute_trap_rate);
    assert!(lite.p_at_1 >= best_p1 + LITE_P1_MARGIN, "relsim-lite P@1 {:.3} vs best baseline {best_p1:.3}", lite.p_at_1);
    assert!(lite.attribute_trap_rate <= 0.5 * best.attribute_trap_rate, "relsim-lite trap rate {:.3} vs {:.3}", lite.attribute_trap_rate, best.attribute_trap_rate);
    assert!(lite.attribute_trap_rate <= LITE_TRAP_BOUND, "relsim-lite trap rate {:.3}", lite.attribute_trap_rate);

    // Captions embedded by MiniLM find images of their relation.
    let minilm = MiniLm::<burn::backend::NdArray<f32>>::from_dir(&workspace().join("models/all-MiniLM-L6-v2"), &Default::default()).unwrap();
    let captions = |held_out: bool| -> Vec<(Vec<f32>, String)> {
        let list: Vec<(&str, &str)> = Relation::CLASSIC
            .iter()
            .flat_map(|r| if held_out { vec![(r.evaluation_caption(), r.name())] } else { r.training_captions().iter().map(|c| (*c, r.name())).collect() })
            .collect();
        let vectors = minilm.embed_vecs(&list.iter().map(|(c, _)| *c).collect::<Vec<_>>()).unwrap();
        vectors.into_iter().zip(list).map(|(v, (_, r))| (v, r.to_string())).collect()
    };
    let training = text_to_image_precision(&captions(false), &embeddings, &records, 10);
    let held_out = text_to_image_precision(&captions(true), &embeddings, &records, 10);
    eprintln!("caption→image P@10: training paraphrases {training:.3}, held-out {held_out:.3}");
    assert!(training >= TEXT_P10_TRAINING, "training paraphrases P@10 {training:.3}");
    assert!(held_out >= TEXT_P10_HELD_OUT, "held-out paraphrases P@10 {held_out:.3}");
}

#[test]
fn relsim_lite_carries_every_idea_with_real_objects_of_categories_it_never_saw() {
    // Every family; most scenes draw real objects, and the test split's include the two
    // categories training never showed (reptiles, instruments). 10 test scenes per family.
    let set = SceneSet { families: Families::All, objects: 0.6, ..SceneSet::classic(101) };
    let (images, records) = sample_split(&set, 10, Split::Test);
    assert_eq!(records.len(), Relation::ALL.len() * 10);
    assert!(records.iter().any(|r| r.attributes.object_category == "reptile") && records.iter().any(|r| r.attributes.object_category == "instrument"));
    let (lite, embeddings) = metrics(by_name("lite", &options()).unwrap().as_ref(), &images, &records);
    let best_p1 = BASELINES.iter().map(|n| metrics(by_name(n, &options()).unwrap().as_ref(), &images, &records).0.p_at_1).fold(0.0, f64::max);
    // On the held-out categories alone, the idea still carries.
    let unseen: Vec<usize> = (0..records.len()).filter(|&i| matches!(records[i].attributes.object_category.as_str(), "reptile" | "instrument")).collect();
    let unseen_hits = unseen
        .iter()
        .filter(|&&q| {
            let best = (0..records.len()).filter(|&j| j != q).max_by(|&a, &b| dot(&embeddings[q], &embeddings[a]).total_cmp(&dot(&embeddings[q], &embeddings[b]))).unwrap();
            records[best].relation == records[q].relation
        })
        .count() as f64
        / unseen.len() as f64;
    let minilm = MiniLm::<burn::backend::NdArray<f32>>::from_dir(&workspace().join("models/all-MiniLM-L6-v2"), &Default::default()).unwrap();
    let held_out: Vec<(&str, &str)> = Relation::ALL.iter().map(|r| (r.evaluation_caption(), r.name())).collect();
    let vectors = minilm.embed_vecs(&held_out.iter().map(|(c, _)| *c).collect::<Vec<_>>()).unwrap();
    let captions: Vec<(Vec<f32>, String)> = vectors.into_iter().zip(&held_out).map(|(v, (_, r))| (v, r.to_string())).collect();
    let text_p10 = text_to_image_precision(&captions, &embeddings, &records, 10);
    eprintln!(
        "all families: relsim-lite P@1 {:.3} (unseen categories {unseen_hits:.3} over {}), best baseline {best_p1:.3}; held-out caption→image P@10 {text_p10:.3}",
        lite.p_at_1,
        unseen.len()
    );
    assert!(lite.p_at_1 >= best_p1 + ALL_P1_MARGIN, "relsim-lite P@1 {:.3} vs best baseline {best_p1:.3}", lite.p_at_1);
    assert!(unseen_hits >= ALL_UNSEEN_P1, "P@1 on unseen categories {unseen_hits:.3}");
    assert!(text_p10 >= ALL_TEXT_P10_HELD_OUT, "held-out paraphrases P@10 {text_p10:.3}");
}

#[test]
fn embed_image_uses_relsim_lite_without_qwen_weights() {
    let image = workspace().join("tests/fixtures/qwen/images/gradient_56x84.png");
    let out = Command::new(env!("CARGO_BIN_EXE_relsim")).args(["embed-image"]).arg(&image).env("RELSIM_LITE_DIR", lite_dir()).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let line: serde_json::Value = serde_json::from_str(String::from_utf8_lossy(&out.stdout).lines().next().unwrap()).unwrap();
    assert_eq!(line["embedding"].as_array().unwrap().len(), 384);
}

#[test]
fn adding_an_idea_to_an_image_query_brings_that_idea_forward() {
    // The arithmetic of the API's composite queries (relsim_shared::vectors::balanced_sum) on
    // relsim-lite's image vectors and MiniLM's caption vectors: one test scene per family as the
    // query, another family's evaluation-only caption added with weight 1.
    let set = SceneSet { families: Families::All, objects: 0.6, ..SceneSet::classic(202) };
    let (images, records) = sample_split(&set, 10, Split::Test);
    let embeddings = by_name("lite", &options()).unwrap().embed_batch(&images).unwrap();
    let minilm = MiniLm::<burn::backend::NdArray<f32>>::from_dir(&workspace().join("models/all-MiniLM-L6-v2"), &Default::default()).unwrap();
    let captions = minilm.embed_vecs(&Relation::ALL.iter().map(|r| r.evaluation_caption()).collect::<Vec<_>>()).unwrap();
    let family = |i: usize| Relation::ALL.iter().position(|r| r.name() == records[i].relation).unwrap();
    // The share of `wanted`'s images among the 10 best for `query`, the asking scene left out.
    let share = |query: &[f32], asking: usize, wanted: usize| -> f64 {
        let mut ranked: Vec<usize> = (0..records.len()).filter(|&j| j != asking).collect();
        ranked.sort_by(|&a, &b| dot(query, &embeddings[b]).total_cmp(&dot(query, &embeddings[a])));
        ranked[..10].iter().filter(|&&j| family(j) == wanted).count() as f64 / 10.0
    };
    let library: Vec<&[f32]> = embeddings.iter().map(Vec::as_slice).collect();
    let (mut added, mut taken) = (Vec::new(), Vec::new());
    for q in (0..records.len()).step_by(records.len() / 10).take(10) {
        let (own, other) = (family(q), (family(q) + 11) % Relation::ALL.len());
        let with_other = balanced_sum(&[(&embeddings[q], 1.0), (&captions[other], 1.0)], &library).unwrap();
        added.push(share(&with_other, q, other) - share(&embeddings[q], q, other));
        let without_own = balanced_sum(&[(&embeddings[q], 1.0), (&captions[own], -1.0)], &library).unwrap();
        taken.push(share(&without_own, q, own) - share(&embeddings[q], q, own));
    }
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    eprintln!("adding another idea: its top-10 share {:+.3}; taking the query's own idea away: {:+.3}", mean(&added), mean(&taken));
    // Measured +0.180 and -0.340. Here each scene shows one idea, so the added idea can only pull in images of the other idea
    // that still look like the query's (nothing carries both); the test above asks the same of
    // a library whose scenes carry two ideas at once.
    assert!(mean(&added) >= 0.08, "adding an idea raised its share by {:.3}", mean(&added));
    assert!(mean(&taken) <= -0.05, "taking the query's idea away changed its share by {:.3}", mean(&taken));
}

#[test]
fn adding_an_idea_to_a_two_idea_image_query_brings_scenes_with_both_forward() {
    // A library of two-idea scenes (`scenes generate --multi`: an arrangement with a change along
    // it), each asking with its image plus the evaluation-only caption of another change its
    // arrangement can carry (weights 1, 1), and with its own change's caption taken away (-1):
    // the benchmark's arithmetic (scenes::bench::evaluate_compose), on a seed no run trained on.
    // 650 test scenes, 50 of each pair, from a seed no run trained on (`relsim scenes generate
    // --multi --seed 404 --count 6500`; `relsim bench compose` on it gives the same numbers).
    let set = SceneSet { families: Families::Pairs, objects: 0.6, ..SceneSet::classic(404) };
    let (images, records) = sample_split(&set, 50, Split::Test);
    let embeddings = by_name("lite", &options()).unwrap().embed_batch(&images).unwrap();
    let minilm = MiniLm::<burn::backend::NdArray<f32>>::from_dir(&workspace().join("models/all-MiniLM-L6-v2"), &Default::default()).unwrap();
    let families = Families::Pairs.relations();
    let vectors = minilm.embed_vecs(&families.iter().map(|r| r.evaluation_caption()).collect::<Vec<_>>()).unwrap();
    let captions = families.iter().map(|r| r.name().to_string()).zip(vectors).collect();
    let m = evaluate_compose(&embeddings, &records, &captions).unwrap();
    eprintln!("{m:?}");
    // Measured: the added idea's share of the top 10 0.225 -> 0.570 (+0.345) over 1,600 queries,
    // the best hit showing both ideas 0.199 -> 0.489; the own idea taken away 0.420 -> 0.084.
    assert!(m.queries >= 10, "{} queries", m.queries);
    let gain = m.added_top10_composed - m.added_top10_image;
    assert!(gain >= 0.3, "adding an idea raised its share of the top 10 by {gain:.3} (from {:.3})", m.added_top10_image);
    assert!(m.own_top10_without <= m.own_top10_image - 0.1, "taking the query's own idea away: its share went {:.3} -> {:.3}", m.own_top10_image, m.own_top10_without);
    assert!(m.both_p1_composed >= m.both_p1_image + 0.2, "best hit with both ideas: {:.3} -> {:.3}", m.both_p1_image, m.both_p1_composed);
}

// Floors that guard what the committed weights reach on this 280-scene set (measured here:
// P@1 0.771 vs 0.179 for the best baseline, trap 0.018 vs that baseline's 0.461, caption→image
// P@10 0.946 / 0.886). On the README's 1,400-scene classic test split the same weights give P@1
// 0.778.
const LITE_P1_MARGIN: f64 = 0.30;
const LITE_TRAP_BOUND: f64 = 0.08;
const TEXT_P10_TRAINING: f64 = 0.80;
const TEXT_P10_HELD_OUT: f64 = 0.75;

// The same on every family with real objects (300 scenes): measured P@1 0.803 against the best
// baseline's 0.150, 0.706 on the 17 scenes of categories training never showed, held-out
// caption→image P@10 0.747 (0.807 on the README's 1,500-scene test split, where each idea has
// 50 images to find).
const ALL_P1_MARGIN: f64 = 0.45;
const ALL_UNSEEN_P1: f64 = 0.6;
const ALL_TEXT_P10_HELD_OUT: f64 = 0.6;

#[test]
fn eval_stores_cut_offs_above_which_at_least_half_the_best_hits_are_right() {
    // `relsim eval` on a copy of the committed model and a fresh 30-family set: the cut-offs are
    // written beside the weights, and re-derived here from the model's own vectors they hold.
    let dir = std::env::temp_dir().join(format!("relsim-lite-calibration-{}", std::process::id()));
    let (model, data) = (dir.join("model"), dir.join("scenes"));
    std::fs::create_dir_all(&model).unwrap();
    for file in ["config.json", "model.safetensors"] {
        std::fs::copy(lite_dir().join(file), model.join(file)).unwrap();
    }
    let relsim = || Command::new(env!("CARGO_BIN_EXE_relsim"));
    let made = relsim().args(["scenes", "generate", "--count", "3000", "--seed", "606", "--size", "112", "--out"]).arg(&data).output().unwrap();
    assert!(made.status.success(), "{}", String::from_utf8_lossy(&made.stderr));
    let out = relsim().args(["eval", "--split", "val", "--checkpoint"]).arg(&model).arg("--data").arg(&data).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stored: serde_json::Value = serde_json::from_slice(&std::fs::read(model.join("calibration.json")).unwrap()).unwrap();
    let report: serde_json::Value = serde_json::from_str(String::from_utf8_lossy(&out.stdout).lines().last().unwrap()).unwrap();
    for key in ["image", "text"] {
        assert_eq!(report["calibration"][key].as_f64().unwrap() as f32, stored[key].as_f64().unwrap() as f32, "the report prints what was stored");
    }
    let (image, text) = (stored["image"].as_f64().unwrap() as f32, stored["text"].as_f64().unwrap() as f32);
    assert!(0.0 < text && text < image && image < 1.0, "cut-offs: image {image}, caption {text}");
    assert_eq!(stored["image_queries"], 600, "300 val images, each asked with and without its idea");

    // Every val image's best hit, with its idea in the set and without: above the cut-off at
    // least half are right; and the cut-off is the lowest such score (one step lower it fails).
    let records = relsim_companion::scenes::generate::read_records(&data, Some(Split::Val)).unwrap();
    let images: Vec<image::RgbImage> = records.iter().map(|r| image::open(data.join("images").join(format!("{}.png", r.image_hash))).unwrap().to_rgb8()).collect();
    let embeddings = by_name("lite", &EncoderOptions::lite(model.clone())).unwrap().embed_batch(&images).unwrap();
    let mut best = Vec::new();
    for q in 0..records.len() {
        let score = |j: &usize| dot(&embeddings[q], &embeddings[*j]);
        let others: Vec<usize> = (0..records.len()).filter(|&j| j != q).collect();
        let top = *others.iter().max_by(|a, b| score(a).total_cmp(&score(b))).unwrap();
        best.push((score(&top), records[top].relation == records[q].relation));
        let other = others.iter().filter(|&&j| records[j].relation != records[q].relation).map(score).fold(f32::MIN, f32::max);
        best.push((other, false));
    }
    let precision_above = |t: f32| {
        let kept: Vec<bool> = best.iter().filter(|(s, _)| *s >= t).map(|(_, hit)| *hit).collect();
        kept.iter().filter(|&&h| h).count() as f64 / kept.len().max(1) as f64
    };
    assert!(precision_above(image) >= 0.5, "P@1 above the image cut-off {image}: {}", precision_above(image));
    let next_lower = best.iter().map(|(s, _)| *s).filter(|&s| s < image - 1e-6).fold(f32::MIN, f32::max);
    assert!(precision_above(next_lower) < 0.5, "a lower cut-off ({next_lower}) would do too");
    let _ = std::fs::remove_dir_all(&dir);
}
