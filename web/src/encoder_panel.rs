//! The "Models" view: a sentence box whose MiniLM embedding is computed in the browser as you
//! type, on WebGPU or the CPU (the browser test checks both against sentence-transformers).

use leptos::prelude::*;
use leptos::task::spawn_local;

use crate::latest::Latest;
use crate::models::Engine;
use crate::text_model::TextModel;

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

/// The text encoder panel.
#[component]
pub fn EncoderPanel() -> impl IntoView {
    let model = expect_context::<TextModel>();
    let (text, set_text) = signal(String::new());
    let (result, set_result) = signal(None::<Embedded>);
    let (busy, set_busy) = signal(false);
    let latest = Latest::new();

    Effect::new(move |_| {
        let (sentence, chosen) = (text.get(), model.engine.get());
        if !model.ready.get() {
            return;
        }
        let ticket = latest.next();
        if sentence.trim().is_empty() {
            set_result.set(None);
            return;
        }
        spawn_local(async move {
            if !latest.settle(ticket, DEBOUNCE_MS).await {
                return;
            }
            set_busy.set(true);
            let outcome = TextModel::embed(chosen, &sentence).await;
            if !latest.is_current(ticket) {
                return;
            }
            set_busy.set(false);
            match outcome {
                Ok((vector, millis)) => {
                    model.error.set(None);
                    set_result.set(Some(Embedded { text: sentence, engine: chosen, millis, vector }));
                }
                Err(e) => model.error.set(Some(format!("{} failed: {e}", chosen.label()))),
            }
        });
    });

    let gpu_note = move || match model.webgpu.get() {
        None => "checking…",
        Some(true) => "adapter found",
        Some(false) => "not available in this browser",
    };

    view! {
        <section class="panel" aria-labelledby="text-encoder-title">
            <h2 id="text-encoder-title">"Text encoder (all-MiniLM-L6-v2, in your browser)"</h2>
            <p id="status" class="status" data-ready=move || model.ready.get().to_string()>{move || model.status.get()}</p>
            <fieldset class="engine">
                <legend>"Run on"</legend>
                <label>
                    <input type="radio" name="engine" id="engine-webgpu"
                        prop:checked=move || model.engine.get() == Engine::WebGpu
                        disabled=move || model.webgpu.get() != Some(true)
                        on:change=move |_| model.engine.set(Engine::WebGpu) />
                    " WebGPU "<small>"(" {gpu_note} ")"</small>
                </label>
                <label>
                    <input type="radio" name="engine" id="engine-cpu"
                        prop:checked=move || model.engine.get() == Engine::Cpu
                        on:change=move |_| model.engine.set(Engine::Cpu) />
                    " CPU"
                </label>
            </fieldset>
            <label for="sentence">"Sentence"</label>
            <input id="sentence" type="text" autocomplete="off" spellcheck="false"
                placeholder="growth stages of {subject} from left to right"
                prop:value=move || text.get()
                on:input=move |ev| set_text.set(event_target_value(&ev)) />
            <p id="busy" class="busy" hidden=move || !busy.get()>"Embedding…"</p>
            <Show when=move || model.error.get().is_some()>
                <p id="error" class="error" role="alert">{move || model.error.get().unwrap_or_default()}</p>
            </Show>
            {move || result.get().map(|r| view! { <EmbeddingView embedded=r /> })}
        </section>
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
