//! Classroom mode: pairs of images that share an idea, shown large; the shared idea is revealed
//! on a key press, the arrow keys move on, and the lesson travels as a URL.

use leptos::ev;
use leptos::html::Div;
use leptos::prelude::*;
use leptos::task::spawn_local;
use relsim_shared::explore::View;
use relsim_shared::protocol::ExplainResponse;

use crate::api;
use crate::keys;
use crate::stage::{original, toggle_fullscreen, ShareLink};
use crate::state::AppState;

/// The classroom view.
#[component]
pub fn Classroom() -> impl IntoView {
    let app = expect_context::<AppState>();
    let stage = NodeRef::<Div>::new();
    let revealed = RwSignal::new(false);
    let explained = RwSignal::new(None::<Result<ExplainResponse, String>>);
    let quiz_error = RwSignal::new(None::<String>);
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
    let fullscreen = move || toggle_fullscreen(stage);
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
    let make_quiz = move |_| {
        let lesson = app.url.with_untracked(|s| s.lesson.clone());
        quiz_error.set(None);
        spawn_local(async move {
            match crate::quiz::quiz_from_lesson(&lesson).await {
                Ok(quiz) if quiz.is_empty() => quiz_error.set(Some("no pair has an image that looks alike with another idea to set beside it".into())),
                Ok(quiz) => app.update(|s| {
                    s.quiz = quiz;
                    s.question = 0;
                    s.view = View::Quiz;
                }),
                Err(e) => quiz_error.set(Some(e)),
            }
        });
    };

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
                    <ShareLink label="Share this lesson:" />
                    <button id="remove-pair" class="link" on:click=remove>"Remove this pair"</button>
                    <button id="quiz-lesson" on:click=make_quiz>"Quiz this lesson"</button>
                </div>
                <Show when=move || quiz_error.get().is_some()>
                    <p class="error" role="alert">{move || quiz_error.get().unwrap_or_default()}</p>
                </Show>
            </Show>
        </section>
    }
}
