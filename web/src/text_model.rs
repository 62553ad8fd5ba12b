//! The browser's MiniLM: downloaded once per page (from the browser cache after the first
//! time), shared by the idea search and the encoder panel.

use leptos::prelude::*;
use leptos::task::spawn_local;

use crate::gpu::webgpu_adapter_available;
use crate::models::{self, Engine, Source};

/// Where the text encoder stands; provided to every component as context.
#[derive(Clone, Copy)]
pub struct TextModel {
    /// Whether WebGPU has an adapter (None while checking).
    pub webgpu: ReadSignal<Option<bool>>,
    /// The engine queries run on: WebGPU when it exists, else the CPU.
    pub engine: RwSignal<Engine>,
    /// A line for the user about the download.
    pub status: ReadSignal<String>,
    pub ready: ReadSignal<bool>,
    pub error: RwSignal<Option<String>>,
}

impl TextModel {
    /// Starts checking for WebGPU and downloading the model.
    pub fn start() -> Self {
        let (webgpu, set_webgpu) = signal(None::<bool>);
        let engine = RwSignal::new(Engine::Cpu);
        let (status, set_status) = signal("Checking for WebGPU…".to_string());
        let (ready, set_ready) = signal(false);
        let error = RwSignal::new(None::<String>);
        spawn_local(async move {
            let gpu = webgpu_adapter_available().await;
            set_webgpu.set(Some(gpu));
            engine.set(if gpu { Engine::WebGpu } else { Engine::Cpu });
            let loaded = models::download_minilm(|i, n| set_status.set(format!("Loading the text model: file {} of {n}…", i + 1))).await;
            match loaded {
                Ok(bytes) => {
                    let mb = bytes.total_bytes as f64 / 1e6;
                    let from = match bytes.source {
                        Source::Cache => "from the browser cache",
                        Source::Network => "downloaded",
                    };
                    set_status.set(format!("all-MiniLM-L6-v2 ready ({mb:.1} MB, {from})"));
                    models::set_model_bytes(bytes);
                    set_ready.set(true);
                }
                Err(e) => {
                    set_status.set("The text model could not be loaded.".into());
                    error.set(Some(e));
                }
            }
        });
        TextModel { webgpu, engine, status, ready, error }
    }

    /// Embeds `text` in the browser on the chosen engine: the vector and the milliseconds the
    /// query itself took (building the encoder the first time is not counted).
    pub async fn embed(engine: Engine, text: &str) -> Result<(Vec<f32>, f64), String> {
        models::prepare(engine).await?;
        let start = now_ms();
        let vector = models::embed(engine, text).await?;
        Ok((vector, now_ms() - start))
    }
}

/// Milliseconds since the page started.
pub fn now_ms() -> f64 {
    web_sys::window().and_then(|w| w.performance()).map(|p| p.now()).unwrap_or(0.0)
}
