//! The page: a sentence box whose MiniLM embedding is computed in the browser as you type.

use leptos::prelude::*;
use leptos::task::spawn_local;

use crate::gpu::webgpu_adapter_available;
use crate::models::{self, Engine, Source};

/// How long typing must pause before the sentence is embedded.
const DEBOUNCE_MS: u32 = 150;
/// How many leading values of the embedding the page shows.
const SHOWN_VALUES: usize = 8;

/// One finished embedding.
#[derive(Debug, Clone, PartialEq)]
struct Embedded {
    text: String,
    engine: Engine,
    millis: f64,
    vector: Vec<f32>,
}

fn now_ms() -> f64 {
    web_sys::window().and_then(|w| w.performance()).map(|p| p.now()).unwrap_or(0.0)
}

/// The whole app.
#[component]
pub fn App() -> impl IntoView {
    let (webgpu, set_webgpu) = signal(None::<bool>);
    let (engine, set_engine) = signal(Engine::Cpu);
    let (status, set_status) = signal("Checking for WebGPU…".to_string());
    let (ready, set_ready) = signal(false);
    let (error, set_error) = signal(None::<String>);
    let (text, set_text) = signal(String::new());
    let (result, set_result) = signal(None::<Embedded>);
    let (busy, set_busy) = signal(false);
    // Bumped on every request so a slow older result never overwrites a newer one.
    let generation = StoredValue::new(0u64);

    spawn_local(async move {
        let gpu = webgpu_adapter_available().await;
        set_webgpu.set(Some(gpu));
        set_engine.set(if gpu { Engine::WebGpu } else { Engine::Cpu });
        let loaded = models::download_minilm(|i, n| set_status.set(format!("Loading the model: file {} of {n}…", i + 1))).await;
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
                set_status.set("The model could not be loaded.".into());
                set_error.set(Some(e));
            }
        }
    });

    // Re-embed whenever the sentence, the engine or readiness changes.
    Effect::new(move |_| {
        let (sentence, chosen) = (text.get(), engine.get());
        if !ready.get() {
            return;
        }
        let ticket = generation.get_value() + 1;
        generation.set_value(ticket);
        if sentence.trim().is_empty() {
            set_result.set(None);
            return;
        }
        spawn_local(async move {
            gloo::timers::future::TimeoutFuture::new(DEBOUNCE_MS).await;
            if generation.get_value() != ticket {
                return;
            }
            set_busy.set(true);
            // Build the encoder first so the time shown is the query's, not the model upload's.
            let prepared = models::prepare(chosen).await;
            let start = now_ms();
            let outcome = match prepared {
                Ok(()) => models::embed(chosen, &sentence).await,
                Err(e) => Err(e),
            };
            let millis = now_ms() - start;
            if generation.get_value() != ticket {
                return;
            }
            set_busy.set(false);
            match outcome {
                Ok(vector) => {
                    set_error.set(None);
                    set_result.set(Some(Embedded { text: sentence, engine: chosen, millis, vector }));
                }
                Err(e) => set_error.set(Some(format!("{} failed: {e}", chosen.label()))),
            }
        });
    });

    let gpu_note = move || match webgpu.get() {
        None => "checking…",
        Some(true) => "adapter found",
        Some(false) => "not available in this browser",
    };

    view! {
        <header>
            <h1>"relsim"</h1>
            <p class="tagline">"Relational visual similarity: images that share an idea, not a look."</p>
        </header>
        <main>
            <section class="panel" aria-labelledby="text-encoder-title">
                <h2 id="text-encoder-title">"Text encoder (all-MiniLM-L6-v2, in your browser)"</h2>
                <p id="status" class="status" data-ready=move || ready.get().to_string()>{move || status.get()}</p>
                <fieldset class="engine">
                    <legend>"Run on"</legend>
                    <label>
                        <input type="radio" name="engine" id="engine-webgpu"
                            prop:checked=move || engine.get() == Engine::WebGpu
                            disabled=move || webgpu.get() != Some(true)
                            on:change=move |_| set_engine.set(Engine::WebGpu) />
                        " WebGPU "<small>"(" {gpu_note} ")"</small>
                    </label>
                    <label>
                        <input type="radio" name="engine" id="engine-cpu"
                            prop:checked=move || engine.get() == Engine::Cpu
                            on:change=move |_| set_engine.set(Engine::Cpu) />
                        " CPU"
                    </label>
                </fieldset>
                <label for="sentence">"Sentence"</label>
                <input id="sentence" type="text" autocomplete="off" spellcheck="false"
                    placeholder="growth stages of {subject} from left to right"
                    prop:value=move || text.get()
                    on:input=move |ev| set_text.set(event_target_value(&ev)) />
                <p id="busy" class="busy" hidden=move || !busy.get()>"Embedding…"</p>
                <Show when=move || error.get().is_some()>
                    <p id="error" class="error" role="alert">{move || error.get().unwrap_or_default()}</p>
                </Show>
                {move || result.get().map(|r| view! { <EmbeddingView embedded=r /> })}
            </section>
        </main>
    }
}

/// The result of one embedding: where it ran, how long it took, its values.
#[component]
fn EmbeddingView(embedded: Embedded) -> impl IntoView {
    let shown = embedded.vector.iter().take(SHOWN_VALUES).map(|v| format!("{v:+.4}")).collect::<Vec<_>>().join("  ");
    let json = serde_json::to_string(&embedded.vector).unwrap_or_default();
    view! {
        <div id="result" class="result" data-text=embedded.text.clone() data-engine=embedded.engine.label()>
            <p>
                "Ran on " <strong id="result-engine">{embedded.engine.label()}</strong>
                " in " <strong id="result-ms">{format!("{:.1}", embedded.millis)}</strong> " ms; "
                {embedded.vector.len()} " dimensions."
            </p>
            <p class="values">"First values: " <code id="result-values">{shown}</code></p>
            <details>
                <summary>"All values (JSON)"</summary>
                <pre id="embedding-json">{json}</pre>
            </details>
        </div>
    }
}
