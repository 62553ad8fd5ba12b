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
    /// Serves `library` (none: no library) with its index in `data_dir`.
    fn start(binary: PathBuf, library: Option<&std::path::Path>, data_dir: &std::path::Path) -> Result<Self> {
        let mut command = Command::new(&binary);
        command.current_dir(root()).args(["serve", "--port", "0", "--data-dir"]).arg(data_dir);
        if let Some(library) = library {
            command.arg("--library").arg(library);
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
    let companion = Companion::start(binary, None, &target_dir().join("browser-test-data"))?;
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
    let companion = Companion::start(binary, Some(&library.join("images")), &data)?;
    let artifacts = root().join("artifacts/browser");
    step(&format!("headless Chromium: the explorer against {}", companion.url));
    let mut script = command("node");
    script.arg("tests/browser/explorer.mjs").arg(&companion.url).arg(&artifacts).arg(library.join("data.jsonl"));
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

/// Sentences/s natively beside sentence-transformers, then the browser's per-query latency.
pub fn bench_text() -> Result<()> {
    crate::setup::setup(None)?;
    let relsim = crate::util::build_release_relsim()?;
    step("native: relsim (burn ndarray backend)");
    run(command(&relsim).args(["bench", "text"]))?;
    match reference_python() {
        Some(py) => {
            step(&format!("reference: sentence-transformers ({py})"));
            run(command(&py).arg("tests/fixtures/minilm/bench_reference.py").arg(crate::setup::minilm_dir()))?;
        }
        None => println!("(no Python with sentence-transformers found: set RELSIM_PYTHON to compare)"),
    }
    crate::setup::build_web()?;
    run_page_script(relsim, &["--bench"])
}
