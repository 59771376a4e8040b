//! `matching_pursuit` (spec §10.8): a tied SAE whose encoder greedily picks
//! decoder rows against the residual.

pub mod config;

pub use config::MatchingPursuitConfig;

use burn::module::Param;
use burn::prelude::*;
use burn::tensor::activation::relu;
use burn::tensor::IndexingUpdateOp;
use synthsae_host::Precision;

use crate::config::inference::{InferenceArch, SaeConfig};
use crate::config::training::{TrainingArch, TrainingSaeConfig};
use crate::linear::process_in;
use crate::normalize::{cached_state, normalize_out, NormCache};
use crate::ops::{row, sum_sq_mean, to_vec};
use crate::sae::{Sae, TrainStepInput, TrainStepOutput};

/// Greedy matching-pursuit encoding of processed inputs `[B, D]` with the
/// decoder `[S, D]` → latents `[B, S]`.
///
/// Each iteration picks, per row, `s* = argmax relu(r · W_dec_s)` (no
/// gradient), adds `v = relu(r · W_dec_{s*})` to rows not yet done and
/// subtracts `v W_dec_{s*}` from their residual; a row is done when its
/// support did not change (if `stop_on_duplicate_support`) or its residual
/// norm is below `residual_threshold` (if > 0). The scoring product
/// `r W_decᵀ` is in `precision`.
pub fn encode_matching_pursuit<B: Backend>(
    xp: Tensor<B, 2>,
    w_dec: Tensor<B, 2>,
    cfg: &MatchingPursuitConfig,
    precision: Precision,
) -> Tensor<B, 2> {
    let [b, d] = xp.dims();
    let s = w_dec.dims()[0];
    let device = xp.device();
    let max_iterations = cfg.max_iterations.unwrap_or(d);
    let by_threshold = cfg.residual_threshold > 0.0;
    let mut residual = xp;
    let mut acts = Tensor::<B, 2>::zeros([b, s], &device);
    let mut prev_support = Tensor::<B, 2>::zeros([b, s], &device).greater_elem(1.0);
    let mut done = Tensor::<B, 1>::zeros([b], &device).greater_elem(1.0);
    let w_dec_t = w_dec.clone().detach().transpose();
    for _ in 0..max_iterations {
        let scores = precision.matmul(residual.clone().detach(), w_dec_t.clone());
        let idx = relu(scores).argmax(1); // [B, 1]
        let selected = w_dec.clone().select(0, idx.clone().reshape([b])); // [B, D]
        let values = relu((residual.clone() * selected.clone()).sum_dim(1)); // [B, 1]
        let active = done.clone().bool_not().float().unsqueeze_dim::<2>(1);
        let masked = values * active;
        acts = acts.scatter(1, idx, masked.clone(), IndexingUpdateOp::Add);
        residual = residual - masked * selected;
        if cfg.stop_on_duplicate_support || by_threshold {
            if cfg.stop_on_duplicate_support {
                let support = acts.clone().detach().not_equal_elem(0.0);
                let same = support.clone().equal(prev_support).all_dim(1).reshape([b]);
                done = done.bool_or(same);
                prev_support = support;
            }
            if by_threshold {
                let norm = residual
                    .clone()
                    .detach()
                    .powi_scalar(2)
                    .sum_dim(1)
                    .sqrt()
                    .reshape([b]);
                done = done.bool_or(norm.lower_elem(cfg.residual_threshold));
            }
            if to_vec(done.clone().float()).iter().all(|&v| v != 0.0) {
                break;
            }
        }
    }
    acts
}

fn decode_mp<B: Backend>(
    z: Tensor<B, 2>,
    w_dec: Tensor<B, 2>,
    b_dec: Tensor<B, 1>,
    apply: bool,
    precision: Precision,
) -> Tensor<B, 2> {
    let out = precision.matmul(z, w_dec);
    if apply {
        out + row(b_dec)
    } else {
        out
    }
}

/// Inference `matching_pursuit` SAE (tied: `W_enc = W_decᵀ`).
#[derive(Module, Debug)]
pub struct MatchingPursuitSae<B: Backend> {
    /// `W_dec`: `[S, D]`.
    pub w_dec: Param<Tensor<B, 2>>,
    /// `b_dec`: `[D]`.
    pub b_dec: Param<Tensor<B, 1>>,
    /// Inference config.
    #[module(skip)]
    pub cfg: SaeConfig,
    #[module(skip)]
    pub(crate) cache: NormCache,
}

impl<B: Backend> MatchingPursuitSae<B> {
    /// From weights and config.
    pub fn new(w_dec: Param<Tensor<B, 2>>, b_dec: Param<Tensor<B, 1>>, cfg: SaeConfig) -> Self {
        Self {
            w_dec,
            b_dec,
            cfg,
            cache: NormCache::default(),
        }
    }

    fn mp(&self) -> MatchingPursuitConfig {
        match &self.cfg.arch {
            InferenceArch::MatchingPursuit(c) => c.clone(),
            _ => MatchingPursuitConfig::default(),
        }
    }
}

impl<B: Backend> Sae<B> for MatchingPursuitSae<B> {
    fn d_in(&self) -> usize {
        self.cfg.base.d_in
    }
    fn d_sae(&self) -> usize {
        self.cfg.base.d_sae
    }
    fn encode(&self, x: Tensor<B, 2>) -> Tensor<B, 2> {
        let b = &self.cfg.base;
        let (xp, st) = process_in(
            x,
            b.normalize_activations,
            b.apply_b_dec_to_input,
            &self.b_dec,
        );
        self.cache.store(st);
        encode_matching_pursuit(xp, self.w_dec.val(), &self.mp(), Precision::F32)
    }
    fn decode(&self, z: Tensor<B, 2>) -> Tensor<B, 2> {
        let st = cached_state(&self.cache, self.cfg.base.normalize_activations);
        let out = decode_mp(
            z,
            self.w_dec.val(),
            self.b_dec.val(),
            self.cfg.base.apply_b_dec_to_input,
            Precision::F32,
        );
        normalize_out(out, &st)
    }
    fn decoder_weights(&self) -> Tensor<B, 2> {
        self.w_dec.val()
    }
    fn encoder_weights(&self) -> Tensor<B, 2> {
        self.w_dec.val().transpose()
    }
}

/// Training `matching_pursuit` SAE.
#[derive(Module, Debug)]
pub struct MatchingPursuitTrainingSae<B: Backend> {
    /// `W_dec`: `[S, D]`.
    pub w_dec: Param<Tensor<B, 2>>,
    /// `b_dec`: `[D]`.
    pub b_dec: Param<Tensor<B, 1>>,
    /// Training config (architecture `matching_pursuit`).
    #[module(skip)]
    pub cfg: TrainingSaeConfig,
}

impl<B: Backend> MatchingPursuitTrainingSae<B> {
    /// The matching-pursuit fields.
    pub fn mp(&self) -> MatchingPursuitConfig {
        match &self.cfg.arch {
            TrainingArch::MatchingPursuit(c) => c.clone(),
            _ => MatchingPursuitConfig::default(),
        }
    }

    /// Training forward: `mse_loss` only; `hidden_pre` is zeros.
    pub fn forward_train(&self, input: &TrainStepInput<B>) -> TrainStepOutput<B> {
        let b = &self.cfg.base;
        let x = input.x.clone();
        let (xp, st) = process_in(
            x.clone(),
            b.normalize_activations,
            b.apply_b_dec_to_input,
            &self.b_dec,
        );
        let p = input.precision;
        let z = encode_matching_pursuit(xp, self.w_dec.val(), &self.mp(), p);
        let sae_out = normalize_out(
            decode_mp(
                z.clone(),
                self.w_dec.val(),
                self.b_dec.val(),
                b.apply_b_dec_to_input,
                p,
            ),
            &st,
        );
        let mse = sum_sq_mean(sae_out.clone() - x);
        TrainStepOutput {
            sae_out,
            hidden_pre: z.zeros_like(),
            feature_acts: z.into(),
            loss: mse.clone(),
            losses: vec![("mse_loss".into(), mse)],
            firing: None,
        }
    }

    /// Inference form (same weights).
    pub fn to_inference(&self) -> MatchingPursuitSae<B> {
        MatchingPursuitSae::new(
            self.w_dec.clone(),
            self.b_dec.clone(),
            self.cfg.inference_config(),
        )
    }
}
