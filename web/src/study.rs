//! The A/B study (the paper's human evaluation) on the quiz's screen: which of two images — the
//! top hits of two methods, which stay hidden — shares the idea of the first, or a tie. Each
//! answer is stored by the companion before the next pair comes.

use leptos::ev;
use leptos::prelude::*;
use leptos::task::spawn_local;
use relsim_shared::protocol::{StudyAnswer, StudyChoice, StudyPage};

use crate::api;
use crate::keys;
use crate::stage::Choices;

/// This tab's participant id and position, kept for reloads of the tab.
const SESSION_KEY: &str = "relsim-study-session";
const POSITION_KEY: &str = "relsim-study-position";

fn session_storage() -> Option<web_sys::Storage> {
    web_sys::window().and_then(|w| w.session_storage().ok().flatten())
}

/// An opaque id for whoever answers in this tab.
fn session_id() -> String {
    let stored = session_storage().and_then(|s| s.get_item(SESSION_KEY).ok().flatten());
    stored.unwrap_or_else(|| {
        let id = format!("{:013x}-{:013x}", (js_sys::Math::random() * 2f64.powi(52)) as u64, (js_sys::Math::random() * 2f64.powi(52)) as u64);
        if let Some(s) = session_storage() {
            let _ = s.set_item(SESSION_KEY, &id);
        }
        id
    })
}

/// The study view.
#[component]
pub fn Study() -> impl IntoView {
    let page = RwSignal::new(None::<Result<StudyPage, String>>);
    let position = RwSignal::new(session_storage().and_then(|s| s.get_item(POSITION_KEY).ok().flatten()).and_then(|p| p.parse::<usize>().ok()).unwrap_or(0));
    let stored = RwSignal::new(None::<usize>);
    let error = RwSignal::new(None::<String>);
    let sending = RwSignal::new(false);
    let session = StoredValue::new(session_id());
    spawn_local(async move { page.set(Some(api::get::<StudyPage>("/api/study").await)) });

    let trial = Memo::new(move |_| page.with(|p| p.as_ref().and_then(|p| p.as_ref().ok()).and_then(|p| p.trials.get(position.get()).cloned())));
    let count = move || page.with(|p| p.as_ref().and_then(|p| p.as_ref().ok()).map_or(0, |p| p.trials.len()));

    let answer = move |choice: StudyChoice| {
        let Some(t) = trial.get_untracked() else { return };
        if sending.get_untracked() {
            return;
        }
        sending.set(true);
        let body = StudyAnswer { trial: t.id, choice, session: session.get_value() };
        spawn_local(async move {
            let reply = api::post::<_, serde_json::Value>("/api/study/answers", &body).await;
            sending.set(false);
            match reply {
                Ok(v) => {
                    error.set(None);
                    stored.set(v["answers"].as_u64().map(|n| n as usize));
                    position.update(|p| *p += 1);
                    if let Some(s) = session_storage() {
                        let _ = s.set_item(POSITION_KEY, &position.get_untracked().to_string());
                    }
                }
                Err(e) => error.set(Some(format!("the answer was not stored: {e}"))),
            }
        });
    };
    let keys = window_event_listener(ev::keydown, move |e: ev::KeyboardEvent| {
        if keys::typing_target(&e) || e.alt_key() || e.ctrl_key() || e.meta_key() || trial.get_untracked().is_none() {
            return;
        }
        match e.key().as_str() {
            "ArrowLeft" | "1" | "a" | "A" => answer(StudyChoice::Left),
            "ArrowRight" | "2" | "b" | "B" => answer(StudyChoice::Right),
            "ArrowDown" | "0" | "t" | "T" => answer(StudyChoice::Tie),
            _ => return,
        }
        e.prevent_default();
    });
    on_cleanup(move || keys.remove());

    view! {
        <section id="study" class="panel classroom" aria-labelledby="study-title">
            <h2 id="study-title">"Study"</h2>
            {move || match page.get() {
                None => view! { <p class="hint">"Loading the study…"</p> }.into_any(),
                Some(Err(e)) => view! { <p id="study-error" class="error" role="alert">{e}</p> }.into_any(),
                Some(Ok(_)) if trial.get().is_none() => view! {
                    <p id="study-done" class="hint">{format!("Thank you: all {} pairs are answered.", count())}</p>
                }.into_any(),
                Some(Ok(_)) => view! {
                    <div id="study-stage" class="stage" data-trial=move || trial.get().map(|t| t.id.to_string()).unwrap_or_default() data-position=move || position.get().to_string()>
                        <p class="counter" id="study-counter">{move || format!("Pair {} of {}", position.get() + 1, count())}</p>
                        <Choices
                            query=Signal::derive(move || trial.get().map(|t| t.query))
                            left=Signal::derive(move || trial.get().map(|t| t.left))
                            right=Signal::derive(move || trial.get().map(|t| t.right))
                            mark=Callback::new(move |_| if sending.get() { "waiting".to_string() } else { String::new() })
                            choose=Callback::new(move |left: bool| answer(if left { StudyChoice::Left } else { StudyChoice::Right })) />
                        <div class="controls">
                            <button id="choose-tie" on:click=move |_| answer(StudyChoice::Tie)>"Both equally (T or ↓)"</button>
                        </div>
                        <p id="study-stored" class="tally" data-stored=move || stored.get().map(|n| n.to_string()).unwrap_or_default()>
                            "Choose the image that shares the idea of the top one — how things relate, not how they look. Your answers are stored as you go."
                        </p>
                    </div>
                }.into_any(),
            }}
            <Show when=move || error.get().is_some()>
                <p class="error" role="alert">{move || error.get().unwrap_or_default()}</p>
            </Show>
        </section>
    }
}
