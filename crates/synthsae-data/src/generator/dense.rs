//! Dense copula firing: `z = L ε` with the Cholesky factor `L` `[N, N]`
//! (`O(N²)` per row); feature `j` fires iff `z_j > τ_j`.

use rayon::prelude::*;

use super::rows::{assemble_parts, RowsPart, ROW_BLOCK};
use crate::rng::{block_rng, normal, SampleRng};
use synthsae_host::Csr;

/// One row of a dense copula: draws `ε ~ N(0, I_N)` into `z` (`[N]`) and
/// appends the features `j` with `(L ε)_j > τ_j` to `fired`, ascending.
/// The fast and the reference sampler share it.
#[inline(always)]
pub(super) fn dense_row(
    cholesky: &[f32],
    tau: &[f32],
    z: &mut [f32],
    rng: &mut SampleRng,
    fired: &mut Vec<u32>,
) {
    let n = z.len();
    for e in z.iter_mut() {
        *e = normal(rng);
    }
    for j in 0..n {
        let row = &cholesky[j * n..j * n + j + 1];
        let zj: f32 = row.iter().zip(&z[..=j]).map(|(l, e)| l * e).sum();
        if zj > tau[j] {
            fired.push(j as u32);
        }
    }
}

/// Dense copula firing of a batch `[batch_size, n]` (values 0, drawn
/// afterwards): row blocks of `ROW_BLOCK` in parallel, each with its own
/// stream derived from `key`.
pub(super) fn fire_dense(
    cholesky: &[f32],
    tau: &[f32],
    n: usize,
    batch_size: usize,
    key: u64,
) -> Csr {
    let parts: Vec<RowsPart> = (0..batch_size.div_ceil(ROW_BLOCK))
        .into_par_iter()
        .map(|blk| {
            let mut rng = block_rng(key, blk as u64);
            let rows = ((blk + 1) * ROW_BLOCK).min(batch_size) - blk * ROW_BLOCK;
            let mut part = RowsPart::default();
            let mut z = vec![0.0f32; n];
            for _ in 0..rows {
                let before = part.idx.len();
                dense_row(cholesky, tau, &mut z, &mut rng, &mut part.idx);
                part.counts.push(part.idx.len() - before);
            }
            part
        })
        .collect();
    assemble_parts(n, batch_size, parts)
}
