//! Hugging Face Hub client for synthsae.
//!
//! It moves files and knows no model types: callers name the files they need.
//!
//! * **Sources** ([`parse_source`]) follow sae-lens's `load_from_source`: a
//!   path (`/…`, `./…`, `../…`, `~…`, anything with a backslash, or an
//!   existing path) is local; anything else is `repo_id` or
//!   `repo_id:subfolder` on the hub.
//! * **Downloads** ([`HubClient::resolve_source`], [`HubClient::download`],
//!   [`HubClient::download_files`]) fetch only the requested files into the
//!   cache layout of Python's huggingface_hub
//!   (`$HF_HUB_CACHE/models--{ns}--{name}/{blobs,snapshots/<commit>,refs}`),
//!   so Rust and Python share downloads. Each file is checked against the
//!   size and etag the hub reports before it enters the cache.
//! * **Uploads** ([`HubClient::upload_folder`]) create the repository if
//!   needed and commit files in one commit (regular files inline, large and
//!   `.safetensors` files through LFS), as sae-lens's upload helper.
//! * **Configuration** ([`HubClient::from_env`]) reads `HF_ENDPOINT`,
//!   `HF_HOME`, `HF_HUB_CACHE`, `HF_TOKEN` (or the token file) and
//!   `HF_HUB_OFFLINE` like huggingface_hub; [`HubClient::builder`] sets them
//!   explicitly.
//!
//! Built on the `hf-hub` crate for the cache layout; requests go through
//! `ureq` (the HTTP client hf-hub itself uses) because hf-hub's sync API
//! cannot tell "repository not found" from "file not found", has no offline
//! mode, does not verify downloads and has no upload API (details in the
//! `download` and `upload` module docs).
//!
//! ```no_run
//! use synthsae_hub::{FileSet, HubClient};
//!
//! let hub = HubClient::from_env()?;
//! let files = FileSet::new(
//!     &["synthetic_model_config.json", "synthetic_model.safetensors"],
//!     &["hierarchy.json"],
//! );
//! let dir = hub.resolve_source("org/synthetic-models:bench16k", &files)?;
//! println!("load the model from {}", dir.display());
//! # Ok::<(), synthsae_hub::HubError>(())
//! ```

mod client;
mod download;
mod error;
mod source;
mod upload;

pub use client::{EnvSettings, HubClient, HubClientBuilder, DEFAULT_ENDPOINT};
pub use download::{FileMetadata, Snapshot};
pub use error::{HubError, Result};
pub use source::{normalize_subfolder, parse_source, validate_repo_id, FileSet, Source};
pub use upload::{CommitInfo, UploadOptions};

#[cfg(feature = "emulator")]
pub mod emulator;
