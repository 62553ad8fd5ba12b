//! Quiz mode: "which of these two shares the idea of the first?" — one image shares its idea and
//! looks different, the other looks alike and shows another idea. Answers by key or click, a
//! reveal with the shared caption, and tallies per question and for the session (kept in this
//! browser; the questions travel in the address like a lesson).

use std::hash::{Hash, Hasher};

use leptos::ev;
use leptos::html::Div;
use leptos::prelude::*;
use leptos::task::spawn_local;
use relsim_shared::explore::{look_alikes, QuizQuestion, QuizTally, View, MAX_QUIZ};
use relsim_shared::protocol::{ExplainResponse, LibraryFilter, SearchQuery, DEFAULT_WEIGHT};

use wasm_bindgen::JsCast;

use crate::api;
use crate::stage::{original, toggle_fullscreen, Choices, ShareLink};
use crate::keys;
use crate::state::AppState;

/// Where this quiz's tallies are kept in the browser: one entry per quiz.
fn storage_key(quiz: &[QuizQuestion]) -> String {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    quiz.hash(&mut hasher);
    format!("relsim-quiz-{:016x}", hasher.finish())
}

fn storage() -> Option<web_sys::Storage> {
    web_sys::window().and_then(|w| w.local_storage().ok().flatten())
}

/// A quiz from the lesson's pairs: each pair's second image is the answer, and the decoy is the
/// image that looks most like the first while showing another idea (from its similarity map).
pub async fn quiz_from_lesson(lesson: &[(String, String)]) -> Result<Vec<QuizQuestion>, String> {
    let mut quiz = Vec::new();
    for (a, b) in lesson.iter().take(MAX_QUIZ) {
        let response = api::search(SearchQuery::Id { id: a.clone() }, 1, DEFAULT_WEIGHT, true, LibraryFilter::default()).await?;
        let points = response.map.unwrap_or_default();
        if let Some(decoy) = look_alikes(&points, 8).into_iter().map(|i| &points[i].id).find(|id| *id != b) {
            quiz.push(QuizQuestion::new(a.clone(), b.clone(), decoy.clone()));
        }
    }
    Ok(quiz)
}

/// The quiz view.
#[component]
pub fn Quiz() -> impl IntoView {
    let app = expect_context::<AppState>();
    let stage = NodeRef::<Div>::new();
    let current = Memo::new(move |_| app.url.with(|s| s.quiz.get(s.question).cloned()));
    let index = move || app.url.with(|s| s.question);
    let count = move || app.url.with(|s| s.quiz.len());
    let revealed = RwSignal::new(false);
    let explained = RwSignal::new(None::<Result<ExplainResponse, String>>);
    // The last answer to this question: which side, and whether it was right.
    let last = RwSignal::new(None::<(bool, bool)>);
    let key = Memo::new(move |_| app.url.with(|s| storage_key(&s.quiz)));
    let tally = RwSignal::new(QuizTally::default());
    Effect::new(move |_| {
        let saved = storage().and_then(|s| s.get_item(&key.get()).ok().flatten()).unwrap_or_default();
        tally.set(QuizTally::parse(&saved));
    });

    Effect::new(move |_| {
        let question = current.get();
        revealed.set(false);
        last.set(None);
        explained.set(None);
        if let Some(q) = question {
            spawn_local(async move {
                let answer = api::explain(&q.query, &q.answer).await;
                if current.get_untracked().as_ref() == Some(&q) {
                    explained.set(Some(answer));
                }
            });
        }
    });

    let answer = move |left: bool| {
        let Some(q) = current.get_untracked() else { return };
        let right = q.is_right(left);
        let at = index();
        tally.update(|t| t.record(at, right));
        last.set(Some((left, right)));
        if let Some(s) = storage() {
            let _ = s.set_item(&key.get_untracked(), &tally.with_untracked(QuizTally::to_text));
        }
    };
    let go = move |step: isize| {
        app.update(|s| {
            let last = s.quiz.len().saturating_sub(1) as isize;
            s.question = (s.question as isize + step).clamp(0, last) as usize;
        });
    };
    let new_session = move |_| {
        tally.set(QuizTally::default());
        last.set(None);
        if let Some(s) = storage() {
            let _ = s.remove_item(&key.get_untracked());
        }
    };
    let keys = window_event_listener(ev::keydown, move |e: ev::KeyboardEvent| {
        // Space on a chosen image reveals (the choice buttons keep focus after a click).
        let on_choice = e.target().and_then(|t| t.dyn_into::<web_sys::Element>().ok()).is_some_and(|el| el.class_list().contains("choice"));
        let pressing = keys::target_tag(&e) == "BUTTON" && !on_choice && matches!(e.key().as_str(), " " | "Enter");
        if keys::typing_target(&e) || pressing || e.alt_key() || e.ctrl_key() || e.meta_key() || count() == 0 {
            return;
        }
        match e.key().as_str() {
            "ArrowLeft" | "1" | "a" | "A" => answer(true),
            "ArrowRight" | "2" | "b" | "B" => answer(false),
            " " | "Enter" => revealed.update(|r| *r = !*r),
            "PageDown" | "n" | "N" => go(1),
            "PageUp" | "p" | "P" => go(-1),
            "f" | "F" => toggle_fullscreen(stage),
            _ => return,
        }
        e.prevent_default();
    });
    on_cleanup(move || keys.remove());

    // A choice's look: after the reveal, which is the answer and which only looks alike.
    let mark = move |left: bool| {
        let chosen = last.get().is_some_and(|(side, _)| side == left);
        let shown = match (revealed.get(), current.get()) {
            (true, Some(q)) if q.is_right(left) => " answer",
            (true, Some(_)) => " decoy",
            _ => "",
        };
        format!("{}{}", shown.trim(), if chosen { " chosen" } else { "" })
    };
    let side_url = move |left: bool| current.get().map(|q| original(if left { q.sides().0 } else { q.sides().1 }));

    view! {
        <section id="quiz" class="panel classroom" aria-labelledby="quiz-title">
            <h2 id="quiz-title">"Quiz"</h2>
            <Show when=move || count() != 0 fallback=move || view! {
                <p class="hint">"No quiz yet. In Explore, search with a library image and press “Quiz from the map”, or press “Quiz this lesson” in Classroom."</p>
                <button on:click=move |_| app.update(|s| s.view = View::Explore)>"Go to Explore"</button>
            }>
                <div id="quiz-stage" class="stage" node_ref=stage data-question=move || index().to_string() data-revealed=move || revealed.get().to_string()>
                    <p class="counter" id="question-counter">{move || format!("Question {} of {}", index() + 1, count())}</p>
                    <Choices
                        query=Signal::derive(move || current.get().map(|q| original(&q.query)))
                        left=Signal::derive(move || side_url(true))
                        right=Signal::derive(move || side_url(false))
                        mark=Callback::new(mark)
                        choose=Callback::new(answer) />
                    <p id="quiz-feedback" class="feedback" aria-live="polite" data-right=move || last.get().map(|(_, r)| r.to_string()).unwrap_or_default()>
                        {move || match last.get() {
                            None => "Choose A or B.".to_string(),
                            Some((_, true)) => "Right: it shares the idea.".to_string(),
                            Some((_, false)) => "Not this one: it only looks alike.".to_string(),
                        }}
                    </p>
                    <div class="reveal" aria-live="polite">
                        {move || if revealed.get() {
                            let side = if current.get().is_some_and(|q| q.answer_left) { "A" } else { "B" };
                            match explained.get() {
                                None => view! { <p class="caption">"…"</p> }.into_any(),
                                Some(Err(e)) => view! { <p class="error" role="alert">{e}</p> }.into_any(),
                                Some(Ok(answer)) => {
                                    let caption = answer.why.into_iter().next().map(|w| w.caption).unwrap_or_else(|| "(no caption fits)".into());
                                    view! {
                                        <p id="quiz-answer" class="also">{format!("{side} shares the idea:")}</p>
                                        <p id="quiz-caption" class="caption">{caption}</p>
                                    }.into_any()
                                }
                            }
                        } else {
                            view! { <p class="hint">"Press Space to reveal the answer."</p> }.into_any()
                        }}
                    </div>
                    <p id="quiz-tally" class="tally"
                        data-question=move || { let (r, w) = tally.with(|t| t.question(index())); format!("{r}.{w}") }
                        data-session=move || { let (r, w) = tally.with(QuizTally::session); format!("{r}.{w}") }>
                        {move || {
                            let (r, w) = tally.with(|t| t.question(index()));
                            let (sr, sw) = tally.with(QuizTally::session);
                            let share = if sr + sw == 0 { String::new() } else { format!(" ({:.0}%)", 100.0 * sr as f64 / (sr + sw) as f64) };
                            format!("This question: {r} right, {w} wrong. Session: {sr} of {} right{share}.", sr + sw)
                        }}
                    </p>
                    <div class="controls">
                        <button id="prev-question" on:click=move |_| go(-1) disabled=move || index() == 0>"← Previous (P)"</button>
                        <button id="reveal-answer" on:click=move |_| revealed.update(|r| *r = !*r)>{move || if revealed.get() { "Hide (Space)" } else { "Reveal (Space)" }}</button>
                        <button id="next-question" on:click=move |_| go(1) disabled={move || index() + 1 >= count()}>"Next (N) →"</button>
                        <button id="quiz-fullscreen" on:click=move |_| toggle_fullscreen(stage)>"Full screen (F)"</button>
                        <button id="new-session" on:click=new_session>"New session"</button>
                    </div>
                </div>
                <div class="lesson-tools"><ShareLink label="Share this quiz:" /></div>
            </Show>
        </section>
    }
}
