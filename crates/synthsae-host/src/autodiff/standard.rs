//! The standard SAE's whole training loss as one autodiff node.
//!
//! A standard step on a small model (the tutorial: 32 inputs, 16 latents,
//! batch 1024) is dominated by per-operation costs, not arithmetic: about
//! twenty tracked operations forward and thirty backward, each allocating
//! and registering with the autodiff graph. Here the forward pass runs on
//! the inner backend's tensors (no graph) and one node carries the loss; its
//! backward pass computes the four parameter gradients in closed form:
//!
//! With `x' = x − b_dec` (if `apply_b_dec_to_input`), `p = x' W_enc + b_enc`,
//! `z = relu(p)`, `n_s = ‖W_dec[s]‖`, `x̂ = z W_dec + b_dec`, `r = x̂ − x`,
//! the loss `L = (1/B) Σ_r ‖r_r‖² + (λ/B) Σ_{r,s} |z_rs n_s|` has, for an
//! upstream gradient `g`,
//!
//! * `G = (2g/B) r` (`∂L/∂x̂`), `∂L/∂z = G W_decᵀ + (λg/B) sign(z) n`,
//!   `P = ∂L/∂p = ∂L/∂z ⊙ 1[p > 0]`;
//! * `∂W_enc = x'ᵀ P`, `∂b_enc = Σ_r P_r`;
//! * `∂W_dec = zᵀ G + (λg/B) (Σ_r z_rs) W_dec[s] / n_s` (row `s`);
//! * `∂b_dec = Σ_r G_r − Σ_r P_r W_encᵀ` (the second term with `x'`).

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::NoCheckpointing;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::prelude::*;
use burn::tensor::activation::relu;
use burn::tensor::TensorPrimitive;

use super::prim::{inner, Ad};
use crate::backend::cast;
use crate::dispatch::with_cpu_autodiff;
use crate::firing::Firing;
use crate::view::host_view;

/// What [`standard_loss`] returns: the tracked loss and, untracked, the
/// values a training step reports.
#[derive(Debug, Clone)]
pub struct StandardLoss<B: Backend> {
    /// `mse_loss + l1_loss`, `[1]`, tracked (gradients for the four weights).
    pub loss: Tensor<B, 1>,
    /// `mean_rows(‖x̂ − x‖²)`, `[1]`.
    pub mse_loss: Tensor<B, 1>,
    /// `λ · mean_rows(Σ_s |z_s n_s|)`, `[1]`.
    pub l1_loss: Tensor<B, 1>,
    /// Reconstruction `x̂`: `[B, D]`.
    pub sae_out: Tensor<B, 2>,
    /// Latents `z = relu(p)`: `[B, S]`.
    pub feature_acts: Tensor<B, 2>,
    /// Pre-activations `p`: `[B, S]`.
    pub hidden_pre: Tensor<B, 2>,
    /// Per-latent firing counts and the smallest positive latent.
    pub firing: Firing,
}

/// The standard SAE's training loss (see the module docs) for input `x`
/// `[B, D]` (not differentiated), `W_enc` `[D, S]`, `b_enc` `[S]`, `W_dec`
/// `[S, D]`, `b_dec` `[D]`, coefficient `lambda`, L1 norm, no per-sample
/// normalisation. `None` unless `B` is `Autodiff` of a CPU backend.
#[allow(clippy::too_many_arguments)]
pub fn standard_loss<B: Backend>(
    x: Tensor<B, 2>,
    w_enc: Tensor<B, 2>,
    b_enc: Tensor<B, 1>,
    w_dec: Tensor<B, 2>,
    b_dec: Tensor<B, 1>,
    lambda: f64,
    apply_b_dec: bool,
) -> Option<StandardLoss<B>> {
    with_cpu_autodiff!(B, |I| cast(standard_ad::<I>(
        cast(x),
        cast(w_enc),
        cast(b_enc),
        cast(w_dec),
        cast(b_dec),
        lambda,
        apply_b_dec
    )))
}

/// What the backward pass needs (inner-backend values).
#[derive(Debug, Clone)]
struct StandardState<I: Backend> {
    xp: Tensor<I, 2>,
    pre: Tensor<I, 2>,
    z: Tensor<I, 2>,
    resid: Tensor<I, 2>,
    norms: Tensor<I, 1>,
    w_enc: Tensor<I, 2>,
    w_dec: Tensor<I, 2>,
    lambda: f64,
    apply_b_dec: bool,
}

#[derive(Debug)]
struct StandardBackward;

impl<I: Backend> Backward<I, 4> for StandardBackward {
    type State = StandardState<I>;

    fn backward(self, ops: Ops<Self::State, 4>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [p_we, p_be, p_wd, p_bd] = ops.parents;
        let upstream = grads.consume::<I>(&ops.node);
        let g = host_view::<I, 1>(upstream)[0] as f64;
        let st = ops.state;
        let [rows, d] = st.xp.dims();
        let s = st.z.dims()[1];
        let rows_f = rows as f64;
        // ∂L/∂x̂, [B, D].
        let g_out = st.resid.mul_scalar(2.0 * g / rows_f);
        // sign(z) ∈ {0, 1} (z ≥ 0): the L1 term's gradient reaches only
        // active latents, through z and through the decoder norms.
        let active = st.z.clone().greater_elem(0.0).float();
        let l1_scale = st.lambda * g / rows_f;
        let mut need_p = p_we.is_some() || p_be.is_some();
        need_p |= p_bd.is_some() && st.apply_b_dec;
        let g_pre = need_p.then(|| {
            let g_z = g_out.clone().matmul(st.w_dec.clone().transpose())
                + active.clone() * st.norms.clone().unsqueeze_dim(0).mul_scalar(l1_scale);
            g_z * st.pre.clone().greater_elem(0.0).float()
        });
        if let Some(node) = &p_we {
            let gp = g_pre.clone().expect("computed when W_enc is tracked");
            grads.register::<I>(
                node.id,
                st.xp
                    .clone()
                    .transpose()
                    .matmul(gp)
                    .into_primitive()
                    .tensor(),
            );
        }
        if let Some(node) = &p_be {
            let gp = g_pre.clone().expect("computed when b_enc is tracked");
            grads.register::<I>(
                node.id,
                gp.sum_dim(0).reshape([s]).into_primitive().tensor(),
            );
        }
        if let Some(node) = &p_wd {
            // Σ_r sign(z_rs n_s) z_rs = Σ_r z_rs (z ≥ 0).
            let z_sum = st.z.clone().sum_dim(0).reshape([s, 1]);
            let norm_term =
                st.w_dec.clone() * (z_sum / st.norms.clone().reshape([s, 1])).mul_scalar(l1_scale);
            let gw = st.z.clone().transpose().matmul(g_out.clone()) + norm_term;
            grads.register::<I>(node.id, gw.into_primitive().tensor());
        }
        if let Some(node) = &p_bd {
            let mut gb = g_out.sum_dim(0).reshape([d]);
            if st.apply_b_dec {
                let gp = g_pre.expect("computed when b_dec is tracked and applied");
                gb = gb - gp.matmul(st.w_enc.transpose()).sum_dim(0).reshape([d]);
            }
            grads.register::<I>(node.id, gb.into_primitive().tensor());
        }
    }
}

/// Decoder row norms `[S]` of `w_dec` `[S, D]`: the operations of the
/// generic formulation (`synthsae-sae`'s `ops::row_norms`), so the values
/// match it bit for bit.
fn row_norms<B: Backend>(w_dec: Tensor<B, 2>) -> Tensor<B, 1> {
    w_dec.powi_scalar(2).sum_dim(1).sqrt().squeeze_dim(1)
}

fn standard_ad<I: Backend>(
    x: Tensor<Ad<I>, 2>,
    w_enc: Tensor<Ad<I>, 2>,
    b_enc: Tensor<Ad<I>, 1>,
    w_dec: Tensor<Ad<I>, 2>,
    b_dec: Tensor<Ad<I>, 1>,
    lambda: f64,
    apply_b_dec: bool,
) -> StandardLoss<Ad<I>> {
    let [_, s] = w_enc.dims();
    let x = x.inner();
    let (we, be, wd, bd) = (
        w_enc.into_primitive().tensor(),
        b_enc.into_primitive().tensor(),
        w_dec.into_primitive().tensor(),
        b_dec.into_primitive().tensor(),
    );
    let (we_i, be_i, wd_i, bd_i) = (
        inner::<I, 2>(we.primitive.clone()),
        inner::<I, 1>(be.primitive.clone()),
        inner::<I, 2>(wd.primitive.clone()),
        inner::<I, 1>(bd.primitive.clone()),
    );
    // The generic path's operations, on the inner backend.
    let xp = if apply_b_dec {
        x.clone() - bd_i.clone().unsqueeze_dim(0)
    } else {
        x.clone()
    };
    let pre = xp.clone().matmul(we_i.clone()) + be_i.unsqueeze_dim(0);
    let z = relu(pre.clone());
    let norms = row_norms(wd_i.clone());
    let out = z.clone().matmul(wd_i.clone()) + bd_i.unsqueeze_dim(0);
    let resid = out.clone() - x;
    // `r · r` rather than `powi_scalar(2)`: the same values, without the
    // copy Flex's `powi` makes.
    let mse = (resid.clone() * resid.clone()).sum_dim(1).mean();
    let l1 = (z.clone() * norms.clone().unsqueeze_dim(0))
        .abs()
        .sum_dim(1)
        .mul_scalar(lambda)
        .mean();
    let loss = (mse.clone() + l1.clone()).into_primitive().tensor();
    let firing = {
        let zh = host_view::<I, 2>(z.clone().into_primitive().tensor());
        // Branch-free passes (vectorised): a per-entry branch would not
        // vectorise, on a pass over the whole `[B, S]` latents.
        let mut counts = vec![0u32; s];
        for row in zh.chunks_exact(s.max(1)) {
            for (c, &v) in counts.iter_mut().zip(row) {
                *c += (v != 0.0) as u32;
            }
        }
        // Sixteen running minima (min is order-free): no dependency chain.
        let mut lanes = [f32::INFINITY; 16];
        let chunks = zh.chunks_exact(16);
        let tail = chunks.remainder();
        for chunk in chunks {
            for (m, &v) in lanes.iter_mut().zip(chunk) {
                *m = if v > 0.0 && v < *m { v } else { *m };
            }
        }
        let min =
            lanes
                .iter()
                .chain(tail)
                .fold(f32::INFINITY, |m, &v| if v > 0.0 && v < m { v } else { m });
        let any_positive = min < f32::INFINITY || zh.contains(&f32::INFINITY);
        Firing {
            counts,
            min_positive: any_positive.then_some(min),
        }
    };
    let node = match StandardBackward
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
            let state = StandardState {
                xp,
                pre: pre.clone(),
                z: z.clone(),
                resid,
                norms,
                w_enc: we_i,
                w_dec: wd_i,
                lambda,
                apply_b_dec,
            };
            prep.finish(state, loss)
        }
        OpsKind::UnTracked(prep) => prep.finish(loss),
    };
    StandardLoss {
        loss: Tensor::from_primitive(TensorPrimitive::Float(node)),
        mse_loss: Tensor::from_inner(mse),
        l1_loss: Tensor::from_inner(l1),
        sae_out: Tensor::from_inner(out),
        feature_acts: Tensor::from_inner(z),
        hidden_pre: Tensor::from_inner(pre),
        firing,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::{Autodiff, Flex, NdArray};
    use burn::tensor::backend::BackendTypes;
    use burn::tensor::Distribution;

    fn vals<Bk: Backend, const N: usize>(t: Tensor<Bk, N>) -> Vec<f32> {
        crate::view::to_vec(t)
    }

    fn close(a: &[f32], b: &[f32], tol: f32, what: &str) {
        assert_eq!(a.len(), b.len(), "{what}");
        for (i, (x, y)) in a.iter().zip(b).enumerate() {
            assert!(
                (x - y).abs() <= tol * (1.0 + y.abs()),
                "{what}[{i}]: {x} vs {y}"
            );
        }
    }

    /// The node against the same loss written with tracked tensor ops.
    fn check<I: Backend>(apply_b_dec: bool, lambda: f64)
    where
        Autodiff<I>: Backend,
    {
        type A<I> = Autodiff<I>;
        let device: <A<I> as BackendTypes>::Device = Default::default();
        <A<I>>::seed(&device, 5);
        let n = Distribution::Normal(0.0, 0.5);
        let x = Tensor::<A<I>, 2>::random([40, 6], n, &device);
        let we = Tensor::<A<I>, 2>::random([6, 9], n, &device).require_grad();
        let be = Tensor::<A<I>, 1>::random([9], n, &device).require_grad();
        let wd = Tensor::<A<I>, 2>::random([9, 6], n, &device).require_grad();
        let bd = Tensor::<A<I>, 1>::random([6], n, &device).require_grad();
        let f = standard_loss(
            x.clone(),
            we.clone(),
            be.clone(),
            wd.clone(),
            bd.clone(),
            lambda,
            apply_b_dec,
        )
        .expect("CPU autodiff backend");
        // Reference: tracked ops.
        let xp = if apply_b_dec {
            x.clone() - bd.clone().unsqueeze_dim(0)
        } else {
            x.clone()
        };
        let pre = xp.matmul(we.clone()) + be.clone().unsqueeze_dim(0);
        let z = relu(pre.clone());
        let norms = row_norms(wd.clone());
        let out = z.clone().matmul(wd.clone()) + bd.clone().unsqueeze_dim(0);
        let mse = (out.clone() - x).powi_scalar(2).sum_dim(1).mean();
        let l1 = (z.clone() * norms.unsqueeze_dim(0))
            .abs()
            .sum_dim(1)
            .mul_scalar(lambda)
            .mean();
        let loss = mse.clone() + l1.clone();
        assert_eq!(vals(f.mse_loss.clone()), vals(mse));
        assert_eq!(vals(f.l1_loss.clone()), vals(l1));
        assert_eq!(vals(f.loss.clone()), vals(loss.clone()));
        assert_eq!(vals(f.sae_out.clone()), vals(out));
        assert_eq!(vals(f.hidden_pre.clone()), vals(pre));
        let zv = vals(z);
        assert_eq!(vals(f.feature_acts.clone()), zv);
        let counts: Vec<u32> = (0..9)
            .map(|c| (0..40).filter(|&r| zv[r * 9 + c] != 0.0).count() as u32)
            .collect();
        assert_eq!(f.firing.counts, counts);
        let min_positive = zv.iter().copied().filter(|&v| v > 0.0).reduce(f32::min);
        assert_eq!(f.firing.min_positive, min_positive);
        assert!(counts.iter().any(|&c| c > 0) && counts.iter().any(|&c| c < 40));
        let (g1, g2) = (f.loss.backward(), loss.backward());
        let grad = |g: &<A<I> as burn::tensor::backend::AutodiffBackend>::Gradients,
                    t: &Tensor<A<I>, 2>| vals(t.grad(g).expect("tracked"));
        let grad1 = |g: &<A<I> as burn::tensor::backend::AutodiffBackend>::Gradients,
                     t: &Tensor<A<I>, 1>| vals(t.grad(g).expect("tracked"));
        close(&grad(&g1, &we), &grad(&g2, &we), 1e-5, "W_enc");
        close(&grad(&g1, &wd), &grad(&g2, &wd), 1e-5, "W_dec");
        close(&grad1(&g1, &be), &grad1(&g2, &be), 1e-5, "b_enc");
        close(&grad1(&g1, &bd), &grad1(&g2, &bd), 1e-5, "b_dec");
    }

    #[test]
    fn standard_loss_equals_tracked_ops() {
        for apply in [true, false] {
            for lambda in [0.0, 0.05, 3.0] {
                check::<Flex>(apply, lambda);
                check::<NdArray>(apply, lambda);
            }
        }
    }

    #[test]
    fn other_backends_get_none() {
        let device = Default::default();
        let t2 = Tensor::<Flex, 2>::zeros([2, 2], &device);
        let t1 = Tensor::<Flex, 1>::zeros([2], &device);
        assert!(standard_loss(t2.clone(), t2.clone(), t1.clone(), t2, t1, 1.0, true).is_none());
    }
}
