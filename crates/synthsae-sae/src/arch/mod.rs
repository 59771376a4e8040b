//! The architectures, one per file.
//!
//! Inference forms implement [`crate::Sae`]; training forms implement the
//! training forward pass that [`crate::AnyTrainingSae`] dispatches to. The
//! pieces they share live outside: [`crate::linear`] (weights and input
//! processing), [`crate::normalize`] (per-sample normalisation),
//! `cpu_train` (the TopK family's CPU training path).

pub mod batchtopk;
pub mod gated;
pub mod jumprelu;
pub mod matching_pursuit;
pub mod matryoshka;
pub mod standard;
pub mod topk;
