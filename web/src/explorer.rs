//! The explore view: ask by image (drop, paste, pick, click) or by idea (typed caption, embedded
//! in the browser), see "same idea" and "looks alike" side by side, the similarity map and the
//! library.

use leptos::ev;
use leptos::prelude::*;
use leptos::task::spawn_local;
use relsim_shared::explore::{analogies, Extra, Query, View, MAX_EXTRAS};
use relsim_shared::protocol::{ComposePart, DateSource, LibraryFilter, LibraryFolder, LibraryImage, MapPoint, SearchHit, SearchQuery, SearchResponse};
use wasm_bindgen::JsCast;

use crate::api;
use crate::keys;
use crate::state::AppState;
use crate::latest::Latest;
use crate::map::SimilarityMap;
use crate::models::Engine;
use crate::student::{self, LocalMode};
use crate::text_model::{now_ms, TextModel};

/// Results per column.
const K: usize = 12;
/// Library thumbnails per page of the grid.
const PAGE: usize = 120;
/// Pairs a lesson made from the map's analogies holds.
const LESSON_PAIRS: usize = 6;
/// Questions of a quiz made from the map.
const QUIZ_QUESTIONS: usize = 8;
/// Pause after typing or sliding before asking the companion.
const DEBOUNCE_MS: u32 = 120;

/// Where an idea's vector was computed, for the user (and the tests).
#[derive(Clone, PartialEq)]
struct IdeaSource {
    key: &'static str,
    label: String,
}

/// Turns the page's query into an API query; ideas are embedded here when the browser's
/// MiniLM is ready, by the companion until then.
async fn resolve(query: &Query, model: TextModel) -> Result<(SearchQuery, Option<IdeaSource>), String> {
    Ok(match query {
        Query::Image(id) => (SearchQuery::Id { id: id.clone() }, None),
        Query::Upload(id) => (SearchQuery::Upload { id: id.clone() }, None),
        Query::Idea(text) if model.ready.get_untracked() => {
            let engine = model.engine.get_untracked();
            let (vector, ms) = TextModel::embed(engine, text).await?;
            let key = if engine == Engine::WebGpu { "browser-webgpu" } else { "browser-cpu" };
            (SearchQuery::Vector { vector }, Some(IdeaSource { key, label: format!("embedded in your browser ({}, {ms:.0} ms)", engine.label()) }))
        }
        Query::Idea(text) => (
            SearchQuery::Text { text: text.clone() },
            Some(IdeaSource { key: "companion", label: "embedded by the companion (the browser's text model is still loading)".into() }),
        ),
    })
}

/// The page's query with what was added to or taken from it: a composite API query when there
/// are extras (the query itself weighs 1, an added image or idea +1, a removed idea -1).
async fn resolve_with_extras(query: &Query, extras: &[Extra], model: TextModel) -> Result<(SearchQuery, Option<IdeaSource>), String> {
    let (main, source) = resolve(query, model).await?;
    if extras.is_empty() {
        return Ok((main, source));
    }
    let mut parts = vec![ComposePart { query: main, weight: 1.0 }];
    for extra in extras {
        let (query, weight) = match extra {
            Extra::Image(id) => (SearchQuery::Id { id: id.clone() }, 1.0),
            Extra::Plus(text) => (resolve(&Query::Idea(text.clone()), model).await?.0, 1.0),
            Extra::Minus(text) => (resolve(&Query::Idea(text.clone()), model).await?.0, -1.0),
        };
        parts.push(ComposePart { query, weight });
    }
    Ok((SearchQuery::Compose { parts }, source))
}

/// An image query answered in this browser (not in the URL: the companion never saw it).
#[derive(Debug, Clone, PartialEq)]
struct LocalQuery {
    preview: String,
    engine: Engine,
    millis: f64,
}

/// What the explore view's parts share.
#[derive(Clone, Copy)]
struct Results {
    same_idea: RwSignal<Option<SearchResponse>>,
    looks_alike: RwSignal<Option<SearchResponse>>,
    points: RwSignal<Vec<MapPoint>>,
    busy: RwSignal<bool>,
    error: RwSignal<Option<String>>,
    local: RwSignal<Option<LocalQuery>>,
    local_mode: RwSignal<LocalMode>,
}

async fn read_file(file: &web_sys::File) -> Result<Vec<u8>, String> {
    let buffer = wasm_bindgen_futures::JsFuture::from(file.array_buffer()).await.map_err(|_| format!("{} could not be read", file.name()))?;
    Ok(js_sys::Uint8Array::new(&buffer).to_vec())
}

/// Searches with the first image file of a drop, paste or pick: in this browser when the
/// student is ready, else through the companion (whose upload id becomes the query).
fn search_with_file(app: AppState, results: Results, file: web_sys::File) {
    let Results { error, busy, .. } = results;
    if !file.type_().is_empty() && !file.type_().starts_with("image/") {
        error.set(Some(format!("{} is not an image ({})", file.name(), file.type_())));
        return;
    }
    let preview = web_sys::Url::create_object_url_with_blob(&file).unwrap_or_default();
    let (weight, filter) = app.url.with_untracked(|s| (s.weight, s.filter.clone()));
    busy.set(true);
    if matches!(results.local_mode.get_untracked(), LocalMode::Ready(_)) {
        let engine = expect_context::<TextModel>().engine.get_untracked();
        spawn_local(async move {
            let answer = match read_file(&file).await {
                Ok(bytes) => student::answer(engine, &bytes, &file.name(), K).await,
                Err(e) => Err(e),
            };
            busy.set(false);
            match answer {
                Ok(answer) => {
                    let mut response = answer.response;
                    results.local.set(Some(LocalQuery { preview, engine, millis: answer.millis }));
                    app.update(|s| { s.query = None; s.extras.clear(); });
                    error.set(None);
                    results.points.set(response.map.take().unwrap_or_default());
                    results.same_idea.set(Some(response));
                    results.looks_alike.set(None);
                }
                Err(e) => error.set(Some(format!("{}: {e}", file.name()))),
            }
        });
        return;
    }
    spawn_local(async move {
        match api::search_file(&file, K, weight, &filter).await {
            Ok(response) => match response.upload {
                Some(id) => {
                    app.upload_preview.set(Some((id.clone(), preview)));
                    app.query(Query::Upload(id));
                }
                None => error.set(Some("the companion did not remember the upload".into())),
            },
            Err(e) => {
                busy.set(false);
                error.set(Some(format!("{}: {e}", file.name())));
            }
        }
    });
}

fn first_file(files: Option<web_sys::FileList>) -> Option<web_sys::File> {
    let files = files?;
    (0..files.length()).filter_map(|i| files.get(i)).find(|f| f.type_().is_empty() || f.type_().starts_with("image/"))
}

/// The explore view.
#[component]
pub fn Explorer() -> impl IntoView {
    let app = expect_context::<AppState>();
    let model = expect_context::<TextModel>();
    let results = Results {
        same_idea: RwSignal::new(None),
        looks_alike: RwSignal::new(None),
        points: RwSignal::new(Vec::new()),
        busy: RwSignal::new(false),
        error: RwSignal::new(None),
        local: RwSignal::new(None),
        local_mode: app.local_mode,
    };
    provide_context(results);
    let Results { same_idea, looks_alike, points, busy, error, local, .. } = results;
    let idea_source = RwSignal::new(None::<IdeaSource>);
    let latest = Latest::new();

    // The query or the weight changed: ask again (after a short pause, newest request wins).
    Effect::new(move |_| {
        let (query, weight, extras, filter) = app.url.with(|s| (s.query.clone(), s.weight, s.extras.clone(), s.filter.clone()));
        let ticket = latest.next();
        let Some(query) = query else {
            // An answer computed in this browser stays until the next query.
            if local.with_untracked(Option::is_some) {
                return;
            }
            same_idea.set(None);
            looks_alike.set(None);
            points.set(Vec::new());
            return;
        };
        local.set(None);
        spawn_local(async move {
            if !latest.settle(ticket, DEBOUNCE_MS).await {
                return;
            }
            busy.set(true);
            let outcome = async {
                let (api_query, source) = resolve_with_extras(&query, &extras, model).await?;
                let left = api::search(api_query.clone(), K, weight, true, filter.clone()).await?;
                // Looks are compared when the query is an image (its added images join in).
                let right = match query {
                    Query::Image(_) | Query::Upload(_) => Some(api::search(api_query, K, 0.0, false, filter).await?),
                    Query::Idea(_) => None,
                };
                Ok::<_, String>((left, right, source))
            }
            .await;
            if !latest.is_current(ticket) {
                return;
            }
            busy.set(false);
            match outcome {
                Ok((mut left, right, source)) => {
                    error.set(None);
                    points.set(left.map.take().unwrap_or_default());
                    same_idea.set(Some(left));
                    looks_alike.set(right);
                    idea_source.set(source);
                }
                Err(e) => error.set(Some(e)),
            }
        });
    });

    // Pasting an image anywhere on the explore view searches with it.
    let paste = window_event_listener(ev::paste, move |e: ev::ClipboardEvent| {
        if let Some(file) = first_file(e.clipboard_data().and_then(|d| d.files())) {
            e.prevent_default();
            search_with_file(app, results, file);
        }
    });
    // "/" jumps to the idea box.
    let slash = window_event_listener(ev::keydown, move |e: ev::KeyboardEvent| {
        if e.key() == "/" && !keys::typing_target(&e) {
            if let Some(input) = document().get_element_by_id("idea").and_then(|el| el.dyn_into::<web_sys::HtmlElement>().ok()) {
                e.prevent_default();
                let _ = input.focus();
            }
        }
    });
    on_cleanup(move || {
        paste.remove();
        slash.remove();
    });

    let is_image_query = Signal::derive(move || app.url.with(|s| matches!(s.query, Some(Query::Image(_) | Query::Upload(_)))));
    let lesson_from_map = move |_| {
        let Some(Query::Image(query_id)) = app.url.get_untracked().query else { return };
        let pairs: Vec<(String, String)> = points.with_untracked(|p| analogies(p, LESSON_PAIRS).into_iter().map(|i| (query_id.clone(), p[i].id.clone())).collect());
        if pairs.is_empty() {
            error.set(Some("no image lies in the analogy quadrant for this query".into()));
            return;
        }
        app.update(|s| {
            s.lesson = pairs;
            s.slide = 0;
            s.view = View::Classroom;
        });
    };

    let quiz_from_map = move |_| {
        let Some(Query::Image(query_id)) = app.url.get_untracked().query else { return };
        let threshold = same_idea.with_untracked(|r| r.as_ref().and_then(|r| r.threshold));
        let quiz = points.with_untracked(|p| relsim_shared::explore::quiz_from_map(&query_id, p, QUIZ_QUESTIONS, threshold));
        if quiz.is_empty() {
            error.set(Some("a quiz needs images that surely share this image's idea while looking different, and look-alikes with other ideas: this map has none of one kind".into()));
            return;
        }
        app.update(|s| {
            s.quiz = quiz;
            s.question = 0;
            s.view = View::Quiz;
        });
    };

    view! {
        <section class="panel ask" aria-label="Ask">
            <QueryBar />
            <CurrentQuery source=idea_source />
            <Show when=move || app.url.with(|s| s.query.is_some())>
                <Refine />
            </Show>
            <Show when=move || error.get().is_some()>
                <p id="explore-error" class="error" role="alert">{move || error.get().unwrap_or_default()}</p>
            </Show>
        </section>
        <Show when=move || app.url.with(|s| s.query.is_some()) || local.with(Option::is_some)>
            <div class="columns">
                <ResultColumn id="same-idea" title="Same idea" note="ranked by the blend of idea and look set by the slider" results=same_idea lesson=true />
                <ResultColumn id="looks-alike" title="Looks alike" note="ranked by look alone (colour and shape)" results=looks_alike lesson=false />
            </div>
            <section class="panel" aria-labelledby="map-title">
                <div class="map-head">
                    <h2 id="map-title">"Similarity map"</h2>
                    <Show when=move || is_image_query.get() && app.url.with(|s| matches!(s.query, Some(Query::Image(_))))>
                        <button id="lesson-from-map" on:click=lesson_from_map>"Make a lesson from the analogies"</button>
                        <button id="quiz-from-map" on:click=quiz_from_map>"Quiz from the map"</button>
                    </Show>
                </div>
                <SimilarityMap points=points.read_only() />
            </section>
        </Show>
        <LibraryGrid />
    }
}

/// Drop zone, file picker, idea search with suggestions, and the idea/look slider.
#[component]
fn QueryBar() -> impl IntoView {
    let app = expect_context::<AppState>();
    let model = expect_context::<TextModel>();
    let results = expect_context::<Results>();
    let error = results.error;
    let dragging = RwSignal::new(false);
    let typed = RwSignal::new(app.url.with_untracked(|s| match &s.query {
        Some(Query::Idea(t)) => t.clone(),
        _ => String::new(),
    }));
    let suggestions = RwSignal::new(Vec::<String>::new());
    let suggest_ticket = Latest::new();
    let file_input = NodeRef::<leptos::html::Input>::new();

    let on_typed = move |text: String| {
        typed.set(text.clone());
        let ticket = suggest_ticket.next();
        if text.trim().is_empty() {
            suggestions.set(Vec::new());
            return;
        }
        spawn_local(async move {
            if !suggest_ticket.settle(ticket, DEBOUNCE_MS).await {
                return;
            }
            let found = api::suggest(&text).await.unwrap_or_default();
            if suggest_ticket.is_current(ticket) {
                suggestions.set(found);
            }
        });
    };
    let search_idea = move |text: String| {
        let text = text.trim().to_string();
        if text.is_empty() {
            return;
        }
        suggest_ticket.next();
        suggestions.set(Vec::new());
        typed.set(text.clone());
        app.query(Query::Idea(text));
    };

    view! {
        <div class="query-bar">
            <div id="drop-zone" class="drop-zone" class:dragging=move || dragging.get() tabindex="0" role="button"
                aria-label="Search with an image: drop it here, paste it, or press Enter to choose a file"
                on:dragover=move |e: ev::DragEvent| { e.prevent_default(); dragging.set(true); }
                on:dragleave=move |_| dragging.set(false)
                on:drop=move |e: ev::DragEvent| {
                    e.prevent_default();
                    dragging.set(false);
                    match first_file(e.data_transfer().and_then(|d| d.files())) {
                        Some(file) => search_with_file(app, results, file),
                        None => error.set(Some("drop an image file (PNG, JPEG, WebP, GIF, BMP or TIFF)".into())),
                    }
                }
                on:keydown=move |e: ev::KeyboardEvent| {
                    if e.key() == "Enter" || e.key() == " " {
                        e.prevent_default();
                        if let Some(input) = file_input.get() { input.click(); }
                    }
                }>
                <strong>"Search by image"</strong>
                <span>"Drop an image here, paste one, or "</span>
                <label for="file-input" class="button">"choose a file"</label>
                <input id="file-input" type="file" accept="image/*" class="visually-hidden" node_ref=file_input
                    on:change=move |e: ev::Event| {
                        let input: web_sys::HtmlInputElement = event_target(&e);
                        if let Some(file) = first_file(input.files()) { search_with_file(app, results, file); }
                        input.set_value("");
                    } />
                <LocalToggle />
            </div>
            <form class="idea" role="search" on:submit=move |e: ev::SubmitEvent| { e.prevent_default(); search_idea(typed.get_untracked()); }>
                <label for="idea"><strong>"Search by idea"</strong>" (press / to jump here)"</label>
                <div class="idea-row">
                    <input id="idea" type="search" autocomplete="off" spellcheck="false"
                        placeholder="transformation of {subject} over time"
                        aria-controls="suggestions"
                        prop:value=move || typed.get()
                        on:input=move |e| on_typed(event_target_value(&e))
                        on:keydown=move |e: ev::KeyboardEvent| {
                            if e.key() == "ArrowDown" {
                                if let Some(first) = document().query_selector("#suggestions button").ok().flatten().and_then(|el| el.dyn_into::<web_sys::HtmlElement>().ok()) {
                                    e.prevent_default();
                                    let _ = first.focus();
                                }
                            } else if e.key() == "Escape" {
                                suggestions.set(Vec::new());
                            }
                        } />
                    <button type="submit" id="idea-search">"Search"</button>
                </div>
                <small id="idea-engine" class="note" data-ready=move || model.ready.get().to_string()>
                    {move || if model.ready.get() { format!("Ideas are embedded in your browser ({}).", model.engine.get().label()) } else { model.status.get() }}
                </small>
                <ul id="suggestions" class="suggestions" role="listbox" aria-label="Captions like yours" hidden=move || suggestions.with(Vec::is_empty)>
                    {move || suggestions.get().into_iter().map(|caption| {
                        let chosen = caption.clone();
                        view! {
                            <li role="option"><button type="button" class="suggestion"
                                on:click=move |_| search_idea(chosen.clone())
                                on:keydown=move |e: ev::KeyboardEvent| {
                                    let target = e.target().and_then(|t| t.dyn_into::<web_sys::HtmlElement>().ok());
                                    let item = target.and_then(|t| t.parent_element());
                                    let next = match e.key().as_str() {
                                        "ArrowDown" => item.and_then(|li| li.next_element_sibling()),
                                        "ArrowUp" => item.and_then(|li| li.previous_element_sibling()),
                                        _ => return,
                                    };
                                    e.prevent_default();
                                    match next.and_then(|li| li.first_element_child()).and_then(|b| b.dyn_into::<web_sys::HtmlElement>().ok()) {
                                        Some(b) => { let _ = b.focus(); }
                                        None => if let Some(input) = document().get_element_by_id("idea").and_then(|el| el.dyn_into::<web_sys::HtmlElement>().ok()) { let _ = input.focus(); },
                                    }
                                }>{caption}</button></li>
                        }
                    }).collect_view()}
                </ul>
            </form>
            <div class="weight">
                <label for="weight"><strong>"Blend"</strong>" look ⟷ idea"</label>
                <input id="weight" type="range" min="0" max="1" step="0.05"
                    prop:value=move || app.url.with(|s| s.weight.to_string())
                    aria-valuetext=move || format!("{:.0}% idea, {:.0}% look", app.url.with(|s| s.weight) * 100.0, (1.0 - app.url.with(|s| s.weight)) * 100.0)
                    on:input=move |e| {
                        if let Ok(w) = event_target_value(&e).parse::<f32>() { app.update(|s| s.weight = w.clamp(0.0, 1.0)); }
                    } />
                <output for="weight" id="weight-value">{move || format!("{:.0}% idea", app.url.with(|s| s.weight) * 100.0)}</output>
            </div>
        </div>
    }
}

/// What is being searched for.
#[component]
fn CurrentQuery(source: RwSignal<Option<IdeaSource>>) -> impl IntoView {
    let app = expect_context::<AppState>();
    let Results { busy, local, .. } = expect_context::<Results>();
    let shown = move || {
        if let Some(q) = local.get() {
            return view! {
                <img class="query-thumb" src=q.preview alt="your image" />
                <p id="local-answer" data-engine=q.engine.label() data-ms=format!("{:.1}", q.millis)>
                    {format!("Images that share your image's idea, answered in this browser ({}, {:.0} ms).", q.engine.label(), q.millis)}
                </p>
                {(!app.url.with_untracked(|s| s.filter.is_empty())).then(|| view! {
                    <p id="local-unfiltered" class="hint">"Answered over the whole library: the folder and date filter applies to the companion's answers."</p>
                })}
            }
            .into_any();
        }
        app.url.with(|s| match &s.query {
            None => view! { <p class="hint">"Pick an image from your library below, drop one in, or describe an idea."</p> }.into_any(),
            Some(Query::Image(id)) => view! {
                <img class="query-thumb" src=api::thumbnail(id) alt="the query image" />
                <p>"Images that share this image's idea."</p>
            }
            .into_any(),
            Some(Query::Upload(id)) => {
                let preview = app.upload_preview.with(|p| p.as_ref().filter(|(u, _)| u == id).map(|(_, url)| url.clone()));
                match preview {
                    Some(url) => view! { <img class="query-thumb" src=url alt="your image" /><p>"Images that share your image's idea."</p> }.into_any(),
                    None => view! { <p>"Your uploaded image (the companion remembers it for a while)."</p> }.into_any(),
                }
            }
            Some(Query::Idea(text)) => {
                let text = text.clone();
                view! {
                    <p>"Images showing " <q id="query-idea">{text}</q>
                    <small id="query-source" data-source=move || source.get().map(|s| s.key).unwrap_or("")>
                        {move || source.get().map(|s| format!(" — {}", s.label)).unwrap_or_default()}
                    </small></p>
                }
                .into_any()
            }
        })
    };
    view! {
        <div id="current-query" class="current-query" aria-live="polite" data-busy=move || busy.get().to_string()>
            {shown}
            <Show when=move || busy.get()><span class="spinner">"Searching…"</span></Show>
            <Show when=move || app.url.with(|s| s.query.is_some()) || local.with(Option::is_some)>
                <button id="clear-query" class="link" on:click=move |_| { local.set(None); app.update(|s| { s.query = None; s.extras.clear(); }); }>"Clear"</button>
            </Show>
        </div>
    }
}

/// Adds `extra` to the query unless it is there already or the query is full.
fn add_extra(state: &mut relsim_shared::explore::UrlState, extra: Extra) {
    if !state.extras.contains(&extra) && state.extras.len() < MAX_EXTRAS {
        state.extras.push(extra);
    }
}

/// What was added to or taken from the query, and a box to add or take away an idea.
#[component]
fn Refine() -> impl IntoView {
    let app = expect_context::<AppState>();
    let typed = RwSignal::new(String::new());
    let add = move |minus: bool| {
        let text = typed.get_untracked().trim().to_string();
        if text.is_empty() {
            return;
        }
        typed.set(String::new());
        app.update(|s| add_extra(s, if minus { Extra::Minus(text) } else { Extra::Plus(text) }));
    };
    let chip = move |(index, extra): (usize, Extra)| {
        let (kind, label) = match &extra {
            Extra::Image(id) => ("image", format!("+ image {}", &id[..id.len().min(8)])),
            Extra::Plus(text) => ("plus", format!("+ {text}")),
            Extra::Minus(text) => ("minus", format!("− {text}")),
        };
        let thumb = if let Extra::Image(id) = &extra { Some(view! { <img src=api::thumbnail(id) alt="" /> }) } else { None };
        view! {
            <li class="extra" data-kind=kind>
                {thumb}
                <span>{label.clone()}</span>
                <button class="link remove-extra" aria-label=format!("remove {label}")
                    on:click=move |_| app.update(|s| { if index < s.extras.len() { s.extras.remove(index); } })>"×"</button>
            </li>
        }
    };
    view! {
        <div id="refine" class="refine">
            <ul id="extras" class="extras" aria-label="Added to the query">
                {move || app.url.with(|s| s.extras.clone()).into_iter().enumerate().map(chip).collect_view()}
            </ul>
            <form class="refine-idea" on:submit=move |e: ev::SubmitEvent| { e.prevent_default(); add(false); }>
                <label for="refine-idea"><strong>"Refine"</strong>" with an idea"</label>
                <input id="refine-idea" type="text" autocomplete="off" placeholder="one {object} stands out among many"
                    prop:value=move || typed.get() on:input=move |e| typed.set(event_target_value(&e)) />
                <button type="submit" id="add-idea">"+ add idea"</button>
                <button type="button" id="subtract-idea" on:click=move |_| add(true)>"− take away"</button>
            </form>
        </div>
    }
}

fn score(value: Option<f32>) -> String {
    value.map(|v| format!("{v:.2}")).unwrap_or_else(|| "–".into())
}

/// One column of results.
#[component]
fn ResultColumn(id: &'static str, title: &'static str, note: &'static str, results: RwSignal<Option<SearchResponse>>, lesson: bool) -> impl IntoView {
    let app = expect_context::<AppState>();
    let local = expect_context::<Results>().local;
    let hit_view = move |hit: SearchHit| {
        let image_id = hit.image.id.clone();
        let pair_id = image_id.clone();
        let why_all = hit.why.iter().map(|w| w.caption.clone()).collect::<Vec<_>>().join("\n");
        let why = hit.why.first().map(|w| w.caption.clone()).unwrap_or_default();
        let path = hit.image.path.clone();
        let query_id = app.url.with_untracked(|s| match &s.query {
            Some(Query::Image(q)) => Some(q.clone()),
            _ => None,
        });
        let in_lesson = {
            let (q, p) = (query_id.clone(), pair_id.clone());
            Signal::derive(move || q.as_ref().is_some_and(|q| app.url.with(|s| s.lesson.iter().any(|(a, b)| a == q && *b == p))))
        };
        let data_id = image_id.clone();
        let weak = hit.weak;
        view! {
            <li class=if weak { "hit weak" } else { "hit" } data-id=data_id>
                <button class="thumb" title=format!("Search with {path}") on:click=move |_| app.query(Query::Image(image_id.clone()))>
                    <img src=hit.image.thumbnail.clone() alt=path.clone() loading="lazy" />
                </button>
                <div class="hit-text">
                    <p class="scores">
                        <span class="idea-score" title="relational similarity: the same idea">"idea " {format!("{:.2}", hit.relational)}</span>
                        <span class="look-score" title="attribute similarity: the same look">"look " {score(hit.attribute)}</span>
                        {weak.then(|| view! { <span class="weak-label" title="below the model's calibrated cut-off: more likely another idea">"weak match"</span> })}
                    </p>
                    <p class="why" title=why_all>{why}</p>
                    {lesson.then(|| {
                        let (also, also_id) = (hit.image.id.clone(), hit.image.id.clone());
                        let added = Signal::derive(move || app.url.with(|s| s.extras.contains(&Extra::Image(also_id.clone()))));
                        view! {
                            <button class="add-also link" disabled=added title="Ask for the idea this image shares with the query"
                                on:click=move |_| { let id = also.clone(); app.update(|s| add_extra(s, Extra::Image(id))); }>
                                {move || if added.get() { "added" } else { "+ add to query" }}
                            </button>
                        }
                    })}
                    {(lesson && query_id.is_some()).then(|| {
                        let q = query_id.clone().unwrap_or_default();
                        view! {
                            <button class="add-pair link" disabled=in_lesson
                                on:click=move |_| { let (q, p) = (q.clone(), pair_id.clone()); app.update(|s| if !s.lesson.iter().any(|(a, b)| *a == q && *b == p) { s.lesson.push((q, p)); }); }>
                                {move || if in_lesson.get() { "in the lesson" } else { "+ lesson" }}
                            </button>
                        }
                    })}
                </div>
            </li>
        }
    };
    view! {
        <section id=id class="panel column" aria-labelledby=format!("{id}-title")>
            <h2 id=format!("{id}-title")>{title}</h2>
            <p class="note">{note}</p>
            {move || match results.get() {
                None if id == "looks-alike" && app.url.with(|s| matches!(s.query, Some(Query::Idea(_)))) =>
                    view! { <p class="hint">"An idea has no look: search with an image to compare looks."</p> }.into_any(),
                None if id == "looks-alike" && local.with(Option::is_some) =>
                    view! { <p class="hint">"Answered in this browser, by idea: looks are compared by the companion."</p> }.into_any(),
                None => view! { <p class="hint">"…"</p> }.into_any(),
                Some(r) if r.results.is_empty() && !app.url.with(|s| s.filter.is_empty()) =>
                    view! { <p class="hint">"No image of the library passes the folder and date filter."</p> }.into_any(),
                Some(r) if r.results.is_empty() => view! { <p class="hint">"The library is empty so far."</p> }.into_any(),
                Some(r) => {
                    // Every hit of the first page below the cut-off: say so plainly.
                    let nothing = id == "same-idea" && r.offset == 0 && r.threshold.is_some() && r.results.iter().all(|h| h.weak);
                    view! {
                        {nothing.then(|| view! {
                            <p id="no-match" class="no-match" role="status">
                                "Nothing in your library clearly shares this idea. These are the nearest images, but each scores below the model's cut-off for a good match."
                            </p>
                        })}
                        <ol class="hits">{r.results.into_iter().map(hit_view).collect_view()}</ol>
                    }
                    .into_any()
                }
            }}
        </section>
    }
}

/// "Answer image queries in this browser": loads the student and the library's vectors.
#[component]
fn LocalToggle() -> impl IntoView {
    let Results { local_mode, .. } = expect_context::<Results>();
    let switch = move |on: bool| student::switch(local_mode, on);
    view! {
        <label class="local">
            <input id="local-mode" type="checkbox" prop:checked=move || !matches!(local_mode.get(), LocalMode::Off | LocalMode::Failed(_))
                on:change=move |e| switch(event_target_checked(&e)) />
            " Answer in this browser (works with the companion stopped)"
        </label>
        <small id="local-status" class="note" data-ready=move || matches!(local_mode.get(), LocalMode::Ready(_)).to_string()>
            {move || match local_mode.get() {
                LocalMode::Off => String::new(),
                LocalMode::Loading => "Loading the student and the library's vectors…".into(),
                LocalMode::Ready(s) => s,
                LocalMode::Failed(e) => format!("Not available: {e}"),
            }}
        </small>
    }
}

/// How a library folder is named in the filter: its library folder's name, then the way down.
fn folder_label(path: &str, roots: &[String]) -> String {
    let Some(root) = roots.iter().filter(|r| path.starts_with(r.as_str())).max_by_key(|r| r.len()) else { return path.to_string() };
    let name = root.trim_end_matches(['/', '\\']).rsplit(['/', '\\']).next().unwrap_or(root);
    format!("{name}{}", &path[root.len()..])
}

/// A thumbnail's tooltip: its file and when it was taken.
fn image_title(image: &LibraryImage) -> String {
    match (&image.date, image.date_source) {
        (Some(date), Some(DateSource::Exif)) => format!("{}\ntaken {}", image.path, date.replace('T', " ")),
        (Some(date), _) => format!("{}\nfile date {}", image.path, date.replace('T', " ")),
        _ => image.path.clone(),
    }
}

/// Folder and date filters of the library grid and of every search (kept in the address).
#[component]
fn Filters(subfolders: RwSignal<Vec<LibraryFolder>>, roots: RwSignal<Vec<String>>) -> impl IntoView {
    let app = expect_context::<AppState>();
    let set = move |f: fn(&mut LibraryFilter, Option<String>), value: String| {
        let value = (!value.trim().is_empty()).then_some(value);
        app.update(|s| f(&mut s.filter, value));
    };
    let folder = move || app.url.with(|s| s.filter.folder.clone().unwrap_or_default());
    view! {
        <div class="filters" role="group" aria-label="Filter the library">
            <label>"Folder "
                <select id="filter-folder" prop:value=folder on:change=move |e| set(|f, v| f.folder = v, event_target_value(&e))>
                    <option value="">"All folders"</option>
                    {move || {
                        let roots = roots.get();
                        let chosen = folder();
                        subfolders.get().into_iter().map(|f| {
                            let label = format!("{} ({})", folder_label(&f.path, &roots), f.images);
                            view! { <option value=f.path.clone() selected=f.path == chosen>{label}</option> }
                        }).collect_view()
                    }}
                </select>
            </label>
            <label>"Taken from "
                <input id="filter-from" type="date" prop:value=move || app.url.with(|s| s.filter.from.clone().unwrap_or_default())
                    on:change=move |e| set(|f, v| f.from = v, event_target_value(&e)) />
            </label>
            <label>"to "
                <input id="filter-to" type="date" prop:value=move || app.url.with(|s| s.filter.to.clone().unwrap_or_default())
                    on:change=move |e| set(|f, v| f.to = v, event_target_value(&e)) />
            </label>
            <Show when=move || app.url.with(|s| !s.filter.is_empty())>
                <button id="clear-filters" on:click=move |_| app.update(|s| s.filter = LibraryFilter::default())>"All images"</button>
            </Show>
        </div>
    }
}

/// The library: indexing progress, the filters, and a grid of thumbnails; a click searches with
/// the image.
#[component]
fn LibraryGrid() -> impl IntoView {
    let app = expect_context::<AppState>();
    let images = RwSignal::new(Vec::<LibraryImage>::new());
    let total = RwSignal::new(0usize);
    let unfiltered = RwSignal::new(0usize);
    let folders = RwSignal::new(Vec::<String>::new());
    let subfolders = RwSignal::new(Vec::<LibraryFolder>::new());
    let loaded_at = StoredValue::new(0.0f64);
    let interactive_at = RwSignal::new(None::<f64>);
    let error = RwSignal::new(None::<String>);
    let filter = Memo::new(move |_| app.url.with(|s| s.filter.clone()));
    let latest = Latest::new();

    let load = move |offset: usize| {
        let ticket = latest.next();
        let filter = filter.get_untracked();
        spawn_local(async move {
            let page = api::library(offset, PAGE, &filter).await;
            // An answer for an older filter (or page) is dropped.
            if !latest.is_current(ticket) {
                return;
            }
            match page {
                Ok(page) => {
                    error.set(None);
                    total.set(page.total);
                    unfiltered.set(page.unfiltered);
                    folders.set(page.folders);
                    subfolders.set(page.subfolders);
                    if offset == 0 {
                        images.set(page.images);
                    } else {
                        images.update(|v| v.extend(page.images));
                    }
                    if interactive_at.get_untracked().is_none() && images.with_untracked(|v| !v.is_empty()) {
                        // Counted once the first thumbnails are in the page and the frame is drawn.
                        request_animation_frame(move || interactive_at.set(Some(now_ms())));
                    }
                }
                Err(e) => error.set(Some(e)),
            }
        });
    };
    // First page now, again when a run ends or the filter changes, and now and then while a run goes.
    Effect::new(move |_| {
        app.library_version.track();
        filter.track();
        loaded_at.set_value(now_ms());
        load(0);
    });
    Effect::new(move |_| {
        let running = app.progress.with(|p| matches!(p.phase.as_str(), "scanning" | "embedding"));
        app.progress.track();
        if running && now_ms() - loaded_at.get_value() > 1500.0 && images.with_untracked(Vec::len) < PAGE {
            loaded_at.set_value(now_ms());
            load(0);
        }
    });

    let running = move || app.progress.with(|p| matches!(p.phase.as_str(), "scanning" | "embedding"));
    let progress_text = move || {
        app.progress.with(|p| match p.phase.as_str() {
            "scanning" => format!("Looking for images… {} found", p.found),
            "embedding" => format!("Indexing: {} of {} new images read, {} embedded", p.read, p.to_read, p.embedded),
            "done" => format!("Indexed: {} files ({} new, {} unchanged, {} failed)", p.found, p.embedded, p.unchanged, p.failed),
            "cancelled" => "Indexing was cancelled; what was done is kept.".into(),
            "failed" => format!("Indexing failed: {}", p.error.clone().unwrap_or_default()),
            _ => String::new(),
        })
    };

    view! {
        <section id="library" class="panel" aria-labelledby="library-title"
            data-count=move || images.with(Vec::len).to_string()
            data-indexed=move || (!running() && app.progress.with(|p| p.phase == "done")).to_string()
            data-interactive-ms=move || interactive_at.get().map(|t| format!("{t:.0}")).unwrap_or_default()>
            <div class="library-head">
                <h2 id="library-title">"Your library " <small>{move || if filter.with(LibraryFilter::is_empty) { format!("({} images)", total.get()) } else { format!("({} of {} images)", total.get(), unfiltered.get()) }}</small></h2>
                <div class="library-actions">
                    <Show when=running fallback=move || view! {
                        <button id="reindex" on:click=move |_| spawn_local(async move { if let Err(e) = api::post_empty("/api/library/index").await { error.set(Some(e)); } })>"Index again"</button>
                    }>
                        <button id="cancel-index" on:click=move |_| spawn_local(async move { let _ = api::post_empty("/api/library/cancel").await; })>"Cancel"</button>
                    </Show>
                </div>
            </div>
            <p id="index-status" class="status" role="status">{progress_text}</p>
            <Filters subfolders=subfolders roots=folders />
            <Show when=running>
                <progress id="index-progress" max=move || app.progress.with(|p| p.to_read.max(1)).to_string() value=move || app.progress.with(|p| p.read).to_string()></progress>
            </Show>
            <Show when=move || error.get().is_some()>
                <p class="error" role="alert">{move || error.get().unwrap_or_default()}</p>
            </Show>
            <Show when=move || total.get() == 0 && unfiltered.get() != 0 && error.with(Option::is_none)>
                <p id="filter-empty" class="hint">"No image passes the folder and date filter."</p>
            </Show>
            <Show when=move || unfiltered.get() == 0 && !running() && error.with(Option::is_none)>
                <p class="hint">{move || if folders.with(Vec::is_empty) { "No library folder: start the companion with --library DIR.".to_string() } else { format!("No images indexed yet in {}.", folders.get().join(", ")) }}</p>
            </Show>
            <ul class="grid">
                {move || images.get().into_iter().map(|image| {
                    let id = image.id.clone();
                    view! {
                        <li><button class="thumb" data-id=image.id.clone() data-date=image.date.clone().unwrap_or_default() title=image_title(&image) on:click=move |_| app.query(Query::Image(id.clone()))>
                            <img src=image.thumbnail.clone() alt=image.path.clone() loading="lazy" width="96" height="96" />
                        </button></li>
                    }
                }).collect_view()}
            </ul>
            <Show when=move || images.with(Vec::len) < total.get()>
                <button id="more" on:click=move |_| load(images.with_untracked(Vec::len))>{move || format!("Show more ({} of {})", images.with(Vec::len), total.get())}</button>
            </Show>
        </section>
    }
}
