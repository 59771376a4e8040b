//! `topk` and `abstopk` (spec §10.3, §10.9): per-row selection of the k
//! largest pre-activations (by value, or by magnitude keeping the sign),
//! optional decoder-norm rescaling, and the aux-k dead-latent loss shared by
//! the whole TopK family.

pub mod config;

pub use config::TopKConfig;

use burn::prelude::*;
use burn::tensor::activation::relu;
use burn::tensor::IndexingUpdateOp;
use synthsae_host::profile::{self, Phase};

use synthsae_host::aux_k::{self, AuxK};
use synthsae_host::inference::{host_path_ok, sparse_decode_host, topk_host};
use synthsae_host::kept::Selection;
use synthsae_host::select::nth_largest;
use synthsae_host::sparse_forward::HostSelect;
use synthsae_host::Precision;

use crate::config::inference::{InferenceArch, SaeConfig};
use crate::config::training::{TrainingArch, TrainingSaeConfig};
use crate::cpu_train::{forward_train_cpu, TopKFamilySpec};
use crate::linear::LinearCore;
use crate::normalize::{cached_state, normalize_out, NormCache};
use crate::ops::{row, row_topk_mask, sum_sq_mean, to_vec};
use crate::sae::{Sae, TrainStepInput, TrainStepOutput};

/// Per-row TopK activation on `[B, S]`: keep the k largest entries
/// (relu applied), or with `abs` the k largest `|x|` with their sign.
/// Untracked tensors on CPU backends take the host path
/// ([`synthsae_host::inference::topk_host`], same result).
pub fn topk_activation<B: Backend>(hidden_pre: Tensor<B, 2>, k: usize, abs: bool) -> Tensor<B, 2> {
    if host_path_ok(&hidden_pre) {
        return topk_host(hidden_pre, k, abs);
    }
    topk_activation_device(hidden_pre, k, abs)
}

/// [`topk_activation`] with device ops only.
pub(crate) fn topk_activation_device<B: Backend>(
    hidden_pre: Tensor<B, 2>,
    k: usize,
    abs: bool,
) -> Tensor<B, 2> {
    if abs {
        let mask = row_topk_mask(hidden_pre.clone().abs(), k);
        hidden_pre * mask.float()
    } else {
        let mask = row_topk_mask(hidden_pre.clone(), k);
        relu(hidden_pre) * mask.float()
    }
}

/// Largest fraction of `B · S` entries for which the TopK family decodes
/// sparsely ([`sparse_decode`]: gather the active rows of `W_dec`, scale,
/// scatter-add) instead of with the dense `z · W_dec`.
///
/// Chosen by measurement, `cargo run --release -p synthsae-sae --example
/// decode_density` (training forward + backward at B = 1024, S = 1024,
/// D = 256 on `Autodiff<Flex>`, best of 10): k = 4 (0.39 %)
/// sparse 31.4 ms vs dense 35.3 ms; k = 12 (1.2 %) 55.0 vs 37.7 ms; k = 32
/// (3.1 %) 120 vs 37 ms. Burn's `select` / `select_assign` on `Flex` cost
/// about 3 µs per active entry, so the sparse path only wins below ~0.5 %.
pub const SPARSE_MAX_DENSITY: f64 = 0.005;

/// The selected entries of a `[B, S]` activation, in row-major order.
#[derive(Debug, Clone, Default)]
pub struct Active {
    /// Row (sample) of each entry.
    pub rows: Vec<i64>,
    /// Column (latent) of each entry.
    pub cols: Vec<i64>,
}

impl Active {
    /// Number of entries.
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// Whether there is no entry.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// Whether the sparse path pays off for a `[b, s]` activation.
    pub fn is_sparse_enough(&self, b: usize, s: usize) -> bool {
        (self.len() as f64) <= SPARSE_MAX_DENSITY * (b * s) as f64
    }

    pub(crate) fn index<B: Backend>(v: &[i64], device: &B::Device) -> Tensor<B, 1, Int> {
        Tensor::from_data(TensorData::new(v.to_vec(), [v.len()]), device)
    }
}

/// Per-row top-k on the host: the `[B, S]` mask (as [`row_topk_mask`]) and
/// the kept entries whose `value` passes `keep` (`key` decides the ranking).
fn row_topk_select<B: Backend>(
    key: Tensor<B, 2>,
    k: usize,
    keep: impl Fn(f32) -> bool,
    values: Option<&[f32]>,
) -> (Tensor<B, 2, Bool>, Option<Active>) {
    let [b, s] = key.dims();
    if k >= s || k == 0 {
        return (row_topk_mask(key, k), None);
    }
    if (k * b) as f64 > SPARSE_MAX_DENSITY * (b * s) as f64 {
        // At least k entries per row: too dense, skip the index lists.
        return (row_topk_mask(key, k), None);
    }
    let _topk = profile::synced_span::<B>(Phase::TopK, &key.device());
    let host = to_vec(key.clone().detach());
    let mut scratch = host.clone();
    let kth: Vec<f32> = scratch
        .chunks_exact_mut(s)
        .map(|r| nth_largest(r, k).unwrap_or(f32::NEG_INFINITY))
        .collect();
    let mut act = Active::default();
    for (r, (row_keys, t)) in host.chunks_exact(s).zip(&kth).enumerate() {
        for (c, &kv) in row_keys.iter().enumerate() {
            let v = values.map_or(kv, |vals| vals[r * s + c]);
            if kv >= *t && keep(v) {
                act.rows.push(r as i64);
                act.cols.push(c as i64);
            }
        }
    }
    let kth = Tensor::<B, 2>::from_data(TensorData::new(kth, [b, 1]), &key.device());
    let mask = key.greater_equal(kth.expand([b, s]));
    let sparse = act.is_sparse_enough(b, s);
    (mask, sparse.then_some(act))
}

/// The selected entries of `hidden_pre` `[B, S]` as a `[nnz]` vector
/// (differentiable: the backward pass scatters into a `[B · S]` gradient).
///
/// Not done here: recomputing `x'[r] · W_enc[:, c]` per entry would keep
/// the encoder's backward sparse, but selecting columns of `W_enc` (or rows
/// of its transposed view) gives strided tensors whose ops on `Flex` cost
/// more than the dense encoder matmul they save (the CPU path,
/// [`synthsae_host::autodiff::linear_sparse_grad`], does it on host buffers).
pub fn sparse_pre<B: Backend>(hidden_pre: Tensor<B, 2>, act: &Active) -> Tensor<B, 1> {
    let [b, s] = hidden_pre.dims();
    let device = hidden_pre.device();
    let flat: Vec<i64> = act
        .rows
        .iter()
        .zip(&act.cols)
        .map(|(r, c)| r * s as i64 + c)
        .collect();
    let idx = Active::index::<B>(&flat, &device);
    hidden_pre.reshape([b * s]).select(0, idx)
}

/// `Σ_entries vals_e · W_dec[c_e]` into row `r_e`: `[B, D]` without `b_dec`
/// (with `vals / n[c]` if rescaling), i.e. `z · W_dec` touching only the
/// non-zero entries of `z`.
pub fn sparse_decode<B: Backend>(
    w_dec: Tensor<B, 2>,
    vals: Tensor<B, 1>,
    norms: Option<&Tensor<B, 1>>,
    act: &Active,
    batch: usize,
) -> Tensor<B, 2> {
    let device = w_dec.device();
    let d = w_dec.dims()[1];
    let rows = Active::index::<B>(&act.rows, &device);
    let cols = Active::index::<B>(&act.cols, &device);
    let vals = match norms {
        Some(n) => vals / n.clone().select(0, cols.clone()),
        None => vals,
    };
    let contrib = w_dec.select(0, cols) * vals.unsqueeze_dim(1);
    Tensor::<B, 2>::zeros([batch, d], &device).select_assign(
        0,
        rows,
        contrib,
        IndexingUpdateOp::Add,
    )
}

/// TopK activation as [`topk_activation`], plus the selected entries when
/// they are few enough for [`sparse_decode`] (entries whose relu is zero are
/// left out: they contribute nothing, forward or backward).
pub fn topk_activation_sparse<B: Backend>(
    hidden_pre: Tensor<B, 2>,
    k: usize,
    abs: bool,
) -> (Tensor<B, 2>, Option<Active>) {
    if abs {
        let (mask, act) = row_topk_select(hidden_pre.clone().abs(), k, |_| true, None);
        (hidden_pre * mask.float(), act)
    } else {
        let (mask, act) = row_topk_select(hidden_pre.clone(), k, |v| v > 0.0, None);
        (relu(hidden_pre) * mask.float(), act)
    }
}

/// The generic forward's pre-activations `x' W_enc + b_enc` (product in
/// `precision`), times the decoder row norms `n` `[S]` when rescaling:
/// `[B, D]` → `[B, S]`.
pub fn scaled_pre<B: Backend>(
    core: &LinearCore<B>,
    xp: Tensor<B, 2>,
    norms: Option<&Tensor<B, 1>>,
    precision: Precision,
) -> Tensor<B, 2> {
    let pre = core.pre_at(xp, precision);
    match norms {
        Some(n) => pre * row(n.clone()),
        None => pre,
    }
}

/// `z · W_dec` without `b_dec`, `[B, S]` → `[B, D]`, of a TopK-family step's
/// latents `z` (divided by the decoder norms when rescaling): over the kept
/// entries `active` (their `hidden_pre` values, relu'd unless `abs`) when
/// they are few and the product is float32, else one dense product in
/// `precision` (bf16 decodes densely, as under sae-lens's autocast).
pub fn decode_kept<B: Backend>(
    core: &LinearCore<B>,
    z: &Tensor<B, 2>,
    hidden_pre: &Tensor<B, 2>,
    active: Option<&Active>,
    norms: Option<&Tensor<B, 1>>,
    abs: bool,
    precision: Precision,
) -> Tensor<B, 2> {
    match active {
        Some(act) if precision == Precision::F32 => {
            let pre = sparse_pre(hidden_pre.clone(), act);
            let vals = if abs { pre } else { relu(pre) };
            sparse_decode(core.w_dec.val(), vals, norms, act, z.dims()[0])
        }
        _ => precision.matmul(unscale(z.clone(), norms), core.w_dec.val()),
    }
}

/// `z ⊙ (1/n)` if rescaling (`n` = decoder row norms `[S]`), else `z`.
pub fn unscale<B: Backend>(z: Tensor<B, 2>, norms: Option<&Tensor<B, 1>>) -> Tensor<B, 2> {
    match norms {
        Some(n) => z / row(n.clone()),
        None => z,
    }
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

/// The TopK-family aux loss (`auxiliary_reconstruction_loss`, the rule of
/// [`synthsae_host::aux_k`]): `coef · min(dead/k_aux, 1) · mean_rows(Σ (ê − e)²)`
/// with `e = x − x̂` detached, `ê` = aux-k activations decoded without
/// `b_dec`, the decode's product in `precision`. `[1]`; zero when there is
/// no mask or no dead latent.
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
    precision: Precision,
) -> Tensor<B, 1> {
    let device = x.device();
    let zero = Tensor::zeros([1], &device);
    let Some(dead) = dead else { return zero };
    let Some(rule) = AuxK::new(x.dims()[1], aux_k::count_dead(dead)) else {
        return zero;
    };
    let residual = aux_k::residual(x, sae_out);
    let acts = aux_acts(hidden_pre, dead, rule.k, abs);
    let recons = precision.matmul(unscale(acts, norms), w_dec);
    aux_k::fit_loss(recons, residual).mul_scalar(coef * rule.scale)
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
        let z = unscale(z, norms.as_ref());
        let w = self.core.w_dec.val();
        let lin = sparse_decode_host(&z, &w).unwrap_or_else(|| z.matmul(w));
        let out = lin + row(self.core.b_dec.val());
        normalize_out(out, &st)
    }
    fn forward_sparse(&self, x: Tensor<B, 2>) -> Option<crate::SparseForward<B>> {
        let (k, rescale, abs) = self.params();
        let select = HostSelect::TopK { k, abs };
        self.core.forward_sparse(x, &self.cfg.base, select, rescale)
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
    /// On CPU autodiff backends the host path runs
    /// (`cpu_train`); the result is the same.
    pub fn forward_train(&self, input: &TrainStepInput<B>) -> TrainStepOutput<B> {
        let (c, abs) = self.arch();
        let spec = TopKFamilySpec {
            selection: Selection::TopK { k: c.k, abs },
            rescale: c.rescale_acts_by_decoder_norm,
            aux_coefficient: c.aux_loss_coefficient,
            matryoshka: None,
        };
        if let Some(out) = forward_train_cpu(&self.core, &self.cfg.base, &spec, input) {
            return out;
        }
        self.forward_train_generic(input)
    }

    /// The training forward as dense tensor operations, which every backend
    /// runs (the CPU path's reference in tests).
    pub(crate) fn forward_train_generic(&self, input: &TrainStepInput<B>) -> TrainStepOutput<B> {
        let (c, abs) = self.arch();
        let b = &self.cfg.base;
        let x = input.x.clone();
        let (xp, st) =
            self.core
                .process_in(x.clone(), b.normalize_activations, b.apply_b_dec_to_input);
        let norms = c.rescale_acts_by_decoder_norm.then(|| self.core.norms());
        let p = input.precision;
        let hidden_pre = scaled_pre(&self.core, xp, norms.as_ref(), p);
        let (z, active) = topk_activation_sparse(hidden_pre.clone(), c.k, abs);
        let decoded = decode_kept(
            &self.core,
            &z,
            &hidden_pre,
            active.as_ref(),
            norms.as_ref(),
            abs,
            p,
        );
        let sae_out = normalize_out(decoded + row(self.core.b_dec.val()), &st);
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
            p,
        );
        TrainStepOutput {
            sae_out,
            feature_acts: z.into(),
            hidden_pre,
            loss: mse.clone() + aux.clone(),
            losses: vec![
                ("mse_loss".into(), mse),
                ("auxiliary_reconstruction_loss".into(), aux),
            ],
            firing: None,
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

#[cfg(test)]
mod sparse_tests {
    use super::*;
    use burn::backend::{Autodiff, NdArray};

    type B = Autodiff<NdArray>;

    /// The sparse decode gives the dense result and the same gradients.
    #[test]
    fn sparse_decode_matches_dense() {
        let (b, d, s, k) = (6usize, 5usize, 9usize, 2usize);
        let device = Default::default();
        let w: Vec<f32> = (0..s * d)
            .map(|i| ((i * 37 % 23) as f32 - 11.0) / 17.0)
            .collect();
        let xs: Vec<f32> = (0..b * d)
            .map(|i| ((i * 13 % 19) as f32 - 9.0) / 7.0)
            .collect();
        for rescale in [false, true] {
            let mut grads_out = Vec::new();
            let mut outs = Vec::new();
            for sparse in [false, true] {
                let core = LinearCore::<B>::from_decoder(&w, d, s, &device);
                let x = Tensor::<B, 2>::from_data(TensorData::new(xs.clone(), [b, d]), &device);
                let norms = rescale.then(|| core.norms());
                let mut pre = core.pre(x.clone());
                if let Some(n) = &norms {
                    pre = pre * row(n.clone());
                }
                let (z, _) = topk_activation_sparse(pre.clone(), k, false);
                let host = to_vec(z.clone().detach());
                let mut act = Active::default();
                for (i, v) in host.iter().enumerate() {
                    if *v > 0.0 {
                        act.rows.push((i / s) as i64);
                        act.cols.push((i % s) as i64);
                    }
                }
                assert!(!act.is_empty());
                let dec = if sparse {
                    let vals = relu(sparse_pre(pre, &act));
                    sparse_decode(core.w_dec.val(), vals, norms.as_ref(), &act, b)
                } else {
                    unscale(z, norms.as_ref()).matmul(core.w_dec.val())
                };
                let out = dec + row(core.b_dec.val());
                let loss = sum_sq_mean(out.clone() - x);
                let g = loss.backward();
                let mut all = Vec::new();
                all.extend(to_vec(core.w_enc.val().grad(&g).unwrap()));
                all.extend(to_vec(core.w_dec.val().grad(&g).unwrap()));
                all.extend(to_vec(core.b_enc.val().grad(&g).unwrap()));
                all.extend(to_vec(core.b_dec.val().grad(&g).unwrap()));
                grads_out.push(all);
                outs.push(to_vec(out));
            }
            for (a, c) in outs[0].iter().zip(&outs[1]) {
                assert!((a - c).abs() < 1e-5, "output {a} vs {c}");
            }
            for (a, c) in grads_out[0].iter().zip(&grads_out[1]) {
                assert!((a - c).abs() < 1e-5, "gradient {a} vs {c}");
            }
        }
    }
}
