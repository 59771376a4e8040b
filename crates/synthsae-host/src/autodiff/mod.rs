//! Custom autodiff nodes for training on the CPU backends
//! (`Autodiff<Flex>`, `Autodiff<NdArray>`), whose forward and backward
//! passes run on host buffers with rayon.
//!
//! A TopK / BatchTopK step keeps `k` of `S` latents per sample (about 1 %).
//! Written with dense tensor ops, its backward pass still runs four dense
//! `[B, D] × [D, S]` products (decoder gradient and the gradient of the
//! latents, encoder weight gradient and input gradient), plus three more for
//! the aux-k loss, although only the kept entries carry gradient. Burn's
//! `select` / `select_assign` make the work sparse but cost microseconds per
//! entry on the CPU backends. The nodes here do the sparse work on host
//! buffers:
//!
//! * [`linear_sparse_grad`]: `x · W + b` (a dense product forward); the
//!   backward pass reads the output gradient and, when it is sparse,
//!   computes the three gradients from its non-zero entries only;
//! * [`masked_decode`]: the decode of a TopK step's kept entries, with the
//!   exact gradients for the pre-activations, `W_dec` and the decoder norms;
//! * [`topk_loss`]: the TopK family's whole loss (reconstruction + aux-k)
//!   as one node;
//! * [`standard_loss`]: the standard SAE's whole loss as one node.
//!
//! Every function returns `None` unless `B` is `Autodiff` of a CPU backend
//! ([`crate::is_cpu_autodiff`]); callers then use the generic tensor
//! formulation (same values, same gradients). Results match the dense
//! formulation to float rounding (the sums run in another order); on one
//! machine they are deterministic (every reduction has a fixed order,
//! whatever the number of threads).

mod columns;
mod linear;
mod masked_decode;
mod prim;
mod standard;
mod topk_loss;

pub use linear::{linear_sparse_grad, SPARSE_GRAD_MAX_DENSITY};
pub use masked_decode::masked_decode;
pub use standard::{standard_loss, StandardLoss};
pub use topk_loss::{topk_loss, AuxSpec, TopKLoss, TopKLossSpec};
