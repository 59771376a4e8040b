//! Fused sparse autodiff operations for training the TopK family on CPU
//! backends (`Autodiff<Flex>`, `Autodiff<NdArray>`).
//!
//! A TopK / BatchTopK step keeps `k` of `S` latents per sample (about 1 %).
//! Written with dense tensor ops, its backward pass still runs four dense
//! `[B, D] × [D, S]` products (decoder gradient and the gradient of the
//! latents, encoder weight gradient and input gradient), plus three more for
//! the aux-k loss, although only the kept entries carry gradient. Burn's
//! `select` / `select_assign` make the work sparse but cost microseconds per
//! entry on the CPU backends. The two operations here are custom autodiff
//! nodes whose forward and backward passes run on host buffers with rayon:
//!
//! * [`linear_sparse_grad`]: `x · W + b` (a dense product forward); the
//!   backward pass reads the output gradient and, when it is sparse (the
//!   TopK family's is), computes the three gradients from its non-zero
//!   entries only.
//! * [`masked_decode`]: `Σ_e f(pre_e) / n_c · W_dec[c]` over a list of kept
//!   entries `e = (r, c)` of a `[B, S]` pre-activation (`f` = relu or the
//!   identity, `n` optional decoder norms), with the exact gradients for
//!   `pre` (at the kept entries), `W_dec` (kept rows) and `n`.
//!
//! Both return `None` on any other backend; callers then use the generic
//! tensor formulation (same values, same gradients). Results match the
//! dense formulation to float rounding (the sums run in another order); on
//! one machine they are deterministic (every reduction has a fixed order,
//! whatever the number of threads).

use std::any::{Any, TypeId};
use std::sync::Arc;

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::Autodiff;
use burn::prelude::*;
use burn::tensor::TensorPrimitive;
use rayon::prelude::*;

/// Largest fraction of non-zero output-gradient entries for which
/// [`linear_sparse_grad`]'s backward pass goes sparse; above it, two dense
/// products are cheaper than the scattered updates.
pub const SPARSE_GRAD_MAX_DENSITY: f64 = 0.15;

/// Kept entries of a `[batch, width]` activation, row by row: row `r` keeps
/// columns `cols[row_offsets[r]..row_offsets[r + 1]]` (ascending).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Entries {
    /// Rows of the activation.
    pub batch: usize,
    /// Columns of the activation.
    pub width: usize,
    /// `[batch + 1]` offsets into `cols`.
    pub row_offsets: Vec<u32>,
    /// Column of each entry.
    pub cols: Vec<u32>,
}

impl Entries {
    /// From a row-major `[batch, width]` host array: the positions where
    /// `keep(value)` holds.
    pub fn from_host(
        values: &[f32],
        batch: usize,
        width: usize,
        keep: impl Fn(f32) -> bool,
    ) -> Self {
        let mut row_offsets = Vec::with_capacity(batch + 1);
        row_offsets.push(0u32);
        let mut cols = Vec::new();
        for row in values.chunks_exact(width.max(1)).take(batch) {
            cols.extend(
                row.iter()
                    .enumerate()
                    .filter(|(_, &v)| keep(v))
                    .map(|(c, _)| c as u32),
            );
            row_offsets.push(cols.len() as u32);
        }
        Self {
            batch,
            width,
            row_offsets,
            cols,
        }
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.cols.len()
    }

    /// Whether there is no entry.
    pub fn is_empty(&self) -> bool {
        self.cols.is_empty()
    }

    /// `(row, column)` of every entry, in order.
    pub fn iter(&self) -> impl Iterator<Item = (usize, usize)> + '_ {
        (0..self.batch).flat_map(move |r| {
            let (s, e) = (
                self.row_offsets[r] as usize,
                self.row_offsets[r + 1] as usize,
            );
            self.cols[s..e].iter().map(move |&c| (r, c as usize))
        })
    }

    /// Entries grouped by column: `(column offsets [width + 1], entry index
    /// of each slot)`, rows ascending within a column.
    fn by_column(&self) -> (Vec<u32>, Vec<u32>) {
        let mut offsets = vec![0u32; self.width + 1];
        for &c in &self.cols {
            offsets[c as usize + 1] += 1;
        }
        for c in 0..self.width {
            offsets[c + 1] += offsets[c];
        }
        let mut cursor = offsets.clone();
        let mut slots = vec![0u32; self.cols.len()];
        for (e, &c) in self.cols.iter().enumerate() {
            let k = &mut cursor[c as usize];
            slots[*k as usize] = e as u32;
            *k += 1;
        }
        (offsets, slots)
    }

    /// Row of every entry.
    fn rows(&self) -> Vec<u32> {
        let mut rows = Vec::with_capacity(self.cols.len());
        for r in 0..self.batch {
            let n = self.row_offsets[r + 1] - self.row_offsets[r];
            rows.extend(std::iter::repeat_n(r as u32, n as usize));
        }
        rows
    }
}

/// The activation applied to a kept pre-activation in [`masked_decode`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeptActivation {
    /// `relu(p)` (TopK, BatchTopK).
    Relu,
    /// `p` as is (AbsTopK, the aux-k loss).
    Identity,
}

impl KeptActivation {
    fn value(self, p: f32) -> f32 {
        match self {
            Self::Relu => p.max(0.0),
            Self::Identity => p,
        }
    }
    fn slope(self, p: f32) -> f32 {
        match self {
            Self::Relu => {
                if p > 0.0 {
                    1.0
                } else {
                    0.0
                }
            }
            Self::Identity => 1.0,
        }
    }
}

/// Whether the fused operations run for backend `B` (a CPU backend under
/// `Autodiff`), i.e. whether the functions of this module return `Some`.
pub fn available<B: Backend>() -> bool {
    synthsae_host::is_cpu_autodiff::<B>()
}

/// Moves a value of type `T` into type `U` when they are the same type.
fn cast<T: 'static, U: 'static>(value: T) -> U {
    let boxed: Box<dyn Any> = Box::new(value);
    match boxed.downcast::<U>() {
        Ok(u) => *u,
        Err(_) => unreachable!("cast between different types (checked by the caller)"),
    }
}

/// Runs `$body` with `$I` bound to the inner backend when `$B` is
/// `Autodiff<$I>` for a CPU backend `$I`.
macro_rules! with_cpu_autodiff {
    ($B:ty, |$I:ident| $body:expr) => {{
        #[cfg(feature = "flex")]
        if TypeId::of::<$B>() == TypeId::of::<Autodiff<burn::backend::Flex>>() {
            type $I = burn::backend::Flex;
            return Some($body);
        }
        #[cfg(feature = "ndarray")]
        if TypeId::of::<$B>() == TypeId::of::<Autodiff<burn::backend::NdArray>>() {
            type $I = burn::backend::NdArray;
            return Some($body);
        }
        None
    }};
}

mod standard;
pub use standard::{standard_loss, StandardLoss};
use synthsae_host::kernels::dense as kernels;
pub use synthsae_host::kernels::dense::sum_squares;
use synthsae_host::kernels::dense::{axpy, dot16 as dot};
use synthsae_host::view::host_view;
pub use synthsae_host::view::{host_values, HostF32};
mod topk_loss;
pub(crate) use topk_loss::{topk_loss, TopKLossSpec};

/// `x · w + b` with a backward pass that exploits a sparse output gradient
/// (see the module docs). `x`: `[B, D]`, `w`: `[D, S]`, `b`: `[S]` →
/// `[B, S]`. `None` when the fused operations are not available for `B`.
pub fn linear_sparse_grad<B: Backend>(
    x: Tensor<B, 2>,
    w: Tensor<B, 2>,
    b: Tensor<B, 1>,
) -> Option<Tensor<B, 2>> {
    with_cpu_autodiff!(B, |I| cast(linear_ad::<I>(cast(x), cast(w), cast(b))))
}

/// The decode of kept entries (see the module docs): `pre` `[B, S]`, the
/// same values on the host `pre_host` (row-major), `entries` of `[B, S]`,
/// `w_dec` `[S, D]`, optional decoder norms `[S]` (the kept values are
/// divided by them) → `[B, D]` (no bias). `None` when the fused operations
/// are not available for `B`.
pub fn masked_decode<B: Backend>(
    pre: Tensor<B, 2>,
    pre_host: &[f32],
    entries: &Arc<Entries>,
    activation: KeptActivation,
    w_dec: Tensor<B, 2>,
    norms: Option<Tensor<B, 1>>,
) -> Option<Tensor<B, 2>> {
    with_cpu_autodiff!(B, |I| cast(decode_ad::<I>(
        cast(pre),
        pre_host,
        entries,
        activation,
        cast(w_dec),
        norms.map(cast)
    )))
}

type Ad<I> = Autodiff<I>;
type Prim<I> = <I as burn::tensor::backend::BackendTypes>::FloatTensorPrimitive;

fn prim<I: Backend, const N: usize>(
    data: Vec<f32>,
    shape: [usize; N],
    device: &I::Device,
) -> Prim<I> {
    Tensor::<I, N>::from_data(TensorData::new(data, shape), device)
        .into_primitive()
        .tensor()
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
        let entries = Entries::from_host(&g, b, s, |v| v != 0.0);
        let vals: Vec<f32> = entries.iter().map(|(r, c)| g[r * s + c]).collect();
        if let (Some(node), Some(w)) = (&px, w) {
            // grad_x[r] = Σ_c g[r, c] · W[:, c]: rows of Wᵀ.
            let wt = kernels::transpose(&host_view::<I, 2>(w), d, s);
            let mut gx = vec![0.0f32; b * d];
            gx.par_chunks_mut(d).enumerate().for_each(|(r, out)| {
                let (e0, e1) = (
                    entries.row_offsets[r] as usize,
                    entries.row_offsets[r + 1] as usize,
                );
                for (&c, &v) in entries.cols[e0..e1].iter().zip(&vals[e0..e1]) {
                    let c = c as usize;
                    axpy(out, v, &wt[c * d..(c + 1) * d]);
                }
            });
            grads.register::<I>(node.id, prim::<I, 2>(gx, [b, d], &device));
        }
        if pw.is_some() || pb.is_some() {
            let (col_off, slots) = entries.by_column();
            let rows = entries.rows();
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
                    prim::<I, 2>(kernels::transpose(&gwt, s, d), [d, s], &device),
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
        .prepare::<burn::backend::autodiff::checkpoint::strategy::NoCheckpointing>([
            x.node.clone(),
            w.node.clone(),
            bias.node.clone(),
        ])
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

/// State of the [`masked_decode`] node.
#[derive(Debug, Clone)]
struct DecodeState {
    entries: Arc<Entries>,
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
        let (b, s, d) = (st.entries.batch, st.entries.width, st.d);
        let g = host_view::<I, 2>(grad);
        let ent = &st.entries;
        // q_e = G[r] · W[c] for every entry (needed by pre and n).
        let q: Vec<f32> = if p_pre.is_some() || p_n.is_some() {
            let mut q = vec![0.0f32; ent.len()];
            let mut parts: Vec<&mut [f32]> = Vec::with_capacity(b);
            let mut rest = q.as_mut_slice();
            for r in 0..b {
                let n = (ent.row_offsets[r + 1] - ent.row_offsets[r]) as usize;
                let (head, tail) = rest.split_at_mut(n);
                parts.push(head);
                rest = tail;
            }
            parts.into_par_iter().enumerate().for_each(|(r, out)| {
                let gr = &g[r * d..(r + 1) * d];
                let e0 = ent.row_offsets[r] as usize;
                for (k, o) in out.iter_mut().enumerate() {
                    let c = ent.cols[e0 + k] as usize;
                    *o = dot(gr, &st.w[c * d..(c + 1) * d]);
                }
            });
            q
        } else {
            Vec::new()
        };
        if let Some(node) = &p_pre {
            let mut gp = vec![0.0f32; b * s];
            for (e, (r, c)) in ent.iter().enumerate() {
                gp[r * s + c] = st.slope[e] * st.inv_norm[c] * q[e];
            }
            grads.register::<I>(node.id, prim::<I, 2>(gp, [b, s], &device));
        }
        if p_w.is_some() || p_n.is_some() {
            let (col_off, slots) = ent.by_column();
            let rows = ent.rows();
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
    pre_host: &[f32],
    entries: &Arc<Entries>,
    activation: KeptActivation,
    w_dec: Tensor<Ad<I>, 2>,
    norms: Option<Tensor<Ad<I>, 1>>,
) -> Tensor<Ad<I>, 2> {
    let device = pre.device();
    let [s, d] = w_dec.dims();
    let b = entries.batch;
    let inv_norm: Vec<f32> = match &norms {
        Some(n) => crate::ops::to_vec(n.clone().inner())
            .into_iter()
            .map(|v| 1.0 / v)
            .collect(),
        None => vec![1.0; s],
    };
    let norms = norms.unwrap_or_else(|| Tensor::ones([s], &device));
    let w = Arc::new(crate::ops::to_vec(w_dec.clone().inner()));
    let mut value = Vec::with_capacity(entries.len());
    let mut slope = Vec::with_capacity(entries.len());
    for (r, c) in entries.iter() {
        let p = pre_host[r * s + c];
        value.push(activation.value(p));
        slope.push(activation.slope(p));
    }
    // out[r] = Σ_e value_e / n_c · W[c].
    let mut out = vec![0.0f32; b * d];
    out.par_chunks_mut(d).enumerate().for_each(|(r, o)| {
        let (e0, e1) = (
            entries.row_offsets[r] as usize,
            entries.row_offsets[r + 1] as usize,
        );
        for (&c, &v) in entries.cols[e0..e1].iter().zip(&value[e0..e1]) {
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
        .prepare::<burn::backend::autodiff::checkpoint::strategy::NoCheckpointing>([
            pre.node.clone(),
            w_dec.node.clone(),
            norms.node.clone(),
        ])
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

/// `out = x · w + 1 · bias` for row-major `x` `[m, k]`, `w` `[k, n]`,
/// `bias` `[n]`: the output buffer starts as the bias rows and the product
/// is accumulated into it (one pass over the output instead of a zero-fill,
/// the product and a broadcast add).
pub(crate) fn gemm_bias(
    x: &[f32],
    w: &[f32],
    bias: &[f32],
    m: usize,
    k: usize,
    n: usize,
) -> Vec<f32> {
    assert!(
        x.len() >= m * k && w.len() >= k * n && bias.len() >= n,
        "gemm_bias: shapes"
    );
    let mut out = vec![0.0f32; m * n];
    out.par_chunks_mut(n.max(1))
        .for_each(|row| row.copy_from_slice(&bias[..n]));
    if m == 0 || n == 0 || k == 0 {
        return out;
    }
    // Flex's threshold for a parallel product.
    let parallelism = if m.saturating_mul(n).saturating_mul(k) >= 64 * 64 * 64 {
        gemm::Parallelism::Rayon(0)
    } else {
        gemm::Parallelism::None
    };
    // SAFETY: the three buffers are distinct allocations (`out` is owned
    // here) and large enough for the row-major strides passed (asserted
    // above): dst `[m, n]` (column stride 1, row stride n), lhs `[m, k]`,
    // rhs `[k, n]`.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            out.as_mut_ptr(),
            1,
            n as isize,
            true,
            x.as_ptr(),
            1,
            k as isize,
            w.as_ptr(),
            1,
            n as isize,
            1.0f32,
            1.0f32,
            false,
            false,
            false,
            parallelism,
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::{Flex, NdArray};
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
        let host = crate::ops::to_vec(pre.clone().detach());
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
        let flags: Vec<f32> = mask.clone();
        let entries = Arc::new(Entries::from_host(&flags, b, s, |v| v != 0.0));
        let mut outs = Vec::new();
        for activation in [KeptActivation::Relu, KeptActivation::Identity] {
            let dec = if fused {
                masked_decode(
                    pre.clone(),
                    &host,
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
            crate::ops::to_vec(out.detach()),
            crate::ops::to_vec(w_enc.grad(&g).unwrap()),
            crate::ops::to_vec(b_enc.grad(&g).unwrap()),
            crate::ops::to_vec(w_dec.grad(&g).unwrap()),
            crate::ops::to_vec(b_dec.grad(&g).unwrap()),
        ]
    }

    /// `tol` relative to each tensor's largest value.
    fn check<B: burn::tensor::backend::AutodiffBackend>(tol: f32) {
        assert!(available::<B>());
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
        assert!(!available::<Flex>());
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
            crate::ops::to_vec(x.grad(&g).unwrap()),
            vec![6.0, 15.0, 6.0, 15.0, 6.0, 15.0]
        );
        assert_eq!(crate::ops::to_vec(w.grad(&g).unwrap()), vec![3.0; 6]);
        assert_eq!(crate::ops::to_vec(b.grad(&g).unwrap()), vec![3.0; 3]);
    }
}
