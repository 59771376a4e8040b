//! # synthsae-sae
//!
//! Sparse autoencoders (SAEs) in training and inference form, generic over Burn
//! backends, read and written in sae-lens 6.54.12's own on-disk layout
//! (`cfg.json` + `sae_weights.safetensors`).
//!
//! Shapes: input dimension `D` (`d_in`), number of latents `S` (`d_sae`),
//! batch size `B`.
//!
//! The two traits in [`sae`] are what the rest of synthsae sees:
//! [`Sae`] (inference: encode, decode, decoder rows) for the evaluator and
//! [`TrainingSae`] (loss terms by name, coefficients, per-step state) for the
//! trainer. Neither the evaluator nor the trainer knows which architecture is
//! behind them.

pub mod error;
pub mod sae;

pub use error::{Result, SaeError};
pub use sae::{Coefficient, Sae, TrainStepInput, TrainStepOutput, TrainingSae};
