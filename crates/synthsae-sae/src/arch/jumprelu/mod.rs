//! `jumprelu` (spec §10.6): `z = pre · 1[pre > θ]` with a learned threshold
//! trained through straight-through pseudo-gradients.
//!
//! The pseudo-gradients are built with detach tricks whose extra terms are
//! exactly zero in the forward pass, so values equal the plain forward:
//!
//! * JumpReLU: `pre·H + c·(pre − sg(pre))·[ste] − c·(θ − sg(θ))`, with
//!   `H = 1[pre > θ]` and `c = sg((θ/ε)·K((pre − θ)/ε))`, gives
//!   `∂/∂pre = H·g (+ c·g)` and `∂/∂θ = −Σ_rows c·g`;
//! * Step: `H + k·(pre − sg(pre))·[ste] − k·(θ − sg(θ))` with
//!   `k = sg((1/ε)·K(...))`, gives `∂/∂θ = −Σ_rows k·g`.
//!
//! `K(u) = 1[−½ < u < ½]`, `sg` = stop-gradient (Burn's `detach`).

pub mod config;

pub use config::{JumpReluConfig, SparsityLossMode};

use burn::module::Param;
use burn::prelude::*;
use burn::tensor::activation::relu;

use synthsae_host::aux_k::count_dead;
use synthsae_host::inference::host_path_ok;
use synthsae_host::sparse_forward::HostSelect;

use crate::config::inference::SaeConfig;
use crate::config::training::{TrainingArch, TrainingSaeConfig};
use crate::linear::LinearCore;
use crate::normalize::{cached_state, normalize_out, NormCache};
use crate::ops::{map_param, row, sum_sq_mean};
use crate::sae::{Sae, TrainStepInput, TrainStepOutput};

/// The rectangle kernel `K((pre − θ)/ε)` as floats, `[B, S]`, no gradient.
fn kernel<B: Backend>(pre: &Tensor<B, 2>, theta: &Tensor<B, 2>, eps: f64) -> Tensor<B, 2> {
    let u = (pre.clone().detach() - theta.clone().detach()).div_scalar(eps);
    u.clone()
        .greater_elem(-0.5)
        .bool_and(u.lower_elem(0.5))
        .float()
}

/// JumpReLU with pseudo-gradients: `[B, S]` pre-activations and `θ` `[S]`.
pub fn jumprelu_op<B: Backend>(
    pre: Tensor<B, 2>,
    theta: Tensor<B, 1>,
    eps: f64,
    ste_to_input: bool,
) -> Tensor<B, 2> {
    let shape = pre.dims();
    let th = row(theta).expand(shape);
    let h = pre.clone().detach().greater(th.clone().detach()).float();
    let c = (th.clone().detach() * kernel(&pre, &th, eps)).div_scalar(eps);
    let mut out = pre.clone() * h;
    if ste_to_input {
        out = out + c.clone() * (pre.clone() - pre.detach());
    }
    out - c * (th.clone() - th.detach())
}

/// Heaviside step `1[pre > θ]` with pseudo-gradients: `[B, S]`.
pub fn step_op<B: Backend>(
    pre: Tensor<B, 2>,
    theta: Tensor<B, 1>,
    eps: f64,
    ste_to_input: bool,
) -> Tensor<B, 2> {
    let shape = pre.dims();
    let th = row(theta).expand(shape);
    let h = pre.clone().detach().greater(th.clone().detach()).float();
    let k = kernel(&pre, &th, eps).div_scalar(eps);
    let mut out = h;
    if ste_to_input {
        out = out + k.clone() * (pre.clone() - pre.detach());
    }
    out - k * (th.clone() - th.detach())
}

/// Inference `jumprelu` SAE: `z = relu(pre) · 1[pre > θ]`.
#[derive(Module, Debug)]
pub struct JumpReluSae<B: Backend> {
    /// Weights.
    pub core: LinearCore<B>,
    /// Threshold `θ`: `[S]`.
    pub threshold: Param<Tensor<B, 1>>,
    /// Inference config.
    #[module(skip)]
    pub cfg: SaeConfig,
    #[module(skip)]
    pub(crate) cache: NormCache,
}

impl<B: Backend> JumpReluSae<B> {
    /// From weights, threshold and config.
    pub fn new(core: LinearCore<B>, threshold: Param<Tensor<B, 1>>, cfg: SaeConfig) -> Self {
        Self {
            core,
            threshold,
            cfg,
            cache: NormCache::default(),
        }
    }
}

impl<B: Backend> Sae<B> for JumpReluSae<B> {
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
        let pre = self.core.pre(xp);
        let shape = pre.dims();
        let mask = pre.clone().greater(row(self.threshold.val()).expand(shape));
        relu(pre) * mask.float()
    }
    fn decode(&self, z: Tensor<B, 2>) -> Tensor<B, 2> {
        let st = cached_state(&self.cache, self.cfg.base.normalize_activations);
        normalize_out(self.core.decode_linear(z), &st)
    }
    fn forward_sparse(&self, x: Tensor<B, 2>) -> Option<crate::SparseForward<B>> {
        if !host_path_ok(&x) {
            return None;
        }
        let theta = crate::ops::to_vec(self.threshold.val());
        let select = HostSelect::Threshold(&theta);
        self.core.forward_sparse(x, &self.cfg.base, select, false)
    }
    fn decoder_weights(&self) -> Tensor<B, 2> {
        self.core.w_dec.val()
    }
    fn encoder_weights(&self) -> Tensor<B, 2> {
        self.core.w_enc.val()
    }
}

/// Training `jumprelu` SAE.
#[derive(Module, Debug)]
pub struct JumpReluTrainingSae<B: Backend> {
    /// Weights.
    pub core: LinearCore<B>,
    /// Threshold `θ` (a parameter): `[S]`.
    pub threshold: Param<Tensor<B, 1>>,
    /// Training config (architecture `jumprelu`).
    #[module(skip)]
    pub cfg: TrainingSaeConfig,
}

impl<B: Backend> JumpReluTrainingSae<B> {
    fn arch(&self) -> JumpReluConfig {
        match &self.cfg.arch {
            TrainingArch::JumpRelu(c) => c.clone(),
            _ => JumpReluConfig::default(),
        }
    }

    /// `θ ← max(θ, 0)` on the data (before each training forward pass).
    pub fn project(self) -> Self {
        Self {
            threshold: map_param(self.threshold, |t| t.clamp_min(0.0)),
            ..self
        }
    }

    /// Training forward: `mse_loss`, `l0_loss` and (if its coefficient is
    /// set) `pre_act_loss`.
    pub fn forward_train(&self, input: &TrainStepInput<B>) -> TrainStepOutput<B> {
        let c = self.arch();
        let b = &self.cfg.base;
        let eps = c.jumprelu_bandwidth;
        let x = input.x.clone();
        let (xp, st) =
            self.core
                .process_in(x.clone(), b.normalize_activations, b.apply_b_dec_to_input);
        let hidden_pre = self.core.pre_at(xp, input.precision);
        let theta = self.threshold.val();
        let z = jumprelu_op(
            hidden_pre.clone(),
            theta.clone(),
            eps,
            c.jumprelu_ste_to_input,
        );
        let sae_out = normalize_out(self.core.decode_linear_at(z.clone(), input.precision), &st);
        let mse = sum_sq_mean(sae_out.clone() - x);
        let norms = self.core.norms();
        let lambda = input.coefficient("l0").unwrap_or(c.l0_coefficient);
        let per_row = match c.jumprelu_sparsity_loss_mode {
            SparsityLossMode::Step | SparsityLossMode::Quadratic => {
                let l0 = step_op(
                    hidden_pre.clone(),
                    theta.clone(),
                    eps,
                    c.jumprelu_ste_to_input,
                )
                .sum_dim(1);
                match (c.jumprelu_sparsity_loss_mode, c.target_l0) {
                    (SparsityLossMode::Quadratic, Some(t)) => {
                        l0.sub_scalar(t).powi_scalar(2).mul_scalar(2.0 / t)
                    }
                    _ => l0,
                }
            }
            SparsityLossMode::Tanh => (z.clone() * row(norms.clone()))
                .mul_scalar(c.jumprelu_tanh_scale)
                .tanh()
                .sum_dim(1),
        };
        let l0_loss = per_row.mul_scalar(lambda).mean();
        let mut loss = mse.clone() + l0_loss.clone();
        let mut losses = vec![
            ("mse_loss".to_string(), mse),
            ("l0_loss".to_string(), l0_loss),
        ];
        if let Some(coef) = c.pre_act_loss_coefficient {
            let pal = match &input.dead_mask {
                Some(dead) if count_dead(dead) > 0 => {
                    let shape = hidden_pre.dims();
                    let gap = relu(row(theta).expand(shape) - hidden_pre.clone());
                    let dead_f = row(dead.clone().float());
                    (gap * dead_f * row(norms))
                        .sum_dim(1)
                        .mean()
                        .mul_scalar(coef)
                }
                _ => Tensor::zeros([1], &hidden_pre.device()),
            };
            loss = loss + pal.clone();
            losses.push(("pre_act_loss".into(), pal));
        }
        TrainStepOutput {
            sae_out,
            feature_acts: z.into(),
            hidden_pre,
            loss,
            losses,
            firing: None,
        }
    }

    /// Inference form (same weights and threshold).
    pub fn to_inference(&self) -> JumpReluSae<B> {
        JumpReluSae::new(
            self.core.clone(),
            self.threshold.clone(),
            self.cfg.inference_config(),
        )
    }
}
