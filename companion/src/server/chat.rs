//! `POST /v1/chat/completions` and `GET /v1/models`: the companion's Qwen2.5-VL generation behind
//! the OpenAI-compatible chat API, so captioning, filtering and judging can run on this machine.
//! Images come as base64 `data:` URLs or as `library:ID` (an image of the indexed library); the
//! companion never fetches a URL. One answer is generated at a time; a client that hangs up
//! stops its answer.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use axum::extract::rejection::JsonRejection;
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use relsim_shared::image::preprocess::ImageBackend;

use super::api::{decode_upload, ApiState};
use super::error::Failure;
use crate::backend::BackendKind;
use crate::openai::{AnswerMessage, ChatRequest, ChatResponse, Choice, Content, Part, Usage};
use crate::qwen::chat::{self, ChatMessage, Role};
use crate::qwen::generate::{ChatModel, Finish, GenerateOptions, GeneratorFiles, Sampling};

/// Answers when a request names no limit.
pub const DEFAULT_MAX_TOKENS: usize = 512;
/// The most tokens one answer may ask for.
pub const MAX_TOKENS: usize = 4096;
/// The most images one request may carry.
pub const MAX_IMAGES: usize = 16;

/// The chat model `relsim serve` loads.
#[derive(Debug, Clone)]
pub struct ChatConfig {
    pub files: GeneratorFiles,
    pub image_backend: ImageBackend,
    pub backend: BackendKind,
    /// The name `/v1/models` lists and answers carry.
    pub name: String,
}

/// The loaded chat model, one answer at a time.
pub struct ChatService {
    pub name: String,
    model: Mutex<Box<dyn ChatModel>>,
}

impl ChatService {
    /// Loads the model (seconds to minutes for a 7B).
    pub fn load(config: &ChatConfig) -> anyhow::Result<ChatService> {
        let model = crate::qwen::generate::load_chat_model(&config.files, config.image_backend, config.backend)?;
        tracing::info!("chat model `{}` loaded from {}", config.name, config.files.base.display());
        Ok(ChatService { name: config.name.clone(), model: Mutex::new(model) })
    }
}

/// Raises its flag when dropped: axum drops a handler's future when the client hangs up.
struct HangUp(Arc<AtomicBool>);

impl Drop for HangUp {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

fn chat_service(state: &ApiState) -> Result<Arc<ChatService>, Failure> {
    state.chat.clone().ok_or_else(|| Failure::not_found("this companion runs no chat model: start it with `relsim serve --chat-base DIR` (a Qwen2.5-VL folder)"))
}

/// The models this companion answers with (OpenAI's list shape).
pub async fn models(State(state): State<ApiState>) -> Json<serde_json::Value> {
    let data: Vec<serde_json::Value> = state.chat.iter().map(|c| serde_json::json!({ "id": c.name, "object": "model", "created": 0, "owned_by": "relsim" })).collect();
    Json(serde_json::json!({ "object": "list", "data": data }))
}

/// What a request asks for, checked.
struct Asked {
    options: GenerateOptions,
    stops: Vec<String>,
}

fn checked_options(request: &ChatRequest) -> Result<Asked, Failure> {
    if request.stream == Some(true) {
        return Err(Failure::bad_request("streaming answers are not supported: leave `stream` out or false"));
    }
    if request.n.is_some_and(|n| n != 1) {
        return Err(Failure::bad_request("only one answer per request (`n`: 1)"));
    }
    let max_new_tokens = request.max_completion_tokens.or(request.max_tokens).unwrap_or(DEFAULT_MAX_TOKENS);
    if max_new_tokens == 0 || max_new_tokens > MAX_TOKENS {
        return Err(Failure::bad_request(format!("max_tokens must be between 1 and {MAX_TOKENS}")));
    }
    let temperature = request.temperature.unwrap_or(1.0);
    if !(0.0..=2.0).contains(&temperature) {
        return Err(Failure::bad_request("temperature must be between 0 and 2"));
    }
    let top_p = request.top_p.unwrap_or(1.0);
    if !(top_p > 0.0 && top_p <= 1.0) {
        return Err(Failure::bad_request("top_p must be above 0 and at most 1"));
    }
    let sampling = if temperature == 0.0 { Sampling::Greedy } else { Sampling::Sample { temperature, top_p, seed: request.seed.unwrap_or_else(rand::random) } };
    let stops = request.stop.as_ref().map(|s| s.strings()).unwrap_or_default();
    if stops.len() > 4 {
        return Err(Failure::bad_request("at most 4 stop strings"));
    }
    Ok(Asked { options: GenerateOptions { max_new_tokens, sampling, stop_tokens: None, repetition_penalty: 1.0 }, stops })
}

/// An image part's pixels: a `data:` URL's bytes or a library image's file, within the
/// upload's pixel limit.
fn image_of(state: &ApiState, url: &str) -> Result<image::RgbImage, Failure> {
    if let Some(id) = url.strip_prefix("library:") {
        let catalog = state.library.catalog();
        let row = catalog.row(id).ok_or_else(|| Failure::not_found(format!("no library image has id `{id}`")))?;
        let file = catalog.items[row].paths.first().cloned().ok_or_else(|| Failure::not_found(format!("library image `{id}` has no file")))?;
        let bytes = std::fs::read(&file).map_err(|e| Failure::not_found(format!("{}: {e}", file.display())))?;
        return decode_upload(&bytes);
    }
    if url.starts_with("data:") {
        let bytes = crate::openai::data_url_bytes(url).map_err(|e| Failure::bad_request(format!("an image_url: {e}")))?;
        return decode_upload(&bytes);
    }
    let shown: String = url.chars().take(40).collect();
    Err(Failure::bad_request(format!("image_url `{shown}`: send the image as a base64 data: URL or name a library image as library:ID (the companion fetches no URL)")))
}

/// The request's messages as the model's chat, images decoded.
fn chat_messages(state: &ApiState, request: &ChatRequest) -> Result<Vec<ChatMessage>, Failure> {
    if request.messages.is_empty() {
        return Err(Failure::bad_request("`messages` is empty"));
    }
    let mut images = 0;
    let mut out = Vec::new();
    for (i, message) in request.messages.iter().enumerate() {
        let role = Role::parse(&message.role).map_err(|e| Failure::bad_request(format!("message {i}: {e}")))?;
        let content = match &message.content {
            Content::Text(text) => vec![chat::Content::Text(text.clone())],
            Content::Parts(parts) => parts
                .iter()
                .map(|part| match part {
                    Part::Text { text } => Ok(chat::Content::Text(text.clone())),
                    Part::ImageUrl { image_url } => {
                        images += 1;
                        if images > MAX_IMAGES {
                            return Err(Failure::bad_request(format!("at most {MAX_IMAGES} images per request")));
                        }
                        image_of(state, &image_url.url).map(chat::Content::Image)
                    }
                })
                .collect::<Result<_, _>>()?,
        };
        out.push(ChatMessage { role, content });
    }
    Ok(out)
}

/// Answers a chat (OpenAI's `chat.completion` shape).
pub async fn completions(State(state): State<ApiState>, body: Result<Json<ChatRequest>, JsonRejection>) -> Result<Json<ChatResponse>, Failure> {
    let Json(request) = body?;
    let service = chat_service(&state)?;
    let asked = checked_options(&request)?;
    let hung_up = Arc::new(AtomicBool::new(false));
    let _guard = HangUp(hung_up.clone());
    let response = tokio::task::spawn_blocking(move || {
        let messages = chat_messages(&state, &request)?;
        let model = service.model.lock().map_err(|_| Failure::internal(anyhow::anyhow!("the chat model failed on an earlier request")))?;
        let mut stopped_by_text = false;
        let generation = model
            .answer(&messages, &asked.options, &mut |tokens| {
                if hung_up.load(Ordering::SeqCst) {
                    return false;
                }
                if !asked.stops.is_empty() {
                    let text = model.text(tokens);
                    stopped_by_text = asked.stops.iter().any(|s| text.contains(s.as_str()));
                }
                !stopped_by_text
            })
            .map_err(|e| Failure::new(StatusCode::UNPROCESSABLE_ENTITY, format!("{e:#}")))?;
        let mut text = generation.text.clone();
        if let Some(cut) = asked.stops.iter().filter_map(|s| text.find(s.as_str())).min() {
            text.truncate(cut);
        }
        let finish_reason = match generation.finish {
            Finish::Length => "length",
            Finish::Stop | Finish::Cancelled => "stop",
        };
        let created = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
        let completion_tokens = generation.tokens.len();
        Ok::<_, Failure>(ChatResponse {
            id: format!("chatcmpl-{}", super::guard::new_token()),
            object: "chat.completion".into(),
            created,
            model: service.name.clone(),
            choices: vec![Choice { index: 0, message: AnswerMessage { role: "assistant".into(), content: Some(text) }, finish_reason: finish_reason.into() }],
            usage: Usage { prompt_tokens: generation.prompt_tokens, completion_tokens, total_tokens: generation.prompt_tokens + completion_tokens },
        })
    })
    .await
    .map_err(|e| Failure::internal(anyhow::anyhow!("a worker failed: {e}")))??;
    Ok(Json(response))
}
