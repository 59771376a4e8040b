//! synthsae's error types as Python exceptions: files that cannot be read or
//! written raise `OSError`, everything else the caller can fix (configs,
//! arguments, shapes, unknown names) raises `ValueError`, and a failure
//! inside a computation raises `RuntimeError`.

use pyo3::exceptions::{PyOSError, PyRuntimeError, PyValueError};
use pyo3::PyErr;
use synthsae::data::DataError;
use synthsae::eval::EvalError;
use synthsae::hub::HubError;
use synthsae::sae::SaeError;
use synthsae::train::TrainError;

/// Converts a crate error into the Python exception that fits it.
pub trait ToPyErr {
    /// The exception.
    fn to_py(self) -> PyErr;
}

impl ToPyErr for DataError {
    fn to_py(self) -> PyErr {
        match &self {
            DataError::Io { .. } | DataError::File { .. } => PyOSError::new_err(self.to_string()),
            _ => PyValueError::new_err(self.to_string()),
        }
    }
}

impl ToPyErr for EvalError {
    fn to_py(self) -> PyErr {
        match self {
            EvalError::Data(e) => e.to_py(),
            EvalError::File { .. } => PyOSError::new_err(self.to_string()),
            EvalError::Device { .. } | EvalError::Plot { .. } | EvalError::Host(_) => {
                PyRuntimeError::new_err(self.to_string())
            }
            _ => PyValueError::new_err(self.to_string()),
        }
    }
}

impl ToPyErr for SaeError {
    fn to_py(self) -> PyErr {
        match &self {
            SaeError::Io { .. } | SaeError::File { .. } => PyOSError::new_err(self.to_string()),
            _ => PyValueError::new_err(self.to_string()),
        }
    }
}

impl ToPyErr for HubError {
    fn to_py(self) -> PyErr {
        match &self {
            HubError::InvalidSource { .. } | HubError::Config(_) => {
                PyValueError::new_err(self.to_string())
            }
            _ => PyOSError::new_err(self.to_string()),
        }
    }
}

impl ToPyErr for TrainError {
    fn to_py(self) -> PyErr {
        match self {
            TrainError::Data(e) => e.to_py(),
            TrainError::Sae(e) => e.to_py(),
            TrainError::Io { .. } | TrainError::Checkpoint { .. } => {
                PyOSError::new_err(self.to_string())
            }
            TrainError::Config { .. } => PyValueError::new_err(self.to_string()),
            _ => PyRuntimeError::new_err(self.to_string()),
        }
    }
}

/// `Result<T, E>` to `PyResult<T>`.
pub trait PyResultExt<T> {
    /// The value, or the error as its Python exception.
    fn py(self) -> pyo3::PyResult<T>;
}

impl<T, E: ToPyErr> PyResultExt<T> for Result<T, E> {
    fn py(self) -> pyo3::PyResult<T> {
        self.map_err(ToPyErr::to_py)
    }
}

/// A `ValueError` naming the argument.
pub fn bad_argument(name: &str, reason: impl std::fmt::Display) -> PyErr {
    PyValueError::new_err(format!("{name}: {reason}"))
}
