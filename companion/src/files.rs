//! File helpers every floor uses: atomic writes, content hashes, checksummed log frames.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::Context;
use serde::de::DeserializeOwned;
use serde::Serialize;
use sha2::{Digest, Sha256};

/// Writes a file through a temporary sibling and a rename, so readers never see half of it.
/// The sibling's name is unique to this call, so processes or threads writing the same file at
/// once (two runs filling one cache) never rename each other's half-written file.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    static CALLS: AtomicU64 = AtomicU64::new(0);
    let unique = format!("{}-{}", std::process::id(), CALLS.fetch_add(1, Ordering::Relaxed));
    let mut name = path.file_name().with_context(|| format!("{} names no file", path.display()))?.to_os_string();
    name.push(format!(".tmp{unique}"));
    let tmp = path.with_file_name(name);
    let mut f = std::fs::File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
    f.write_all(bytes).and_then(|_| f.sync_all()).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("renaming {} to {}", tmp.display(), path.display()))
}

/// The SHA-256 of `bytes`, hex: the id of an image's content in the library and in scene sets.
pub fn content_hash(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

/// Bytes before each frame's payload. Append-only logs (the library index, study answers) are
/// checksummed frames: payload length (u32 LE), CRC-32 of the payload (u32 LE), payload (JSON).
pub const FRAME_HEAD: usize = 8;
/// A frame longer than this is corruption, not data.
const MAX_FRAME: usize = 64 << 20;

/// `payload` as one frame.
pub fn frame(payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(FRAME_HEAD + payload.len());
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(&crc32fast::hash(payload).to_le_bytes());
    out.extend_from_slice(payload);
    out
}

/// Splits `bytes` into whole, intact frames (a crash mid-write leaves at most a torn last one);
/// returns them and the length they cover (anything after it is a torn or corrupt tail).
pub fn frames(bytes: &[u8]) -> (Vec<&[u8]>, usize) {
    let mut out = Vec::new();
    let mut at = 0;
    while bytes.len() - at >= FRAME_HEAD {
        let len = u32::from_le_bytes(bytes[at..at + 4].try_into().expect("4 bytes")) as usize;
        let crc = u32::from_le_bytes(bytes[at + 4..at + 8].try_into().expect("4 bytes"));
        if len > MAX_FRAME || bytes.len() - at - FRAME_HEAD < len {
            break;
        }
        let payload = &bytes[at + FRAME_HEAD..at + FRAME_HEAD + len];
        if crc32fast::hash(payload) != crc {
            break;
        }
        out.push(payload);
        at += FRAME_HEAD + len;
    }
    (out, at)
}

/// An append-only log of JSON records in checksummed frames (study answers, judgements): a
/// record appended is on disk before `append` returns; a crash loses at most a torn last frame,
/// dropped at the next open.
pub struct FrameLog<T> {
    path: PathBuf,
    file: File,
    /// Every record, oldest first.
    pub records: Vec<T>,
}

impl<T: Serialize + DeserializeOwned> FrameLog<T> {
    /// Opens (or creates) the log, dropping a torn tail left by a crash.
    pub fn open(path: &Path) -> anyhow::Result<Self> {
        let mut file = OpenOptions::new().read(true).write(true).create(true).truncate(false).open(path).with_context(|| format!("opening {}", path.display()))?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes).with_context(|| format!("reading {}", path.display()))?;
        let (payloads, valid) = frames(&bytes);
        let records = payloads
            .iter()
            .enumerate()
            .map(|(i, p)| serde_json::from_slice(p).with_context(|| format!("{}: record {i} is not one this version reads", path.display())))
            .collect::<anyhow::Result<Vec<T>>>()?;
        if valid < bytes.len() {
            tracing::warn!("{}: dropping a torn tail of {} bytes (an interrupted write)", path.display(), bytes.len() - valid);
            file.set_len(valid as u64).with_context(|| format!("truncating {}", path.display()))?;
        }
        file.seek(SeekFrom::Start(valid as u64))?;
        Ok(FrameLog { path: path.to_path_buf(), file, records })
    }

    /// Appends `record` and syncs it to disk.
    pub fn append(&mut self, record: T) -> anyhow::Result<()> {
        self.file
            .write_all(&frame(&serde_json::to_vec(&record)?))
            .and_then(|_| self.file.sync_data())
            .with_context(|| format!("writing {}", self.path.display()))?;
        self.records.push(record);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn concurrent_writers_of_one_file_never_collide() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cache.json");
        std::thread::scope(|s| {
            for t in 0..8u8 {
                let path = &path;
                s.spawn(move || {
                    for _ in 0..50 {
                        write_atomically(path, &[t; 4096]).unwrap();
                    }
                });
            }
        });
        let bytes = std::fs::read(&path).unwrap();
        assert!(bytes.len() == 4096 && bytes.iter().all(|&b| b == bytes[0]), "a whole write of one writer");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1, "no temporary file left behind");
    }
}

