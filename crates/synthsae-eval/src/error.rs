//! The crate's error type.

use synthsae_data::DataError;

/// Everything that can go wrong while evaluating or plotting. Each variant
/// names the offending field and why it was rejected; nothing reachable from
/// user input panics.
#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    /// A tensor or slice has the wrong shape.
    #[error("{field}: expected shape {expected}, got {got}")]
    Shape {
        /// What was passed (e.g. `"sae_latents"`).
        field: String,
        /// The shape that was expected, in words.
        expected: String,
        /// The shape that was received.
        got: String,
    },
    /// A parameter is out of its valid range.
    #[error("{field}: {reason}")]
    InvalidArgument {
        /// Parameter name.
        field: String,
        /// Why it was rejected.
        reason: String,
    },
    /// A value is NaN or infinite where a finite number is needed.
    #[error("{field}: contains a non-finite value ({reason})")]
    NonFinite {
        /// What contains it.
        field: String,
        /// Where / which value.
        reason: String,
    },
    /// Reading a tensor back from its device failed.
    #[error("reading {field} from the device failed: {reason}")]
    Device {
        /// The tensor.
        field: String,
        /// The backend's message.
        reason: String,
    },
    /// A file could not be read, parsed or written.
    #[error("{path}: {reason}")]
    File {
        /// The path.
        path: String,
        /// What went wrong.
        reason: String,
    },
    /// Drawing a plot failed.
    #[error("plot {what}: {reason}")]
    Plot {
        /// Which plot.
        what: String,
        /// The drawing backend's message.
        reason: String,
    },
    /// An error from the synthetic-data crate (sampling, dictionary).
    #[error(transparent)]
    Data(#[from] DataError),
    /// Malformed sparse rows or a failed device read-back.
    #[error(transparent)]
    Host(#[from] synthsae_host::HostError),
}

/// Result alias for this crate.
pub type Result<T, E = EvalError> = std::result::Result<T, E>;

pub(crate) fn shape_err(field: &str, expected: impl Into<String>, got: &[usize]) -> EvalError {
    EvalError::Shape {
        field: field.to_string(),
        expected: expected.into(),
        got: format!("{got:?}"),
    }
}

pub(crate) fn invalid(field: &str, reason: impl Into<String>) -> EvalError {
    EvalError::InvalidArgument {
        field: field.to_string(),
        reason: reason.into(),
    }
}
