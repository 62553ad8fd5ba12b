//! What the classroom, quiz and study screens share: images shown large, full screen, the
//! share box, and the two-choice screen of the quiz and the A/B study.

use leptos::html::Div;
use leptos::prelude::*;
use wasm_bindgen::JsCast;

use crate::state::AppState;

/// A library image's file, shown large.
pub fn original(id: &str) -> String {
    format!("/api/images/{id}/file")
}

/// Copies `text` to the clipboard where the browser allows it.
fn copy_to_clipboard(text: &str) -> bool {
    let Some(window) = web_sys::window() else { return false };
    let clipboard = js_sys::Reflect::get(&window.navigator(), &"clipboard".into()).ok().filter(|c| !c.is_undefined());
    let Some(clipboard) = clipboard else { return false };
    let Ok(write) = js_sys::Reflect::get(&clipboard, &"writeText".into()).and_then(|f| f.dyn_into::<js_sys::Function>().map_err(Into::into)) else {
        return false;
    };
    write.call1(&clipboard, &text.into()).is_ok()
}

/// Full screen for `stage`, or back.
pub fn toggle_fullscreen(stage: NodeRef<Div>) {
    if document().fullscreen_element().is_some() {
        document().exit_fullscreen();
    } else if let Some(el) = stage.get_untracked() {
        let _ = el.request_fullscreen();
    }
}

/// The address of the page as it stands, in a box to copy (a lesson or a quiz to share).
#[component]
pub fn ShareLink(label: &'static str) -> impl IntoView {
    let app = expect_context::<AppState>();
    let copied = RwSignal::new(false);
    // Built from the state (the address bar is updated after this runs).
    let share_url = move || {
        let location = web_sys::window().map(|w| w.location());
        let origin = location.as_ref().and_then(|l| l.origin().ok()).unwrap_or_default();
        let path = location.as_ref().and_then(|l| l.pathname().ok()).unwrap_or_else(|| "/".into());
        format!("{origin}{path}{}", app.url.with(|s| s.to_query_string()))
    };
    let share = move |_| copied.set(copy_to_clipboard(&share_url()));
    view! {
        <label for="share-url">{label}</label>
        <input id="share-url" type="text" readonly prop:value=share_url on:focus=move |e| { let i: web_sys::HtmlInputElement = event_target(&e); i.select(); } />
        <button id="copy-link" on:click=share>{move || if copied.get() { "Copied" } else { "Copy link" }}</button>
    }
}

/// The screen the quiz and the A/B study share: the image to match above two choices, each a
/// button (clicks; the views add their keys). `mark` gives a choice's extra classes.
#[component]
pub fn Choices(query: Signal<Option<String>>, left: Signal<Option<String>>, right: Signal<Option<String>>, mark: Callback<bool, String>, choose: Callback<bool>) -> impl IntoView {
    let choice = move |is_left: bool| {
        let (side, letter, keys) = if is_left { ("left", "A", "A (← or 1)") } else { ("right", "B", "B (→ or 2)") };
        let url = if is_left { left } else { right };
        view! {
            <figure>
                <button id=format!("choose-{side}") class=move || format!("choice {}", mark.run(is_left)) on:click=move |_| choose.run(is_left)>
                    {move || url.get().map(|src| view! { <img src=src alt=format!("image {letter}") /> })}
                </button>
                <figcaption>{keys}</figcaption>
            </figure>
        }
    };
    view! {
        <p class="prompt">"Which of these two shares the idea of this one?"</p>
        <figure class="quiz-query">
            {move || query.get().map(|src| view! { <img id="quiz-query" src=src alt="the image to match" /> })}
        </figure>
        <div class="pair">{choice(true)}{choice(false)}</div>
    }
}

