//! The indexed library laid out for search: one row per distinct image, its vectors in flat
//! matrices, scored in one pass.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use relsim_shared::vectors::{dot, top_k};

use super::filter::{Dated, Filter};
use super::store::Store;

/// One distinct image of the library (files with the same content share it).
#[derive(Debug, Clone)]
pub struct Item {
    /// The SHA-256 of the file's bytes: stable across renames and re-indexing.
    pub id: String,
    /// The files holding it, first in path order.
    pub paths: Vec<PathBuf>,
    pub width: u32,
    pub height: u32,
    /// When it was taken (EXIF), else its first file's time.
    pub date: Option<Dated>,
}

/// What a search compares against.
pub struct Query<'a> {
    /// In the relational (MiniLM) space: an image's relsim embedding or a caption's.
    pub relational: &'a [f32],
    /// The query image's attribute embedding; text queries have none.
    pub attribute: Option<&'a [f32]>,
    /// Left out of the results (library images asking for their neighbours).
    pub exclude: &'a [usize],
}

/// One result, before the "why" captions are attached.
#[derive(Debug, Clone, PartialEq)]
pub struct Scored {
    pub row: usize,
    pub relational: f32,
    pub attribute: Option<f32>,
    pub combined: f32,
}

/// The library in rows.
#[derive(Default)]
pub struct Catalog {
    pub items: Vec<Item>,
    relational: Vec<f32>,
    attribute: Vec<f32>,
    pub relational_dim: usize,
    attribute_dim: usize,
    rows: HashMap<String, usize>,
    /// [`Catalog::folders`], worked out on first use: the page asks for it on every poll.
    folders: std::sync::OnceLock<Vec<(PathBuf, usize)>>,
}

impl Catalog {
    /// Lays out every image some file of `store` points at, in path order.
    pub fn from_store(store: &Store) -> Self {
        let mut catalog = Catalog::default();
        for file in store.files.values() {
            let Some(hash) = &file.hash else { continue };
            let Some(image) = store.images.get(hash) else { continue };
            match catalog.rows.get(hash) {
                Some(&row) => catalog.items[row].paths.push(file.path.clone()),
                None => {
                    if catalog.items.is_empty() {
                        catalog.relational_dim = image.relational.0.len();
                        catalog.attribute_dim = image.attribute.0.len();
                    }
                    // Vectors of another length (a damaged entry) cannot be scored with the rest.
                    if image.relational.0.len() != catalog.relational_dim || image.attribute.0.len() != catalog.attribute_dim {
                        continue;
                    }
                    catalog.rows.insert(hash.clone(), catalog.items.len());
                    let date = Dated::of(image.taken.as_deref(), file.mtime_ns);
                    catalog.items.push(Item { id: hash.clone(), paths: vec![file.path.clone()], width: image.width, height: image.height, date });
                    catalog.relational.extend_from_slice(&image.relational.0);
                    catalog.attribute.extend_from_slice(&image.attribute.0);
                }
            }
        }
        catalog
    }

    /// The row of image `id`.
    pub fn row(&self, id: &str) -> Option<usize> {
        self.rows.get(id).copied()
    }

    /// Row `row`'s relational vector.
    pub fn relational(&self, row: usize) -> &[f32] {
        &self.relational[row * self.relational_dim..(row + 1) * self.relational_dim]
    }

    /// Row `row`'s attribute vector.
    pub fn attribute(&self, row: usize) -> &[f32] {
        &self.attribute[row * self.attribute_dim..(row + 1) * self.attribute_dim]
    }

    /// Every image scored against `query`, in row order (relational weight `weight` in the
    /// combined score; the rest goes to the attribute score when the query has one).
    pub fn score_all(&self, query: &Query, weight: f32) -> Vec<Scored> {
        if query.relational.len() != self.relational_dim {
            return Vec::new();
        }
        let weight = weight.clamp(0.0, 1.0);
        (0..self.items.len())
            .map(|row| {
                let relational = dot(query.relational, self.relational(row));
                let attribute = query.attribute.filter(|a| a.len() == self.attribute_dim).map(|a| dot(a, self.attribute(row)));
                let combined = match attribute {
                    Some(a) => weight * relational + (1.0 - weight) * a,
                    None => relational,
                };
                Scored { row, relational, attribute, combined }
            })
            .collect()
    }

    /// The best `offset..offset+limit` of `scored` (from [`Catalog::score_all`]) by combined
    /// score, rows marked in `left_out` aside, and the number of images ranked.
    pub fn rank(&self, scored: &[Scored], left_out: &[bool], offset: usize, limit: usize) -> (Vec<Scored>, usize) {
        let n = scored.len();
        if n == 0 {
            return (Vec::new(), self.items.len());
        }
        let out = |row: usize| left_out.get(row).copied().unwrap_or(false);
        let total = (0..n).filter(|&row| !out(row)).count();
        let keys: Vec<f32> = scored.iter().map(|s| if out(s.row) { f32::NEG_INFINITY } else { s.combined }).collect();
        let best = top_k(&keys, (offset + limit).min(total));
        (best.into_iter().skip(offset).map(|(row, _)| scored[row].clone()).collect(), total)
    }

    /// For each row, whether it is left out: `filter` does not keep it, or it is in `exclude`.
    pub fn left_out(&self, filter: &Filter, exclude: &[usize]) -> Vec<bool> {
        let mut out: Vec<bool> = if filter.is_empty() {
            vec![false; self.items.len()]
        } else {
            self.items.iter().map(|item| !filter.keeps(item)).collect()
        };
        for &row in exclude {
            if let Some(o) = out.get_mut(row) {
                *o = true;
            }
        }
        out
    }

    /// Every folder under `roots` that holds images (in it or below), the roots included, with
    /// the number of distinct images in each, in path order. Worked out once per catalog (a
    /// service's roots do not change while its catalog lives).
    pub fn folders(&self, roots: &[PathBuf]) -> &[(PathBuf, usize)] {
        self.folders.get_or_init(|| self.count_folders(roots))
    }

    fn count_folders(&self, roots: &[PathBuf]) -> Vec<(PathBuf, usize)> {
        let mut counts: std::collections::BTreeMap<&Path, usize> = roots.iter().map(|r| (r.as_path(), 0)).collect();
        for item in &self.items {
            // An image counts once per folder however many of its copies lie there.
            let mut seen = std::collections::BTreeSet::new();
            for path in &item.paths {
                let Some(root) = roots.iter().find(|r| path.starts_with(r)) else { continue };
                for folder in path.ancestors().skip(1).take_while(|f| f.starts_with(root)) {
                    seen.insert(folder);
                }
            }
            for folder in seen {
                *counts.entry(folder).or_default() += 1;
            }
        }
        counts.into_iter().map(|(p, n)| (p.to_path_buf(), n)).collect()
    }

    /// Every image scored against `query`, best `offset..offset+limit` by combined score, and
    /// the number of images scored.
    pub fn search(&self, query: &Query, weight: f32, offset: usize, limit: usize) -> (Vec<Scored>, usize) {
        self.rank(&self.score_all(query, weight), &self.left_out(&Filter::default(), query.exclude), offset, limit)
    }
}
