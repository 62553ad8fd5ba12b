//! Calls to the companion's JSON API (same origin: the session cookie goes along).

use gloo::net::http::{Request, Response};
use relsim_shared::protocol::{ApiError, ExplainRequest, ExplainResponse, LibraryFilter, LibraryPage, SearchQuery, SearchRequest, SearchResponse};
use serde::de::DeserializeOwned;

/// The companion's message for a failed call, or what went wrong on the way.
/// Said when the companion cannot be reached at all.
fn unreachable(url: &str, e: gloo::net::Error) -> String {
    format!("The companion cannot be reached ({url}: {e}): is `relsim serve` running? Image queries can still be answered in this browser.")
}

async fn read<T: DeserializeOwned>(url: &str, response: Result<Response, gloo::net::Error>) -> Result<T, String> {
    let response = response.map_err(|e| unreachable(url, e))?;
    if !response.ok() {
        let status = response.status();
        return Err(match response.json::<ApiError>().await {
            Ok(e) => e.error,
            Err(_) => format!("{url}: HTTP {status}"),
        });
    }
    response.json::<T>().await.map_err(|e| format!("{url}: {e}"))
}

/// GETs JSON.
pub async fn get<T: DeserializeOwned>(url: &str) -> Result<T, String> {
    read(url, Request::get(url).send().await).await
}

/// POSTs a JSON body, reads JSON back.
pub async fn post<B: serde::Serialize, T: DeserializeOwned>(url: &str, body: &B) -> Result<T, String> {
    let request = Request::post(url).json(body).map_err(|e| format!("{url}: {e}"))?;
    read(url, request.send().await).await
}

/// POSTs without a body (starting or cancelling indexing); the answer is not needed.
pub async fn post_empty(url: &str) -> Result<(), String> {
    let response = Request::post(url).send().await.map_err(|e| unreachable(url, e))?;
    if response.ok() || response.status() == 409 {
        Ok(())
    } else {
        Err(response.json::<ApiError>().await.map(|e| e.error).unwrap_or_else(|_| format!("{url}: HTTP {}", response.status())))
    }
}

/// A page of the library (the images `filter` keeps).
pub async fn library(offset: usize, limit: usize, filter: &LibraryFilter) -> Result<LibraryPage, String> {
    get(&format!("/api/library?offset={offset}&limit={limit}{}", filter.to_query_params())).await
}

/// Searches the library (the images `filter` keeps).
pub async fn search(query: SearchQuery, k: usize, weight: f32, map: bool, filter: LibraryFilter) -> Result<SearchResponse, String> {
    post("/api/search", &SearchRequest { query, k: Some(k), offset: None, weight: Some(weight), map, filter }).await
}

/// Searches with an image file the user dropped, pasted or picked.
pub async fn search_file(file: &web_sys::File, k: usize, weight: f32, filter: &LibraryFilter) -> Result<SearchResponse, String> {
    let url = format!("/api/search/image?k={k}&weight={weight}&map=true{}", filter.to_query_params());
    let kind = if file.type_().is_empty() { "application/octet-stream".to_string() } else { file.type_() };
    let request = Request::post(&url).header("Content-Type", &kind).body(file.clone()).map_err(|e| format!("{url}: {e}"))?;
    read(&url, request.send().await).await
}

/// What two images share.
pub async fn explain(a: &str, b: &str) -> Result<ExplainResponse, String> {
    post("/api/explain", &ExplainRequest { a: a.into(), b: b.into() }).await
}

/// Caption suggestions for what the user has typed.
pub async fn suggest(typed: &str) -> Result<Vec<String>, String> {
    let q = String::from(js_sys::encode_uri_component(typed));
    get(&format!("/api/captions/suggest?q={q}")).await
}

/// A library image's thumbnail URL.
pub fn thumbnail(id: &str) -> String {
    format!("/api/images/{id}/thumbnail")
}
