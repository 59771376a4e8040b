//! [`gemm_bias`]: `x · w + bias` into a fresh row-major buffer with the bias
//! pre-filled (the encoder product of the TopK family's one-node training
//! loss, [`crate::autodiff::topk_loss`]).

use rayon::prelude::*;

/// `out = x · w + 1 · bias` for row-major `x` `[m, k]`, `w` `[k, n]`,
/// `bias` `[n]`: the output buffer starts as the bias rows and the product
/// is accumulated into it (one pass over the output instead of a zero-fill,
/// the product and a broadcast add).
pub fn gemm_bias(x: &[f32], w: &[f32], bias: &[f32], m: usize, k: usize, n: usize) -> Vec<f32> {
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

    #[test]
    fn equals_a_scalar_product_plus_bias() {
        let (m, k, n) = (3, 4, 5);
        let x: Vec<f32> = (0..m * k).map(|i| i as f32 * 0.5 - 2.0).collect();
        let w: Vec<f32> = (0..k * n).map(|i| (i % 7) as f32 - 3.0).collect();
        let bias: Vec<f32> = (0..n).map(|j| j as f32 * 0.25).collect();
        let out = gemm_bias(&x, &w, &bias, m, k, n);
        for r in 0..m {
            for c in 0..n {
                let want = bias[c] + (0..k).map(|j| x[r * k + j] * w[j * n + c]).sum::<f32>();
                assert!((out[r * n + c] - want).abs() <= 1e-5 * want.abs().max(1.0));
            }
        }
        assert_eq!(
            gemm_bias(&x, &w, &bias, m, 0, n),
            [bias.clone(), bias.clone(), bias].concat()
        );
    }
}
