//! A user's image library: folders indexed incrementally into a crash-safe [`store::Store`],
//! each image with a relational embedding, an attribute embedding and a cached thumbnail.

pub mod catalog;
pub mod filter;
pub mod service;
pub mod store;

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::UNIX_EPOCH;

use anyhow::Context;
use image::RgbImage;
use rayon::prelude::*;
use relsim_shared::image::attribute;
use relsim_shared::image::preprocess::decode_rgb;
use relsim_shared::protocol::IndexProgress;

use crate::encoders::ImageEncoder;
use crate::files::content_hash;
use store::{Entry, FileEntry, ImageEntry, Store, Vector};

/// File name endings indexed (lower case).
pub const IMAGE_EXTENSIONS: [&str; 9] = ["jpg", "jpeg", "png", "webp", "gif", "bmp", "tif", "tiff", "jfif"];
/// Files larger than this are not read (no camera image comes near it).
pub const MAX_FILE_BYTES: u64 = 200 << 20;
/// Longest side of a cached thumbnail.
pub const THUMBNAIL_SIDE: u32 = 256;
/// Images embedded per durable write.
const BATCH: usize = 16;
/// Names the attribute descriptor stored in the index (a change invalidates stored vectors).
pub const ATTRIBUTE_DESCRIPTOR: &str = "colour-histogram+hog/1";

/// The attribute embedding: the colour histogram and the edge descriptor of the scenes
/// benchmark, each weighted 1/√2, so the cosine of two is the mean of the two cosines.
pub fn attribute_vector(image: &RgbImage) -> Vec<f32> {
    let w = std::f32::consts::FRAC_1_SQRT_2;
    attribute::colour_histogram(image).into_iter().chain(attribute::edge_orientations(image)).map(|x| x * w).collect()
}

/// Whether `path`'s name ends in one of [`IMAGE_EXTENSIONS`] (any case).
pub fn is_image_file(path: &Path) -> bool {
    path.extension().and_then(|e| e.to_str()).is_some_and(|e| IMAGE_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
}

/// A file found under a library folder.
#[derive(Debug, Clone)]
struct Found {
    path: PathBuf,
    size: u64,
    mtime_ns: i64,
}

/// Every image file under `roots`, recursively (symbolic links are not followed, so a link
/// cycle cannot trap the walk).
fn walk(roots: &[PathBuf], cancel: &AtomicBool) -> anyhow::Result<Vec<Found>> {
    let mut out = Vec::new();
    for root in roots {
        anyhow::ensure!(root.is_dir(), "library folder {} does not exist or is not a folder", root.display());
        for entry in walkdir::WalkDir::new(root).sort_by_file_name() {
            if cancel.load(Ordering::Relaxed) {
                break;
            }
            let entry = match entry {
                Ok(e) => e,
                Err(e) => {
                    tracing::warn!("skipping: {e}");
                    continue;
                }
            };
            if !entry.file_type().is_file() || !is_image_file(entry.path()) {
                continue;
            }
            let Ok(meta) = entry.metadata() else { continue };
            let mtime_ns = meta.modified().ok().and_then(|t| t.duration_since(UNIX_EPOCH).ok()).map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX));
            out.push(Found { path: entry.path().to_path_buf(), size: meta.len(), mtime_ns });
        }
    }
    Ok(out)
}

/// Everything indexing needs besides the store.
pub struct Indexer<'a> {
    pub roots: &'a [PathBuf],
    pub encoder: &'a dyn ImageEncoder,
    pub thumbnails: &'a Path,
    pub cancel: &'a AtomicBool,
}

/// One file as read: its bytes' hash, the decoded image (or why not), and when it was taken.
struct Loaded {
    hash: Option<String>,
    image: Result<RgbImage, String>,
    taken: Option<String>,
}

/// Reads one file.
fn read_image(path: &Path, size: u64) -> Loaded {
    let failed = |e: String| Loaded { hash: None, image: Err(e), taken: None };
    if size > MAX_FILE_BYTES {
        return failed(format!("{size} bytes is more than the {MAX_FILE_BYTES}-byte limit"));
    }
    let mut bytes = Vec::with_capacity(size as usize);
    if let Err(e) = std::fs::File::open(path).and_then(|f| f.take(MAX_FILE_BYTES + 1).read_to_end(&mut bytes)) {
        return failed(format!("cannot read: {e}"));
    }
    let image = decode_rgb(&bytes, &path.display().to_string()).map_err(|e| e.to_string());
    let taken = image.is_ok().then(|| filter::exif_date(&bytes)).flatten().map(|d| d.format(filter::DATE_FORMAT).to_string());
    Loaded { hash: Some(content_hash(&bytes)), image, taken }
}

/// Writes `image`'s thumbnail as `dir/<hash>.jpg` unless it is there (atomically: a crash leaves
/// no half-written thumbnail under the final name).
pub fn write_thumbnail(dir: &Path, hash: &str, image: &RgbImage) -> anyhow::Result<PathBuf> {
    let path = dir.join(format!("{hash}.jpg"));
    if path.is_file() {
        return Ok(path);
    }
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    // Shrunk to fit, never enlarged.
    let thumb = if image.width().max(image.height()) <= THUMBNAIL_SIDE {
        image.clone()
    } else {
        image::DynamicImage::ImageRgb8(image.clone()).thumbnail(THUMBNAIL_SIDE, THUMBNAIL_SIDE).to_rgb8()
    };
    let bytes = relsim_shared::image::jpeg::encode(&thumb, 85).map_err(|e| anyhow::anyhow!("encoding a thumbnail of {hash}: {e}"))?;
    let tmp = dir.join(format!("{hash}.jpg.tmp{}", std::process::id()));
    std::fs::write(&tmp, &bytes).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, &path).with_context(|| format!("renaming {}", tmp.display()))?;
    Ok(path)
}

impl Indexer<'_> {
    /// Brings `store` up to date with the folders: new and changed files are read (unchanged
    /// size and mtime: skipped without reading), content already indexed is reused, new content
    /// is embedded in durable batches, and files that are gone are removed. `report` sees the
    /// progress and the store after every step.
    pub fn run(&self, store: &mut Store, report: &mut dyn FnMut(&IndexProgress, &Store)) -> anyhow::Result<IndexProgress> {
        let mut p = IndexProgress { phase: "scanning".into(), ..Default::default() };
        report(&p, store);
        let found = walk(self.roots, self.cancel)?;
        p.found = found.len();
        let seen: BTreeSet<&Path> = found.iter().map(|f| f.path.as_path()).collect();
        let gone: Vec<Entry> = store.files.keys().filter(|k| !seen.contains(k.as_path())).map(|k| Entry::Removed { path: k.clone() }).collect();
        if !self.cancel.load(Ordering::Relaxed) {
            p.removed = gone.len();
            store.append(gone)?;
        }
        let changed: Vec<&Found> = found
            .iter()
            .filter(|f| store.files.get(&f.path).is_none_or(|old| old.size != f.size || old.mtime_ns != f.mtime_ns))
            .collect();
        p.unchanged = found.len() - changed.len();
        p.to_read = changed.len();
        p.phase = "embedding".into();
        report(&p, store);
        for chunk in changed.chunks(BATCH) {
            if self.cancel.load(Ordering::Relaxed) {
                p.phase = "cancelled".into();
                report(&p, store);
                return Ok(p);
            }
            let read: Vec<Loaded> = chunk.par_iter().map(|f| read_image(&f.path, f.size)).collect();
            // New content, once per hash even when several files of the batch hold it.
            let mut fresh: BTreeMap<&str, &Loaded> = BTreeMap::new();
            for r in &read {
                if let (Some(hash), Ok(_)) = (&r.hash, &r.image) {
                    if !store.images.contains_key(hash) {
                        fresh.insert(hash, r);
                    }
                }
            }
            let fresh: Vec<(&str, &RgbImage, Option<String>)> = fresh.into_iter().filter_map(|(h, r)| Some((h, r.image.as_ref().ok()?, r.taken.clone()))).collect();
            let images: Vec<RgbImage> = fresh.iter().map(|(_, i, _)| (*i).clone()).collect();
            let relational = if images.is_empty() { Vec::new() } else { self.encoder.embed_batch(&images)? };
            let attributes: Vec<Vec<f32>> = images.par_iter().map(attribute_vector).collect();
            fresh.par_iter().try_for_each(|(hash, image, _)| write_thumbnail(self.thumbnails, hash, image).map(|_| ()))?;
            let mut entries: Vec<Entry> = fresh
                .iter()
                .zip(relational)
                .zip(attributes)
                .map(|(((hash, image, taken), relational), attribute)| {
                    Entry::Image(ImageEntry {
                        hash: hash.to_string(),
                        width: image.width(),
                        height: image.height(),
                        relational: Vector(relational),
                        attribute: Vector(attribute),
                        taken: taken.clone(),
                    })
                })
                .collect();
            p.embedded += entries.len();
            for (f, r) in chunk.iter().zip(&read) {
                let error = r.image.as_ref().err().cloned();
                match &error {
                    Some(e) => {
                        tracing::warn!("{}: {e}", f.path.display());
                        p.failed += 1;
                    }
                    None if !fresh.iter().any(|(h, _, _)| Some(*h) == r.hash.as_deref()) => p.reused += 1,
                    None => {}
                }
                let hash = if error.is_none() { r.hash.clone() } else { None };
                entries.push(Entry::File(FileEntry { path: f.path.clone(), size: f.size, mtime_ns: f.mtime_ns, hash, error }));
            }
            // Images first, then the files that point at them, in one durable write.
            store.append(entries)?;
            p.read += chunk.len();
            report(&p, store);
        }
        if p.removed > 0 || p.reused > 0 {
            store.compact()?;
        }
        p.phase = "done".into();
        report(&p, store);
        Ok(p)
    }
}

/// Opens the index of `model` in `data_dir` (creating it).
pub fn open_store(data_dir: &Path, model_id: &str) -> anyhow::Result<Store> {
    let header = store::Header { format: store::FORMAT.into(), model: model_id.to_string(), attribute: ATTRIBUTE_DESCRIPTOR.into() };
    Store::open(&data_dir.join("index").join(format!("{model_id}.log")), header)
}

/// The library folders (canonical), the relational encoder `model` and its index in `data_dir`:
/// what both `relsim index` and `relsim serve` start from.
pub fn open(libraries: &[PathBuf], data_dir: &Path, model: &str, options: &crate::encoders::EncoderOptions) -> anyhow::Result<(Vec<PathBuf>, Box<dyn ImageEncoder>, Store)> {
    let roots = libraries.iter().map(|d| d.canonicalize().with_context(|| format!("library folder {}", d.display()))).collect::<anyhow::Result<Vec<_>>>()?;
    let encoder = crate::encoders::by_name(model, options)?;
    let store = open_store(data_dir, &crate::encoders::model_id(model, options)?)?;
    Ok((roots, encoder, store))
}
