//! The host (CPU) side of synthsae.
//!
//! * [`Csr`]: the workspace's one compressed-sparse-row type (sampled
//!   batches, sparse latents, kept entries);
//! * [`backend`]: the one test of "is this a CPU backend";
//! * [`view`]: tensor read-backs and zero-copy host views of Flex buffers;
//! * [`kernels`]: the SIMD kernels, dispatched at run time, and
//!   [`multiversioned!`], the one list of their instruction sets.
//!
//! Lower than every other synthsae crate: it knows tensors and buffers,
//! not models, SAEs or training.

pub mod backend;
pub mod csr;
pub mod error;
pub mod kernels;
pub mod view;

pub use backend::{cpu_kind, is_cpu, is_cpu_autodiff, CpuBackend, CpuKind};
pub use csr::Csr;
pub use error::{HostError, Result};
pub use view::{host_values, to_vec, try_to_i64, try_to_vec, HostF32};
