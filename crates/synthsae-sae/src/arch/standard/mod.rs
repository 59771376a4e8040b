//! `standard`: `z = relu(x' W_enc + b_enc)`, decoder-norm-weighted Lp penalty
//! (spec §10.2).

pub mod config;

pub use config::StandardConfig;

use burn::prelude::*;
use burn::tensor::activation::relu;

use synthsae_host::autodiff::standard_loss;
use synthsae_host::sparse_forward::HostSelect;
use synthsae_host::Precision;

use crate::config::base::NormalizeActivations;
use crate::config::inference::SaeConfig;
use crate::config::training::{TrainingArch, TrainingSaeConfig};
use crate::linear::LinearCore;
use crate::normalize::{cached_state, normalize_out, NormCache};
use crate::ops::{row, sum_sq_mean};
use crate::sae::{Sae, TrainStepInput, TrainStepOutput};

/// Inference `standard` SAE.
#[derive(Module, Debug)]
pub struct StandardSae<B: Backend> {
    /// Weights.
    pub core: LinearCore<B>,
    /// Inference config.
    #[module(skip)]
    pub cfg: SaeConfig,
    #[module(skip)]
    pub(crate) cache: NormCache,
}

impl<B: Backend> StandardSae<B> {
    /// From weights and config.
    pub fn new(core: LinearCore<B>, cfg: SaeConfig) -> Self {
        Self {
            core,
            cfg,
            cache: NormCache::default(),
        }
    }
}

impl<B: Backend> Sae<B> for StandardSae<B> {
    fn d_in(&self) -> usize {
        self.cfg.base.d_in
    }
    fn d_sae(&self) -> usize {
        self.cfg.base.d_sae
    }
    fn encode(&self, x: Tensor<B, 2>) -> Tensor<B, 2> {
        let b = &self.cfg.base;
        let (xp, st) = self
            .core
            .process_in(x, b.normalize_activations, b.apply_b_dec_to_input);
        self.cache.store(st);
        relu(self.core.pre(xp))
    }
    fn decode(&self, z: Tensor<B, 2>) -> Tensor<B, 2> {
        let st = cached_state(&self.cache, self.cfg.base.normalize_activations);
        normalize_out(self.core.decode_linear(z), &st)
    }
    fn forward_sparse(&self, x: Tensor<B, 2>) -> Option<crate::SparseForward<B>> {
        // relu = a threshold of 0.
        let zero = vec![0.0f32; self.cfg.base.d_sae];
        let select = HostSelect::Threshold(&zero);
        self.core.forward_sparse(x, &self.cfg.base, select, false)
    }
    fn decoder_weights(&self) -> Tensor<B, 2> {
        self.core.w_dec.val()
    }
    fn encoder_weights(&self) -> Tensor<B, 2> {
        self.core.w_enc.val()
    }
}

/// Training `standard` SAE.
#[derive(Module, Debug)]
pub struct StandardTrainingSae<B: Backend> {
    /// Weights.
    pub core: LinearCore<B>,
    /// Training config (architecture `standard`).
    #[module(skip)]
    pub cfg: TrainingSaeConfig,
}

impl<B: Backend> StandardTrainingSae<B> {
    fn arch(&self) -> StandardConfig {
        match &self.cfg.arch {
            TrainingArch::Standard(c) => c.clone(),
            _ => StandardConfig::default(),
        }
    }

    /// Training forward: `mse_loss` and
    /// `l1_loss = mean_rows(λ · ‖z ⊙ ‖W_dec‖‖_p)`.
    pub fn forward_train(&self, input: &TrainStepInput<B>) -> TrainStepOutput<B> {
        let c = self.arch();
        let b = &self.cfg.base;
        let lambda = input.coefficient("l1").unwrap_or(c.l1_coefficient);
        if c.lp_norm == 1.0
            && b.normalize_activations == NormalizeActivations::None
            && input.precision == Precision::F32
        {
            // CPU backends: the whole loss as one autodiff node (same values
            // and gradients, a fraction of the per-operation cost).
            if let Some(f) = standard_loss(
                input.x.clone(),
                self.core.w_enc.val(),
                self.core.b_enc.val(),
                self.core.w_dec.val(),
                self.core.b_dec.val(),
                lambda,
                b.apply_b_dec_to_input,
            ) {
                return TrainStepOutput {
                    sae_out: f.sae_out,
                    feature_acts: f.feature_acts.into(),
                    hidden_pre: f.hidden_pre,
                    loss: f.loss,
                    losses: vec![
                        ("mse_loss".into(), f.mse_loss),
                        ("l1_loss".into(), f.l1_loss),
                    ],
                    firing: Some(f.firing),
                };
            }
        }
        let x = input.x.clone();
        let (xp, st) =
            self.core
                .process_in(x.clone(), b.normalize_activations, b.apply_b_dec_to_input);
        let hidden_pre = self.core.pre_at(xp, input.precision);
        let z = relu(hidden_pre.clone());
        let sae_out = normalize_out(self.core.decode_linear_at(z.clone(), input.precision), &st);
        let mse = sum_sq_mean(sae_out.clone() - x);
        let weighted = (z.clone() * row(self.core.norms())).abs();
        let sparsity = if c.lp_norm == 1.0 {
            weighted.sum_dim(1)
        } else {
            weighted
                .powf_scalar(c.lp_norm)
                .sum_dim(1)
                .powf_scalar(1.0 / c.lp_norm)
        };
        let l1 = sparsity.mul_scalar(lambda).mean();
        TrainStepOutput {
            sae_out,
            feature_acts: z.into(),
            hidden_pre,
            loss: mse.clone() + l1.clone(),
            losses: vec![("mse_loss".into(), mse), ("l1_loss".into(), l1)],
            firing: None,
        }
    }

    /// Inference form (same weights).
    pub fn to_inference(&self) -> StandardSae<B> {
        StandardSae::new(self.core.clone(), self.cfg.inference_config())
    }
}
