//! Preprocessing against transformers' Qwen2VLImageProcessor (Pillow 12) on real photographs:
//! smart_resize, the resized uint8 image (bit-exact), grid_thw and pixel_values within 1e-5.
//! Fixtures: tests/fixtures/preprocess (made by make_reference.py there).

use std::path::PathBuf;

use relsim_shared::image::preprocess::{decode_rgb, patchify, resized_for, smart_resize, PreprocessMode, QwenImageConfig};
use safetensors::SafeTensors;
use serde::Deserialize;

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/preprocess")
}

#[derive(Deserialize)]
struct Index {
    entries: Vec<Entry>,
    smart_resize_cases: Vec<ResizeCase>,
}

#[derive(Deserialize)]
struct Entry {
    key: String,
    file: String,
    mode: String,
    max_pixels: usize,
    min_pixels: usize,
    resized_height: u32,
    resized_width: u32,
    grid_thw: [usize; 3],
    pixel_values_stored: bool,
}

#[derive(Deserialize)]
struct ResizeCase {
    height: usize,
    width: usize,
    min_pixels: usize,
    max_pixels: usize,
    /// [h, w], or the error message transformers raised.
    transformers: serde_json::Value,
}

fn index() -> Index {
    serde_json::from_slice(&std::fs::read(fixtures().join("reference.json")).unwrap()).unwrap()
}

fn f32s(bytes: &[u8]) -> Vec<f32> {
    bytes.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect()
}

#[test]
fn smart_resize_matches_transformers() {
    let cases = index().smart_resize_cases;
    assert!(cases.len() > 100);
    for c in cases {
        let got = smart_resize(c.height, c.width, 28, c.min_pixels, c.max_pixels).ok().map(|(h, w)| [h, w]);
        let expected: Option<[usize; 2]> = serde_json::from_value(c.transformers.clone()).ok();
        assert_eq!(got, expected, "{}x{} within [{}, {}]", c.height, c.width, c.min_pixels, c.max_pixels);
    }
}

#[test]
fn pixel_values_match_the_processor_on_real_photographs() {
    let index = index();
    let bytes = std::fs::read(fixtures().join("reference.safetensors")).unwrap();
    let reference = SafeTensors::deserialize(&bytes).unwrap();
    let mut checked = Vec::new();
    for entry in index.entries.iter().filter(|e| e.mode != "capped_whitebg") {
        let image_bytes = std::fs::read(fixtures().join(&entry.file)).unwrap();
        let img = decode_rgb(&image_bytes, &entry.file).unwrap();
        let config = QwenImageConfig { min_pixels: entry.min_pixels, max_pixels: entry.max_pixels, ..Default::default() };
        let mode = if entry.mode == "train" { PreprocessMode::Train } else { PreprocessMode::Native };
        let resized = resized_for(&img, mode, &config, &entry.file).unwrap();
        assert_eq!(resized.dimensions(), (entry.resized_width, entry.resized_height), "{}", entry.key);
        let expected_u8 = reference.tensor(&format!("{}.resized_u8", entry.key)).unwrap();
        let differing = resized.as_raw().iter().zip(expected_u8.data()).filter(|(a, b)| a != b).count();
        let max_level = resized.as_raw().iter().zip(expected_u8.data()).map(|(a, b)| a.abs_diff(*b)).max().unwrap_or(0);
        let pixels = patchify(&resized, &config);
        assert_eq!(pixels.grid_thw, entry.grid_thw, "{}", entry.key);
        assert_eq!(pixels.rows, entry.grid_thw[1] * entry.grid_thw[2]);
        let mut max_diff = 0.0f32;
        if entry.pixel_values_stored {
            let expected = f32s(reference.tensor(&format!("{}.pixel_values", entry.key)).unwrap().data());
            assert_eq!(expected.len(), pixels.values.len(), "{}", entry.key);
            max_diff = relsim_shared::vectors::max_abs_diff(&pixels.values, &expected);
        }
        eprintln!("{:28} resized {:>4}x{:<4} u8 levels differing {differing:>6} (max {max_level}), pixel_values max diff {max_diff:e}", entry.key, entry.resized_width, entry.resized_height);
        checked.push((entry.key.clone(), entry.file.clone(), differing, max_diff));
    }
    // PNG decoding is exact everywhere; JPEG decoders may differ from libjpeg-turbo by a level,
    // reported above and bounded here.
    for (key, file, differing, max_diff) in &checked {
        if file.ends_with(".png") {
            assert_eq!(*differing, 0, "{key}: resized image differs from Pillow's");
            assert!(*max_diff <= 1e-5, "{key}: pixel_values differ by {max_diff}");
        }
    }
    let exact_photos = checked.iter().filter(|(_, f, d, m)| f.ends_with(".png") && *d == 0 && *m <= 1e-5).count();
    assert!(exact_photos >= 6, "only {exact_photos} photographs matched");
}

#[test]
fn exif_orientation_is_applied() {
    let stored = decode_rgb(&std::fs::read(fixtures().join("images/rocket.jpg")).unwrap(), "rocket.jpg").unwrap();
    let rotated = decode_rgb(&std::fs::read(fixtures().join("images/rocket_exif6.jpg")).unwrap(), "rocket_exif6.jpg").unwrap();
    assert_eq!(stored.dimensions(), (640, 427));
    assert_eq!(rotated.dimensions(), (427, 640));
    // Orientation 6 = rotate 90° clockwise: the stored top-left pixel ends up top-right.
    assert_eq!(rotated.get_pixel(426, 0), stored.get_pixel(0, 0));
}

#[test]
fn undecodable_images_are_named_errors() {
    let err = decode_rgb(b"definitely not an image", "notes.txt").unwrap_err().to_string();
    assert!(err.contains("notes.txt"), "{err}");
    let png = std::fs::read(fixtures().join("images/chelsea_small_40x30.png")).unwrap();
    let err = decode_rgb(&png[..png.len() / 2], "truncated.png").unwrap_err().to_string();
    assert!(err.contains("truncated.png"), "{err}");
}
