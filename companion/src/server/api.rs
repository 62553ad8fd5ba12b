//! The JSON API: the library, search by image, id, text or vector, the caption bank, and
//! indexing progress as server-sent events. Each handler documents itself for OpenAPI.

use std::convert::Infallible;
use std::sync::{Arc, Mutex, RwLock};

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, JsonRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::Json;
use image::RgbImage;
use relsim_shared::protocol::{
    CaptionBank as CaptionBankBody, ComposePart, ExplainRequest, ExplainResponse, IndexProgress, LibraryFilter, LibraryFolder, LibraryImage, LibraryPage, MapPoint, ModelManifest, NewCaption, SearchHit,
    SearchQuery, SearchRequest, SearchResponse, DEFAULT_WEIGHT, MAX_COMPOSE_PARTS, MAX_QUERY_PIXELS,
};
use serde::Deserialize;
use tokio_stream::wrappers::WatchStream;
use relsim_shared::vectors::{balanced_sum, weighted_sum};
use tokio_stream::StreamExt;

use super::error::Failure;
use crate::calibration::{Calibration, QueryKind};
use crate::encoders::ImageEncoder;
use crate::explain::CaptionBank;
use crate::library::catalog::{Catalog, Query as CatalogQuery};
use crate::library::filter::Filter;
use crate::library::service::{LibraryService, SharedEncoder};

/// Uploads larger than this are refused with 413.
pub const MAX_UPLOAD_BYTES: usize = 32 << 20;
/// Most results per page.
pub const MAX_K: usize = 500;
/// Results per page when the request does not say.
pub const DEFAULT_K: usize = 20;
/// Captions explaining each result.
const WHY: usize = 3;
/// Longest text query, in characters.
const MAX_TEXT_CHARS: usize = 1000;
/// Uploaded query images remembered for searching again.
const REMEMBERED_UPLOADS: usize = 32;

type TextModel = Box<dyn crate::encoders::SentenceEncoder>;

/// What the handlers share.
#[derive(Clone)]
pub struct ApiState {
    pub library: Arc<LibraryService>,
    pub encoder: SharedEncoder,
    pub text: Arc<TextEncoder>,
    pub captions: Arc<RwLock<CaptionBank>>,
    pub minilm: Arc<ModelManifest>,
    pub uploads: Arc<Uploads>,
    /// The browser's student encoder, when one fits the library's model.
    pub student: Option<Arc<ModelManifest>>,
    /// The library's relational model (see [`crate::encoders::model_id`]).
    pub model_id: String,
    /// The model's "no good match" cut-offs, when `relsim eval` stored them with it.
    pub calibration: Option<Calibration>,
    /// The A/B study being run, if any.
    pub study: Option<Arc<super::study::StudyRun>>,
    /// The chat model of `/v1/chat/completions`, if one was loaded.
    pub chat: Option<Arc<super::chat::ChatService>>,
}

/// The embeddings of the last few uploaded query images, by content hash: changing the weight,
/// the page or asking for the map then costs no upload and no encoder run.
#[derive(Default)]
pub struct Uploads(Mutex<std::collections::VecDeque<(String, Vectors)>>);

/// An image's relational and attribute embeddings.
#[derive(Clone)]
pub struct Vectors {
    pub relational: Vec<f32>,
    pub attribute: Vec<f32>,
}

impl Uploads {
    /// The vectors of upload `id`, when still remembered.
    pub fn get(&self, id: &str) -> Option<Vectors> {
        let uploads = self.0.lock().ok()?;
        uploads.iter().find(|(k, _)| k == id).map(|(_, v)| v.clone())
    }

    /// Remembers an upload, forgetting the oldest past [`REMEMBERED_UPLOADS`].
    pub fn put(&self, id: String, vectors: Vectors) {
        if let Ok(mut uploads) = self.0.lock() {
            uploads.retain(|(k, _)| *k != id);
            uploads.push_back((id, vectors));
            while uploads.len() > REMEMBERED_UPLOADS {
                uploads.pop_front();
            }
        }
    }
}

type ApiResult<T> = Result<Json<T>, Failure>;

/// Runs blocking work (model inference, scoring) off the async threads.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T, Failure> + Send + 'static) -> Result<T, Failure> {
    tokio::task::spawn_blocking(f).await.map_err(|e| Failure::internal(anyhow::anyhow!("a worker failed: {e}")))?
}

fn image_info(catalog: &Catalog, row: usize) -> LibraryImage {
    let item = &catalog.items[row];
    LibraryImage {
        id: item.id.clone(),
        path: item.paths.first().map(|p| p.display().to_string()).unwrap_or_default(),
        width: item.width,
        height: item.height,
        thumbnail: format!("/api/images/{}/thumbnail", item.id),
        date: item.date.map(|d| d.text()),
        date_source: item.date.map(|d| d.source),
    }
}

/// Paging and filters of the library listing.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct LibraryParams {
    /// Items to skip.
    #[serde(default)]
    pub offset: usize,
    /// Items per page (at most 500; default 100).
    pub limit: Option<usize>,
    /// Only images in this library folder or below it.
    pub folder: Option<String>,
    /// Only images taken on or after this day (`YYYY-MM-DD`).
    pub from: Option<String>,
    /// Only images taken on or before this day (`YYYY-MM-DD`).
    pub to: Option<String>,
}

/// `filter` checked against the library's folders (400 naming the bad part).
fn checked_filter(state: &ApiState, filter: &LibraryFilter) -> Result<Filter, Failure> {
    Filter::parse(filter, &state.library.roots).map_err(Failure::bad_request)
}

/// The library: folders, indexing progress and a page of its images (those the filter keeps).
#[utoipa::path(get, path = "/api/library", params(LibraryParams), responses((status = 200, body = LibraryPage), (status = 400, body = relsim_shared::protocol::ApiError)))]
pub async fn library(State(state): State<ApiState>, params: Result<Query<LibraryParams>, QueryRejection>) -> ApiResult<LibraryPage> {
    let Query(params) = params?;
    let limit = params.limit.unwrap_or(100);
    if limit > MAX_K {
        return Err(Failure::bad_request(format!("limit is at most {MAX_K}")));
    }
    let filter = checked_filter(&state, &LibraryFilter { folder: params.folder, from: params.from, to: params.to })?;
    let catalog = state.library.catalog();
    let left_out = catalog.left_out(&filter, &[]);
    let kept: Vec<usize> = (0..catalog.items.len()).filter(|&row| !left_out[row]).collect();
    let images = kept.iter().skip(params.offset).take(limit).map(|&row| image_info(&catalog, row)).collect();
    let subfolders = catalog.folders(&state.library.roots).iter().map(|(p, images)| LibraryFolder { path: p.display().to_string(), images: *images }).collect();
    Ok(Json(LibraryPage {
        total: kept.len(),
        unfiltered: catalog.items.len(),
        offset: params.offset,
        images,
        folders: state.library.roots.iter().map(|p| p.display().to_string()).collect(),
        subfolders,
        progress: state.library.progress(),
    }))
}

/// Starts (re-)indexing the library folders; 202 when started, 409 when a run is going on.
#[utoipa::path(post, path = "/api/library/index", responses((status = 202, body = IndexProgress), (status = 409, body = relsim_shared::protocol::ApiError)))]
pub async fn start_index(State(state): State<ApiState>) -> Result<(StatusCode, Json<IndexProgress>), Failure> {
    if state.library.start_indexing() {
        Ok((StatusCode::ACCEPTED, Json(state.library.progress())))
    } else {
        Err(Failure::new(StatusCode::CONFLICT, "indexing is already running"))
    }
}

/// Asks a running index to stop after its current batch.
#[utoipa::path(post, path = "/api/library/cancel", responses((status = 200, body = IndexProgress)))]
pub async fn cancel_index(State(state): State<ApiState>) -> Json<IndexProgress> {
    state.library.cancel();
    Json(state.library.progress())
}

/// Indexing progress as server-sent events (`progress`, JSON `IndexProgress`), starting with the current state.
#[utoipa::path(get, path = "/api/library/events", responses((status = 200, description = "text/event-stream of IndexProgress", content_type = "text/event-stream")))]
pub async fn index_events(State(state): State<ApiState>) -> Sse<impl tokio_stream::Stream<Item = Result<Event, Infallible>>> {
    let stream = WatchStream::new(state.library.subscribe())
        .map(|p| Ok(Event::default().event("progress").json_data(&p).unwrap_or_else(|_| Event::default().event("progress").data("{}"))));
    Sse::new(stream).keep_alive(KeepAlive::default())
}

/// A library image's thumbnail (JPEG, longest side 256 px).
#[utoipa::path(get, path = "/api/images/{id}/thumbnail", params(("id" = String, Path, description = "image id")), responses((status = 200, content_type = "image/jpeg"), (status = 404, body = relsim_shared::protocol::ApiError)))]
pub async fn thumbnail(State(state): State<ApiState>, Path(id): Path<String>) -> Result<Response, Failure> {
    let catalog = state.library.catalog();
    let row = catalog.row(&id).ok_or_else(|| Failure::not_found(format!("no library image has id `{id}`")))?;
    let item = catalog.items[row].clone();
    let dir = state.library.thumbnails.clone();
    let bytes = blocking(move || {
        let path = dir.join(format!("{}.jpg", item.id));
        if let Ok(bytes) = std::fs::read(&path) {
            return Ok(bytes);
        }
        // Made again when the cache lost it.
        let file = item.paths.first().ok_or_else(|| Failure::not_found("the image has no file"))?;
        let bytes = std::fs::read(file).map_err(|e| Failure::not_found(format!("{}: {e}", file.display())))?;
        let image = relsim_shared::image::preprocess::decode_rgb(&bytes, &file.display().to_string()).map_err(|e| Failure::internal(e.into()))?;
        let path = crate::library::write_thumbnail(&dir, &item.id, &image).map_err(Failure::internal)?;
        std::fs::read(path).map_err(|e| Failure::internal(e.into()))
    })
    .await?;
    Ok(([(header::CONTENT_TYPE, "image/jpeg"), (header::CACHE_CONTROL, "private, max-age=86400")], bytes).into_response())
}

/// A library image's file, as stored.
#[utoipa::path(get, path = "/api/images/{id}/file", params(("id" = String, Path, description = "image id")), responses((status = 200, description = "the original file"), (status = 404, body = relsim_shared::protocol::ApiError)))]
pub async fn original(State(state): State<ApiState>, Path(id): Path<String>) -> Result<Response, Failure> {
    let catalog = state.library.catalog();
    let row = catalog.row(&id).ok_or_else(|| Failure::not_found(format!("no library image has id `{id}`")))?;
    let file = catalog.items[row].paths.first().cloned().ok_or_else(|| Failure::not_found("the image has no file"))?;
    let bytes = tokio::fs::read(&file).await.map_err(|e| Failure::not_found(format!("{}: {e}", file.display())))?;
    let kind = image::guess_format(&bytes).map(|f| f.to_mime_type()).unwrap_or("application/octet-stream");
    Ok(([(header::CONTENT_TYPE, kind)], bytes).into_response())
}

/// Checked paging and weight of a search.
struct Page {
    k: usize,
    offset: usize,
    weight: f32,
    map: bool,
    filter: Filter,
}

fn page(k: Option<usize>, offset: Option<usize>, weight: Option<f32>, map: bool, filter: Filter) -> Result<Page, Failure> {
    let k = k.unwrap_or(DEFAULT_K);
    if k == 0 || k > MAX_K {
        return Err(Failure::bad_request(format!("k must be between 1 and {MAX_K}")));
    }
    let weight = weight.unwrap_or(DEFAULT_WEIGHT);
    if !(0.0..=1.0).contains(&weight) {
        return Err(Failure::bad_request("weight must be between 0 and 1"));
    }
    Ok(Page { k, offset: offset.unwrap_or(0), weight, map, filter })
}

/// Scores the library against a query vector and explains each hit.
fn respond(state: &ApiState, catalog: &Catalog, relational: &[f32], attribute: Option<&[f32]>, exclude: &[usize], kind: QueryKind, page: &Page) -> Result<SearchResponse, Failure> {
    if !catalog.items.is_empty() && relational.len() != catalog.relational_dim {
        return Err(Failure::bad_request(format!("the query vector has {} values, the library's have {}", relational.len(), catalog.relational_dim)));
    }
    // The filter's left-outs go with the query's own rows: ranked, mapped and counted by neither.
    let left_out = catalog.left_out(&page.filter, exclude);
    let scored = catalog.score_all(&CatalogQuery { relational, attribute, exclude }, page.weight);
    let (hits, total) = catalog.rank(&scored, &left_out, page.offset, page.k);
    let map = page.map.then(|| {
        scored
            .iter()
            .filter(|s| !left_out[s.row])
            .map(|s| MapPoint { id: catalog.items[s.row].id.clone(), relational: s.relational, attribute: s.attribute })
            .collect()
    });
    let captions = state.captions.read().map_err(|_| Failure::internal(anyhow::anyhow!("the caption bank failed earlier")))?;
    let threshold = state.calibration.as_ref().map(|c| c.threshold(kind));
    let results = hits
        .into_iter()
        .map(|h| SearchHit {
            image: image_info(catalog, h.row),
            relational: h.relational,
            attribute: h.attribute,
            combined: h.combined,
            why: captions.why(relational, catalog.relational(h.row), WHY),
            weak: threshold.is_some_and(|t| h.relational < t),
        })
        .collect();
    Ok(SearchResponse { total, offset: page.offset, k: page.k, weight: page.weight, results, upload: None, map, threshold })
}

/// The server's MiniLM, one sentence batch at a time, with the last few thousand texts
/// remembered (people search the same ideas again; the model is the slowest part of a text search).
pub struct TextEncoder {
    model: Mutex<TextModel>,
    cache: Mutex<std::collections::HashMap<String, Vec<f32>>>,
}

/// Texts the cache holds before it starts afresh.
const TEXT_CACHE: usize = 4096;

impl TextEncoder {
    pub fn new(model: TextModel) -> Self {
        TextEncoder { model: Mutex::new(model), cache: Mutex::new(Default::default()) }
    }

    /// Embeds `texts` (in batches of 32).
    pub fn embed_many(&self, texts: &[String]) -> anyhow::Result<Vec<Vec<f32>>> {
        let model = self.model.lock().map_err(|_| anyhow::anyhow!("the text encoder failed earlier"))?;
        let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
        let mut out = Vec::with_capacity(texts.len());
        for chunk in refs.chunks(32) {
            out.extend(model.embed(chunk)?);
        }
        Ok(out)
    }

    /// Embeds one text, from the cache when it was embedded before.
    pub fn embed(&self, text: &str) -> anyhow::Result<Vec<f32>> {
        if let Some(v) = self.cache.lock().ok().and_then(|c| c.get(text).cloned()) {
            return Ok(v);
        }
        let v = self.embed_many(&[text.to_string()])?.remove(0);
        if let Ok(mut cache) = self.cache.lock() {
            if cache.len() >= TEXT_CACHE {
                cache.clear();
            }
            cache.insert(text.to_string(), v.clone());
        }
        Ok(v)
    }
}

/// Search by a library image, a caption (embedded here) or a caption vector (embedded in the browser).
#[utoipa::path(post, path = "/api/search", request_body = SearchRequest, responses((status = 200, body = SearchResponse), (status = 400, body = relsim_shared::protocol::ApiError), (status = 404, body = relsim_shared::protocol::ApiError), (status = 415, body = relsim_shared::protocol::ApiError), (status = 422, body = relsim_shared::protocol::ApiError)))]
pub async fn search(State(state): State<ApiState>, request: Result<Json<SearchRequest>, JsonRejection>) -> ApiResult<SearchResponse> {
    let Json(request) = request?;
    let page = page(request.k, request.offset, request.weight, request.map, checked_filter(&state, &request.filter)?)?;
    let catalog = state.library.catalog();
    let response = blocking(move || {
        let query = resolve(&state, &catalog, request.query)?;
        let mut response = respond(&state, &catalog, &query.relational, query.attribute.as_deref(), &query.exclude, query.kind, &page)?;
        response.upload = query.upload;
        Ok(response)
    })
    .await?;
    Ok(Json(response))
}

/// A query turned into vectors.
struct Resolved {
    relational: Vec<f32>,
    /// The look to compare with: image queries have one.
    attribute: Option<Vec<f32>>,
    /// Library rows that asked (left out of the results).
    exclude: Vec<usize>,
    /// The upload searched with, to search with again.
    upload: Option<String>,
    /// Which cut-off its scores are judged by.
    kind: QueryKind,
}

/// The vectors of `query`: a library image's, an upload's, a caption's (embedded here), a
/// caption vector's, or those of several parts combined.
fn resolve(state: &ApiState, catalog: &Catalog, query: SearchQuery) -> Result<Resolved, Failure> {
    Ok(match query {
        SearchQuery::Id { id } => {
            let row = catalog.row(&id).ok_or_else(|| Failure::not_found(format!("no library image has id `{id}`")))?;
            Resolved { relational: catalog.relational(row).to_vec(), attribute: Some(catalog.attribute(row).to_vec()), exclude: vec![row], upload: None, kind: QueryKind::Image }
        }
        SearchQuery::Text { text } => {
            let text = text.trim().to_string();
            if text.is_empty() || text.chars().count() > MAX_TEXT_CHARS {
                return Err(Failure::bad_request(format!("text must have 1 to {MAX_TEXT_CHARS} characters")));
            }
            let vector = state.text.embed(&text).map_err(Failure::internal)?;
            Resolved { relational: vector, attribute: None, exclude: Vec::new(), upload: None, kind: QueryKind::Text }
        }
        SearchQuery::Vector { mut vector } => {
            if vector.iter().any(|x| !x.is_finite()) || vector.iter().all(|x| *x == 0.0) {
                return Err(Failure::bad_request("the vector must be finite and not all zeros"));
            }
            relsim_shared::vectors::l2_normalize(&mut vector);
            Resolved { relational: vector, attribute: None, exclude: Vec::new(), upload: None, kind: QueryKind::Text }
        }
        SearchQuery::Upload { id } => {
            let vectors = state.uploads.get(&id).ok_or_else(|| Failure::not_found(format!("upload `{id}` is no longer remembered: send the image again")))?;
            Resolved { relational: vectors.relational, attribute: Some(vectors.attribute), exclude: Vec::new(), upload: Some(id), kind: QueryKind::Image }
        }
        SearchQuery::Compose { parts } => compose(state, catalog, parts)?,
    })
}

/// Several queries as one: relational vectors summed by weight and renormalised, the look of the
/// image parts with positive weight.
fn compose(state: &ApiState, catalog: &Catalog, parts: Vec<ComposePart>) -> Result<Resolved, Failure> {
    if parts.is_empty() {
        return Err(Failure::bad_request("a compose query needs at least one part"));
    }
    if parts.len() > MAX_COMPOSE_PARTS {
        return Err(Failure::bad_request(format!("a compose query has at most {MAX_COMPOSE_PARTS} parts, this one has {}", parts.len())));
    }
    let mut ideas: Vec<(Vec<f32>, f32)> = Vec::new();
    let mut looks: Vec<(Vec<f32>, f32)> = Vec::new();
    let mut exclude = Vec::new();
    for (i, part) in parts.into_iter().enumerate() {
        let in_part = |f: Failure| Failure::new(f.status, format!("part {}: {}", i + 1, f.message));
        if !part.weight.is_finite() {
            return Err(in_part(Failure::bad_request("the weight must be a finite number")));
        }
        if matches!(part.query, SearchQuery::Compose { .. }) {
            return Err(in_part(Failure::bad_request("a part cannot itself be a compose query")));
        }
        let resolved = resolve(state, catalog, part.query).map_err(in_part)?;
        if let Some((first, _)) = ideas.first() {
            if resolved.relational.len() != first.len() {
                return Err(in_part(Failure::bad_request(format!("its vector has {} values, the first part's {}", resolved.relational.len(), first.len()))));
            }
        }
        ideas.push((resolved.relational, part.weight));
        // Only an image asked for (positive weight) has a look to match.
        if let (Some(look), true) = (resolved.attribute, part.weight > 0.0) {
            looks.push((look, part.weight));
        }
        exclude.extend(resolved.exclude);
    }
    // Each idea weighs per unit of its scores' spread over the library, so that an added caption
    // moves the ranking as much as the image it is added to.
    let rows: Vec<&[f32]> = (0..catalog.items.len()).map(|row| catalog.relational(row)).collect();
    let relational = balanced_sum(&as_slices(&ideas), &rows).ok_or_else(|| Failure::bad_request("the parts cancel out: their weighted sum is a zero vector"))?;
    let attribute = weighted_sum(&as_slices(&looks));
    // Judged as an image query when an image asks (its scores run as high as images'), else as
    // a caption query.
    let kind = if looks.is_empty() { QueryKind::Text } else { QueryKind::Image };
    Ok(Resolved { relational, attribute, exclude, upload: None, kind })
}

/// Borrowed views of owned (vector, weight) pairs.
fn as_slices(list: &[(Vec<f32>, f32)]) -> Vec<(&[f32], f32)> {
    list.iter().map(|(v, w)| (v.as_slice(), *w)).collect()
}

/// Paging and weight of an image search.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct ImageSearchParams {
    /// Results per page (1 to 500; default 20).
    pub k: Option<usize>,
    /// Results to skip.
    pub offset: Option<usize>,
    /// Relational share of the combined score, 0 to 1 (default 0.7).
    pub weight: Option<f32>,
    /// Also return the similarity map (every library image's scores).
    #[serde(default)]
    pub map: bool,
    /// Only images in this library folder or below it.
    pub folder: Option<String>,
    /// Only images taken on or after this day (`YYYY-MM-DD`).
    pub from: Option<String>,
    /// Only images taken on or before this day (`YYYY-MM-DD`).
    pub to: Option<String>,
}

/// Decodes an upload within the pixel limit.
pub fn decode_upload(bytes: &[u8]) -> Result<RgbImage, Failure> {
    relsim_shared::image::preprocess::decode_rgb_limited(bytes, "the upload", MAX_QUERY_PIXELS).map_err(|e| Failure::new(StatusCode::UNPROCESSABLE_ENTITY, e.to_string()))
}

/// Search by an uploaded image (the request body: the image file, any common format).
#[utoipa::path(post, path = "/api/search/image", params(ImageSearchParams), request_body(content = Vec<u8>, content_type = "image/*"), responses((status = 200, body = SearchResponse), (status = 400, body = relsim_shared::protocol::ApiError), (status = 413, body = relsim_shared::protocol::ApiError), (status = 415, body = relsim_shared::protocol::ApiError), (status = 422, body = relsim_shared::protocol::ApiError)))]
pub async fn search_image(
    State(state): State<ApiState>,
    params: Result<Query<ImageSearchParams>, QueryRejection>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<SearchResponse> {
    let Query(params) = params?;
    let kind = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    let essence = kind.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    if !(essence.starts_with("image/") || essence == "application/octet-stream") {
        return Err(Failure::new(StatusCode::UNSUPPORTED_MEDIA_TYPE, format!("send the image file as the body with an image/* content type, not `{kind}`")));
    }
    let body = body?;
    if body.is_empty() {
        return Err(Failure::bad_request("the body is empty: send the image file"));
    }
    let filter = checked_filter(&state, &LibraryFilter { folder: params.folder.clone(), from: params.from.clone(), to: params.to.clone() })?;
    let page = page(params.k, params.offset, params.weight, params.map, filter)?;
    let catalog = state.library.catalog();
    let response = blocking(move || {
        let id = crate::files::content_hash(&body);
        let vectors = match state.uploads.get(&id) {
            Some(v) => v,
            None => {
                let image = decode_upload(&body)?;
                let attribute = crate::library::attribute_vector(&image);
                let relational = state.encoder.embed_batch(std::slice::from_ref(&image)).map_err(Failure::internal)?.remove(0);
                let vectors = Vectors { relational, attribute };
                state.uploads.put(id.clone(), vectors.clone());
                vectors
            }
        };
        let mut response = respond(&state, &catalog, &vectors.relational, Some(&vectors.attribute), &[], QueryKind::Image, &page)?;
        response.upload = Some(id);
        Ok(response)
    })
    .await?;
    Ok(Json(response))
}

/// The relational vector of a library image or a remembered upload.
fn relational_of(state: &ApiState, catalog: &Catalog, id: &str) -> Result<Vec<f32>, Failure> {
    if let Some(row) = catalog.row(id) {
        return Ok(catalog.relational(row).to_vec());
    }
    state.uploads.get(id).map(|v| v.relational).ok_or_else(|| Failure::not_found(format!("no library image or remembered upload has id `{id}`")))
}

/// What two images have in common: the captions of the bank that fit both (classroom pairs).
#[utoipa::path(post, path = "/api/explain", request_body = ExplainRequest, responses((status = 200, body = ExplainResponse), (status = 400, body = relsim_shared::protocol::ApiError), (status = 404, body = relsim_shared::protocol::ApiError)))]
pub async fn explain(State(state): State<ApiState>, request: Result<Json<ExplainRequest>, JsonRejection>) -> ApiResult<ExplainResponse> {
    let Json(request) = request?;
    let catalog = state.library.catalog();
    let (a, b) = (relational_of(&state, &catalog, &request.a)?, relational_of(&state, &catalog, &request.b)?);
    let captions = state.captions.read().map_err(|_| Failure::internal(anyhow::anyhow!("the caption bank failed earlier")))?;
    Ok(Json(ExplainResponse { relational: relsim_shared::vectors::dot(&a, &b), why: captions.why(&a, &b, WHY) }))
}

fn bank_body(bank: &CaptionBank) -> CaptionBankBody {
    CaptionBankBody { captions: bank.texts().to_vec(), user: bank.user().to_vec() }
}

/// The caption bank ("why" captions and idea suggestions).
#[utoipa::path(get, path = "/api/captions", responses((status = 200, body = CaptionBankBody)))]
pub async fn captions(State(state): State<ApiState>) -> ApiResult<CaptionBankBody> {
    let bank = state.captions.read().map_err(|_| Failure::internal(anyhow::anyhow!("the caption bank failed earlier")))?;
    Ok(Json(bank_body(&bank)))
}

/// Adds a caption of the user's to the bank (201; 200 when it was there already).
#[utoipa::path(post, path = "/api/captions", request_body = NewCaption, responses((status = 201, body = CaptionBankBody), (status = 200, body = CaptionBankBody), (status = 400, body = relsim_shared::protocol::ApiError), (status = 422, body = relsim_shared::protocol::ApiError)))]
pub async fn add_caption(State(state): State<ApiState>, request: Result<Json<NewCaption>, JsonRejection>) -> Result<(StatusCode, Json<CaptionBankBody>), Failure> {
    let Json(request) = request?;
    blocking(move || {
        let caption = request.caption.trim().to_string();
        if caption.is_empty() || caption.chars().count() > crate::explain::MAX_CAPTION_CHARS {
            return Err(Failure::bad_request(format!("a caption has 1 to {} characters", crate::explain::MAX_CAPTION_CHARS)));
        }
        let vector = state.text.embed(&caption).map_err(Failure::internal)?;
        let mut bank = state.captions.write().map_err(|_| Failure::internal(anyhow::anyhow!("the caption bank failed earlier")))?;
        let added = bank.add(&caption, vector).map_err(|e| Failure::bad_request(format!("{e:#}")))?;
        Ok((if added { StatusCode::CREATED } else { StatusCode::OK }, Json(bank_body(&bank))))
    })
    .await
}

/// What to suggest captions for.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct SuggestParams {
    /// What the user has typed.
    pub q: String,
}

/// Captions of the bank containing every typed word, shortest first (at most 8).
#[utoipa::path(get, path = "/api/captions/suggest", params(SuggestParams), responses((status = 200, body = Vec<String>), (status = 400, body = relsim_shared::protocol::ApiError)))]
pub async fn suggest(State(state): State<ApiState>, params: Result<Query<SuggestParams>, QueryRejection>) -> ApiResult<Vec<String>> {
    let Query(params) = params?;
    let bank = state.captions.read().map_err(|_| Failure::internal(anyhow::anyhow!("the caption bank failed earlier")))?;
    Ok(Json(bank.suggest(&params.q, 8)))
}

/// The MiniLM files the browser downloads (its text encoder).
#[utoipa::path(get, path = "/api/models/minilm", responses((status = 200, body = ModelManifest)))]
pub async fn minilm_manifest(State(state): State<ApiState>) -> Json<ModelManifest> {
    Json((*state.minilm).clone())
}

/// The student encoder the browser answers image queries with (404 when none fits the library's model).
#[utoipa::path(get, path = "/api/models/student", responses((status = 200, body = ModelManifest), (status = 404, body = relsim_shared::protocol::ApiError)))]
pub async fn student_manifest(State(state): State<ApiState>) -> ApiResult<ModelManifest> {
    match &state.student {
        Some(manifest) => Ok(Json((**manifest).clone())),
        None => Err(Failure::not_found("no browser student fits this library's model: make one with `relsim distill` and pass --student")),
    }
}

/// Every library image's relational vector, for answering queries in the browser: a binary body
/// (little-endian u32 header length, JSON header with model id, dim and ids, then f32 rows).
#[utoipa::path(get, path = "/api/library/vectors", responses((status = 200, description = "the vectors", content_type = "application/octet-stream")))]
pub async fn library_vectors(State(state): State<ApiState>) -> Result<Response, Failure> {
    let catalog = state.library.catalog();
    let model_id = state.model_id.clone();
    let body = blocking(move || {
        let dim = catalog.relational_dim;
        let header = relsim_shared::protocol::VectorsHeader { model_id, dim, ids: catalog.items.iter().map(|i| i.id.clone()).collect() };
        let rows: Vec<f32> = (0..catalog.items.len()).flat_map(|r| catalog.relational(r).to_vec()).collect();
        Ok(relsim_shared::protocol::encode_vectors(&header, &rows))
    })
    .await?;
    Ok(([(header::CONTENT_TYPE, "application/octet-stream"), (header::CACHE_CONTROL, "no-store")], body).into_response())
}

/// Liveness, version, and whether an A/B study is being run (no token needed).
#[utoipa::path(get, path = "/api/health", responses((status = 200, description = "status, version, study (bool)")))]
pub async fn health(State(state): State<ApiState>) -> Json<serde_json::Value> {
    Json(serde_json::json!({ "status": "ok", "version": env!("CARGO_PKG_VERSION"), "study": state.study.is_some() }))
}

/// The OpenAPI description of this API, generated from the handlers above.
#[derive(utoipa::OpenApi)]
#[openapi(
    info(title = "relsim companion", description = "Relational image search over a local library. Every call but /api/health needs the session token (cookie `relsim_token`, header `X-Relsim-Token` or `Authorization: Bearer`)."),
    paths(health, library, start_index, cancel_index, index_events, thumbnail, original, search, search_image, explain, captions, add_caption, suggest, minilm_manifest, student_manifest, library_vectors, super::study::study, super::study::study_image, super::study::answer, openapi_json)
)]
pub struct ApiDoc;

/// This document.
#[utoipa::path(get, path = "/api/openapi.json", responses((status = 200, description = "OpenAPI 3.1 JSON")))]
pub async fn openapi_json() -> Json<utoipa::openapi::OpenApi> {
    Json(<ApiDoc as utoipa::OpenApi>::openapi())
}
