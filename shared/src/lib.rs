//! relsim-shared: what the companion and the browser app both use.

pub mod activation;
pub mod attention;
pub mod error;
pub mod explore;
pub mod image;
pub mod linear;
pub mod protocol;
pub mod text;
pub mod vectors;
pub mod weights;
#[cfg(feature = "wgsl")]
pub mod wgsl;

pub use error::{ModelError, Result};
