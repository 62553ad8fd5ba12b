//! Where the companion finds model files and the web bundle by default.

use std::path::PathBuf;

/// The workspace root this binary was built from; default locations hang off it.
fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Default MiniLM folder: the git-ignored copy `cargo xtask setup` fills.
pub fn default_minilm_dir() -> PathBuf {
    workspace_root().join("models").join("all-MiniLM-L6-v2")
}

/// Default static files: `public/`.
pub fn default_public_dir() -> PathBuf {
    workspace_root().join("public")
}

/// Default wasm bundle: what `cargo xtask build-web` writes.
pub fn default_pkg_dir() -> PathBuf {
    workspace_root().join("dist").join("pkg")
}

/// Default corpus of `relsim bench text`: the MiniLM parity inputs.
pub fn default_text_corpus() -> PathBuf {
    workspace_root().join("tests").join("fixtures").join("minilm").join("reference.json")
}

/// Default relsim-lite model: the committed weights in `assets/relsim-lite`.
pub fn default_lite_dir() -> PathBuf {
    workspace_root().join("assets").join("relsim-lite")
}

/// Default browser student: the committed relsim-lite student in `assets/relsim-lite-student`.
pub fn default_student_dir() -> PathBuf {
    workspace_root().join("assets").join("relsim-lite-student")
}

/// The real Qwen2.5 tokenizer committed with the Qwen test fixtures (gzipped).
pub fn default_qwen_tokenizer() -> PathBuf {
    workspace_root().join("tests").join("fixtures").join("qwen").join("tokenizer").join("tokenizer.json.gz")
}

/// Default place of cubecl's compiled-kernel and autotune caches (GPU backends): the
/// git-ignored `.cache/kernels` of the workspace.
pub fn default_kernel_cache_dir() -> PathBuf {
    workspace_root().join(".cache").join("kernels")
}

/// Default place of the library index, thumbnails and user captions: `$XDG_DATA_HOME/relsim`,
/// else `~/.local/share/relsim`, else `.relsim` here.
pub fn default_data_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("XDG_DATA_HOME").filter(|d| !d.is_empty()) {
        return PathBuf::from(dir).join("relsim");
    }
    match std::env::var_os("HOME").filter(|d| !d.is_empty()) {
        Some(home) => PathBuf::from(home).join(".local").join("share").join("relsim"),
        None => PathBuf::from(".relsim"),
    }
}
