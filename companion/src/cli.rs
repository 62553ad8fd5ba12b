//! Command-line interface: one subcommand per job.

use std::io::Write;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use relsim_shared::text::minilm::MiniLm;

use crate::backend::{with_backend, BackendKind};
use crate::paths;

/// relsim: relational visual similarity, on your own machine.
#[derive(Debug, Parser)]
#[command(name = "relsim", version, about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Embed sentences with all-MiniLM-L6-v2; prints one JSON array of floats per input.
    EmbedText {
        /// The sentences to embed.
        #[arg(required = true)]
        texts: Vec<String>,
        /// The sentence-transformers folder of all-MiniLM-L6-v2.
        #[arg(long, env = "RELSIM_MINILM_DIR", default_value_os_t = paths::default_minilm_dir())]
        minilm_dir: PathBuf,
        /// Compute backend.
        #[arg(long, value_enum, default_value_t = BackendKind::Ndarray)]
        backend: BackendKind,
        /// Sentences per forward pass.
        #[arg(long, default_value_t = 32)]
        batch_size: usize,
    },
    /// Benchmarks (numbers, not tests).
    Bench {
        #[command(subcommand)]
        which: BenchCommand,
    },
    /// Serve the browser app and the model files on this machine.
    Serve {
        /// Port on 127.0.0.1 (0 picks a free one).
        #[arg(long, default_value_t = 8737)]
        port: u16,
        /// The sentence-transformers folder of all-MiniLM-L6-v2, served to the browser.
        #[arg(long, env = "RELSIM_MINILM_DIR", default_value_os_t = paths::default_minilm_dir())]
        minilm_dir: PathBuf,
        /// Static files (index.html, styles).
        #[arg(long, default_value_os_t = paths::default_public_dir())]
        public_dir: PathBuf,
        /// The wasm bundle built by `cargo xtask build-web`.
        #[arg(long, default_value_os_t = paths::default_pkg_dir())]
        pkg_dir: PathBuf,
    },
}

/// The benchmarks.
#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// MiniLM sentences/s at batch 1 and 32 on the parity inputs.
    Text {
        /// The sentence-transformers folder of all-MiniLM-L6-v2.
        #[arg(long, env = "RELSIM_MINILM_DIR", default_value_os_t = paths::default_minilm_dir())]
        minilm_dir: PathBuf,
        /// The corpus: a reference.json of the MiniLM parity fixture.
        #[arg(long, default_value_os_t = paths::default_text_corpus())]
        corpus: PathBuf,
        /// Compute backend.
        #[arg(long, value_enum, default_value_t = BackendKind::Ndarray)]
        backend: BackendKind,
        /// Seconds per batch size.
        #[arg(long, default_value_t = 5.0)]
        seconds: f64,
    },
}

/// Runs the parsed command.
pub fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::EmbedText { texts, minilm_dir, backend, batch_size } => {
            embed_text(&texts, &minilm_dir, backend, batch_size.max(1))
        }
        Command::Bench { which: BenchCommand::Text { minilm_dir, corpus, backend, seconds } } => {
            crate::bench::bench_text(&minilm_dir, &corpus, backend, seconds)
        }
        Command::Serve { port, minilm_dir, public_dir, pkg_dir } => {
            let addr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port);
            let config = crate::server::ServerConfig { addr, minilm_dir, public_dir, pkg_dir };
            tokio::runtime::Runtime::new().context("starting the async runtime")?.block_on(crate::server::serve(config))
        }
    }
}

fn embed_text(texts: &[String], minilm_dir: &std::path::Path, backend: BackendKind, batch_size: usize) -> anyhow::Result<()> {
    with_backend!(backend, |device: B| {
        let model = MiniLm::<B>::from_dir(minilm_dir, &device)
            .with_context(|| format!("loading MiniLM from {}", minilm_dir.display()))?;
        let mut out = std::io::stdout().lock();
        for chunk in texts.chunks(batch_size) {
            let refs: Vec<&str> = chunk.iter().map(String::as_str).collect();
            for vector in model.embed_vecs(&refs)? {
                serde_json::to_writer(&mut out, &vector)?;
                writeln!(out)?;
            }
        }
        Ok(())
    })
}
