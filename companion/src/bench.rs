//! `relsim bench text`: MiniLM throughput on this machine.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Context;
use relsim_shared::text::minilm::MiniLm;
use serde::Deserialize;

use crate::backend::{with_backend, BackendKind};

#[derive(Deserialize)]
struct Reference {
    cases: Vec<Case>,
}

#[derive(Deserialize)]
struct Case {
    text: String,
}

/// The benchmark corpus: the parity inputs (short captions to 256-token texts), the same
/// list the sentence-transformers benchmark reads.
fn corpus(path: &Path) -> anyhow::Result<Vec<String>> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let reference: Reference = serde_json::from_slice(&bytes).with_context(|| format!("parsing {}", path.display()))?;
    Ok(reference.cases.into_iter().map(|c| c.text).collect())
}

/// Embeds batches cycling through `corpus` for at least `budget`; returns sentences per second.
fn measure(embed: &mut dyn FnMut(&[&str]) -> anyhow::Result<()>, corpus: &[String], batch: usize, budget: Duration) -> anyhow::Result<f64> {
    let mut cycle = corpus.iter().map(String::as_str).cycle();
    // One untimed batch warms caches and allocators.
    embed(&cycle.by_ref().take(batch).collect::<Vec<_>>())?;
    let (start, mut done) = (Instant::now(), 0usize);
    while start.elapsed() < budget || done < corpus.len() {
        embed(&cycle.by_ref().take(batch).collect::<Vec<_>>())?;
        done += batch;
    }
    Ok(done as f64 / start.elapsed().as_secs_f64())
}

/// Prints sentences/s at batch 1 and 32.
pub fn bench_text(minilm_dir: &Path, corpus_path: &Path, backend: BackendKind, seconds: f64) -> anyhow::Result<()> {
    let corpus = corpus(corpus_path)?;
    let budget = Duration::from_secs_f64(seconds);
    with_backend!(backend, |device: B| {
        let model = MiniLm::<B>::from_dir(minilm_dir, &device)
            .with_context(|| format!("loading MiniLM from {}", minilm_dir.display()))?;
        let mut embed = |texts: &[&str]| -> anyhow::Result<()> {
            model.embed_vecs(texts)?;
            Ok(())
        };
        for batch in [1, 32] {
            let rate = measure(&mut embed, &corpus, batch, budget)?;
            println!("relsim {backend:?}: batch {batch:>2}: {rate:8.1} sentences/s ({} inputs)", corpus.len());
        }
        Ok(())
    })
}
