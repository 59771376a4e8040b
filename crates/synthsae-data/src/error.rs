//! The data crate's error type.

use thiserror::Error;

/// Everything that can go wrong while building or sampling synthetic data.
///
/// Every variant names the offending parameter (or file) and the reason, so a
/// caller can print it as one readable line.
#[derive(Debug, Error)]
pub enum DataError {
    /// A parameter has a value outside its allowed range.
    #[error("invalid `{field}`: {reason}")]
    InvalidParameter {
        /// Name of the parameter, as it appears in sae-lens configs where one exists.
        field: String,
        /// Why the value was rejected.
        reason: String,
    },
    /// A vector or matrix has the wrong shape.
    #[error("`{field}` has shape {actual:?}, expected {expected}")]
    Shape {
        /// Name of the parameter.
        field: String,
        /// Description of the expected shape, e.g. `[N, N] = [16, 16]`.
        expected: String,
        /// The shape that was given.
        actual: Vec<usize>,
    },
    /// A `generator_name` that no registry knows.
    #[error("unknown {kind} generator_name `{name}`; available: {available:?}")]
    UnknownGenerator {
        /// `"firing probability"` or `"magnitude"`.
        kind: &'static str,
        /// The name that was looked up.
        name: String,
        /// Names known to the registry.
        available: Vec<String>,
    },
    /// A name registered twice.
    #[error("{kind} generator_name `{name}` is already registered")]
    AlreadyRegistered {
        /// `"firing probability"` or `"magnitude"`.
        kind: &'static str,
        /// The duplicate name.
        name: String,
    },
    /// A configuration could not be parsed.
    #[error("invalid {what}: {source}")]
    Json {
        /// What was being parsed.
        what: String,
        /// The underlying serde error.
        #[source]
        source: serde_json::Error,
    },
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: std::path::PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// A file has the wrong content (corrupt, truncated, missing tensor, wrong shape).
    #[error("{path}: {reason}")]
    File {
        /// The file.
        path: std::path::PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// Malformed sparse rows or a failed device read-back.
    #[error(transparent)]
    Host(#[from] synthsae_host::HostError),
}

/// Result alias for this crate.
pub type Result<T> = std::result::Result<T, DataError>;

/// Shorthand for [`DataError::InvalidParameter`].
pub(crate) fn invalid(field: impl Into<String>, reason: impl Into<String>) -> DataError {
    DataError::InvalidParameter {
        field: field.into(),
        reason: reason.into(),
    }
}

/// Shorthand for [`DataError::Shape`].
pub(crate) fn bad_shape(
    field: impl Into<String>,
    expected: impl Into<String>,
    actual: &[usize],
) -> DataError {
    DataError::Shape {
        field: field.into(),
        expected: expected.into(),
        actual: actual.to_vec(),
    }
}
