//! relsim-companion: the native side of relsim — encoders, CLI and the local server.
//!
//! Modules stand on floors and import only from their own floor or below (ARCHITECTURE.md;
//! `tests/floors.rs` checks it):
//! 1. models: [`backend`], [`weights`], [`qwen`] (the Qwen2.5-VL relsim model), relsim-lite's files ([`lite`]);
//! 2. encoders: [`encoders`] (every image encoder by name);
//! 3. data: [`scenes`], [`library`], [`explain`] (the caption bank), [`captions`], [`interest`];
//! 4. jobs: [`train`], [`distill`], [`bench`], [`study`] (the human A/B study), [`judge`] (the LLM judge);
//! 5. surfaces: [`cli`], [`server`].
//!
//! Helpers every floor may use: [`files`], [`stats`], [`paths`], [`openai`] (the chat API's wire format).

pub mod files;
pub mod openai;
pub mod paths;
pub mod stats;

pub mod backend;
pub mod lite;
pub mod qwen;
pub mod weights;

pub mod calibration;
pub mod encoders;

pub mod captions;
pub mod interest;
pub mod explain;
pub mod library;
pub mod scenes;

pub mod bench;
pub mod distill;
pub mod judge;
pub mod study;
pub mod train;

pub mod cli;
pub mod server;
