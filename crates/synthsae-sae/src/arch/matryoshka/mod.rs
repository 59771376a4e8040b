//! Matryoshka losses (spec §10.5): prefix reconstructions of nested widths
//! and the optional per-level aux-k loss.

pub mod config;

pub use config::MatryoshkaConfig;

use burn::prelude::*;

use synthsae_host::aux_k::{self, AuxK};
use synthsae_host::Precision;

use super::topk::{aux_acts, unscale};
use crate::linear::LinearCore;
use crate::normalize::{normalize_out, NormState};
use crate::ops::{row, sum_sq_mean};

/// Cumulative prefix reconstructions `x̂_w = b_dec + Σ_{levels ≤ w} z[:, prev..w] W_dec[prev..w]`
/// (with `z / n` if rescaling), per-sample normalisation undone; one `[B, D]`
/// per width in `widths` (all of them); the products in `precision`.
pub fn prefix_reconstructions<B: Backend>(
    core: &LinearCore<B>,
    z: Tensor<B, 2>,
    widths: &[usize],
    norms: Option<&Tensor<B, 1>>,
    st: &NormState<B>,
    precision: Precision,
) -> Vec<(usize, Tensor<B, 2>)> {
    let z = unscale(z, norms);
    let w_dec = core.w_dec.val();
    let mut decoded = row(core.b_dec.val());
    let mut prev = 0;
    let mut out = Vec::with_capacity(widths.len());
    for &w in widths {
        let part = precision.matmul(
            z.clone().narrow(1, prev, w - prev),
            w_dec.clone().narrow(0, prev, w - prev),
        );
        decoded = part + decoded;
        out.push((w, normalize_out(decoded.clone(), st)));
        prev = w;
    }
    out
}

/// `inner_mse_loss_<w> = mean_rows(Σ (x̂_w − x)²)` for every width but the
/// last, the products in `precision`.
pub fn matryoshka_inner_losses<B: Backend>(
    core: &LinearCore<B>,
    x: Tensor<B, 2>,
    z: Tensor<B, 2>,
    widths: &[usize],
    norms: Option<&Tensor<B, 1>>,
    st: &NormState<B>,
    precision: Precision,
) -> Vec<(usize, Tensor<B, 1>)> {
    let inner = &widths[..widths.len().saturating_sub(1)];
    prefix_reconstructions(core, z, inner, norms, st, precision)
        .into_iter()
        .map(|(w, rec)| (w, sum_sq_mean(rec - x.clone())))
        .collect()
}

/// Per-level aux-k loss (the rule of [`synthsae_host::aux_k`] per level): for
/// each level `[prev, w)` with dead latents, the top `min(D/2, dead_in_level)`
/// dead `hidden_pre` of the level decoded with the row-normalised decoder
/// slice (if rescaling), no bias, against the detached residual `x − x̂_w`;
/// scaled by `min(dead_in_level / (D/2), 1)`, summed, times `coef`. `[1]`.
#[allow(clippy::too_many_arguments)]
pub fn matryoshka_aux_loss<B: Backend>(
    core: &LinearCore<B>,
    x: Tensor<B, 2>,
    z: Tensor<B, 2>,
    hidden_pre: Tensor<B, 2>,
    dead: Option<&Tensor<B, 1, Bool>>,
    widths: &[usize],
    norms: Option<&Tensor<B, 1>>,
    st: &NormState<B>,
    coef: f64,
    precision: Precision,
) -> Tensor<B, 1> {
    let device = x.device();
    let zero = Tensor::zeros([1], &device);
    let Some(dead) = dead else { return zero };
    let d = x.dims()[1];
    if AuxK::new(d, aux_k::count_dead(dead)).is_none() {
        return zero;
    }
    let w_dec = core.w_dec.val();
    let scaled = match norms {
        Some(n) => w_dec.clone() / n.clone().unsqueeze_dim(1),
        None => w_dec,
    };
    let mut total = zero;
    let mut prev = 0;
    for (w, partial) in prefix_reconstructions(core, z, widths, norms, st, precision) {
        let len = w - prev;
        let level_dead = dead.clone().narrow(0, prev, len);
        if let Some(rule) = AuxK::new(d, aux_k::count_dead(&level_dead)) {
            let residual = aux_k::residual(x.clone(), partial);
            let acts = aux_acts(
                hidden_pre.clone().narrow(1, prev, len),
                &level_dead,
                rule.k,
                false,
            );
            let recons = precision.matmul(acts, scaled.clone().narrow(0, prev, len));
            total = total + aux_k::fit_loss(recons, residual).mul_scalar(rule.scale);
        }
        prev = w;
    }
    total.mul_scalar(coef)
}
