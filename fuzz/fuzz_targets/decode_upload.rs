//! The path every uploaded or indexed file takes before the models: decoding (any format, EXIF
//! orientation, the pixel cap), the attribute descriptors, thumbnailing and the relsim-lite input.
//! Any panic, overflow or runaway allocation here is a crash of the companion.
#![no_main]

use libfuzzer_sys::fuzz_target;
use relsim_shared::image::{attribute, lite, preprocess};

/// The companion's upload cap is 50 M pixels; a smaller one keeps each run fast, and the cap
/// itself is what is being exercised.
const MAX_PIXELS: u64 = 4_000_000;

fuzz_target!(|data: &[u8]| {
    if let Ok(image) = preprocess::decode_rgb_limited(data, "fuzz input", MAX_PIXELS) {
        assert!(u64::from(image.width()) * u64::from(image.height()) <= MAX_PIXELS);
        let _ = attribute::colour_histogram(&image);
        let _ = attribute::edge_orientations(&image);
        let _ = image::DynamicImage::ImageRgb8(image.clone()).thumbnail(256, 256);
        let _ = lite::pixels(&image, 112);
    }
});
