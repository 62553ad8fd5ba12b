//! Image queries answered in the browser: the distilled student (`relsim distill`) embeds the
//! query image here, on WebGPU or the CPU, and the library's index vectors, downloaded once and
//! kept in the browser cache, are searched here. Once loaded, the companion may stop.

use std::cell::RefCell;
use std::rc::Rc;

use burn::backend::flex::{Flex, FlexDevice};
use burn::backend::Wgpu;
use burn::tensor::backend::Backend;
use relsim_shared::image::lite::{pixel_batch, pixels, LiteConfig, RelsimLite};
use relsim_shared::protocol::{decode_vectors, LibraryImage, MapPoint, SearchHit, SearchResponse, TeacherInfo, MAX_QUERY_PIXELS};
use relsim_shared::vectors::{dot, top_k};
use relsim_shared::weights::TensorFile;

use crate::models::{self, Engine, ModelBytes, Source};


/// Whether image queries are answered in this browser; kept for the page's lifetime.
#[derive(Debug, Clone, PartialEq)]
pub enum LocalMode {
    Off,
    Loading,
    /// Loaded; the status line.
    Ready(String),
    Failed(String),
}

/// Where the page remembers that the user answers image queries here (so a reload with the
/// companion stopped goes on doing so).
const REMEMBER_KEY: &str = "relsim-answer-here";

fn storage() -> Option<web_sys::Storage> {
    web_sys::window()?.local_storage().ok().flatten()
}

/// Whether the user had image queries answered here last time.
pub fn remembered() -> bool {
    storage().and_then(|s| s.get_item(REMEMBER_KEY).ok().flatten()).is_some()
}

/// Turns answering here on (loading the student and the vectors) or off, and remembers the choice.
pub fn switch(mode: leptos::prelude::RwSignal<LocalMode>, on: bool) {
    use leptos::prelude::*;
    if let Some(s) = storage() {
        let _ = if on { s.set_item(REMEMBER_KEY, "1") } else { s.remove_item(REMEMBER_KEY) };
    }
    if !on {
        mode.set(LocalMode::Off);
        return;
    }
    mode.set(LocalMode::Loading);
    leptos::task::spawn_local(async move {
        match load().await {
            Ok(loaded) => {
                let from = match loaded.vectors_from {
                    Source::Network => "from the companion",
                    Source::Cache => "from the browser cache",
                };
                if mode.get_untracked() == LocalMode::Loading {
                    mode.set(LocalMode::Ready(format!("Ready: {} images' vectors ({from}), student {:.1} MB.", loaded.images, loaded.weights_bytes as f64 / 1e6)));
                }
            }
            Err(e) => mode.set(LocalMode::Failed(e)),
        }
    });
}

/// What was loaded, for the status line.
#[derive(Debug, Clone, PartialEq)]
pub struct Loaded {
    pub images: usize,
    pub weights_bytes: u64,
    /// Where the vectors came from this time.
    pub vectors_from: Source,
}

/// The library's vectors in the teacher's space.
struct LocalIndex {
    ids: Vec<String>,
    dim: usize,
    rows: Vec<f32>,
}

#[derive(Default)]
struct Local {
    bytes: Option<Rc<ModelBytes>>,
    config: Option<LiteConfig>,
    index: Option<Rc<LocalIndex>>,
    cpu: Option<Rc<RelsimLite<Flex>>>,
    gpu: Option<Rc<RelsimLite<Wgpu<f32>>>>,
}

thread_local! {
    static LOCAL: RefCell<Local> = RefCell::new(Local::default());
}

/// Downloads the student (from the browser cache after the first time) and the library's
/// vectors (from the cache when the companion cannot be reached).
pub async fn load() -> Result<Loaded, String> {
    let bytes = models::download("/api/models/student", |_, _| {}).await?;
    let config: LiteConfig = serde_json::from_slice(bytes.get("config.json")?).map_err(|e| format!("the student's config.json: {e}"))?;
    let teacher: TeacherInfo = serde_json::from_slice(bytes.get("teacher.json")?).map_err(|e| format!("the student's teacher.json: {e}"))?;
    let (body, vectors_from) = models::fetch_or_cached("/api/library/vectors").await?;
    let (header, rows) = decode_vectors(&body)?;
    if teacher.model_id != header.model_id {
        return Err(format!("the student was distilled from {}, the library's vectors are {}'s", teacher.model_id, header.model_id));
    }
    if header.dim != config.out_dim && !header.ids.is_empty() {
        return Err(format!("the student makes {} values, the library's vectors have {}", config.out_dim, header.dim));
    }
    let loaded = Loaded { images: header.ids.len(), weights_bytes: bytes.total_bytes, vectors_from };
    LOCAL.with_borrow_mut(|l| {
        *l = Local { bytes: Some(Rc::new(bytes)), config: Some(config), index: Some(Rc::new(LocalIndex { ids: header.ids, dim: header.dim, rows })), cpu: None, gpu: None };
    });
    Ok(loaded)
}

fn build<B: Backend>(device: &B::Device) -> Result<RelsimLite<B>, String> {
    let (bytes, config) = LOCAL.with_borrow(|l| (l.bytes.clone(), l.config.clone()));
    let (bytes, config) = (bytes.ok_or("the student is not loaded")?, config.ok_or("the student is not loaded")?);
    let file = TensorFile::parse("the student's model.safetensors", bytes.get("model.safetensors")?).map_err(|e| e.to_string())?;
    RelsimLite::from_weights(&config, &file, device).map_err(|e| e.to_string())
}

/// The query image's unit embedding on `engine`.
async fn embed(engine: Engine, image: &relsim_shared::image::RgbImage) -> Result<Vec<f32>, String> {
    let size = LOCAL.with_borrow(|l| l.config.as_ref().map(|c| c.image_size)).ok_or("the student is not loaded")?;
    let input = pixels(image, size);
    let data = match engine {
        Engine::Cpu => {
            let model = match LOCAL.with_borrow(|l| l.cpu.clone()) {
                Some(m) => m,
                None => {
                    let m = Rc::new(build::<Flex>(&FlexDevice)?);
                    LOCAL.with_borrow_mut(|l| l.cpu = Some(m.clone()));
                    m
                }
            };
            model.forward(pixel_batch::<Flex>(&[input], size, &FlexDevice)).into_data_async().await
        }
        Engine::WebGpu => {
            let device = models::gpu_device().await;
            let model = match LOCAL.with_borrow(|l| l.gpu.clone()) {
                Some(m) => m,
                None => {
                    let m = Rc::new(build::<Wgpu<f32>>(&device)?);
                    LOCAL.with_borrow_mut(|l| l.gpu = Some(m.clone()));
                    m
                }
            };
            model.forward(pixel_batch::<Wgpu<f32>>(&[input], size, &device)).into_data_async().await
        }
    };
    data.map_err(|e| format!("reading the embedding: {e:?}"))?.convert::<f32>().into_vec::<f32>().map_err(|e| format!("reading the embedding: {e:?}"))
}

/// An answer computed here: results like the companion's (no look, no captions) and the map.
pub struct Answer {
    pub response: SearchResponse,
    /// Milliseconds from the image bytes to the ranked list.
    pub millis: f64,
}

/// Decodes `bytes`, embeds them with the student on `engine` and ranks the library.
pub async fn answer(engine: Engine, bytes: &[u8], name: &str, k: usize) -> Result<Answer, String> {
    let index = LOCAL.with_borrow(|l| l.index.clone()).ok_or("the library's vectors are not loaded")?;
    let start = crate::text_model::now_ms();
    let image = relsim_shared::image::preprocess::decode_rgb_limited(bytes, name, MAX_QUERY_PIXELS).map_err(|e| e.to_string())?;
    let query = embed(engine, &image).await?;
    let scores: Vec<f32> = index.rows.chunks_exact(index.dim.max(1)).map(|row| dot(&query, row)).collect();
    let best = top_k(&scores, k.min(scores.len()));
    let millis = crate::text_model::now_ms() - start;
    let results = best
        .into_iter()
        .map(|(row, score)| SearchHit {
            image: LibraryImage { id: index.ids[row].clone(), path: String::new(), width: 0, height: 0, thumbnail: crate::api::thumbnail(&index.ids[row]), date: None, date_source: None },
            relational: score,
            attribute: None,
            combined: score,
            why: Vec::new(),
            // The student has no calibration of its own (its teacher's is for the teacher's scores).
            weak: false,
        })
        .collect();
    let map = index.ids.iter().zip(&scores).map(|(id, &s)| MapPoint { id: id.clone(), relational: s, attribute: None }).collect();
    let response = SearchResponse { total: index.ids.len(), offset: 0, k, weight: 1.0, results, upload: None, map: Some(map), threshold: None };
    Ok(Answer { response, millis })
}
