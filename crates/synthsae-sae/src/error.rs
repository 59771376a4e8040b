//! The SAE crate's error type.

use std::path::PathBuf;

use thiserror::Error;

/// Everything that can go wrong while building, loading or saving an SAE.
///
/// Every variant names the offending field, tensor or file and the reason.
#[derive(Debug, Error)]
pub enum SaeError {
    /// A config field has a value outside its allowed range.
    #[error("invalid `{field}`: {reason}")]
    InvalidConfig {
        /// Name of the field, as in sae-lens's `cfg.json`.
        field: String,
        /// Why the value was rejected.
        reason: String,
    },
    /// An `architecture` name that synthsae does not know.
    #[error("unknown SAE architecture `{name}`; available: {available:?}")]
    UnknownArchitecture {
        /// The name found in the config.
        name: String,
        /// Names synthsae knows.
        available: Vec<&'static str>,
    },
    /// A tensor has the wrong shape.
    #[error("tensor `{name}` has shape {actual:?}, expected {expected:?}")]
    Shape {
        /// Tensor name (`W_enc`, `threshold`, ...) or argument name.
        name: String,
        /// The shape required by the config.
        expected: Vec<usize>,
        /// The shape that was found.
        actual: Vec<usize>,
    },
    /// A tensor the architecture needs is absent from the weights file.
    #[error("{path}: missing tensor `{name}`")]
    MissingTensor {
        /// The weights file.
        path: PathBuf,
        /// The tensor's name.
        name: String,
    },
    /// A file exists but cannot be parsed.
    #[error("{path}: {reason}")]
    File {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// Reading or writing a file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// An operation that the architecture does not support (e.g. folding
    /// decoder norms into a tied matching-pursuit SAE).
    #[error("{architecture}: {operation} is not supported")]
    Unsupported {
        /// The architecture name.
        architecture: String,
        /// What was asked.
        operation: String,
    },
}

/// Result alias for this crate.
pub type Result<T> = std::result::Result<T, SaeError>;

/// [`SaeError::InvalidConfig`] for `field`.
pub(crate) fn invalid(field: &str, reason: impl Into<String>) -> SaeError {
    SaeError::InvalidConfig {
        field: field.into(),
        reason: reason.into(),
    }
}
