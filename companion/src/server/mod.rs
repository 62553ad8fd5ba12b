//! The local HTTP server: the browser app, its wasm bundle and model files, and the JSON API
//! over the user's indexed library, behind the localhost defences of [`guard`].

pub mod api;
pub mod chat;
pub mod error;
pub mod guard;
pub mod loadtest;
pub mod study;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

use anyhow::Context;
use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use axum::routing::{any, get, post};
use axum::Router;
use relsim_shared::protocol::{ModelFile, ModelManifest, TeacherInfo};
use relsim_shared::text::minilm::{REQUIRED_FILES, SENTENCE_CONFIG_FILE};
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::services::{ServeDir, ServeFile};
use tower_http::trace::TraceLayer;

use crate::encoders::EncoderOptions;
use crate::explain::CaptionBank;
use crate::library::service::{LibraryService, SharedEncoder};
use api::ApiState;
use error::api_error;

/// What `relsim serve` serves and where.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub addr: SocketAddr,
    pub minilm_dir: PathBuf,
    pub public_dir: PathBuf,
    pub pkg_dir: PathBuf,
    /// The library folders, indexed recursively.
    pub libraries: Vec<PathBuf>,
    /// Where the index, thumbnails and user captions live.
    pub data_dir: PathBuf,
    /// The relational image encoder: `lite` or `qwen`.
    pub model: String,
    pub encoder: EncoderOptions,
    /// Index the folders when the server starts.
    pub index_on_start: bool,
    /// The browser's student encoder (`relsim distill`).
    pub student_dir: PathBuf,
    /// An A/B study folder to run (`relsim study make`).
    pub study: Option<PathBuf>,
    /// A chat model to answer `/v1/chat/completions` with.
    pub chat: Option<chat::ChatConfig>,
}

/// The files of the student in `dir`, when there is one distilled from the model `model_id`
/// (another teacher's student would put queries where the index has nothing).
fn student_manifest(dir: &Path, model_id: &str) -> Option<ModelManifest> {
    let teacher = dir.join("teacher.json");
    let info: TeacherInfo = match std::fs::read(&teacher).map_err(anyhow::Error::from).and_then(|b| Ok(serde_json::from_slice(&b)?)) {
        Ok(info) => info,
        Err(e) => {
            tracing::info!("no browser student ({}: {e}); image queries go through the companion", teacher.display());
            return None;
        }
    };
    if info.model_id != model_id {
        tracing::warn!("the student in {} was distilled from {}, the library uses {model_id}: not served", dir.display(), info.model_id);
        return None;
    }
    let mut files = Vec::new();
    for name in ["config.json", "model.safetensors", "teacher.json"] {
        let bytes = std::fs::metadata(dir.join(name)).ok()?.len();
        files.push(ModelFile { name: name.into(), bytes });
    }
    Some(ModelManifest { name: "relsim-student".into(), base_url: "/models/student/".into(), files })
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

/// Everything the server holds, loaded once at start.
pub struct Loaded {
    pub state: ApiState,
}

/// Loads the models, opens the index and the caption bank.
pub fn load(config: &ServerConfig) -> anyhow::Result<Loaded> {
    let manifest = minilm_manifest(&config.minilm_dir)?;
    // The image encoder first: when it runs burn-flex in half precision (a bf16 Qwen on the CPU),
    // MiniLM (f32) then knows to take ndarray.
    let (roots, encoder, store) = crate::library::open(&config.libraries, &config.data_dir, &config.model, &config.encoder)?;
    let text = Arc::new(api::TextEncoder::new(crate::encoders::load_minilm(&config.minilm_dir, crate::backend::BackendKind::Flex)?));
    let model_id = store.model().to_string();
    let student = student_manifest(&config.student_dir, &model_id).map(Arc::new);
    let encoder = SharedEncoder(Arc::new(Mutex::new(encoder)));
    let library = LibraryService::new(roots, config.data_dir.join("thumbnails"), store, encoder.clone());
    let captions = {
        let text = text.clone();
        CaptionBank::load(&config.data_dir.join("captions.json"), &move |texts| text.embed_many(texts))?
    };
    let calibration = crate::calibration::for_encoder(&config.model, &config.encoder)?;
    if calibration.is_none() {
        tracing::info!("the `{}` model has no {}: results are not marked weak", config.model, crate::calibration::FILE);
    }
    let study = config.study.clone().map(study::StudyRun::open).transpose()?;
    let chat = config.chat.as_ref().map(chat::ChatService::load).transpose()?.map(Arc::new);
    Ok(Loaded {
        state: ApiState { library, encoder, text, captions: Arc::new(RwLock::new(captions)), minilm: Arc::new(manifest), uploads: Default::default(), student, model_id, calibration, study, chat },
    })
}

/// Builds the router: the API, the static files, and the guard in front of everything.
pub fn app(config: &ServerConfig, state: ApiState, guard: guard::Guard) -> Router {
    if !config.pkg_dir.join("relsim_web.js").is_file() {
        tracing::warn!("no wasm bundle in {}: run `cargo xtask build-web` (the page will not start without it)", config.pkg_dir.display());
    }
    let index = ServeFile::new(config.public_dir.join("index.html"));
    let api = Router::new()
        .route("/api/health", get(api::health))
        .route("/api/openapi.json", get(api::openapi_json))
        .route("/api/models/minilm", get(api::minilm_manifest))
        .route("/api/models/student", get(api::student_manifest))
        .route("/api/library/vectors", get(api::library_vectors))
        .route("/api/library", get(api::library))
        .route("/api/library/index", post(api::start_index))
        .route("/api/library/cancel", post(api::cancel_index))
        .route("/api/library/events", get(api::index_events))
        .route("/api/images/{id}/thumbnail", get(api::thumbnail))
        .route("/api/images/{id}/file", get(api::original))
        .route("/api/search", post(api::search))
        .route("/api/search/image", post(api::search_image))
        .route("/api/explain", post(api::explain))
        .route("/api/captions", get(api::captions).post(api::add_caption))
        .route("/api/captions/suggest", get(api::suggest))
        .route("/api/study", get(study::study))
        .route("/api/study/images/{hash}", get(study::study_image))
        .route("/api/study/answers", post(study::answer))
        .route("/v1/chat/completions", post(chat::completions))
        .route("/v1/models", get(chat::models))
        .route("/api/{*rest}", any(|| async { api_error(StatusCode::NOT_FOUND, "no such API endpoint (see /api/openapi.json)") }))
        .route("/v1/{*rest}", any(|| async { api_error(StatusCode::NOT_FOUND, "no such endpoint: the companion answers /v1/chat/completions and /v1/models") }))
        .method_not_allowed_fallback(|| async { api_error(StatusCode::METHOD_NOT_ALLOWED, "this endpoint does not take that method (see /api/openapi.json)") })
        .layer(DefaultBodyLimit::max(api::MAX_UPLOAD_BYTES))
        .with_state(state);
    api.nest_service("/models/minilm", ServeDir::new(&config.minilm_dir))
        .nest_service("/models/student", ServeDir::new(&config.student_dir))
        .nest_service("/pkg", ServeDir::new(&config.pkg_dir))
        .fallback_service(ServeDir::new(&config.public_dir).fallback(index))
        .layer(axum::middleware::from_fn_with_state(Arc::new(guard), guard::guard))
        .layer(CatchPanicLayer::custom(|_| api_error(StatusCode::INTERNAL_SERVER_ERROR, "the request failed inside the server (a bug); the server goes on")))
        .layer(TraceLayer::new_for_http())
}

/// Resolves on Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
}

/// Serves until Ctrl-C (or SIGTERM): a running index stops after its batch, open requests finish.
pub async fn serve(config: ServerConfig) -> anyhow::Result<()> {
    let loaded = tokio::task::spawn_blocking({
        let config = config.clone();
        move || load(&config)
    })
    .await
    .context("loading the models")??;
    let listener = tokio::net::TcpListener::bind(config.addr).await.with_context(|| format!("binding {}", config.addr))?;
    let addr = listener.local_addr()?;
    let extra_host = (!addr.ip().is_loopback()).then(|| addr.ip().to_string());
    if let Some(host) = &extra_host {
        eprintln!(
            "warning: listening on {host}, not only this machine: anyone on the network who learns the token can search your library"
        );
    }
    let token = guard::new_token();
    let library = loaded.state.library.clone();
    let router = app(&config, loaded.state, guard::Guard::new(token.clone(), addr.port(), extra_host));
    if config.index_on_start && !library.roots.is_empty() {
        library.start_indexing();
    }
    let shown = if addr.ip().is_unspecified() { SocketAddr::new(std::net::Ipv4Addr::LOCALHOST.into(), addr.port()) } else { addr };
    // The test harness and the demo read this line to find the page.
    println!("relsim is serving on http://{shown}/?token={token}");
    tracing::info!(%addr, "listening");
    let stopping = Arc::new(tokio::sync::Notify::new());
    let server = axum::serve(listener, router).with_graceful_shutdown({
        let stopping = stopping.clone();
        async move {
            shutdown_signal().await;
            tracing::info!("shutting down");
            library.cancel();
            stopping.notify_one();
        }
    });
    // Open event streams never end by themselves: give requests a moment, then stop anyway.
    let grace = async move {
        stopping.notified().await;
        tokio::time::sleep(SHUTDOWN_GRACE).await;
        tracing::info!("connections still open after {SHUTDOWN_GRACE:?}: closing them");
    };
    tokio::select! {
        result = server => result.context("serving HTTP"),
        () = grace => Ok(()),
    }
}

/// How long shutdown waits for open requests.
const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(3);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_student_is_served_only_for_its_teachers_vectors() {
        let dir = tempfile::tempdir().unwrap();
        assert!(student_manifest(dir.path(), "lite-1").is_none(), "no student at all");
        std::fs::write(dir.path().join("teacher.json"), r#"{"model": "lite", "model_id": "lite-1"}"#).unwrap();
        assert!(student_manifest(dir.path(), "lite-1").is_none(), "weights missing");
        std::fs::write(dir.path().join("config.json"), "{}").unwrap();
        std::fs::write(dir.path().join("model.safetensors"), [0u8; 10]).unwrap();
        let manifest = student_manifest(dir.path(), "lite-1").unwrap();
        assert_eq!(manifest.files.iter().map(|f| (f.name.as_str(), f.bytes)).collect::<Vec<_>>(), [("config.json", 2), ("model.safetensors", 10), ("teacher.json", 39)]);
        assert!(student_manifest(dir.path(), "qwen-2").is_none(), "another model's index");
    }
}
