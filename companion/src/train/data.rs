//! Training data: a scene split decoded into memory at the model's input size, the frozen
//! MiniLM embeddings of its captions (computed once per dataset, cached beside it), and a batch
//! order that depends only on the seed and the step, so that a resumed run sees the same batches.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::Context;
use image::imageops::{self, FilterType};
use image::RgbImage;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use relsim_shared::image::lite::COLOUR_ORDERS;
use relsim_shared::image::preprocess::decode_rgb;

use crate::files::write_atomically;
use crate::scenes::generate::{read_records, Record, Split};

/// One split in memory.
pub struct SceneSplit {
    pub records: Vec<Record>,
    /// The images at the model's input size.
    pub images: Vec<RgbImage>,
    /// Index of each record's caption in `captions`.
    pub caption_ids: Vec<usize>,
    /// The distinct captions, in first-seen order.
    pub captions: Vec<String>,
    /// Each record's idea ([`Record::idea_id`]: its relation, or its pair of relations).
    pub relation_ids: Vec<usize>,
}

impl SceneSplit {
    /// Reads `split` of the scene set in `dir`, resizing images to `size` (None: as stored).
    pub fn load(dir: &Path, split: Split, size: Option<u32>) -> anyhow::Result<Self> {
        let records = read_records(dir, Some(split))?;
        anyhow::ensure!(!records.is_empty(), "{} has no {} images", dir.display(), split.name());
        let images = records
            .par_iter()
            .map(|r| {
                let path = dir.join("images").join(format!("{}.png", r.image_hash));
                let bytes = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
                let image = decode_rgb(&bytes, &path.display().to_string())?;
                Ok(match size {
                    Some(size) if image.width() != size || image.height() != size => imageops::resize(&image, size, size, FilterType::Triangle),
                    _ => image,
                })
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        let mut index: BTreeMap<&str, usize> = BTreeMap::new();
        let mut captions = Vec::new();
        let caption_ids = records
            .iter()
            .map(|r| {
                *index.entry(r.caption.as_str()).or_insert_with(|| {
                    captions.push(r.caption.clone());
                    captions.len() - 1
                })
            })
            .collect();
        // Scene families have fixed ids; other ideas (an imported dataset's caption groups) take
        // the ids after them, in name order.
        let known = crate::scenes::Relation::ALL.len() + crate::scenes::multi::PAIRS.len();
        let others: BTreeMap<&str, usize> = records
            .iter()
            .filter(|r| r.idea_id().is_none())
            .map(|r| r.relation.as_str())
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .enumerate()
            .map(|(i, name)| (name, known + i))
            .collect();
        let relation_ids = records.iter().map(|r| r.idea_id().unwrap_or_else(|| others[r.relation.as_str()])).collect();
        Ok(SceneSplit { records, images, caption_ids, captions, relation_ids })
    }

    /// The images `indices` as one batch, each changed as `augment` draws for micro-batch `draw`.
    pub fn batch(&self, indices: &[usize], augment: Augment, seed: u64, draw: usize) -> Batch {
        let views = augment.views(seed, draw, indices.len());
        let images = indices.iter().zip(views).map(|(&i, view)| view.apply(&self.images[i])).collect();
        let names = indices.iter().map(|&i| self.records[i].image_hash.clone()).collect();
        Batch { images, names }
    }

}

/// Images of one batch, with the names that errors about them give.
pub struct Batch {
    pub images: Vec<RgbImage>,
    pub names: Vec<String>,
}

impl Batch {
    /// The images in the layout the lite model reads.
    pub fn lite_pixels(&self, size: usize) -> Vec<Vec<f32>> {
        self.images.par_iter().map(|image| relsim_shared::image::lite::pixels(image, size)).collect()
    }
}

/// Label-preserving changes to training images. A scene's relation does not depend on its
/// colours, so swapping the RGB channels shows the model palettes the training split never drew,
/// which is what the held-out test combinations ask of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Augment {
    /// Images as generated.
    #[default]
    None,
    /// Each image's RGB channels in one of the 6 orders, drawn per image.
    Channels,
}

/// The channel order one image is shown in: `out[c] = in[order[c]]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct View {
    pub order: [usize; 3],
}

impl Augment {
    /// The views of the `n` images of micro-batch `draw`: a function of the seed and `draw`
    /// alone, so that a resumed run shows the same images.
    pub fn views(self, seed: u64, draw: usize, n: usize) -> Vec<View> {
        match self {
            Augment::None => vec![View { order: COLOUR_ORDERS[0] }; n],
            Augment::Channels => {
                let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x0061_7567_6d65_6e74);
                rng.set_stream(draw as u64);
                (0..n).map(|_| View { order: COLOUR_ORDERS[rng.random_range(0..COLOUR_ORDERS.len())] }).collect()
            }
        }
    }
}

impl View {
    /// `image` in this view.
    pub fn apply(&self, image: &RgbImage) -> RgbImage {
        let mut out = image.clone();
        if self.order != COLOUR_ORDERS[0] {
            for p in out.pixels_mut() {
                let c = p.0;
                p.0 = [c[self.order[0]], c[self.order[1]], c[self.order[2]]];
            }
        }
        out
    }
}

/// MiniLM embeddings of `captions`, read from `cache` when it holds them all, else computed
/// and written there.
pub fn caption_embeddings(captions: &[String], minilm_dir: &Path, cache: &Path) -> anyhow::Result<Vec<Vec<f32>>> {
    let mut known: BTreeMap<String, Vec<f32>> = match std::fs::read(cache) {
        Ok(bytes) => serde_json::from_slice(&bytes).with_context(|| format!("parsing {}", cache.display()))?,
        Err(_) => BTreeMap::new(),
    };
    let missing: Vec<&str> = captions.iter().map(String::as_str).filter(|c| !known.contains_key(*c)).collect();
    if !missing.is_empty() {
        let model = crate::encoders::load_minilm(minilm_dir, crate::backend::BackendKind::Flex)?;
        for chunk in missing.chunks(32) {
            for (caption, vector) in chunk.iter().zip(model.embed(chunk)?) {
                known.insert(caption.to_string(), vector);
            }
        }
        write_atomically(cache, &serde_json::to_vec(&known)?)?;
    }
    Ok(captions.iter().map(|c| known[c].clone()).collect())
}

/// The examples of micro-batch `index`: epochs are shuffles of the split drawn from the seed
/// and the epoch number alone.
pub fn batch_indices(seed: u64, index: usize, batch: usize, len: usize) -> Vec<usize> {
    let start = index * batch;
    let mut out = Vec::with_capacity(batch);
    let mut epoch = usize::MAX;
    let mut order = Vec::new();
    for k in start..start + batch {
        if k / len != epoch {
            epoch = k / len;
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            rng.set_stream(epoch as u64);
            order = (0..len).collect();
            order.shuffle(&mut rng);
        }
        out.push(order[k % len]);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_cover_each_epoch_once_and_repeat_with_the_seed() {
        let len = 10;
        let epoch: Vec<usize> = (0..5).flat_map(|i| batch_indices(7, i, 4, len)).collect();
        let mut first: Vec<usize> = epoch[..10].to_vec();
        first.sort();
        assert_eq!(first, (0..10).collect::<Vec<_>>());
        assert_eq!(batch_indices(7, 3, 4, len), batch_indices(7, 3, 4, len));
        assert_ne!(batch_indices(7, 0, 4, len), batch_indices(8, 0, 4, len));
    }

    #[test]
    fn channel_views_repeat_with_the_seed_and_cover_every_order() {
        assert_eq!(Augment::Channels.views(3, 5, 64), Augment::Channels.views(3, 5, 64));
        assert_ne!(Augment::Channels.views(3, 5, 64), Augment::Channels.views(3, 6, 64));
        let orders: std::collections::BTreeSet<[usize; 3]> = Augment::Channels.views(3, 5, 64).iter().map(|v| v.order).collect();
        assert_eq!(orders.len(), 6);
        assert!(Augment::None.views(3, 5, 4).iter().all(|v| v.order == [0, 1, 2]));
        let image = RgbImage::from_pixel(2, 1, image::Rgb([10, 20, 30]));
        assert_eq!(View { order: [2, 0, 1] }.apply(&image).get_pixel(1, 0).0, [30, 10, 20]);
    }
}
