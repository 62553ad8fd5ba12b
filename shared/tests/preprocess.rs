//! Preprocessing against transformers' Qwen2-VL image processors on real photographs and
//! generated sizes: smart_resize, the resized uint8 image, grid_thw and pixel_values, for the PIL
//! backend (Pillow 12; make_reference.py) and the torchvision one (make_torchvision.py), and the
//! JPEG decode (make_jpegs.py). Fixtures: tests/fixtures/preprocess.

use std::path::PathBuf;

use relsim_shared::image::preprocess::{decode_rgb, normalised, patchify, resized_for, smart_resize, ImageBackend, PreprocessMode, QwenImageConfig};
use relsim_shared::image::RgbImage;
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
        let config = QwenImageConfig { min_pixels: entry.min_pixels, max_pixels: entry.max_pixels, backend: ImageBackend::Pil, ..Default::default() };
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
    // PNG and JPEG (libjpeg-turbo's decode, as Pillow's) alike: exact.
    for (key, _, differing, max_diff) in &checked {
        assert_eq!(*differing, 0, "{key}: resized image differs from Pillow's");
        assert!(*max_diff <= 1e-5, "{key}: pixel_values differ by {max_diff}");
    }
    assert!(checked.iter().filter(|(_, f, _, _)| f.ends_with(".jpg")).count() >= 4);
}

#[derive(Deserialize)]
struct JpegIndex {
    entries: Vec<JpegEntry>,
}

#[derive(Deserialize)]
struct JpegEntry {
    file: String,
    mode: String,
    progressive: bool,
    subsampling: i32,
    orientation: u8,
    decoded: [u32; 2],
    sha256: String,
    tensor: Option<String>,
}

/// Every JPEG layout decodes to Pillow 12's bytes (libjpeg-turbo 3.1.2: islow IDCT, fancy
/// upsampling, Pillow's CMYK conversion), EXIF orientation applied.
#[test]
fn jpegs_decode_like_pillow() {
    use sha2::{Digest, Sha256};
    let root = fixtures().join("../../..");
    let index: JpegIndex = serde_json::from_slice(&std::fs::read(fixtures().join("jpeg_reference.json")).unwrap()).unwrap();
    let bytes = std::fs::read(fixtures().join("jpeg_reference.safetensors")).unwrap();
    let reference = SafeTensors::deserialize(&bytes).unwrap();
    let mut layouts = std::collections::BTreeSet::new();
    for entry in &index.entries {
        let image = decode_rgb(&std::fs::read(root.join(&entry.file)).unwrap(), &entry.file).unwrap();
        assert_eq!([image.width(), image.height()], entry.decoded, "{}", entry.file);
        if let Some(key) = &entry.tensor {
            let expected = reference.tensor(key).unwrap();
            let differing = image.as_raw().iter().zip(expected.data()).filter(|(a, b)| a != b).count();
            let max_level = image.as_raw().iter().zip(expected.data()).map(|(a, b)| a.abs_diff(*b)).max().unwrap_or(0);
            eprintln!("{:55} {differing:>6} values differ (max {max_level} levels)", entry.file);
            assert_eq!(differing, 0, "{}: {differing} values differ from Pillow's, by up to {max_level} levels", entry.file);
        }
        let digest: String = Sha256::digest(image.as_raw()).iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(digest, entry.sha256, "{}: decoded bytes differ from Pillow's", entry.file);
        layouts.insert((entry.mode.clone(), entry.progressive, entry.subsampling, entry.orientation != 1));
    }
    // Baseline and progressive, 4:2:0, 4:2:2 and 4:4:4, grey, CMYK, EXIF-rotated: all covered.
    assert!(layouts.len() >= 10, "{layouts:?}");
    type Layout = (String, bool, i32, bool);
    let wanted: [fn(&Layout) -> bool; 7] = [|l| l.1, |l| l.2 == 2, |l| l.2 == 1, |l| l.2 == 0, |l| l.0 == "L", |l| l.0 == "CMYK", |l| l.3];
    for (i, want) in wanted.iter().enumerate() {
        assert!(layouts.iter().any(want), "layout {i} missing: {layouts:?}");
    }
}

#[test]
fn jpeg_limits_refuse_before_decoding() {
    let jpeg = std::fs::read(fixtures().join("jpeg/baseline_420.jpg")).unwrap();
    let err = relsim_shared::image::preprocess::decode_rgb_limited(&jpeg, "big.jpg", 1000).unwrap_err().to_string();
    assert!(err.contains("big.jpg") && err.contains("227x149 is more than 1000 pixels"), "{err}");
    let err = decode_rgb(&jpeg[..jpeg.len() / 3], "cut.jpg").unwrap_err().to_string();
    assert!(err.contains("cut.jpg"), "{err}");
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

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

fn f32_bytes(values: &[f32]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

fn torchvision_reference() -> (serde_json::Value, Vec<u8>) {
    let index = serde_json::from_slice(&std::fs::read(fixtures().join("torchvision.json")).unwrap()).unwrap();
    (index, std::fs::read(fixtures().join("torchvision.safetensors")).unwrap())
}

fn torchvision_config(min_pixels: u64, max_pixels: u64) -> QwenImageConfig {
    QwenImageConfig { min_pixels: min_pixels as usize, max_pixels: max_pixels as usize, backend: ImageBackend::Torchvision, ..Default::default() }
}

/// Rescale + normalise of every level, bit for bit, in each backend's arithmetic (the two differ
/// by float rounding: ~1e-7).
#[test]
fn normalisation_matches_each_backend() {
    let (_, bytes) = torchvision_reference();
    let reference = SafeTensors::deserialize(&bytes).unwrap();
    let table = f32s(reference.tensor("normalise_table").unwrap().data());
    let tv = torchvision_config(3136, 12845056);
    let pil = QwenImageConfig { backend: ImageBackend::Pil, ..tv.clone() };
    let (mut differing_tv, mut differing_pil) = (0, 0);
    for c in 0..3 {
        for level in 0..=255u8 {
            let expected = table[c * 256 + level as usize];
            differing_tv += usize::from(normalised(level, c, &tv).to_bits() != expected.to_bits());
            differing_pil += usize::from(normalised(level, c, &pil).to_bits() != expected.to_bits());
        }
    }
    assert_eq!(differing_tv, 0, "torchvision normalisation differs on {differing_tv} of 768 values");
    // The PIL arithmetic is really different: the backends are told apart.
    assert!(differing_pil > 100, "{differing_pil}");
}

/// The photographs through the torchvision processor: handed over as they are (torch's
/// antialiased bicubic), after qwen_vl_utils' Pillow resize (the official scorer), and after the
/// training crop. Resized uint8 and pixel_values bit-exact.
#[test]
fn torchvision_processor_matches_on_real_photographs() {
    let (index, bytes) = torchvision_reference();
    let reference = SafeTensors::deserialize(&bytes).unwrap();
    let mut checked = 0;
    for entry in index["entries"].as_array().unwrap() {
        let key = entry["key"].as_str().unwrap();
        let file = entry["file"].as_str().unwrap();
        let img = decode_rgb(&std::fs::read(fixtures().join(file)).unwrap(), file).unwrap();
        let config = torchvision_config(entry["min_pixels"].as_u64().unwrap(), entry["max_pixels"].as_u64().unwrap());
        for (name, mode) in [("processor", PreprocessMode::Processor), ("native", PreprocessMode::Native), ("train", PreprocessMode::Train)] {
            let Some(expected) = entry.get(name) else { continue };
            let resized = resized_for(&img, mode, &config, file).unwrap();
            assert_eq!(serde_json::json!([resized.width(), resized.height()]), expected["resized_wh"], "{key} {name}");
            if let Ok(u8s) = reference.tensor(&format!("{key}.{name}.resized_u8")) {
                let differing = resized.as_raw().iter().zip(u8s.data()).filter(|(a, b)| a != b).count();
                let max_level = resized.as_raw().iter().zip(u8s.data()).map(|(a, b)| a.abs_diff(*b)).max().unwrap_or(0);
                eprintln!("{key:24} {name:9} {:>4}x{:<4} {differing:>6} uint8 values differ (max {max_level})", resized.width(), resized.height());
                assert_eq!(differing, 0, "{key} {name}: {differing} values differ from torchvision's, by up to {max_level} levels");
            }
            if let Some(hash) = expected.get("resized_u8_sha256") {
                assert_eq!(sha256_hex(resized.as_raw()), hash.as_str().unwrap(), "{key} {name}: resized image");
            }
            let pixels = patchify(&resized, &config);
            assert_eq!(serde_json::json!(pixels.grid_thw), expected["grid_thw"], "{key} {name}");
            if let Ok(values) = reference.tensor(&format!("{key}.{name}.pixel_values")) {
                assert_eq!(relsim_shared::vectors::max_abs_diff(&pixels.values, &f32s(values.data())), 0.0, "{key} {name}");
            }
            assert_eq!(sha256_hex(&f32_bytes(&pixels.values)), expected["pixel_values_sha256"].as_str().unwrap(), "{key} {name}: pixel_values");
            checked += 1;
        }
    }
    assert!(checked >= 25, "{checked}");
}

/// astronaut.png tiled from (ox, oy): the generated inputs of make_torchvision.py.
fn tiled(base: &RgbImage, width: u32, height: u32, ox: u32, oy: u32) -> RgbImage {
    RgbImage::from_fn(width, height, |x, y| *base.get_pixel((x + ox) % base.width(), (y + oy) % base.height()))
}

/// 320 generated sizes through the torchvision processor (up- and downscaling on each axis,
/// aspect ratios up to 200:1, under min_pixels, over max_pixels caps): resized uint8 and
/// pixel_values bit-exact. The differing values are counted and reported, case by case.
#[test]
fn torchvision_resize_matches_on_320_sizes() {
    let (index, bytes) = torchvision_reference();
    let reference = SafeTensors::deserialize(&bytes).unwrap();
    let base = decode_rgb(&std::fs::read(fixtures().join("images/astronaut.png")).unwrap(), "astronaut.png").unwrap();
    let cases = index["cases"].as_array().unwrap();
    assert!(cases.len() >= 300);
    let (mut failures, mut differing_values, mut compared) = (Vec::new(), 0usize, 0usize);
    for (i, case) in cases.iter().enumerate() {
        let n = |k: &str| case[k].as_u64().unwrap();
        let config = torchvision_config(n("min_pixels"), n("max_pixels"));
        let input = tiled(&base, n("width") as u32, n("height") as u32, n("ox") as u32, n("oy") as u32);
        let resized = match resized_for(&input, PreprocessMode::Processor, &config, "case") {
            Ok(r) => r,
            Err(e) => {
                assert!(case.get("error").is_some(), "case {i}: {e}");
                continue;
            }
        };
        assert_eq!(serde_json::json!([resized.width(), resized.height()]), case["resized_wh"], "case {i}");
        if let Some(key) = case.get("tensor") {
            let expected = reference.tensor(key.as_str().unwrap()).unwrap();
            differing_values += resized.as_raw().iter().zip(expected.data()).filter(|(a, b)| a != b).count();
            compared += expected.data().len();
        }
        let pixels = patchify(&resized, &config);
        let same_u8 = sha256_hex(resized.as_raw()) == case["resized_u8_sha256"].as_str().unwrap();
        let same_pixels = sha256_hex(&f32_bytes(&pixels.values)) == case["pixel_values_sha256"].as_str().unwrap();
        if !(same_u8 && same_pixels) {
            failures.push(format!("case {i}: {}x{} -> {}x{} (u8 same: {same_u8}, pixel_values same: {same_pixels})", n("width"), n("height"), resized.width(), resized.height()));
        }
    }
    eprintln!("{} cases, {} differ; {differing_values} of {compared} stored uint8 values differ", cases.len(), failures.len());
    assert!(failures.is_empty() && differing_values == 0, "{failures:#?}");
}
