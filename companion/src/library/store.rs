//! The library index on disk: an append-only log of checksummed frames.
//!
//! A crash (even `kill -9` in the middle of a write) leaves at most a torn last frame, which the
//! next open drops; every frame before it is whole, and an image's vectors are always written
//! before the file that points at them. So a restart finds a consistent index holding every image
//! finished before the crash, and never embeds those again. Superseded frames are dropped by
//! rewriting the log to a new file and renaming it over the old one (atomic).

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use anyhow::Context;
use base64::Engine;

use crate::files::{frame, frames};
#[cfg(test)]
use crate::files::FRAME_HEAD;
use serde::{Deserialize, Serialize};

/// The first frame of every index log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Header {
    /// Format name and version.
    pub format: String,
    /// Identifies the relational encoder: vectors of another model are not comparable.
    pub model: String,
    /// Identifies the attribute descriptor.
    pub attribute: String,
}

/// The format this build writes and reads.
pub const FORMAT: &str = "relsim-index/1";

/// An L2-normalised embedding, stored as base64 of little-endian f32s (a quarter of JSON's size).
#[derive(Debug, Clone, PartialEq)]
pub struct Vector(pub Vec<f32>);

impl Serialize for Vector {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let bytes: Vec<u8> = self.0.iter().flat_map(|x| x.to_le_bytes()).collect();
        s.serialize_str(&base64::engine::general_purpose::STANDARD.encode(bytes))
    }
}

impl<'de> Deserialize<'de> for Vector {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        let bytes = base64::engine::general_purpose::STANDARD.decode(text).map_err(serde::de::Error::custom)?;
        if bytes.len() % 4 != 0 {
            return Err(serde::de::Error::custom("vector bytes are not a whole number of f32s"));
        }
        Ok(Vector(bytes.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect()))
    }
}

/// One image's content, found by its SHA-256 whatever file holds it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImageEntry {
    pub hash: String,
    pub width: u32,
    pub height: u32,
    pub relational: Vector,
    pub attribute: Vector,
    /// When the photo was taken, by its EXIF DateTimeOriginal (`filter::DATE_FORMAT`); None
    /// without one (and for images indexed before dates were read: their file time serves).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub taken: Option<String>,
}

/// A file under a library folder as last seen: size and mtime tell whether it changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileEntry {
    pub path: PathBuf,
    pub size: u64,
    pub mtime_ns: i64,
    /// The image it holds; `None` when it could not be read as an image (`error` says why).
    pub hash: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// One frame of the log after the header.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Entry {
    Image(ImageEntry),
    File(FileEntry),
    Removed { path: PathBuf },
}

/// The index in memory, and the log it is kept in.
pub struct Store {
    path: PathBuf,
    header: Header,
    /// Images by hash.
    pub images: BTreeMap<String, ImageEntry>,
    /// Files by path.
    pub files: BTreeMap<PathBuf, FileEntry>,
    /// Frames in the log that a rewrite would drop.
    superseded: usize,
    log: BufWriter<File>,
    /// Image frames read at open (a test checks that no image is ever written twice).
    pub image_frames_read: usize,
}

impl Store {
    /// Opens the log at `path` (creating it), dropping a torn tail. A log of another model or
    /// format is set aside as `<path>.old` and a fresh one started: its vectors cannot be reused.
    pub fn open(path: &Path, header: Header) -> anyhow::Result<Self> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        let mut bytes = Vec::new();
        match File::open(path) {
            Ok(mut f) => {
                f.read_to_end(&mut bytes).with_context(|| format!("reading {}", path.display()))?;
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e).with_context(|| format!("opening {}", path.display())),
        }
        let (payloads, valid) = frames(&bytes);
        let saved: Option<Header> = payloads.first().and_then(|p| serde_json::from_slice(p).ok());
        if saved.as_ref() != Some(&header) {
            if !bytes.is_empty() {
                let old = path.with_extension("old");
                tracing::warn!("{} belongs to another model or format: moved to {}, starting afresh", path.display(), old.display());
                std::fs::rename(path, &old).with_context(|| format!("moving {} aside", path.display()))?;
            }
            return Self::create(path, header, BTreeMap::new(), BTreeMap::new());
        }
        let mut store = Store {
            path: path.to_path_buf(),
            header,
            images: BTreeMap::new(),
            files: BTreeMap::new(),
            superseded: 0,
            log: BufWriter::new(OpenOptions::new().write(true).open(path).with_context(|| format!("opening {}", path.display()))?),
            image_frames_read: 0,
        };
        for (i, payload) in payloads.iter().enumerate().skip(1) {
            match serde_json::from_slice::<Entry>(payload) {
                Ok(entry) => {
                    if matches!(entry, Entry::Image(_)) {
                        store.image_frames_read += 1;
                    }
                    store.apply(entry)
                }
                // A whole frame with a good checksum that does not parse was not written by
                // this version: refuse rather than drop what may be the user's data.
                Err(e) => anyhow::bail!(
                    "{}: frame {i} is not an index entry of this version ({e}); move the file aside to index afresh",
                    path.display()
                ),
            }
        }
        if valid < bytes.len() {
            tracing::warn!("{}: dropping a torn tail of {} bytes (an interrupted write)", path.display(), bytes.len() - valid);
        }
        store.log.get_mut().set_len(valid as u64).with_context(|| format!("truncating {}", path.display()))?;
        store.log.seek(SeekFrom::Start(valid as u64))?;
        if store.superseded > 1000 && store.superseded > store.files.len() {
            store.compact()?;
        }
        Ok(store)
    }

    /// Writes a new log holding `images` and `files` and renames it over `path`.
    fn create(path: &Path, header: Header, images: BTreeMap<String, ImageEntry>, files: BTreeMap<PathBuf, FileEntry>) -> anyhow::Result<Self> {
        let tmp = path.with_extension("tmp");
        {
            let mut w = BufWriter::new(File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?);
            w.write_all(&frame(&serde_json::to_vec(&header)?))?;
            // Only images some file points at survive a rewrite.
            let used: std::collections::BTreeSet<&str> = files.values().filter_map(|f| f.hash.as_deref()).collect();
            for image in images.values().filter(|i| used.contains(i.hash.as_str())) {
                w.write_all(&frame(&serde_json::to_vec(&Entry::Image(image.clone()))?))?;
            }
            for file in files.values() {
                w.write_all(&frame(&serde_json::to_vec(&Entry::File(file.clone()))?))?;
            }
            w.into_inner().map_err(|e| e.into_error()).and_then(|f| f.sync_all()).with_context(|| format!("writing {}", tmp.display()))?;
        }
        std::fs::rename(&tmp, path).with_context(|| format!("renaming {} to {}", tmp.display(), path.display()))?;
        if let Some(dir) = path.parent() {
            // The rename itself survives a power cut only once the folder is synced.
            let _ = File::open(dir).and_then(|d| d.sync_all());
        }
        let mut store = Store::open_fresh(path, header)?;
        let used: std::collections::BTreeSet<String> = files.values().filter_map(|f| f.hash.clone()).collect();
        store.images = images.into_iter().filter(|(h, _)| used.contains(h)).collect();
        store.files = files;
        Ok(store)
    }

    fn open_fresh(path: &Path, header: Header) -> anyhow::Result<Self> {
        let mut f = OpenOptions::new().write(true).open(path).with_context(|| format!("opening {}", path.display()))?;
        f.seek(SeekFrom::End(0))?;
        Ok(Store {
            path: path.to_path_buf(),
            header,
            images: BTreeMap::new(),
            files: BTreeMap::new(),
            superseded: 0,
            log: BufWriter::new(f),
            image_frames_read: 0,
        })
    }

    fn apply(&mut self, entry: Entry) {
        match entry {
            Entry::Image(image) => {
                if self.images.insert(image.hash.clone(), image).is_some() {
                    self.superseded += 1;
                }
            }
            Entry::File(file) => {
                if self.files.insert(file.path.clone(), file).is_some() {
                    self.superseded += 1;
                }
            }
            Entry::Removed { path } => {
                self.superseded += 1 + usize::from(self.files.remove(&path).is_some());
            }
        }
    }

    /// Appends `entries` and makes them durable (one fsync for the lot).
    pub fn append(&mut self, entries: Vec<Entry>) -> anyhow::Result<()> {
        if entries.is_empty() {
            return Ok(());
        }
        for entry in &entries {
            self.log.write_all(&frame(&serde_json::to_vec(entry)?)).with_context(|| format!("writing {}", self.path.display()))?;
        }
        self.log.flush().and_then(|_| self.log.get_ref().sync_data()).with_context(|| format!("writing {}", self.path.display()))?;
        for entry in entries {
            self.apply(entry);
        }
        Ok(())
    }

    /// Rewrites the log without superseded frames or unreferenced images.
    pub fn compact(&mut self) -> anyhow::Result<()> {
        let images = std::mem::take(&mut self.images);
        let files = std::mem::take(&mut self.files);
        *self = Self::create(&self.path.clone(), self.header.clone(), images, files)?;
        Ok(())
    }

    /// Checks the invariants a crash must never break: every file's image is present.
    pub fn check(&self) -> anyhow::Result<()> {
        for file in self.files.values() {
            if let Some(hash) = &file.hash {
                anyhow::ensure!(self.images.contains_key(hash), "{}: {} points at image {hash}, which the index lacks", self.path.display(), file.path.display());
            }
        }
        Ok(())
    }

    /// The relational model whose vectors the index holds (see `encoders::model_id`).
    pub fn model(&self) -> &str {
        &self.header.model
    }

    /// The log file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header() -> Header {
        Header { format: FORMAT.into(), model: "m".into(), attribute: "a".into() }
    }

    fn image(hash: &str) -> Entry {
        Entry::Image(ImageEntry { hash: hash.into(), width: 2, height: 3, relational: Vector(vec![1.0, -0.5]), attribute: Vector(vec![0.25]), taken: None })
    }

    fn file(path: &str, hash: &str) -> Entry {
        Entry::File(FileEntry { path: path.into(), size: 10, mtime_ns: 5, hash: Some(hash.into()), error: None })
    }

    #[test]
    fn a_torn_tail_is_dropped_and_whole_frames_survive() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("index.log");
        let mut store = Store::open(&path, header()).unwrap();
        store.append(vec![image("h1"), file("/a.png", "h1")]).unwrap();
        store.append(vec![image("h2"), file("/b.png", "h2")]).unwrap();
        drop(store);
        let whole = std::fs::read(&path).unwrap();
        // Cut the file at every byte of the last two frames: the first pair always survives.
        let first_pair_end = {
            let (f, _) = frames(&whole);
            f[..3].iter().map(|p| p.len() + FRAME_HEAD).sum::<usize>()
        };
        for cut in first_pair_end..whole.len() {
            std::fs::write(&path, &whole[..cut]).unwrap();
            let store = Store::open(&path, header()).unwrap();
            store.check().unwrap();
            assert_eq!(store.files.len(), 1, "cut at {cut}");
            assert_eq!(store.images["h1"].relational, Vector(vec![1.0, -0.5]));
            assert_eq!(std::fs::metadata(&path).unwrap().len() as usize, first_pair_end + if store.images.contains_key("h2") { frames(&whole).0[3].len() + FRAME_HEAD } else { 0 });
        }
        // A flipped byte inside a frame is caught by its checksum.
        let mut bad = whole.clone();
        let at = whole.len() - 3;
        bad[at] ^= 0xff;
        std::fs::write(&path, &bad).unwrap();
        let store = Store::open(&path, header()).unwrap();
        assert!(!store.files.contains_key(Path::new("/b.png")));
        assert!(store.files.contains_key(Path::new("/a.png")));
    }

    #[test]
    fn removals_and_compaction_keep_only_live_entries() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("index.log");
        let mut store = Store::open(&path, header()).unwrap();
        store.append(vec![image("h1"), file("/a.png", "h1"), image("h2"), file("/b.png", "h2")]).unwrap();
        store.append(vec![Entry::Removed { path: "/b.png".into() }, file("/c.png", "h1")]).unwrap();
        let before = std::fs::metadata(&path).unwrap().len();
        store.compact().unwrap();
        assert!(std::fs::metadata(&path).unwrap().len() < before);
        drop(store);
        let store = Store::open(&path, header()).unwrap();
        assert_eq!(store.files.keys().cloned().collect::<Vec<_>>(), vec![PathBuf::from("/a.png"), PathBuf::from("/c.png")]);
        assert_eq!(store.images.keys().cloned().collect::<Vec<_>>(), vec!["h1".to_string()]);
        assert_eq!(store.image_frames_read, 1);
    }

    #[test]
    fn a_log_of_another_model_is_set_aside() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("index.log");
        let mut store = Store::open(&path, header()).unwrap();
        store.append(vec![image("h1"), file("/a.png", "h1")]).unwrap();
        drop(store);
        let other = Header { model: "other".into(), ..header() };
        let store = Store::open(&path, other).unwrap();
        assert!(store.files.is_empty());
        assert!(path.with_extension("old").is_file());
    }
}
