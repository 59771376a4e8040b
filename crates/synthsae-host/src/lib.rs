//! The host (CPU) side of synthsae.
//!
//! * [`Csr`]: the workspace's one compressed-sparse-row type (sampled
//!   batches, sparse latents, kept entries);
//! * [`adam`]: one Adam update of one parameter on host buffers;
//! * [`cosine`]: cosine-similarity matrices of host row sets by one gemm;
//! * [`backend`]: the one test of "is this a CPU backend";
//! * [`view`]: tensor read-backs and zero-copy host views of Flex buffers;
//! * [`kernels`]: the SIMD kernels, dispatched at run time, and
//!   [`multiversioned!`], the one list of their instruction sets;
//! * [`select`]: order statistics on host rows (the TopK cut-offs);
//! * [`kept`]: the kept entries of a TopK-family training step;
//! * [`aux_k`]: the TopK family's aux-k rule;
//! * [`firing`]: a batch's firing summary;
//! * [`gemm`]: the encoder product with the bias pre-filled;
//! * [`autodiff`]: custom autodiff nodes with sparse gradients (CPU
//!   `Autodiff` backends);
//! * [`inference`], [`sparse_forward`]: untracked inference fast paths
//!   (CPU backends);
//! * [`profile`]: the opt-in wall-clock breakdown of a run by phase;
//! * [`precision`]: float32 or bf16-autocast matrix products.
//!
//! Lower than every other synthsae crate: it knows tensors and buffers,
//! not models, SAEs or training. Every fast path returns `None` (or is not
//! taken) off the CPU backends; callers then use their generic tensor
//! formulation.

pub mod adam;
pub mod autodiff;
pub mod aux_k;
pub mod backend;
pub mod cosine;
pub mod csr;
mod dispatch;
pub mod error;
pub mod firing;
pub mod gemm;
pub mod inference;
pub mod kept;
pub mod kernels;
pub mod precision;
pub mod profile;
pub mod select;
pub mod sparse_forward;
pub mod view;

pub use adam::{AdamRule, AdamUpdate};
pub use backend::{cpu_kind, is_cpu, is_cpu_autodiff, CpuBackend, CpuKind};
pub use csr::Csr;
pub use error::{HostError, Result};
pub use firing::Firing;
pub use precision::Precision;
pub use view::{host_values, to_vec, try_to_i64, try_to_vec, HostF32};
