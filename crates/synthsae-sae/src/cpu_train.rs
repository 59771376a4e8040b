//! The TopK family's training forward on the CPU autodiff backends
//! (`synthsae_host::is_cpu_autodiff`): selections on a host copy of the
//! pre-activations, decodes of the kept entries only, and an encoder whose
//! backward pass uses only the entries that receive gradient
//! ([`synthsae_host::autodiff`]).
//!
//! Same losses, latents and (to float rounding) gradients as the generic
//! formulation in `arch/topk.rs`, `arch/batchtopk.rs` and
//! `arch/matryoshka.rs`, which the other backends run. Every function returns
//! `None` off the CPU autodiff backends.

use std::sync::Arc;

use burn::prelude::*;
use synthsae_host::autodiff::{
    linear_sparse_grad, masked_decode, topk_loss, AuxSpec, TopKLossSpec,
};
use synthsae_host::aux_k::{self, AuxK};
use synthsae_host::kept::{self, aux_entries, restrict, KeptActivation, Selection};
use synthsae_host::{host_values, Csr, Precision};

use crate::config::base::{NormalizeActivations, SaeBase};
use crate::linear::LinearCore;
use crate::normalize::normalize_out;
use crate::ops::{row, sum_sq_mean};
use crate::sae::{StepLatents, TrainStepInput, TrainStepOutput};

/// What the caller's architecture adds to the plain TopK forward.
#[derive(Debug, Clone)]
pub(crate) struct TopKFamilySpec {
    /// Which entries are kept.
    pub selection: Selection,
    /// `rescale_acts_by_decoder_norm`.
    pub rescale: bool,
    /// Coefficient of the aux-k loss.
    pub aux_coefficient: f64,
    /// Matryoshka widths (cumulative, the last = `d_sae`) and whether the
    /// per-level aux loss is on.
    pub matryoshka: Option<(Vec<usize>, bool)>,
}

/// The training forward of the TopK family on the CPU autodiff backends
/// (see the module docs); `None` on every other backend.
pub(crate) fn forward_train_cpu<B: Backend>(
    core: &LinearCore<B>,
    base: &SaeBase,
    spec: &TopKFamilySpec,
    input: &TrainStepInput<B>,
) -> Option<TrainStepOutput<B>> {
    if !synthsae_host::is_cpu_autodiff::<B>() || input.precision != Precision::F32 {
        return None;
    }
    let per_sample = matches!(
        base.normalize_activations,
        NormalizeActivations::ConstantNormRescale | NormalizeActivations::LayerNorm
    );
    if spec.matryoshka.is_none() && !per_sample {
        return forward_train_one_node(core, base, spec, input);
    }
    let x = input.x.clone();
    let device = x.device();
    let (xp, st) = core.process_in(
        x.clone(),
        base.normalize_activations,
        base.apply_b_dec_to_input,
    );
    let norms = spec.rescale.then(|| core.norms());
    let mut hidden_pre = linear_sparse_grad(xp, core.w_enc.val(), core.b_enc.val())?;
    if let Some(n) = &norms {
        hidden_pre = hidden_pre * row(n.clone());
    }
    let [b, s] = hidden_pre.dims();
    let host = host_values(hidden_pre.clone());
    let activation = spec.selection.activation();
    let entries = {
        let _topk = synthsae_host::profile::span(synthsae_host::profile::Phase::TopK);
        Arc::new(spec.selection.select(&host, b, s))
    };
    let (feature_acts, firing) = kept::latents::<B>(&entries, activation, &device);
    let w_dec = core.w_dec.val();
    let decode = |ent: &Arc<Csr>, act: KeptActivation| {
        masked_decode(hidden_pre.clone(), ent, act, w_dec.clone(), norms.clone())
    };
    let (sae_out, inner) = match &spec.matryoshka {
        None => (
            normalize_out(decode(&entries, activation)? + row(core.b_dec.val()), &st),
            Vec::new(),
        ),
        Some((widths, _)) => {
            // Cumulative prefix reconstructions, one level at a time.
            let mut acc = row(core.b_dec.val());
            let mut prefixes = Vec::with_capacity(widths.len());
            let mut prev = 0;
            for &w in widths {
                let level = Arc::new(restrict(&entries, prev, w));
                acc = decode(&level, activation)? + acc;
                prefixes.push((w, normalize_out(acc.clone(), &st)));
                prev = w;
            }
            let (_, full) = prefixes.last()?.clone();
            (full, prefixes)
        }
    };
    let mse = sum_sq_mean(sae_out.clone() - x.clone());
    let mut loss = mse.clone();
    let mut losses = vec![("mse_loss".to_string(), mse)];
    let d = x.dims()[1];
    let aux = match (&spec.matryoshka, input.dead_mask.as_ref()) {
        (_, None) => Tensor::zeros([1], &device),
        (Some((_, true)), Some(dead)) => {
            let dead_host = aux_k::dead_flags(dead);
            let mut total = Tensor::zeros([1], &device);
            let mut prev = 0;
            for (w, partial) in &inner {
                let n_dead = dead_host[prev..*w].iter().filter(|&&d| d).count();
                if let Some(rule) = AuxK::new(d, n_dead) {
                    let residual = aux_k::residual(x.clone(), partial.clone());
                    let ent = Arc::new(aux_entries(
                        &host,
                        b,
                        s,
                        &dead_host,
                        (prev, *w),
                        rule.k,
                        false,
                    ));
                    let recons = decode(&ent, KeptActivation::Identity)?;
                    total = total + aux_k::fit_loss(recons, residual).mul_scalar(rule.scale);
                }
                prev = *w;
            }
            total.mul_scalar(spec.aux_coefficient)
        }
        (_, Some(dead)) => match AuxK::new(d, aux_k::count_dead(dead)) {
            None => Tensor::zeros([1], &device),
            Some(rule) => {
                let dead_host = aux_k::dead_flags(dead);
                let residual = aux_k::residual(x.clone(), sae_out.clone());
                let ent = Arc::new(aux_entries(
                    &host,
                    b,
                    s,
                    &dead_host,
                    (0, s),
                    rule.k,
                    spec.selection.is_abs(),
                ));
                let recons = decode(&ent, KeptActivation::Identity)?;
                aux_k::fit_loss(recons, residual).mul_scalar(spec.aux_coefficient * rule.scale)
            }
        },
    };
    loss = loss + aux.clone();
    losses.push(("auxiliary_reconstruction_loss".into(), aux));
    if spec.matryoshka.is_some() {
        for (w, rec) in &inner[..inner.len().saturating_sub(1)] {
            let l = sum_sq_mean(rec.clone() - x.clone());
            loss = loss + l.clone();
            losses.push((format!("inner_mse_loss_{w}"), l));
        }
    }
    Some(TrainStepOutput {
        sae_out,
        feature_acts: feature_acts.into(),
        hidden_pre,
        loss,
        losses,
        firing: Some(firing),
    })
}

/// TopK / AbsTopK / BatchTopK without Matryoshka levels or per-sample
/// normalisation: the whole loss as one node
/// ([`synthsae_host::autodiff::topk_loss`]).
fn forward_train_one_node<B: Backend>(
    core: &LinearCore<B>,
    base: &SaeBase,
    spec: &TopKFamilySpec,
    input: &TrainStepInput<B>,
) -> Option<TrainStepOutput<B>> {
    let x = input.x.clone();
    let device = x.device();
    let d = x.dims()[1];
    let dead = input.dead_mask.as_ref().map(aux_k::dead_flags);
    let aux = dead.as_deref().map(|dead| AuxSpec {
        dead,
        rule: AuxK::new(d, dead.iter().filter(|&&f| f).count()),
        coefficient: spec.aux_coefficient,
    });
    let lspec = TopKLossSpec {
        selection: spec.selection,
        rescale: spec.rescale,
        apply_b_dec: base.apply_b_dec_to_input,
        aux,
    };
    let out = topk_loss(
        x,
        core.w_enc.val(),
        core.b_enc.val(),
        core.w_dec.val(),
        core.b_dec.val(),
        lspec,
    )?;
    Some(TrainStepOutput {
        sae_out: out.sae_out,
        feature_acts: StepLatents::Sparse(Arc::new(out.latents), device),
        hidden_pre: out.hidden_pre,
        loss: out.loss,
        losses: vec![
            ("mse_loss".to_string(), out.mse_loss),
            ("auxiliary_reconstruction_loss".into(), out.aux_loss),
        ],
        firing: Some(out.firing),
    })
}
