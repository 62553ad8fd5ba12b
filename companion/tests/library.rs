//! `relsim index` on a real folder: crash safety under kill -9, incremental re-indexing, and
//! files that are not images.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use relsim_companion::library::open_store;

fn relsim() -> Command {
    Command::new(env!("CARGO_BIN_EXE_relsim"))
}

fn model_id() -> String {
    let options = relsim_companion::encoders::EncoderOptions::lite(relsim_companion::paths::default_lite_dir());
    relsim_companion::encoders::model_id("lite", &options).unwrap()
}

/// A library of `count` scenes (64 px) in nested folders, plus files that are not images.
fn library(dir: &Path, count: usize) -> PathBuf {
    let scenes = dir.join("scenes");
    let out = relsim().args(["scenes", "generate", "--families", "classic", "--objects", "0", "--count", &count.to_string(), "--size", "64", "--out"]).arg(&scenes).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let lib = dir.join("library");
    let mut names: Vec<PathBuf> = std::fs::read_dir(scenes.join("images")).unwrap().map(|e| e.unwrap().path()).collect();
    names.sort();
    for (i, path) in names.iter().enumerate() {
        let sub = lib.join(format!("album{}", i % 3)).join(if i % 2 == 0 { "deeper" } else { "" });
        std::fs::create_dir_all(&sub).unwrap();
        std::fs::copy(path, sub.join(format!("scene{i:04}.png"))).unwrap();
    }
    std::fs::write(lib.join("notes.png"), b"this is text, not a PNG").unwrap();
    let png = std::fs::read(&names[0]).unwrap();
    std::fs::write(lib.join("album0/truncated.png"), &png[..png.len() / 2]).unwrap();
    std::fs::write(lib.join("readme.txt"), b"not indexed: not an image name").unwrap();
    lib
}

fn index(lib: &Path, data: &Path) -> serde_json::Value {
    let out = relsim().arg("index").arg("--library").arg(lib).arg("--data-dir").arg(data).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(String::from_utf8_lossy(&out.stdout).lines().last().unwrap().as_bytes()).unwrap()
}

#[test]
fn kill_9_during_indexing_never_breaks_the_index_or_repeats_work() {
    let dir = tempfile::tempdir().unwrap();
    let lib = library(dir.path(), 320);
    let data = dir.path().join("data");
    let id = model_id();

    // How long a whole run takes here, to spread the kills over it.
    let probe = dir.path().join("probe");
    let started = Instant::now();
    let full = index(&lib, &probe);
    let span = started.elapsed();
    assert_eq!(full["progress"]["embedded"], 320, "{full}");
    assert_eq!(full["progress"]["failed"], 2, "{full}");
    assert_eq!(full["files"], 322, "{full}");

    let mut done_before = 0;
    let mut killed_mid_run = 0;
    // Stretches the kill points while restarts finish nothing (a busy machine starts slower
    // than the probe run suggested).
    let mut stretch = 1.0;
    for k in 0..10u32 {
        let mut child = relsim().arg("index").arg("--library").arg(&lib).arg("--data-dir").arg(&data).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
        // Ten kill points, each 6% to 9.6% of a whole run into a restart (a batch of 16 is 5%;
        // about 0.8 of a run in all), so that every kill can land mid-batch and work remains.
        let at = span.mul_f64((0.06 + 0.004 * f64::from(k)) * stretch).max(Duration::from_millis(30));
        std::thread::sleep(at);
        if child.try_wait().unwrap().is_none() {
            killed_mid_run += 1;
        }
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();

        let store = open_store(&data, &id).unwrap();
        store.check().unwrap();
        assert_eq!(store.image_frames_read, store.images.len(), "kill {k}: an image was embedded twice");
        assert!(store.images.len() >= done_before, "kill {k}: finished images were lost");
        if store.images.len() == done_before {
            stretch *= 1.5;
        }
        done_before = store.images.len();
    }
    eprintln!("{killed_mid_run} of 10 kills hit a running index; {done_before} of 320 images were done before the last run");
    assert!(killed_mid_run >= 5, "only {killed_mid_run} of 10 kills hit a running index");
    assert!(done_before > 0 && done_before < 320, "the kills left {done_before} of 320 images done: nothing to test");

    let last = index(&lib, &data);
    assert_eq!(last["progress"]["embedded"], 320 - done_before, "{last}");
    assert_eq!(last["images"], 320);
    assert_eq!(last["files"], 322);

    // The same library indexed without interruption gives the same vectors.
    let a = open_store(&data, &id).unwrap();
    let b = open_store(&probe, &id).unwrap();
    for (hash, image) in &b.images {
        let other = &a.images[hash];
        let diff = image.relational.0.iter().zip(&other.relational.0).map(|(x, y)| (x - y).abs()).fold(0f32, f32::max);
        assert!(diff < 1e-6, "{hash}: {diff}");
    }
}

#[test]
fn reindexing_finds_new_changed_touched_and_removed_files() {
    let dir = tempfile::tempdir().unwrap();
    let lib = library(dir.path(), 12);
    let data = dir.path().join("data");
    let first = index(&lib, &data);
    assert_eq!(first["progress"]["embedded"], 12, "{first}");
    assert_eq!(first["progress"]["failed"], 2, "{first}");
    let thumbs = std::fs::read_dir(data.join("thumbnails")).unwrap().count();
    assert_eq!(thumbs, 12);

    let again = index(&lib, &data);
    assert_eq!(again["progress"]["unchanged"], 14, "{again}");
    assert_eq!(again["progress"]["embedded"], 0, "{again}");

    let files: Vec<PathBuf> = walk(&lib);
    // A copy of a known image under a new name: reused, not embedded.
    std::fs::copy(&files[0], lib.join("copy.png")).unwrap();
    // A touched file (same bytes, new mtime): read again, content known, not embedded.
    let bytes = std::fs::read(&files[1]).unwrap();
    std::thread::sleep(Duration::from_millis(20));
    std::fs::write(&files[1], &bytes).unwrap();
    // A changed file: new content, embedded.
    let mut img = image::open(&files[2]).unwrap().to_rgb8();
    image::imageops::flip_horizontal_in_place(&mut img);
    img.save(&files[2]).unwrap();
    // A removed file.
    std::fs::remove_file(&files[3]).unwrap();

    let third = index(&lib, &data);
    let p = &third["progress"];
    assert_eq!(p["found"], 14, "{third}");
    assert_eq!(p["to_read"], 3, "{third}");
    assert_eq!(p["embedded"], 1, "{third}");
    assert_eq!(p["reused"], 2, "{third}");
    assert_eq!(p["removed"], 1, "{third}");
    // 12 scenes - 1 removed - the changed file's old content + its new content = 11.
    assert_eq!(third["images"], 11, "{third}");
    let store = open_store(&data, &model_id()).unwrap();
    store.check().unwrap();
    assert!(store.files.values().filter(|f| f.error.is_some()).count() == 2);
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else if p.file_name().unwrap().to_string_lossy().starts_with("scene") {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

#[test]
fn every_common_format_is_indexed_with_exif_orientation_and_broken_files_are_reported() {
    let photos = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/photos");
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let report = index(&photos, &data);
    let p = &report["progress"];
    assert_eq!(p["found"], 14, "{report}");
    assert_eq!(p["embedded"], 12, "{report}");
    assert_eq!(p["failed"], 2, "{report}");
    let store = open_store(&data, &model_id()).unwrap();
    let size_of = |name: &str| {
        let file = store.files.values().find(|f| f.path.ends_with(name)).unwrap_or_else(|| panic!("{name} not indexed"));
        let image = &store.images[file.hash.as_ref().unwrap_or_else(|| panic!("{name}: {:?}", file.error))];
        (image.width, image.height)
    };
    // Stored 120x80 with EXIF orientation 6: shown (and embedded) upright, 80x120.
    assert_eq!(size_of("rocket_exif_rotated.jpg"), (80, 120));
    assert_eq!(size_of("animated.gif"), (64, 64));
    for name in ["astronaut.jpg", "chelsea.webp", "coffee.bmp", "motorcycle.tiff", "camera_grey.png", "coffee_cmyk.jpg", "astronaut_16bit.png"] {
        let (w, h) = size_of(name);
        assert!(w.max(h) == 128, "{name}: {w}x{h}");
    }
    for broken in ["truncated.png", "not_really.png"] {
        let file = store.files.values().find(|f| f.path.ends_with(broken)).unwrap();
        assert!(file.hash.is_none() && file.error.as_ref().is_some_and(|e| e.contains(broken)), "{file:?}");
    }
    // When each was taken: the EXIF DateTimeOriginal of JPEG, WebP and PNG (eXIf), none without.
    let taken_of = |name: &str| {
        let file = store.files.values().find(|f| f.path.ends_with(name)).unwrap_or_else(|| panic!("{name} not indexed"));
        store.images[file.hash.as_ref().unwrap()].taken.clone()
    };
    assert_eq!(taken_of("dated/2019/astronaut.jpg").as_deref(), Some("2019-07-20T20:17:40"));
    assert_eq!(taken_of("dated/2021/chelsea.webp").as_deref(), Some("2021-03-05T08:00:00"));
    assert_eq!(taken_of("dated/2021/camera.png").as_deref(), Some("2021-12-31T23:59:59"));
    for name in ["astronaut.jpg", "chelsea.webp", "camera_grey.png", "rocket_exif_rotated.jpg"] {
        assert_eq!(taken_of(&format!("photos/{name}")), None, "{name} has no DateTimeOriginal");
    }
    // The thumbnail of the rotated photo is upright too.
    let file = store.files.values().find(|f| f.path.ends_with("rocket_exif_rotated.jpg")).unwrap();
    let thumb_path = data.join("thumbnails").join(format!("{}.jpg", file.hash.as_ref().unwrap()));
    let thumb = relsim_shared::image::preprocess::decode_rgb(&std::fs::read(&thumb_path).unwrap(), "thumbnail").unwrap();
    assert_eq!((thumb.width(), thumb.height()), (80, 120));
}
