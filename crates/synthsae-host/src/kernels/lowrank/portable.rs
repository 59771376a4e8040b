//! The portable body of the low-rank gap kernel, for every target without
//! a hand-written one.

use super::tile::{GapOut, GapTile, SubMins, GAP_ROWS, GAP_SUB, GAP_TILE};

crate::multiversioned! {
    fma:
    /// The gaps and minima of a tile, for any target (auto-vectorised; bit
    /// for bit those of the hand-written kernels).
    ///
    /// Register-blocked: the tile is computed one sub-block of `GAP_SUB`
    /// features at a time, so the `GAP_ROWS × GAP_SUB` accumulators fit in the
    /// vector registers (8 of AVX2's 16, 16 of NEON's 32) across the whole rank
    /// loop; accumulating the whole tile at once (256 values) spilled them to
    /// the stack on every step. Each lane still accumulates from 0 in rank order
    /// with fused multiply-adds, so the gaps are those of
    /// [`lowrank_dot`](super::lowrank_dot).
    ///
    /// Takes the slices one by one (each reference its own argument, so
    /// the compiler knows they do not alias, which keeps the accumulators
    /// vectorised), not as [`GapTile`] / [`GapOut`]: see [`gaps_and_mins`].
    #[allow(clippy::too_many_arguments)]
    fn gaps_and_mins_of(
        out: &mut [f32],
        out_stride: usize,
        mins: &mut SubMins,
        eps: &[f32],
        rank: usize,
        ft: &[f32],
        stride: usize,
        tau: &[f32; GAP_TILE],
        inv_s: &[f32; GAP_TILE],
    ) {
        let [e0, e1, e2, e3]: [&[f32]; GAP_ROWS] =
            std::array::from_fn(|g| &eps[g * rank..(g + 1) * rank]);
        for j in 0..GAP_TILE / GAP_SUB {
            let first = j * GAP_SUB;
            let mut acc = [[0.0f32; GAP_SUB]; GAP_ROWS];
            for r in 0..rank {
                let at = r * stride + first;
                let col: &[f32; GAP_SUB] = ft[at..at + GAP_SUB].try_into().expect("sub-block");
                let e = [e0[r], e1[r], e2[r], e3[r]];
                for (a, &e) in acc.iter_mut().zip(&e) {
                    for (a, &c) in a.iter_mut().zip(col) {
                        *a = e.mul_add(c, *a);
                    }
                }
            }
            let tau = &tau[first..first + GAP_SUB];
            let inv_s = &inv_s[first..first + GAP_SUB];
            for (g, (a, m)) in acc.iter().zip(mins.iter_mut()).enumerate() {
                let mut v = [0.0f32; GAP_SUB];
                for (((v, &a), &t), &is) in v.iter_mut().zip(a).zip(tau).zip(inv_s) {
                    *v = (t - a) * is;
                }
                let at = g * out_stride + first;
                out[at..at + GAP_SUB].copy_from_slice(&v);
                // Pairwise tree of elementwise minima (vectorises).
                let mut w = GAP_SUB / 2;
                while w > 0 {
                    for i in 0..w {
                        if v[i + w] < v[i] {
                            v[i] = v[i + w];
                        }
                    }
                    w /= 2;
                }
                m[j] = v[0];
            }
        }
    }
}

/// The gaps and minima of [`lowrank_gaps`](super::lowrank_gaps) for any
/// target ([`gaps_and_mins_of`]); `out.hz` is left to the caller.
pub(super) fn gaps_and_mins(tile: &GapTile<'_>, out: &mut GapOut<'_>) {
    let (eps, rank, ft, stride, tau, inv_s) = tile.parts();
    let (out, out_stride, mins, _) = out.parts();
    gaps_and_mins_of(out, out_stride, mins, eps, rank, ft, stride, tau, inv_s)
}
