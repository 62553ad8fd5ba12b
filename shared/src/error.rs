//! Errors of model loading and inference, each naming the file or tensor key at fault.

use thiserror::Error;

/// Why a model could not be loaded or run.
#[derive(Debug, Error)]
pub enum ModelError {
    /// A file could not be read.
    #[error("cannot read {file}: {reason}")]
    Io { file: String, reason: String },
    /// A file was read but its contents are not what the model needs.
    #[error("{file} is not valid: {reason}")]
    Invalid { file: String, reason: String },
    /// A weight the architecture needs is absent from the weights file.
    #[error("{file} has no tensor `{key}`")]
    MissingTensor { file: String, key: String },
    /// A weight has another shape than the configuration implies.
    #[error("{file}: tensor `{key}` has shape {found:?}, expected {expected:?}")]
    Shape { file: String, key: String, expected: Vec<usize>, found: Vec<usize> },
    /// A weight is stored in a type we cannot read.
    #[error("{file}: tensor `{key}` has dtype {dtype}, expected F32, F16 or BF16")]
    DType { file: String, key: String, dtype: String },
    /// The tokenizer rejected an input.
    #[error("tokenizer: {0}")]
    Tokenizer(String),
    /// Reading results back from the device failed.
    #[error("reading results from the device failed: {0}")]
    Device(String),
}

/// Result with a [`ModelError`].
pub type Result<T, E = ModelError> = std::result::Result<T, E>;
