//! `batchtopk` and `matryoshka_batchtopk` training SAEs (spec §10.4, §10.5):
//! the `floor(k · B)` largest relu'd pre-activations of the whole batch are
//! kept; a float64 threshold EMA tracks the smallest kept value and becomes
//! the JumpReLU threshold of the inference export.

pub mod config;

pub use config::BatchTopKConfig;

use burn::prelude::*;
use burn::tensor::activation::relu;
use synthsae_host::profile::{self, Phase};

use synthsae_host::kept::Selection;
use synthsae_host::select::nth_largest_of;

use super::jumprelu::JumpReluSae;
use super::matryoshka::{matryoshka_aux_loss, matryoshka_inner_losses};
use super::topk::{decode_kept, scaled_pre, topk_aux_loss, Active, SPARSE_MAX_DENSITY};
use crate::config::training::{TrainingArch, TrainingSaeConfig};
use crate::cpu_train::{forward_train_cpu, TopKFamilySpec};
use crate::linear::LinearCore;
use crate::normalize::normalize_out;
use crate::ops::{param, row, sum_sq_mean, to_vec};
use crate::sae::{TrainStepInput, TrainStepOutput};

/// BatchTopK activation on `[B, S]`: `relu(x)`, then only the
/// `floor(k · B)` largest values of the whole batch are kept.
///
/// The cut-off value is found on the host with a linear-time selection
/// (instead of sorting `B · S` values on the device); ties at the cut-off
/// keep every tied entry.
pub fn batch_topk_activation<B: Backend>(hidden_pre: Tensor<B, 2>, k: f64) -> Tensor<B, 2> {
    batch_topk_activation_sparse(hidden_pre, k).0
}

/// [`batch_topk_activation`], plus the kept positive entries when they are
/// few enough for [`super::topk::sparse_decode`].
pub fn batch_topk_activation_sparse<B: Backend>(
    hidden_pre: Tensor<B, 2>,
    k: f64,
) -> (Tensor<B, 2>, Option<Active>) {
    let [b, s] = hidden_pre.dims();
    let r = relu(hidden_pre);
    let n = (k * b as f64).floor();
    if n <= 0.0 {
        return (r.zeros_like(), Some(Active::default()));
    }
    let n = n as usize;
    if n >= b * s {
        return (r, None);
    }
    if n as f64 > SPARSE_MAX_DENSITY * (b * s) as f64 {
        // At least n entries are kept: too dense, skip the index lists.
        return (batch_topk_dense(r, n), None);
    }
    let _topk = profile::synced_span::<B>(Phase::TopK, &r.device());
    let host = to_vec(r.clone().detach());
    match nth_largest_of(&host, n) {
        Some(cut) => {
            let mut act = Active::default();
            for (i, &v) in host.iter().enumerate() {
                if v >= cut && v > 0.0 {
                    act.rows.push((i / s) as i64);
                    act.cols.push((i % s) as i64);
                }
            }
            let mask = r.clone().greater_equal_elem(cut);
            let sparse = act.is_sparse_enough(b, s);
            (r * mask.float(), sparse.then_some(act))
        }
        None => (r, None),
    }
}

/// The dense form: `r` (relu'd) masked to its `n` largest values.
fn batch_topk_dense<B: Backend>(r: Tensor<B, 2>, n: usize) -> Tensor<B, 2> {
    let _topk = profile::synced_span::<B>(Phase::TopK, &r.device());
    let values = to_vec(r.clone().detach());
    match nth_largest_of(&values, n) {
        Some(cut) => {
            let mask = r.clone().greater_equal_elem(cut);
            r * mask.float()
        }
        None => r,
    }
}

/// Training `batchtopk` / `matryoshka_batchtopk` SAE.
#[derive(Module, Debug)]
pub struct BatchTopKTrainingSae<B: Backend> {
    /// Weights.
    pub core: LinearCore<B>,
    /// The threshold EMA (float64, not a parameter; sae-lens's `topk_threshold`).
    pub topk_threshold: f64,
    /// Training config (`batchtopk` or `matryoshka_batchtopk`).
    #[module(skip)]
    pub cfg: TrainingSaeConfig,
}

impl<B: Backend> BatchTopKTrainingSae<B> {
    /// The BatchTopK fields and, for Matryoshka, the widths and aux switch.
    pub fn arch(&self) -> (BatchTopKConfig, Option<(Vec<usize>, bool)>) {
        match &self.cfg.arch {
            TrainingArch::BatchTopK(c) => (c.clone(), None),
            TrainingArch::MatryoshkaBatchTopK(m) => (
                m.batch_topk.clone(),
                Some((m.matryoshka_widths.clone(), m.use_matryoshka_aux_loss)),
            ),
            _ => (BatchTopKConfig::default(), None),
        }
    }

    /// Training forward: `mse_loss`, `auxiliary_reconstruction_loss` and, for
    /// Matryoshka, `inner_mse_loss_<w>` for every width but the last.
    ///
    /// On CPU autodiff backends the host path runs (`cpu_train`);
    /// the result is the same.
    pub fn forward_train(&self, input: &TrainStepInput<B>) -> TrainStepOutput<B> {
        let (c, matryoshka) = self.arch();
        let spec = TopKFamilySpec {
            selection: Selection::BatchTopK {
                k: c.k,
                hint: self.topk_threshold,
            },
            rescale: c.rescale_acts_by_decoder_norm,
            aux_coefficient: c.aux_loss_coefficient,
            matryoshka: matryoshka.clone(),
        };
        if let Some(out) = forward_train_cpu(&self.core, &self.cfg.base, &spec, input) {
            return out;
        }
        self.forward_train_generic(input)
    }

    /// The training forward as dense tensor operations, which every backend
    /// runs (the CPU path's reference in tests).
    pub(crate) fn forward_train_generic(&self, input: &TrainStepInput<B>) -> TrainStepOutput<B> {
        let (c, matryoshka) = self.arch();
        let b = &self.cfg.base;
        let x = input.x.clone();
        let (xp, st) =
            self.core
                .process_in(x.clone(), b.normalize_activations, b.apply_b_dec_to_input);
        let norms = c.rescale_acts_by_decoder_norm.then(|| self.core.norms());
        let p = input.precision;
        let hidden_pre = scaled_pre(&self.core, xp, norms.as_ref(), p);
        let (z, active) = batch_topk_activation_sparse(hidden_pre.clone(), c.k);
        let decoded = decode_kept(
            &self.core,
            &z,
            &hidden_pre,
            active.as_ref(),
            norms.as_ref(),
            false,
            p,
        );
        let sae_out = normalize_out(decoded + row(self.core.b_dec.val()), &st);
        let mse = sum_sq_mean(sae_out.clone() - x.clone());
        let mut losses = vec![("mse_loss".to_string(), mse.clone())];
        let mut loss = mse;
        let aux = match &matryoshka {
            Some((widths, true)) => matryoshka_aux_loss(
                &self.core,
                x.clone(),
                z.clone(),
                hidden_pre.clone(),
                input.dead_mask.as_ref(),
                widths,
                norms.as_ref(),
                &st,
                c.aux_loss_coefficient,
                p,
            ),
            _ => topk_aux_loss(
                x.clone(),
                sae_out.clone(),
                hidden_pre.clone(),
                input.dead_mask.as_ref(),
                self.core.w_dec.val(),
                norms.as_ref(),
                c.aux_loss_coefficient,
                false,
                p,
            ),
        };
        loss = loss + aux.clone();
        losses.push(("auxiliary_reconstruction_loss".into(), aux));
        if let Some((widths, _)) = &matryoshka {
            let inner_losses =
                matryoshka_inner_losses(&self.core, x, z.clone(), widths, norms.as_ref(), &st, p);
            for (w, inner) in inner_losses {
                loss = loss + inner.clone();
                losses.push((format!("inner_mse_loss_{w}"), inner));
            }
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

    /// Threshold EMA after a forward pass: if any activation is positive,
    /// `θ ← (1 − lr) θ + lr · min_positive` in float64. Returns
    /// `[("topk_threshold", θ)]`.
    ///
    /// The minimum is taken on the device (entries that are not `> 0`, NaN
    /// included, masked to `+∞`), so only one value is read back.
    pub fn update_threshold(&mut self, feature_acts: &Tensor<B, 2>) -> Vec<(String, f64)> {
        let _topk = profile::synced_span::<B>(Phase::TopK, &feature_acts.device());
        let acts = feature_acts.clone().detach();
        let not_positive = acts.clone().greater_elem(0.0).bool_not();
        let min_pos = to_vec(acts.mask_fill(not_positive, f32::INFINITY).min())[0];
        self.update_threshold_with(min_pos.is_finite().then_some(min_pos))
    }

    /// [`Self::update_threshold`] from the batch's smallest positive
    /// activation, already known (`None`: no latent fired, no update).
    pub fn update_threshold_with(&mut self, min_positive: Option<f32>) -> Vec<(String, f64)> {
        let (c, _) = self.arch();
        if let Some(min_pos) = min_positive {
            let lr = c.topk_threshold_lr;
            self.topk_threshold = (1.0 - lr) * self.topk_threshold + lr * min_pos as f64;
        }
        vec![("topk_threshold".into(), self.topk_threshold)]
    }

    /// Inference form: TopK-style decoder-norm fold if rescaling, then a
    /// JumpReLU SAE with `threshold = θ · 1` (spec §10.4).
    pub fn to_inference(&self) -> JumpReluSae<B> {
        let (c, _) = self.arch();
        let core = if c.rescale_acts_by_decoder_norm {
            self.core.folded_copy()
        } else {
            self.core.clone()
        };
        let d_sae = self.cfg.base.d_sae;
        let device = core.b_enc.val().device();
        let threshold = Tensor::<B, 1>::full([d_sae], self.topk_threshold as f32, &device);
        JumpReluSae::new(core, param(threshold), self.cfg.inference_config())
    }
}
