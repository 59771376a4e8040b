//! The host crate's error type.

use thiserror::Error;

/// What can go wrong in host-side data handling: malformed CSR parts and
/// failed device read-backs. Every variant names the field and the reason.
#[derive(Debug, Error)]
pub enum HostError {
    /// A value outside its allowed range.
    #[error("invalid `{field}`: {reason}")]
    InvalidParameter {
        /// The offending part.
        field: String,
        /// Why it was rejected.
        reason: String,
    },
    /// A buffer of the wrong length.
    #[error("`{field}` has shape {actual:?}, expected {expected}")]
    Shape {
        /// The offending part.
        field: String,
        /// The expected shape, e.g. `[nnz] = [12]`.
        expected: String,
        /// The shape that was given.
        actual: Vec<usize>,
    },
    /// Reading a tensor back from its device failed.
    #[error("reading `{what}` back from the device failed: {reason}")]
    Device {
        /// Which tensor.
        what: String,
        /// The backend's message.
        reason: String,
    },
}

/// Result alias for this crate.
pub type Result<T> = std::result::Result<T, HostError>;

pub(crate) fn invalid(field: impl Into<String>, reason: impl Into<String>) -> HostError {
    HostError::InvalidParameter {
        field: field.into(),
        reason: reason.into(),
    }
}

pub(crate) fn bad_shape(
    field: impl Into<String>,
    expected: impl Into<String>,
    actual: &[usize],
) -> HostError {
    HostError::Shape {
        field: field.into(),
        expected: expected.into(),
        actual: actual.to_vec(),
    }
}
