//! [`masked_decode`]: `Σ_e f(pre_e) / n_c · W_dec[c]` over the kept entries
//! `e = (r, c)` of a `[B, S]` pre-activation, with the exact gradients for
//! `pre` (at the kept entries), `W_dec` (kept rows) and the decoder norms.

use std::sync::Arc;

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::NoCheckpointing;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::prelude::*;
use burn::tensor::TensorPrimitive;
use rayon::prelude::*;

use super::columns::{by_column, entry_rows};
use super::prim::{prim, Ad};
use crate::backend::cast;
use crate::csr::Csr;
use crate::dispatch::with_cpu_autodiff;
use crate::kept::KeptActivation;
use crate::kernels::dense::{axpy, dot16 as dot};
use crate::view::{host_view, to_vec};

/// The decode of kept entries: `pre` `[B, S]`, `kept` the kept entries of
/// `[B, S]` with the values of `pre` there, `w_dec` `[S, D]`, optional
/// decoder norms `[S]` (the kept values are divided by them) → `[B, D]` (no
/// bias). `None` unless `B` is `Autodiff` of a CPU backend.
pub fn masked_decode<B: Backend>(
    pre: Tensor<B, 2>,
    kept: &Arc<Csr>,
    activation: KeptActivation,
    w_dec: Tensor<B, 2>,
    norms: Option<Tensor<B, 1>>,
) -> Option<Tensor<B, 2>> {
    with_cpu_autodiff!(B, |I| cast(decode_ad::<I>(
        cast(pre),
        kept,
        activation,
        cast(w_dec),
        norms.map(cast)
    )))
}

/// State of the [`masked_decode`] node.
#[derive(Debug, Clone)]
struct DecodeState {
    /// The kept entries (values: the pre-activations).
    entries: Arc<Csr>,
    /// `f(pre_e)` and `f'(pre_e)` per entry.
    value: Vec<f32>,
    slope: Vec<f32>,
    /// `1 / n_c` per column (ones without norms).
    inv_norm: Vec<f32>,
    /// `W_dec` on the host, `[S, D]`.
    w: Arc<Vec<f32>>,
    d: usize,
}

#[derive(Debug)]
struct DecodeBackward;

impl<I: Backend> Backward<I, 3> for DecodeBackward {
    type State = DecodeState;

    fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [p_pre, p_w, p_n] = ops.parents;
        let grad = grads.consume::<I>(&ops.node);
        let device = I::float_device(&grad);
        let st = ops.state;
        let (b, s, d) = (st.entries.n_rows(), st.entries.n_cols(), st.d);
        let g = host_view::<I, 2>(grad);
        let ent = &st.entries;
        // q_e = G[r] · W[c] for every entry (needed by pre and n).
        let q: Vec<f32> = if p_pre.is_some() || p_n.is_some() {
            let mut q = vec![0.0f32; ent.nnz()];
            let mut parts: Vec<&mut [f32]> = Vec::with_capacity(b);
            let mut rest = q.as_mut_slice();
            for r in 0..b {
                let n = ent.offsets()[r + 1] - ent.offsets()[r];
                let (head, tail) = rest.split_at_mut(n);
                parts.push(head);
                rest = tail;
            }
            parts.into_par_iter().enumerate().for_each(|(r, out)| {
                let gr = &g[r * d..(r + 1) * d];
                let (cols, _) = ent.row(r);
                for (o, &c) in out.iter_mut().zip(cols) {
                    let c = c as usize;
                    *o = dot(gr, &st.w[c * d..(c + 1) * d]);
                }
            });
            q
        } else {
            Vec::new()
        };
        if let Some(node) = &p_pre {
            let mut gp = vec![0.0f32; b * s];
            for (e, (r, c)) in ent.positions().enumerate() {
                gp[r * s + c] = st.slope[e] * st.inv_norm[c] * q[e];
            }
            grads.register::<I>(node.id, prim::<I, 2>(gp, [b, s], &device));
        }
        if p_w.is_some() || p_n.is_some() {
            let (col_off, slots) = by_column(ent);
            let rows = entry_rows(ent);
            if let Some(node) = &p_w {
                let mut gw = vec![0.0f32; s * d];
                gw.par_chunks_mut(d).enumerate().for_each(|(c, out)| {
                    for &e in &slots[col_off[c] as usize..col_off[c + 1] as usize] {
                        let r = rows[e as usize] as usize;
                        let a = st.value[e as usize] * st.inv_norm[c];
                        axpy(out, a, &g[r * d..(r + 1) * d]);
                    }
                });
                grads.register::<I>(node.id, prim::<I, 2>(gw, [s, d], &device));
            }
            if let Some(node) = &p_n {
                // ∂/∂n_c of v / n_c = −v / n_c².
                let gn: Vec<f32> = (0..s)
                    .map(|c| {
                        let inv2 = st.inv_norm[c] * st.inv_norm[c];
                        slots[col_off[c] as usize..col_off[c + 1] as usize]
                            .iter()
                            .map(|&e| -st.value[e as usize] * inv2 * q[e as usize])
                            .sum()
                    })
                    .collect();
                grads.register::<I>(node.id, prim::<I, 1>(gn, [s], &device));
            }
        }
    }
}

fn decode_ad<I: Backend>(
    pre: Tensor<Ad<I>, 2>,
    entries: &Arc<Csr>,
    activation: KeptActivation,
    w_dec: Tensor<Ad<I>, 2>,
    norms: Option<Tensor<Ad<I>, 1>>,
) -> Tensor<Ad<I>, 2> {
    let device = pre.device();
    let [s, d] = w_dec.dims();
    let b = entries.n_rows();
    let inv_norm: Vec<f32> = match &norms {
        Some(n) => to_vec(n.clone().inner())
            .into_iter()
            .map(|v| 1.0 / v)
            .collect(),
        None => vec![1.0; s],
    };
    let norms = norms.unwrap_or_else(|| Tensor::ones([s], &device));
    let w = Arc::new(to_vec(w_dec.clone().inner()));
    let mut value = Vec::with_capacity(entries.nnz());
    let mut slope = Vec::with_capacity(entries.nnz());
    for &p in entries.values() {
        value.push(activation.value(p));
        slope.push(activation.slope(p));
    }
    // out[r] = Σ_e value_e / n_c · W[c].
    let mut out = vec![0.0f32; b * d];
    out.par_chunks_mut(d).enumerate().for_each(|(r, o)| {
        let (e0, e1) = (entries.offsets()[r], entries.offsets()[r + 1]);
        for (&c, &v) in entries.indices()[e0..e1].iter().zip(&value[e0..e1]) {
            let c = c as usize;
            axpy(o, v * inv_norm[c], &w[c * d..(c + 1) * d]);
        }
    });
    let out = prim::<I, 2>(out, [b, d], &device);
    let (pre, w_dec, norms) = (
        pre.into_primitive().tensor(),
        w_dec.into_primitive().tensor(),
        norms.into_primitive().tensor(),
    );
    let node = match DecodeBackward
        .prepare::<NoCheckpointing>([pre.node.clone(), w_dec.node.clone(), norms.node.clone()])
        .compute_bound()
        .stateful()
    {
        OpsKind::Tracked(prep) => prep.finish(
            DecodeState {
                entries: Arc::clone(entries),
                value,
                slope,
                inv_norm,
                w,
                d,
            },
            out,
        ),
        OpsKind::UnTracked(prep) => prep.finish(out),
    };
    Tensor::from_primitive(TensorPrimitive::Float(node))
}

#[cfg(test)]
mod tests {
    //! [`masked_decode`] and [`super::super::linear::linear_sparse_grad`]
    //! against the dense formulation: outputs and every gradient.

    use super::*;
    use crate::autodiff::linear::linear_sparse_grad;
    use crate::is_cpu_autodiff;
    use burn::backend::{Autodiff, Flex, NdArray};
    use burn::tensor::Distribution;

    fn grads_of<B: burn::tensor::backend::AutodiffBackend>(fused: bool) -> Vec<Vec<f32>> {
        let device = Default::default();
        let (b, d, s) = (9usize, 6usize, 40usize);
        B::seed(&device, 3);
        let x = Tensor::<B, 2>::random([b, d], Distribution::Normal(0.0, 1.0), &device);
        let w_enc =
            Tensor::<B, 2>::random([d, s], Distribution::Normal(0.0, 0.5), &device).require_grad();
        let b_enc =
            Tensor::<B, 1>::random([s], Distribution::Normal(0.0, 0.1), &device).require_grad();
        let w_dec =
            Tensor::<B, 2>::random([s, d], Distribution::Normal(0.0, 0.5), &device).require_grad();
        let b_dec =
            Tensor::<B, 1>::random([d], Distribution::Normal(0.0, 0.1), &device).require_grad();
        let xp = x.clone() - b_dec.clone().unsqueeze_dim(0);
        let norms = w_dec
            .clone()
            .powi_scalar(2)
            .sum_dim(1)
            .sqrt()
            .squeeze_dim::<1>(1);
        let pre = if fused {
            linear_sparse_grad(xp.clone(), w_enc.clone(), b_enc.clone()).expect("cpu autodiff")
        } else {
            xp.matmul(w_enc.clone()) + b_enc.clone().unsqueeze_dim(0)
        };
        let pre = pre * norms.clone().unsqueeze_dim(0);
        let host = to_vec(pre.clone().detach());
        // Keep 3 entries per row: the largest values (relu'd later).
        let mut keep = vec![false; b * s];
        for r in 0..b {
            let mut idx: Vec<usize> = (0..s).collect();
            idx.sort_by(|&i, &j| host[r * s + j].total_cmp(&host[r * s + i]));
            for &c in &idx[..3] {
                keep[r * s + c] = true;
            }
        }
        let mask: Vec<f32> = keep.iter().map(|&k| if k { 1.0 } else { 0.0 }).collect();
        // The kept entries, with the pre-activations as values.
        let mut entries = Csr::empty(s);
        for r in 0..b {
            entries.push_row(
                (0..s)
                    .filter(|&c| keep[r * s + c])
                    .map(|c| (c as u32, host[r * s + c])),
            );
        }
        let entries = Arc::new(entries);
        let mut outs = Vec::new();
        for activation in [KeptActivation::Relu, KeptActivation::Identity] {
            let dec = if fused {
                masked_decode(
                    pre.clone(),
                    &entries,
                    activation,
                    w_dec.clone(),
                    Some(norms.clone()),
                )
                .expect("cpu autodiff")
            } else {
                let m = Tensor::<B, 2>::from_data(TensorData::new(mask.clone(), [b, s]), &device);
                let z = match activation {
                    KeptActivation::Relu => burn::tensor::activation::relu(pre.clone()),
                    KeptActivation::Identity => pre.clone(),
                } * m;
                (z / norms.clone().unsqueeze_dim(0)).matmul(w_dec.clone())
            };
            outs.push(dec);
        }
        let out =
            outs[0].clone() + outs[1].clone().mul_scalar(0.5) + b_dec.clone().unsqueeze_dim(0);
        let loss = (out.clone() - x).powi_scalar(2).sum();
        let g = loss.backward();
        vec![
            to_vec(out.detach()),
            to_vec(w_enc.grad(&g).unwrap()),
            to_vec(b_enc.grad(&g).unwrap()),
            to_vec(w_dec.grad(&g).unwrap()),
            to_vec(b_dec.grad(&g).unwrap()),
        ]
    }

    /// `tol` relative to each tensor's largest value.
    fn check<B: burn::tensor::backend::AutodiffBackend>(tol: f32) {
        assert!(is_cpu_autodiff::<B>());
        let (a, b) = (grads_of::<B>(false), grads_of::<B>(true));
        for (name, (x, y)) in ["out", "W_enc", "b_enc", "W_dec", "b_dec"]
            .iter()
            .zip(a.iter().zip(&b))
        {
            let scale = x.iter().fold(1e-3f32, |m, v| m.max(v.abs()));
            for (i, (p, q)) in x.iter().zip(y).enumerate() {
                assert!(
                    (p - q).abs() <= tol * scale,
                    "{name}[{i}]: dense {p} vs fused {q}"
                );
            }
        }
    }

    #[test]
    fn fused_ops_match_the_dense_formulation_flex() {
        check::<Autodiff<Flex>>(1e-5);
    }

    #[test]
    fn fused_ops_match_the_dense_formulation_ndarray() {
        // burn-ndarray's `recip` (used by the dense reference's division
        // backward) is a SIMD approximation with ~5e-5 relative error.
        check::<Autodiff<NdArray>>(1e-4);
    }

    #[test]
    fn other_backends_get_none() {
        assert!(!is_cpu_autodiff::<Flex>());
        let device = Default::default();
        let x = Tensor::<Flex, 2>::zeros([2, 3], &device);
        let w = Tensor::<Flex, 2>::zeros([3, 4], &device);
        let b = Tensor::<Flex, 1>::zeros([4], &device);
        assert!(linear_sparse_grad(x, w, b).is_none());
    }

    #[test]
    fn dense_gradients_take_the_dense_backward() {
        // A dense output gradient (sum of all outputs) through the fused linear.
        type B = Autodiff<Flex>;
        let device = Default::default();
        let x = Tensor::<B, 2>::ones([3, 2], &device).require_grad();
        let w = Tensor::<B, 2>::from_data([[1.0f32, 2.0, 3.0], [4.0, 5.0, 6.0]], &device)
            .require_grad();
        let b = Tensor::<B, 1>::zeros([3], &device).require_grad();
        let y = linear_sparse_grad(x.clone(), w.clone(), b.clone()).unwrap();
        let g = y.sum().backward();
        assert_eq!(
            to_vec(x.grad(&g).unwrap()),
            vec![6.0, 15.0, 6.0, 15.0, 6.0, 15.0]
        );
        assert_eq!(to_vec(w.grad(&g).unwrap()), vec![3.0; 6]);
        assert_eq!(to_vec(b.grad(&g).unwrap()), vec![3.0; 3]);
    }
}
