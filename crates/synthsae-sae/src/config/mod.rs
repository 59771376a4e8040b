//! SAE configs in sae-lens's JSON form (spec §10.1–§10.11).
//!
//! * [`TrainingSaeConfig`] ([`training`]): the *training* config (`cfg.json`
//!   of a training checkpoint, or the runner's `sae` object): shared fields,
//!   then `decoder_init_norm`, then the architecture's fields, then
//!   `architecture`.
//! * [`SaeConfig`] ([`inference`]): the *inference* config (`cfg.json`
//!   written by `save_inference_model`): shared fields, the inference
//!   architecture's fields and `architecture` (BatchTopK and Matryoshka
//!   BatchTopK become `"jumprelu"`).
//! * [`SaeBase`] ([`base`]): the fields both share.
//!
//! Each architecture's fields are a struct beside its module
//! (`arch/<name>/config.rs`, re-exported here), with serde derive: field
//! order is file order, and the defaults are stated once, in its `Default`.
//! [`fields`] reads them with sae-lens's rules, so any key a struct does not
//! know is ignored, and a wrong type or value names the field.

pub mod base;
pub(crate) mod fields;
pub mod inference;
pub mod training;

pub use crate::arch::batchtopk::config::BatchTopKConfig;
pub use crate::arch::gated::config::GatedConfig;
pub use crate::arch::jumprelu::config::{JumpReluConfig, SparsityLossMode};
pub use crate::arch::matching_pursuit::config::MatchingPursuitConfig;
pub use crate::arch::matryoshka::config::MatryoshkaConfig;
pub use crate::arch::standard::config::StandardConfig;
pub use crate::arch::topk::config::TopKConfig;
pub use base::{NormalizeActivations, SaeBase, SAE_LENS_VERSION};
pub use inference::{InferenceArch, SaeConfig, INFERENCE_ARCHITECTURES};
pub use training::{TrainingArch, TrainingSaeConfig, TRAINING_ARCHITECTURES};
