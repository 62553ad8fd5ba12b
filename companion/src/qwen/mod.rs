//! The relsim image encoder: Qwen2.5-VL (vision tower + language model) with the relsim LoRA,
//! the `<|query|>` token and the projection to MiniLM's 384-d space.
//!
//! On the models floor: it knows models, weights and tokens, nothing of encoders by name,
//! libraries, jobs or surfaces (`tests/floors.rs`).

pub mod adapter;
pub mod chat;
pub mod config;
pub mod generate;
pub mod language;
pub mod prompt;
pub mod relsim;
pub mod rope;
pub mod vision;
