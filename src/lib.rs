#![doc = include_str!("../README.md")]
//!
//! ## Crate layout
//!
//! This facade re-exports the layered crates and picks a Burn backend at run
//! time. [`data`]: synthetic feature activations (firing probabilities,
//! magnitudes, correlations, the feature dictionary, superposition stats).

pub mod alloc_tuning;
pub mod backend;
pub mod sources;

pub use synthsae_data as data;
pub use synthsae_eval as eval;
pub use synthsae_host as host;
pub use synthsae_hub as hub;
pub use synthsae_sae as sae;
pub use synthsae_sweep as sweep;
pub use synthsae_train as train;

pub use backend::{BackendJob, BackendKind};

/// The Rust snippets of `docs/getting-started.md`, compiled and run as doc
/// tests (`cargo test --doc -p synthsae`).
#[cfg(doctest)]
#[doc = include_str!("../docs/getting-started.md")]
pub struct GettingStartedDoctests;
