//! The browser's JPEG decode path: every fixture JPEG decoded by the wasm32 build (run under
//! Node by wasm-bindgen-test-runner; `cargo xtask test` does) gives Pillow 12's bytes, as the
//! native build does in tests/preprocess.rs. The wasm build takes libjpeg-turbo-rs' scalar paths.
#![cfg(target_arch = "wasm32")]

use relsim_shared::image::preprocess::decode_rgb;
use sha2::{Digest, Sha256};
use wasm_bindgen_test::wasm_bindgen_test;

const INDEX: &str = include_str!("../../tests/fixtures/preprocess/jpeg_reference.json");
const FILES: &[(&str, &[u8])] = &[
    ("tests/fixtures/preprocess/jpeg/baseline_420.jpg", include_bytes!("../../tests/fixtures/preprocess/jpeg/baseline_420.jpg")),
    ("tests/fixtures/preprocess/jpeg/baseline_422.jpg", include_bytes!("../../tests/fixtures/preprocess/jpeg/baseline_422.jpg")),
    ("tests/fixtures/preprocess/jpeg/baseline_444.jpg", include_bytes!("../../tests/fixtures/preprocess/jpeg/baseline_444.jpg")),
    ("tests/fixtures/preprocess/jpeg/cmyk.jpg", include_bytes!("../../tests/fixtures/preprocess/jpeg/cmyk.jpg")),
    ("tests/fixtures/preprocess/jpeg/exif3_422.jpg", include_bytes!("../../tests/fixtures/preprocess/jpeg/exif3_422.jpg")),
    ("tests/fixtures/preprocess/jpeg/exif5_444.jpg", include_bytes!("../../tests/fixtures/preprocess/jpeg/exif5_444.jpg")),
    ("tests/fixtures/preprocess/jpeg/exif6_420.jpg", include_bytes!("../../tests/fixtures/preprocess/jpeg/exif6_420.jpg")),
    ("tests/fixtures/preprocess/jpeg/exif8_progressive.jpg", include_bytes!("../../tests/fixtures/preprocess/jpeg/exif8_progressive.jpg")),
    ("tests/fixtures/preprocess/jpeg/grey.jpg", include_bytes!("../../tests/fixtures/preprocess/jpeg/grey.jpg")),
    ("tests/fixtures/preprocess/jpeg/grey_progressive.jpg", include_bytes!("../../tests/fixtures/preprocess/jpeg/grey_progressive.jpg")),
    ("tests/fixtures/preprocess/jpeg/optimized_420.jpg", include_bytes!("../../tests/fixtures/preprocess/jpeg/optimized_420.jpg")),
    ("tests/fixtures/preprocess/jpeg/progressive_420.jpg", include_bytes!("../../tests/fixtures/preprocess/jpeg/progressive_420.jpg")),
    ("tests/fixtures/preprocess/jpeg/progressive_444.jpg", include_bytes!("../../tests/fixtures/preprocess/jpeg/progressive_444.jpg")),
    ("tests/fixtures/preprocess/jpeg/restart_420.jpg", include_bytes!("../../tests/fixtures/preprocess/jpeg/restart_420.jpg")),
    ("tests/fixtures/preprocess/images/rocket.jpg", include_bytes!("../../tests/fixtures/preprocess/images/rocket.jpg")),
    ("tests/fixtures/preprocess/images/rocket_exif6.jpg", include_bytes!("../../tests/fixtures/preprocess/images/rocket_exif6.jpg")),
    ("tests/fixtures/preprocess/images/retina.jpg", include_bytes!("../../tests/fixtures/preprocess/images/retina.jpg")),
    ("tests/fixtures/photos/astronaut.jpg", include_bytes!("../../tests/fixtures/photos/astronaut.jpg")),
    ("tests/fixtures/photos/coffee_cmyk.jpg", include_bytes!("../../tests/fixtures/photos/coffee_cmyk.jpg")),
    ("tests/fixtures/photos/rocket_exif_rotated.jpg", include_bytes!("../../tests/fixtures/photos/rocket_exif_rotated.jpg")),
];

#[wasm_bindgen_test]
fn jpegs_decode_like_pillow_in_wasm() {
    let index: serde_json::Value = serde_json::from_str(INDEX).unwrap();
    let entries = index["entries"].as_array().unwrap();
    assert_eq!(entries.len(), FILES.len(), "FILES lists every JPEG of jpeg_reference.json");
    for entry in entries {
        let file = entry["file"].as_str().unwrap();
        let (_, bytes) = FILES.iter().find(|(f, _)| *f == file).unwrap_or_else(|| panic!("{file} is not in FILES"));
        let image = decode_rgb(bytes, file).unwrap();
        assert_eq!(serde_json::json!([image.width(), image.height()]), entry["decoded"], "{file}");
        let digest: String = Sha256::digest(image.as_raw()).iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(digest, entry["sha256"].as_str().unwrap(), "{file}: decoded bytes differ from Pillow's in wasm32");
    }
}
