//! The TopK family's training forward passes on the fused CPU path
//! ([`crate::fused`]): selections on a host copy of the pre-activations,
//! decodes of the kept entries only, and an encoder whose backward pass uses
//! only the entries that receive gradient.
//!
//! Same losses, latents and (to float rounding) gradients as the generic
//! formulation in `topk.rs`, `batchtopk.rs` and `matryoshka.rs`, which the
//! other backends run; used when [`crate::fused::available`] holds.

use std::sync::Arc;

use burn::prelude::*;

use super::topk::count_dead;
use super::LinearCore;
use crate::config::NormalizeActivations;
use crate::fused::{linear_sparse_grad, masked_decode, Entries, KeptActivation};
use crate::ops::{normalize_out, nth_largest_host, row, sum_sq_mean, to_vec};
use crate::sae::{Firing, TrainStepInput, TrainStepOutput};

/// Which selection the forward pass makes.
#[derive(Debug, Clone)]
pub(crate) enum Selection {
    /// Per row, the `k` largest values (`abs`: largest `|value|`, signed).
    TopK { k: usize, abs: bool },
    /// The `floor(k · B)` largest relu'd values of the batch; `hint` is a
    /// value near the cut (the threshold EMA, 0 for none) used to narrow the
    /// search (the result does not depend on it).
    BatchTopK { k: f64, hint: f64 },
}

/// What the caller's architecture adds to the plain TopK forward.
#[derive(Debug, Clone)]
pub(crate) struct FusedSpec {
    pub selection: Selection,
    pub rescale: bool,
    pub aux_coefficient: f64,
    /// Matryoshka widths (cumulative, the last = `d_sae`) and whether the
    /// per-level aux loss is on.
    pub matryoshka: Option<(Vec<usize>, bool)>,
}

/// The training forward of the TopK family on the fused path (see the
/// module docs); `None` when the fused operations are not available.
pub(crate) fn forward_train_fused<B: Backend>(
    core: &LinearCore<B>,
    base: &crate::config::SaeBase,
    spec: &FusedSpec,
    input: &TrainStepInput<B>,
) -> Option<TrainStepOutput<B>> {
    if !crate::fused::available::<B>() {
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
    let host = crate::fused::host_values(hidden_pre.clone());
    let (entries, activation) = match spec.selection {
        Selection::TopK { k, abs } => (
            topk_entries(&host, b, s, k, abs),
            if abs {
                KeptActivation::Identity
            } else {
                KeptActivation::Relu
            },
        ),
        Selection::BatchTopK { k, hint } => (
            batch_topk_entries(&host, b, s, k, hint),
            KeptActivation::Relu,
        ),
    };
    let entries = Arc::new(entries);
    let (feature_acts, firing) = dense_from_entries::<B>(&host, &entries, activation, &device);
    let w_dec = core.w_dec.val();
    let decode = |ent: &Arc<Entries>, act: KeptActivation| {
        masked_decode(
            hidden_pre.clone(),
            &host,
            ent,
            act,
            w_dec.clone(),
            norms.clone(),
        )
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
    let abs = matches!(spec.selection, Selection::TopK { abs: true, .. });
    let aux = match (&spec.matryoshka, input.dead_mask.as_ref()) {
        (_, None) => Tensor::zeros([1], &device),
        (Some((_, true)), Some(dead)) => {
            let dead_host = dead_flags(dead);
            let k_aux = x.dims()[1] / 2;
            let mut total = Tensor::zeros([1], &device);
            let mut prev = 0;
            for (w, partial) in &inner {
                let n_dead = dead_host[prev..*w].iter().filter(|&&d| d).count();
                if n_dead > 0 && k_aux > 0 {
                    let scale = (n_dead as f64 / k_aux as f64).min(1.0);
                    let residual = (x.clone() - partial.clone()).detach();
                    let ent = Arc::new(aux_entries(
                        &host,
                        b,
                        s,
                        &dead_host,
                        (prev, *w),
                        k_aux.min(n_dead),
                        false,
                    ));
                    let recons = decode(&ent, KeptActivation::Identity)?;
                    total = total + sum_sq_mean(recons - residual).mul_scalar(scale);
                }
                prev = *w;
            }
            total.mul_scalar(spec.aux_coefficient)
        }
        (_, Some(dead)) => {
            let num_dead = count_dead(dead);
            let k_aux = x.dims()[1] / 2;
            if num_dead == 0 || k_aux == 0 {
                Tensor::zeros([1], &device)
            } else {
                let dead_host = dead_flags(dead);
                let residual = (x.clone() - sae_out.clone()).detach();
                let scale = (num_dead as f64 / k_aux as f64).min(1.0);
                let ent = Arc::new(aux_entries(
                    &host,
                    b,
                    s,
                    &dead_host,
                    (0, s),
                    k_aux.min(num_dead),
                    abs,
                ));
                let recons = decode(&ent, KeptActivation::Identity)?;
                sum_sq_mean(recons - residual).mul_scalar(spec.aux_coefficient * scale)
            }
        }
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
/// normalisation: the whole loss as one node ([`crate::fused::topk_loss`]).
fn forward_train_one_node<B: Backend>(
    core: &LinearCore<B>,
    base: &crate::config::SaeBase,
    spec: &FusedSpec,
    input: &TrainStepInput<B>,
) -> Option<TrainStepOutput<B>> {
    let x = input.x.clone();
    let d = x.dims()[1];
    let abs = matches!(spec.selection, Selection::TopK { abs: true, .. });
    // The aux-k term: `k_aux = D / 2` among the dead latents.
    let k_aux = d / 2;
    let dead = input.dead_mask.as_ref().map(dead_flags);
    let num_dead = dead
        .as_ref()
        .map_or(0, |m| m.iter().filter(|&&f| f).count());
    let aux_scale = if num_dead > 0 && k_aux > 0 {
        spec.aux_coefficient * (num_dead as f64 / k_aux as f64).min(1.0)
    } else {
        0.0
    };
    let fspec = crate::fused::TopKLossSpec {
        rescale: spec.rescale,
        apply_b_dec: base.apply_b_dec_to_input,
        activation: if abs {
            KeptActivation::Identity
        } else {
            KeptActivation::Relu
        },
        aux_scale,
    };
    let s = core.w_enc.val().dims()[1];
    let b = x.dims()[0];
    let select = |v: &[f32]| match spec.selection {
        Selection::TopK { k, abs } => topk_entries(v, b, s, k, abs),
        Selection::BatchTopK { k, hint } => batch_topk_entries(v, b, s, k, hint),
    };
    let aux_select = |v: &[f32]| {
        let dead = dead.as_deref().unwrap_or(&[]);
        aux_entries(v, b, s, dead, (0, s), k_aux.min(num_dead), abs)
    };
    let out = crate::fused::topk_loss(
        x,
        core.w_enc.val(),
        core.b_enc.val(),
        core.w_dec.val(),
        core.b_dec.val(),
        fspec,
        &select,
        &aux_select,
    )?;
    Some(TrainStepOutput {
        sae_out: out.sae_out,
        feature_acts: out.feature_acts,
        hidden_pre: out.hidden_pre,
        loss: out.loss,
        losses: vec![
            ("mse_loss".to_string(), out.mse_loss),
            ("auxiliary_reconstruction_loss".into(), out.aux_loss),
        ],
        firing: Some(out.firing),
    })
}

/// `[S]` dead flags on the host.
fn dead_flags<B: Backend>(dead: &Tensor<B, 1, Bool>) -> Vec<bool> {
    to_vec(dead.clone().float())
        .into_iter()
        .map(|v| v != 0.0)
        .collect()
}

/// Per row, the entries whose key (`v`, or `|v|` with `abs`) is at least the
/// row's `k`-th largest key (ties keep every tied entry, as
/// [`crate::ops::row_topk_mask`]); without `abs`, entries `≤ 0` are left out
/// (relu makes them contribute nothing, forward or backward).
fn topk_entries(host: &[f32], b: usize, s: usize, k: usize, abs: bool) -> Entries {
    let key = |v: f32| if abs { v.abs() } else { v };
    let mut scratch = Vec::with_capacity(s);
    let mut row_offsets = Vec::with_capacity(b + 1);
    row_offsets.push(0u32);
    let mut cols = Vec::with_capacity(b * k.min(s));
    for row in host.chunks_exact(s.max(1)).take(b) {
        let cut = if k == 0 {
            f32::INFINITY
        } else if k >= s {
            f32::NEG_INFINITY
        } else {
            crate::ops::row_kth_largest(row, k, key, &mut scratch).unwrap_or(f32::NEG_INFINITY)
        };
        for (c, &v) in row.iter().enumerate() {
            if k > 0 && key(v) >= cut && (abs || v > 0.0) {
                cols.push(c as u32);
            }
        }
        row_offsets.push(cols.len() as u32);
    }
    Entries {
        batch: b,
        width: s,
        row_offsets,
        cols,
    }
}

/// BatchTopK: the positive entries at or above the `floor(k · B)`-th largest
/// relu'd value of the batch (ties keep every tied entry).
///
/// Exact for any guess: the cut is the `n`-th largest of the candidates at or
/// above a lower bound `lo` whenever at least `n` values reach `lo`. `lo` is
/// read off a fixed strided sample (the quantile at twice the kept
/// fraction), else the threshold hint halved, else 0; one parallel pass
/// collects the candidates' indices (ascending), the selection runs on them
/// only, and the entries are the candidates at or above the cut.
fn batch_topk_entries(host: &[f32], b: usize, s: usize, k: f64, hint: f64) -> Entries {
    let n = (k * b as f64).floor();
    if n <= 0.0 {
        return Entries::from_host(host, b, s, |_| false);
    }
    let n = n as usize;
    let total = b * s;
    if n >= total {
        return Entries::from_host(host, b, s, |v| v > 0.0);
    }
    let mut bounds = Vec::with_capacity(3);
    // A stride coprime with the row width, so that the sample visits every
    // column (a stride dividing `s` would sample the same few latents in
    // every row, and a bound read off them can be far off).
    let mut stride = (total / 8192).max(1);
    while stride > 1 && gcd(stride, s) != 1 {
        stride += 1;
    }
    let mut sample: Vec<f32> = host.iter().step_by(stride).copied().collect();
    let m = ((2.0 * n as f64 / total as f64) * sample.len() as f64).ceil() as usize + 8;
    if m < sample.len() {
        if let Some(v) = nth_largest_host(&mut sample, m) {
            bounds.push(v);
        }
    }
    if hint > 0.0 {
        bounds.push((hint / 2.0) as f32);
    }
    bounds.push(0.0);
    let mut cand: Vec<(Vec<u32>, Vec<f32>)> = Vec::new();
    let mut found = 0;
    for lo in bounds {
        // Strictly positive values only (relu'd zeros are never kept).
        let lo = if lo > 0.0 { lo } else { f32::MIN_POSITIVE };
        cand = candidates_at_least(host, s, lo);
        found = cand.iter().map(|(c, _)| c.len()).sum::<usize>();
        if found >= n || lo == f32::MIN_POSITIVE {
            break;
        }
    }
    // Fewer than n positive values: the n-th largest relu'd value is 0, and
    // every positive entry is kept.
    let cut = if found >= n {
        let mut vals = Vec::with_capacity(found);
        for (_, v) in &cand {
            vals.extend_from_slice(v);
        }
        nth_largest_host(&mut vals, n).unwrap_or(f32::MIN_POSITIVE)
    } else {
        f32::MIN_POSITIVE
    };
    let mut row_offsets = Vec::with_capacity(b + 1);
    let mut cols = Vec::with_capacity(n + n / 8);
    row_offsets.push(0u32);
    for (c, v) in &cand {
        cols.extend(c.iter().zip(v).filter(|(_, &v)| v >= cut).map(|(&c, _)| c));
        row_offsets.push(cols.len() as u32);
    }
    Entries {
        batch: b,
        width: s,
        row_offsets,
        cols,
    }
}

fn gcd(mut a: usize, mut b: usize) -> usize {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

/// Per row of a row-major `[_, s]` array, the columns (ascending) of the
/// values `≥ lo` and those values; rows in parallel, each with the
/// vectorised scan (the values are read while the row is in cache).
fn candidates_at_least(host: &[f32], s: usize, lo: f32) -> Vec<(Vec<u32>, Vec<f32>)> {
    use rayon::prelude::*;
    host.par_chunks(s.max(1))
        .with_min_len(8)
        .map(|row| {
            let mut cols = Vec::new();
            crate::host::indices_at_least(row, lo, false, &mut cols);
            let vals = cols.iter().map(|&c| row[c as usize]).collect();
            (cols, vals)
        })
        .collect()
}

/// Aux-k entries: per row, among the dead latents in `range`, those whose
/// key (`v`, or `|v|` with `abs`) is at least the row's `k`-th largest
/// (`k ≤` the number of dead latents in the range); values signed, no relu.
fn aux_entries(
    host: &[f32],
    b: usize,
    s: usize,
    dead: &[bool],
    range: (usize, usize),
    k: usize,
    abs: bool,
) -> Entries {
    let key = |v: f32| if abs { v.abs() } else { v };
    let dead_cols: Vec<usize> = (range.0..range.1).filter(|&c| dead[c]).collect();
    let mut scratch = Vec::with_capacity(dead_cols.len());
    let mut row_offsets = Vec::with_capacity(b + 1);
    row_offsets.push(0u32);
    let mut cols = Vec::with_capacity(b * k);
    for row in host.chunks_exact(s.max(1)).take(b) {
        if k > 0 && !dead_cols.is_empty() {
            scratch.clear();
            scratch.extend(dead_cols.iter().map(|&c| key(row[c])));
            let cut =
                nth_largest_host(&mut scratch, k.min(dead_cols.len())).unwrap_or(f32::NEG_INFINITY);
            cols.extend(
                dead_cols
                    .iter()
                    .filter(|&&c| key(row[c]) >= cut)
                    .map(|&c| c as u32),
            );
        }
        row_offsets.push(cols.len() as u32);
    }
    Entries {
        batch: b,
        width: s,
        row_offsets,
        cols,
    }
}

/// The entries of `entries` whose column lies in `[lo, hi)`.
fn restrict(entries: &Entries, lo: usize, hi: usize) -> Entries {
    let mut row_offsets = Vec::with_capacity(entries.batch + 1);
    row_offsets.push(0u32);
    let mut cols = Vec::new();
    for r in 0..entries.batch {
        let (a, e) = (
            entries.row_offsets[r] as usize,
            entries.row_offsets[r + 1] as usize,
        );
        cols.extend(
            entries.cols[a..e]
                .iter()
                .copied()
                .filter(|&c| (c as usize) >= lo && (c as usize) < hi),
        );
        row_offsets.push(cols.len() as u32);
    }
    Entries {
        batch: entries.batch,
        width: entries.width,
        row_offsets,
        cols,
    }
}

/// The latents `[B, S]` (untracked): the kept values after `activation`,
/// zeros elsewhere; and their firing summary.
fn dense_from_entries<B: Backend>(
    host: &[f32],
    entries: &Entries,
    activation: KeptActivation,
    device: &B::Device,
) -> (Tensor<B, 2>, Firing) {
    let (b, s) = (entries.batch, entries.width);
    let mut z = vec![0.0f32; b * s];
    let mut counts = vec![0u32; s];
    let mut min_pos = f32::INFINITY;
    for (r, c) in entries.iter() {
        let v = host[r * s + c];
        let a = match activation {
            KeptActivation::Relu => v.max(0.0),
            KeptActivation::Identity => v,
        };
        z[r * s + c] = a;
        counts[c] += u32::from(a != 0.0);
        if a > 0.0 {
            min_pos = min_pos.min(a);
        }
    }
    let firing = Firing {
        counts,
        min_positive: min_pos.is_finite().then_some(min_pos),
    };
    (
        Tensor::from_data(TensorData::new(z, [b, s]), device),
        firing,
    )
}

#[cfg(test)]
mod tests {
    //! The fused path against the generic one on the same CPU autodiff
    //! backend: losses, latents, reconstructions and every gradient.

    use burn::backend::{Autodiff, Flex, NdArray};
    use burn::tensor::backend::AutodiffBackend;

    use super::super::batchtopk::BatchTopKTrainingSae;
    use super::super::topk::TopKTrainingSae;
    use super::*;
    use crate::config::*;
    use crate::ops::param;

    const D: usize = 8;
    const S: usize = 48;
    const BATCH: usize = 13;

    /// `[rows, cols]` normal values with standard deviation `sd`, drawn on
    /// the host (the backends' own RNGs are global, shared between tests).
    fn normal<B: Backend, const N: usize>(seed: u64, shape: [usize; N], sd: f32) -> Tensor<B, N> {
        use rand::SeedableRng;
        use rand_distr::Distribution as _;
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let law = rand_distr::Normal::new(0.0f32, sd).unwrap();
        let n = shape.iter().product();
        let v: Vec<f32> = (0..n).map(|_| law.sample(&mut rng)).collect();
        Tensor::from_data(TensorData::new(v, shape), &Default::default())
    }

    fn core<B: Backend>(seed: u64) -> LinearCore<B> {
        LinearCore {
            w_enc: param(normal(seed, [D, S], 0.5)),
            w_dec: param(normal(seed + 1, [S, D], 0.4)),
            b_enc: param(normal(seed + 2, [S], 0.1)),
            b_dec: param(normal(seed + 3, [D], 0.1)),
        }
    }

    fn input<B: Backend>(dead: bool) -> TrainStepInput<B> {
        let device = Default::default();
        TrainStepInput {
            x: normal(99, [BATCH, D], 1.0),
            // Every third latent dead (16 of 48 ≥ k_aux = D / 2).
            dead_mask: dead.then(|| {
                let m: Vec<f32> = (0..S).map(|i| (i % 3 == 0) as u8 as f32).collect();
                Tensor::<B, 1>::from_data(TensorData::new(m, [S]), &device).greater_elem(0.5)
            }),
            coefficients: Default::default(),
            step: 0,
        }
    }

    fn cfg(
        arch: TrainingArch,
        normalize: NormalizeActivations,
        b_dec_in: bool,
    ) -> TrainingSaeConfig {
        let mut base = SaeBase::new(D, S);
        base.normalize_activations = normalize;
        base.apply_b_dec_to_input = b_dec_in;
        TrainingSaeConfig::from_parts(base, Some(0.1), arch).unwrap()
    }

    /// Host copies of everything the two paths must agree on.
    fn outputs<B: AutodiffBackend>(
        core: &LinearCore<B>,
        out: TrainStepOutput<B>,
    ) -> Vec<(String, Vec<f32>)> {
        let mut v: Vec<(String, Vec<f32>)> = out
            .losses
            .iter()
            .map(|(n, t)| (n.clone(), to_vec(t.clone().detach())))
            .collect();
        v.push(("loss".into(), to_vec(out.loss.clone().detach())));
        v.push(("sae_out".into(), to_vec(out.sae_out.clone().detach())));
        v.push((
            "feature_acts".into(),
            to_vec(out.feature_acts.to_dense().detach()),
        ));
        v.push(("hidden_pre".into(), to_vec(out.hidden_pre.clone().detach())));
        // The firing summary, as the dense latents give it (both paths).
        let acts = to_vec(out.feature_acts.to_dense().detach());
        let mut counts = vec![0.0f32; S];
        for row in acts.chunks_exact(S) {
            for (n, &a) in counts.iter_mut().zip(row) {
                *n += (a != 0.0) as u8 as f32;
            }
        }
        let min_pos = acts
            .iter()
            .copied()
            .filter(|&a| a > 0.0)
            .fold(f32::INFINITY, f32::min);
        if let Some(f) = &out.firing {
            let got: Vec<f32> = f.counts.iter().map(|&n| n as f32).collect();
            assert_eq!(got, counts, "firing counts");
            assert_eq!(
                f.min_positive,
                min_pos.is_finite().then_some(min_pos),
                "min positive"
            );
        }
        v.push(("fire counts".into(), counts));
        let g = out.loss.backward();
        v.push(("grad W_enc".into(), to_vec(core.w_enc.grad(&g).unwrap())));
        v.push(("grad b_enc".into(), to_vec(core.b_enc.grad(&g).unwrap())));
        v.push(("grad W_dec".into(), to_vec(core.w_dec.grad(&g).unwrap())));
        v.push(("grad b_dec".into(), to_vec(core.b_dec.grad(&g).unwrap())));
        v
    }

    /// `tol` relative to each tensor's largest magnitude (float rounding:
    /// the two paths sum in different orders).
    fn agree(case: &str, generic: &[(String, Vec<f32>)], fused: &[(String, Vec<f32>)], tol: f32) {
        assert_eq!(generic.len(), fused.len(), "{case}: output count");
        for ((n, a), (m, b)) in generic.iter().zip(fused) {
            assert_eq!(n, m, "{case}: output order");
            assert_eq!(a.len(), b.len(), "{case}: {n} length");
            let scale = a.iter().fold(1e-3f32, |s, v| s.max(v.abs()));
            for (i, (p, q)) in a.iter().zip(b).enumerate() {
                assert!(
                    (p - q).abs() <= tol * scale,
                    "{case}: {n}[{i}] generic {p} vs fused {q}"
                );
            }
        }
    }

    /// Runs both paths of one case and requires them to agree (and the
    /// dispatching one to have taken the fused path).
    fn check_paths<B: AutodiffBackend>(
        case: &str,
        tol: f32,
        core: &LinearCore<B>,
        fused: impl FnOnce() -> TrainStepOutput<B>,
        generic: impl FnOnce() -> TrainStepOutput<B>,
    ) {
        let want = outputs(core, generic());
        let out = fused();
        assert!(out.firing.is_some(), "{case}: the fused path ran");
        // Without Matryoshka levels the whole loss is one node, whose
        // latents stay sparse.
        let one_node = !case.contains("Matryoshka");
        assert_eq!(
            matches!(out.feature_acts, crate::StepLatents::Sparse(..)),
            one_node,
            "{case}: one-node path"
        );
        agree(case, &want, &outputs(core, out), tol);
    }

    fn normalizations() -> [(NormalizeActivations, bool); 3] {
        [
            // (Per-sample normalisations are refused for the TopK family.)
            (NormalizeActivations::None, true),
            (NormalizeActivations::None, false),
            (NormalizeActivations::ExpectedAverageOnlyIn, true),
        ]
    }

    fn topk_family<B: AutodiffBackend>(tol: f32) {
        assert!(crate::fused::available::<B>());
        for (arch_name, abs) in [("topk", false), ("abstopk", true)] {
            for rescale in [false, true] {
                for (norm, b_dec_in) in normalizations() {
                    for dead in [false, true] {
                        let c = TopKConfig {
                            k: 5,
                            rescale_acts_by_decoder_norm: rescale,
                            ..Default::default()
                        };
                        let arch = if abs {
                            TrainingArch::AbsTopK(c)
                        } else {
                            TrainingArch::TopK(c)
                        };
                        let sae = TopKTrainingSae::<B> {
                            core: core(7),
                            cfg: cfg(arch.clone(), norm, b_dec_in),
                        };
                        let inp = input::<B>(dead);
                        let case = format!("{arch_name} rescale={rescale} {norm:?} dead={dead}");
                        check_paths(
                            &case,
                            tol,
                            &sae.core,
                            || sae.forward_train(&inp),
                            || sae.forward_train_generic(&inp),
                        );
                    }
                }
            }
        }
    }

    fn batchtopk_family<B: AutodiffBackend>(tol: f32) {
        let btk = |rescale| BatchTopKConfig {
            k: 4.0,
            rescale_acts_by_decoder_norm: rescale,
            ..Default::default()
        };
        let mut archs = vec![];
        for rescale in [false, true] {
            archs.push(TrainingArch::BatchTopK(btk(rescale)));
            for aux in [false, true] {
                archs.push(TrainingArch::MatryoshkaBatchTopK(MatryoshkaConfig {
                    batch_topk: btk(rescale),
                    matryoshka_widths: vec![8, 20, S],
                    use_matryoshka_aux_loss: aux,
                }));
            }
        }
        for arch in archs {
            for (norm, b_dec_in) in normalizations() {
                for dead in [false, true] {
                    // Threshold hints: none, below the cut, far above it (the
                    // candidate filter must fall back).
                    for hint in [0.0, 0.05, 1e3] {
                        let sae = BatchTopKTrainingSae::<B> {
                            core: core(11),
                            topk_threshold: hint,
                            cfg: cfg(arch.clone(), norm, b_dec_in),
                        };
                        let inp = input::<B>(dead);
                        let case = format!("{arch:?} {norm:?} dead={dead} hint={hint}");
                        check_paths(
                            &case,
                            tol,
                            &sae.core,
                            || sae.forward_train(&inp),
                            || sae.forward_train_generic(&inp),
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn topk_fused_equals_generic_flex() {
        topk_family::<Autodiff<Flex>>(2e-5);
    }

    #[test]
    fn topk_fused_equals_generic_ndarray() {
        // burn-ndarray's approximate `recip` in the generic path's division
        // backward: ~5e-5 relative.
        topk_family::<Autodiff<NdArray>>(2e-4);
    }

    #[test]
    fn batchtopk_and_matryoshka_fused_equal_generic_flex() {
        batchtopk_family::<Autodiff<Flex>>(2e-5);
    }

    #[test]
    fn batchtopk_and_matryoshka_fused_equal_generic_ndarray() {
        batchtopk_family::<Autodiff<NdArray>>(2e-4);
    }
}
