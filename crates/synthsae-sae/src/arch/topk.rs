//! `topk` and `abstopk` (spec §10.3, §10.9): per-row selection of the k
//! largest pre-activations (by value, or by magnitude keeping the sign),
//! optional decoder-norm rescaling, and the aux-k dead-latent loss shared by
//! the whole TopK family.

use burn::prelude::*;
use burn::tensor::activation::relu;

use super::{cached_state, LinearCore, NormCache};
use crate::config::{InferenceArch, SaeConfig, TopKConfig, TrainingArch, TrainingSaeConfig};
use crate::ops::{normalize_out, row, row_topk_mask, sum_sq_mean, to_vec};
use crate::sae::{Sae, TrainStepInput, TrainStepOutput};

/// Per-row TopK activation on `[B, S]`: keep the k largest entries
/// (relu applied), or with `abs` the k largest `|x|` with their sign.
pub fn topk_activation<B: Backend>(hidden_pre: Tensor<B, 2>, k: usize, abs: bool) -> Tensor<B, 2> {
    if abs {
        let mask = row_topk_mask(hidden_pre.clone().abs(), k);
        hidden_pre * mask.float()
    } else {
        let mask = row_topk_mask(hidden_pre.clone(), k);
        relu(hidden_pre) * mask.float()
    }
}

/// `z ⊙ (1/n)` if rescaling (`n` = decoder row norms `[S]`), else `z`.
pub fn unscale<B: Backend>(z: Tensor<B, 2>, norms: Option<&Tensor<B, 1>>) -> Tensor<B, 2> {
    match norms {
        Some(n) => z / row(n.clone()),
        None => z,
    }
}

/// Number of dead latents (host sync).
pub fn count_dead<B: Backend>(dead: &Tensor<B, 1, Bool>) -> usize {
    to_vec(dead.clone().float())
        .iter()
        .filter(|&&v| v != 0.0)
        .count()
}

/// Aux-k activations `[B, S]`: per row the `k` largest dead `hidden_pre`
/// values (by value, or by `|·|` with `abs`), signed, no relu; zeros elsewhere.
pub fn aux_acts<B: Backend>(
    hidden_pre: Tensor<B, 2>,
    dead: &Tensor<B, 1, Bool>,
    k: usize,
    abs: bool,
) -> Tensor<B, 2> {
    let shape = hidden_pre.dims();
    let alive = dead.clone().bool_not().unsqueeze_dim::<2>(0).expand(shape);
    let key = if abs {
        hidden_pre.clone().abs()
    } else {
        hidden_pre.clone()
    };
    let key = key.detach().mask_fill(alive, f32::NEG_INFINITY);
    let mask = row_topk_mask(key, k);
    hidden_pre * mask.float()
}

/// The TopK-family aux loss (`auxiliary_reconstruction_loss`, spec §10.3):
/// `coef · min(dead/k_aux, 1) · mean_rows(Σ (ê − e)²)` with `e = x − x̂`
/// detached, `k_aux = D / 2`, `ê` = aux-k activations decoded without `b_dec`.
/// `[1]`; zero when there is no mask or no dead latent.
#[allow(clippy::too_many_arguments)]
pub fn topk_aux_loss<B: Backend>(
    x: Tensor<B, 2>,
    sae_out: Tensor<B, 2>,
    hidden_pre: Tensor<B, 2>,
    dead: Option<&Tensor<B, 1, Bool>>,
    w_dec: Tensor<B, 2>,
    norms: Option<&Tensor<B, 1>>,
    coef: f64,
    abs: bool,
) -> Tensor<B, 1> {
    let device = x.device();
    let zero = Tensor::zeros([1], &device);
    let Some(dead) = dead else { return zero };
    let num_dead = count_dead(dead);
    let k_aux = x.dims()[1] / 2;
    if num_dead == 0 || k_aux == 0 {
        return zero;
    }
    let residual = (x - sae_out).detach();
    let scale = (num_dead as f64 / k_aux as f64).min(1.0);
    let k = k_aux.min(num_dead);
    let acts = aux_acts(hidden_pre, dead, k, abs);
    let recons = unscale(acts, norms).matmul(w_dec);
    sum_sq_mean(recons - residual).mul_scalar(coef * scale)
}

/// Inference `topk` / `abstopk` SAE.
#[derive(Module, Debug)]
pub struct TopKSae<B: Backend> {
    /// Weights.
    pub core: LinearCore<B>,
    /// Inference config (`TopK` or `AbsTopK`).
    #[module(skip)]
    pub cfg: SaeConfig,
    #[module(skip)]
    pub(crate) cache: NormCache,
}

impl<B: Backend> TopKSae<B> {
    /// From weights and config.
    pub fn new(core: LinearCore<B>, cfg: SaeConfig) -> Self {
        Self {
            core,
            cfg,
            cache: NormCache::default(),
        }
    }

    fn params(&self) -> (usize, bool, bool) {
        match self.cfg.arch {
            InferenceArch::TopK {
                k,
                rescale_acts_by_decoder_norm,
            } => (k, rescale_acts_by_decoder_norm, false),
            InferenceArch::AbsTopK {
                k,
                rescale_acts_by_decoder_norm,
            } => (k, rescale_acts_by_decoder_norm, true),
            _ => (self.cfg.base.d_sae, false, false),
        }
    }
}

impl<B: Backend> Sae<B> for TopKSae<B> {
    fn d_in(&self) -> usize {
        self.cfg.base.d_in
    }
    fn d_sae(&self) -> usize {
        self.cfg.base.d_sae
    }
    fn encode(&self, x: Tensor<B, 2>) -> Tensor<B, 2> {
        let (k, rescale, abs) = self.params();
        let b = &self.cfg.base;
        let (xp, st) = self
            .core
            .process_in(x, b.normalize_activations, b.apply_b_dec_to_input);
        self.cache.store(st);
        let mut pre = self.core.pre(xp);
        if rescale {
            pre = pre * row(self.core.norms());
        }
        topk_activation(pre, k, abs)
    }
    fn decode(&self, z: Tensor<B, 2>) -> Tensor<B, 2> {
        let (_, rescale, _) = self.params();
        let st = cached_state(&self.cache, self.cfg.base.normalize_activations);
        let norms = rescale.then(|| self.core.norms());
        let out =
            unscale(z, norms.as_ref()).matmul(self.core.w_dec.val()) + row(self.core.b_dec.val());
        normalize_out(out, &st)
    }
    fn decoder_weights(&self) -> Tensor<B, 2> {
        self.core.w_dec.val()
    }
    fn encoder_weights(&self) -> Tensor<B, 2> {
        self.core.w_enc.val()
    }
}

/// Training `topk` / `abstopk` SAE.
#[derive(Module, Debug)]
pub struct TopKTrainingSae<B: Backend> {
    /// Weights.
    pub core: LinearCore<B>,
    /// Training config (architecture `topk` or `abstopk`).
    #[module(skip)]
    pub cfg: TrainingSaeConfig,
}

impl<B: Backend> TopKTrainingSae<B> {
    fn arch(&self) -> (TopKConfig, bool) {
        match &self.cfg.arch {
            TrainingArch::TopK(c) => (c.clone(), false),
            TrainingArch::AbsTopK(c) => (c.clone(), true),
            _ => (TopKConfig::default(), false),
        }
    }

    /// Training forward: `mse_loss` and `auxiliary_reconstruction_loss`.
    pub fn forward_train(&self, input: &TrainStepInput<B>) -> TrainStepOutput<B> {
        let (c, abs) = self.arch();
        let b = &self.cfg.base;
        let x = input.x.clone();
        let (xp, st) =
            self.core
                .process_in(x.clone(), b.normalize_activations, b.apply_b_dec_to_input);
        let norms = c.rescale_acts_by_decoder_norm.then(|| self.core.norms());
        let mut hidden_pre = self.core.pre(xp);
        if let Some(n) = &norms {
            hidden_pre = hidden_pre * row(n.clone());
        }
        let z = topk_activation(hidden_pre.clone(), c.k, abs);
        let sae_out = normalize_out(
            unscale(z.clone(), norms.as_ref()).matmul(self.core.w_dec.val())
                + row(self.core.b_dec.val()),
            &st,
        );
        let mse = sum_sq_mean(sae_out.clone() - x.clone());
        let aux = topk_aux_loss(
            x,
            sae_out.clone(),
            hidden_pre.clone(),
            input.dead_mask.as_ref(),
            self.core.w_dec.val(),
            norms.as_ref(),
            c.aux_loss_coefficient,
            abs,
        );
        TrainStepOutput {
            sae_out,
            feature_acts: z,
            hidden_pre,
            loss: mse.clone() + aux.clone(),
            losses: vec![
                ("mse_loss".into(), mse),
                ("auxiliary_reconstruction_loss".into(), aux),
            ],
        }
    }

    /// Inference form: decoder norms folded into a copy if rescaling (as
    /// sae-lens's `save_inference_model`).
    pub fn to_inference(&self) -> TopKSae<B> {
        let (c, _) = self.arch();
        let core = if c.rescale_acts_by_decoder_norm {
            self.core.folded_copy()
        } else {
            self.core.clone()
        };
        TopKSae::new(core, self.cfg.inference_config())
    }
}
