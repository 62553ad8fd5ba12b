//! The local HTTP server: the browser app, its wasm bundle and the model files it runs.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::Context;
use axum::{routing::get, Json, Router};
use relsim_shared::protocol::{ModelFile, ModelManifest};
use relsim_shared::text::minilm::{REQUIRED_FILES, SENTENCE_CONFIG_FILE};
use tower_http::services::{ServeDir, ServeFile};
use tower_http::trace::TraceLayer;

/// What `relsim serve` serves and where.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub addr: SocketAddr,
    pub minilm_dir: PathBuf,
    pub public_dir: PathBuf,
    pub pkg_dir: PathBuf,
}

/// Lists the MiniLM files the browser should fetch, failing with a hint when one is missing.
fn minilm_manifest(dir: &Path) -> anyhow::Result<ModelManifest> {
    let mut files = Vec::new();
    for name in REQUIRED_FILES.iter().chain([&SENTENCE_CONFIG_FILE]) {
        let path = dir.join(name);
        match std::fs::metadata(&path) {
            Ok(meta) => files.push(ModelFile { name: name.to_string(), bytes: meta.len() }),
            Err(_) if *name == SENTENCE_CONFIG_FILE => {}
            Err(e) => anyhow::bail!("{}: {e} (run `cargo xtask setup` to fetch the MiniLM weights)", path.display()),
        }
    }
    Ok(ModelManifest { name: "all-MiniLM-L6-v2".into(), base_url: "/models/minilm/".into(), files })
}

/// Builds the router.
pub fn app(config: &ServerConfig) -> anyhow::Result<Router> {
    let manifest = minilm_manifest(&config.minilm_dir)?;
    if !config.pkg_dir.join("relsim_web.js").is_file() {
        tracing::warn!(
            "no wasm bundle in {}: run `cargo xtask build-web` (the page will not start without it)",
            config.pkg_dir.display()
        );
    }
    let index = ServeFile::new(config.public_dir.join("index.html"));
    Ok(Router::new()
        .route("/api/health", get(|| async { Json(serde_json::json!({ "status": "ok", "version": env!("CARGO_PKG_VERSION") })) }))
        .route("/api/models/minilm", get(move || async move { Json(manifest) }))
        .nest_service("/models/minilm", ServeDir::new(&config.minilm_dir))
        .nest_service("/pkg", ServeDir::new(&config.pkg_dir))
        .fallback_service(ServeDir::new(&config.public_dir).fallback(index))
        .layer(TraceLayer::new_for_http()))
}

/// Serves until Ctrl-C.
pub async fn serve(config: ServerConfig) -> anyhow::Result<()> {
    let router = app(&config)?;
    let listener =
        tokio::net::TcpListener::bind(config.addr).await.with_context(|| format!("binding {}", config.addr))?;
    let addr = listener.local_addr()?;
    // The test harness and the demo read this line to find the page.
    println!("relsim is serving on http://{addr}/");
    tracing::info!(%addr, "listening");
    axum::serve(listener, router)
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
            tracing::info!("shutting down");
        })
        .await
        .context("serving HTTP")
}
