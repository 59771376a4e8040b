//! The TopK family's whole training loss (reconstruction + aux-k) as one
//! autodiff node on host buffers.
//!
//! [`super::linear_sparse_grad`] and [`super::masked_decode`] make the
//! encoder and the decoder sparse, but the graph between them still holds
//! `[B, S]` element-wise operations (bias broadcast, decoder-norm rescale,
//! their gradients, dense zero-filled gradient buffers): on the 1024 × 256
//! BatchTopK step they cost more than the encoder product itself. Here
//! everything after the product runs on the kept entries only, and one node
//! carries the loss; its backward pass computes the four parameter gradients
//! in closed form.
//!
//! With `x' = x − b_dec` (if `apply_b_dec_to_input`), `p = x' W_enc + b_enc`,
//! `n_c = ‖W_dec[c]‖` with rescaling (else `n_c = 1`), `v = p ⊙ n`, the kept
//! entries `K` selected from `v` (TopK / BatchTopK, [`Selection`]), `f` the kept
//! activation (relu, or the identity for AbsTopK), `a_e = f(v_e) / n_c`:
//!
//! * `x̂_r = b_dec + Σ_{e ∈ K_r} a_e W_dec[c]`, `ρ_r = x̂_r − x_r`,
//!   `mse = (1/B) Σ_r ‖ρ_r‖²`;
//! * aux-k (when latents are dead): entries `A` among the dead latents
//!   (selected from `v` by [`aux_entries`], [`AuxK`]), `â_e = v_e / n_c`,
//!   `δ_r = Σ_{e ∈ A_r} â_e W_dec[c] − (x_r − x̂_r)` (the residual is
//!   detached), `aux = (σ/B) Σ_r ‖δ_r‖²` with `σ = coef · min(dead / k_aux, 1)`.
//!
//! For an upstream gradient `g`, with `G_r = (2g/B) ρ_r`, `H_r = (2gσ/B) δ_r`:
//!
//! * `∂L/∂p_e = f'(v_e) (W_dec[c] · G_r)` on `K`, `W_dec[c] · H_r` on `A`
//!   (`∂v/∂p = n_c` cancels the decode's `1 / n_c`); zero elsewhere;
//! * `∂W_enc[:, c] = Σ_e ∂L/∂p_e x'_r`, `∂b_enc[c] = Σ_e ∂L/∂p_e`;
//! * `∂W_dec[c] = Σ_{e ∈ K} a_e G_r + Σ_{e ∈ A} â_e H_r`. The path through
//!   the norms contributes `Σ_e (f'(v_e) v_e − f(v_e)) (W_dec[c] · G_r) / n_c²`,
//!   which is exactly zero for relu on kept (positive) entries and for the
//!   identity, so it is left out;
//! * `∂b_dec = Σ_r G_r − W_enc ∂b_enc` (the second term with `x'`).
//!
//! Every sum runs in a fixed order (rows ascending, `K` before `A` within a
//! column), whatever the number of threads: runs are reproducible.

use std::fmt;
use std::sync::Arc;

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::NoCheckpointing;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::prelude::*;
use burn::tensor::TensorPrimitive;
use rayon::prelude::*;

use super::prim::{prim, Ad};
use crate::aux_k::AuxK;
use crate::backend::cast;
use crate::csr::Csr;
use crate::dispatch::with_cpu_autodiff;
use crate::firing::Firing;
use crate::gemm::gemm_bias;
use crate::kept::{aux_entries, Selection};
use crate::kernels::dense::{axpy_gather, dot_gather, row_norms, sum_squares_block, transpose};
use crate::view::{host_view, HostF32};

/// What the loss is made of, besides the weights.
#[derive(Debug, Clone, Copy)]
pub struct TopKLossSpec<'a> {
    /// The kept entries `K` (and `f`: the identity for AbsTopK, else relu).
    pub selection: Selection,
    /// Multiply the pre-activations by the decoder norms (and divide the
    /// kept values by them before decoding).
    pub rescale: bool,
    /// Subtract `b_dec` from the input before encoding.
    pub apply_b_dec: bool,
    /// The aux-k term; `None` without a dead mask.
    pub aux: Option<AuxSpec<'a>>,
}

/// The aux-k term of [`TopKLossSpec`].
#[derive(Debug, Clone, Copy)]
pub struct AuxSpec<'a> {
    /// The dead mask, `[S]`.
    pub dead: &'a [bool],
    /// `k` and the scale of the rule; `None` when there is no aux loss.
    pub rule: Option<AuxK>,
    /// The aux loss coefficient.
    pub coefficient: f64,
}

impl TopKLossSpec<'_> {
    /// `σ = coef · min(dead / k_aux, 1)` of the aux-k term (0 without it);
    /// the aux entries are selected only when it is non-zero.
    fn aux_scale(&self) -> f64 {
        match self.aux {
            Some(AuxSpec {
                rule: Some(rule),
                coefficient,
                ..
            }) => coefficient * rule.scale,
            _ => 0.0,
        }
    }
}

/// What [`topk_loss`] returns: the tracked loss and, untracked, what a
/// training step reports.
#[derive(Debug, Clone)]
pub struct TopKLoss<B: Backend> {
    /// `mse + aux`, `[1]`, tracked.
    pub loss: Tensor<B, 1>,
    /// `[1]`.
    pub mse_loss: Tensor<B, 1>,
    /// `[1]` (zero without aux entries).
    pub aux_loss: Tensor<B, 1>,
    /// `x̂`: `[B, D]`.
    pub sae_out: Tensor<B, 2>,
    /// The latents: `f(v)` on the kept entries where it is non-zero,
    /// `[B, S]` (every stored value `≠ 0`).
    pub latents: Csr,
    /// `v`: `[B, S]`.
    pub hidden_pre: Tensor<B, 2>,
    /// Firing summary of `feature_acts`.
    pub firing: Firing,
}

/// The TopK family's loss (see the module docs) for input `x` `[B, D]` (not
/// differentiated), `W_enc` `[D, S]`, `b_enc` `[S]`, `W_dec` `[S, D]`, `b_dec`
/// `[D]`. `None` unless `B` is `Autodiff` of a CPU backend.
pub fn topk_loss<B: Backend>(
    x: Tensor<B, 2>,
    w_enc: Tensor<B, 2>,
    b_enc: Tensor<B, 1>,
    w_dec: Tensor<B, 2>,
    b_dec: Tensor<B, 1>,
    spec: TopKLossSpec<'_>,
) -> Option<TopKLoss<B>> {
    with_cpu_autodiff!(B, |I| cast(topk_ad::<I>(
        cast(x),
        cast(w_enc),
        cast(b_enc),
        cast(w_dec),
        cast(b_dec),
        spec
    )))
}

/// Everything the backward pass reads (host buffers, shared).
#[derive(Clone)]
struct TopKState {
    /// `x'`, `[B, D]`.
    xp: Arc<HostF32>,
    w_enc: Arc<HostF32>,
    w_dec: Arc<HostF32>,
    /// `ρ = x̂ − x` and `δ` (empty without aux), `[B, D]`.
    resid: Arc<Vec<f32>>,
    aux_diff: Arc<Vec<f32>>,
    /// The kept entries (values: `v`).
    kept: Arc<Csr>,
    /// Per kept entry: `a_e` and `f'(v_e)`.
    kept_a: Arc<Vec<f32>>,
    kept_slope: Arc<Vec<f32>>,
    /// The aux entries (values: `v`).
    aux: Arc<Csr>,
    /// Per aux entry: `â_e`.
    aux_a: Arc<Vec<f32>>,
    aux_scale: f64,
    apply_b_dec: bool,
    dims: (usize, usize, usize),
}

impl fmt::Debug for TopKState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TopKState")
            .field("dims", &self.dims)
            .field("kept", &self.kept.nnz())
            .field("aux", &self.aux.nnz())
            .finish_non_exhaustive()
    }
}

#[derive(Debug)]
struct TopKBackward;

impl<I: Backend> Backward<I, 4> for TopKBackward {
    type State = TopKState;

    fn backward(self, ops: Ops<Self::State, 4>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [p_we, p_be, p_wd, p_bd] = ops.parents;
        let upstream = grads.consume::<I>(&ops.node);
        let device = I::float_device(&upstream);
        let g = host_view::<I, 1>(upstream)[0] as f64;
        let st = ops.state;
        let (b, d, s) = st.dims;
        let alpha = (2.0 * g / b as f64) as f32;
        let beta = (2.0 * g * st.aux_scale / b as f64) as f32;
        let w_dec: &[f32] = &st.w_dec;

        // ∂L/∂p per entry: f'(v_e) · scale · (W_dec[c] · ρ_r or δ_r).
        let mut p_kept = row_dots(&st.kept, alpha, &st.resid, w_dec, d);
        for (p, &slope) in p_kept.iter_mut().zip(st.kept_slope.iter()) {
            *p *= slope;
        }
        let p_aux = row_dots(&st.aux, beta, &st.aux_diff, w_dec, d);

        // Each list grouped by column (rows ascending); per column the
        // kept entries first, then the aux ones.
        let kept = Columns::new(&st.kept, &st.kept_a, alpha, &p_kept);
        let aux = Columns::new(&st.aux, &st.aux_a, beta, &p_aux);
        let mut g_wd = vec![0.0f32; s * d];
        let mut g_wet = vec![0.0f32; s * d];
        let mut g_be = vec![0.0f32; s];
        g_wd.par_chunks_mut(d.max(1))
            .zip(g_wet.par_chunks_mut(d.max(1)))
            .zip(g_be.par_iter_mut())
            .enumerate()
            .for_each(|(c, ((wd, wet), be))| {
                let mut bias = 0.0f32;
                for (cols, src) in [(&kept, &st.resid), (&aux, &st.aux_diff)] {
                    let (rows, a, p) = cols.of(c);
                    axpy_gather(wd, a, rows, src, d);
                    axpy_gather(wet, p, rows, &st.xp, d);
                    bias = p.iter().fold(bias, |acc, &v| acc + v);
                }
                *be = bias;
            });
        if let Some(node) = &p_we {
            let g_we = transpose(&g_wet, s, d);
            grads.register::<I>(node.id, prim::<I, 2>(g_we, [d, s], &device));
        }
        if let Some(node) = &p_bd {
            // Σ_r G_r, in row blocks summed in a fixed order.
            let blocks: Vec<Vec<f32>> = st
                .resid
                .par_chunks(d.max(1) * 64)
                .map(|block| {
                    let mut acc = vec![0.0f32; d];
                    for row in block.chunks_exact(d.max(1)) {
                        for (a, &v) in acc.iter_mut().zip(row) {
                            *a += v;
                        }
                    }
                    acc
                })
                .collect();
            let mut g_bd = vec![0.0f32; d];
            for block in &blocks {
                for (a, &v) in g_bd.iter_mut().zip(block) {
                    *a += alpha * v;
                }
            }
            if st.apply_b_dec {
                // − W_enc ∂b_enc: row `j` of W_enc is contiguous.
                let mut w_b = vec![0.0f32; d];
                let all: Vec<u32> = (0..d as u32).collect();
                dot_gather(&mut w_b, 1.0, &g_be, &all, &st.w_enc, s);
                for (o, &v) in g_bd.iter_mut().zip(&w_b) {
                    *o -= v;
                }
            }
            grads.register::<I>(node.id, prim::<I, 1>(g_bd, [d], &device));
        }
        if let Some(node) = &p_be {
            grads.register::<I>(node.id, prim::<I, 1>(g_be, [s], &device));
        }
        if let Some(node) = &p_wd {
            grads.register::<I>(node.id, prim::<I, 2>(g_wd, [s, d], &device));
        }
    }
}

/// Per entry `e = (r, c)`: `scale · (x[r] · w[c])` for row-major `x`
/// `[B, d]` and `w` `[S, d]`; rows in parallel.
fn row_dots(ent: &Csr, scale: f32, x: &[f32], w: &[f32], d: usize) -> Vec<f32> {
    let mut out = vec![0.0f32; ent.nnz()];
    if ent.is_empty() {
        return out;
    }
    let mut parts: Vec<(usize, &mut [f32])> = Vec::with_capacity(ent.n_rows());
    let mut rest = out.as_mut_slice();
    for r in 0..ent.n_rows() {
        let n = ent.offsets()[r + 1] - ent.offsets()[r];
        let (head, tail) = rest.split_at_mut(n);
        parts.push((r, head));
        rest = tail;
    }
    parts
        .into_par_iter()
        .with_min_len(16)
        .for_each(|(r, part)| {
            let (cols, _) = ent.row(r);
            dot_gather(part, scale, &x[r * d..(r + 1) * d], cols, w, d);
        });
    out
}

/// One entry list grouped by column (rows ascending within a column), with
/// two per-entry values: the decode coefficient times a scale, and `∂L/∂p`.
struct Columns {
    offsets: Vec<u32>,
    rows: Vec<u32>,
    a: Vec<f32>,
    p: Vec<f32>,
}

impl Columns {
    fn new(ent: &Csr, a: &[f32], scale: f32, p: &[f32]) -> Self {
        let width = ent.n_cols();
        let mut offsets = vec![0u32; width + 1];
        for &c in ent.indices() {
            offsets[c as usize + 1] += 1;
        }
        for c in 0..width {
            offsets[c + 1] += offsets[c];
        }
        let mut cursor = offsets.clone();
        let n = ent.nnz();
        let (mut rows, mut sa, mut sp) = (vec![0u32; n], vec![0.0f32; n], vec![0.0f32; n]);
        let mut e = 0;
        for r in 0..ent.n_rows() {
            for _ in ent.offsets()[r]..ent.offsets()[r + 1] {
                let c = ent.indices()[e] as usize;
                let k = cursor[c] as usize;
                cursor[c] += 1;
                rows[k] = r as u32;
                sa[k] = scale * a[e];
                sp[k] = p[e];
                e += 1;
            }
        }
        Self {
            offsets,
            rows,
            a: sa,
            p: sp,
        }
    }

    /// Rows, scaled coefficients and `∂L/∂p` of column `c`.
    fn of(&self, c: usize) -> (&[u32], &[f32], &[f32]) {
        let (s, e) = (self.offsets[c] as usize, self.offsets[c + 1] as usize);
        (&self.rows[s..e], &self.a[s..e], &self.p[s..e])
    }
}

fn topk_ad<I: Backend>(
    x: Tensor<Ad<I>, 2>,
    w_enc: Tensor<Ad<I>, 2>,
    b_enc: Tensor<Ad<I>, 1>,
    w_dec: Tensor<Ad<I>, 2>,
    b_dec: Tensor<Ad<I>, 1>,
    spec: TopKLossSpec<'_>,
) -> TopKLoss<Ad<I>> {
    let [b, d] = x.dims();
    let s = w_enc.dims()[1];
    let x_i = x.inner();
    let (we, be, wd, bd) = (
        w_enc.into_primitive().tensor(),
        b_enc.into_primitive().tensor(),
        w_dec.into_primitive().tensor(),
        b_dec.into_primitive().tensor(),
    );
    let beh = host_view::<I, 1>(be.primitive.clone());
    let bdh = host_view::<I, 1>(bd.primitive.clone());
    let w_dec_h = host_view::<I, 2>(wd.primitive.clone());
    let w_enc_h = host_view::<I, 2>(we.primitive.clone());
    let xh = Arc::new(host_view::<I, 2>(x_i.into_primitive().tensor()));
    let inner_device = I::float_device(&we.primitive);

    // x' = x − b_dec.
    let xp = if spec.apply_b_dec {
        let mut v = vec![0.0f32; b * d];
        v.par_chunks_mut(d.max(1))
            .zip(xh.par_chunks(d.max(1)))
            .for_each(|(o, xr)| {
                for ((o, &xv), &bv) in o.iter_mut().zip(xr).zip(bdh.iter()) {
                    *o = xv - bv;
                }
            });
        Arc::new(HostF32::Owned(v))
    } else {
        Arc::clone(&xh)
    };
    // v = (x' W_enc + b_enc) ⊙ n = x' (W_enc ⊙ n) + b_enc ⊙ n: the norms are
    // folded into the weights' columns, so `v` is one product with the
    // bias pre-filled.
    let norms: Vec<f32> = if spec.rescale {
        row_norms(&w_dec_h, d)
    } else {
        Vec::new()
    };
    let inv_norm: Vec<f32> = if spec.rescale {
        norms.iter().map(|&n| 1.0 / n).collect()
    } else {
        vec![1.0; s]
    };
    let pre = if spec.rescale {
        let mut w = w_enc_h.to_vec();
        w.par_chunks_mut(s.max(1)).for_each(|row| {
            for (v, &n) in row.iter_mut().zip(&norms) {
                *v *= n;
            }
        });
        let bias: Vec<f32> = beh.iter().zip(&norms).map(|(&b, &n)| b * n).collect();
        gemm_bias(&xp, &w, &bias, b, d, s)
    } else {
        gemm_bias(&xp, &w_enc_h, &beh, b, d, s)
    };
    let v: &[f32] = &pre;
    let kept = {
        let _topk = crate::profile::span(crate::profile::Phase::TopK);
        spec.selection.select(v, b, s)
    };
    let aux_scale = spec.aux_scale();
    let aux = match spec.aux {
        Some(AuxSpec {
            dead,
            rule: Some(rule),
            ..
        }) if aux_scale != 0.0 => {
            aux_entries(v, b, s, dead, (0, s), rule.k, spec.selection.is_abs())
        }
        _ => Csr::zeros(b, s),
    };
    let act = spec.selection.activation();
    let kept_vals = kept.values();
    let kept_a: Vec<f32> = kept
        .indices()
        .iter()
        .zip(kept_vals)
        .map(|(&c, &p)| act.value(p) * inv_norm[c as usize])
        .collect();
    let kept_slope: Vec<f32> = kept_vals.iter().map(|&p| act.slope(p)).collect();
    let aux_a: Vec<f32> = aux
        .indices()
        .iter()
        .zip(aux.values())
        .map(|(&c, &p)| p * inv_norm[c as usize])
        .collect();

    // Decode, residuals and per-row loss sums.
    let with_aux = !aux.is_empty();
    let mut out = vec![0.0f32; b * d];
    let mut resid = vec![0.0f32; b * d];
    let mut aux_diff = if with_aux {
        vec![0.0f32; b * d]
    } else {
        Vec::new()
    };
    let mut row_sums = vec![(0.0f64, 0.0f64); b];
    {
        let wdh: &[f32] = &w_dec_h;
        let decode_row = |ent: &Csr, a: &[f32], r: usize, o: &mut [f32]| {
            let (e0, e1) = (ent.offsets()[r], ent.offsets()[r + 1]);
            axpy_gather(o, &a[e0..e1], &ent.indices()[e0..e1], wdh, d);
        };
        let mut aux_rows = aux_diff.chunks_mut(d.max(1));
        let rows: Vec<_> = out
            .chunks_mut(d.max(1))
            .zip(resid.chunks_mut(d.max(1)))
            .zip(row_sums.iter_mut())
            .map(|((o, rs), sums)| (o, rs, sums, aux_rows.next()))
            .collect();
        rows.into_par_iter()
            .enumerate()
            .with_min_len(16)
            .for_each(|(r, (o, rs, sums, ad))| {
                o.copy_from_slice(&bdh);
                decode_row(&kept, &kept_a, r, o);
                let xr = &xh[r * d..(r + 1) * d];
                for ((rv, &ov), &xv) in rs.iter_mut().zip(o.iter()).zip(xr) {
                    *rv = ov - xv;
                }
                sums.0 = sum_squares_block(rs);
                if let Some(ad) = ad {
                    decode_row(&aux, &aux_a, r, ad);
                    // δ = ê − (x − x̂) = ê + ρ.
                    for (a, &rv) in ad.iter_mut().zip(rs.iter()) {
                        *a += rv;
                    }
                    sums.1 = sum_squares_block(ad);
                }
            });
    }
    let mse = row_sums.iter().map(|s| s.0).sum::<f64>() / b.max(1) as f64;
    let aux_loss = row_sums.iter().map(|s| s.1).sum::<f64>() / b.max(1) as f64 * aux_scale;

    // The latents (kept entries with a non-zero activation) and their
    // firing summary.
    let mut offsets = Vec::with_capacity(b + 1);
    let mut cols = Vec::with_capacity(kept.nnz());
    let mut values = Vec::with_capacity(kept.nnz());
    offsets.push(0);
    let mut counts = vec![0u32; s];
    let mut min_pos = f32::INFINITY;
    for r in 0..b {
        let (idx, vals) = kept.row(r);
        for (&c, &p) in idx.iter().zip(vals) {
            let a = act.value(p);
            if a != 0.0 {
                cols.push(c);
                values.push(a);
                counts[c as usize] += 1;
            }
            if a > 0.0 {
                min_pos = min_pos.min(a);
            }
        }
        offsets.push(cols.len());
    }
    let latents = Csr::from_parts_unchecked(s, offsets, cols, values);
    let firing = Firing {
        counts,
        min_positive: min_pos.is_finite().then_some(min_pos),
    };
    let scalar = |v: f64| prim::<I, 1>(vec![v as f32], [1], &inner_device);
    let loss = scalar(mse as f32 as f64 + aux_loss as f32 as f64);

    let node = match TopKBackward
        .prepare::<NoCheckpointing>([
            we.node.clone(),
            be.node.clone(),
            wd.node.clone(),
            bd.node.clone(),
        ])
        .compute_bound()
        .stateful()
    {
        OpsKind::Tracked(prep) => {
            let state = TopKState {
                xp,
                w_enc: Arc::new(w_enc_h),
                w_dec: Arc::new(w_dec_h),
                resid: Arc::new(resid),
                aux_diff: Arc::new(aux_diff),
                kept: Arc::new(kept),
                kept_a: Arc::new(kept_a),
                kept_slope: Arc::new(kept_slope),
                aux: Arc::new(aux),
                aux_a: Arc::new(aux_a),
                aux_scale,
                apply_b_dec: spec.apply_b_dec,
                dims: (b, d, s),
            };
            prep.finish(state, loss)
        }
        OpsKind::UnTracked(prep) => prep.finish(loss),
    };
    let t1 = |p| Tensor::<Ad<I>, 1>::from_inner(Tensor::from_primitive(TensorPrimitive::Float(p)));
    let t2 = |p| Tensor::<Ad<I>, 2>::from_inner(Tensor::from_primitive(TensorPrimitive::Float(p)));
    TopKLoss {
        loss: Tensor::from_primitive(TensorPrimitive::Float(node)),
        mse_loss: t1(scalar(mse)),
        aux_loss: t1(scalar(aux_loss)),
        sae_out: t2(prim::<I, 2>(out, [b, d], &inner_device)),
        latents,
        hidden_pre: t2(prim::<I, 2>(pre, [b, s], &inner_device)),
        firing,
    }
}
