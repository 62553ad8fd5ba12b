//! Checkpoint files: safetensors (one file or shards with an index), memory-mapped.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use memmap2::Mmap;
use relsim_shared::weights::Weights;
use safetensors::tensor::{Metadata, TensorView};
use safetensors::SafeTensors;

/// One memory-mapped safetensors file with its parsed header.
struct MappedFile {
    name: String,
    map: Mmap,
    header_len: usize,
    metadata: Metadata,
}

/// The tensors of one or more safetensors files, read lazily from memory maps.
pub struct MappedWeights {
    files: Vec<MappedFile>,
    /// key → index into `files`.
    keys: HashMap<String, usize>,
    describe: String,
}

impl MappedWeights {
    /// Maps the given safetensors files.
    pub fn open(paths: &[PathBuf], describe: impl Into<String>) -> anyhow::Result<Self> {
        let mut files = Vec::new();
        let mut keys = HashMap::new();
        for path in paths {
            let file = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
            // Safety: the file is only read; a concurrent writer could change what we read,
            // which is the usual caveat of memory-mapped model files.
            let map = unsafe { Mmap::map(&file) }.with_context(|| format!("mapping {}", path.display()))?;
            let (header_len, metadata) =
                SafeTensors::read_metadata(&map).map_err(|e| anyhow::anyhow!("{} is not valid safetensors: {e}", path.display()))?;
            for key in metadata.tensors().keys() {
                keys.insert(key.clone(), files.len());
            }
            files.push(MappedFile { name: path.display().to_string(), map, header_len, metadata });
        }
        Ok(Self { files, keys, describe: describe.into() })
    }

    /// Maps `dir/model.safetensors`, or the shards listed in `dir/model.safetensors.index.json`.
    pub fn open_dir(dir: &Path) -> anyhow::Result<Self> {
        let index_path = dir.join("model.safetensors.index.json");
        if index_path.is_file() {
            let text = std::fs::read_to_string(&index_path).with_context(|| format!("reading {}", index_path.display()))?;
            let index: serde_json::Value =
                serde_json::from_str(&text).with_context(|| format!("parsing {}", index_path.display()))?;
            let map = index["weight_map"].as_object().with_context(|| format!("{} has no weight_map", index_path.display()))?;
            let mut shards: Vec<&str> = map.values().filter_map(|v| v.as_str()).collect();
            shards.sort_unstable();
            shards.dedup();
            let paths: Vec<PathBuf> = shards.iter().map(|s| dir.join(s)).collect();
            for path in &paths {
                if !path.is_file() {
                    bail!("shard {} listed in {} is missing", path.display(), index_path.display());
                }
            }
            let weights = Self::open(&paths, index_path.display().to_string())?;
            for (key, shard) in map {
                if !weights.keys.contains_key(key) {
                    bail!("{} lists `{key}` in {}, but that shard does not hold it", index_path.display(), shard);
                }
            }
            return Ok(weights);
        }
        let single = dir.join("model.safetensors");
        if !single.is_file() {
            bail!("{} has neither model.safetensors nor model.safetensors.index.json", dir.display());
        }
        Self::open(&[single.clone()], single.display().to_string())
    }
}

/// Elements converted between two releases of mapped pages.
const RELEASE_CHUNK: usize = 1 << 22;

impl Weights for MappedWeights {
    /// Converts in chunks and hands each chunk's file pages back to the kernel once read, so
    /// loading holds the weights once (as f32 tensors) rather than twice (tensors + page cache).
    fn read_f32(&self, key: &str, expected: &[usize]) -> relsim_shared::Result<Vec<f32>> {
        let (view, file_name) = self.checked_view(key, expected)?;
        let file = &self.files[self.keys[key]];
        let width = view.dtype().bitsize() / 8;
        let data = view.data();
        let base = data.as_ptr() as usize - file.map.as_ptr() as usize;
        let mut out = Vec::with_capacity(data.len() / width.max(1));
        for (i, chunk) in data.chunks(RELEASE_CHUNK * width.max(1)).enumerate() {
            let values = relsim_shared::weights::to_f32(view.dtype(), chunk)
                .ok_or_else(|| relsim_shared::weights::dtype_error(&view, file_name.clone(), key))?;
            out.extend_from_slice(&values);
            // Safety: the map is read-only and private; dropped pages are re-read from the file
            // if touched again, so this only frees memory.
            let _ = unsafe {
                file.map.unchecked_advise_range(memmap2::UncheckedAdvice::DontNeed, base + i * RELEASE_CHUNK * width, chunk.len())
            };
        }
        Ok(out)
    }

    fn view(&self, key: &str) -> Option<(TensorView<'_>, String)> {
        let file = &self.files[*self.keys.get(key)?];
        let info = file.metadata.info(key)?;
        let start = 8 + file.header_len;
        let data = file.map.get(start + info.data_offsets.0..start + info.data_offsets.1)?;
        let view = TensorView::new(info.dtype, info.shape.clone(), data).ok()?;
        Some((view, file.name.clone()))
    }

    fn describe(&self) -> String {
        self.describe.clone()
    }
}
