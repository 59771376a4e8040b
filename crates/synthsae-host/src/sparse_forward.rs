//! [`sparse_forward_host`]: encode and decode of a linear-encoder SAE on the
//! CPU backends without the dense `[B, S]` latents: the pre-activations of a
//! block of rows by one gemm, then per row (rayon) the active latents and
//! the row's reconstruction from them.

use burn::prelude::*;
use burn::tensor::TensorData;
use rayon::prelude::*;

use crate::csr::Csr;
use crate::inference::{host_path_ok, HOST_SPARSE_MAX_DENSITY};
use crate::kernels::dense;
use crate::select::{indices_at_least, nth_largest};
use crate::view::{host_values, to_vec};

/// How [`sparse_forward_host`] picks each row's active latents from its
/// pre-activations.
#[derive(Debug, Clone, Copy)]
pub enum HostSelect<'a> {
    /// The rule of [`crate::inference::topk_host`].
    TopK {
        /// Latents kept per row.
        k: usize,
        /// Rank by `|x|` and keep the sign (AbsTopK) instead of relu.
        abs: bool,
    },
    /// JumpReLU: `x` where `x > θ_s` and `x > 0` (`θ`: `[S]`).
    Threshold(&'a [f32]),
}

/// The weights [`sparse_forward_host`] reads.
#[derive(Debug, Clone)]
pub struct LinearWeights<B: Backend> {
    /// `W_enc`: `[D, S]`.
    pub w_enc: Tensor<B, 2>,
    /// `b_enc`: `[S]`.
    pub b_enc: Tensor<B, 1>,
    /// `W_dec`: `[S, D]`.
    pub w_dec: Tensor<B, 2>,
    /// Decoder row norms `[S]` when the pre-activations are multiplied by
    /// them (and the kept values divided by them before decoding), else
    /// `None`.
    pub norms: Option<Tensor<B, 1>>,
}

/// Rows of pre-activations computed per gemm: large enough that the packing
/// of `W_enc` (once per call) is a few percent of the multiply, small enough
/// that the block (64 MB at S = 16384) is read back once, right after.
const FORWARD_BLOCK_ROWS: usize = 1024;

/// Encode and decode of a linear-encoder SAE without the dense latents, on
/// host backends: for each block of rows, `pre = xp · W_enc + b_enc` (times
/// the decoder norms `n` when [`LinearWeights::norms`] has them) by the
/// backend's gemm, then per row (rayon) the active latents by `select`, and
/// the row's reconstruction `Σ z_s / n_s · W_dec[s]` (`/ n_s` only with
/// norms), accumulated in
/// increasing latent order as [`crate::inference::sparse_decode_host`] does.
/// Every value equals the dense path's (`encode`, then `decode` through
/// `sparse_decode_host`).
///
/// `xp`: processed input `[B, D]`. Returns the latents and `z · W_dec`
/// (`[B, D]`, without `b_dec`), or `None` when the host path does not apply
/// or the first block has more than [`HOST_SPARSE_MAX_DENSITY`] of its
/// latents active.
pub fn sparse_forward_host<B: Backend>(
    weights: LinearWeights<B>,
    xp: Tensor<B, 2>,
    select: HostSelect<'_>,
) -> Option<(Csr, Tensor<B, 2>)> {
    let LinearWeights {
        w_enc,
        b_enc,
        w_dec,
        norms,
    } = weights;
    if !host_path_ok(&xp) || !host_path_ok(&w_enc) {
        return None;
    }
    let [b, d] = xp.dims();
    let [d_w, s] = w_enc.dims();
    if d != d_w || s == 0 || d == 0 {
        return None;
    }
    if let HostSelect::Threshold(t) = select {
        if t.len() != s {
            return None;
        }
    }
    let device = xp.device();
    let bias = to_vec(b_enc);
    let norms = norms.map(to_vec);
    let w_dec = host_values(w_dec);
    let mut latents = Csr::empty(s);
    let mut out = vec![0.0f32; b * d];
    let mut start = 0;
    while start < b {
        let rows = FORWARD_BLOCK_ROWS.min(b - start);
        // Borrowed on Flex: the block is read once, row by row, into a
        // per-thread buffer that stays in cache.
        let pre = host_values(xp.clone().narrow(0, start, rows).matmul(w_enc.clone()));
        let picked: Vec<Vec<(u32, f32)>> = pre
            .par_chunks(s)
            .zip(out[start * d..(start + rows) * d].par_chunks_mut(d))
            .map_init(RowScratch::default, |scratch, (pre_row, o)| {
                let mut row = std::mem::take(&mut scratch.row);
                row.resize(s, 0.0);
                add_into(&mut row, pre_row, &bias);
                if let Some(n) = &norms {
                    mul_assign(&mut row, n);
                }
                let kept = select_row(&row, select, scratch);
                scratch.row = row;
                debug_assert!(kept.windows(2).all(|w| w[0].0 < w[1].0));
                for &(c, v) in &kept {
                    let c = c as usize;
                    let v = match &norms {
                        Some(n) => v / n[c],
                        None => v,
                    };
                    axpy(o, v, &w_dec[c * d..(c + 1) * d]);
                }
                kept
            })
            .collect();
        for kept in picked {
            latents.push_row(kept);
        }
        if start == 0 && latents.nnz() as f64 > HOST_SPARSE_MAX_DENSITY * (rows * s) as f64 {
            // Dense latents: the gemm decode of the dense path is cheaper
            // than gathering (one block of work is discarded).
            return None;
        }
        start += rows;
    }
    Some((
        latents,
        Tensor::from_data(TensorData::new(out, [b, d]), &device),
    ))
}

// Element-wise kernels of the sparse forward, compiled for several
// instruction sets (`multiversion`): a portable binary still runs them with
// AVX-512 or AVX2. Multiplies and adds stay separate (Rust never contracts
// them into FMAs), so every target gives the same bits as the plain loops
// of the dense path.

crate::multiversioned! {
    /// `out = a + b` (element-wise).
    fn add_into(out: &mut [f32], a: &[f32], b: &[f32]) {
        for ((o, &a), &b) in out.iter_mut().zip(a).zip(b) {
            *o = a + b;
        }
    }
}

crate::multiversioned! {
    /// `row *= scale` (element-wise).
    fn mul_assign(row: &mut [f32], scale: &[f32]) {
        for (v, &s) in row.iter_mut().zip(scale) {
            *v *= s;
        }
    }
}

crate::multiversioned! {
    /// `y += a · x` ([`dense::axpy`], inlined into each target's copy).
    fn axpy(y: &mut [f32], a: f32, x: &[f32]) {
        dense::axpy(y, a, x);
    }
}

/// Working memory of [`select_row`], reused across the rows of a thread.
#[derive(Default)]
struct RowScratch {
    keys: Vec<f32>,
    cols: Vec<u32>,
    /// The row's pre-activations (bias added, rescaled).
    row: Vec<f32>,
}

/// One row's non-zero latents under `select`, in increasing latent order.
fn select_row(row: &[f32], select: HostSelect<'_>, scratch: &mut RowScratch) -> Vec<(u32, f32)> {
    match select {
        HostSelect::TopK { k, abs: false } => topk_row::<false>(row, k, scratch),
        HostSelect::TopK { k, abs: true } => topk_row::<true>(row, k, scratch),
        HostSelect::Threshold(theta) => {
            let mut kept = Vec::new();
            for (c, (&v, &t)) in row.iter().zip(theta).enumerate() {
                if v > t && v > 0.0 {
                    kept.push((c as u32, v));
                }
            }
            kept
        }
    }
}

#[inline(always)]
fn topk_key<const ABS: bool>(v: f32) -> f32 {
    if ABS {
        v.abs()
    } else {
        v
    }
}

/// [`crate::inference::topk_host`]'s rule for one row, returning the kept
/// non-zero entries: the cut-off is the `k`-th largest key found as
/// [`crate::select::row_kth_largest`] finds
/// it (the `k`-th largest of the first `16k` keys bounds it from below, and
/// only keys at or above the bound are selected among), and the entries kept
/// are the candidates at or above the cut-off, so the row is scanned once.
/// Same cut-off and entries as `topk_host` (NaN keys included: they are
/// never kept).
fn topk_row<const ABS: bool>(row: &[f32], k: usize, scratch: &mut RowScratch) -> Vec<(u32, f32)> {
    let s = row.len();
    let keep = |v: f32| v != 0.0 && (ABS || v > 0.0);
    let mut kept = Vec::with_capacity(k.min(s));
    if k == 0 {
        return kept;
    }
    if k >= s {
        for (c, &v) in row.iter().enumerate() {
            if keep(v) && !v.is_nan() {
                kept.push((c as u32, v));
            }
        }
        return kept;
    }
    let RowScratch { keys, cols, .. } = scratch;
    let head = 16 * k;
    cols.clear();
    if head < s / 2 {
        keys.clear();
        keys.extend(row[..head].iter().map(|&v| topk_key::<ABS>(v)));
        let lo = nth_largest(keys, k).unwrap_or(f32::NAN);
        indices_at_least(row, lo, ABS, cols);
    }
    if cols.len() < k {
        // Short rows, or NaN keys in the head: all entries are candidates.
        cols.clear();
        cols.extend(0..s as u32);
    }
    keys.clear();
    keys.extend(cols.iter().map(|&c| topk_key::<ABS>(row[c as usize])));
    let cut = nth_largest(keys, k).unwrap_or(f32::NEG_INFINITY);
    for &c in cols.iter() {
        let v = row[c as usize];
        if topk_key::<ABS>(v) >= cut && keep(v) {
            kept.push((c, v));
        }
    }
    kept
}
