//! Types exchanged between the companion and the browser app.

use serde::{Deserialize, Serialize};

/// One file of a model the browser downloads.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelFile {
    /// Path relative to the model's base URL, e.g. `1_Pooling/config.json`.
    pub name: String,
    /// Size in bytes; a cached copy of another size is stale.
    pub bytes: u64,
}

/// The files of one model, as served at `/api/models/<name>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelManifest {
    pub name: String,
    /// URL prefix under which the files are served.
    pub base_url: String,
    pub files: Vec<ModelFile>,
}
