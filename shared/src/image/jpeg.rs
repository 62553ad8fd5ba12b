//! JPEG in and out through libjpeg-turbo-rs, a pure-Rust port of libjpeg-turbo.
//!
//! Why not the `image` crate's decoder: Pillow (which the official relsim code loads images with)
//! decodes with libjpeg-turbo (islow IDCT, fancy upsampling), and zune-jpeg differs from it by one
//! level in places, ~0.015 after normalisation. libjpeg-turbo-rs reproduces libjpeg-turbo byte for
//! byte and builds for wasm, so the companion and the browser decode alike
//! (`tests/fixtures/preprocess/make_jpegs.py` holds Pillow's decodes of every layout we test).

use image::metadata::Orientation;
use image::RgbImage;
use libjpeg_turbo_rs::{ColorSpace, Decoder, PixelFormat, Subsampling};

/// True when `bytes` start like a JPEG stream (SOI then a marker).
pub fn is_jpeg(bytes: &[u8]) -> bool {
    bytes.len() >= 3 && bytes[0] == 0xFF && bytes[1] == 0xD8 && bytes[2] == 0xFF
}

/// A decoded JPEG before its EXIF orientation is applied.
pub struct Decoded {
    pub image: RgbImage,
    pub orientation: Orientation,
}

/// Why a JPEG could not be decoded: a size over the limit, or anything else the decoder says.
#[derive(Debug)]
pub enum JpegFailure {
    /// (width, height) of an image larger than allowed, found from the header alone.
    TooLarge(usize, usize),
    /// The header says the image has no pixels.
    Empty(usize, usize),
    /// The decoder's own message.
    Decode(String),
}

/// Decodes a JPEG as Pillow 12 does (`Image.open(..).convert("RGB")`): greyscale expanded to
/// R=G=B, CMYK/YCCK inverted as Adobe writes it and converted with Pillow's formula. Images of
/// more than `max_pixels` pixels are refused from the header, before any pixel is decoded.
pub fn decode(bytes: &[u8], max_pixels: u64) -> Result<Decoded, JpegFailure> {
    let err = |e: libjpeg_turbo_rs::JpegError| JpegFailure::Decode(e.to_string());
    // Making the decoder parses the header only: the size is checked before any pixel is decoded.
    let mut decoder = Decoder::new(bytes).map_err(err)?;
    let (width, height) = (decoder.header().width(), decoder.header().height());
    if width == 0 || height == 0 {
        return Err(JpegFailure::Empty(width, height));
    }
    if (width as u64) * (height as u64) > max_pixels {
        return Err(JpegFailure::TooLarge(width, height));
    }
    let cmyk = matches!(decoder.jpeg_color_space(), ColorSpace::Cmyk | ColorSpace::Ycck);
    let orientation = decoder.exif_orientation().and_then(Orientation::from_exif).unwrap_or(Orientation::NoTransforms);
    decoder.set_output_format(if cmyk { PixelFormat::Cmyk } else { PixelFormat::Rgb });
    let decoded = decoder.decode_image().map_err(err)?;
    let (w, h) = (decoded.width as u32, decoded.height as u32);
    let rgb = if cmyk { cmyk_to_rgb(&decoded.data) } else { decoded.data };
    let image = RgbImage::from_raw(w, h, rgb).ok_or_else(|| JpegFailure::Decode(format!("decoder returned a short buffer for {w}x{h}")))?;
    Ok(Decoded { image, orientation })
}

/// Pillow's reading of 4-component JPEGs: the stored values inverted (`CMYK;I`, the Adobe
/// convention Pillow assumes for every CMYK JPEG), then its `cmyk2rgb`:
/// `channel = nk - nk·c/255` with `nk = 255 - k`, in Pillow's integer rounding.
fn cmyk_to_rgb(cmyk: &[u8]) -> Vec<u8> {
    let muldiv255 = |a: u32, b: u32| {
        let t = a * b + 128;
        ((t >> 8) + t) >> 8
    };
    let mut out = Vec::with_capacity(cmyk.len() / 4 * 3);
    for px in cmyk.chunks_exact(4) {
        let nk = u32::from(px[3]); // 255 - (255 - k)
        for &c in &px[..3] {
            let c = 255 - u32::from(c);
            out.push(nk.saturating_sub(muldiv255(c, nk)).min(255) as u8);
        }
    }
    out
}

/// Encodes `image` as a baseline 4:2:0 JPEG of `quality` (thumbnails).
pub fn encode(image: &RgbImage, quality: u8) -> Result<Vec<u8>, String> {
    libjpeg_turbo_rs::compress(image.as_raw(), image.width() as usize, image.height() as usize, PixelFormat::Rgb, quality, Subsampling::S420)
        .map_err(|e| e.to_string())
}
