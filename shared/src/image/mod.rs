//! Images: decoding, and the preprocessing the image encoders need.

pub mod preprocess;
pub mod resample;
