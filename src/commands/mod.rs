//! Command implementations: each composes library calls and formats output.

pub mod eval;
pub mod hub;
pub mod model;
pub mod plot;
pub mod quickstart;
pub mod sample;
pub mod sweep;
pub mod synthsaebench;
pub mod train;

use std::path::{Path, PathBuf};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use synthsae::backend::BackendUnavailable;
use synthsae::data::DataError;
use synthsae::BackendKind;

/// Options shared by every command.
#[derive(Debug, Clone, Copy)]
pub struct GlobalOpts {
    /// Backend to run on.
    pub backend: BackendKind,
    /// Whether `--backend` was given (else a config may choose).
    pub backend_explicit: bool,
    /// JSON output.
    pub json: bool,
    /// No progress bars.
    pub quiet: bool,
}

/// Everything a command can fail with; printed as one line.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// Invalid data parameters or a failed data operation.
    #[error(transparent)]
    Data(#[from] DataError),
    /// Training failed (config, checkpoint, non-finite loss, ...).
    #[error(transparent)]
    Train(#[from] synthsae::train::TrainError),
    /// An evaluation or a plot failed.
    #[error(transparent)]
    Eval(#[from] synthsae::eval::EvalError),
    /// An SAE config or file cannot be used.
    #[error(transparent)]
    Sae(#[from] synthsae::sae::SaeError),
    /// The requested backend is not compiled in.
    #[error(transparent)]
    Backend(#[from] BackendUnavailable),
    /// A hub download or upload failed (or a hub reference is malformed).
    #[error(transparent)]
    Hub(#[from] synthsae_hub::HubError),
    /// A flag value that cannot work.
    #[error("invalid `--{flag}`: {reason}")]
    Usage {
        /// The flag, without dashes.
        flag: &'static str,
        /// Why.
        reason: String,
    },
    /// An input file that cannot be used.
    #[error("{}: {reason}", path.display())]
    Input {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// A sweep spec, folder or report cannot be used.
    #[error(transparent)]
    Sweep(#[from] synthsae_sweep::SweepError),
    /// Writing output failed.
    #[error("cannot write output: {0}")]
    Output(String),
}

impl From<serde_json::Error> for CliError {
    fn from(e: serde_json::Error) -> Self {
        Self::Output(e.to_string())
    }
}

impl CliError {
    /// 2 for usage errors (as clap), 1 for runtime errors.
    pub fn exit_code(&self) -> u8 {
        match self {
            Self::Usage { .. } | Self::Backend(_) => 2,
            Self::Hub(e) if e.is_usage() => 2,
            _ => 1,
        }
    }
}

/// A usage error naming `flag` when `value` is 0.
pub fn at_least_one(flag: &'static str, value: usize) -> Result<(), CliError> {
    if value == 0 {
        return Err(CliError::Usage {
            flag,
            reason: "must be at least 1".into(),
        });
    }
    Ok(())
}

/// Writes `bytes` to `path` via a temporary file and a rename, so a failed
/// or interrupted run never leaves a half-written file.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), CliError> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)
            .map_err(|e| CliError::Output(format!("{}: {e}", parent.display())))?;
    }
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(format!(".tmp-{}", std::process::id()));
    let tmp = PathBuf::from(tmp);
    std::fs::write(&tmp, bytes).map_err(|e| CliError::Output(format!("{}: {e}", tmp.display())))?;
    std::fs::rename(&tmp, path).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        CliError::Output(format!("{}: {e}", path.display()))
    })
}

/// A progress bar on stderr (hidden with `--quiet` or when stderr is not a terminal).
pub fn progress(len: u64, msg: &str, quiet: bool) -> ProgressBar {
    let target = if quiet {
        ProgressDrawTarget::hidden()
    } else {
        ProgressDrawTarget::stderr()
    };
    let pb = ProgressBar::with_draw_target(Some(len), target);
    pb.set_style(
        ProgressStyle::with_template(
            "{msg:>14} [{bar:30}] {human_pos}/{human_len} ({per_sec}, {eta})",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    pb.set_message(msg.to_string());
    pb
}
