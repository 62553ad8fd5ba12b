//! The real-browser tests and the text benchmark: start the companion, drive headless Chromium.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use anyhow::{bail, Context, Result};

use crate::util::{apt_install, command, output, root, run, step, target_dir};

fn ensure_chromium() -> Result<()> {
    if std::env::var_os("CHROMIUM").is_none() && !PathBuf::from("/usr/bin/chromium").exists() {
        step("installing Chromium (Debian package)");
        apt_install(&["chromium"])?;
    }
    crate::setup::ensure_node_tools()
}

/// The companion serving on a free loopback port; killed on drop.
struct Companion {
    child: Child,
    url: String,
}

impl Companion {
    /// Serves `library` (none: no library) with its index in `data_dir`, and `study` if given.
    fn start(binary: PathBuf, library: Option<&std::path::Path>, data_dir: &std::path::Path, study: Option<&std::path::Path>) -> Result<Self> {
        let mut command = Command::new(&binary);
        command.current_dir(root()).args(["serve", "--port", "0", "--data-dir"]).arg(data_dir);
        if let Some(library) = library {
            command.arg("--library").arg(library);
        }
        if let Some(study) = study {
            command.arg("--study").arg(study);
        }
        let mut child = command
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .with_context(|| format!("starting {}", binary.display()))?;
        let stdout = child.stdout.take().context("no stdout")?;
        let mut lines = BufReader::new(stdout).lines();
        let url = loop {
            match lines.next() {
                Some(Ok(line)) => {
                    if let Some(url) = line.strip_prefix("relsim is serving on ") {
                        break url.trim().to_string();
                    }
                }
                _ => {
                    let _ = child.kill();
                    bail!("the companion exited before printing its URL");
                }
            }
        };
        // Keep draining stdout so the server never blocks on a full pipe.
        std::thread::spawn(move || lines.for_each(drop));
        Ok(Self { child, url })
    }
}

impl Drop for Companion {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn run_page_script(binary: PathBuf, extra: &[&str]) -> Result<()> {
    ensure_chromium()?;
    let companion = Companion::start(binary, None, &target_dir().join("browser-test-data"), None)?;
    let artifacts = root().join("artifacts/browser");
    step(&format!("headless Chromium against {}", companion.url));
    run(command("node").arg("tests/browser/minilm.mjs").arg(&companion.url).arg(&artifacts).args(extra))?;
    println!("screenshots in {}", artifacts.display());
    Ok(())
}

/// The explorer against a companion serving the demo library from a fresh index (`bench`:
/// the time-to-interactive runs instead, on an index made before).
fn run_explorer(binary: PathBuf, bench: bool) -> Result<()> {
    ensure_chromium()?;
    let library = crate::demo_library(&binary)?;
    let data = target_dir().join(if bench { "browser-bench-data" } else { "browser-explorer-data" });
    if !bench {
        let _ = std::fs::remove_dir_all(&data);
    }
    // A small A/B study on the demo library, made afresh (answers accumulate in its folder).
    let study = target_dir().join("browser-study");
    let _ = std::fs::remove_dir_all(&study);
    if !bench {
        run(command(&binary).args(["study", "make", "--methods", "lite,colour-histogram", "--queries", "4", "--seed", "1", "--data"]).arg(library.join("images")).arg("--out").arg(&study))?;
    }
    let companion = Companion::start(binary.clone(), Some(&library.join("images")), &data, (!bench).then_some(study.as_path()))?;
    let artifacts = root().join("artifacts/browser");
    step(&format!("headless Chromium: the explorer against {}", companion.url));
    let mut script = command("node");
    script.arg("tests/browser/explorer.mjs").arg(&companion.url).arg(&artifacts).arg(library.join("data.jsonl"));
    script.env("RELSIM_STUDY_DIR", &study);
    // The last checks stop the companion: image queries must still be answered in the page.
    script.env("RELSIM_COMPANION_PID", companion.child.id().to_string());
    if bench {
        script.arg("--bench");
    }
    run(&mut script)?;
    println!("screenshots in {}", artifacts.display());
    Ok(())
}

/// The browser tests, against the debug companion built by the native test step.
pub fn run_browser_tests() -> Result<()> {
    let relsim = target_dir().join("debug/relsim");
    run_explorer(relsim.clone(), false)?;
    run_page_script(relsim, &[])
}

/// Gzipped wasm size (after wasm-opt) and time to interactive of the release build.
pub fn bench_web() -> Result<()> {
    crate::setup::setup(None)?;
    let relsim = crate::util::build_release_relsim()?;
    crate::setup::build_web()?;
    let bundle = crate::setup::pkg_dir().join("relsim_web_bg.wasm");
    let raw = std::fs::read(&bundle).with_context(|| format!("reading {}", bundle.display()))?;
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    std::io::Write::write_all(&mut gz, &raw)?;
    let gzipped = gz.finish()?.len();
    let js = std::fs::read(crate::setup::pkg_dir().join("relsim_web.js"))?.len();
    println!("bench: wasm after wasm-opt {:.2} MB, gzip -9 {:.2} MB (JS glue {:.0} kB)", raw.len() as f64 / 1e6, gzipped as f64 / 1e6, js as f64 / 1e3);
    run_explorer(relsim, true)
}

/// Finds a Python with sentence-transformers: RELSIM_PYTHON, else python3 on PATH.
fn reference_python() -> Option<String> {
    let candidates = std::env::var("RELSIM_PYTHON").ok().into_iter().chain(["python3".to_string()]);
    candidates
        .into_iter()
        .find(|py| output(Command::new(py).args(["-c", "import sentence_transformers, torch"])).is_some())
}

/// The version of transformers.js timed beside us.
const TRANSFORMERS_JS: &str = "@huggingface/transformers@4.3.2";

/// Runs `cmd` and parses the last line of its output as JSON.
fn json_line(cmd: &mut Command) -> Result<serde_json::Value> {
    let out = cmd.stderr(Stdio::inherit()).output().with_context(|| format!("starting {cmd:?}"))?;
    if !out.status.success() {
        bail!("{cmd:?} failed ({})", out.status);
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text.lines().last().with_context(|| format!("{cmd:?} printed nothing"))?;
    serde_json::from_str(line).with_context(|| format!("{cmd:?} printed {line}"))
}

/// transformers.js and the ONNX export of our MiniLM weights it runs, made once under
/// target/bench-text: (model folder, node_modules). None, with the reason, when the Python
/// reference environment cannot export.
fn prepare_transformers_js(python: &str, dir: &std::path::Path) -> Result<Option<(PathBuf, PathBuf)>> {
    let model = dir.join("minilm-onnx");
    if !model.join("onnx/model.onnx").is_file() {
        if output(Command::new(python).args(["-c", "import onnx, onnxruntime, transformers"])).is_none() {
            println!("(transformers.js skipped: {python} lacks onnx/onnxruntime for the export: pip install onnx onnxruntime)");
            return Ok(None);
        }
        step("exporting the MiniLM weights to ONNX for transformers.js");
        run(command(python).arg("tests/fixtures/minilm/export_onnx.py").arg(crate::setup::minilm_dir()).arg(&model))?;
    }
    let prefix = dir.join("transformersjs");
    let modules = prefix.join("node_modules");
    if !modules.join("@huggingface/transformers/dist/transformers.web.js").is_file() {
        step(&format!("installing {TRANSFORMERS_JS} from npm"));
        std::fs::create_dir_all(&prefix)?;
        // Only the web build is used: no install scripts (they fetch native onnxruntime builds).
        run(command("npm").args(["install", "--no-audit", "--no-fund", "--ignore-scripts", "--prefix"]).arg(&prefix).arg(TRANSFORMERS_JS))?;
    }
    Ok(Some((model, modules)))
}

/// Sentences/s of relsim's MiniLM beside sentence-transformers and transformers.js (headless
/// Chromium, wasm) on the same sentences in the same command, each with relsim's ratio to it;
/// then the page's own per-query latency.
pub fn bench_text() -> Result<()> {
    crate::setup::setup(None)?;
    ensure_chromium()?;
    let relsim = crate::util::build_release_relsim()?;
    let dir = target_dir().join("bench-text");
    std::fs::create_dir_all(&dir)?;
    let python = reference_python();
    let transformers_js = match &python {
        Some(py) => prepare_transformers_js(py, &dir)?,
        None => {
            println!("(no Python with sentence-transformers found: set RELSIM_PYTHON to compare with sentence-transformers and transformers.js)");
            None
        }
    };
    let threads = "2";
    for corpus in ["captions", "parity"] {
        let file = dir.join(format!("{corpus}.json"));
        let sentences = output(command(&relsim).args(["bench", "text", "--print-sentences", "--corpus", corpus])).context("listing the sentences")?;
        std::fs::write(&file, sentences)?;
        step(&format!("corpus `{corpus}` ({})", file.display()));
        // The CPU against the CPU peers (auto would probe GPU adapters first): both CPU backends.
        let ours: Vec<serde_json::Value> = ["flex", "ndarray"]
            .iter()
            .map(|backend| json_line(command(&relsim).args(["bench", "text", "--backend", backend, "--json", "--sentences"]).arg(&file)))
            .collect::<Result<_>>()?;
        let mut peers = Vec::new();
        if let Some(py) = &python {
            let script = "tests/fixtures/minilm/bench_reference.py";
            peers.push(json_line(command(py).arg(script).arg(crate::setup::minilm_dir()).arg(&file).args(["--threads", threads, "--json"]))?);
        }
        if let Some((model, modules)) = &transformers_js {
            peers.push(json_line(command("node").arg("tests/browser/transformersjs.mjs").arg(model).arg(modules).arg(&file).args(["--threads", threads]))?);
        }
        let rate = |row: &serde_json::Value, key: &str| row[key].as_f64().unwrap_or(f64::NAN);
        let name = |row: &serde_json::Value| row["encoder"].as_str().unwrap_or("?").to_string();
        println!("{:<62} {:>14} {:>14} {:>10}", "encoder", "batch 1 (/s)", "batch 32 (/s)", "peak RSS");
        for row in ours.iter().chain(&peers) {
            let rss = row["peak_rss_bytes"].as_f64().map_or("-".to_string(), |b| format!("{:.0} MB", b / 1e6));
            println!("{:<62} {:>14.1} {:>14.1} {:>10}", name(row), rate(row, "batch1_sentences_per_s"), rate(row, "batch32_sentences_per_s"), rss);
        }
        for mine in &ours {
            for peer in &peers {
                println!(
                    "{} / {}: batch 1 {:.2}x, batch 32 {:.2}x",
                    name(mine),
                    name(peer),
                    rate(mine, "batch1_sentences_per_s") / rate(peer, "batch1_sentences_per_s"),
                    rate(mine, "batch32_sentences_per_s") / rate(peer, "batch32_sentences_per_s")
                );
            }
        }
        if let Some(ms) = peers.iter().find_map(|r| r["median_query_ms"].as_f64()) {
            println!("transformers.js median per-query latency (batch 1): {ms:.1} ms");
        }
    }
    crate::setup::build_web()?;
    run_page_script(relsim, &["--bench"])?;
    let Some((model, modules)) = &transformers_js else { return Ok(()) };
    let page: serde_json::Value = serde_json::from_slice(&std::fs::read(root().join("artifacts/browser/minilm-bench.json"))?)?;
    // The page's queries run on one thread (wasm threads need a nightly std): transformers.js on
    // one thread too, on the page's sentences, one query at a time.
    step("transformers.js on the page's sentences, per-query latency (CPU: 1 thread; WebGPU: the same software adapter)");
    let sentences = root().join("tests/browser/query-sentences.json");
    let tjs = |extra: &[&str]| json_line(command("node").arg("tests/browser/transformersjs.mjs").arg(model).arg(modules).arg(&sentences).args(extra));
    let cpu = tjs(&["--threads", "1", "--passes", "5"])?;
    let gpu = tjs(&["--webgpu", "--passes", "1"])?;
    let ms = |row: &serde_json::Value, key: &str| row[key].as_f64().unwrap_or(f64::NAN);
    for (path, ours, peer) in [("CPU", ms(&page, "cpu_query_ms"), ms(&cpu, "median_query_ms")), ("WebGPU", ms(&page, "webgpu_query_ms"), ms(&gpu, "median_query_ms"))] {
        println!("page query latency, {path:<6}: relsim {ours:.1} ms, transformers.js {peer:.1} ms: {:.2}x its time", ours / peer);
    }
    Ok(())
}
