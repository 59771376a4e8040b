//! What [`crate::Sae::forward_sparse`] returns: latents kept sparse.
//!
//! A TopK SAE with 16384 latents and k 25 has 0.15 % of its `[batch, S]`
//! latents non-zero; an evaluator that only counts firings, gathers a few
//! values and reconstructs never needs the dense matrix, so the SAE hands
//! the non-zero entries over directly as a [`Csr`].

use burn::prelude::*;
use synthsae_host::Csr;

/// One batch through an SAE with sparse latents.
#[derive(Debug, Clone)]
pub struct SparseForward<B: Backend> {
    /// The latents `encode` would return, as the non-zero entries of
    /// `[batch, d_sae]` (every stored value `≠ 0`).
    pub latents: Csr,
    /// The reconstruction `decode` would return: `[batch, d_in]`.
    pub output: Tensor<B, 2>,
}
