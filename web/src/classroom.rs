//! Classroom mode: pairs of images that share an idea, shown large; the shared idea is revealed
//! on a key press, the arrow keys move on, and the lesson travels as a URL.

use leptos::ev;
use leptos::html::Div;
use leptos::prelude::*;
use leptos::task::spawn_local;
use relsim_shared::explore::View;
use relsim_shared::protocol::ExplainResponse;
use wasm_bindgen::JsCast;

use crate::api;
use crate::keys;
use crate::state::AppState;

fn original(id: &str) -> String {
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

/// The classroom view.
#[component]
pub fn Classroom() -> impl IntoView {
    let app = expect_context::<AppState>();
    let stage = NodeRef::<Div>::new();
    let revealed = RwSignal::new(false);
    let explained = RwSignal::new(None::<Result<ExplainResponse, String>>);
    let copied = RwSignal::new(false);
    let current = Memo::new(move |_| app.url.with(|s| s.lesson.get(s.slide).cloned()));
    let count = move || app.url.with(|s| s.lesson.len());

    Effect::new(move |_| {
        let pair = current.get();
        revealed.set(false);
        explained.set(None);
        if let Some((a, b)) = pair {
            spawn_local(async move {
                let answer = api::explain(&a, &b).await;
                if current.get_untracked() == Some((a, b)) {
                    explained.set(Some(answer));
                }
            });
        }
    });

    let go = move |step: isize| {
        app.update(|s| {
            let last = s.lesson.len().saturating_sub(1) as isize;
            s.slide = (s.slide as isize + step).clamp(0, last) as usize;
        });
    };
    let fullscreen = move || {
        if document().fullscreen_element().is_some() {
            document().exit_fullscreen();
        } else if let Some(el) = stage.get_untracked() {
            let _ = el.request_fullscreen();
        }
    };
    let keys = window_event_listener(ev::keydown, move |e: ev::KeyboardEvent| {
        // Typing stays typing; Space and Enter on a focused button press that button.
        let pressing = keys::target_tag(&e) == "BUTTON" && matches!(e.key().as_str(), " " | "Enter");
        if keys::typing_target(&e) || pressing || e.alt_key() || e.ctrl_key() || e.meta_key() {
            return;
        }
        match e.key().as_str() {
            "ArrowRight" | "PageDown" => go(1),
            "ArrowLeft" | "PageUp" => go(-1),
            " " | "Enter" => revealed.update(|r| *r = !*r),
            "f" | "F" => fullscreen(),
            _ => return,
        }
        e.prevent_default();
    });
    on_cleanup(move || keys.remove());

    let remove = move |_| {
        app.update(|s| {
            if s.slide < s.lesson.len() {
                s.lesson.remove(s.slide);
            }
            s.slide = s.slide.min(s.lesson.len().saturating_sub(1));
        })
    };
    // Built from the state (the address bar is updated after this runs).
    let share_url = move || {
        let location = web_sys::window().map(|w| w.location());
        let origin = location.as_ref().and_then(|l| l.origin().ok()).unwrap_or_default();
        let path = location.as_ref().and_then(|l| l.pathname().ok()).unwrap_or_else(|| "/".into());
        format!("{origin}{path}{}", app.url.with(|s| s.to_query_string()))
    };
    let share = move |_| copied.set(copy_to_clipboard(&share_url()));

    view! {
        <section id="classroom" class="panel classroom" aria-labelledby="classroom-title">
            <h2 id="classroom-title">"Classroom"</h2>
            <Show when=move || count() != 0 fallback=move || view! {
                <p class="hint">"No pairs yet. In Explore, search with an image and press “+ lesson” on results, or “Make a lesson from the analogies” under the map."</p>
                <button on:click=move |_| app.update(|s| s.view = View::Explore)>"Go to Explore"</button>
            }>
                <div id="stage" class="stage" node_ref=stage data-slide=move || app.url.with(|s| s.slide).to_string() data-revealed=move || revealed.get().to_string()>
                    <p class="counter" id="pair-counter">{move || format!("Pair {} of {}", app.url.with(|s| s.slide) + 1, count())}</p>
                    <div class="pair">
                        {move || current.get().map(|(a, b)| view! {
                            <figure><img id="pair-a" src=original(&a) alt="first image of the pair" /></figure>
                            <figure><img id="pair-b" src=original(&b) alt="second image of the pair" /></figure>
                        })}
                    </div>
                    <div class="reveal" aria-live="polite">
                        {move || if revealed.get() {
                            match explained.get() {
                                None => view! { <p class="caption">"…"</p> }.into_any(),
                                Some(Err(e)) => view! { <p class="error" role="alert">{e}</p> }.into_any(),
                                Some(Ok(answer)) => {
                                    let mut why = answer.why.into_iter();
                                    let first = why.next().map(|w| w.caption).unwrap_or_else(|| "(no caption fits)".into());
                                    let rest = why.map(|w| w.caption).collect::<Vec<_>>().join(" · ");
                                    view! {
                                        <p id="shared-caption" class="caption">{first}</p>
                                        <p class="also">{if rest.is_empty() { String::new() } else { format!("also: {rest}") }}</p>
                                    }.into_any()
                                }
                            }
                        } else {
                            view! { <p class="hint">"What do these two share? Press Space to reveal."</p> }.into_any()
                        }}
                    </div>
                    <div class="controls">
                        <button id="prev-pair" on:click=move |_| go(-1) disabled=move || app.url.with(|s| s.slide == 0)>"← Previous"</button>
                        <button id="reveal" on:click=move |_| revealed.update(|r| *r = !*r)>{move || if revealed.get() { "Hide (Space)" } else { "Reveal (Space)" }}</button>
                        <button id="next-pair" on:click=move |_| go(1) disabled=move || app.url.with(|s| s.slide + 1 >= s.lesson.len())>"Next →"</button>
                        <button id="fullscreen" on:click=move |_| fullscreen()>"Full screen (F)"</button>
                    </div>
                </div>
                <div class="lesson-tools">
                    <label for="share-url">"Share this lesson:"</label>
                    <input id="share-url" type="text" readonly prop:value=share_url on:focus=move |e| { let i: web_sys::HtmlInputElement = event_target(&e); i.select(); } />
                    <button id="copy-link" on:click=share>{move || if copied.get() { "Copied" } else { "Copy link" }}</button>
                    <button id="remove-pair" class="link" on:click=remove>"Remove this pair"</button>
                </div>
            </Show>
        </section>
    }
}
