//! The training crate's error type.

use std::path::PathBuf;

use thiserror::Error;

/// Everything that can stop a training run, each naming what went wrong.
#[derive(Debug, Error)]
pub enum TrainError {
    /// A trainer or runner config field has an invalid value.
    #[error("invalid `{field}`: {reason}")]
    Config {
        /// The field name, as in sae-lens's `runner_config.json`.
        field: String,
        /// Why the value was rejected.
        reason: String,
    },
    /// A loss term or the gradients became NaN or infinite.
    #[error(
        "non-finite {what} at step {step}{}",
        checkpoint
            .as_ref()
            .map(|p| format!("; last good state saved to {}", p.display()))
            .unwrap_or_default()
    )]
    NonFinite {
        /// 0-based training step.
        step: u64,
        /// The loss term (`mse_loss`, ...) or `gradient norm`.
        what: String,
        /// Checkpoint of the state before the failing step, if one was written.
        checkpoint: Option<PathBuf>,
    },
    /// A checkpoint is missing, incomplete, or does not match the run.
    #[error("checkpoint {path}: {reason}")]
    Checkpoint {
        /// The checkpoint directory or file.
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
    /// The data crate failed (model loading, sampling).
    #[error(transparent)]
    Data(#[from] synthsae_data::DataError),
    /// The SAE crate failed (config, init, files).
    #[error(transparent)]
    Sae(#[from] synthsae_sae::SaeError),
    /// An evaluation failed.
    #[error("evaluation: {0}")]
    Eval(String),
}

impl TrainError {
    /// Shorthand for [`TrainError::Config`].
    pub fn config(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self::Config {
            field: field.into(),
            reason: reason.into(),
        }
    }

    /// Shorthand for [`TrainError::Io`].
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            path: path.into(),
            source,
        }
    }

    /// Shorthand for [`TrainError::Checkpoint`].
    pub fn checkpoint(path: impl Into<PathBuf>, reason: impl Into<String>) -> Self {
        Self::Checkpoint {
            path: path.into(),
            reason: reason.into(),
        }
    }
}

/// Result alias for this crate.
pub type Result<T> = std::result::Result<T, TrainError>;
