//! Relational scenes: procedural images in which exactly one relation (the idea) is shown while
//! the appearance (shape, palette, background, sizes, rotation) varies independently of it.
//! They give ground truth for the relational benchmark, training data and the demo library.

pub mod appearance;
pub mod bench;
pub mod generate;
pub mod import;
pub mod multi;
pub mod objects;
pub mod relations;
mod structures;

pub use generate::{Record, Split};
pub use relations::Relation;
