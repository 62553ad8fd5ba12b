//! Decoding images and turning them into Qwen2.5-VL `pixel_values`, as transformers'
//! Qwen2-VL image processors do (either backend, see [`ImageBackend`]).

use std::io::Cursor;

use image::{DynamicImage, ImageDecoder, ImageReader, RgbImage};
use serde::Deserialize;

use super::resample::{resize, resize_torch_bicubic, Filter};

/// Decoded images larger than this many pixels are refused (decompression bombs).
pub const MAX_DECODED_PIXELS: u64 = 100_000_000;

/// Why an image could not be prepared.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    /// The bytes are not an image we can decode.
    #[error("{name}: cannot decode the image: {reason}")]
    Decode { name: String, reason: String },
    /// The image is outside what the processor accepts.
    #[error("{name}: {reason}")]
    Unsupported { name: String, reason: String },
}

/// Decodes `bytes` to RGB, with the EXIF orientation applied (alpha dropped, grey expanded).
/// `name` names the image in errors.
pub fn decode_rgb(bytes: &[u8], name: &str) -> Result<RgbImage, ImageError> {
    decode_rgb_limited(bytes, name, MAX_DECODED_PIXELS)
}

/// [`decode_rgb`] refusing images of more than `max_pixels` pixels before decoding them.
/// JPEGs go through [`super::jpeg`] (libjpeg-turbo's output, as Pillow's), the rest through `image`.
pub fn decode_rgb_limited(bytes: &[u8], name: &str, max_pixels: u64) -> Result<RgbImage, ImageError> {
    let too_large = |w: u64, h: u64| ImageError::Unsupported { name: name.to_string(), reason: format!("{w}x{h} is more than {max_pixels} pixels") };
    let empty = |w: u64, h: u64| ImageError::Unsupported { name: name.to_string(), reason: format!("{w}x{h}: the image has no pixels") };
    if super::jpeg::is_jpeg(bytes) {
        use super::jpeg::JpegFailure;
        let decoded = super::jpeg::decode(bytes, max_pixels).map_err(|failure| match failure {
            JpegFailure::TooLarge(w, h) => too_large(w as u64, h as u64),
            JpegFailure::Empty(w, h) => empty(w as u64, h as u64),
            JpegFailure::Decode(reason) => ImageError::Decode { name: name.to_string(), reason },
        })?;
        let mut img = DynamicImage::ImageRgb8(decoded.image);
        img.apply_orientation(decoded.orientation);
        return Ok(img.to_rgb8());
    }
    let err = |e: image::ImageError| ImageError::Decode { name: name.to_string(), reason: e.to_string() };
    let reader = ImageReader::new(Cursor::new(bytes)).with_guessed_format().map_err(|e| ImageError::Decode {
        name: name.to_string(),
        reason: e.to_string(),
    })?;
    let mut decoder = reader.into_decoder().map_err(err)?;
    let (w, h) = decoder.dimensions();
    if w == 0 || h == 0 {
        return Err(empty(w.into(), h.into()));
    }
    if u64::from(w) * u64::from(h) > max_pixels {
        return Err(too_large(w.into(), h.into()));
    }
    let orientation = decoder.orientation().map_err(err)?;
    let mut img = DynamicImage::from_decoder(decoder).map_err(err)?;
    img.apply_orientation(orientation);
    Ok(img.to_rgb8())
}

/// The image processor settings of `preprocessor_config.json`.
#[derive(Debug, Clone, Deserialize)]
pub struct QwenImageConfig {
    #[serde(default = "d_patch")]
    pub patch_size: usize,
    #[serde(default = "d_merge")]
    pub merge_size: usize,
    #[serde(default = "d_temporal")]
    pub temporal_patch_size: usize,
    #[serde(default = "d_min")]
    pub min_pixels: usize,
    #[serde(default = "d_max")]
    pub max_pixels: usize,
    #[serde(default = "d_mean")]
    pub image_mean: [f32; 3],
    #[serde(default = "d_std")]
    pub image_std: [f32; 3],
    /// Which processor implementation to reproduce: the user's choice, not the file's.
    #[serde(skip)]
    pub backend: ImageBackend,
}

/// Which of transformers' two Qwen2-VL image processors to reproduce (they differ by one uint8
/// level where they resize, and by float rounding in the normalisation).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ImageBackend {
    /// `Qwen2VLImageProcessor`, what `AutoProcessor` gives with transformers 5 (the official code's
    /// environment): torch's antialiased bicubic on uint8, rescale and normalise fused in f32.
    #[default]
    Torchvision,
    /// `Qwen2VLImageProcessorPil` (`backend="pil"`, formerly `use_fast=False`): Pillow's bicubic,
    /// then rescale (f64) and normalise (f32).
    Pil,
}

fn d_patch() -> usize {
    14
}
fn d_merge() -> usize {
    2
}
fn d_temporal() -> usize {
    2
}
fn d_min() -> usize {
    3136
}
fn d_max() -> usize {
    12_845_056
}
fn d_mean() -> [f32; 3] {
    [0.481_454_66, 0.457_827_5, 0.408_210_73]
}
fn d_std() -> [f32; 3] {
    [0.268_629_54, 0.261_302_58, 0.275_777_11]
}

impl Default for QwenImageConfig {
    fn default() -> Self {
        serde_json::from_str("{}").expect("defaults")
    }
}

impl QwenImageConfig {
    /// Parses `preprocessor_config.json` (`min_pixels`/`max_pixels`, or the newer `size` form).
    pub fn from_json(bytes: &[u8]) -> Result<Self, serde_json::Error> {
        #[derive(Deserialize)]
        struct Size {
            shortest_edge: Option<usize>,
            longest_edge: Option<usize>,
        }
        #[derive(Deserialize)]
        struct WithSize {
            size: Option<Size>,
            min_pixels: Option<usize>,
            max_pixels: Option<usize>,
        }
        let mut config: Self = serde_json::from_slice(bytes)?;
        let extra: WithSize = serde_json::from_slice(bytes)?;
        if let (None, Some(size)) = (extra.min_pixels, &extra.size) {
            config.min_pixels = size.shortest_edge.unwrap_or(config.min_pixels);
        }
        if let (None, Some(size)) = (extra.max_pixels, &extra.size) {
            config.max_pixels = size.longest_edge.unwrap_or(config.max_pixels);
        }
        Ok(config)
    }

    /// Side lengths are multiples of this (patch × merge = 28).
    pub fn factor(&self) -> usize {
        self.patch_size * self.merge_size
    }

    /// Values per patch row: channels × temporal patch × patch².
    pub fn patch_dim(&self) -> usize {
        3 * self.temporal_patch_size * self.patch_size * self.patch_size
    }
}

/// How an image is fitted before patching.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PreprocessMode {
    /// At its own size through smart_resize, as the official scorer does: `qwen_vl_utils` resizes
    /// with Pillow's bicubic first, so the processor's own resize has nothing left to do.
    #[default]
    Native,
    /// Handed to the processor as it is (no `qwen_vl_utils`), which resizes with its backend's
    /// filter: how `processor(images=...)` callers such as vLLM run the model.
    Processor,
    /// Centre-cropped to a square and resized to 448×448 (Lanczos), as the official training does.
    Train,
}

/// The training side length.
pub const TRAIN_SIZE: u32 = 448;

/// Qwen's smart_resize: (height, width) rounded to multiples of `factor`, within the pixel budget.
pub fn smart_resize(height: usize, width: usize, factor: usize, min_pixels: usize, max_pixels: usize) -> Result<(usize, usize), String> {
    let (h, w, f) = (height as f64, width as f64, factor as f64);
    if height == 0 || width == 0 {
        return Err(format!("image is {width}x{height}"));
    }
    if h.max(w) / h.min(w) > 200.0 {
        return Err(format!("aspect ratio of {width}x{height} exceeds 200"));
    }
    // Python's round() rounds halves to even.
    let mut h_bar = (h / f).round_ties_even() * f;
    let mut w_bar = (w / f).round_ties_even() * f;
    if h_bar * w_bar > max_pixels as f64 {
        let beta = (h * w / max_pixels as f64).sqrt();
        h_bar = f.max((h / beta / f).floor() * f);
        w_bar = f.max((w / beta / f).floor() * f);
    } else if h_bar * w_bar < min_pixels as f64 {
        let beta = (min_pixels as f64 / (h * w)).sqrt();
        h_bar = (h * beta / f).ceil() * f;
        w_bar = (w * beta / f).ceil() * f;
    }
    Ok((h_bar as usize, w_bar as usize))
}

/// Crops the centred square of side min(width, height), as relsim's training loader does.
pub fn center_crop_square(img: &RgbImage) -> RgbImage {
    let m = img.width().min(img.height());
    let (left, top) = ((img.width() - m) / 2, (img.height() - m) / 2);
    image::imageops::crop_imm(img, left, top, m, m).to_image()
}

/// Patch rows ready for the vision tower.
#[derive(Debug, Clone, PartialEq)]
pub struct PixelValues {
    /// Row-major `[rows, patch_dim]`.
    pub values: Vec<f32>,
    pub rows: usize,
    pub patch_dim: usize,
    /// (t, h, w) in patches.
    pub grid_thw: [usize; 3],
}

/// The image exactly as the processor sees it after resizing (uint8 RGB).
pub fn resized_for(img: &RgbImage, mode: PreprocessMode, config: &QwenImageConfig, name: &str) -> Result<RgbImage, ImageError> {
    let img = match mode {
        PreprocessMode::Native | PreprocessMode::Processor => img.clone(),
        // The official training loader crops and resizes with Pillow before the processor.
        PreprocessMode::Train => resize(&center_crop_square(img), TRAIN_SIZE, TRAIN_SIZE, Filter::Lanczos),
    };
    let (h, w) = smart_resize(img.height() as usize, img.width() as usize, config.factor(), config.min_pixels, config.max_pixels)
        .map_err(|reason| ImageError::Unsupported { name: name.to_string(), reason })?;
    let (w, h) = (w as u32, h as u32);
    Ok(if (w, h) == img.dimensions() {
        img
    } else if mode == PreprocessMode::Native || config.backend == ImageBackend::Pil {
        resize(&img, w, h, Filter::Bicubic)
    } else {
        resize_torch_bicubic(&img, w, h)
    })
}

/// The value of uint8 level `level` of channel `c` after rescale and normalise, in the
/// backend's arithmetic: `(f32(f64(u8)/255) - mean) / std` for PIL; torchvision folds the
/// rescale into the statistics, `(f32(u8) - f32(mean·255)) / f32(std·255)`.
pub fn normalised(level: u8, c: usize, config: &QwenImageConfig) -> f32 {
    match config.backend {
        ImageBackend::Pil => ((f64::from(level) * (1.0 / 255.0)) as f32 - config.image_mean[c]) / config.image_std[c],
        ImageBackend::Torchvision => (f32::from(level) - config.image_mean[c] * 255.0) / (config.image_std[c] * 255.0),
    }
}

/// Rescale, normalise and cut a resized image into patch rows in the processor's order.
pub fn patchify(img: &RgbImage, config: &QwenImageConfig) -> PixelValues {
    let (p, m, t) = (config.patch_size, config.merge_size, config.temporal_patch_size);
    let (gh, gw) = (img.height() as usize / p, img.width() as usize / p);
    let patch_dim = config.patch_dim();
    let table: Vec<[f32; 3]> = (0..=255u8).map(|level| [0, 1, 2].map(|c| normalised(level, c, config))).collect();
    let normalized: Vec<[f32; 3]> = img.pixels().map(|px| [0, 1, 2].map(|c| table[px.0[c] as usize][c])).collect();
    let width = img.width() as usize;
    let mut values = Vec::with_capacity(gh * gw * patch_dim);
    // Rows go block by block (merge × merge patches), so the merger's groups are contiguous.
    for bh in 0..gh / m {
        for bw in 0..gw / m {
            for mh in 0..m {
                for mw in 0..m {
                    let (y0, x0) = ((bh * m + mh) * p, (bw * m + mw) * p);
                    for c in 0..3 {
                        for _ in 0..t {
                            for py in 0..p {
                                for px in 0..p {
                                    values.push(normalized[(y0 + py) * width + x0 + px][c]);
                                }
                            }
                        }
                    }
                }
            }
        }
    }
    PixelValues { values, rows: gh * gw, patch_dim, grid_thw: [1, gh, gw] }
}

/// The full processor: fit the image, then patchify.
pub fn preprocess(img: &RgbImage, mode: PreprocessMode, config: &QwenImageConfig, name: &str) -> Result<PixelValues, ImageError> {
    Ok(patchify(&resized_for(img, mode, config, name)?, config))
}
