//! Cosine similarities of two sets of row vectors held on the host, by a
//! direct multithreaded gemm into the caller's output buffer: the CPU
//! backends' form of `synthsae_eval::SimilarityMatrix::compute` (taken when
//! [`crate::is_cpu`] holds; other backends multiply on their device).

use rayon::prelude::*;

/// Bytes of output per gemm call.
const BLOCK_BYTES: usize = 64 << 20;

/// Row-major `[n, d]` rows divided by `max(‖row‖, 1e-8)` (zero rows stay
/// zero), norms accumulated in `f64`.
pub fn normalized_rows(m: &[f32], d: usize) -> Vec<f32> {
    let mut out = m.to_vec();
    out.par_chunks_mut(d).for_each(|row| {
        let norm = row
            .iter()
            .map(|&x| (x as f64) * (x as f64))
            .sum::<f64>()
            .sqrt();
        let inv = 1.0 / norm.max(1e-8);
        for x in row.iter_mut() {
            *x = (*x as f64 * inv) as f32;
        }
    });
    out
}

/// Writes the signed cosine similarity of every row of `a` (`[n_a, d]`,
/// row-major) with every row of `b` (`[n_b, d]`) into `out` (`[n_a, n_b]`,
/// row-major). Zero rows give 0.
///
/// # Panics
/// When `d` is 0, when `a` or `b` is not a whole number of rows of `d`, or
/// when `out` does not have `n_a · n_b` entries.
pub fn cosine_similarities_into(a: &[f32], b: &[f32], d: usize, out: &mut [f32]) {
    assert!(d > 0, "cosine similarities: d must be positive");
    assert!(
        a.len().is_multiple_of(d) && b.len().is_multiple_of(d),
        "cosine similarities: inputs are not rows of {d}"
    );
    let (rows, cols) = (a.len() / d, b.len() / d);
    assert_eq!(out.len(), rows * cols, "cosine similarities: output size");
    if rows == 0 || cols == 0 {
        return;
    }
    let an = normalized_rows(a, d);
    let bn = normalized_rows(b, d);
    // Row blocks of the output, one gemm each; gemm splits a block over
    // the rayon pool. Blocks of ≥ 512 rows keep the cost of packing `b`
    // (once per call) small against the block's arithmetic.
    let block = (BLOCK_BYTES / (4 * cols)).clamp(512, rows.max(512));
    for (bi, out) in out.chunks_mut(block * cols).enumerate() {
        let m = out.len() / cols;
        let lhs = &an[bi * block * d..(bi * block + m) * d];
        // SAFETY: `out` is `[m, cols]` row-major (row stride `cols`), `lhs`
        // is `[m, d]` row-major and `bn` is `[cols, d]` row-major, read as
        // the `[d, cols]` matrix `bnᵀ` (row stride 1, column stride `d`);
        // all three slices hold exactly the entries the strides address.
        unsafe {
            gemm::gemm(
                m,
                cols,
                d,
                out.as_mut_ptr(),
                1,
                cols as isize,
                false,
                lhs.as_ptr(),
                1,
                d as isize,
                bn.as_ptr(),
                d as isize,
                1,
                0.0,
                1.0,
                false,
                false,
                false,
                gemm::Parallelism::Rayon(0),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The full check against direct dot products is
    /// `synthsae_eval::cosine`'s `host_gemm_matches_direct_dot_products`.
    #[test]
    fn zero_rows_give_zero() {
        let a = [0.0f32, 0.0, 3.0, 4.0];
        let b = [1.0f32, 0.0];
        let mut sim = [f32::NAN; 2];
        cosine_similarities_into(&a, &b, 2, &mut sim);
        assert_eq!(sim[0], 0.0);
        assert!((sim[1] - 0.6).abs() < 1e-6);
    }
}
