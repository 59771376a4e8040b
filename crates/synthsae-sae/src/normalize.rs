//! Per-sample input normalisation (spec §10.1): applied before encoding,
//! undone on the output, and remembered between an inference `encode` and
//! the `decode` that follows it.

use std::any::Any;
use std::sync::Mutex;

use burn::prelude::*;

use crate::config::base::NormalizeActivations;

/// Per-sample input normalisation state, needed to undo it on output.
#[derive(Debug, Clone)]
pub enum NormState<B: Backend> {
    /// Nothing to undo.
    None,
    /// `constant_norm_rescale`: the per-row coefficient `sqrt(D)/‖x‖`, `[B, 1]`.
    Scale(Tensor<B, 2>),
    /// `layer_norm`: row mean and unbiased row std, each `[B, 1]`.
    LayerNorm(Tensor<B, 2>, Tensor<B, 2>),
}

/// Applies a per-sample normalisation (`[B, D]` → `[B, D]`) and returns what
/// is needed to undo it. Modes that the trainer applies (`none`,
/// `expected_average_only_in`, `covariance_whitening`) are the identity here.
pub fn normalize_in<B: Backend>(
    x: Tensor<B, 2>,
    mode: NormalizeActivations,
) -> (Tensor<B, 2>, NormState<B>) {
    let d = x.dims()[1];
    match mode {
        NormalizeActivations::ConstantNormRescale => {
            let norm = x.clone().powi_scalar(2).sum_dim(1).sqrt();
            // `sqrt(D) / norm` as a division, not `norm.recip()`: burn-ndarray's
            // `recip` is a SIMD approximation (~5e-5 relative error).
            let coeff = norm.ones_like().mul_scalar((d as f64).sqrt()) / norm;
            (x * coeff.clone(), NormState::Scale(coeff))
        }
        NormalizeActivations::LayerNorm => {
            let mu = x.clone().mean_dim(1);
            let xc = x - mu.clone();
            let denom = (d.max(2) - 1) as f64;
            let std = xc
                .clone()
                .powi_scalar(2)
                .sum_dim(1)
                .div_scalar(denom)
                .sqrt();
            let out = xc / std.clone().add_scalar(1e-5);
            (out, NormState::LayerNorm(mu, std))
        }
        _ => (x, NormState::None),
    }
}

/// Undoes [`normalize_in`] on an output `[B, D]`.
pub fn normalize_out<B: Backend>(x: Tensor<B, 2>, state: &NormState<B>) -> Tensor<B, 2> {
    match state {
        NormState::None => x,
        NormState::Scale(c) => x / c.clone(),
        NormState::LayerNorm(mu, std) => x * std.clone() + mu.clone(),
    }
}

/// Remembers the per-sample normalisation of the last `encode` so that the
/// next `decode` can undo it (sae-lens keeps it on the module the same way).
/// Cloning gives an empty cache. Type-erased so that the module's inner
/// (non-autodiff) form has the same field type.
#[derive(Default)]
pub struct NormCache(Mutex<Option<Box<dyn Any + Send>>>);

impl NormCache {
    /// Stores the state of the last encode (only per-sample modes need it).
    pub fn store<B: Backend>(&self, state: NormState<B>) {
        if matches!(state, NormState::None) {
            return;
        }
        if let Ok(mut g) = self.0.lock() {
            *g = Some(Box::new(state));
        }
    }

    /// Takes the state of the last encode (`None` state if there is none).
    pub fn take<B: Backend>(&self) -> NormState<B> {
        let boxed = self.0.lock().ok().and_then(|mut g| g.take());
        match boxed.and_then(|b| b.downcast::<NormState<B>>().ok()) {
            Some(st) => *st,
            None => NormState::None,
        }
    }
}

impl Clone for NormCache {
    fn clone(&self) -> Self {
        Self::default()
    }
}

impl std::fmt::Debug for NormCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("NormCache")
    }
}

/// Undo of per-sample normalisation for an inference `decode`: the state
/// of the last `encode`, or nothing (with a warning) if there was none.
pub(crate) fn cached_state<B: Backend>(
    cache: &NormCache,
    mode: NormalizeActivations,
) -> NormState<B> {
    let st = cache.take::<B>();
    if mode.is_per_sample() && matches!(st, NormState::None) {
        log::warn!(
            "decode with normalize_activations = {} but no preceding encode: \
             output left normalised",
            mode.as_str()
        );
    }
    st
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::NdArray;
    use synthsae_host::to_vec;

    type B = NdArray;

    #[test]
    fn normalisations_round_trip() {
        let dev = Default::default();
        let x = Tensor::<B, 2>::from_floats([[1.0, 2.0, 3.0, 6.0], [-1.0, 0.5, 4.0, 2.0]], &dev);
        for mode in [
            NormalizeActivations::ConstantNormRescale,
            NormalizeActivations::LayerNorm,
        ] {
            let (y, st) = normalize_in(x.clone(), mode);
            let back = normalize_out(y.clone(), &st);
            let diff = to_vec(back - x.clone());
            // layer_norm undoes with std, not std + eps (as sae-lens): tiny error.
            assert!(diff.iter().all(|d| d.abs() < 1e-4), "{mode:?}: {diff:?}");
            if mode == NormalizeActivations::ConstantNormRescale {
                let n = to_vec(y.powi_scalar(2).sum_dim(1));
                assert!(n.iter().all(|v| (v - 4.0).abs() < 1e-5));
            }
        }
    }
}
