//! The page's shared state: what the URL holds (query, view, weight, lesson), indexing progress
//! and the browser-answer mode. Views import it from here; the app only provides it.

use leptos::ev;
use leptos::prelude::*;
use relsim_shared::explore::{Query, UrlState, View};
use relsim_shared::protocol::IndexProgress;
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;

use crate::student::{self, LocalMode};

/// What every view shares; provided as context.
#[derive(Clone, Copy)]
pub struct AppState {
    /// Everything the URL holds.
    pub url: RwSignal<UrlState>,
    /// Library indexing, as the companion streams it.
    pub progress: RwSignal<IndexProgress>,
    /// Bumped when an indexing run ends: the library listing is read again.
    pub library_version: RwSignal<u32>,
    /// The image the user dropped, pasted or picked: its upload id and a local URL to show it.
    pub upload_preview: RwSignal<Option<(String, String)>>,
    /// Whether image queries are answered in this browser (the distilled student).
    pub local_mode: RwSignal<LocalMode>,
}

impl AppState {
    /// Changes the URL state.
    pub fn update(&self, f: impl FnOnce(&mut UrlState)) {
        self.url.update(f);
    }

    /// Makes `query` the current query, on the explore view.
    pub fn query(&self, query: Query) {
        self.update(|s| {
            s.query = Some(query);
            // A new query starts without the old one's additions.
            s.extras.clear();
            s.view = View::Explore;
        });
    }

    /// The page's state, read from the address, provided as context to every view and kept in
    /// step with the address bar (Back and Forward included) and the companion's indexing.
    pub fn start() -> Self {
        let state = AppState {
            url: RwSignal::new(UrlState::parse(&location_search())),
            progress: RwSignal::new(IndexProgress::default()),
            library_version: RwSignal::new(0),
            upload_preview: RwSignal::new(None),
            local_mode: RwSignal::new(LocalMode::Off),
        };
        provide_context(state);
        follow_progress(state.progress, state.library_version);
        if student::remembered() {
            student::switch(state.local_mode, true);
        }
        let previous = StoredValue::new(state.url.get_untracked());
        Effect::new(move |_| {
            let now = state.url.get();
            sync_url(&now, &previous.get_value());
            previous.set_value(now);
        });
        // Back and Forward restore the state the address holds.
        let popstate = window_event_listener(ev::popstate, move |_| state.url.set(UrlState::parse(&location_search())));
        on_cleanup(move || popstate.remove());
        state
    }
}

fn location_search() -> String {
    web_sys::window().and_then(|w| w.location().search().ok()).unwrap_or_default()
}

/// Writes the state into the address bar: a new history entry when the view or the query
/// changes (so Back returns to the previous search), in place otherwise (slider, slides).
fn sync_url(state: &UrlState, previous: &UrlState) {
    let Some(window) = web_sys::window() else { return };
    let search = state.to_query_string();
    if search == location_search() {
        return;
    }
    let target = if search.is_empty() { window.location().pathname().unwrap_or_else(|_| "/".into()) } else { search };
    let Ok(history) = window.history() else { return };
    let new_entry = state.view != previous.view || state.query != previous.query || state.extras != previous.extras || state.filter != previous.filter || state.quiz != previous.quiz;
    let _ = if new_entry {
        history.push_state_with_url(&JsValue::NULL, "", Some(&target))
    } else {
        history.replace_state_with_url(&JsValue::NULL, "", Some(&target))
    };
}

/// Follows the companion's indexing progress (server-sent events) for the page's lifetime.
fn follow_progress(progress: RwSignal<IndexProgress>, library_version: RwSignal<u32>) {
    let Ok(source) = web_sys::EventSource::new("/api/library/events") else { return };
    let on_progress = Closure::<dyn FnMut(web_sys::MessageEvent)>::new(move |event: web_sys::MessageEvent| {
        let Some(text) = event.data().as_string() else { return };
        let Ok(next) = serde_json::from_str::<IndexProgress>(&text) else { return };
        let was_running = matches!(progress.get_untracked().phase.as_str(), "scanning" | "embedding");
        let ended = !matches!(next.phase.as_str(), "scanning" | "embedding");
        progress.set(next);
        if was_running && ended {
            library_version.update(|v| *v += 1);
        }
    });
    let _ = source.add_event_listener_with_callback("progress", on_progress.as_ref().unchecked_ref());
    // Both live as long as the page: the stream reconnects by itself after a companion restart.
    on_progress.forget();
    std::mem::forget(source);
}
