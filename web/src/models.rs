//! Downloading the model files (through the browser's Cache API) and holding the loaded encoders.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

use burn::backend::flex::{Flex, FlexDevice};
use burn::backend::wgpu::{graphics::WebGpu, init_setup_async, RuntimeOptions, WgpuDevice};
use burn::backend::Wgpu;
use js_sys::Uint8Array;
use relsim_shared::protocol::ModelManifest;
use relsim_shared::text::minilm::{self, MiniLm, MiniLmFiles};
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;
use web_sys::{Cache, Response};

/// Cache Storage bucket for model files; bump the suffix when the layout changes.
const CACHE_NAME: &str = "relsim-models-v1";

/// Which engine runs the encoder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    WebGpu,
    Cpu,
}

impl Engine {
    /// Label shown to the user.
    pub fn label(self) -> &'static str {
        match self {
            Engine::WebGpu => "WebGPU",
            Engine::Cpu => "CPU",
        }
    }
}

/// Where the model files came from this time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Network,
    Cache,
}

fn js_err(context: &str, e: JsValue) -> String {
    let detail = e.as_string().or_else(|| js_sys::JSON::stringify(&e).ok().and_then(|s| s.as_string()));
    format!("{context}: {}", detail.unwrap_or_else(|| "unknown error".into()))
}

async fn fetch(url: &str) -> Result<Response, String> {
    let window = web_sys::window().ok_or("no window")?;
    let response: Response =
        JsFuture::from(window.fetch_with_str(url)).await.map_err(|e| js_err(url, e))?.unchecked_into();
    if !response.ok() {
        return Err(format!("{url}: HTTP {}", response.status()));
    }
    Ok(response)
}

async fn bytes_of(response: Response, url: &str) -> Result<Vec<u8>, String> {
    let buffer = JsFuture::from(response.array_buffer().map_err(|e| js_err(url, e))?).await.map_err(|e| js_err(url, e))?;
    Ok(Uint8Array::new(&buffer).to_vec())
}

async fn open_cache() -> Option<Cache> {
    // The Cache API exists only in secure contexts (localhost is one); without it we just download.
    let caches = web_sys::window()?.caches().ok()?;
    JsFuture::from(caches.open(CACHE_NAME)).await.ok().map(JsCast::unchecked_into)
}

/// Fetches `url`, answering from the cache when it holds a copy of the expected size.
async fn cached_fetch(cache: Option<&Cache>, url: &str, expected_bytes: u64) -> Result<(Vec<u8>, Source), String> {
    if let Some(cache) = cache {
        if let Ok(hit) = JsFuture::from(cache.match_with_str(url)).await {
            if let Ok(response) = hit.dyn_into::<Response>() {
                let bytes = bytes_of(response, url).await?;
                if bytes.len() as u64 == expected_bytes {
                    return Ok((bytes, Source::Cache));
                }
            }
        }
    }
    let response = fetch(url).await?;
    if let Some(cache) = cache {
        if let Ok(copy) = response.clone() {
            // A full cache is not an error: the page still works, it just downloads next time.
            let _ = JsFuture::from(cache.put_with_str(url, &copy)).await;
        }
    }
    Ok((bytes_of(response, url).await?, Source::Network))
}

/// The raw files of the MiniLM folder.
pub struct ModelBytes {
    files: HashMap<String, Vec<u8>>,
    pub source: Source,
    pub total_bytes: u64,
}

impl ModelBytes {
    /// The file called `name`.
    pub fn get(&self, name: &str) -> Result<&[u8], String> {
        self.files.get(name).map(Vec::as_slice).ok_or_else(|| format!("the server did not list {name}"))
    }

    fn as_files(&self) -> Result<MiniLmFiles<'_>, String> {
        Ok(MiniLmFiles {
            config: self.get(minilm::CONFIG_FILE)?,
            tokenizer: self.get(minilm::TOKENIZER_FILE)?,
            weights: self.get(minilm::WEIGHTS_FILE)?,
            pooling: self.get(minilm::POOLING_FILE)?,
            sentence_config: self.files.get(minilm::SENTENCE_CONFIG_FILE).map(Vec::as_slice),
        })
    }
}

/// Downloads (or reads from the cache) every file the companion lists at `manifest_url`.
pub async fn download(manifest_url: &str, mut progress: impl FnMut(usize, usize)) -> Result<ModelBytes, String> {
    let manifest_text = JsFuture::from(fetch(manifest_url).await?.text().map_err(|e| js_err("manifest", e))?)
        .await
        .map_err(|e| js_err("manifest", e))?
        .as_string()
        .unwrap_or_default();
    let manifest: ModelManifest = serde_json::from_str(&manifest_text).map_err(|e| format!("{manifest_url}: {e}"))?;
    let cache = open_cache().await;
    let mut files = HashMap::new();
    let mut all_cached = true;
    for (i, file) in manifest.files.iter().enumerate() {
        progress(i, manifest.files.len());
        let (bytes, source) = cached_fetch(cache.as_ref(), &format!("{}{}", manifest.base_url, file.name), file.bytes).await?;
        all_cached &= source == Source::Cache;
        files.insert(file.name.clone(), bytes);
    }
    let total_bytes = manifest.files.iter().map(|f| f.bytes).sum();
    Ok(ModelBytes { files, source: if all_cached { Source::Cache } else { Source::Network }, total_bytes })
}

/// Downloads (or reads from the cache) the MiniLM files.
pub async fn download_minilm(progress: impl FnMut(usize, usize)) -> Result<ModelBytes, String> {
    download("/api/models/minilm", progress).await
}

/// Fetches `url` and keeps a copy in the cache; when the companion cannot be reached, answers
/// from that copy (the library's vectors, so queries work with the companion stopped).
pub async fn fetch_or_cached(url: &str) -> Result<(Vec<u8>, Source), String> {
    let cache = open_cache().await;
    match fetch(url).await {
        Ok(response) => {
            if let (Some(cache), Ok(copy)) = (cache.as_ref(), response.clone()) {
                let _ = JsFuture::from(cache.put_with_str(url, &copy)).await;
            }
            Ok((bytes_of(response, url).await?, Source::Network))
        }
        Err(e) => {
            let cache = cache.ok_or(e.clone())?;
            let hit = JsFuture::from(cache.match_with_str(url)).await.map_err(|_| e.clone())?;
            let response: Response = hit.dyn_into().map_err(|_| e)?;
            Ok((bytes_of(response, url).await?, Source::Cache))
        }
    }
}

/// The encoders built so far; each engine is built on first use.
#[derive(Default)]
struct Encoders {
    bytes: Option<Rc<ModelBytes>>,
    cpu: Option<Rc<MiniLm<Flex>>>,
    gpu: Option<Rc<MiniLm<Wgpu<f32>>>>,
    gpu_initialised: bool,
}

thread_local! {
    static ENCODERS: RefCell<Encoders> = RefCell::new(Encoders::default());
}

/// Keeps the downloaded files for building encoders.
pub fn set_model_bytes(bytes: ModelBytes) {
    ENCODERS.with_borrow_mut(|e| e.bytes = Some(Rc::new(bytes)));
}

fn model_bytes() -> Result<Rc<ModelBytes>, String> {
    ENCODERS.with_borrow(|e| e.bytes.clone()).ok_or_else(|| "the model is not downloaded yet".to_string())
}

/// The WebGPU device, set up on first use (MiniLM and the student share it).
pub async fn gpu_device() -> WgpuDevice {
    let device = WgpuDevice::default();
    if !ENCODERS.with_borrow(|e| e.gpu_initialised) {
        init_setup_async::<WebGpu>(&device, RuntimeOptions::default()).await;
        ENCODERS.with_borrow_mut(|e| e.gpu_initialised = true);
    }
    device
}

async fn gpu_encoder() -> Result<Rc<MiniLm<Wgpu<f32>>>, String> {
    if let Some(model) = ENCODERS.with_borrow(|e| e.gpu.clone()) {
        return Ok(model);
    }
    let device = gpu_device().await;
    let bytes = model_bytes()?;
    let model = Rc::new(MiniLm::from_files(bytes.as_files()?, &device).map_err(|e| e.to_string())?);
    ENCODERS.with_borrow_mut(|e| e.gpu = Some(model.clone()));
    Ok(model)
}

fn cpu_encoder() -> Result<Rc<MiniLm<Flex>>, String> {
    if let Some(model) = ENCODERS.with_borrow(|e| e.cpu.clone()) {
        return Ok(model);
    }
    let bytes = model_bytes()?;
    let model = Rc::new(MiniLm::from_files(bytes.as_files()?, &FlexDevice).map_err(|e| e.to_string())?);
    ENCODERS.with_borrow_mut(|e| e.cpu = Some(model.clone()));
    Ok(model)
}

/// Builds the encoder for `engine` now, so the first query does not pay for it.
pub async fn prepare(engine: Engine) -> Result<(), String> {
    match engine {
        Engine::WebGpu => gpu_encoder().await.map(drop),
        Engine::Cpu => cpu_encoder().map(drop),
    }
}

/// Embeds one sentence on `engine`.
pub async fn embed(engine: Engine, text: &str) -> Result<Vec<f32>, String> {
    let vectors = match engine {
        Engine::WebGpu => gpu_encoder().await?.embed_vecs_async(&[text]).await,
        Engine::Cpu => cpu_encoder()?.embed_vecs_async(&[text]).await,
    };
    vectors.map_err(|e| e.to_string())?.pop().ok_or_else(|| "no embedding came back".into())
}
