//! relsim-companion: the native side of relsim — encoders, CLI and the local server.

pub mod backend;
pub mod bench;
pub mod cli;
pub mod distill;
pub mod encoders;
pub mod explain;
pub mod library;
pub mod paths;
pub mod qwen;
pub mod scenes;
pub mod server;
pub mod train;
pub mod weights;
