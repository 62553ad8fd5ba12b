//! Project tasks. `cargo xtask demo` and `cargo xtask test` are the README's two commands; both
//! install what is missing first.

mod browser;
mod setup;
mod util;

use anyhow::{bail, Context, Result};

const USAGE: &str = "\
usage: cargo xtask <task>

  setup [--minilm DIR]   install what is missing: wasm32 target, wasm-bindgen-cli at the
                         Cargo.lock version, npm tools (wasm-opt, playwright-core), the
                         MiniLM weights (models/)
  build-web              build the browser app into dist/pkg
  demo [--port P]        set up, build, and start the companion; prints the URL
  test                   set up and run every test, the headless-Chromium browser test included
  test-browser           only the browser tests (after `build-web` and a debug companion build)
  fuzz [--seconds N]     the upload/decode path under libFuzzer for N seconds (default 600;
                         nightly toolchain, installs cargo-fuzz)
  bench web              the browser app: gzipped wasm size after wasm-opt and time to
                         interactive on the demo library (model weights excluded)
  bench text             MiniLM sentences/s at batch 1 and 32 on two corpora (scene captions,
                         parity inputs): relsim beside sentence-transformers and transformers.js
                         (headless Chromium, wasm) when a Python with sentence-transformers is
                         found (RELSIM_PYTHON), with ratios; then the page's per-query latency
  bench images [--baseline REV]
                         indexing the demo library with this tree's relsim beside REV's
                         (default HEAD~1; built in a git worktree), with the ratio; then this
                         tree's indexing and image-encoder images/s at batch 1 and 32
  bench generate         Qwen2.5-VL text generation on the CPU (random weights, one 448x448 image
                         and a question, greedy): prompt time and decoded tokens/s of a tiny
                         and a mid-size config, beside transformers' generate when a Python
                         with torch and transformers is found (RELSIM_PYTHON), with ratios
  bench scenes           scene generation images/s (all cores beside one core), then the
                         relational benchmark (relsim-lite and the attribute baselines) on a
                         14,000-scene set
";

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let flag = |name: &str| args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).cloned();
    match args.first().map(String::as_str) {
        Some("setup") => setup::setup(flag("--minilm").map(Into::into)),
        Some("build-web") => setup::build_web(),
        Some("demo") => demo(flag("--port")),
        Some("test") => test(),
        Some("test-browser") => browser::run_browser_tests(),
        Some("fuzz") => fuzz(flag("--seconds").unwrap_or_else(|| "600".into())),
        Some("bench") if args.get(1).map(String::as_str) == Some("text") => browser::bench_text(),
        Some("bench") if args.get(1).map(String::as_str) == Some("web") => browser::bench_web(),
        Some("bench") if args.get(1).map(String::as_str) == Some("scenes") => bench_scenes(),
        Some("bench") if args.get(1).map(String::as_str) == Some("generate") => bench_generate(),
        Some("bench") if args.get(1).map(String::as_str) == Some("images") => bench_images(&flag("--baseline").unwrap_or_else(|| "HEAD~1".into())),
        Some("help") | Some("--help") | Some("-h") | None => {
            print!("{USAGE}");
            Ok(())
        }
        Some(other) => bail!("unknown task `{other}`\n{USAGE}"),
    }
}

fn demo(port: Option<String>) -> Result<()> {
    setup::setup(None)?;
    setup::build_web()?;
    let relsim = util::build_release_relsim()?;
    let scenes = demo_library(&relsim)?;
    let port = port.unwrap_or_else(|| "8737".into());
    println!("starting the companion; open the URL below (Ctrl-C stops it)");
    util::run(
        util::command(&relsim)
            .args(["serve", "--port", &port, "--library"])
            .arg(scenes.join("images"))
            .arg("--data-dir")
            .arg(util::target_dir().join("demo-data")),
    )
}

/// The demo library: 600 relational scenes (20 of each of the 30 families, most of them drawn
/// with real objects, so the first analogies a user sees are about things), made once by
/// `relsim` and again when the recipe changes.
pub fn demo_library(relsim: &std::path::Path) -> Result<std::path::PathBuf> {
    let scenes = util::target_dir().join("demo-library");
    let recipe = ["scenes", "generate", "--count", "600", "--seed", "1", "--size", "192", "--families", "all", "--objects", "0.8"];
    let stamp = scenes.join("recipe.txt");
    if !scenes.join("data.jsonl").is_file() || std::fs::read_to_string(&stamp).ok().as_deref() != Some(&recipe.join(" ")) {
        util::step(&format!("making the demo library in {}", scenes.display()));
        let _ = std::fs::remove_dir_all(&scenes);
        util::run(util::command(relsim).args(recipe).arg("--out").arg(&scenes))?;
        std::fs::write(&stamp, recipe.join(" "))?;
    }
    Ok(scenes)
}

/// Runs the fuzz target over the decode path, seeded with the photo fixtures and a few scenes.
fn fuzz(seconds: String) -> Result<()> {
    let root = util::root();
    if util::command("cargo").args(["fuzz", "--version"]).output().map_or(true, |o| !o.status.success()) {
        util::step("installing cargo-fuzz");
        util::cargo(&["install", "cargo-fuzz", "--locked"])?;
    }
    let corpus = root.join("fuzz/corpus/decode_upload");
    std::fs::create_dir_all(&corpus)?;
    let photos = root.join("tests/fixtures/photos");
    for dir in [photos.clone(), photos.join("broken"), root.join("tests/fixtures/qwen/images")] {
        for entry in std::fs::read_dir(&dir)? {
            let path = entry?.path();
            if path.is_file() && path.extension().is_some_and(|e| e != "py" && e != "md") {
                std::fs::copy(&path, corpus.join(path.file_name().expect("a file name")))?;
            }
        }
    }
    util::step(&format!("fuzzing the upload/decode path for {seconds} s"));
    util::run(
        util::command("cargo")
            .current_dir(&root)
            .args(["+nightly", "fuzz", "run", "decode_upload"])
            .arg(&corpus)
            .args(["--", &format!("-max_total_time={seconds}"), "-rss_limit_mb=4096", "-max_len=4000000"]),
    )
}

/// A Python with torch and transformers: RELSIM_PYTHON, else python3 on PATH.
fn transformers_python() -> Option<String> {
    let candidates = std::env::var("RELSIM_PYTHON").ok().into_iter().chain(["python3".to_string()]);
    candidates.into_iter().find(|py| util::output(util::command(py).args(["-c", "import torch, transformers, PIL, numpy"])).is_some())
}

/// One JSON line from the last line `cmd` prints.
fn last_json(cmd: &mut std::process::Command) -> Result<serde_json::Value> {
    let out = util::output(cmd).context("the benchmark failed")?;
    let line = out.lines().rev().find(|l| l.starts_with('{')).context("the benchmark printed no JSON line")?;
    Ok(serde_json::from_str(line)?)
}

fn bench_generate() -> Result<()> {
    let relsim = util::build_release_relsim()?;
    let python = transformers_python();
    if python.is_none() {
        println!("(no Python with torch and transformers found: set RELSIM_PYTHON to compare with transformers' generate)");
    }
    let (tokens, runs, threads) = ("32", "3", "2");
    println!("{:<14} {:<44} {:>8} {:>11} {:>10}", "config", "engine", "prompt", "prefill s", "tokens/s");
    for config in ["tests/bench/generate_tiny.json", "tests/bench/generate_mid.json"] {
        let ours = last_json(util::command(&relsim).args(["bench", "generate", "--backend", "flex", "--config", config, "--tokens", tokens, "--runs", runs]))?;
        let theirs = match &python {
            Some(py) => Some(last_json(util::command(py).args(["tests/bench/generate_transformers.py", config, "--tokens", tokens, "--runs", runs, "--threads", threads]))?),
            None => None,
        };
        let name = std::path::Path::new(config).file_stem().and_then(|s| s.to_str()).unwrap_or(config);
        for row in std::iter::once(&ours).chain(&theirs) {
            println!(
                "{:<14} {:<44} {:>8} {:>11.3} {:>10.1}",
                name,
                row["engine"].as_str().unwrap_or("?"),
                row["prompt_tokens"],
                row["prefill_s"].as_f64().unwrap_or(f64::NAN),
                row["decode_tokens_per_s"].as_f64().unwrap_or(f64::NAN)
            );
        }
        if let Some(theirs) = &theirs {
            let rate = |r: &serde_json::Value, k: &str| r[k].as_f64().unwrap_or(f64::NAN);
            println!(
                "{name}: relsim / transformers: decoding {:.2}x the tokens/s, prompt in {:.2}x the time",
                rate(&ours, "decode_tokens_per_s") / rate(theirs, "decode_tokens_per_s"),
                rate(&ours, "prefill_s") / rate(theirs, "prefill_s")
            );
        }
    }
    Ok(())
}

fn bench_scenes() -> Result<()> {
    let relsim = util::build_release_relsim()?;
    util::step("scene generation speed");
    util::run(util::command(&relsim).args(["bench", "scenes", "--count", "2000"]))?;
    // The benchmark of every family with real objects, then the first sets' 14 families.
    for (name, args) in [
        ("scenes-bench-all", &["--count", "15000", "--seed", "0", "--families", "all", "--objects", "0.6"][..]),
        ("scenes-bench", &["--count", "14000", "--seed", "0", "--families", "classic", "--objects", "0"][..]),
    ] {
        let data = util::target_dir().join(name);
        let _ = std::fs::remove_dir_all(&data);
        util::step(&format!("relational benchmark: relsim-lite beside the attribute baselines, {} in {}", args.join(" "), data.display()));
        util::run(util::command(&relsim).args(["scenes", "generate"]).args(args).arg("--out").arg(&data))?;
        let encoders = ["lite", "pixels", "colour-histogram", "hog"].iter().flat_map(|e| ["--encoder", e]);
        util::run(util::command(&relsim).args(["bench", "relational", "--split", "test"]).args(encoders).arg("--data").arg(&data))?;
    }
    Ok(())
}

/// `relsim index` of the demo library into a fresh data folder: seconds, wall clock.
fn time_index(relsim: &std::path::Path, library: &std::path::Path, data: &std::path::Path) -> Result<f64> {
    let _ = std::fs::remove_dir_all(data);
    let started = std::time::Instant::now();
    let out = util::command(relsim).args(["index", "--library"]).arg(library).arg("--data-dir").arg(data).stderr(std::process::Stdio::null()).output()?;
    let seconds = started.elapsed().as_secs_f64();
    anyhow::ensure!(out.status.success(), "{} index failed ({})", relsim.display(), out.status);
    let _ = std::fs::remove_dir_all(data);
    Ok(seconds)
}

/// Indexing speed of this tree against `baseline` (a git revision), measured in one run: both
/// binaries built the same way (release, every backend), run in turn on the demo library.
fn bench_images(baseline: &str) -> Result<()> {
    let scratch = util::target_dir().join("bench-images");
    let source = scratch.join("baseline-src");
    util::step(&format!("building {baseline}'s relsim in {}", source.display()));
    let _ = util::run(util::command("git").args(["worktree", "remove", "--force"]).arg(&source));
    let _ = std::fs::remove_dir_all(&source);
    util::run(util::command("git").args(["worktree", "add", "--detach"]).arg(&source).arg(baseline))?;
    // The same target folder: only the workspace's own crates are rebuilt for the worktree.
    util::run(
        std::process::Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
            .current_dir(&source)
            .env("CARGO_TARGET_DIR", util::target_dir())
            .args(["build", "--release", "-p", "relsim-companion", "--features", "wgpu,cuda"]),
    )?;
    // The worktree stays until the timing is done: that binary finds its default model there.
    let old = scratch.join("relsim-baseline");
    std::fs::copy(util::target_dir().join("release/relsim"), &old)?;
    // Building this tree again puts its own binary back in target/release.
    let relsim = util::build_release_relsim()?;
    let library = demo_library(&relsim)?.join("images");
    let data = scratch.join("data");
    util::step("indexing the demo library from scratch, each binary in turn, 3 rounds (wall clock, process start included)");
    let (mut before, mut after) = (Vec::new(), Vec::new());
    for _ in 0..3 {
        before.push(time_index(&old, &library, &data)?);
        after.push(time_index(&relsim, &library, &data)?);
    }
    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let (before, after) = (median(before), median(after));
    let _ = util::run(util::command("git").args(["worktree", "remove", "--force"]).arg(&source));
    println!("index 420 scenes: {baseline}: {before:.2} s, this tree: {after:.2} s: {:.2}x faster", before / after);
    util::step("this tree: indexing and the image encoder");
    util::run(util::command(&relsim).args(["bench", "images", "--folder"]).arg(&library))
}

fn test() -> Result<()> {
    setup::setup(None)?;
    // One build of the workspace with both GPU backends: the native tests, the GPU code kept
    // compiling where no GPU runs it, and the debug `relsim` the browser tests drive all come out
    // of it (building the companion once per feature set cost a CI run tens of minutes). Under
    // lavapipe, Mesa's software Vulkan, the wgpu tests run the relsim encoder's parity, its
    // kernel counts and the page's WGSL kernels; `--backend auto` ignores software adapters, so
    // everything else runs on the CPU as on a user's machine without a GPU.
    util::step("native tests, with burn-wgpu over lavapipe for the GPU ones (the companion built with wgpu and cuda)");
    let args = ["test", "--workspace", "--exclude", "relsim-web", "--features", "relsim-companion/wgpu,relsim-companion/cuda"];
    util::run(util::software_vulkan(&mut util::cargo_command())?.args(args))?;
    util::step("the browser's JPEG decoder in wasm32 (under Node): Pillow's bytes");
    let args = ["test", "-p", "relsim-shared", "--target", "wasm32-unknown-unknown", "--test", "jpeg_wasm"];
    util::run(util::cargo_command().env("CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUNNER", "wasm-bindgen-test-runner").args(args))?;
    setup::build_web()?;
    browser::run_browser_tests()
}
