//! The sweep crate's error type.

use std::path::PathBuf;

use thiserror::Error;

/// Everything a sweep can fail with, each naming the run, field or file.
#[derive(Debug, Error)]
pub enum SweepError {
    /// The sweep spec is invalid (`field` is a spec key or a key path).
    #[error("sweep spec: invalid `{field}`: {reason}")]
    Spec {
        /// The spec key or key path.
        field: String,
        /// Why.
        reason: String,
    },
    /// One expanded run's config is invalid.
    #[error("sweep run `{run}`: {reason}")]
    Run {
        /// The run's name.
        run: String,
        /// Why (names the field).
        reason: String,
    },
    /// The sweep folder cannot be used (another spec's folder, a missing
    /// file, an unknown group).
    #[error("sweep folder {}: {reason}", path.display())]
    Folder {
        /// The folder.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// Reading or writing a file failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// Training failed as a whole (a group's stream or model).
    #[error(transparent)]
    Train(#[from] synthsae_train::TrainError),
    /// A plot of the report failed.
    #[error(transparent)]
    Eval(#[from] synthsae_eval::EvalError),
    /// Submitting to Slurm failed.
    #[error("slurm: {0}")]
    Slurm(String),
}

impl SweepError {
    /// Shorthand for [`SweepError::Spec`].
    pub fn spec(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self::Spec {
            field: field.into(),
            reason: reason.into(),
        }
    }

    /// Shorthand for [`SweepError::Run`].
    pub fn run(run: impl Into<String>, reason: impl Into<String>) -> Self {
        Self::Run {
            run: run.into(),
            reason: reason.into(),
        }
    }

    /// Shorthand for [`SweepError::Folder`].
    pub fn folder(path: impl Into<PathBuf>, reason: impl Into<String>) -> Self {
        Self::Folder {
            path: path.into(),
            reason: reason.into(),
        }
    }

    /// Shorthand for [`SweepError::Io`].
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            path: path.into(),
            source,
        }
    }
}

/// Result alias for this crate.
pub type Result<T> = std::result::Result<T, SweepError>;
