//! The page: the analogy explorer, classroom mode, the quiz and the models panel, switched by the view the
//! URL names (the state itself lives in [`crate::state`]).

use leptos::ev;
use leptos::prelude::*;
use relsim_shared::explore::View;

use crate::classroom::Classroom;
use crate::encoder_panel::EncoderPanel;
use crate::explorer::Explorer;
use crate::quiz::Quiz;
use crate::study::Study;
use crate::state::AppState;
use crate::text_model::TextModel;

/// The whole app.
#[component]
pub fn App() -> impl IntoView {
    let state = AppState::start();
    provide_context(TextModel::start());

    let view = Memo::new(move |_| state.url.with(|s| s.view));
    let lesson_size = move || state.url.with(|s| s.lesson.len());
    let quiz_size = move || state.url.with(|s| s.quiz.len());
    // The Study tab shows when the companion runs a study (`relsim serve --study`).
    let study_running = RwSignal::new(false);
    leptos::task::spawn_local(async move {
        // Asked of /api/health: /api/study answers 404 without a study, which the console would show.
        let health = crate::api::get::<serde_json::Value>("/api/health").await;
        study_running.set(health.is_ok_and(|h| h["study"] == true));
    });
    let tab = move |target: View, label: &'static str, id: &'static str| {
        view! {
            <a id=id href="#" aria-current=move || (view.get() == target).then_some("page")
                on:click=move |e: ev::MouseEvent| {
                    e.prevent_default();
                    state.update(|s| s.view = target);
                }>{label}</a>
        }
    };

    view! {
        <header>
            <div class="brand">
                <h1>"relsim"</h1>
                <p class="tagline">"Find images that share an idea, not a look."</p>
            </div>
            <nav aria-label="Views">
                {tab(View::Explore, "Explore", "nav-explore")}
                <a id="nav-classroom" href="#" aria-current=move || (view.get() == View::Classroom).then_some("page")
                    on:click=move |e: ev::MouseEvent| {
                        e.prevent_default();
                        state.update(|s| s.view = View::Classroom);
                    }>"Classroom " <span class="count">{move || format!("({})", lesson_size())}</span></a>
                <a id="nav-quiz" href="#" aria-current=move || (view.get() == View::Quiz).then_some("page")
                    on:click=move |e: ev::MouseEvent| {
                        e.prevent_default();
                        state.update(|s| s.view = View::Quiz);
                    }>"Quiz " <span class="count">{move || format!("({})", quiz_size())}</span></a>
                <Show when=move || study_running.get() || view.get() == View::Study>
                    {tab(View::Study, "Study", "nav-study")}
                </Show>
                {tab(View::Models, "Models", "nav-models")}
            </nav>
        </header>
        <main>
            {move || match view.get() {
                View::Explore => view! { <Explorer /> }.into_any(),
                View::Classroom => view! { <Classroom /> }.into_any(),
                View::Models => view! { <EncoderPanel /> }.into_any(),
                View::Quiz => view! { <Quiz /> }.into_any(),
                View::Study => view! { <Study /> }.into_any(),
            }}
        </main>
    }
}
