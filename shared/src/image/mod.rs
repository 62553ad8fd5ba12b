//! Images: decoding, and the preprocessing the image encoders need.

pub mod attribute;
pub mod lite;
pub mod preprocess;
pub mod resample;
