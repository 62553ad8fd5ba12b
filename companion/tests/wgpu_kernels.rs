//! What the relsim encoder costs burn-wgpu in compiled kernels and autotune keys (read from
//! cubecl's own compilation and autotune loggers): a second forward of the same image shapes
//! compiles and tunes nothing new, and the first stays under a budget. Its own test binary:
//! cubecl's configuration must be set before the first device use in the process.
#![cfg(feature = "wgpu")]

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use burn::backend::wgpu::{Wgpu, WgpuDevice};
use cubecl_runtime::config::autotune::AutotuneLogLevel;
use cubecl_runtime::config::cache::CacheConfig;
use cubecl_runtime::config::compilation::CompilationLogLevel;
use cubecl_runtime::config::{CubeClRuntimeConfig, RuntimeConfig};
use relsim_companion::qwen::relsim::{EncoderFiles, RelsimEncoder};
use relsim_shared::image::preprocess::{decode_rgb, preprocess, PreprocessMode, QwenImageConfig};

/// Kernels the first forward of the tiny encoder (4 vision blocks, 2 decoder layers, a batch of
/// two images) may compile. Measured 90 on lavapipe with cubecl 0.10: fused op chains are shared
/// by every layer of a kind, so the count follows the model's distinct op chains, not its depth.
/// The budget is 1.5x that: room for a backend update, none for a change that makes kernels per
/// layer or per call (rope tables or masks rebuilt on the device, shapes that vary per block).
const FIRST_FORWARD_KERNELS: usize = 140;
/// Autotune keys (distinct matmul and reduction shapes) the first forward may tune: measured 12.
const FIRST_FORWARD_TUNED: usize = 20;

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/qwen")
}

/// Lines of `file` that contain `marker`, once the logger thread has stopped writing.
fn settled_count(file: &Path, marker: &str) -> usize {
    let count = || {
        std::fs::read_to_string(file)
            .map(|s| s.lines().filter(|l| l.contains(marker)).count())
            .unwrap_or(0)
    };
    let (mut last, mut since) = (count(), Instant::now());
    while since.elapsed() < Duration::from_millis(1500) {
        std::thread::sleep(Duration::from_millis(100));
        let now = count();
        if now != last {
            (last, since) = (now, Instant::now());
        }
    }
    last
}

#[test]
fn a_second_forward_compiles_and_tunes_nothing_new() {
    let dir = std::env::temp_dir().join(format!("relsim-kernels-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (compiled_log, tuned_log) = (dir.join("compilation.log"), dir.join("autotune.log"));
    let mut config = CubeClRuntimeConfig::default();
    config.compilation.logger.level = CompilationLogLevel::Basic;
    config.compilation.logger.file = Some(compiled_log.clone());
    config.compilation.logger.append = false;
    config.compilation.cache = None;
    config.autotune.logger.level = AutotuneLogLevel::Minimal;
    config.autotune.logger.file = Some(tuned_log.clone());
    config.autotune.logger.append = false;
    // A fresh autotune cache, so the first forward really tunes.
    config.autotune.cache = CacheConfig::File(dir.join("autotune-cache"));
    CubeClRuntimeConfig::set(config);

    let device = WgpuDevice::default();
    let files = EncoderFiles {
        base: fixtures().join("tiny_a"),
        adapter: fixtures().join("tiny_a/adapter"),
        tokenizer: Some(fixtures().join("tokenizer/tokenizer.json.gz")),
        image_config: Some(QwenImageConfig {
            min_pixels: 56 * 56,
            max_pixels: 28 * 28 * 64,
            ..Default::default()
        }),
    };
    let encoder = RelsimEncoder::<Wgpu<f32>>::load(&files, &device).unwrap();
    let image = decode_rgb(
        &std::fs::read(fixtures().join("images/blocks_196x140.png")).unwrap(),
        "blocks",
    )
    .unwrap();
    let pixels = preprocess(
        &image,
        PreprocessMode::Native,
        &encoder.image_config,
        "blocks",
    )
    .unwrap();
    let batch = vec![pixels.clone(), pixels];

    let mut counts = Vec::new();
    for pass in 0..2 {
        let start = Instant::now();
        let out = encoder.embed_pixels(&batch).unwrap();
        assert!(out.iter().flatten().all(|v| v.is_finite()));
        let seconds = start.elapsed().as_secs_f64();
        let compiled = settled_count(&compiled_log, "[Compiling kernel]");
        let tuned = settled_count(&tuned_log, "Fastest");
        eprintln!(
            "forward {}: {seconds:.2} s, {compiled} kernels compiled, {tuned} autotune keys so far",
            pass + 1
        );
        counts.push((compiled, tuned));
    }
    let ((compiled, tuned), (compiled_again, tuned_again)) = (counts[0], counts[1]);
    assert!(
        compiled > 0,
        "the compilation logger recorded nothing: is it wired up? ({})",
        compiled_log.display()
    );
    assert_eq!(
        compiled_again,
        compiled,
        "the second forward of the same shapes compiled {} new kernels",
        compiled_again - compiled
    );
    assert_eq!(
        tuned_again,
        tuned,
        "the second forward of the same shapes tuned {} new keys",
        tuned_again - tuned
    );
    assert!(
        compiled <= FIRST_FORWARD_KERNELS,
        "the first forward compiled {compiled} kernels (budget {FIRST_FORWARD_KERNELS})"
    );
    assert!(
        tuned <= FIRST_FORWARD_TUNED,
        "the first forward tuned {tuned} keys (budget {FIRST_FORWARD_TUNED})"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
