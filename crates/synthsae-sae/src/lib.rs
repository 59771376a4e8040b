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
//! behind them: [`AnySae`] and [`AnyTrainingSae`] dispatch to the
//! architectures in [`arch`].
//!
//! ```
//! use burn::backend::NdArray;
//! use synthsae_sae::{Sae, TrainingSaeConfig};
//!
//! let cfg = TrainingSaeConfig::new("batchtopk", 16, 64)?;
//! let sae = cfg.init::<NdArray>(&Default::default(), 0)?;
//! let inference = sae.to_inference_sae(); // a JumpReLU SAE, as sae-lens exports it
//! assert_eq!(inference.d_sae(), 64);
//! # Ok::<(), synthsae_sae::SaeError>(())
//! ```

pub mod any;
pub mod arch;
pub mod config;
mod cpu_train;
pub mod error;
pub mod init;
pub mod io;
pub mod linear;
pub mod normalize;
pub mod ops;
pub mod sae;
pub mod sparse;
#[cfg(test)]
mod tests;

pub use any::{AnySae, AnyTrainingSae};
pub use config::{
    InferenceArch, NormalizeActivations, SaeBase, SaeConfig, TrainingArch, TrainingSaeConfig,
};
pub use error::{Result, SaeError};
pub use sae::{
    Coefficient, Firing, Sae, StepLatents, TrainStepInput, TrainStepOutput, TrainingSae,
};
pub use sparse::SparseForward;
pub use synthsae_host::{Csr, Precision};
