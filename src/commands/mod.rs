//! Command implementations: each composes library calls and formats output.

pub mod sample;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use synthsae::backend::BackendUnavailable;
use synthsae::data::DataError;
use synthsae::BackendKind;

/// Options shared by every command.
#[derive(Debug, Clone, Copy)]
pub struct GlobalOpts {
    /// Backend to run on.
    pub backend: BackendKind,
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
    /// The requested backend is not compiled in.
    #[error(transparent)]
    Backend(#[from] BackendUnavailable),
    /// A flag combination that cannot work.
    #[error("invalid `--{flag}`: {reason}")]
    Usage {
        /// The flag, without dashes.
        flag: &'static str,
        /// Why.
        reason: String,
    },
    /// Writing output failed.
    #[error("cannot write output: {0}")]
    Output(#[from] serde_json::Error),
}

impl CliError {
    /// 2 for usage errors (as clap), 1 for runtime errors.
    pub fn exit_code(&self) -> u8 {
        match self {
            Self::Usage { .. } | Self::Backend(_) => 2,
            _ => 1,
        }
    }
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
