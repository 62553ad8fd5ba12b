//! The library as the server runs it: indexing on a background thread with progress and
//! cancellation, and a catalog snapshot that searches read while indexing goes on.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use image::RgbImage;
use relsim_shared::protocol::IndexProgress;
use tokio::sync::watch;

use super::catalog::Catalog;
use super::store::Store;
use super::Indexer;
use crate::encoders::ImageEncoder;

/// An encoder several threads share, one batch at a time.
#[derive(Clone)]
pub struct SharedEncoder(pub Arc<Mutex<Box<dyn ImageEncoder>>>);

impl ImageEncoder for SharedEncoder {
    fn embed_batch(&self, images: &[RgbImage]) -> anyhow::Result<Vec<Vec<f32>>> {
        let encoder = self.0.lock().map_err(|_| anyhow::anyhow!("the image encoder failed earlier (a panic while embedding)"))?;
        encoder.embed_batch(images)
    }
}

/// A library being served.
pub struct LibraryService {
    pub roots: Vec<PathBuf>,
    pub thumbnails: PathBuf,
    store: Mutex<Store>,
    catalog: RwLock<Arc<Catalog>>,
    progress: watch::Sender<IndexProgress>,
    cancel: AtomicBool,
    running: AtomicBool,
    encoder: SharedEncoder,
}

/// How often a running index refreshes what searches see.
const CATALOG_REFRESH: Duration = Duration::from_millis(500);

impl LibraryService {
    /// Serves `store` (already opened) for `roots`.
    pub fn new(roots: Vec<PathBuf>, thumbnails: PathBuf, store: Store, encoder: SharedEncoder) -> Arc<Self> {
        let catalog = Arc::new(Catalog::from_store(&store));
        let (progress, _) = watch::channel(IndexProgress { phase: "idle".into(), ..Default::default() });
        Arc::new(LibraryService {
            roots,
            thumbnails,
            store: Mutex::new(store),
            catalog: RwLock::new(catalog),
            progress,
            cancel: AtomicBool::new(false),
            running: AtomicBool::new(false),
            encoder,
        })
    }

    /// What searches see now.
    pub fn catalog(&self) -> Arc<Catalog> {
        self.catalog.read().map(|c| c.clone()).unwrap_or_default()
    }

    /// The latest progress.
    pub fn progress(&self) -> IndexProgress {
        self.progress.borrow().clone()
    }

    /// Progress updates, for server-sent events.
    pub fn subscribe(&self) -> watch::Receiver<IndexProgress> {
        self.progress.subscribe()
    }

    /// Whether an indexing run is going on.
    pub fn is_running(&self) -> bool {
        self.running.load(Ordering::SeqCst)
    }

    /// Starts indexing on a background thread; false when a run is already going on.
    pub fn start_indexing(self: &Arc<Self>) -> bool {
        if self.running.swap(true, Ordering::SeqCst) {
            return false;
        }
        self.cancel.store(false, Ordering::SeqCst);
        let me = self.clone();
        std::thread::spawn(move || {
            let result = me.index_now();
            if let Err(e) = result {
                tracing::error!("indexing failed: {e:#}");
                let mut p = me.progress();
                p.phase = "failed".into();
                p.error = Some(format!("{e:#}"));
                me.progress.send_replace(p);
            }
            me.running.store(false, Ordering::SeqCst);
        });
        true
    }

    fn index_now(&self) -> anyhow::Result<()> {
        let mut store = self.store.lock().map_err(|_| anyhow::anyhow!("the index store failed earlier"))?;
        let indexer = Indexer { roots: &self.roots, encoder: &self.encoder, thumbnails: &self.thumbnails, cancel: &self.cancel };
        let mut refreshed = Instant::now();
        let summary = indexer.run(&mut store, &mut |p, store| {
            let finished = p.phase != "embedding" && p.phase != "scanning";
            if finished || refreshed.elapsed() >= CATALOG_REFRESH {
                if let Ok(mut c) = self.catalog.write() {
                    *c = Arc::new(Catalog::from_store(store));
                }
                refreshed = Instant::now();
            }
            self.progress.send_replace(p.clone());
        })?;
        if let Ok(mut c) = self.catalog.write() {
            *c = Arc::new(Catalog::from_store(&store));
        }
        self.progress.send_replace(summary);
        Ok(())
    }

    /// Asks a running index to stop after its current batch (what is written stays).
    pub fn cancel(&self) {
        self.cancel.store(true, Ordering::SeqCst);
    }
}
