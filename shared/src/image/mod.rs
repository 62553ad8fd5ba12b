//! Images: decoding, and the preprocessing the image encoders need.

pub mod attribute;
pub mod jpeg;
pub mod lite;
pub mod preprocess;
pub mod resample;

/// The image type every function here takes (re-exported so the browser app needs no `image` dependency of its own).
pub use image::RgbImage;
