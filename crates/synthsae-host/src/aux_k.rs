//! The aux-k rule of the TopK family (spec §10.3), written once for the
//! generic tensor formulation and the CPU fast paths.
//!
//! A latent is dead when the trainer's dead mask says so. With `n_dead` dead
//! latents (in the whole SAE, or in one Matryoshka level) and `k_aux = D / 2`,
//! each row selects its `min(k_aux, n_dead)` largest dead pre-activations,
//! decodes them (no `b_dec`) and fits the detached residual `x − x̂`; the
//! group's loss `mean_rows(‖ê − (x − x̂)‖²)` is weighted by
//! `min(n_dead / k_aux, 1)` and the aux coefficient. No dead latent, or
//! `k_aux = 0`: no aux loss.

use burn::prelude::*;

use crate::view::to_vec;

/// The aux-k parameters of one group of latents.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AuxK {
    /// Entries selected per row among the dead latents: `min(k_aux, n_dead)`.
    pub k: usize,
    /// Weight of the group's loss: `min(n_dead / k_aux, 1)`.
    pub scale: f64,
}

impl AuxK {
    /// `k_aux` of an SAE with `d_in` inputs: `d_in / 2`.
    pub fn k_aux(d_in: usize) -> usize {
        d_in / 2
    }

    /// The rule for `n_dead` dead latents of an SAE with `d_in` inputs;
    /// `None` when there is no aux loss (no dead latent, or `k_aux = 0`).
    pub fn new(d_in: usize, n_dead: usize) -> Option<Self> {
        let k_aux = Self::k_aux(d_in);
        (n_dead > 0 && k_aux > 0).then(|| Self {
            k: k_aux.min(n_dead),
            scale: (n_dead as f64 / k_aux as f64).min(1.0),
        })
    }
}

/// The residual the aux entries fit: `x − x̂`, detached, `[B, D]`.
pub fn residual<B: Backend>(x: Tensor<B, 2>, x_hat: Tensor<B, 2>) -> Tensor<B, 2> {
    (x - x_hat).detach()
}

/// The unweighted aux loss of one group: `mean_rows(‖ê − residual‖²)`, `[1]`
/// (`recons` = the decode `ê` of the group's aux entries, `[B, D]`).
pub fn fit_loss<B: Backend>(recons: Tensor<B, 2>, residual: Tensor<B, 2>) -> Tensor<B, 1> {
    (recons - residual).powi_scalar(2).sum_dim(1).mean()
}

/// The dead mask `[S]` on the host.
pub fn dead_flags<B: Backend>(dead: &Tensor<B, 1, Bool>) -> Vec<bool> {
    to_vec(dead.clone().float())
        .into_iter()
        .map(|v| v != 0.0)
        .collect()
}

/// Number of dead latents in a mask `[S]` (a host read-back).
pub fn count_dead<B: Backend>(dead: &Tensor<B, 1, Bool>) -> usize {
    to_vec(dead.clone().float())
        .iter()
        .filter(|&&v| v != 0.0)
        .count()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_aux_loss_without_dead_latents_or_inputs() {
        assert_eq!(AuxK::new(8, 0), None);
        assert_eq!(AuxK::new(1, 5), None);
        assert_eq!(AuxK::new(8, 2), Some(AuxK { k: 2, scale: 0.5 }));
        assert_eq!(AuxK::new(8, 16), Some(AuxK { k: 4, scale: 1.0 }));
    }
}
