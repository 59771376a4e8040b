//! Untracked inference fast paths on the CPU backends: the per-row TopK
//! activation and the decode of mostly-zero latents, on row-major host
//! buffers with rayon.
//!
//! Evaluating a 16384-latent SAE on 100k samples spends most of its time on
//! two things a dense device formulation does badly on a CPU: the per-row
//! TopK (a selection plus four `[B, S]` temporaries on the device) and the
//! decode `z · W_dec` of latents that are > 99 % zeros. On backends that
//! compute in host memory, when no gradient is tracked, both run here
//! instead; results equal the device path (same selection rule, and every
//! kept product is accumulated in the same order as a dot product over the
//! row's active latents).

use burn::prelude::*;
use burn::tensor::TensorData;
use rayon::prelude::*;

use crate::kernels::dense::axpy;
use crate::select::row_kth_largest;
use crate::view::{host_values, to_vec};

/// Largest fraction of non-zero latents for which [`sparse_decode_host`]
/// gathers rows instead of leaving the dense matmul to the backend
/// (a gathered row costs about as much as ~20 dense multiply-adds per entry).
pub const HOST_SPARSE_MAX_DENSITY: f64 = 0.05;

/// Whether a host fast path may replace the device ops for `t`: the backend
/// computes in host memory and `t` carries no autodiff graph.
pub fn host_path_ok<B: Backend, const D: usize>(t: &Tensor<B, D>) -> bool {
    if t.is_require_grad() {
        return false;
    }
    crate::backend::is_cpu::<B>()
}

/// Per-row TopK on the host, `[B, S]` → `[B, S]`: entries whose key (`x`, or
/// `|x|` with `abs`) is at least the row's `k`-th largest key are kept
/// (ties keep every tied entry, as the generic `row_topk_mask` of
/// synthsae-sae), with relu
/// unless `abs`; all others become 0.
pub fn topk_host<B: Backend>(x: Tensor<B, 2>, k: usize, abs: bool) -> Tensor<B, 2> {
    let [b, s] = x.dims();
    let device = x.device();
    let mut data = to_vec(x);
    if s > 0 {
        data.par_chunks_mut(s)
            .for_each_init(Vec::new, |scratch, row| {
                let key = |v: f32| if abs { v.abs() } else { v };
                let cut = if k == 0 {
                    f32::INFINITY
                } else if k >= s {
                    f32::NEG_INFINITY
                } else {
                    row_kth_largest(row, k, key, scratch).unwrap_or(f32::NEG_INFINITY)
                };
                for v in row.iter_mut() {
                    let keep = if k == 0 { false } else { key(*v) >= cut };
                    if !keep || (!abs && *v < 0.0) {
                        *v = 0.0;
                    }
                }
            });
    }
    Tensor::from_data(TensorData::new(data, [b, s]), &device)
}

/// `z · w` for a mostly-zero `z` (`[B, S]`, `w`: `[S, D]`) by gathering the
/// rows of `w` at each row's non-zero latents: `[B, D]`. `None` (nothing
/// computed) when the host path does not apply or more than
/// [`HOST_SPARSE_MAX_DENSITY`] of `z` is non-zero.
pub fn sparse_decode_host<B: Backend>(z: &Tensor<B, 2>, w: &Tensor<B, 2>) -> Option<Tensor<B, 2>> {
    if !host_path_ok(z) || !host_path_ok(w) {
        return None;
    }
    let [b, s] = z.dims();
    let [s_w, d] = w.dims();
    if s != s_w || b == 0 || s == 0 || d == 0 {
        return None;
    }
    // Borrowed, not copied, on Flex (`z` is 268 MB at 4096 × 16384).
    let zh = host_values(z.clone());
    let nnz = zh.par_iter().filter(|v| **v != 0.0).count();
    if nnz as f64 > HOST_SPARSE_MAX_DENSITY * zh.len() as f64 {
        return None;
    }
    let wh = host_values(w.clone());
    let mut out = vec![0.0f32; b * d];
    out.par_chunks_mut(d)
        .zip(zh.par_chunks(s))
        .for_each(|(o, zr)| {
            for (c, &v) in zr.iter().enumerate() {
                if v != 0.0 {
                    axpy(o, v, &wh[c * d..(c + 1) * d]);
                }
            }
        });
    Some(Tensor::from_data(TensorData::new(out, [b, d]), &z.device()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::{Autodiff, NdArray};
    use burn::tensor::Distribution;

    fn close(a: Vec<f32>, b: Vec<f32>, tol: f32) {
        assert_eq!(a.len(), b.len());
        for (i, (x, y)) in a.iter().zip(&b).enumerate() {
            assert!((x - y).abs() <= tol * (1.0 + y.abs()), "{i}: {x} vs {y}");
        }
    }

    #[test]
    fn sparse_decode_equals_dense_matmul() {
        let device = Default::default();
        <NdArray as Backend>::seed(&device, 2);
        let w = Tensor::<NdArray, 2>::random([300, 9], Distribution::Normal(0.0, 1.0), &device);
        let x = Tensor::<NdArray, 2>::random([6, 300], Distribution::Normal(0.0, 1.0), &device);
        let z = topk_host(x, 3, false);
        let sparse = sparse_decode_host(&z, &w).expect("1 % dense on a host backend");
        close(to_vec(sparse), to_vec(z.clone().matmul(w.clone())), 1e-5);
        // Too dense: left to the backend.
        let dense = Tensor::<NdArray, 2>::ones([6, 300], &device);
        assert!(sparse_decode_host(&dense, &w).is_none());
    }

    #[test]
    fn tracked_tensors_keep_the_device_path() {
        type A = Autodiff<NdArray>;
        let device = Default::default();
        let w = Tensor::<A, 2>::ones([4, 2], &device).require_grad();
        let z = Tensor::<A, 2>::zeros([3, 4], &device);
        assert!(sparse_decode_host(&z, &w).is_none());
        assert!(host_path_ok(&z));
    }
}
