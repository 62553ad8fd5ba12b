//! `relsim bench relational`: retrieval by relation on a scene split, with ground truth.
//! Each image queries all others; a hit shares its relation.

use std::collections::BTreeMap;

use rayon::prelude::*;
use serde::Serialize;

use super::generate::Record;
use relsim_shared::vectors::dot;

/// Retrieval quality of one encoder on one split.
#[derive(Debug, Clone, Serialize)]
pub struct RetrievalMetrics {
    /// Share of queries whose nearest neighbour shows the same relation.
    pub p_at_1: f64,
    /// Mean share of the 5 nearest neighbours that show the same relation.
    pub p_at_5: f64,
    /// Mean average precision over the full ranking.
    pub map: f64,
    /// Share of queries whose nearest neighbour has the same shape and palette but another relation.
    pub attribute_trap_rate: f64,
    /// P@1 per relation.
    pub p_at_1_by_relation: BTreeMap<String, f64>,
    /// P@1 per object category of the query (`shape` for shape scenes).
    pub p_at_1_by_object_category: BTreeMap<String, f64>,
    /// Queries.
    pub queries: usize,
}

/// Scores every image against every other by cosine (vectors must be L2-normalised).
pub fn evaluate(embeddings: &[Vec<f32>], records: &[Record]) -> RetrievalMetrics {
    assert_eq!(embeddings.len(), records.len(), "one embedding per record");
    let n = records.len();
    struct PerQuery {
        hit1: bool,
        p5: f64,
        ap: f64,
        trap: bool,
    }
    let per_query: Vec<PerQuery> = (0..n)
        .into_par_iter()
        .map(|q| {
            let mut ranked: Vec<(f32, usize)> = (0..n).filter(|&j| j != q).map(|j| (dot(&embeddings[q], &embeddings[j]), j)).collect();
            // Best first; ties keep file order so results are reproducible.
            ranked.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
            let same = |j: usize| records[j].relation == records[q].relation;
            let relevant = ranked.iter().filter(|(_, j)| same(*j)).count();
            let (mut hits, mut precision_sum) = (0usize, 0.0f64);
            for (rank, (_, j)) in ranked.iter().enumerate() {
                if same(*j) {
                    hits += 1;
                    precision_sum += hits as f64 / (rank + 1) as f64;
                }
            }
            let top5 = ranked.iter().take(5).filter(|(_, j)| same(*j)).count();
            let first = ranked.first().map(|(_, j)| *j);
            let trap = first.is_some_and(|j| {
                !same(j) && records[j].attributes.shape == records[q].attributes.shape && records[j].attributes.palette == records[q].attributes.palette
            });
            PerQuery {
                hit1: first.is_some_and(same),
                p5: top5 as f64 / 5.0f64.min(ranked.len().max(1) as f64),
                ap: if relevant == 0 { 0.0 } else { precision_sum / relevant as f64 },
                trap,
            }
        })
        .collect();
    let mean = |f: &dyn Fn(&PerQuery) -> f64| if n == 0 { 0.0 } else { per_query.iter().map(f).sum::<f64>() / n as f64 };
    let mut by_relation: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    let mut by_category: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    for (record, pq) in records.iter().zip(&per_query) {
        for (map, key) in [(&mut by_relation, &record.relation), (&mut by_category, &record.attributes.object_category)] {
            let e = map.entry(key.clone()).or_default();
            e.0 += usize::from(pq.hit1);
            e.1 += 1;
        }
    }
    let rates = |map: BTreeMap<String, (usize, usize)>| map.into_iter().map(|(k, (h, t))| (k, h as f64 / t as f64)).collect();
    RetrievalMetrics {
        p_at_1: mean(&|p| f64::from(u8::from(p.hit1))),
        p_at_5: mean(&|p| p.p5),
        map: mean(&|p| p.ap),
        attribute_trap_rate: mean(&|p| f64::from(u8::from(p.trap))),
        p_at_1_by_relation: rates(by_relation),
        p_at_1_by_object_category: rates(by_category),
        queries: n,
    }
}

/// Caption→image retrieval: for each caption (with the relation it names), the share of its
/// `k` nearest images that show that relation, averaged over captions.
pub fn text_to_image_precision(captions: &[(Vec<f32>, String)], embeddings: &[Vec<f32>], records: &[Record], k: usize) -> f64 {
    if captions.is_empty() {
        return 0.0;
    }
    let per_caption: Vec<f64> = captions
        .par_iter()
        .map(|(vector, relation)| {
            let mut ranked: Vec<(f32, usize)> = embeddings.iter().enumerate().map(|(j, e)| (dot(vector, e), j)).collect();
            ranked.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
            let top = ranked.iter().take(k);
            top.filter(|(_, j)| &records[*j].relation == relation).count() as f64 / k.min(ranked.len()).max(1) as f64
        })
        .collect();
    per_caption.iter().sum::<f64>() / per_caption.len() as f64
}

/// Composite queries on a two-idea split (`scenes generate --multi`): each scene asks with its
/// image plus the evaluation-only caption of another change its arrangement can carry (weights
/// 1 and 1, as the page's "+ add idea", balanced over the split as the server balances them over
/// the library), and with its own change's caption taken away (−1).
#[derive(Debug, Clone, Serialize)]
pub struct ComposeMetrics {
    /// (image, added idea) queries.
    pub queries: usize,
    /// Share of queries whose best hit shows the added idea: the image alone, image + idea, the
    /// idea's caption alone.
    pub named_p1_image: f64,
    pub named_p1_composed: f64,
    pub named_p1_caption: f64,
    /// Share of queries whose best hit shows both the query's arrangement and the added idea.
    pub both_p1_image: f64,
    pub both_p1_composed: f64,
    pub both_p1_caption: f64,
    /// Mean share of the 10 best hits that show the added idea: the image alone, image + idea.
    pub added_top10_image: f64,
    pub added_top10_composed: f64,
    /// Mean share of the 10 best hits that show the query's own change: the image alone, and
    /// with that change's caption taken away.
    pub own_top10_image: f64,
    pub own_top10_without: f64,
}

/// [`ComposeMetrics`] of `embeddings` (one per record, L2-normalised) with `captions`: the
/// evaluation-only caption vector of each family, by name, in the embeddings' space.
pub fn evaluate_compose(embeddings: &[Vec<f32>], records: &[Record], captions: &BTreeMap<String, Vec<f32>>) -> anyhow::Result<ComposeMetrics> {
    use relsim_shared::vectors::balanced_sum;
    anyhow::ensure!(embeddings.len() == records.len(), "one embedding per record");
    // The library the server would balance the parts over (relsim_shared::vectors::balanced_sum).
    let library: Vec<&[f32]> = embeddings.iter().map(Vec::as_slice).collect();
    let caption = |name: &str| captions.get(name).ok_or_else(|| anyhow::anyhow!("no caption vector for the family `{name}`"));
    // The best `k` images for `query`, the asking one left out.
    let best = |query: &[f32], asking: usize, k: usize| -> Vec<usize> {
        let mut ranked: Vec<(f32, usize)> = (0..records.len()).filter(|&j| j != asking).map(|j| (dot(query, &embeddings[j]), j)).collect();
        ranked.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
        ranked.into_iter().take(k).map(|(_, j)| j).collect()
    };
    let share = |hits: &[usize], relation: &str| hits.iter().filter(|&&j| records[j].shows(relation)).count() as f64 / hits.len().max(1) as f64;
    let mut rows: Vec<[f64; 10]> = Vec::new();
    for (q, record) in records.iter().enumerate() {
        let Some(own) = record.second_relation.as_deref() else { continue };
        let arrangement = record.relation.as_str();
        let image = &embeddings[q];
        anyhow::ensure!(image.len() == caption(own)?.len(), "the image vectors ({}) and the caption vectors ({}) are not in one space", image.len(), caption(own)?.len());
        let without = balanced_sum(&[(image, 1.0), (caption(own)?, -1.0)], &library).unwrap_or_else(|| image.clone());
        let (alone, removed) = (best(image, q, 10), best(&without, q, 10));
        let others = super::multi::PAIRS.iter().filter(|(a, c)| a.name() == arrangement && c.name() != own);
        for (_, added) in others {
            let added = added.name();
            let text = caption(added)?;
            let composed = balanced_sum(&[(image, 1.0), (text, 1.0)], &library).unwrap_or_else(|| text.clone());
            let (with, by_text) = (best(&composed, q, 10), best(text, q, 1));
            let both = |hits: &[usize]| hits.first().is_some_and(|&j| records[j].shows(added) && records[j].relation == arrangement);
            let named = |hits: &[usize]| hits.first().is_some_and(|&j| records[j].shows(added));
            let flag = |b: bool| f64::from(u8::from(b));
            rows.push([
                flag(named(&alone)),
                flag(named(&with)),
                flag(named(&by_text)),
                flag(both(&alone)),
                flag(both(&with)),
                flag(both(&by_text)),
                share(&alone, added),
                share(&with, added),
                share(&alone, own),
                share(&removed, own),
            ]);
        }
    }
    anyhow::ensure!(!rows.is_empty(), "no two-idea scenes to ask with: make the set with `relsim scenes generate --multi`");
    let mean = |i: usize| rows.iter().map(|r| r[i]).sum::<f64>() / rows.len() as f64;
    Ok(ComposeMetrics {
        queries: rows.len(),
        named_p1_image: mean(0),
        named_p1_composed: mean(1),
        named_p1_caption: mean(2),
        both_p1_image: mean(3),
        both_p1_composed: mean(4),
        both_p1_caption: mean(5),
        added_top10_image: mean(6),
        added_top10_composed: mean(7),
        own_top10_image: mean(8),
        own_top10_without: mean(9),
    })
}

/// Each image's best hit among the others as (score, shows the same relation), asked twice:
/// against the whole split, and against the images of other relations only, as in a library
/// that lacks the idea, where the best hit is always wrong. The pool a "no good match" cut-off
/// is calibrated on (see `crate::calibration`).
pub fn best_hits(embeddings: &[Vec<f32>], records: &[Record]) -> Vec<(f32, bool)> {
    (0..records.len()).into_par_iter().flat_map_iter(|q| best_with_and_without(&embeddings[q], &records[q].relation, Some(q), embeddings, records)).collect()
}

/// The same for captions (vector, the relation it names) against the split's images.
pub fn caption_best_hits(captions: &[(Vec<f32>, String)], embeddings: &[Vec<f32>], records: &[Record]) -> Vec<(f32, bool)> {
    captions.par_iter().flat_map_iter(|(vector, relation)| best_with_and_without(vector, relation, None, embeddings, records)).collect()
}

/// The best hit for `query` (asking image `asking` left out), and the best among the images of
/// other relations than `relation`.
fn best_with_and_without(query: &[f32], relation: &str, asking: Option<usize>, embeddings: &[Vec<f32>], records: &[Record]) -> Vec<(f32, bool)> {
    let (mut best, mut best_other) = ((f32::NEG_INFINITY, false), f32::NEG_INFINITY);
    for (_, (e, r)) in embeddings.iter().zip(records).enumerate().filter(|(j, _)| Some(*j) != asking) {
        let (score, same) = (dot(query, e), r.relation == relation);
        if score > best.0 {
            best = (score, same);
        }
        if !same && score > best_other {
            best_other = score;
        }
    }
    [best, (best_other, false)].into_iter().filter(|(score, _)| score.is_finite()).collect()
}

/// The report table: one line per encoder.
pub fn table(rows: &[(String, RetrievalMetrics)]) -> String {
    let mut out = format!("{:<20} {:>7} {:>7} {:>7} {:>7}\n", "encoder", "P@1", "P@5", "mAP", "trap");
    for (name, m) in rows {
        out += &format!("{:<20} {:>7.3} {:>7.3} {:>7.3} {:>7.3}\n", name, m.p_at_1, m.p_at_5, m.map, m.attribute_trap_rate);
    }
    out
}

/// P@1 per relation family (and per object category), one column per encoder.
pub fn breakdown_table(rows: &[(String, RetrievalMetrics)]) -> String {
    let Some((_, first)) = rows.first() else { return String::new() };
    let mut out = format!("{:<22}", "P@1 by family");
    for (name, _) in rows {
        out += &format!(" {:>17}", name);
    }
    out.push('\n');
    let line = |out: &mut String, key: &str, get: &dyn Fn(&RetrievalMetrics) -> Option<f64>| {
        *out += &format!("{key:<22}");
        for (_, m) in rows {
            *out += &get(m).map_or(format!(" {:>17}", "-"), |v| format!(" {v:>17.3}"));
        }
        out.push('\n');
    };
    for family in first.p_at_1_by_relation.keys() {
        line(&mut out, family, &|m| m.p_at_1_by_relation.get(family).copied());
    }
    if first.p_at_1_by_object_category.len() > 1 {
        out += "P@1 by object category\n";
        for category in first.p_at_1_by_object_category.keys() {
            line(&mut out, category, &|m| m.p_at_1_by_object_category.get(category).copied());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenes::generate::{Attributes, Split};

    fn record(relation: &str, shape: &str) -> Record {
        Record {
            image_hash: String::new(),
            caption: String::new(),
            relation: relation.into(),
            second_relation: None,
            split: Split::Test,
            attributes: Attributes { shape: shape.into(), palette: "p".into(), background: "plain".into(), style: "fill".into(), other_shape: "x".into(), object: String::new(), object_category: "shape".into() },
        }
    }

    #[test]
    fn metrics_on_a_hand_checked_ranking() {
        // Two relations; a and b are close, c sits nearer to a than b's twin d.
        let records = vec![record("r1", "s"), record("r1", "t"), record("r2", "s"), record("r2", "u")];
        let e = vec![vec![1.0, 0.0], vec![0.9, 0.436], vec![0.95, -0.312], vec![0.0, 1.0]];
        let m = evaluate(&e, &records);
        // Query 0: ranking 2 (r2, same shape: a trap), 1, 3 → miss, AP = 1/2.
        // Query 1: ranking 0, 3, 2 → hit, AP = 1.
        // Query 2: ranking 0, 1, 3 → miss, AP = 1/3.
        // Query 3: ranking 1, 0, 2 → miss, AP = 1/3.
        assert_eq!(m.p_at_1, 0.25);
        // Queries 0 and 2 each find the other relation in the same shape and palette first.
        assert_eq!(m.attribute_trap_rate, 0.5);
        assert!((m.map - (0.5 + 1.0 + 1.0 / 3.0 + 1.0 / 3.0) / 4.0).abs() < 1e-12);
        // With 3 candidates, P@5 counts hits among all 3: one relevant each.
        assert!((m.p_at_5 - 1.0 / 3.0).abs() < 1e-12);
        assert_eq!(m.p_at_1_by_relation["r1"], 0.5);
        assert_eq!(m.p_at_1_by_relation["r2"], 0.0);
        assert_eq!(m.p_at_1_by_object_category["shape"], 0.25);
        let breakdown = breakdown_table(&[("a".into(), m.clone()), ("b".into(), m)]);
        assert!(breakdown.lines().any(|l| l.starts_with("r1") && l.split_whitespace().skip(1).all(|v| v == "0.500")), "{breakdown}");
    }
}
