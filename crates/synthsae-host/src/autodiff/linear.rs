//! [`linear_sparse_grad`]: `x · W + b` whose backward pass computes the
//! three gradients from the non-zero entries of the output gradient only,
//! when that gradient is sparse (the TopK family's is).

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::NoCheckpointing;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::prelude::*;
use burn::tensor::TensorPrimitive;
use rayon::prelude::*;

use super::columns::{by_column, entry_rows};
use super::prim::{prim, Ad, Prim};
use crate::backend::cast;
use crate::csr::Csr;
use crate::dispatch::with_cpu_autodiff;
use crate::kernels::dense::{axpy, transpose};
use crate::view::host_view;

/// Largest fraction of non-zero output-gradient entries for which
/// [`linear_sparse_grad`]'s backward pass goes sparse; above it, two dense
/// products are cheaper than the scattered updates.
pub const SPARSE_GRAD_MAX_DENSITY: f64 = 0.15;

/// `x · w + b` with a backward pass that exploits a sparse output gradient
/// (see the module docs). `x`: `[B, D]`, `w`: `[D, S]`, `b`: `[S]` →
/// `[B, S]`. `None` unless `B` is `Autodiff` of a CPU backend.
pub fn linear_sparse_grad<B: Backend>(
    x: Tensor<B, 2>,
    w: Tensor<B, 2>,
    b: Tensor<B, 1>,
) -> Option<Tensor<B, 2>> {
    with_cpu_autodiff!(B, |I| cast(linear_ad::<I>(cast(x), cast(w), cast(b))))
}

/// State of the [`linear_sparse_grad`] node: the inputs needed by the
/// gradients that are tracked.
#[derive(Debug, Clone)]
struct LinearState<I: Backend> {
    x: Option<Prim<I>>,
    w: Option<Prim<I>>,
    dims: (usize, usize, usize),
}

#[derive(Debug)]
struct LinearBackward;

impl<I: Backend> Backward<I, 3> for LinearBackward {
    type State = LinearState<I>;

    fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [px, pw, pb] = ops.parents;
        let grad = grads.consume::<I>(&ops.node);
        let LinearState { x, w, dims } = ops.state;
        let (b, d, s) = dims;
        let device = I::float_device(&grad);
        let g = host_view::<I, 2>(grad.clone());
        let nnz = g.par_iter().filter(|v| **v != 0.0).count();
        if nnz as f64 > SPARSE_GRAD_MAX_DENSITY * (b * s) as f64 {
            // Dense: the backend's products.
            if let (Some(node), Some(w)) = (&px, w) {
                let gx = I::float_matmul(grad.clone(), I::float_transpose(w));
                grads.register::<I>(node.id, gx);
            }
            if let (Some(node), Some(x)) = (&pw, x) {
                let gw = I::float_matmul(I::float_transpose(x), grad.clone());
                grads.register::<I>(node.id, gw);
            }
            if let Some(node) = &pb {
                let gb = Tensor::<I, 2>::from_primitive(TensorPrimitive::Float(grad))
                    .sum_dim(0)
                    .reshape([s]);
                grads.register::<I>(node.id, gb.into_primitive().tensor());
            }
            return;
        }
        let g_csr = Csr::from_dense(&g, b, s).expect("the output gradient is [B, S]");
        if let (Some(node), Some(w)) = (&px, w) {
            // grad_x[r] = Σ_c g[r, c] · W[:, c]: rows of Wᵀ.
            let wt = transpose(&host_view::<I, 2>(w), d, s);
            let mut gx = vec![0.0f32; b * d];
            gx.par_chunks_mut(d).enumerate().for_each(|(r, out)| {
                let (cols, vals) = g_csr.row(r);
                for (&c, &v) in cols.iter().zip(vals) {
                    let c = c as usize;
                    axpy(out, v, &wt[c * d..(c + 1) * d]);
                }
            });
            grads.register::<I>(node.id, prim::<I, 2>(gx, [b, d], &device));
        }
        if pw.is_some() || pb.is_some() {
            let (col_off, slots) = by_column(&g_csr);
            let rows = entry_rows(&g_csr);
            let vals = g_csr.values();
            if let (Some(node), Some(x)) = (&pw, x) {
                // grad_W[:, c] = Σ_r g[r, c] · x[r], built as rows of grad_Wᵀ.
                let xh = host_view::<I, 2>(x);
                let mut gwt = vec![0.0f32; s * d];
                gwt.par_chunks_mut(d).enumerate().for_each(|(c, out)| {
                    for &e in &slots[col_off[c] as usize..col_off[c + 1] as usize] {
                        let r = rows[e as usize] as usize;
                        axpy(out, vals[e as usize], &xh[r * d..(r + 1) * d]);
                    }
                });
                grads.register::<I>(
                    node.id,
                    prim::<I, 2>(transpose(&gwt, s, d), [d, s], &device),
                );
            }
            if let Some(node) = &pb {
                let gb: Vec<f32> = (0..s)
                    .map(|c| {
                        slots[col_off[c] as usize..col_off[c + 1] as usize]
                            .iter()
                            .map(|&e| vals[e as usize])
                            .sum()
                    })
                    .collect();
                grads.register::<I>(node.id, prim::<I, 1>(gb, [s], &device));
            }
        }
    }
}

fn linear_ad<I: Backend>(
    x: Tensor<Ad<I>, 2>,
    w: Tensor<Ad<I>, 2>,
    b: Tensor<Ad<I>, 1>,
) -> Tensor<Ad<I>, 2> {
    let [bs, d] = x.dims();
    let s = w.dims()[1];
    let (x, w, bias) = (
        x.into_primitive().tensor(),
        w.into_primitive().tensor(),
        b.into_primitive().tensor(),
    );
    let forward = |x: Prim<I>, w: Prim<I>, bias: Prim<I>| {
        let y = Tensor::<I, 2>::from_primitive(TensorPrimitive::Float(I::float_matmul(x, w)));
        let bias = Tensor::<I, 1>::from_primitive(TensorPrimitive::Float(bias));
        (y + bias.unsqueeze_dim(0)).into_primitive().tensor()
    };
    let out = match LinearBackward
        .prepare::<NoCheckpointing>([x.node.clone(), w.node.clone(), bias.node.clone()])
        .compute_bound()
        .stateful()
    {
        OpsKind::Tracked(prep) => {
            let state = LinearState::<I> {
                x: w.is_tracked().then(|| x.primitive.clone()),
                w: x.is_tracked().then(|| w.primitive.clone()),
                dims: (bs, d, s),
            };
            prep.finish(state, forward(x.primitive, w.primitive, bias.primitive))
        }
        OpsKind::UnTracked(prep) => prep.finish(forward(x.primitive, w.primitive, bias.primitive)),
    };
    Tensor::from_primitive(TensorPrimitive::Float(out))
}
